"""PI of one 512×512 image end to end, sreval vs pyiqa, with a STAND-IN NRQM model of the real model's size.

No Ma model file is on these machines, so this script grows one (perf/nrqm_standin.py: 3 forests × 2,000 trees,
randomForest's layout, plus the linear layer), writes it as a MATLAB .mat, and points both sreval
(`load_nrqm_model`) and pyiqa (`NRQM(pretrained_model_path=...)`, no download) at it. The Ma and PI numbers it
prints are therefore NOT real Ma/PI scores; they only show that both programs compute the same thing. Before any
time is compared it checks that both give the same stand-in Ma score (to 1e-9 absolute).

Input: a 512×512 crop of an Urban100 HR image (sreval: uint8 RGB, pyiqa: RGB in 0..1); both take it from there
(PIRM plane: rounded Y, 4 px shaved; NIQE; NRQM features; forests; PI = ½((10 − Ma) + NIQE)). The forest
evaluation (6,000 trees) is also timed on its own. Run in the pyiqa environment (see perf/perceptual.py):

    PYTHONPATH=. python perf/pi.py [--data-root ../shared/data] [--image img_001_SRF_4_HR.png] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nrqm_standin import depth_of, grow_forest, save_standin
from timing import best_of, torch_device

from sreval.imageio import load_image, to_tensor
from sreval.metrics.niqe import load_niqe_model, niqe
from sreval.metrics.nrqm import load_nrqm_model, nrqm_features, nrqm_score
from sreval.metrics.perceptual import pirm_plane
from sreval.metrics.pyiqa_metrics import import_pyiqa
from sreval.protocol import Protocol

MA_TOLERANCE = 1e-9


def crop_512(path: Path) -> torch.Tensor:
    rgb = to_tensor(load_image(path).pixels)
    h, w = rgb.shape[-2:]
    if min(h, w) < 512:
        raise SystemExit(f"{path} is smaller than 512×512")
    top, left = (h - 512) // 2, (w - 512) // 2
    return rgb[..., top : top + 512, left : left + 512].contiguous()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--image", default="img_001_SRF_4_HR.png", help="an Urban100 HR image (a centred 512×512 crop)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads for both (0: torch's choice)")
    args = parser.parse_args()

    torch_device("cpu", args.threads)
    import_pyiqa()
    from pyiqa.archs import niqe_arch, nrqm_arch

    rgb = crop_512(args.data_root / "benchmarks" / "Urban100" / "HR" / args.image)  # uint8, as sreval reads it
    # pyiqa's input: RGB in 0..1, float64 (it returns Ma in the input's dtype; float32 would hide 1e-7).
    rgb_ref = rgb.double() / 255
    niqe_file = args.data_root / "iqa" / "niqe" / "modelparameters.mat"
    plane = pirm_plane(rgb, Protocol())
    features = nrqm_features(plane[0, 0])

    # Split points drawn around this image's own feature values, so that walks take mixed left/right paths.
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    forests = []
    for f in features:
        centre = f.numpy()
        forests.append(grow_forest(rng, centre, 0.25 * np.abs(centre) + 1e-3))
    linear = np.array([1.0, 0.4, 0.3, 0.3])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "NRQM_model.mat"
        save_standin(path, forests, linear)
        nodes = ", ".join(
            f"{f['lDau'].shape[1]} trees ≤{f['lDau'].shape[0]} nodes depth ≤{depth_of(f)}" for f in forests
        )
        print(
            f"stand-in model (NOT Ma's): {nodes}; {path.stat().st_size / 2**20:.0f} MiB .mat, "
            f"grown and written in {time.perf_counter() - start:.0f} s"
        )
        ours_model = load_nrqm_model(path)
        niqe_model = load_niqe_model(niqe_file)
        ref_nrqm = nrqm_arch.NRQM(crop_border=4, color_space="ycbcr", pretrained_model_path=str(path))
        ref_niqe = niqe_arch.NIQE(crop_border=4, color_space="ycbcr", pretrained_model_path=str(niqe_file))
    # pyiqa's PI module with its two parts built from local files (its own constructor would download).
    ref_pi = nrqm_arch.PI.__new__(nrqm_arch.PI)
    torch.nn.Module.__init__(ref_pi)
    ref_pi.nrqm, ref_pi.niqe = ref_nrqm, ref_niqe

    def ours_pi(image: torch.Tensor) -> tuple[float, float, float]:
        p = pirm_plane(image, Protocol())
        ma = float(nrqm_score(nrqm_features(p[0, 0]), ours_model))
        n = float(niqe(p, niqe_model)[0])
        return 0.5 * ((10 - ma) + n), ma, n

    # Same stand-in Ma score first: the forests on the same features, then the whole metric.
    ours_ma = float(nrqm_score(features, ours_model))
    t_forest_ref, ref_ma = best_of(partial(pyiqa_forests, nrqm_arch, features, ref_nrqm), 1, lambda: None)
    t_forest, _ = best_of(partial(nrqm_score, features, ours_model), 5, lambda: None)
    print(
        f"forests only (6,000 trees): sreval {t_forest * 1e3:.1f} ms, pyiqa {t_forest_ref:.2f} s, "
        f"{t_forest_ref / t_forest:.0f}x; stand-in Ma on the same features: {ours_ma:.12f} vs {ref_ma:.12f}"
    )
    if abs(ours_ma - ref_ma) > MA_TOLERANCE:
        raise SystemExit(f"stand-in Ma differs by {abs(ours_ma - ref_ma):.2e} > {MA_TOLERANCE:g}: not timing")

    with torch.no_grad():
        t_ref, ref_out = best_of(partial(ref_pi, rgb_ref), 1, lambda: None)
        ref_ma_full = float(ref_nrqm(rgb_ref))
    t_ours, (pi, ma, n) = best_of(partial(ours_pi, rgb), 3, lambda: None)
    ref_pi_value = float(ref_out)
    if abs(ma - ref_ma_full) > MA_TOLERANCE:
        raise SystemExit(f"stand-in Ma of the image differs by {abs(ma - ref_ma_full):.2e} > {MA_TOLERANCE:g}")
    print(
        f"stand-in Ma {ma:.9f} (pyiqa {ref_ma_full:.9f}), NIQE {n:.6f}, stand-in PI {pi:.6f} "
        f"(pyiqa {ref_pi_value:.6f}, |dPI| {abs(pi - ref_pi_value):.1e})"
    )
    print(
        f"PI of a 512x512 image, stand-in model: sreval {t_ours:.2f} s, pyiqa {t_ref:.1f} s, "
        f"{t_ref / t_ours:.1f}x  (device: cpu, torch {torch.__version__}, threads: {torch.get_num_threads()})"
    )


def pyiqa_forests(nrqm_arch: Any, features: tuple[torch.Tensor, ...], module: Any) -> float:
    """pyiqa's regression step alone (its three forests and the linear layer) on the given features."""
    preds = torch.ones(1, 1, dtype=torch.float64)
    for feat, rf in zip(features, module.rf_params_list, strict=True):
        preds = torch.cat((preds, nrqm_arch.random_forest_regression(feat[None], *rf)), dim=1)
    return float(preds @ torch.tensor(module.linear_param))


if __name__ == "__main__":
    main()
