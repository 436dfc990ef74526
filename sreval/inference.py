"""Tiled inference for SR models: any image size in bounded memory, with the result of one whole-image pass.

Why: a ×4 network keeps feature maps at up to 16× the input's pixel count, so one pass over a large image can
need more GPU memory than there is (RRDBNet on a 512² LR image needs tens of GiB in fp32). `Upscaler` cuts the
LR image into equal square windows, runs them in batches, and assembles the output:

- Each window is a core of `tile` LR pixels plus `overlap` pixels of context on each side that is cut from the
  image itself (not padded), so a window at the image border sees the same zero padding as the whole image.
- Assembly keeps, from every window, only the part of its output that is at least `overlap` LR pixels away
  from a cut (its "owned" region; the owned regions partition the image) and discards the context margin.
  This is chosen over a linear cross-fade in the overlap because a convolutional network's output at a pixel
  depends only on its receptive field: when `overlap` covers the receptive field, each kept pixel is exactly the
  whole-image value up to float rounding, and there is no seam to hide. A cross-fade would instead mix in
  values computed with less context (near the other window's cut), which are the least accurate ones. When the
  receptive field is larger than `overlap` (deep nets; a trained net's effective field is much smaller than its
  theoretical one), the error is what the missing far context contributes, and the windows are spread evenly
  so every cut gets as much context as the window count allows.
- All windows have the same size (windows are spread evenly, the last one ending at the image border rather
  than being smaller), so batches stack and a compiled model reuses its graph.

Memory: on `torch.OutOfMemoryError` the batch is halved first, then the tile; each step is logged as a warning
and kept for later calls (the next image would run out of memory too). Below `MIN_TILE` a `SrevalError` says
what to try instead.

Precision: "bf16"/"fp16" run the model under `torch.autocast`; the output is always float32. The output is
not clamped: callers clamp and quantise, where the rounding choice is visible.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from sreval.errors import ParameterError, SrevalError

log = logging.getLogger(__name__)

#: Smallest tile the out-of-memory fallback goes down to: below it the context margin is most of every window,
#: so smaller tiles would cost more recomputation than they save memory.
MIN_TILE = 16

Precision = Literal["fp32", "bf16", "fp16"]
_AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}

#: progress(done, total): tiles finished so far and the tiles of this call.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class InferenceOptions:
    """How `Upscaler` runs a model; none of these change the result beyond float rounding (precision aside)."""

    tile: int | None = 192  #: LR core side of a window; an axis ≤ tile + 2·overlap runs whole; None = no tiles
    overlap: int = 16  #: LR pixels of context on each side of a core, discarded from the output
    batch: int = 8  #: windows per forward pass
    precision: Precision = "fp32"  #: "bf16"/"fp16" = autocast to that type; output is float32 in any case
    channels_last: bool = False  #: NHWC model and inputs (faster convolutions on tensor-core GPUs)
    compile: bool = False  #: torch.compile the model once; equal window sizes let it reuse its graph

    def __post_init__(self) -> None:
        if self.tile is not None and self.tile < MIN_TILE:
            raise ParameterError(
                "tile", f"tile {self.tile} is too small; use at least {MIN_TILE} LR pixels, or None (whole)"
            )
        if self.overlap < 0:
            raise ParameterError("overlap", f"overlap {self.overlap} must be ≥ 0")
        if self.batch < 1:
            raise ParameterError("batch", f"batch {self.batch} must be ≥ 1")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ParameterError(
                "precision", f"precision {self.precision!r} is not supported; allowed: fp32, bf16, fp16"
            )


@dataclass(frozen=True)
class _Span:
    """One window along one axis, in LR pixels: it reads [start, start + size) and writes [own_start, own_end)."""

    start: int
    own_start: int
    own_end: int


def _spans(length: int, tile: int | None, overlap: int) -> tuple[int, list[_Span]]:
    """Window size and the windows along an axis of `length` LR pixels; the owned ranges partition the axis."""
    window = tile + 2 * overlap if tile is not None else length
    if length <= window:
        return length, [_Span(0, 0, length)]  # one window covers the axis: no cut at all
    assert tile is not None
    # Border windows need context on one side only, so n windows cover 2·(tile + overlap) + (n − 2)·tile pixels.
    count = math.ceil((length - 2 * overlap) / tile)
    starts = [round(i * (length - window) / (count - 1)) for i in range(count)]
    # Neighbouring starts are at most `tile` apart (from the choice of `count`), so the midpoint of two windows'
    # overlap has at least `overlap` pixels of context in both: cut there.
    cuts = [0, *((a + b + window) // 2 for a, b in itertools.pairwise(starts)), length]
    return window, [_Span(s, cuts[i], cuts[i + 1]) for i, s in enumerate(starts)]


class Upscaler:
    """Runs an SR `model` of integer `scale` on images of any size with tiles (see the module docstring).

    The model is put in eval mode and moved to `device` (and to channels_last if asked) in place: the caller's
    module is the one that runs. `in_channels` is what inputs are checked against (RGB for every model here).
    """

    def __init__(
        self,
        model: nn.Module,
        scale: int,
        device: torch.device | str = "cpu",
        options: InferenceOptions = InferenceOptions(),  # frozen, so one shared default is safe
        *,
        in_channels: int = 3,
    ) -> None:
        if scale < 1:
            raise ParameterError("scale", f"scale {scale} must be a positive integer")
        self.scale = scale
        self.device = torch.device(device)
        self.options = options
        self.in_channels = in_channels
        self._autocast_dtype = _AUTOCAST_DTYPES.get(options.precision)
        if self._autocast_dtype is not None:
            self._check_autocast(self._autocast_dtype)
        model = model.eval().to(self.device)
        if options.channels_last:
            # Module.to accepts memory_format at run time (documented); the overloads of older torch releases omit it.
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload, unused-ignore]
        self.model = model
        # torch.compile only wraps here and compiles on the first forward. Equal windows keep the spatial shape fixed;
        # a smaller last batch costs one recompile, after which torch treats the batch dimension as dynamic.
        self._forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if options.compile else model
        self._tile = options.tile
        self._batch = options.batch

    @property
    def tile(self) -> int | None:
        """Current tile (smaller than `options.tile` after an out-of-memory fallback)."""
        return self._tile

    @property
    def batch(self) -> int:
        """Current windows per pass (smaller than `options.batch` after an out-of-memory fallback)."""
        return self._batch

    def __call__(self, lr: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
        """(N, C, h, w) or (C, h, w) float in [0, 1] on any device → float32 (N, C', s·h, s·w) on `lr`'s device.

        Not clamped. `progress(done, total)` is called after every forward pass with the count of windows.
        """
        x = self._checked(lr)
        while True:
            try:
                out = self._run(x, progress)
                return out[0] if lr.ndim == 3 else out
            except torch.OutOfMemoryError as error:
                reason = str(error).split("\n", 1)[0]
            # Shrinking happens here, after the except block, which drops the traceback and with it the
            # references its frames hold to the failed pass's tensors; only then can the cache be freed.
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self._shrink(x.shape[-2], x.shape[-1], reason)

    def _check_autocast(self, dtype: torch.dtype) -> None:
        kind = self.device.type
        if not torch.amp.is_autocast_available(kind):
            raise SrevalError(f"precision {self.options.precision} needs autocast, which torch has not for {kind}")
        if kind == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise SrevalError("this GPU does not support bf16; use precision fp16 or fp32")
        # Autocast on an unsupported (device, dtype) pair only warns and then runs in fp32: make that an error, so
        # a "bf16" timing or result is never silently an fp32 one.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with torch.autocast(device_type=kind, dtype=dtype):
                pass
        if caught:
            raise SrevalError(f"precision {self.options.precision} is not supported on {kind}: {caught[0].message}")

    def _checked(self, lr: torch.Tensor) -> torch.Tensor:
        if not isinstance(lr, torch.Tensor):
            raise SrevalError(f"expected a torch.Tensor image, got {type(lr).__name__}")
        if lr.ndim not in (3, 4):
            raise SrevalError(f"image has shape {tuple(lr.shape)}; expected (N, C, h, w) or (C, h, w)")
        if not lr.is_floating_point():
            raise SrevalError(
                f"image has dtype {lr.dtype}; expected a float tensor in [0, 1] (convert uint8 with .float() / 255)"
            )
        x = lr if lr.ndim == 4 else lr.unsqueeze(0)
        if x.shape[1] != self.in_channels:
            raise SrevalError(
                f"image has {x.shape[1]} channels (shape {tuple(lr.shape)}); the model takes {self.in_channels}"
            )
        if x.numel() == 0:
            raise SrevalError(f"image has shape {tuple(lr.shape)}; it is empty")
        return x

    def _shrink(self, h: int, w: int, reason: str) -> None:
        if self._batch > 1:
            self._batch //= 2
            log.warning("out of memory on %s (%s); retrying with %d tiles per pass", self.device, reason, self._batch)
            return
        # A tile larger than the image changes nothing, so halve what was actually run.
        current = min(self._tile or max(h, w), max(h, w))
        if current // 2 < MIN_TILE:
            raise SrevalError(
                f"out of memory on {self.device} even with one {current}+2×{self.options.overlap} px LR tile per "
                f"pass ({reason}); try a smaller tile (at least {MIN_TILE}), a smaller model, or the CPU"
            )
        self._tile = current // 2
        log.warning("out of memory on %s (%s); retrying with %d px LR tiles", self.device, reason, self._tile)

    def _run(self, x: torch.Tensor, progress: Progress | None) -> torch.Tensor:
        n, _, h, w = x.shape
        s = self.scale
        win_h, rows = _spans(h, self._tile, self.options.overlap)
        win_w, cols = _spans(w, self._tile, self.options.overlap)
        jobs = [(i, r, c) for i in range(n) for r in rows for c in cols]
        # Moved once, whole: the LR image is 1/s² of the output, and per-tile copies would each synchronise.
        src = x.detach().to(self.device, torch.float32)
        out: torch.Tensor | None = None  # allocated after the first pass, which tells the output channel count
        for done in range(0, len(jobs), self._batch):
            chunk = jobs[done : done + self._batch]
            tiles = torch.stack([src[i, :, r.start : r.start + win_h, c.start : c.start + win_w] for i, r, c in chunk])
            y = self._model_pass(tiles)
            if y.ndim != 4 or y.shape[0] != len(chunk) or y.shape[2:] != (s * win_h, s * win_w):
                raise SrevalError(
                    f"model returned shape {tuple(y.shape)} for input {tuple(tiles.shape)}; expected "
                    f"({len(chunk)}, C, {s * win_h}, {s * win_w}) for scale {s}"
                )
            if out is None:
                out = torch.empty(n, y.shape[1], s * h, s * w, dtype=torch.float32, device=x.device)
            y = y.to(out.device)
            for j, (i, r, c) in enumerate(chunk):
                out[i, :, s * r.own_start : s * r.own_end, s * c.own_start : s * c.own_end] = y[
                    j,
                    :,
                    s * (r.own_start - r.start) : s * (r.own_end - r.start),
                    s * (c.own_start - c.start) : s * (c.own_end - c.start),
                ]
            if progress is not None:
                progress(min(done + self._batch, len(jobs)), len(jobs))
        assert out is not None
        return out

    def _model_pass(self, tiles: torch.Tensor) -> torch.Tensor:
        if self.options.channels_last:
            tiles = tiles.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._precision():
            y = self._forward(tiles)
        return y.float()

    def _precision(self) -> contextlib.AbstractContextManager[object]:
        """bf16/fp16: autocast. fp32: float32 arithmetic, also on CUDA, where torch lets cuDNN convolutions run in
        TF32 (a 10-bit mantissa) by default: fp32 outputs, and the published numbers made from them, must not
        depend on the device beyond float32 rounding."""
        if self._autocast_dtype is not None:
            return torch.autocast(device_type=self.device.type, dtype=self._autocast_dtype)
        if self.device.type == "cuda":
            return _float32_on_cuda()
        return contextlib.nullcontext()


_tf32_lock = threading.Lock()
_tf32_users = 0
_tf32_saved = (True, False)


@contextlib.contextmanager
def _float32_on_cuda() -> Iterator[None]:
    """TF32 off for cuDNN and CUDA matrix products while any fp32 forward runs; the process's own settings are
    restored when the last one ends (worker threads may overlap)."""
    global _tf32_users, _tf32_saved
    with _tf32_lock:
        if _tf32_users == 0:
            _tf32_saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        _tf32_users += 1
    try:
        yield
    finally:
        with _tf32_lock:
            _tf32_users -= 1
            if _tf32_users == 0:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = _tf32_saved
