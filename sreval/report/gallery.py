"""The gallery of a study report: side-by-side centre crops of the rated stimuli, as PNG data URIs."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import pandas as pd
from PIL import Image

from sreval.errors import ParameterError, SrevalError
from sreval.imageio import load_image
from sreval.report.html import esc, fmt
from sreval.vocabulary import StimulusKind

#: The smallest crop side: below it a crop shows too little of a stimulus to compare methods.
MIN_CROP = 8


def check_gallery(images: int, crop: int, *, images_parameter: str = "images") -> None:
    """Refuse a gallery of a negative number of images or of crops smaller than `MIN_CROP` pixels; the caller
    names its own parameter for the number of images."""
    if images < 0:
        raise ParameterError(images_parameter, f"{images_parameter} must be at least 0, got {images}")
    if crop < MIN_CROP:
        raise ParameterError("crop", f"crop must be at least {MIN_CROP} pixels, got {crop}")


def center_crop_png(path: Path, size: int) -> tuple[str, tuple[int, int]]:
    """A data URI of the central `size` × `size` pixels of an image (smaller images whole), and the image size."""
    pixels = load_image(path).pixels
    height, width = pixels.shape[:2]
    h, w = min(size, height), min(size, width)
    top, left = (height - h) // 2, (width - w) // 2
    crop = pixels[top : top + h, left : left + w]
    image = Image.fromarray(crop[:, :, 0] if crop.shape[2] == 1 else crop)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), (width, height)


def gallery(stimuli: pd.DataFrame, ratings: pd.DataFrame, methods: list[str], *, images: int, crop: int) -> str:
    """Per image (the first `images` by dataset and name), the centre crops of every rated method side by side,
    each captioned with its method and per-image MOS (and the reference when the study rates `hr`)."""
    check_gallery(images, crop)
    test = stimuli[stimuli["kind"] == StimulusKind.TEST.value]
    image_mos = ratings.groupby(["method", "dataset", "image"])["score"].mean()
    order = {m: i for i, m in enumerate(methods)}
    blocks = []
    chosen = sorted({(str(d), str(i)) for d, i in zip(test["dataset"], test["image"], strict=True)})[:images]
    for dataset, image in chosen:
        shown = test[(test["dataset"] == dataset) & (test["image"] == image)]
        shown = shown.assign(order=shown["method"].map(lambda m: order.get(str(m), len(order)))).sort_values("order")
        figures = []
        for row in shown.to_dict("records"):
            method = str(row["method"])
            try:
                uri, (width, height) = center_crop_png(Path(str(row["path"])), crop)
            except (SrevalError, OSError) as exc:
                figures.append(f'<figure class="crop"><figcaption>{esc(method)}: cannot read the stimulus '
                               f"({esc(exc)})</figcaption></figure>")  # fmt: skip
                continue
            score = image_mos.get((method, dataset, image), math.nan)
            figures.append(
                f'<figure class="crop"><img src="{uri}" alt="{esc(method)}" width="{min(crop, width)}" '
                f'height="{min(crop, height)}"><figcaption><b>{esc(method)}</b><br>MOS {fmt(score, 2)}'
                "</figcaption></figure>"
            )
        blocks.append(f'<div class="gallery-row"><h3>{esc(dataset)} / {esc(image)}</h3>'
                      f'<div class="crops">{"".join(figures)}</div></div>')  # fmt: skip
    return "".join(blocks)
