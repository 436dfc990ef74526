"""The `sreval study` command line on the pilot study: create, invite, status, export, close."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from study_helpers import rate

from sreval.cli import main
from sreval.study import (
    EXPORT_COLUMNS,
    check_admin_password,
    open_study_store,
)


def test_cli(
    tmp_path: Path, data_root: Path, sr_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    training = data_root.parent / "training"
    if not (training / "T91").is_dir():
        pytest.skip(f"T91 not at {training / 'T91'}")
    monkeypatch.setenv("SREVAL_TRAINING_ROOT", str(training))
    monkeypatch.setenv("SREVAL_DATA_ROOT", str(data_root))
    monkeypatch.setenv("SREVAL_CACHE", str(sr_cache))
    monkeypatch.setenv("SREVAL_STUDIES", str(tmp_path / "studies"))
    db = ["--db", f"sqlite:///{tmp_path / 'study.sqlite'}"]
    study = ["--study", "cli"]

    create = ["study", "create", "--name", "cli", "--methods", "bicubic,hr", "--datasets", "set5", "--images"]
    assert (
        main([*create, "bird,head", "--gold-images", "1", "--calibration-images", "2", "--seed", "4", "-q", *db]) == 0
    )
    out = capsys.readouterr().out
    assert "created study cli: 4 test items (2 methods: bicubic, hr), 2 gold items, 4 calibration items" in out
    assert len(list((tmp_path / "studies" / "cli").glob("*.png"))) == 10

    assert main(["study", "invite", *study, "--n", "3", "--base-url", "https://mos.example.org/", *db]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["r01", "r02", "r03"] and "shown only this once" in captured.err
    tokens = [re.fullmatch(r"r0\d\thttps://mos\.example\.org/\?token=([A-Za-z0-9_-]{43})", line)[1] for line in lines]  # type: ignore[index]
    with open_study_store(db[1]) as store:
        store.give_consent(tokens[0])
        rate(store, tokens[0], 5)

    assert main(["study", "simulate", *study, "--raters", "2", "--workers", "2", "--seed", "1", *db]) == 0
    assert "simulated raters s04..s05 (2, seed 1)" in capsys.readouterr().out

    assert main(["study", "status", *study, *db]) == 0
    out = capsys.readouterr().out
    assert "study cli: open; 3 raters" in out and "bicubic" in out and "gold failures:" in out and "s04" not in out
    assert main(["study", "status", *study, "--include-simulated", *db]) == 0
    assert "s04" in capsys.readouterr().out

    assert main(["study", "export", *study, "--out", str(tmp_path / "ratings.csv"), *db]) == 0
    assert "wrote 5 ratings of 1 raters" in capsys.readouterr().out
    ratings = pd.read_csv(tmp_path / "ratings.csv")
    assert tuple(ratings.columns) == EXPORT_COLUMNS and len(ratings) == 5 and set(ratings["rater"]) == {"r01"}
    everything = ["--out", str(tmp_path / "all.csv"), "--include-simulated", "--no-calibration"]
    assert main(["study", "export", *study, *everything, *db]) == 0
    assert len(pd.read_csv(tmp_path / "all.csv")) == 1 + 2 * (4 + 2 + 1)

    assert main(["study", "list", *db]) == 0
    assert re.search(r"cli .* 5 +2 +\d+", capsys.readouterr().out)
    assert main(["study", "close", *study, *db]) == 0
    assert "closed at" in capsys.readouterr().out
    assert main(["study", "simulate", *study, "--raters", "1", *db]) == 2
    assert "closed" in capsys.readouterr().err
    assert main(["study", "invite", "--study", "nope", "--n", "1", "--base-url", "https://x.org/", *db]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    assert main(["study", "invite", *study, "--n", "1", "--base-url", "x.org", *db]) == 2
    assert "base URL" in capsys.readouterr().err

    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret pass\n"))
    assert main(["study", "hash-password", "--iterations", "1000", "--force"]) == 0
    captured = capsys.readouterr()
    assert check_admin_password("s3cret pass", captured.out.strip()) and "secrets.toml" in captured.err
