"""Vision data (paper section 3.2, appendix A.3): a small labelled foreground pasted on a large canvas.

The label is the foreground's class; the background and the position carry no information about it.
Ground truth of every image is the exact foreground box, recorded as ``(top, left, height, width)``.

Three registries make up an image, and the app's select boxes, the CLI's choices and the tests read them:

* :data:`FOREGROUNDS` - where the labelled patch comes from: ``shapes10`` (procedural, the default),
  ``digits`` (scikit-learn's 8x8 digits, colourised), ``fashion_mnist`` (Debian's
  ``dataset-fashion-mnist`` when installed, or a folder), and, from a local ``data_root`` only,
  ``cifar10`` (the paper's) and ``published`` (whole images of the published ChaosMining data set).
* :data:`BACKGROUNDS` - ``random`` (uniform pixels, the paper's RB), ``structured`` (natural-photo crops
  mixed 50/50 with fractal noise, an offline stand-in for the paper's Flowers102 SB), ``photos``,
  ``fractal``, and ``flowers102`` (the paper's SB, from a local ``data_root``).
* :data:`POSITIONS` - ``fixed`` (the canvas centre: (96, 96) at 224 with a 32-px patch, the paper's FP)
  and ``random`` (top-left row and column uniform in [0, canvas - size - 1], the paper's RP).

Everything is seeded and deterministic per image: image *i* of a split is drawn from generators seeded
with ``(seed, split, i, stream)``, one stream each for the foreground, the position and the
background. So the same foregrounds appear under all four noise conditions (a paired comparison), any
image can be regenerated alone (the app's gallery does), and a data set can be built in memory or
streamed with identical results. Pasting is hard (no blending), as in the original code.
"""

from __future__ import annotations

import csv
import functools
import gzip
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ..config import ConfigBase
from ..errors import ConfigError, DataError
from ..registry import Registry
from ..validation import check_choice, check_int, param_error
from .backgrounds import folder_pool, fractal_background, photo_crop, photo_pool, resize_rgb, uniform_background
from .shapes import SHAPE_CLASSES, contrasting_colours, draw_shape
from .symbolic import memory_budget_bytes

__all__ = [
    "VisionDataConfig",
    "VisionSplit",
    "VisionData",
    "ForegroundSpec",
    "BackgroundSpec",
    "PositionSpec",
    "FOREGROUNDS",
    "BACKGROUNDS",
    "POSITIONS",
    "SPLITS",
    "PUBLISHED_SETTINGS",
    "CIFAR10_CLASSES",
    "FASHION_CLASSES",
    "DEBIAN_FASHION_MNIST",
    "make_vision_data",
    "condition_code",
    "data_warnings",
    "recommended_train_size",
    "to_model_input",
    "read_published_metadata",
    "dataset_summary",
]

SPLITS = ("train", "val")
_SPLIT_ID = {"train": 0, "val": 1}
_FG, _POS, _BG, _PERM, _RECOMPOSE = 0, 1, 2, 3, 4
_OWNER = "VisionDataConfig"
PUBLISHED_SETTINGS = ("RBFP", "RBRP", "SBFP", "SBRP")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def _rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_ID[split], int(index), stream])


