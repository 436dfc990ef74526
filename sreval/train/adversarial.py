"""Adversarial losses (SRGAN, EnhanceNet-PAT, ESRGAN): logits in, means over the batch.

The losses take the discriminator's logits (the sigmoid lives in the loss: softplus(−x) = −log σ(x) is
finite for any x, log(σ(x)) is not). Relativistic average GAN (ESRGAN Eq. 1–2): D_Ra(x_r, x_f) = σ(C(x_r) −
E[C(x_f)]); L_D = −E[log D_Ra(x_r, x_f)] − E[log(1 − D_Ra(x_f, x_r))], L_G the same with real and fake swapped.
The authors' code (BasicSR codes/models/SRRaGAN_model.py, later basicsr/models/esrgan_model.py) averages the two
terms instead of adding them, and λ = 5·10⁻³ belongs to that code, so both functions return the average.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gan_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Standard (non-saturating) GAN generator loss −E[log D(G(z))] (SRGAN Eq. 6, EnhanceNet L_A)."""
    return F.softplus(-fake_logits).mean()


def gan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−E[log D(x)] − E[log(1 − D(G(z)))] (SRGAN Eq. 2, as a loss to minimise)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def ragan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """ESRGAN Eq. 1 as the authors' code computes it (the mean of its two terms, not their sum):

    ½(−E[log σ(C(x_r) − E C(x_f))] − E[log(1 − σ(C(x_f) − E C(x_r)))]).
    """
    real_rel = real_logits - fake_logits.mean()
    fake_rel = fake_logits - real_logits.mean()
    return (F.softplus(-real_rel).mean() + F.softplus(fake_rel).mean()) / 2


def ragan_generator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """ESRGAN Eq. 2, the discriminator loss with real and fake swapped: ½(−E[log(1 − D_Ra(x_r, x_f))] −
    E[log D_Ra(x_f, x_r)]).

    Gradients reach the generator through both terms (via E[C(x_f)] in the first), which is the point of the
    relativistic form; detaching `real_logits` is the caller's choice (the discriminator is frozen anyway).
    """
    return ragan_discriminator_loss(fake_logits, real_logits)
