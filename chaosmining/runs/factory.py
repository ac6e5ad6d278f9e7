"""Which executor a process uses: ``local`` (worker processes) or ``ray`` (a Ray cluster).

:func:`get_executor` keeps one executor per process (the Streamlit server's is shared by every browser
session) and shuts it down when the process exits, so no run is left half-written and no worker
outlives its server. ``CHAOSMINING_EXECUTOR`` picks the backend for the app; CLI commands take
``--executor``.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Any

from ..cache import Cache
from ..registry import Registry
from .executor import Executor, RunHandle

__all__ = [
    "EXECUTORS",
    "EXECUTOR_ENV",
    "get_executor",
    "make_executor",
    "shutdown_executor",
    "FINISHED_HOOKS",
    "execute",
    "follow",
]

EXECUTOR_ENV = "CHAOSMINING_EXECUTOR"

#: Called on the driver with every handle that finished with status ``done`` (the results store records there).
FINISHED_HOOKS: list[Callable[[RunHandle], None]] = []


def _local(workers: int | None) -> Any:
    from .local import LocalBackend

    return LocalBackend(workers)


def _ray(workers: int | None) -> Any:
    from .ray_backend import RayBackend  # imports ray: only when asked for

    return RayBackend(workers)


EXECUTORS: Registry[Callable[[int | None], Any]] = Registry("executor")
EXECUTORS.register("local", _local)
EXECUTORS.register("ray", _ray)


def _finished(handle: RunHandle) -> None:
    for hook in list(FINISHED_HOOKS):
        hook(handle)


def make_executor(
    name: str | None = None, *, cache: Cache | None = None, workers: int | None = None, **kwargs: Any
) -> Executor:
    """A new executor on backend ``name`` (default ``CHAOSMINING_EXECUTOR`` or ``local``)."""
    name = name or os.environ.get(EXECUTOR_ENV) or "local"
    backend = EXECUTORS.get(name)(workers)
    return Executor(backend, cache or Cache(), on_finished=_finished, **kwargs)


_EXECUTOR: Executor | None = None
_LOCK = threading.Lock()


def get_executor(cache: Cache | None = None, name: str | None = None) -> Executor:
    """The process-wide executor (created on first use with ``cache`` and backend ``name``; shut down at exit)."""
    global _EXECUTOR
    with _LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = make_executor(name, cache=cache)
            atexit.register(shutdown_executor)
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
