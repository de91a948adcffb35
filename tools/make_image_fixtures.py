#!/usr/bin/env python3
"""Build the image-format and bad-input test fixtures (tests/fixtures/formats/, tests/fixtures/bad/).

Every "good" file derives from one CC0 photo, sample-catalog image 1000.jpg (a black T-shirt
on a wooden floor; "clothing dataset" by Alexey Grigorev, CC0 1.0), downscaled to 84 x 112
(3:4, ~110 px tall, so that even the uncompressed BMP/TIFF stay under 30 KB).

formats/  cmyk.jpg  gray.jpg  rgb16.png  alpha.png  photo.webp  anim.gif
          rotated.jpg  upright.jpg  photo.bmp  photo.tiff
bad/      empty.jpg  truncated.jpg  text.jpg  garbage.png  huge.png  notes.txt

The output is deterministic (fixed seeds, no timestamps); byte-identical across runs with the
same Pillow/libjpeg/libwebp builds. After writing, the script re-opens every good file with
Pillow and checks it (mode, size, content vs the base image; EXIF transpose of rotated.jpg vs
upright.jpg) and checks that the bad files fail to decode; it exits non-zero on any failure.

Usage:
    .venv/bin/python tools/make_image_fixtures.py \
        [--source ../shared/data/sample-catalog/images/1000.jpg] [--out tests/fixtures]
"""

import argparse
import hashlib
import io
import os
import random
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageFilter, ImageOps

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOURCE = os.path.join(HERE, "..", "..", "shared", "data", "sample-catalog", "images", "1000.jpg")
BASE_SIZE = (84, 112)  # w, h
MAX_BYTES = 30 * 1024
SEED = 20240601
ORIENTATION = 0x0112


# ------------------------------------------------------------------ minimal PNG writer

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width, height, bit_depth, colour_type, raw_rows):
    """raw_rows: the already-filtered scanlines (each starting with its filter-type byte)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(raw_rows, 9)) + png_chunk(b"IEND", b""))


def png_rgb16(arr16):
    """16-bit RGB PNG (colour type 2, bit depth 16) from an (h, w, 3) uint16 array.
    Pillow cannot write 16-bit RGB, hence this writer. Each row uses filter 1 (Sub) on bytes
    (bpp = 6), which compresses photo data far better than filter 0."""
    h, w, _ = arr16.shape
    be = arr16.astype(">u2").tobytes()
    stride = w * 6
    out = bytearray()
    for y in range(h):
        row = np.frombuffer(be, np.uint8, stride, y * stride).astype(np.int16)
        sub = row.copy()
        sub[6:] = (row[6:] - row[:-6]) & 0xFF
        out += b"\x01" + sub.astype(np.uint8).tobytes()
    return png_bytes(w, h, 16, 2, bytes(out))


def png_huge():
    """A well-formed PNG whose IHDR declares 100000 x 100000 8-bit RGB (30 GB decoded) with a
    tiny IDAT holding a few zero bytes: decoders must refuse on the header, not allocate."""
    return png_bytes(100_000, 100_000, 8, 2, b"\x00" * 64)


def png_bomb(side=8000):
    """A decompression bomb: a valid side x side 8-bit RGBA PNG of zeros (side=8000: 64
    megapixels, 256 MB decoded) whose IDAT compresses to ~250 KB. Every row is decoded for
    real, so only a check of the declared size before decoding keeps its memory away."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + side * 4)
    parts = [comp.compress(row) for _ in range(side)]
    parts.append(comp.flush())
    return png_bytes_raw_idat(side, side, 8, 6, b"".join(parts))


def png_bytes_raw_idat(width, height, bit_depth, colour_type, idat):
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


# ------------------------------------------------------------------ fixtures

def base_image(source):
    im = Image.open(source)
    im = ImageOps.exif_transpose(im).convert("RGB")
    return im.resize(BASE_SIZE, Image.LANCZOS)


def garment_mask(base):
    """255 where the (dark) garment is, 0 on the (light wooden) floor; median-cleaned."""
    lum = np.asarray(base.convert("L"), dtype=np.int16)
    mask = Image.fromarray(np.where(lum < 80, 255, 0).astype(np.uint8), "L")
    return mask.filter(ImageFilter.MedianFilter(5))


