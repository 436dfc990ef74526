"""`--metrics pyiqa:NAME`: pyiqa's metrics scored on sreval's protocol, through sreval's metric cache.

sreval scores what pyiqa would score if it were given the same files with the protocol's border shaved: the
values below are compared with pyiqa called directly. pyiqa's NIQE reads a parameter file it downloads on first
use; here it is the LIVE `modelparameters.mat` from the shared data, put in an isolated pyiqa cache folder, and any
download attempt fails the test. Without pyiqa the tests that need it skip, except under SREVAL_REQUIRE_TOOLS=1
(CI), where they fail.
"""

from __future__ import annotations

import builtins
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from sreval.benchmark.cache import Cache
from sreval.benchmark.evaluate import make_lr, score
from sreval.errors import ParameterError, SrevalError
from sreval.imageio import load_image, to_tensor
from sreval.metrics import metric_info, parse_metrics
from sreval.protocol import Protocol

# pyiqa's NIQE on the 5 calibration images (no shave), from its published calibration table (pyiqa 0.1.x).
PYIQA_PUBLISHED_NIQE = {"I03": 15.6538, "I04": 3.6549, "I06": 3.2342, "I08": 3.1922, "I19": 9.0722}
# sreval hands pyiqa the same float32 tensor pyiqa makes of the file itself, so the values agree to rounding only.
TOLERANCE = 1e-6


@pytest.fixture
def pyiqa() -> ModuleType:
    try:
        import pyiqa
    except ImportError:
        if os.environ.get("SREVAL_REQUIRE_TOOLS") == "1":
            pytest.fail("SREVAL_REQUIRE_TOOLS=1 but pyiqa is not installed (see the pyiqa extra in pyproject.toml)")
        pytest.skip("pyiqa is not installed")
    module: ModuleType = pyiqa
    return module


