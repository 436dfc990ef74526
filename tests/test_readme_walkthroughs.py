"""The README's walk-throughs run as written: each fenced block marked `<!-- walkthrough: NAME; files: A B -->` is
taken from README.md itself and its commands run in order, in a fresh folder beside a `shared` link to the shared
data (so `../shared/data/...` means what it means in a checkout), with the user's folders under tmp_path. Every
command must succeed and every file the marker promises must exist afterwards."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MARKED = re.compile(
    r"^<!-- walkthrough: (?P<name>[\w-]+)(?:; files: (?P<files>[^>]*?))? -->\n```bash\n(?P<body>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
#: Walk-throughs the README must keep (a renamed or deleted marker would otherwise drop its test silently).
REQUIRED = {"evaluate-own-model", "mos-study"}


@dataclass(frozen=True)
class Walkthrough:
    name: str
    commands: list[list[str]]
    files: list[str]


def walkthroughs(readme: str) -> list[Walkthrough]:
    found = []
    for match in MARKED.finditer(readme):
        commands = []
        for line in match["body"].splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
        found.append(Walkthrough(match["name"], commands, (match["files"] or "").split()))
    return found


WALKTHROUGHS = walkthroughs((REPO / "README.md").read_text(encoding="utf-8"))


def test_the_readme_marks_its_walkthroughs() -> None:
    assert {w.name for w in WALKTHROUGHS} >= REQUIRED
    for w in WALKTHROUGHS:
        assert w.commands and w.files, w.name
        assert all(words[0] == "sreval" for words in w.commands), f"{w.name}: only sreval commands are run"


def test_the_parser_reads_a_marked_block_and_skips_comments() -> None:
    text = '<!-- walkthrough: demo; files: a/b.csv c -->\n```bash\n# note\nsreval x --y "1 2"  # why\n\n```\n'
    assert walkthroughs(text) == [Walkthrough("demo", [["sreval", "x", "--y", "1 2"]], ["a/b.csv", "c"])]
    assert walkthroughs("```bash\nsreval x\n```\n") == []  # unmarked blocks are prose


@pytest.mark.parametrize("walkthrough", WALKTHROUGHS, ids=[w.name for w in WALKTHROUGHS])
def test_a_walkthrough_runs_as_written(walkthrough: Walkthrough, tmp_path: Path, data_root: Path) -> None:
    (tmp_path / "shared").symlink_to(data_root.parent.parent)  # `../shared/data/benchmarks` is the data root
    work = tmp_path / "work"
    work.mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SREVAL_")}
    environ.update({
        "SREVAL_OFFLINE": "1", "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "TORCH_HOME": str(tmp_path / "torch"),
    })  # fmt: skip
    for words in walkthrough.commands:
        done = subprocess.run([sys.executable, "-m", "sreval", *words[1:]], cwd=work, env=environ,
                              capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
        assert done.returncode == 0, f"{shlex.join(words)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    missing = [name for name in walkthrough.files if not (work / name).is_file()]
    assert not missing, f"{walkthrough.name}: promised files not written: {missing}"
