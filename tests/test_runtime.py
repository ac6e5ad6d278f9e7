"""Worker processes start from the library, not from whatever script the parent runs."""

from __future__ import annotations

import os
import sys
import types
from concurrent.futures import ProcessPoolExecutor

from chaosmining.runtime import spawn_context


def _square(x: int) -> int:
    return x * x


def test_spawned_workers_do_not_rerun_the_parents_main_script(tmp_path, monkeypatch):
    # Under Streamlit (and AppTest) __main__ is the page or a temp script that fails outside the app.
    script = tmp_path / "page.py"
    script.write_text("raise SystemExit('the page must not run in a worker')\n")
    fake = types.ModuleType("__main__")
    fake.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake)
    with ProcessPoolExecutor(max_workers=2, mp_context=spawn_context()) as pool:
        assert list(pool.map(_square, range(4))) == [0, 1, 4, 9]
    assert sys.modules["__main__"] is fake


def test_the_allocator_is_tuned_once_and_can_be_left_alone(monkeypatch):
    import chaosmining.runtime as runtime

    monkeypatch.setattr(runtime, "_allocator_tuned", None)
    monkeypatch.setenv(runtime.MALLOC_ENV, "default")
    assert runtime.tune_allocator() is False  # asked to keep glibc's defaults
    monkeypatch.setattr(runtime, "_allocator_tuned", None)
    monkeypatch.delenv(runtime.MALLOC_ENV)
    expected = sys.platform.startswith("linux")  # glibc here; elsewhere a no-op
    assert runtime.tune_allocator() is expected
    assert runtime.tune_allocator() is expected  # once per process


def _threads_seen(wait_for_peers: int) -> list[int]:
    """In a pool worker: wait until ``wait_for_peers`` tasks run, then ask twice for a share of the cores."""
    import time

    import torch

    import chaosmining.runtime as runtime

    deadline = time.monotonic() + 60
    while runtime._pool_busy.value < wait_for_peers and time.monotonic() < deadline:
        time.sleep(0.01)
    shares = [runtime.lend_idle_cores(), runtime.lend_idle_cores()]
    time.sleep(0.2)  # keep the peer counted while it takes its share
    return [torch.get_num_threads(), *shares]


def test_a_pool_lends_idle_cores_to_the_tasks_still_running():
    from concurrent.futures import ProcessPoolExecutor

    from chaosmining.runtime import counted, lend_cores_from, lend_idle_cores, spawn_context

    assert lend_idle_cores() >= 1  # outside a pool: nothing changes
    ctx = spawn_context()
    busy = ctx.Value("i", 0)  # what the run layer's local workers share (chaosmining.runs.local)
    with ProcessPoolExecutor(2, mp_context=ctx, initializer=lend_cores_from, initargs=(busy, 2)) as pool:
        together = [pool.submit(counted, _threads_seen, 2) for _ in range(2)]
        assert [f.result(timeout=120) for f in together] == [[1, 1, 1], [1, 1, 1]]
        alone = pool.submit(counted, _threads_seen, 1).result(timeout=120)
        assert alone == [2, 2, 2]  # the other worker is idle: its core is lent
        again = pool.submit(counted, _threads_seen, 1).result(timeout=120)
        assert again[1:] == [2, 2]


def test_training_gives_the_same_bits_for_any_thread_count():
    # The pools lend idle cores mid-run, so a result must not depend on the thread count.
    import subprocess

    code = """
import numpy as np, torch
import chaosmining
from chaosmining.models.mlp import MLPConfig
from chaosmining.training import TrainConfig, train_mlp
rng = np.random.default_rng(0)
X = np.clip(0.33 * rng.standard_normal((3000, 40)), -1, 1).astype(np.float32)
y = (X[:, 0] * X[:, 1] + np.sin(X[:, 2])).astype(np.float32)
runs = []
for threads in (1, 2):
    torch.set_num_threads(threads)
    runs.append(train_mlp(X, y, MLPConfig(), TrainConfig(epochs=5), seed=0).params)
print(max(float((a - b).abs().max()) for a, b in zip(*runs)))
"""
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert float(out.stdout.strip()) == 0.0


def test_data_loading_workers_fork_whatever_the_python_default():
    """Python 3.14 made 'forkserver' the Linux default; loader workers must still fork (shared arrays, closures)."""
    import multiprocessing

    from chaosmining.runtime import loader_context

    ctx = loader_context()
    if "fork" in multiprocessing.get_all_start_methods():
        assert ctx is not None and ctx.get_start_method() == "fork"
    else:
        assert ctx is None
