"""Backfill the results store from a cache: every result-kind entry, loaded and recorded.

What to rebuild comes from the run layer's :data:`~chaosmining.runs.RUN_KINDS`: every kind whose
``result_kind`` has an extractor is rebuilt from its cache entries by turning the manifest's configuration
back into config objects (``config_from``, and ``eval_from`` for the modalities' experiments, whose manifest
holds ``{"model", "eval"}``) and loading the result the way the run layer does (``RunKind.load``). The
entry's key is checked against the key those configs hash to first, so a configuration that no longer
round-trips (a renamed field, a plugin method that is not loaded) is skipped, never retrained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..cache import Cache, CacheEntry
from ..errors import ChaosMiningError, ConfigError
from ..experiments import rfe as _rfe  # noqa: F401 - registers the 'rfe' run kind
from ..runs import RUN_KINDS, RunKind, RunSpec
from .extractors import EXTRACTORS
from .record import record
from .store import ResultsStore

__all__ = ["Loaded", "RebuildReport", "rebuild", "rebuild_kinds", "load_entry"]


@dataclass(frozen=True)
class Loaded:
    """A result loaded from the cache, with what :func:`record` needs besides it."""

    config: Any
    result: Any
    device: str | None
    seconds: float | None


class _StaleEntry(ChaosMiningError):
    """The entry's configuration no longer hashes to its key."""


def rebuild_kinds() -> dict[str, RunKind]:
    """The run kinds whose results the store records, by their cache result kind (one kind per result kind)."""
    out: dict[str, RunKind] = {}
    for _, kind in RUN_KINDS.items():
        if kind.result_kind in EXTRACTORS:
            out.setdefault(kind.result_kind, kind)
    return out


def load_entry(kind: RunKind, entry: CacheEntry, cache: Cache) -> Loaded:
    """The result of cache ``entry`` of run kind ``kind``, loaded as the run layer loads a finished run.

    Raises
    ------
    ChaosMiningError
        When the entry's configuration no longer hashes to its key, or its result cannot be read.
    """
    if kind.eval_from is not None:
        config = kind.config_from(entry.config.get("model", {}))
        ev = kind.eval_from(entry.config.get("eval", {}))
    else:
        config, ev = kind.config_from(entry.config), None
    key = kind.result_key(config, ev)
    if key != entry.key:
        raise _StaleEntry(f"its configuration now hashes to {key}, not {entry.key} (written by another version)")
    result = kind.load(RunSpec(kind.name, config, ev, "cpu"), cache)
    device = getattr(result, "device", None) or ("cpu" if not (kind.uses_device or kind.composite) else None)
    seconds = getattr(result, "train_seconds", None)
    if seconds is None:
        seconds = entry.meta.get("seconds", getattr(result, "seconds", None))
    return Loaded(entry.config, result, device, seconds)


@dataclass
class RebuildReport:
    """Per kind, how many entries were recorded; and why the others were skipped."""

    recorded: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"recorded": self.recorded, "skipped": self.skipped, "total": sum(self.recorded.values())}


def rebuild(
    cache: Cache | None = None,
    store: ResultsStore | None = None,
    kinds: list[str] | None = None,
    report: Callable[..., None] | None = None,
) -> RebuildReport:
    """Record every result in ``cache`` (all :func:`rebuild_kinds`, or the result kinds ``kinds``) into ``store``.

    Entries already in the store are recorded again and supersede their old rows (same run key).
    """
    cache = cache or Cache()
    store = store or ResultsStore()
    out = RebuildReport()
    by_result = rebuild_kinds()
    for result_kind in kinds or list(by_result):
        run_kind = by_result.get(result_kind)
        if run_kind is None:
            raise ConfigError(
                f"Unknown result kind {result_kind!r}. Valid result kind names are: {', '.join(by_result)}."
            )
        n = 0
        for entry in cache.entries(result_kind):
            try:
                loaded = load_entry(run_kind, entry, cache)
            except (ChaosMiningError, ValueError, TypeError, KeyError) as exc:
                out.skipped.append(f"{result_kind}/{entry.key}: {exc}")
                continue
            rid = record(
                result_kind, loaded.config, loaded.result, device=loaded.device, seconds=loaded.seconds, store=store
            )
            if rid is None:
                out.skipped.append(f"{result_kind}/{entry.key}: the store could not record it (see the log)")
                continue
            n += 1
            if report is not None:
                report(kind=result_kind, key=entry.key, done=n)
        out.recorded[result_kind] = n
    return out
