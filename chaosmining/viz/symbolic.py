"""Figures of the symbolic modality and of the what-if sweeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import OTHER_COLOR, RELEVANT_COLOR, method_color, method_label, reference_line
from .common import layout as _layout
from .common import rgba as _rgba

if TYPE_CHECKING:  # pragma: no cover
    from ..experiments.symbolic import SymbolicResult
    from ..sweep import SweepResult

__all__ = [
    "fprec_bars",
    "uscore_bars",
    "fprec_curve",
    "loss_curve",
    "attribution_heatmap",
    "mean_abs_bars",
    "ground_truth_scatter",
    "cost_bars",
    "sweep_curves",
    "fprec_distribution",
    "symbolic_figures",
]


def fprec_bars(result: SymbolicResult) -> go.Figure:
    """FPrec per method (mean and 95% interval over test samples) beside the random floor."""
    methods = list(result.scores)
    n = max(1, len(result.arrays.get(f"fprec_{methods[0]}", [1])))
    means = [result.scores[m].fprec for m in methods]
    ci = [1.96 * result.scores[m].fprec_std / np.sqrt(n) for m in methods]
    fig = go.Figure(
        go.Bar(
            x=[method_label(m) for m in methods],
            y=means,
            error_y=dict(type="data", array=ci, visible=True),
            marker_color=[method_color(m) for m in methods],
            text=[f"{v:.3f}" for v in means],
            textposition="outside",
            name="FPrec",
        )
    )
    floor = result.random_fprec_expected
    reference_line(fig, floor, f"random floor k/d = {floor:.3f}")
    return _layout(
        fig, "FPrec per method (top-k features that are relevant)", yaxis=dict(range=[0, 1.1], title="FPrec")
    )


def uscore_bars(result: SymbolicResult) -> go.Figure:
    """UScore of each method against its analytic ground truth."""
    methods = [m for m, s in result.scores.items() if s.uscore is not None]
    vals = [result.scores[m].uscore for m in methods]
    labels = [f"{method_label(m)}<br><sub>vs {result.scores[m].ground_truth}</sub>" for m in methods]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=vals,
            marker_color=[method_color(m) for m in methods],
            text=[f"{v:.3f}" for v in vals],
            textposition="outside",
        )
    )
    reference_line(
        fig, result.prediction_uscore, f"prediction UScore {result.prediction_uscore:.3f}", dash="dot", color="#000"
    )
    return _layout(fig, "UScore against the analytic ground truth", yaxis=dict(range=[0, 1.1], title="UScore"))


def fprec_curve(
    epochs: Sequence[int],
    curves: Mapping[str, Sequence[float]],
    floor: float | None = None,
    title: str = "FPrec over training",
    total_epochs: int | None = None,
) -> go.Figure:
    """FPrec of each method at the weight snapshots taken during training (Figure 5's convergence)."""
    fig = go.Figure()
    for m, ys in curves.items():
        fig.add_trace(
            go.Scatter(
                x=list(epochs)[: len(ys)],
                y=list(ys),
                mode="lines+markers",
                name=method_label(m),
                line_color=method_color(m),
            )
        )
    if floor is not None:
        reference_line(fig, floor, "random floor")
    xr = [0, total_epochs] if total_epochs else None
    return _layout(fig, title, xaxis=dict(title="epoch", range=xr), yaxis=dict(title="FPrec", range=[0, 1.05]))


def loss_curve(epochs: Sequence[int], values: Sequence[float], total_epochs: int | None = None) -> go.Figure:
    fig = go.Figure(go.Scatter(x=list(epochs), y=list(values), mode="lines", name="training MSE", line_color="#333"))
    xr = [0, total_epochs] if total_epochs else None
    return _layout(
        fig,
        "Training loss (MSE on noisy targets)",
        xaxis=dict(title="epoch", range=xr),
        yaxis=dict(title="MSE", type="log"),
    )


def attribution_heatmap(result: SymbolicResult, method: str) -> go.Figure:
    """Attributions of the first test samples (rows) over all features (columns), relevant marked."""
    z = result.arrays[f"attr_{method}"]
    names = result.feature_names
    vmax = float(np.abs(z).max()) or 1.0
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=[f"sample {i}" for i in range(z.shape[0])],
            colorscale="RdBu",
            zmid=0,
            zmin=-vmax,
            zmax=vmax,
            colorbar=dict(title="attr."),
        )
    )
    for i in result.relevant:
        fig.add_vrect(x0=i - 0.5, x1=i + 0.5, line_color=RELEVANT_COLOR, line_width=2, fillcolor="rgba(0,0,0,0)")
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    return _layout(
        fig,
        f"{method_label(method)}: attributions of {z.shape[0]} test samples (relevant features boxed in red)",
        xaxis=dict(title="feature", tickangle=-90, showticklabels=len(names) <= 60),
        height=420,
    )


