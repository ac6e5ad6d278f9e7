"""Estimators: the attribution methods of :data:`chaosmining.attribution.METHODS` plus model-free controls.

The controls make removal curves interpretable:

* ``oracle`` - the ground truth first (relevant units, in random order): the best possible ranking;
* ``anti_oracle`` - every uninformative unit before the relevant ones: the worst;
* ``sobel`` - an edge detector on the image itself (Hooker et al.'s model-independent control);
* ``random`` is the registry's random method (i.i.d. uniform scores).

Attributions explain the model's *predicted* class (Hooker et al.), or output 0 of a regressor. Maps of
the slower tasks are cached (kind ``eval-maps``), so ROAR, ROAD and the faithfulness curves of one
task share them.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..attribution import METHODS, attribute, methods_for, resolve_params
from ..cache import Cache
from ..config import stable_hash
from ..errors import ConfigError
from ..registry import Registry
from .removal import postprocess, unit_scores
from .tasks import MODALITY_METHODS, LoadedTask

__all__ = [
    "CONTROLS",
    "ControlSpec",
    "estimator_names",
    "estimator_label",
    "normalise_estimators",
    "attribution_maps",
    "estimator_scores",
    "MAPS_KIND",
]

MAPS_KIND = "eval-maps"


@dataclass(frozen=True)
class ControlSpec:
    """A model-free ranking. ``scores(task, split, rng)`` returns unit scores ``(n, *unit_shape)``."""

    name: str
    display_name: str
    description: str
    modalities: tuple[str, ...]
    scores: Callable[[LoadedTask, str, np.random.Generator], np.ndarray]


def _relevant(task: LoadedTask, split: str) -> np.ndarray:
    return getattr(task, f"relevant_{split}").astype(np.float64)


def _sobel(task: LoadedTask, split: str, rng: np.random.Generator) -> np.ndarray:
    X = getattr(task, f"X_{split}").astype(np.float64)
    gx = ndimage.sobel(X, axis=-1, mode="nearest")
    gy = ndimage.sobel(X, axis=-2, mode="nearest")
    return np.hypot(gx, gy).sum(axis=1)


CONTROLS: Registry[ControlSpec] = Registry("control ranking")
for _c in (
    ControlSpec(
        "oracle",
        "Ground-truth oracle",
        "The relevant units first (in random order): the best ranking there is.",
        ("tabular", "image", "audio"),
        lambda task, split, rng: _relevant(task, split),
    ),
    ControlSpec(
        "anti_oracle",
        "Anti-oracle (uninformative first)",
        "Every uninformative unit before the relevant ones: the worst ranking there is.",
        ("tabular", "image", "audio"),
        lambda task, split, rng: 1.0 - _relevant(task, split),
    ),
    ControlSpec(
        "sobel",
        "Sobel edges (model-free)",
        "Edge magnitude of the image itself; knows nothing about the model (Hooker et al.'s control).",
        ("image",),
        _sobel,
    ),
):
    CONTROLS.register(_c.name, _c)


def estimator_names(modality: str) -> list[str]:
    """Methods and controls that apply to a data modality ('tabular', 'image' or 'audio')."""
    methods = methods_for(MODALITY_METHODS[modality])
    return methods + [n for n, c in CONTROLS.items() if modality in c.modalities]


def estimator_label(name: str) -> str:
    if name in CONTROLS:
        return CONTROLS.get(name).display_name
    return METHODS.get(name).display_name if name in METHODS else name


def normalise_estimators(
    methods: Iterable[str],
    method_params: Iterable[tuple[str, Iterable[tuple[str, Any]]]] | Mapping[str, Mapping[str, Any]],
    owner: str,
) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]]:
    """Validated, de-duplicated estimator names (order kept) and their resolved method parameters."""
    names = tuple(dict.fromkeys(methods))
    if not names:
        raise ConfigError(f"The 'methods' parameter of {owner} must name at least one method. Got () instead.")
    valid = METHODS.names() + CONTROLS.names()
    for m in names:
        if m not in valid:
            raise ConfigError(f"The 'methods' parameter of {owner} must be among {valid}. Got {m!r} instead.")
    items = method_params.items() if isinstance(method_params, Mapping) else method_params
    given = {m: dict(p) for m, p in items}
    for m in given:
        if m not in METHODS:
            raise ConfigError(f"The 'method_params' parameter of {owner} names an unknown method {m!r}.")
    resolved = tuple((m, tuple(sorted(resolve_params(m, given.get(m, {})).items()))) for m in names if m in METHODS)
    return names, tuple(p for p in resolved if p[1])


def attribution_maps(
    task: LoadedTask,
    method: str,
    params: Mapping[str, Any],
    split: str,
    *,
    seed: int = 0,
    cache: Cache | None = None,
    model: Any = None,
    rows: int | None = None,
) -> np.ndarray:
    """Attributions of ``split`` ('train' or 'test') by ``method``, of the inputs' shape (float32).

    ``rows`` limits them to the split's first rows. Cached for tasks that are not cheap to attribute
    when ``model`` is the task's own model.
    """
    X = getattr(task, f"X_{split}")[:rows]
    net = task.model if model is None else model

    def compute() -> np.ndarray:
        target = task.targets(net, X)
        return attribute(net, X, method, target=target, params=params, seed=seed).values.astype(np.float32)

    if cache is None or model is not None or task.spec.name == "toy16":
        return compute()
    key = stable_hash(
        {
            "task": task.config.config_hash,
            "method": method,
            "params": dict(params),
            "split": split,
            "seed": seed,
            "rows": len(X),
        }
    )

    def build(folder: Path) -> dict[str, Any]:
        buf = io.BytesIO()
        np.save(buf, compute())
        (folder / "maps.npy").write_bytes(buf.getvalue())
        return {"method": method, "split": split}

    outcome = cache.get_or_create(MAPS_KIND, key, build, config={"task": task.config, "method": method, "split": split})
    return np.load(outcome.entry.file("maps.npy"))


def estimator_scores(
    task: LoadedTask,
    name: str,
    params: Mapping[str, Any],
    split: str,
    *,
    aggregate: str = "abs",
    post: str = "none",
    seed: int = 0,
    cache: Cache | None = None,
    rows: int | None = None,
) -> np.ndarray:
    """Unit scores ``(n, *unit_shape)`` of an estimator (method or control), post-processed; ``rows``
    limits them to the split's first rows."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE57]))
    if name in CONTROLS:
        spec = CONTROLS.get(name)
        if task.modality not in spec.modalities:
            raise ConfigError(
                f"The control {name!r} needs {' or '.join(spec.modalities)} data; task {task.config.task!r} has {task.modality} data."
            )
        raw = spec.scores(task, split, rng)[:rows]
    else:
        raw = unit_scores(
            attribution_maps(task, name, params, split, seed=seed, cache=cache, rows=rows), task.modality, aggregate
        )
    return postprocess(raw, post, task.modality)
