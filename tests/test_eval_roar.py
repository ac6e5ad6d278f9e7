"""Tasks, configurations and the ROAR / ROAD / blur runs on tiny image and audio tasks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chaosmining.errors import ConfigError
from chaosmining.evaluation import (
    BlurConfig,
    RoadConfig,
    RoarConfig,
    TaskConfig,
    default_fractions,
    estimator_names,
    load_task,
    run_blur,
    run_road,
    run_roar,
    task_names,
)
from chaosmining.evaluation.lite import make_shapes16, make_tones

TINY_VISION = TaskConfig(task="vision", n_train=200, n_test=80, epochs=1)
TINY_AUDIO = TaskConfig(task="audio", n_train=200, n_test=80, epochs=1)


def test_task_names_and_errors_name_the_parameter():
    assert task_names() == ["toy16", "formula:ID", "vision", "audio", "vision-quick"]
    with pytest.raises(ConfigError, match="The 'task' parameter of TaskConfig must be one of"):
        TaskConfig(task="imagenet")
    with pytest.raises(ConfigError, match="'formula:ID'"):
        TaskConfig(task="formula")
    with pytest.raises(ConfigError, match="The 'n_train' parameter of TaskConfig"):
        TaskConfig(task="toy16", n_train=5)
    with pytest.raises(ConfigError, match="The 'distractor' parameter"):
        TaskConfig(task="toy16", distractor="two")


def test_the_distractor_only_matters_to_the_toy_hash():
    assert TaskConfig(task="vision", distractor="one").config_hash == TaskConfig(task="vision").config_hash
    assert TaskConfig(task="toy16", distractor="one").config_hash != TaskConfig(task="toy16").config_hash


def test_lite_data_place_the_ground_truth_where_the_signal_is():
    shapes = make_shapes16(50, 0)
    assert shapes.X.shape == (50, 3, 16, 16) and shapes.relevant.shape == (50, 16, 16)
    assert (shapes.relevant.sum(axis=(1, 2)) == 36).all()  # the 6x6 box
    inside = np.abs(shapes.X).transpose(0, 2, 3, 1)[shapes.relevant].mean()
    outside = np.abs(shapes.X).transpose(0, 2, 3, 1)[~shapes.relevant].mean()
    assert inside > 2 * outside
    tones = make_tones(50, 0)
    assert (tones.relevant.sum(axis=(1, 2)) == 64).all()
    assert np.abs(tones.X[tones.relevant]).mean() > 1.3 * np.abs(tones.X[~tones.relevant]).mean()


def test_default_fractions_are_dense_below_the_relevant_share():
    assert default_fractions(0.25, 16) == (0.1, 0.3, 0.5, 0.7, 0.9)
    grid = default_fractions(0.14, 256)
    assert grid == (0.035, 0.07, 0.14, 0.28, 0.5)
    assert len(default_fractions(0.01, 20)) == len(set(default_fractions(0.01, 20)))


def test_estimators_per_modality():
    assert "sobel" in estimator_names("image") and "sobel" not in estimator_names("tabular")
    assert {"oracle", "random", "smoothgrad_sq", "vargrad"} <= set(estimator_names("audio"))


def test_roar_config_validation():
    with pytest.raises(ConfigError, match="The 'postprocess' parameter of RoarConfig must be 'none'"):
        RoarConfig(task=TaskConfig(task="toy16"), postprocess="max")
    with pytest.raises(ConfigError, match="The 'methods' parameter of RoarConfig must be among"):
        RoarConfig(task=TaskConfig(task="toy16"), methods=("gradcam",))
    with pytest.raises(ConfigError, match="The 'fractions' parameter of RoarConfig must hold fractions in"):
        RoarConfig(task=TaskConfig(task="toy16"), fractions=(0.5, 1.5))
    with pytest.raises(ConfigError, match="The 'repeats' parameter of RoarConfig"):
        RoarConfig(task=TaskConfig(task="toy16"), repeats=0)
    with pytest.raises(ConfigError, match="control 'sobel' needs image"):
        run_roar(RoarConfig(task=TaskConfig(task="toy16", n_train=50, n_test=50), methods=("sobel",)))


def test_config_round_trips_through_its_dict():
    cfg = RoarConfig.create(TINY_VISION, ["saliency", "smoothgrad"], {"smoothgrad": {"samples": 3}}, fractions=(0.1,))
    again = RoarConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.config_hash == cfg.config_hash
    assert cfg.params_for("smoothgrad") == {"samples": 3, "noise_level": 0.15}


@pytest.fixture(scope="module")
def vision_roar(session_cache):
    cfg = RoarConfig(
        task=TINY_VISION, methods=("saliency", "random", "oracle", "sobel"), fractions=(0.141, 0.5), probe=True
    )
    return run_roar(cfg)


def test_roar_on_a_tiny_image_task(vision_roar):
    res = vision_roar
    assert res.fractions == (0.141, 0.5)
    assert set(res.curves) == set(res.no_retrain) == {"saliency", "random", "oracle", "sobel"}
    assert res.n_retrains == 8 and res.retrain_seconds > 0
    assert set(res.mask_stats["oracle"]) == {"coverage", "boundary_ratio", "components"}
    # The oracle removes the whole 6x6 box at floor(0.141 * 256) = 36 pixels.
    assert res.mask_stats["oracle"]["coverage"][0] == pytest.approx(1.0)
    assert "epochs of Adam" in res.task["budget"]


def test_roar_summary_is_the_cli_contract(vision_roar):
    out = json.loads(json.dumps(vision_roar.summary()))
    for method, points in out["methods"].items():
        assert [p["fraction"] for p in points] == [0.141, 0.5]
        assert all({"fraction", "score", "spread"} <= set(p) for p in points)
        assert len(out["spread"][method]) == 2
    assert out["evaluation"] == "roar" and out["retrain"] is True


def test_roar_results_come_from_the_cache_the_second_time(vision_roar):
    again = run_roar(vision_roar.config)
    assert again.cached and again.curves["saliency"].score == vision_roar.curves["saliency"].score


def test_road_on_a_tiny_audio_task():
    cfg = RoadConfig(
        task=TINY_AUDIO, methods=("saliency", "oracle", "random"), fractions=(0.06, 0.3), samples=40, repeats=2
    )
    res = run_road(cfg)
    assert set(res.curves) == {"linear", "mean"} and set(res.curves["linear"]) == {"morf", "lerf"}
    curve = res.curves["linear"]["morf"]["oracle"]
    assert len(curve.repeats) == 2 and len(curve.score) == 2
    assert {"imputation", "order", "estimator", "fraction", "score"} <= set(res.table()[0])


def test_blur_comparison_on_a_tiny_image_task():
    cfg = BlurConfig(task=TINY_VISION, methods=("saliency", "oracle"), fractions=(0.1,), road_samples=30)
    res = run_blur(cfg)
    assert set(res.roar) == {"saliency", "saliency+max", "saliency+gaussian", "oracle"}
    raw, blurred = (
        res.mask_stats["saliency"]["boundary_ratio"][0],
        res.mask_stats["saliency+gaussian"]["boundary_ratio"][0],
    )
    assert blurred < raw
    assert set(res.road) == {"morf", "lerf"}
    assert "boundary ratio" in res.reading()
    with pytest.raises(ConfigError, match="must be an image or audio task"):
        BlurConfig(task=TaskConfig(task="toy16"))


def test_loaded_tasks_share_one_interface():
    for cfg in (TINY_VISION, TINY_AUDIO, TaskConfig(task="toy16", n_train=100, n_test=100)):
        task = load_task(cfg)
        assert task.relevant_test.shape == (len(task.X_test), *task.unit_shape)
        assert task.fill().shape == task.X_train.shape[1:]
        assert 0.0 <= task.describe()["base_score"] <= 1.0


def test_preflight_notes_come_from_the_untrained_architecture():
    from chaosmining.evaluation.tasks import preflight_notes

    notes = preflight_notes(TaskConfig(task="toy16"), ["guided_backprop", "saliency"])
    assert notes == [("guided_backprop", notes[0][1], False)] and "equals the signed gradient" in notes[0][1]
    assert preflight_notes(TaskConfig(task="vision"), ["deeplift", "guided_backprop"]) == []
    audio = preflight_notes(TaskConfig(task="audio"), ["deeplift"])
    assert len(audio) == 1 and "AdaptiveMaxPool1d" in audio[0][1] and "other non-linearities" in audio[0][1]
