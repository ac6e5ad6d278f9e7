"""Ranking, masks, post-processing, blurriness measures and the imputers, against known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from scipy.sparse.linalg import spsolve

from chaosmining.errors import ConfigError
from chaosmining.evaluation import (
    apply_mask,
    boundary_ratio,
    connected_components,
    coverage,
    fit_imputer,
    impute_image_linear,
    impute_time_linear,
    mask_probe,
    postprocess,
    rank_units,
    removal_mask,
    unit_scores,
)
from chaosmining.evaluation.imputation import _NEIGHBOURS
from chaosmining.evaluation.removal import units_for_fraction


def test_unit_scores_aggregate_colour_channels_only_for_images():
    a = np.array([[[[1.0, -2.0]], [[3.0, 4.0]]]])  # (1, 2 channels, 1, 2)
    np.testing.assert_allclose(unit_scores(a, "image", "abs"), [[[4.0, 6.0]]])
    np.testing.assert_allclose(unit_scores(a, "image", "signed"), [[[4.0, 2.0]]])
    np.testing.assert_allclose(unit_scores(a, "image", "square"), [[[10.0, 20.0]]])
    tab = np.array([[1.0, -3.0]])
    np.testing.assert_allclose(unit_scores(tab, "tabular"), [[1.0, 3.0]])


def test_ranking_breaks_ties_with_one_order_shared_by_all_samples():
    scores = np.array([[1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 1.0]])
    order = rank_units(scores, np.random.default_rng(0))
    assert (order[0] == order[1]).all()
    assert set(order[0, :3]) == {0, 1, 3} and order[0, 3] == 2


def test_removal_masks_count_the_fraction_named():
    order = np.tile(np.arange(10), (2, 1))
    assert units_for_fraction(0.3, 16) == 4  # floor, as Hooker et al.'s k
    morf = removal_mask(order, (10,), 0.3, "morf")
    lerf = removal_mask(order, (10,), 0.3, "lerf")
    keep = removal_mask(order, (10,), 0.3, "keep")
    assert morf[0, :3].all() and morf.sum() == 6
    assert lerf[0, 7:].all() and lerf.sum() == 6
    assert not keep[0, :3].any() and keep.sum() == 14
    with pytest.raises(ConfigError, match="'order'"):
        removal_mask(order, (10,), 0.3, "sideways")


def test_apply_mask_replaces_the_same_pixels_in_every_channel():
    X = np.ones((1, 3, 2, 2), dtype=np.float32)
    mask = np.array([[[True, False], [False, False]]])
    fill = np.zeros((3, 2, 2), dtype=np.float32)
    out = apply_mask(X, mask, fill, "image")
    assert (out[0, :, 0, 0] == 0).all() and out.sum() == 9


def test_blurring_lowers_the_boundary_measure():
    rng = np.random.default_rng(0)
    scores = rng.random((20, 16, 16))
    raw = removal_mask(rank_units(scores, rng), (16, 16), 0.3)
    for kind in ("max", "gaussian"):
        blurred = removal_mask(rank_units(postprocess(scores, kind, "image"), rng), (16, 16), 0.3)
        assert np.nanmean(boundary_ratio(blurred, "image")) < 0.7 * np.nanmean(boundary_ratio(raw, "image"))
        assert connected_components(blurred, "image").mean() < connected_components(raw, "image").mean()
    # A random mask is as rough as random by construction.
    assert np.nanmean(boundary_ratio(raw, "image")) == pytest.approx(1.0, abs=0.06)


def test_audio_postprocessing_and_boundaries_run_along_time_only():
    scores = np.zeros((1, 2, 8))
    scores[0, 0, 4] = 1.0
    blurred = postprocess(scores, "max", "audio")
    np.testing.assert_allclose(blurred[0, 0], [0, 0, 0, 1, 1, 1, 0, 0])
    assert (blurred[0, 1] == 0).all()  # never across channels
    mask = np.zeros((1, 2, 8), dtype=bool)
    mask[0, :, :4] = True  # each channel: one edge among 7 time pairs; p = 1/2
    assert boundary_ratio(mask, "audio")[0] == pytest.approx((2 / 14) / 0.5)
    assert connected_components(mask, "audio")[0] == 2


def test_postprocessing_is_refused_for_tabular_data():
    with pytest.raises(ConfigError, match="'postprocess' parameter must be 'none' for tabular data"):
        postprocess(np.ones((2, 5)), "gaussian", "tabular")


def test_coverage_and_components():
    mask = np.zeros((1, 5, 5), dtype=bool)
    mask[0, 0, 0] = mask[0, 4, 4] = True
    relevant = np.zeros_like(mask)
    relevant[0, 0, :2] = True
    assert connected_components(mask, "image")[0] == 2
    assert coverage(mask, relevant)[0] == 0.5


def test_mask_probe_reads_a_class_written_in_the_mask_shape():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    masks = rng.random((400, 8, 8)) < 0.2
    masks[y == 1, :2, :2] = True  # class 1 always removes the corner
    assert mask_probe(masks[:300], y[:300], masks[300:], y[300:], classify=True) > 0.9
    noise = rng.random((400, 8, 8)) < 0.2
    assert mask_probe(noise[:300], y[:300], noise[300:], y[300:], classify=True) < 0.7


def _ramp(h: int = 9, w: int = 11) -> np.ndarray:
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([0.3 * r - 0.2 * c + 1.0, 0.1 * r, -0.05 * c])


def test_the_noisy_linear_imputer_reproduces_a_linear_ramp_exactly():
    x = _ramp()
    removed = np.zeros(x.shape[1:], dtype=bool)
    removed[1:-1, 1:-1] = np.random.default_rng(1).random((7, 9)) < 0.6
    np.testing.assert_allclose(impute_image_linear(x, removed), x, atol=1e-12)


def test_the_linear_imputer_solves_all_removed_pixels_jointly():
    """Every removed pixel is the renormalised 8-neighbour mean of the *imputed* image (a dense check)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 6, 6))
    removed = rng.random((6, 6)) < 0.5
    out = impute_image_linear(x, removed)[0]
    for r, c in zip(*np.nonzero(removed)):
        total = value = 0.0
        for dr, dc, w in _NEIGHBOURS:
            if 0 <= r + dr < 6 and 0 <= c + dc < 6:
                total += w
                value += w * out[r + dr, c + dc]
        assert out[r, c] == pytest.approx(value / total, abs=1e-10)
    assert (out[~removed] == x[0][~removed]).all()


