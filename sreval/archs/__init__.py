"""SR network architectures, one module per family, built by name with `create_model`.

The family modules are imported here explicitly (no folder scanning) so that importing `sreval.archs`
registers every model and nothing else.
"""

from sreval.archs import enhancenet, esrgan_discriminator, rrdbnet, srgan_discriminator, srresnet
from sreval.archs.registry import create_model, model_names, register_model

__all__ = [
    "create_model",
    "enhancenet",
    "esrgan_discriminator",
    "model_names",
    "register_model",
    "rrdbnet",
    "srgan_discriminator",
    "srresnet",
]
