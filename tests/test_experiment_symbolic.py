"""The symbolic experiment end to end on tiny configurations."""

from __future__ import annotations

import json

import pytest

from chaosmining.data.symbolic import SymbolicDataConfig
from chaosmining.errors import ConfigError, JobCancelled, TrainingDivergedError
from chaosmining.experiments.symbolic import MODEL_KIND, RESULT_KIND, EvalConfig, SymbolicConfig, run_symbolic
from chaosmining.models.mlp import MLPConfig
from chaosmining.runtime import resolve_device
from chaosmining.training import TrainConfig

TINY = SymbolicConfig(
    data=SymbolicDataConfig(formula="7", noise_features=10, samples=1000),
    model=MLPConfig(width=32, depth=2),
    train=TrainConfig(epochs=120, lr=1e-2, snapshots=4),
)


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    from chaosmining.cache import Cache

    cache = Cache(tmp_path_factory.mktemp("cache"))
    events = []
    result = run_symbolic(TINY, cache=cache, report=lambda **e: events.append(e))
    return cache, result, events


def test_scores_are_sane_and_saliency_finds_the_relevant_features(tiny_result):
    _, r, _ = tiny_result
    assert r.relevant == (0, 1) and len(r.feature_names) == 12
    assert set(r.fprec) == {"saliency", "deeplift", "integrated_gradients", "feature_ablation", "random"}
    assert all(0 <= v <= 1 for v in r.fprec.values())
    assert r.fprec["saliency"] > 0.9 > r.fprec["random"]
    assert r.uscore["deeplift"] is None and r.scores["deeplift"].warnings  # no ground truth; GELU note
    assert 0 < r.prediction_uscore <= 1 and r.test_mae < 0.2
    assert r.scores["saliency"].peak_memory_bytes > 0
    assert r.curve_epochs == [0, 30, 60, 90, 120] and len(r.curve_fprec["saliency"]) == 5
    assert r.random_fprec_expected == pytest.approx(2 / 12)


def test_progress_reports_loss_and_live_fprec_from_the_first_snapshot(tiny_result):
    _, _, events = tiny_result
    live = [e for e in events if "fprec" in e]
    assert live[0]["epoch"] == 0 and len(live) == 5
    assert any("loss" in e for e in events)
    assert [e["stage"] for e in events if "stage" in e] == ["training", "attributing"]


def test_a_cached_configuration_is_loaded_not_retrained(tiny_result):
    cache, r, _ = tiny_result
    again = run_symbolic(TINY, cache=cache, report=lambda **e: pytest.fail("no training expected"))
    assert again.cached and again.fprec == r.fprec
    # Another method set re-uses the trained model (one model entry, two result entries).
    other = run_symbolic(TINY, EvalConfig(methods=("saliency_abs",)), cache=cache)
    assert not other.cached and other.train_seconds == r.train_seconds
    assert len(cache.entries(MODEL_KIND)) == 1 and len(cache.entries(RESULT_KIND)) == 2


def test_summary_follows_the_cli_contract_and_is_json(tiny_result):
    _, r, _ = tiny_result
    s = json.loads(json.dumps(r.summary()))
    for key in ("fprec", "uscore", "prediction_uscore", "test_mae", "seconds", "cached", "device"):
        assert key in s
    assert s["device"] == str(resolve_device("auto"))  # the CPU here; the GPU where one is present
    b = r.bundle()
    assert b["task"] == "symbolic" and SymbolicConfig.from_dict(b["config"]["model"]) == TINY


def test_eval_config_canonicalises_and_validates():
    a = EvalConfig(methods=("random", "saliency", "saliency"))
    assert a.methods == ("saliency", "random")
    assert a.config_hash == EvalConfig(methods=("saliency", "random")).config_hash
    with pytest.raises(ConfigError, match="Unknown attribution method"):
        EvalConfig(methods=("nope",))
    with pytest.raises(ConfigError, match="at least one"):
        EvalConfig(methods=())


def test_diverging_and_stopped_runs_cache_nothing(tmp_cache):
    bad = TINY.replace(train=TrainConfig(epochs=300, lr=80.0, optimizer="sgd"))
    with pytest.raises(TrainingDivergedError):
        run_symbolic(bad, EvalConfig(methods=("saliency",)), cache=tmp_cache)
    with pytest.raises(JobCancelled):
        run_symbolic(TINY, EvalConfig(methods=("saliency",)), cache=tmp_cache, should_stop=lambda: True)
    assert tmp_cache.summary().get(MODEL_KIND, {"entries": 0})["entries"] == 0
    assert tmp_cache.summary().get(RESULT_KIND, {"entries": 0})["entries"] == 0
