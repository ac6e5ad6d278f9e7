"""Per-method isolation: a method that raises, returns the wrong shape or NaN fails alone, everywhere.

One deliberately broken plugin of each kind runs through symbolic, the evaluation tests and feature
selection; the run finishes, each broken method has its own message, the others have scores, and the
results store gets rows for the working methods only.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BROKEN
from torch import nn

from chaosmining.attribution import attribute
from chaosmining.commands.evaluate import EVALUATION_COMMANDS, _with_failures
from chaosmining.commands.symbolic import _render
from chaosmining.errors import AttributionMethodError
from chaosmining.evaluation import (
    FaithfulnessConfig,
    RoadConfig,
    RoarConfig,
    SanityConfig,
    TaskConfig,
    run_faithfulness,
    run_road,
    run_roar,
    run_sanity,
)
from chaosmining.results import ResultsStore, record
from chaosmining.results.extractors import extract
from chaosmining.sweep import _cell_from_result

TOY = TaskConfig(task="toy16", n_train=400, n_test=200)


def _check_messages(errors: dict[str, str]) -> None:
    assert set(errors) == set(BROKEN)
    assert "Method 'broken_raises' failed: it raised ZeroDivisionError: my bug" in errors["broken_raises"]
    assert "returned an array of shape" in errors["broken_shape"] and "broken_shape" in errors["broken_shape"]
    assert "NaN or infinite" in errors["broken_nan"] and "broken_nan" in errors["broken_nan"]


def test_the_attribution_layer_checks_built_in_methods_too():
    lin = nn.Linear(3, 1)
    with torch.no_grad():
        lin.weight[0, 0] = float("nan")
    with pytest.raises(AttributionMethodError, match=r"Method 'saliency' failed: it returned 2 NaN or infinite"):
        attribute(lin, torch.ones(2, 3), "saliency", target=0)

    class Reuse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.act = nn.Linear(3, 3), nn.Linear(3, 1), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(self.act(self.fc1(self.act(x))))

    with pytest.raises(AttributionMethodError, match=r"'deeplift' failed: it cannot run on this model\. .*more than"):
        attribute(Reuse(), torch.ones(2, 3), "deeplift", target=0)


def test_symbolic_cli_rows_and_store_skip_the_broken_methods(broken, tmp_cache, tmp_path):
    from chaosmining.data.symbolic import SymbolicDataConfig
    from chaosmining.experiments.symbolic import EvalConfig, SymbolicConfig, run_symbolic
    from chaosmining.models.mlp import MLPConfig
    from chaosmining.training import TrainConfig

    cfg = SymbolicConfig(
        data=SymbolicDataConfig(formula="a*b + c", noise_features=4, samples=300),
        model=MLPConfig(width=8, depth=2),
        train=TrainConfig(epochs=10),
    )
    ev = EvalConfig(methods=("saliency", *BROKEN), samples=40, curve_samples=0, measure_memory=False)
    result = run_symbolic(cfg, ev, cache=tmp_cache, device="cpu")
    out = result.summary()
    _check_messages(out["errors"])
    assert np.isfinite(out["fprec"]["saliency"])
    text = _render(out)
    for m in BROKEN:
        row = next(line for line in text.splitlines() if line.startswith(m))
        assert row.split()[1] == "n/a" and f"Method '{m}' failed" in row
    assert {r.method for r in extract("symbolic-result", result).scores} == {"", "saliency"}
    cell = _cell_from_result(1, 0, result)  # a sweep's cell: no score for the broken methods, their messages kept
    assert all(cell.fprec[m] is None for m in BROKEN) and cell.method_errors == out["errors"]
    store = ResultsStore(tmp_path / "results")
    assert record("symbolic-result", {"model": cfg, "eval": ev}, result, device="cpu", seconds=1.0, store=store)
    assert set(store.scores(metric="fprec")["method"]) == {"saliency"}


EVALUATIONS = {  # name: (config with the broken methods, run function, result kind)
    "road": (lambda m: RoadConfig(task=TOY, methods=m + ("random",), samples=50, repeats=2), run_road, "eval-road"),
    "roar": (lambda m: RoarConfig(task=TOY, methods=m + ("oracle",), repeats=1), run_roar, "eval-roar"),
    "faithfulness": (
        lambda m: FaithfulnessConfig(task=TOY, methods=m, samples=30, sens_samples=10, subsets=5),
        run_faithfulness,
        "eval-faithfulness",
    ),
}


@pytest.mark.parametrize("name", list(EVALUATIONS))
def test_evaluation_tests_score_the_working_methods(broken, tmp_cache, name):
    make, run, kind = EVALUATIONS[name]
    config = make(("saliency", *BROKEN))
    result = run(config, cache=tmp_cache)
    _check_messages(result.errors)
    out = result.summary()
    assert out["errors"] == result.errors
    rows = extract(kind, result).scores
    methods = {r.method for r in rows}
    assert "saliency" in methods and not methods & set(BROKEN)
    assert all(np.isfinite(r.value) for r in rows if r.method == "saliency" and r.value is not None)
    text = _with_failures(next(c for c in EVALUATION_COMMANDS if c.name == name).render)(out)
    for m in BROKEN:
        assert any(line.strip().startswith(m) and "n/a" in line for line in text.splitlines())
    again = run(config, cache=tmp_cache)  # the cached summary keeps the messages
    assert again.cached and again.errors == result.errors


def test_sanity_check_scores_the_working_methods(broken, tmp_cache):
    config = SanityConfig(
        task=TaskConfig(task="formula:7", n_train=300, n_test=30, epochs=30),
        methods=("saliency", *BROKEN),
        test="cascading",
        samples=20,
    )
    result = run_sanity(config, cache=tmp_cache)
    _check_messages(result.errors)
    assert set(result.values) == {"saliency"} and result.values["saliency"]
    assert {r.method for r in extract("eval-sanity", result).scores} == {"saliency"}


def test_feature_selection_stops_only_the_broken_selectors(broken, tmp_cache):
    from chaosmining.experiments.rfe import RFEConfig, RFEDataConfig, run_rfe
    from chaosmining.training import TrainConfig

    config = RFEConfig(
        data=RFEDataConfig(task="formula:2*a - 3*b + c", noise_features=5, samples=300),
        selectors=("saliency", *BROKEN, "linear"),
        train=TrainConfig(epochs=20, snapshots=1),
    )
    result = run_rfe(config, cache=tmp_cache, workers=1)
    _check_messages({s: r.error_message for s, r in result.runs.items() if r.error_message})
    assert len(result.runs["saliency"].rounds) == len(result.schedule)
    assert len(result.runs["linear"].rounds) == len(result.schedule)
    assert all(not result.runs[s].rounds for s in BROKEN)  # round one's network failed them at once
    assert {r.method for r in extract("rfe-result", result).scores} == {"saliency", "linear"}


def test_the_symbolic_page_shows_a_notice_per_broken_method_not_a_traceback(broken, tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CHAOSMINING_CACHE", str(tmp_path / "page-cache"))
    root = Path(__file__).resolve().parent.parent
    at = AppTest.from_file(str(root / "pages" / "1_Symbolic_functions.py"), default_timeout=120).run()
    at.sidebar.multiselect(key="sym_methods").set_value(["saliency", *BROKEN])
    at.number_input(key="sym_noise").set_value(4)
    at.number_input(key="sym_samples").set_value(300)
    at.number_input(key="sym_epochs").set_value(10)
    at.run()
    at.button(key="sym_train_btn").click().run()
    for _ in range(240):
        if any(m.label == "Prediction UScore" for m in at.metric):
            break
        time.sleep(0.5)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    notices = [w.value for w in at.warning if "could not be scored" in w.value]
    assert len(notices) == 3 and all(any(f"'{m}'" in n for n in notices) for m in BROKEN)


def test_a_plugin_loaded_after_the_workers_started_reaches_them(tmp_path):
    """The server's executor outlives its first runs: a plugin loaded later (``--plugin``, a reloaded app)
    travels with every run, so a worker started before it still knows its methods."""
    from chaosmining.cache import Cache
    from chaosmining.data.symbolic import SymbolicDataConfig
    from chaosmining.experiments.symbolic import EvalConfig, SymbolicConfig
    from chaosmining.models.mlp import MLPConfig
    from chaosmining.plugins import load_plugin, unregister_method
    from chaosmining.runs import RunSpec, make_executor
    from chaosmining.training import TrainConfig

    cfg = SymbolicConfig(
        data=SymbolicDataConfig(formula="a*b + c", noise_features=4, samples=300),
        model=MLPConfig(width=8, depth=2),
        train=TrainConfig(epochs=10),
    )
    ex = make_executor("local", cache=Cache(tmp_path / "cache"), workers=1)
    try:
        plain = EvalConfig(methods=("saliency",), samples=40, curve_samples=0, measure_memory=False)
        assert ex.submit(RunSpec("symbolic", cfg, plain, "cpu"), session="a").result(timeout=300).fprec["saliency"] >= 0
        path = tmp_path / "late_plugin.py"
        path.write_text((Path(__file__).parent / "broken_plugin.py").read_text())
        assert sorted(load_plugin(str(path))) == sorted(BROKEN)  # loaded now, after the worker started
        ev = EvalConfig(methods=("saliency", *BROKEN), samples=40, curve_samples=0, measure_memory=False)
        result = ex.submit(RunSpec("symbolic", cfg, ev, "cpu"), session="a").result(timeout=300)
        _check_messages(result.summary()["errors"])
    finally:
        ex.shutdown()
        for name in BROKEN:
            unregister_method(name)
