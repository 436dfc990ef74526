"""The luma planes, PSNR, RMSE and SSIM give the same bits as their previous, plainer formulations, which are
copied here as references: the library keeps only the faster ones (in-place luma, one MSE for PSNR and RMSE,
the reference's SSIM maps made once per reference image), and published tables are matched to the last digit."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

from sreval.errors import SrevalError
from sreval.matlab.color import YMode, rgb_to_gray, rgb_to_y
from sreval.matlab.rounding import round_clamp_uint8_range_
from sreval.metrics import create_metric, functional, score_all
from sreval.metrics.functional import mse, psnr, ssim, ssim_sharing_reference
from sreval.protocol import Protocol

# --- The previous formulations ----------------------------------------------------------------------------


def _old_round(x: torch.Tensor) -> torch.Tensor:
    floor = torch.floor(x)
    return torch.where(x - floor >= 0.5, floor + 1, floor)


def _old_y(img: torch.Tensor, mode: YMode = "matlab") -> torch.Tensor:
    x = img.to(torch.float64)
    y = 16 + (65.481 * x[:, 0:1] + 128.553 * x[:, 1:2] + 24.966 * x[:, 2:3]) / 255
    return y if mode == "float" else _old_round(y).clamp_(0, 255)


def _old_gray(img: torch.Tensor, mode: YMode = "matlab") -> torch.Tensor:
    x = img.to(torch.float64)
    gray = 0.298936021293775 * x[:, 0:1] + 0.587043074451121 * x[:, 1:2] + 0.114020904255103 * x[:, 2:3]
    return gray if mode == "float" else _old_round(gray).clamp_(0, 255)


def _old_luma_pair(sr: torch.Tensor, hr: torch.Tensor, mode: YMode) -> tuple[torch.Tensor, torch.Tensor]:
    gray = hr.shape[1] == 1 or sr.shape[1] == 1

    def plane(img: torch.Tensor) -> torch.Tensor:
        if img.shape[1] == 1:
            return img.to(torch.float64)
        return _old_gray(img, mode) if gray else _old_y(img, mode)

    return plane(sr), plane(hr)


def _shaved(sr: torch.Tensor, hr: torch.Tensor, shave: int) -> tuple[torch.Tensor, torch.Tensor]:
    if shave:
        sr, hr = sr[..., shave:-shave, shave:-shave], hr[..., shave:-shave, shave:-shave]
    return sr.to(torch.float64), hr.to(torch.float64)


def _old_mse(sr: torch.Tensor, hr: torch.Tensor, shave: int) -> torch.Tensor:
    sr, hr = _shaved(sr, hr, shave)
    return (sr - hr).square().flatten(1).mean(dim=1)


def _old_psnr(sr: torch.Tensor, hr: torch.Tensor, shave: int) -> torch.Tensor:
    return 10 * torch.log10(255.0**2 / _old_mse(sr, hr, shave))


def _old_filter_valid(x: torch.Tensor, taps: list[float]) -> torch.Tensor:
    n = len(taps)
    h, w = x.shape[-2] - n + 1, x.shape[-1] - n + 1
    rows = x[..., 0:h, :] * taps[0]
    for k in range(1, n):
        rows.add_(x[..., k : k + h, :], alpha=taps[k])
    out = rows[..., :, 0:w] * taps[0]
    for k in range(1, n):
        out.add_(rows[..., :, k : k + w], alpha=taps[k])
    return out


def _old_ssim(sr: torch.Tensor, hr: torch.Tensor, shave: int) -> torch.Tensor:
    x, y = _shaved(sr, hr, shave)
    window = 11
    taps = functional.gaussian_window_1d(window, 1.5).tolist()
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    out_rows = x.shape[-2] - window + 1
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for top in range(0, out_rows, 64):
        rows = min(64, out_rows - top)
        a = x[..., top : top + rows + window - 1, :]
        b = y[..., top : top + rows + window - 1, :]
        mu_a, mu_b, aa, bb, ab = _old_filter_valid(torch.stack([a, b, a * a, b * b, a * b]), taps)
        mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
        num = (2 * mu_ab + c1) * (2 * (ab - mu_ab) + c2)
        den = (mu_aa + mu_bb + c1) * ((aa - mu_aa) + (bb - mu_bb) + c2)
        total += (num / den).flatten(1).sum(dim=1)
    return total / (x.shape[1] * out_rows * (x.shape[-1] - window + 1))


def _old_metric(name: str, sr: torch.Tensor, hr: torch.Tensor, protocol: Protocol) -> torch.Tensor:
    a, b = _old_luma_pair(sr, hr, protocol.y_mode)
    if name == "rmse":
        return _old_mse(a, b, protocol.border).sqrt()
    return {"psnr": _old_psnr, "ssim": _old_ssim}[name](a, b, protocol.border)


# --- Inputs -----------------------------------------------------------------------------------------------


def _random(shape: tuple[int, ...], seed: int, low: int = 0, high: int = 256) -> torch.Tensor:
    return torch.randint(low, high, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _images(channels: int) -> Iterator[tuple[str, torch.Tensor]]:
    """Adversarial uint8 images: random (several seeds), flat, the extremes, odd and tiny sizes, batches, and the
    memory layouts images arrive in (a channels-last view of decoded pixels, a crop)."""
    for seed in range(3):
        yield f"random{seed}", _random((1, channels, 37, 53), seed)
    for value in (0, 128, 255):
        yield f"flat{value}", torch.full((1, channels, 23, 29), value, dtype=torch.uint8)
    yield "extremes", _random((1, channels, 31, 27), 7, 0, 2) * 255
    yield "one-pixel", _random((1, channels, 1, 1), 8)
    yield "batch", _random((2, channels, 19, 41), 9)
    yield "channels-last", _random((1, 45, 33, channels), 10).permute(0, 3, 1, 2)
    yield "crop", _random((1, channels, 50, 60), 11)[..., 3:44, 5:52]


def _pair_cases() -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, output, reference) planes as float64, large enough for SSIM with shave 4."""
    sizes = [(1, 1, 19, 19), (1, 1, 82, 30), (1, 1, 83, 47), (1, 3, 147, 61), (2, 1, 40, 33), (1, 1, 160, 1024)]
    for k, shape in enumerate(sizes):
        for seed in range(2):
            hr = _random(shape, 100 * k + seed)
            yield f"random{shape}{seed}", _random(shape, 100 * k + seed + 50).double(), hr.double()
        noise = _random(shape, 7 * k, 0, 21).double() - 10
        yield f"close{shape}", (hr.double() + noise).clamp(0, 255), hr.double()
    flat = torch.full((1, 1, 30, 31), 77.0, dtype=torch.float64)
    yield "flat-identical", flat, flat.clone()
    yield "flat-different", flat, flat + 1
    extremes = _random((1, 1, 40, 35), 5, 0, 2).double() * 255
    yield "extremes", extremes, 255 - extremes
    yield "extremes-vs-flat", extremes, torch.zeros_like(extremes)


