"""The 16-d example: least squares finds the informative dimensions, and ROAR vs removal without retraining."""

from __future__ import annotations

import numpy as np
import pytest

from chaosmining.evaluation import RoarConfig, TaskConfig, least_squares, make_toy16, run_roar
from chaosmining.evaluation.toy16 import BAYES_ACCURACY_DENSE, INFORMATIVE

ALL = ("saliency", "input_x_gradient", "oracle", "anti_oracle", "random")


@pytest.mark.parametrize("seed", range(5))
def test_least_squares_weights_rank_the_informative_dimensions_first(seed):
    data = make_toy16(4000, 10, "dense", seed)
    w = least_squares(data.X_train, data.y_train).weight.detach().numpy()[0]
    assert set(np.argsort(-np.abs(w))[:4]) == set(INFORMATIVE)


def test_full_data_accuracy_is_the_bayes_rate():
    data = make_toy16(4000, 20000, "dense", 3)
    model = least_squares(data.X_train, data.y_train)
    pred = model.weight.detach().numpy()[0] @ data.X_test.T + float(model.bias.detach())
    assert ((pred > 0.5) == data.y_test).mean() == pytest.approx(BAYES_ACCURACY_DENSE, abs=0.01)


def test_least_squares_gives_constant_columns_zero_weight():
    data = make_toy16(500, 10, "dense", 0)
    X = data.X_train.copy()
    X[:, 2] = X[:, 2].mean()
    w = least_squares(X, data.y_train).weight.detach().numpy()[0]
    assert w[2] == 0.0 and np.isfinite(w).all()


@pytest.fixture(scope="module")
def dense_roar(session_cache):
    cfg = RoarConfig(task=TaskConfig(task="toy16", distractor="dense"), methods=ALL, repeats=2)
    return run_roar(cfg)


def test_roar_with_the_oracle_ranking_falls_to_chance_by_the_fraction_that_removes_them(dense_roar):
    oracle = dict(zip(dense_roar.fractions, dense_roar.curves["oracle"].score))
    random = dict(zip(dense_roar.fractions, dense_roar.curves["random"].score))
    # t = 0.3 removes floor(0.3 * 16) = 4 units: all four informative dimensions.
    assert oracle[0.3] == pytest.approx(0.5, abs=0.03)
    assert random[0.3] > oracle[0.3] + 0.1
    assert dense_roar.curves["saliency"].score[1] == pytest.approx(0.5, abs=0.03)


def test_removing_only_suppressors_misleads_without_retraining(dense_roar):
    """The anti-oracle removes uninformative dimensions only: retraining keeps the accuracy, no-retrain does not."""
    i = dense_roar.fractions.index(0.5)
    retrained = dense_roar.curves["anti_oracle"].score[i]
    plain = dense_roar.no_retrain["anti_oracle"].score[i]
    assert retrained > 0.8
    assert plain < retrained - 0.1


def test_without_a_distractor_retraining_changes_nothing():
    cfg = RoarConfig(task=TaskConfig(task="toy16", distractor="zero"), methods=("anti_oracle", "random"), repeats=2)
    res = run_roar(cfg)
    for k in ("anti_oracle", "random"):
        np.testing.assert_allclose(res.curves[k].score[:3], res.no_retrain[k].score[:3], atol=0.03)


def test_kar_fails_when_the_distractor_is_collinear_with_the_signal():
    cfg = RoarConfig(task=TaskConfig(task="toy16", distractor="one"), methods=("oracle",), keep=True, repeats=2)
    res = run_roar(cfg)
    kept_informative = dict(zip(res.fractions, res.curves["oracle"].score))[0.3]
    assert kept_informative < 0.6
