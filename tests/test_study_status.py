"""The admin's view of a study: simulated raters kept out of analyses, the status numbers and gold failures
(the same as the analysis counts), the export format.
"""

from __future__ import annotations

from sqlalchemy import create_engine, text
from study_helpers import IMAGES, N_CALIBRATION, N_GOLD, N_RETEST, N_TEST, PER_RATER, STUDY, counts, kinds, rate

from sreval.analysis import validate_ratings
from sreval.analysis.ratings import gold_failures
from sreval.study import (
    EXPORT_COLUMNS,
    StudyStore,
)
from sreval.study.simulate import simulate


def test_simulation_is_flagged_and_kept_out_of_analyses(store: StudyStore, url: str) -> None:
    ((_, token),) = store.invite(STUDY, 1)  # one real rater, half-way
    store.give_consent(token)
    rate(store, token, 7, score=4)

    result = simulate(store, STUDY, raters=5, workers=2, seed=3)

    assert result.ratings == 5 * PER_RATER == counts(url)["study_ratings"] - 7
    assert [r.rater for r in result.raters] == ["s02", "s03", "s04", "s05", "s06"]
    assert (
        all(r.inconsistency > 0 for r in result.raters) and len(result.true_quality) == N_CALIBRATION + N_TEST + N_GOLD
    )
    full = store.export(STUDY, include_simulated=True)
    assert len(full) == 5 * PER_RATER + 7 and full["simulated"].sum() == 5 * PER_RATER
    assert set(full[full["simulated"]]["rater"]) == {r.rater for r in result.raters}
    real = store.export(STUDY)
    assert len(real) == 7 and set(real["rater"]) == {"r01"} and not real["simulated"].any()
    status = store.status(STUDY)
    assert list(status.raters["rater"]) == ["r01"]
    assert status.methods["done"].sum() == 3  # r01's test-phase ratings only
    everyone = store.status(STUDY, include_simulated=True)
    assert list(everyone.raters["done"]) == [7] + [PER_RATER] * 5
    assert everyone.raters["finished_at"].notna().sum() == 5
    by_method = everyone.methods.set_index("method")
    assert by_method["total"].sum() == 6 * (N_TEST + N_RETEST)
    assert by_method.loc["nn", "mean_score"] < by_method.loc["bicubic", "mean_score"] + 1  # the model's levels
    engine = create_engine(url)
    with engine.connect() as conn:
        flags = conn.execute(text(
            "SELECT r.simulated, COUNT(*) FROM study_ratings g JOIN study_raters r ON r.id = g.rater_id "
            "WHERE g.simulated = r.simulated GROUP BY r.simulated"
        )).all()  # fmt: skip
    engine.dispose()
    assert sorted((bool(f), n) for f, n in flags) == [(False, 7), (True, 5 * PER_RATER)]


def test_status_numbers_and_gold_failures(store: StudyStore) -> None:
    (_, careless), (_, careful), _ = store.invite(STUDY, 3)
    kind = kinds(store)
    for token, wrong in ((careless, True), (careful, False)):
        store.give_consent(token)
        while (item := store.next_item(token)) is not None:
            k = kind[item.stimulus]
            right = 5 if k.endswith("_hr") else 1 if k.endswith("_nn") else 3
            score = {"gold_hr": 2, "gold_nn": 4, "calibration_nn": 2}.get(k, right) if wrong else right
            store.submit(token, item.stimulus, item.repetition, score, 1000)
    status = store.status(STUDY)
    raters = status.raters.set_index("rater")
    assert raters["done"].to_dict() == {"r01": PER_RATER, "r02": PER_RATER, "r03": 0}
    assert raters["total"].to_dict() == {"r01": PER_RATER, "r02": PER_RATER, "r03": PER_RATER}
    assert raters["gold_failures"].to_dict() == {"r01": 2, "r02": 0, "r03": 0}
    assert raters["calibration_misses"].to_dict() == {"r01": 2, "r02": 0, "r03": 0}
    failures = status.gold_failures
    assert sorted(zip(failures["kind"], failures["score"], failures["expected"], strict=True)) == [
        ("gold_hr", 2, 5), ("gold_nn", 4, 1)
    ]  # fmt: skip
    assert set(failures["rater"]) == {"r01"} and "2 or lower" in status.gold_rule
    methods = status.methods.set_index("method")
    assert methods["total"].sum() == 3 * (N_TEST + N_RETEST) and methods["done"].sum() == 2 * (N_TEST + N_RETEST)
    assert methods["mean_score"].tolist() == [3.0, 3.0]
    assert status.info.raters == 3


def test_export_format(store: StudyStore) -> None:
    ((_, token),) = store.invite(STUDY, 1)
    store.give_consent(token)
    rate(store, token, score=4)
    frame = store.export(STUDY)
    assert tuple(frame.columns) == EXPORT_COLUMNS == (
        "rater", "stimulus", "method", "dataset", "image", "repetition", "score", "response_ms", "created_at",
        "kind", "simulated",
    )  # fmt: skip
    assert len(frame) == PER_RATER and set(frame["score"]) == {4} and set(frame["response_ms"]) == {1500}
    assert frame["created_at"].is_monotonic_increasing and str(frame["created_at"].dt.tz) == "UTC"
    assert set(frame["kind"]) == {"test", "gold_hr", "gold_nn", "calibration_hr", "calibration_nn"}
    test = frame[frame["kind"] == "test"]
    assert set(test["method"]) == {"nn", "bicubic"} and set(test["image"]) == set(IMAGES)
    assert set(test["dataset"]) == {"set5"} and sorted(test["repetition"].value_counts()) == [2, 6]
    assert set(frame[frame["kind"] != "test"]["method"]) == {"hr", "nn"}
    assert set(store.export(STUDY, include_gold=False, include_calibration=False)["kind"]) == {"test"}
    assert len(store.export(STUDY, include_calibration=False)) == PER_RATER - N_CALIBRATION


#: Gold answers per rater (HR item, NN item): wrong, right, wrong at the rule's edge, right at its edge.
GOLD_ANSWERS = {"r01": (1, 5), "r02": (5, 1), "r03": (2, 4), "r04": (3, 3)}


def test_status_and_analysis_count_the_same_gold_failures(store: StudyStore) -> None:
    """The store's status and the analysis apply one gold rule (`vocabulary.failed_gold`): on the same ratings
    they find the same failed gold items per rater."""
    invitations = store.invite(STUDY, len(GOLD_ANSWERS))
    kind = kinds(store)
    for (rater, token), (hr, nn) in zip(invitations, GOLD_ANSWERS.values(), strict=True):
        assert rater in GOLD_ANSWERS
        store.give_consent(token)
        while (item := store.next_item(token)) is not None:
            score = {"gold_hr": hr, "gold_nn": nn}.get(kind[item.stimulus], 3)
            store.submit(token, item.stimulus, item.repetition, score, 1000)

    in_status = store.status(STUDY).raters.set_index("rater")["gold_failures"]
    in_analysis = gold_failures(validate_ratings(store.ratings(STUDY)))
    assert in_status.to_dict() == {"r01": 2, "r02": 0, "r03": 2, "r04": 0}
    assert in_analysis.to_dict() == {rater: float(n) for rater, n in in_status.items()}
    assert len(store.status(STUDY).gold_failures) == in_analysis.sum() == 4
