"""The TF1 checkpoint reader and the official EnhanceNet-PAT pipeline, against TensorFlow's own results.

`tests/data/tf1/` was made by TensorFlow (tools/make_tf1_fixtures.py) from random weights: a V1 checkpoint of a
small EnhanceNet built with the official graph, TF's output for an image, TF's reading of every variable, and a
TF1 bicubic resize. The official weights themselves are only read (their licence forbids derived copies).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sreval import assets
from sreval.archs.enhancenet_official import (
    OFFICIAL_MEAN,
    load_official_enhancenet,
    load_official_state_dict,
    official_downsample,
    official_quantise,
)
from sreval.archs.tf1_checkpoint import CheckpointError, read_tf1_checkpoint
from sreval.archs.tf1_resize import tf1_resize_bicubic
from sreval.errors import SrevalError

FIXTURES = Path(__file__).parent / "data" / "tf1"
CKPT = FIXTURES / "tiny_enhancenet.ckpt"


@pytest.fixture(scope="module")
def tf_ref() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "tiny_enhancenet.npz") as f:
        return dict(f)


def test_reader_returns_exactly_what_tensorflow_reads(tf_ref: dict[str, np.ndarray]) -> None:
    ours = read_tf1_checkpoint(CKPT)
    theirs = {k.removeprefix("var:"): v for k, v in tf_ref.items() if k.startswith("var:")}
    assert set(ours) == set(theirs)
    assert len(ours) == 18
    for name, value in theirs.items():
        assert ours[name].dtype == value.dtype and ours[name].shape == value.shape, name
        np.testing.assert_array_equal(ours[name], value, err_msg=name)


def test_tf1_bicubic_matches_tensorflow(tf_ref: dict[str, np.ndarray]) -> None:
    x = torch.from_numpy(tf_ref["resize_input"]).permute(0, 3, 1, 2)
    ours = tf1_resize_bicubic(x, 4).permute(0, 2, 3, 1).numpy()
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, tf_ref["resize_output"], rtol=0, atol=1e-6)
    # and it is not torch's bicubic (different kernel and pixel alignment), so the test can tell them apart
    torch_bicubic = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic").permute(0, 2, 3, 1).numpy()
    assert np.abs(torch_bicubic - tf_ref["resize_output"]).max() > 0.05


def test_tiny_official_graph_output_matches_tensorflow(tf_ref: dict[str, np.ndarray]) -> None:
    model = load_official_enhancenet(CKPT)
    assert len(model.body) == 2 and model.head.out_channels == 8
    x = torch.from_numpy(tf_ref["image"]).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        out = model(x)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, tf_ref["output"], rtol=0, atol=1e-5)


def test_state_dict_layout() -> None:
    state, blocks = load_official_state_dict(CKPT)
    assert blocks == 2
    assert state["head.weight"].shape == (8, 3, 3, 3)  # HWIO (3, 3, 3, 8) → OIHW
    assert state["conv_last.weight"].shape == (3, 8, 3, 3)
    assert torch.equal(state["mean"].flatten(), torch.tensor(OFFICIAL_MEAN))


def test_damaged_or_foreign_files_are_refused(tmp_path: Path) -> None:
    data = CKPT.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "no_magic": data[:-8] + b"\0" * 8,
        "empty": b"",
        "png": (Path(__file__).parent / "data").joinpath("tf1", "tiny_enhancenet.npz").read_bytes()[:4096],
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=str(path)):
            read_tf1_checkpoint(path)
    with pytest.raises(CheckpointError, match="cannot read"):
        read_tf1_checkpoint(tmp_path / "missing")
    # a block body damaged in place: values no longer line up with the declared shapes (or entries break)
    damaged = bytearray(data)
    damaged[40:60] = b"\xff" * 20
    (tmp_path / "damaged").write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError):
        read_tf1_checkpoint(tmp_path / "damaged")


def test_quantise_is_scipy_toimage_rounding() -> None:
    y = torch.tensor([-0.1, 0.0, 0.5 / 255, 1.49 / 255, 254.5 / 255, 1.0, 1.3])
    expected = (np.clip(255 * y.numpy(), 0, 255) + 0.5).astype(np.uint8)
    assert official_quantise(y).tolist() == expected.tolist() == [0, 0, 1, 1, 255, 255, 255]


def test_official_downsample_is_pil_lanczos_on_rgb() -> None:
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, size=(40, 24, 3), dtype=np.uint8)
    lr = official_downsample(hr)
    assert lr.shape == (10, 6, 3)
    np.testing.assert_array_equal(lr, np.asarray(Image.fromarray(hr).resize((6, 10), Image.Resampling.LANCZOS)))
    gray = official_downsample(hr[..., :1])
    assert gray.shape == (10, 6, 3) and (gray[..., 0] == gray[..., 2]).all()


def test_tf1_bicubic_rejects_wrong_rank() -> None:
    with pytest.raises(SrevalError, match="expects"):
        tf1_resize_bicubic(torch.zeros(3, 4, 4), 4)


def test_official_weights_load(enhancenet_weights: Path) -> None:
    assert assets.resolve("enhancenet-pat", explicit=enhancenet_weights) == enhancenet_weights  # checksum pinned
    model = load_official_enhancenet(enhancenet_weights)
    assert len(model.body) == 10
    assert sum(p.numel() for p in model.parameters()) == 852_867
    # on a flat grey image the net must return (nearly) that grey: a wrong layout or transpose would not
    x = torch.full((1, 3, 16, 16), 0.5)
    with torch.inference_mode():
        out = model(x)
    assert out.shape == (1, 3, 64, 64)
    assert abs(float(out[..., 8:-8, 8:-8].mean()) - 0.5) < 0.05
