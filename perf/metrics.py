"""PSNR + SSIM speed: sreval (torch, float64) vs a straightforward float64 numpy/scipy port of the MATLAB code.

Both score the same bicubic ×4 outputs of all four sets against their HR images with the published protocol
(MATLAB uint8 Y, gray images on their own values, shave 4, SSIM 11×11 Gaussian σ = 1.5, valid filtering).
The script first checks that the two agree (|ΔPSNR| ≤ 1e-6 dB, |ΔSSIM| ≤ 1e-9), then prints the time of each and
the speed ratio, per set and overall. Target: ≥ 5× on CPU.

    python perf/metrics.py [--data-root DIR] [--device cpu|cuda] [--repeat 3] [--threads N]
                           [--sets set5,set14,bsd100,urban100] [--json PATH]

Image decoding and the bicubic outputs are prepared once, outside the timed part.

With --two-methods it times instead what the benchmark spends on PSNR + SSIM + RMSE of one HR image: two outputs
(bicubic and nn) scored against it, as `score_all` does with the HR's `reference_planes`, against the previous
formulation of the same numbers (copied below), alternating, best of --repeat per image. It checks that the values
are the same bits and prints the time of each per set, also per method and for SSIM alone. Target: ≥ 1.5×.

    python perf/metrics.py --two-methods --threads 1 [--sets set14,bsd100,urban100] [--repeat 3] [--json PATH]

--sets takes registry keys, comma-separated (default: all four sets, and set14,bsd100,urban100 with
--two-methods). --json PATH also writes the figures to PATH as JSON (perf/timing.py's JsonFigures), rewritten
after every set: one row per set, with the fields of the printed columns, and the totals of the "all" line;
`complete` becomes true only when the script ends normally (not when the values disagree).
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from collections.abc import Callable

import numpy as np
import scipy.signal
import torch
from timing import JsonFigures, best_of, torch_device

from sreval import settings
from sreval.benchmark.evaluate import make_lr
from sreval.datasets.registry import load_hr, registry
from sreval.imageio import from_tensor, to_tensor
from sreval.matlab.imresize import imresize
from sreval.metrics import create_metric, functional, parse_metrics, score_all
from sreval.protocol import Protocol

Pair = tuple[np.ndarray, np.ndarray]  # (SR, HR), uint8 (H, W, C)


def reference_y(img: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr of a uint8 image, Y only, rounded; a 1-channel image is used as it is."""
    if img.shape[2] == 1:
        return np.asarray(img[..., 0], dtype=np.float64)
    x = img.astype(np.float64)
    y = 16 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255
    return np.asarray(np.floor(y + 0.5))


def reference_scores(sr: np.ndarray, hr: np.ndarray, shave: int = 4) -> tuple[float, float]:
    """PSNR and SSIM as MATLAB's ssim_index.m computes them, with scipy's 2-D correlate for filter2."""
    a = reference_y(sr)[shave:-shave, shave:-shave]
    b = reference_y(hr)[shave:-shave, shave:-shave]
    psnr = 10 * math.log10(255.0**2 / np.mean((a - b) ** 2))
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()

    def filt(x: np.ndarray) -> np.ndarray:
        return np.asarray(scipy.signal.correlate2d(x, window, mode="valid"))

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return psnr, float(ssim_map.mean())


