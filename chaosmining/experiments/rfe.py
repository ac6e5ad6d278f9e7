"""Feature selection end to end: RFEwNA against classic RFE (paper section 4, Figures 6 and 7).

:func:`run_rfe` is the one code path of the CLI's ``rfe`` command and the app's Feature Selection page.
It is an orchestration: it computes nothing itself, and submits units of work to the run layer's
executor (:mod:`chaosmining.runs`), which schedules them with every other run.

How the work is organised
-------------------------
* **Tasks and data** (:mod:`.rfe_tasks`): the data are prepared once per configuration and cached
  (``rfe-data``) by the driver; units read them from the cache.
* **Configurations** (:mod:`.rfe_config`) and **results** (:mod:`.rfe_result`, cached as ``rfe-result``).
* **Units** (:mod:`.rfe_units`, run kinds ``rfe-train`` and ``rfe-classic``): one network trained on a kept
  feature set with its importances (``rfe-model``, ``rfe-importance``), or one classic selector's chain
  (``rfe-classic``). The first round trains the same model for every attribution selector (same
  features, same seed), so it is trained once; later rounds are shared wherever two selectors keep the
  same features.
* **Elimination** (here): every attribution selector is a chain of rounds
  (:func:`chaosmining.selection.rfewna_rounds`); a round's unit is submitted when the previous round's
  importances arrive, so independent chains and the classic baselines run side by side on the
  executor's workers. A Stop request stops the units in flight; finished units stay cached, so a
  re-run resumes where it stopped. A unit that fails (a diverging training) fails its selectors alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..cache import Cache
from ..errors import ChaosMiningError, JobCancelled
from ..runs import (
    RUN_KINDS,
    Executor,
    MemoryEstimate,
    RunContext,
    RunHandle,
    RunKind,
    RunSpec,
    get_executor,
    make_executor,
)
from ..selection import elimination_schedule, get_selector, precision_recall, rfewna_rounds
from ..training import training_macs_per_second
from ..validation import param_error
from .rfe_config import (
    DEFAULT_SELECTORS,
    STRATEGIES,
    UNKNOWN_TRUTH_TARGET,
    RFEConfig,
    RFEDataConfig,
    StrategySpec,
    rfe_config_from_dict,
)
from .rfe_result import RESULT_KIND, RFEResult, RoundRecord, SelectorRun, load_rfe, save_rfe
from .rfe_tasks import (
    DATA_KIND,
    TASK_KINDS,
    TASK_TYPE_SPECS,
    SelectionData,
    TaskKind,
    TaskTypeSpec,
    prepare_task_data,
)
from .rfe_units import (
    CLASSIC_KIND,
    IMPORTANCE_KIND,
    MODEL_KIND,
    ClassicResult,
    ClassicUnit,
    TrainUnit,
    UnitResult,
)

__all__ = [
    "DEFAULT_SELECTORS",
    "UNKNOWN_TRUTH_TARGET",
    "TaskTypeSpec",
    "TASK_TYPE_SPECS",
    "TaskKind",
    "TASK_KINDS",
    "StrategySpec",
    "STRATEGIES",
    "RFEDataConfig",
    "RFEConfig",
    "SelectionData",
    "RoundRecord",
    "SelectorRun",
    "RFEResult",
    "TrainUnit",
    "ClassicUnit",
    "prepare_data",
    "RFEPlan",
    "plan_rfe",
    "run_rfe",
    "run_rfe_many",
    "load_rfe",
    "rfe_config_from_dict",
    "DATA_KIND",
    "MODEL_KIND",
    "IMPORTANCE_KIND",
    "CLASSIC_KIND",
    "RESULT_KIND",
]


def prepare_data(config: RFEConfig, cache: Cache | None = None) -> tuple[str, SelectionData]:
    """The task's data (built once and cached); returns ``(data_key, data)``."""
    return prepare_task_data(config.data, config.seed, cache or Cache())


@dataclass(frozen=True)
class RFEPlan:
    """What a comparison will cost before it runs: the schedule and the number of network trainings
    (at most; selectors that keep the same features share them), with a rough single-core estimate."""

    schedule: list[int]
    trainings: int
    estimated_seconds: float