# --- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class VisionDataConfig(ConfigBase):
    """How the images of one vision task are made (paper geometry by default).

    Parameters
    ----------
    foreground : a :data:`FOREGROUNDS` name (the labelled patch).
    background : a :data:`BACKGROUNDS` name (``random`` = RB, ``structured`` = SB).
    position : a :data:`POSITIONS` name (``fixed`` = FP, ``random`` = RP).
    canvas : side of the square image in pixels (the paper: 224).
    foreground_size : side of the square foreground in pixels (the paper: 32).
    train_size, val_size : number of images per split (the paper: 50 000 and 10 000).
    data_root : local folder for the sources that read data from disk (never downloaded).
    """

    foreground: str = "shapes10"
    background: str = "random"
    position: str = "fixed"
    canvas: int = 224
    foreground_size: int = 32
    train_size: int = 10_000
    val_size: int = 1_000
    data_root: str | None = None

    def __post_init__(self) -> None:
        check_choice(self.foreground, "foreground", owner=_OWNER, choices=FOREGROUNDS.names())
        check_choice(self.background, "background", owner=_OWNER, choices=BACKGROUNDS.names())
        check_choice(self.position, "position", owner=_OWNER, choices=POSITIONS.names())
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("canvas", check_int(self.canvas, "canvas", owner=_OWNER, low=16, high=1024))
        set_(
            "foreground_size",
            check_int(
                self.foreground_size,
                "foreground_size",
                owner=_OWNER,
                low=4,
                high=self.canvas,
                hint=f"The foreground must fit inside the {self.canvas}x{self.canvas} canvas.",
            ),
        )
        set_("train_size", check_int(self.train_size, "train_size", owner=_OWNER, low=10, high=10_000_000))
        set_("val_size", check_int(self.val_size, "val_size", owner=_OWNER, low=1, high=10_000_000))
        root = self.data_root
        if root is not None and not isinstance(root, (str, os.PathLike)):
            raise param_error("data_root", _OWNER, "a folder path or None", root)
        root = os.fspath(root).strip() if root is not None else None
        set_("data_root", root or None)
        needs = [
            spec.display_name
            for spec in (FOREGROUNDS.get(self.foreground), BACKGROUNDS.get(self.background))
            if spec.needs_root
        ]
        if needs and self.data_root is None:
            raise param_error(
                "data_root",
                _OWNER,
                "a local folder",
                None,
                f"{' and '.join(needs)} {'is' if len(needs) == 1 else 'are'} read from disk, never downloaded.",
            )
        if self.foreground == "published" and BACKGROUNDS.get(self.background).condition is None:
            raise param_error(
                "background",
                _OWNER,
                "'random' (RB) or 'structured' (SB) with the published layout",
                self.background,
                "The published data set has only the paper's two backgrounds.",
            )

    @property
    def area_fraction(self) -> float:
        return (self.foreground_size / self.canvas) ** 2


def condition_code(background: str, position: str) -> str:
    """The paper's code of a noise condition, e.g. ``condition_code('random', 'fixed') == 'RBFP'``."""
    cond = BACKGROUNDS.get(background).condition or "SB"
    return cond + POSITIONS.get(position).code


def recommended_train_size(canvas: int, foreground_size: int) -> int:
    """Training images below which a from-scratch CNN stays near chance.

    Measured for the paper geometry (10 000 needed at 224 px with a 32-px patch; 3 000 stayed at
    chance); scaled with the share of the canvas the foreground covers.
    """
    return int(round(10_000 * ((canvas / foreground_size) ** 2) / 49))


