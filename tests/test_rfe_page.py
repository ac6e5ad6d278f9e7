"""AppTest flows of the Feature Selection page."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

PAGE = Path(__file__).resolve().parent.parent / "pages" / "4_Feature_selection.py"


def _page() -> AppTest:
    return AppTest.from_file(str(PAGE), default_timeout=120).run()


def _small(at: AppTest) -> AppTest:
    at.selectbox(key="rfe_formula").set_value("7")
    at.number_input(key="rfe_noise_formula").set_value(6)
    at.number_input(key="rfe_samples_formula").set_value(300)
    at.number_input(key="rfe_epochs_regression").set_value(60)
    at.multiselect(key="rfe_selectors").set_value(["saliency", "linear", "tree"])
    return at.run()


def test_page_shows_the_paper_protocol_by_default():
    at = _page()
    assert not at.exception and at.title[0].value == "Feature selection"
    caption = " ".join(c.value for c in at.caption)
    assert "156 → 78 → 39 → 19 → 9 → 6 features" in caption and "True features: a, b, c, d, e, f" in caption
    assert any("DeepLift has no rule for GELU" in w.value for w in at.warning)


def test_page_runs_a_small_selection_and_renders_every_chart():
    at = _small(_page())
    at.button(key="rfe_run_btn").click().run()
    for _ in range(240):
        if at.metric:
            break
        time.sleep(0.5)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.label for m in at.metric] == ["Features", "Rounds", "Selectors", "Source"]
    titles = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    for title in (
        "Test MAE vs number of features",
        "Precision of the kept features",
        "Time per selector",
        "Features kept",
    ):
        assert title in titles
    assert any("Reading." in m.value for m in at.markdown)


def test_bad_target_shows_an_error_and_keeps_the_other_settings():
    at = _page()
    at.number_input(key="rfe_noise_formula").set_value(40).run()
    at.number_input(key="rfe_target").set_value(500).run()
    assert not at.exception
    assert any("The 'target' parameter of RFEConfig must be an int in [0, 46]" in e.value for e in at.error)
    assert at.number_input(key="rfe_noise_formula").value == 40
    at.number_input(key="rfe_target").set_value(0).run()
    assert not at.error


def test_tabular_and_csv_tasks_preview_or_explain(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSMINING_DATA_ROOTS", str(tmp_path))
    at = _page()
    at.radio(key="rfe_kind").set_value("tabular").run()
    at.selectbox(key="rfe_table").set_value("breast_cancer").run()
    assert not at.exception
    assert "369 features" in " ".join(c.value for c in at.caption)
    at.radio(key="rfe_kind").set_value("csv").run()
    assert any("Upload a CSV" in i.value for i in at.info) and not at.error
    at.text_input(key="rfe_csv_path").set_value(str(tmp_path / "missing.csv")).run()
    assert any("must be an existing file under the data roots" in e.value for e in at.error)
    path = tmp_path / "labels.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"], "TARGET": [0, 1, 0]}).to_csv(path, index=False)
    at.text_input(key="rfe_csv_path").set_value(str(path)).run()
    assert any("non-numeric columns: 'b'" in e.value for e in at.error)  # under a data root: names may be shown


def _progress_app() -> None:
    import time as _time

    from chaosmining.runs import RunSnapshot
    from ui.selection import render_progress

    events = (
        {"config": 0, "schedule": [12, 6, 3], "selectors": ["saliency", "linear"]},
        {"running": 2},
        {"config": 0, "selector": "linear", "round": 0, "n_features": 12, "error": 0.09, "precision": 0.25},
        {"config": 0, "selector": "linear", "round": 1, "n_features": 6, "error": 0.08, "precision": 0.5},
        {"config": 0, "selector": "saliency", "round": 0, "n_features": 12, "error": 0.05, "precision": 0.25},
    )
    payload = {"selectors": ["saliency", "linear"], "schedule": [12, 6, 3]}
    render_progress(
        RunSnapshot(
            "id",
            "k",
            "rfe",
            "d",
            "running",
            events,
            None,
            _time.time(),
            _time.time(),
            None,
            payload,
            None,
            None,
            False,
            1,
        )
    )


def test_progress_shows_each_selector_and_the_curves_so_far():
    at = AppTest.from_function(_progress_app, default_timeout=60).run()
    assert not at.exception
    bars = [p.proto.text for p in at.get("progress")]
    assert bars[0].startswith("RFEwNA: Saliency (signed gradient): 1/3 rounds - at 12 features error 0.05")
    assert bars[1] == "RFE: linear model: 2/3 rounds - at 6 features error 0.08, precision 0.50"
    assert len(at.get("plotly_chart")) == 2
    assert "2 training(s) in flight" in at.caption[0].value


def test_a_server_path_outside_the_data_roots_is_refused_without_showing_its_content(tmp_path, monkeypatch):
    """The issue's leak: /proc/self/environ typed as the CSV path showed the server's environment."""
    monkeypatch.setenv("CHAOSMINING_DATA_ROOTS", str(tmp_path))
    monkeypatch.setenv("CHAOSMINING_CANARY", "canary-value-42")
    at = _page()
    at.radio(key="rfe_kind").set_value("csv").run()
    for typed in ("/proc/self/environ", f"{tmp_path}/../../proc/self/environ", "/proc/self/mem"):
        at.text_input(key="rfe_csv_path").set_value(typed).run()
        assert not at.exception
        errors = [e.value for e in at.error]
        assert (
            len(errors) == 1
            and "The 'CSV path' parameter of the app must be a path under one of the data roots" in errors[0]
        )
        assert repr(str(tmp_path.resolve())) in errors[0]
        shown = " ".join(str(el.value) for el in at.main if hasattr(el, "value")) + " ".join(errors)
        assert "canary-value-42" not in shown and "CHAOSMINING_CANARY" not in shown
