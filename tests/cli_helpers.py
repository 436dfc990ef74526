"""What the CLI tests share: an isolated cache and database, the CLI in its own process, a failing command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sreval.cli import main


def results_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'results.sqlite'}"


def isolate(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolated cache and database for one test, on the benchmark data at `data_root`."""
    monkeypatch.setenv("SREVAL_DATA_ROOT", str(data_root))
    monkeypatch.setenv("SREVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SREVAL_DB", results_db(tmp_path))
    return tmp_path


def run_module(args: list[str | bytes], env: Path) -> subprocess.CompletedProcess[str]:
    """`python -m sreval ARGS` in its own process (real stderr, real logging set-up), with `env`'s cache and
    database; arguments may be bytes (file names that are not UTF-8)."""
    environ = {**os.environ, "SREVAL_CACHE": str(env / "cache"), "SREVAL_DB": results_db(env)}
    return subprocess.run([sys.executable, "-m", "sreval", *args], capture_output=True, text=True,
                          errors="backslashreplace", env=environ, timeout=300, check=False)


def error_of(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """stderr of a command that must fail as expected: exit status 2, one `error: ` message, no traceback."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    return err
