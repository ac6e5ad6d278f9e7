"""Export: the numbers behind each figure, ZIP bundles, PNG/SVG through Kaleido and Chromium."""

from __future__ import annotations

import io
import json
import zipfile

import plotly.graph_objects as go
import pytest

from chaosmining.export import export_bundle, figure_table, find_browser, write_bundle


def test_figure_table_has_the_numbers_of_bars_lines_and_heatmaps():
    fig = go.Figure(
        [
            go.Bar(x=["a", "b"], y=[1.0, 2.0], name="fprec", error_y=dict(array=[0.1, 0.2])),
            go.Scatter(x=[0, 1, 2], y=[3, 4, 5], name="curve"),
        ]
    )
    t = figure_table(fig)
    assert list(t[t.trace == "fprec"].y) == [1.0, 2.0] and list(t[t.trace == "fprec"].error) == [0.1, 0.2]
    assert list(t[t.trace == "curve"].x) == [0, 1, 2]
    h = figure_table(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]], x=["f0", "f1"], y=["s0", "s1"], name="attr")))
    assert len(h) == 4 and h.loc[(h.x == "f1") & (h.y == "s0"), "value"].item() == 2


def test_zip_bundle_holds_html_csv_and_json(tmp_path):
    figs = {"bars": go.Figure(go.Bar(x=["a"], y=[1]))}
    data, names = export_bundle(figs, {"task": "demo", "config": {"x": 1}}, formats=("html", "csv"))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert set(zf.namelist()) == {"plotly.min.js", "bars.html", "bars.csv", "bundle.json"}
        assert json.loads(zf.read("bundle.json"))["task"] == "demo"
        assert b'src="plotly.min.js"' in zf.read("bars.html")
    written = write_bundle(tmp_path, figs, None, formats=("csv",))
    assert [p.name for p in written] == ["bars.csv"]


@pytest.mark.skipif(find_browser() is None, reason="no Chromium for Kaleido")
def test_png_and_svg_are_rendered_by_kaleido():
    data, names = export_bundle({"bars": go.Figure(go.Bar(x=["a"], y=[1]))}, None, formats=("png", "svg"))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read("bars.png")[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in zf.read("bars.svg")[:500]
    assert "EXPORT-NOTES.txt" not in names


def test_reference_lines_are_labelled_beside_the_plot_and_the_margin_fits_them():
    """Floors and ceilings are labelled in the right margin, never over the bars they are compared with."""
    from chaosmining.viz import layout, reference_line

    fig = go.Figure(go.Bar(x=["a", "b"], y=[0.9, 0.1]))
    reference_line(fig, 0.11, "random floor k/d = 0.111")
    reference_line(fig, 0.5, "chance")
    layout(fig, "title")  # the shared layout keeps the widened margin
    floor, chance = fig.layout.annotations
    assert (floor.x, floor.xanchor, floor.y) == (1, "left", 0.11)
    assert floor.text == "random floor<br>k/d = 0.111" and chance.text == "chance"  # long labels wrap
    assert fig.layout.margin.r >= 6 * len("random floor")
    assert [s.y0 for s in fig.layout.shapes] == [0.11, 0.5]
