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
    return fig


def rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# Boxes in image overlays: the true box yellow, the predicted box red (as in the paper's figures).
TRUE_COLOR = "#ffd400"
PRED_COLOR = "#ff1f1f"
