"""What-if sweeps in the style of the paper's Figure 4: vary one factor, several seeds.

Each cell is one ``"symbolic"`` run of the run layer (:mod:`chaosmining.runs`): cached cells are read
back at once; the others queue beside other users' runs and train in the executor's worker processes
(one torch thread each: on the 2-core machine two single-threaded trainings finish sooner than one
two-threaded training), or on a Ray cluster. Results do not depend on where a cell ran.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .cache import Cache
from .config import ConfigBase, to_jsonable
from .data.formulas import FORMULAS
from .errors import ChaosMiningError, ConfigError, JobCancelled
from .experiments.symbolic import EvalConfig, SymbolicConfig
from .grouping import train_in_groups, use_batching
from .registry import Registry
from .runs import Executor, RunHandle, RunSpec, get_executor, make_executor
from .runs.local import WORKERS_ENV, default_workers
from .training import OPTIMIZERS
from .validation import check_int

__all__ = [
    "FactorSpec",
    "FACTORS",
    "SweepConfig",
    "CellResult",
    "SweepResult",
    "run_sweep",
    "load_sweep",
    "sweep_from_dict",
    "WORKERS_ENV",
    "default_workers",
]


@dataclass(frozen=True)
class FactorSpec:
    """A factor of Figure 4: how a value changes the base configuration, and the paper's grid."""

    name: str
    display_name: str
    apply: Callable[[SymbolicConfig, Any], SymbolicConfig]
    parse: Callable[[str], Any]
    default_values: tuple[Any, ...]
    log_scale: bool = False


def _data(field_name: str) -> Callable[[SymbolicConfig, Any], SymbolicConfig]:
    return lambda c, v: replace(c, data=replace(c.data, **{field_name: v}))


def _model(field_name: str) -> Callable[[SymbolicConfig, Any], SymbolicConfig]:
    return lambda c, v: replace(c, model=replace(c.model, **{field_name: v}))


def _train(field_name: str) -> Callable[[SymbolicConfig, Any], SymbolicConfig]:
    return lambda c, v: replace(c, train=replace(c.train, **{field_name: v}))


FACTORS: Registry[FactorSpec] = Registry("sweep factor")
for _f in (
    FactorSpec("formula", "formula (paper ID)", _data("formula"), str, tuple(FORMULAS.names())),
    FactorSpec("noise_features", "noise features", _data("noise_features"), int, (0, 25, 50, 100, 150, 200)),
    FactorSpec("samples", "data size", _data("samples"), int, (2500, 5000, 10000, 15000, 20000)),
    FactorSpec("label_noise", "label noise (std)", _data("label_noise"), float, (0.0, 0.01, 0.02, 0.04, 0.08, 0.16)),
    FactorSpec("width", "width", _model("width"), int, (25, 50, 100, 150, 200)),
    FactorSpec("depth", "depth", _model("depth"), int, (2, 3, 4, 5, 6)),
    FactorSpec("lr", "learning rate", _train("lr"), float, (1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 2e-2), log_scale=True),
    FactorSpec("dropout", "dropout", _model("dropout"), float, (0.0, 0.05, 0.15, 0.25, 0.35)),
    FactorSpec(
        "optimizer", "optimizer", _train("optimizer"), str, ("sgd", "rmsprop", "adam", "adadelta", "adagrad", "asgd")
    ),
):
    FACTORS.register(_f.name, _f)


@dataclass(frozen=True, kw_only=True)
class SweepConfig(ConfigBase):
    """A one-factor sweep around ``base``: every value of ``factor`` for every seed."""

    base: SymbolicConfig = field(default_factory=SymbolicConfig)
    factor: str = "noise_features"
    values: tuple[Any, ...] = ()
    seeds: tuple[int, ...] = (0,)
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(curve_samples=0, measure_memory=False))

    def __post_init__(self) -> None:
        spec = FACTORS.get(self.factor)
        values = tuple(self.values) or spec.default_values
        if len(values) > 50:
            raise ConfigError(
                f"The 'values' parameter of SweepConfig must have at most 50 entries. Got {len(values)} instead."
            )
        object.__setattr__(self, "values", values)
        seeds = tuple(check_int(s, "seeds", owner="SweepConfig", low=0, high=2**31 - 1) for s in self.seeds)
        if not seeds or len(seeds) > 20:
            raise ConfigError(
                f"The 'seeds' parameter of SweepConfig must list 1 to 20 seeds. Got {list(self.seeds)} instead."
            )
        object.__setattr__(self, "seeds", seeds)
        for v in values:  # validate every cell before any training starts
            self.cell(v, seeds[0])
        if self.factor == "optimizer":
            for v in values:
                OPTIMIZERS.get(v)

    def cell(self, value: Any, seed: int) -> SymbolicConfig:
        return replace(FACTORS.get(self.factor).apply(self.base, value), seed=seed)

    def cells(self) -> list[tuple[Any, int, SymbolicConfig]]:
        return [(v, s, self.cell(v, s)) for v in self.values for s in self.seeds]


