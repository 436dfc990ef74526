"""What a stored run records about where its numbers came from: sreval version, git commit, device."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

_SOURCE_ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str | None:
    """The commit of the sreval source tree when it runs from a git checkout (with `+dirty` if modified)."""
    if not (_SOURCE_ROOT / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(_SOURCE_ROOT), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(_SOURCE_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def resolve_device(name: str = "auto") -> torch.device:
    from sreval.errors import SrevalError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SrevalError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SrevalError(f"device {name!r} requested but no CUDA GPU is available; use --device cpu")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads, torch {torch.__version__})"
