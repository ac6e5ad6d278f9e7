"""What a run is: a registered kind of work and a typed, hashable specification of one piece of it.

A :class:`RunKind` names the library function that performs the work (``run_symbolic``, ``run_vision``,
``run_roar``, ...), the frozen config types it takes, where its result lives in the cache, and what it
costs (peak memory, rough seconds). A :class:`RunSpec` is one configuration of a kind; its :attr:`key`
(kind + the result's cache key) identifies the work, so two identical submissions are one run.

Specifications travel between processes and machines as JSON (:meth:`RunSpec.to_dict`), never pickled:
a worker rebuilds the frozen configs with their own validation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ChaosMiningError, ConfigError
from ..registry import Registry

__all__ = [
    "MemoryEstimate",
    "RunKind",
    "RUN_KINDS",
    "RunSpec",
    "RunRefused",
    "WORKER_BASE_BYTES",
]

# A worker process with torch, captum and the library imported (measured RSS on the 2-core machine: ~0.45 GB).
WORKER_BASE_BYTES = 450 * 2**20


class RunRefused(ChaosMiningError):
    """A run was not accepted: it can never fit in the memory budget, or its session queued too many."""


@dataclass(frozen=True)
class MemoryEstimate:
    """A run's estimated peak memory beyond its worker's baseline, and the parameter that drives it.

    ``parameter`` and ``lower`` name what the user should reduce when the run cannot fit, e.g.
    ``MemoryEstimate(3e9, "train_size", "the number of training images")``.
    """

    bytes: int
    parameter: str
    lower: str = ""

    @property
    def gb(self) -> float:
        return self.bytes / 2**30


@dataclass(frozen=True)
class RunKind:
    """A kind of long work the run layer can perform.

    Parameters
    ----------
    name : the registry name, also the first part of every run key (``"symbolic"``).
    perform : ``perform(config, ev, *, cache, device, report, should_stop) -> result``; the library's
        entry point, which trains or loads and writes its result into ``cache``. Called in a worker.
    config_from, eval_from : rebuild the frozen configs from their ``to_dict`` output (``eval_from``
        ``None`` when the kind takes one config).
    result_kind : the cache kind under which the finished result lives.
    result_key : ``(config, ev) -> str``, the cache key of the result.
    memory : ``(config, ev) -> MemoryEstimate``, the peak memory beyond the worker baseline.
    seconds : ``(config, ev) -> float``, a rough single-core duration used for the estimated wait until
        runs of the kind have finished on this executor (then their measured mean is used).
    describe : ``config -> str``, one line for progress panels.
    uses_device : whether the kind trains on ``device`` (GPU runs ask the cluster for a GPU).
    inputs : ``(config, ev) -> [(cache kind, key), ...]``, entries of the driver's cache the run reads when
        they exist (its prepared data, an already trained model); a backend without a shared file system
        (Ray) ships them with the run instead of computing them again.
    composite : the kind runs on the driver and submits child runs (a feature selection's trainings):
        ``perform`` then also takes ``executor``, the :class:`~chaosmining.runs.executor.RunContext` to submit
        them through; it is never sent to a worker.
    loader : ``(config, ev, cache) -> result`` reads a finished result (default: ``perform``, which loads
        when the result is cached).
    modality : ``"symbolic"``, ``"vision"``, ``"audio"``, ``"selection"`` or ``"evaluation"``.
    members : ``(config, ev) -> [(kind, config, ev), ...]``, the runs whose results this run writes (a batched
        group's members); the results store files each of them, as if each had run alone.
    """

    name: str
    perform: Callable[..., Any]
    config_from: Callable[[dict[str, Any]], Any]
    eval_from: Callable[[dict[str, Any]], Any] | None
    result_kind: str
    result_key: Callable[[Any, Any], str]
    memory: Callable[[Any, Any], MemoryEstimate]
    seconds: Callable[[Any, Any], float]
    describe: Callable[[Any], str]
    uses_device: bool = True
    modality: str = "symbolic"
    inputs: Callable[[Any, Any], list[tuple[str, str]]] | None = None
    composite: bool = False
    loader: Callable[[Any, Any, Any], Any] | None = None
    members: Callable[[Any, Any], list[tuple[str, Any, Any]]] | None = None

    def load(self, spec: RunSpec, cache: Any) -> Any:
        """The finished result of ``spec`` from ``cache`` (the perform function loads when cached)."""
        if self.loader is not None:
            return self.loader(spec.config, spec.eval, cache)
        return self.perform(spec.config, spec.eval, cache=cache, device="cpu")

    def cached(self, spec: RunSpec, cache: Any) -> bool:
        return cache.has(self.result_kind, self.result_key(spec.config, spec.eval))

    def input_entries(self, spec: RunSpec) -> list[tuple[str, str]]:
        return list(self.inputs(spec.config, spec.eval)) if self.inputs is not None else []


RUN_KINDS: Registry[RunKind] = Registry("run kind")


def _device_of(device: str) -> str:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(
            f"The 'device' parameter of RunSpec must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {device!r} instead."
        )
    return device


@dataclass(frozen=True)
class RunSpec:
    """One run: a registered kind, its frozen config(s) and the device asked for.

    ``key`` is ``"<kind>:<result key>"``: the same configuration asked for twice is one run.
    """

    kind: str
    config: Any
    eval: Any = None
    device: str = "auto"
    _key: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        entry = RUN_KINDS.get(self.kind)
        _device_of(self.device)
        object.__setattr__(self, "_key", f"{self.kind}:{entry.result_key(self.config, self.eval)}")

    @property
    def key(self) -> str:
        return self._key

    @property
    def entry(self) -> RunKind:
        return RUN_KINDS.get(self.kind)

    def memory(self) -> MemoryEstimate:
        return self.entry.memory(self.config, self.eval)

    def describe(self) -> str:
        return self.entry.describe(self.config)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "config": self.config.to_dict(),
            "eval": None if self.eval is None else self.eval.to_dict(),
            "device": self.device,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        """Rebuild a spec from :meth:`to_dict` output; every config is validated again."""
        if not isinstance(d, dict) or not isinstance(d.get("kind"), str):
            raise ConfigError(f"A run specification must be a mapping with a 'kind'. Got {type(d).__name__} instead.")
        entry = RUN_KINDS.get(d["kind"])
        config = entry.config_from(d["config"])
        ev = None
        if entry.eval_from is not None and d.get("eval") is not None:
            ev = entry.eval_from(d["eval"])
        return cls(d["kind"], config, ev, str(d.get("device", "auto")))


def env_int(name: str, default: int, low: int = 1) -> int:
    """An integer environment setting, with a message naming the variable when it is not one."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"The '{name}' environment variable must be an int >= {low}. Got {raw!r} instead.") from None
    if value < low:
        raise ConfigError(f"The '{name}' environment variable must be an int >= {low}. Got {raw!r} instead.")
    return value
