"""Shapes10: a procedural 10-class foreground of coloured shapes, a stand-in for CIFAR-10 that needs no
download.

Each image is one shape (circle, square, triangle, star, cross, ring, diamond, hexagon, arrow, crescent)
drawn in one colour on a patch of another colour. The class is the shape; everything else varies: both
colours (kept at least 150 apart in L1 so the shape stays visible), the size (a radius of 0.28-0.42 of
the patch), the rotation, an offset of up to 8 % of the patch, and Gaussian texture noise (std 12
grey levels). Shapes are drawn with Pillow at 4x the size and downsampled with a Lanczos filter, so
edges are anti-aliased like a photograph's. A small CNN learns it about as well as CIFAR-10 (measured
in ``shared/reference/data-sources.md``: 0.62 validation accuracy after 8 epochs on 5 000 images).

The signal is the shape's outline; colours, size and position carry no information about the class.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["SHAPE_CLASSES", "contrasting_colours", "draw_shape", "make_shapes"]

SHAPE_CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "diamond",
    "hexagon",
    "arrow",
    "crescent",
)
_SUPERSAMPLE = 4
_MIN_COLOUR_DISTANCE = 150
_NOISE_STD = 12.0


def _rotate(points: list[tuple[float, float]], angle: float, cx: float, cy: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def _regular(n: int, r: float, phase: float = 0.0) -> list[tuple[float, float]]:
    return [(r * math.cos(phase + 2 * math.pi * i / n), r * math.sin(phase + 2 * math.pi * i / n)) for i in range(n)]


def _outline(kind: str, r: float) -> list[tuple[float, float]] | None:
    """Polygon vertices around the origin for ``kind``; ``None`` for shapes drawn with ellipses."""
    if kind == "square":
        return _regular(4, r, math.pi / 4)
    if kind == "triangle":
        return _regular(3, r, -math.pi / 2)
    if kind == "hexagon":
        return _regular(6, r)
    if kind == "star":
        return [
            (rad * math.cos(-math.pi / 2 + math.pi * i / 5), rad * math.sin(-math.pi / 2 + math.pi * i / 5))
            for i, rad in enumerate([r, 0.45 * r] * 5)
        ]
    if kind == "diamond":
        return [(0, -r), (0.6 * r, 0), (0, r), (-0.6 * r, 0)]
    if kind == "cross":
        w = 0.35 * r
        return [
            (-w, -r),
            (w, -r),
            (w, -w),
            (r, -w),
            (r, w),
            (w, w),
            (w, r),
            (-w, r),
            (-w, w),
            (-r, w),
            (-r, -w),
            (-w, -w),
        ]
    if kind == "arrow":
        return [
            (-r, -0.25 * r),
            (0.1 * r, -0.25 * r),
            (0.1 * r, -0.7 * r),
            (r, 0),
            (0.1 * r, 0.7 * r),
            (0.1 * r, 0.25 * r),
            (-r, 0.25 * r),
        ]
    return None


def contrasting_colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two random RGB colours at least 150 apart in L1 (a shape's colour and its patch's)."""
    while True:
        fg, bg = rng.integers(0, 256, size=(2, 3))
        if int(np.abs(fg - bg).sum()) >= _MIN_COLOUR_DISTANCE:
            return tuple(int(v) for v in fg), tuple(int(v) for v in bg)


def draw_shape(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One Shapes10 image of class ``label``, shape ``(size, size, 3)`` uint8, drawn with ``rng``.

    Examples
    --------
    >>> draw_shape(0, 32, np.random.default_rng(0)).shape
    (32, 32, 3)
    """
    kind = SHAPE_CLASSES[label]
    fg, bg = contrasting_colours(rng)
    big = size * _SUPERSAMPLE
    r = float(rng.uniform(0.28, 0.42)) * big
    cx, cy = (big / 2 + float(v) * big for v in rng.uniform(-0.08, 0.08, size=2))
    angle = float(rng.uniform(0, 2 * math.pi))
    img = Image.new("RGB", (big, big), bg)
    draw = ImageDraw.Draw(img)
    pts = _outline(kind, r)
    if pts is not None:
        draw.polygon(_rotate(pts, angle, cx, cy), fill=fg)
    elif kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fg)
    elif kind == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fg)
        ri = 0.55 * r
        draw.ellipse((cx - ri, cy - ri, cx + ri, cy + ri), fill=bg)
    else:  # crescent: a disc with an offset disc of the patch colour cut out of it
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fg)
        ox, oy = cx + 0.45 * r * math.cos(angle), cy + 0.45 * r * math.sin(angle)
        rc = 0.85 * r
        draw.ellipse((ox - rc, oy - rc, ox + rc, oy + rc), fill=bg)
    small = np.asarray(img.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32)
    small += rng.normal(0.0, _NOISE_STD, size=small.shape).astype(np.float32)
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def make_shapes(labels: np.ndarray, size: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Images for ``labels`` (one generator per image, so image *i* never depends on the others).

    Returns an array of shape ``(len(labels), size, size, 3)``, uint8.
    """
    out = np.empty((len(labels), size, size, 3), dtype=np.uint8)
    for i, (label, rng) in enumerate(zip(labels, rngs)):
        out[i] = draw_shape(int(label), size, rng)
    return out
