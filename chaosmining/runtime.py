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


@dataclass(frozen=True)
class DeviceInfo:
    device: str
    cuda_available: bool
    gpu_name: str | None
    threads: int
    torch_version: str


def device_info() -> DeviceInfo:
    cuda = torch.cuda.is_available()
    return DeviceInfo(
        device=str(resolve_device("auto")),
        cuda_available=cuda,
        gpu_name=torch.cuda.get_device_name(0) if cuda else None,
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
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
