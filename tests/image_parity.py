#!/usr/bin/env python3
"""horo's image decoding and resampling against PIL (what torchvision's ImageFolder uses).

Images of every kind a folder of photos holds are made here with PIL: JPEGs of several qualities and
chroma subsamplings, progressive, grey and CMYK; PNGs in grey, 1-bit, palette with transparency,
RGBA, grey + alpha, 16-bit grey and 16-bit RGB. horo's pixels (tests/image_probe) must equal PIL's
convert("RGB") exactly for PNG and within 1 for JPEG (both decode with libjpeg-turbo's ISLOW DCT).
Broken files (a truncated JPEG, a truncated PNG, a text file named .jpg) must be refused with their
name in the message. Region and DCT-scaled decodes agree with the full decode and with PIL's draft();
resampling agrees with PIL's Image.resize(BILINEAR, box) within 1.

Usage: image_parity.py BIN_DIR WORK_DIR   (exit 77: PIL or numpy missing)
"""
import os
import struct
import subprocess
import sys
import zlib

try:
    import numpy as np
    from PIL import Image
except ImportError as e:  # the skip code ctest knows
    print(f"skipped: {e}")
    sys.exit(77)

bin_dir, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
probe = os.path.join(bin_dir, "image_probe")
rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
failures = []


def check(condition, message):
    print(("ok    " if condition else "FAIL  ") + message)
    if not condition:
        failures.append(message)


def run_probe(*args):
    out = os.path.join(work, "probe.bin")
    result = subprocess.run([probe, *map(str, args[:1]), args[1], out, *map(str, args[2:])], capture_output=True, text=True)
    if result.returncode != 0:
        return None, result.stderr.strip()
    raw = open(out, "rb").read()
    if args[0] == "decode":
        h, w, oy, ox, scale = struct.unpack("<5q", raw[:40])
        return (np.frombuffer(raw[40:], np.uint8).reshape(h, w, 3), (oy, ox, scale)), ""
    h, w = struct.unpack("<2q", raw[:16])
    return np.frombuffer(raw[16:], np.uint8).reshape(h, w, 3), ""


