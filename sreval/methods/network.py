"""Zoo models as benchmark methods: `--methods srresnet-mse,enhancenet-pat-official` runs networks the way
`nn` and `bicubic` run.

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
with `InferenceOptions` from the command line; the model is loaded on first use and kept.

Cache identity: the entry, its weights' checksum, the pipeline, the LR variant and the precision. Tile size,
batch and device only change float rounding, so they do not start a new cache entry.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from sreval import assets, zoo
from sreval.errors import SrevalError
from sreval.imageio import from_tensor, to_tensor
from sreval.inference import InferenceOptions, Upscaler
from sreval.matlab.rounding import matlab_round
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
            "values. Broken or diverged weights, or an overflow in fp16 (try --precision fp32), cause this"
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


def quantise_im2uint8(y: torch.Tensor) -> torch.Tensor:
    """Float image in [0, 1] (unclamped) → uint8 as MATLAB's im2uint8: clamp, ×255, round half away from zero."""
    return matlab_round(y.to(torch.float32).clamp(0, 1) * 255).to(torch.uint8)


class ZooMethod(Method):
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
        self.entry = entry
        self.name = name or entry.name
        self.pipeline = pipeline or entry.pipeline
        self.options = options or InferenceOptions()
        self.asset_paths = dict(asset_paths or {})
        self.weights_sha256 = self._weights_checksum()  # fails now, not after an hour of other methods
        self._upscalers: dict[torch.device, Upscaler] = {}

    def _weights_checksum(self) -> str:
        weights = self.entry.weights
        if weights.status == "external":
            assert weights.asset is not None
            path = assets.resolve(weights.asset, self.asset_paths.get(weights.asset))
            return assets.sha256_of(path)
        assert weights.sha256 is not None
        return weights.sha256

    def metadata(self) -> dict[str, Any]:
        lr = (
            "official EnhanceNet script: RGB, PIL antialias (Lanczos) ×1/4; its rounding (clip, +0.5, truncate)"
            if self.pipeline == "enhancenet-official"
            else "sreval protocol: MATLAB bicubic (the run's degradation variant); MATLAB im2uint8 rounding"
        )
        return {
            **super().metadata(),
            "zoo_model": self.entry.name,
            "architecture": self.entry.architecture,
            "arch_args": repr(sorted(self.entry.arch_args.items())),
            "weights_sha256": self.weights_sha256,
            "pipeline": self.pipeline,
            "lr": lr,
            "precision": self.options.precision,
        }

    def inference_settings(self) -> dict[str, Any]:
        """How the network was run (recorded by callers; not part of the cache identity)."""
        return asdict(self.options)

    def _upscaler(self, device: torch.device) -> Upscaler:
        if device not in self._upscalers:
            model = zoo.load_model(self.entry, device=device, asset_paths=self.asset_paths)
            self._upscalers[device] = Upscaler(model, self.entry.scale, device, self.options)
        return self._upscalers[device]

    def _lr(self, item: MethodInput) -> torch.Tensor:
        if item.protocol.scale != self.entry.scale:
            raise SrevalError(f"{self.name} is a ×{self.entry.scale} model; the protocol is ×{item.protocol.scale}")
        if self.pipeline == "enhancenet-official":
            from sreval.archs.enhancenet_official import official_downsample

            return to_tensor(official_downsample(item.hr.pixels, self.entry.scale)).to(item.device)
        return item.lr

    def super_resolve(self, item: MethodInput) -> np.ndarray:
        lr = self._lr(item)
        if lr.shape[1] == 1:
            lr = lr.expand(-1, 3, -1, -1)
        y = self._upscaler(item.device)(lr.to(torch.float32) / 255)
        # Before quantising: a broken output must fail here, before it can be cached, scored or stored.
        check_output(y, f"method {self.name} on {item.dataset.key}/{item.entry.name}")
        if self.pipeline == "enhancenet-official":
            from sreval.archs.enhancenet_official import official_quantise

            return from_tensor(official_quantise(y))
        return from_tensor(quantise_im2uint8(y))


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