def plan_rfe(config: RFEConfig, data: SelectionData) -> RFEPlan:
    """The elimination schedule of ``config`` on ``data`` and an upper bound of its trainings."""
    schedule = elimination_schedule(
        data.n_features, config.drop_rate, config.resolved_target(data.n_features, data.true_features)
    )
    n_attr = sum(get_selector(s).family == "attribution" for s in config.selectors)
    n_classic = len(config.selectors) - n_attr
    trainings = (1 if n_attr else 0) + n_attr * (len(schedule) - 1)
    if config.strategy == "bi":
        trainings += n_classic * len(schedule)
    seconds = 0.0
    for i, n in enumerate(schedule):
        networks = min(n_attr, 1) if i == 0 else n_attr  # round 1 is shared by every attribution selector
        networks += n_classic if config.strategy == "bi" else 0
        macs = 3 * len(data.y_train) * config.train.epochs * config.model.n_parameters(n)
        seconds += networks * macs
    return RFEPlan(schedule, trainings, seconds / training_macs_per_second(config.train.precision))


# --- the elimination driver ------------------------------------------------------------------------


@dataclass
class _Waiter:
    """A selector waiting for a unit: for a round's importances (``method``), for the network of its
    final round (``method=None``), or for the bi-module network on a classic round (``round_index``)."""

    run: _Selection
    selector: str
    method: str | None
    round_index: int | None = None


@dataclass
class _Selection:
    """One configuration being selected: its data, schedule, chains and the rounds recorded so far."""

    index: int
    config: RFEConfig
    data_key: str
    data: SelectionData
    schedule: list[int]
    records: dict[str, list[RoundRecord | None]] = field(default_factory=dict)
    chains: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, set[str]] = field(default_factory=dict)
    classic: dict[str, ClassicResult] = field(default_factory=dict)

    def unit(self, kept: tuple[int, ...], methods: Sequence[str] = ()) -> TrainUnit:
        c = self.config
        return TrainUnit(
            data_key=self.data_key,
            kept=kept,
            model=c.model,
            train=c.train,
            seed=c.seed,
            methods=tuple((m, tuple(sorted(c.params_for(m).items()))) for m in methods),
            rows=len(self.data.y_train) + len(self.data.y_val),
            columns=self.data.n_features,
        )

    def result(self, seconds: float, workers: int) -> RFEResult:
        runs = {}
        for s in self.config.selectors:
            recs = tuple(r for r in self.records.get(s, []) if r is not None)
            runs[s] = SelectorRun(s, recs, self.errors.get(s), tuple(sorted(self.warnings.get(s, ()))))
        d = self.data
        return RFEResult(
            config=self.config,
            title=d.title,
            task_type=d.task_type,
            feature_names=d.feature_names,
            true_features=d.true_features,
            schedule=self.schedule,
            runs=runs,
            notes=d.notes,
            formula_latex=d.formula_latex,
            seconds=seconds,
            cached=False,
            workers=workers,
        )


@dataclass
class _Channel:
    """Where units go: an executor (this process's, or one made for this call), or the orchestration
    that called :func:`run_rfe` (its units queue under the user's session and stop with it)."""

    submit: Callable[[RunSpec], RunHandle]
    cache: Cache
    capacity: int
    owner: RunHandle | None = None
    private: Executor | None = None

    def owns(self, handle: RunHandle) -> bool:
        return self.owner is None or handle.parent is self.owner

    def close(self) -> None:
        if self.private is not None:
            self.private.shutdown()


def _same_root(a: Cache, b: Cache) -> bool:
    return Path(a.root).resolve() == Path(b.root).resolve()


def _channel(executor: Executor | RunContext | None, cache: Cache | None, workers: int | None) -> _Channel:
    """The executor units go to. ``workers`` (kept for the CLI's ``--workers``) asks for an executor of
    that many workers made for this call, as does a ``cache`` other than the process-wide executor's."""
    if isinstance(executor, RunContext):
        ex, owner = executor.executor, executor.handle
        submit: Callable[[RunSpec], RunHandle] = executor.submit
    elif executor is not None:
        ex, owner = executor, None
        submit = executor.submit
    else:
        shared = get_executor(cache) if workers is None else None
        if shared is not None and (cache is None or _same_root(cache, shared.cache)):
            return _Channel(shared.submit, shared.cache, shared.capacity)
        private = make_executor(cache=cache or Cache(), workers=workers)
        return _Channel(private.submit, private.cache, private.capacity, private=private)
    if cache is not None and not _same_root(cache, ex.cache):
        raise param_error(
            "cache",
            "run_rfe",
            f"the executor's cache ({ex.cache.root}) or None",
            str(cache.root),
            "Units write their results into the executor's cache.",
        )
    return _Channel(submit, ex.cache, ex.capacity, owner=owner)


