"""The feature-selection experiment end to end on tiny tasks, and the ``rfe`` CLI contract."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from chaosmining.cli import main
from chaosmining.errors import ConfigError, DataError, JobCancelled
from chaosmining.experiments.rfe import (
    TASK_KINDS,
    RFEConfig,
    RFEDataConfig,
    SelectionData,
    TaskKind,
    load_rfe,
    prepare_data,
    run_rfe,
)
from chaosmining.training import PRECISIONS, TORCH_MACS_PER_SECOND, TrainConfig, training_macs_per_second

NN = ("saliency", "deeplift", "integrated_gradients", "feature_ablation")
FAST = TrainConfig(epochs=150, snapshots=1)


def _config(**kw) -> RFEConfig:
    data = kw.pop("data", RFEDataConfig(task="formula:2*a - 3*b + c", noise_features=9, samples=800))
    return RFEConfig(
        data=data, selectors=kw.pop("selectors", NN + ("linear", "tree")), train=kw.pop("train", FAST), **kw
    )


@pytest.fixture(scope="module")
def ex(tmp_path_factory):
    """One executor (one worker process) for the tests that need no cache of their own."""
    from chaosmining.cache import Cache
    from chaosmining.runs import make_executor

    executor = make_executor("local", cache=Cache(tmp_path_factory.mktemp("rfe-shared") / "cache"), workers=1)
    yield executor
    executor.shutdown()


@pytest.fixture(scope="module")
def dominant(tmp_path_factory):
    from chaosmining.cache import Cache

    cache = Cache(tmp_path_factory.mktemp("rfe") / "cache")
    events: list[dict] = []
    result = run_rfe(_config(), cache=cache, workers=1, report=lambda **e: events.append(e))
    return result, cache, events


def test_every_nn_selector_keeps_dominant_features(dominant):
    result, _, _ = dominant
    assert result.true_features == (0, 1, 2)
    for s in NN:
        run = result.runs[s]
        assert run.error_message is None
        assert run.kept == (0, 1, 2), s
        assert run.final_precision == 1.0 and run.final.recall == 1.0
        assert run.final_error < run.rounds[0].error  # the model without noise columns predicts better


def test_rounds_follow_the_schedule_exactly(dominant):
    result, _, events = dominant
    assert result.schedule == [12, 6, 3]
    for s, run in result.runs.items():
        assert [r.n_features for r in run.rounds] == [12, 6, 3], s
        assert [len(r.kept) for r in run.rounds] == [12, 6, 3]
        for before, after in zip(run.rounds, run.rounds[1:]):
            assert set(after.kept) <= set(before.kept)  # elimination never brings a feature back
    assert {e["selector"] for e in events if "round" in e} == set(result.runs)
    assert any(e.get("schedule") == [12, 6, 3] for e in events)


def test_round_one_is_trained_once_for_all_attribution_selectors(dominant, tmp_path):
    result, cache, _ = dominant
    models = cache.entries("rfe-model")
    distinct_sets = {tuple(r.kept) for s in NN for r in result.runs[s].rounds}
    assert len(models) == len(distinct_sets) < 1 + len(NN) * 2
    again = run_rfe(_config(), cache=cache, workers=1)
    assert again.cached and again.runs["saliency"].kept == result.runs["saliency"].kept


def test_precision_and_error_records_are_consistent(dominant):
    result, _, _ = dominant
    for run in result.runs.values():
        for r in run.rounds:
            assert r.precision == pytest.approx(len(set(r.kept) & {0, 1, 2}) / len(r.kept))
            assert r.error == pytest.approx(r.test_metrics["mae"]) and r.seconds >= 0
    summary = result.summary()
    assert set(summary["selectors"]) == set(NN + ("linear", "tree"))
    row = summary["selectors"]["saliency"]
    assert {"rounds", "final_precision", "final_error", "kept"} <= set(row)
    assert {"n_features", "error", "precision", "seconds"} <= set(row["rounds"][0])
    assert json.loads(json.dumps(result.bundle()))["task"] == "rfe"


@pytest.fixture
def leak_kinds():
    """Two tasks with the same train/validation rows and different test rows."""

    def build(c: RFEDataConfig, seed: int) -> SelectionData:
        base = TASK_KINDS.get("formula").build(replace(c, task="formula:2*a - 3*b + c"), seed)
        if c.arg == "poisoned":
            rng = np.random.default_rng(7)
            base = replace(
                base,
                X_test=rng.uniform(-1e3, 1e3, base.X_test.shape).astype(np.float32),
                y_test=rng.uniform(-1e3, 1e3, base.y_test.shape).astype(np.float32),
            )
        return base

    formula = TASK_KINDS.get("formula")
    TASK_KINDS.register(
        "leakcheck",
        TaskKind(
            "leakcheck",
            "test only",
            "regression",
            "",
            formula.default_noise,
            formula.default_samples,
            lambda c: None,
            lambda c: 12,
            build,
        ),
    )
    yield
    TASK_KINDS._entries.pop("leakcheck")


def test_selection_never_reads_the_test_split(leak_kinds, ex):
    def run(arg: str):
        data = RFEDataConfig(task=f"leakcheck:{arg}", noise_features=9, samples=800)
        return run_rfe(
            _config(data=data, selectors=("saliency", "feature_ablation", "linear", "svm", "tree")),
            executor=ex,
        )

    clean, poisoned = run("clean"), run("poisoned")
    for s in clean.runs:
        assert [r.kept for r in clean.runs[s].rounds] == [r.kept for r in poisoned.runs[s].rounds], s
        assert [r.val_error for r in clean.runs[s].rounds] == [r.val_error for r in poisoned.runs[s].rounds]
        assert poisoned.runs[s].final_error > 100 * clean.runs[s].final_error  # the poison did reach the test error


def test_classification_bi_module_trains_a_network_on_classic_selections(ex):
    config = RFEConfig(
        data=RFEDataConfig(task="tabular:breast_cancer", noise_features=10),
        selectors=("saliency", "linear", "tree"),
        strategy="bi",
        train=TrainConfig(epochs=40, batch_size=100),
        target=10,
    )
    assert config.train.loss == "bce" and config.model.activation == "relu"
    result = run_rfe(config, executor=ex)
    assert result.task_type == "classification" and result.error_name == "1 - balanced accuracy"
    assert result.schedule == [40, 20, 10]
    for s in ("linear", "tree"):
        rounds = result.runs[s].rounds
        assert {r.predictor for r in rounds} == {"MLP"} and all(r.eval_seconds > 0 for r in rounds)
    final = result.runs["saliency"].final
    assert set(final.test_metrics) == {"accuracy", "balanced_accuracy", "roc_auc"}
    assert final.error == pytest.approx(1 - final.test_metrics["balanced_accuracy"])
    assert final.test_metrics["roc_auc"] > 0.9  # the real measurements are easy to classify
    uni = run_rfe(replace(config, strategy="uni"), executor=ex)
    assert uni.runs["linear"].rounds[0].predictor == "LogisticRegression"
    assert uni.runs["linear"].kept == result.runs["linear"].kept  # the strategy changes the predictor only


def test_a_stop_request_cancels_and_a_rerun_resumes(ex):
    config = _config(selectors=("saliency",))
    with pytest.raises(JobCancelled):
        run_rfe(config, executor=ex, should_stop=lambda: True)
    assert run_rfe(config, executor=ex).runs["saliency"].kept == (0, 1, 2)


def test_worker_processes_give_the_same_selection_as_one_process(tmp_path, ex):
    from chaosmining.cache import Cache

    config = _config(
        selectors=("saliency", "tree"), data=RFEDataConfig(task="formula:7", noise_features=5, samples=300)
    )
    one = run_rfe(config, executor=ex)
    two = run_rfe(config, cache=Cache(tmp_path / "b"), workers=2)
    assert two.workers == 2
    for s in one.runs:
        assert [r.kept for r in one.runs[s].rounds] == [r.kept for r in two.runs[s].rounds]
        assert one.runs[s].final_error == pytest.approx(two.runs[s].final_error, rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": 13}, r"The 'target' parameter of RFEConfig must be an int in \[0, 12\]. Got 13 instead"),
        ({"drop_rate": 1.0}, r"The 'drop_rate' parameter of RFEConfig must be a float in \(0, 1\). Got 1.0"),
        ({"strategy": "tri"}, r"The 'strategy' parameter of RFEConfig must be one of \['uni', 'bi'\]"),
        ({"selectors": ("saliency", "lasso")}, r"Unknown selector 'lasso'"),
        ({"selectors": ()}, r"The 'selectors' parameter of RFEConfig must be a non-empty list"),
    ],
)
def test_bad_configurations_name_the_parameter(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        _config(**kwargs)


def test_bad_tasks_name_the_parameter(tmp_path):
    with pytest.raises(ConfigError, match=r"The 'task' parameter of RFEDataConfig must be 'KIND:ARG'"):
        RFEDataConfig(task="formula11")
    with pytest.raises(ConfigError, match=r"Unknown task kind 'image'"):
        RFEDataConfig(task="image:1")
    with pytest.raises(ConfigError, match=r"Unknown tabular data set 'iris'"):
        RFEDataConfig(task="tabular:iris")
    with pytest.raises(ConfigError, match=r"must be 'csv:PATH' with an existing CSV file"):
        RFEDataConfig(task=f"csv:{tmp_path / 'nope.csv'}")


def test_csv_task_with_too_few_rows_of_a_class_is_refused(tmp_path, tmp_cache):
    path = tmp_path / "small.csv"
    pd.DataFrame({"x": np.arange(20.0), "target": [0] * 18 + [1] * 2}).to_csv(path, index=False)
    config = RFEConfig(data=RFEDataConfig(task=f"csv:{path}"), selectors=("linear",))
    with pytest.raises(DataError, match=r"Class '1' of 'small.csv' has 2 row\(s\)"):
        prepare_data(config, tmp_cache)


def test_cli_prints_the_json_contract(capsys, session_cache):
    code = main(
        [
            "rfe",
            "--task",
            "formula:2*a - 3*b + c",
            "--noise-features",
            "9",
            "--samples",
            "800",
            "--epochs",
            "150",
            "--selectors",
            ",".join(NN + ("linear", "tree")),
            "--workers",
            "1",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for s in NN + ("linear", "tree"):
        row = out["selectors"][s]
        assert [r["n_features"] for r in row["rounds"]] == [12, 6, 3]
        assert all({"n_features", "error", "precision", "seconds"} <= set(r) for r in row["rounds"])
        assert isinstance(row["final_precision"], float) and isinstance(row["final_error"], float)
        assert len(row["kept"]) == 3
    assert out["selectors"]["saliency"]["kept"] == [0, 1, 2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "formula:11", "--target", "500"], "The 'target' parameter of RFEConfig must be an int in [0, 156]"),
        (
            ["--task", "formula:11", "--drop-rate", "1.5"],
            "The 'drop_rate' parameter of RFEConfig must be a float in (0, 1)",
        ),
        (["--task", "tabular:santander_like", "--samples", "50"], "The 'samples' parameter of RFEDataConfig"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(capsys, args, message):
    assert main(["rfe", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_csv_without_label_or_with_text_columns_says_which(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSMINING_DATA_ROOTS", str(tmp_path / "roots"))
    a = tmp_path / "nolabel.csv"
    pd.DataFrame({"u": [1, 2, 3], "v": [4, 5, 6]}).to_csv(a, index=False)
    assert main(["rfe", "--task", f"csv:{a}", "--selectors", "linear"]) == 2
    assert "has no label column" in capsys.readouterr().err
    b = tmp_path / "text.csv"
    pd.DataFrame({"u": [1, 2, 3], "colour": ["r", "g", "b"], "TARGET": [0, 1, 0]}).to_csv(b, index=False)
    assert main(["rfe", "--task", f"csv:{b}", "--selectors", "linear"]) == 2
    # outside the data roots the file's content (its column names) is never quoted, only positions
    assert "non-numeric columns at positions 2 (counting from 1)" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["santander_like", "breast_cancer"])
def test_every_embedded_table_prepares_with_its_truth(name, tmp_cache):
    samples = {"santander_like": 3000, "breast_cancer": 0}[name]
    config = RFEConfig(data=RFEDataConfig(task=f"tabular:{name}", noise_features=12, samples=samples))
    _, data = prepare_data(config, tmp_cache)
    n_true = {"santander_like": 48, "breast_cancer": 30}[name]
    assert data.task_type == "classification" and data.n_features == n_true + 12
    assert data.true_features == tuple(range(n_true))
    assert set(np.unique(data.y_train)) == {0.0, 1.0} and abs(data.y_train.mean() - 0.5) < 0.05  # undersampled
    assert config.resolved_target(data.n_features, data.true_features) == n_true


def test_plan_counts_the_trainings_a_plain_loop_would_need():
    from chaosmining.experiments.rfe import plan_rfe

    z = np.zeros((10, 12), dtype=np.float32)
    data = SelectionData("t", "regression", z, z[:, 0], z, z[:, 0], z, z[:, 0], [f"x{i}" for i in range(12)], (0, 1, 2))
    uni = plan_rfe(_config(), data)
    assert uni.schedule == [12, 6, 3] and uni.trainings == 1 + 4 * 2  # round 1 shared by the 4 NN selectors
    bi = plan_rfe(_config(strategy="bi"), data)
    assert bi.trainings == uni.trainings + 2 * 3 and bi.estimated_seconds > uni.estimated_seconds
    assert plan_rfe(_config(selectors=("linear",)), data).trainings == 0
    # The estimate follows the trainer's measured speed in that precision (the compiled fp32 step, where built)
    fast = plan_rfe(_config(train=FAST.replace(precision="bf16")), data)
    assert fast.trainings == uni.trainings
    ratio = training_macs_per_second("bf16") / training_macs_per_second("fp32")
    assert fast.estimated_seconds == pytest.approx(uni.estimated_seconds / ratio)
    assert training_macs_per_second("bf16") == pytest.approx(TORCH_MACS_PER_SECOND * PRECISIONS.get("bf16").speedup)


def test_rounds_are_reported_while_later_trainings_are_still_to_run(ex):
    """Each finished unit is reported when it lands, so the page's progress moves round by round, not
    in one burst at the end: a round record comes before the next round's trainings are in flight."""
    log: list[tuple[str, int]] = []

    def report(**e):
        if "round" in e:
            log.append(("round", e["round"]))
        elif "running" in e:
            log.append(("running", e["running"]))

    run_rfe(_config(selectors=("saliency", "deeplift")), executor=ex, report=report)
    first_round = log.index(("round", 0))
    assert any(kind == "running" and n >= 1 for kind, n in log[first_round:])
    assert [n for kind, n in log if kind == "round"].count(2) == 2  # both chains reached the last round


