"""The local backend: a bounded set of worker processes on this machine (the embedded default).

Each worker is a spawned process (with an empty ``__main__``, see :func:`chaosmining.runtime.spawn_context`)
that performs one run at a time and talks to the driver over a pipe. Workers are started when work
arrives and kept for the next run; at most ``CHAOSMINING_WORKERS`` exist (default: the CPU count), each
with ``cores // workers`` torch threads.

Isolation: a worker that dies (a segfault in the compiled step, an out-of-memory kill, ``os.abort()``)
fails the run it held with a one-line message; the driver removes that run's temporary folders and
the cache's half-built folders of that process, and a new worker takes the next run. Stop is a
shared flag the run polls between epochs; a run that does not stop within ``stop_grace`` seconds is
ended with its worker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from ..plugins import plugin_sources
from ..runtime import spawn_context
from .executor import Executor, RunHandle
from .spec import env_int
from .worker import local_worker_main

__all__ = ["LocalBackend", "NICE_ENV", "WORKERS_ENV", "default_workers", "worker_nice"]

WORKERS_ENV = "CHAOSMINING_WORKERS"
NICE_ENV = "CHAOSMINING_WORKER_NICE"


def worker_nice() -> int:
    """``CHAOSMINING_WORKER_NICE`` (0-19), else 10: how much lower than the server the workers' CPU priority is.

    Runs take all the CPU the server leaves, but a page the server is drawing goes first, so a class's
    fresh visitors are answered while every core trains (measured by ``bench/bench_classroom.py``).
    """
    return min(19, env_int(NICE_ENV, 10, low=0))


def default_workers() -> int:
    """``CHAOSMINING_WORKERS``, else the CPU count."""
    return env_int(WORKERS_ENV, max(1, os.cpu_count() or 1))


def describe_exit(code: int | None) -> str:
    """``-11`` -> ``"signal SIGSEGV"``; ``134`` -> ``"exit status 134"``."""
    if code is None:
        return "an unknown cause"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


@dataclass
class _Worker:
    process: Any
    conn: Connection
    stop_flag: Any
    handle: RunHandle | None = None
    tmp: Path | None = None
    stop_asked: float | None = None
    idle_since: float = field(default_factory=time.time)


class LocalBackend:
    """Worker processes on this machine. ``workers`` bounds the runs at once; ``threads`` is each run's
    torch thread count. By default the cores are shared evenly and a run takes the cores that idle workers
    leave (:func:`~chaosmining.runtime.lend_idle_cores`: a run alone gets them all); a ``threads`` given
    is kept as it is."""

    name = "local"

    def __init__(self, workers: int | None = None, threads: int | None = None, stop_grace: float = 30.0) -> None:
        self.capacity = workers if workers is not None else default_workers()
        self.threads = threads or max(1, (os.cpu_count() or 1) // self.capacity)
        self.lends_cores = threads is None
        self.stop_grace = stop_grace
        self.executor: Executor | None = None
        self._ctx = spawn_context()
        self._busy = self._ctx.Value("i", 0)  # running runs: a run alone takes the idle workers' cores
        self._workers: list[_Worker] = []
        self._tmp_root = Path(tempfile.mkdtemp(prefix="chaosmining-runs-"))

    # -- executor protocol -------------------------------------------------------------------
    def launch(self, handle: RunHandle) -> None:
        worker = next((w for w in self._workers if w.handle is None and w.process.is_alive()), None)
        if worker is None:
            worker = self._spawn()
        assert handle.spec is not None and self.executor is not None
        worker.handle = handle
        worker.stop_flag.value = 0
        worker.stop_asked = None
        worker.tmp = self._tmp_root / handle.id
        worker.conn.send(
            {
                "id": handle.id,
                "spec": handle.spec.to_dict(),
                "cache": str(self.executor.cache.root),
                "threads": self.threads,
                "tmp": str(worker.tmp),
                "modules": [handle.spec.entry.perform.__module__],
                "plugins": plugin_sources(),
            }
        )

    def stop(self, handle: RunHandle) -> None:
        for w in self._workers:
            if w.handle is handle:
                w.stop_flag.value = 1
                w.stop_asked = w.stop_asked or time.time()

    def poll(self, timeout: float) -> None:
        ex = self.executor
        assert ex is not None
        busy = [w for w in self._workers if w.handle is not None]
        if not self._workers:
            time.sleep(timeout)
            return
        waitables: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in self._workers]
        ready = set(wait(waitables, timeout))
        for w in list(self._workers):
            if w.conn in ready or (w.handle is not None and w.conn.poll()):
                self._drain(w)
        for w in list(self._workers):
            if w.process.sentinel in ready or not w.process.is_alive():
                self._drain(w)
                self._bury(w)
        now = time.time()
        for w in list(self._workers):
            if w.handle is not None and w.stop_asked is not None and now - w.stop_asked > self.stop_grace:
                self._end_worker(
                    w,
                    "cancelled",
                    f"Stopped by the user (it did not stop within {self.stop_grace:.0f} s, so its worker was ended).",
                )
            elif w.handle is None and now - w.idle_since > 600 and len(self._workers) > 1:
                self._retire(w)  # idle workers beyond the first go after ten minutes

    def shutdown(self, grace: float) -> None:
        for w in self._workers:
            if w.handle is not None:
                w.stop_flag.value = 1
        deadline = time.time() + grace
        while any(w.handle is not None for w in self._workers) and time.time() < deadline:
            self.poll(0.2)
        for w in list(self._workers):
            if w.handle is not None:
                self._end_worker(w, "interrupted", "The server stopped while this run was running.")
            else:
                self._retire(w)
        shutil.rmtree(self._tmp_root, ignore_errors=True)

    # -- workers -----------------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        flag = self._ctx.Value("b", 0, lock=False)
        process = self._ctx.Process(
            target=local_worker_main,
            args=(
                child,
                flag,
                os.getpid(),
                self._busy if self.lends_cores else None,
                self.capacity * self.threads,
                worker_nice(),
            ),
            name="chaosmining-worker",
            daemon=False,
        )  # not daemonic: a run may start its own data-loading processes (GPU runs); shutdown ends workers
        process.start()
        child.close()
        worker = _Worker(process, parent, flag)
        self._workers.append(worker)
        return worker

    def _drain(self, w: _Worker) -> None:
        ex = self.executor
        assert ex is not None
        while True:
            try:
                if not w.conn.poll():
                    return
                msg = w.conn.recv()
            except (EOFError, OSError):
                return
            kind, run_id = msg[0], msg[1]
            handle = w.handle
            if handle is None or handle.id != run_id:
                continue
            if kind == "event":
                ex._event(handle, msg[2])
            elif kind == "end":
                _, _, status, text, trace = msg
                w.handle = None
                w.idle_since = time.time()
                self._clean_tmp(w, w.process.pid)
                ex._finish(handle, status, text, trace)

    def _bury(self, w: _Worker) -> None:
        """A worker died: fail its run alone, clean up after it, forget it (the next launch spawns anew)."""
        w.process.join(5)  # reaped, so that its exit status is known
        code = w.process.exitcode
        self._workers.remove(w)
        handle = w.handle
        w.handle = None
        if handle is not None:
            self._uncount()
        self._clean_tmp(w, w.process.pid)
        with contextlib.suppress(OSError):
            w.conn.close()
        if handle is not None and self.executor is not None:
            if w.stop_asked is not None:
                self.executor._finish(handle, "cancelled", "Stopped by the user.")
            else:
                self.executor._finish(
                    handle,
                    "failed",
                    f"The worker process running this run died ({describe_exit(code)}); the other runs go on. "
                    "This usually means it ran out of memory or crashed in compiled code: try a smaller configuration.",
                )

    def _end_worker(self, w: _Worker, status: str, text: str) -> None:
        handle = w.handle
        w.handle = None
        if handle is not None:
            self._uncount()
        with contextlib.suppress(OSError):
            w.process.terminate()
        self._reap(w)
        self._clean_tmp(w, w.process.pid)
        if handle is not None and self.executor is not None:
            self.executor._finish(handle, status, text)

    def _retire(self, w: _Worker) -> None:
        with contextlib.suppress(OSError, ValueError):
            w.conn.send(None)
        self._reap(w)
        with contextlib.suppress(OSError):
            w.conn.close()

    def _uncount(self) -> None:
        """A worker ended mid-run cannot leave the running count itself."""
        with self._busy.get_lock():
            self._busy.value = max(0, self._busy.value - 1)

    def _reap(self, w: _Worker) -> None:
        """Wait for a worker told to end (killed after 5 s) and forget it."""
        w.process.join(5)
        if w.process.is_alive():
            w.process.kill()
            w.process.join(5)
        if w in self._workers:
            self._workers.remove(w)

    def _clean_tmp(self, w: _Worker, pid: int | None) -> None:
        if w.tmp is not None:
            shutil.rmtree(w.tmp, ignore_errors=True)
            w.tmp = None
        if pid is not None and self.executor is not None and not w.process.is_alive():
            self.executor.cache.sweep_process(pid)
