#!/usr/bin/env python3
"""Make an int8 variant of a fashion model (issue 31) with ONNX Runtime's static
quantisation, and the manifest that lets `lookalike index --model` use it.

    training/.venv/bin/python tools/quantize_fashion.py --model models/lookalike-fashion-3.onnx \
        --out target/int8/lookalike-fashion-3-int8.onnx

Calibration, as lookalike prepares each kind of photo: 120 catalogue photos (every 370th
file of the Kaggle catalogue in name order, padded on white to a 128 px square) and 80
shopper snapshots of `street-photos-train` (every 30th in name order, centre square,
160 px): never the held-out items' scores or the 300 test street photos. QDQ format,
per-channel int8 weights, uint8 activations; every output (embedding, class
probabilities, mask) kept. Writes OUT and OUT with `.toml` (the model's spec: 128 px
studio, 160 px snapshots, its class heads file copied beside it).
"""
import argparse
import os
import shutil
import tempfile

import numpy as np
from PIL import Image, ImageOps
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

STUDIO, SNAPSHOT = 128, 160


def normalise(im):
    x = (np.asarray(im, dtype=np.float32) - 127.0) / 128.0
    return x.transpose(2, 0, 1)[None]


def padded(path, side):
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = im.size
    s = side / max(w, h)
    im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(im, ((side - im.size[0]) // 2, (side - im.size[1]) // 2))
    return normalise(canvas)


def cropped(path, side):
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return normalise(im.resize((side, side), Image.BICUBIC))


class Photos(CalibrationDataReader):
    def __init__(self, tensors):
        self.it = iter(tensors)

    def get_next(self):
        t = next(self.it, None)
        return None if t is None else {"input": t}


MANIFEST = """# Written by tools/quantize_fashion.py: {name}, the int8 variant of {base}.
name = "{name}"
file = "{file}"
input = "input"
output = "embedding"
layout = "nchw"
size = {studio}
resize = "pad"
mean = [0.4980392156862745, 0.4980392156862745, 0.4980392156862745]
std = [0.5019607843137255, 0.5019607843137255, 0.5019607843137255]
dim = 256
query_size = {snapshot}
heads = "{heads}"
mask = "mask"
"""


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    data = os.path.join(here, "..", "..", "shared", "data")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--catalog", default=os.path.join(data, "fashion-product-images-small", "images"))
    ap.add_argument("--snapshots", default=os.path.join(data, "street-photos-train", "images"))
    a = ap.parse_args()
    studio = [os.path.join(a.catalog, f) for f in sorted(os.listdir(a.catalog))[::370][:120]]
    snaps = [os.path.join(a.snapshots, f) for f in sorted(os.listdir(a.snapshots))[::30][:80]]
    tensors = [padded(f, STUDIO) for f in studio] + [cropped(f, SNAPSHOT) for f in snaps]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(a.model, pre, skip_symbolic_shape=True)
        quantize_static(pre, a.out, Photos(tensors), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    base = os.path.splitext(os.path.basename(a.model))[0]
    name = os.path.splitext(os.path.basename(a.out))[0]
    heads = name + ".heads.json"
    shutil.copyfile(os.path.splitext(a.model)[0] + ".heads.json", os.path.join(os.path.dirname(os.path.abspath(a.out)), heads))
    manifest = os.path.splitext(a.out)[0] + ".toml"
    with open(manifest, "w") as f:
        f.write(MANIFEST.format(name=name, base=base, file=os.path.basename(a.out), studio=STUDIO,
                                snapshot=SNAPSHOT, heads=heads))
    print(a.out, os.path.getsize(a.out), "bytes;", manifest)


if __name__ == "__main__":
    main()
