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

Localisation (images) and channel (audio) scores live here too:

* **IoU** (paper section 3.2): |attribution| smoothed, the k = box-area highest pixels, the box
  spanning them against the true box. Its chance level is the IoU of a uniformly random map
  (:func:`random_map_iou`, about 0.02 at 224 px), its ceiling that of the true mask itself.
* **pointing game** - is the raw map's highest pixel inside the box? **mass inside box** - the raw
  map's share inside the box. Both have the box's share of the canvas as chance level.
* **channel FPrec** (paper section 3.3) - the speech channel's share of the |attribution| mass;
  **top-1 hit** - is the speech channel the most attributed? Both have chance 1 / channels.

Each metric is registered with its direction, category, modalities and chance level, as in Quantus;
the experiments read the chance levels from here, and the figures draw them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

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
    "smooth_maps",
    "topk_box",
    "box_iou",
    "localisation_scores",
    "random_map_iou",
    "perfect_map_iou",
    "box_area_share",
    "channel_importance",
    "channel_fprec_per_sample",
    "top1_hits",
    "channel_chance",
    "chance_level",
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


# --- localisation on images -----------------------------------------------------------------------


def smooth_maps(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of each ``(H, W)`` map of ``(n, H, W)`` (reflecting borders); ``sigma=0`` is a copy."""
    maps = np.asarray(maps, dtype=np.float32)
    if sigma <= 0:
        return maps.copy()
    return gaussian_filter(maps, sigma=(0, sigma, sigma))


def topk_box(map2d: np.ndarray, k: int) -> tuple[int, int, int, int]:
    """The box ``(top, left, height, width)`` spanning the ``k`` highest pixels of ``map2d``.

    Ties go to the pixel that comes first in raster order. As in the original code, the box runs from
    the smallest to the largest row and column of those pixels (``height = max_row - min_row``).
    """
    flat = np.asarray(map2d).ravel()
    k = max(1, min(int(k), flat.size))
    idx = np.argsort(-flat, kind="stable")[:k]
    rows, cols = np.divmod(idx, map2d.shape[1])
    top, left = int(rows.min()), int(cols.min())
    return top, left, int(rows.max()) - top, int(cols.max()) - left


def box_iou(a: Sequence[int], b: Sequence[int]) -> float:
    """Intersection over union of two boxes ``(top, left, height, width)``; 0 when both are empty.

    Examples
    --------
    >>> box_iou((0, 0, 10, 10), (0, 0, 10, 10)), box_iou((0, 0, 10, 10), (20, 20, 5, 5))
    (1.0, 0.0)
    """
    t0, l0, h0, w0 = (float(v) for v in a)
    t1, l1, h1, w1 = (float(v) for v in b)
    ih = max(0.0, min(t0 + h0, t1 + h1) - max(t0, t1))
    iw = max(0.0, min(l0 + w0, l1 + w1) - max(l0, l1))
    inter = ih * iw
    union = h0 * w0 + h1 * w1 - inter
    return inter / union if union > 0 else 0.0


def _inside(box: Sequence[int], canvas: int) -> tuple[slice, slice]:
    t, left, h, w = (int(v) for v in box)
    return slice(max(0, t), min(canvas, t + h)), slice(max(0, left), min(canvas, left + w))


def localisation_scores(
    raw_maps: np.ndarray, boxes: np.ndarray, sigma: float, k: int | None = None
) -> dict[str, np.ndarray]:
    """Per-image scores of ``(n, H, W)`` non-negative maps against true ``boxes`` ``(n, 4)``.

    Returns ``iou`` (the paper's protocol), ``pointing`` (1.0 if the raw map's first maximum is inside
    the box), ``mass`` (share of the raw map's sum inside the box; 0 for an all-zero map), ``boxes``
    (the predicted boxes, ``(n, 4)``) and ``smoothed`` (the smoothed maps).
    """
    raw_maps = np.asarray(raw_maps, dtype=np.float32)
    n, height, width = raw_maps.shape
    smoothed = smooth_maps(raw_maps, sigma)
    out = {k_: np.zeros(n, dtype=np.float32) for k_ in ("iou", "pointing", "mass")}
    pred = np.zeros((n, 4), dtype=np.int64)
    for i in range(n):
        box = boxes[i]
        area = int(box[2]) * int(box[3]) if k is None else k
        pred[i] = topk_box(smoothed[i], area)
        out["iou"][i] = box_iou(pred[i], box)
        rs, cs = _inside(box, height)
        r, c = np.unravel_index(int(np.argmax(raw_maps[i])), (height, width))
        out["pointing"][i] = float(rs.start <= r < rs.stop and cs.start <= c < cs.stop)
        total = float(raw_maps[i].sum())
        out["mass"][i] = float(raw_maps[i][rs, cs].sum()) / total if total > 0 else 0.0
    return {**out, "boxes": pred, "smoothed": smoothed}


def random_map_iou(boxes: np.ndarray, canvas: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The protocol's floor: IoU of an i.i.d. uniform random map, one per box."""
    out = np.zeros(len(boxes), dtype=np.float32)
    for i, box in enumerate(boxes):
        m = smooth_maps(rng.random((1, canvas, canvas), dtype=np.float32), sigma)[0]
        out[i] = box_iou(topk_box(m, int(box[2]) * int(box[3])), box)
    return out


def perfect_map_iou(boxes: np.ndarray, canvas: int, sigma: float) -> np.ndarray:
    """The protocol's ceiling: IoU of the ground-truth mask itself (1 in the box, 0 elsewhere)."""
    out = np.zeros(len(boxes), dtype=np.float32)
    for i, box in enumerate(boxes):
        m = np.zeros((1, canvas, canvas), dtype=np.float32)
        rs, cs = _inside(box, canvas)
        m[0, rs, cs] = 1.0
        out[i] = box_iou(topk_box(smooth_maps(m, sigma)[0], int(box[2]) * int(box[3])), box)
    return out


def box_area_share(boxes: np.ndarray, canvas: int) -> float:
    """Mean share of the canvas the boxes ``(n, 4)`` cover: the chance level of the pointing game and of
    the mass inside the box (a map that ignores the image puts its peak and its mass anywhere)."""
    boxes = np.asarray(boxes)
    return float(np.mean(boxes[:, 2] * boxes[:, 3])) / canvas**2 if len(boxes) else float("nan")


# --- channels of audio ----------------------------------------------------------------------------


def channel_importance(attr: np.ndarray) -> np.ndarray:
    """``sum_t |a| / sum_{c,t} |a|`` per clip: ``(n, C, T)`` -> ``(n, C)`` (uniform where all zero).

    Examples
    --------
    >>> channel_importance(np.ones((1, 4, 10))).tolist()
    [[0.25, 0.25, 0.25, 0.25]]
    """
    per = np.abs(np.asarray(attr, dtype=np.float64)).sum(axis=-1)
    total = per.sum(axis=1, keepdims=True)
    uniform = np.full_like(per, 1.0 / per.shape[1])
    return np.where(total > 0, per / np.where(total > 0, total, 1.0), uniform)


def channel_fprec_per_sample(importance: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The speech channel's share of the importance, per clip (the paper's audio FPrec)."""
    return importance[np.arange(len(importance)), np.asarray(positions)]


def top1_hits(importance: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """1 where the most important channel is the speech channel (ties count as misses unless unique)."""
    top = importance.max(axis=1, keepdims=True)
    winners = (importance == top).sum(axis=1)
    return ((channel_fprec_per_sample(importance, positions) == top[:, 0]) & (winners == 1)).astype(np.float64)


def channel_chance(channels: int) -> float:
    """Channel FPrec and top-1 hit rate of an attribution that ignores the channels: 1 / channels."""
    return 1.0 / channels


# --- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: direction, category, the modalities it scores and its chance level.

    ``chance(**context)`` returns the score of an attribution that ignores the input (for example
    ``channels=10`` for channel FPrec, ``boxes=..., canvas=...`` for the pointing game); ``chance_note``
    says what that level is. ``None`` where the chance level is not defined by the metric alone.
    """

    name: str
    display_name: str
    higher_is_better: bool
    category: str
    description: str
    fn: Callable[..., float]
    modalities: tuple[str, ...] = ("symbolic",)
    chance: Callable[..., float] | None = None
    chance_note: str = ""


def chance_level(metric: str, **context: object) -> float:
    """The registered chance level of ``metric`` for ``context`` (see :class:`MetricSpec`)."""
    spec = METRICS.get(metric)
    if spec.chance is None:
        raise ValueError(f"The metric {metric!r} declares no chance level.")
    return float(spec.chance(**context))


def _mean_iou(maps: np.ndarray, boxes: np.ndarray, sigma: float) -> float:
    return float(localisation_scores(maps, boxes, sigma)["iou"].mean())


def _pointing(maps: np.ndarray, boxes: np.ndarray) -> float:
    return float(localisation_scores(maps, boxes, 0.0)["pointing"].mean())


def _mass(maps: np.ndarray, boxes: np.ndarray) -> float:
    return float(localisation_scores(maps, boxes, 0.0)["mass"].mean())


def _channel_fprec(attr: np.ndarray, positions: np.ndarray) -> float:
    return float(channel_fprec_per_sample(channel_importance(attr), positions).mean())


def _top1(attr: np.ndarray, positions: np.ndarray) -> float:
    return float(top1_hits(channel_importance(attr), positions).mean())


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
    MetricSpec(
        "iou",
        "IoU",
        True,
        "localisation",
        "IoU of the box spanning the k = box-area highest pixels of the smoothed |attribution| with the true box "
        "(paper 3.2).",
        _mean_iou,
        modalities=("vision",),
        chance=lambda boxes, canvas, sigma, rng: float(random_map_iou(boxes, canvas, sigma, rng).mean()),
        chance_note="the IoU of a uniformly random map (computed per run)",
    ),
    MetricSpec(
        "pointing_game",
        "Pointing game",
        True,
        "localisation",
        "Share of images whose highest |attribution| pixel is inside the true box.",
        _pointing,
        modalities=("vision",),
        chance=lambda boxes, canvas, **_: box_area_share(boxes, canvas),
        chance_note="the box's share of the canvas",
    ),
    MetricSpec(
        "mass_inside",
        "Mass inside box",
        True,
        "localisation",
        "Share of the |attribution| mass inside the true box.",
        _mass,
        modalities=("vision",),
        chance=lambda boxes, canvas, **_: box_area_share(boxes, canvas),
        chance_note="the box's share of the canvas",
    ),
    MetricSpec(
        "channel_fprec",
        "Channel FPrec",
        True,
        "localisation",
        "The speech channel's share of the |attribution| mass (paper 3.3).",
        _channel_fprec,
        modalities=("audio",),
        chance=lambda channels, **_: channel_chance(channels),
        chance_note="1 / channels",
    ),
    MetricSpec(
        "top1_hit",
        "Top-1 hit rate",
        True,
        "localisation",
        "Share of clips whose most attributed channel is the speech channel.",
        _top1,
        modalities=("audio",),
        chance=lambda channels, **_: channel_chance(channels),
        chance_note="1 / channels",
    ),
):
    METRICS.register(_spec.name, _spec)
