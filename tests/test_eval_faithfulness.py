"""Deletion/insertion curves and Sensitivity-n against the published definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chaosmining.attribution import attribute
from chaosmining.evaluation import FaithfulnessConfig, TaskConfig, load_task, run_faithfulness, sensitivity_n
from chaosmining.evaluation.common import Progress
from chaosmining.evaluation.faithfulness import default_n_values, insertion_substrate


@pytest.fixture(scope="module")
def toy(session_cache):
    return load_task(TaskConfig(task="toy16", n_train=2000, n_test=200))


@pytest.mark.parametrize("method", ["input_x_gradient", "integrated_gradients"])
def test_sensitivity_n_of_input_x_gradient_on_a_linear_model_is_one_for_every_n(toy, method):
    X = toy.X_test[:20]
    attr = attribute(toy.model, X, method, target=0).values
    r = sensitivity_n(toy, attr, X, (1, 2, 4, 8, 12), subsets=30, seed=0, progress=Progress(1))
    np.testing.assert_allclose(r, 1.0, atol=1e-4)


def test_sensitivity_n_of_the_plain_gradient_is_not_one(toy):
    X = toy.X_test[:20]
    attr = attribute(toy.model, X, "saliency", target=0).values
    r = sensitivity_n(toy, attr, X, (2, 4), subsets=30, seed=0)
    assert np.nanmean(r) < 0.5


def test_default_n_values_are_powers_of_two_up_to_eighty_percent():
    assert default_n_values(16) == (1, 2, 4, 8)
    assert max(default_n_values(10_000)) <= 8000 and len(default_n_values(10_000)) <= 8


def test_insertion_substrate_blurs_images_and_uses_the_mean_for_tabular():
    X = np.zeros((1, 3, 16, 16), dtype=np.float32)
    X[0, :, 8, 8] = 1.0
    blurred = insertion_substrate(X, "image", np.zeros((3, 16, 16)))
    assert blurred[0, 0, 8, 8] < 0.2 and blurred.sum() == pytest.approx(3.0, rel=0.01)
    tab = insertion_substrate(np.ones((2, 4), dtype=np.float32), "tabular", np.full(4, 0.5))
    assert (tab == 0.5).all()


def test_deletion_of_the_informative_dimensions_first_collapses_the_toy_model():
    cfg = FaithfulnessConfig(
        task=TaskConfig(task="toy16", n_train=2000, n_test=300),
        methods=("saliency", "input_x_gradient", "random"),
        samples=300,
        steps=8,
        sens_samples=10,
        subsets=20,
    )
    res = run_faithfulness(cfg)
    auc = res.aucs()
    assert auc["saliency"]["deletion_auc"] < auc["random"]["deletion_auc"]
    assert auc["saliency"]["insertion_auc"] > auc["random"]["insertion_auc"]
    assert res.deletion["random"].score[0] == pytest.approx(1.0)  # nothing removed: every decision unchanged
    np.testing.assert_allclose(res.sensitivity["input_x_gradient"].score, 1.0, atol=1e-4)
    assert set(res.summary()["auc"]) == {"saliency", "input_x_gradient", "random"}
    assert "deletion" in res.reading().lower()
    assert torch.get_num_threads() >= 1
