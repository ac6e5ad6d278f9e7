"""Scores of attributions against known ground truth, and of predictions against targets.

Definitions follow the paper (section 2.2, eq. 2) and the original code exactly:

* **FPrec** - for each sample, the top-k features by |attribution| with k = number of relevant
  features; the share of them that are relevant; averaged over samples. (precision@k = recall@k.)
* **UScore(a, b)** = mean(1 - |a - b| / (|a| + |b| + 1e-7)), in (0, 1]; 1 when a == b.
* **attribution UScore** - the attribution is L1-normalised over *all* features, the ground truth
  over the *relevant* features; both are restricted to the relevant columns and compared by UScore.
* **consistency** (Figure 5) - the share of each sample's top-k features that are also among the
  top-k of the mean |attribution| over the data set.
* **convergence** (Figure 5) - the area under the FPrec-over-training curve divided by its length
  (the mean FPrec over training), so 1 means perfect from the first epoch.

Each metric is registered with its direction and category, as in Quantus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .registry import Registry

__all__ = [
    "EPS",
    "topk_indices",
    "fprec",
    "fprec_per_sample",
    "uscore",
    "attribution_uscore",
    "consistency",
    "convergence",
    "mae",
    "MetricSpec",
    "METRICS",
    "random_fprec_expectation",
]

EPS = 1e-7


def topk_indices(attr: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest |attr| per row (ties broken by the lower index), shape ``(n, k)``."""
    attr = np.abs(np.asarray(attr, dtype=np.float64))
    if k <= 0:
        return np.zeros((attr.shape[0], 0), dtype=np.int64)
    order = np.argsort(-attr, axis=1, kind="stable")
    return order[:, :k]


def fprec_per_sample(attr: np.ndarray, relevant: Sequence[int], k: int | None = None) -> np.ndarray:
    """Per-sample functional precision; ``attr`` has shape ``(n, d)``."""
    relevant = np.asarray(list(relevant), dtype=np.int64)
    k = len(relevant) if k is None else k
    top = topk_indices(attr, k)
    return np.isin(top, relevant).sum(axis=1) / max(k, 1)


def fprec(attr: np.ndarray, relevant: Sequence[int], k: int | None = None) -> float:
    """Mean functional precision (FPrec) over samples.

    Examples
    --------
    >>> fprec(np.array([[3.0, -2.0, 0.1]]), relevant=[0, 1])
    1.0
    """
    return float(fprec_per_sample(attr, relevant, k).mean())


def random_fprec_expectation(n_relevant: int, n_features: int) -> float:
    """Expected FPrec of a uniformly random ranking: k/d (hypergeometric mean of hits / k)."""
    return n_relevant / n_features


def uscore(a: np.ndarray, b: np.ndarray) -> float:
    """Uniform score, paper eq. 2: mean(1 - |a - b| / (|a| + |b| + eps))."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.mean(1.0 - np.abs(a - b) / (np.abs(a) + np.abs(b) + EPS)))


def _l1_normalise(x: np.ndarray) -> np.ndarray:
    norm = np.abs(x).sum(axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def attribution_uscore(attr: np.ndarray, truth: np.ndarray, relevant: Sequence[int]) -> float:
    """UScore of an attribution against a ground truth, normalised as in the original code.

    ``attr`` and ``truth`` have shape ``(n, d)``; only ``relevant`` columns of ``truth`` are used.
    """
    relevant = list(relevant)
    a = _l1_normalise(np.asarray(attr, dtype=np.float64))[:, relevant]
    g = _l1_normalise(np.asarray(truth, dtype=np.float64)[:, relevant])
    return uscore(a, g)


def consistency(attr: np.ndarray, k: int) -> float:
    """Mean share of each sample's top-k features found in the data set's top-k (mean |attr|)."""
    attr = np.abs(np.asarray(attr, dtype=np.float64))
    global_top = topk_indices(attr.mean(axis=0, keepdims=True), k)[0]
    return float(np.isin(topk_indices(attr, k), global_top).sum(axis=1).mean() / max(k, 1))


def convergence(epochs: Sequence[float], values: Sequence[float]) -> float:
    """Area under a metric-over-training curve divided by the span of epochs (trapezoid rule)."""
    x = np.asarray(epochs, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if len(x) < 2 or x[-1] == x[0]:
        return float(y.mean()) if len(y) else float("nan")
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def mae(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64))))


@dataclass(frozen=True)
class MetricSpec:
    name: str
    display_name: str
    higher_is_better: bool
    category: str
    description: str
    fn: Callable[..., float]


METRICS: Registry[MetricSpec] = Registry("metric")
for _spec in (
    MetricSpec(
        "fprec", "FPrec", True, "localisation", "Share of the top-k attributed features that are relevant.", fprec
    ),
    MetricSpec(
        "uscore",
        "UScore",
        True,
        "ground-truth agreement",
        "Agreement of L1-normalised attributions with the analytic ground truth on the relevant features.",
        attribution_uscore,
    ),
    MetricSpec(
        "consistency",
        "Consistency",
        True,
        "stability",
        "Agreement of each sample's top-k with the data set's top-k (Figure 5).",
        consistency,
    ),
    MetricSpec(
        "convergence",
        "Convergence",
        True,
        "training dynamics",
        "Mean FPrec over training (area under the FPrec curve, Figure 5).",
        convergence,
    ),
    MetricSpec(
        "prediction_uscore",
        "Prediction UScore",
        True,
        "prediction",
        "UScore of predictions vs the noise-free target.",
        uscore,
    ),
    MetricSpec("test_mae", "Test MAE", False, "prediction", "Mean absolute error vs the noise-free target.", mae),
):
    METRICS.register(_spec.name, _spec)
