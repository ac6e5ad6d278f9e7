"""Which executor a process uses: ``local`` (worker processes) or ``ray`` (a Ray cluster).

:func:`get_executor` keeps one executor per process (the Streamlit server's is shared by every browser
session) and shuts it down when the process exits, so no run is left half-written and no worker
outlives its server. ``CHAOSMINING_EXECUTOR`` picks the backend for the app; CLI commands take
``--executor``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from pathlib import Path
from typing import Any

from ..cache import Cache
from ..errors import JobCancelled
from ..registry import Registry
from ..validation import param_error
from .executor import Executor, RunHandle
from .spec import RunSpec

__all__ = [
    "EXECUTORS",
    "EXECUTOR_ENV",
    "get_executor",
    "make_executor",
    "shutdown_executor",
    "FINISHED_HOOKS",
    "execute",
    "follow",
    "gather",
    "flush_records",
]

EXECUTOR_ENV = "CHAOSMINING_EXECUTOR"
log = logging.getLogger(__name__)

#: Called on the driver with every handle that finished with status ``done`` (the results store records there).
FINISHED_HOOKS: list[Callable[[RunHandle], None]] = []


def _local(workers: int | None, threads: int | None) -> Any:
    from .local import LocalBackend

    return LocalBackend(workers, threads)


def _ray(workers: int | None, threads: int | None) -> Any:
    from .ray_backend import RayBackend  # imports ray: only when asked for

    return RayBackend(workers, threads)


#: Backend factories: ``make(workers, threads)``, ``None`` meaning the backend's default for either.
EXECUTORS: Registry[Callable[[int | None, int | None], Any]] = Registry("executor")
EXECUTORS.register("local", _local)
EXECUTORS.register("ray", _ray)


_RECORDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chaosmining-results")


def record_in_store(handle: RunHandle) -> None:
    """File a finished run's scores in the results store, on the driver (so it works with Ray workers).

    Loading the result can take a moment, so it happens on a background thread, never in the scheduler;
    a store failure is logged by :func:`chaosmining.results.record` and never fails the run. A run whose
    kind names :attr:`~chaosmining.runs.RunKind.members` (a batched group) files each member that finished.
    """
    spec = handle.spec
    if spec is None or handle.cached or handle.status != "done":
        return
    from ..results import EXTRACTORS, ResultsStore, default_results_root

    if spec.entry.members is not None:
        members = [RunSpec(kind, c, e, spec.device) for kind, c, e in spec.entry.members(spec.config, spec.eval)]
        targets = [(m, None) for m in members if m.entry.result_kind in EXTRACTORS.names()]
    elif spec.entry.result_kind in EXTRACTORS.names():
        targets = [(spec, handle)]
    else:  # a unit of a larger run (feature selection)
        return
    cache = handle._executor.cache
    seconds = ((handle.finished or 0) - (handle.started or 0)) / max(1, len(targets))

    def work() -> None:
        from ..results import record

        store = ResultsStore(default_results_root(cache.root))
        for target, own in targets:
            kind = target.entry
            try:
                entry = cache.load(kind.result_kind, kind.result_key(target.config, target.eval))
                if entry is None:  # a member that failed in its group: nothing to record
                    continue
                result = own.result() if own is not None else kind.load(target, cache)
            except Exception:  # the result could not be read back: nothing to record
                log.exception("could not read back %s for the results store", target.key)
                continue
            record(kind.result_kind, entry.config, result, device=spec.device, seconds=seconds, store=store)

    _RECORDER.submit(work)


FINISHED_HOOKS.append(record_in_store)


def flush_records(timeout: float | None = 120.0) -> bool:
    """Wait until every run handed to :func:`record_in_store` so far is filed (its one thread works in order);
    False when that took longer than ``timeout`` seconds (the records still follow)."""
    try:
        _RECORDER.submit(lambda: None).result(timeout)
    except FuturesTimeout:
        log.warning("The results store is still filing finished runs after %s s.", timeout)
        return False
    return True


def _finished(handle: RunHandle) -> None:
    for hook in list(FINISHED_HOOKS):
        hook(handle)


def make_executor(
    name: str | None = None,
    *,
    cache: Cache | None = None,
    workers: int | None = None,
    threads: int | None = None,
    **kwargs: Any,
) -> Executor:
    """A new executor on backend ``name`` (default ``CHAOSMINING_EXECUTOR`` or ``local``): ``workers`` runs at
    once, each on ``threads`` torch threads (default: the backend shares the cores among its runs)."""
    name = name or os.environ.get(EXECUTOR_ENV) or "local"
    if threads is not None and threads < 1:
        raise param_error("threads", "make_executor", "an int >= 1", threads)
    backend = EXECUTORS.get(name)(workers, threads)
    return Executor(backend, cache or Cache(), on_finished=_finished, **kwargs)


_EXECUTOR: Executor | None = None
_LOCK = threading.Lock()
_REGISTERED: list[bool] = []


def get_executor(
    cache: Cache | None = None, name: str | None = None, workers: int | None = None, threads: int | None = None
) -> Executor:
    """The process-wide executor, shut down at exit.

    Made on first use with ``cache``, backend ``name``, ``workers`` and ``threads``; a later call that asks
    for another cache folder, backend, worker count or thread count (a script or test calling the CLI
    twice) replaces it.
    """
    global _EXECUTOR
    with _LOCK:
        ex = _EXECUTOR
        if ex is not None and (
            (cache is not None and Path(cache.root) != Path(ex.cache.root))
            or (name is not None and name != ex.backend.name)
            or (workers is not None and workers != ex.capacity)
            or (threads is not None and threads != ex.backend.threads)
        ):
            _EXECUTOR = None
        else:
            ex = None
    if ex is not None:
        ex.shutdown()
    with _LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = make_executor(name, cache=cache, workers=workers, threads=threads)
            if not _REGISTERED:
                atexit.register(shutdown_executor)
                _REGISTERED.append(True)
        return _EXECUTOR


def shutdown_executor(grace: float = 10.0) -> None:
    """Stop the process-wide executor's runs and workers (idempotent)."""
    global _EXECUTOR
    with _LOCK:
        ex, _EXECUTOR = _EXECUTOR, None
    if ex is not None:
        ex.shutdown(grace)


