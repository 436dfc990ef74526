"""Make the TensorFlow reference fixtures of tests/data/tf1/ (run with a Python that has TensorFlow; sreval itself
never needs it):

    python3 -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu pillow
    /tmp/tf/bin/python tools/make_tf1_fixtures.py tests/data/tf1

Writes, from random numbers only (nothing derived from the official EnhanceNet weights, whose licence forbids
redistributing derivatives):

* `tiny_enhancenet.ckpt`: a V1 checkpoint (`tf.compat.v1.train.Saver`, write_version V1, the format of the
  official release) of a small EnhanceNet generator (8 features, 2 residual blocks) built with the official
  graph: TF-slim-style `generator/Conv*/weights|biases`, SAME 3×3 convs, TF1 nearest ×2 upsampling, TF1 bicubic
  residual and the official per-channel means;
* `tiny_enhancenet.npz`: its input image (uint8), TensorFlow's float output for it, every variable as TensorFlow
  reads it back, and a TF1 `resize_bicubic` ×4 of a random float image.

With `--official PATH` it also prints how far sreval's reading of the official checkpoint and its output on a
test image are from TensorFlow's (nothing is written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
MEANS = np.array([0.47614917, 0.45001204, 0.40904046])


def conv(h: tf.Tensor, n: int, index: list[int]) -> tf.Tensor:
    scope = "Conv" if index[0] == 0 else f"Conv_{index[0]}"
    index[0] += 1
    with tf1.variable_scope(scope):
        w = tf1.get_variable("weights", [3, 3, int(h.shape[-1]), n], initializer=tf1.glorot_uniform_initializer())
        b = tf1.get_variable("biases", [n], initializer=tf1.random_uniform_initializer(-0.1, 0.1))
    return tf.nn.bias_add(tf.nn.conv2d(h, w, strides=1, padding="SAME"), b)


def upsample(h: tf.Tensor) -> tf.Tensor:
    size = [2 * tf.shape(h)[1], 2 * tf.shape(h)[2]]
    return tf1.image.resize_nearest_neighbor(h, size, align_corners=False, half_pixel_centers=False)


def generator(xs: tf.Tensor, feat: int, blocks: int) -> tf.Tensor:
    """The official graph (enhancenet.py + nnlib.py) with `feat` features and `blocks` residual blocks."""
    index = [0]
    with tf1.variable_scope("generator"):
        h = tf.nn.relu(conv(xs, feat, index))
        for _ in range(blocks):
            h = h + conv(tf.nn.relu(conv(h, feat, index)), feat, index)
        for _ in range(2):
            h = tf.nn.relu(conv(upsample(h), feat, index))
        h = tf.nn.relu(conv(h, feat, index))
        return conv(h, 3, index)


def official_output(img: np.ndarray, checkpoint: str) -> np.ndarray:
    """The official script's float output for `img` (uint8 HWC LR) with the official weights."""
    tf1.reset_default_graph()
    h, w = img.shape[:2]
    xs = tf1.placeholder(tf.float32, [1, h, w, 3])
    ys_est = generator(xs, 64, 10)
    ys_res = tf1.image.resize_bicubic(xs, [4 * h, 4 * w], align_corners=False, half_pixel_centers=False)
    ys_est += ys_res + MEANS
    with tf1.Session() as sess:
        tf1.train.Saver(write_version=tf1.train.SaverDef.V1).restore(sess, checkpoint)
        out: np.ndarray = sess.run(ys_est, feed_dict={xs: [img / 255 - MEANS]})[0]
    return out


def make_fixtures(out_dir: Path) -> None:
    tf1.disable_eager_execution()
    tf1.set_random_seed(4)
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, size=(11, 13, 3), dtype=np.uint8)
    out_dir.mkdir(parents=True, exist_ok=True)
    tf1.reset_default_graph()
    xs = tf1.placeholder(tf.float32, [1, 11, 13, 3])
    ys_est = generator(xs, 8, 2)
    ys_est += tf1.image.resize_bicubic(xs, [44, 52], align_corners=False, half_pixel_centers=False) + MEANS
    saver = tf1.train.Saver(write_version=tf1.train.SaverDef.V1)
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        out = sess.run(ys_est, feed_dict={xs: [img / 255 - MEANS]})[0]
        saver.save(sess, str(out_dir / "tiny_enhancenet.ckpt"), write_meta_graph=False, write_state=False)
    reader = tf.train.load_checkpoint(str(out_dir / "tiny_enhancenet.ckpt"))
    variables = {f"var:{k}": reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}
    small = rng.random((2, 5, 7, 3), dtype=np.float32)
    tf1.reset_default_graph()
    with tf1.Session() as sess:
        resized = sess.run(tf1.image.resize_bicubic(small, [20, 28], align_corners=False, half_pixel_centers=False))
    np.savez_compressed(
        out_dir / "tiny_enhancenet.npz", image=img, output=out, resize_input=small, resize_output=resized, **variables
    )
    print(f"wrote {out_dir}: {len(variables)} variables, output {out.shape}")


def compare_official(checkpoint: str) -> None:
    """Prints sreval vs TensorFlow on the official weights (needs sreval importable)."""
    import torch

    from sreval.archs.enhancenet_official import load_official_enhancenet
    from sreval.archs.tf1_checkpoint import read_tf1_checkpoint

    tf1.disable_eager_execution()
    ours = read_tf1_checkpoint(checkpoint)
    reader = tf.train.load_checkpoint(checkpoint)
    names = reader.get_variable_to_shape_map()
    assert set(names) == set(ours), set(names) ^ set(ours)
    worst = max(float(np.abs(reader.get_tensor(k) - ours[k]).max()) for k in names)
    print(f"checkpoint: {len(names)} variables, max |sreval − TF| = {worst}")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(24, 20, 3), dtype=np.uint8)
    tf_out = official_output(img, checkpoint)
    model = load_official_enhancenet(checkpoint)
    with torch.inference_mode():
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        our = model(x)[0].permute(1, 2, 0).numpy()
    diff = np.abs(our - tf_out)
    q = lambda y: (np.clip(255 * y, 0, 255) + 0.5).astype(np.uint8)  # noqa: E731
    print(
        f"output: max |sreval − TF| = {diff.max():.3g} (on [0,1]); uint8 pixels differing: "
        f"{int((q(our) != q(tf_out)).sum())} of {q(our).size}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path, nargs="?")
    parser.add_argument("--official", help="official EnhanceNet-PAT checkpoint: print sreval-vs-TF figures")
    args = parser.parse_args()
    if args.official:
        compare_official(args.official)
    if args.out_dir:
        make_fixtures(args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
