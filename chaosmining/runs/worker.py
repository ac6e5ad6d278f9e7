"""What a worker does with one run, wherever it runs (a local worker process or a Ray task).

:func:`perform` rebuilds the specification from JSON (validating every config again), points the
process's temporary files at a folder the driver owns (removed by the driver when the run ends, also
after a crash), sets the torch thread count, and calls the kind's registered function with ``report``
and ``should_stop``. It returns one of ``("done", None, None)``, ``("cancelled", message, None)`` or
``("failed", message, trace)``: errors are data here, so one run's failure never takes its worker down.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import tempfile
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ..cache import Cache
from ..errors import ChaosMiningError, JobCancelled, PluginError
from ..plugins import load_plugin, load_plugins
from ..runtime import configure_threads, counted, lend_cores_from
from .spec import RUN_KINDS, RunSpec

__all__ = ["perform", "local_worker_main", "lower_priority", "BUILTIN_KINDS_MODULE"]

log = logging.getLogger(__name__)


BUILTIN_KINDS_MODULE = "chaosmining.runs.kinds"


def _import_kind_modules(modules: list[str], plugins: list[str] = ()) -> None:
    importlib.import_module(BUILTIN_KINDS_MODULE)
    load_plugins()  # $CHAOSMINING_PLUGINS: the server's or the CLI's own methods (idempotent)
    for plugin in plugins:  # what the driver had loaded when it sent the run (workers may predate it)
        try:
            load_plugin(plugin)
        except PluginError as exc:  # e.g. a file that is not on this Ray node: only runs that use it fail
            log.warning("%s", exc)
    for name in modules:
        if name and name != "__main__":
            importlib.import_module(name)


def perform(
    message: dict[str, Any],
    report: Callable[..., None],
    should_stop: Callable[[], bool],
) -> tuple[str, str | None, str | None]:
    """Perform the run described by ``message`` (``spec``, ``cache``, ``threads``, ``tmp``, ``modules``,
    ``plugins``: the driver's :func:`chaosmining.plugins.plugin_sources`)."""
    try:
        _import_kind_modules(list(message.get("modules", ())), list(message.get("plugins", ())))
        spec = RunSpec.from_dict(message["spec"])
        tmp = message.get("tmp")
        if tmp:
            os.makedirs(tmp, exist_ok=True)
            os.environ["TMPDIR"] = tmp
            tempfile.tempdir = tmp
        configure_threads(int(message.get("threads") or 1))
        spec.entry.perform(
            spec.config,
            spec.eval,
            cache=Cache(message["cache"]),
            device=spec.device,
            report=report,
            should_stop=should_stop,
        )
        return "done", None, None
    except JobCancelled as exc:
        return "cancelled", str(exc), None
    except ChaosMiningError as exc:
        return "failed", str(exc), None
    except MemoryError:
        return "failed", "The run ran out of memory. Lower its size (data, model or batch) and try again.", None
    except Exception as exc:  # a bug: one line for the user, the trace for the log
        return "failed", f"Unexpected error: {type(exc).__name__}: {exc}", traceback.format_exc()
    finally:
        tempfile.tempdir = None


def lower_priority(nice: int) -> None:
    """Lower this process's CPU priority by ``nice`` against every other process on the machine.

    Linux's autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``, on by default) first shares
    the CPU equally between sessions and applies nice values only between processes of one session. A worker
    that only called ``os.nice`` would yield to the server, but take as much CPU as any other session: a
    visitor's browser on the same machine, another user's shell. So the worker starts a session of its own
    and gives that session's group the same nice value (``/proc/self/autogroup``; raising it needs no
    privilege). Without autogroup the nice value alone does it.
    """
    with contextlib.suppress(OSError):
        os.nice(nice)
    try:
        os.setsid()
    except OSError:  # already a session leader
        return
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as fh:
        fh.write(str(nice))


def local_worker_main(
    conn: Connection, stop_flag: Any, parent_pid: int, busy: Any = None, cores: int = 1, nice: int = 0
) -> None:
    """A local worker process: take runs from ``conn`` one at a time until told to exit.

    Messages to the driver: ``("event", run_id, dict)`` while a run reports progress, then
    ``("end", run_id, status, message, trace)``. ``busy`` counts the backend's running runs: when fewer
    runs than cores remain (the tail of a sweep), a run takes a share of the idle cores
    (:func:`chaosmining.runtime.lend_idle_cores`, called by the trainers every few epochs). Workers ignore
    Ctrl-C and let the driver decide; SIGTERM asks the current run to stop. ``nice`` lowers the worker's CPU
    priority below the server's and everything else's (:func:`lower_priority`,
    :func:`chaosmining.runs.local.worker_nice`).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if nice > 0:
        lower_priority(nice)
    terminated = False

    def on_term(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal's signature
        nonlocal terminated
        terminated = True

    signal.signal(signal.SIGTERM, on_term)
    RUN_KINDS.names()  # the registry module is imported before any run arrives
    if busy is not None:
        lend_cores_from(busy, cores)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None or terminated:
            return
        run_id = message["id"]

        def report(_id: str = run_id, **event: Any) -> None:
            try:
                conn.send(("event", _id, event))
            except (OSError, ValueError):
                pass

        def should_stop() -> bool:
            return bool(stop_flag.value) or terminated or os.getppid() != parent_pid

        status, text, trace = counted(perform, message, report, should_stop)
        try:
            conn.send(("end", run_id, status, text, trace))
        except (OSError, ValueError):
            return
