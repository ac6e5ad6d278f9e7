"""How blurry a removal mask is, and how much class information its shape alone leaks.

Song, Cha & Seo (https://arxiv.org/abs/2304.13836) show that model-agnostic blurring of attribution maps,
which by the data-processing inequality cannot add information about the model, still improves ROAR,
through a bias towards spatially blurry masks. Their blurriness measure is not in the published
material; these are the project's proposals (evaluation note, section 3.3):

* **boundary ratio** - the share of neighbouring unit pairs that straddle the mask's edge, divided by
  its expectation ``2 p (1 - p)`` for a random mask with the same fill ``p``: 1 is as rough as random,
  below 1 is blurrier. Neighbours are 4-neighbours in the image plane, or consecutive time steps within a
  channel for audio.
* **connected components** of the mask (4-connectivity in images; runs along time for audio).
* **coverage** - the share of the ground-truth units the mask removes.
* **mask-only probe** - a linear classifier (ridge classifier; ridge regression for regressors) fit
  on the binary masks of the training set alone, scored on the test masks: what a retrained model
  could learn from *where* things were removed, without seeing any input value.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import ConfigError

__all__ = ["boundary_ratio", "connected_components", "coverage", "mask_probe", "mask_statistics"]

_STRUCTURE = {
    "image": ndimage.generate_binary_structure(2, 1),
    "audio": np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=bool),
}


def _pairs(mask: np.ndarray, modality: str) -> list[tuple[np.ndarray, np.ndarray]]:
    if modality == "image":
        return [(mask[:, 1:, :], mask[:, :-1, :]), (mask[:, :, 1:], mask[:, :, :-1])]
    if modality == "audio":
        return [(mask[:, :, 1:], mask[:, :, :-1])]
    raise ConfigError(
        f"Blurriness measures need a spatial or temporal axis; {modality} data have no neighbouring units."
    )


def boundary_ratio(mask: np.ndarray, modality: str) -> np.ndarray:
    """Per-sample boundary ratio of boolean masks ``(n, *unit_shape)``; NaN for empty or full masks.

    Examples
    --------
    >>> half = np.zeros((1, 4, 4), bool); half[:, :, :2] = True
    >>> float(boundary_ratio(half, "image")[0])  # 4 of 24 pairs straddle, expected 2 * 0.5 * 0.5 = 0.5
    0.3333333333333333
    """
    mask = np.asarray(mask, dtype=bool)
    straddle = np.zeros(len(mask))
    total = 0
    for a, b in _pairs(mask, modality):
        straddle += (a != b).reshape(len(mask), -1).sum(axis=1)
        total += a[0].size
    p = mask.reshape(len(mask), -1).mean(axis=1)
    expected = 2 * p * (1 - p)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected > 0, straddle / total / np.where(expected > 0, expected, 1), np.nan)


def connected_components(mask: np.ndarray, modality: str) -> np.ndarray:
    """Number of connected pieces of each mask ``(n, *unit_shape)``."""
    _pairs(mask[:1], modality)  # validates the modality
    return np.array([ndimage.label(m, structure=_STRUCTURE[modality])[1] for m in np.asarray(mask, dtype=bool)])


def coverage(mask: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Share of each sample's relevant units that the mask removes (NaN where none are relevant)."""
    rel = np.asarray(relevant, dtype=bool).reshape(len(mask), -1)
    hit = (np.asarray(mask, dtype=bool).reshape(len(mask), -1) & rel).sum(axis=1)
    n_rel = rel.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_rel > 0, hit / np.where(n_rel > 0, n_rel, 1), np.nan)


def mask_statistics(mask: np.ndarray, relevant: np.ndarray, modality: str) -> dict[str, float]:
    """Means over samples of the boundary ratio, component count and coverage (tabular: coverage only)."""
    out = {"coverage": float(np.nanmean(coverage(mask, relevant)))}
    if modality in _STRUCTURE:
        ratio = boundary_ratio(mask, modality)
        out["boundary_ratio"] = float(np.nanmean(ratio)) if np.isfinite(ratio).any() else float("nan")
        out["components"] = float(connected_components(mask, modality).mean())
    return out


def mask_probe(
    train_masks: np.ndarray,
    y_train: np.ndarray,
    test_masks: np.ndarray,
    y_test: np.ndarray,
    *,
    classify: bool,
) -> float:
    """Test score of a linear model that sees only the binary removal masks.

    Accuracy of a ridge classifier (one-vs-rest least squares, closed form) when ``classify``; R^2 of a
    ridge regression otherwise. Both are linear and translation-variant, so this is a lower bound on
    what a retrained CNN can read from the mask.
    """
    from sklearn.linear_model import Ridge, RidgeClassifier

    A = np.asarray(train_masks, dtype=np.float32).reshape(len(train_masks), -1)
    B = np.asarray(test_masks, dtype=np.float32).reshape(len(test_masks), -1)
    if classify:
        if len(np.unique(y_train)) < 2:
            return float("nan")
        return float(RidgeClassifier(alpha=1.0).fit(A, y_train).score(B, y_test))
    return float(Ridge(alpha=1.0).fit(A, y_train).score(B, y_test))
