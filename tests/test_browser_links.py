"""Real-browser test of shareable links: settings changed on each page come back in a fresh browser context
opened at the page's URL (Playwright + Debian Chromium)."""

from __future__ import annotations

import pytest
from conftest import SHOTS, set_number, wait_for_app
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

# page path, (number label, value) pairs to change, and the tab to open (None: stay on the first)
CASES = {
    "symbolic": ("/Symbolic_functions", [("Noise features", "12"), ("Seed", "3")], "What-if sweep"),
    "vision": ("/Vision", [("Seed", "4")], "Scores"),
    "audio": ("/Audio", [("Channels", "4")], "Export"),
    "rfe": ("/Feature_selection", [("Seed", "3"), ("Target features (0 = as many as are true)", "5")], "Rounds"),
    "evaluation": ("/Evaluate_the_evaluators", [("Seed", "2")], "ROAD"),
}


def _open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()
    wait_for_app(page)
    expect(page.get_by_role("tab", name=name, exact=True)).to_have_attribute("aria-selected", "true", timeout=30_000)


@pytest.mark.parametrize("case", list(CASES))
def test_a_copied_link_opens_the_same_configuration_in_a_fresh_browser(case, page, browser, app_server):
    path, numbers, tab = CASES[case]
    page.goto(app_server + path)
    wait_for_app(page)
    for label, value in numbers:
        set_number(page, label, value)
    _open_tab(page, tab)
    if case == "evaluation":  # a setting inside the open tab
        set_number(page, "Test rows", "120")
        numbers = [*numbers, ("Test rows", "120")]
    # The browser shows a run's URL a moment after the run ends: wait for every setting to be in it.
    wanted = [f"={value}" for _, value in numbers] + ["tab=" + tab.replace(" ", "+").replace("/", "%2F")]
    page.wait_for_url(lambda url: all(w in url for w in wanted), timeout=30_000)
    link = page.url
    # The share box shows the same link.
    page.get_by_text("Share this configuration").click()
    expect(page.get_by_test_id("stCode").first).to_contain_text("tab=", timeout=30_000)

    fresh = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        other = fresh.new_page()
        other.set_default_timeout(60_000)
        other.goto(link)
        wait_for_app(other)
        expect(other.get_by_role("tab", name=tab, exact=True)).to_have_attribute(
            "aria-selected", "true", timeout=90_000
        )
        for label, value in numbers:
            box = (
                other.get_by_test_id("stNumberInput")
                .filter(has=other.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True))
                .filter(visible=True)
                .first.locator("input")
            )
            expect(box).to_have_value(value, timeout=30_000)
        assert other.locator('[data-testid="stException"]').count() == 0
        other.screenshot(path=str(SHOTS / f"link-{case}.png"), full_page=True)
    finally:
        fresh.close()


def test_a_malformed_link_is_a_warning_not_a_traceback(page, app_server):
    page.goto(app_server + "/Symbolic_functions?noise=lots&epochs=77")
    wait_for_app(page)
    page.get_by_text("The 'noise' parameter of the link must be an int in [0, 5000]").first.wait_for()
    box = page.get_by_label("Epochs", exact=True)
    expect(box).to_have_value("77", timeout=30_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "noise=" not in page.url


def test_a_link_to_a_cached_configuration_shows_its_result_at_once(page, app_server):
    # The Audio page's default configuration is shipped in the cache (the demo results).
    page.goto(app_server + "/Audio?tab=Export")
    wait_for_app(page)
    tab = page.get_by_role("tab", name="Export", exact=True)
    expect(tab).to_have_attribute("aria-selected", "true", timeout=90_000)
    expect(page.get_by_role("button", name="Download ZIP")).to_be_visible(timeout=30_000)
    assert page.get_by_role("button", name="Train").count() == 0