@dataclass(frozen=True)
class CellResult:
    value: Any
    seed: int
    fprec: dict[str, float | None]
    uscore: dict[str, float | None]
    prediction_uscore: float | None
    test_mae: float | None
    cached: bool
    seconds: float
    error: str | None = None
    method_errors: dict[str, str] = field(default_factory=dict)


@dataclass
class SweepResult:
    config: SweepConfig
    cells: list[CellResult]
    seconds: float = 0.0

    @property
    def methods(self) -> tuple[str, ...]:
        return self.config.eval.methods

    @property
    def values(self) -> tuple[Any, ...]:
        return self.config.values

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.config.seeds

    @property
    def factor_label(self) -> str:
        return FACTORS.get(self.config.factor).display_name

    @property
    def log_scale(self) -> bool:
        return FACTORS.get(self.config.factor).log_scale

    @property
    def errors(self) -> list[str]:
        """A failed cell's error, and each method that failed in a cell (that method has no score there)."""
        out = []
        for c in self.cells:
            where = f"{self.config.factor}={c.value}, seed {c.seed}"
            out += [f"{where}: {c.error}"] if c.error else []
            out += [f"{where}: {message}" for message in c.method_errors.values()]
        return out

    def aggregate(self) -> dict[tuple[Any, str], dict[str, float | None]]:
        """Mean and std over seeds per (value, method); method ``'__prediction__'`` for predictions."""
        out: dict[tuple[Any, str], dict[str, float | None]] = {}

        def stats(xs: list[float | None]) -> tuple[float | None, float | None]:
            xs = [x for x in xs if x is not None]
            return (float(np.mean(xs)), float(np.std(xs))) if xs else (None, None)

        for v in self.values:
            ok = [c for c in self.cells if c.value == v and c.error is None]
            for m in self.methods:
                fm, fs = stats([c.fprec.get(m) for c in ok])
                um, us = stats([c.uscore.get(m) for c in ok])
                out[(v, m)] = {"fprec_mean": fm, "fprec_std": fs, "uscore_mean": um, "uscore_std": us}
            pm, ps = stats([c.prediction_uscore for c in ok])
            out[(v, "__prediction__")] = {"uscore_mean": pm, "uscore_std": ps}
        return out

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for c in self.cells:
            row: dict[str, Any] = {
                self.config.factor: c.value,
                "seed": c.seed,
                "prediction_uscore": c.prediction_uscore,
                "test_mae": c.test_mae,
                "cached": c.cached,
                "error": c.error,
            }
            for m in self.methods:
                row[f"fprec_{m}"] = c.fprec.get(m)
                row[f"uscore_{m}"] = c.uscore.get(m)
            rows.append(row)
        return rows

    def bundle(self) -> dict[str, Any]:
        from .export import bundle_json

        return bundle_json("sweep", self.config.to_dict(), self.summary())

    def summary(self) -> dict[str, Any]:
        agg = self.aggregate()
        return {
            "task": "sweep",
            "factor": self.config.factor,
            "values": list(self.values),
            "seeds": list(self.seeds),
            "fprec": {m: [agg[(v, m)]["fprec_mean"] for v in self.values] for m in self.methods},
            "fprec_std": {m: [agg[(v, m)]["fprec_std"] for v in self.values] for m in self.methods},
            "uscore": {m: [agg[(v, m)]["uscore_mean"] for v in self.values] for m in self.methods},
            "prediction_uscore": [agg[(v, "__prediction__")]["uscore_mean"] for v in self.values],
            "cells": self.rows(),
            "errors": self.errors,
            "seconds": self.seconds,
            "config": self.config.to_dict(),
        }


SWEEP_KIND = "symbolic-sweep"


def sweep_from_dict(c: dict[str, Any]) -> SweepConfig:
    return SweepConfig(
        base=SymbolicConfig.from_dict(c["base"]),
        factor=c["factor"],
        values=tuple(c["values"]),
        seeds=tuple(c["seeds"]),
        eval=EvalConfig.from_dict(c["eval"]),
    )


def load_sweep(config: SweepConfig, cache: Cache | None = None) -> SweepResult | None:
    """A finished sweep from the cache, or ``None``."""
    cache = cache or Cache()
    try:
        entry = cache.load(SWEEP_KIND, config.config_hash)
    except ChaosMiningError:
        return None
    if entry is None:
        return None
    cells = json.loads(entry.file("cells.json").read_text())
    return SweepResult(config, [CellResult(**c) for c in cells["cells"]], cells["seconds"])


