"""Real-browser test of the Symbolic page's main flow (Playwright + Debian Chromium)."""

from __future__ import annotations

import pytest
from conftest import SHOTS, expect_app_navigation, set_number, wait_for_app

pytestmark = pytest.mark.browser


def test_home_lists_modalities(page, app_server):
    page.goto(app_server)
    wait_for_app(page)
    page.get_by_text("Modalities and pages").wait_for()
    assert page.get_by_role("link", name="Symbolic functions").first.is_visible()
    expect_app_navigation(page)  # the home page is not named after the entry script
    page.screenshot(path=str(SHOTS / "home.png"), full_page=True)


def test_train_tiny_symbolic_configuration_and_see_fprec_chart(page, app_server):
    page.goto(app_server + "/Symbolic_functions")
    wait_for_app(page)
    page.get_by_text("Relevant features").first.wait_for()
    set_number(page, "Noise features", "8")
    set_number(page, "Samples", "600")
    set_number(page, "Epochs", "60")
    page.get_by_role("button", name="Train").click()
    # The live chart appears while training; the results (FPrec bars) when it lands in the cache.
    page.get_by_test_id("stMetric").first.wait_for(timeout=120_000)
    page.screenshot(path=str(SHOTS / "symbolic-debug.png"), full_page=True)
    assert page.get_by_test_id("stMetric").filter(has_text="Prediction UScore").is_visible()
    assert page.locator(".js-plotly-plot").filter(has_text="FPrec per method").count() == 1
    page.screenshot(path=str(SHOTS / "symbolic-results.png"), full_page=True)
    # A bad formula is refused with a clear message and no traceback, keeping the other settings.
    page.get_by_text("Type a formula").click()
    wait_for_app(page)
    box = page.get_by_label("f(a, ..., j) =", exact=True)
    box.fill("__import__('os').system('true')")
    box.press("Enter")
    wait_for_app(page)
    page.get_by_text("double underscores are not allowed").first.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_label("Epochs", exact=True).input_value() == "60"