PAIRS = list(_pair_cases())
PAIR_IDS = [name for name, _, _ in PAIRS]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


# --- Luma planes ------------------------------------------------------------------------------------------


def test_rounding_equals_matlab_round_at_and_around_every_half() -> None:
    """Every integer and half in 0..300, each one ulp up and down, the largest double below 0.5, and random
    values: the in-place rounding of the uint8 path gives MATLAB's round bit for bit."""
    grid = torch.arange(0, 301, dtype=torch.float64)
    centres = torch.cat([grid, grid + 0.5])
    up, down = torch.nextafter(centres, centres + 1), torch.nextafter(centres, centres - 1)
    tiny = torch.tensor([0.0, 5e-324, 0.49999999999999994, 0.5, 0.5000000000000001], dtype=torch.float64)
    rand = torch.rand(100_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 300
    x = torch.cat([centres, up, down.clamp(min=0), tiny, rand])
    assert torch.equal(round_clamp_uint8_range_(x.clone()), _old_round(x).clamp(0, 255))


def _every_colour() -> Iterator[torch.Tensor]:
    """All 2^24 RGB colours as 16 images of 16·256 × 256 pixels."""
    levels = torch.arange(256, dtype=torch.uint8)
    for red in range(0, 256, 16):
        r, g, b = torch.meshgrid(levels[red : red + 16], levels, levels, indexing="ij")
        yield torch.stack([r, g, b]).reshape(1, 3, 16 * 256, 256)


@pytest.mark.parametrize("mode", ["matlab", "float"])
def test_every_uint8_colour_gives_the_previous_y_and_gray(mode: YMode) -> None:
    for img in _every_colour():
        assert _same(rgb_to_y(img, mode), _old_y(img, mode))
        assert _same(rgb_to_gray(img, mode), _old_gray(img, mode))


@pytest.mark.parametrize("mode", ["matlab", "float"])
def test_images_of_any_size_and_layout_give_the_previous_planes(mode: YMode) -> None:
    for name, img in _images(3):
        assert _same(rgb_to_y(img, mode), _old_y(img, mode)), name
        assert _same(rgb_to_gray(img, mode), _old_gray(img, mode)), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["matlab", "float"])
