"""Similarity of two attribution maps, per sample, as in Adebayo et al.'s sanity checks.

Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim, *Sanity Checks for Saliency Maps*, NeurIPS 2018,
https://arxiv.org/abs/1810.03292. Each metric compares maps ``(n, *input_shape)`` sample by sample and
returns ``(n,)`` values:

* ``spearman_abs`` - Spearman rank correlation of the absolute maps (images: summed |a| over colour
  channels). Stays high even for unrelated maps when the input's structure dominates (a weak
  discriminator, reported for completeness);
* ``spearman`` - Spearman of the signed maps (images: summed a): the primary pass/fail metric;
* ``ssim`` - structural similarity (Gaussian window, sigma 1.5, truncated at 3.5 sigma as
  scikit-image does) of the signed maps scaled by their largest magnitude; over the image plane for
  images, along time within each channel for audio;
* ``hog`` - Pearson correlation of the histograms of oriented gradients of the absolute maps (images
  only; cells of a quarter of the image side).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats

from ..registry import Registry

__all__ = ["SIMILARITIES", "SimilaritySpec", "similarity", "ssim", "similarities_for"]


def _units(a: np.ndarray, modality: str, absolute: bool) -> np.ndarray:
    a = np.abs(a) if absolute else np.asarray(a, dtype=np.float64)
    return a.sum(axis=1) if modality == "image" else a


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    A = a.reshape(len(a), -1)
    B = b.reshape(len(b), -1)
    ra = stats.rankdata(A, axis=1)
    rb = stats.rankdata(B, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ra * rb).sum(axis=1) / np.where(denom > 0, denom, 1), np.nan)


def ssim(a: np.ndarray, b: np.ndarray, axes: tuple[int, ...], data_range: float = 2.0, sigma: float = 1.5) -> float:
    """Mean structural similarity of arrays ``a`` and ``b`` with a Gaussian window along ``axes``.

    The formula, constants (K1 = 0.01, K2 = 0.03) and the cropping of the border by the window's
    half-width follow ``skimage.metrics.structural_similarity(gaussian_weights=True,
    use_sample_covariance=False)``; unlike it, any subset of axes can be filtered (1-D SSIM along time).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    sig = [sigma if ax in axes else 0.0 for ax in range(a.ndim)]

    def blur(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma=sig, truncate=3.5, mode="reflect")

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ma, mb = blur(a), blur(b)
    vaa, vbb, vab = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * vab + c2)) / ((ma * ma + mb * mb + c1) * (vaa + vbb + c2))
    pad = (2 * int(3.5 * sigma + 0.5) + 1 - 1) // 2
    crop = tuple(slice(pad, -pad) if ax in axes and a.shape[ax] > 2 * pad else slice(None) for ax in range(a.ndim))
    return float(s[crop].mean())


def _scaled(x: np.ndarray) -> np.ndarray:
    peak = np.abs(x).max()
    return x / peak if peak > 0 else x


def _ssim_rows(a: np.ndarray, b: np.ndarray, modality: str) -> np.ndarray:
    A, B = _units(a, modality, absolute=False), _units(b, modality, absolute=False)
    axes = (0, 1) if modality == "image" else (1,)
    return np.array([ssim(_scaled(x), _scaled(y), axes) for x, y in zip(A, B)])


def _hog_rows(a: np.ndarray, b: np.ndarray, modality: str) -> np.ndarray:
    from skimage.feature import hog

    A, B = _units(a, modality, absolute=True), _units(b, modality, absolute=True)
    cell = max(2, A.shape[-1] // 4)

    def features(x: np.ndarray) -> np.ndarray:
        peak = x.max()
        x = x / peak if peak > 0 else x
        return hog(x, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2), feature_vector=True)

    out = []
    for x, y in zip(A, B):
        fx, fy = features(x), features(y)
        ok = fx.std() > 0 and fy.std() > 0
        out.append(float(np.corrcoef(fx, fy)[0, 1]) if ok else np.nan)
    return np.array(out)


@dataclass(frozen=True)
class SimilaritySpec:
    name: str
    display_name: str
    modalities: tuple[str, ...]
    fn: Callable[[np.ndarray, np.ndarray, str], np.ndarray]
    primary: bool = False


SIMILARITIES: Registry[SimilaritySpec] = Registry("similarity metric")
for _s in (
    SimilaritySpec(
        "spearman_abs",
        "Spearman (absolute)",
        ("tabular", "image", "audio"),
        lambda a, b, m: _spearman_rows(_units(a, m, True), _units(b, m, True)),
    ),
    SimilaritySpec(
        "spearman",
        "Spearman (signed)",
        ("tabular", "image", "audio"),
        lambda a, b, m: _spearman_rows(_units(a, m, False), _units(b, m, False)),
        primary=True,
    ),
    SimilaritySpec("ssim", "SSIM (signed)", ("image", "audio"), _ssim_rows),
    SimilaritySpec("hog", "HOG correlation", ("image",), _hog_rows),
):
    SIMILARITIES.register(_s.name, _s)


def similarities_for(modality: str) -> list[str]:
    return [n for n, s in SIMILARITIES.items() if modality in s.modalities]


def similarity(name: str, a: np.ndarray, b: np.ndarray, modality: str) -> np.ndarray:
    """Per-sample similarity ``(n,)`` of maps ``a`` and ``b`` (shape ``(n, *input_shape)``)."""
    return SIMILARITIES.get(name).fn(np.asarray(a), np.asarray(b), modality)
