"""Per-image cost of NIQE and of the NRQM (Ma) feature extraction: sreval vs pyiqa, image by image, same inputs.

Both are fed the same PIRM plane (MATLAB Y of the uint8 image, 4 px shaved, float64). The script prints per-image
times and the speed ratios, one row per image with its size, then the totals, and beside them how far the values
are apart: the NRQM features agree to about 1e-8 relative; NIQE differs on images with flat blocks (by 0.4-0.6 on I19),
where sreval follows MATLAB's rule and pyiqa does not (tests/test_niqe.py pins both). Targets on CPU: ≥ 10× pyiqa
per image for NIQE, ≥ 20× for the NRQM features. PI end to end (features, a full-size stand-in forest model and
NIQE) is timed by perf/pi.py.

pyiqa is optional in sreval (non-commercial licence, heavy). Run this in an environment that has it, set up as
`.ci/run` does: `pip install torch==2.14.1 torchvision==0.29.1`, `pip install -e ".[pyiqa]"`, then
`pip install --no-deps pyiqa==0.1.16`:

    PYTHONPATH=. python perf/perceptual.py [--data-root ../shared/data] [--device cpu|cuda] [--threads N] [--images N]
        [--skip-nrqm] [--json PATH]

The images: the calibration images in <data-root>/iqa/calibration_pyiqa/dist_dir (`*.bmp`, or the same staged
as lossless `*.png`; sorted by name), then the first --images of <data-root>/benchmarks/Urban100/HR, or as many
as there are. --json PATH also writes the figures to PATH as JSON (perf/timing.py's JsonFigures), rewritten after
every image: one row per image with the printed columns (NRQM's null with --skip-nrqm) and the totals of "all".
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import numpy as np
import torch
from timing import JsonFigures, best_of, torch_device

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


def calibration_images(folder: Path) -> list[Path]:
    """The calibration images in `folder`, BMP or PNG, sorted by name; an image there in both is taken once (BMP)."""
    by_stem = {p.stem: p for p in folder.glob("*.png")} | {p.stem: p for p in folder.glob("*.bmp")}
    return sorted(by_stem.values(), key=lambda p: p.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads for both (0: torch's choice)")
    parser.add_argument("--images", type=int, default=3, help="Urban100 images to add (as many as exist, if fewer)")
    parser.add_argument("--skip-nrqm", action="store_true", help="NIQE only (pyiqa's NRQM takes minutes)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON (after every image)")
    args = parser.parse_args()
    device, sync = torch_device(args.device, args.threads)

    calibration_dir = args.data_root / "iqa" / "calibration_pyiqa" / "dist_dir"
    urban_dir = args.data_root / "benchmarks" / "Urban100" / "HR"
    calibration = calibration_images(calibration_dir)
    urban = sorted(urban_dir.glob("*.png"))[: max(args.images, 0)]
    if not calibration and not urban:
        raise SystemExit(
            f"error: no calibration image (*.bmp, *.png in {calibration_dir}) and no Urban100 image in {urban_dir}"
        )
    paths = calibration + urban
    fewer = f" (only {len(urban)} of the {args.images} asked for exist)" if len(urban) < args.images else ""
    print(f"images: {len(calibration)} calibration ({calibration_dir}), {len(urban)} Urban100 ({urban_dir}){fewer}")

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
    figures = JsonFigures(
        args.json,
        "perceptual",
        device,
        {
            "data_root": str(args.data_root),
            "images_asked": args.images,
            "calibration_images": len(calibration),
            "urban100_images": len(urban),
            "skip_nrqm": args.skip_nrqm,
            "niqe_repeats": 5,
            "nrqm_repeats": 1,
        },
    )
    figures.write()

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
        figures.add_row(
            {
                "image": path.name,
                "width": int(w),
                "height": int(h),
                "niqe_sreval_s": t_niqe,
                "niqe_pyiqa_s": t_niqe_ref,
                "niqe_ratio": t_niqe_ref / t_niqe,
                "niqe_abs_diff": d_niqe,
                "nrqm_sreval_s": t_feat,  # NaN (null in the file) with --skip-nrqm
                "nrqm_pyiqa_s": t_feat_ref,
                "nrqm_ratio": t_feat_ref / t_feat,
                "nrqm_max_rel_diff": d_feat,
            }
        )
    print(
        f"{'all':<32}{totals[0] * 1e3:>9.1f}ms{totals[1] * 1e3:>7.0f}ms{totals[1] / totals[0]:>6.1f}x{'':>9}"
        f"{totals[2]:>10.2f}s{totals[3]:>8.2f}s{totals[3] / totals[2]:>6.1f}x"
    )
    print(f"device: {device}, torch {torch.__version__}, threads: {torch.get_num_threads()}")
    figures.finish(
        {
            "images": len(paths),
            "niqe_sreval_s": totals[0],
            "niqe_pyiqa_s": totals[1],
            "niqe_ratio": totals[1] / totals[0],
            "nrqm_sreval_s": totals[2],
            "nrqm_pyiqa_s": totals[3],
            "nrqm_ratio": totals[3] / totals[2],
        }
    )


if __name__ == "__main__":
    main()
