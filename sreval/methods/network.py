"""Networks as benchmark methods: zoo models (`srresnet-mse`, `enhancenet-pat-official`, ...) run the way `nn`
and `bicubic` run, and `NetworkMethod` runs an in-memory module (a model in training) the same way.

A zoo entry named NAME is the method NAME. Its `pipeline` says how it is run:

- `protocol` (every model sreval trains): input = sreval's LR (MATLAB bicubic, the protocol's variant) / 255,
  output clamped to [0, 1], ×255 and rounded half away from zero (MATLAB's im2uint8).
- `enhancenet-official`: the official EnhanceNet script's own LR (PIL antialias) and its rounding (clip, +0.5,
  truncate), so the numbers are the ones the authors' code gives. The same network on sreval's MATLAB LR is the
  method NAME-matlab-lr (protocol pipeline); the method metadata says which LR each used.

In both, an output that is not finite, or far outside [0, 1] (`check_output`), is an error naming the method
and the image, so that a broken model is never cached, scored or stored.

Gray images (one channel) are replicated to RGB for the network; the RGB output is scored against the gray
reference with rgb2gray, as any RGB output is. Networks run through the tiled `Upscaler` on the run's device,
with `InferenceOptions`; a zoo model is loaded on first use and kept.

Cache identity: the entry (or the module's class), its weights' checksum, the pipeline, the LR variant and the
precision. Tile size, overlap, batch, memory format, compilation and device only change float rounding, so they
do not start a new cache entry; they are stored with the run as the method's settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import asdict
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import nn

from sreval import assets, zoo
from sreval.errors import ParameterError, SrevalError
from sreval.imageio import from_tensor, to_tensor
from sreval.inference import InferenceOptions, Upscaler
from sreval.matlab.rounding import quantise_im2uint8
from sreval.methods.base import Method, MethodInput

MATLAB_LR_SUFFIX = "-matlab-lr"


#: How far outside [0, 1] a network's output may go before it is an error rather than overshoot (see
#: `check_output`).
OVERSHOOT_LIMIT = 1.0


def check_output(y: torch.Tensor, what: str) -> None:
    """Raise `SrevalError` naming `what` (method and image) unless the float output `y` of a network that works
    on [0, 1] images is finite and within [-OVERSHOOT_LIMIT, 1 + OVERSHOOT_LIMIT].

    Both quantisations here (`quantise_im2uint8` and the official EnhanceNet one) map 255·y to an integer and
    clamp. Rounding alone keeps values in (-0.5/255, 1 + 0.5/255) inside 0..255, so a bound for rounding would be
    there. The clamp, however, is not only for rounding: it is the saturation of MATLAB's im2uint8 (and the clip
    of the EnhanceNet script), and networks trained on [0, 1] targets overshoot at strong edges; the official
    EnhanceNet-PAT gives -0.21 to 1.56 on Set5, with up to 2 % of the values below 0, and the published numbers
    are those of the saturated images. The bound is therefore one whole range beyond either end: no overshoot
    goes that far, while a model with diverged weights or another value convention (0..255, say) does.
    NaN and infinite values (broken weights, an fp16 overflow) are always an error: cast to uint8 they would
    become arbitrary pixels and a plausible-looking score.
    """
    total = y.numel()
    finite = torch.isfinite(y)
    if not bool(finite.all()):
        nan = int(torch.isnan(y).sum())
        inf = total - nan - int(finite.sum())
        counts = " and ".join(text for n, text in ((nan, f"{nan:,} NaN"), (inf, f"{inf:,} infinite")) if n)
        raise SrevalError(
            f"{what}: the model output has {counts} values (of {total:,}); an SR network must output finite "
            "values. Broken or diverged weights, or an overflow in fp16 (try precision fp32), cause this"
        )
    low, high = (float(v) for v in torch.aminmax(y))
    if low < -OVERSHOOT_LIMIT or high > 1 + OVERSHOOT_LIMIT:
        outside = int(((y < -OVERSHOOT_LIMIT) | (y > 1 + OVERSHOOT_LIMIT)).sum())
        raise SrevalError(
            f"{what}: {outside:,} of {total:,} model output values are far outside the image range [0, 1] "
            f"(lowest {low:.4g}, highest {high:.4g}); allowed is [{-OVERSHOOT_LIMIT:g}, {1 + OVERSHOOT_LIMIT:g}], "
            "overshoot that quantisation clamps. The weights are broken or the model uses another value range "
            "(such as 0..255)"
        )


class _Network(Method):
    """The one way a network becomes SR images, shared by `NetworkMethod` and `ZooMethod` so that the same weights
    give the same pixels in both: the LR of `pipeline`, gray replicated to RGB, the tiled `Upscaler` in
    evaluation mode, `check_output` on the raw output, then the pipeline's quantisation."""

    def __init__(self, name: str, *, scale: int, pipeline: str, options: InferenceOptions | None) -> None:
        if pipeline not in zoo.PIPELINES:
            raise ParameterError("pipeline", f"pipeline must be one of {', '.join(zoo.PIPELINES)}, got {pipeline!r}")
        self.name = name
        self.scale = scale
        self.pipeline = pipeline
        self.options = options or InferenceOptions()
        self._upscalers: dict[torch.device, Upscaler] = {}
        # One image at a time per network: worker threads share the module, and one switching it back to its own
        # mode (training, for a model being validated) while another runs it would change that one's output.
        self._running = threading.Lock()

    @abstractmethod
    def _model(self, device: torch.device) -> nn.Module:
        """The network to run on `device` (loaded once per device)."""

    def metadata(self) -> dict[str, Any]:
        lr = (
            "official EnhanceNet script: RGB, PIL antialias (Lanczos) ×1/4; its rounding (clip, +0.5, truncate)"
            if self.pipeline == "enhancenet-official"
            else "sreval protocol: MATLAB bicubic (the run's degradation variant); MATLAB im2uint8 rounding"
        )
        # Precision is here because it changes the output beyond float rounding; the other options do not.
        return {**super().metadata(), "pipeline": self.pipeline, "lr": lr, "precision": self.options.precision}

    def settings(self) -> dict[str, Any]:
        # Tile, overlap, batch, channels_last and compile change nothing but float rounding: recorded with the
        # run, not part of the cache identity, so a run with other tiles reuses the cached outputs.
        return {"inference": asdict(self.options)}

    def _lr(self, item: MethodInput) -> torch.Tensor:
        if item.protocol.scale != self.scale:
            raise SrevalError(f"{self.name} is a ×{self.scale} model; the protocol is ×{item.protocol.scale}")
        if self.pipeline == "enhancenet-official":
            from sreval.archs.enhancenet_official import official_downsample

            return to_tensor(official_downsample(item.hr.pixels, self.scale)).to(item.device)
        return item.lr

    def super_resolve(self, item: MethodInput) -> np.ndarray:
        lr = self._lr(item)
        if lr.shape[1] == 1:
            lr = lr.expand(-1, 3, -1, -1)
        with self._running:
            upscaler = self._upscalers.get(item.device)
            model = upscaler.model if upscaler is not None else self._model(item.device)
            with _evaluation_mode(model):
                if upscaler is None:  # the Upscaler sets evaluation mode: made inside, so the mode is given back
                    upscaler = self._upscalers[item.device] = Upscaler(model, self.scale, item.device, self.options)
                y = upscaler(lr.to(torch.float32) / 255)
        # Before quantising: a broken output must fail here, before it can be cached, scored or stored.
        check_output(y, f"method {self.name} on {item.dataset.key}/{item.entry.name}")
        if self.pipeline == "enhancenet-official":
            from sreval.archs.enhancenet_official import official_quantise

            return from_tensor(official_quantise(y))
        return from_tensor(quantise_im2uint8(y))


