"""Replicas of the rater app for the multi-server test: app servers in their own process groups (so that a
SIGKILL takes the whole server, as a crashed host or container would), and a small TCP reverse proxy in front
of them that pins clients to the first replica that accepts a connection and fails over to the next one when it
is gone (what a proxy with sticky sessions does when all raters come from one address).

The proxy works on raw TCP, so HTTP and Streamlit's websocket pass through unchanged; it can withhold what one
replica sends back, to stand for a server that stored an answer and died before the page heard about it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading

from browser_helpers import AppServer


class Replica(AppServer):
    """`streamlit run raters_app/app.py` as the leader of a new process group; `kill` sends SIGKILL to the group."""

    popen_options = {"start_new_session": True}  # noqa: RUF012 - never mutated

    def kill(self) -> None:
        """SIGKILL to the server's whole process group: nothing in it gets to finish anything."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class FailoverProxy:
    """A reverse proxy on a local port: each new connection goes to the first of `ports` that accepts it."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.base = f"http://127.0.0.1:{self.port}/"
        self._withheld: set[int] = set()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.routed: list[int] = []  # the backend port of every connection, in order
        threading.Thread(target=self._accept, daemon=True).start()

    def withhold(self, port: int) -> None:
        """From now on drop every byte that the backend on `port` sends back (the client hears nothing more)."""
        with self._lock:
            self._withheld.add(port)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        for port in self.ports:
            try:
                backend = socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                continue  # that replica is gone: the next one takes the client
            backend.settimeout(None)
            with self._lock:
                self._sockets += [client, backend]
                self.routed.append(port)
            threading.Thread(target=self._pump, args=(client, backend, None), daemon=True).start()
            self._pump(backend, client, port)
            return
        client.close()

    def _pump(self, source: socket.socket, target: socket.socket, port: int | None) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    dropped = port in self._withheld
                if not dropped:
                    target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):  # one side gone: so is the other (the browser reconnects)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
