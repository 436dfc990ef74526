"""The results store on SQLite and PostgreSQL: round trips, de-duplication, atomicity, the latest values of
runs. (Migrations: test_db_migrations.py; opening and URLs: test_db_engine.py.)"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from db_helpers import count_rows, query_scalar
from sqlalchemy import Connection, create_engine, event, inspect

from sreval.db.tables import Base
from sreval.errors import SrevalError
from sreval.results import (
    ImageRecord,
    MethodRecord,
    RunRecord,
    Store,
    ValueRecord,
    open_store,
)
from sreval.results import store as api

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend (the SQLite file sits in a folder that does not exist yet)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/not/yet/results.sqlite"
    return str(request.getfixturevalue("pg_database_url"))


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with open_store(url) as opened:
        yield opened


def make_run(
    methods: list[MethodRecord] | None = None,
    images: list[ImageRecord] | None = None,
    metrics: tuple[str, ...] = ("psnr", "ssim"),
    command: str = "evaluate",
) -> RunRecord:
    """A run with a value for every method x image x metric (values distinct, so order mistakes show)."""
    methods = methods if methods is not None else [MethodRecord("bicubic", "id-bicubic", {"scale": 4})]
    images = images if images is not None else [ImageRecord("Set5", f"img{i}.png", f"{i:064x}") for i in range(3)]
    values = [
        ValueRecord(m.name, im.dataset, im.image, metric, float(len(m.name) + i + 0.25 * j))
        for m in methods
        for i, im in enumerate(images)
        for j, metric in enumerate(metrics)
    ]
    return RunRecord(
        command=command,
        started_at=T0,
        finished_at=T0 + timedelta(minutes=3),
        sreval_version="0.1.0",
        git_commit="0123456789abcdef0123456789abcdef01234567",
        protocol={"scale": 4, "shave": 4, "y_only": True, "resize": "matlab-bicubic"},
        device="cpu",
        timings={"sr": 1.5, "metrics": 0.25},
        dataset_checksums={"Set5": "f" * 64},
        methods=methods,
        images=images,
        values=values,
    )


def row_counts(url: str) -> dict[str, int]:
    """Rows per data table (everything but schema_version)."""
    return count_rows(url, [t for t in Base.metadata.tables if t != "schema_version"])


def schema_version(url: str) -> int:
    return int(query_scalar(url, "SELECT version FROM schema_version"))


def column_names(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


# --- saving and reading -----------------------------------------------------------------------------------


def test_round_trip(store: Store) -> None:
    run = make_run(
        methods=[
            MethodRecord("bicubic", "id-bicubic", {"scale": 4}),
            MethodRecord("edsr", "id-edsr", {"weights": "edsr_x4.pt", "blocks": [16, 32], "nested": {"a": None}}),
        ]
    )
    run.values.append(ValueRecord("edsr", "Set5", "img0.png", "psnr_identical", math.inf))
    run.started_at = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))

    back = store.get_run(store.save_run(run))

    assert back == run
    assert back.started_at.tzinfo == UTC and back.finished_at.tzinfo == UTC
    assert back.started_at == T0.replace(microsecond=0)


def test_empty_run_round_trips(store: Store) -> None:
    run = make_run(methods=[], images=[])
    assert store.get_run(store.save_run(run)) == run


def test_methods_and_images_are_shared_between_runs(store: Store, url: str) -> None:
    first = make_run()
    images = list(first.images)
    images[2] = ImageRecord("Set5", "img2.png", "e" * 64)  # same file name, new content: a new image row
    second = make_run(methods=[*first.methods, MethodRecord("edsr", "id-edsr", {})], images=images)

    ids = [store.save_run(first), store.save_run(second)]

    counts = row_counts(url)
    assert counts["methods"] == 2 and counts["images"] == 4 and counts["runs"] == 2
    assert counts["metric_values"] == len(first.values) + len(second.values)
    assert [store.get_run(i) for i in ids] == [first, second]


def test_one_identity_must_mean_one_method(store: Store, url: str) -> None:
    store.save_run(make_run())
    renamed = make_run(methods=[MethodRecord("bicubic-v2", "id-bicubic", {"scale": 4})])

    with pytest.raises(SrevalError, match="id-bicubic"):
        store.save_run(renamed)
    assert row_counts(url)["runs"] == 1


def test_list_runs(store: Store) -> None:
    assert store.list_runs().empty
    assert list(store.list_runs().columns) == [
        "id", "command", "started_at", "finished_at", "sreval_version", "git_commit", "device", "n_values"
    ]  # fmt: skip

    first = store.save_run(make_run(command="run-benchmarks"))
    second = store.save_run(make_run(methods=[], images=[]))
    runs = store.list_runs()

    assert runs["id"].tolist() == [first, second]
    assert runs["command"].tolist() == ["run-benchmarks", "evaluate"]
    assert runs["n_values"].tolist() == [6, 0]
    assert runs["started_at"].tolist() == [pd.Timestamp(T0)] * 2
    assert runs["git_commit"].iloc[0] == "0123456789abcdef0123456789abcdef01234567"


def test_run_values(store: Store) -> None:
    run = make_run(metrics=("psnr",))
    run_id = store.save_run(run)
    store.save_run(make_run(images=[ImageRecord("Set14", "baboon.png", "b" * 64)]))

    expected = pd.DataFrame(
        {
            "method": ["bicubic"] * 3,
            "dataset": ["Set5"] * 3,
            "image": ["img0.png", "img1.png", "img2.png"],
            "metric": ["psnr"] * 3,
            "value": [7.0, 8.0, 9.0],
        }
    )
    pd.testing.assert_frame_equal(store.run_values(run_id), expected, check_dtype=False)
    assert store.run_values(run_id)["value"].dtype == np.float64


def test_unknown_run_id(store: Store) -> None:
    with pytest.raises(SrevalError, match="no run with id 42"):
        store.run_values(42)
    with pytest.raises(SrevalError, match="no run with id 42"):
        store.get_run(42)


def test_thousands_of_values_are_saved_in_bulk(store: Store) -> None:
    """5000 values must go in a few executemany batches, not one round trip each (which made saving a run take
    seconds on PostgreSQL). Counted in statements rather than timed, so a busy machine cannot fail it."""
    methods = [MethodRecord(f"m{i}", f"id-m{i}", {}) for i in range(10)]
    images = [ImageRecord("Urban100", f"img{i:03d}.png", f"{i:064x}") for i in range(100)]
    run = make_run(methods=methods, images=images, metrics=("psnr", "ssim", "lpips", "niqe", "ms-ssim"))
    assert len(run.values) == 5000

    value_inserts: list[str] = []

    def count(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO metric_values"):
            value_inserts.append(statement)

    event.listen(store._engine, "before_cursor_execute", count)
    try:
        run_id = store.save_run(run)
    finally:
        event.remove(store._engine, "before_cursor_execute", count)

    assert len(store.run_values(run_id)) == 5000
    assert 1 <= len(value_inserts) <= 10, f"{len(value_inserts)} INSERT statements for 5000 values"


# --- nothing half-written ---------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failure_while_inserting_values_stores_nothing(store: Store, url: str, failure: BaseException) -> None:
    statements: list[str] = []

    def fail_on_values(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)
        if statement.startswith("INSERT INTO metric_values"):
            raise failure

    event.listen(store._engine, "before_cursor_execute", fail_on_values)
    with pytest.raises(type(failure)):
        store.save_run(make_run())
    event.remove(store._engine, "before_cursor_execute", fail_on_values)

    assert any(s.startswith("INSERT INTO runs") for s in statements), "the failure must come after the run row"
    assert set(row_counts(url).values()) == {0}
    assert store.list_runs().empty
    assert store.save_run(make_run()) >= 1  # the store is still usable


def test_value_violating_a_constraint_stores_nothing(
    store: Store, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run()
    run.values.append(run.values[0])  # a duplicate (run, method, image, metric) row for the database to reject
    monkeypatch.setattr(api, "_check_run", lambda run: None)

    with pytest.raises(SrevalError, match="nothing was stored"):
        store.save_run(run)
    assert set(row_counts(url).values()) == {0}


@pytest.mark.parametrize("nan", [math.nan, np.float32("nan")])
def test_nan_is_rejected(store: Store, url: str, nan: float) -> None:
    run = make_run()
    run.values[4] = ValueRecord("bicubic", "Set5", "img2.png", "psnr", nan)

    where = "method 'bicubic', dataset 'Set5', image 'img2.png', metric 'psnr'"
    with pytest.raises(SrevalError, match=f"{where} is NaN"):
        store.save_run(run)
    assert set(row_counts(url).values()) == {0}


NOT_A_NUMBER: Any = "1.0"


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda r: r.values.append(ValueRecord("nope", "Set5", "img0.png", "psnr", 1.0)), "run's methods"),
        (lambda r: r.values.append(ValueRecord("bicubic", "Set5", "x.png", "psnr", 1.0)), "run's images"),
        (lambda r: r.values.append(r.values[0]), "twice"),
        (lambda r: r.images.append(r.images[0]), "twice"),
        (lambda r: r.values.append(ValueRecord("bicubic", "Set5", "img0.png", "x", NOT_A_NUMBER)), "not a number"),
        (lambda r: setattr(r, "started_at", datetime(2024, 1, 1)), "no time zone"),
        (lambda r: r.timings.update(sr=math.nan), "timings cannot be stored as JSON"),
    ],
)
def test_invalid_run_is_rejected_before_writing(store: Store, url: str, spoil: Any, message: str) -> None:
    run = make_run()
    spoil(run)
    with pytest.raises(SrevalError, match=message):
        store.save_run(run)
    assert set(row_counts(url).values()) == {0}


def test_latest_values_of_runs(store: Store) -> None:
    """The values of the given runs (every run when none is given), one per method, dataset, image and metric:
    the latest run's where runs overlap."""
    values, runs = store.latest_values()
    assert values.empty and runs == []
    first = make_run()
    second = make_run(metrics=("psnr",))
    second.values = [dataclasses.replace(v, value=v.value + 100) for v in second.values]
    first_id, second_id = store.save_run(first), store.save_run(second)

    values, runs = store.latest_values()
    assert runs == [first_id, second_id]
    assert list(values.columns) == ["method", "dataset", "image", "metric", "value"]
    by_key = values.set_index(["image", "metric"])["value"]
    assert len(values) == len(first.values)
    assert by_key["img0.png", "psnr"] == second.values[0].value  # the later run wins
    assert by_key["img0.png", "ssim"] == first.values[1].value  # only the first run has it

    values, runs = store.latest_values([first_id])
    assert runs == [first_id]
    assert sorted(values["value"]) == sorted(v.value for v in first.values)