def _count(cache, kind: str) -> int:
    return len(cache.entries(kind))


def test_stop_keeps_finished_units_and_the_next_run_resumes_from_them(tmp_cache):
    """Stop after the first round landed: the 12-feature network and its importance stay cached, no
    half-written entry is left, and the next run (inside an orchestration, as the page runs it) answers
    that round from the cache and finishes the chain."""
    from chaosmining.runs import make_executor

    config = _config(selectors=("saliency", "linear"))
    ex = make_executor("local", cache=tmp_cache, workers=1)
    try:
        landed: list[dict] = []

        def report(**e):
            if "round" in e:
                landed.append(e)

        with pytest.raises(JobCancelled, match="finished trainings are cached"):
            run_rfe(config, executor=ex, report=report, should_stop=lambda: any(e["round"] == 0 for e in landed))
        assert 1 <= _count(tmp_cache, "rfe-model") < 3 and _count(tmp_cache, "rfe-importance") >= 1
        assert _count(tmp_cache, "rfe-result") == 0
        assert not [p for p in tmp_cache.root.rglob(".tmp-*")]  # no half-written entry

        handle = ex.orchestrate(
            "rfe:resume", lambda ctx: run_rfe(config, executor=ctx), kind="rfe", description="resume", session="s1"
        )
        result = handle.result(timeout=300)
        assert result.runs["saliency"].kept == (0, 1, 2) and result.runs["saliency"].rounds[0].cached
        assert not result.runs["saliency"].rounds[-1].cached
        children = [c for c in handle.children if c.kind == "rfe-train"]
        assert children[0].cached and all(c.session == "s1" for c in children)
        assert any("round" in e for e in handle.snapshot().events)  # progress lands on the orchestration
        assert _count(tmp_cache, "rfe-model") == 3 and _count(tmp_cache, "rfe-result") == 1
    finally:
        ex.shutdown()


