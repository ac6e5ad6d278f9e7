"""Run kinds for the run-layer tests: tiny, real work in real worker processes (registered on import)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosmining.config import ConfigBase
from chaosmining.errors import JobCancelled
from chaosmining.runs import RUN_KINDS, MemoryEstimate, RunKind
from chaosmining.runtime import lend_idle_cores

RESULT_KIND = "test-run"


@dataclass(frozen=True, kw_only=True)
class TaskConfig(ConfigBase):
    """``seconds`` of work in 0.05-s steps, then a cache entry holding ``value`` squared; ``crash`` aborts
    the worker halfway; ``memory_gb`` is what the run declares it needs; ``log`` gets one line per start (value, pid,
    time, CPU niceness, the torch threads a trainer would take: see :func:`~chaosmining.runtime.lend_idle_cores`,
    the nice value of its session's scheduling group, or ``-`` without autogroup or in init's session, whose
    group is the root one and shows nothing in ``/proc/self/autogroup``)."""

    value: int = 0
    seconds: float = 0.2
    crash: bool = False
    memory_gb: float = 0.01
    log: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskConfig:
        return cls(**d)


def group_nice() -> str:
    """The nice value of this process's session scheduling group (autogroup), or ``-`` in the root group."""
    try:
        return open("/proc/self/autogroup").read().split("nice")[1].strip()
    except (OSError, IndexError):
        return "-"


def perform(config: TaskConfig, ev: Any, *, cache: Any, device: str = "auto", report=None, should_stop=None) -> int:  # noqa: ANN001
    def build(folder: Path) -> dict[str, Any]:
        if config.log:
            lend_idle_cores()
            threads = lend_idle_cores()  # a trainer's second epoch: two calls that agree take the share
            with open(config.log, "a") as fh:
                fh.write(f"{config.value} {os.getpid()} {time.time()} {os.nice(0)} {threads} {group_nice()}\n")
        steps = max(1, round(config.seconds / 0.05))
        for i in range(steps):
            (folder / f"part{i}.txt").write_text("x")  # a half-built entry until the rename
            if config.crash and i == steps // 2:
                os.abort()
            if should_stop is not None and should_stop():
                raise JobCancelled("Stopped by the user.")
            if report is not None:
                report(step=i + 1, steps=steps)
            time.sleep(0.05)
        (folder / "value.txt").write_text(str(config.value**2))
        return {}

    entry = cache.load(RESULT_KIND, config.config_hash)
    if entry is None:
        entry = cache.write(RESULT_KIND, config.config_hash, build, config=config)
    return int(entry.file("value.txt").read_text())


if "test-task" not in RUN_KINDS.names():
    RUN_KINDS.register(
        "test-task",
        RunKind(
            name="test-task",
            perform=perform,
            config_from=TaskConfig.from_dict,
            eval_from=None,
            result_kind=RESULT_KIND,
            result_key=lambda c, ev: c.config_hash,
            memory=lambda c, ev: MemoryEstimate(int(c.memory_gb * 2**30), "memory_gb", "the run's declared size"),
            seconds=lambda c, ev: c.seconds,
            describe=lambda c: f"test task {c.value}",
            uses_device=False,
        ),
    )
