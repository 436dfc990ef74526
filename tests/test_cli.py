"""`sreval run-benchmarks` / `evaluate` / `runs` end to end: real files, a real database, the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import sreval.methods.baselines as methods_module
from sreval.cli import main
from sreval.methods.base import MethodInput
from sreval.results import open_store


@pytest.fixture
def env(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolated cache and database for one test."""
    monkeypatch.setenv("SREVAL_DATA_ROOT", str(data_root))
    monkeypatch.setenv("SREVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SREVAL_DB", f"sqlite:///{tmp_path / 'results.sqlite'}")
    return tmp_path


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'results.sqlite'}"


def test_run_benchmarks_writes_csvs_store_and_reuses_cache(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = env / "out"
    args = ["run-benchmarks", "--methods", "bicubic,nn", "--datasets", "set5", "--out", str(out), "-q"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "SR images: 10 computed, 0 from cache" in first and "metric values: 20 computed" in first

    per_image = pd.read_csv(out / "per_image.csv")
    summary = pd.read_csv(out / "summary.csv")
    assert list(per_image.columns) == ["method", "dataset", "image", "metric", "value"]
    assert list(summary.columns) == ["method", "dataset", "metric", "mean", "n"]
    assert len(per_image) == 2 * 5 * 2
    bicubic = summary.set_index(["method", "metric"]).loc[("bicubic", "psnr")]
    assert bicubic["n"] == 5 and bicubic["mean"] == pytest.approx(28.42, abs=0.01)
    mean_of_images = per_image.query("method == 'bicubic' and metric == 'psnr'")["value"].mean()
    assert bicubic["mean"] == pytest.approx(mean_of_images, abs=1e-9)

    assert main(args) == 0
    second = capsys.readouterr().out
    assert "nothing new computed" in second
    assert "SR images: 0 computed, 10 from cache" in second and "metric values: 0 computed, 20 from cache" in second
    pd.testing.assert_frame_equal(pd.read_csv(out / "per_image.csv"), per_image)

    store = open_store(_db(env))
    try:
        runs = store.list_runs()
        assert list(runs["n_values"]) == [20, 20]
        run = store.get_run(int(runs["id"].iloc[-1]))
    finally:
        store.close()
    assert run.command == "run-benchmarks" and run.sreval_version
    assert run.protocol["scale"] == 4 and run.protocol["shave"] == 4 and run.protocol["degradation"] == "uint8"
    assert run.protocol["y_mode"] == "matlab" and run.protocol["protocol_version"]
    assert set(run.dataset_checksums) == {"set5"} and len(run.dataset_checksums["set5"]) == 64
    assert run.device.startswith("cpu") and run.timings["total"] > 0
    assert {m.name for m in run.methods} == {"bicubic", "nn"}


def test_protocol_change_recomputes_and_no_cache_recomputes(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["run-benchmarks", "--methods", "bicubic", "--datasets", "set5", "--out", str(env / "o"), "-q"]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--degradation", "double"]) == 0
    assert "SR images: 5 computed, 0 from cache" in capsys.readouterr().out
    assert main([*base, "--no-cache"]) == 0
    assert "SR images: 5 computed, 0 from cache" in capsys.readouterr().out


def test_interrupted_run_stores_nothing(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = {"n": 0}
    real = methods_module.Bicubic.super_resolve

    def interrupted(self: methods_module.Bicubic, item: MethodInput) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, item)

    monkeypatch.setattr(methods_module.Bicubic, "super_resolve", interrupted)
    out = env / "out"
    code = main(["run-benchmarks", "--methods", "bicubic", "--datasets", "set5", "--out", str(out), "-q"])
    assert code == 130
    assert "nothing was stored" in capsys.readouterr().err
    assert not (out / "per_image.csv").exists()
    store = open_store(_db(env))
    try:
        assert store.list_runs().empty
    finally:
        store.close()


def test_evaluate_published_outputs_with_suffixes(
    env: Path, method_results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SRGAN-VGG54 Set5: 29.40 dB in the SRGAN paper (±0.02), files named `baby_SRGAN-VGG54.png`."""
    out = env / "out"
    assert main(["evaluate", "--sr", str(method_results / "Set5" / "SRGAN-VGG54"), "--dataset", "set5",
                 "--out", str(out), "-q"]) == 0
    summary = pd.read_csv(out / "summary.csv").set_index("metric")
    assert summary.loc["psnr", "method"] == "SRGAN-VGG54"
    assert summary.loc["psnr", "mean"] == pytest.approx(29.40, abs=0.02) and summary.loc["psnr", "n"] == 5
    assert "5 read from folders" in capsys.readouterr().out


def _copy_outputs(method_results: Path, target: Path) -> Path:
    shutil.copytree(method_results / "Set5" / "SRResNet-MSE", target)
    return target


def test_evaluate_reports_missing_and_extra_files(
    env: Path, method_results: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _copy_outputs(method_results, env / "sr")
    (folder / "woman_SRResNet-MSE.png").unlink()
    shutil.copy(folder / "baby_SRResNet-MSE.png", folder / "holiday.png")
    out = env / "out"
    assert main(["evaluate", "--sr", str(folder), "--dataset", "set5", "--name", "mine", "--out", str(out), "-q"]) == 0
    assert "1 of 5 set5 images have no output" in caplog.text and "woman" in caplog.text
    assert "holiday.png" in caplog.text
    assert set(pd.read_csv(out / "summary.csv")["n"]) == {4}


def _evaluate_error(env: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["evaluate", "--sr", str(folder), "--dataset", "set5", "--out", str(env / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert not (env / "out" / "summary.csv").exists()
    return err


def test_evaluate_size_mismatch_names_both_sizes(
    env: Path, method_results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy_outputs(method_results, env / "sr")
    path = folder / "bird_SRResNet-MSE.png"
    Image.open(path).crop((0, 0, 287, 286)).save(path)
    err = _evaluate_error(env, folder, capsys)
    assert "bird_SRResNet-MSE.png is 287x286" in err and "is 288x288" in err and "mod-cropped" in err


@pytest.mark.parametrize("damage", ["truncated", "sixteen_bit", "transparent"])
def test_evaluate_rejects_bad_files_by_name(
    env: Path, method_results: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    folder = _copy_outputs(method_results, env / "sr")
    path = folder / "head_SRResNet-MSE.png"
    if damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "sixteen_bit":
        gray = np.asarray(Image.open(path).convert("L")).astype(np.uint16) * 257
        Image.fromarray(gray).save(path)  # a 16-bit grayscale PNG
    else:
        rgba = Image.open(path).convert("RGBA")
        rgba.putpixel((0, 0), (0, 0, 0, 0))
        rgba.save(path)
    err = _evaluate_error(env, folder, capsys)
    assert "head_SRResNet-MSE.png" in err


def test_evaluate_accepts_opaque_alpha_and_palette(env: Path, method_results: Path) -> None:
    """Handled, not rejected: an opaque alpha channel is dropped, a palette image is scored as its RGB decode."""
    folder = _copy_outputs(method_results, env / "sr")
    assert main(["evaluate", "--sr", str(folder), "--dataset", "set5", "--out", str(env / "a"), "-q"]) == 0
    Image.open(folder / "baby_SRResNet-MSE.png").convert("RGBA").save(folder / "baby_SRResNet-MSE.png")
    palette = Image.open(folder / "bird_SRResNet-MSE.png").quantize(256)
    palette.save(folder / "bird_SRResNet-MSE.png")
    assert main(["evaluate", "--sr", str(folder), "--dataset", "set5", "--out", str(env / "b"), "-q"]) == 0
    palette.convert("RGB").save(folder / "bird_SRResNet-MSE.png")
    assert main(["evaluate", "--sr", str(folder), "--dataset", "set5", "--out", str(env / "c"), "-q"]) == 0
    a, b, c = (pd.read_csv(env / x / "per_image.csv").set_index(["image", "metric"])["value"] for x in "abc")
    assert b["baby", "psnr"] == a["baby", "psnr"]  # alpha dropped, pixels unchanged
    assert b["bird", "psnr"] == c["bird", "psnr"] != a["bird", "psnr"]


def _cli(args: list[str | bytes], env: Path) -> subprocess.CompletedProcess[str]:
    """`python -m sreval ARGS` in its own process (real stderr, real logging set-up), with `env`'s cache and
    database; arguments may be bytes (file names that are not UTF-8)."""
    environ = {**os.environ, "SREVAL_CACHE": str(env / "cache"), "SREVAL_DB": _db(env)}
    return subprocess.run([sys.executable, "-m", "sreval", *args], capture_output=True, text=True,
                          errors="backslashreplace", env=environ, timeout=300, check=False)


def test_evaluate_reads_a_folder_whose_name_is_not_utf8(env: Path, method_results: Path) -> None:
    """The folder is read (a path is bytes on Linux); the method name derived from it must be text, so its
    undecodable byte is written as an escape."""
    folder = os.fsencode(env) + b"/out\xff"
    shutil.copytree(method_results / "Set5" / "SRResNet-MSE", os.fsdecode(folder))
    result = _cli([b"evaluate", b"--sr", folder, b"--dataset", b"set5", b"--out", os.fsencode(env / "o"), b"-q"], env)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    summary = pd.read_csv(env / "o" / "summary.csv")
    assert set(summary["method"]) == {"out\\xff"} and set(summary["n"]) == {5}
    store = open_store(_db(env))
    try:
        (run,) = [store.get_run(int(i)) for i in store.list_runs()["id"]]
    finally:
        store.close()
    assert run.methods[0].name == "out\\xff"


def test_evaluate_refuses_a_name_that_is_not_utf8(env: Path, method_results: Path) -> None:
    folder = method_results / "Set5" / "SRResNet-MSE"
    result = _cli([b"evaluate", b"--sr", os.fsencode(folder), b"--dataset", b"set5", b"--name", b"mine\xff",
                   b"--out", os.fsencode(env / "o"), b"-q"], env)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "mine\\xff" in result.stderr and "UTF-8" in result.stderr
    assert not (env / "o" / "summary.csv").exists()


def test_evaluate_warns_once(env: Path, method_results: Path) -> None:
    folder = _copy_outputs(method_results, env / "sr")
    (folder / "woman_SRResNet-MSE.png").unlink()
    result = _cli(["evaluate", "--sr", str(folder), "--dataset", "set5", "--out", str(env / "o"), "-q"], env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("have no output") == 1 and result.stderr.count("\n") == 1, result.stderr


def test_evaluate_names_entries_that_look_like_images_but_cannot_be_read(
    env: Path, method_results: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _copy_outputs(method_results, env / "sr")
    (folder / "baby_SRResNet-MSE.png").unlink()
    (folder / "baby.png").mkdir()
    (folder / "bird_SRResNet-MSE.png").unlink()
    os.symlink("bird_gone.png", folder / "bird_x4.png")  # dangling
    os.symlink("loop.png", folder / "loop.png")  # a loop
    assert main(["evaluate", "--sr", str(folder), "--dataset", "set5", "--out", str(env / "o"), "-q"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    unreadable = [w for w in warnings if "cannot be read" in w]
    assert len(unreadable) == 1, warnings
    assert "baby.png (a directory)" in unreadable[0]
    assert "bird_x4.png (a dangling symlink to bird_gone.png" in unreadable[0]
    assert "loop.png (a symlink loop)" in unreadable[0]
    assert set(pd.read_csv(env / "o" / "summary.csv")["n"]) == {3}


def test_evaluate_reads_gif_outputs(env: Path, method_results: Path) -> None:
    """GIF is a format the image loader reads (8-bit palette), so GIF outputs are matched and scored as their
    RGB decode, not skipped."""
    folder = _copy_outputs(method_results, env / "sr")
    png = folder / "head_SRResNet-MSE.png"
    gif = Image.open(png).convert("RGB").quantize(256)
    png.unlink()
    gif.save(folder / "head_SRResNet-MSE.gif")
    assert main(["evaluate", "--sr", str(folder), "--dataset", "set5", "--out", str(env / "a"), "-q"]) == 0
    (folder / "head_SRResNet-MSE.gif").unlink()
    gif.convert("RGB").save(png)
    assert main(["evaluate", "--sr", str(folder), "--dataset", "set5", "--out", str(env / "b"), "-q"]) == 0
    a, b = (pd.read_csv(env / x / "per_image.csv").set_index(["image", "metric"])["value"] for x in "ab")
    assert len(a) == 10 and a["head", "psnr"] == b["head", "psnr"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "bicubik"], "unknown method 'bicubik'; available: nn, bicubic"),
        (["--datasets", "set6"], "unknown dataset 'set6'; known: set5, set14, bsd100, urban100"),
        (["--metrics", "psnr,lpips"], "unknown metric 'lpips'"),
        (["--device", "cuda:7"], "no CUDA GPU is available"),
        (["--methods", "folder:/nonexistent/outputs"], "/nonexistent/outputs is not a folder"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    env: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    if "cuda" in args[-1]:
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
    code = main(["run-benchmarks", "--datasets", "set5", "--out", str(env / "o"), "-q", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_unreachable_database_fails_before_computing(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run-benchmarks", "--methods", "bicubic", "--datasets", "set5", "--out", str(env / "o"), "-q",
                 "--db", "postgresql+psycopg2://nobody:secret@127.0.0.1:1/none"])
    err = capsys.readouterr().err
    assert code == 2 and "127.0.0.1:1" in err and "secret" not in err
    assert not (env / "cache").exists()


@pytest.mark.postgres
def test_run_benchmarks_into_postgresql(env: Path, pg_database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run-benchmarks", "--methods", "nn", "--datasets", "set5", "--out", str(env / "o"), "-q",
                 "--db", pg_database_url]) == 0
    store = open_store(pg_database_url)
    try:
        values = store.run_values(int(store.list_runs()["id"].iloc[0]))
    finally:
        store.close()
    assert len(values) == 10 and set(values["method"]) == {"nn"}
    assert main(["runs", "--db", pg_database_url]) == 0
    assert "run-benchmarks" in capsys.readouterr().out


def test_console_script_and_module_entry_points() -> None:
    script = str(Path(sys.executable).parent / "sreval")
    for cmd in ([sys.executable, "-m", "sreval", "--version"], [script, "--version"]):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0 and result.stdout.startswith("sreval ")


def test_missing_data_root_fails_before_any_work(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run-benchmarks", "--datasets", "set5,urban100", "--out", str(env / "o"), "-q",
                 "--data-root", str(env / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2 and "105 benchmark file(s) missing" in err and "SREVAL_DATA_ROOT" in err
    assert not (env / "cache").exists()


def test_out_path_that_is_a_file_is_an_error_before_work(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = env / "taken"
    blocker.write_text("not a folder")
    code = main(["run-benchmarks", "--methods", "nn", "--datasets", "set5", "--out", str(blocker), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and str(blocker) in err and "Traceback" not in err
    assert not (env / "cache").exists()


# --- sreval zoo / sreval interpolate ----------------------------------------------------------------------


@pytest.fixture
def zoo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user zoo (SREVAL_ZOO) holding two tiny SRResNets `a` and `b`; the built-in entries stay visible."""
    import torch

    from sreval import zoo
    from sreval.archs import create_model

    monkeypatch.setenv("SREVAL_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for seed, name in enumerate("ab"):
        torch.manual_seed(seed)
        zoo.save_model(create_model("srresnet", num_blocks=1, num_feat=8), name, "srresnet",
                       {"num_blocks": 1, "num_feat": 8}, description=f"tiny {name}")
    return tmp_path / "zoo"


def _error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    return err


def test_zoo_list_shows_every_entry_with_its_status(zoo_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip() and ":" not in line}
    expected = {"srresnet-mse": "not-trained", "srgan-vgg54": "not-obtainable", "esrgan-psnr": "not-trained",
                "esrgan": "not-obtainable", "enhancenet-pat-official": "external", "a": "trained", "b": "trained"}
    assert {name: cols[3] for name, cols in lines.items()} == expected
    assert lines["srresnet-mse"][1:3] == ["srresnet", "1.55M"] and lines["esrgan"][1:3] == ["rrdbnet", "16.70M"]
    assert out.splitlines()[0].split() == ["name", "architecture", "params", "status", "recipe", "description"]
    assert f"searched: {zoo_env}" in out
    assert main(["zoo"]) == 0 and capsys.readouterr().out == out  # `sreval zoo` alone lists too


def test_zoo_show(zoo_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "show", "srgan-vgg54"]) == 0
    out = capsys.readouterr().out
    assert "status: not-obtainable" in out and "weights: none (not-obtainable): its loss needs VGG19" in out
    assert "# srgan-vgg54" in out and "Not measured — no weights" in out
    assert main(["zoo", "show", "a"]) == 0
    out = capsys.readouterr().out
    assert "sha256 ok" in out and "tensors: " in out and "# a" in out
    assert "unknown zoo model 'nope'; known: a, b, enhancenet-pat-official" in _error(["zoo", "show", "nope"], capsys)


def test_zoo_list_reports_an_invalid_entry_and_lists_the_rest(
    zoo_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = zoo_env / "b" / "config.yaml"
    config.write_text(config.read_text() + "colour: red\n")
    code = main(["zoo", "list"])
    captured = capsys.readouterr()
    assert code == 2 and "unknown key 'colour'" in captured.err and str(config) in captured.err
    assert "srresnet-mse" in captured.out and "\na " in captured.out


def test_interpolate_one_alpha_and_a_sweep(zoo_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sreval import zoo

    assert main(["interpolate", "a", "b", "--alpha", "0.8", "--name", "c"]) == 0
    assert f"wrote zoo model c (α = 0.8) to {zoo_env / 'c'}" in capsys.readouterr().out
    assert zoo.get_entry("c").interpolation == zoo.Interpolation("a", "b", 0.8)
    other = tmp_path / "elsewhere"
    assert main(["interpolate", "a", "b", "--sweep", "0,0.5,1", "--name-prefix", "s", "--zoo", str(other)]) == 0
    assert "wrote 3 zoo models" in capsys.readouterr().out
    assert sorted(p.name for p in other.iterdir()) == ["s-a0", "s-a0.5", "s-a1"]
    assert main(["zoo", "show", "s-a0.5", "--zoo", str(other)]) == 0
    assert "sha256 ok" in capsys.readouterr().out
    assert "'c' already exists" in _error(["interpolate", "a", "b", "--alpha", "0.3", "--name", "c"], capsys)
    assert main(["interpolate", "a", "b", "--alpha", "0.3", "--name", "c", "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a", "esrgan-psnr", "--alpha", "0.5", "--name", "c"], "architecture: srresnet vs rrdbnet"),
        (["esrgan-psnr", "esrgan", "--alpha", "0.8", "--name", "c"], "'esrgan-psnr' has no weights (not-trained)"),
        (["a", "b", "--alpha", "1.5", "--name", "c"], "alpha must be a number in [0, 1], got 1.5"),
        (["a", "b", "--alpha", "0.5"], "--alpha needs --name"),
        (["a", "b", "--sweep", "0,x", "--name-prefix", "p"], "--sweep expects comma-separated numbers"),
        (["a", "nope", "--alpha", "0.5", "--name", "c"], "unknown zoo model 'nope'"),
    ],
)
def test_interpolate_errors(zoo_env: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert message in _error(["interpolate", *args], capsys)
    assert not (zoo_env / "c").exists()
