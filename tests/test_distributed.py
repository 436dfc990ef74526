"""`torchrun ... -m sreval run-benchmarks`: the work sharded over processes (Gloo on the CPU here) gives the single
process's run, value for value; a failed or killed rank fails the whole run, with one error line per process and
nothing stored. The planning and formatting parts are tested directly, without processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from sreval import zoo
from sreval.archs import create_model
from sreval.benchmark.distributed import Ranks, describe_ranks, item_cost, plan_shards, ranks_from_env
from sreval.benchmark.runner import plan_work
from sreval.cli import main
from sreval.cli.benchmark import format_timings
from sreval.datasets.registry import get_dataset, parse_datasets
from sreval.errors import ParameterError, SrevalError
from sreval.methods.specs import parse_methods
from sreval.results import open_store

TINY = {"num_blocks": 1, "num_feat": 8}
#: Bounds every torchrun of these tests: a run that hangs fails the test instead of blocking the suite.
RUN_TIMEOUT_S = 240


def save_tiny(name: str = "tiny-sr") -> None:
    torch.manual_seed(0)
    model = create_model("srresnet", **TINY)
    zoo.save_model(model, name, "srresnet", TINY, scale=4, recipe="test", description="tiny random test model")


def torchrun(args: list[str], logs: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Two CPU ranks on this machine (a free port, each rank's output in its own file under `logs`)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "--log-dir", str(logs), "--redirects", "3", "-m", "sreval", *args, "--dist-timeout", "60"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def rank_output(logs: Path, rank: int, stream: str) -> str:
    (path,) = logs.glob(f"*/attempt_0/{rank}/{stream}.log")
    return path.read_text()


def runs_in(db: Path) -> pd.DataFrame:
    with open_store(f"sqlite:///{db}") as store:
        return store.list_runs()


# --- Without processes ------------------------------------------------------------------------------------


def test_without_torchrun_nothing_is_sharded() -> None:
    assert ranks_from_env({}) is None
    assert ranks_from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert ranks_from_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"}) == Ranks(2, 4, 0)
    with pytest.raises(SrevalError, match="RANK and LOCAL_RANK are missing"):
        ranks_from_env({"WORLD_SIZE": "2"})
    with pytest.raises(SrevalError, match="do not fit WORLD_SIZE=2"):
        ranks_from_env({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"})


def test_shares_cover_the_work_once_balanced_by_cost_and_in_work_order(env: Path) -> None:
    methods = parse_methods(["bicubic", "nn"])
    work = plan_work(methods, parse_datasets(["set5", "set14"]))
    for world_size in (1, 2, 3, 7):
        shares = plan_shards(work, world_size)
        assert len(shares) == world_size
        assert sorted(item.index for share in shares for item in share) == list(range(len(work)))
        assert all([i.index for i in share] == sorted(i.index for i in share) for share in shares)
        loads = [sum(item_cost(i) for i in share) for share in shares]
        # greedy, costliest first: no share exceeds another by more than the costliest item
        assert max(loads) - min(loads) <= max(item_cost(i) for i in work)
        assert plan_shards(work, world_size) == shares  # every rank plans the same
    # Set5 over two ranks: baby (512 × 512) costs as much as the four others together, so it is alone
    set5 = plan_shards(plan_work(methods, [get_dataset("set5")]), 2)
    assert [[i.entry.name for i in share] for share in set5] == [["baby"], ["bird", "butterfly", "head", "woman"]]
    with pytest.raises(ParameterError, match="over 0 processes"):
        plan_shards(work, 0)


def test_the_run_says_how_many_processes() -> None:
    assert describe_ranks(["cpu (1 threads)"] * 2) == "2 processes × cpu (1 threads)"
    assert describe_ranks(["cuda:0 (H200)", "cuda:1 (H200)"]) == "2 processes: cuda:0 (H200), cuda:1 (H200)"


def test_phase_times_are_printed_in_the_runs_order_with_their_share() -> None:
    lines = format_timings({"decode": 1.0, "sr": 6.0, "metrics": 2.5, "total": 10.0}, 0.25)
    assert [line.split()[0] for line in lines] == ["decode", "sr", "metrics", "total", "store"]
    assert lines[1].split()[1:] == ["6.000", "s", "60.0", "%"]
    assert lines[4].split()[1:] == ["0.250", "s", "2.5", "%"]


def test_verbose_prints_every_phase_of_the_run(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run-benchmarks", "--methods", "bicubic", "--datasets", "set5", "--metrics", "psnr", "-q"]
    assert main([*args, "--out", str(env / "a")]) == 0
    assert "phases" not in capsys.readouterr().out
    for verbose in (["run-benchmarks", "--verbose"], ["-v", "run-benchmarks"]):
        assert main([*verbose, *args[1:], "--out", str(env / "b")]) == 0
        out = capsys.readouterr().out
        phases = out[out.index("phases (seconds, share of the total):") :].splitlines()[1:]
        stored = runs_in(env / "results.sqlite")
        with open_store(f"sqlite:///{env / 'results.sqlite'}") as store:
            timings = store.get_run(int(stored["id"].iloc[-1])).timings
        assert [line.split()[0] for line in phases] == [*timings, "store"]
        assert phases[list(timings).index("total")].split()[-2] == "100.0"


# --- Under torchrun ---------------------------------------------------------------------------------------


def test_two_ranks_give_the_single_process_run(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_tiny()
    args = ["run-benchmarks", "--methods", "bicubic,tiny-sr", "--datasets", "set5", "--metrics", "psnr,ssim",
            "--tile", "48", "--batch", "2", "-q"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "single")]) == 0
    capsys.readouterr()
    # a database and cache of its own: everything is computed again, by the ranks
    sharded_db = tmp_path / "sharded.sqlite"
    child_env = {**os.environ, "SREVAL_DB": f"sqlite:///{sharded_db}", "SREVAL_CACHE": str(tmp_path / "cache2")}
    run = torchrun([*args, "--out", str(tmp_path / "sharded")], tmp_path / "logs", env=child_env)
    _, err = run.communicate(timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, err
    out = rank_output(tmp_path / "logs", 0, "stdout")
    assert "SR images: 10 computed" in out and "on 2 processes × cpu" in out
    assert rank_output(tmp_path / "logs", 1, "stdout") == ""  # rank 0 alone reports
    for name in ("per_image.csv", "summary.csv"):
        assert (tmp_path / "sharded" / name).read_bytes() == (tmp_path / "single" / name).read_bytes()
    runs = runs_in(sharded_db)
    assert len(runs) == 1 and runs["device"].iloc[0].startswith("2 processes × cpu")
    with open_store(f"sqlite:///{env / 'results.sqlite'}") as single, open_store(f"sqlite:///{sharded_db}") as sharded:
        one, two = single.get_run(1), sharded.get_run(int(runs["id"].iloc[0]))
    assert two.values == one.values and two.images == one.images and two.methods == one.methods
    assert list(two.timings) == list(one.timings)


def test_a_rank_that_fails_fails_the_run_and_nothing_is_stored(env: Path, data_root: Path, tmp_path: Path) -> None:
    # A folder of outputs in which bird's file is damaged: rank 1 has bird (rank 0 has baby alone, see above).
    outputs = tmp_path / "outputs" / "Set5"
    outputs.mkdir(parents=True)
    for hr in (data_root / "Set5" / "HR").iterdir():
        data = hr.read_bytes()
        (outputs / hr.name).write_bytes(data[:200] if hr.name.startswith("img_002") else data)
    run = torchrun(["run-benchmarks", "--methods", f"bicubic,folder:{tmp_path / 'outputs'}", "--datasets", "set5",
                    "--metrics", "psnr", "--out", str(tmp_path / "out"), "-q"], tmp_path / "logs")  # fmt: skip
    run.communicate(timeout=RUN_TIMEOUT_S)
    assert run.returncode != 0
    failed, stopped = (rank_output(tmp_path / "logs", rank, "stderr") for rank in (1, 0))
    assert failed.startswith("error: cannot load image") and "img_002" in failed and failed.count("\n") == 1
    assert stopped.startswith("error: rank 1 of 2 failed") and "img_002" in stopped and stopped.count("\n") == 1
    assert "Traceback" not in failed + stopped
    assert runs_in(env / "results.sqlite").empty and not (tmp_path / "out" / "summary.csv").exists()


def _pid_of_rank(marker: str, rank: int) -> int | None:
    for proc in Path("/proc").iterdir():
        try:
            environ = set((proc / "environ").read_bytes().split(b"\0"))
        except (OSError, ValueError):
            continue
        if {f"SREVAL_TEST_MARK={marker}".encode(), f"RANK={rank}".encode()} <= environ:
            return int(proc.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process through /proc")
def test_a_killed_rank_stops_the_run_and_nothing_is_stored(env: Path, tmp_path: Path) -> None:
    save_tiny()
    marker = f"{os.getpid()}-{time.monotonic_ns()}"
    run = torchrun(["run-benchmarks", "--methods", "tiny-sr", "--datasets", "set5,set14", "--metrics", "psnr",
                    "--tile", "32", "--out", str(tmp_path / "out"), "-q"], tmp_path / "logs",
                   env={**os.environ, "SREVAL_TEST_MARK": marker})  # fmt: skip
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not list((env / "cache").rglob("*.png")):  # the ranks are computing their shares
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    pid = _pid_of_rank(marker, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    run.communicate(timeout=120)
    assert run.returncode != 0
    survivor = rank_output(tmp_path / "logs", 0, "stderr")
    assert survivor.startswith("error: rank 0 ") and "nothing was stored" in survivor and survivor.count("\n") == 1
    assert runs_in(env / "results.sqlite").empty and not (tmp_path / "out" / "summary.csv").exists()


def test_a_stop_by_torchrun_after_another_rank_failed_is_reported_as_that_failure() -> None:
    """torchrun stops the surviving ranks as soon as the failed one exits, often before they have looked at the
    store: the stop must still name the failed rank and its error, not only say that this rank was stopped."""
    from torch.distributed import HashStore

    from sreval.benchmark.distributed import Group, RunStopped, Terminated

    def group_of_rank_0(store: HashStore) -> Group:
        group = object.__new__(Group)  # the store alone: no process group is needed to report a failure
        group.ranks, group._store = Ranks(rank=0, world_size=2, local_rank=0), store
        return group

    quiet = HashStore()
    quiet.add("failures", 0)
    with pytest.raises(Terminated, match="was stopped"), group_of_rank_0(quiet):
        raise Terminated("rank 0 was stopped (SIGTERM)")

    failed = HashStore()
    rank_1 = object.__new__(Group)
    rank_1.ranks, rank_1._store = Ranks(rank=1, world_size=2, local_rank=1), failed
    rank_1.fail("cannot load image img_002")
    reported = r"^rank 1 of 2 failed, so the run stops: cannot load image img_002$"
    with pytest.raises(RunStopped, match=reported), group_of_rank_0(failed):
        raise Terminated("rank 0 was stopped (SIGTERM)")
    with pytest.raises(ValueError, match="its own"), group_of_rank_0(failed):
        raise ValueError("an error of its own is not replaced")
