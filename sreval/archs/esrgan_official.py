"""The official ESRGAN generator files (RRDB_ESRGAN_x4.pth, RRDB_PSNR_x4.pth) in our RRDBNet, in each key layout
the authors published them in.

The files are PyTorch pickles of a plain state dict. They are read with `torch.load(weights_only=True)`, which
rebuilds tensors and plain containers only and refuses any other object, so a file cannot run code on load.

Three layouts, told apart by their key names (a `module.` prefix from `DataParallel` is dropped first):

- `esrgan`: xinntao/ESRGAN's `RRDBNet_arch.py` (the released files since the repository's 2019 update):
  `conv_first`, `RRDB_trunk.N.RDBk.convj`, `trunk_conv`, `upconv1`, `upconv2`, `HRconv`, `conv_last`.
- `basicsr`: BasicSR's `RRDBNet` (sreval's own names: `body.N.rdbk.convj`, `conv_body`, `conv_up1`, ...), saved
  bare or inside a `{"params": ...}` / `{"params_ema": ...}` wrapper; the averaged `params_ema` is preferred when
  both are there, as BasicSR's test configurations and Real-ESRGAN's inference do.
- `sequential`: the first release's `RRDB_Net` (xinntao/ESRGAN `architecture.py` and `block.py`), one flattened
  `nn.Sequential` called `model`: `model.0` the first conv; `model.1` a shortcut block whose `sub.0` … `sub.{N-1}`
  are the RRDBs (each conv wrapped in its own sequential, hence `RDBk.convj.0.weight`) and `sub.N` the trunk conv;
  `model.2`/`model.5` nearest ×2 upsampling with their convs at `model.3`/`model.6`; `model.8` the HR conv and
  `model.10` the last conv (the odd indices after 2 are the parameter-free LeakyReLUs). This is the mapping of the
  authors' own conversion script, `transer_RRDB_models.py` in xinntao/ESRGAN.

All three describe the same network (same convolutions, same forward pass), so a mapping is a renaming only: no
tensor is changed. The number of blocks, features and growth channels are read from the file.

Licence of the released files: Apache 2.0 (the ESRGAN repository's licence).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from sreval.archs.registry import register_weight_loader
from sreval.archs.rrdbnet import RRDBNet
from sreval.archs.state_dicts import named_keys, state_dict_mismatch
from sreval.errors import SrevalError

LAYOUTS = ("esrgan", "basicsr", "sequential")

# The same five convs appear in each block of every layout; only the spelling around them differs.
_ESRGAN_BLOCK = re.compile(r"^RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])\.(weight|bias)$")
_SEQUENTIAL_BLOCK = re.compile(r"^model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\.(weight|bias)$")
_SEQUENTIAL_TRUNK = re.compile(r"^model\.1\.sub\.(\d+)\.(weight|bias)$")
_ESRGAN_CONVS = {
    "conv_first": "conv_first",
    "trunk_conv": "conv_body",
    "upconv1": "conv_up1",
    "upconv2": "conv_up2",
    "HRconv": "conv_hr",
    "conv_last": "conv_last",
}
_SEQUENTIAL_CONVS = {"0": "conv_first", "3": "conv_up1", "6": "conv_up2", "8": "conv_hr", "10": "conv_last"}
#: in-channels of the first conv → scale (BasicSR folds ×2 and ×1 inputs with pixel_unshuffle first)
_SCALE_OF_IN_CHANNELS = {3: 4, 12: 2, 48: 1}


class ESRGANCheckpointError(SrevalError):
    """The file is not an ESRGAN generator state dict sreval can read."""


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a PyTorch state-dict file, without unpickling anything but tensors and plain containers."""
    path = Path(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        detail = _refusal(error)
        if "global" not in detail.lower():  # not a pickle at all, or a damaged one
            raise ESRGANCheckpointError(f"{path} is not a readable PyTorch checkpoint ({detail})") from None
        raise ESRGANCheckpointError(
            f"{path} holds Python objects other than tensors and plain containers, which sreval does not unpickle "
            f"(reading it would need torch.load(weights_only=False), which can run arbitrary code): {detail}"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        raise ESRGANCheckpointError(f"{path} is not a readable PyTorch checkpoint: {error}") from None
    return _unwrap(loaded, path)


#: torch's own advice around a weights-only refusal (it suggests unpickling anyway); only the reason is kept
_ADVICE = ("Weights only load failed", "Check the documentation", "Please file an issue", "WeightsUnpickler error:")


def _refusal(error: pickle.UnpicklingError) -> str:
    """The line of torch's weights-only refusal that says what was refused."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(_ADVICE)]
    return reasons[0] if reasons else "refused by torch's weights-only reader"


def _unwrap(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(loaded, Mapping):
        for wrapper in ("params_ema", "params"):
            if wrapper in loaded and isinstance(loaded[wrapper], Mapping):
                loaded = loaded[wrapper]
                break
    if not isinstance(loaded, Mapping) or not loaded:
        raise ESRGANCheckpointError(f"{path} does not hold a state dict (found {type(loaded).__name__})")
    others = [str(k) for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if others:
        raise ESRGANCheckpointError(f"{path}: entries that are not tensors: {named_keys(others)}")
    return {str(k).removeprefix("module."): v for k, v in loaded.items()}


def detect_layout(keys: Iterable[str]) -> str:
    """`esrgan`, `basicsr` or `sequential`, from the key names; `ESRGANCheckpointError` for anything else."""
    names = list(keys)
    if any(k.startswith(("RRDB_trunk.", "trunk_conv.")) for k in names):
        return "esrgan"
    if any(k.startswith("model.") for k in names):
        return "sequential"
    if any(k.startswith(("body.", "conv_body.")) for k in names):
        return "basicsr"
    raise ESRGANCheckpointError(
        "not an ESRGAN generator: none of the key layouts fits (expected RRDB_trunk.N.RDBk.convj…, body.N.rdbk."
        f"convj… or model.1.sub.N…); keys: {named_keys(names)}"
    )


def _block(match: re.Match[str]) -> str:
    block, rdb, conv, kind = match.groups()
    return f"body.{block}.rdb{rdb}.conv{conv}.{kind}"


def _esrgan_name(key: str, trunk_index: int) -> str | None:
    if match := _ESRGAN_BLOCK.match(key):
        return _block(match)
    module, _, kind = key.rpartition(".")
    return f"{_ESRGAN_CONVS[module]}.{kind}" if module in _ESRGAN_CONVS and kind in ("weight", "bias") else None


def _sequential_name(key: str, trunk_index: int) -> str | None:
    if match := _SEQUENTIAL_BLOCK.match(key):
        return _block(match)
    if (match := _SEQUENTIAL_TRUNK.match(key)) and int(match.group(1)) == trunk_index:
        return f"conv_body.{match.group(2)}"
    module, _, kind = key.removeprefix("model.").rpartition(".")
    return f"{_SEQUENTIAL_CONVS[module]}.{kind}" if module in _SEQUENTIAL_CONVS and kind in ("weight", "bias") else None


def _basicsr_name(key: str, trunk_index: int) -> str | None:
    return key


_RENAMERS: dict[str, Callable[[str, int], str | None]] = {
    "esrgan": _esrgan_name,
    "basicsr": _basicsr_name,
    "sequential": _sequential_name,
}


def _trunk_index(keys: list[str]) -> int:
    """The sequential layout's trunk conv follows the last RRDB: its index is the number of RRDBs."""
    blocks = {int(m.group(1)) for k in keys if (m := _SEQUENTIAL_BLOCK.match(k))}
    return len(blocks)


def to_rrdbnet_names(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict renamed to sreval's RRDBNet, and the layout it was in; keys no layout knows are an error."""
    keys = list(state)
    layout = detect_layout(keys)
    trunk = _trunk_index(keys) if layout == "sequential" else -1
    renamed: dict[str, torch.Tensor] = {}
    unknown = []
    for key in keys:
        new = _RENAMERS[layout](key, trunk)
        if new is None:
            unknown.append(key)
        else:
            renamed[new] = state[key]
    if unknown:
        raise ESRGANCheckpointError(f"unexpected keys for the {layout} layout: {named_keys(unknown)}")
    return renamed, layout


def rrdbnet_args(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """scale, num_feat, num_block and num_grow_ch of the network a state dict in our names comes from."""
    try:
        first, grow = state["conv_first.weight"], state["body.0.rdb1.conv1.weight"]
    except KeyError as error:
        raise ESRGANCheckpointError(f"missing keys: {error.args[0]}") from None
    in_channels = int(first.shape[1])
    if in_channels not in _SCALE_OF_IN_CHANNELS:
        raise ESRGANCheckpointError(f"conv_first takes {in_channels} channels; an RRDBNet takes 3, 12 or 48")
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("body.")}
    return {
        "scale": _SCALE_OF_IN_CHANNELS[in_channels],
        "num_feat": int(first.shape[0]),
        "num_block": len(blocks),
        "num_grow_ch": int(grow.shape[0]),
    }


def check_complete(state: Mapping[str, torch.Tensor], layout: str) -> None:
    """Every tensor of the RRDBNet the file describes is there with its shape, and nothing else."""
    args = rrdbnet_args(state)
    with torch.device("meta"):
        expected = RRDBNet(**args).state_dict()
    problems = state_dict_mismatch(expected, state)
    if problems:
        described = ", ".join(f"{k}={v}" for k, v in args.items())
        raise ESRGANCheckpointError(
            f"not a complete RRDBNet({described}) in the {layout} layout (names in sreval's spelling): "
            + "; ".join(problems)
        )


def load_official_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, int], str]:
    """The file's tensors in our RRDBNet's names, the RRDBNet arguments they fit, and the layout they came in."""
    try:
        state, layout = to_rrdbnet_names(read_checkpoint(path))
        check_complete(state, layout)
    except ESRGANCheckpointError as error:
        message = str(error)
        raise ESRGANCheckpointError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    return state, rrdbnet_args(state), layout


def load_official_rrdbnet(path: str | Path) -> RRDBNet:
    """Our RRDBNet with an official ESRGAN file's weights (eval mode)."""
    state, args, _ = load_official_state_dict(path)
    model = RRDBNet(**args)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _zoo_state_dict(path: Path) -> dict[str, torch.Tensor]:
    return load_official_state_dict(path)[0]


# The zoo entries `esrgan-official` and `esrgan-psnr-official` name this reader as their loader.
register_weight_loader("esrgan-pth", _zoo_state_dict)
