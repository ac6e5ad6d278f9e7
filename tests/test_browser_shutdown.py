"""A real server stopped with SIGTERM while a run trains: clean exit, nothing half-written, the run marked
interrupted for the restarted server (Playwright + Debian Chromium)."""

from __future__ import annotations

import subprocess
import time

import pytest
from conftest import set_number, start_server, stop_server, wait_for_app

from chaosmining.cache import Cache
from chaosmining.runs import Executor, LocalBackend

pytestmark = pytest.mark.browser


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _gone(pids: list[int], timeout: float = 15) -> bool:
    deadline = time.time() + timeout
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    return not any(_alive(p) for p in pids)


def test_sigterm_with_a_running_job_exits_cleanly_and_the_restart_says_interrupted(page, tmp_path):
    cache = tmp_path / "cache"
    log = tmp_path / "server.log"
    proc, url = start_server(cache, log, CHAOSMINING_WORKERS="1")
    try:
        page.goto(url + "/Symbolic_functions")
        wait_for_app(page)
        page.get_by_text("Relevant features").first.wait_for()
        set_number(page, "Epochs", "5000")
        page.get_by_role("button", name="Train").click()
        page.get_by_text("running for").first.wait_for(timeout=120_000)
        deadline = time.time() + 60
        while not _children(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        workers = _children(proc.pid)
        assert workers, "the run is performed in a worker process, not in the server"
    finally:
        code = stop_server(proc, 60)
    text = log.read_text()
    assert code == 0, text[-2000:]
    assert "terminate called" not in text and "Traceback" not in text, text[-2000:]
    assert _gone(workers)  # the workers (and multiprocessing's resource tracker) ended with the server
    assert not list(cache.rglob(".tmp-*"))  # no half-written cache entry
    restarted = Executor(LocalBackend(1), Cache(cache))
    try:
        records = list(restarted._interrupted.values())
        assert [r["kind"] for r in records] == ["symbolic"] and records[0]["status"] == "interrupted"
    finally:
        restarted.shutdown()