def test_float_input_gives_the_previous_planes(dtype: torch.dtype, mode: YMode) -> None:
    g = torch.Generator().manual_seed(3)
    img = torch.cat([torch.rand((1, 3, 20, 17), generator=g) * 255, _random((1, 3, 20, 17), 4).float()], dim=2)
    img = img.to(dtype)
    assert _same(rgb_to_y(img, mode), _old_y(img, mode))
    assert _same(rgb_to_gray(img, mode), _old_gray(img, mode))


# --- PSNR, RMSE, SSIM -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shave", [0, 4])
@pytest.mark.parametrize(("name", "sr", "hr"), PAIRS, ids=PAIR_IDS)
def test_mse_and_psnr_equal_the_previous_formulation(name: str, sr: torch.Tensor, hr: torch.Tensor, shave: int) -> None:
    assert _same(mse(sr, hr, shave=shave), _old_mse(sr, hr, shave))
    assert _same(psnr(sr, hr, shave=shave), _old_psnr(sr, hr, shave))
    assert _same(functional.psnr_from_mse(mse(sr, hr, shave=shave)), _old_psnr(sr, hr, shave))


@pytest.mark.parametrize("shave", [0, 4])
@pytest.mark.parametrize(("name", "sr", "hr"), PAIRS, ids=PAIR_IDS)
def test_ssim_alone_and_with_shared_reference_maps_equals_the_previous_formulation(
    name: str, sr: torch.Tensor, hr: torch.Tensor, shave: int
) -> None:
    others = [sr, (255 - sr).flip(-1), hr.clone()]  # the last: a perfect output
    expected = [_old_ssim(out, hr, shave) for out in others]
    assert _same(ssim(sr, hr, shave=shave), expected[0])
    first, maps = ssim_sharing_reference(sr, hr, None, shave=shave)
    assert _same(first, expected[0])
    for out, want in zip(others, expected, strict=True):
        again, kept = ssim_sharing_reference(out, hr, maps, shave=shave)
        assert _same(again, want) and kept is maps


