"""Sanity checks and the map-similarity metrics, on small models whose behaviour is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from torch import nn

from chaosmining.errors import ConfigError
from chaosmining.evaluation import (
    SanityConfig,
    TaskConfig,
    parametrised_layers,
    randomised,
    run_sanity,
    similarity,
    ssim,
)

TINY_FORMULA = TaskConfig(task="formula:7", n_train=400, n_test=60, epochs=150)


def test_identical_maps_are_similar_by_every_metric():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 3, 16, 16))
    for name in ("spearman_abs", "spearman", "ssim", "hog"):
        np.testing.assert_allclose(similarity(name, a, a, "image"), 1.0, atol=1e-9)
    np.testing.assert_allclose(similarity("spearman", a, -a, "image"), -1.0, atol=1e-9)
    tab = rng.standard_normal((4, 10))
    np.testing.assert_allclose(similarity("spearman", tab, 2 * tab + 1, "tabular"), 1.0)


def test_our_ssim_matches_scikit_image_on_images():
    rng = np.random.default_rng(1)
    a = rng.random((16, 16))
    b = a + 0.3 * rng.random((16, 16))
    ref = structural_similarity(a, b, data_range=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(a, b, (0, 1), data_range=2) == pytest.approx(ref, abs=1e-12)


def test_layers_are_listed_in_forward_order_and_randomised_one_by_one():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    layers = parametrised_layers(model, torch.zeros(1, 4))
    assert [n for n, _ in layers] == ["0", "2"]
    twin = randomised(model, ["2"], seed=1)
    assert torch.equal(twin[0].weight, model[0].weight)
    assert not torch.equal(twin[2].weight, model[2].weight)


@pytest.fixture(scope="module")
def cascading(session_cache):
    return run_sanity(SanityConfig(task=TINY_FORMULA, methods=("saliency", "guided_backprop"), test="cascading"))


def test_cascading_randomisation_of_the_last_layer_changes_the_signed_saliency_map(cascading):
    top = cascading.steps[0]
    assert top.startswith("Linear")
    assert cascading.values["saliency"][top]["spearman"][0] < 0.5
    assert set(cascading.metrics) == {"spearman_abs", "spearman"}  # no SSIM or HOG for tabular data
    assert len(cascading.steps) == len(cascading.info["layers"]) == 3


def test_sanity_summary_is_per_method_and_layer(cascading):
    out = cascading.summary()
    assert out["test"] == "cascading"
    assert set(out["methods"]["saliency"]) == set(cascading.steps)
    assert isinstance(out["methods"]["saliency"][cascading.steps[0]]["spearman"], float)
    assert "Spearman" in cascading.reading()


def test_random_logit_needs_a_classifier():
    cfg = SanityConfig(task=TINY_FORMULA, methods=("saliency",), test="random-logit")
    with pytest.raises(ConfigError, match="random-logit"):
        run_sanity(cfg)


def test_sanity_refuses_controls_and_unknown_tests():
    with pytest.raises(ConfigError, match="controls"):
        SanityConfig(task=TINY_FORMULA, methods=("saliency", "oracle"))
    with pytest.raises(ConfigError, match="The 'test' parameter of SanityConfig must be one of"):
        SanityConfig(task=TINY_FORMULA, test="shuffle")


def test_label_randomisation_on_a_tiny_image_task():
    task = TaskConfig(task="vision", n_train=120, n_test=40, epochs=1)
    cfg = SanityConfig(
        task=task, methods=("saliency",), test="labels", samples=8, label_samples=120, true_scale=2.0, memorise=4.0
    )
    res = run_sanity(cfg)
    assert res.steps == ["true vs permuted labels", "true vs true (other seed)"]
    assert set(res.metrics) == {"spearman_abs", "spearman", "ssim", "hog"}
    for key in ("permuted_train_score", "permuted_test_score", "control_test_score"):
        assert 0.0 <= res.info[key] <= 1.0
