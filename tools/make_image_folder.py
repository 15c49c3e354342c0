#!/usr/bin/env python3
"""Writes a synthetic image folder in torchvision's ImageFolder layout (ROOT/<class>/<n>.jpg), seeded.

Each class is a shape (circle, square, triangle, cross, ring, diamond, ...) in a colour of its own
family, drawn at a random position, size and shade over a random background with noise, so that a
small CNN can learn the classes but not from one pixel. Sizes vary around --size by --size-jitter.

  tools/make_image_folder.py photos --count 2000 --classes 4 --size 400x300 --seed 1     # W6
  tools/make_image_folder.py shapes --count 600 --classes 3 --size 40x40 --format png

Needs python3-pil and python3-numpy.
"""
import argparse
import math
import os

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ["circle", "square", "triangle", "cross", "ring", "diamond", "bar", "dot_pair"]
HUES = [(220, 60, 50), (40, 170, 60), (50, 90, 220), (220, 190, 40), (170, 60, 200), (40, 190, 200), (230, 120, 30), (120, 120, 120)]


def draw_image(rng, label, width, height):
    background = rng.integers(0, 256, 3)
    img = Image.new("RGB", (width, height), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(img)
    size = min(width, height) * rng.uniform(0.25, 0.45)
    cx, cy = rng.uniform(size, width - size), rng.uniform(size, height - size)
    base = np.array(HUES[label % len(HUES)])
    colour = tuple(int(v) for v in np.clip(base + rng.integers(-30, 31, 3), 0, 255))
    shape = SHAPES[label % len(SHAPES)]
    box = [cx - size, cy - size, cx + size, cy + size]
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - size), (cx - size, cy + size), (cx + size, cy + size)], fill=colour)
    elif shape == "cross":
        t = size / 3
        draw.rectangle([cx - size, cy - t, cx + size, cy + t], fill=colour)
        draw.rectangle([cx - t, cy - size, cx + t, cy + size], fill=colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=max(2, int(size / 3)))
    elif shape == "diamond":
        draw.polygon([(cx, cy - size), (cx + size, cy), (cx, cy + size), (cx - size, cy)], fill=colour)
    elif shape == "bar":
        angle = rng.uniform(0, math.pi)
        dx, dy = math.cos(angle) * size, math.sin(angle) * size
        draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=colour, width=max(2, int(size / 3)))
    else:
        r = size / 3
        for sx in (-1, 1):
            draw.ellipse([cx + sx * size / 2 - r, cy - r, cx + sx * size / 2 + r, cy + r], fill=colour)
    pixels = np.asarray(img).astype(np.float32) + rng.normal(0, 10, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root")
    parser.add_argument("--count", type=int, default=2000, help="images in all, spread evenly over the classes")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--size", default="400x300", help="WIDTHxHEIGHT")
    parser.add_argument("--size-jitter", type=float, default=0.1, help="each side varies by up to this fraction")
    parser.add_argument("--format", choices=["jpg", "png"], default="jpg")
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    rng = np.random.default_rng(args.seed)
    for c in range(args.classes):
        os.makedirs(os.path.join(args.root, f"class_{c:02d}_{SHAPES[c % len(SHAPES)]}"), exist_ok=True)
    for i in range(args.count):
        label = i % args.classes
        w = max(8, int(round(width * (1 + rng.uniform(-args.size_jitter, args.size_jitter)))))
        h = max(8, int(round(height * (1 + rng.uniform(-args.size_jitter, args.size_jitter)))))
        img = draw_image(rng, label, w, h)
        folder = os.path.join(args.root, f"class_{label:02d}_{SHAPES[label % len(SHAPES)]}")
        path = os.path.join(folder, f"{i:06d}.{args.format}")
        if args.format == "jpg":
            img.save(path, quality=args.quality)
        else:
            img.save(path)
    print(f"{args.root}: {args.count} {args.format.upper()} images in {args.classes} classes, about {width}x{height}")


if __name__ == "__main__":
    main()
