"""Small self-contained image and audio tasks sized for retraining many times on a 2-core CPU.

ROAR retrains a fresh model for every removal fraction, estimator and repeat, so the evaluation needs
tasks whose model trains in seconds. These follow the "lite" configurations of the project's evaluation
note (section 3.3):

* **shapes16** - 16x16 RGB images, 4 classes of 6x6 shapes (filled square, disk, plus, hollow square)
  painted in a random colour at a random position over a smoothed-noise background (std 0.3). The
  ground truth is the object's 6x6 box (14 % of the image), as ChaosMining's foreground patch: a box
  has the same shape in every class, so an oracle mask cannot leak the class through its shape.
* **tones** - 4 channels x 256 time steps of Gaussian noise (std 0.25, as the paper's random
  background); one random channel carries a 64-step windowed tone whose frequency is the class. The
  ground truth is the (channel, time) cells of the burst (about 6 % of the cells).

Models are compact CNNs with one module instance per use (every Captum method, hooks included, runs on
them). Weights are drawn from a ``torch.Generator`` with PyTorch's default distributions, and training
uses Adam on cross-entropy with seeded mini-batch order: no global seeding anywhere.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from ..trainer import TrainerHooks
from ..trainer import train_classifier as train

__all__ = [
    "LiteData",
    "make_shapes16",
    "make_tones",
    "shapes_cnn",
    "tones_cnn",
    "reinitialise",
    "train_classifier",
    "SHAPE_NAMES",
    "TONE_CYCLES",
]

SHAPE_NAMES = ("filled square", "disk", "plus", "hollow square")
TONE_CYCLES = (4, 8, 14, 22)  # cycles per 64-step burst, one per class


@dataclass(frozen=True, eq=False)
class LiteData:
    """Inputs ``X`` (float32), labels ``y`` (int64) and the ground-truth ``relevant`` mask per unit.

    ``relevant`` has the shape of one sample's units: ``(n, H, W)`` for images, ``(n, C, T)`` for audio.
    """

    X: np.ndarray
    y: np.ndarray
    relevant: np.ndarray


def _shape_templates(size: int = 6) -> np.ndarray:
    r = np.arange(size) - (size - 1) / 2
    yy, xx = np.meshgrid(r, r, indexing="ij")
    filled = np.ones((size, size), dtype=bool)
    disk = yy**2 + xx**2 <= (size / 2) ** 2 * 0.8
    plus = (np.abs(yy) < 1) | (np.abs(xx) < 1)
    hollow = filled.copy()
    hollow[1:-1, 1:-1] = False
    return np.stack([filled, disk, plus, hollow])


def make_shapes16(n: int, seed: int, size: int = 16, object_size: int = 6) -> LiteData:
    """``n`` images of shape ``(3, size, size)``; the class is the shape (see the module docstring)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5A9E]))
    templates = _shape_templates(object_size)
    y = rng.integers(0, len(templates), n)
    noise = rng.standard_normal((n, 3, size, size))
    background = ndimage.gaussian_filter(noise, sigma=(0, 0, 1, 1))
    background *= 0.3 / background.std()
    X = background.astype(np.float32)
    relevant = np.zeros((n, size, size), dtype=bool)
    rows = rng.integers(0, size - object_size + 1, n)
    cols = rng.integers(0, size - object_size + 1, n)
    colours = rng.uniform(0.6, 1.2, (n, 3)) * rng.choice([-1.0, 1.0], (n, 3))
    for i in range(n):
        window = (slice(rows[i], rows[i] + object_size), slice(cols[i], cols[i] + object_size))
        shape = templates[y[i]]
        relevant[i][window] = True
        for c in range(3):
            X[i, c][window][shape] = colours[i, c]
    return LiteData(X, y.astype(np.int64), relevant)


