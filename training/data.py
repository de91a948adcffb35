"""Training data: the catalogue (held-out split left out), shopper snapshots, backgrounds,
and the batch augmentations that turn studio shots into home snapshots.

Splits (must agree with the Rust side):
  catalogue  `in_holdout(id)`: first 8 bytes of BLAKE3(id), little-endian, % 100 < 20
             (src/split.rs). Held-out items are never read for training.
  street     `street_in_test(file)`: the same hash of the file name, % 100 < 30: those
             300 photos are only ever evaluated; the other 700 may be trained on.

Two sources: the Kaggle layout under --data (`Catalogue`, `Snapshots`: the shipped
model's recipe), or a shop's own folder and CSV (`OwnCatalogue`, `Snapshots.from_csv`:
`train.py --catalog DIR --metadata CSV --label COLUMN`), split by the same rules.
"""

import csv
import os
import time

import blake3
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

HOLDOUT_PERCENT = 20
STREET_TEST_PERCENT = 30
SQUARE = 80  # catalogue photos are 60x80: padded to 80x80 on white, never resampled
STREET_SIDE = 200  # snapshots are kept at this square size in memory
WHITE = 240  # a pixel whose channels are all >= this is studio background


def _bucket(text):
    return int.from_bytes(blake3.blake3(text.encode()).digest()[:8], "little") % 100


def in_holdout(item_id):
    return _bucket(item_id) < HOLDOUT_PERCENT


def street_in_test(file_name):
    return _bucket(file_name) < STREET_TEST_PERCENT


def in_validation(item_id, percent):
    """A slice of the training split kept out of training to choose settings on (the
    held-out split is for reporting only). Salted, so it is not a slice of the holdout."""
    return not in_holdout(item_id) and _bucket("validation:" + item_id) < percent


def log(*a):
    print(*a, flush=True)


