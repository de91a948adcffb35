#!/usr/bin/env python3
"""Make the int8 variant of EfficientNet-Lite0 with ONNX Runtime's static quantisation.

    .venv/bin/python tools/quantize_lite0.py [--catalog DIR] [--out models/efficientnet-lite0-int8.onnx]

Calibration: 100 photos of the Kaggle catalogue (every 400th file in name order), prepared
exactly as lookalike prepares catalogue photos (pad on white to a square, 224 px, bicubic,
(x - 127) / 128). QDQ format, per-channel int8 weights, uint8 activations. Needs numpy,
pillow, onnx and onnxruntime (the .venv of scripts/setup.sh plus `pip install onnx`).
"""
import argparse
import os
import tempfile

import numpy as np
from PIL import Image
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

S = 224


def prepare(path):
    im = Image.open(path).convert("RGB")
    w, h = im.size
    long = max(w, h)
    nw, nh = max(1, int(w * S / long + 0.5)), max(1, int(h * S / long + 0.5))
    im = im.resize((nw, nh), Image.BICUBIC)
    canvas = Image.new("RGB", (S, S), (255, 255, 255))
    canvas.paste(im, ((S - nw) // 2, (S - nh) // 2))
    x = (np.asarray(canvas, dtype=np.float32) - 127.0) / 128.0
    return x.transpose(2, 0, 1)[None]


class Photos(CalibrationDataReader):
    def __init__(self, files):
        self.it = iter(files)

    def get_next(self):
        f = next(self.it, None)
        return None if f is None else {"input": prepare(f)}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(here, "../models/efficientnet-lite0.onnx"))
    ap.add_argument("--catalog", default=os.path.join(here, "../../shared/data/fashion-product-images-small/images"))
    ap.add_argument("--out", default=os.path.join(here, "../models/efficientnet-lite0-int8.onnx"))
    a = ap.parse_args()
    files = [os.path.join(a.catalog, f) for f in sorted(os.listdir(a.catalog))[::400][:100]]
    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(a.model, pre, skip_symbolic_shape=True)
        quantize_static(pre, a.out, Photos(files), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    print(a.out, os.path.getsize(a.out), "bytes")


if __name__ == "__main__":
    main()
