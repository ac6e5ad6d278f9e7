"""Where the work runs: device choice and a deliberate torch thread count."""

from __future__ import annotations

import ctypes
import multiprocessing.context as mp_context
import os
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .validation import param_error

__all__ = [
    "configure_threads",
    "resolve_device",
    "spawn_context",
    "loader_context",
    "lend_idle_cores",
    "lend_cores_from",
    "counted",
    "native_bf16",
    "synchronize",
    "tune_allocator",
    "DeviceInfo",
    "device_info",
    "THREADS_ENV",
    "DEVICE_ENV",
]

THREADS_ENV = "CHAOSMINING_THREADS"
MALLOC_ENV = "CHAOSMINING_MALLOC"
DEVICE_ENV = "CHAOSMINING_DEVICE"
_configured: int | None = None


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count once and return it.

    Default threading on a busy 2-core machine was measured 4x slower than one thread, so the default
    is 1 (override with ``CHAOSMINING_THREADS`` or ``n``). Work that scales, such as the batched
    training of many models, uses processes instead (see :mod:`chaosmining.sweep`).
    """
    global _configured
    if n is None:
        env = os.environ.get(THREADS_ENV)
        n = int(env) if env else 1
    if n < 1:
        raise param_error("threads", "configure_threads", "an int >= 1", n)
    if _configured != n:
        torch.set_num_threads(n)
        _configured = n
    tune_allocator()
    return n


_allocator_tuned: bool | None = None
_MMAP_THRESHOLD_BYTES = 32 << 20
_TRIM_THRESHOLD_BYTES = 128 << 20


def tune_allocator() -> bool:
    """Keep glibc from handing every large tensor buffer back to the OS (once per process; True if done).

    The MLP trainer allocates and frees the same few megabyte-sized activations every epoch. glibc
    serves blocks that large with ``mmap`` and unmaps them on free, so every epoch pays fresh page
    faults: measured 1.5x slower per epoch on the 2-core machine (26-28 ms against 17-18.5 ms at the
    paper's default). Raising the mmap and trim thresholds (32 MB, 128 MB) keeps those blocks in the
    heap for reuse. A no-op off glibc, or with ``CHAOSMINING_MALLOC=default``.
    """
    global _allocator_tuned
    if _allocator_tuned is not None:
        return _allocator_tuned
    _allocator_tuned = False
    if os.environ.get(MALLOC_ENV, "").lower() == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
        ok = libc.mallopt(m_mmap_threshold, _MMAP_THRESHOLD_BYTES) == 1
        ok = libc.mallopt(m_trim_threshold, _TRIM_THRESHOLD_BYTES) == 1 and ok
    except (OSError, AttributeError):
        return False
    _allocator_tuned = ok
    return ok


def resolve_device(device: str | None = "auto") -> torch.device:
    """Return the torch device for ``device``: 'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'.

    ``CHAOSMINING_DEVICE`` overrides 'auto'.
    """
    if device in (None, "auto"):
        device = os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise param_error("device", "resolve_device", "'auto', 'cpu', 'cuda' or 'cuda:N'", device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise param_error("device", "resolve_device", "'auto' or 'cpu' on a machine without CUDA", device)
    return torch.device(device)


def synchronize(device: torch.device | str) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU): before reading a clock after GPU work."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively (CPU: AVX512-BF16 or AMX; CUDA: Ampere or later).

    Without it torch emulates bfloat16 products, slower than float32.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    cpu = getattr(torch, "cpu", None)
    return any(bool(getattr(cpu, f, lambda: False)()) for f in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


@dataclass(frozen=True)
class DeviceInfo:
    device: str
    cuda_available: bool
    gpu_name: str | None
    threads: int
    torch_version: str
    cpu_trainer: str = ""  # the symbolic MLP's CPU training step: compiled, or why PyTorch's operators


def device_info() -> DeviceInfo:
    from . import native  # late: builds the kernels on the first call of a fresh machine (a few seconds)

    cuda = torch.cuda.is_available()
    st = native.status()
    return DeviceInfo(
        device=str(resolve_device("auto")),
        cuda_available=cuda,
        gpu_name=torch.cuda.get_device_name(0) if cuda else None,
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        cpu_trainer=f"compiled MLP step and Adam ({st.detail})" if st.available else f"PyTorch operators: {st.detail}",
    )


_main_lock = threading.Lock()


@contextmanager
def _bare_main() -> Iterator[None]:
    """Hide the parent's ``__main__`` while a spawned process is prepared.

    A spawned child re-runs the parent's main script unless told otherwise. Under Streamlit that
    script is the page (or an ``AppTest`` temp file that cannot run outside the app), so workers would
    re-render the page or die on start-up. Library workers only need library functions, so they start
    from an empty ``__main__`` instead.
    """
    with _main_lock:
        real = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if real is not None:
                sys.modules["__main__"] = real


class _LibrarySpawnProcess(mp_context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj):  # noqa: N802 - multiprocessing's name
        with _bare_main():
            return mp_context.SpawnProcess._Popen(process_obj)


class _LibrarySpawnContext(mp_context.SpawnContext):
    Process = _LibrarySpawnProcess


def spawn_context() -> mp_context.SpawnContext:
    """The ``spawn`` multiprocessing context for library worker pools (see :func:`_bare_main`)."""
    return _LibrarySpawnContext()


def loader_context() -> mp_context.BaseContext | None:
    """The start method of data-loading workers (``torch.utils.data.DataLoader``): ``fork`` where the
    platform has it, else the default.

    Forked workers share the parent's arrays and memory-mapped clips without copying them and may run
    closures. Python 3.14 made ``forkserver`` the default on Linux, which would pickle a whole split into
    every worker (and cannot pickle a closure). The workers only compose inputs on the CPU: they never
    touch CUDA, so forking a process that has initialised it is safe.
    """
    import multiprocessing

    return multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None


# --- Worker pools that lend idle cores -------------------------------------------------------------
#
# Library pools run one single-threaded task per core (two single-threaded trainings finish sooner than
# one two-threaded training). When fewer tasks than workers remain (the tail of a sweep, the last
# chain of an RFE run), the idle cores are lent to the running tasks: each worker knows how many
# tasks are running and its long loops call :func:`lend_idle_cores`, which sets torch's thread count
# to its share of the pool's cores.

_pool_busy = None  # the pool's shared count of running tasks (set in each worker)
_pool_cores = 1
_pool_seen: int | None = None  # the share seen at the previous check (two checks must agree)


def lend_cores_from(busy, cores: int) -> None:  # noqa: ANN001 - a multiprocessing Value
    """Make this process a pool worker: ``busy`` is the pool's shared count of running tasks, ``cores``
    the cores the pool shares (see :func:`lend_idle_cores`)."""
    global _pool_busy, _pool_cores, _pool_seen
    configure_threads(1)
    _pool_busy, _pool_cores, _pool_seen = busy, cores, None


def counted(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201 - any task
    """Run ``fn`` counted among the pool's running tasks (see :func:`lend_cores_from`)."""
    global _pool_seen
    busy = _pool_busy
    if busy is None:
        return fn(*args, **kwargs)
    with busy.get_lock():
        busy.value += 1
    _pool_seen = None
    lend_idle_cores()
    try:
        return fn(*args, **kwargs)
    finally:
        with busy.get_lock():
            busy.value -= 1
        configure_threads(1)


def lend_idle_cores() -> int:
    """In a worker that shares cores (:func:`lend_cores_from`, the run layer's local workers), take this
    task's share of the idle cores.

    Sets torch's thread count to ``cores // running tasks`` when two successive calls agree (a
    worker between two tasks does not count as idle), and returns it. Outside a pool it does nothing
    and returns the current thread count. Cheap: call it every few dozen epochs.
    """
    global _pool_seen
    if _pool_busy is None:
        return torch.get_num_threads()
    share = max(1, _pool_cores // max(1, _pool_busy.value))
    if share == _pool_seen or _pool_seen is None and share == 1:
        configure_threads(share)
    _pool_seen = share
    return torch.get_num_threads()
