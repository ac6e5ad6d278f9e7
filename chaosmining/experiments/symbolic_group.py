"""Symbolic runs trained together: a group of same-shape configurations as one batched training.

A :class:`SymbolicGroup` holds ``(SymbolicConfig, EvalConfig)`` pairs whose networks share every shape
and hyperparameter (:func:`batch_key`). :func:`run_symbolic_group` trains the members that have no cached
model as one batched computation (:func:`chaosmining.batched.train_mlps`), then attributes and scores
each member exactly as :func:`~chaosmining.experiments.symbolic.run_symbolic` does, writing the same
``symbolic-model`` and ``symbolic-result`` cache entries under the same keys: a later plain ``symbolic``
run of any member is a cache hit, and the results store files every member as a normal symbolic run
(the run kind ``symbolic-group`` names its members, :attr:`chaosmining.runs.RunKind.members`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..batched import member_bytes, train_mlps
from ..cache import Cache
from ..config import ConfigBase, stable_hash
from ..data.symbolic import make_symbolic_data
from ..errors import ChaosMiningError, ConfigError, JobCancelled
from ..runtime import resolve_device
from ..training import OPTIMIZERS
from .symbolic import MODEL_KIND, RESULT_KIND, EvalConfig, SymbolicConfig, SymbolicResult, _result_key, run_symbolic

__all__ = [
    "GROUP_KIND",
    "MAX_GROUP",
    "SymbolicGroup",
    "SymbolicGroupResult",
    "batch_key",
    "group_configs",
    "group_cached",
    "run_symbolic_group",
    "load_symbolic_group",
    "symbolic_member_bytes",
]

GROUP_KIND = "symbolic-group"
MAX_GROUP = 1024  # members of one group at most (a group is one worker's run)
_OWNER = "SymbolicGroup"


def batch_key(config: SymbolicConfig) -> str | None:
    """What the members of one batched training must share: input width, training rows, the network and
    its training (all of :class:`MLPConfig` and :class:`TrainConfig`). ``None`` when ``config`` cannot be
    batched (its optimizer's update is not elementwise)."""
    if not OPTIMIZERS.get(config.train.optimizer).elementwise:
        return None
    return stable_hash(
        {
            "n_features": config.data.n_features,
            "rows": config.n_train_rows,
            "model": config.model.hash_payload(),
            "train": config.train.hash_payload(),
        }
    )


def symbolic_member_bytes(config: SymbolicConfig) -> int:
    """Peak bytes ``config`` adds to a batched training (:func:`chaosmining.batched.member_bytes`)."""
    return member_bytes(config.data.n_features, config.n_train_rows, config.model)


def _chunks(items: list[Any], n: int) -> list[list[Any]]:
    """``items`` in ``n`` consecutive pieces of near-equal size."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, i = [], 0
    for j in range(n):
        step = size + (1 if j < extra else 0)
        out.append(items[i : i + step])
        i += step
    return out


def group_configs(
    configs: Sequence[SymbolicConfig], *, max_size: int = MAX_GROUP, parts: int = 1
) -> list[list[SymbolicConfig]]:
    """Partition ``configs`` into batchable groups (first-appearance order; duplicates kept once).

    Configurations with the same :func:`batch_key` share a group, split into at least ``parts`` near-equal
    groups (one per worker that can train at once) of at most ``max_size`` members; a configuration that
    cannot be batched is a group of its own.
    """
    max_size, parts = max(1, int(max_size)), max(1, int(parts))
    by_key: dict[str, list[SymbolicConfig]] = {}
    seen: set[str] = set()
    alone: list[list[SymbolicConfig]] = []
    for c in configs:
        if c.config_hash in seen:
            continue
        seen.add(c.config_hash)
        key = batch_key(c)
        if key is None:
            alone.append([c])
        else:
            by_key.setdefault(key, []).append(c)
    groups = []
    for members in by_key.values():
        # as many groups as workers, but no group of one unless memory asks for it
        n = max(math.ceil(len(members) / max_size), min(parts, max(1, len(members) // 2)))
        groups += _chunks(members, n)
    return groups + alone


@dataclass(frozen=True, kw_only=True)
class SymbolicGroup(ConfigBase):
    """Symbolic runs ``(config, eval)`` whose networks train as one batched computation.

    Every config must have the same :func:`batch_key`; its key (the run's cache key) depends only on
    the members' own result keys.
    """

    members: tuple[tuple[SymbolicConfig, EvalConfig], ...] = ()

    def __post_init__(self) -> None:
        members = tuple((c, e) for c, e in self.members)
        if not members or len(members) > MAX_GROUP:
            raise ConfigError(
                f"The 'members' parameter of {_OWNER} must hold 1 to {MAX_GROUP} (config, eval) pairs. "
                f"Got {len(members)} instead."
            )
        for c, e in members:
            if not isinstance(c, SymbolicConfig) or not isinstance(e, EvalConfig):
                raise ConfigError(
                    f"The 'members' parameter of {_OWNER} must hold (SymbolicConfig, EvalConfig) pairs. "
                    f"Got ({type(c).__name__}, {type(e).__name__}) instead."
                )
        keys = {batch_key(c) for c, _ in members}
        if len(keys) != 1 or None in keys:
            raise ConfigError(
                f"The 'members' parameter of {_OWNER} must hold configurations that train alike (the same "
                "features, rows, network and training, an elementwise optimizer). Got configurations that differ "
                "instead; split them with group_configs()."
            )
        object.__setattr__(self, "members", members)

    @property
    def configs(self) -> list[SymbolicConfig]:
        """The distinct configurations to train, in order."""
        return list({c.config_hash: c for c, _ in self.members}.values())

    def result_keys(self) -> list[str]:
        return [_result_key(c, e) for c, e in self.members]

    def hash_payload(self) -> dict[str, Any]:
        return {"members": self.result_keys()}

    def describe(self) -> str:
        c = self.members[0][0]
        return (
            f"{len(self.configs)} symbolic models trained together ({c.data.n_features} features, width "
            f"{c.model.width}, depth {c.model.depth}, {c.train.epochs} epochs)"
        )

    def estimated_bytes(self) -> int:
        """Peak bytes: every member's share of the batched training, then one member's evaluation at a time."""
        train = sum(symbolic_member_bytes(c) for c in self.configs)
        data = sum(c.data.samples * (c.data.n_features + 1) * 8 for c in self.configs)  # float64 arrays
        return int(train + data + max(c.estimated_bytes() for c in self.configs))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SymbolicGroup:
        return cls(
            members=tuple((SymbolicConfig.from_dict(c), EvalConfig.from_dict(e)) for c, e in d.get("members", ()))
        )


@dataclass
class SymbolicGroupResult:
    """What a group run produced: each member's :class:`SymbolicResult` (``None`` where it failed, with the
    reason in ``errors``), keyed by the member's index in :attr:`SymbolicGroup.members`."""

    group: SymbolicGroup
    results: dict[int, SymbolicResult | None]
    errors: dict[int, str] = field(default_factory=dict)
    trained: int = 0
    train_seconds: float = 0.0
    device: str = "cpu"
    cached: bool = False
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "task": "symbolic-group",
            "members": len(self.group.members),
            "trained": self.trained,
            "train_seconds": self.train_seconds,
            "device": self.device,
            "errors": {str(i): e for i, e in self.errors.items()},
            "fprec": {str(i): r.fprec for i, r in self.results.items() if r is not None},
        }


