"""The units of work of a feature selection, each a typed specification with a typed, cached result.

* :class:`TrainUnit` trains one network on a subset of the prepared data's columns (``rfe-model``,
  keyed by the data, the kept columns, the network, the training and the seed) and computes its
  importances for the asked attribution methods on the validation rows (``rfe-importance``, one entry
  per method). Selectors that keep the same columns share the training.
* :class:`ClassicUnit` runs one classic selector's whole chain of scikit-learn RFE fits and records
  each round's errors of its own predictor (``rfe-classic``).

:func:`perform_train_unit` and :func:`perform_classic_unit` are registered as the run kinds
``rfe-train`` and ``rfe-classic`` (:mod:`chaosmining.runs.kinds`): the executor answers a finished
unit from the cache and runs the others in its workers, so a stopped selection keeps every finished
unit and the next run resumes from them. Selection reads the training rows (fit) and the validation rows
(attributions) only; the test rows are read after training, to report the model's error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cache import Cache
from ..config import ConfigBase, stable_hash
from ..errors import AttributionMethodError, ChaosMiningError, JobCancelled
from ..models.mlp import MLPConfig
from ..runtime import resolve_device
from ..selection import attribution_importance, classic_rfe, get_selector
from ..training import TrainConfig, TrainedMLP, train_mlp, training_macs_per_second
from ..validation import check_int, param_error
from .rfe_tasks import TASK_TYPE_SPECS, load_task_data

__all__ = [
    "MODEL_KIND",
    "IMPORTANCE_KIND",
    "CLASSIC_KIND",
    "TrainUnit",
    "UnitResult",
    "ClassicUnit",
    "ClassicRoundResult",
    "ClassicResult",
    "perform_train_unit",
    "perform_classic_unit",
    "train_unit_cached",
]

MODEL_KIND = "rfe-model"
IMPORTANCE_KIND = "rfe-importance"
CLASSIC_KIND = "rfe-classic"

Params = tuple[tuple[str, Any], ...]


def _columns(value: Any, name: str, owner: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise param_error(name, owner, "a non-empty, increasing list of column indices", value)
    cols = tuple(check_int(v, name, owner=owner, low=0) for v in value)
    if not cols or any(b <= a for a, b in zip(cols, cols[1:])):
        raise param_error(name, owner, "a non-empty, increasing list of column indices", value)
    return cols


@dataclass(frozen=True, kw_only=True)
class TrainUnit(ConfigBase):
    """Train one network on columns ``kept`` of the prepared data ``data_key`` and compute the importances
    of ``methods`` (``(method, ((param, value), ...))`` pairs) on the validation rows.

    ``rows`` and ``columns`` (the prepared data's training + validation rows and all its columns) only
    size the memory and time estimates; they are no part of the cache keys.
    """

    data_key: str
    kept: tuple[int, ...]
    model: MLPConfig
    train: TrainConfig
    seed: int = 0
    methods: tuple[tuple[str, Params], ...] = ()
    rows: int = 0
    columns: int = 0

    def __post_init__(self) -> None:
        owner = "TrainUnit"
        if not isinstance(self.data_key, str) or not self.data_key:
            raise param_error("data_key", owner, "the key of prepared data", self.data_key)
        object.__setattr__(self, "kept", _columns(self.kept, "kept", owner))
        if not isinstance(self.model, MLPConfig):
            raise param_error("model", owner, "an MLPConfig", self.model)
        if not isinstance(self.train, TrainConfig):
            raise param_error("train", owner, "a TrainConfig", self.train)
        object.__setattr__(self, "seed", check_int(self.seed, "seed", owner=owner, low=0, high=2**31 - 1))
        methods = tuple(
            sorted((str(m), tuple((str(k), v) for k, v in sorted(dict(p).items()))) for m, p in self.methods)
        )
        if len({m for m, _ in methods}) != len(methods):
            raise param_error("methods", owner, "at most one entry per method", self.methods)
        object.__setattr__(self, "methods", methods)
        for name in ("rows", "columns"):
            object.__setattr__(self, name, check_int(getattr(self, name), name, owner=owner, low=0))

    @property
    def model_key(self) -> str:
        """The ``rfe-model`` cache key (the data, the kept columns, the network, the training, the seed)."""
        return stable_hash(
            {
                "data": self.data_key,
                "kept": list(self.kept),
                "model": self.model.config_hash,
                "train": self.train.config_hash,
                "seed": self.seed,
            }
        )

    def importance_key(self, method: str, params: Params) -> str:
        """The ``rfe-importance`` cache key of ``method`` on this unit's network."""
        return stable_hash({"unit": self.model_key, "method": method, "params": dict(params), "seed": self.seed})

    @property
    def run_key(self) -> str:
        """What identifies this unit's work: its model, plus the importances it computes."""
        if not self.methods:
            return self.model_key
        return stable_hash({"unit": self.model_key, "methods": [[m, dict(p)] for m, p in self.methods]})

    def estimated_seconds(self) -> float:
        macs = 3 * self.rows * self.train.epochs * self.model.n_parameters(len(self.kept))
        return 1.0 + macs / training_macs_per_second(self.train.precision)

    def estimated_bytes(self) -> int:
        data = self.rows * (self.columns + len(self.kept)) * 4 * 4  # the arrays, the subset and its tensors
        params = self.model.n_parameters(len(self.kept)) * 4 * 4  # parameters, gradients, two moments
        return int(data + params + 64 * 2**20)

    def describe(self) -> str:
        methods = f", importances {', '.join(m for m, _ in self.methods)}" if self.methods else ""
        return f"feature selection: a network on {len(self.kept)} features{methods}"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainUnit:
        """Inverse of :meth:`to_dict` (a worker rebuilds the unit, validated again)."""
        return cls(
            data_key=d["data_key"],
            kept=tuple(d["kept"]),
            model=MLPConfig(**d["model"]),
            train=TrainConfig(**d["train"]),
            seed=d.get("seed", 0),
            methods=tuple((m, tuple(tuple(kv) for kv in p)) for m, p in d.get("methods", ())),
            rows=d.get("rows", 0),
            columns=d.get("columns", 0),
        )


@dataclass(frozen=True)
class UnitResult:
    """A trained unit: its errors and, per asked method, the importances of its kept columns.

    ``cached``: the network came from the cache rather than being trained for this request.
    ``method_errors``: the message of each asked method that failed on this network (no importance; the
    unit's other methods are computed, and only the selectors ranking by it stop).
    """

    kept: tuple[int, ...]
    train_seconds: float
    val: dict[str, float]
    test: dict[str, float]
    cached: bool
    importance: dict[str, np.ndarray]
    attr_seconds: dict[str, float]
    warnings: dict[str, tuple[str, ...]]
    method_errors: dict[str, str] = field(default_factory=dict)


class _StopMonitor:
    """The trainer's monitor: only its ``should_stop`` is used (checked between epochs)."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop = should_stop

    def on_progress(self, epoch: int, loss: float) -> None:
        pass

    def on_snapshot(self, epoch: int, model: torch.nn.Module) -> None:
        pass


def _never() -> bool:
    return False


def _predict(net: torch.nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        device = next(net.parameters()).device
        return net(torch.as_tensor(X, dtype=torch.float32, device=device)).cpu().numpy().ravel().astype(np.float64)


def train_unit_cached(unit: TrainUnit, cache: Cache) -> bool:
    """Whether the unit's network and every importance it asks for are in ``cache``."""
    return cache.has(MODEL_KIND, unit.model_key) and all(
        cache.has(IMPORTANCE_KIND, unit.importance_key(m, p)) for m, p in unit.methods
    )


def perform_train_unit(
    unit: TrainUnit,
    ev: Any = None,
    *,
    cache: Cache,
    device: str | torch.device = "auto",
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> UnitResult:
    """Train (or load) the unit's network and compute (or load) its importances.

    Raises
    ------
    JobCancelled
        When ``should_stop()`` turns true during training (nothing half-written stays in the cache).
    TrainingDivergedError
        When the loss stops being finite.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    cols = list(unit.kept)
    stop = should_stop or _never

    def data() -> Any:
        return load_task_data(unit.data_key, cache)

    def build(folder: Path) -> dict[str, Any]:
        d = data()
        spec = TASK_TYPE_SPECS.get(d.task_type)
        trained = train_mlp(
            d.X_train[:, cols],
            d.y_train,
            unit.model,
            unit.train,
            seed=unit.seed,
            device=dev,
            monitor=_StopMonitor(stop),
        )
        torch.save(trained.state(), folder / "model.pt")
        net = trained.model(device=dev)
        return {
            "train_seconds": trained.seconds,
            "device": str(dev),
            "val": spec.metrics(d.y_val, _predict(net, d.X_val[:, cols])),
            "test": spec.metrics(d.y_test, _predict(net, d.X_test[:, cols])),
        }

    model_config = {
        "data_key": unit.data_key,
        "kept": list(unit.kept),
        "model": unit.model.to_dict(),
        "train": unit.train.to_dict(),
        "seed": unit.seed,
    }
    outcome, trained = cache.get_and_read(
        MODEL_KIND,
        unit.model_key,
        build,
        (lambda e: TrainedMLP.load(e.file("model.pt"))) if unit.methods else (lambda e: None),
        config=model_config,
    )
    if report is not None:
        report(model_cached=outcome.cached)
    meta = outcome.entry.meta
    nets: list[torch.nn.Module] = []

    def network() -> torch.nn.Module:
        if not nets:
            nets.append(trained.model(device=dev))
        return nets[0]

    importance: dict[str, np.ndarray] = {}
    attr_seconds: dict[str, float] = {}
    warnings: dict[str, tuple[str, ...]] = {}
    method_errors: dict[str, str] = {}
    for method, params in unit.methods:

        def ibuild(folder: Path, method: str = method, params: Params = params) -> dict[str, Any]:
            imp, secs, warns = attribution_importance(
                network(), data().X_val[:, cols], method, params=dict(params), seed=unit.seed
            )
            np.save(folder / "importance.npy", imp)
            return {"seconds": secs, "warnings": list(warns)}

        try:
            io_ = cache.get_or_create(
                IMPORTANCE_KIND,
                unit.importance_key(method, params),
                ibuild,
                config={"unit": unit.model_key, "method": method},
            )
        except AttributionMethodError as exc:  # not cached: a fixed method is tried again
            method_errors[method] = str(exc)
            continue
        importance[method] = np.asarray(np.load(io_.entry.file("importance.npy")), dtype=np.float64)
        attr_seconds[method] = io_.entry.meta["seconds"]
        warnings[method] = tuple(io_.entry.meta["warnings"])
    return UnitResult(
        kept=unit.kept,
        train_seconds=meta["train_seconds"],
        val=meta["val"],
        test=meta["test"],
        cached=outcome.cached,
        importance=importance,
        attr_seconds=attr_seconds,
        warnings=warnings,
        method_errors=method_errors,
    )


@dataclass(frozen=True, kw_only=True)
class ClassicUnit(ConfigBase):
    """One classic selector's whole chain of RFE fits on the prepared data ``data_key``, down
    ``schedule``. ``rows`` and ``columns`` only size the estimates."""

    data_key: str
    selector: str
    schedule: tuple[int, ...]
    seed: int = 0
    rows: int = 0
    columns: int = 0

    def __post_init__(self) -> None:
        owner = "ClassicUnit"
        if not isinstance(self.data_key, str) or not self.data_key:
            raise param_error("data_key", owner, "the key of prepared data", self.data_key)
        if get_selector(self.selector).family != "classic":
            raise param_error("selector", owner, "a classic selector", self.selector)
        sched = tuple(check_int(n, "schedule", owner=owner, low=1) for n in self.schedule)
        if not sched or any(b >= a for a, b in zip(sched, sched[1:])):
            raise param_error("schedule", owner, "a non-empty, decreasing list of feature counts", self.schedule)
        object.__setattr__(self, "schedule", sched)
        object.__setattr__(self, "seed", check_int(self.seed, "seed", owner=owner, low=0, high=2**31 - 1))
        for name in ("rows", "columns"):
            object.__setattr__(self, name, check_int(getattr(self, name), name, owner=owner, low=0))

    @property
    def key(self) -> str:
        """The ``rfe-classic`` cache key."""
        return stable_hash(
            {"data": self.data_key, "selector": self.selector, "schedule": list(self.schedule), "seed": self.seed}
        )

    def estimated_seconds(self) -> float:
        return 2.0 + 2e-7 * self.rows * self.columns * len(self.schedule)

    def estimated_bytes(self) -> int:
        return int(self.rows * self.columns * 4 * 6 + 64 * 2**20)

    def describe(self) -> str:
        return f"feature selection: classic RFE with {get_selector(self.selector).display_name}"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassicUnit:
        return cls(
            data_key=d["data_key"],
            selector=d["selector"],
            schedule=tuple(d["schedule"]),
            seed=d.get("seed", 0),
            rows=d.get("rows", 0),
            columns=d.get("columns", 0),
        )


@dataclass(frozen=True)
class ClassicRoundResult:
    """One round of a classic selector: the kept columns, the fit's time, its own predictor's errors."""

    kept: tuple[int, ...]
    seconds: float
    predictor: str
    val: dict[str, float]
    test: dict[str, float]


@dataclass(frozen=True)
class ClassicResult:
    selector: str
    rounds: tuple[ClassicRoundResult, ...]
    cached: bool


def perform_classic_unit(
    unit: ClassicUnit,
    ev: Any = None,
    *,
    cache: Cache,
    device: str | torch.device = "auto",
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ClassicResult:
    """Run (or load) a classic selector's chain; a failed fit raises a :class:`ChaosMiningError` naming it."""

    def build(folder: Path) -> dict[str, Any]:
        d = load_task_data(unit.data_key, cache)
        spec = TASK_TYPE_SPECS.get(d.task_type)
        rounds = classic_rfe(
            unit.selector,
            d.task_type,
            d.X_train,
            d.y_train,
            list(unit.schedule),
            seed=unit.seed,
            should_stop=should_stop,
        )
        return {
            "rounds": [
                {
                    "kept": list(r.kept),
                    "seconds": r.seconds,
                    "predictor": type(r.estimator).__name__,
                    "val": spec.metrics(d.y_val, spec.classic_score(r.estimator, d.X_val[:, list(r.kept)])),
                    "test": spec.metrics(d.y_test, spec.classic_score(r.estimator, d.X_test[:, list(r.kept)])),
                }
                for r in rounds
            ]
        }

    try:
        outcome = cache.get_or_create(CLASSIC_KIND, unit.key, build, config=unit)
    except JobCancelled:
        raise
    except (ChaosMiningError, ValueError) as exc:
        raise ChaosMiningError(f"{type(exc).__name__}: {exc}") from exc
    rounds = tuple(
        ClassicRoundResult(tuple(r["kept"]), r["seconds"], r["predictor"], r["val"], r["test"])
        for r in outcome.entry.meta["rounds"]
    )
    return ClassicResult(unit.selector, rounds, outcome.cached)
