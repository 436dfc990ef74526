"""`sreval evaluate`: a folder of SR outputs scored against one dataset, with its damaged, missing and odd files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sreval.cli import main
from sreval.results import open_store
from tests.cli_helpers import isolate, results_db, run_module


@pytest.fixture
def env(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate(tmp_path, data_root, monkeypatch)


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


def test_evaluate_reads_a_folder_whose_name_is_not_utf8(env: Path, method_results: Path) -> None:
    """The folder is read (a path is bytes on Linux); the method name derived from it must be text, so its
    undecodable byte is written as an escape."""
    folder = os.fsencode(env) + b"/out\xff"
    shutil.copytree(method_results / "Set5" / "SRResNet-MSE", os.fsdecode(folder))
    result = run_module(
        [b"evaluate", b"--sr", folder, b"--dataset", b"set5", b"--out", os.fsencode(env / "o"), b"-q"], env
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    summary = pd.read_csv(env / "o" / "summary.csv")
    assert set(summary["method"]) == {"out\\xff"} and set(summary["n"]) == {5}
    store = open_store(results_db(env))
    try:
        (run,) = [store.get_run(int(i)) for i in store.list_runs()["id"]]
    finally:
        store.close()
    assert run.methods[0].name == "out\\xff"


def test_evaluate_refuses_a_name_that_is_not_utf8(env: Path, method_results: Path) -> None:
    folder = method_results / "Set5" / "SRResNet-MSE"
    result = run_module([b"evaluate", b"--sr", os.fsencode(folder), b"--dataset", b"set5", b"--name", b"mine\xff",
                         b"--out", os.fsencode(env / "o"), b"-q"], env)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "mine\\xff" in result.stderr and "UTF-8" in result.stderr
    assert not (env / "o" / "summary.csv").exists()


def test_evaluate_warns_once(env: Path, method_results: Path) -> None:
    folder = _copy_outputs(method_results, env / "sr")
    (folder / "woman_SRResNet-MSE.png").unlink()
    result = run_module(["evaluate", "--sr", str(folder), "--dataset", "set5", "--out", str(env / "o"), "-q"], env)
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
    assert len(a) == 5 * 4 and a["head", "psnr"] == b["head", "psnr"]  # psnr, ssim, rmse, niqe by default
