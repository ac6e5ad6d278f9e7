"""Your own method: registered plugins score like built-in methods; a broken one fails alone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import InputXGradient

from chaosmining.attribution import METHODS, attribute, methods_for
from chaosmining.cli import main
from chaosmining.data.symbolic import SymbolicDataConfig
from chaosmining.errors import AttributionMethodError, PluginError
from chaosmining.experiments.symbolic import EvalConfig, SymbolicConfig, run_symbolic
from chaosmining.models.mlp import MLPConfig
from chaosmining.plugins import load_plugin, register_method, unregister_method
from chaosmining.training import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
TINY = SymbolicConfig(
    data=SymbolicDataConfig(formula="a*b + c", noise_features=4, samples=300),
    model=MLPConfig(width=8, depth=2),
    train=TrainConfig(epochs=15),
)


@pytest.fixture
def plugins():
    """Register plugins for one test; all are removed afterwards (METHODS is global)."""
    names: list[str] = []

    def add(name, fn, **kw):
        register_method(name, fn, **kw)
        names.append(name)
        return name

    yield add
    for n in names:
        unregister_method(n)


def gradient_x_input(model, inputs, *, target=None):
    out = model(inputs)[:, target]
    return inputs * torch.autograd.grad(out.sum(), inputs)[0]


def plain_gradient(model, inputs, *, target=None):
    return torch.autograd.grad(model(inputs)[:, target].sum(), inputs)[0]


def test_gradient_x_input_plugin_on_a_linear_model_equals_w_times_x(plugins):
    plugins("plugin_gxi", gradient_x_input)
    plugins("plugin_captum_ixg", InputXGradient)  # a Captum-style class, registered as it is
    lin = torch.nn.Linear(4, 1)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    expected = (lin.weight.detach() * x).numpy()
    for name in ("plugin_gxi", "plugin_captum_ixg"):
        np.testing.assert_allclose(attribute(lin, x, name, target=0).values, expected, rtol=1e-6, atol=1e-7)
    assert "plugin_gxi" in methods_for("vision") and METHODS.get("plugin_gxi").plugin


def test_plugin_scores_through_run_symbolic_like_the_method_it_reimplements(plugins, tmp_cache):
    """A plugin computing the signed gradient with the 'derivative' ground truth scores exactly as Saliency."""
    plugins("plugin_grad", plain_gradient, ground_truth="derivative", display_name="Gradient (plugin)")
    ev = EvalConfig(methods=("saliency", "plugin_grad"), samples=60, curve_samples=20, measure_memory=False)
    r = run_symbolic(TINY, ev, cache=tmp_cache, device="cpu")
    assert r.fprec["plugin_grad"] == r.fprec["saliency"]
    assert r.uscore["plugin_grad"] == pytest.approx(r.uscore["saliency"], abs=1e-6)
    assert r.curve_fprec["plugin_grad"] == r.curve_fprec["saliency"]
    assert not r.summary()["errors"]


def test_broken_plugins_fail_alone(broken, tmp_cache):
    ev = EvalConfig(
        methods=("saliency", "broken_raises", "broken_shape", "broken_nan", "random"),
        samples=40,
        curve_samples=20,  # the FPrec curve during training calls them too
        measure_memory=False,
    )
    r = run_symbolic(TINY, ev, cache=tmp_cache, device="cpu")
    s = r.summary()
    assert np.isfinite(s["fprec"]["saliency"]) and np.isfinite(s["fprec"]["random"]) and s["uscore"]["saliency"]
    errors = s["errors"]
    assert set(errors) == {"broken_raises", "broken_shape", "broken_nan"}
    assert "Method 'broken_raises' failed: it raised ZeroDivisionError: my bug" in errors["broken_raises"]
    assert "shape (40,) for inputs of shape (40, 7)" in errors["broken_shape"]
    assert "NaN or infinite" in errors["broken_nan"]
    assert all(np.isnan(s["fprec"][m]) for m in errors)
    assert r.arrays["attr_broken_nan"].shape == r.arrays["attr_saliency"].shape  # figures still draw
    with pytest.raises(AttributionMethodError, match="broken_shape"):
        attribute(torch.nn.Linear(3, 1), torch.ones(2, 3), "broken_shape", target=0)


def test_register_method_validates(plugins):
    with pytest.raises(PluginError, match="already registered"):
        register_method("saliency", plain_gradient)
    with pytest.raises(PluginError, match="'name' parameter"):
        register_method("Bad Name", plain_gradient)
    with pytest.raises(PluginError, match="'modalities' parameter"):
        register_method("ok_name", plain_gradient, modalities=("text",))
    with pytest.raises(PluginError, match="'fn_or_class' parameter"):
        register_method("ok_name", 3)
    plugins("with_params", plain_gradient, params={"scale": 2.0, "steps": 3})
    assert [(p.name, p.kind, p.default) for p in METHODS.get("with_params").params] == [
        ("scale", "float", 2.0),
        ("steps", "int", 3),
    ]
    assert register_method("with_params", plain_gradient) is METHODS.get("with_params")  # re-import: same entry


def test_cli_plugin_option_loads_the_example(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSMINING_PLUGINS", "")  # the CLI exports its plugins there; restored afterwards
    args = ["--plugin", str(ROOT / "examples" / "gradient_sign_plugin.py"), "symbolic", "--formula", "1"]
    args += ["--noise-features", "4", "--samples", "300", "--epochs", "10", "--width", "8", "--depth", "2"]
    args += ["--methods", "saliency,gradient_sign", "--eval-samples", "40", "--json", "--cache-dir", str(tmp_path)]
    try:
        assert main(args) == 0
        out = json.loads(capsys.readouterr().out)
        assert set(out["fprec"]) == {"saliency", "gradient_sign"}
        # sign(gradient) ranks features by sign only; on formula 1 (one relevant feature) it still finds it
        assert out["fprec"]["gradient_sign"] >= 0.0 and not out["errors"]
        assert load_plugin(str(ROOT / "examples" / "gradient_sign_plugin.py")) == ["gradient_sign"]  # loaded once
        assert os.environ["CHAOSMINING_PLUGINS"].endswith("gradient_sign_plugin.py")  # for worker processes
    finally:
        unregister_method("gradient_sign")
    assert main(["--plugin", str(tmp_path / "missing.py"), "symbolic"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_broken_plugin_fails_alone_in_vision_and_audio_and_the_rest_reaches_the_store(broken, tmp_cache, tmp_path):
    from chaosmining.experiments.audio import AudioConfig, AudioEvalConfig, run_audio
    from chaosmining.experiments.vision import VisionConfig, VisionEvalConfig, run_vision
    from chaosmining.results import ResultsStore, record

    store = ResultsStore(tmp_path / "r")
    vcfg = VisionConfig.from_preset(
        "quick", train={"epochs": 1}, canvas=32, foreground_size=8, train_size=60, val_size=12
    )
    vev = VisionEvalConfig.for_preset("quick", ("saliency", "broken_raises"), samples=6, gallery=2)
    v = run_vision(vcfg, vev, cache=tmp_cache, device="cpu")
    assert "my bug" in v.unavailable["broken_raises"] and 0.0 <= v.summary()["iou"]["saliency"] <= 1.0
    acfg = AudioConfig.from_preset(
        "quick",
        model="tcn",
        train={"epochs": 1},
        source="formant",
        words="core",
        train_per_class=2,
        test_per_class=1,
        channels=4,
        background_recordings=2,
        background_seconds=2,
    )
    aev = AudioEvalConfig.for_preset("quick", ("saliency", "broken_raises"), samples=4, examples=1)
    a = run_audio(acfg, aev, cache=tmp_cache, device="cpu")
    assert set(a.channel_fprec) == {"saliency"} and "my bug" in a.unavailable["broken_raises"]
    assert record("vision-result", {"model": vcfg, "eval": vev}, v, device="cpu", seconds=1.0, store=store)
    assert record("audio-result", {"model": acfg, "eval": aev}, a, device="cpu", seconds=1.0, store=store)
    iou = store.scores(modality="vision", metric="iou").set_index("method")["value"]
    assert iou["saliency"] == pytest.approx(v.summary()["iou"]["saliency"]) and "broken_raises" not in iou.index
    fp = store.scores(modality="audio", metric="channel_fprec")
    assert fp["method"].tolist() == ["saliency"] and fp["value"].iloc[0] == pytest.approx(a.channel_fprec["saliency"])
    assert set(store.runs()["modality"]) == {"vision", "audio"}


def test_the_app_loads_plugins_from_the_environment_and_pages_offer_them(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CHAOSMINING_PLUGINS", str(ROOT / "examples" / "gradient_sign_plugin.py"))
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
        assert not at.exception and not at.error
        at.switch_page("pages/1_Symbolic_functions.py").run()
        assert not at.exception
        options = [o for m in at.sidebar.multiselect for o in m.options]
        assert any("Gradient sign" in o for o in options), options
    finally:
        unregister_method("gradient_sign")


def test_entry_points_register_their_function_or_module(tmp_path, monkeypatch):
    from importlib.metadata import EntryPoint

    from chaosmining import plugins as plugins_module

    (tmp_path / "my_ep_plugin.py").write_text(
        "import torch\n\ndef sign(model, inputs, *, target=None):\n"
        "    return torch.autograd.grad(model(inputs)[:, target].sum(), inputs)[0].sign()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [EntryPoint("ep_sign", "my_ep_plugin:sign", "chaosmining.methods")]
    monkeypatch.setattr(plugins_module, "_entry_points", lambda: eps)
    monkeypatch.setattr(plugins_module, "_scanned_entry_points", False)
    try:
        assert plugins_module.load_plugins(env=False) == ["ep_sign"]
        lin = torch.nn.Linear(3, 1)
        expected = torch.sign(lin.weight.detach()).expand(2, 3).numpy()
        np.testing.assert_array_equal(attribute(lin, torch.ones(2, 3), "ep_sign", target=0).values, expected)
        assert plugins_module.load_plugins(env=False) == []  # read once
    finally:
        unregister_method("ep_sign")