def test_a_failing_unit_fails_its_selector_and_the_others_go_on(ex):
    events: list[dict] = []
    config = _config(
        selectors=("saliency", "linear"), train=TrainConfig(epochs=30, lr=100.0, optimizer="sgd", snapshots=1)
    )
    result = run_rfe(config, executor=ex, report=lambda **e: events.append(e))
    assert "Training diverged" in result.runs["saliency"].error_message and not result.runs["saliency"].rounds
    assert result.runs["linear"].error_message is None and len(result.runs["linear"].rounds) == 3
    assert any(e.get("selector") == "saliency" and "diverged" in str(e.get("error")) for e in events)
    assert result.errors and load_rfe(config, ex.cache) is None  # retried next time


def test_an_executor_on_another_cache_is_refused(tmp_path):
    from chaosmining.cache import Cache
    from chaosmining.runs import make_executor

    ex = make_executor("local", cache=Cache(tmp_path / "a"), workers=1)
    try:
        with pytest.raises(ConfigError, match=r"The 'cache' parameter of run_rfe must be the executor's cache"):
            run_rfe(_config(), executor=ex, cache=Cache(tmp_path / "b"))
    finally:
        ex.shutdown()


def test_selections_of_the_same_data_share_their_units(ex):
    from chaosmining.experiments.rfe import run_rfe_many

    a, b = _config(selectors=("saliency", "linear")), _config(selectors=("deeplift", "linear"))
    ra, rb = run_rfe_many([a, b], executor=ex)
    assert ra.runs["linear"].rounds == rb.runs["linear"].rounds and len(ra.runs["linear"].rounds) == 3
    assert ra.runs["saliency"].rounds[0].kept == rb.runs["deeplift"].rounds[0].kept == tuple(range(12))
    assert ra.runs["saliency"].rounds[0].error == rb.runs["deeplift"].rounds[0].error  # one shared network