def mean_abs_bars(result: SymbolicResult, method: str) -> go.Figure:
    """Mean |attribution| per feature; relevant features in red."""
    v = result.arrays[f"meanabs_{method}"]
    rel = set(result.relevant)
    colors = [RELEVANT_COLOR if i in rel else OTHER_COLOR for i in range(len(v))]
    fig = go.Figure(go.Bar(x=result.feature_names, y=v, marker_color=colors))
    return _layout(
        fig,
        f"{method_label(method)}: mean |attribution| per feature (relevant in red)",
        xaxis=dict(title="feature", showticklabels=len(v) <= 60),
        yaxis=dict(title="mean |attribution|"),
    )


def ground_truth_scatter(result: SymbolicResult, method: str) -> go.Figure:
    """Attribution against the analytic ground truth, one panel per relevant feature."""
    a = result.arrays[f"scatter_attr_{method}"]
    g = result.arrays.get(f"scatter_gt_{method}")
    names = [result.feature_names[i] for i in result.relevant]
    cols = min(4, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names)
    for j, name in enumerate(names):
        r, c = j // cols + 1, j % cols + 1
        if g is None:
            x = result.arrays["X_scatter"][:, j]
            fig.add_trace(
                go.Scattergl(
                    x=x,
                    y=a[:, j],
                    mode="markers",
                    marker=dict(size=3, color=method_color(method)),
                    name=name,
                    showlegend=False,
                ),
                row=r,
                col=c,
            )
            fig.update_xaxes(title_text=f"x_{name}", row=r, col=c)
            continue
        fig.add_trace(
            go.Scattergl(
                x=g[:, j],
                y=a[:, j],
                mode="markers",
                marker=dict(size=3, color=method_color(method)),
                name=name,
                showlegend=False,
            ),
            row=r,
            col=c,
        )
        lo, hi = float(min(g[:, j].min(), a[:, j].min())), float(max(g[:, j].max(), a[:, j].max()))
        fig.add_trace(
            go.Scatter(
                x=[lo, hi], y=[lo, hi], mode="lines", line=dict(dash="dash", color="#000", width=1), showlegend=False
            ),
            row=r,
            col=c,
        )
        fig.update_xaxes(title_text="ground truth", row=r, col=c)
    gt = result.scores[method].ground_truth
    title = (
        f"{method_label(method)} vs {gt} ground truth (dashed: identity)"
        if g is not None
        else f"{method_label(method)} against the feature value (no analytic ground truth)"
    )
    return _layout(fig, title, height=max(320, 260 * rows))


def fprec_distribution(result: SymbolicResult) -> go.Figure:
    """Distribution of per-sample FPrec for each method."""
    fig = go.Figure()
    for m in result.scores:
        fig.add_trace(
            go.Box(y=result.arrays[f"fprec_{m}"], name=method_label(m), marker_color=method_color(m), boxmean=True)
        )
    return _layout(fig, "Per-sample FPrec", yaxis=dict(title="FPrec", range=[-0.05, 1.05]))


