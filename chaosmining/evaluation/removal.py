"""From attribution maps to removal masks: aggregation to units, model-agnostic post-processing,
ranking with random tie-breaks, and replacement by the training mean.

The aggregation rule matters and is explicit: ``abs`` (sum over colour channels of |a|, Adebayo's
absolute maps; the default), ``square`` (sum of a^2, as Hooker et al.'s code squares), ``signed`` (sum of
a, as ROAD ranks). Post-processing (Song et al.) is ``max`` (3x3 maximum filter) or ``gaussian``
(sigma 1): over the image plane for images, along time only for audio; tabular data have no topology,
so only ``none`` applies to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import ConfigError
from ..registry import Registry

__all__ = [
    "AGGREGATIONS",
    "POSTPROCESS",
    "PostprocessSpec",
    "unit_scores",
    "postprocess",
    "rank_units",
    "removal_mask",
    "apply_mask",
    "units_for_fraction",
]

AGGREGATIONS: Registry[Callable[[np.ndarray], np.ndarray]] = Registry("aggregation")
AGGREGATIONS.register("abs", np.abs)
AGGREGATIONS.register("square", np.square)
AGGREGATIONS.register("signed", lambda a: a)


def unit_scores(attr: np.ndarray, modality: str, aggregate: str = "abs") -> np.ndarray:
    """Per-unit scores from attributions of the input's shape.

    Images ``(n, C, H, W)`` -> ``(n, H, W)`` by summing the transformed channels; tabular ``(n, d)``
    and audio ``(n, C, T)`` keep their shape (every element is a unit).
    """
    values = AGGREGATIONS.get(aggregate)(np.asarray(attr, dtype=np.float64))
    return values.sum(axis=1) if modality == "image" else values


@dataclass(frozen=True)
class PostprocessSpec:
    name: str
    display_name: str
    apply: Callable[[np.ndarray, str], np.ndarray]


def _axes_filter(kind: str) -> Callable[[np.ndarray, str], np.ndarray]:
    def apply(scores: np.ndarray, modality: str) -> np.ndarray:
        if modality == "tabular":
            raise ConfigError(
                "The 'postprocess' parameter must be 'none' for tabular data: features have no spatial or temporal "
                f"neighbours to blur over. Got {kind!r} instead."
            )
        # Never across samples; for audio never across channels (they are not spatially ordered).
        if kind == "max":
            size = (1, 3, 3) if modality == "image" else (1, 1, 3)
            return ndimage.maximum_filter(scores, size=size, mode="nearest")
        sigma = (0, 1.0, 1.0) if modality == "image" else (0, 0, 1.0)
        return ndimage.gaussian_filter(scores, sigma=sigma, mode="nearest")

    return apply


POSTPROCESS: Registry[PostprocessSpec] = Registry("post-processing")
for _p in (
    PostprocessSpec("none", "raw map", lambda s, m: s),
    PostprocessSpec("max", "3x3 maximum filter", _axes_filter("max")),
    PostprocessSpec("gaussian", "Gaussian blur, sigma 1", _axes_filter("gaussian")),
):
    POSTPROCESS.register(_p.name, _p)


def postprocess(scores: np.ndarray, kind: str, modality: str) -> np.ndarray:
    """Apply the model-agnostic post-processing ``kind`` to unit scores ``(n, *unit_shape)``."""
    return POSTPROCESS.get(kind).apply(np.asarray(scores, dtype=np.float64), modality)


def rank_units(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Units of each sample from most to least relevant, shape ``(n, U)``.

    Ties are broken by one random order of the units shared by all samples, so that tied rankings
    (the oracle's relevant units, a linear model's gradient) remove the same units everywhere.
    """
    flat = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    tie = np.broadcast_to(rng.random(flat.shape[1]), flat.shape)
    return np.lexsort((tie, -flat), axis=1)


def units_for_fraction(fraction: float, n_units: int) -> int:
    """How many units a fraction means: ``floor(fraction * U)`` (Hooker et al.'s k), within ``[0, U]``."""
    return int(min(n_units, max(0, int(fraction * n_units + 1e-9))))


# Which ranked positions each order removes, given the ranking (n, U) and k = floor(fraction * U).
_ORDERS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "morf": lambda order, k: order[:, :k],
    "lerf": lambda order, k: order[:, order.shape[1] - k :],
    "keep": lambda order, k: order[:, k:],
}


def removal_mask(
    order: np.ndarray, unit_shape: tuple[int, ...], fraction: float, order_kind: str = "morf"
) -> np.ndarray:
    """Boolean mask ``(n, *unit_shape)`` of the units to remove.

    ``order_kind``: ``morf`` removes the top ``fraction`` (ROAR, ROAD most-relevant-first); ``lerf``
    removes the bottom ``fraction`` (least-relevant-first); ``keep`` keeps the top ``fraction`` and
    removes the rest (KAR). ``fraction`` is always the share of units it names: removed for morf and
    lerf, kept for keep.
    """
    n, n_units = order.shape
    if order_kind not in _ORDERS:
        raise ConfigError(f"The 'order' parameter must be one of {list(_ORDERS)}. Got {order_kind!r} instead.")
    chosen = _ORDERS[order_kind](order, units_for_fraction(fraction, n_units))
    mask = np.zeros((n, n_units), dtype=bool)
    np.put_along_axis(mask, chosen, True, axis=1)
    return mask.reshape(n, *unit_shape)


def expand_mask(mask: np.ndarray, input_shape: tuple[int, ...], modality: str) -> np.ndarray:
    """A unit mask broadcast to the inputs' shape (images: the same pixels in every channel)."""
    if modality == "image":
        return np.broadcast_to(mask[:, None], (len(mask), *input_shape))
    return mask


def apply_mask(X: np.ndarray, mask: np.ndarray, fill: np.ndarray, modality: str) -> np.ndarray:
    """``X`` with the masked units replaced by ``fill`` (one sample's shape, e.g. the training mean)."""
    full = expand_mask(mask, X.shape[1:], modality)
    return np.where(full, np.broadcast_to(fill, X.shape), X).astype(X.dtype, copy=False)
