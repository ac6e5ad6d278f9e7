"""The vision experiment end to end on a tiny configuration: results, caching, cancelling and the CLI contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chaosmining.cli import main
from chaosmining.errors import ConfigError, JobCancelled
from chaosmining.experiments.vision import (
    MODEL_KIND,
    RESULT_KIND,
    VisionConfig,
    VisionEvalConfig,
    noise_conditions,
    rebuild_command,
    result_key,
    run_vision,
)

TINY = dict(canvas=32, foreground_size=8, train_size=120, val_size=24)


def _tiny(**kw) -> VisionConfig:
    return VisionConfig.from_preset("quick", train={"epochs": 1}, **{**TINY, **kw})


def _eval(**kw) -> VisionEvalConfig:
    return VisionEvalConfig.for_preset("quick", ("saliency", "feature_ablation"), samples=12, gallery=3, **kw)


def test_run_vision_scores_every_method_and_loads_from_the_cache_the_second_time(tmp_cache):
    events = []
    result = run_vision(_tiny(), _eval(), cache=tmp_cache, report=lambda **e: events.append(e))
    assert not result.cached
    s = result.summary()
    for key in ("accuracy", "iou", "random_iou", "perfect_iou", "pointing_game", "mass_inside", "seconds", "cached"):
        assert key in s
    assert set(s["iou"]) == {"saliency", "feature_ablation"}
    assert all(0.0 <= v <= 1.0 for v in s["iou"].values())
    assert 0.0 < s["random_iou"] < s["perfect_iou"] <= 1.0
    assert result.arrays["iou_saliency"].shape == (12,)
    assert result.arrays["map_saliency"].shape[0] == 3
    assert result.gallery_images().shape == (3, 32, 32, 3)
    assert result.gallery_map("saliency", 0).shape == (32, 32)
    assert len(result.per_image_table()) == 12 and len(result.scores_table()) == 4
    assert any(e.get("stage") == "training" for e in events) and any("val_accuracy" in e for e in events)
    assert tmp_cache.has(MODEL_KIND, _tiny().config_hash)
    again = run_vision(_tiny(), _eval(), cache=tmp_cache)
    assert again.cached and again.iou == result.iou
    # Other methods re-use the trained checkpoint: only the evaluation runs.
    other = run_vision(_tiny(), _eval(target="true"), cache=tmp_cache)
    assert not other.cached and other.train_seconds == result.train_seconds
    assert json.loads(json.dumps(result.bundle()))["task"] == "vision"


def test_stopping_raises_and_caches_nothing(tmp_cache):
    with pytest.raises(JobCancelled):
        run_vision(_tiny(), _eval(), cache=tmp_cache, should_stop=lambda: True)
    assert not tmp_cache.has(RESULT_KIND, result_key(_tiny(), _eval()))
    assert not tmp_cache.has(MODEL_KIND, _tiny().config_hash)


def test_a_method_that_does_not_suit_the_model_is_reported_not_fatal(tmp_cache):
    cfg = VisionConfig.from_preset("quick", model="resnet18", train={"epochs": 1}, **{**TINY, "train_size": 20})
    result = run_vision(cfg, VisionEvalConfig.for_preset("quick", ("saliency", "deeplift"), samples=4), cache=tmp_cache)
    assert "deeplift" in result.unavailable and "twice" in result.unavailable["deeplift"]
    assert result.iou["deeplift"] is None and result.iou["saliency"] is not None


def test_method_defaults_hash_alike_whether_spelled_out_or_not():
    a = VisionEvalConfig.for_preset("demo")
    b = VisionEvalConfig.for_preset("demo", params={"integrated_gradients": {"steps": 20}})
    assert a.config_hash == b.config_hash
    with pytest.raises(ConfigError, match="'target' parameter of VisionEvalConfig"):
        VisionEvalConfig(target="other")


def test_presets_and_the_four_noise_conditions():
    demo = VisionConfig.from_preset("demo")
    assert (demo.data.canvas, demo.data.foreground_size, demo.data.train_size) == (224, 32, 10_000)
    assert demo.train.recompose and demo.train.epochs == 18 and demo.train.schedule == "onecycle"
    paper = VisionConfig.from_preset("paper")
    assert (paper.data.train_size, paper.data.val_size, paper.train.epochs, paper.train.batch_size) == (
        50_000,
        10_000,
        30,
        128,
    )
    assert paper.train.schedule == "cosine_restarts" and paper.train.lr == 1e-3
    conds = noise_conditions(demo)
    assert list(conds) == ["RBFP", "RBRP", "SBFP", "SBRP"]
    assert conds["SBRP"].data.background == "structured"
    photos = noise_conditions(VisionConfig.from_preset("demo", background="photos"))
    assert photos["SBFP"].data.background == "photos"
    assert rebuild_command(demo).startswith("python -m chaosmining vision --background random --position fixed")
    with pytest.raises(ConfigError, match="multiple of 32"):
        VisionConfig.from_preset("quick", model="vit_l_32", canvas=100)


ARGS = [
    "vision",
    "--background",
    "structured",
    "--position",
    "random",
    "--model",
    "compact_cnn",
    "--preset",
    "quick",
    "--canvas",
    "32",
    "--foreground-size",
    "8",
    "--train-size",
    "80",
    "--val-size",
    "16",
    "--epochs",
    "1",
    "--eval-samples",
    "8",
    "--methods",
    "saliency,integrated_gradients",
    "--param",
    "integrated_gradients.steps=4",
    "--seed",
    "2",
    "--json",
]


def test_cli_prints_one_json_object_with_the_contract(tmp_path, capsys):
    assert main([*ARGS, "--cache-dir", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["condition"] == "SBRP" and out["cached"] is False
    assert set(out["iou"]) == {"saliency", "integrated_gradients"}
    assert out["notes"] == []  # a random position: no patch-grid caveat
    for key in ("accuracy", "random_iou", "seconds", "cached"):
        assert key in out
    assert main([*ARGS, "--cache-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["cached"] is True


def test_cli_bad_input_exits_2_with_one_line_naming_the_parameter(tmp_path, capsys):
    code = main(["vision", "--canvas", "64", "--foreground-size", "100", "--cache-dir", str(tmp_path), "--json"])
    err = capsys.readouterr().err
    assert (
        code == 2
        and err.startswith("error: The 'foreground_size' parameter of VisionDataConfig")
        and err.count("\n") == 1
    )
    code = main(["vision", "--methods", "nope", "--cache-dir", str(tmp_path)])
    assert code == 2 and "Unknown attribution method 'nope'" in capsys.readouterr().err


def test_gallery_regenerates_the_evaluated_images(tmp_cache):
    result = run_vision(_tiny(position="random"), _eval(), cache=tmp_cache)
    images = result.gallery_images()
    boxes = result.arrays["true_boxes"][: len(images)]
    from chaosmining.data.vision import make_vision_data

    val = make_vision_data(result.config.data, result.config.seed).val
    np.testing.assert_array_equal(images, val.images(range(len(images))))
    np.testing.assert_array_equal(boxes, val.boxes[: len(images)])


def test_images_streamed_through_worker_processes_train_exactly_like_images_in_memory():
    import torch

    from chaosmining.data.vision import make_vision_data
    from chaosmining.experiments.vision import fit_classifier
    from chaosmining.models.vision import ARCHITECTURES, build_model

    cfg = _tiny()
    histories = []
    for in_memory in (False, True):
        data = make_vision_data(cfg.data, cfg.seed)
        if in_memory:
            data.train.materialise()
        model = build_model("compact_cnn", data.n_classes, cfg.data.canvas, cfg.seed)
        spec = ARCHITECTURES.get("compact_cnn")
        histories.append(fit_classifier(model, spec, data, cfg.train, seed=0, device=torch.device("cpu")))
    assert histories[0]["loss"] == pytest.approx(histories[1]["loss"], rel=1e-5)


def test_the_patch_grid_note_appears_only_where_the_fixed_box_is_one_patch():
    from chaosmining.data.vision import VisionDataConfig
    from chaosmining.experiments.vision import patch_grid_note

    assert "corner 96, 32 px" in patch_grid_note(VisionDataConfig())  # the paper's 224/32 FP
    assert patch_grid_note(VisionDataConfig(position="random")) is None
    assert patch_grid_note(VisionDataConfig(canvas=224, foreground_size=48)) is None  # corner 88 straddles
    assert patch_grid_note(VisionDataConfig(canvas=32, foreground_size=8)) is None  # corner 12