def group_cached(group: SymbolicGroup, cache: Cache) -> bool:
    """Whether every member's result is in ``cache``."""
    return all(cache.has(RESULT_KIND, k) for k in group.result_keys())


class _GroupMonitor:
    def __init__(self, report: Callable[..., None] | None, should_stop: Callable[[], bool] | None, epochs: int):
        self._report, self._stop, self._epochs = report, should_stop, epochs

    def on_progress(self, epoch: int, losses: np.ndarray) -> None:
        if self._report:
            finite = losses[np.isfinite(losses)]
            loss = float(finite.mean()) if finite.size else float("nan")
            self._report(epoch=epoch, epochs=self._epochs, loss=loss)

    def should_stop(self) -> bool:
        return bool(self._stop and self._stop())


def run_symbolic_group(
    group: SymbolicGroup,
    ev: Any = None,
    *,
    cache: Cache | None = None,
    device: str | torch.device = "auto",
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SymbolicGroupResult:
    """Train the group's uncached members together, then score every member as :func:`run_symbolic`.

    ``ev`` is unused (each member carries its own :class:`EvalConfig`); it is there for the run layer's
    signature. A member whose data cannot be made or whose training diverges fails alone (its error is in
    :attr:`SymbolicGroupResult.errors` and nothing is cached for it); Stop (``should_stop``) is honoured
    between epochs and between members' evaluations, and raises :class:`JobCancelled`.
    """
    cache = cache or Cache()
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    errors: dict[int, str] = {}
    pending = [i for i, k in enumerate(group.result_keys()) if not cache.has(RESULT_KIND, k)]
    todo = {}
    for i in pending:
        c = group.members[i][0]
        if c.config_hash not in todo and not cache.has(MODEL_KIND, c.config_hash):
            todo[c.config_hash] = c
    datasets, failed = {}, {}
    for h, c in todo.items():
        try:
            datasets[h] = make_symbolic_data(c.data, c.seed)
        except ChaosMiningError as exc:
            failed[h] = str(exc)
    trained: dict[str, Any] = {}
    out = None
    if datasets:
        configs = [todo[h] for h in datasets]
        first = configs[0]
        if report:
            report(stage=f"training {len(configs)} models as one batched computation on {dev}")
        out = train_mlps(
            [datasets[h].X_train for h in datasets],
            [datasets[h].y_train for h in datasets],
            first.model,
            first.train,
            seeds=[c.seed for c in configs],
            device=dev,
            monitor=_GroupMonitor(report, should_stop, first.train.epochs),
        )
        for h, model, err in zip(datasets, out.models, out.errors):
            if err is not None:
                failed[h] = str(err)
            else:
                trained[h] = model
    results: dict[int, SymbolicResult | None] = {}
    for n, i in enumerate(pending):
        if should_stop and should_stop():
            raise JobCancelled(f"Stopped by the user after scoring {n} of {len(pending)} members of the group.")
        c, e = group.members[i]
        if c.config_hash in failed:
            errors[i], results[i] = failed[c.config_hash], None
            continue
        if report:
            report(stage=f"attributing member {n + 1} of {len(pending)}", done=n, total=len(pending))
        try:
            results[i] = run_symbolic(c, e, cache=cache, device=dev, trained=trained.get(c.config_hash))
        except JobCancelled:
            raise
        except ChaosMiningError as exc:  # this member alone fails
            errors[i], results[i] = str(exc), None
    result = SymbolicGroupResult(
        group,
        results,
        errors,
        trained=len(trained),
        train_seconds=out.seconds if out is not None else 0.0,
        device=str(dev),
    )
    _save(result, cache)
    return result


def _save(result: SymbolicGroupResult, cache: Cache) -> None:
    payload = {k: v for k, v in result.summary().items() if k != "fprec"}

    def build(folder: Path) -> dict[str, Any]:
        (folder / "group.json").write_text(json.dumps(payload, allow_nan=True))
        return {}

    key = result.group.config_hash
    cache.delete(GROUP_KIND, key)
    cache.write(GROUP_KIND, key, build, config={"members": result.group.result_keys()})


def load_symbolic_group(group: SymbolicGroup, ev: Any, cache: Cache) -> SymbolicGroupResult:
    """A finished group from ``cache`` (members' results read back, never trained here)."""
    entry = cache.load(GROUP_KIND, group.config_hash)
    saved = json.loads(entry.file("group.json").read_text()) if entry is not None else {}
    results: dict[int, SymbolicResult | None] = {}
    errors = {int(i): e for i, e in saved.get("errors", {}).items()}
    for i, ((c, e), key) in enumerate(zip(group.members, group.result_keys())):
        if cache.has(RESULT_KIND, key):
            results[i] = run_symbolic(c, e, cache=cache, device="cpu")
        else:
            results[i] = None
            errors.setdefault(i, "This member did not finish in its group; run it alone to see why.")
    return SymbolicGroupResult(
        group,
        results,
        errors,
        trained=int(saved.get("trained", 0)),
        train_seconds=float(saved.get("train_seconds", 0.0)),
        device=str(saved.get("device", "cpu")),
        cached=True,
    )
