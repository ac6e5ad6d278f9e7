"""Real-browser test of the Audio page's main flow (Playwright + Debian Chromium)."""

from __future__ import annotations

import pytest
from conftest import SHOTS, choose, expect_app_navigation, set_number, wait_for_app

SIDEBAR = '[data-testid="stSidebar"]'

pytestmark = pytest.mark.browser


def test_quick_preset_trains_and_shows_channel_bars(page, app_server):
    page.goto(app_server + "/Audio")
    wait_for_app(page)
    page.get_by_text("Setting RBFP").first.wait_for()
    expect_app_navigation(page)  # opened by its url, maybe as the fresh server's first visit
    page.screenshot(path=str(SHOTS / "audio-first-visit.png"), full_page=True)
    choose(page, "Preset", "Smoke test (seconds; stays at chance)", scope=SIDEBAR)
    choose(page, "Words", "core (10)", scope=SIDEBAR)
    # keep the run small: four channels, two integration steps
    set_number(page, "Channels", "4", scope=SIDEBAR)
    page.get_by_text("Integrated Gradients settings").click()
    set_number(page, "steps", "2", scope=SIDEBAR)
    page.get_by_text("Setting RBFP").first.wait_for()
    page.get_by_role("button", name="Train").click()
    # Progress while it trains; the channel bars when the result lands in the cache.
    bars = page.locator(".js-plotly-plot").filter(has_text="Channel importance per method")
    try:
        bars.first.wait_for(timeout=600_000)
    finally:
        page.screenshot(path=str(SHOTS / "audio-debug.png"), full_page=True)
    assert page.get_by_test_id("stMetric").filter(has_text="Accuracy").is_visible()
    assert page.locator(".js-plotly-plot").filter(has_text="speech channel's share").count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(SHOTS / "audio-quick-results.png"), full_page=True)
    page.get_by_role("tab", name="Listen and look").click()
    page.locator("audio").first.wait_for(state="attached")
    assert page.locator("audio").count() == 4  # one player per channel
    page.screenshot(path=str(SHOTS / "audio-listen.png"), full_page=True)