def data_warnings(config: VisionDataConfig) -> list[str]:
    """Plain-language warnings about a configuration that will train poorly."""
    out = []
    need = recommended_train_size(config.canvas, config.foreground_size)
    if config.train_size < need and config.foreground != "published":
        out.append(
            f"{config.train_size} training images are few for a {config.foreground_size}-px foreground on a "
            f"{config.canvas}-px canvas: about {need} were needed in our measurements, so accuracy will likely stay "
            "near chance (10 %) and the saliency maps will then show no localisation either."
        )
    spec = FOREGROUNDS.get(config.foreground)
    if spec.source_images is not None and config.train_size > spec.source_images:
        out.append(
            f"{spec.display_name} has only {spec.source_images} distinct images; the {config.train_size} training "
            "composites repeat them (each on a different background)."
        )
    return out


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 ``(n, H, W, 3)`` -> float32 ``(n, 3, H, W)`` in [-1, 1] (the paper's scaling)."""
    x = np.asarray(images, dtype=np.float32).transpose(0, 3, 1, 2)
    return x / 127.5 - 1.0


# --- foreground sources ------------------------------------------------------------------------


class ForegroundSplit(Protocol):
    """One split of a foreground source: a label and a ``(size, size, 3)`` patch per index."""

    class_names: tuple[str, ...]

    def labels(self, n: int) -> np.ndarray: ...

    def image(self, index: int) -> np.ndarray: ...


@dataclass(frozen=True)
class ForegroundSpec:
    """A registered foreground. ``open(config, split, seed)`` returns a :class:`ForegroundSplit`."""

    name: str
    display_name: str
    description: str
    reference: str
    open: Callable[[VisionDataConfig, str, int], ForegroundSplit] | None
    needs_root: bool = False
    source_images: int | None = None
    whole_images: bool = False


class _ShapesSplit:
    class_names = SHAPE_CLASSES

    def __init__(self, config: VisionDataConfig, split: str, seed: int) -> None:
        self.size, self.split, self.seed = config.foreground_size, split, seed

    def labels(self, n: int) -> np.ndarray:
        return (np.arange(n) % len(SHAPE_CLASSES)).astype(np.int64)

    def image(self, index: int) -> np.ndarray:
        label = index % len(SHAPE_CLASSES)
        return draw_shape(label, self.size, _rng(self.seed, self.split, index, _FG))


def _colourise(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A grey image in [0, 1] painted with two contrasting random colours (ink and paper)."""
    ink, paper = (np.asarray(c, dtype=np.float32) for c in contrasting_colours(rng))
    out = paper + (ink - paper) * grey[:, :, None].astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class _ArraySplit:
    """A foreground split backed by in-memory arrays; index i -> a seeded permutation of the source."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str],
        config: VisionDataConfig,
        split: str,
        seed: int,
        colourise: bool,
    ) -> None:
        self.src_images, self.src_labels = images, np.asarray(labels, dtype=np.int64)
        self.class_names = tuple(class_names)
        self.size, self.split, self.seed, self.colourise = config.foreground_size, split, seed, colourise
        self.order = np.random.default_rng([seed, _SPLIT_ID[split], _PERM]).permutation(len(images))

    def _source(self, index: int) -> int:
        return int(self.order[index % len(self.order)])

    def labels(self, n: int) -> np.ndarray:
        return self.src_labels[self.order[np.arange(n) % len(self.order)]]

    def image(self, index: int) -> np.ndarray:
        img = self.src_images[self._source(index)]
        if self.colourise:
            img = _colourise(img, _rng(self.seed, self.split, index, _FG))
        return resize_rgb(np.ascontiguousarray(img), self.size, self.size)


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def _open_digits(config: VisionDataConfig, split: str, seed: int) -> ForegroundSplit:
    images, labels = _digits()
    # A fixed 80/20 split, independent of the seed, so validation digits are never trained on.
    order = np.random.default_rng(20_240_617).permutation(len(images))
    cut = int(0.8 * len(images))
    idx = order[:cut] if split == "train" else order[cut:]
    up = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.Resampling.BILINEAR)) for im in images[idx]])
    return _ArraySplit(up, labels[idx], [str(i) for i in range(10)], config, split, seed, colourise=True)


def _listing(path: Path, most: int = 12) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    except OSError as exc:
        return f"nothing readable ({exc.strerror or exc})"
    if not names:
        return "an empty folder"
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _root(config: VisionDataConfig) -> Path:
    root = Path(config.data_root or "").expanduser()
    if not root.is_dir():
        raise DataError(f"The 'data_root' folder {config.data_root!r} does not exist or is not a folder.")
    return root


@functools.lru_cache(maxsize=4)
def _cifar10(root: str, train: bool) -> tuple[np.ndarray, np.ndarray]:
    from torchvision.datasets import CIFAR10

    base = Path(root)
    if base.name == "cifar-10-batches-py":
        base = base.parent
    try:
        ds = CIFAR10(str(base), train=train, download=False)
    except RuntimeError:
        raise DataError(
            f"The 'data_root' {root!r} does not hold CIFAR-10 in torchvision's layout: expected "
            "<data_root>/cifar-10-batches-py/ with data_batch_1 ... data_batch_5, test_batch and batches.meta (the "
            f"python version of CIFAR-10). Found: {_listing(base)}. Nothing is downloaded."
        ) from None
    return np.asarray(ds.data), np.asarray(ds.targets, dtype=np.int64)


def _open_cifar10(config: VisionDataConfig, split: str, seed: int) -> ForegroundSplit:
    images, labels = _cifar10(str(_root(config)), split == "train")
    return _ArraySplit(images, labels, CIFAR10_CLASSES, config, split, seed, colourise=False)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"The file {path} could not be read: {exc}") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"The file {path} is not an IDX file of unsigned bytes.")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"The file {path} is truncated: expected {int(np.prod(dims))} values, found {body.size}.")
    return body.reshape(dims)


