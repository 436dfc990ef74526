"""Ratings with a known structure for the analysis tests: a synthetic study drawn from the P.910 model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sreval.analysis import validate_ratings


def synthetic_study(seed: int = 1, raters: int = 8, images: int = 6, retest: float = 0.2) -> pd.DataFrame:
    """Long ratings of nn < bicubic < srgan < hr on two datasets, from the P.910 model (rounded, clipped)."""
    rng = np.random.default_rng(seed)
    quality = {"nn": 1.5, "bicubic": 2.3, "srgan": 3.7, "hr": 4.5}
    offsets = rng.normal(0, 0.3, (2, images))  # image effects, shared by all raters
    rows = []
    for r in range(raters):
        bias, upsilon = rng.normal(0, 0.3), abs(rng.normal(0, 0.4)) + 0.2
        for k, dataset in enumerate(("set5", "set14")):
            for image in range(images):
                offset = offsets[k, image]
                for method, q in quality.items():
                    for repetition in (1, 2) if rng.random() < retest else (1,):
                        latent = q + offset + bias + upsilon * rng.normal()
                        score = np.clip(np.floor(latent + 0.5), 1, 5)
                        rows.append({
                            "rater": f"r{r:02d}", "stimulus": f"{method}-{dataset}-{image}", "method": method,
                            "dataset": dataset, "image": f"im{image}", "repetition": repetition, "score": score,
                        })  # fmt: skip
    return validate_ratings(pd.DataFrame(rows))