def make_tones(n: int, seed: int, channels: int = 4, steps: int = 256, burst: int = 64) -> LiteData:
    """``n`` clips of shape ``(channels, steps)``; the class is the burst's frequency."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x70E5]))
    y = rng.integers(0, len(TONE_CYCLES), n)
    X = np.clip(rng.standard_normal((n, channels, steps)) * 0.25, -1, 1).astype(np.float32)
    relevant = np.zeros((n, channels, steps), dtype=bool)
    channel = rng.integers(0, channels, n)
    start = rng.integers(0, steps - burst + 1, n)
    t = np.arange(burst)
    window = np.hanning(burst)
    phase = rng.uniform(0, 2 * np.pi, n)
    for i in range(n):
        wave = 0.6 * window * np.sin(2 * np.pi * TONE_CYCLES[y[i]] * t / burst + phase[i])
        X[i, channel[i], start[i] : start[i] + burst] += wave.astype(np.float32)
        relevant[i, channel[i], start[i] : start[i] + burst] = True
    return LiteData(X, y.astype(np.int64), relevant)


def reinitialise(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Draw ``module``'s weights again from PyTorch's default distributions, using ``generator``.

    Weights and biases of layers with a matrix or kernel are uniform in +-1/sqrt(fan_in) (what
    ``nn.Linear``/``nn.Conv*`` draw by default); parameter-only layers without one (normalisation) are
    reset to their deterministic defaults. Returns ``module``.
    """
    with torch.no_grad():
        for sub in module.modules():
            params = list(sub.parameters(recurse=False))
            if not params:
                continue
            weight = getattr(sub, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
                fan_in = weight[0].numel()
                bound = 1.0 / math.sqrt(max(1, fan_in))
                for p in params:
                    p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
            elif hasattr(sub, "reset_parameters"):
                sub.reset_parameters()
    return module


def _small_cnn(
    conv: type[nn.Module], pool: nn.Module, head: nn.Module, channels: int, kernels: tuple[int, int, int], classes: int
) -> nn.Sequential:
    """Conv 16-32-32 with ReLU and two max-pools (factor ``pool``), global ``head`` pooling, a linear head.

    Every activation and pooling layer is its own module instance, as hook-based methods need.
    """
    layers: list[nn.Module] = []
    widths = (channels, 16, 32, 32)
    for i, k in enumerate(kernels):
        layers += [conv(widths[i], widths[i + 1], k, padding=k // 2), nn.ReLU()]
        if i < 2:
            layers.append(copy.deepcopy(pool))
    return nn.Sequential(*layers, head, nn.Flatten(), nn.Linear(32, classes))


def shapes_cnn(classes: int = 4) -> nn.Sequential:
    """The image CNN: 3x3 convolutions, 2x2 max-pools, global average pooling."""
    return _small_cnn(nn.Conv2d, nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), 3, (3, 3, 3), classes)


def tones_cnn(channels: int = 4, classes: int = 4) -> nn.Sequential:
    """The 1-D CNN over time: kernels 9, 5, 3, max-pools of 4, global max pooling."""
    return _small_cnn(nn.Conv1d, nn.MaxPool1d(4), nn.AdaptiveMaxPool1d(1), channels, (9, 5, 3), classes)


def train_classifier(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    seed: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[nn.Module, float]:
    """Train ``model`` (weights drawn from ``seed``) with Adam on cross-entropy; return it in eval mode
    and the seconds it took. Raises :class:`JobCancelled` when ``should_stop()`` turns true."""
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 0x7A1]).generate_state(1)[0]))
    reinitialise(model, gen)
    Xt = torch.as_tensor(X, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()

    def batches(_epoch: int, g: torch.Generator):
        for idx in torch.randperm(len(Xt), generator=g).split(batch_size):
            yield Xt[idx], yt[idx]

    train(
        model,
        epochs=epochs,
        batches=batches,
        steps_per_epoch=-(-len(Xt) // batch_size),
        loss_fn=nn.functional.cross_entropy,
        optimizer=opt,
        schedule=torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0),  # constant, as the original recipe
        schedule_per_batch=False,
        validate=lambda _m: float("nan"),  # retrainings are scored by the caller
        generator=gen,
        device=torch.device("cpu"),
        hooks=TrainerHooks(should_stop=should_stop),
    )
    return model.eval(), time.perf_counter() - start