def photo(h, w):
    """Smooth colour gradients, shapes and noise: JPEG-like content with edges."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h) + 64], axis=-1)
    img[(x - w / 2) ** 2 + (y - h / 3) ** 2 < (min(h, w) / 4) ** 2] = [230, 40, 60]
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png16_rgb(path, pixels):  # PIL cannot write 16-bit RGB PNGs
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[r].astype(">u2").tobytes() for r in range(h))
    data = png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + data)


def expected_rgb(path):
    im = Image.open(path)
    if im.mode in ("I;16", "I;16B", "I"):  # PIL 9 clips 16-bit grey to 255; horo keeps the high byte
        grey = (np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(im.convert("RGB"))


# --- decoding: every kind of file -------------------------------------------------------------------
h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
base = photo(h, w)
files = []  # (path, kind)
for quality in (95, 75, 30):
    for subsampling in (0, 1, 2):  # 4:4:4, 4:2:2, 4:2:0
        path = os.path.join(work, f"q{quality}_s{subsampling}.jpg")
        Image.fromarray(base).save(path, quality=quality, subsampling=subsampling)
        files.append((path, "jpeg"))
path = os.path.join(work, "progressive.jpg")
Image.fromarray(base).save(path, quality=85, progressive=True)
files.append((path, "jpeg"))
path = os.path.join(work, "grey.jpg")
Image.fromarray(base).convert("L").save(path, quality=90)
files.append((path, "jpeg"))
path = os.path.join(work, "cmyk.jpg")
Image.fromarray(base).convert("CMYK").save(path, quality=90)
files.append((path, "jpeg"))
for mode in ("RGB", "L", "1", "RGBA", "LA"):
    path = os.path.join(work, f"{mode.lower()}.png")
    im = Image.fromarray(base)
    if mode in ("RGBA", "LA"):
        im = im.convert(mode)
        im.putalpha(Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)))
    else:
        im = im.convert(mode)
    im.save(path)
    files.append((path, "png"))
path = os.path.join(work, "palette.png")
Image.fromarray(base).convert("P", palette=Image.ADAPTIVE, colors=37).save(path, transparency=3)
files.append((path, "png"))
path = os.path.join(work, "grey16.png")
Image.fromarray((base[:, :, 0].astype(np.uint16) * 257 + rng.integers(0, 256, (h, w))).astype(np.uint16)).save(path)
files.append((path, "png"))
path = os.path.join(work, "rgb16.png")
write_png16_rgb(path, rng.integers(0, 65536, (h, w, 3)))
files.append((path, "png"))

for path, kind in files:
    got, error = run_probe("decode", path)
    name = os.path.basename(path)
    if got is None:
        check(False, f"{name}: horo refused it: {error}")
        continue
    pixels = got[0]
    want = expected_rgb(path)
    if pixels.shape != want.shape:
        check(False, f"{name}: shape {pixels.shape}, PIL {want.shape}")
        continue
    diff = int(np.abs(pixels.astype(int) - want.astype(int)).max())
    check(diff == 0 if kind == "png" else diff <= 1, f"{name} ({Image.open(path).mode}): largest difference from PIL {diff}")

# --- broken files are refused, naming the file -------------------------------------------------------
good = open(os.path.join(work, "q75_s2.jpg"), "rb").read()
broken = {
    "truncated.jpg": good[: len(good) * 2 // 3],
    "text.jpg": b"this is not an image\n" * 4,
    "truncated.png": open(os.path.join(work, "rgb.png"), "rb").read()[:200],
    "empty.png": b"",
    "header_only.jpg": good[:20],
}
for name, data in broken.items():
    path = os.path.join(work, name)
    open(path, "wb").write(data)
    got, error = run_probe("decode", path)
    pil_fails = True
    try:
        Image.open(path).convert("RGB")
        pil_fails = False
    except Exception:
        pass
    check(got is None and name in error, f"{name}: refused ({error!r}); PIL refuses it too: {pil_fails}")

# --- region and scaled decodes --------------------------------------------------------------------
big_h, big_w = int(rng.integers(200, 320)), int(rng.integers(240, 400))
path = os.path.join(work, "big.jpg")
Image.fromarray(photo(big_h, big_w)).save(path, quality=90)
(full, _), _ = run_probe("decode", path)
for _ in range(6):
    rh, rw = int(rng.integers(20, big_h // 2)), int(rng.integers(20, big_w // 2))
    ry, rx = int(rng.integers(0, big_h - rh)), int(rng.integers(0, big_w - rw))
    got, error = run_probe("decode", path, ry, rx, rh, rw, 0, 0)
    if got is None:
        check(False, f"region decode failed: {error}")
        continue
    part, (oy, ox, scale) = got
    inside = oy <= ry and ox <= rx and oy + part.shape[0] >= ry + rh and ox + part.shape[1] >= rx + rw and scale == 1
    same = inside and np.array_equal(part, full[oy : oy + part.shape[0], ox : ox + part.shape[1]])
    check(inside and same, f"region {ry},{rx} {rh}x{rw}: decoded {part.shape[:2]} from {oy},{ox}, equal to the full decode: {same}")
for denominator in (2, 4, 8):
    got, _ = run_probe("decode", path, 0, 0, big_h, big_w, big_h // denominator, big_w // denominator)
    part, (_, _, scale) = got
    im = Image.open(path)
    im.draft("RGB", (big_w // denominator, big_h // denominator))
    want = np.asarray(im.convert("RGB"))
    diff = int(np.abs(part.astype(int) - want.astype(int)).max()) if part.shape == want.shape else -1
    check(scale == denominator and 0 <= diff <= 1, f"1/{denominator} decode: scale {scale}, shape {part.shape[:2]}, PIL draft {want.shape[:2]}, difference {diff}")

# --- resampling against PIL's resize(BILINEAR, box) ------------------------------------------------
im = Image.open(path).convert("RGB")
boxes = [(0, 0, big_w, big_h, 224, 224), (10.5, 7.25, big_w - 3.5, big_h - 11.0, 64, 80), (30, 40, 60, 55, 100, 90),
         (0, 0, big_w, big_h, big_h, big_w)]
for _ in range(4):
    x0, y0 = float(rng.uniform(0, big_w / 2)), float(rng.uniform(0, big_h / 2))
    boxes.append((x0, y0, x0 + float(rng.uniform(8, big_w / 2)), y0 + float(rng.uniform(8, big_h / 2)),
                  int(rng.integers(8, 240)), int(rng.integers(8, 240))))
for x0, y0, x1, y1, oh, ow in boxes:
    got, error = run_probe("resize", path, x0, y0, x1, y1, oh, ow)
    want = np.asarray(im.resize((ow, oh), Image.BILINEAR, box=(x0, y0, x1, y1)))
    diff = int(np.abs(got.astype(int) - want.astype(int)).max()) if got is not None else -1
    check(0 <= diff <= 1, f"resize box ({x0:.2f},{y0:.2f},{x1:.2f},{y1:.2f}) to {oh}x{ow}: largest difference from PIL {diff}")

print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
