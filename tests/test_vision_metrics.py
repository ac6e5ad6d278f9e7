"""The paper's IoU protocol, its floor and ceiling, and the box-free localisation scores, on known maps."""

from __future__ import annotations

import numpy as np
import pytest

from chaosmining.experiments.vision import (
    attribution_maps,
    box_iou,
    localisation_scores,
    paper_sigma,
    patch_mask,
    perfect_map_iou,
    random_map_iou,
    smooth_maps,
    topk_box,
)


def _indicator(box, canvas=224):
    m = np.zeros((canvas, canvas), dtype=np.float32)
    t, left, h, w = box
    m[t : t + h, left : left + w] = 1.0
    return m


def test_iou_of_identical_boxes_is_one_and_of_disjoint_boxes_zero():
    assert box_iou((96, 96, 32, 32), (96, 96, 32, 32)) == 1.0
    assert box_iou((0, 0, 32, 32), (100, 100, 32, 32)) == 0.0
    assert box_iou((0, 0, 10, 10), (0, 10, 10, 10)) == 0.0  # touching edges share no area
    assert box_iou((0, 0, 10, 10), (0, 5, 10, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_topk_box_spans_the_k_highest_pixels_by_corner_coordinates():
    m = np.zeros((10, 10))
    m[2, 3], m[6, 8], m[4, 5] = 5.0, 4.0, 3.0
    assert topk_box(m, 2) == (2, 3, 4, 5)  # rows 2..6, columns 3..8
    assert topk_box(m, 1) == (2, 3, 0, 0)


def test_a_perfect_map_reaches_the_protocols_ceiling_of_0_94_at_224_px():
    box = (96, 96, 32, 32)
    sigma = paper_sigma(224)
    assert sigma == 6.0
    pred = topk_box(smooth_maps(_indicator(box)[None], sigma)[0], 32 * 32)
    ceiling = perfect_map_iou(np.array([box]), 224, sigma)[0]
    assert box_iou(pred, box) == pytest.approx(ceiling)
    # Smoothing widens the retrieved region to 33 px (corner coordinates 95..128): 1024 / 1089.
    assert ceiling == pytest.approx(1024 / 1089)
    scores = localisation_scores(_indicator(box)[None], np.array([box]), sigma)
    assert scores["iou"][0] == pytest.approx(ceiling)
    assert scores["pointing"][0] == 1.0 and scores["mass"][0] == pytest.approx(1.0)


def test_a_random_map_scores_the_floor_of_about_0_02():
    boxes = np.array([(96, 96, 32, 32)] * 8)
    floor = random_map_iou(boxes, 224, 6.0, np.random.default_rng(0))
    assert 0.015 < floor.mean() < 0.04  # the paper's AlexNet rows: 0.021


def test_box_free_scores_have_the_box_share_as_chance_and_follow_the_mass():
    box = (10, 20, 8, 8)
    uniform = np.ones((1, 64, 64), dtype=np.float32)
    s = localisation_scores(uniform, np.array([box]), 0.0)
    assert s["mass"][0] == pytest.approx(64 / 4096)
    off = np.zeros((1, 64, 64), dtype=np.float32)
    off[0, 50, 50] = 1.0
    s = localisation_scores(off, np.array([box]), 0.0)
    assert s["pointing"][0] == 0.0 and s["mass"][0] == 0.0
    on = off.copy()
    on[0, 12, 25] = 2.0
    s = localisation_scores(on, np.array([box]), 0.0)
    assert s["pointing"][0] == 1.0 and s["mass"][0] == pytest.approx(2 / 3)
    zero = localisation_scores(np.zeros((1, 64, 64), np.float32), np.array([box]), 1.0)
    assert zero["mass"][0] == 0.0


def test_attribution_maps_average_absolute_values_over_channels():
    v = np.zeros((2, 3, 4, 4), dtype=np.float32)
    v[0, 0, 1, 1], v[0, 1, 1, 1], v[0, 2, 1, 1] = 3.0, -3.0, 0.0
    m = attribution_maps(v)
    assert m.shape == (2, 4, 4) and m[0, 1, 1] == pytest.approx(2.0) and m[1].sum() == 0


def test_patch_mask_is_the_papers_7x7_grid_of_32_px_patches():
    mask = patch_mask(224, 32)
    assert mask.shape == (1, 1, 224, 224)
    values, counts = np.unique(mask.numpy(), return_counts=True)
    assert values.tolist() == list(range(49)) and set(counts.tolist()) == {1024}
    assert mask[0, 0, 96, 96] == 24  # the centre patch holds the fixed-position foreground
    odd = patch_mask(100, 32)  # a canvas that is not a multiple: partial patches at the edges
    assert int(odd.max()) == 15
