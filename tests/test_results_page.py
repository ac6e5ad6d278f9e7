"""The Results page (AppTest) and its pure parts: leaderboard ranks, run comparison, metric agreement."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from chaosmining.results import ResultsStore, paper_reference, record
from chaosmining.viz import results as vr

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "6_Results.py")
IOU = {"saliency": 0.7, "deeplift": 0.5, "integrated_gradients": 0.4, "feature_ablation": 0.6}


def fake_vision(model: str, condition: str, seed: int, shift: float = 0.0) -> SimpleNamespace:
    """A typed-result stand-in that the store's vision extractor reads (its ``summary()``)."""
    iou = {m: v + shift for m, v in IOU.items()}
    summary = {
        "config": {"data": {"foreground": "shapes10"}, "model": model, "seed": seed},
        "condition": condition,
        "iou": iou,
        "pointing_game": {m: v / 2 for m, v in iou.items()},  # ranks the methods as IoU does
        "accuracy": 0.8,
    }
    return SimpleNamespace(summary=lambda: summary)


def fill(root, seeds=(0, 1)) -> ResultsStore:
    store = ResultsStore(root)
    for seed in seeds:
        for condition in ("RBFP", "RBRP"):
            cfg = {"model": "resnet18", "condition": condition, "seed": seed}
            assert record("vision-result", cfg, fake_vision("resnet18", condition, seed, 0.01 * seed), store=store)
    return store


def frame(at: AppTest, column: str) -> pd.DataFrame:
    """The first data frame on the page that has ``column`` (the leaderboard: 'rank'; agreement: 'spearman')."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSMINING_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def test_leaderboard_ranks_by_mean_over_seeds_with_the_paper_beside(tmp_path):
    scores = fill(tmp_path / "r").scores()
    board = vr.leaderboard(scores, paper_reference())
    ours = board[(board["source"] == "this store") & (board["metric"] == "iou") & (board["setting"] == "RBFP")]
    best = ours.set_index("method")
    assert best.loc["saliency", "rank"] == 1 and best.loc["integrated_gradients", "rank"] == 4
    assert best.loc["saliency", "mean"] == pytest.approx(0.705)  # 0.70 and 0.71 over seeds 0 and 1
    assert best.loc["saliency", "seeds"] == 2
    ref = board[(board["source"] == "paper: Table 2") & (board["setting"] == "RBFP") & (board["metric"] == "iou")]
    assert ref.set_index("method").loc["saliency", "mean"] == pytest.approx(0.678)


def test_compare_two_runs_gives_the_difference(tmp_path):
    scores = fill(tmp_path / "r").scores()
    keys = sorted(
        scores[scores["setting"] == "RBFP"]["run_key"].unique(),
        key=lambda k: scores.loc[scores.run_key == k, "seed"].iloc[0],
    )
    comp = vr.compare_runs(scores, keys[0], keys[1]).set_index(["method", "metric"])
    assert comp.loc[("saliency", "iou"), "difference"] == pytest.approx(0.01)


def test_metrics_that_rank_alike_agree_perfectly(tmp_path):
    scores = fill(tmp_path / "r").scores()
    agreement = vr.metric_agreement(scores, ["iou", "pointing_game"])
    row = agreement.iloc[0]
    assert row["spearman"] == pytest.approx(1.0) and row["kendall"] == pytest.approx(1.0)
    assert row["runs"] == 4  # two seeds x two conditions, each run a unit
    per_model = vr.metric_agreement(scores, ["iou", "pointing_game"], ("task", "model", "seed")).iloc[0]
    assert per_model["runs"] == 2 and per_model["spearman"] == pytest.approx(1.0)


def test_lower_is_better_metrics_rank_ascending():
    assert vr.higher_is_better("fprec") and not vr.higher_is_better("test_mae")
    assert not vr.higher_is_better("roar_area") and vr.higher_is_better("kar_area")
    scores = pd.DataFrame(
        {
            "modality": "x", "task": "t", "setting": "s", "model": "m", "metric": "test_error",
            "method": ["a", "b"], "value": [0.1, 0.2], "seed": 0, "run_key": "k",
        }
    )  # fmt: skip
    assert vr.leaderboard(scores).set_index("method").loc["a", "rank"] == 1


def test_empty_store_says_how_to_fill_it(store_env):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    text = " ".join(i.value for i in at.info)
    assert "results rebuild" in text and "reproduce" in text


def test_page_shows_the_leaderboard_compare_and_agreement(store_env):
    fill(store_env)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    board = frame(at, "rank")
    assert {"this store", "paper: Table 2"} <= set(board["source"])
    assert at.selectbox(key="res_run_a").value != at.selectbox(key="res_run_b").value
    agree = frame(at, "spearman")
    assert ((agree["metric_a"] == "iou") & (agree["metric_b"] == "pointing_game")).any()
    assert at.query_params == {} or "modality" not in at.query_params


def test_url_filters_apply_and_a_bad_value_is_named_not_raised(store_env):
    fill(store_env)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["metric"] = "iou,bogus"
    at.query_params["run_a"] = "nope"
    at.run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "'metric'" in warnings and "'bogus'" in warnings and "'run_a'" in warnings
    assert at.multiselect(key="res_metric").value == ["iou"]
    assert set(frame(at, "rank")["metric"]) == {"iou"}
    # a filter chosen in the page lands in the URL
    at.multiselect(key="res_setting").set_value(["RBRP"]).run()
    assert at.query_params["setting"] in (["RBRP"], "RBRP")
    assert set(frame(at, "rank")["setting"]) == {"RBRP"}


def test_leaderboard_exports_as_latex(tmp_path):
    from ui.results import latex_table

    board = vr.leaderboard(fill(tmp_path / "r").scores(), paper_reference())
    tex = latex_table(board)
    assert tex.startswith("\\begin{tabular}") and "integrated\\_gradients" in tex and "0.705" in tex
