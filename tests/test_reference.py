"""Reference checks against published numbers (explicit tolerances, stated per test).

(a) SelfExSR's per-image Bicubic PSNR/SSIM tables: MATLAB bicubic ×4 up of SelfExSR's own LR files, Y, shave 4.
(b) The bicubic row of the SR literature (EDSR/RCAN-style tables) from HR through our own LR.
(c) The SRGAN authors' released SRResNet/SRGAN outputs give the SRGAN paper's Table 2 PSNR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from sreval.benchmark.cache import Cache
from sreval.benchmark.runner import run_benchmarks
from sreval.datasets.registry import get_dataset
from sreval.imageio import load_image, to_tensor
from sreval.matlab.imresize import imresize
from sreval.methods.specs import create_method
from sreval.metrics import parse_metrics
from sreval.protocol import Protocol
from sreval.provenance import resolve_device

SELFEXSR_SETS = {"set5": "Set5", "set14": "Set14", "bsd100": "BSD100", "urban100": "Urban100"}


@pytest.mark.parametrize("dataset", list(SELFEXSR_SETS))
def test_bicubic_up_reproduces_selfexsr_tables(data_root: Path, method_results: Path, dataset: str) -> None:
    """Tolerance from the issue: 1e-3 dB and 1e-4 SSIM per image (we measure ≲ 5e-5 dB, 2e-6)."""
    spec = get_dataset(dataset)
    table = scipy.io.loadmat(method_results / "selfexsr_quant_eval" / f"result_{spec.folder}_SRF_4.mat")
    expected_psnr, expected_ssim = table["PSNR_table"][:, 0], table["SSIM_table"][:, 0]
    assert len(expected_psnr) == len(spec.images)
    metrics = parse_metrics(["psnr", "ssim"], Protocol())
    for i, entry in enumerate(spec.images):  # the tables follow the img_001.. order, as the manifest does
        hr = to_tensor(load_image(data_root / entry.path).pixels)
        lr_path = data_root / spec.folder / "LR_x4_selfexsr" / Path(entry.path).name.replace("_HR", "_LR")
        sr = imresize(to_tensor(load_image(lr_path).pixels), 4.0)
        psnr, ssim = (float(m(sr, hr)[0]) for m in metrics)
        assert psnr == pytest.approx(expected_psnr[i], abs=1e-3), entry.name
        assert ssim == pytest.approx(expected_ssim[i], abs=1e-4), entry.name


def _run(methods: str, datasets: list[str], data_root: Path, tmp_path: Path) -> dict[tuple[str, str, str], float]:
    result = run_benchmarks(
        [create_method(m) for m in methods.split(",")],
        [get_dataset(d) for d in datasets],
        parse_metrics(["psnr", "ssim"], Protocol()),
        protocol=Protocol(),
        data_root=data_root,
        cache=Cache(tmp_path / "cache", enabled=False),
        device=resolve_device("cpu"),
        progress=False,
    )
    rows = result.summary[["method", "dataset", "metric", "mean"]].itertuples(index=False, name=None)
    return {(method, dataset, metric): float(mean) for method, dataset, metric, mean in rows}


def test_published_bicubic_rows(data_root: Path, tmp_path: Path) -> None:
    """Set5 28.42 dB / 0.8104 and BSD100 25.96 / 0.6675 (EDSR/RCAN tables), ±0.01 dB and ±0.002."""
    means = _run("bicubic", ["set5", "bsd100"], data_root, tmp_path)
    assert means["bicubic", "set5", "psnr"] == pytest.approx(28.42, abs=0.01)
    assert means["bicubic", "set5", "ssim"] == pytest.approx(0.8104, abs=0.002)
    assert means["bicubic", "bsd100", "psnr"] == pytest.approx(25.96, abs=0.01)
    assert means["bicubic", "bsd100", "ssim"] == pytest.approx(0.6675, abs=0.002)


@pytest.mark.parametrize(
    ("method", "dataset", "paper_psnr"),
    [
        ("SRResNet-MSE", "set5", 32.05),
        ("SRGAN-VGG54", "set5", 29.40),
        # Set14 holds the grayscale `bridge`: an RGB output is compared with its gray reference on gray values
        # (sreval's rule). Scoring it on studio-range Y instead gives 28.43 / 25.99 here, off by > 0.02 dB.
        ("SRResNet-MSE", "set14", 28.49),
        ("SRGAN-VGG54", "set14", 26.02),
    ],
)
def test_srgan_authors_outputs_give_paper_psnr(
    data_root: Path, method_results: Path, tmp_path: Path, method: str, dataset: str, paper_psnr: float
) -> None:
    """SRGAN paper, Table 2; tolerance ±0.02 dB on both sets."""
    spec = f"folder:{method_results}/{{dataset}}/{method}"
    means = _run(spec, [dataset], data_root, tmp_path)
    assert means[method, dataset, "psnr"] == pytest.approx(paper_psnr, abs=0.02)


def test_float_y_is_slightly_above_matlab_y(data_root: Path, tmp_path: Path) -> None:
    """The unrounded Y (y_mode "float") scores 0.002–0.013 dB above MATLAB's uint8 Y on bicubic outputs."""
    spec = get_dataset("set5")
    deltas = []
    for entry in spec.images:
        hr = to_tensor(load_image(data_root / entry.path).pixels)
        sr = imresize(imresize(hr, 0.25), 4.0)
        matlab, floaty = (float(parse_metrics(["psnr"], Protocol(y_mode=m))[0](sr, hr)[0]) for m in ("matlab", "float"))
        deltas.append(floaty - matlab)
    assert 0.0 < np.mean(deltas) < 0.02
