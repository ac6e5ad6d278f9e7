"""What-if sweeps: cells, aggregation, parallel workers, cache reuse."""

from __future__ import annotations

import pytest

from chaosmining.data.symbolic import SymbolicDataConfig
from chaosmining.errors import ConfigError
from chaosmining.experiments.symbolic import EvalConfig, SymbolicConfig
from chaosmining.models.mlp import MLPConfig
from chaosmining.sweep import FACTORS, SweepConfig, load_sweep, run_sweep
from chaosmining.training import TrainConfig

BASE = SymbolicConfig(
    data=SymbolicDataConfig(formula="1", noise_features=5, samples=400),
    model=MLPConfig(width=16, depth=2),
    train=TrainConfig(epochs=30, lr=1e-2),
)
EV = EvalConfig(methods=("saliency", "random"), curve_samples=0, measure_memory=False)


def test_factors_cover_figure_4():
    assert set(FACTORS.names()) >= {
        "depth",
        "width",
        "noise_features",
        "samples",
        "lr",
        "dropout",
        "label_noise",
        "optimizer",
        "formula",
    }


def test_parallel_sweep_aggregates_over_seeds_and_reuses_the_cache(tmp_cache):
    cfg = SweepConfig(base=BASE, factor="noise_features", values=(2, 20), seeds=(0, 1), eval=EV)
    events = []
    res = run_sweep(cfg, cache=tmp_cache, workers=2, report=lambda **e: events.append(e))
    assert [(c.value, c.seed) for c in res.cells] == [(2, 0), (2, 1), (20, 0), (20, 1)]
    agg = res.aggregate()
    assert agg[(2, "saliency")]["fprec_mean"] >= agg[(2, "random")]["fprec_mean"]
    assert agg[(2, "__prediction__")]["uscore_mean"] is not None
    assert events[-1]["done"] == 4
    again = run_sweep(cfg, cache=tmp_cache, workers=2)
    assert all(c.cached for c in again.cells)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "cached"} for r in rows]  # noqa: E731
    assert strip(load_sweep(cfg, tmp_cache).rows()) == strip(res.rows())


def test_a_diverging_cell_is_recorded_and_the_others_finish(tmp_cache):
    cfg = SweepConfig(
        base=BASE.replace(train=TrainConfig(epochs=200, optimizer="sgd")), factor="lr", values=(1e-2, 90.0), eval=EV
    )
    res = run_sweep(cfg, cache=tmp_cache, workers=1)
    assert res.cells[0].error is None and "diverged" in res.cells[1].error
    assert res.errors and load_sweep(cfg, tmp_cache) is None  # incomplete sweeps are not cached


def test_bad_sweep_values_are_refused_before_any_training():
    with pytest.raises(ConfigError, match="'depth' parameter of MLPConfig"):
        SweepConfig(base=BASE, factor="depth", values=(2, 0))
    with pytest.raises(ConfigError, match="Unknown sweep factor"):
        SweepConfig(base=BASE, factor="colour")
