"""The catalogue of model files sreval does not ship: for each, what it is, where it comes from, its licence and
the hashes that identify it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sreval import settings


@dataclass(frozen=True)
class Asset:
    name: str
    filename: str
    subdir: str  # conventional folder name under an assets root (e.g. `niqe/modelparameters.mat`)
    #: Full SHA-256, or a hex prefix (torchvision names checkpoints by the first 8 digits), or None when no
    #: trusted checksum is known to sreval (the file is then used as it is and reported as unverified).
    sha256: str | None
    description: str
    source: str  # where a user gets the file, in words
    #: Public download URLs, tried in order (mirrors); empty when the file cannot be fetched by sreval.
    urls: tuple[str, ...] = ()
    #: Exact size in bytes, when known: a download of another size is refused before it is hashed.
    size: int | None = None
    #: Git blob id (`sha1(b"blob %d\0" % size + content)`) of the file as committed to a public repository: a
    #: content hash anyone can recompute where no SHA-256 is published.
    git_blob: str | None = None
    #: The asset's own licence, in a few words (sreval never redistributes it; the user downloads it).
    licence: str = "unknown"
    #: Where the pinned hashes come from.
    hash_source: str = ""

    def standard_locations(self) -> list[Path]:
        if self.name == "vgg19":
            return [settings.torch_home() / "hub" / "checkpoints" / self.filename]
        return []


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            "niqe",
            "modelparameters.mat",
            "niqe",
            "fa2aa4d12dd9595c3fb6bf8b4e1a15c79d5d1469238d0901c88dead195be578d",
            "NIQE pristine model (mu_prisparam, cov_prisparam) of the LIVE MATLAB release",
            "LIVE NIQE release (also vendored in the PIRM 2018 repository, utils/niqe_release/modelparameters.mat)",
        ),
        Asset(
            "nrqm",
            "NRQM_model.mat",
            "nrqm",
            None,
            "Ma et al.'s NRQM regression model (random forests + linear weights), needed for Ma's score and PI",
            "Ma et al.'s sr-metric release (model.mat) or pyiqa's NRQM_model.mat release file",
        ),
        Asset(
            "vgg19",
            "vgg19-dcbb9e9d.pth",
            "vgg19",
            "dcbb9e9d",
            "VGG19 ImageNet weights (torchvision) for perceptual and texture losses",
            "torchvision's vgg19 ImageNet checkpoint",
        ),
        Asset(
            "enhancenet-pat",
            "weights",
            "EnhanceNet-PAT",
            "4250b3dc5e69c5bd625e90543fd588ce2fff88510f874f9e9394c48c44b96434",
            "official EnhanceNet-PAT ×4 generator (TensorFlow 1 checkpoint; licence CC BY-NC-ND 4.0, research use, "
            "unmodified file only)",
            "the `weights` file of github.com/msmsajjadi/EnhanceNet-Code (commit a7309ca)",
        ),
        Asset(
            "esrgan-official",
            "RRDB_ESRGAN_x4.pth",
            "ESRGAN",
            "65fece06e1ccb48853242aa972bdf00ad07a7dd8938d2dcbdf4221b59f6372ce",
            "official ESRGAN ×4 generator (RRDBNet, GAN-trained; PyTorch state dict in the authors' key layout)",
            "the ESRGAN authors' release (github.com/xinntao/ESRGAN, models/RRDB_ESRGAN_x4.pth)",
            size=66_929_193,
            git_blob="0521c0b19ef7f83c1272cfc65357cde47e5ff3eb",
        ),
        Asset(
            "esrgan-psnr-official",
            "RRDB_PSNR_x4.pth",
            "ESRGAN",
            None,
            "official ESRGAN ×4 PSNR-oriented generator (RRDBNet trained with L1 only; the authors' key layout)",
            "the ESRGAN authors' release (github.com/xinntao/ESRGAN, models/RRDB_PSNR_x4.pth)",
            git_blob="58cb696fb7b42ed9a858ccd227713dbff329edb2",
        ),
    )
}
