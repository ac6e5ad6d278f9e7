"""The executor: one bounded, fair queue in front of the backend that performs runs.

Every piece of long work (the pages' Train and Run buttons, what-if sweeps, feature-selection rounds,
evaluation tests, the CLI) is submitted here as a :class:`~chaosmining.runs.spec.RunSpec` and watched
through a :class:`RunHandle`:

* **Cache first.** A run whose result is in the cache is answered at once, without dispatching.
* **Once.** Identical specifications (same key) submitted while one is queued or running share it;
  every submitter sees the same progress and the same result.
* **Fair.** Queued runs are kept per session and dispatched round-robin across sessions, so one user's
  sweep does not starve a class. Each session may have at most ``CHAOSMINING_SESSION_QUEUE`` runs of its
  own waiting (children of a sweep do not count).
* **Bounded.** At most ``capacity`` runs at once (the backend's slots: ``CHAOSMINING_WORKERS`` worker
  processes locally). A run starts only while its estimated peak memory fits in what the budget
  (``CHAOSMINING_MEMORY_GB``) leaves; one that can never fit is refused at submission with a message
  naming the parameter to lower.
* **Journaled.** Each run's state is kept in ``<cache>/.runs/``; a restarted server marks runs that were
  queued or running in a process that no longer exists as ``interrupted``.

Orchestrations (a sweep, a feature selection) are driver-side functions that submit child runs and
wait for them (:meth:`Executor.orchestrate`); they compute nothing themselves, so they run on a thread
of the driver. Stopping an orchestration stops its children.

The backend does the work: :class:`~chaosmining.runs.local.LocalBackend` (worker processes) or
:class:`~chaosmining.runs.ray_backend.RayBackend` (a Ray cluster).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
import traceback
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import ChaosMiningError, JobCancelled
from .spec import WORKER_BASE_BYTES, RunRefused, RunSpec, env_int

__all__ = [
    "Executor",
    "RunHandle",
    "RunSnapshot",
    "RunContext",
    "Backend",
    "memory_budget_bytes",
    "MEMORY_ENV",
    "SESSION_QUEUE_ENV",
    "TERMINAL",
]

log = logging.getLogger(__name__)

MEMORY_ENV = "CHAOSMINING_MEMORY_GB"
SESSION_QUEUE_ENV = "CHAOSMINING_SESSION_QUEUE"
TERMINAL = ("done", "failed", "cancelled", "interrupted")
_JOURNAL_KEEP = 500


def _total_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def memory_budget_bytes() -> int:
    """Memory the runs of this executor may use together: ``CHAOSMINING_MEMORY_GB``, else 60 % of RAM
    less 1.5 GB for the server itself."""
    raw = os.environ.get(MEMORY_ENV)
    if raw:
        try:
            gb = float(raw)
        except ValueError:
            gb = -1.0
        if not gb > 0:
            raise ChaosMiningError(
                f"The '{MEMORY_ENV}' environment variable must be a number of GB > 0. Got {raw!r} instead."
            )
        return int(gb * 2**30)
    return max(2**30, int(0.6 * _total_memory_bytes()) - int(1.5 * 2**30))


@dataclass(frozen=True)
class RunSnapshot:
    """A consistent copy of a run's state for rendering (the same fields for leaf runs and orchestrations).

    ``position`` is the place in the queue (1 = next) and ``wait_seconds`` the estimated wait while
    ``status == "queued"``; ``version`` grows with every event, so a watcher redraws only when it changed.
    """

    id: str
    key: str
    kind: str
    description: str
    status: str
    events: tuple[dict[str, Any], ...]
    error: str | None
    submitted: float
    started: float | None
    finished: float | None
    payload: dict[str, Any]
    position: int | None
    wait_seconds: float | None
    cached: bool
    version: int

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def elapsed(self) -> float:
        """Seconds since the run started (0 while queued)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def latest(self, field_name: str) -> Any:
        for ev in reversed(self.events):
            if field_name in ev:
                return ev[field_name]
        return None


