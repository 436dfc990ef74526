"""What a new user meets in their first hour: every failure names the flag or setting to change, all of them at once,
and in a flag the command accepts."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from study_helpers import STUDY

from sreval import progress
from sreval.cli import build_parser, main
from sreval.cli.flags import command_parsers, options_of
from sreval.study import StudyStore
from sreval.study.simulate import simulate
from tests.cli_helpers import error_of, isolate

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def test_analysing_a_simulated_study_names_the_flag_that_includes_simulated_raters(
    store: StudyStore, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    simulate(store, STUDY, raters=3, workers=1, seed=1)
    analyze = error_of(["analyze", "--study", STUDY, "--db", url, "--out", str(tmp_path / "out")], capsys)
    report = error_of(["report", "--study", STUDY, "--db", url, "--out", str(tmp_path / "r.html")], capsys)
    for err in (analyze, report):
        assert "no ratings left to analyse" in err and "--include-simulated" in err


def test_study_create_names_its_own_calibration_flag(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SREVAL_TRAINING_ROOT", str(tmp_path / "training"))
    create = ["study", "create", "--name", "p", "--methods", "nn", "--datasets", "set5", "--data-root", str(data_root),
              "--db", f"sqlite:///{tmp_path / 's.sqlite'}", "--dir", str(tmp_path / "p")]  # fmt: skip
    options = options_of(command_parsers(build_parser())["study create"])
    for extra in ([], ["--calibration-dir", "nowhere"], ["--retest", "2"], ["--seed", "-1"], ["--gold-images", "-1"]):
        err = error_of([*create, *extra], capsys)
        named = set(FLAG.findall(err))
        assert named and named <= options, (extra, err)
    assert "--calibration-dir" in error_of([*create, "--calibration-dir", "nowhere"], capsys)


def test_run_benchmarks_prints_progress_lines_off_a_terminal_and_none_with_quiet(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    isolate(tmp_path, data_root, monkeypatch)
    monkeypatch.setattr(progress, "LINE_INTERVAL_S", 0.0)  # a line at every image
    run = ["run-benchmarks", "--methods", "bicubic", "--datasets", "set5", "--out", str(tmp_path / "out")]
    assert main(run) == 0
    captured = capsys.readouterr()
    assert not sys.stderr.isatty()
    lines = [line for line in captured.err.splitlines() if line.startswith("benchmark: ")]
    assert lines[0].startswith("benchmark: 1 img of 5 img (20%)"), captured.err
    assert lines[-1].startswith("benchmark: 5 img of 5 img (100%)")
    assert main([*run, "-q"]) == 0
    assert "benchmark:" not in capsys.readouterr().err
