"""Where training runs: the device of each torchrun process, the process group, gradient averaging by hand, and
the recipe's precision as an autocast context.

Under `torchrun --nproc_per_node=N` (env RANK/WORLD_SIZE/LOCAL_RANK) every process trains on its own GPU
(`process_device`), joins one process group (`dist_from_env`: NCCL on CUDA, gloo on the CPU) and only rank 0
writes files.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn

#: bf16 autocast on GPUs that support it, fp32 elsewhere (CPU bf16 is slow). fp16 would need loss scaling; bf16
#: has fp32's range.
Precision = Literal["bf16", "fp32"]
PRECISIONS: tuple[Precision, ...] = ("bf16", "fp32")


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def process_device(device: torch.device) -> torch.device:
    """The device this process trains on: under torchrun one GPU per process (cuda:LOCAL_RANK), else `device`."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device(f"cuda:{os.environ['LOCAL_RANK']}")
    return device


def dist_from_env(device_type: str) -> Dist:
    """This process's place among torchrun's processes (one process when WORLD_SIZE is unset or 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def average_gradients(module: nn.Module, world: int) -> None:
    """All-reduces the gradients of a module that DDP does not wrap (the discriminator, which sees real and fake
    images in two forwards where DDP allows one per backward)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if world == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def uses_bf16(precision: Precision, device: torch.device) -> bool:
    """Whether `precision` means bf16 autocast on `device`: only on CUDA GPUs with bf16 (on the CPU it is slow)."""
    return precision == "bf16" and device.type == "cuda" and torch.cuda.is_bf16_supported()


def autocast(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if uses_bf16(precision, device):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DDP and/or torch.compile wrapper."""
    inner = module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
    compiled = getattr(inner, "_orig_mod", None)
    return compiled if isinstance(compiled, nn.Module) else inner
