"""The Ray backend: runs as Ray tasks on a cluster (or on a local Ray instance), results shipped back.

``CHAOSMINING_EXECUTOR=ray`` (the app) or ``--executor ray`` (the CLI) selects it. With ``RAY_ADDRESS``
set it joins that cluster; without it, it starts a small, quiet Ray instance on this machine (no
dashboard, its files under the system temporary folder; Ray on Linux listens on the machine's address
whatever it is asked, and its token authentication, on by default for a local instance, guards it). A process that already initialised
Ray keeps its instance.

Each run is one Ray task that calls :func:`chaosmining.runs.worker.perform`, exactly what a local worker
process calls. The task asks the cluster for what the run needs: ``num_gpus=1`` when the run trains on
CUDA (its device is ``cuda``, or ``auto`` on a cluster with GPUs), else ``num_cpus`` = its torch threads.

No shared file system is needed:

* **Progress and Stop** go through one small actor, the run board: a thread in the task hands it the
  run's events in batches (at most five a second) and reads the run's stop flag from the answer (at least
  once a second); the driver drains the board on every poll. Stop sets the flag; a run that ignores it
  for ``stop_grace`` seconds is cancelled with ``ray.cancel(force=True)``.
* **Results** are written into a fresh, temporary cache on the task's node; the task returns every
  entry it wrote, each packed as a tar archive, and the driver installs them into its own cache
  atomically (:meth:`chaosmining.cache.Cache.import_entry`, checksums verified). Entries of a stopped
  run that were complete (finished rounds, cells) come back too.
* A run that needs an entry only the driver's cache has (a trained model cached earlier, when a run asks
  for new attributions of it) does not see it: the task trains it again in its own cache, and the copy is
  shipped back (and skipped, being present). Results themselves are answered from the driver's cache
  before anything is dispatched.

A task whose worker dies (a crash in compiled code, an out-of-memory kill, a lost node) fails its run
alone with a one-line message; tasks are never retried.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from ..cache import Cache
from ..errors import CacheCorruptError, ChaosMiningError
from ..plugins import plugin_sources
from ..runtime import DEVICE_ENV
from .executor import Executor, RunHandle, _alive
from .local import WORKERS_ENV
from .spec import env_int
from .worker import perform

__all__ = ["RayBackend", "init_ray", "RAY_ADDRESS_ENV", "EVENT_INTERVAL", "STOP_INTERVAL"]

log = logging.getLogger(__name__)

RAY_ADDRESS_ENV = "RAY_ADDRESS"
EVENT_INTERVAL = 0.2  # a task hands its events to the board at most this often (s)
STOP_INTERVAL = 1.0  # and asks for its stop flag at least this often (s)
_LOCAL_OBJECT_STORE = 512 * 2**20  # the local instance's shared-memory store (results are small archives)


def _package_parent() -> str:
    return str(Path(__file__).resolve().parent.parent.parent)


def init_ray(num_cpus: int | None = None, *, num_gpus: int | None = None) -> bool:
    """Connect this process to Ray; returns whether this call initialised it (``False``: it already was).

    With ``RAY_ADDRESS`` set, join that cluster (this checkout of ``chaosmining`` is shipped to its
    workers, so every node runs the driver's code). Without it, start a local instance with ``num_cpus``
    CPUs (default: all), without the dashboard, quiet, under the temporary folder; its
    workers get the driver's ``sys.path`` (as spawned local workers do), so kinds registered in the
    driver's own modules can be performed. (Ray on Linux ignores a loopback ``_node_ip_address``: its
    servers listen on the machine's address, behind the token it generates for a local instance.)
    """
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    address = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    if address:
        package = str(Path(__file__).resolve().parent.parent)
        ray.init(address=address, runtime_env={"py_modules": [package]}, **quiet)
        return True
    paths = [str(Path(p).resolve()) for p in sys.path if p and os.path.isdir(p)]
    paths = list(dict.fromkeys([_package_parent(), *paths]))
    ray.init(
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=False,
        object_store_memory=_LOCAL_OBJECT_STORE,
        _temp_dir=os.path.join(tempfile.gettempdir(), f"chaosmining-ray-{os.getuid()}"),
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}},
        **quiet,
    )
    return True


# -- the run board: events up, stop flags down ------------------------------------------------------
@ray.remote(num_cpus=0, max_restarts=-1)
class _RunBoard:
    """Holds each running task's undelivered events and stop flag (one per backend, tiny calls)."""

    def __init__(self) -> None:
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._stop: set[str] = set()
        self._started: set[str] = set()

    def push(self, run_id: str, events: list[dict[str, Any]]) -> bool:
        """A task's batch of events; the answer is whether it should stop."""
        self._started.add(run_id)
        if events:
            self._events.setdefault(run_id, []).extend(events)
        return run_id in self._stop

    def stop(self, run_id: str) -> None:
        self._stop.add(run_id)

    def drain(self) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
        """The events since the last drain, per run, and the runs that have started on a worker."""
        events, self._events = self._events, {}
        return events, list(self._started)

    def forget(self, run_id: str) -> None:
        self._events.pop(run_id, None)
        self._stop.discard(run_id)
        self._started.discard(run_id)


class _Courier:
    """In the task: batches ``report`` events to the board and keeps the stop flag fresh, on a thread,
    so neither ``report`` nor ``should_stop`` ever waits for the network."""

    def __init__(self, board: Any, run_id: str) -> None:
        self._board, self._id = board, run_id
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = False
        self._done = threading.Event()
        self._push()  # the run has started; a run stopped before it started stops here
        self._thread = threading.Thread(target=self._loop, name="chaosmining-courier", daemon=True)
        self._thread.start()

    def report(self, **event: Any) -> None:
        with self._lock:
            self._buffer.append(event)

    def should_stop(self) -> bool:
        return self._stop

    def _push(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        try:
            self._stop = bool(ray.get(self._board.push.remote(self._id, batch), timeout=30)) or self._stop
        except Exception:  # the board is restarting or unreachable: keep the events for the next try
            with self._lock:
                self._buffer[:0] = batch

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._done.wait(EVENT_INTERVAL):
            with self._lock:
                pending = bool(self._buffer)
            if pending or time.monotonic() - last >= STOP_INTERVAL:
                self._push()
                last = time.monotonic()

    def close(self) -> None:
        """Deliver what is left (before the task returns, so the driver sees every event first)."""
        self._done.set()
        self._thread.join()
        self._push()


def _pack(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in sorted(folder.rglob("*")):
            tar.add(f, arcname=str(f.relative_to(folder)), recursive=False)
    return buf.getvalue()


def _entries(root: Path) -> list[tuple[str, str, bytes]]:
    """Every complete entry (a folder with its manifest) in the cache at ``root``, packed."""
    out = []
    if root.is_dir():
        for kind_dir in sorted(root.iterdir()):
            if not kind_dir.is_dir() or kind_dir.name.startswith("."):
                continue
            for entry in sorted(kind_dir.iterdir()):
                if entry.is_dir() and not entry.name.startswith(".") and (entry / "manifest.json").is_file():
                    out.append((kind_dir.name, entry.name, _pack(entry)))
    return out


_ROOT_PREFIX = "chaosmining-ray-run-"


def _sweep_dead_roots(parent: Path) -> None:
    """Remove the run folders on this node of Ray workers that died (a crash skips their clean-up)."""
    for p in parent.glob(f"{_ROOT_PREFIX}p*-*"):
        pid = p.name[len(_ROOT_PREFIX) + 1 :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


@ray.remote(max_retries=0)
def _run_task(message: dict[str, Any], board: Any) -> tuple[str, str | None, str | None, list[tuple[str, str, bytes]]]:
    """One run on a Ray worker: perform it in a fresh cache, return its status and the entries it wrote."""
    saved_tmpdir = os.environ.get("TMPDIR")
    parent = Path(tempfile.gettempdir())
    _sweep_dead_roots(parent)
    root = Path(tempfile.mkdtemp(prefix=f"{_ROOT_PREFIX}p{os.getpid()}-", dir=parent))
    try:
        inputs = message.pop("inputs", ())
        message = dict(message, cache=str(root / "cache"), tmp=str(root / "tmp"))
        given = set()
        for kind, key, data in inputs:
            Cache(root / "cache").import_entry(kind, key, data)
            given.add((kind, key))
        courier = _Courier(board, message["id"])
        try:
            status, text, trace = perform(message, courier.report, courier.should_stop)
        finally:
            courier.close()
        return status, text, trace, [e for e in _entries(root / "cache") if (e[0], e[1]) not in given]
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if saved_tmpdir is None:  # perform points TMPDIR at the run's folder, now gone
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_tmpdir


# -- the driver side ------------------------------------------------------------------------------
@dataclass
class _Run:
    handle: RunHandle
    ref: Any
    started: bool = False
    stop_asked: float | None = None


def _died(exc: BaseException) -> str:
    what = {
        "OutOfMemoryError": "it ran out of memory",
        "NodeDiedError": "its node was lost",
        "ObjectLostError": "its result was lost with its node",
        "ObjectFetchTimedOutError": "its result could not be fetched from its node",
    }.get(type(exc).__name__, "it crashed or its node was lost")
    return (
        f"The Ray worker running this run died ({type(exc).__name__}: {what}); the other runs go on. "
        "This usually means it ran out of memory or crashed in compiled code: try a smaller configuration."
    )


class RayBackend:
    """Runs as Ray tasks. ``workers`` bounds the runs at once (default ``CHAOSMINING_WORKERS``, else the
    cluster's CPU count); ``threads`` is each CPU run's torch thread count and CPU request (default: the
    cluster's CPUs shared evenly, at most one node's)."""

    name = "ray"

    def __init__(self, workers: int | None = None, threads: int | None = None, stop_grace: float = 30.0) -> None:
        self.owns_ray = init_ray()
        resources = ray.cluster_resources()
        cpus = max(1, int(resources.get("CPU", 1)))
        self.gpus = int(resources.get("GPU", 0))
        self.capacity = workers if workers is not None else env_int(WORKERS_ENV, cpus)
        node_cpus = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [cpus]
        self.threads = threads or max(1, min(max(node_cpus), cpus // self.capacity))
        self.stop_grace = stop_grace
        self.executor: Executor | None = None
        self._board = _RunBoard.remote()
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    # -- executor protocol -------------------------------------------------------------------
    def launch(self, handle: RunHandle) -> None:
        spec = handle.spec
        assert spec is not None
        device = spec.device
        if device == "auto":  # resolved here, for the cluster: CUDA when it has GPUs (CHAOSMINING_DEVICE wins)
            device = os.environ.get(DEVICE_ENV) or ("cuda" if self.gpus > 0 else "cpu")
        wants_gpu = spec.entry.uses_device and device.startswith("cuda")
        if wants_gpu and self.gpus == 0:
            raise ChaosMiningError(f"This run asks for device {spec.device!r} but the Ray cluster has no GPU.")
        d = spec.to_dict()
        if wants_gpu:
            d["device"] = "cuda"  # Ray hands the task one GPU, visible to it as cuda:0
            options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1}
        else:
            if spec.entry.uses_device:
                d["device"] = "cpu"
            options = {"num_cpus": self.threads}
        cache = self.executor.cache if self.executor is not None else None
        inputs = []  # what the run reads from the driver's cache travels with it (no shared file system)
        for kind, key in spec.entry.input_entries(spec):
            path = cache.path(kind, key) if cache is not None else None
            if path is not None and (path / "manifest.json").is_file():
                inputs.append((kind, key, _pack(path)))
        message = {
            "id": handle.id,
            "spec": d,
            "threads": self.threads,
            "modules": [spec.entry.perform.__module__],
            "plugins": plugin_sources(),
            "inputs": inputs,
        }
        ref = _run_task.options(name=f"chaosmining-{spec.kind}-{handle.id}", **options).remote(message, self._board)
        with self._lock:
            self._runs[handle.id] = _Run(handle, ref)

    def stop(self, handle: RunHandle) -> None:
        with self._lock:
            run = self._runs.get(handle.id)
        if run is None:
            return
        run.stop_asked = run.stop_asked or time.time()
        self._board.stop.remote(handle.id)
        if not run.started:  # still waiting for a worker: drop it from Ray's queue
            with contextlib.suppress(Exception):
                ray.cancel(run.ref)

    def poll(self, timeout: float) -> None:
        with self._lock:
            runs = list(self._runs.values())
        if not runs:
            time.sleep(timeout)
            return
        refs = [r.ref for r in runs]
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout, fetch_local=False)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
        self._drain()
        done = set(ready)
        for run in runs:
            if run.ref in done:
                self._complete(run)
        now = time.time()
        for run in runs:
            if run.ref not in done and run.stop_asked is not None and now - run.stop_asked > self.stop_grace:
                with contextlib.suppress(Exception):
                    ray.cancel(run.ref, force=True)
                self._end(
                    run,
                    "cancelled",
                    f"Stopped by the user (it did not stop within {self.stop_grace:.0f} s, so its task was cancelled).",
                )

    def shutdown(self, grace: float) -> None:
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self.stop(run.handle)
        deadline = time.time() + grace
        while self._runs and time.time() < deadline:
            self.poll(0.2)
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            with contextlib.suppress(Exception):
                ray.cancel(run.ref, force=True)
            self._end(run, "cancelled", "The server shut down while this run was running.")
        with contextlib.suppress(Exception):
            ray.kill(self._board)
        if self.owns_ray:
            ray.shutdown()

    # -- internals ---------------------------------------------------------------------------
    def _drain(self) -> None:
        ex = self.executor
        assert ex is not None
        try:
            events, started = ray.get(self._board.drain.remote(), timeout=30)
        except Exception:  # the board is restarting: its events are lost, the runs go on
            log.warning("could not read the Ray run board", exc_info=True)
            return
        with self._lock:
            for run_id in started:
                run = self._runs.get(run_id)
                if run is not None:
                    run.started = True
            targets = {run_id: self._runs.get(run_id) for run_id in events}
        for run_id, evs in events.items():
            run = targets[run_id]
            if run is not None:
                for ev in evs:
                    ex._event(run.handle, ev)

    def _complete(self, run: _Run) -> None:
        ex = self.executor
        assert ex is not None
        entries: list[tuple[str, str, bytes]] = []
        try:
            status, text, trace, entries = ray.get(run.ref)
        except ray.exceptions.TaskCancelledError:
            status, text, trace = "cancelled", "Stopped by the user.", None
        except ray.exceptions.RayError as exc:
            if run.stop_asked is not None:
                status, text, trace = "cancelled", "Stopped by the user.", None
            else:
                status, text, trace = "failed", _died(exc), None
                log.error("run %s failed on Ray: %s", run.handle.key, exc)
        except Exception as exc:  # the result could not be read back (unexpected): this run alone fails
            status, text, trace = (
                "failed",
                f"The run's result could not be read back: {type(exc).__name__}: {exc}",
                None,
            )
            log.exception("run %s: reading its Ray result failed", run.handle.key)
        for kind, key, data in entries:
            try:
                ex.cache.import_entry(kind, key, data)
            except (CacheCorruptError, OSError, ValueError) as exc:
                log.error("could not install %s/%s from a Ray worker: %s", kind, key, exc)
                if status == "done":
                    status, text = "failed", f"The run's result could not be installed in the cache: {exc}"
        self._end(run, status, text, trace)

    def _end(self, run: _Run, status: str, text: str | None, trace: str | None = None) -> None:
        with self._lock:
            if self._runs.pop(run.handle.id, None) is None:
                return
        self._board.forget.remote(run.handle.id)
        if self.executor is not None:
            self.executor._finish(run.handle, status, text, trace)
