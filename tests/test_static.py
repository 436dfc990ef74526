"""House rules that a machine can check: ruff's lint rules and strict typing (mypy) over the library and bench."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "sreval", "bench", "tests", "tools"],
        [sys.executable, "-m", "mypy", "sreval", "bench"],
    ],
    ids=["ruff", "mypy"],
)
def test_static_checks_pass(command: list[str]) -> None:
    tool = command[2]
    if subprocess.run([sys.executable, "-m", tool, "--version"], capture_output=True, check=False).returncode:
        pytest.skip(f"{tool} is not installed (pip install -e '.[test]')")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
