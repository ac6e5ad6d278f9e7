"""What every evaluation shares: cached JSON results, progress, stop checks and curve summaries."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..cache import Cache
from ..config import ConfigBase, to_jsonable
from ..errors import ConfigError, JobCancelled
from ..metrics import convergence
from .estimators import normalise_estimators
from .tasks import TaskConfig, check_methods

__all__ = [
    "Progress",
    "cached_summary",
    "Curve",
    "check_fractions",
    "auc",
    "mean_spread",
    "MethodsConfig",
    "check_postprocess",
]

M = TypeVar("M", bound="MethodsConfig")


class Progress:
    """Counts work items, forwards ``report(stage=..., done=..., total=...)`` and honours Stop."""

    def __init__(
        self, total: int, report: Callable[..., None] | None = None, should_stop: Callable[[], bool] | None = None
    ) -> None:
        self.total, self.done = max(1, total), 0
        self._report, self._stop = report, should_stop

    def check(self) -> None:
        if self._stop is not None and self._stop():
            raise JobCancelled(f"Stopped by the user after {self.done} of {self.total} steps.")

    def step(self, stage: str, n: int = 1) -> None:
        self.done += n
        if self._report is not None:
            self._report(stage=stage, done=min(self.done, self.total), total=self.total)
        self.check()

    def stage(self, stage: str) -> None:
        if self._report is not None:
            self._report(stage=stage, done=self.done, total=self.total)
        self.check()


def cached_summary(
    cache: Cache | None, kind: str, config: ConfigBase, compute: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], bool, float]:
    """The JSON summary of ``config`` from the cache, or computed now and cached.

    Returns ``(summary, cached, seconds)``; nothing is cached when ``compute`` raises (a stopped job).
    """
    start = time.perf_counter()
    cache = cache or Cache()

    def build(folder: Path) -> dict[str, Any]:
        summary = compute()
        (folder / "result.json").write_text(json.dumps(to_jsonable(summary), allow_nan=True))
        return {"seconds": time.perf_counter() - start}

    outcome = cache.get_or_create(kind, config.config_hash, build, config=config)
    summary = json.loads(outcome.entry.file("result.json").read_text())
    return summary, outcome.cached, time.perf_counter() - start


def mean_spread(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (``ddof=1`` when there are several values, else 0) along ``axis``."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    mean = np.nanmean(values, axis=axis)
    spread = np.nanstd(values, axis=axis, ddof=1) if n > 1 else np.zeros_like(mean)
    return mean, spread


@dataclass(frozen=True)
class Curve:
    """One score-against-fraction curve with its repeats.

    ``repeats[r][i]`` is the score of repeat ``r`` at ``fractions[i]``; ``score``/``spread`` are the mean
    and standard deviation over repeats.
    """

    name: str
    label: str
    fractions: tuple[float, ...]
    repeats: tuple[tuple[float, ...], ...]

    @property
    def score(self) -> list[float]:
        return mean_spread(np.array(self.repeats))[0].tolist()

    @property
    def spread(self) -> list[float]:
        return mean_spread(np.array(self.repeats))[1].tolist()

    def points(self) -> list[dict[str, float]]:
        return [{"fraction": f, "score": s, "spread": d} for f, s, d in zip(self.fractions, self.score, self.spread)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "fractions": list(self.fractions),
            "repeats": [list(r) for r in self.repeats],
            "points": self.points(),
            "spread": self.spread,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Curve:
        return cls(d["name"], d["label"], tuple(d["fractions"]), tuple(tuple(r) for r in d["repeats"]))

    def area(self) -> float:
        """Normalised area under the mean curve over its fractions (trapezoid)."""
        return auc(self.fractions, self.score)


def auc(x: Sequence[float], y: Sequence[float]) -> float:
    """Trapezoid area under ``y(x)`` divided by the span of ``x`` (the mean height); the same rule as the
    convergence metric, :func:`chaosmining.metrics.convergence`."""
    return convergence(x, y)


def check_fractions(values: Sequence[float], name: str, owner: str, *, allow_zero: bool = False) -> tuple[float, ...]:
    """Sorted, de-duplicated fractions in (0, 1) (``[0, 1]`` with ``allow_zero``), validated."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise ConfigError(f"The '{name}' parameter of {owner} must hold fractions in (0, 1). Got {v!r} instead.")
        lo_ok = v >= 0 if allow_zero else v > 0
        if not (lo_ok and v < 1 or (allow_zero and v == 1)):
            interval = "[0, 1]" if allow_zero else "(0, 1)"
            raise ConfigError(
                f"The '{name}' parameter of {owner} must hold fractions in {interval}. Got {v!r} instead."
            )
        out.append(float(v))
    return tuple(sorted(set(out)))


@dataclass(frozen=True, kw_only=True)
class MethodsConfig(ConfigBase):
    """Base of every evaluation's configuration: a task and the estimators to compare.

    ``methods`` are attribution methods and controls; ``method_params`` holds ``(method, ((param,
    value), ...))`` pairs (build them with :meth:`create`). Subclasses add their own fields and call
    ``super().__post_init__()``.
    """

    task: TaskConfig = field(default_factory=TaskConfig)
    methods: tuple[str, ...] = ("saliency", "random")
    method_params: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not isinstance(self.task, TaskConfig):
            raise ConfigError(f"The 'task' parameter of {owner} must be a TaskConfig. Got {self.task!r} instead.")
        methods, params = normalise_estimators(self.methods, self.method_params, owner)
        check_methods(methods, self.task.task, owner)
        object.__setattr__(self, "methods", methods)
        object.__setattr__(self, "method_params", params)

    def params_for(self, method: str) -> dict[str, Any]:
        return dict(dict(self.method_params).get(method, ()))

    @classmethod
    def create(
        cls: type[M],
        task: TaskConfig,
        methods: Sequence[str] | None = None,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        **kw: Any,
    ) -> M:
        """Build from a plain ``{method: {param: value}}`` mapping (what the app's widgets give)."""
        if methods is not None:
            kw["methods"] = tuple(methods)
        pairs = tuple((m, tuple(dict(p).items())) for m, p in (params or {}).items() if methods is None or m in methods)
        return cls(task=task, method_params=pairs, **kw)

    @classmethod
    def from_dict(cls: type[M], d: Mapping[str, Any]) -> M:
        """Inverse of :meth:`to_dict` (lists become tuples)."""
        d = dict(d)
        d["task"] = TaskConfig(**d.get("task", {}))
        d["method_params"] = tuple((m, tuple(tuple(p) for p in ps)) for m, ps in d.get("method_params", ()))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


def check_postprocess(post: str, task: TaskConfig, owner: str) -> None:
    """Refuse blurring on tabular data, which have no neighbouring units."""
    if post != "none" and task.spec.modality == "tabular":
        raise ConfigError(
            f"The 'postprocess' parameter of {owner} must be 'none' for task {task.task!r}: tabular features have "
            f"no neighbours to blur over. Got {post!r} instead."
        )


def derive_seed(*parts: int) -> int:
    """A 32-bit seed derived from integers (base seed, repeat, index...) through ``SeedSequence``."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1)[0])


def nested_curves(raw: Mapping[str, Any], labels: Mapping[str, str], fractions: tuple[float, ...]) -> dict[str, Any]:
    """``raw`` nested dicts of repeats -> the same nesting of :class:`Curve` objects."""
    return {
        k: Curve(k, labels[k], fractions, tuple(tuple(x) for x in v))
        if isinstance(v, list)
        else nested_curves(v, labels, fractions)
        for k, v in raw.items()
    }
