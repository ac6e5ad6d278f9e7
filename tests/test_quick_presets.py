"""The quick preset's recipe learns: a scaled-down quick preset (same recipe: one-cycle AdamW, recomposed
epochs, the compact CNN) leaves chance on a small seed set, fast enough for every test run.

The full-size check (every condition, two seeds, wall and CPU time) is ``bench/bench_presets.py``.
"""

from __future__ import annotations

import pytest

from chaosmining.experiments.vision import PRESETS, VisionConfig, VisionEvalConfig, run_vision

# The quick preset's recipe on a 48-px canvas with a 16-px foreground, 1,200 images.
SMALL = dict(canvas=48, foreground_size=16, train_size=1_200, val_size=200)


def test_the_quick_preset_recomposes_and_trains_long_enough():
    p = PRESETS.get("quick")
    assert p.recompose and p.epochs >= 16 and p.schedule == "onecycle"
    cfg = VisionConfig.from_preset("quick")
    assert cfg.train.recompose and cfg.train.epochs == p.epochs


@pytest.mark.parametrize("seed", [0, pytest.param(7, marks=pytest.mark.slow)])
def test_the_quick_recipe_learns_on_a_small_canvas(tmp_cache, seed):
    # About 10 s of CPU per seed on one core (about a minute of wall time on the shared 2-core machine).
    cfg = VisionConfig.from_preset("quick", seed=seed, train={"epochs": 12}, **SMALL)
    ev = VisionEvalConfig.for_config(cfg, ("saliency",), samples=50, gallery=0)
    result = run_vision(cfg, ev, cache=tmp_cache, device="cpu")
    assert result.learned, (result.accuracy, result.history["val_accuracy"])
    assert result.learning_note is None
