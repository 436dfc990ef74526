"""PSNR/SSIM and the Y channel against independent implementations (numpy, scikit-image) and known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from sreval.errors import ParameterError, SrevalError
from sreval.matlab.color import luma_pair, rgb_to_gray, rgb_to_y
from sreval.metrics import create_metric, metric_info, metric_names, parse_metrics, select_metrics
from sreval.metrics.functional import psnr, ssim
from sreval.protocol import Protocol


def _random_pair(seed: int, shape: tuple[int, ...] = (1, 3, 64, 48)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hr = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    noise = torch.randint(-20, 21, shape, generator=g)
    sr = (hr.int() + noise).clamp(0, 255).to(torch.uint8)
    return sr, hr


def _numpy_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / mse)


def _numpy_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr on uint8 (H, W, 3): Y rounded half away from zero."""
    x = rgb.astype(np.float64) / 255
    y = 16 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]
    return np.floor(y + 0.5)


@pytest.mark.parametrize("seed", range(5))
def test_psnr_ssim_agree_with_numpy_and_skimage(seed: int) -> None:
    sr, hr = _random_pair(seed)
    a, b = luma_pair(sr, hr)
    ours_psnr = psnr(a, b, shave=4).item()
    ours_ssim = ssim(a, b, shave=4).item()

    y_sr = _numpy_y(sr[0].permute(1, 2, 0).numpy())[4:-4, 4:-4]
    y_hr = _numpy_y(hr[0].permute(1, 2, 0).numpy())[4:-4, 4:-4]
    assert ours_psnr == pytest.approx(_numpy_psnr(y_sr, y_hr), abs=1e-6)
    reference = structural_similarity(
        y_sr, y_hr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255.0
    )
    assert ours_ssim == pytest.approx(reference, abs=1e-6)


def test_batched_equals_single() -> None:
    sr, hr = _random_pair(7, (4, 1, 40, 40))
    batch = ssim(sr, hr, shave=2)
    for i in range(4):
        assert batch[i].item() == pytest.approx(ssim(sr[i : i + 1], hr[i : i + 1], shave=2).item(), abs=1e-14)


def test_identical_images() -> None:
    _, hr = _random_pair(3)
    assert psnr(hr, hr).item() == math.inf
    assert ssim(hr, hr).item() == pytest.approx(1.0, abs=1e-12)


def test_shave_removes_the_border() -> None:
    hr = torch.full((1, 1, 32, 32), 100, dtype=torch.uint8)
    sr = hr.clone()
    sr[..., :4, :] = 0  # damage only the 4-px top border
    assert psnr(sr, hr, shave=4).item() == math.inf
    assert psnr(sr, hr, shave=3).item() < 40


def test_y_of_black_and_white_is_studio_range() -> None:
    img = torch.tensor([[[[0, 255]], [[0, 255]], [[0, 255]]]], dtype=torch.uint8)  # (1, 3, 1, 2)
    assert rgb_to_y(img).flatten().tolist() == [16.0, 235.0]
    assert rgb_to_y(img, "float").flatten().tolist() == pytest.approx([16.0, 235.0], abs=1e-9)


def test_matlab_y_is_rounded_float_y_is_not() -> None:
    sr, _ = _random_pair(4)
    y_matlab, y_float = rgb_to_y(sr, "matlab"), rgb_to_y(sr, "float")
    assert torch.equal(y_matlab, torch.floor(y_float + 0.5))
    assert not torch.equal(y_matlab, y_float)


def test_full_range_luma_shift_is_what_design_says() -> None:
    """A uniform error of e grey levels in RGB is (219/255)·e in studio Y: PSNR differs by 20·log10(255/219)."""
    hr = torch.full((1, 3, 16, 16), 100, dtype=torch.uint8)
    sr = hr + 10
    studio = psnr(rgb_to_y(sr, "float"), rgb_to_y(hr, "float")).item()
    full = psnr(rgb_to_gray(sr, "float"), rgb_to_gray(hr, "float")).item()
    assert studio - full == pytest.approx(20 * math.log10(255 / 219), abs=1e-9)


def test_gray_reference_is_scored_on_its_own_values() -> None:
    hr = torch.randint(0, 256, (1, 1, 20, 20), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    a, b = luma_pair(hr.clone(), hr)
    assert torch.equal(b, hr.double()) and torch.equal(a, hr.double())
    rgb = hr.expand(1, 3, 20, 20)  # an RGB output with equal channels compared with a gray reference
    a, b = luma_pair(rgb, hr)
    assert torch.equal(a, hr.double())


def test_rgb_with_equal_channels_stays_rgb() -> None:
    gray = torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(6))
    rgb = gray.expand(1, 3, 8, 8)
    a, _ = luma_pair(rgb, rgb)
    assert torch.equal(a, rgb_to_y(rgb))  # studio-range Y, not the raw values
    assert not torch.equal(a, gray.double())