def _find_idx(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "FashionMNIST" / "raw", root / "fashion-mnist"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


@functools.lru_cache(maxsize=4)
def _fashion(root: str, train: bool) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if train else "t10k"
    base = Path(root)
    img, lab = _find_idx(base, f"{prefix}-images-idx3-ubyte"), _find_idx(base, f"{prefix}-labels-idx1-ubyte")
    if img is None or lab is None:
        raise DataError(
            f"The 'data_root' {root!r} does not hold Fashion-MNIST: expected {prefix}-images-idx3-ubyte[.gz] and "
            f"{prefix}-labels-idx1-ubyte[.gz] in it, in FashionMNIST/raw/ or in fashion-mnist/ (Debian's package "
            f"dataset-fashion-mnist installs them in {DEBIAN_FASHION_MNIST}). Found: {_listing(base)}."
        )
    images, labels = _read_idx(img), _read_idx(lab).astype(np.int64)
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"{img} and {lab} do not match: {images.shape} images, {labels.shape} labels.")
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # 28 -> 32, like CIFAR's patches
    return (padded / 255.0).astype(np.float32), labels


def _open_fashion(config: VisionDataConfig, split: str, seed: int) -> ForegroundSplit:
    if config.data_root is None:  # Debian's package, when installed
        if not Path(DEBIAN_FASHION_MNIST).is_dir():
            raise DataError(
                f"Fashion-MNIST was not found: Debian's package dataset-fashion-mnist installs it in "
                f"{DEBIAN_FASHION_MNIST} (apt-get install dataset-fashion-mnist), or set 'data_root' to a folder "
                "with the IDX files. Nothing is downloaded."
            )
        root = DEBIAN_FASHION_MNIST
    else:
        root = str(_root(config))
    images, labels = _fashion(root, split == "train")
    return _ArraySplit(images, labels, FASHION_CLASSES, config, split, seed, colourise=True)


FOREGROUNDS: Registry[ForegroundSpec] = Registry("foreground")
for _f in (
    ForegroundSpec(
        "shapes10",
        "Shapes10 (procedural, offline)",
        "Ten coloured shapes drawn with random colours, size, rotation, offset and texture noise; about as hard "
        "as CIFAR-10 for a small CNN, unlimited and offline.",
        "shared/reference/data-sources.md",
        _ShapesSplit,
    ),
    ForegroundSpec(
        "digits",
        "scikit-learn digits (colourised)",
        "The 1 797 8x8 handwritten digits that ship with scikit-learn, upsampled and painted with two random "
        "contrasting colours; a fixed 80/20 split keeps validation digits unseen.",
        "https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
        _open_digits,
        source_images=1437,
    ),
    ForegroundSpec(
        "cifar10",
        "CIFAR-10 (local folder)",
        "The paper's foreground: CIFAR-10 train images for training, test images for validation, read with "
        "torchvision from data_root (never downloaded).",
        "https://www.cs.toronto.edu/~kriz/cifar.html",
        _open_cifar10,
        needs_root=True,
    ),
    ForegroundSpec(
        "fashion_mnist",
        "Fashion-MNIST (Debian package or local folder)",
        f"Zalando's 28x28 clothing images padded to 32 and colourised, from Debian's dataset-fashion-mnist "
        f"({DEBIAN_FASHION_MNIST}, used when data_root is empty) or any folder with the IDX files.",
        "https://github.com/zalandoresearch/fashion-mnist",
        _open_fashion,
    ),
    ForegroundSpec(
        "published",
        "ChaosMining published images (local folder)",
        "Whole images of the published ChaosMining vision data set: <data_root>/<SETTING>/<split>/metadata.csv "
        "(or meta_data.csv), SETTING from the background and position (RBFP, RBRP, SBFP, SBRP).",
        "https://github.com/geshijoker/ChaosMining",
        None,
        needs_root=True,
        whole_images=True,
    ),
):
    FOREGROUNDS.register(_f.name, _f)


# --- backgrounds -------------------------------------------------------------------------------