class RunHandle:
    """The driver-side state of one run, shared by every session that asked for it."""

    def __init__(
        self,
        executor: Executor,
        key: str,
        kind: str,
        description: str,
        *,
        spec: RunSpec | None = None,
        session: str = "",
        payload: dict[str, Any] | None = None,
        parent: RunHandle | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.key = key
        self.kind = kind
        self.description = description
        self.spec = spec
        self.session = session
        self.payload = dict(payload or {})
        self.parent = parent
        self.status = "queued"
        self.error: str | None = None
        self.trace: str | None = None
        self.cached = False
        self.submitted = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.version = 0
        self.memory = 0
        self.children: list[RunHandle] = []
        self.watchers: set[str] = {session}
        self.orchestration = False  # performed on a driver thread that submits child runs
        self._events: list[dict[str, Any]] = []
        self._executor = executor
        self._done = threading.Event()
        self._stop = threading.Event()
        self._result: Any = None
        self._has_result = False

    # -- watching -------------------------------------------------------------------------------
    def snapshot(self) -> RunSnapshot:
        ex = self._executor
        with ex._lock:
            position, wait = ex._queue_position(self) if self.status == "queued" else (None, None)
            return RunSnapshot(
                self.id,
                self.key,
                self.kind,
                self.description,
                self.status,
                tuple(self._events),
                self.error,
                self.submitted,
                self.started,
                self.finished,
                dict(self.payload),
                position,
                wait,
                self.cached,
                self.version,
            )

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends (or ``timeout`` seconds); returns whether it ended."""
        return self._done.wait(timeout)

    def stop(self, session: str | None = None) -> None:
        """Ask the run to stop: a queued run is dropped, a running one stops at its next check.

        With ``session``, that session stops watching; the run itself stops only when no other session
        (a classmate who asked for the same configuration, a sweep that needs the cell) still waits for it.
        """
        if session is not None:
            with self._executor._lock:
                self.watchers.discard(session)
                if self.watchers:
                    return
        self._executor._stop_run(self)

    def result(self, timeout: float | None = None) -> Any:
        """The finished result (loaded from the cache by the driver); raises the run's error otherwise."""
        if not self.wait(timeout):
            raise TimeoutError(f"The run {self.description!r} did not finish within {timeout} s.")
        if self.status == "cancelled":
            raise JobCancelled(self.error or "Stopped by the user.")
        if self.status != "done":
            raise ChaosMiningError(self.error or f"The run ended with status {self.status}.")
        if not self._has_result:
            if self.spec is None:
                raise ChaosMiningError("This run has no result.")
            self._result = _as_performed(self.spec.entry.load(self.spec, self._executor.cache), self)
            self._has_result = True
        return self._result

    # -- updates (executor only) ----------------------------------------------------------------
    def _add_event(self, event: dict[str, Any]) -> None:
        base = self.started or self.submitted
        with self._executor._lock:
            self._events.append({"t": time.time() - base, **event})
            self.version += 1


class RunContext:
    """Handed to an orchestration: report progress, check Stop, submit child runs and wait for them."""

    def __init__(self, handle: RunHandle, executor: Executor) -> None:
        self.handle = handle
        self.executor = executor

    def report(self, **event: Any) -> None:
        self.handle._add_event(event)

    def should_stop(self) -> bool:
        return self.handle._stop.is_set()

    def check_cancelled(self) -> None:
        if self.should_stop():
            raise JobCancelled("Stopped by the user.")

    def submit(self, spec: RunSpec, **payload: Any) -> RunHandle:
        """Submit a child run in this orchestration's session (it does not count towards the session cap)."""
        return self.executor.submit(spec, session=self.handle.session, parent=self.handle, payload=payload)


class Backend(Protocol):
    """What performs runs: a fixed number of slots, events and endings reported to the executor."""

    name: str
    capacity: int

    def launch(self, handle: RunHandle) -> None: ...

    def stop(self, handle: RunHandle) -> None: ...

    def poll(self, timeout: float) -> None: ...

    def shutdown(self, grace: float) -> None: ...


class Executor:
    """See the module docstring.

    Parameters
    ----------
    backend : performs the runs (its ``capacity`` bounds how many run at once).
    cache : the :class:`~chaosmining.cache.Cache` results land in (cache hits are answered from it).
    memory_budget : bytes the runs may use together (default :func:`memory_budget_bytes`).
    session_queue : queued runs allowed per session (default ``CHAOSMINING_SESSION_QUEUE`` or 4).
    on_finished : called on the driver with each handle that finished with status ``done`` (the results
        store records its scores there); errors in it are logged, never raised.
    """

    def __init__(
        self,
        backend: Any,
        cache: Any,
        *,
        memory_budget: int | None = None,
        session_queue: int | None = None,
        journal: bool = True,
        on_finished: Callable[[RunHandle], None] | None = None,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.memory_budget = memory_budget if memory_budget is not None else memory_budget_bytes()
        self.session_queue = session_queue if session_queue is not None else env_int(SESSION_QUEUE_ENV, 4)
        self.on_finished = on_finished
        backend.executor = self
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._active: dict[str, RunHandle] = {}  # key -> queued or running handle
        self._finished: OrderedDict[str, RunHandle] = OrderedDict()  # key -> last finished handle
        self._queues: OrderedDict[str, deque[RunHandle]] = OrderedDict()  # session -> queued leaf runs
        self._running: dict[str, RunHandle] = {}  # id -> running leaf run
        self._reserved = 0
        self._seconds: dict[str, tuple[float, int]] = {}  # kind -> (total seconds, runs) measured here
        self._closed = False
        self._journal_dir = Path(cache.root) / ".runs" if journal else None
        self._interrupted: dict[str, dict[str, Any]] = {}
        if self._journal_dir is not None:
            self._recover_journal()
        self._thread = threading.Thread(target=self._loop, name="chaosmining-executor", daemon=True)
        self._thread.start()

    # -- public API -----------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.backend.capacity

    def submit(
        self,
        spec: RunSpec,
        *,
        session: str = "",
        payload: dict[str, Any] | None = None,
        parent: RunHandle | None = None,
        description: str | None = None,
    ) -> RunHandle:
        """Queue ``spec`` (or join the identical run already queued or running; or answer from the cache).

        Raises :class:`RunRefused` when the run can never fit in the memory budget or the session has
        too many runs waiting.
        """
        with self._lock:
            if self._closed:
                raise RunRefused("The executor is shutting down; try again once the server is back.")
            current = self._active.get(spec.key)
            if current is not None:
                current.watchers.add(session)
                if parent is not None and current not in parent.children:
                    parent.children.append(current)
                return current
        handle = RunHandle(
            self,
            spec.key,
            spec.kind,
            description or spec.describe(),
            spec=spec,
            session=session,
            payload=payload,
            parent=parent,
        )
        entry = spec.entry
        if entry.composite and not entry.cached(spec, self.cache):  # a driver-side run of child runs
            return self.orchestrate(
                spec.key,
                lambda ctx: entry.perform(spec.config, spec.eval, cache=self.cache, device=spec.device, executor=ctx),
                kind=spec.kind,
                description=handle.description,
                session=session,
                payload=payload,
                spec=spec,
                parent=parent,
            )
        if entry.cached(spec, self.cache):
            handle.status, handle.cached = "done", True
            handle.started = handle.finished = time.time()
            handle._done.set()
            with self._lock:
                self._remember_finished(handle)
                if parent is not None:
                    parent.children.append(handle)
            return handle
        estimate = spec.memory()
        available = self.memory_budget - self.capacity * WORKER_BASE_BYTES
        if estimate.bytes > available:
            lower = f" ({estimate.lower})" if estimate.lower else ""
            raise RunRefused(
                f"This run needs about {estimate.gb:.1f} GB of memory, more than the {available / 2**30:.1f} GB that "
                f"the server's budget leaves for one run ({MEMORY_ENV}={self.memory_budget / 2**30:.1f}). "
                f"Lower the '{estimate.parameter}' parameter{lower} and try again."
            )
        handle.memory = estimate.bytes
        with self._lock:
            current = self._active.get(spec.key)  # submitted by another session meanwhile
            if current is not None:
                current.watchers.add(session)
                return current
            if parent is None and session:
                waiting = sum(1 for h in self._queues.get(session, ()) if h.parent is None)
                if waiting >= self.session_queue:
                    raise RunRefused(
                        f"This session already has {waiting} runs waiting in the queue (at most "
                        f"{self.session_queue}, {SESSION_QUEUE_ENV}). Wait for one to start or stop one, then try again."
                    )
            self._active[spec.key] = handle
            self._queues.setdefault(session, deque()).append(handle)
            if parent is not None:
                parent.children.append(handle)
            old = self._interrupted.pop(spec.key, None)
            if old is not None and self._journal_dir is not None:
                (self._journal_dir / f"{old['id']}.json").unlink(missing_ok=True)
            self._journal(handle)
            self._wake.notify_all()
        return handle

    def orchestrate(
        self,
        key: str,
        fn: Callable[[RunContext], Any],
        *,
        kind: str,
        description: str,
        session: str = "",
        payload: dict[str, Any] | None = None,
        spec: RunSpec | None = None,
        parent: RunHandle | None = None,
    ) -> RunHandle:
        """Run ``fn(ctx)`` on a driver thread: it submits child runs through ``ctx`` and combines them.

        Deduplicated by ``key`` like :meth:`submit`; its handle's result is ``fn``'s return value. ``spec``
        is set for a composite run kind (a feature selection), ``parent`` for an orchestration inside another.
        """
        with self._lock:
            if self._closed:
                raise RunRefused("The executor is shutting down; try again once the server is back.")
            current = self._active.get(key)
            if current is not None:
                current.watchers.add(session)
                if parent is not None and current not in parent.children:
                    parent.children.append(current)
                return current
            handle = RunHandle(self, key, kind, description, spec=spec, session=session, payload=payload, parent=parent)
            handle.orchestration = True
            handle.status, handle.started = "running", time.time()
            self._active[key] = handle
            if parent is not None:
                parent.children.append(handle)
            self._journal(handle)

        def body() -> None:
            status, error = "done", None
            try:
                handle._result = fn(RunContext(handle, self))
                handle._has_result = True
            except JobCancelled as exc:
                status, error = "cancelled", str(exc)
            except ChaosMiningError as exc:
                status, error = "failed", str(exc)
            except Exception as exc:  # a bug: one line for the user, the trace for the log
                status, error = "failed", f"Unexpected error: {type(exc).__name__}: {exc}"
                handle.trace = traceback.format_exc()
                log.error("orchestration %s failed:\n%s", key, handle.trace)
            finally:
                if status != "done":
                    for child in list(handle.children):
                        if child.parent is handle:
                            child.stop()
            self._finish(handle, status, error)

        threading.Thread(target=body, name=f"chaosmining-{kind}-{handle.id}", daemon=True).start()
        return handle

    def get(self, key: str) -> RunHandle | None:
        """The queued or running run of ``key``, else the last finished one (``None`` if unknown)."""
        with self._lock:
            return self._active.get(key) or self._finished.get(key)

    def active(self) -> list[RunHandle]:
        with self._lock:
            return list(self._active.values())

    def interrupted(self, key: str) -> dict[str, Any] | None:
        """The journal record of a run of ``key`` that a previous server process left unfinished."""
        with self._lock:
            return self._interrupted.get(key)

    def wait_all(self, handles: Iterable[RunHandle], should_stop: Callable[[], bool] | None = None) -> None:
        """Wait until every handle ends; stop them all (and raise :class:`JobCancelled`) if ``should_stop``
        turns true, also when the stop ended them first."""
        handles = list(handles)
        while True:
            if should_stop is not None and should_stop():
                for h in handles:
                    h.stop()
                raise JobCancelled("Stopped by the user.")
            pending = [h for h in handles if not h.done]
            if not pending:
                return
            pending[0].wait(0.25)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "backend": self.backend.name,
                "capacity": self.capacity,
                "running": len(self._running),
                "queued": sum(len(q) for q in self._queues.values()),
                "sessions_waiting": sum(1 for q in self._queues.values() if q),
                "memory_reserved_gb": self._reserved / 2**30,
                "memory_budget_gb": self.memory_budget / 2**30,
            }

    def shutdown(self, grace: float = 10.0) -> None:
        """Stop everything: queued runs are dropped, running ones asked to stop, then ended after ``grace`` s.

        Nothing half-written stays in the cache (entries are renamed into place only when complete, and a
        stopped worker's temporary folders are removed). Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            queued = [h for q in self._queues.values() for h in q]
            self._queues.clear()
            orchestrations = [h for h in self._active.values() if h.orchestration]
        for h in queued:
            self._finish(h, "interrupted", "The server stopped before this run started.")
        for h in orchestrations:
            h._stop.set()
        for h in list(self._running.values()):
            h._stop.set()
        with self._lock:
            self._wake.notify_all()
        self._thread.join(timeout=5.0)  # the scheduler loop no longer polls the backend
        self.backend.shutdown(grace)
        for h in list(self._running.values()):
            self._finish(h, "interrupted", "The server stopped while this run was running.")
        for h in orchestrations:
            h.wait(2.0)

    # -- backend callbacks ----------------------------------------------------------------------
    def _event(self, handle: RunHandle, event: dict[str, Any]) -> None:
        handle._add_event(event)
        parent = handle.parent
        if parent is not None and "child_event" not in event:
            parent.version += 1

    def _finish(self, handle: RunHandle, status: str, error: str | None = None, trace: str | None = None) -> None:
        with self._lock:
            if handle.done:
                return
            if self._closed and status == "cancelled":  # stopped by the shutdown, not by a user
                status, error = "interrupted", "The server stopped while this run was running."
            handle.status, handle.error, handle.trace = status, error, trace
            handle.finished = time.time()
            handle.version += 1
            if self._running.pop(handle.id, None) is not None:
                self._reserved -= handle.memory
                if status == "done" and handle.started is not None:
                    total, n = self._seconds.get(handle.kind, (0.0, 0))
                    self._seconds[handle.kind] = (total + handle.finished - handle.started, n + 1)
            q = self._queues.get(handle.session)
            if q is not None and handle in q:
                q.remove(handle)
            if self._active.get(handle.key) is handle:
                del self._active[handle.key]
            self._remember_finished(handle)
            self._journal(handle)
            if handle.parent is not None:
                handle.parent.version += 1
            self._wake.notify_all()
        if status == "done" and self.on_finished is not None:
            try:
                self.on_finished(handle)
            except Exception:  # the store must never fail a run
                log.exception("on_finished hook failed for %s", handle.key)
        handle._done.set()

    def _started(self, handle: RunHandle) -> None:
        with self._lock:
            handle.status, handle.started = "running", time.time()
            handle.version += 1
            self._journal(handle)

    # -- scheduling -----------------------------------------------------------------------------
    def _order(self) -> list[RunHandle]:
        """Queued leaf runs in the order round-robin would dispatch them (lock held)."""
        queues = [list(q) for q in self._queues.values() if q]
        out: list[RunHandle] = []
        i = 0
        while queues:
            q = queues[i % len(queues)]
            out.append(q.pop(0))
            if not q:
                queues.pop(i % len(queues))
            else:
                i += 1
        return out

    def _estimated_seconds(self, handle: RunHandle) -> float:
        total, n = self._seconds.get(handle.kind, (0.0, 0))
        if n:
            return total / n
        spec = handle.spec
        return float(spec.entry.seconds(spec.config, spec.eval)) if spec is not None else 60.0

    def _queue_position(self, handle: RunHandle) -> tuple[int | None, float | None]:
        order = self._order()
        if handle not in order:
            return None, None
        pos = order.index(handle)
        now = time.time()
        busy = sorted(max(0.0, self._estimated_seconds(h) - (now - (h.started or now))) for h in self._running.values())
        slots = busy + [0.0] * max(0, self.capacity - len(busy))
        slots = sorted(slots)[: self.capacity] or [0.0]
        for h in order[:pos]:  # simulate: each run ahead takes the earliest free slot
            slots[0] += self._estimated_seconds(h)
            slots.sort()
        return pos + 1, slots[0]

    def _next_admissible(self) -> RunHandle | None:
        """The first run in round-robin order that fits in memory; rotates the sessions (lock held)."""
        free = self.memory_budget - self.capacity * WORKER_BASE_BYTES - self._reserved
        sessions = [s for s, q in self._queues.items() if q]
        for s in sessions:
            head = self._queues[s][0]
            if head.memory <= free or not self._running:
                self._queues[s].popleft()
                self._queues.move_to_end(s)  # round-robin: this session goes to the back
                if not self._queues[s]:
                    del self._queues[s]
                return head
        return None

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                if self._closed or len(self._running) >= self.capacity:
                    return
                handle = self._next_admissible()
                if handle is None:
                    return
                self._running[handle.id] = handle
                self._reserved += handle.memory
            self._started(handle)
            try:
                self.backend.launch(handle)
            except Exception as exc:  # the backend could not start it: fail this run alone
                log.exception("launch failed for %s", handle.key)
                self._finish(handle, "failed", f"The run could not be started: {type(exc).__name__}: {exc}")

    def _stop_run(self, handle: RunHandle) -> None:
        handle._stop.set()
        if handle.orchestration:  # its thread sees the flag and stops its children
            for child in list(handle.children):
                if child.parent is handle:
                    child.stop()
            return
        with self._lock:
            queued = handle.status == "queued"
        if queued:
            self._finish(handle, "cancelled", "Stopped by the user before it started.")
        elif handle.status == "running":
            self.backend.stop(handle)

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
            try:
                self._dispatch()
                self.backend.poll(0.2)
            except Exception:  # keep scheduling whatever one poll did
                log.exception("executor loop")
                time.sleep(0.5)

    def _remember_finished(self, handle: RunHandle) -> None:
        self._finished[handle.key] = handle
        self._finished.move_to_end(handle.key)
        while len(self._finished) > 200:
            self._finished.popitem(last=False)

    # -- journal --------------------------------------------------------------------------------
    def _journal(self, handle: RunHandle) -> None:
        if self._journal_dir is None or handle.spec is None or handle.cached:
            return
        record = {
            "id": handle.id,
            "key": handle.key,
            "kind": handle.kind,
            "description": handle.description,
            "status": handle.status,
            "error": handle.error,
            "pid": os.getpid(),
            "session": handle.session,
            "submitted": handle.submitted,
            "started": handle.started,
            "finished": handle.finished,
            "spec": handle.spec.to_dict(),
        }
        path = self._journal_dir / f"{handle.id}.json"
        try:
            self._journal_dir.mkdir(parents=True, exist_ok=True)
            if handle.status == "done" or handle.status == "cancelled":
                path.unlink(missing_ok=True)  # nothing to tell a restarted server about
                return
            tmp = path.with_suffix(f".{os.getpid()}.part")
            tmp.write_text(json.dumps(record, default=str))
            os.replace(tmp, path)
        except OSError:
            log.warning("could not write the run journal at %s", path)

    def _recover_journal(self) -> None:
        """Mark runs left queued or running by a process that is gone as interrupted (keep the newest few)."""
        assert self._journal_dir is not None
        if not self._journal_dir.is_dir():
            return
        records = []
        for p in self._journal_dir.glob("*.json"):
            try:
                rec = json.loads(p.read_text())
            except (OSError, ValueError):
                p.unlink(missing_ok=True)
                continue
            if rec.get("status") in ("queued", "running") and not _alive(int(rec.get("pid", 0))):
                rec["status"] = "interrupted"
                rec["error"] = "The server stopped while this run was " + (
                    "waiting." if rec.get("started") is None else "running."
                )
                with contextlib.suppress(OSError):
                    tmp = p.with_suffix(f".{os.getpid()}.part")
                    tmp.write_text(json.dumps(rec))
                    os.replace(tmp, p)
            records.append((rec.get("submitted") or 0, p, rec))
        records.sort(key=lambda r: r[0])
        for _, p, _ in records[: max(0, len(records) - _JOURNAL_KEEP)]:
            p.unlink(missing_ok=True)
        for _, _, rec in records[-_JOURNAL_KEEP:]:
            if rec.get("status") == "interrupted":
                self._interrupted[rec["key"]] = rec


def _as_performed(result: Any, handle: RunHandle) -> Any:
    """The driver reads every result back from the cache; a run it performed (not a cache hit) says so,
    with the run's own duration, like a result computed in this process."""
    if handle.cached or not dataclasses.is_dataclass(result):
        return result
    names = {f.name for f in dataclasses.fields(result)}
    changes: dict[str, Any] = {}
    if "cached" in names:
        changes["cached"] = False
    if "seconds" in names and handle.started is not None and handle.finished is not None:
        changes["seconds"] = handle.finished - handle.started
    return dataclasses.replace(result, **changes) if changes else result


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