def parse_sets(text: str) -> list[str]:
    """Registry keys from a comma-separated list (any case, blanks skipped), in the order given, each once."""
    known = list(registry())
    keys = list(dict.fromkeys(s.strip().lower() for s in text.split(",") if s.strip()))
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown set(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if not keys:
        raise argparse.ArgumentTypeError(f"no set named; known: {', '.join(known)}")
    return keys


def prepare(data_root: str | None, sets: list[str]) -> dict[str, list[Pair]]:
    root = settings.data_root(data_root)
    pairs: dict[str, list[Pair]] = {}
    datasets = registry()
    for key in sets:
        pairs[key] = []
        for entry in datasets[key].images:
            hr = load_hr(entry, root).pixels
            sr = from_tensor(imresize(make_lr(to_tensor(hr), Protocol()), 4.0))  # the bicubic method's output
            pairs[key].append((sr, hr))
    return pairs


Scores = list[tuple[float, float]]


# --- The formulation before in-place luma, one MSE for PSNR and RMSE, and the reference's SSIM maps kept ------


def previous_y(img: torch.Tensor) -> torch.Tensor:
    """rgb_to_y as it was: a float64 copy of the image, a new tensor per operation, MATLAB rounding."""
    if img.shape[1] == 1:
        return img.to(torch.float64)
    x = img.to(torch.float64)
    y = 16 + (65.481 * x[:, 0:1] + 128.553 * x[:, 1:2] + 24.966 * x[:, 2:3]) / 255
    floor = torch.floor(y)
    return torch.where(y - floor >= 0.5, floor + 1, floor).clamp_(0, 255)


def previous_mse(a: torch.Tensor, b: torch.Tensor, shave: int) -> torch.Tensor:
    a, b = a[..., shave:-shave, shave:-shave], b[..., shave:-shave, shave:-shave]
    return (a - b).square().flatten(1).mean(dim=1)


def previous_ssim(a: torch.Tensor, b: torch.Tensor, shave: int) -> torch.Tensor:
    """SSIM as it was: the five maps of each band stacked and filtered for every output."""
    x, y = a[..., shave:-shave, shave:-shave], b[..., shave:-shave, shave:-shave]
    taps = functional.gaussian_window_1d().tolist()
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    out_rows = x.shape[-2] - 10
    total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    band = 64 if x.device.type == "cpu" else out_rows
    for top in range(0, out_rows, band):
        rows = min(band, out_rows - top)
        p, q = x[..., top : top + rows + 10, :], y[..., top : top + rows + 10, :]
        stacked = torch.stack([p, q, p * p, q * q, p * q])
        filtered = stacked[..., 0:rows, :] * taps[0]
        for k in range(1, 11):
            filtered.add_(stacked[..., k : k + rows, :], alpha=taps[k])
        w = x.shape[-1] - 10
        mu_a, mu_b, aa, bb, ab = out = filtered[..., :, 0:w] * taps[0]
        for k in range(1, 11):
            out.add_(filtered[..., :, k : k + w], alpha=taps[k])
        mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
        num = (2 * mu_ab + c1) * (2 * (ab - mu_ab) + c2)
        den = (mu_aa + mu_bb + c1) * ((aa - mu_aa) + (bb - mu_bb) + c2)
        total += (num / den).flatten(1).sum(dim=1)
    return total / (x.shape[1] * out_rows * (x.shape[-1] - 10))


Split = dict[tuple[int, str], float]  # seconds by (output index, metric name)
Values = list[dict[str, torch.Tensor]]


def previous_two_methods(outputs: list[torch.Tensor], hr: torch.Tensor, shave: int) -> tuple[Split, Values]:
    """PSNR, SSIM, RMSE of each output as score_all made them before: the HR's Y once (`reference_planes`), each
    output's Y, the MSE for PSNR and again for RMSE, the full SSIM. Planes count for PSNR, as in `timings`."""
    split: Split = {}
    values: Values = []
    hr_plane: torch.Tensor | None = None
    for k, sr in enumerate(outputs):
        tick = time.perf_counter()
        hr_plane = previous_y(hr) if hr_plane is None else hr_plane
        sr_plane = previous_y(sr)
        psnr = 10 * torch.log10(255.0**2 / previous_mse(sr_plane, hr_plane, shave))
        split[k, "psnr"] = time.perf_counter() - tick
        tick = time.perf_counter()
        ssim = previous_ssim(sr_plane, hr_plane, shave)
        split[k, "ssim"] = time.perf_counter() - tick
        tick = time.perf_counter()
        rmse = previous_mse(sr_plane, hr_plane, shave).sqrt()
        split[k, "rmse"] = time.perf_counter() - tick
        values.append({"psnr": psnr, "ssim": ssim, "rmse": rmse})
    return split, values


#: The rows --two-methods prints per set, and the prefix of their fields in the JSON figures.
TWO_METHODS_ROWS: dict[str, tuple[str, Callable[[tuple[int, str]], bool]]] = {
    "two methods, 3 metrics": ("two_methods", lambda k: True),
    "first method": ("first_method", lambda k: k[0] == 0),
    "second method": ("second_method", lambda k: k[0] == 1),
    "SSIM, first method": ("ssim_first_method", lambda k: k == (0, "ssim")),
    "SSIM, second method": ("ssim_second_method", lambda k: k == (1, "ssim")),
}


def two_methods(data_root: str | None, sets: list[str], repeat: int, figures: JsonFigures) -> None:
    """Previous vs current PSNR + SSIM + RMSE of bicubic and nn outputs against each HR image (see the top)."""
    root = settings.data_root(data_root)
    protocol = Protocol()
    metrics = parse_metrics(["psnr", "ssim", "rmse"], protocol)

    def current(outputs: list[torch.Tensor], hr: torch.Tensor) -> tuple[Split, Values]:
        planes: dict[object, torch.Tensor] = {}  # what the benchmark keeps for one HR image
        split: Split = {}
        values: Values = []
        for k, sr in enumerate(outputs):
            timings: dict[str, float] = {}
            values.append(score_all(metrics, sr, hr, timings=timings, reference_planes=planes))
            split.update({(k, name): seconds for name, seconds in timings.items()})
        return split, values

    header = f"{'set':<9}{'images':>7}{'what':>24}{'before s':>10}{'after s':>10}{'ratio':>8}"
    print(f"{header}\n{'-' * len(header)}")
    for key in sets:
        images = registry()[key].images
        best: dict[str, Split] = {"before": {}, "after": {}}
        for entry in images:
            hr = to_tensor(load_hr(entry, root).pixels)
            lr = make_lr(hr, protocol)
            made = [imresize(lr, 4.0), lr.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)]
            outputs = [to_tensor(from_tensor(sr)) for sr in made]  # the layout score() gets: a channels-last view
            runs: dict[str, Callable[[], tuple[Split, Values]]] = {
                "before": functools.partial(previous_two_methods, outputs, hr, protocol.border),
                "after": functools.partial(current, outputs, hr),
            }
            this: dict[str, Split] = {"before": {}, "after": {}}
            found: dict[str, Values] = {}
            for _ in range(repeat):  # alternating, so that a slow spell of the machine hits both alike
                for name, run in runs.items():
                    split, found[name] = run()
                    this[name] = {k: min(v, this[name].get(k, math.inf)) for k, v in split.items()}
            for a, b in zip(found["before"], found["after"], strict=True):
                if any(not torch.equal(a[m], b[m]) for m in a):
                    raise SystemExit(f"VALUES DIFFER for {key}/{entry.name}: {a} vs {b}")
            for name in best:
                best[name] = {k: best[name].get(k, 0.0) + v for k, v in this[name].items()}
        row: dict[str, object] = {"set": key, "images": len(images)}
        for what, (field, chosen) in TWO_METHODS_ROWS.items():
            before, after = (sum(v for k, v in best[n].items() if chosen(k)) for n in ("before", "after"))
            print(f"{key:<9}{len(images):>7}{what:>24}{before:>10.3f}{after:>10.3f}{before / after:>7.2f}x")
            row |= {f"{field}_before_s": before, f"{field}_after_s": after, f"{field}_ratio": before / after}
        figures.add_row(row)
    print(f"torch threads: {torch.get_num_threads()}; values: the same bits (torch.equal) for every image and metric")
    figures.finish({"sets": len(sets), "images": sum(len(registry()[key].images) for key in sets)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3, help="best of N timings (default 3)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); 1 = like numpy")
    parser.add_argument("--two-methods", action="store_true", help="previous vs current PSNR+SSIM+RMSE (see top)")
    parser.add_argument(
        "--sets",
        type=parse_sets,
        help="registry keys, comma-separated (default: all four; set14,bsd100,urban100 with --two-methods)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON (after every set)")
    args = parser.parse_args()
    device, sync = torch_device(args.device, args.threads)
    mode = "two-methods" if args.two_methods else "default"
    sets: list[str] = args.sets or (["set14", "bsd100", "urban100"] if args.two_methods else list(registry()))
    reference_repeat = 1 if args.repeat == 1 else 2
    options: dict[str, object] = {"mode": mode, "sets": sets, "repeat": args.repeat}
    if not args.two_methods:
        options["reference_repeat"] = reference_repeat
    if args.two_methods and device.type != "cpu":
        parser.error("--two-methods times the CPU path")
    root = str(settings.data_root(args.data_root))
    figures = JsonFigures(args.json, "metrics", device, {**options, "data_root": root})
    if args.two_methods:
        figures.write()
        two_methods(args.data_root, sets, args.repeat, figures)
        return
    figures.write()
    metrics = [create_metric("psnr", Protocol()), create_metric("ssim", Protocol())]

    print("preparing bicubic outputs ...", flush=True)
    pairs = prepare(args.data_root, sets)

    def ours(items: list[Pair]) -> list[tuple[float, float]]:
        scores = []
        for sr, hr in items:
            a, b = to_tensor(sr).to(device), to_tensor(hr).to(device)
            scores.append(score_all(metrics, a, b))  # the library's own path: Y computed once per pair
        return [(float(s["psnr"][0]), float(s["ssim"][0])) for s in scores]  # one sync at the end on a GPU

    def reference(items: list[Pair]) -> list[tuple[float, float]]:
        return [reference_scores(sr, hr) for sr, hr in items]

    ours(pairs.get("set5") or pairs[sets[0]][:5])  # warm-up (first-call allocations, CUDA context)
    print(f"{'set':<9}{'images':>7}{'sreval s':>10}{'numpy s':>10}{'ratio':>8}{'max|dPSNR|':>12}{'max|dSSIM|':>12}")
    total_ours = total_ref = 0.0
    worst_psnr = worst_ssim = 0.0
    for key, items in pairs.items():
        t_ours, s_ours = best_of(functools.partial(ours, items), args.repeat, sync)
        t_ref, s_ref = best_of(functools.partial(reference, items), reference_repeat, lambda: None)
        d_psnr = max(abs(a[0] - b[0]) for a, b in zip(s_ours, s_ref, strict=True))
        d_ssim = max(abs(a[1] - b[1]) for a, b in zip(s_ours, s_ref, strict=True))
        worst_psnr, worst_ssim = max(worst_psnr, d_psnr), max(worst_ssim, d_ssim)
        total_ours += t_ours
        total_ref += t_ref
        ratio = t_ref / t_ours
        print(f"{key:<9}{len(items):>7}{t_ours:>10.3f}{t_ref:>10.3f}{ratio:>7.1f}x{d_psnr:>12.1e}{d_ssim:>12.1e}")
        figures.add_row(
            {
                "set": key,
                "images": len(items),
                "sreval_s": t_ours,
                "reference_s": t_ref,
                "ratio": ratio,
                "max_abs_dpsnr": d_psnr,
                "max_abs_dssim": d_ssim,
            }
        )
    print(
        f"{'all':<9}{sum(map(len, pairs.values())):>7}{total_ours:>10.3f}{total_ref:>10.3f}"
        f"{total_ref / total_ours:>7.1f}x{worst_psnr:>12.1e}{worst_ssim:>12.1e}"
    )
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, reference: numpy/scipy (single thread)")
    agree = worst_psnr <= 1e-6 and worst_ssim <= 1e-9
    print("values agree (|dPSNR| <= 1e-6 dB, |dSSIM| <= 1e-9)" if agree else "VALUES DISAGREE")
    figures.totals = {
        "images": sum(map(len, pairs.values())),
        "sreval_s": total_ours,
        "reference_s": total_ref,
        "ratio": total_ref / total_ours,
        "max_abs_dpsnr": worst_psnr,
        "max_abs_dssim": worst_ssim,
        "values_agree": agree,
    }
    if not agree:
        figures.write()  # the totals, `complete` still false: the check failed
        raise SystemExit(1)
    figures.finish(figures.totals)


if __name__ == "__main__":
    main()
