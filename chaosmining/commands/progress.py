"""One progress reporter for every CLI command: the library's ``report=`` events as a bar on stderr.

The library functions call ``report(**event)`` with a small vocabulary (see their docstrings):

* ``stage`` - what is happening now ("training", "attributing with IG", ...);
* ``done``/``total`` - items of the current stage (images made, cells of a sweep, evaluation steps);
* ``epoch``/``epochs`` with ``loss`` and an accuracy - training (``epoch`` may be fractional);
* ``schedule``/``selectors`` then ``done_rounds``/``total_rounds`` per (``config``, ``selector``) -
  the rounds of a feature selection, summed here into one count;
* ``running``, ``error`` - trainings in flight and a selector's failure.

:class:`ProgressReporter` turns them into one tqdm bar at a time: a new bar (the last one stays on
screen, finished) whenever the unit of counting changes, the count starts over, or an uncounted stage
begins. Everything goes to stderr, so ``--json`` output on stdout stays one JSON object; ``--quiet``
makes the reporter a no-op.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["ProgressReporter", "progress"]

_COUNTED = "{desc}: {percentage:3.0f}%|{bar}| {n:.6g}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
_UNCOUNTED = "{desc} [{elapsed}{postfix}]"
_ACCURACIES = (("test_accuracy", "test acc"), ("val_accuracy", "val acc"), ("train_accuracy", "train acc"))


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(float(x), 2)


class ProgressReporter:
    """A ``report`` callback that draws the events it receives as a progress bar on ``file`` (stderr).

    Use it as a context manager so the last bar is closed: ``with ProgressReporter() as report:
    run_symbolic(..., report=report)``. Thread-safe; ``enabled=False`` ignores every event.
    """

    def __init__(self, *, enabled: bool = True, file: TextIO | None = None, label: str = "") -> None:
        self.enabled = enabled
        self.file = file
        self.label = label
        self._bar: tqdm | None = None
        self._stage = ""
        self._lock = threading.Lock()
        self._rounds_total: dict[Any, int] = {}
        self._rounds_done: dict[Any, int] = {}

    # -- the callback
    def __call__(self, **event: Any) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._handle(event)

    def _handle(self, e: dict[str, Any]) -> None:
        stage = e.get("stage")
        if stage is not None:
            stage = str(stage)
        count = self._count(e)
        if "error" in e and isinstance(e["error"], str):
            self._write(f"{e.get('selector', 'error')}: {e['error']}")
        if count is None:
            if stage is not None and stage != self._stage:
                self._open(stage, None)
            elif stage is None and "running" in e and self._bar is not None:
                self._bar.set_postfix_str(f"{e['running']} training(s) running")
            return
        done, total, unit = count
        stage = stage if stage is not None else unit
        desc = stage if stage is not None else self._stage
        bar = self._bar
        restart = stage is not None and stage != self._stage and bar is not None and bar.n >= total
        if bar is None or bar.total != total or done < bar.n or restart:
            bar = self._open(desc, total)
        elif stage is not None and stage != self._stage:
            self._stage = stage
            bar.set_description_str(self._desc(stage), refresh=False)
        postfix = self._postfix(e)
        if postfix:
            bar.set_postfix_str(postfix, refresh=False)
        bar.update(done - bar.n)  # redraws at most every ``mininterval`` seconds

    def _count(self, e: dict[str, Any]) -> tuple[float | int, float | int, str | None] | None:
        """``(done, total, stage name if the event implies one)``, or None for an uncounted event."""
        if "schedule" in e and "selectors" in e:
            self._rounds_total[e.get("config")] = len(e["schedule"]) * len(e["selectors"])
            return sum(self._rounds_done.values()), sum(self._rounds_total.values()), "selection rounds"
        if "done_rounds" in e:
            self._rounds_done[(e.get("config"), e.get("selector"))] = int(e["done_rounds"])
            total = sum(self._rounds_total.values()) or int(e.get("total_rounds", 0))
            return sum(self._rounds_done.values()), max(total, 1), "selection rounds"
        if "done" in e and "total" in e:
            return _number(e["done"]), _number(e["total"]), None
        if "epoch" in e and "epochs" in e and "loss" in e:
            return _number(e["epoch"]), _number(e["epochs"]), "training"
        return None

    @staticmethod
    def _postfix(e: dict[str, Any]) -> str:
        parts = []
        if isinstance(e.get("loss"), int | float):
            parts.append(f"loss {e['loss']:.4g}")
        parts += [f"{name} {e[k]:.3f}" for k, name in _ACCURACIES if isinstance(e.get(k), int | float)]
        return ", ".join(parts)

    # -- bars
    def _desc(self, stage: str) -> str:
        return f"{self.label}: {stage}" if self.label and stage else (stage or self.label or "working")

    def _open(self, stage: str, total: float | int | None) -> tqdm:
        if self._bar is not None and self._bar.total is None and stage == self._stage:
            self._bar.leave = False  # "training" announced, now counted: one line, not two
        self._close_bar()
        self._stage = stage
        file = self.file if self.file is not None else sys.stderr
        self._bar = tqdm(
            total=total,
            desc=self._desc(stage),
            file=file,
            leave=True,
            dynamic_ncols=True,
            mininterval=0.2 if file.isatty() else 5.0,
            bar_format=_COUNTED if total is not None else _UNCOUNTED,
        )
        return self._bar

    def _write(self, line: str) -> None:
        file = self.file if self.file is not None else sys.stderr
        tqdm.write(line, file=file)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        with self._lock:
            self._close_bar()

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(a: argparse.Namespace, label: str = "") -> ProgressReporter:
    """The reporter for a parsed command line: quiet with ``--quiet`` (see :func:`.base.add_run_options`)."""
    return ProgressReporter(enabled=not getattr(a, "quiet", False), label=label)