def follow(
    handle: RunHandle, report: Callable[..., None] | None = None, should_stop: Callable[[], bool] | None = None
) -> Any:
    """Wait for ``handle``, passing each new progress event to ``report``; return its result.

    Stops the run (and raises :class:`~chaosmining.errors.JobCancelled`) when ``should_stop`` turns true.
    """
    seen = 0
    while True:
        finished = handle.wait(0.25)
        if report is not None:
            events = handle.snapshot().events
            for ev in events[seen:]:
                report(**{k: v for k, v in ev.items() if k != "t"})
            seen = len(events)
        if finished:
            return handle.result()
        if should_stop is not None and should_stop():
            handle.stop()


def execute(
    spec: Any,
    *,
    executor: Executor | str | None = None,
    cache: Cache | None = None,
    session: str = "cli",
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Any:
    """Run ``spec`` through an executor and return its result (the CLI's and scripts' one call).

    ``executor`` is an :class:`Executor`, a backend name (``"local"``, ``"ray"``: the process-wide one is
    made with it) or ``None`` (the process-wide executor).
    """
    if not isinstance(executor, Executor):
        executor = get_executor(cache, executor)
    return follow(executor.submit(spec, session=session), report, should_stop)


def gather(
    specs: dict[str, Any],
    *,
    submit: Callable[[Any], RunHandle],
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Submit every ``{label: RunSpec}`` with ``submit`` and return ``{label: result}`` once all have finished.

    ``report`` gets ``stage``/``done``/``total`` as runs finish; Stop stops the runs still queued or running.
    A failed run raises its error after the others finished (their results stay cached).
    """
    handles = {label: submit(spec) for label, spec in specs.items()}
    finished: list[str] = []
    while len(finished) < len(handles):
        if should_stop is not None and should_stop():
            for h in handles.values():
                if not h.done:
                    h.stop()
            raise JobCancelled(f"Stopped by the user after {len(finished)} of {len(handles)} runs.")
        for label, h in handles.items():
            if label not in finished and h.wait(0.1):
                finished.append(label)
                if report is not None:
                    report(
                        stage=f"{label} finished ({len(finished)} of {len(handles)})",
                        done=len(finished),
                        total=len(handles),
                    )
    return {label: h.result() for label, h in handles.items()}