def test_the_time_imputer_is_the_joint_solution_of_the_chain():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 12))
    removed = np.zeros((1, 12), dtype=bool)
    removed[0, [0, 3, 4, 5, 9, 11]] = True
    out = impute_time_linear(x, removed)[0]
    # Solve x_t = mean of its neighbours in the chain (one neighbour at the ends) with a sparse system.
    idx = np.flatnonzero(removed[0])
    pos = {t: i for i, t in enumerate(idx)}
    A = sparse.lil_matrix((len(idx), len(idx)))
    b = np.zeros(len(idx))
    for i, t in enumerate(idx):
        nbs = [u for u in (t - 1, t + 1) if 0 <= u < 12]
        A[i, i] = 1.0
        for u in nbs:
            if u in pos:
                A[i, pos[u]] -= 1 / len(nbs)
            else:
                b[i] += x[0, u] / len(nbs)
    np.testing.assert_allclose(out[idx], spsolve(A.tocsr(), b), atol=1e-12)


def test_conditional_imputation_recovers_a_feature_from_its_correlated_copy():
    rng = np.random.default_rng(4)
    z = rng.standard_normal(2000)
    X = np.stack([z, 2 * z + 0.01 * rng.standard_normal(2000), rng.standard_normal(2000)], axis=1).astype(np.float32)
    impute = fit_imputer("linear", X, "tabular")
    mask = np.zeros((5, 3), dtype=bool)
    mask[:, 1] = True
    out = impute(X[:5], mask, np.random.default_rng(0))
    np.testing.assert_allclose(out[:, 1], X[:5, 1], atol=0.1)
    mean_out = fit_imputer("mean", X, "tabular")(X[:5], mask, np.random.default_rng(0))
    np.testing.assert_allclose(mean_out[:, 1], X[:, 1].mean(), atol=1e-6)


def test_noisy_linear_imputation_adds_noise_of_one_percent_of_the_range_only_where_removed():
    X = np.zeros((200, 1, 6, 6), dtype=np.float32)
    X[:, :, 0, 0] = 1.0  # channel range 1
    impute = fit_imputer("linear", X, "image")
    mask = np.zeros((200, 6, 6), dtype=bool)
    mask[:, 3, 3] = True
    out = impute(np.zeros_like(X), mask, np.random.default_rng(0))
    assert out[:, 0, 3, 3].std() == pytest.approx(0.01, rel=0.15)
    assert (out[:, 0][~mask] == 0).all()
