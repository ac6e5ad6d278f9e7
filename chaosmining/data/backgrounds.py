"""Background generators for the vision task: pixels that carry no information about the label.

* :func:`uniform_background` - i.i.d. uniform pixels 0-255, the paper's random background (RB) as the
  original code made it (``np.random.randint(0, 256, ...)``).
* :func:`fractal_background` - 1/f^2 ("pink-brown") noise with correlated colour channels: the power
  spectrum of natural images, so it looks like clouds or foliage, in unlimited supply.
* :func:`photo_crop` - a random square crop (35-100 % of the shorter side, random place, mirrored half
  of the time) of a natural photo from :func:`photo_pool`, resized to the canvas.

:func:`photo_pool` reads only photos that ship with the pinned requirements (scikit-image's CC0 /
public-domain sample photos and textures, scikit-learn's two CC BY 2.0 sample photos), so the
structured background is the same on every machine and needs no download. Photos are decoded once
per process and kept shrunk to at most ``2 x canvas`` on the shorter side.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError

__all__ = [
    "uniform_background",
    "fractal_background",
    "photo_crop",
    "photo_pool",
    "folder_pool",
    "resize_rgb",
    "PHOTO_SOURCES",
]

# scikit-image sample data readable offline (CC0 / public domain per their docstrings) and the two
# scikit-learn sample photos (CC BY 2.0, Flickr; see sklearn/datasets/images/README.txt).
PHOTO_SOURCES: tuple[str, ...] = (
    "skimage:astronaut",
    "skimage:chelsea",
    "skimage:coffee",
    "skimage:rocket",
    "skimage:hubble_deep_field",
    "skimage:immunohistochemistry",
    "skimage:retina",
    "skimage:brick",
    "skimage:grass",
    "skimage:gravel",
    "skimage:camera",
    "skimage:moon",
    "sklearn:china.jpg",
    "sklearn:flower.jpg",
)


def resize_rgb(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of an ``(h, w, 3)`` uint8 image to ``(height, width, 3)``."""
    if img.shape[:2] == (height, width):
        return img
    return np.asarray(Image.fromarray(img).resize((width, height), Image.Resampling.BILINEAR))


def _as_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def _shrink(img: np.ndarray, shorter: int) -> np.ndarray:
    h, w = img.shape[:2]
    if min(h, w) <= shorter:
        return img
    s = shorter / min(h, w)
    return resize_rgb(img, max(1, round(h * s)), max(1, round(w * s)))


def _load_source(source: str) -> np.ndarray:
    package, name = source.split(":", 1)
    if package == "skimage":
        import skimage.data

        return _as_rgb(getattr(skimage.data, name)())
    from sklearn.datasets import load_sample_image

    return _as_rgb(load_sample_image(name))


@functools.lru_cache(maxsize=8)
def photo_pool(shorter: int = 448) -> tuple[np.ndarray, ...]:
    """The shipped natural photos as RGB uint8 arrays, shrunk to at most ``shorter`` px on the short side."""
    return tuple(_shrink(_load_source(s), shorter) for s in PHOTO_SOURCES)


@functools.lru_cache(maxsize=8)
def folder_pool(folder: str, shorter: int = 448) -> tuple[np.ndarray, ...]:
    """Every readable image (.jpg, .jpeg, .png, .webp) in ``folder``, shrunk like :func:`photo_pool`."""
    path = Path(folder)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    if not files:
        raise DataError(f"No background photos (.jpg, .jpeg, .png, .webp) were found in {folder}.")
    out = []
    for f in files:
        try:
            with Image.open(f) as im:
                out.append(_shrink(_as_rgb(np.asarray(im.convert("RGB"))), shorter))
        except OSError as exc:
            raise DataError(f"The background photo {f} could not be read: {exc}") from None
    return tuple(out)


def uniform_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """I.i.d. uniform integer pixels in [0, 255], shape ``(height, width, 3)``."""
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@functools.lru_cache(maxsize=8)
def _amplitude(height: int, width: int, beta: float) -> np.ndarray:
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0)
    amp[0, 0] = 0.0
    return amp.astype(np.float32)


def fractal_background(rng: np.random.Generator, height: int, width: int, beta: float = 2.0) -> np.ndarray:
    """1/f^beta noise (power spectrum) with colour channels mixed by a random matrix; uint8 ``(h, w, 3)``."""
    amp = _amplitude(height, width, beta)
    shape = (3, *amp.shape)
    spec = amp * (rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(shape, dtype=np.float32))
    field = np.fft.irfft2(spec, s=(height, width)).astype(np.float32)
    mix = np.eye(3, dtype=np.float32) + 0.6 * rng.standard_normal((3, 3), dtype=np.float32)
    field = np.tensordot(mix, field, axes=1)
    field /= field.std() + 1e-8
    base = rng.uniform(60, 190, size=(3, 1, 1)).astype(np.float32)
    contrast = float(rng.uniform(35, 65))
    return np.clip(base + contrast * field, 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()


def photo_crop(rng: np.random.Generator, pool: tuple[np.ndarray, ...], height: int, width: int) -> np.ndarray:
    """A random square crop of a random photo of ``pool``, mirrored half of the time, resized."""
    img = pool[int(rng.integers(len(pool)))]
    h, w = img.shape[:2]
    side = max(1, int(round(min(h, w) * rng.uniform(0.35, 1.0))))
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    crop = img[top : top + side, left : left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return resize_rgb(np.ascontiguousarray(crop), height, width)