class _Driver:
    """Submits the units of one or more selections and advances each chain as its units finish."""

    def __init__(
        self,
        channel: _Channel,
        device: str,
        report: Callable[..., None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.channel, self.device = channel, device
        self.report, self.should_stop = report, should_stop
        # handle id -> (handle, what waits on it: model keys, or (selection, classic selector) pairs; two
        # selections of the same data and seed share a classic unit)
        self.inflight: dict[str, tuple[RunHandle, list[Any]]] = {}
        self.train_inflight: set[str] = set()  # model keys with a unit in flight
        self.waiting: dict[str, list[_Waiter]] = {}  # model key -> selectors waiting for it
        self.kept_of: dict[str, tuple[int, ...]] = {}
        self.run_of: dict[str, _Selection] = {}
        self.dirty: list[str] = []

    def _emit(self, **event: Any) -> None:
        if self.report:
            self.report(**event)

    # -- requests
    def request_unit(self, waiter: _Waiter, kept: tuple[int, ...]) -> None:
        key = waiter.run.unit(kept).model_key
        self.kept_of.setdefault(key, kept)
        self.run_of.setdefault(key, waiter.run)
        self.waiting.setdefault(key, []).append(waiter)
        if key not in self.dirty:
            self.dirty.append(key)

    def flush(self) -> None:
        for key in self.dirty:
            if key in self.train_inflight or not self.waiting.get(key):
                continue
            methods = sorted({w.method for w in self.waiting[key] if w.method})
            unit = self.run_of[key].unit(self.kept_of[key], methods)
            handle = self.channel.submit(RunSpec("rfe-train", unit, None, self.device))
            self.inflight.setdefault(handle.id, (handle, []))[1].append(key)
            self.train_inflight.add(key)
        self.dirty = []
        self._emit(running=len(self.train_inflight))

    def submit_classic(self, run: _Selection, selector: str) -> None:
        unit = ClassicUnit(
            data_key=run.data_key,
            selector=selector,
            schedule=tuple(run.schedule),
            seed=run.config.seed,
            rows=len(run.data.y_train),
            columns=run.data.n_features,
        )
        handle = self.channel.submit(RunSpec("rfe-classic", unit, None, "cpu"))
        self.inflight.setdefault(handle.id, (handle, []))[1].append((run, selector))

    # -- completions
    def _fail(self, run: _Selection, selector: str, message: str) -> None:
        if selector not in run.errors:
            run.errors[selector] = message
            self._emit(config=run.index, selector=selector, error=message)

    def _record(self, run: _Selection, selector: str, index: int, record: RoundRecord) -> None:
        recs = run.records.setdefault(selector, [None] * len(run.schedule))
        recs[index] = record
        self._emit(
            config=run.index,
            selector=selector,
            round=index,
            n_features=record.n_features,
            error=record.error,
            precision=record.precision,
            seconds=record.seconds,
            done_rounds=sum(r is not None for r in recs),
            total_rounds=len(run.schedule),
        )

    @staticmethod
    def _metrics_record(
        run: _Selection,
        kept: tuple[int, ...],
        val: dict[str, float],
        test: dict[str, float],
        seconds: float,
        predictor: str,
        cached: bool,
        eval_seconds: float = 0.0,
    ) -> RoundRecord:
        spec = TASK_TYPE_SPECS.get(run.data.task_type)
        precision, recall = precision_recall(kept, run.data.true_features)
        return RoundRecord(
            n_features=len(kept),
            kept=kept,
            error=spec.error_from(test),
            val_error=spec.error_from(val),
            test_metrics=test,
            val_metrics=val,
            precision=precision,
            recall=recall,
            seconds=seconds,
            predictor=predictor,
            cached=cached,
            eval_seconds=eval_seconds,
        )

    def _unit_done(self, key: str, handle: RunHandle) -> None:
        self.train_inflight.discard(key)
        waiters = self.waiting.pop(key, [])
        if handle.status != "done":
            for w in waiters:
                self._fail(w.run, w.selector, handle.error or f"The training ended with status {handle.status}.")
            return
        out: UnitResult = handle.result()
        cached = handle.cached or bool(handle.snapshot().latest("model_cached"))
        kept = out.kept
        still: list[_Waiter] = []
        for w in waiters:
            run = w.run
            if w.round_index is not None:  # bi-module: the network predicts on a classic selector's features
                info = run.classic[w.selector].rounds[w.round_index]
                record = self._metrics_record(
                    run, kept, out.val, out.test, info.seconds, "MLP", cached, out.train_seconds
                )
                self._record(run, w.selector, w.round_index, record)
                continue
            if w.method is not None and w.method in out.method_errors:
                self._fail(run, w.selector, out.method_errors[w.method])  # this selector alone stops
                continue
            if w.method is not None and w.method not in out.importance:
                still.append(w)  # the unit was already in flight for other methods: ask again (cache hit)
                continue
            seconds = out.train_seconds + (out.attr_seconds.get(w.method, 0.0) if w.method else 0.0)
            record = self._metrics_record(run, kept, out.val, out.test, seconds, "MLP", cached)
            if w.method:
                run.warnings.setdefault(w.selector, set()).update(out.warnings.get(w.method, ()))
            self._record(run, w.selector, run.schedule.index(len(kept)), record)
            importance = out.importance[w.method] if w.method else None
            try:
                request = run.chains[w.selector].send(importance)
            except StopIteration:
                continue
            self.request_unit(_Waiter(run, w.selector, request.method), request.kept)
        if still:
            self.waiting.setdefault(key, []).extend(still)
            self.dirty.append(key)

    def _classic_done(self, run: _Selection, selector: str, handle: RunHandle) -> None:
        if handle.status != "done":
            self._fail(run, selector, handle.error or f"The run ended with status {handle.status}.")
            return
        out: ClassicResult = handle.result()
        run.classic[selector] = out
        for i, r in enumerate(out.rounds):
            if run.config.strategy == "uni":
                record = self._metrics_record(run, r.kept, r.val, r.test, r.seconds, r.predictor, False)
                self._record(run, selector, i, record)
            else:
                self.request_unit(_Waiter(run, selector, None, round_index=i), r.kept)

    def _check_stop(self) -> None:
        if self.should_stop and self.should_stop():
            self._stop_all()
            raise JobCancelled(
                f"Stopped by the user with {len(self.train_inflight)} training(s) running; finished trainings "
                "are cached and a re-run resumes."
            )

    def _stop_all(self, grace: float = 60.0) -> None:
        """Stop the units in flight that this selection owns and wait for them to end, so that nothing
        of theirs is half-written when :func:`run_rfe` returns (a worker that does not stop is ended by
        the executor after its grace period)."""
        stopped = [h for h, _ in self.inflight.values() if not h.done and self.channel.owns(h)]
        for handle in stopped:
            handle.stop()
        deadline = time.monotonic() + grace
        for handle in stopped:
            handle.wait(max(0.0, deadline - time.monotonic()))

    def loop(self) -> None:
        self.flush()
        try:
            while self.inflight:
                self._check_stop()
                done = [h for h, _ in self.inflight.values() if h.done]
                if not done:
                    next(iter(self.inflight.values()))[0].wait(0.2)
                    continue
                for handle in done:
                    _, waiting = self.inflight.pop(handle.id)
                    if handle.status in ("cancelled", "interrupted"):
                        raise JobCancelled(handle.error or "Stopped by the user.")
                    for what in waiting:
                        if isinstance(what, str):
                            self._unit_done(what, handle)
                        else:
                            self._classic_done(*what, handle)
                self.flush()
        except BaseException:
            self._stop_all()
            raise


def _device_name(device: str | torch.device) -> str:
    return str(device) if isinstance(device, torch.device) else device


def run_rfe_many(
    configs: Sequence[RFEConfig],
    *,
    executor: Executor | RunContext | None = None,
    cache: Cache | None = None,
    device: str | torch.device = "auto",
    workers: int | None = None,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[RFEResult]:
    """Run several comparisons, their units side by side on one executor (the Figure 7 protocol runs five
    formulas).

    ``executor``: the executor units are submitted to, or the :class:`~chaosmining.runs.RunContext` of
    the orchestration calling this (units then queue under its session and stop with it; ``report``
    and ``should_stop`` default to the context's). Default: the process-wide executor
    (:func:`chaosmining.runs.get_executor`), or, when ``workers`` is given or ``cache`` is not that
    executor's, an executor with ``workers`` workers made for this call. ``device`` is where the networks
    train (``"auto"``: CUDA when the worker has it).

    Finished comparisons come from the cache. ``report`` receives progress events: ``schedule`` (per
    configuration, at the start), ``round`` records (``config``, ``selector``, ``n_features``,
    ``error``, ``precision``, ``done_rounds``/``total_rounds``), ``running`` (trainings in flight) and
    ``error`` messages (``config``, ``selector``, ``error``: that selector failed, the others go on).

    Raises
    ------
    JobCancelled
        When ``should_stop()`` turns true; every finished unit stays cached and a re-run resumes from them.
    """
    start = time.perf_counter()
    if isinstance(executor, RunContext):
        report = report or executor.report
        should_stop = should_stop or executor.should_stop
    channel = _channel(executor, cache, workers)
    try:
        results: list[RFEResult | None] = [load_rfe(c, channel.cache) for c in configs]
        runs: list[_Selection] = []
        for i, config in enumerate(configs):
            if results[i] is not None:
                continue
            key, data = prepare_task_data(config.data, config.seed, channel.cache)
            schedule = plan_rfe(config, data).schedule
            runs.append(_Selection(i, config, key, data, schedule))
            if report:
                report(config=i, schedule=schedule, selectors=list(config.selectors))
        driver = _Driver(channel, _device_name(device), report, should_stop)
        for run in runs:  # first every round-1 training, so that workers start at once
            for s in run.config.selectors:
                method = get_selector(s).method
                if method is None:
                    continue
                run.chains[s] = rfewna_rounds(run.data.n_features, method, run.schedule)
                request = next(run.chains[s])
                driver.request_unit(_Waiter(run, s, request.method), request.kept)
        driver.flush()
        for run in runs:
            for s in run.config.selectors:
                if get_selector(s).family == "classic":
                    driver.submit_classic(run, s)
        driver.loop()
    finally:
        channel.close()
    seconds = time.perf_counter() - start
    for run in runs:
        result = run.result(seconds, channel.capacity)
        save_rfe(result, channel.cache)
        results[run.index] = result
    return [r for r in results if r is not None]


def run_rfe(
    config: RFEConfig,
    *,
    executor: Executor | RunContext | None = None,
    cache: Cache | None = None,
    device: str | torch.device = "auto",
    workers: int | None = None,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RFEResult:
    """Compare the configured selectors on one task; see :func:`run_rfe_many` for the parameters and events.

    Examples
    --------
    >>> cfg = RFEConfig(data=RFEDataConfig(task="formula:2", noise_features=3, samples=200),
    ...                 selectors=("saliency", "linear"), train=TrainConfig(epochs=20, snapshots=1))
    >>> run_rfe(cfg).runs["saliency"].kept  # doctest: +SKIP
    (0,)
    """
    return run_rfe_many(
        [config],
        executor=executor,
        cache=cache,
        device=device,
        workers=workers,
        report=report,
        should_stop=should_stop,
    )[0]


def _load_finished(config: RFEConfig, ev: Any, cache: Cache) -> RFEResult:
    result = load_rfe(config, cache)
    if result is None:
        raise ChaosMiningError("The selection's result is not in the cache; run it again.")
    return result


# A whole selection is a composite run: it runs on the driver and submits its trainings (``rfe-train``)
# and classic chains (``rfe-classic``) as child runs, so a page, the CLI and ``reproduce`` submit
# ``RunSpec("rfe", config)`` like any other run and it queues under the submitter's session.
RUN_KINDS.register(
    "rfe",
    RunKind(
        name="rfe",
        perform=lambda config, ev, *, cache, device="auto", report=None, should_stop=None, executor=None: run_rfe(
            config, cache=cache, device=device, executor=executor, report=report, should_stop=should_stop
        ),
        config_from=rfe_config_from_dict,
        eval_from=None,
        result_kind=RESULT_KIND,
        result_key=lambda config, ev: config.config_hash,
        memory=lambda config, ev: MemoryEstimate(0, "samples"),  # its children are admitted one by one
        seconds=lambda config, ev: 60.0,
        describe=lambda c: f"feature selection on {c.data.task}: {', '.join(c.selectors)}",
        uses_device=False,
        modality="selection",
        composite=True,
        loader=_load_finished,
    ),
)