BackgroundDraw = Callable[[np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class BackgroundSpec:
    """A registered background. ``open(config, split)`` returns ``draw(rng, index) -> (H, W, 3) uint8``.

    ``condition`` is the paper's code it stands for ('RB', 'SB') or ``None``.
    """

    name: str
    display_name: str
    description: str
    condition: str | None
    open: Callable[[VisionDataConfig, str], BackgroundDraw]
    needs_root: bool = False


def _open_uniform(config: VisionDataConfig, split: str) -> BackgroundDraw:
    return lambda rng, index: uniform_background(rng, config.canvas, config.canvas)


def _open_fractal(config: VisionDataConfig, split: str) -> BackgroundDraw:
    return lambda rng, index: fractal_background(rng, config.canvas, config.canvas)


def _open_photos(config: VisionDataConfig, split: str) -> BackgroundDraw:
    pool = photo_pool(max(2 * config.canvas, 64))
    return lambda rng, index: photo_crop(rng, pool, config.canvas, config.canvas)


def _open_structured(config: VisionDataConfig, split: str) -> BackgroundDraw:
    pool = photo_pool(max(2 * config.canvas, 64))

    def draw(rng: np.random.Generator, index: int) -> np.ndarray:
        if rng.random() < 0.5:
            return photo_crop(rng, pool, config.canvas, config.canvas)
        return fractal_background(rng, config.canvas, config.canvas)

    return draw


@functools.lru_cache(maxsize=4)
def _flowers_files(root: str, split: str) -> tuple[str, ...]:
    from torchvision.datasets import Flowers102

    try:
        ds = Flowers102(root, split=split, download=False)
    except RuntimeError:
        raise DataError(
            f"The 'data_root' {root!r} does not hold Flowers102 in torchvision's layout: expected "
            "<data_root>/flowers-102/ with jpg/, imagelabels.mat and setid.mat. "
            f"Found: {_listing(Path(root))}. Nothing is downloaded."
        ) from None
    return tuple(str(p) for p in ds._image_files)


def _open_flowers(config: VisionDataConfig, split: str) -> BackgroundDraw:
    files = _flowers_files(str(_root(config)), split)

    def draw(rng: np.random.Generator, index: int) -> np.ndarray:
        path = files[int(rng.integers(len(files)))]
        return resize_rgb(_read_rgb(Path(path)), config.canvas, config.canvas)

    return draw


def _open_folder(config: VisionDataConfig, split: str) -> BackgroundDraw:
    pool = folder_pool(str(_root(config)), max(2 * config.canvas, 64))
    return lambda rng, index: photo_crop(rng, pool, config.canvas, config.canvas)


BACKGROUNDS: Registry[BackgroundSpec] = Registry("background")
for _b in (
    BackgroundSpec(
        "random",
        "Random (uniform pixels, paper RB)",
        "I.i.d. uniform pixels 0-255, as the original code made the paper's random background.",
        "RB",
        _open_uniform,
    ),
    BackgroundSpec(
        "structured",
        "Structured (photos + fractal noise, paper SB)",
        "Random crops of 14 natural photos shipped with scikit-image and scikit-learn, mixed 50/50 with 1/f^2 "
        "fractal noise: an offline stand-in for the paper's Flowers102 backgrounds.",
        "SB",
        _open_structured,
    ),
    BackgroundSpec(
        "photos",
        "Photo crops only",
        "Random crops of the 14 shipped natural photos.",
        None,
        _open_photos,
    ),
    BackgroundSpec(
        "fractal",
        "Fractal noise only",
        "1/f^2 noise with correlated colours: natural-image statistics without objects.",
        None,
        _open_fractal,
    ),
    BackgroundSpec(
        "flowers102",
        "Flowers102 (local folder, the paper's SB)",
        "A random Flowers102 image resized to the canvas (train split for training, val for validation), read "
        "with torchvision from data_root.",
        "SB",
        _open_flowers,
        needs_root=True,
    ),
    BackgroundSpec(
        "folder",
        "Photos from a local folder",
        "Random crops of every .jpg/.png/.webp in data_root (for example /usr/share/backgrounds/mate/nature).",
        None,
        _open_folder,
        needs_root=True,
    ),
):
    BACKGROUNDS.register(_b.name, _b)


# --- positions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionSpec:
    """A registered position policy: ``place(rng, canvas, size) -> (top, left)``."""

    name: str
    display_name: str
    code: str
    description: str
    place: Callable[[np.random.Generator, int, int], tuple[int, int]]


def _fixed(rng: np.random.Generator, canvas: int, size: int) -> tuple[int, int]:
    c = (canvas - size) // 2
    return c, c


def _random_position(rng: np.random.Generator, canvas: int, size: int) -> tuple[int, int]:
    # The original drew np.random.randint(0, canvas - size): the last possible offset is never used.
    top, left = rng.integers(0, max(1, canvas - size), size=2)
    return int(top), int(left)


POSITIONS: Registry[PositionSpec] = Registry("position")
for _p in (
    PositionSpec(
        "fixed",
        "Fixed (centre, paper FP)",
        "FP",
        "Top-left corner at ((canvas - size) // 2, (canvas - size) // 2): (96, 96) for the paper's geometry.",
        _fixed,
    ),
    PositionSpec(
        "random",
        "Random (paper RP)",
        "RP",
        "Row and column of the top-left corner each uniform in [0, canvas - size - 1] ([0, 191] at 224/32, as the "
        "original code).",
        _random_position,
    ),
):
    POSITIONS.register(_p.name, _p)


# --- splits ------------------------------------------------------------------------------------


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"The image file {path} is missing.") from None
    except OSError as exc:
        raise DataError(f"The image file {path} could not be read: {exc}") from None


class VisionSplit:
    """One split: ``labels`` ``(n,)``, ``boxes`` ``(n, 4)`` as (top, left, height, width), and images.

    :meth:`images` returns uint8 ``(len(indices), canvas, canvas, 3)``; each image is made (or read)
    on demand, or taken from :meth:`materialise`'s array once that has been built.
    """

    def __init__(
        self,
        split: str,
        labels: np.ndarray,
        boxes: np.ndarray,
        class_names: Sequence[str],
        canvas: int,
        make: Callable[[int], np.ndarray],
    ) -> None:
        self.split = split
        self.labels = np.asarray(labels, dtype=np.int64)
        self.boxes = np.asarray(boxes, dtype=np.int64)
        self.class_names = tuple(class_names)
        self.canvas = canvas
        self._make = make
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def nbytes(self) -> int:
        return len(self) * self.canvas * self.canvas * 3

    def image(self, index: int) -> np.ndarray:
        if self._array is not None:
            return self._array[index]
        return self._make(int(index))

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        if self._array is not None:
            return self._array[idx]
        out = np.empty((len(idx), self.canvas, self.canvas, 3), dtype=np.uint8)
        for j, i in enumerate(idx):
            out[j] = self._make(int(i))
        return out

    def materialise(
        self, max_bytes: int | None = None, report: Callable[[int, int], None] | None = None
    ) -> np.ndarray | None:
        """Build every image into one array if it takes at most ``max_bytes`` (default: a quarter of RAM).

        Returns the array, or ``None`` when it would not fit (images are then made per batch).
        """
        if self._array is not None:
            return self._array
        limit = memory_budget_bytes() // 2 if max_bytes is None else max_bytes
        if self.nbytes > limit:
            return None
        arr = np.empty((len(self), self.canvas, self.canvas, 3), dtype=np.uint8)
        step = 256
        for start in range(0, len(self), step):
            stop = min(len(self), start + step)
            for i in range(start, stop):
                arr[i] = self._make(i)
            if report:
                report(stop, len(self))
        self._array = arr
        return arr

    def for_epoch(self, epoch: int, seed: int) -> VisionSplit:
        """The split a training epoch reads: itself in epoch 1, then its images recomposed.

        From epoch 2 on, slot ``i`` shows image ``i``'s foreground (label ``i``) pasted over the
        foreground of image ``perm[i]``, so on that image's background and at its position, with
        ``perm`` a permutation drawn from ``(seed, epoch)``. Pasting is hard and the boxes have one size,
        so the old foreground is covered exactly and every recomposed image is one the generator could
        have drawn: the labels and the boxes (``boxes[perm]``) stay exact. It multiplies the
        foreground/background/position combinations a small training set shows without making an image.
        Itself when not materialised (streamed images are made per batch) or when the boxes differ in size.
        """
        sizes = self.boxes[:, 2:]
        if epoch <= 1 or self._array is None or len(self) < 2 or (sizes != sizes[0]).any():
            return self
        rng = np.random.default_rng([seed, _SPLIT_ID.get(self.split, len(_SPLIT_ID)), int(epoch), _RECOMPOSE])
        return _RecomposedSplit(self, rng.permutation(len(self)))

    def masks(self, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Boolean ground-truth masks ``(n, canvas, canvas)``: True inside each foreground box."""
        boxes = self.boxes if indices is None else self.boxes[np.asarray(indices, dtype=np.int64)]
        out = np.zeros((len(boxes), self.canvas, self.canvas), dtype=bool)
        for j, (t, left, h, w) in enumerate(boxes):
            out[j, t : t + h, left : left + w] = True
        return out


class _RecomposedSplit(VisionSplit):
    """A materialised split's foregrounds pasted over those of a permutation of its images (see
    :meth:`VisionSplit.for_epoch`); batches are composed on demand from the base array."""

    def __init__(self, base: VisionSplit, perm: np.ndarray) -> None:
        super().__init__(base.split, base.labels, base.boxes[perm], base.class_names, base.canvas, self._one)
        self._base, self._perm, self._own = base._array, perm, base.boxes

    def _one(self, index: int) -> np.ndarray:
        return self.images([index])[0]

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        out = self._base[self._perm[idx]]  # a copy: fancy indexing
        for j, i in enumerate(idx):
            t, left, h, w = self._own[i]
            top, lft = self.boxes[i, :2]
            out[j, top : top + h, lft : lft + w] = self._base[i, t : t + h, left : left + w]
        return out


@dataclass
class VisionData:
    """Both splits of one configuration, and the warnings that apply to it."""

    config: VisionDataConfig
    seed: int
    train: VisionSplit
    val: VisionSplit
    class_names: tuple[str, ...]
    warnings: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def condition(self) -> str:
        return condition_code(self.config.background, self.config.position)


def _composite_split(config: VisionDataConfig, split: str, seed: int, n: int) -> VisionSplit:
    fg = FOREGROUNDS.get(config.foreground).open(config, split, seed)  # type: ignore[misc]
    draw_bg = BACKGROUNDS.get(config.background).open(config, split)
    place = POSITIONS.get(config.position).place
    size = config.foreground_size
    positions = np.array([place(_rng(seed, split, i, _POS), config.canvas, size) for i in range(n)], dtype=np.int64)
    boxes = np.column_stack([positions, np.full((n, 2), size, dtype=np.int64)]) if n else np.zeros((0, 4), np.int64)

    def make(index: int) -> np.ndarray:
        img = draw_bg(_rng(seed, split, index, _BG), index).copy()
        top, left = positions[index]
        img[top : top + size, left : left + size] = fg.image(index)
        return img

    return VisionSplit(split, fg.labels(n), boxes, fg.class_names, config.canvas, make)


# --- the published layout ----------------------------------------------------------------------

_METADATA_NAMES = ("metadata.csv", "meta_data.csv")
_REQUIRED_COLUMNS = ("file_name", "foreground_label", "position_x", "position_y")


def _published_split_dir(root: Path, setting: str, split: str) -> Path:
    candidates = [root / setting / split, root / split] if root.name != setting else [root / split]
    for c in candidates:
        if any((c / m).is_file() for m in _METADATA_NAMES):
            return c
    raise DataError(
        f"The 'data_root' {str(root)!r} does not have the published ChaosMining vision layout: expected "
        f"<data_root>/<SETTING>/<split>/metadata.csv (or meta_data.csv) with SETTING in {', '.join(PUBLISHED_SETTINGS)} "
        f"(here {setting}) and split in train, val, and the images next to the CSV. Looked for "
        f"{candidates[0] / 'metadata.csv'}. Found in data_root: {_listing(root)}."
    )


def read_published_metadata(folder: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of ``metadata.csv`` (or the older ``meta_data.csv``) in ``folder``, columns checked."""
    folder = Path(folder)
    path = next((folder / m for m in _METADATA_NAMES if (folder / m).is_file()), None)
    if path is None:
        raise DataError(f"No metadata.csv or meta_data.csv in {folder}. Found: {_listing(folder)}.")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"The metadata file {path} could not be read: {exc}") from None
    missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataError(
            f"The metadata file {path} must have the columns {', '.join(_REQUIRED_COLUMNS)} (and optionally "
            f"background_label); {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing. "
            f"Found: {', '.join(columns) or 'no header'}."
        )
    if not rows:
        raise DataError(f"The metadata file {path} has no rows.")
    return rows


