"""Run folders on disk: checkpoints written all at once or not at all and read back safely, and the generator's
starting weights (`init_from`).

`OUT/checkpoints/step_NNNNNNNN/` holds `generator.safetensors`, `discriminator.safetensors`, `optimizers.pt`
(optimiser and scheduler states; read back with `weights_only=True`, so it cannot run code) and `state.json`,
written into a temporary folder and renamed. The two newest are kept. `OUT/final/generator.safetensors` is the
finished run's generator.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from sreval import __version__, zoo
from sreval.archs.state_dicts import state_dict_mismatch
from sreval.errors import SrevalError
from sreval.train.devices import unwrap
from sreval.train.recipes import Recipe

CHECKPOINTS = "checkpoints"
FINAL = "final"
KEEP_CHECKPOINTS = 2


def state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The network's tensors on the CPU, without the DDP or torch.compile wrapper's key prefixes."""
    return {k: v.detach().to("cpu").contiguous() for k, v in unwrap(module).state_dict().items()}


def load_into(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    inner = unwrap(module)
    expected = inner.state_dict()
    problems = state_dict_mismatch(expected, state)
    if problems:
        raise SrevalError(f"{what} does not fit the recipe's network: {'; '.join(problems)}")
    inner.load_state_dict(state)


def checkpoint_dirs(out: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = out / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if (p / "state.json").is_file())


def save_checkpoint(
    out: Path, step: int, recipe: Recipe, nets: dict[str, nn.Module], optimizers: dict[str, Any], wall_s: float
) -> Path:
    root = out / CHECKPOINTS
    final = root / f"step_{step:08d}"
    if final.exists():
        return final
    tmp = root / f".tmp_step_{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, net in nets.items():
        safetensors.torch.save_file(state_dict(net), str(tmp / f"{name}.safetensors"))
    torch.save(optimizers, tmp / "optimizers.pt")
    state = {"step": step, "recipe": recipe.as_dict(), "wall_s": wall_s, "sreval": __version__}
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    os.replace(tmp, final)
    for old in checkpoint_dirs(out)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


class CheckpointReader:
    """Reads one checkpoint folder back. Any file in it that cannot be read (truncated by a full disk, changed by
    hand, replaced by something else) is a `SrevalError` naming the file and saying how to go on: delete the
    folder to resume from the checkpoint before it, or start afresh. `optimizers.pt` is only ever read with
    `weights_only=True`, so a tampered file is refused rather than run."""

    def __init__(self, folder: Path, older: Path | None) -> None:
        self.folder, self.older = folder, older

    def damaged(self, name: str, reason: str) -> SrevalError:
        if self.older is not None:
            then = f"delete {self.folder} to resume from the older checkpoint {self.older.name}"
        else:
            then = f"delete {self.folder} to start this run again from step 0 (there is no older checkpoint)"
        return SrevalError(
            f"cannot resume: checkpoint file {self.folder / name} is damaged or unreadable: {reason}. To go on, "
            f"{then}, or start afresh in another run folder (out)"
        )

    def state(self) -> dict[str, Any]:
        try:
            state = json.loads((self.folder / "state.json").read_text(encoding="utf-8"))
            if not isinstance(state, dict) or not {"step", "recipe", "wall_s"} <= state.keys():
                raise ValueError("it lacks the step, recipe and wall_s that sreval writes")
            state["step"], state["wall_s"] = int(state["step"]), float(state["wall_s"])
        except OSError as error:
            raise self.damaged("state.json", str(error.strerror or error)) from None
        except (ValueError, TypeError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise self.damaged("state.json", f"not the JSON sreval writes: {error}") from None
        return state

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        try:
            return zoo.parse_safetensors((self.folder / name).read_bytes())
        except OSError as error:
            raise self.damaged(name, str(error.strerror or error)) from None
        except ValueError as error:
            raise self.damaged(name, str(error)) from None

    def load_optimizers(self, targets: dict[str, Any]) -> None:
        """Loads the saved states into the optimisers and schedulers of `targets` (None values are skipped)."""
        name = "optimizers.pt"
        wanted = [key for key, target in targets.items() if target is not None]
        try:
            # On the CPU: load_state_dict moves each state to its parameter's device. Any failure to read a
            # CPU-only file of tensors and plain containers means the file is damaged; torch's own message is
            # not passed on, since for a refused object it advises loading with weights_only=False.
            saved = torch.load(self.folder / name, map_location="cpu", weights_only=True)
        except Exception as error:  # torch.load raises many types for damaged archives (zip, pickle, storage)
            raise self.damaged(
                name, f"torch cannot read it as tensors and plain values ({type(error).__name__})"
            ) from None
        if not isinstance(saved, dict) or not set(wanted) <= saved.keys():
            raise self.damaged(name, f"it does not hold the states sreval writes ({', '.join(wanted)})")
        try:
            for key in wanted:
                targets[key].load_state_dict(saved[key])
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as error:
            raise self.damaged(name, f"its {key} state does not fit this run's recipe ({error})") from None


def init_generator(generator: nn.Module, source: str) -> None:
    """Initial weights from a zoo model name or a run folder (its final/ or newest checkpoint)."""
    path = Path(source).expanduser()
    if path.is_dir():
        candidates = [path / FINAL / "generator.safetensors"] + [
            c / "generator.safetensors" for c in reversed(checkpoint_dirs(path))
        ]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise SrevalError(f"init_from {source}: no final/ or checkpoint generator in that run folder")
        load_into(generator, zoo.read_safetensors(found), f"init_from {found}")
        return
    load_into(generator, dict(zoo.load_state_dict(source)), f"init_from zoo model {source!r}")
