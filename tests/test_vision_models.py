"""Every architecture trains on a small canvas; every image method gives a finite map of the input's shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chaosmining.attribution import METHODS, attribute
from chaosmining.errors import ConfigError
from chaosmining.experiments.vision import classification_loss, patch_mask, vision_methods, vision_param_defaults
from chaosmining.models.vision import ARCHITECTURES, build_model, logits_of, method_availability

CANVAS = 64


@pytest.mark.parametrize("name", ARCHITECTURES.names())
def test_every_architecture_runs_forward_and_backward_on_a_small_canvas(name):
    spec = ARCHITECTURES.get(name)
    model = build_model(name, 10, CANVAS, seed=0)
    assert not any(getattr(m, "inplace", False) for m in model.modules()), "in-place ops break Captum's hooks"
    x = torch.randn(2, 3, CANVAS, CANVAS)
    y = torch.tensor([1, 7])
    model.train()
    out = model(x)
    if spec.aux_weight:
        assert hasattr(out, "aux_logits1") and out.aux_logits1.shape == (2, 10)
    loss = classification_loss(spec, out, y)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        assert logits_of(model(x[:1])).shape == (1, 10)


def test_canvases_an_architecture_cannot_take_are_refused():
    with pytest.raises(ConfigError, match="'canvas' parameter must be an int >= 63 for architecture 'alexnet'"):
        build_model("alexnet", 10, 32)
    with pytest.raises(ConfigError, match="multiple of 16"):
        ARCHITECTURES.get("vit_b_16").check_canvas(100)
    ARCHITECTURES.get("vit_l_32").check_canvas(224)


def test_builds_are_reproducible_and_leave_torchs_global_generator_alone():
    before = torch.get_rng_state()
    a = build_model("compact_cnn", 10, CANVAS, seed=4)
    b = build_model("compact_cnn", 10, CANVAS, seed=4)
    c = build_model("compact_cnn", 10, CANVAS, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def _cheap(method: str) -> dict:
    """Small parameter values so that every method runs in a fraction of a second."""
    params = dict(vision_param_defaults(method, 32, 8))
    names = {p.name for p in METHODS.get(method).params}
    params.update({k: v for k, v in (("steps", 4), ("samples", 2 if method != "kernel_shap" else 10)) if k in names})
    return params


@pytest.mark.parametrize("method", vision_methods())
def test_every_image_method_gives_a_finite_map_of_the_inputs_shape(method):
    model = build_model("compact_cnn", 10, 32, seed=0).eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    res = attribute(
        model,
        x,
        method,
        target=torch.tensor([0, 3, 9]),
        params=_cheap(method),
        feature_mask=patch_mask(32, 8) if method == "feature_ablation" else None,
    )
    assert res.values.shape == (3, 3, 32, 32)
    assert np.isfinite(res.values).all()


def test_feature_ablation_is_constant_on_each_foreground_sized_patch():
    model = build_model("compact_cnn", 10, 32, seed=0).eval()
    res = attribute(model, torch.rand(1, 3, 32, 32), "feature_ablation", target=2, feature_mask=patch_mask(32, 8))
    patch = res.values[0, :, 8:16, 16:24]
    assert np.allclose(patch, patch.flat[0])


def test_method_availability_explains_what_does_not_suit_a_model():
    reason, _ = method_availability(build_model("resnet18", 10, CANVAS), "resnet18", "deeplift", CANVAS)
    assert reason is not None and "twice" in reason
    reason, notes = method_availability(build_model("compact_cnn", 10, CANVAS), "compact_cnn", "deeplift", CANVAS)
    assert reason is None and notes == []
    reason, notes = method_availability(build_model("googlenet", 10, CANVAS), "googlenet", "deeplift", CANVAS)
    assert reason is None and any("relu()" in n for n in notes)
    reason, notes = method_availability(build_model("resnet18", 10, CANVAS), "resnet18", "saliency", CANVAS)
    assert reason is None and notes == []
