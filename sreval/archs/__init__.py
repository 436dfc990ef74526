"""SR network architectures, one module per family, built by name with `create_model`; readers of foreign
checkpoints (the official EnhanceNet-PAT TF1 file, the official ESRGAN .pth files), found by name with
`weight_loader`.

The family modules are imported here explicitly (no folder scanning) so that importing `sreval.archs`
registers every model and every checkpoint reader, and nothing else.
"""

from sreval.archs import (
    enhancenet,
    enhancenet_official,
    esrgan_discriminator,
    esrgan_official,
    rrdbnet,
    srgan_discriminator,
    srresnet,
)
from sreval.archs.registry import (
    WeightLoader,
    create_model,
    model_names,
    register_model,
    register_weight_loader,
    weight_loader,
    weight_loader_names,
)

__all__ = [
    "WeightLoader",
    "create_model",
    "enhancenet",
    "enhancenet_official",
    "esrgan_discriminator",
    "esrgan_official",
    "model_names",
    "register_model",
    "register_weight_loader",
    "rrdbnet",
    "srgan_discriminator",
    "srresnet",
    "weight_loader",
    "weight_loader_names",
]
