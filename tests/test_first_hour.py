"""What a new user meets in their first hour: every failure names the flag or setting to change, all of them at once,
and in a flag the command accepts."""

from __future__ import annotations

import logging
import re
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image
from study_helpers import STUDY, make_calibration_folder

from sreval import progress
from sreval.cli import build_parser, main
from sreval.cli.flags import command_parsers, options_of, reworded
from sreval.errors import ParameterError, SrevalError
from sreval.study import StudyStore
from sreval.study.simulate import simulate
from sreval.train.data import training_inputs
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


def test_a_grayscale_or_jpeg_output_is_scored_with_one_warning_naming_the_file(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    isolate(tmp_path, data_root, monkeypatch)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    hr = sorted((data_root / "Set5" / "HR").glob("*.png"))
    Image.open(hr[0]).convert("L").save(outputs / "baby_gray.png")
    Image.open(hr[1]).convert("RGB").save(outputs / "bird.jpg", quality=95)
    for path in hr[2:]:
        shutil.copy(path, outputs / path.name)
    stems = [p.stem.removesuffix("_HR") for p in hr]
    (outputs / "baby_gray.png").rename(outputs / f"{stems[0]}_gray.png")
    (outputs / "bird.jpg").rename(outputs / f"{stems[1]}.jpg")
    evaluate = ["evaluate", "--sr", str(outputs), "--dataset", "set5", "--out", str(tmp_path / "out"), "-q"]
    with caplog.at_level(logging.WARNING):
        assert main(evaluate) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    gray = [m for m in warned if " is grayscale but " in m]
    jpeg = [m for m in warned if " is a JPEG file" in m]
    assert len(gray) == 1 and f"{stems[0]}_gray.png" in gray[0] and "RGB" in gray[0], warned
    assert len(jpeg) == 1 and f"{stems[1]}.jpg" in jpeg[0] and "not comparable to published" in jpeg[0], warned
    assert len(warned) == 2, warned


def test_training_names_every_missing_setting_in_one_message(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SREVAL_TRAINING_ROOT", str(tmp_path / "training"))
    with pytest.raises(ParameterError) as both:
        training_inputs("T91", data_root=tmp_path / "no-data", validation_sets=["set5", "set14"])
    message = str(both.value)
    assert "2 settings" in message and "'T91' not found" in message and "SREVAL_TRAINING_ROOT" in message
    assert "benchmark file(s) missing" in message and "SREVAL_DATA_ROOT" in message
    train = options_of(command_parsers(build_parser())["train"])
    assert "Give --train-dir as the path" in reworded(both.value, "train", train)

    (tmp_path / "training" / "T91").mkdir(parents=True)
    with pytest.raises(SrevalError, match=r"^5 benchmark file\(s\) missing") as one:
        training_inputs("T91", data_root=tmp_path / "no-data", validation_sets=["set5"])
    assert "settings" not in str(one.value)
    assert training_inputs("t91", data_root=tmp_path / "no-data", validation_sets=[]) == tmp_path / "training" / "T91"
    assert training_inputs("T91", data_root=data_root, validation_sets=["set5"]) == tmp_path / "training" / "T91"


def test_the_train_command_names_both_missing_settings_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SREVAL_TRAINING_ROOT", str(tmp_path / "training"))
    monkeypatch.setenv("SREVAL_DATA_ROOT", str(tmp_path / "no-data"))
    err = error_of(["train", "srresnet-mse", "--out", str(tmp_path / "run")], capsys)
    assert "2 settings" in err and "SREVAL_TRAINING_ROOT" in err and "SREVAL_DATA_ROOT" in err
    assert "--train-dir" in err and not (tmp_path / "run").exists()


def test_study_create_prints_rendering_progress_off_a_terminal(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress, "LINE_INTERVAL_S", 0.0)
    create = ["study", "create", "--methods", "nn", "--datasets", "set5", "--images", "bird", "--gold-images", "1",
              "--calibration-images", "1", "--calibration-dir", str(make_calibration_folder(tmp_path / "cal", 1)),
              "--data-root", str(data_root), "--db", f"sqlite:///{tmp_path / 's.sqlite'}", "--no-cache"]  # fmt: skip
    assert main([*create, "--name", "a", "--dir", str(tmp_path / "a")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rendering: ")]
    assert lines and lines[-1].startswith("rendering: 5 img of 5 img (100%)"), lines
    assert main([*create, "--name", "b", "--dir", str(tmp_path / "b"), "-q"]) == 0
    assert "rendering: " not in capsys.readouterr().err
