"""Training batches: random HR crops drawn as one seeded stream, and the LR inputs made from them on the fly.

LR inputs are made from the HR crops with sreval's MATLAB-exact bicubic (`make_lr`, on whatever device the batch
is on, so on the GPU in training), which is the degradation the benchmarks use; an LR made by another resizer
would train the model for a degradation it is never tested on.

Sampling is a pure function of (seed, global sample index g), with g = step × global batch + position in the
batch. Image order is a fresh permutation of the images each epoch (epoch = g // number of images), so every
image is seen once per epoch; the crop position and one of the 8 flips/90° rotations come from a generator
seeded with (seed, g). Hence:

- workers, their number and their scheduling cannot change what is drawn;
- resuming at step k gives exactly the batches an uninterrupted run would have given from step k;
- under DDP, rank r of W takes positions [r·B/W, (r+1)·B/W) of each global batch B, so W ranks together see
  exactly the samples one process with batch B sees (the same loss, up to float summation order).

The stream depends on the global batch only through g, so resuming with another batch size shifts which
samples fall in which step; a run's recipe fixes the batch size.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sreval.errors import SrevalError
from sreval.imageio import load_image
from sreval.matlab.imresize import Variant, imresize
from sreval.train.data import TrainingImages

#: Number of distinct flips and 90° rotations of a square (the dihedral group of order 8).
TRANSFORMS = 8
#: Per-worker memory for decoded images. T91 (about 11 MB decoded) then stays decoded after its first epoch;
#: DIV2K (about 7 GB) is mostly decoded per access, as it must be without an LMDB-like store.
DEFAULT_CACHE_BYTES = 256 << 20
# Separate seed streams, so an epoch's permutation and a sample's crop never share random numbers.
_EPOCH_STREAM = 0
_SAMPLE_STREAM = 1


# --- Sampling ---------------------------------------------------------------------------------------------


class CropSpec(NamedTuple):
    """Where sample g comes from: image index, crop corner in the image, and which of the 8 transforms."""

    image: int
    top: int
    left: int
    transform: int


def dihedral(x: torch.Tensor, transform: int) -> torch.Tensor:
    """One of the 8 flips/rotations of the last two (square) dims: `transform % 4` quarter turns, then a
    left-right flip if `transform >= 4`. Exact pixel permutations, so they never change a pixel value."""
    if not 0 <= transform < TRANSFORMS:
        raise SrevalError(f"transform must be in 0..{TRANSFORMS - 1}, got {transform}")
    x = torch.rot90(x, transform % 4, dims=(-2, -1))
    return x.flip(-1) if transform >= 4 else x


class RandomCrops(Dataset[torch.Tensor]):
    """Sample g of the stream: a uint8 (3, crop, crop) HR crop, a function of (seed, g) only (module docstring).

    Grayscale images are repeated to 3 channels. The index space is unbounded; use a batch sampler that
    yields global sample indices (`make_loader` does).
    """

    def __init__(self, images: TrainingImages, seed: int, *, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if seed < 0:
            raise SrevalError(f"seed must be a non-negative integer, got {seed}")
        self.images = images
        self.crop = images.crop
        self.seed = seed
        self.cache_bytes = cache_bytes
        self._decoded: dict[int, np.ndarray] = {}
        self._decoded_bytes = 0
        self._orders: dict[int, np.ndarray] = {}

    def order(self, epoch: int) -> np.ndarray:
        """The permutation of image indices that epoch `epoch` visits."""
        order = self._orders.get(epoch)
        if order is None:
            if len(self._orders) >= 4:  # a batch spans two epochs at most, unless it holds more samples than images
                del self._orders[next(iter(self._orders))]
            rng = np.random.default_rng([self.seed, _EPOCH_STREAM, epoch])
            order = self._orders[epoch] = rng.permutation(len(self.images))
        return order

    def sample(self, g: int) -> CropSpec:
        """What sample `g` is, without decoding anything."""
        if g < 0:
            raise SrevalError(f"sample index must be non-negative, got {g}")
        epoch, position = divmod(g, len(self.images))
        image = int(self.order(epoch)[position])
        width, height = self.images.sizes[image]
        rng = np.random.default_rng([self.seed, _SAMPLE_STREAM, g])
        top = int(rng.integers(0, height - self.crop + 1))
        left = int(rng.integers(0, width - self.crop + 1))
        return CropSpec(image, top, left, int(rng.integers(0, TRANSFORMS)))

    def __getitem__(self, g: int) -> torch.Tensor:
        spec = self.sample(g)
        pixels = self._pixels(spec.image)
        patch = pixels[spec.top : spec.top + self.crop, spec.left : spec.left + self.crop]
        chw = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)
        if chw.shape[0] == 1:
            chw = chw.expand(3, -1, -1)
        return dihedral(chw, spec.transform).contiguous()

    def _pixels(self, index: int) -> np.ndarray:
        pixels = self._decoded.get(index)
        if pixels is not None:
            return pixels
        path = self.images.paths[index]
        pixels = load_image(path).pixels
        width, height = self.images.sizes[index]
        if pixels.shape[:2] != (height, width):
            raise SrevalError(
                f"training image '{path}' is {pixels.shape[1]}×{pixels.shape[0]} but was {width}×{height} when the "
                "folder was indexed; it changed during training"
            )
        # Kept until the budget is full, then nothing more: images are drawn in a random order, so which
        # image was used last predicts nothing, and evicting (LRU) would only churn at the same hit rate.
        if self._decoded_bytes + pixels.nbytes <= self.cache_bytes:
            self._decoded[index] = pixels
            self._decoded_bytes += pixels.nbytes
        return pixels


class StepBatches(Sampler[list[int]]):
    """Global sample indices of this rank's share of each step's batch, for steps `start`, `start`+1, ...

    Rank r of `world_size` gets positions [r·b, (r+1)·b) of each global batch, b = batch / world_size.
    """

    def __init__(
        self, batch: int, *, start: int = 0, stop: int | None = None, rank: int = 0, world_size: int = 1
    ) -> None:
        if batch < 1:
            raise SrevalError(f"batch size must be positive, got {batch}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise SrevalError(f"rank {rank} is not in 0..{world_size - 1} (world size {world_size})")
        if batch % world_size:
            raise SrevalError(
                f"global batch size {batch} is not divisible by the {world_size} processes; choose a batch size "
                f"that is a multiple of {world_size} (each process takes an equal share of every batch)"
            )
        if start < 0 or (stop is not None and stop < start):
            raise SrevalError(f"invalid step range {start}..{stop}")
        self.batch = batch
        self.share = batch // world_size
        self.start = start
        self.stop = stop
        self.rank = rank

    def __iter__(self) -> Iterator[list[int]]:
        steps = itertools.count(self.start) if self.stop is None else range(self.start, self.stop)
        for step in steps:
            first = step * self.batch + self.rank * self.share
            yield list(range(first, first + self.share))

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("an unbounded step range has no length")
        return self.stop - self.start


def make_loader(
    images: TrainingImages,
    *,
    batch: int,
    seed: int,
    start_step: int = 0,
    stop_step: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 2,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    pin_memory: bool | None = None,
) -> DataLoader[torch.Tensor]:
    """HR batches, uint8 (batch / world_size, 3, crop, crop), for steps start_step, ... (forever without stop_step).

    `batch` is the global batch over all ranks. `workers` processes decode and crop (0: in this process); they
    do not change the batches. Memory is pinned by default when CUDA is available, for fast host-to-GPU copies.
    """
    if workers < 0:
        raise SrevalError(f"workers must be 0 or more, got {workers}")
    sampler = StepBatches(batch, start=start_step, stop=stop_step, rank=rank, world_size=world_size)
    return DataLoader(
        RandomCrops(images, seed, cache_bytes=cache_bytes),
        batch_sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
    )


# --- LR inputs --------------------------------------------------------------------------------------------


def make_lr(hr: torch.Tensor, scale: int = 4, *, variant: Variant = "uint8") -> torch.Tensor:
    """LR batch from a uint8 HR batch (N, C, H, W) with MATLAB's bicubic `imresize(hr, 1/scale)`, on hr's device.

    H and W must be multiples of `scale`, so LR and HR pixels line up exactly.
    """
    if hr.dtype != torch.uint8 or hr.ndim != 4:
        raise SrevalError(f"make_lr expects a uint8 (N, C, H, W) batch, got {hr.dtype} {tuple(hr.shape)}")
    height, width = hr.shape[-2:]
    if scale < 1 or height % scale or width % scale:
        raise SrevalError(f"HR size {height}×{width} is not a multiple of the scale {scale}")
    # size= rather than scale=1/scale: the same weights (out/in is the same double as 1/scale), and no
    # ceil(H × (1/3)) landing one pixel high for scales whose reciprocal is inexact.
    return imresize(hr, size=(height // scale, width // scale), variant=variant)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1] (the scale the models train at)."""
    if x.dtype != torch.uint8:
        raise SrevalError(f"to_unit expects uint8 pixels, got {x.dtype}")
    return x.to(torch.float32).div_(255)