def _class_names(raw: Sequence[str]) -> tuple[tuple[str, ...], dict[str, int]]:
    values = sorted(set(raw), key=lambda v: (0, int(v), v) if v.lstrip("-").isdigit() else (1, 0, v))
    if all(v.isdigit() for v in values) and {int(v) for v in values} <= set(range(10)):
        mapping = {v: int(v) for v in values}
        return CIFAR10_CLASSES, mapping
    return tuple(values), {v: i for i, v in enumerate(values)}


def _published_split(config: VisionDataConfig, split: str, seed: int, n: int, warnings: list[str]) -> VisionSplit:
    setting = condition_code(config.background, config.position)
    folder = _published_split_dir(_root(config), setting, split)
    rows = read_published_metadata(folder)
    if n > len(rows):
        warnings.append(f"{folder} has {len(rows)} images, fewer than the {n} asked for; all of them are used.")
    order = np.random.default_rng([seed, _SPLIT_ID[split], _PERM]).permutation(len(rows))[: min(n, len(rows))]
    rows = [rows[i] for i in order]
    class_names, mapping = _class_names([r["foreground_label"] for r in rows])
    try:
        labels = np.array([mapping[r["foreground_label"]] for r in rows], dtype=np.int64)
        # The published position_x is the ROW and position_y the COLUMN of the top-left corner.
        tops = np.array([int(float(r["position_x"])) for r in rows], dtype=np.int64)
        lefts = np.array([int(float(r["position_y"])) for r in rows], dtype=np.int64)
    except ValueError as exc:
        raise DataError(f"The metadata in {folder} has a non-numeric position: {exc}") from None
    size = config.foreground_size
    bad = np.flatnonzero((tops < 0) | (lefts < 0) | (tops + size > config.canvas) | (lefts + size > config.canvas))
    if len(bad):
        r = rows[int(bad[0])]
        raise DataError(
            f"The foreground of {r['file_name']} in {folder} at row {r['position_x']}, column {r['position_y']} does "
            f"not fit a {size}-px box on a {config.canvas}-px canvas; set canvas and foreground_size to the data "
            "set's geometry (224 and 32 for the published data)."
        )
    files = [folder / r["file_name"] for r in rows]
    first = _read_rgb(files[0])
    if first.shape[:2] != (config.canvas, config.canvas):
        raise ConfigError(
            f"The 'canvas' parameter of {_OWNER} must match the images in {folder}, which are "
            f"{first.shape[0]}x{first.shape[1]}. Got {config.canvas} instead."
        )

    def make(index: int) -> np.ndarray:
        img = _read_rgb(files[index])
        if img.shape[:2] != (config.canvas, config.canvas):
            raise DataError(
                f"The image {files[index]} is {img.shape[0]}x{img.shape[1]}, not {config.canvas}x{config.canvas}."
            )
        return img

    boxes = np.column_stack([tops, lefts, np.full(len(rows), size), np.full(len(rows), size)])
    return VisionSplit(split, labels, boxes, class_names, config.canvas, make)