def test_registry_metadata_and_errors() -> None:
    assert {"psnr", "ssim"} <= set(metric_names())
    metric = create_metric("PSNR")
    assert metric.info.higher_is_better and metric.info.needs_reference and metric.info.unit == "dB"
    assert create_metric("ssim", Protocol(y_mode="float")).cache_key != create_metric("ssim").cache_key
    with pytest.raises(SrevalError, match="unknown metric 'lpips'; available: psnr, "):
        parse_metrics(["psnr", "lpips"], Protocol())


def test_metric_info_says_how_a_metric_is_shown() -> None:
    """Tables, plots and the CLI take labels and decimal places from `MetricInfo`, known without a model file."""
    assert metric_info("psnr").label_with_unit == "PSNR (dB)" and metric_info("SSIM").label_with_unit == "SSIM"
    assert (metric_info("psnr").decimals, metric_info("psnr").table_decimals) == (3, 2)
    assert (metric_info("ssim").decimals, metric_info("ssim").table_decimals) == (4, 4)
    assert metric_info("pi").label == "PI" and metric_info("pi").better == "lower is better"
    assert all(metric_info(name).label for name in metric_names())
    with pytest.raises(ParameterError, match="unknown metric 'lpips'"):
        metric_info("lpips")


def test_metrics_are_named_by_a_sequence_of_names() -> None:
    assert [m.info.name for m in parse_metrics(["PSNR", " ssim", "psnr"], Protocol())] == ["psnr", "ssim"]
    with pytest.raises(ParameterError, match="sequence of metric names") as caught:
        parse_metrics("psnr,ssim", Protocol())
    assert caught.value.parameter == "names"
    with pytest.raises(ParameterError, match="names must name metrics"):
        select_metrics([], Protocol())
    with pytest.raises(ParameterError, match="names must name metrics"):
        select_metrics(["psnr", ""], Protocol())


def test_metric_class_applies_protocol() -> None:
    sr, hr = _random_pair(8)
    a, b = luma_pair(sr, hr)
    assert create_metric("psnr")(sr, hr).item() == psnr(a, b, shave=4).item()
    assert create_metric("psnr", Protocol(shave=0))(sr, hr).item() == psnr(a, b, shave=0).item()


def test_size_mismatch_and_tiny_images_are_clear_errors() -> None:
    sr, hr = _random_pair(9)
    with pytest.raises(SrevalError, match="image sizes differ"):
        psnr(sr[..., :-1], hr)
    with pytest.raises(SrevalError, match="too small to shave"):
        psnr(sr[..., :8, :8], hr[..., :8, :8], shave=4)
    with pytest.raises(SrevalError, match="smaller than the 11px SSIM window"):
        ssim(sr[..., :16, :16], hr[..., :16, :16], shave=4)


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    sr, hr = _random_pair(10, (2, 1, 64, 64))
    assert torch.allclose(ssim(sr.cuda(), hr.cuda()).cpu(), ssim(sr, hr), rtol=0, atol=1e-12)
    assert torch.allclose(psnr(sr.cuda(), hr.cuda()).cpu(), psnr(sr, hr), rtol=0, atol=1e-12)


def test_rmse_per_image_and_set_value_is_root_of_mean_mse() -> None:
    """PIRM's RMSE of a set is sqrt(mean per-image MSE), not the mean of per-image RMSEs."""
    import pandas as pd

    from sreval.benchmark.runner import summarise

    sr, hr = _random_pair(11, (2, 3, 40, 40))
    a, b = luma_pair(sr, hr)
    rmse = create_metric("rmse")(sr, hr)
    mse = ((a - b)[..., 4:-4, 4:-4] ** 2).flatten(1).mean(dim=1)
    torch.testing.assert_close(rmse, mse.sqrt(), rtol=0, atol=1e-12)
    assert not create_metric("rmse").info.higher_is_better

    per_image = pd.DataFrame({
        "method": ["m"] * 4, "dataset": ["d"] * 4, "image": ["x", "y", "x", "y"],
        "metric": ["rmse", "rmse", "psnr", "psnr"], "value": [3.0, 4.0, 30.0, 40.0],
    })
    summary = summarise(per_image, {"rmse": "rms", "psnr": "mean"}).set_index("metric")["mean"]
    assert summary["rmse"] == pytest.approx(math.sqrt((9 + 16) / 2))
    assert summary["psnr"] == pytest.approx(35.0)
