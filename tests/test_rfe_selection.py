"""RFEwNA building blocks and the classic baselines (chaosmining.selection)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.feature_selection import RFE as SklearnRFE

import chaosmining.selection as selection
from chaosmining.attribution import METHODS
from chaosmining.errors import ConfigError
from chaosmining.selection import (
    SELECTORS,
    TASK_TYPES,
    classic_rfe,
    elimination_schedule,
    get_selector,
    keep_most_important,
    precision_recall,
    rfewna,
    rfewna_rounds,
    selector_names,
)


@pytest.mark.parametrize(
    ("n", "rate", "target", "expected"),
    [
        (156, 0.5, 6, [156, 78, 39, 19, 9, 6]),  # formula 11 with 150 noise features (the paper's Figure 7)
        (157, 0.5, 7, [157, 78, 39, 19, 9, 7]),
        (160, 0.5, 10, [160, 80, 40, 20, 10]),
        (369, 0.2, 73, [369, 295, 236, 188, 150, 120, 96, 76, 73]),  # the original Santander notebook's rate
        (10, 0.99, 3, [10, 3]),
        (5, 0.5, 5, [5]),
        (2, 0.1, 1, [2, 1]),
    ],
)
def test_schedule_matches_a_hand_count(n, rate, target, expected):
    assert elimination_schedule(n, rate, target) == expected


@pytest.mark.parametrize("seed", range(5))
def test_schedule_drops_exactly_the_ceiling_of_the_rate_each_round(seed):
    rng = np.random.default_rng(seed)
    n, target, rate = int(rng.integers(20, 500)), int(rng.integers(1, 20)), float(rng.uniform(0.05, 0.95))
    counts = elimination_schedule(n, rate, target)
    assert counts[0] == n and counts[-1] == target
    for a, b in zip(counts, counts[1:]):
        assert b == max(target, a - max(1, math.ceil(a * rate - 1e-9)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": 200}, r"The 'target' parameter of elimination_schedule must be an int in \[1, 156\]. Got 200"),
        ({"target": 0}, r"The 'target' parameter of elimination_schedule must be an int in \[1, 156\]. Got 0"),
        ({"drop_rate": 0.0}, r"The 'drop_rate' parameter of elimination_schedule must be a float in \(0, 1\)"),
        ({"drop_rate": 1.0}, r"The 'drop_rate' parameter of elimination_schedule must be a float in \(0, 1\)"),
        ({"drop_rate": 1.5}, r"Got 1.5 instead"),
    ],
)
def test_schedule_refuses_bad_input_with_the_standard_message(kwargs, message):
    args = {"n_features": 156, "drop_rate": 0.5, "target": 6, **kwargs}
    with pytest.raises(ConfigError, match=message):
        elimination_schedule(**args)


def test_precision_and_recall_match_a_hand_count():
    # kept {0, 1, 7, 9}, true {0, 1, 2}: 2 hits -> precision 2/4, recall 2/3
    assert precision_recall([9, 0, 7, 1], [0, 1, 2]) == (0.5, 2 / 3)
    assert precision_recall([0, 1, 2], [0, 1, 2]) == (1.0, 1.0)
    assert precision_recall([5, 6], [0, 1, 2]) == (0.0, 0.0)
    assert precision_recall([5, 6], None) == (None, None)


def test_keep_most_important_breaks_ties_by_position_and_returns_sorted_indices():
    kept = (3, 8, 11, 20)
    assert keep_most_important(kept, np.array([1.0, 5.0, 1.0, 0.5]), 2) == (3, 8)
    assert keep_most_important(kept, np.array([0.0, 0.0, 0.0, 9.0]), 3) == (3, 8, 20)
    with pytest.raises(ValueError, match="expected \\(4,\\)"):
        keep_most_important(kept, np.ones(3), 2)


def test_rfewna_rounds_follows_the_schedule_and_the_importances():
    steps = rfewna_rounds(6, "saliency", [6, 3, 1])
    first = next(steps)
    assert first.kept == tuple(range(6)) and first.method == "saliency"
    second = steps.send(np.array([0.0, 4.0, 0.1, 3.0, 5.0, 0.2]))
    assert second.kept == (1, 3, 4)
    last = steps.send(np.array([2.0, 9.0, 1.0]))  # importances of features 1, 3, 4
    assert last.kept == (3,) and last.method is None  # the last round trains but does not attribute
    with pytest.raises(StopIteration):
        steps.send(None)


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "feature_ablation", "deeplift"])
def test_rfewna_on_a_linear_model_keeps_the_largest_weights(method):
    # For f(x) = w.x every method's mean |attribution| orders features like |w_j| (x has the same scale):
    # saliency gives |w_j|, IG/DeepLift/ablation give |w_j x_j| from the zero baseline.
    rng = np.random.default_rng(0)
    w = np.array([0.1, -3.0, 0.2, 2.0, 0.05, -1.5, 0.3, 0.01])
    X = rng.uniform(-1, 1, size=(64, len(w)))
    seen = []

    def fit(Xk: np.ndarray, y: np.ndarray) -> torch.nn.Module:
        cols = [int(np.flatnonzero(np.all(X == Xk[:, [j]], axis=0))[0]) for j in range(Xk.shape[1])]
        seen.append(cols)
        lin = torch.nn.Linear(len(cols), 1)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(w[cols], dtype=torch.float32).unsqueeze(0))
            lin.bias.zero_()
        return lin

    rounds = rfewna(X, X @ w, X, method=method, fit=fit, drop_rate=0.5, target=3)
    assert [len(r.kept) for r in rounds] == [8, 4, 3]
    assert rounds[-1].kept == (1, 3, 5)
    assert seen == [list(r.kept) for r in rounds]
    assert rounds[-1].importance is None


def test_every_symbolic_attribution_method_is_a_selector_and_unknown_names_are_listed():
    names = selector_names()
    for m, spec in METHODS.items():
        if "symbolic" in spec.modalities:
            assert m in names and get_selector(m).family == "attribution"
    assert selector_names("classic") == ["linear", "svm", "tree"]
    assert names.index("tree") > names.index("saliency")
    with pytest.raises(ConfigError, match="Unknown selector 'lasso'. Valid selector names are: .*saliency.*tree"):
        get_selector("lasso")


@pytest.mark.parametrize("task_type", TASK_TYPES)
@pytest.mark.parametrize("name", [n for n, s in SELECTORS.items() if s.family == "classic"])
def test_classic_estimators_rank_features_the_way_rfe_needs(name, task_type):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 5))
    y = X[:, 0] * 2 + X[:, 1] if task_type == "regression" else (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    est = get_selector(name).estimator(task_type, 0).fit(X, y)
    weights = getattr(est, "coef_", getattr(est, "feature_importances_", None))
    assert weights is not None and np.asarray(weights).size == 5
    assert int(np.argmax(np.abs(np.ravel(weights)))) == 0


class _SpyRFE(SklearnRFE):
    calls: list[tuple[int, int, int]] = []

    def fit(self, X, y, **kw):  # noqa: ANN001, ANN003
        _SpyRFE.calls.append((X.shape[1], self.n_features_to_select, self.step))
        return super().fit(X, y, **kw)


@pytest.mark.parametrize("name", ["linear", "svm", "tree"])
def test_classic_baselines_call_scikit_learn_rfe_once_per_round(monkeypatch, name):
    monkeypatch.setattr(selection, "RFE", _SpyRFE)
    _SpyRFE.calls = []
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 12))
    y = 3 * X[:, 4] - 2 * X[:, 9] + 0.1 * rng.standard_normal(200)
    schedule = elimination_schedule(12, 0.5, 2)
    rounds = classic_rfe(name, "regression", X, y, schedule, seed=0)
    assert _SpyRFE.calls == [(12, 6, 6), (6, 3, 3), (3, 2, 1)]
    assert [len(r.kept) for r in rounds] == schedule
    # Each round is exactly what scikit-learn's RFE keeps from the previous round's features.
    for before, after in zip(rounds, rounds[1:]):
        cols = list(before.kept)
        ref = SklearnRFE(get_selector(name).estimator("regression", 0), n_features_to_select=len(after.kept))
        ref.set_params(step=len(cols) - len(after.kept)).fit(X[:, cols], y)
        assert after.kept == tuple(c for c, keep in zip(cols, ref.support_) if keep)
    if name != "svm":
        assert rounds[-1].kept == (4, 9)


@pytest.mark.parametrize("name", selector_names("attribution"))
def test_every_attribution_selector_ranks_the_features_of_an_mlp(name):
    from chaosmining.models.mlp import MLPConfig, build_mlp, init_mlp_parameters, load_parameters

    cfg = MLPConfig(width=8, depth=2)
    net = load_parameters(build_mlp(6, cfg), init_mlp_parameters(6, cfg, torch.Generator().manual_seed(0)))
    X = np.random.default_rng(0).uniform(-1, 1, (16, 6))
    importance, seconds, _ = selection.attribution_importance(net, X, get_selector(name).method, seed=0)
    assert importance.shape == (6,) and np.all(np.isfinite(importance)) and np.all(importance >= 0)
    assert seconds >= 0
    assert len(keep_most_important(tuple(range(6)), importance, 3)) == 3
