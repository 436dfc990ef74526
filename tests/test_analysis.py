"""The analysis of a study (`sreval.analysis.analyze`, `sreval analyze`): every table from one ratings table, on
a CSV and on a simulated study with metric values, through the library and the CLI. The statistics themselves are
tested in test_analysis_*.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analysis_helpers import synthetic_study

from sreval.analysis import AnalysisOptions, analyze, select_ratings, validate_ratings
from sreval.analysis.mos import mos_table
from sreval.analysis.power import rater_model_from_ratings
from sreval.cli import main
from sreval.errors import ParameterError
from sreval.imageio import save_png
from sreval.results import open_store
from sreval.results.store import ImageRecord, MethodRecord, RunRecord, ValueRecord
from sreval.study import DraftImage, DraftMethod, DraftStimulus, StudyDraft, open_study_store
from sreval.study.simulate import simulate

EXPECTED_FILES = ["mos.csv", "wilcoxon.csv", "raters.csv", "reliability.csv", "ranks.csv", "quality.csv"]


def test_analyze_cli_on_a_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings = synthetic_study(raters=8, images=5, seed=5)
    ratings.drop(columns=["kind", "simulated"]).to_csv(tmp_path / "ratings.csv", index=False)
    out = tmp_path / "out"
    assert main(["analyze", "--ratings", str(tmp_path / "ratings.csv"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "MOS with 95 % CI (t)" in printed and "hr" in printed and "correlation.csv: skipped" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPECTED_FILES)

    mos = pd.read_csv(out / "mos.csv")
    assert list(mos.columns) == ["method", "dataset", "mos", "ci_low", "ci_high", "n_ratings", "n_raters"]
    assert len(mos) == 8
    tests = pd.read_csv(out / "wilcoxon.csv")
    assert list(tests.columns[:9]) == ["dataset", "method_a", "method_b", "n_pairs", "statistic", "p", "p_holm",
                                       "effect_size", "significant"]  # fmt: skip
    raters = pd.read_csv(out / "raters.csv")
    assert list(raters.columns[:8]) == ["rater", "n", "rejected_bt500", "bias", "inconsistency", "retest_r",
                                        "retest_mad", "gold_failures"]  # fmt: skip
    assert raters["rejected_bt500"].dtype == bool and raters["gold_failures"].isna().all()
    reliability = pd.read_csv(out / "reliability.csv").set_index("measure")["value"]
    assert list(reliability.index) == ["test_retest_r", "test_retest_mad", "icc_2_1", "icc_2_k",
                                       "krippendorff_alpha_ordinal"]  # fmt: skip
    assert 0.5 < reliability["icc_2_k"] <= 1 and 0.3 < reliability["krippendorff_alpha_ordinal"] < 1
    ranks = pd.read_csv(out / "ranks.csv")
    assert ranks.groupby("dataset")["method"].first().tolist() == ["hr", "hr"]

    boot = tmp_path / "boot"
    args = ["analyze", "--ratings", str(tmp_path / "ratings.csv"), "--out", str(boot), "--ci", "bootstrap",
            "--bootstrap", "200", "--pairing", "image-mos", "--correction", "bh"]  # fmt: skip
    assert main(args) == 0
    assert "bootstrap over raters and images" in capsys.readouterr().out
    assert (pd.read_csv(boot / "wilcoxon.csv")["n_pairs"] == 5).all()  # one pair per image

    assert main(["analyze", "--ratings", str(tmp_path / "ratings.csv")]) == 2
    assert "needs --out" in capsys.readouterr().err
    assert main(["analyze", "--out", str(out)]) == 2
    assert "--ratings FILE.csv or --study NAME" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("rater,method,dataset,image,score\na,m,d,i,9\na,n,d,i,2\nb,m,d,i,8\nb,n,d,i,3\n")
    assert main(["analyze", "--ratings", str(tmp_path / "bad.csv"), "--out", str(out)]) == 2
    assert "outside the scale 1..5" in capsys.readouterr().err
    assert main(["analyze", "--ratings", str(tmp_path / "bad.csv"), "--out", str(out), "--scale", "0,10"]) == 0


def test_analyze_power_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "power", "--delta", "0.5", "--images", "10", "--sims", "40"]) == 0
    printed = capsys.readouterr().out
    assert "raters needed for power 0.8:" in printed and "bias SD 0.500" in printed
    synthetic_study(raters=6, images=4).to_csv(tmp_path / "pilot.csv", index=False)
    args = ["analyze", "power", "--delta", "0.5", "--from-ratings", str(tmp_path / "pilot.csv"), "--images", "10",
            "--sims", "40", "--pairing", "image-mos"]  # fmt: skip
    assert main(args) == 0
    assert "pilot ratings" in capsys.readouterr().out
    assert main(["analyze", "--out", str(tmp_path), "power", "--delta", "0.5"]) == 2
    assert "belong to `sreval analyze`" in capsys.readouterr().err
    assert main(["analyze", "power", "--delta", "-1"]) == 2


def make_study(url: str, folder: Path) -> None:
    """A hand-made study: 3 methods × 4 Set5 images, 1 gold image, 2 calibration images, retest 25 %."""
    images = ["baby", "bird", "butterfly", "head"]
    stimuli = [
        DraftStimulus(f"stim{method}{image}".ljust(16, "0")[:16], "test", method, "set5", image, "", None)
        for method in ("nn", "bicubic", "srgan") for image in images
    ]  # fmt: skip
    stimuli += [DraftStimulus("goldhrbaby000000", "gold_hr", None, "set5", "baby", "", 5),
                DraftStimulus("goldnnbaby000000", "gold_nn", None, "set5", "baby", "", 1)]  # fmt: skip
    stimuli += [DraftStimulus(f"cal{kind}{i}".ljust(16, "0"), f"calibration_{kind}", None, "calibration", f"c{i}.png",
                              "", 5 if kind == "hr" else 1) for kind in ("hr", "nn") for i in range(2)]  # fmt: skip
    stimuli = [dataclasses.replace(s, path=f"{s.public_id}.png") for s in stimuli]
    for s in stimuli:
        save_png(folder / s.path, np.zeros((8, 8, 3), np.uint8))
    draft = StudyDraft(
        "pilot", folder, 3, {"retest": 0.25, "min_retest_gap": 2},
        [DraftMethod(m, {}) for m in ("nn", "bicubic", "srgan")],
        [DraftImage("set5", image, "0" * 64) for image in images]
        + [DraftImage("calibration", f"c{i}.png", "1" * 64) for i in range(2)],
        stimuli,
    )  # fmt: skip
    with open_study_store(url) as store:
        store.create_study(draft)
        simulate(store, "pilot", raters=6, workers=2, seed=4)


def test_analyze_cli_on_a_simulated_study_with_metric_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    make_study(url, tmp_path / "stimuli")
    when = pd.Timestamp("2026-01-01T00:00:00Z").to_pydatetime()
    methods = ("nn", "bicubic", "srgan")
    images = ("baby", "bird", "butterfly", "head")
    level = {"nn": 20.0, "bicubic": 24.0, "srgan": 27.0}
    run = RunRecord(
        "test", when, when, "0.1.0", None, {}, "cpu", {}, {},
        [MethodRecord(m, m, {}) for m in methods], [ImageRecord("set5", i, "0" * 64) for i in images],
        [ValueRecord(m, "set5", i, "psnr", level[m] + k) for m in methods for k, i in enumerate(images)],
    )  # fmt: skip
    with open_store(url) as store:
        run_id = store.save_run(run)

    out = tmp_path / "out"
    assert main(["analyze", "--study", "pilot", "--db", url, "--out", str(out)]) == 2
    assert "simulated raters are left out" in capsys.readouterr().err
    args = ["analyze", "--study", "pilot", "--db", url, "--out", str(out), "--include-simulated"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"correlation.csv: metric values of run(s) {run_id}" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted([*EXPECTED_FILES, "correlation.csv"])
    mos = pd.read_csv(out / "mos.csv").set_index("method")
    assert set(mos.index) == set(methods) and (mos["n_raters"] == 6).all()
    assert mos.loc["srgan", "mos"] > mos.loc["nn", "mos"]  # simulate: other methods 3.0, nn 1.3
    raters = pd.read_csv(out / "raters.csv")
    assert len(raters) == 6 and raters["gold_failures"].notna().all() and (raters["retest_n"] == 3).all()
    correlation = pd.read_csv(out / "correlation.csv")
    assert list(correlation["metric"]) == ["psnr"] and correlation["n"].iloc[0] == 12
    assert correlation["srocc"].iloc[0] > 0.5

    with_gold = tmp_path / "gold"
    assert main([*args[:-1], "--include-simulated", "--include-gold", "--include-calibration", "--out",
                 str(with_gold)]) == 0  # fmt: skip
    assert {"hr", "nn"} <= set(pd.read_csv(with_gold / "mos.csv")["method"])
    assert "calibration" in set(pd.read_csv(with_gold / "mos.csv")["dataset"])

    with open_study_store(url) as study_store:
        pilot = select_ratings(validate_ratings(study_store.ratings("pilot")), include_simulated=True)
    model = rater_model_from_ratings(pilot, "pilot")  # what `analyze power --from-study` does
    assert len(model.inconsistencies) == 6
    assert main(["analyze", "power", "--delta", "0.5", "--from-study", "pilot", "--db", url, "--include-simulated",
                 "--images", "8", "--sims", "30"]) == 0  # fmt: skip
    assert "pilot study pilot (6 raters)" in capsys.readouterr().out


def test_analyze_library_api() -> None:
    ratings = synthetic_study(raters=6, images=4)
    result = analyze(ratings, AnalysisOptions(pairing="image-mos", alpha=0.01))
    assert result.correlation is None and set(result.tables()) == set(EXPECTED_FILES)
    assert len(result.raters) == 6 and not result.raters["rejected_bt500"].any()
    assert len(result.quality) == ratings["stimulus"].nunique()


def test_a_bootstrap_needs_100_replicates_wherever_it_is_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ParameterError, match="n_boot must be at least 100, got 50") as caught:
        AnalysisOptions(n_boot=50)
    assert caught.value.parameter == "n_boot"
    ratings = synthetic_study(raters=3, images=2)
    with pytest.raises(ParameterError, match="n_boot must be at least 100, got 99"):
        mos_table(ratings, ci="bootstrap", n_boot=99)
    ratings.to_csv(tmp_path / "ratings.csv", index=False)
    args = ["analyze", "--ratings", str(tmp_path / "ratings.csv"), "--out", str(tmp_path / "out")]
    assert main([*args, "--bootstrap", "50"]) == 2
    assert "at least 100, got 50" in capsys.readouterr().err
