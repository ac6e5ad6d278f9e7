"""The run layer: every piece of long work goes through one executor.

>>> from chaosmining.runs import RunSpec, local_executor            # doctest: +SKIP
>>> ex = local_executor()                                            # worker processes on this machine
>>> h = ex.submit(RunSpec("symbolic", SymbolicConfig(), EvalConfig()), session="me")
>>> h.snapshot().status, h.result()                                  # progress, then the typed result

Kinds of work are registered in :data:`RUN_KINDS` (:mod:`chaosmining.runs.kinds` registers the library's);
:func:`get_executor` returns the process-wide executor that ``CHAOSMINING_EXECUTOR`` (``local`` or ``ray``)
names, shut down cleanly when the process exits.
"""

from __future__ import annotations

from . import kinds as _kinds  # noqa: F401 - registers the library's run kinds
from .executor import Executor, RunContext, RunHandle, RunSnapshot, memory_budget_bytes
from .factory import (
    EXECUTOR_ENV,
    EXECUTORS,
    FINISHED_HOOKS,
    execute,
    follow,
    gather,
    get_executor,
    make_executor,
    shutdown_executor,
)
from .local import LocalBackend, default_workers
from .spec import RUN_KINDS, MemoryEstimate, RunKind, RunRefused, RunSpec

__all__ = [
    "Executor",
    "RunContext",
    "RunHandle",
    "RunSnapshot",
    "RunSpec",
    "RunKind",
    "RUN_KINDS",
    "RunRefused",
    "MemoryEstimate",
    "LocalBackend",
    "default_workers",
    "memory_budget_bytes",
    "get_executor",
    "make_executor",
    "shutdown_executor",
    "EXECUTORS",
    "EXECUTOR_ENV",
    "FINISHED_HOOKS",
    "execute",
    "follow",
    "gather",
]
