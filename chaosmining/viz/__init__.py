"""Plotly figures: pure functions of results, shared by the app and the CLI's export.

Every function returns a :class:`plotly.graph_objects.Figure`; none imports Streamlit. One module per
modality; everything is re-exported here so callers write ``from chaosmining import viz``.
"""

from .common import (
    FLOOR_COLOR,
    OTHER_COLOR,
    PRED_COLOR,
    RELEVANT_COLOR,
    TRUE_COLOR,
    layout,
    method_color,
    method_label,
    rgba,
)
from .symbolic import (
    attribution_heatmap,
    cost_bars,
    fprec_bars,
    fprec_curve,
    fprec_distribution,
    ground_truth_scatter,
    loss_curve,
    mean_abs_bars,
    sweep_curves,
    symbolic_figures,
    uscore_bars,
)

__all__ = [
    "FLOOR_COLOR",
    "OTHER_COLOR",
    "PRED_COLOR",
    "RELEVANT_COLOR",
    "TRUE_COLOR",
    "layout",
    "method_color",
    "method_label",
    "rgba",
    "attribution_heatmap",
    "cost_bars",
    "fprec_bars",
    "fprec_curve",
    "fprec_distribution",
    "ground_truth_scatter",
    "loss_curve",
    "mean_abs_bars",
    "sweep_curves",
    "symbolic_figures",
    "uscore_bars",
]
