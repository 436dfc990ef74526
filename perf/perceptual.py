"""Per-image cost of NIQE and of the NRQM (Ma) feature extraction: sreval vs pyiqa, image by image, same inputs.

Both are fed the same PIRM plane (MATLAB Y of the uint8 image, 4 px shaved, float64). The script checks that the
values agree (NIQE to 1e-6, NRQM features to 1e-6 relative) and prints per-image times and the speed ratios, one
row per image with its size, then the totals. Targets on CPU: ≥ 10× pyiqa per image for NIQE, ≥ 20× for the NRQM
features. PI end to end (features, a full-size stand-in forest model and NIQE) is timed by perf/pi.py.

pyiqa is optional in sreval (non-commercial licence, heavy). Run this in an environment that has it, set up as
`.ci/run` does: `pip install torch==2.14.1 torchvision==0.29.1`, `pip install -e ".[pyiqa]"`, then
`pip install --no-deps pyiqa==0.1.16`:

    PYTHONPATH=. python perf/perceptual.py [--data-root ../shared/data] [--device cpu|cuda] [--threads N] [--images N]
        [--skip-nrqm]
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import numpy as np
import torch
from timing import best_of, torch_device

from sreval.imageio import load_image, to_tensor
from sreval.metrics.niqe import load_niqe_model, niqe
from sreval.metrics.nrqm import nrqm_features
from sreval.metrics.perceptual import pirm_plane
from sreval.metrics.pyiqa_metrics import import_pyiqa
from sreval.protocol import Protocol


def plane_of(path: Path, device: torch.device) -> torch.Tensor:
    """The plane sreval's `niqe`/`ma` metrics score (PIRM: MATLAB Y, 4 px shaved)."""
    return pirm_plane(to_tensor(load_image(path).pixels), Protocol()).to(device)


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    a, b = ours.reshape(-1).double().cpu(), reference.reshape(-1).double().cpu()
    return float(((a - b).abs() / (b.abs() + 1e-6)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads for both (0: torch's choice)")
    parser.add_argument("--images", type=int, default=3, help="Urban100 images to add to the 5 calibration images")
    parser.add_argument("--skip-nrqm", action="store_true", help="NIQE only (pyiqa's NRQM takes minutes)")
    args = parser.parse_args()
    device, sync = torch_device(args.device, args.threads)

    import_pyiqa()  # the install hint, rather than a bare ModuleNotFoundError
    from pyiqa.archs import niqe_arch, nrqm_arch
    from pyiqa.matlab_utils import im2col

    def pyiqa_nrqm_features(plane: torch.Tensor) -> list[torch.Tensor]:
        pyramid = nrqm_arch.get_gauss_pyramid(plane / 255.0)
        f1 = torch.cat([nrqm_arch.block_dct(im) for im in pyramid], dim=1)
        f2 = nrqm_arch.global_gsm(plane)
        svd = [torch.linalg.svd(im2col(im, 5, "distinct"), full_matrices=False)[1] for im in pyramid]
        return [f1, f2, torch.cat(svd, dim=1)]

    model = load_niqe_model(args.data_root / "iqa" / "niqe" / "modelparameters.mat")
    mu, cov = model.mu.to(device)[None], model.cov.to(device)[None]
    paths = sorted((args.data_root / "iqa" / "calibration_pyiqa" / "dist_dir").glob("*.bmp"))
    paths += sorted((args.data_root / "benchmarks" / "Urban100" / "HR").glob("*.png"))[: args.images]

    print(
        f"{'image':<22}{'size':>10}{'NIQE ours':>11}{'pyiqa':>9}{'ratio':>7}{'|dNIQE|':>9}"
        f"{'NRQM ours':>11}{'pyiqa':>9}{'ratio':>7}{'max rel dF':>11}"
    )
    totals = np.zeros(4)
    for path in paths:
        plane = plane_of(path, device)
        t_niqe, ours_niqe = best_of(partial(niqe, plane, model), 5, sync)
        t_niqe_ref, ref_niqe = best_of(partial(niqe_arch.niqe, plane, mu, cov), 5, sync)
        d_niqe = abs(float(ours_niqe[0]) - float(ref_niqe.reshape(-1)[0]))
        t_feat = t_feat_ref = d_feat = float("nan")
        if not args.skip_nrqm:
            t_feat, ours_feat = best_of(partial(nrqm_features, plane[0, 0]), 1, sync)
            t_feat_ref, ref_feat = best_of(partial(pyiqa_nrqm_features, plane), 1, sync)
            d_feat = max(relative_difference(a, b) for a, b in zip(ours_feat, ref_feat, strict=True))
        totals += [t_niqe, t_niqe_ref, t_feat, t_feat_ref]
        h, w = plane.shape[-2:]
        size = f"{w}x{h}"
        print(
            f"{path.name:<22}{size:>10}{t_niqe * 1e3:>9.1f}ms{t_niqe_ref * 1e3:>7.0f}ms"
            f"{t_niqe_ref / t_niqe:>6.1f}x{d_niqe:>9.1e}{t_feat:>10.2f}s{t_feat_ref:>8.2f}s"
            f"{t_feat_ref / t_feat:>6.1f}x{d_feat:>11.1e}"
        )
    print(
        f"{'all':<32}{totals[0] * 1e3:>9.1f}ms{totals[1] * 1e3:>7.0f}ms{totals[1] / totals[0]:>6.1f}x{'':>9}"
        f"{totals[2]:>10.2f}s{totals[3]:>8.2f}s{totals[3] / totals[2]:>6.1f}x"
    )
    print(f"device: {device}, torch {torch.__version__}, threads: {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
