#!/usr/bin/env python3
"""Build a tiny, deterministic ONNX image-embedding model for the engine's
"any user ONNX model + manifest" path (tests/fixtures/tiny-model/).

    pixel_values float32 [batch, 32, 32, 3]   NHWC, already normalised by the caller
      -> Transpose to NCHW
      -> Conv 3->16 3x3 s1 p1 + Relu
      -> Conv 16->32 3x3 s2 p1 + Relu      (16x16)
      -> Conv 32->64 1x1                    (no activation, so features can be negative)
      -> GlobalMaxPool -> Flatten
    features     float32 [batch, 64]

Weights are seeded numpy (He-normal), so the file is byte-for-byte reproducible.
The manifest describes the preprocessing the engine must apply (pad to square on
white, resize to 32, ImageNet mean/std in 0..1 pixel scale).

Usage: python tools/make_test_model.py [--out-dir tests/fixtures/tiny-model]
"""

import argparse
import hashlib
import os
import sys

import numpy as np

SEED = 20240601
MANIFEST = """\
name = "tiny-test"
file = "tiny.onnx"
input = "pixel_values"
output = "features"
layout = "nhwc"
size = 32
resize = "pad"          # pad to square on white, or "crop"
mean = [0.485, 0.456, 0.406]   # in 0..1 pixel scale
std = [0.229, 0.224, 0.225]
dim = 64
"""


def build():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(SEED)

    def he(o, i, k):
        return (rng.standard_normal((o, i, k, k)) * np.sqrt(2.0 / (i * k * k))).astype(np.float32)

    def bias(o):
        return (rng.standard_normal(o) * 0.05).astype(np.float32)

    inits = []

    def init(name, arr):
        inits.append(numpy_helper.from_array(arr, name))
        return name

    layers = [("conv1", 3, 16, 3, 1, 1, True), ("conv2", 16, 32, 3, 2, 1, True), ("conv3", 32, 64, 1, 1, 0, False)]
    nodes = [helper.make_node("Transpose", ["pixel_values"], ["nchw"], name="to_nchw", perm=[0, 3, 1, 2])]
    x = "nchw"
    for name, ci, co, k, s, p, relu in layers:
        w, b = init(name + ".weight", he(co, ci, k)), init(name + ".bias", bias(co))
        y = name + (".conv" if relu else "")
        nodes.append(helper.make_node("Conv", [x, w, b], [y], name=name, kernel_shape=[k, k],
                                      strides=[s, s], pads=[p, p, p, p]))
        if relu:
            nodes.append(helper.make_node("Relu", [y], [name], name=name + ".relu"))
            y = name
        x = y
    nodes.append(helper.make_node("GlobalMaxPool", [x], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["features"], name="flatten", axis=1))
    graph = helper.make_graph(
        nodes, "tiny-test",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 32, 32, 3])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 64])],
        initializer=inits,
        doc_string="Tiny random-weight test model (NHWC input, global max pooling). Not meaningful features.",
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="lookalike tools/make_test_model.py", producer_version="1")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=os.path.join("tests", "fixtures", "tiny-model"))
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    data = build().SerializeToString(deterministic=True)
    if len(data) >= 100_000:
        raise SystemExit(f"tiny.onnx is {len(data)} bytes, want < 100 KB")
    path = os.path.join(args.out_dir, "tiny.onnx")
    with open(path, "wb") as f:
        f.write(data)
    with open(os.path.join(args.out_dir, "manifest.toml"), "w") as f:
        f.write(MANIFEST)

    try:  # smoke test
        import onnxruntime as ort
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
        (y,) = sess.run(["features"], {"pixel_values": x})
        assert y.shape == (2, 64) and np.isfinite(y).all(), y.shape
        print(f"onnxruntime smoke test OK: features {y.shape}, sample[0,:4] {np.round(y[0, :4], 4).tolist()}")
    except ImportError:
        print("onnxruntime not installed; skipped smoke test")
    print(f"wrote {path} ({len(data)} bytes) and manifest.toml")
    print(f"sha256 {hashlib.sha256(data).hexdigest()}  {path}")


if __name__ == "__main__":
    sys.exit(main())