def _save_sweep(result: SweepResult, cache: Cache) -> None:
    if any(c.error for c in result.cells) or len(result.cells) != len(result.config.cells()):
        return  # incomplete sweeps are not cached: re-running finishes them from the cell cache
    payload = {"cells": [to_jsonable(c) for c in result.cells], "seconds": result.seconds}

    def build(folder: Path) -> dict[str, Any]:
        (folder / "cells.json").write_text(json.dumps(payload, allow_nan=True))
        return {}

    cache.delete(SWEEP_KIND, result.config.config_hash)
    cache.write(SWEEP_KIND, result.config.config_hash, build, config=result.config)


def _cell_from_result(value: Any, seed: int, r: Any) -> CellResult:
    failed = {m: s.error for m, s in r.scores.items() if s.error}  # no score: left out of the means
    fprec = {m: (None if m in failed else v) for m, v in r.fprec.items()}
    uscore = {m: (None if m in failed else v) for m, v in r.uscore.items()}
    return CellResult(value, seed, fprec, uscore, r.prediction_uscore, r.test_mae, r.cached, r.seconds, None, failed)


def run_sweep(
    config: SweepConfig,
    *,
    cache: Cache | None = None,
    device: str = "auto",
    executor: Executor | str | None = None,
    workers: int | None = None,
    submit: Callable[[RunSpec], RunHandle] | None = None,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    batched: bool | None = None,
) -> SweepResult:
    """Run every cell of ``config`` through the run layer (cached cells are loaded, not retrained).

    Each cell is a ``"symbolic"`` run: the executor answers cached ones at once, queues the others
    fairly beside other users' runs and performs them in its workers (one torch thread each on the CPU).
    ``executor`` is an :class:`~chaosmining.runs.Executor` or a backend name; ``workers`` asks for a
    private local executor of that many worker processes (closed at the end); ``submit`` (an
    orchestration's ``ctx.submit``) queues the cells under the caller's session instead. ``report``
    receives ``done``/``total`` counts and each finished cell. A diverging cell is recorded with its error
    and the sweep goes on; Stop stops the cells still queued or running, and finished cells stay cached.
    ``batched`` trains the uncached cells that share a network shape together first
    (:mod:`chaosmining.grouping`; default: on CUDA only).
    """
    start = time.perf_counter()
    own: Executor | None = None
    ex: Executor | None = None
    if submit is None:
        if isinstance(executor, Executor):
            ex = executor
        elif workers is not None:
            ex = own = make_executor(executor, cache=cache, workers=workers)
        else:
            ex = get_executor(cache, executor)
        submit = lambda spec: ex.submit(spec, session="sweep")  # noqa: E731
        cache = ex.cache
    cache = cache or Cache()
    try:
        cells = config.cells()
        specs = [RunSpec("symbolic", cfg, config.eval, device) for _, _, cfg in cells]
        fresh: set[str] = set()  # cells trained by a batched group just now: not "cached" to the user
        if use_batching(batched, device):
            fresh = train_in_groups(
                specs, submit=submit, cache=cache, executor=ex, report=report, should_stop=should_stop
            )
        handles = [(value, seed, submit(spec)) for (value, seed, _), spec in zip(cells, specs)]
        total = len(cells)
        results: dict[tuple[Any, int], CellResult] = {}
        if report:
            report(done=0, total=total)
        while len(results) < total:
            if should_stop and should_stop():
                for _, _, h in handles:
                    if not h.done:
                        h.stop(session="sweep")
                raise JobCancelled(f"Sweep stopped by the user after {len(results)} of {total} cells.")
            pending = [(v, s, h) for v, s, h in handles if (v, s) not in results]
            pending[0][2].wait(0.25)
            for value, seed, h in pending:
                if not h.done:
                    continue
                if h.status == "done":
                    cell = _cell_from_result(value, seed, h.result())
                    if h.cached:  # answered from the cache: read before this sweep, or trained by its groups
                        cell = replace(cell, cached=h.key not in fresh)
                elif h.status == "cancelled":
                    raise JobCancelled(f"A cell of the sweep was stopped: {h.error}")
                else:
                    cell = CellResult(value, seed, {}, {}, None, None, False, h.snapshot().elapsed, h.error)
                results[(value, seed)] = cell
                if report:
                    report(
                        done=len(results),
                        total=total,
                        cell={"value": value, "seed": seed, "error": cell.error, "fprec": cell.fprec},
                    )
    finally:
        if own is not None:
            own.shutdown()
    ordered = [results[(v, s)] for v, s, _ in cells]
    result = SweepResult(config, ordered, time.perf_counter() - start)
    _save_sweep(result, cache)
    return result
