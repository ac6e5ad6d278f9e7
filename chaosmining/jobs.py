"""Background jobs that survive the app's reruns.

Streamlit reruns a page's script on every widget change, so long work (training, sweeps) runs in a
:class:`Job` on a worker thread owned by the process-wide :class:`JobManager`. The page polls the
job's progress events and its result lands in the cache. Jobs are keyed by the configuration hash:
asking for a key that is already running returns the running job instead of starting a second one.
A Stop request sets an event that the work checks between epochs.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ChaosMiningError, JobCancelled

__all__ = ["Job", "JobContext", "JobManager", "get_job_manager", "JobSnapshot"]


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of a job's state for rendering."""

    id: str
    key: str
    kind: str
    description: str
    status: str
    events: tuple[dict[str, Any], ...]
    error: str | None
    started: float
    finished: float | None
    payload: dict[str, Any]

    @property
    def done(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    def latest(self, field_name: str) -> Any:
        for ev in reversed(self.events):
            if field_name in ev:
                return ev[field_name]
        return None


class JobContext:
    """Handed to the work function: report progress, check for Stop."""

    def __init__(self, job: Job) -> None:
        self._job = job

    def report(self, **event: Any) -> None:
        self._job._add_event(event)

    def should_stop(self) -> bool:
        return self._job._stop.is_set()

    def check_cancelled(self) -> None:
        if self.should_stop():
            raise JobCancelled("Stopped by the user.")


@dataclass
class Job:
    key: str
    kind: str
    description: str
    fn: Callable[[JobContext], Any]
    payload: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    status: str = "queued"
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    _events: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _add_event(self, event: dict[str, Any]) -> None:
        event = {"t": time.time() - self.started, **event}
        with self._lock:
            self._events.append(event)

    def stop(self) -> None:
        """Ask the work to stop at its next check."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.status in ("done", "failed", "cancelled")

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            events = tuple(self._events)
        return JobSnapshot(
            self.id,
            self.key,
            self.kind,
            self.description,
            self.status,
            events,
            self.error,
            self.started,
            self.finished,
            dict(self.payload),
        )

    def _run(self) -> None:
        self.status = "running"
        try:
            self.result = self.fn(JobContext(self))
            self.status = "done"
        except JobCancelled as exc:
            self.error = str(exc)
            self.status = "cancelled"
        except ChaosMiningError as exc:
            self.error = str(exc)
            self.status = "failed"
        except Exception as exc:  # a bug: keep the trace for the log, show one line to the user
            self.error = f"Unexpected error: {type(exc).__name__}: {exc}"
            self.trace = traceback.format_exc()
            self.status = "failed"
        finally:
            self.finished = time.time()


class JobManager:
    """Process-wide registry of jobs, deduplicated by key."""

    def __init__(self, keep_finished: int = 50) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._keep = keep_finished

    def submit(
        self,
        key: str,
        fn: Callable[[JobContext], Any],
        *,
        kind: str,
        description: str = "",
        payload: dict[str, Any] | None = None,
    ) -> Job:
        """Start ``fn`` unless a job with ``key`` is queued or running; return that job."""
        with self._lock:
            current = self._jobs.get(key)
            if current is not None and current.status in ("queued", "running"):
                return current
            job = Job(key=key, kind=kind, description=description, fn=fn, payload=payload or {})
            self._jobs[key] = job
            self._prune()
        job._thread = threading.Thread(target=job._run, name=f"chaosmining-{kind}-{job.id}", daemon=True)
        job._thread.start()
        return job

    def get(self, key: str) -> Job | None:
        with self._lock:
            return self._jobs.get(key)

    def by_id(self, job_id: str) -> Job | None:
        with self._lock:
            return next((j for j in self._jobs.values() if j.id == job_id), None)

    def jobs(self, kind: str | None = None) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if kind is None or j.kind == kind]

    def forget(self, key: str) -> None:
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.status not in ("queued", "running"):
                del self._jobs[key]

    def _prune(self) -> None:
        finished = [j for j in self._jobs.values() if j.finished is not None]
        for j in sorted(finished, key=lambda j: j.finished or 0)[: max(0, len(finished) - self._keep)]:
            self._jobs.pop(j.key, None)


_MANAGER: JobManager | None = None
_MANAGER_LOCK = threading.Lock()


def get_job_manager() -> JobManager:
    """The process-wide manager (the Streamlit server process keeps it across reruns)."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = JobManager()
        return _MANAGER
