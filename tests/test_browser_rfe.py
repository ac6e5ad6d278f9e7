"""Real-browser test of the Feature Selection page's main flow (Playwright + Debian Chromium)."""

from __future__ import annotations

import zipfile

import pytest
from conftest import SHOTS, set_number, wait_for_app

pytestmark = pytest.mark.browser


def test_run_a_small_selection_see_the_curves_and_export(page, app_server):
    page.goto(app_server + "/Feature_selection")
    wait_for_app(page)
    page.get_by_text("True features: a, b, c, d, e, f").first.wait_for()
    # Each change is awaited through its visible effect, so that no rerun races the next input.
    set_number(page, "Noise features", "6")
    page.get_by_text("with 6 noise features").first.wait_for()
    set_number(page, "Samples", "300")
    page.get_by_text("192 train / 48 validation / 60 test rows").first.wait_for()
    page.get_by_text("Network, training and splits").click()
    set_number(page, "Epochs", "60")
    page.get_by_text("trainings of 60 epochs").first.wait_for()
    assert page.get_by_text("Schedule: 12 → 6 features").first.is_visible()
    page.get_by_role("button", name="Run selection").click()
    # Progress per selector while it runs, then the results once it lands in the cache.
    page.get_by_test_id("stMetric").first.wait_for(timeout=180_000)
    charts = page.locator(".js-plotly-plot")
    for title in ("Test MAE vs number of features", "Precision of the kept features", "Time per selector"):
        charts.filter(has_text=title).first.wait_for()
    assert charts.filter(has_text="Features kept at the end").count() == 1
    assert page.get_by_text("Reading.").first.is_visible()
    page.screenshot(path=str(SHOTS / "rfe-results.png"), full_page=True)

    page.get_by_role("tab", name="Export").click()
    wait_for_app(page)  # the tab change reruns the page: its download button is a new one (built on its click)
    with page.expect_download(timeout=180_000) as download:  # the ZIP is built on the click
        page.get_by_role("button", name="Download ZIP").click()
    assert "bundle.json" in zipfile.ZipFile(download.value.path()).namelist()

    # A target above the feature count is refused with the standard message, no traceback.
    set_number(page, "Target features (0 = as many as are true)", "500")
    page.get_by_text("The 'target' parameter of RFEConfig must be an int in [0, 12]").first.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_label("Epochs", exact=True).input_value() == "60"
