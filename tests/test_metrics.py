"""Metrics with answers known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from chaosmining.metrics import (
    METRICS,
    attribution_uscore,
    consistency,
    convergence,
    fprec,
    fprec_per_sample,
    mae,
    random_fprec_expectation,
    topk_indices,
    uscore,
)


def test_fprec_is_one_when_the_attribution_equals_the_ground_truth():
    rng = np.random.default_rng(0)
    gt = np.zeros((50, 30))
    gt[:, :4] = rng.standard_normal((50, 4)) + 3 * np.sign(rng.standard_normal((50, 4)))
    assert fprec(gt, relevant=range(4)) == 1.0
    assert attribution_uscore(gt, gt, relevant=range(4)) == pytest.approx(1.0)


def test_fprec_of_random_scores_is_near_k_over_d():
    rng = np.random.default_rng(1)
    a = rng.random((20000, 105))
    assert fprec(a, relevant=range(5)) == pytest.approx(random_fprec_expectation(5, 105), abs=0.005)


def test_fprec_counts_hand_example_and_uses_absolute_values():
    a = np.array([[-5.0, 0.1, 4.0, 0.2], [0.0, 1.0, 0.5, 2.0]])
    np.testing.assert_allclose(fprec_per_sample(a, relevant=[0, 1]), [0.5, 0.5])
    np.testing.assert_array_equal(topk_indices(a, 2), [[0, 2], [3, 1]])


def test_uscore_definition():
    a = np.array([1.0, -2.0, 0.5])
    assert uscore(a, a) == pytest.approx(1.0)
    assert uscore(a, -a) == pytest.approx(0.0, abs=1e-6)
    assert uscore(np.array([1.0]), np.array([3.0])) == pytest.approx(1 - 2 / 4)
    assert uscore(a, a * 2) == pytest.approx(uscore(a * 2, a))


def test_attribution_uscore_normalises_attribution_over_all_features_and_truth_over_relevant():
    truth = np.array([[2.0, 1.0, 0.0, 0.0]])
    attr = np.array([[2.0, 1.0, 1.0, 0.0]])  # a quarter of the L1 mass on a noise feature
    a_n = np.array([0.5, 0.25])
    g_n = np.array([2 / 3, 1 / 3])
    expected = np.mean(1 - np.abs(a_n - g_n) / (a_n + g_n))
    assert attribution_uscore(attr, truth, relevant=[0, 1]) == pytest.approx(expected, rel=1e-6)


def test_consistency_and_convergence():
    same = np.tile([[3.0, 2.0, 0.1, 0.0]], (10, 1))
    assert consistency(same, 2) == 1.0
    assert convergence([0, 10, 20], [0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert convergence([0, 10], [0.0, 1.0]) == pytest.approx(0.5)
    assert mae([1.0, 2.0], [2.0, 2.0]) == 0.5


def test_metric_registry_declares_direction_and_category():
    assert METRICS.get("fprec").higher_is_better and not METRICS.get("test_mae").higher_is_better
    assert all(spec.category for _, spec in METRICS.items())


def test_localisation_and_channel_metrics_are_registered_with_direction_and_chance():
    from chaosmining.metrics import chance_level

    boxes = np.array([[8, 8, 8, 8]])
    oracle = np.zeros((1, 32, 32))
    oracle[0, 8:16, 8:16] = 1.0
    for name in ("iou", "pointing_game", "mass_inside", "channel_fprec", "top1_hit"):
        spec = METRICS.get(name)
        assert spec.higher_is_better and spec.chance is not None and spec.chance_note
    assert METRICS.get("pointing_game").fn(oracle, boxes) == 1.0
    assert METRICS.get("mass_inside").fn(oracle, boxes) == 1.0
    assert METRICS.get("iou").fn(oracle, boxes, 0.0) > 0.7  # corner-coordinate boxes: (7/8)^2
    assert chance_level("pointing_game", boxes=boxes, canvas=32) == 64 / 1024
    speech = np.zeros((2, 4, 10))
    speech[0, 1], speech[1, 3] = 1.0, 1.0
    assert METRICS.get("channel_fprec").fn(speech, np.array([1, 3])) == 1.0
    assert METRICS.get("top1_hit").fn(speech, np.array([1, 3])) == 1.0
    assert chance_level("channel_fprec", channels=4) == 0.25
    rng = np.random.default_rng(0)
    assert 0.0 < chance_level("iou", boxes=boxes, canvas=32, sigma=1.0, rng=rng) < 0.5