def jpeg(im, **kw):
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, optimize=False, progressive=False, **kw)
    return buf.getvalue()


def encode(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def build(source):
    base = base_image(source)
    good, bad = {}, {}

    good["upright.jpg"] = jpeg(base)
    # Pixel data stored rotated 90 deg counter-clockwise; EXIF Orientation 6 ("rotate 90 CW to
    # display") makes an EXIF-honouring viewer show it upright, i.e. identical to upright.jpg.
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    good["rotated.jpg"] = jpeg(base.transpose(Image.ROTATE_90), exif=exif.tobytes())
    good["cmyk.jpg"] = jpeg(base.convert("CMYK"))
    good["gray.jpg"] = jpeg(base.convert("L"))

    arr16 = np.asarray(base, dtype=np.uint16) * 257  # 0..255 -> 0..65535 exactly
    good["rgb16.png"] = png_rgb16(arr16)

    rgba = base.convert("RGBA")
    mask = garment_mask(base)
    # Transparent pixels are (0, 0, 0, 0): compositing on white must give white, not black.
    rgba = Image.composite(rgba, Image.new("RGBA", BASE_SIZE, (0, 0, 0, 0)), mask)
    good["alpha.png"] = encode(rgba, "PNG", optimize=True)

    good["photo.webp"] = encode(base, "WEBP", quality=80, method=4)

    red = Image.new("RGB", BASE_SIZE, (255, 0, 0))
    frames = [f.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
              for f in (base, red)]
    good["anim.gif"] = encode(frames[0], "GIF", save_all=True, append_images=frames[1:],
                              duration=[500, 500], loop=0, disposal=1)

    good["photo.bmp"] = encode(base, "BMP")
    good["photo.tiff"] = encode(base, "TIFF")  # uncompressed, RGB, 8 bit

    with open(source, "rb") as f:
        real = f.read()
    bad["empty.jpg"] = b""
    bad["truncated.jpg"] = real[: len(real) * 40 // 100]
    bad["text.jpg"] = (b"This is not a JPEG. It is a plain text file that happens to have a .jpg\n"
                       b"extension; an image decoder must reject it with an error, not crash.\n")
    rng = random.Random(SEED)
    bad["garbage.png"] = b"\x89PNG\r\n\x1a\n" + bytes(rng.getrandbits(8) for _ in range(2048))
    bad["huge.png"] = png_huge()
    bad["notes.txt"] = (b"Notes for the catalogue team.\n\nThis folder sometimes holds files that are\n"
                        b"not images at all; the indexer should skip them and say so.\n")
    return base, good, bad


# ------------------------------------------------------------------ checks

def mean_abs_diff(a, b):
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


def verify(out_dir, base):
    fmt_dir, bad_dir = os.path.join(out_dir, "formats"), os.path.join(out_dir, "bad")
    ok = True

    def check(cond, msg):
        nonlocal ok
        print(("ok   " if cond else "FAIL ") + msg)
        ok &= bool(cond)

    expect = {  # file: (PIL format, PIL mode, max mean abs diff vs base, on the 0..255 scale)
        "upright.jpg": ("JPEG", "RGB", 4.0), "cmyk.jpg": ("JPEG", "CMYK", 6.0),
        "gray.jpg": ("JPEG", "L", None), "rgb16.png": ("PNG", None, 0.0),
        "alpha.png": ("PNG", "RGBA", None), "photo.webp": ("WEBP", "RGB", 6.0),
        "anim.gif": ("GIF", "P", 6.0), "photo.bmp": ("BMP", "RGB", 0.0),
        "photo.tiff": ("TIFF", "RGB", 0.0), "rotated.jpg": ("JPEG", "RGB", None),
    }
    for name, (fmt, mode, tol) in expect.items():
        path = os.path.join(fmt_dir, name)
        size = os.path.getsize(path)
        im = Image.open(path)
        im.load()
        want_size = BASE_SIZE[::-1] if name == "rotated.jpg" else BASE_SIZE
        check(im.format == fmt and (mode is None or im.mode == mode) and im.size == want_size
              and size < MAX_BYTES,
              f"{name}: {im.format} {im.mode} {im.size[0]}x{im.size[1]} {size} B")
        if tol is not None:
            d = mean_abs_diff(im.convert("RGB"), base)
            check(d <= tol, f"{name}: mean |diff| vs base {d:.3f} <= {tol}")

    im = Image.open(os.path.join(fmt_dir, "rgb16.png"))
    arr = np.frombuffer(open(os.path.join(fmt_dir, "rgb16.png"), "rb").read()[16:24], ">u4")
    check(tuple(arr) == BASE_SIZE, "rgb16.png: IHDR size")
    raw = open(os.path.join(fmt_dir, "rgb16.png"), "rb").read()
    check(raw[24] == 16 and raw[25] == 2, f"rgb16.png: bit depth {raw[24]}, colour type {raw[25]}")
    # Pillow opens 16-bit RGB PNGs as 8-bit RGB (high bytes): must equal base exactly.
    check(mean_abs_diff(im.convert("RGB"), base) == 0.0, "rgb16.png: high bytes == base")

    gray = Image.open(os.path.join(fmt_dir, "gray.jpg"))
    d = mean_abs_diff(gray, base.convert("L"))
    check(d <= 4.0, f"gray.jpg: mean |diff| vs base luma {d:.3f}")

    alpha = Image.open(os.path.join(fmt_dir, "alpha.png"))
    a = np.asarray(alpha)[..., 3]
    frac = float((a == 0).mean())
    check(0.2 < frac < 0.9 and a[0, 0] == 0 and a[BASE_SIZE[1] // 2, BASE_SIZE[0] // 2] == 255,
          f"alpha.png: {frac:.0%} transparent, corner transparent, centre opaque")

    gif = Image.open(os.path.join(fmt_dir, "anim.gif"))
    check(gif.n_frames == 2 and gif.is_animated, f"anim.gif: {gif.n_frames} frames")
    gif.seek(1)
    px = np.asarray(gif.convert("RGB"))
    check(bool((px == [255, 0, 0]).all()), "anim.gif: frame 2 solid red")

    rot = Image.open(os.path.join(fmt_dir, "rotated.jpg"))
    check(rot.getexif().get(ORIENTATION) == 6, "rotated.jpg: EXIF Orientation 6")
    up = Image.open(os.path.join(fmt_dir, "upright.jpg"))
    check(ORIENTATION not in up.getexif(), "upright.jpg: no EXIF Orientation")
    shown = ImageOps.exif_transpose(rot)
    d = mean_abs_diff(shown, up)
    check(shown.size == up.size and d < 3.0,
          f"rotated.jpg: exif_transpose -> {shown.size[0]}x{shown.size[1]}, mean |diff| vs upright {d:.3f}")
    d_raw = mean_abs_diff(rot.convert("RGB").resize(up.size), up)
    check(d_raw > 3 * max(d, 1.0), f"rotated.jpg: without transpose it differs (mean |diff| {d_raw:.1f})")

    for name in ["empty.jpg", "truncated.jpg", "text.jpg", "garbage.png", "huge.png"]:
        path = os.path.join(bad_dir, name)
        size = os.path.getsize(path)
        try:
            with Image.open(path) as im:
                im.load()
            failed = False
            err = "decoded!"
        except Exception as e:  # noqa: BLE001 -- any decode error is the expected outcome
            failed, err = True, type(e).__name__
        check(failed and size < MAX_BYTES, f"bad/{name}: {size} B, Pillow refuses ({err})")
    hdr = open(os.path.join(bad_dir, "huge.png"), "rb").read()
    w, h = struct.unpack(">II", hdr[16:24])
    crc_ok = struct.unpack(">I", hdr[29:33])[0] == zlib.crc32(hdr[12:29]) & 0xFFFFFFFF
    check(w == h == 100_000 and crc_ok, f"bad/huge.png: IHDR {w}x{h}, CRC valid {crc_ok}")
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=DEFAULT_SOURCE)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "fixtures"))
    args = ap.parse_args(argv)

    base, good, bad = build(args.source)
    for sub, files in (("formats", good), ("bad", bad)):
        d = os.path.join(args.out, sub)
        os.makedirs(d, exist_ok=True)
        for name, data in sorted(files.items()):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            print(f"{sub}/{name:14s} {len(data):6d} B  sha256 {hashlib.sha256(data).hexdigest()[:16]}")
    if not verify(args.out, base):
        raise SystemExit("fixture verification FAILED")
    print("all fixtures verified")


if __name__ == "__main__":
    main()
