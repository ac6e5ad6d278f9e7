"""The Ray executor: the same numbers as the local one, progress streamed, Stop, failures isolated.

The Ray tests share one local Ray instance (2 CPUs) started by this module and are marked ``slow`` (a Ray
start takes about 10 s); they are skipped only when ``ray`` is not importable. ``Cache.import_entry``,
which installs what Ray workers ship back, is tested without Ray.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from chaosmining.cache import Cache
from chaosmining.errors import CacheCorruptError, ChaosMiningError
from chaosmining.experiments import symbolic
from chaosmining.experiments.symbolic import EvalConfig, SymbolicConfig
from chaosmining.runs import RUN_KINDS, RunKind, RunSpec, make_executor
from chaosmining.runs.executor import _alive

TINY = SymbolicConfig()
TINY = replace(TINY, data=replace(TINY.data, samples=300, noise_features=5), train=replace(TINY.train, epochs=10))
EV = EvalConfig(methods=("saliency",))


# -- kinds that fail on the worker (this module is importable there: Ray workers get the driver's sys.path)
def _fail(config, ev, *, cache, device="auto", report=None, should_stop=None):  # noqa: ANN001, ANN202, ARG001
    raise ChaosMiningError("This run fails on purpose.")


def _crash(config, ev, *, cache, device="auto", report=None, should_stop=None):  # noqa: ANN001, ANN202, ARG001
    os._exit(3)


def _stubborn(config, ev, *, cache, device="auto", report=None, should_stop=None):  # noqa: ANN001, ANN202, ARG001
    report(stage="ignoring Stop")
    time.sleep(120)


def _test_kind(name: str, perform) -> RunKind:  # noqa: ANN001
    base = RUN_KINDS.get("symbolic")
    return replace(base, name=name, perform=perform, result_kind=name, uses_device=False)


for _name, _perform in (("ray-test-fail", _fail), ("ray-test-crash", _crash), ("ray-test-stubborn", _stubborn)):
    if _name not in RUN_KINDS.names():
        RUN_KINDS.register(_name, _test_kind(_name, _perform))


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance (2 CPUs) for this module's tests."""
    ray = pytest.importorskip("ray")
    from chaosmining.runs.ray_backend import init_ray

    started = init_ray(num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture
def ray_executor(ray_session, tmp_path):  # noqa: ANN001, ARG001
    ex = make_executor("ray", cache=Cache(tmp_path / "ray-cache"), workers=2)
    yield ex
    ex.shutdown(5.0)


def _numbers(result) -> tuple:  # noqa: ANN001
    return result.fprec, result.uscore, result.test_mae


@pytest.mark.slow
def test_ray_gives_the_local_numbers_and_streams_progress(ray_executor, tmp_path):  # noqa: ANN001
    specs = [RunSpec("symbolic", replace(TINY, seed=s), EV, "cpu") for s in (0, 1)]
    local = make_executor("local", cache=Cache(tmp_path / "local-cache"), workers=2)
    try:
        local_handles = [local.submit(s, session="l") for s in specs]
        expected = [_numbers(h.result(300)) for h in local_handles]
    finally:
        local.shutdown(5.0)
    handles = [ray_executor.submit(s, session=f"r{i}") for i, s in enumerate(specs)]
    got = [_numbers(h.result(300)) for h in handles]
    assert got == expected
    assert ray_executor.stats()["backend"] == "ray"
    for h, spec in zip(handles, specs, strict=True):
        epochs = [ev["epoch"] for ev in h.snapshot().events if "loss" in ev]
        assert epochs[-1] == TINY.train.epochs  # every epoch's event came back
        # the result was shipped back into the driver's cache, checksums verified
        assert ray_executor.cache.load(symbolic.RESULT_KIND, spec.entry.result_key(spec.config, spec.eval))
    again = ray_executor.submit(specs[0], session="r0")
    assert again.cached and again.status == "done"


@pytest.mark.slow
def test_ray_stop_leaves_no_entry(ray_executor):  # noqa: ANN001
    long = replace(TINY, train=replace(TINY.train, epochs=5000))
    spec = RunSpec("symbolic", long, EV, "cpu")
    h = ray_executor.submit(spec, session="s")
    deadline = time.time() + 120
    while not any("loss" in ev for ev in h.snapshot().events):  # progress arrives while it trains
        assert time.time() < deadline and not h.done, (h.status, h.error)
        time.sleep(0.2)
    assert h.status == "running"
    asked = time.time()
    h.stop()
    assert h.wait(30)
    assert h.status == "cancelled", h.error
    assert time.time() - asked < 15  # stopped by the flag, not by the grace period's cancel
    assert not spec.entry.cached(spec, ray_executor.cache)


@pytest.mark.slow
def test_a_run_that_ignores_stop_is_cancelled_after_the_grace(ray_session, tmp_path):  # noqa: ANN001, ARG001
    from chaosmining.runs import Executor
    from chaosmining.runs.ray_backend import RayBackend

    ex = Executor(RayBackend(2, stop_grace=1.0), Cache(tmp_path))
    try:
        h = ex.submit(RunSpec("ray-test-stubborn", TINY, EV, "cpu"), session="s")
        deadline = time.time() + 120
        while not h.snapshot().events:
            assert time.time() < deadline and not h.done, (h.status, h.error)
            time.sleep(0.2)
        h.stop()
        assert h.wait(20) and h.status == "cancelled"
        assert "did not stop within 1 s" in h.error
        after = ex.submit(RunSpec("symbolic", replace(TINY, seed=11), EV, "cpu"), session="s")
        assert after.wait(300) and after.status == "done", after.error
    finally:
        ex.shutdown(5.0)


@pytest.mark.slow
def test_shutdown_stops_running_runs(ray_executor, ray_session):  # noqa: ANN001
    long = replace(TINY, seed=12, train=replace(TINY.train, epochs=5000))
    spec = RunSpec("symbolic", long, EV, "cpu")
    h = ray_executor.submit(spec, session="s")
    deadline = time.time() + 120
    while not h.snapshot().events:
        assert time.time() < deadline and not h.done, (h.status, h.error)
        time.sleep(0.2)
    t0 = time.time()
    ray_executor.shutdown(10.0)
    assert h.status == "interrupted" and time.time() - t0 < 10  # a restarted server offers it again
    assert not spec.entry.cached(spec, ray_executor.cache)
    assert ray_session.is_initialized()  # the test session's Ray instance is not this backend's to stop


@pytest.mark.slow
def test_a_failing_or_crashing_run_fails_alone(ray_executor):  # noqa: ANN001
    crash = ray_executor.submit(RunSpec("ray-test-crash", TINY, EV, "cpu"), session="a")
    fail = ray_executor.submit(RunSpec("ray-test-fail", TINY, EV, "cpu"), session="b")
    good = ray_executor.submit(RunSpec("symbolic", replace(TINY, seed=7), EV, "cpu"), session="c")
    assert crash.wait(120) and fail.wait(120) and good.wait(300)
    assert crash.status == "failed" and "died" in crash.error and "\n" not in crash.error
    assert fail.status == "failed" and fail.error == "This run fails on purpose."
    assert good.status == "done", good.error
    after = ray_executor.submit(RunSpec("symbolic", replace(TINY, seed=8), EV, "cpu"), session="a")
    assert after.wait(300) and after.status == "done", after.error
    # the crashed worker's run folder was removed by the next task on the node
    left = [p.name for p in Path(tempfile.gettempdir()).glob("chaosmining-ray-run-p*")]
    assert all(_alive(int(name.split("-")[3][1:])) for name in left), left


# -- Cache.import_entry (no Ray needed) -----------------------------------------------------------------
def _packed(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in sorted(folder.iterdir()):
            tar.add(f, arcname=f.name)
    return buf.getvalue()


def _built(tmp_path: Path, payload: bytes = b"weights") -> bytes:
    src = Cache(tmp_path / "src")
    src.write("model", "k1", lambda d: (d / "w.bin").write_bytes(payload) and None, config={"a": 1})
    return _packed(src.path("model", "k1"))


def test_import_entry_installs_once_and_verified(tmp_path):  # noqa: ANN001
    data = _built(tmp_path)
    dst = Cache(tmp_path / "dst")
    assert dst.import_entry("model", "k1", data) is True
    entry = dst.load("model", "k1")
    assert entry.file("w.bin").read_bytes() == b"weights" and entry.config == {"a": 1}
    assert dst.import_entry("model", "k1", _built(tmp_path / "other", b"other")) is False  # present: kept
    assert dst.load("model", "k1").file("w.bin").read_bytes() == b"weights"
    assert [p.name for p in (tmp_path / "dst" / "model").iterdir() if p.name.startswith(".")] == []


def test_import_entry_rejects_bad_archives(tmp_path):  # noqa: ANN001
    dst = Cache(tmp_path / "dst")
    with pytest.raises(CacheCorruptError, match="unreadable archive"):
        dst.import_entry("model", "k1", b"not a tar")
    src = tmp_path / "bad"
    src.mkdir()
    (src / "w.bin").write_bytes(b"tampered")
    (src / "manifest.json").write_text(json.dumps({"kind": "model", "key": "k1", "files": {"w.bin": "0" * 64}}))
    with pytest.raises(CacheCorruptError, match="checksum"):
        dst.import_entry("model", "k1", _packed(src))
    with pytest.raises(CacheCorruptError, match="manifest of model/k1"):
        dst.import_entry("model", "k2", _built(tmp_path))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(CacheCorruptError, match="unreadable archive"):
        dst.import_entry("model", "k1", buf.getvalue())
    assert not (tmp_path / "escape").exists() and not dst.has("model", "k1") and not dst.has("model", "k2")
    assert [p.name for p in (tmp_path / "dst" / "model").iterdir()] == []


@pytest.mark.slow
def test_a_gpu_run_on_a_cluster_without_gpus_fails_at_once(ray_executor, ray_session):  # noqa: ANN001
    if ray_session.cluster_resources().get("GPU"):
        pytest.skip("this Ray instance has GPUs")
    h = ray_executor.submit(RunSpec("symbolic", replace(TINY, seed=9), EV, "cuda"), session="g")
    assert h.wait(30) and h.status == "failed"
    assert "asks for device 'cuda' but the Ray cluster has no GPU" in h.error
