"""Smoke test of the "Evaluate the evaluators" page with Streamlit's AppTest."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from chaosmining.runs import get_executor

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "5_Evaluate_the_evaluators.py")


def _wait_for_jobs(kind: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        running = [j for j in get_executor().active() if j.kind == kind]
        if not running:
            return
        time.sleep(0.2)
    raise AssertionError(f"{kind} jobs still running after {timeout} s")


def test_page_opens_on_the_16d_example_and_shows_its_curves():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception
    _wait_for_jobs("roar")
    at.run()
    assert not at.exception
    titles = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    assert "ROAR" in titles and "KAR" in titles and "Without retraining" in titles
    assert any("Reading." in m.value for m in at.markdown)
    assert [t.label for t in at.tabs] == [
        "16-d example",
        "ROAR / KAR",
        "ROAD",
        "Blur bias",
        "Sanity checks",
        "Faithfulness",
    ]


def test_bad_fractions_are_refused_with_a_message_and_the_settings_stay():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    _wait_for_jobs("roar")
    at.text_input(key="ev_roar_fractions").set_value("0.1, lots").run()
    assert not at.exception
    assert any("'fractions' setting" in e.value for e in at.error)
    at.text_input(key="ev_roar_fractions").set_value("0.1, 1.5").run()
    assert any("must hold fractions in (0, 1)" in e.value for e in at.error)
    assert at.text_input(key="ev_roar_fractions").value == "0.1, 1.5"
    assert at.number_input(key="ev_roar_repeats").value == 1


def test_tabular_task_explains_why_the_blur_section_needs_images():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    _wait_for_jobs("roar")
    at.selectbox(key="ev_task").set_value("formula").run()
    assert not at.exception
    assert any("needs neighbouring units" in i.value for i in at.info)
    assert at.selectbox(key="ev_formula").value == "7"


def test_preflight_notes_appear_before_any_run():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    _wait_for_jobs("roar")
    at.selectbox(key="ev_task").set_value("audio").run()
    assert not at.exception
    assert any("DeepLift has no rule for AdaptiveMaxPool1d" in w.value for w in at.warning) is False
    at.multiselect(key="ev_methods").set_value(["saliency", "deeplift", "random"]).run()
    assert any("DeepLift has no rule for AdaptiveMaxPool1d" in w.value for w in at.warning)


def test_roar_mask_probe_and_sensitivity_n_settings_reach_their_configs():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.run()
    _wait_for_jobs("roar")
    at.selectbox(key="ev_task").set_value("formula").run()
    at.multiselect(key="ev_methods").set_value(["saliency", "random"]).run()
    at.text_input(key="ev_roar_fractions").set_value("0.1, 0.5").run()
    at.checkbox(key="ev_roar_probe").check().run()
    at.button(key="ev_roar_run_btn").click().run()
    _wait_for_jobs("roar", timeout=180)
    at.run()
    assert not at.exception
    titles = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    assert "mask-only probe score" in titles and "boundary ratio" in titles
    # Sensitivity-n: a bad subset-size list is refused with a message naming it; the other settings stay.
    at.text_input(key="ev_faith_n_values").set_value("1, four").run()
    assert not at.exception
    assert any("'n_values' setting must be comma-separated whole numbers" in e.value for e in at.error)
    at.number_input(key="ev_faith_subsets").set_value(7).run()
    assert at.text_input(key="ev_faith_n_values").value == "1, four"
    assert at.checkbox(key="ev_roar_probe").value is True
