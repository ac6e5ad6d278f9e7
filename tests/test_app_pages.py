"""AppTest smoke tests: every page runs without an exception; the symbolic page's flows work."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from chaosmining import native

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]


@pytest.mark.parametrize("path", PAGES, ids=[p.stem for p in PAGES])
def test_every_page_renders_without_an_exception(path):
    at = AppTest.from_file(str(path), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, "every page has a title"


def _symbolic() -> AppTest:
    return AppTest.from_file(str(ROOT / "pages" / "1_Symbolic_functions.py"), default_timeout=120).run()


def test_symbolic_page_trains_polls_and_renders_results():
    at = _symbolic()
    assert [b.label for b in at.button if b.label == "Train"] == ["Train"]
    at.number_input(key="sym_noise").set_value(6)
    at.number_input(key="sym_samples").set_value(400)
    at.number_input(key="sym_epochs").set_value(20)
    at.run()
    at.button(key="sym_train_btn").click().run()
    for _ in range(120):
        if any(m.label == "Prediction UScore" for m in at.metric):
            break
        time.sleep(0.5)
        at.run()
    assert not at.exception
    assert any(m.label == "Prediction UScore" for m in at.metric)
    assert len(at.get("plotly_chart")) >= 8


def test_bad_formula_shows_an_error_and_keeps_the_other_settings():
    at = _symbolic()
    at.number_input(key="sym_epochs").set_value(77).run()
    at.radio(key="sym_source").set_value("Type a formula").run()
    at.text_input(key="sym_typed").set_value("a.__class__").run()
    assert not at.exception
    assert any("The 'formula' parameter was rejected" in e.value for e in at.error)
    assert at.number_input(key="sym_epochs").value == 77
    at.text_input(key="sym_typed").set_value("a*b + sin(c)").run()
    assert not at.error and at.number_input(key="sym_epochs").value == 77


def test_bad_number_combination_is_an_error_not_a_traceback():
    at = _symbolic()
    at.number_input(key="sym_samples").set_value(10)
    at.number_input(key="sym_test_fraction").set_value(0.05)
    at.run()
    assert not at.exception
    assert any("too small for the split" in e.value for e in at.error)


def test_precision_defaults_to_float32_and_bf16_is_refused_where_it_is_not_native(monkeypatch):
    import chaosmining.training as training

    at = _symbolic()
    assert at.selectbox(key="sym_precision").value == "fp32"
    monkeypatch.setattr(training, "native_bf16", lambda device: False)
    at.number_input(key="sym_epochs").set_value(77).run()
    at.selectbox(key="sym_precision").set_value("bf16").run()
    assert not at.exception
    assert any("The 'precision' parameter of TrainConfig" in e.value for e in at.error)
    assert at.number_input(key="sym_epochs").value == 77
    at.selectbox(key="sym_precision").set_value("fp32").run()
    assert not at.error


def test_home_page_says_which_cpu_trainer_is_in_use():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    text = " ".join(m.value for m in at.markdown)
    assert "symbolic MLP trainer:" in text
    assert ("compiled MLP step" in text) == native.status().available