@contextlib.contextmanager
def _evaluation_mode(module: nn.Module) -> Iterator[None]:
    """Run `module` in evaluation mode and give it back in the mode it had: a module being trained is validated
    between training steps, and its BatchNorm or dropout must not run in training mode here."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class NetworkMethod(_Network):
    """An in-memory network as a method (a model being trained, validated on the benchmark path), run exactly as
    a zoo model with the same weights: it and `ZooMethod` share the whole run path and differ only in where the
    module comes from.

    The module is run in place on the run's device (moved there, in evaluation mode during each image, then back in
    its own mode). Its weights are fingerprinted for the cache identity on first use: wrap the module again after
    changing its weights, or a cache that is enabled would return the outputs of the earlier weights."""

    def __init__(
        self,
        module: nn.Module,
        name: str,
        *,
        scale: int,
        options: InferenceOptions | None = None,
        pipeline: str = "protocol",
    ) -> None:
        super().__init__(name, scale=scale, pipeline=pipeline, options=options)
        self.module = module

    @cached_property
    def weights_sha256(self) -> str:
        return state_dict_sha256(self.module)

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "architecture": type(self.module).__name__,
            "scale": self.scale,
            "weights_sha256": self.weights_sha256,
        }

    def _model(self, device: torch.device) -> nn.Module:
        return self.module


def state_dict_sha256(module: nn.Module) -> str:
    """Checksum of a module's parameters and buffers: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}\x1f{flat.dtype}\x1f{tuple(tensor.shape)}\x1f".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class ZooMethod(_Network):
    """A zoo entry as a method; the network is loaded on first use on each device and kept."""

    def __init__(
        self,
        entry: zoo.ZooEntry,
        *,
        name: str | None = None,
        pipeline: str | None = None,
        options: InferenceOptions | None = None,
        asset_paths: dict[str, Any] | None = None,
    ) -> None:
        if not entry.has_weights:
            raise SrevalError(
                f"zoo model {entry.name!r} has no weights ({entry.weights.status}): {entry.weights.reason}"
            )
        super().__init__(name or entry.name, scale=entry.scale, pipeline=pipeline or entry.pipeline, options=options)
        self.entry = entry
        self.asset_paths = dict(asset_paths or {})
        self.weights_sha256 = self._weights_checksum()  # fails now, not after an hour of other methods

    def _weights_checksum(self) -> str:
        weights = self.entry.weights
        if weights.status == "external":
            assert weights.asset is not None
            path = assets.resolve(weights.asset, self.asset_paths.get(weights.asset))
            return assets.sha256_of(path)
        assert weights.sha256 is not None
        return weights.sha256

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "zoo_model": self.entry.name,
            "architecture": self.entry.architecture,
            "arch_args": repr(sorted(self.entry.arch_args.items())),
            "weights_sha256": self.weights_sha256,
        }

    def _model(self, device: torch.device) -> nn.Module:
        return zoo.load_model(self.entry, device=device, asset_paths=self.asset_paths)


def zoo_method(
    spec: str, *, options: InferenceOptions | None = None, asset_paths: dict[str, Any] | None = None
) -> Method | None:
    """The method for zoo model `spec` (or `NAME-matlab-lr`), or None when no zoo entry has that name."""
    known = _entries()
    if spec in known:
        return ZooMethod(known[spec], options=options, asset_paths=asset_paths)
    base = spec.removesuffix(MATLAB_LR_SUFFIX)
    if base != spec and base in known and known[base].pipeline != "protocol":
        return ZooMethod(known[base], name=spec, pipeline="protocol", options=options, asset_paths=asset_paths)
    return None


def zoo_method_names() -> list[str]:
    """Every method name the zoo offers (entries without weights included: asking for one says why it has none)."""
    names = []
    for entry in _entries().values():
        names.append(entry.name)
        if entry.pipeline != "protocol":
            names.append(entry.name + MATLAB_LR_SUFFIX)
    return names


def _entries() -> dict[str, zoo.ZooEntry]:
    # An invalid entry elsewhere in the zoo must not stop a run that does not use it (`sreval zoo list` reports it).
    entries, _ = zoo.scan()
    return {e.name: e for e in entries}
