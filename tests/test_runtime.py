"""Worker processes start from the library, not from whatever script the parent runs."""

from __future__ import annotations

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
