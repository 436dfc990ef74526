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
        """Where other tools keep this file already: torchvision's checkpoint cache, pyiqa's model cache."""
        hub = settings.torch_home() / "hub"
        if self.name == "vgg19":
            return [hub / "checkpoints" / self.filename]
        if self.name == "nrqm":
            return [hub / "pyiqa" / self.filename]
        return []


_SR_METRIC = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
_FINETUNE_ESRGAN = (
    "https://raw.githubusercontent.com/johnjaniczek/finetune_ESRGAN/452c01fedc20eeec319517c716cde87cf39f4d70"
)
_PYIQA_HF = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/67f48567fc02bc5f0c280256ec547a69a7ae29a2"

ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            "niqe",
            "modelparameters.mat",
            "niqe",
            "fa2aa4d12dd9595c3fb6bf8b4e1a15c79d5d1469238d0901c88dead195be578d",
            "NIQE pristine model (mu_prisparam, cov_prisparam) of the LIVE MATLAB release; sreval ships the same "
            "numbers (metrics/data/niqe_pristine.json), so this file is optional",
            "LIVE NIQE release (also vendored in the PIRM 2018 repository, utils/niqe_release/modelparameters.mat)",
            urls=(
                "https://raw.githubusercontent.com/roimehrez/PIRM2018/d585552a22b4eb95ddcb23a6edb74a0a3a5d6fbf/"
                "utils/niqe_release/modelparameters.mat",
                "https://raw.githubusercontent.com/xmyhhh/SR-Metrics/626479d81e67dc039dba1f072030182c7321b940/"
                "metrics/MetricEvaluation/matlab/utils/+niqe/modelparameters.mat",
            ),
            size=8_347,
            git_blob="3b212e8643102209c2354f4c8b74ecc8359f8e3c",
            licence="LIVE/UT Austin notice: copying and use permitted with the notice kept and LIVE cited",
            hash_source="SHA-256 and size recomputed from the file; Git blob of utils/niqe_release/modelparameters.mat "
            "in roimehrez/PIRM2018 at d585552 (the same blob in xmyhhh/SR-Metrics at 626479d)",
        ),
        Asset(
            "nrqm",
            "NRQM_model.mat",
            "nrqm",
            None,
            "Ma et al.'s NRQM regression model as pyiqa distributes it (random forests + linear weights), for Ma's "
            "score and PI",
            "pyiqa's NRQM_model.mat (Hugging Face chaofengc/IQA-PyTorch-Weights, or the IQA-PyTorch v0.1-weights "
            "release); pyiqa keeps it in ~/.cache/torch/hub/pyiqa",
            urls=(
                f"{_PYIQA_HF}/NRQM_model.mat",
                "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/NRQM_model.mat",
            ),
            licence="model: Ma et al., sr-metric (MIT); pyiqa's weight collection: CC BY-NC-SA 4.0",
            hash_source="none published: pyiqa downloads this file without a checksum (hash_prefix=None) and no "
            "public page states its SHA-256 or size; sreval uses it unverified. The authors' own file is the pinned "
            "asset nrqm-original",
        ),
        Asset(
            "nrqm-original",
            "model.mat",
            "sr-metric",
            None,
            "Ma et al.'s NRQM regression model as the authors released it (model.mat of their sr-metric code)",
            "the `model.mat` of github.com/chaoma99/sr-metric",
            urls=tuple(
                _SR_METRIC.format(repo=repo, commit=commit, path=path)
                for repo, commit, path in (
                    ("chaoma99/sr-metric", "51218dbd5a1a5827cec9259b2fe0024b0b8702d4", "model.mat"),
                    ("onordberg/sr-metric", "c8956f9374131bbebab3bc97c4c1187124f0e5c1", "model.mat"),
                    ("Timmate/sr-metric-fixed-for-linux", "330bf93619a522776f383093a5ac6d387ff95b86", "model.mat"),
                    (
                        "xmyhhh/SR-Metrics",
                        "626479d81e67dc039dba1f072030182c7321b940",
                        "metrics/MetricEvaluation/matlab/utils/srmetric/model.mat",
                    ),
                )
            ),
            git_blob="a852aefb6a49e52703044fee4fa60c3f5b8d5adc",
            licence="MIT (Chao Ma, 2020; the sr-metric repository)",
            hash_source="Git blob of model.mat in chaoma99/sr-metric (added in 9a978ec, unchanged at 51218db); the "
            "same blob in the forks onordberg/sr-metric, Timmate/sr-metric-fixed-for-linux and in xmyhhh/SR-Metrics; "
            "no SHA-256 or size is published",
        ),
        Asset(
            "vgg19",
            "vgg19-dcbb9e9d.pth",
            "vgg19",
            "dcbb9e9d",
            "VGG19 ImageNet weights (torchvision) for perceptual and texture losses",
            "torchvision's vgg19 ImageNet checkpoint",
            urls=("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",),
            licence="torchvision (BSD-3-Clause); weights trained on ImageNet, whose terms limit use to research",
            hash_source="the 8-hex SHA-256 prefix in the file name, which torchvision checks on download "
            "(check_hash); no full SHA-256 or exact size is published",
        ),
        Asset(
            "enhancenet-pat",
            "weights",
            "EnhanceNet-PAT",
            "4250b3dc5e69c5bd625e90543fd588ce2fff88510f874f9e9394c48c44b96434",
            "official EnhanceNet-PAT ×4 generator (TensorFlow 1 checkpoint; licence CC BY-NC-ND 4.0, research use, "
            "unmodified file only)",
            "the `weights` file of github.com/msmsajjadi/EnhanceNet-Code (commit a7309ca)",
            urls=(
                "https://raw.githubusercontent.com/msmsajjadi/EnhanceNet-Code/"
                "a7309caf804ea1b10c1f973a6da9fc68658cbc47/weights",
            ),
            size=3_418_142,
            git_blob="1293517e5646aded991b77fbc21092fe66e791db",
            licence="CC BY-NC-ND 4.0 (Sajjadi et al.): non-commercial, no modified copies",
            hash_source="Git blob of `weights` in msmsajjadi/EnhanceNet-Code at a7309ca (a plain file, not Git LFS); "
            "SHA-256 and size recomputed from that blob",
        ),
        Asset(
            "esrgan-official",
            "RRDB_ESRGAN_x4.pth",
            "ESRGAN",
            "65fece06e1ccb48853242aa972bdf00ad07a7dd8938d2dcbdf4221b59f6372ce",
            "official ESRGAN ×4 generator (RRDBNet, GAN-trained; PyTorch state dict in the authors' key layout)",
            "the ESRGAN authors' release (github.com/xinntao/ESRGAN, models/RRDB_ESRGAN_x4.pth)",
            urls=(
                "https://github.com/cszn/KAIR/releases/download/v1.0/ESRGAN.pth",
                f"{_FINETUNE_ESRGAN}/models/RRDB_ESRGAN_x4.pth",
            ),
            size=66_929_193,
            git_blob="0521c0b19ef7f83c1272cfc65357cde47e5ff3eb",
            licence="Apache-2.0 (the ESRGAN repository)",
            hash_source="SHA-256 as pinned for KAIR's ESRGAN.pth (the same file) in public download scripts; Git "
            "blob of models/RRDB_ESRGAN_x4.pth in johnjaniczek/finetune_ESRGAN at 452c01f",
        ),
        Asset(
            "esrgan-psnr-official",
            "RRDB_PSNR_x4.pth",
            "ESRGAN",
            "f372b59f22929e1bc83fa58d78215c96f976de3b2eaeee736da1b348913da6cc",
            "official ESRGAN ×4 PSNR-oriented generator (RRDBNet trained with L1 only; the authors' key layout)",
            "the ESRGAN authors' release (github.com/xinntao/ESRGAN, models/RRDB_PSNR_x4.pth)",
            urls=(f"{_FINETUNE_ESRGAN}/models/RRDB_PSNR_x4.pth",),
            git_blob="58cb696fb7b42ed9a858ccd227713dbff329edb2",
            licence="Apache-2.0 (the ESRGAN repository)",
            hash_source="SHA-256 as pinned for the authors' RRDB_PSNR_x4.pth in public evaluation code; Git blob of "
            "models/RRDB_PSNR_x4.pth in johnjaniczek/finetune_ESRGAN at 452c01f; the exact size is not published",
        ),
    )
}
