"""Real-browser test of the Vision page's main flow (Playwright + Debian Chromium)."""

from __future__ import annotations

import pytest
from conftest import SHOTS, choose, set_number, wait_for_app

pytestmark = pytest.mark.browser


def test_vision_page_trains_the_quick_preset_and_shows_the_gallery_with_boxes(page, app_server):
    page.goto(app_server + "/Vision")
    wait_for_app(page)
    page.get_by_text("Noise condition RBFP").wait_for()
    # A fresh install opens on the shipped demo results: the gallery is there without training.
    page.get_by_test_id("stImage").first.wait_for(timeout=90_000)
    page.screenshot(path=str(SHOTS / "vision-first-visit.png"), full_page=True)

    choose(page, "Preset", "Quick (about a minute on a CPU)")
    # A 32-px canvas keeps the run to seconds on a loaded 2-core machine; the flow is the same.
    set_number(page, "Foreground (px)", "8")
    set_number(page, "Canvas (px)", "32")
    page.get_by_text("32-px canvas, 8-px foreground").wait_for()
    page.get_by_role("button", name="Train").click()
    # Progress while it trains, then the gallery: overlays captioned with labels and each image's IoU.
    captions = page.get_by_test_id("stImageCaption").filter(has_text="IoU")
    captions.first.wait_for(timeout=300_000)
    assert captions.count() >= 4
    page.get_by_text("Yellow: the true foreground box. Red: the box spanning").first.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(SHOTS / "vision-gallery.png"), full_page=True)

    page.get_by_role("tab", name="Scores").click()
    page.locator(".js-plotly-plot").filter(has_text="IoU of the retrieved box per method").first.wait_for()
    page.screenshot(path=str(SHOTS / "vision-scores.png"), full_page=True)

    # A foreground larger than the canvas is refused with a clear message; no traceback.
    set_number(page, "Foreground (px)", "100")
    page.get_by_text("The 'foreground_size' parameter of VisionDataConfig must be an int in [4, 32]").wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_label("Canvas (px)", exact=True).input_value() == "32"
