"""Background jobs: deduplicated by key, stoppable, errors kept as one line."""

from __future__ import annotations

import time

from chaosmining.errors import DataError
from chaosmining.jobs import JobManager


def test_same_key_returns_the_running_job_and_progress_is_visible():
    jm = JobManager()

    def work(ctx):
        for i in range(50):
            ctx.report(step=i)
            if ctx.should_stop():
                ctx.check_cancelled()
            time.sleep(0.01)
        return "done"

    j1 = jm.submit("k", work, kind="t", description="demo")
    j2 = jm.submit("k", work, kind="t")
    assert j1 is j2
    j1.wait(5)
    snap = j1.snapshot()
    assert snap.status == "done" and j1.result == "done" and snap.latest("step") == 49
    assert jm.submit("k", work, kind="t") is not j1  # a finished key can run again


def test_stop_cancels_and_errors_are_kept():
    jm = JobManager()

    def slow(ctx):
        while True:
            ctx.check_cancelled()
            time.sleep(0.01)

    job = jm.submit("s", slow, kind="t")
    job.stop()
    job.wait(5)
    assert job.status == "cancelled"

    def bad(ctx):
        raise DataError("The 'x' parameter is wrong.")

    j = jm.submit("b", bad, kind="t")
    j.wait(5)
    assert j.status == "failed" and j.error == "The 'x' parameter is wrong."

    def bug(ctx):
        raise ZeroDivisionError("boom")

    j = jm.submit("c", bug, kind="t")
    j.wait(5)
    assert j.status == "failed" and j.error.startswith("Unexpected error: ZeroDivisionError")
