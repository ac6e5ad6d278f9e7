"""Recursive feature elimination: RFEwNA (paper Algorithm 1) and scikit-learn's RFE baselines.

RFEwNA ranks features with a post-hoc attribution method instead of a transparent model's coefficients:

1. start with all ``m`` features;
2. while more than ``k`` features are left: train the network on them, attribute it on the
   **validation** rows, rank the features by mean |attribution| and drop the least important ``dr``.

The original code attributed the *test* rows, so the reported test error was no longer an unbiased
estimate; here selection only ever sees the training and validation splits.

Selectors are registered in :data:`SELECTORS`: one ``attribution`` selector per registered attribution
method (any method added to :data:`chaosmining.attribution.METHODS` appears here too), and the ``classic``
baselines, which call :class:`sklearn.feature_selection.RFE` with a linear model, a linear SVM and a
decision tree on the same elimination schedule.

References
----------
Shi et al., "ChaosMining: A Benchmark to Evaluate Post-Hoc Local Attribution Methods in Low SNR
Environments", section 4 and Algorithm 1, https://arxiv.org/abs/2406.12150.
Guyon et al., "Gene Selection for Cancer Classification using Support Vector Machines" (RFE),
https://doi.org/10.1023/A:1012487302797.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import RFE
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.svm import LinearSVC, LinearSVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from .attribution import METHODS, attribute
from .errors import JobCancelled
from .registry import Registry
from .validation import check_float, check_int

__all__ = [
    "SelectorSpec",
    "SELECTORS",
    "selector_names",
    "get_selector",
    "elimination_schedule",
    "precision_recall",
    "keep_most_important",
    "attribution_importance",
    "RoundRequest",
    "rfewna_rounds",
    "rfewna",
    "SelectionRound",
    "ClassicRound",
    "classic_rfe",
    "TASK_TYPES",
]

TASK_TYPES = ("regression", "classification")


@dataclass(frozen=True)
class SelectorSpec:
    """A feature selector.

    ``family`` is ``"attribution"`` (RFEwNA driven by the attribution method ``method``) or
    ``"classic"`` (scikit-learn RFE around ``estimators[task_type](seed)``).
    """

    name: str
    display_name: str
    short: str
    family: Literal["attribution", "classic"]
    reference: str
    description: str
    method: str | None = None
    estimators: Mapping[str, Callable[[int], Any]] = field(default_factory=dict)

    def estimator(self, task_type: str, seed: int) -> Any:
        """A fresh, unfitted scikit-learn estimator for ``task_type`` (classic selectors only)."""
        return self.estimators[task_type](seed)


SELECTORS: Registry[SelectorSpec] = Registry("selector")


def _sync_attribution_selectors() -> None:
    """Register an RFEwNA selector for every attribution method that applies to vectors of features."""
    for name, spec in METHODS.items():
        if name not in SELECTORS and "symbolic" in spec.modalities:
            SELECTORS.register(
                name,
                SelectorSpec(
                    name,
                    f"RFEwNA: {spec.display_name}",
                    spec.short,
                    "attribution",
                    spec.reference,
                    f"Trains the network on the kept features and ranks them by mean |{spec.display_name}| on the "
                    "validation rows.",
                    method=name,
                ),
            )


_sync_attribution_selectors()
for _c in (
    SelectorSpec(
        "linear",
        "RFE: linear model",
        "LIN",
        "classic",
        "https://scikit-learn.org/stable/modules/generated/sklearn.feature_selection.RFE.html",
        "scikit-learn RFE ranking by |coefficient|: LinearRegression, or an unpenalised LogisticRegression for "
        "classification (as the paper).",
        estimators={
            "regression": lambda seed: LinearRegression(),
            # C=inf is the paper's penalty=None (scikit-learn 1.8 deprecated the penalty argument).
            "classification": lambda seed: LogisticRegression(C=np.inf, max_iter=2000),
        },
    ),
    SelectorSpec(
        "svm",
        "RFE: linear SVM",
        "SVM",
        "classic",
        "https://scikit-learn.org/stable/modules/generated/sklearn.svm.LinearSVR.html",
        "scikit-learn RFE ranking by |coefficient| of a linear support vector machine: LinearSVR (epsilon 0.1, as "
        "SVR's default) or LinearSVC. liblinear solves the same linear-kernel problem as the paper's "
        "SVR/SVC(kernel='linear') about ten times faster.",
        estimators={
            "regression": lambda seed: LinearSVR(epsilon=0.1, max_iter=20_000, random_state=seed),
            "classification": lambda seed: LinearSVC(max_iter=20_000, random_state=seed),
        },
    ),
    SelectorSpec(
        "tree",
        "RFE: decision tree",
        "DT",
        "classic",
        "https://scikit-learn.org/stable/modules/generated/sklearn.tree.DecisionTreeRegressor.html",
        "scikit-learn RFE ranking by the tree's impurity-based feature importances (DecisionTreeRegressor / "
        "DecisionTreeClassifier).",
        estimators={
            "regression": lambda seed: DecisionTreeRegressor(random_state=seed),
            "classification": lambda seed: DecisionTreeClassifier(random_state=seed),
        },
    ),
):
    SELECTORS.register(_c.name, _c)


def selector_names(family: str | None = None) -> list[str]:
    """Registered selectors, attribution ones first (registry order), optionally of one ``family``."""
    _sync_attribution_selectors()
    names = [n for n, s in SELECTORS.items() if s.family == "attribution"]
    names += [n for n, s in SELECTORS.items() if s.family == "classic"]
    return [n for n in names if family is None or SELECTORS.get(n).family == family]


def get_selector(name: str) -> SelectorSpec:
    """The selector called ``name``; unknown names raise a ConfigError listing the valid ones."""
    _sync_attribution_selectors()
    return SELECTORS.get(name)


def elimination_schedule(n_features: int, drop_rate: float = 0.5, target: int = 1) -> list[int]:
    """Numbers of features in successive rounds, from ``n_features`` down to exactly ``target``.

    Each round drops ``ceil(drop_rate * n)`` of the ``n`` remaining features (at least one) but never
    goes below ``target``; the paper's protocol is ``drop_rate=0.5`` (halving).

    Examples
    --------
    >>> elimination_schedule(156, 0.5, 6)
    [156, 78, 39, 19, 9, 6]
    """
    n = check_int(n_features, "n_features", owner="elimination_schedule", low=1)
    rate = check_float(
        drop_rate, "drop_rate", owner="elimination_schedule", low=0.0, high=1.0, low_open=True, high_open=True
    )
    k = check_int(
        target,
        "target",
        owner="elimination_schedule",
        low=1,
        high=n,
        hint=f"The task has {n} features; the target is how many of them to keep.",
    )
    counts = [n]
    while counts[-1] > k:
        current = counts[-1]
        drop = max(1, math.ceil(current * rate - 1e-9))
        counts.append(max(k, current - drop))
    return counts


def precision_recall(kept: Sequence[int], true: Sequence[int] | None) -> tuple[float | None, float | None]:
    """Share of ``kept`` features that are true (precision) and of true features that are kept (recall).

    ``(None, None)`` when the ground truth is unknown.

    Examples
    --------
    >>> precision_recall([0, 1, 7, 9], [0, 1, 2])
    (0.5, 0.6666666666666666)
    """
    if true is None:
        return None, None
    kept_set, true_set = set(int(i) for i in kept), set(int(i) for i in true)
    hits = len(kept_set & true_set)
    precision = hits / len(kept_set) if kept_set else 0.0
    recall = hits / len(true_set) if true_set else 1.0
    return precision, recall


def keep_most_important(kept: Sequence[int], importance: np.ndarray, n_keep: int) -> tuple[int, ...]:
    """The ``n_keep`` features of ``kept`` with the largest ``importance`` (aligned with ``kept``), sorted.

    Ties go to the feature listed first, so the choice is deterministic.
    """
    importance = np.asarray(importance, dtype=np.float64)
    if importance.shape != (len(kept),):
        raise ValueError(f"importance has shape {importance.shape}; expected ({len(kept)},) for the kept features.")
    order = np.argsort(-importance, kind="stable")[:n_keep]
    return tuple(sorted(int(kept[i]) for i in order))


def attribution_importance(
    model: torch.nn.Module,
    X_val: np.ndarray,
    method: str,
    *,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, float, tuple[str, ...]]:
    """Mean |attribution| of each column of ``X_val`` (``(n, d)``) for the model's scalar output.

    Returns ``(importance of shape (d,), seconds, warnings)``.
    """
    res = attribute(model, X_val, method, target=0, params=params, seed=seed)
    return np.abs(res.values).mean(axis=0), res.seconds, res.warnings


@dataclass(frozen=True)
class RoundRequest:
    """What one round of RFEwNA needs: a model trained on ``kept``; then, unless this is the last
    round, the importance of those features by ``method`` on the validation rows."""

    kept: tuple[int, ...]
    method: str | None


def rfewna_rounds(n_features: int, method: str, schedule: Sequence[int]) -> Generator[RoundRequest, Any, None]:
    """Algorithm 1 as a coroutine, so one definition serves a plain loop and a parallel scheduler.

    Yields a :class:`RoundRequest` per round and expects to be sent the importance of the kept
    features (aligned with ``request.kept``), or ``None`` after the last round's request.

    Examples
    --------
    >>> steps = rfewna_rounds(4, "saliency", [4, 2])
    >>> next(steps).kept
    (0, 1, 2, 3)
    >>> steps.send(np.array([0.1, 3.0, 0.2, 2.0])).kept
    (1, 3)
    """
    if schedule[0] != n_features:
        raise ValueError(f"The schedule starts at {schedule[0]} features, the data have {n_features}.")
    kept = tuple(range(n_features))
    for i in range(len(schedule)):
        last = i == len(schedule) - 1
        importance = yield RoundRequest(kept, None if last else method)
        if last:
            return
        kept = keep_most_important(kept, importance, schedule[i + 1])


@dataclass(frozen=True)
class SelectionRound:
    """One round of :func:`rfewna`: the kept features, the model trained on them, their importance."""

    kept: tuple[int, ...]
    model: Any
    importance: np.ndarray | None


def rfewna(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    *,
    method: str,
    fit: Callable[[np.ndarray, np.ndarray], torch.nn.Module],
    drop_rate: float = 0.5,
    target: int = 1,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> list[SelectionRound]:
    """RFEwNA (Algorithm 1) with any trainer: ``fit(X, y)`` returns a fresh model with one output.

    The experiment runner (:func:`chaosmining.experiments.rfe.run_rfe`) drives the same
    :func:`rfewna_rounds` with cached, parallel trainings; this loop is the readable reference.
    """
    schedule = elimination_schedule(X_train.shape[1], drop_rate, target)
    steps = rfewna_rounds(X_train.shape[1], method, schedule)
    rounds: list[SelectionRound] = []
    request = next(steps)
    while True:
        cols = list(request.kept)
        model = fit(X_train[:, cols], y_train)
        importance = None
        if request.method is not None:
            importance, _, _ = attribution_importance(model, X_val[:, cols], request.method, params=params, seed=seed)
        rounds.append(SelectionRound(request.kept, model, importance))
        try:
            request = steps.send(importance)
        except StopIteration:
            return rounds


@dataclass(frozen=True)
class ClassicRound:
    """A round of a classic selector: the kept features, the estimator fitted on them, fit seconds."""

    kept: tuple[int, ...]
    estimator: Any
    seconds: float


def classic_rfe(
    selector: str,
    task_type: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    schedule: Sequence[int],
    *,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> list[ClassicRound]:
    """Classic RFE on ``schedule`` through :class:`sklearn.feature_selection.RFE`.

    scikit-learn's own fractional ``step`` removes a fixed share of the *initial* features per
    iteration, so each round here is one ``RFE(n_features_to_select=next, step=current - next)`` fit
    on the kept columns: the same estimator ranking, on the paper's halving schedule, with the
    estimator fitted on every intermediate feature set available for evaluation.
    """
    spec = get_selector(selector)
    if spec.family != "classic":
        raise ValueError(f"{selector!r} is not a classic selector.")
    kept = tuple(range(X_train.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        est = clone(spec.estimator(task_type, seed)).fit(X_train, y_train)
        rounds = [ClassicRound(kept, est, time.perf_counter() - t0)]
        for n_next in schedule[1:]:
            if should_stop is not None and should_stop():
                raise JobCancelled(f"Stopped by the user during {selector!r} at {len(kept)} features.")
            t0 = time.perf_counter()
            rfe = RFE(spec.estimator(task_type, seed), n_features_to_select=n_next, step=len(kept) - n_next)
            rfe.fit(X_train[:, list(kept)], y_train)
            kept = tuple(int(k) for k, keep in zip(kept, rfe.support_) if keep)
            rounds.append(ClassicRound(kept, rfe.estimator_, time.perf_counter() - t0))
    return rounds
