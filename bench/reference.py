#!/usr/bin/env python3
"""Python reference pipeline for lookalike's benchmarks ("Measure it").

A plain, typical Python implementation of what the Rust engine does -- decode, EXIF
orientation, RGB on white, "pad" (or "crop") resize, (x - 127) / 128, onnxruntime,
L2-normalise, exact cosine top-k -- used (a) as the throughput / latency baseline the Rust
side is compared with and (b) as the source of the reference quality figures.

Subcommands (run `reference.py SUBCOMMAND -h` for all options):

  index         embed a folder of images, save the float32 matrix (+ .ids.txt), print timings
  eval-loo      leave-one-out exact search over the catalogue: P@5 and mAP@10 by metadata
  eval-street   embed street (shopper) photos, search the catalogue: P@5 by articleType list
  search-bench  exact top-k latency with numpy (single query and batched)

Every subcommand prints one JSON line on stdout (progress goes to stderr).

Example (from the repository root; data in ../shared/data):
  bench/setup-venv.sh
  D=../shared/data
  bench/.venv/bin/python bench/reference.py index --images $D/fashion-product-images-small/images \
      --model models/efficientnet-lite0.onnx --size 224 --out /tmp/ref-lite0.npy
  bench/.venv/bin/python bench/reference.py eval-loo --emb /tmp/ref-lite0.npy \
      --styles $D/fashion-product-images-small/styles.csv -k 5
"""

import argparse
import collections
import csv
import io
import json
import math
import os
import sys
import time

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
STAGES = ("read", "decode", "resize_normalise", "inference")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def emit(obj):
    print(json.dumps(obj, separators=(", ", ": ")), flush=True)


# ------------------------------------------------------------------ image pipeline

def to_rgb(im):
    """Any mode -> RGB; transparency is composited on white (as the Rust side does)."""
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB") if im.mode != "RGB" else im


