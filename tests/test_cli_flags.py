"""A library `ParameterError` names a Python parameter; the user reads the flag of the command they typed. The
table behind that cannot go stale: every flag it names is an option of its command's parser."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sreval.cli import build_parser, main
from sreval.cli.analysis import parse_scale
from sreval.cli.flags import FLAGS, command_parsers, flag_for, options_of, reworded
from sreval.cli.models import validation_score
from sreval.errors import ParameterError, SrevalError
from tests.cli_helpers import error_of


def test_every_flag_of_the_table_is_an_option_of_its_command() -> None:
    parsers = command_parsers(build_parser())
    assert set(FLAGS) <= set(parsers), sorted(set(FLAGS) - set(parsers))
    for command, table in FLAGS.items():
        options = options_of(parsers[command])
        stale = {parameter: flag for parameter, flag in table.items() if flag.split()[0] not in options}
        assert not stale, f"sreval {command} has no option for {stale}"


def test_recipe_fields_are_set_with_train_set() -> None:
    parsers = command_parsers(build_parser())
    train = options_of(parsers["train"])
    assert "--set" in train
    assert flag_for("lr", "train", train) == "--set lr=…"
    assert flag_for("steps", "train", train) == "--steps"  # an own option before the recipe field
    assert flag_for("train_dir", "train", train) == "--train-dir"
    assert flag_for("lr", "analyze", options_of(parsers["analyze"])) is None


def test_an_options_own_name_is_the_default_and_internal_parameters_keep_theirs() -> None:
    options = options_of(command_parsers(build_parser())["analyze power"])
    assert flag_for("max_raters", "analyze power", options) == "--max-raters"
    assert flag_for("min_raters", "analyze power", options) is None
    error = ParameterError("min_raters", "min_raters must be at least 2, got 1")
    assert reworded(error, "analyze power", options) == "min_raters must be at least 2, got 1"


def test_the_parameter_is_replaced_where_the_message_speaks_of_it_as_a_parameter() -> None:
    options = {"--pairing", "--name", "--study", "--set", "--data-root"}
    error = ParameterError("pairing", "pairing must be one of rater-image, image-mos, not 'pairing'; pairing")
    assert reworded(error, "analyze", options) == (
        "--pairing must be one of rater-image, image-mos, not 'pairing'; --pairing"
    )
    error = ParameterError("name", "zoo model 'name' already exists; choose another name or overwrite")
    assert reworded(error, "interpolate", options) == str(error)
    assert reworded(ParameterError("study", "no study named 'x'"), "study close", options) == "no study named 'x'"
    error = ParameterError("crop", "recipe srresnet-mse: crop must be an integer ≥ 4, got 2")
    assert reworded(error, "train", options) == "recipe srresnet-mse: --set crop=… must be an integer ≥ 4, got 2"
    error = ParameterError("data_root", "validation needs the benchmark data: give data_root, or set x=0")
    assert reworded(error, "train", options) == "validation needs the benchmark data: give --data-root, or set x=0"
    assert reworded(ParameterError("rater", "rater-image pairs"), "x", {"--rater"}) == "rater-image pairs"


def test_a_library_parameter_error_reaches_the_user_with_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    err = error_of(["analyze", "power", "--delta", "0"], capsys)
    assert err == "error: --delta must be a positive MOS difference, got 0.0\n"
    assert error_of(["analyze", "power", "--delta", "0.3", "--power", "2"], capsys).startswith(
        "error: --power must be in (0, 1)"
    )
    power = ["analyze", "power", "--delta", "0.3"]
    assert "--max-raters must be at least" in error_of([*power, "--max-raters", "1"], capsys)


def test_a_renamed_flag_reaches_the_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'study.sqlite'}"
    err = error_of(["study", "simulate", "--study", "s", "--raters", "0", "--db", db], capsys)
    assert err.startswith("error: --raters must be at least 1, got 0")


def test_train_names_train_dir_and_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SREVAL_TRAINING_ROOT", str(tmp_path / "training"))
    train = ["train", "srresnet-mse", "--out", str(tmp_path / "run"), "--device", "cpu"]
    err = error_of([*train, "--train-dir", "Flickr2K", "--set", "validate_every=0"], capsys)
    assert "'Flickr2K' not found" in err and "Give --train-dir as the path" in err and "spec" not in err
    assert "error: --set lr=… must be a number, got 'fast'" in error_of([*train, "--set", "lr=fast"], capsys)
    assert "error: --set crop=… must be" not in error_of([*train, "--set", "nonsense"], capsys)
    assert "--steps must be ≥ 1, got 0" in error_of([*train, "--steps", "0", "--set", "validate_every=0"], capsys)


def test_scale_text_is_parsed_by_the_cli_and_checked_by_the_library(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse_scale("0,100") == (0, 100) and parse_scale("any") is None
    with pytest.raises(SrevalError, match="MIN,MAX"):
        parse_scale("5")
    row = {"rater": "r1", "stimulus": "s", "method": "nn", "dataset": "set5", "image": "baby", "score": 3}
    pd.DataFrame([row]).to_csv(tmp_path / "ratings.csv", index=False)
    analyze = ["analyze", "--ratings", str(tmp_path / "ratings.csv"), "--out", str(tmp_path / "out")]
    assert "error: --scale must be MIN,MAX" in error_of([*analyze, "--scale", "5"], capsys)
    assert "error: --scale needs finite lowest < highest" in error_of([*analyze, "--scale", "5,1"], capsys)
    assert "error: --scale needs finite lowest < highest" in error_of([*analyze, "--scale", "1,inf"], capsys)
    assert not (tmp_path / "out").exists()


def test_training_validation_scores_are_shown_as_the_metrics_registry_says() -> None:
    assert validation_score("psnr", 30.12345) == "PSNR 30.123 dB"
    assert validation_score("ssim", 0.876543) == "SSIM 0.8765"


def test_a_bad_argument_the_cli_parses_itself_names_its_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "--ratings", "x.csv", "power", "--delta", "0.3"]) == 2
    assert "--ratings, --study and --out belong to `sreval analyze`" in capsys.readouterr().err


def test_output_cut_short_by_a_closed_pipe_is_no_error(tmp_path: Path) -> None:
    """`sreval assets | head -1`: the reader leaving early is normal, not a failure to report."""
    environ = {**os.environ, "SREVAL_CACHE": str(tmp_path / "cache"), "TORCH_HOME": str(tmp_path / "torch")}
    done = subprocess.run(f"{shlex.quote(sys.executable)} -m sreval assets | head -1", shell=True, env=environ,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.stdout.startswith("niqe") and done.stderr == ""
