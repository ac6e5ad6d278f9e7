"""Real-browser test of the "Evaluate the evaluators" page (Playwright + Debian Chromium)."""

from __future__ import annotations

import pytest
from conftest import SHOTS, choose, expect_app_navigation, set_number, wait_for_app

pytestmark = pytest.mark.browser


def test_16d_example_then_a_sanity_check_and_a_refused_input(page, app_server):
    page.goto(app_server + "/Evaluate_the_evaluators")
    wait_for_app(page)
    # The opening demonstration runs by itself within seconds.
    page.locator(".js-plotly-plot").filter(has_text="Without retraining").first.wait_for(timeout=180_000)
    assert page.locator(".js-plotly-plot").filter(has_text="KAR").count() >= 1
    page.get_by_text("Reading.").first.wait_for()
    expect_app_navigation(page)  # opened by its url, maybe as the fresh server's first visit
    page.screenshot(path=str(SHOTS / "evaluation-toy16.png"), full_page=True)

    # A sanity check on the symbolic-formula task (an MLP that trains in seconds): a job, then per-layer curves.
    choose(page, "Task", "Symbolic formula (MLP)", scope='[data-testid="stSidebar"]', exact=False)
    set_number(page, "Training budget (epochs; 0 = the task's default)", "60")
    page.get_by_role("tab", name="Sanity checks").click()
    wait_for_app(page)
    set_number(page, "Test rows", "16")
    page.get_by_role("button", name="Run").filter(visible=True).click()
    page.locator(".js-plotly-plot").filter(has_text="Cascading randomisation").first.wait_for(timeout=240_000)
    assert page.get_by_text("Guided Backprop").first.is_visible()
    page.screenshot(path=str(SHOTS / "evaluation-sanity.png"), full_page=True)

    # Bad input is refused with the standard message, no traceback, and the other settings stay.
    page.get_by_role("tab", name="ROAR / KAR").click()
    box = page.get_by_label("Fractions (blank = auto)", exact=True)
    box.fill("0.1, abc")
    box.press("Enter")
    wait_for_app(page)
    page.get_by_text("The 'fractions' setting must be comma-separated numbers").first.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_label("Repeats", exact=True).first.input_value() == "1"