def test_shared_reference_maps_equal_the_previous_formulation_on_one_thread() -> None:
    """The benchmark scores with one torch thread per worker; a sum's grouping depends on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        hr = _random((1, 1, 150, 700), 1).double()
        outputs = [_random((1, 1, 150, 700), seed).double() for seed in (2, 3)]
        maps = None
        for out in outputs:
            value, maps = ssim_sharing_reference(out, hr, maps, shave=4)
            assert _same(value, _old_ssim(out, hr, 4))
    finally:
        torch.set_num_threads(threads)


def test_reference_maps_of_another_image_are_refused() -> None:
    hr = _random((1, 1, 40, 40), 1).double()
    _, maps = ssim_sharing_reference(hr, hr, None, shave=4)
    other = _random((1, 1, 40, 41), 2).double()
    with pytest.raises(SrevalError, match="reference maps"):
        ssim_sharing_reference(other, other, maps, shave=4)
    with pytest.raises(SrevalError, match="reference maps"):
        ssim_sharing_reference(hr, hr, maps, shave=3)


# --- score_all --------------------------------------------------------------------------------------------

NAME_LISTS = [["psnr"], ["rmse"], ["psnr", "rmse"], ["rmse", "psnr"], ["ssim"], ["psnr", "ssim", "rmse"],
              ["ssim", "rmse", "psnr"]]  # fmt: skip


def _reference_kinds() -> Iterator[tuple[str, torch.Tensor, list[torch.Tensor]]]:
    """(name, reference, three outputs): RGB against RGB, RGB outputs against a gray reference, gray against gray."""
    rgb = _random((1, 3, 45, 38), 20)
    outputs = [_random((1, 3, 45, 38), 21), rgb // 2 * 2, rgb.flip(-1).contiguous()]
    yield "rgb", rgb, outputs
    yield "gray-reference", rgb[:, 1:2], outputs
    yield "gray", rgb[:, 1:2], [out[:, 0:1] for out in outputs]


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "reference_planes"])
@pytest.mark.parametrize("names", NAME_LISTS, ids=["+".join(n) for n in NAME_LISTS])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_score_all_gives_each_metric_its_value_alone(names: list[str], count: int, shared: bool) -> None:
    for protocol in (Protocol(), Protocol(shave=0), Protocol(y_mode="float")):
        metrics = [create_metric(n, protocol) for n in names]
        for kind, hr, outputs in _reference_kinds():
            planes: dict[object, torch.Tensor] | None = {} if shared else None
            for k, sr in enumerate(outputs[:count]):
                scores = score_all(metrics, sr, hr, reference_planes=planes)
                assert list(scores) == names
                for metric in metrics:
                    value, name = scores[metric.info.name], metric.info.name
                    assert _same(value, _old_metric(name, sr, hr, protocol)), (kind, k, name)
                    assert _same(value, metric(sr, hr)), (kind, k, name)


def test_one_reference_dict_serves_several_protocols_without_confusing_them() -> None:
    """The dict the caller keeps for one reference image: planes and SSIM maps of another shave or Y mode are
    kept apart from each other."""
    hr = _random((1, 3, 48, 40), 30)
    outputs = [_random((1, 3, 48, 40), 31), hr.roll(1, dims=-1).contiguous()]
    protocols = [Protocol(), Protocol(shave=0), Protocol(y_mode="float"), Protocol(shave=2, y_mode="float")]
    planes: dict[object, torch.Tensor] = {}
    for sr in outputs:
        for protocol in protocols:
            metrics = [create_metric(n, protocol) for n in ("ssim", "psnr", "rmse")]
            scores = score_all(metrics, sr, hr, reference_planes=planes)
            for name, value in scores.items():
                assert _same(value, _old_metric(name, sr, hr, protocol)), (protocol, name)


@pytest.mark.parametrize("other", [Protocol(shave=0), Protocol(y_mode="float"), Protocol(shave=2, y_mode="float")])
def test_psnr_and_rmse_of_different_protocols_in_one_call_keep_their_own_mse(other: Protocol) -> None:
    hr = _random((1, 3, 36, 44), 35)
    sr = _random((1, 3, 36, 44), 36)
    for psnr_protocol, rmse_protocol in ((Protocol(), other), (other, Protocol())):
        metrics = [create_metric("psnr", psnr_protocol), create_metric("rmse", rmse_protocol)]
        scores = score_all(metrics, sr, hr, reference_planes={})
        assert _same(scores["psnr"], _old_metric("psnr", sr, hr, psnr_protocol))
        assert _same(scores["rmse"], _old_metric("rmse", sr, hr, rmse_protocol))


def _count_calls(monkeypatch: pytest.MonkeyPatch, name: str, record: Callable[..., object]) -> list[object]:
    calls: list[object] = []
    real = getattr(functional, name)

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(record(*args, **kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(functional, name, counted)
    return calls


@pytest.mark.parametrize("names", [["psnr", "rmse"], ["rmse", "ssim", "psnr"], ["psnr"]])
def test_psnr_and_rmse_of_one_pair_compute_the_mse_once(monkeypatch: pytest.MonkeyPatch, names: list[str]) -> None:
    calls = _count_calls(monkeypatch, "mse", lambda *a, **k: None)
    hr = _random((1, 3, 30, 30), 40)
    metrics = [create_metric(n, Protocol()) for n in names]
    score_all(metrics, _random((1, 3, 30, 30), 41), hr)
    score_all(metrics, _random((1, 3, 30, 30), 42), hr, reference_planes={})
    assert len(calls) == 2


def test_the_reference_is_filtered_for_the_first_output_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first output's SSIM filters the five maps of the pair; later outputs filter only their own three."""
    stacked = _count_calls(monkeypatch, "_filter_valid", lambda x, *_: x.shape[0])
    hr = _random((1, 3, 40, 150), 50)
    metrics = [create_metric("ssim", Protocol())]
    planes: dict[object, torch.Tensor] = {}
    for seed in (51, 52, 53):
        stacked.clear()
        sr = _random((1, 3, 40, 150), seed)
        value = score_all(metrics, sr, hr, reference_planes=planes)["ssim"]
        assert _same(value, _old_metric("ssim", sr, hr, Protocol()))
        assert set(stacked) == ({5} if seed == 51 else {3})


def test_every_metric_is_timed_under_its_name_when_steps_are_shared() -> None:
    timings: dict[str, float] = {}
    hr = _random((1, 3, 30, 30), 60)
    metrics = [create_metric(n, Protocol()) for n in ("rmse", "ssim", "psnr")]
    score_all(metrics, _random((1, 3, 30, 30), 61), hr, timings=timings, reference_planes={})
    assert set(timings) == {"rmse", "ssim", "psnr"} and all(t > 0 for t in timings.values())
