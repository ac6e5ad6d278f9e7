"""Results: every recorded run as a leaderboard beside the paper, two runs side by side, metric agreement."""

from __future__ import annotations

import streamlit as st

from chaosmining.results import ResultsStore
from ui.common import setup_page
from ui.results import (
    EMPTY_STORE,
    filter_widgets,
    filtered,
    load_runs,
    load_scores,
    show_agreement,
    show_compare,
    show_export,
    show_leaderboard,
    sync_url,
    url_filters,
)

setup_page("Results", ":material/leaderboard:")
st.title("Results")
st.caption(
    "Every finished run of every page, the CLI and `reproduce` is recorded in the results store. Rank the "
    "methods per setting beside the paper's published numbers, compare two runs, and check whether the "
    "metrics agree on the ranking. The filters live in the URL: copy it to share this view."
)

store = ResultsStore()
scores = load_scores(store)
if scores.empty:
    st.info(EMPTY_STORE.format(root=store.root))
    st.stop()
runs = load_runs(store)

url_filters(scores, list(runs["run_key"]))
chosen = filter_widgets(scores)
view = filtered(scores, chosen)

board_tab, compare_tab, agree_tab, export_tab = st.tabs(
    ["Leaderboard", "Compare two runs", "Metric agreement", "Export"]
)
with board_tab:
    board, board_fig = show_leaderboard(view)
with compare_tab:
    comparison, compare_fig = show_compare(scores, runs[runs["run_key"].isin(view["run_key"])])
with agree_tab:
    agreement, agree_fig = show_agreement(view)
with export_tab:
    figures = {
        name: fig
        for name, fig in (("leaderboard", board_fig), ("compare", compare_fig), ("agreement", agree_fig))
        if fig
    }
    show_export({"leaderboard": board, "compare": comparison, "agreement": agreement}, figures, chosen)
sync_url()