def _empty_split(split: str, canvas: int) -> VisionSplit:
    def nothing(index: int) -> np.ndarray:
        raise IndexError(f"the {split} split was not opened")

    return VisionSplit(split, np.zeros(0), np.zeros((0, 4)), (), canvas, nothing)


def make_vision_data(config: VisionDataConfig, seed: int = 0, splits: Sequence[str] = SPLITS) -> VisionData:
    """Open (nothing is drawn yet) both splits of ``config`` with ``seed``.

    Sources on disk are checked here, so a wrong ``data_root`` fails at once with the layout expected.
    ``splits`` may name only ``("val",)``, for instance, to regenerate the validation images.

    Examples
    --------
    >>> data = make_vision_data(VisionDataConfig(canvas=64, foreground_size=16, train_size=20, val_size=4))
    >>> data.val.images([0]).shape, tuple(data.val.boxes[0])
    ((1, 64, 64, 3), (24, 24, 16, 16))
    """
    warnings = data_warnings(config)
    sizes = {"train": config.train_size, "val": config.val_size}
    built: dict[str, VisionSplit] = {}
    for split in SPLITS:
        n = sizes[split] if split in splits else 0
        if FOREGROUNDS.get(config.foreground).whole_images:
            built[split] = (
                _published_split(config, split, seed, n, warnings) if n else _empty_split(split, config.canvas)
            )
        else:
            built[split] = _composite_split(config, split, seed, n)
    names = built["train"].class_names or built["val"].class_names
    return VisionData(config, seed, built["train"], built["val"], names, warnings)


def dataset_summary(data: VisionData) -> dict[str, Any]:
    """Counts per split and class (JSON-able)."""
    return {
        s.split: {"images": len(s), "per_class": np.bincount(s.labels, minlength=data.n_classes).tolist()}
        for s in (data.train, data.val)
    }
