"""Shared look of every figure: one colour per method everywhere, one layout."""

from __future__ import annotations

import zlib
from typing import Any

import plotly.graph_objects as go

from ..attribution import METHODS

__all__ = [
    "method_color",
    "method_label",
    "layout",
    "reference_line",
    "rgba",
    "RELEVANT_COLOR",
    "OTHER_COLOR",
    "FLOOR_COLOR",
    "TRUE_COLOR",
    "PRED_COLOR",
]

_PALETTE = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
]
RELEVANT_COLOR = "#d62728"
OTHER_COLOR = "#9aa5b1"
FLOOR_COLOR = "#555555"
_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=50), height=380)


def method_color(method: str) -> str:
    if method == "random":
        return "#7f7f7f"
    names = [n for n in METHODS.names() if n != "random"]
    idx = names.index(method) if method in names else zlib.crc32(method.encode())
    return _PALETTE[idx % len(_PALETTE)]


def method_label(method: str) -> str:
    return METHODS.get(method).display_name if method in METHODS else method


def layout(fig: go.Figure, title: str, **kw: Any) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01), **{**_LAYOUT, **kw})
    _fit_right_margin(fig)
    return fig


_LABEL_FONT = 10
_CHAR_PX = 6.2  # average width of a character at _LABEL_FONT px


def _wrap(text: str, width: int = 14) -> str:
    """Break a label at the space nearest its middle when it is longer than ``width`` characters."""
    if len(text) <= width or " " not in text:
        return text
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    cut = min(spaces, key=lambda i: abs(i - len(text) / 2))
    return text[:cut] + "<br>" + text[cut + 1 :]


def _fit_right_margin(fig: go.Figure) -> None:
    """Widen the right margin to hold every label that :func:`reference_line` put beside the plot."""
    lines = [
        line
        for a in fig.layout.annotations
        if a.xanchor == "left" and a.x is not None and a.x >= 1 and a.text
        for line in a.text.split("<br>")
    ]
    if lines:
        need = int(12 + _CHAR_PX * max(len(line) for line in lines))
        fig.update_layout(margin=dict(r=max(fig.layout.margin.r or 0, need)))


def reference_line(
    fig: go.Figure, y: float, text: str, *, dash: str = "dash", color: str = FLOOR_COLOR, **kw: Any
) -> go.Figure:
    """A horizontal reference (random floor, chance, ceiling) labelled in the right margin, beside the plot,
    where the label cannot cover a bar, a bar's value or a curve; ``kw`` goes to ``add_hline`` (row, col)."""
    fig.add_hline(
        y=y,
        line_dash=dash,
        line_color=color,
        annotation_text=_wrap(text),
        annotation_position="right",
        annotation_align="left",
        annotation_font=dict(size=_LABEL_FONT, color=color),
        **kw,
    )
    _fit_right_margin(fig)
    return fig


def rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# Boxes in image overlays: the true box yellow, the predicted box red (as in the paper's figures).
TRUE_COLOR = "#ffd400"
PRED_COLOR = "#ff1f1f"