@pytest.fixture
def iqa_root(data_root: Path) -> Path:
    path = data_root.parent / "iqa"
    if not (path / "niqe" / "modelparameters.mat").is_file() or not (path / "calibration_pyiqa").is_dir():
        if os.environ.get("SREVAL_REQUIRE_DATA") == "1":
            pytest.fail(f"{path} is required (SREVAL_REQUIRE_DATA=1) but not available")
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture
def pyiqa_cache(pyiqa: ModuleType, iqa_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pyiqa's model folder under tmp_path holding the LIVE NIQE parameters; any download fails the test."""
    from pyiqa.utils import download_util

    folder = tmp_path / "pyiqa-models"
    folder.mkdir()
    # pyiqa's NIQE asks for `niqe_modelparameters.mat`: the LIVE release's file (mu_prisparam, cov_prisparam),
    # which test_published_niqe_values_come_from_this_parameter_file confirms.
    shutil.copyfile(iqa_root / "niqe" / "modelparameters.mat", folder / "niqe_modelparameters.mat")
    monkeypatch.setattr(download_util, "DEFAULT_CACHE_DIR", str(folder))

    def no_download(url: str, *args: Any, **kwargs: Any) -> None:
        pytest.fail(f"pyiqa tried to download {url}")

    monkeypatch.setattr(download_util, "download_url_to_file", no_download)
    return folder


def calibration_images(iqa_root: Path, names: tuple[str, ...] = ("I04", "I08")) -> list[Path]:
    return [iqa_root / "calibration_pyiqa" / "dist_dir" / f"{name}.bmp" for name in names]


def shaved_file(pyiqa: ModuleType, path: Path, border: int) -> torch.Tensor:
    """The file as pyiqa reads it ((1, 3, H, W) in [0, 1]), border shaved by hand."""
    from pyiqa.utils.img_util import imread2tensor

    image: torch.Tensor = imread2tensor(str(path), rgb=True).unsqueeze(0)
    return image[..., border:-border, border:-border] if border else image


class MemoryStore:
    """The results store's metric cache, in memory: what `Cache` reads and writes."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, float]] = {}

    def cached_metrics(self, pair_key: str) -> dict[str, float]:
        return dict(self.values.get(pair_key, {}))

    def cache_metrics(self, entries: Mapping[str, Mapping[str, float]]) -> None:
        for pair_key, values in entries.items():
            self.values.setdefault(pair_key, {}).update(values)


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache", metric_store=MemoryStore())


def score_file(sr: np.ndarray, hr_path: Path, names: list[str], cache: Cache, protocol: Protocol) -> dict[str, float]:
    hr = load_image(hr_path)
    metrics = parse_metrics(names, protocol)
    return score(sr, hr.sha256, to_tensor(hr.pixels), metrics, cache).values


def test_published_niqe_values_come_from_this_parameter_file(
    pyiqa: ModuleType, pyiqa_cache: Path, iqa_root: Path
) -> None:
    """The LIVE parameter file in pyiqa's folder reproduces pyiqa's published NIQE, so it is the file pyiqa uses."""
    niqe = pyiqa.create_metric("niqe", device=torch.device("cpu"))
    for path in calibration_images(iqa_root, ("I04", "I06", "I19")):
        value = float(niqe(shaved_file(pyiqa, path, 0)))
        assert value == pytest.approx(PYIQA_PUBLISHED_NIQE[path.stem], abs=2e-3), path.name


def test_no_reference_metric_is_pyiqa_on_the_shaved_output(
    pyiqa: ModuleType, pyiqa_cache: Path, iqa_root: Path, cache: Cache
) -> None:
    protocol = Protocol()
    niqe = pyiqa.create_metric("niqe", device=torch.device("cpu"))
    for path in calibration_images(iqa_root):
        sr = load_image(path).pixels
        # The reference is some other image: a no-reference metric must not look at it.
        other = iqa_root / "calibration_pyiqa" / "ref_dir" / "I03.bmp"
        ours = score_file(sr, other, ["pyiqa:niqe"], cache, protocol)["pyiqa:niqe"]
        direct = float(niqe(shaved_file(pyiqa, path, protocol.border)))
        assert ours == pytest.approx(direct, abs=TOLERANCE), path.name
        unshaved = float(niqe(shaved_file(pyiqa, path, 0)))
        assert abs(ours - unshaved) > 1e-3, "the border must be shaved"


def test_full_reference_metrics_are_pyiqa_on_the_shaved_pair(
    pyiqa: ModuleType, data_root: Path, cache: Cache, tmp_path: Path
) -> None:
    protocol = Protocol()
    hr_path = data_root / "Set5" / "HR" / "img_005_SRF_4_HR.png"  # butterfly
    hr = load_image(hr_path)
    sr = make_lr(to_tensor(hr.pixels), protocol)  # any output of the HR's size will do: upscale the LR by NN
    sr_pixels = np.ascontiguousarray(sr.repeat_interleave(4, -1).repeat_interleave(4, -2)[0].permute(1, 2, 0).numpy())
    sr_path = tmp_path / "sr.png"
    from PIL import Image

    Image.fromarray(sr_pixels).save(sr_path)
    ours = score_file(sr_pixels, hr_path, ["pyiqa:psnr", "pyiqa:ssim"], cache, protocol)
    for name in ("psnr", "ssim"):
        metric = pyiqa.create_metric(name, device=torch.device("cpu"))
        b = protocol.border
        direct = float(metric(shaved_file(pyiqa, sr_path, b), shaved_file(pyiqa, hr_path, b)))
        assert ours[f"pyiqa:{name}"] == pytest.approx(direct, abs=TOLERANCE), name
    assert 15 < ours["pyiqa:psnr"] < 35


def test_metadata_comes_from_pyiqa(pyiqa: ModuleType) -> None:
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    for name, higher, reference in [("lpips", False, True), ("musiq", True, False), ("niqe", False, False)]:
        assert DEFAULT_CONFIGS[name].get("lower_better", False) is not higher  # the premise: pyiqa's own flag
        info = metric_info(f"pyiqa:{name}")
        assert (info.name, info.higher_is_better, info.needs_reference) == (f"pyiqa:{name}", higher, reference)
        assert "non-commercial" in info.description
        assert "downloads" in info.description


def test_a_second_run_reads_the_cache_and_a_new_pyiqa_version_does_not(
    pyiqa: ModuleType, pyiqa_cache: Path, iqa_root: Path, cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyiqa.models.inference_model import InferenceModel

    path = calibration_images(iqa_root)[0]
    image = load_image(path)
    protocol = Protocol()
    [metric] = parse_metrics(["pyiqa:niqe"], protocol)
    assert pyiqa.__version__ in metric.cache_key and "niqe" in metric.cache_key
    first = score(image.pixels, image.sha256, to_tensor(image.pixels), [metric], cache)
    assert (first.computed, first.cached) == (1, 0)

    def must_not_run(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise AssertionError("pyiqa ran although the value is cached")

    with monkeypatch.context() as patch:
        patch.setattr(InferenceModel, "forward", must_not_run)
        [again] = parse_metrics(["pyiqa:niqe"], protocol)
        second = score(image.pixels, image.sha256, to_tensor(image.pixels), [again], cache)
    assert (second.computed, second.cached) == (0, 1)
    assert second.values == first.values

    monkeypatch.setattr(pyiqa, "__version__", "99.0")
    [upgraded] = parse_metrics(["pyiqa:niqe"], protocol)
    third = score(image.pixels, image.sha256, to_tensor(image.pixels), [upgraded], cache)
    assert (third.computed, third.cached) == (1, 0)


def test_an_unknown_name_lists_pyiqas_metrics(pyiqa: ModuleType) -> None:
    with pytest.raises(ParameterError) as error:
        parse_metrics(["pyiqa:no_such_metric"], Protocol())
    assert "no_such_metric" in str(error.value)
    for name in ("lpips", "dists", "musiq", "niqe"):
        assert name in str(error.value)


def test_set_level_metrics_are_refused(pyiqa: ModuleType) -> None:
    with pytest.raises(ParameterError, match="fid"):
        metric_info("pyiqa:fid")


@pytest.fixture
def without_pyiqa(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_import = builtins.__import__

    def refuse(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pyiqa" or name.startswith("pyiqa."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    yield


@pytest.mark.usefixtures("without_pyiqa")
def test_without_pyiqa_one_error_says_how_to_install_it() -> None:
    for attempt in (lambda: metric_info("pyiqa:niqe"), lambda: parse_metrics(["psnr", "pyiqa:lpips"], Protocol())):
        with pytest.raises(SrevalError) as error:
            attempt()
        message = str(error.value)
        assert "pyiqa is not installed" in message
        assert "sreval[pyiqa]" in message and "--no-deps" in message


@pytest.mark.usefixtures("without_pyiqa")
def test_native_metrics_do_not_need_pyiqa() -> None:
    assert [m.info.name for m in parse_metrics(["psnr", "ssim"], Protocol())] == ["psnr", "ssim"]
