"""Figures of the evaluation of evaluators: removal curves with spread and baselines, sanity-check
similarities per layer, deletion/insertion and Sensitivity-n curves, mask statistics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from .common import layout as _layout
from .common import method_color, reference_line
from .common import rgba as _rgba

if TYPE_CHECKING:  # pragma: no cover
    from ..evaluation import BlurResult, Curve, FaithfulnessResult, RoadResult, RoarResult, SanityResult

__all__ = [
    "curves_figure",
    "roar_figure",
    "roar_no_retrain_figure",
    "road_figure",
    "blur_roar_figure",
    "blur_road_figure",
    "mask_stats_figure",
    "sanity_figure",
    "deletion_insertion_figure",
    "sensitivity_n_figure",
    "evaluation_figures",
]

_CONTROL_STYLE = {"oracle": ("#111111", "dash"), "anti_oracle": ("#7f7f7f", "dashdot"), "sobel": ("#8c564b", "dot")}
_POST_DASH = {"none": "solid", "max": "dash", "gaussian": "dot"}
BASE_COLOR = "#2ca02c"


def _style(key: str) -> tuple[str, str]:
    method, _, post = key.partition("+")
    if method in _CONTROL_STYLE:
        return _CONTROL_STYLE[method]
    return method_color(method), _POST_DASH.get(post or "none", "solid")


def curves_figure(
    curves: Mapping[str, Curve],
    *,
    title: str,
    x_title: str,
    y_title: str,
    chance: float | None = None,
    base: float | None = None,
    log_x: bool = False,
) -> go.Figure:
    """One line per curve (mean over repeats) with a shaded band of +-1 standard deviation.

    ``chance`` and ``base`` (the unmodified model) are drawn as horizontal reference lines.
    """
    fig = go.Figure()
    for key, c in curves.items():
        color, dash = _style(key)
        x, y, s = list(c.fractions), c.score, c.spread
        if any(v > 0 for v in s):
            fig.add_trace(
                go.Scatter(
                    x=x + x[::-1],
                    y=[a + b for a, b in zip(y, s)] + [a - b for a, b in zip(y, s)][::-1],
                    fill="toself",
                    fillcolor=_rgba(color, 0.15),
                    mode="lines",
                    line=dict(width=0),
                    hoverinfo="skip",
                    showlegend=False,
                    name=f"{c.label} spread",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines+markers",
                name=c.label,
                line=dict(color=color, dash=dash, width=2),
                error_y=dict(type="data", array=s, visible=False),
            )
        )
    if chance is not None:
        reference_line(fig, chance, f"chance {chance:.2f}", dash="dot")
    if base is not None:
        reference_line(fig, base, f"unmodified model {base:.2f}", color=BASE_COLOR)
    return _layout(
        fig,
        title,
        xaxis=dict(title=x_title, type="log" if log_x else "linear"),
        yaxis=dict(title=y_title),
        legend=dict(orientation="h", y=-0.25),
        height=440,
    )


def _task_lines(task: Mapping[str, Any]) -> dict[str, float | None]:
    return {"chance": task.get("chance"), "base": task.get("base_score")}


def roar_figure(result: RoarResult) -> go.Figure:
    """The retrained ROAR/KAR curves (or the no-retrain ones when the run did not retrain)."""
    name = "KAR" if result.config.keep else "ROAR"
    title = f"{name}: {'retrained' if result.config.retrain else 'original'} model"
    return curves_figure(
        result.main,
        title=title,
        x_title=result.x_label,
        y_title=result.task["score_name"],
        **_task_lines(result.task),
    )


def roar_no_retrain_figure(result: RoarResult) -> go.Figure:
    """The same removals scored by the original model, without retraining."""
    return curves_figure(
        result.no_retrain,
        title="Without retraining: the original model",
        x_title=result.x_label,
        y_title=result.task["score_name"],
        **_task_lines(result.task),
    )


def road_figure(result: RoadResult, imputation: str, order: str) -> go.Figure:
    better = "lower" if order == "morf" else "higher"
    what = "most relevant first" if order == "morf" else "least relevant first"
    return curves_figure(
        result.curves[imputation][order],
        title=f"ROAD, {what}, {imputation} imputation ({better} is better)",
        x_title="fraction of units removed",
        y_title=result.task["score_name"],
        **_task_lines(result.task),
    )


def blur_roar_figure(result: BlurResult) -> go.Figure:
    curves = result.roar or result.no_retrain
    kind = "ROAR (retrained)" if result.roar else "removal without retraining"
    return curves_figure(
        curves,
        title=f"Blur bias: {kind}; solid raw, dashed 3x3 max filter, dotted Gaussian",
        x_title="fraction of units removed (top-ranked)",
        y_title=result.task["score_name"],
        **_task_lines(result.task),
    )


def blur_road_figure(result: BlurResult, order: str = "morf") -> go.Figure:
    return curves_figure(
        result.road.get(order, {}),
        title=f"Blur bias under ROAD ({order.upper()}, noisy linear imputation)",
        x_title="fraction of units removed",
        y_title=result.task["score_name"],
        **_task_lines(result.task),
    )


def mask_stats_figure(result: BlurResult | RoarResult, stat: str = "boundary_ratio") -> go.Figure:
    """A mask statistic (or the mask-only probe with ``stat='probe'``) against the fraction removed (kept, KAR)."""
    names = {
        "boundary_ratio": "boundary ratio (1 = as rough as random)",
        "components": "connected components",
        "coverage": "share of the ground truth removed",
        "probe": "mask-only probe score",
    }
    fig = go.Figure()
    source = result.probe if stat == "probe" else {k: v.get(stat, []) for k, v in result.mask_stats.items()}
    for key, values in source.items():
        color, dash = _style(key)
        fig.add_trace(
            go.Scatter(
                x=list(result.fractions),
                y=values,
                mode="lines+markers",
                name=result.labels.get(key, key),
                line=dict(color=color, dash=dash),
            )
        )
    if stat == "probe":
        reference_line(fig, result.task.get("chance"), "chance", dash="dot")
    if stat == "boundary_ratio":
        reference_line(fig, 1.0, "random mask", dash="dot")
    return _layout(
        fig,
        f"Masks: {names[stat]}",
        xaxis=dict(title=getattr(result, "x_label", "fraction of units removed")),
        yaxis=dict(title=names[stat]),
        legend=dict(orientation="h", y=-0.25),
        height=420,
    )


def sanity_figure(result: SanityResult, metric: str = "spearman") -> go.Figure:
    """Similarity to the reference map per step (layer, model or class), one line per method."""
    from ..evaluation import SIMILARITIES, estimator_label

    fig = go.Figure()
    for m, steps in result.values.items():
        xs = [s for s in result.steps if s in steps and metric in steps[s]]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[steps[s][metric][0] for s in xs],
                error_y=dict(type="data", array=[steps[s][metric][1] for s in xs], visible=True, thickness=1),
                mode="lines+markers",
                name=estimator_label(m),
                line=dict(color=method_color(m)),
            )
        )
    reference_line(fig, 0.0, "unrelated maps", dash="dot")
    title = {
        "cascading": "Cascading randomisation",
        "independent": "Independent randomisation",
        "labels": "Permuted labels (and control)",
        "random-logit": "Random logit",
    }[result.config.test]
    return _layout(
        fig,
        f"{title}: {SIMILARITIES.get(metric).display_name}",
        xaxis=dict(title="randomised" if result.config.test in ("cascading", "independent") else "comparison"),
        yaxis=dict(title=SIMILARITIES.get(metric).display_name, range=[-1.05, 1.05]),
        legend=dict(orientation="h", y=-0.3),
        height=440,
    )


def deletion_insertion_figure(result: FaithfulnessResult, which: str = "deletion") -> go.Figure:
    curves = result.deletion if which == "deletion" else result.insertion
    better = "lower" if which == "deletion" else "higher"
    return curves_figure(
        curves,
        title=f"{which.capitalize()} curve (area: {better} is better)",
        x_title="fraction of units " + ("removed" if which == "deletion" else "inserted"),
        y_title="prediction kept (" + result.task["score_name"] + " scale)",
    )


def sensitivity_n_figure(result: FaithfulnessResult) -> go.Figure:
    fig = curves_figure(
        result.sensitivity,
        title="Sensitivity-n: correlation of summed attributions with the output's drop",
        x_title="n (units set to 0)",
        y_title="Pearson r",
        log_x=True,
    )
    reference_line(fig, 1.0, "exact (linear model)", dash="dot")
    return fig


def _roar_figures(r: RoarResult) -> dict[str, go.Figure]:
    out = {f"{r.config.variant}_curves": roar_figure(r)}
    if r.config.retrain:
        out["no_retrain_curves"] = roar_no_retrain_figure(r)
    return out


def _road_figures(r: RoadResult) -> dict[str, go.Figure]:
    return {f"road_{imp}_{o}": road_figure(r, imp, o) for imp, orders in r.curves.items() for o in orders}


def _blur_figures(r: BlurResult) -> dict[str, go.Figure]:
    out = {"blur_roar": blur_roar_figure(r)}
    out.update({f"blur_road_{o}": blur_road_figure(r, o) for o in r.road})
    out.update({f"masks_{s}": mask_stats_figure(r, s) for s in ("boundary_ratio", "components", "probe")})
    return out


def _sanity_figures(r: SanityResult) -> dict[str, go.Figure]:
    return {f"sanity_{r.config.test}_{m}": sanity_figure(r, m) for m in r.metrics}


def _faith_figures(r: FaithfulnessResult) -> dict[str, go.Figure]:
    return {
        "deletion": deletion_insertion_figure(r, "deletion"),
        "insertion": deletion_insertion_figure(r, "insertion"),
        "sensitivity_n": sensitivity_n_figure(r),
    }


_FIGURES: dict[str, Callable[[Any], dict[str, go.Figure]]] = {
    "RoarResult": _roar_figures,
    "RoadResult": _road_figures,
    "BlurResult": _blur_figures,
    "SanityResult": _sanity_figures,
    "FaithfulnessResult": _faith_figures,
}


def evaluation_figures(result: Any) -> dict[str, go.Figure]:
    """Every figure of an evaluation result, keyed by file name (the export and the CLI use these)."""
    return _FIGURES[type(result).__name__](result)