def decode(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    im = ImageOps.exif_transpose(im)
    return to_rgb(im)


def round_half_up(x):
    """Rust's f64::round (half away from zero) for positive x; Python's round() is half-even."""
    return int(math.floor(x + 0.5))


def square(im, size, mode):
    """RGB PIL image -> size x size RGB PIL image.

    pad:  scale so the LONG side is `size` (PIL BICUBIC), centre on a white square.
    crop: scale so the SHORT side is `size` (PIL BICUBIC), centre-crop size x size.
    """
    w, h = im.size
    if mode == "pad":
        long = max(w, h)
        nw = min(max(round_half_up(w * size / long), 1), size)
        nh = min(max(round_half_up(h * size / long), 1), size)
        fitted = im.resize((nw, nh), Image.BICUBIC)
        canvas = Image.new("RGB", (size, size), (255, 255, 255))
        canvas.paste(fitted, ((size - nw) // 2, (size - nh) // 2))
        return canvas
    if mode == "crop":
        short = min(w, h)
        nw = max(round_half_up(w * size / short), size)
        nh = max(round_half_up(h * size / short), size)
        scaled = im.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        return scaled.crop((left, top, left + size, top + size))
    raise ValueError(f"unknown resize mode {mode!r}")


def normalise(sq_u8):
    """uint8 HWC (or NHWC) -> float32 (x - 127) / 128, CHW (or NCHW)."""
    x = (sq_u8.astype(np.float32) - 127.0) / 128.0
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def list_images(folder, limit=None):
    names = sorted(n for n in os.listdir(folder) if os.path.splitext(n)[1].lower() in IMAGE_EXTS)
    if limit:
        names = names[:limit]
    return [os.path.join(folder, n) for n in names]


def prep_one(path, size, mode, times):
    """read -> decode -> square; returns uint8 HWC array or None (undecodable)."""
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        data = f.read()
    t1 = time.perf_counter()
    try:
        im = decode(data)
    except Exception as e:  # noqa: BLE001 -- report and skip, like the indexer
        log(f"skip {os.path.basename(path)}: {type(e).__name__}: {e}")
        times["decode"] += time.perf_counter() - t1
        times["read"] += t1 - t0
        return None
    t2 = time.perf_counter()
    sq = np.asarray(square(im, size, mode))
    t3 = time.perf_counter()
    times["read"] += t1 - t0
    times["decode"] += t2 - t1
    times["resize_normalise"] += t3 - t2
    return sq


def prep_batch(args):
    """Worker entry point: a list of paths -> (ok mask, uint8 NHWC array, stage times)."""
    paths, size, mode = args
    times = dict.fromkeys(STAGES, 0.0)
    arrs, ok = [], []
    for p in paths:
        a = prep_one(p, size, mode, times)
        ok.append(a is not None)
        if a is not None:
            arrs.append(a)
    batch = np.stack(arrs) if arrs else np.zeros((0, size, size, 3), np.uint8)
    return ok, batch, times


def make_session(model, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return sess, sess.get_inputs()[0].name


def l2_normalise(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def embed_paths(paths, model, size, mode, batch=32, threads=2, workers=0, progress=True):
    """Embed `paths` in order. Returns (ids, L2-normalised float32 matrix, stats dict).
    Images that fail to decode are skipped (counted in stats["failed"])."""
    sess, inp = make_session(model, threads)
    times = dict.fromkeys(STAGES, 0.0)
    ids, outs, failed = [], [], 0
    chunks = [paths[i:i + batch] for i in range(0, len(paths), batch)]
    done = 0
    t_start = time.perf_counter()
    last_log = t_start

    def infer(x):
        t = time.perf_counter()
        (e,) = sess.run(["embedding"], {inp: x})
        times["inference"] += time.perf_counter() - t
        return e

    def account(chunk, ok):
        nonlocal failed, done, last_log
        ids.extend(os.path.splitext(os.path.basename(p))[0] for p, k in zip(chunk, ok) if k)
        failed += ok.count(False)
        done += len(chunk)
        now = time.perf_counter()
        if progress and now - last_log > 15:
            last_log = now
            log(f"  {done}/{len(paths)} images, {done / (now - t_start):.1f} img/s")

    if workers <= 0:
        for chunk in chunks:
            arrs, ok = [], []
            for p in chunk:
                a = prep_one(p, size, mode, times)
                ok.append(a is not None)
                if a is not None:
                    arrs.append(a)
            if arrs:
                t = time.perf_counter()
                x = normalise(np.stack(arrs))
                times["resize_normalise"] += time.perf_counter() - t
                outs.append(infer(x))
            account(chunk, ok)
    else:
        # Decode + resize in worker processes, normalise + inference in this one; at most
        # 2 * workers batches in flight, so memory stays bounded and order is kept.
        import multiprocessing as mp
        with mp.get_context("fork").Pool(workers) as pool:
            pending = collections.deque()
            it = iter(chunks)
            for chunk in it:
                pending.append((chunk, pool.apply_async(prep_batch, ((chunk, size, mode),))))
                if len(pending) >= 2 * workers:
                    break
            while pending:
                chunk, res = pending.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt, pool.apply_async(prep_batch, ((nxt, size, mode),))))
                ok, arr, wt = res.get()
                for k in STAGES:
                    times[k] += wt[k]
                if len(arr):
                    t = time.perf_counter()
                    x = normalise(arr)
                    times["resize_normalise"] += time.perf_counter() - t
                    outs.append(infer(x))
                account(chunk, ok)
    seconds = time.perf_counter() - t_start
    emb = l2_normalise(np.concatenate(outs)) if outs else np.zeros((0, 0), np.float32)
    stats = {"images": len(ids), "failed": failed, "seconds": round(seconds, 3),
             "images_per_second": round(len(ids) / seconds, 2) if seconds else None,
             "stage_seconds": {k: round(v, 3) for k, v in times.items()}}
    return ids, emb, stats


def ids_path(emb_path):
    base = emb_path[:-4] if emb_path.endswith(".npy") else emb_path
    return base + ".ids.txt"


def load_emb(path):
    emb = np.load(path).astype(np.float32, copy=False)
    with open(ids_path(path)) as f:
        ids = [line.strip() for line in f if line.strip()]
    if len(ids) != len(emb):
        raise SystemExit(f"{path}: {len(emb)} rows but {len(ids)} ids")
    return ids, emb


def read_styles(path):
    """id -> row dict. Real-world CSV: quoted commas; a row with extra unquoted commas keeps
    the surplus in its last column."""
    out = {}
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        header = [h.strip() for h in next(r)]
        for row in r:
            if not row:
                continue
            if len(row) > len(header):
                row = row[:len(header) - 1] + [",".join(row[len(header) - 1:])]
            row += [""] * (len(header) - len(row))
            d = {h: v.strip() for h, v in zip(header, row)}
            out[d["id"]] = d
    return out


# ------------------------------------------------------------------ search

def topk_blocked(q, db, k, exclude_self=False, block=1024):
    """Exact cosine top-k (rows are L2-normalised): indices (nq, k), best first.
    With exclude_self, q must be db and row i never returns i."""
    nq = len(q)
    out = np.empty((nq, k), np.int64)
    for s in range(0, nq, block):
        sims = q[s:s + block] @ db.T
        if exclude_self:
            r = np.arange(len(sims))
            sims[r, s + r] = -np.inf
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        ps = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-ps, axis=1, kind="stable")
        out[s:s + block] = np.take_along_axis(part, order, axis=1)
    return out


# ------------------------------------------------------------------ subcommands

def cmd_index(a):
    paths = list_images(a.images, a.limit)
    if not paths:
        raise SystemExit(f"no images in {a.images}")
    log(f"index: {len(paths)} images from {a.images}, {a.model}, size {a.size}, mode {a.resize}, "
        f"batch {a.batch}, {a.threads} ORT threads, {a.workers or 'no'} worker processes")
    ids, emb, st = embed_paths(paths, a.model, a.size, a.resize, a.batch, a.threads, a.workers)
    if a.out:
        np.save(a.out, emb)
        with open(ids_path(a.out), "w") as f:
            f.write("\n".join(ids) + "\n")
    per_stage_ips = {k: (round(st["images"] / v, 1) if v else None) for k, v in st["stage_seconds"].items()}
    emit({"command": "index", "model": os.path.basename(a.model), "size": a.size, "resize": a.resize,
          "batch": a.batch, "ort_threads": a.threads, "workers": a.workers, **st,
          "stage_images_per_second": per_stage_ips,
          "note": "stage seconds are summed over worker processes (they overlap with inference)"
          if a.workers else "stages run one after another in one process", "out": a.out})


def precision_block(res_labels, q_labels):
    return (res_labels == q_labels[:, None]).mean(axis=1)


def cmd_eval_loo(a):
    ids, emb = load_emb(a.emb)
    styles = read_styles(a.styles)
    keep = [i for i, x in enumerate(ids) if x in styles]
    if len(keep) < len(ids):
        log(f"eval-loo: {len(ids) - len(keep)} embeddings have no styles row; dropped")
    emb = emb[keep]
    rows = [styles[ids[i]] for i in keep]
    n = len(rows)
    art = np.array([r["articleType"] for r in rows], dtype=object)
    sub = np.array([r["subCategory"] for r in rows], dtype=object)
    artcol = np.array([r["articleType"] + "\x1f" + r.get("baseColour", "") for r in rows], dtype=object)
    master = np.array([r["masterCategory"] for r in rows], dtype=object)
    K_MAP = 10
    kk = max(a.k, K_MAP)
    t = time.perf_counter()
    nn = topk_blocked(emb, emb, kk, exclude_self=True, block=a.block)
    search_s = time.perf_counter() - t

    p_art = (art[nn[:, :a.k]] == art[:, None]).mean(axis=1)
    p_sub = (sub[nn[:, :a.k]] == sub[:, None]).mean(axis=1)
    p_ac = (artcol[nn[:, :a.k]] == artcol[:, None]).mean(axis=1)

    # mAP@k (k = 10), articleType relevance. For each query q (excluded from its own results):
    #   R_q   = number of OTHER catalogue items with q's articleType
    #   rel(i) = 1 if the i-th result has q's articleType, else 0
    #   AP@k(q) = (1 / min(k, R_q)) * sum_{i=1..k} precision@i * rel(i)
    # and mAP@k is the mean of AP@k over queries. Queries with R_q = 0 (an articleType with a
    # single item) have no defined AP and are left out of the mean (counted in the output).
    counts = collections.Counter(art.tolist())
    r_q = np.array([counts[x] - 1 for x in art])
    rel = (art[nn[:, :K_MAP]] == art[:, None]).astype(np.float64)
    prec_i = np.cumsum(rel, axis=1) / np.arange(1, K_MAP + 1)
    has_rel = r_q > 0
    ap = np.zeros(n)
    ap[has_rel] = (prec_i * rel).sum(axis=1)[has_rel] / np.minimum(K_MAP, r_q[has_rel])

    def summary(mask):
        m2 = mask & has_rel
        return {"queries": int(mask.sum()),
                f"p@{a.k}_articleType": round(float(p_art[mask].mean()), 4),
                f"p@{a.k}_subCategory": round(float(p_sub[mask].mean()), 4),
                f"p@{a.k}_articleType+baseColour": round(float(p_ac[mask].mean()), 4),
                f"map@{K_MAP}_articleType": round(float(ap[m2].mean()), 4) if m2.any() else None}

    per_master = {m: summary(master == m) for m in sorted(set(master.tolist()), key=lambda m: -(master == m).sum())}
    emit({"command": "eval-loo", "emb": a.emb, "k": a.k, "catalogue": n,
          "queries_without_relevant_items": int((~has_rel).sum()), "search_seconds": round(search_s, 2),
          "overall": summary(np.ones(n, bool)), "per_masterCategory": per_master})


def cmd_eval_street(a):
    ids, emb = load_emb(a.emb)
    styles = read_styles(a.styles)
    art = np.array([styles[x]["articleType"] if x in styles else "" for x in ids], dtype=object)
    with open(a.queries, newline="", encoding="utf-8") as f:
        queries = list(csv.DictReader(f))
    paths = [os.path.join(a.images, q["file"]) for q in queries]
    log(f"eval-street: embedding {len(paths)} street photos ({a.query_resize}, size {a.size})")
    qids, qemb, st = embed_paths(paths, a.model, a.size, a.query_resize, a.batch, a.threads, 0)
    byname = {os.path.splitext(q["file"])[0]: q for q in queries}
    qs = [byname[i] for i in qids]
    nn = topk_blocked(qemb, emb, a.k)
    prec = np.array([np.mean([art[j] in set(q["match_article_types"].split("|")) for j in row])
                     for q, row in zip(qs, nn)])
    labels = np.array([q["label"] for q in qs], dtype=object)
    kids = np.array([q.get("kids", "").strip().lower() == "true" for q in qs])
    per_label = {lab: {"queries": int((labels == lab).sum()), f"p@{a.k}": round(float(prec[labels == lab].mean()), 4)}
                 for lab in sorted(set(labels.tolist()), key=lambda x: -(labels == x).sum())}
    emit({"command": "eval-street", "emb": a.emb, "model": os.path.basename(a.model), "size": a.size,
          "query_resize": a.query_resize, "k": a.k, "queries": len(qs), "failed": st["failed"],
          f"p@{a.k}": round(float(prec.mean()), 4),
          f"p@{a.k}_adults": round(float(prec[~kids].mean()), 4) if (~kids).any() else None,
          f"p@{a.k}_kids": round(float(prec[kids].mean()), 4) if kids.any() else None,
          "per_label": per_label, "embed": st})


def cmd_search_bench(a):
    ids, emb = load_emb(a.emb)
    rng = np.random.default_rng(a.seed)
    n, d = emb.shape

    def top1(q):
        s = emb @ q
        part = np.argpartition(-s, a.k)[:a.k]
        return part[np.argsort(-s[part], kind="stable")]

    qi = rng.choice(n, size=a.queries, replace=a.queries > n)
    for i in qi[:10]:  # warm-up
        top1(emb[i])
    lat = []
    for i in qi:
        q = emb[i].copy()
        t = time.perf_counter()
        top1(q)
        lat.append(time.perf_counter() - t)
    lat_ms = np.array(lat) * 1e3

    bsz = a.batch
    qb = emb[rng.choice(n, size=bsz, replace=bsz > n)].copy()
    topk_blocked(qb, emb, a.k, block=bsz)  # warm-up
    bt = []
    for _ in range(a.batch_repeats):
        t = time.perf_counter()
        topk_blocked(qb, emb, a.k, block=bsz)
        bt.append(time.perf_counter() - t)
    bt_ms = np.array(bt) * 1e3
    try:
        from threadpoolctl import threadpool_info  # optional
        blas_threads = [x.get("num_threads") for x in threadpool_info()]
    except ImportError:
        blas_threads = os.environ.get("OPENBLAS_NUM_THREADS", "default (all cores)")
    emit({"command": "search-bench", "emb": a.emb, "catalogue": n, "dim": d, "k": a.k,
          "single": {"queries": a.queries, "p50_ms": round(float(np.percentile(lat_ms, 50)), 3),
                     "p99_ms": round(float(np.percentile(lat_ms, 99)), 3),
                     "mean_ms": round(float(lat_ms.mean()), 3)},
          "batched": {"batch": bsz, "repeats": a.batch_repeats,
                      "median_batch_ms": round(float(np.median(bt_ms)), 2),
                      "per_query_ms": round(float(np.median(bt_ms)) / bsz, 4),
                      "queries_per_second": round(bsz / (float(np.median(bt_ms)) / 1e3), 1)},
          "blas_threads": blas_threads, "cpu_count": os.cpu_count()})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)

    def model_args(p):
        p.add_argument("--model", required=True, help="ONNX model with an 'embedding' output")
        p.add_argument("--size", type=int, default=224, help="model input side S")
        p.add_argument("--batch", type=int, default=32)
        p.add_argument("--threads", type=int, default=2, help="onnxruntime intra_op_num_threads")

    p = sp.add_parser("index", help="embed a folder of images")
    p.add_argument("--images", required=True)
    model_args(p)
    p.add_argument("--out", help="output .npy (ids go to <out without .npy>.ids.txt)")
    p.add_argument("--limit", type=int, help="only the first N images (sorted by file name)")
    p.add_argument("--resize", choices=["pad", "crop"], default="pad")
    p.add_argument("--workers", type=int, default=0,
                   help="decode + resize in N worker processes (0: everything in the main process)")
    p.set_defaults(func=cmd_index)

    p = sp.add_parser("eval-loo", help="leave-one-out retrieval quality on the catalogue")
    p.add_argument("--emb", required=True)
    p.add_argument("--styles", required=True)
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--block", type=int, default=1024, help="queries per matmul block")
    p.set_defaults(func=cmd_eval_loo)

    p = sp.add_parser("eval-street", help="street (shopper) photos against the catalogue")
    p.add_argument("--emb", required=True, help="catalogue embeddings")
    p.add_argument("--styles", required=True)
    p.add_argument("--queries", required=True, help="queries.csv: file,label,kids,match_article_types")
    p.add_argument("--images", required=True, help="folder of the street photos")
    model_args(p)
    p.add_argument("--query-resize", choices=["pad", "crop"], default="crop")
    p.add_argument("-k", type=int, default=5)
    p.set_defaults(func=cmd_eval_street)

    p = sp.add_parser("search-bench", help="exact top-k latency with numpy")
    p.add_argument("--emb", required=True)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--queries", type=int, default=200, help="single queries to time")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batch-repeats", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_search_bench)

    a = ap.parse_args(argv)
    a.func(a)


if __name__ == "__main__":
    main()