def read_csv(path):
    # utf-8-sig: a byte-order mark must not become part of the first column's name.
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def pad_square(im, side):
    """Fit the long side to `side` and centre on white (as lookalike pads)."""
    im = ImageOps.exif_transpose(im).convert("RGB")
    w, h = im.size
    if max(w, h) != side:
        s = side / max(w, h)
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(im, ((side - im.size[0]) // 2, (side - im.size[1]) // 2))
    return np.asarray(canvas)


def crop_square(im, side):
    """Centre square, resized to `side` (as lookalike squares a snapshot)."""
    im = ImageOps.exif_transpose(im).convert("RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return np.asarray(im.resize((side, side), Image.BICUBIC))


def garment_masks(images):
    """Foreground masks of studio shots: background is the near-white region connected to
    the border (white parts inside a garment stay garment). uint8 [N, H, W] in {0, 1}."""
    out = np.empty(images.shape[:3], np.uint8)
    for start in range(0, len(images), 2048):
        x = torch.from_numpy(images[start:start + 2048])
        white = (x.min(dim=3).values >= WHITE).float()[:, None]
        seed = torch.zeros_like(white)
        seed[..., 0, :] = 1
        seed[..., -1, :] = 1
        seed[..., :, 0] = 1
        seed[..., :, -1] = 1
        bg = seed * white
        for _ in range(images.shape[1]):
            nxt = F.max_pool2d(bg, 3, 1, 1) * white
            if torch.equal(nxt, bg):
                break
            bg = nxt
        out[start:start + 2048] = (1 - bg[:, 0]).to(torch.uint8).numpy()
    return out


# The levels above articleType, outermost first (train.py --hierarchy).
PARENT_COLUMNS = ("masterCategory", "subCategory")


class Catalogue:
    """Every catalogue photo with a row, padded to 80x80, plus labels and masks."""

    def __init__(self, root, cache_dir):
        rows = read_csv(os.path.join(root, "styles.csv"))
        img_dir = os.path.join(root, "images")
        present = {os.path.splitext(f)[0] for f in os.listdir(img_dir)}
        rows = [r for r in rows if r.get("id", "").strip() in present]
        rows.sort(key=lambda r: r["id"])
        self.ids = [r["id"].strip() for r in rows]
        self.types = [r.get("articleType", "").strip() for r in rows]
        self.colours = [r.get("baseColour", "").strip() for r in rows]
        self.parents = [[r.get(c, "").strip() for r in rows] for c in PARENT_COLUMNS]
        os.makedirs(cache_dir, exist_ok=True)
        cache = os.path.join(cache_dir, f"catalogue-{len(self.ids)}-{SQUARE}.npy")
        if os.path.exists(cache):
            self.images = np.load(cache, mmap_mode=None)
        else:
            t = time.time()
            self.images = np.empty((len(self.ids), SQUARE, SQUARE, 3), np.uint8)
            for i, item in enumerate(self.ids):
                with Image.open(os.path.join(img_dir, item + ".jpg")) as im:
                    self.images[i] = pad_square(im, SQUARE)
                if i % 5000 == 0:
                    log(f"decoding catalogue {i}/{len(self.ids)}")
            np.save(cache + ".tmp.npy", self.images)
            os.replace(cache + ".tmp.npy", cache)
            log(f"decoded {len(self.ids)} catalogue photos in {time.time() - t:.0f} s")
        mcache = cache.replace(".npy", "-masks.npy")
        if os.path.exists(mcache):
            self.masks = np.load(mcache)
        else:
            self.masks = garment_masks(self.images)
            np.save(mcache + ".tmp.npy", self.masks)
            os.replace(mcache + ".tmp.npy", mcache)
        self.holdout = np.array([in_holdout(i) for i in self.ids])

    def validation(self, percent):
        return np.array([in_validation(i, percent) for i in self.ids])


class Snapshots:
    """Labelled shopper photos: street photos (training part, or the fixed test part), the
    extra training-only street photos, and the sample catalogue.

    `classes[i]` names what a photo shows (its match list, e.g. "Dresses|Tops"), so that
    sampling can give every kind of garment the same weight whatever its count."""

    def __init__(self, street_root, sample_root, type_index, split, extra_roots=()):
        self.images, self.targets, self.names, self.classes = [], [], [], []
        sources = [(street_root, split)] + [(r, "all") for r in extra_roots]
        for root, keep in sources:
            for r in read_csv(os.path.join(root, "queries.csv")):
                if keep != "all" and (keep == "test") != street_in_test(r["file"]):
                    continue
                types = [t for t in r["match_article_types"].split("|") if t in type_index]
                if not types:
                    continue
                with Image.open(os.path.join(root, "images", r["file"])) as im:
                    self.images.append(crop_square(im, STREET_SIDE) if split == "train" else np.asarray(ImageOps.exif_transpose(im).convert("RGB")))
                self.targets.append([type_index[t] for t in types])
                self.names.append(r["file"])
                self.classes.append("|".join(sorted(types)))
        self.n_street = len(self.images)
        if split == "train" and sample_root:
            for r in read_csv(os.path.join(sample_root, "styles.csv")):
                t = r.get("articleType", "").strip()
                path = None
                for ext in (".jpg", ".jpeg", ".png"):
                    p = os.path.join(sample_root, "images", r["id"].strip() + ext)
                    if os.path.exists(p):
                        path = p
                        break
                if t not in type_index or path is None:
                    continue
                with Image.open(path) as im:
                    self.images.append(crop_square(im, STREET_SIDE))
                self.targets.append([type_index[t]])
                self.names.append(os.path.basename(path))
                self.classes.append(t)
        if split == "train":
            self.images = np.stack(self.images)

    @classmethod
    def from_csv(cls, path, column, type_index, split):
        """A shop's labelled snapshots: a CSV naming `file` (relative to the CSV's folder)
        and the label column's value, or several separated by `|`. The photos whose file
        name hashes into the test part (`street_in_test`, as `lookalike eval --queries
        --holdout` keeps them) are only evaluated (`split` "test"), the rest trained on."""
        self = cls.__new__(cls)
        self.images, self.targets, self.names, self.classes = [], [], [], []
        folder = os.path.dirname(os.path.abspath(path))
        rows = read_csv(path)
        if rows and ("file" not in rows[0] or column not in rows[0]):
            raise SystemExit(f"{path} needs 'file' and '{column}' columns (found: {', '.join(rows[0])})")
        for r in rows:
            file = (r["file"] or "").strip()
            if (split == "test") != street_in_test(os.path.basename(file)):
                continue
            types = [t.strip() for t in (r[column] or "").split("|") if t.strip() in type_index]
            if not file or not types:
                continue
            with Image.open(os.path.join(folder, file)) as im:
                self.images.append(crop_square(im, STREET_SIDE) if split == "train" else np.asarray(ImageOps.exif_transpose(im).convert("RGB")))
            self.targets.append([type_index[t] for t in types])
            self.names.append(file)
            self.classes.append("|".join(sorted(types)))
        self.n_street = len(self.images)
        if split == "train":
            self.images = np.stack(self.images) if self.images else np.zeros((0, STREET_SIDE, STREET_SIDE, 3), np.uint8)
        return self

    def weights(self, power):
        """Sampling weights: a class of n photos gets n^(1 - power) of the draws (power 1:
        every class equally often; 0: every photo equally often)."""
        count = {}
        for c in self.classes:
            count[c] = count.get(c, 0) + 1
        w = np.array([count[c] ** -power for c in self.classes], np.float64)
        return w / w.sum()


# File extensions taken as photos: lookalike's own (src/catalog/mod.rs IMAGE_EXTENSIONS).
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def scan_photos(root):
    """(id, path) of every photo below `root`, recursively, as `lookalike index` finds
    them: entries of a folder in name order, depth first, hidden names skipped, the id is
    the file stem and the first path wins when two photos share an id."""
    out, seen = [], set()

    def walk(folder):
        for name in sorted(os.listdir(folder)):
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                walk(path)
            elif os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                stem = os.path.splitext(name)[0]
                if stem not in seen:
                    seen.add(stem)
                    out.append((stem, path))

    walk(root)
    return out


class OwnCatalogue:
    """A shop's catalogue: the photos found in a folder, joined with a metadata CSV on its
    `id` column; `types` are the values of the label column (one class head), `colours`
    those of `baseColour` when the CSV has that column (a second head), else empty.
    Photos of any size are padded on white to `side` (as lookalike pads), once: the
    decoded photos are cached in `cache_dir`, keyed by the files' names, sizes and times."""

    def __init__(self, root, metadata, label, side, cache_dir):
        rows = read_csv(metadata)
        columns = list(rows[0].keys()) if rows else []
        for need in ("id", label):
            if need not in columns:
                raise SystemExit(f"{metadata} has no '{need}' column (columns: {', '.join(columns)})")
        self.colour_column = "baseColour" if "baseColour" in columns and label != "baseColour" else None
        by_id = {}
        for r in rows:
            by_id.setdefault((r.get("id") or "").strip(), r)
        photos = scan_photos(root)
        found = len(photos)
        photos = [(i, p) for i, p in photos if (by_id.get(i, {}).get(label) or "").strip()]
        photos.sort(key=lambda x: x[0])
        self.stats = {"photos_found": found, "labelled": len(photos), "csv_rows": len(rows)}
        key = blake3.blake3()
        for i, p in photos:
            st = os.stat(p)
            key.update(f"{i}\0{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        os.makedirs(cache_dir, exist_ok=True)
        cache = os.path.join(cache_dir, f"catalogue-{key.hexdigest()[:16]}-{side}.npy")
        if os.path.exists(cache):
            self.images = np.load(cache)
            keep = np.load(cache.replace(".npy", "-kept.npy"))
        else:
            t = time.time()
            images, keep = [], []
            for n, (i, p) in enumerate(photos):
                try:
                    with Image.open(p) as im:
                        images.append(pad_square(im, side))
                    keep.append(True)
                except (OSError, ValueError) as e:
                    log(f"left out {p}: {e}")
                    keep.append(False)
                if n % 2000 == 0:
                    log(f"decoding catalogue {n}/{len(photos)}")
            self.images = np.stack(images) if images else np.zeros((0, side, side, 3), np.uint8)
            keep = np.array(keep, bool)
            np.save(cache + ".tmp.npy", self.images)
            np.save(cache.replace(".npy", "-kept.tmp.npy"), keep)
            os.replace(cache.replace(".npy", "-kept.tmp.npy"), cache.replace(".npy", "-kept.npy"))
            os.replace(cache + ".tmp.npy", cache)
            log(f"decoded {len(images)} catalogue photos in {time.time() - t:.0f} s")
        photos = [x for x, k in zip(photos, keep) if k]
        self.stats["unreadable"] = int((~keep).sum())
        self.ids = [i for i, _ in photos]
        self.types = [by_id[i][label].strip() for i in self.ids]
        self.colours = [(by_id[i].get(self.colour_column) or "").strip() if self.colour_column else ""
                        for i in self.ids]
        self.masks = garment_masks(self.images)
        self.holdout = np.array([in_holdout(i) for i in self.ids], bool)

    def validation(self, percent):
        return np.array([in_validation(i, percent) for i in self.ids])


def balanced_weights(labels, power):
    """Per-row sampling weights that give a label of n rows n^(1 - power) of the draws."""
    count = {}
    for t in labels:
        count[t] = count.get(t, 0) + 1
    w = np.array([count[t] ** -power for t in labels], np.float64)
    return w / w.sum()


# Article types a shopper's photo is most often mistaken between (findings: laid-flat
# dresses called T-shirts, shirts called jackets, skirts called shorts, hoodies called
# T-shirts). Training asks a margin between each type and its neighbours.
NEIGHBOURS = [
    ["Shirts", "Jackets", "Blazers", "Waistcoat", "Nehru Jackets", "Rain Jacket", "Tshirts", "Tops", "Sweaters", "Sweatshirts"],
    ["Dresses", "Tops", "Tunics", "Kurtas", "Kurtis", "Tshirts", "Nightdress", "Jumpsuit", "Innerwear Vests", "Camisoles", "Skirts"],
    ["Trousers", "Shorts", "Jeans", "Track Pants", "Capris", "Skirts", "Leggings", "Lounge Pants", "Lounge Shorts", "Jeggings"],
    ["Sweatshirts", "Jackets", "Sweaters", "Tshirts", "Rain Jacket", "Shirts"],
    ["Caps", "Hat", "Headband"],
    ["Innerwear Vests", "Tshirts", "Tops", "Camisoles"],
]


# Colour families: baseColour's near-synonyms, for reporting colour beside the strict 46
# labels (practitioners merge Navy Blue into Blue and so on). Targets stay strict.
COLOUR_FAMILIES = {
    "blue": ["Blue", "Navy Blue", "Teal", "Turquoise Blue"],
    "white": ["White", "Off White", "Cream"],
    "black": ["Black", "Charcoal"],
    "grey": ["Grey", "Grey Melange", "Silver", "Steel", "Metallic"],
    "brown": ["Brown", "Coffee Brown", "Mushroom Brown", "Beige", "Tan", "Taupe", "Khaki", "Nude", "Skin"],
    "red": ["Red", "Maroon", "Burgundy", "Rust"],
    "pink": ["Pink", "Rose", "Magenta", "Peach"],
    "purple": ["Purple", "Lavender", "Mauve"],
    "green": ["Green", "Olive", "Sea Green", "Lime Green", "Fluorescent Green"],
    "yellow": ["Yellow", "Mustard", "Gold"],
    "orange": ["Orange", "Copper", "Bronze"],
    "multi": ["Multi"],
}
FAMILY_OF = {c: f for f, cs in COLOUR_FAMILIES.items() for c in cs}


def colour_family(colour):
    """The colour's family (COLOUR_FAMILIES), or the colour itself when it has none."""
    return FAMILY_OF.get(colour, colour)


def neighbour_matrix(type_index):
    """[n, n] bool: True where two different types are neighbours (NEIGHBOURS)."""
    n = len(type_index)
    m = np.zeros((n, n), bool)
    for group in NEIGHBOURS:
        ids = [type_index[t] for t in group if t in type_index]
        for a in ids:
            for b in ids:
                if a != b:
                    m[a, b] = True
    return torch.from_numpy(m)


def background_bank(snapshots, size, rng, n_textures=600):
    """Home-like backgrounds: border strips of the training snapshots (floors, beds, rugs,
    fabrics) and procedural textures (wood grain, stripes, checks, plaids, mottled
    fabrics), uint8 [N, size, size, 3]."""
    out = []
    for img in snapshots.images:
        s = img.shape[0]
        for strip in (img[:, : s * 3 // 10], img[:, -s * 3 // 10:], img[: s // 4], img[-s // 4:]):
            out.append(np.asarray(Image.fromarray(np.ascontiguousarray(strip)).resize((size, size), Image.BILINEAR)))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for _ in range(n_textures):
        base = rng.uniform(40, 230, 3)
        kind = rng.integers(0, 5)
        if kind == 0:  # wood grain / floorboards
            f = rng.uniform(8, 40)
            ang = rng.uniform(0, np.pi)
            u = xx * np.cos(ang) + yy * np.sin(ang)
            v = np.sin(u * f + 3 * np.sin((xx * np.sin(ang) - yy * np.cos(ang)) * rng.uniform(2, 6)))
            tex = v[..., None] * rng.uniform(10, 35)
            boards = (np.floor((xx * np.sin(ang) - yy * np.cos(ang)) * rng.uniform(3, 8)) % 2)[..., None]
            tex = tex + boards * rng.uniform(-20, 20)
        elif kind == 1:  # stripes
            f = rng.uniform(4, 30)
            u = xx if rng.random() < 0.5 else yy
            second = rng.uniform(40, 230, 3)
            t = (np.sin(u * f * 2 * np.pi) > rng.uniform(-0.5, 0.5))[..., None]
            tex = t * (second - base)
        elif kind == 2:  # checks and plaids
            f1, f2 = rng.uniform(3, 16, 2)
            second = rng.uniform(40, 230, 3)
            t = 0.5 * (np.sin(xx * f1 * 2 * np.pi) > 0) + 0.5 * (np.sin(yy * f2 * 2 * np.pi) > 0)
            tex = t[..., None] * (second - base)
        elif kind == 3:  # mottled fabric / carpet
            noise = rng.normal(0, 1, (size // 8, size // 8, 1)).astype(np.float32)
            noise = np.asarray(Image.fromarray(((noise[..., 0] + 3) * 40).clip(0, 255).astype(np.uint8)).resize((size, size), Image.BICUBIC), np.float32)[..., None] - 120
            tex = noise * rng.uniform(0.2, 0.8) + rng.normal(0, rng.uniform(2, 12), (size, size, 1))
        else:  # plain wall or sheet with a light gradient
            g = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))[..., None]
            tex = g * rng.uniform(10, 60)
        out.append(np.clip(base + tex, 0, 255).astype(np.uint8))
    return np.stack(out)


# ------------------------------------------------------------------ batch augmentation

MEAN = 127.0 / 255.0
STD = 128.0 / 255.0


def normalise(x):
    """0..1 RGB -> the model's input ((x*255 - 127) / 128)."""
    return (x - MEAN) / STD


def to_float(u8):
    return torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255.0


def _affine(n, gen, scale, rot_deg, shift, flip=True):
    """Per-sample affine grids' matrices: output -> input sampling coordinates."""
    s = torch.empty(n).uniform_(*scale, generator=gen)
    a = torch.empty(n).uniform_(-rot_deg, rot_deg, generator=gen) * np.pi / 180
    tx = torch.empty(n).uniform_(-shift, shift, generator=gen)
    ty = torch.empty(n).uniform_(-shift, shift, generator=gen)
    fx = torch.ones(n)
    if flip:
        fx = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * fx
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * fx
    theta[:, 1, 1] = cos
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    return theta


def _photometric(x, gen, strength):
    n = x.shape[0]
    b = 1 + torch.empty(n, 1, 1, 1).uniform_(-0.25, 0.2, generator=gen) * strength
    c = 1 + torch.empty(n, 1, 1, 1).uniform_(-0.2, 0.2, generator=gen) * strength
    wb = 1 + torch.empty(n, 3, 1, 1).uniform_(-0.06, 0.06, generator=gen) * strength
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * c + mean) * b * wb
    return x.clamp(0, 1)


def _blur(x, gen, p, max_sigma):
    n = x.shape[0]
    pick = torch.rand(n, generator=gen) < p
    if not pick.any():
        return x
    sig = float(torch.empty(1).uniform_(0.4, max_sigma, generator=gen))
    k = torch.arange(-2, 3, dtype=torch.float32)
    w = torch.exp(-(k ** 2) / (2 * sig * sig))
    w = w / w.sum()
    y = x[pick]
    c = y.shape[1]
    y = F.conv2d(F.pad(y, (2, 2, 0, 0), mode="replicate"), w.view(1, 1, 1, 5).repeat(c, 1, 1, 1), groups=c)
    y = F.conv2d(F.pad(y, (0, 0, 2, 2), mode="replicate"), w.view(1, 1, 5, 1).repeat(c, 1, 1, 1), groups=c)
    x = x.clone()
    x[pick] = y
    return x


def studio_batch(cat, idx, size, gen):
    """Catalogue photos as the catalogue is indexed (padded on white), lightly jittered."""
    img = to_float(cat.images[idx])
    msk = torch.from_numpy(cat.masks[idx]).float()[:, None]
    theta = _affine(len(idx), gen, (0.88, 1.06), 4, 0.05)
    grid = F.affine_grid(theta, (len(idx), 3, size, size), align_corners=False)
    # Outside the photo is studio white: pad with ones, not the border's colour.
    x = F.grid_sample(img - 1, grid, mode="bicubic", padding_mode="zeros", align_corners=False) + 1
    m = F.grid_sample(msk, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x = _photometric(x.clamp(0, 1), gen, 0.4)
    return x, m


def composite_batch(cat, idx, bank, size, gen, clutter=0.0):
    """Catalogue garments cut out by their masks and pasted onto home-like backgrounds,
    at a random scale, angle and place, under other light, blurred and noisy. With
    `clutter`, that share of them gets another garment of the batch behind it, centred
    near or past the frame's edge (above or below more often than beside): what a square
    cut around one garment of an outfit shows. The mask stays the garment's own."""
    n = len(idx)
    img = to_float(cat.images[idx])
    msk = torch.from_numpy(cat.masks[idx]).float()[:, None]
    # Scale < 1 shrinks the garment in the frame (a snapshot from further away).
    theta = _affine(n, gen, (0.55, 1.15), 25, 0.3)
    grid = F.affine_grid(theta, (n, 3, size, size), align_corners=False)
    fg = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
    a = F.grid_sample(msk, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    a = F.avg_pool2d(F.pad(a, (1, 1, 1, 1), mode="replicate"), 3, 1)  # soft edge
    pick = torch.randint(0, len(bank), (n,), generator=gen).numpy()
    bg = to_float(bank[pick])
    if bg.shape[-1] != size:
        bg = F.interpolate(bg, size=(size, size), mode="bilinear", align_corners=False)
    flip = torch.rand(n, generator=gen) < 0.5
    bg[flip] = bg[flip].flip(-1)
    # A soft shadow of the garment on the background.
    shadow = F.avg_pool2d(F.pad(a, (4, 4, 4, 4), mode="replicate"), 9, 1).roll(shifts=(3, 3), dims=(2, 3))
    bg = bg * (1 - 0.35 * shadow * torch.rand(n, 1, 1, 1, generator=gen))
    if clutter and n > 1:
        bg = _clutter(img.roll(1, 0), msk.roll(1, 0), bg, gen, clutter)
    x = a * fg + (1 - a) * bg
    # Uneven light across the photo.
    yy = torch.linspace(-1, 1, size).view(1, 1, size, 1)
    xx = torch.linspace(-1, 1, size).view(1, 1, 1, size)
    gx = torch.empty(n, 1, 1, 1).uniform_(-0.15, 0.15, generator=gen)
    gy = torch.empty(n, 1, 1, 1).uniform_(-0.15, 0.15, generator=gen)
    x = x * (1 + gx * xx + gy * yy)
    x = _photometric(x.clamp(0, 1), gen, 1.0)
    x = _blur(x, gen, 0.4, 1.3)
    x = x + torch.randn(x.shape, generator=gen) * float(torch.empty(1).uniform_(0, 0.025, generator=gen))
    return x.clamp(0, 1), a


def _clutter(img, msk, bg, gen, share):
    """Paste `img` (by `msk`) onto the chosen share of `bg`, each centred at a distance of
    0.85-1.3 half-frames from the middle, at 50-100 % of the frame's size."""
    n, size = bg.shape[0], bg.shape[-1]
    pick = torch.rand(n, generator=gen) < share
    s = torch.empty(n).uniform_(0.5, 1.0, generator=gen)
    d = torch.empty(n).uniform_(0.85, 1.3, generator=gen)
    # Mostly above or below (an outfit's neighbours), sometimes beside.
    vertical = torch.rand(n, generator=gen) < 0.7
    ang = torch.empty(n).uniform_(-0.5, 0.5, generator=gen)
    ang = torch.where(vertical, ang + np.pi / 2, ang) + torch.where(torch.rand(n, generator=gen) < 0.5, 0.0, np.pi)
    cx, cy = d * torch.cos(ang), d * torch.sin(ang)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1 / s
    theta[:, 1, 1] = 1 / s
    theta[:, 0, 2] = -cx / s
    theta[:, 1, 2] = -cy / s
    grid = F.affine_grid(theta, (n, 3, size, size), align_corners=False)
    fg = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
    a = F.grid_sample(msk, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    a = a * pick.view(n, 1, 1, 1)
    return a * fg + (1 - a) * bg


def snapshot_batch(snaps, idx, size, gen, strong=False):
    """Real snapshots: random crops (50-100 % of the area), flips, light jitter. `strong`
    (for photos seen ~20 times a run, whose homes repeat): crops down to a third of the
    area, more tilt, full-strength light, a tenth in grey, and half with a patch of noise
    over 5-25 % of the frame, so that no background, colour cast or single detail of a
    photo is enough to name its garment."""
    n = len(idx)
    img = to_float(snaps.images[idx])
    if strong:
        theta = _affine(n, gen, (1.0, 1.75), 15, 0.25)
    else:
        theta = _affine(n, gen, (1.0, 1.4), 10, 0.15)
    grid = F.affine_grid(theta, (n, 3, size, size), align_corners=False)
    x = F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    x = _photometric(x, gen, 1.0 if strong else 0.7)
    x = _blur(x, gen, 0.3 if strong else 0.2, 1.2 if strong else 1.0)
    if strong:
        grey = torch.rand(n, generator=gen) < 0.1
        x[grey] = x[grey].mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
        x = _erase(x, gen, 0.5, (0.05, 0.25))
    return x


def _erase(x, gen, p, area):
    """Random erasing: on a share `p` of the photos, a rectangle of `area` (share of the
    frame, aspect 1/3-3) replaced by noise."""
    n, _, h, w = x.shape
    x = x.clone()
    for i in range(n):
        if float(torch.rand(1, generator=gen)) >= p:
            continue
        a = float(torch.empty(1).uniform_(*area, generator=gen)) * h * w
        r = float(torch.empty(1).uniform_(np.log(1 / 3), np.log(3), generator=gen).exp())
        eh, ew = min(h, max(1, round((a * r) ** 0.5))), min(w, max(1, round((a / r) ** 0.5)))
        y0 = int(torch.randint(0, h - eh + 1, (1,), generator=gen))
        x0 = int(torch.randint(0, w - ew + 1, (1,), generator=gen))
        x[i, :, y0:y0 + eh, x0:x0 + ew] = torch.rand(3, eh, ew, generator=gen)
    return x
