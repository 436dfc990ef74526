"""A local HTTP server on 127.0.0.1 for download tests: serves the files a test writes into a folder, honours
Range requests, records every request, and misbehaves on demand (drop the connection, stall, redirect, ignore
Range), so that no test ever needs the network."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it."""

    path: str
    range: str | None


@dataclass
class Server:
    """The folder it serves, its base URL and what it was asked. Paths are URL paths (`/a/b.bin`)."""

    folder: Path
    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    #: path -> bytes sent before the connection is dropped (once: the next request for it is served normally)
    drops: dict[str, int] = field(default_factory=dict)
    #: path -> where a 302 sends the client
    redirects: dict[str, str] = field(default_factory=dict)
    #: paths that never answer until `release` is set
    stalls: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    #: answer every request with the whole file (200), as a server without Range support does
    ignore_range: bool = False

    def put(self, path: str, data: bytes) -> str:
        """Serve `data` at `path`; returns its full URL."""
        target = self.folder / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return self.url + "/" + path.lstrip("/")

    @property
    def paths(self) -> list[str]:
        return [seen.path for seen in self.requests]


class _Handler(BaseHTTPRequestHandler):
    server_state: Server

    def do_GET(self) -> None:
        state = self.server_state
        path = self.path.split("?")[0]
        state.requests.append(Seen(path, self.headers.get("Range")))
        if path in state.stalls:
            state.release.wait(timeout=10)
            return
        if path in state.redirects:
            self.send_response(302)
            self.send_header("Location", state.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        file = state.folder / path.lstrip("/")
        if not file.is_file():
            self.send_error(404, "Not Found")
            return
        data = file.read_bytes()
        start = 0
        wanted = self.headers.get("Range")
        if wanted and not state.ignore_range and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[len("bytes=") : -1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if path in state.drops:
            self.wfile.write(body[: state.drops.pop(path)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[Server]:
    """Serve `folder` on a free port of 127.0.0.1 for the duration of the block."""
    folder.mkdir(parents=True, exist_ok=True)
    state = Server(folder)
    handler = type("Handler", (_Handler,), {"server_state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def allow_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the test-wide SREVAL_OFFLINE=1 and any proxy (urllib would send 127.0.0.1 requests through it)."""
    monkeypatch.delenv("SREVAL_OFFLINE", raising=False)
    for var in PROXY_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    assert "SREVAL_OFFLINE" not in os.environ