def cost_bars(result: SymbolicResult) -> go.Figure:
    """Time and peak tensor memory of each method on the evaluated test rows."""
    methods = list(result.scores)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("time (s)", "peak tensor memory (MiB)"))
    fig.add_trace(
        go.Bar(
            x=[method_label(m) for m in methods],
            y=[result.scores[m].seconds for m in methods],
            marker_color=[method_color(m) for m in methods],
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    mem = [(result.scores[m].peak_memory_bytes or 0) / 2**20 for m in methods]
    fig.add_trace(
        go.Bar(
            x=[method_label(m) for m in methods],
            y=mem,
            marker_color=[method_color(m) for m in methods],
            showlegend=False,
        ),
        row=1,
        col=2,
    )
    fig.update_yaxes(type="log", row=1, col=1)
    return _layout(fig, "Cost of each method")


def sweep_curves(sweep: SweepResult, metric: str = "fprec") -> go.Figure:
    """Mean +- std over seeds of ``metric`` ('fprec' or 'uscore') against the swept factor (Figure 4)."""
    table = sweep.aggregate()
    xs = sweep.values
    categorical = any(isinstance(v, str) for v in xs)
    x_plot = [str(v) for v in xs] if categorical else list(xs)
    fig = go.Figure()
    for m in sweep.methods:
        rows = [table.get((v, m)) for v in xs]
        mean = [r[f"{metric}_mean"] if r and r[f"{metric}_mean"] is not None else None for r in rows]
        std = [r[f"{metric}_std"] if r and r[f"{metric}_std"] is not None else 0.0 for r in rows]
        if all(v is None for v in mean):
            continue
        color = method_color(m)
        if not categorical and len(sweep.seeds) > 1:
            upper = [None if a is None else a + s for a, s in zip(mean, std)]
            lower = [None if a is None else a - s for a, s in zip(mean, std)]
            fig.add_trace(
                go.Scatter(
                    x=x_plot + x_plot[::-1],
                    y=upper + lower[::-1],
                    fill="toself",
                    fillcolor=_rgba(color, 0.15),
                    line=dict(width=0),
                    hoverinfo="skip",
                    showlegend=False,
                )
            )
        fig.add_trace(
            go.Scatter(
                x=x_plot,
                y=mean,
                mode="lines+markers",
                name=method_label(m),
                line_color=color,
                error_y=dict(type="data", array=std, visible=categorical and len(sweep.seeds) > 1),
            )
        )
    pred = [table.get((v, "__prediction__")) for v in xs]
    fig.add_trace(
        go.Scatter(
            x=x_plot,
            y=[r["uscore_mean"] if r else None for r in pred],
            mode="lines+markers",
            name="prediction UScore",
            line=dict(color="#000", dash="dot"),
            marker_symbol="triangle-up",
            error_y=dict(type="data", array=[r["uscore_std"] if r else 0 for r in pred], visible=len(sweep.seeds) > 1),
        )
    )
    title = f"{'FPrec' if metric == 'fprec' else 'UScore'} vs {sweep.factor_label} ({len(sweep.seeds)} seed(s), mean +- std)"
    return _layout(
        fig,
        title,
        xaxis=dict(
            title=sweep.factor_label, type="category" if categorical else ("log" if sweep.log_scale else "linear")
        ),
        yaxis=dict(title=metric, range=[0, 1.05]),
    )


def symbolic_figures(result: SymbolicResult, method: str | None = None) -> dict[str, go.Figure]:
    """Every figure of a symbolic result, keyed by a file-friendly name (used by exports)."""
    figs = {
        "fprec": fprec_bars(result),
        "uscore": uscore_bars(result),
        "fprec_over_training": fprec_curve(
            result.curve_epochs,
            result.curve_fprec,
            result.random_fprec_expected,
            total_epochs=result.config.train.epochs,
        ),
        "loss": loss_curve(result.loss_epochs, result.loss_values, result.config.train.epochs),
        "fprec_distribution": fprec_distribution(result),
        "cost": cost_bars(result),
    }
    for m in [method] if method else result.scores:
        figs[f"heatmap_{m}"] = attribution_heatmap(result, m)
        figs[f"mean_abs_{m}"] = mean_abs_bars(result, m)
        figs[f"scatter_{m}"] = ground_truth_scatter(result, m)
    return figs
