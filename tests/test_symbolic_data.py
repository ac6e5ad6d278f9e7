"""Symbolic data generation and the sympy ground truths."""

from __future__ import annotations

import numpy as np
import pytest

from chaosmining.data.formulas import get_formula, parse_formula
from chaosmining.data.symbolic import SymbolicDataConfig, ground_truth, make_symbolic_data
from chaosmining.errors import ConfigError, DataError, ResourceError


def test_shapes_split_and_feature_distribution():
    cfg = SymbolicDataConfig(formula="8", noise_features=20, samples=5000)
    ds = make_symbolic_data(cfg, seed=1)
    assert ds.X_train.shape == (4000, 23) and ds.X_test.shape == (1000, 23)
    assert ds.relevant == (0, 1, 2) and ds.relevant_mask.sum() == 3
    X = np.vstack([ds.X_train, ds.X_test])
    assert X.min() >= -1 and X.max() <= 1
    assert abs(X.std() - 0.33) < 0.01  # clipping at +-3 sigma barely changes the spread
    assert ds.feature_names()[:3] == ["a", "b", "c"] and ds.feature_names()[3] == "noise0"


@pytest.mark.parametrize("noise", [0.0, 0.01, 0.16])
def test_label_noise_has_the_requested_standard_deviation_on_training_targets_only(noise):
    ds = make_symbolic_data(
        SymbolicDataConfig(formula="1", noise_features=0, samples=50_000, label_noise=noise), seed=0
    )
    assert np.std(ds.y_train - ds.y_train_clean) == pytest.approx(noise, rel=0.02, abs=1e-12)
    np.testing.assert_allclose(ds.y_test, ds.formula(ds.X_test))  # test targets are noise-free


def test_generation_is_deterministic_in_the_seed():
    cfg = SymbolicDataConfig(formula="3", noise_features=5, samples=200)
    a, b, c = (make_symbolic_data(cfg, seed=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.X_train, c.X_train)


def test_non_finite_formula_is_reported_with_a_fix():
    with pytest.raises(DataError, match=r"not finite.*log\(a\*\*2\+1\)"):
        make_symbolic_data(SymbolicDataConfig(formula="log(a)", noise_features=0, samples=100), seed=0)


def test_too_few_samples_and_too_large_sizes_are_refused():
    with pytest.raises(DataError, match="samples"):
        SymbolicDataConfig(formula="1", samples=10, test_fraction=0.05)
    with pytest.raises(ConfigError, match="'samples'"):
        SymbolicDataConfig(formula="1", samples=3)
    with pytest.raises(ResourceError, match="Reduce 'samples' or 'noise_features'"):
        SymbolicDataConfig(formula="1", samples=100_000_000, noise_features=100_000)


def test_derivative_ground_truth_is_zero_outside_the_relevant_columns():
    ds = make_symbolic_data(SymbolicDataConfig(formula="13", noise_features=4, samples=100), seed=0)
    g = ground_truth("derivative", ds.formula, ds.X_test)
    assert g.shape == ds.X_test.shape
    assert np.all(g[:, 7:] == 0)  # h (column 7) and the noise features
    np.testing.assert_allclose(g[:, 0], 1.0)  # d/da of a


def test_ablation_ground_truth_is_f_minus_f_with_the_feature_zeroed():
    f = parse_formula("a*b + c**2")
    X = np.array([[0.5, -0.2, 0.3]])
    g = ground_truth("ablation", f, X)
    np.testing.assert_allclose(g[0], [0.5 * -0.2, 0.5 * -0.2, 0.09])


def test_path_integral_is_exact_for_linear_formulas_and_converges_to_ig():
    lin = parse_formula("2*a - 3*b")
    X = np.array([[0.4, -0.7], [-0.1, 0.2]])
    np.testing.assert_allclose(ground_truth("path_integral", lin, X, steps=3), [[0.8, 2.1], [-0.2, -0.6]])
    # a*b from 0: IG_a = integral_0^1 (t b)(a) dt = a*b/2, likewise IG_b; the Riemann sum converges to it.
    f = parse_formula("a*b")
    X = np.array([[0.6, -0.5]])
    coarse = ground_truth("path_integral", f, X, steps=5)
    fine = ground_truth("path_integral", f, X, steps=2000)
    np.testing.assert_allclose(fine, [[-0.15, -0.15]], atol=1e-3)
    assert np.abs(coarse - fine).max() > np.abs(fine - [[-0.15, -0.15]]).max()
    # approximately complete: the coordinate-wise differences of eq. 12 telescope only in the limit
    np.testing.assert_allclose(fine.sum(), f(X)[0] - 0.0, atol=1e-3)


def test_formula_13_declared_column_h_is_a_noise_column():
    ds = make_symbolic_data(SymbolicDataConfig(formula="13", noise_features=2, samples=100), seed=0)
    assert ds.n_features == 10 and 7 not in ds.relevant
    assert get_formula("13").relevant == ds.relevant
