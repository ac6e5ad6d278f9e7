"""Backfill the results store from a cache: every result-kind entry, loaded and recorded.

Each :data:`LOADERS` entry turns a cache entry's manifest configuration back into config objects and
loads the result through the library's own function (``run_symbolic``, ``load_rfe``, ``run_roar``...).
The entry's key is checked against the key those configs hash to first, so a configuration that no
longer round-trips (a renamed field, a plugin method that is not loaded) is skipped, never retrained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..cache import Cache, CacheEntry
from ..errors import ChaosMiningError
from ..registry import Registry
from .record import record
from .store import ResultsStore

__all__ = ["LOADERS", "Loaded", "RebuildReport", "rebuild"]


@dataclass(frozen=True)
class Loaded:
    """A result loaded from the cache, with what :func:`record` needs besides it."""

    config: Any
    result: Any
    device: str | None
    seconds: float | None


Loader = Callable[[CacheEntry, Cache], Loaded]
LOADERS: Registry[Loader] = Registry("result kind")


class _StaleEntry(ChaosMiningError):
    """The entry's configuration no longer hashes to its key."""


def _check_key(entry: CacheEntry, key: str) -> None:
    if key != entry.key:
        raise _StaleEntry(f"its configuration now hashes to {key}, not {entry.key} (written by another version)")


def _model_run(config_type: Any, eval_type: Any, key_of: Callable[..., str], run: Callable[..., Any]) -> Loader:
    def load(entry: CacheEntry, cache: Cache) -> Loaded:
        config = config_type.from_dict(entry.config.get("model", {}))
        ev = eval_type.from_dict(entry.config.get("eval", {}))
        _check_key(entry, key_of(config, ev))
        result = run(config, ev, cache=cache, device="cpu")
        return Loaded(entry.config, result, result.device, result.train_seconds)

    return load


def _evaluation(config_type: Any, run: Callable[..., Any]) -> Loader:
    def load(entry: CacheEntry, cache: Cache) -> Loaded:
        config = config_type.from_dict(entry.config)
        _check_key(entry, config.config_hash)
        result = run(config, cache=cache)
        return Loaded(entry.config, result, "cpu", entry.meta.get("seconds"))

    return load


def _rfe(entry: CacheEntry, cache: Cache) -> Loaded:
    from ..experiments.rfe import load_rfe, rfe_config_from_dict

    config = rfe_config_from_dict(entry.config)
    _check_key(entry, config.config_hash)
    result = load_rfe(config, cache)
    if result is None:
        raise _StaleEntry("load_rfe found no readable result")
    return Loaded(entry.config, result, None, result.seconds)


def _register_loaders() -> None:
    from ..evaluation import (
        BlurConfig,
        FaithfulnessConfig,
        RoadConfig,
        RoarConfig,
        SanityConfig,
        run_blur,
        run_faithfulness,
        run_road,
        run_roar,
        run_sanity,
    )
    from ..experiments import audio, symbolic, vision

    LOADERS.register(
        symbolic.RESULT_KIND,
        _model_run(symbolic.SymbolicConfig, symbolic.EvalConfig, symbolic._result_key, symbolic.run_symbolic),
    )
    LOADERS.register(
        vision.RESULT_KIND,
        _model_run(vision.VisionConfig, vision.VisionEvalConfig, vision.result_key, vision.run_vision),
    )
    LOADERS.register(
        audio.RESULT_KIND, _model_run(audio.AudioConfig, audio.AudioEvalConfig, audio.result_key, audio.run_audio)
    )
    LOADERS.register("rfe-result", _rfe)
    for kind, config_type, run in (
        ("eval-roar", RoarConfig, run_roar),
        ("eval-road", RoadConfig, run_road),
        ("eval-blur", BlurConfig, run_blur),
        ("eval-sanity", SanityConfig, run_sanity),
        ("eval-faithfulness", FaithfulnessConfig, run_faithfulness),
    ):
        LOADERS.register(kind, _evaluation(config_type, run))


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
    """Record every result in ``cache`` (all :data:`LOADERS` kinds, or ``kinds``) into ``store``.

    Entries already in the store are recorded again and supersede their old rows (same run key).
    """
    if not len(LOADERS):
        _register_loaders()
    cache = cache or Cache()
    store = store or ResultsStore()
    out = RebuildReport()
    for kind in kinds or LOADERS.names():
        load = LOADERS.get(kind)
        n = 0
        for entry in cache.entries(kind):
            try:
                loaded = load(entry, cache)
            except (ChaosMiningError, ValueError, TypeError, KeyError) as exc:
                out.skipped.append(f"{kind}/{entry.key}: {exc}")
                continue
            rid = record(kind, loaded.config, loaded.result, device=loaded.device, seconds=loaded.seconds, store=store)
            if rid is None:
                out.skipped.append(f"{kind}/{entry.key}: the store could not record it (see the log)")
                continue
            n += 1
            if report is not None:
                report(kind=kind, key=entry.key, done=n)
        out.recorded[kind] = n
    return out
