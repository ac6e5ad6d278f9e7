"""Real-browser test of the Results page: a filled store, the leaderboard, a filter from the URL."""

from __future__ import annotations

import pytest
from conftest import SHOTS, wait_for_app
from test_results_page import fill

from chaosmining.results import default_results_root

pytestmark = pytest.mark.browser


def test_results_page_shows_the_leaderboard_of_a_filled_store(page, app_server):
    fill(default_results_root(), seeds=(0, 1))  # the server's store: the session cache's results/
    page.goto(app_server + "/Results?metric=iou,bogus")
    wait_for_app(page)
    page.get_by_role("tab", name="Leaderboard").wait_for()
    page.get_by_text("The 'metric' filter in the URL must be among").first.wait_for()
    page.get_by_text("rank 1 is the best").first.wait_for()
    page.get_by_test_id("stDataFrame").filter(visible=True).first.wait_for()  # the leaderboard grid
    page.locator(".js-plotly-plot").filter(has_text="Leaderboard: iou").first.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "metric=iou" in page.url and "bogus" not in page.url  # the validated filter is written back
    page.screenshot(path=str(SHOTS / "results-leaderboard.png"), full_page=True)
    page.get_by_role("tab", name="Metric agreement").click()
    # the URL keeps one metric, so there is nothing to correlate: said, not raised
    page.get_by_text("Metric agreement needs at least two per-method metrics").first.wait_for()
