"""Regenerate the paper's figures and tables: a target's grid as runs, their scores beside the published ones.

>>> rep = reproduce("table2", "quick", executor=get_executor())        # doctest: +SKIP
>>> rep.table                                                        # ours (mean, std over seeds) and the paper's
>>> rep.figure().show()                                              # doctest: +SKIP

A :class:`Target` (registered in :data:`TARGETS`) says which runs of the run layer make one of the paper's
figures or tables and how their scores become the printed table and the figure; a :class:`Grid` (one per
target and scale in :data:`GRIDS`) says how much of the paper's grid a scale runs and what it reduces.
Every cell is a :class:`~chaosmining.runs.RunSpec`, and every finished run is filed in the results store
(by the run layer, or here for a cell the cache answered). A cell whose run the store already has is
answered from the store without being submitted, even when its cache entry is gone; the executor answers
the cells the cache has at once. So an interrupted reproduction resumes where it stopped.

References
----------
Shi et al. (2024), ChaosMining: A Benchmark to Evaluate Post-Hoc Local Attribution Methods in Low SNR
Environments, https://arxiv.org/abs/2406.12150 (Figures 4-7, Tables 2-4).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .config import stable_hash
from .data.symbolic import SymbolicDataConfig
from .errors import ChaosMiningError, ConfigError
from .experiments.audio import AudioConfig, AudioEvalConfig
from .experiments.rfe import RFEConfig, RFEDataConfig
from .experiments.symbolic import EvalConfig, SymbolicConfig
from .experiments.vision import VisionConfig, VisionEvalConfig
from .grouping import train_in_groups, use_batching
from .registry import Registry
from .results import PaperValue, ResultsStore, default_results_root, extract, paper_reference, record, run_key_for
from .runs import Executor, RunContext, RunSpec, follow
from .runs.factory import flush_records
from .sweep import FACTORS
from .training import TrainConfig
from .validation import check_int
from .viz.common import layout, method_color, method_label
from .viz.results import method_bars, paper_marks
from .viz.selection import selector_color, selector_label

__all__ = [
    "Cell",
    "Grid",
    "GRIDS",
    "SCALES",
    "Target",
    "TARGETS",
    "Reproduction",
    "plan",
    "reproduce",
    "grid_for",
    "store_key",
]

log = logging.getLogger(__name__)

#: What each scale is for; each target's :class:`Grid` says what it reduces.
SCALES: dict[str, str] = {
    "quick": "minutes on a 2-core CPU: a few formulas or models, one seed, short training, small data",
    "demo": "more of the grid at the modalities' demo presets, one seed: hours on a CPU (ResNet18 at 224 px), minutes on a GPU",
    "paper": "the paper's grid, data and training, 5 seeds: meant for a GPU or a Ray cluster",
}

PAPER_SEEDS = (0, 1, 2, 3, 4)


@dataclass(frozen=True, kw_only=True)
class Grid:
    """How much of a target's grid one scale runs.

    Parameters
    ----------
    seeds : seeds of every cell (the paper: 5).
    formulas : symbolic formulas (Figures 4, 5, 7); ``factors`` and ``values`` (Figure 4): the factors
        swept and how many of each factor's paper values are kept (0 = all; the kept ones are spread
        over the range and include the ends).
    models, settings : architectures and noise conditions (``RBFP``...) of Tables 2-4; ``strategies``
        (Figure 6): ``uni`` and/or ``bi``.
    preset : the vision or audio preset the cells start from.
    epochs, samples, eval_samples, noise_features : overrides (``None`` keeps the paper's / the preset's).
    data : further data overrides as ``(name, value)`` pairs.
    reduces : one line saying what this scale reduces, printed with every reproduction.
    """

    seeds: tuple[int, ...] = (0,)
    formulas: tuple[str, ...] = ()
    factors: tuple[str, ...] = ()
    values: int = 0
    models: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ()
    preset: str = "quick"
    epochs: int | None = None
    samples: int | None = None
    eval_samples: int = 0
    noise_features: int | None = None
    data: tuple[tuple[str, Any], ...] = ()
    reduces: str = ""


@dataclass(frozen=True)
class Cell:
    """One run of a reproduction: its label, its specification and where it sits in the figure/table."""

    label: str
    spec: RunSpec
    meta: Mapping[str, Any]


@dataclass(frozen=True)
class Target:
    """One of the paper's figures or tables.

    ``cells(grid, device)`` expands a grid into runs; ``rows(scores)`` derives target-specific score rows
    (e.g. peak memory in MiB) from one cell's stored rows (``method``, ``metric``, ``value`` dicts, as the
    results store's extractor gives them), so a cell answered by the store has them too; ``table(scores)`` turns the tidy
    scores (one row per cell, method and metric) into the printed table; ``figure(table, paper)``
    draws it. ``paper_keys`` maps the table's columns onto :class:`PaperValue` fields for the join
    with the published numbers.
    """

    name: str
    title: str
    paper: str
    cells: Callable[[Grid, str], list[Cell]]
    table: Callable[[pd.DataFrame], pd.DataFrame]
    figure: Callable[[pd.DataFrame], go.Figure]
    paper_keys: Mapping[str, str] = field(default_factory=dict)
    rows: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None


TARGETS: Registry[Target] = Registry("reproduce target")


# --- helpers ------------------------------------------------------------------------------------


def _spread(values: Sequence[Any], n: int) -> tuple[Any, ...]:
    """``n`` of ``values`` spread over the range, both ends included (all when ``n`` is 0 or too big)."""
    if n <= 0 or n >= len(values):
        return tuple(values)
    idx = sorted({round(i * (len(values) - 1) / (n - 1)) for i in range(n)}) if n > 1 else [len(values) // 2]
    return tuple(values[i] for i in idx)


def _symbolic_base(grid: Grid, formula: str, seed: int) -> SymbolicConfig:
    data = {"formula": formula, **dict(grid.data)}
    if grid.samples is not None:
        data["samples"] = grid.samples
    if grid.noise_features is not None:
        data["noise_features"] = grid.noise_features
    train = TrainConfig(epochs=grid.epochs) if grid.epochs is not None else TrainConfig()
    return SymbolicConfig(data=SymbolicDataConfig(**data), train=train, seed=seed)


def _agg(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Mean, standard deviation and count of ``value`` over everything not in ``keys`` (seeds, formulas)."""
    if df.empty:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n"])
    out = df.groupby(list(keys), dropna=False, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"count": "n"})


def _level_text(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


# --- Figure 4: symbolic FPrec / UScore vs one factor -----------------------------------------------


def _figure4_cells(grid: Grid, device: str) -> list[Cell]:
    ev = EvalConfig.create(samples=grid.eval_samples, curve_samples=0, measure_memory=False)
    cells = []
    for factor in grid.factors:
        spec = FACTORS.get(factor)
        for level in _spread(spec.default_values, grid.values):
            for formula in grid.formulas:
                for seed in grid.seeds:
                    cfg = spec.apply(_symbolic_base(grid, formula, seed), level)
                    meta = {"factor": factor, "level": _level_text(level), "formula": formula, "seed": seed}
                    label = f"{factor}={_level_text(level)} formula {formula} seed {seed}"
                    cells.append(Cell(label, RunSpec("symbolic", cfg, ev, device), meta))
    return cells


def _figure4_table(scores: pd.DataFrame) -> pd.DataFrame:
    keep = scores[scores["metric"].isin(["fprec", "uscore", "prediction_uscore"])]
    return _agg(keep, ["factor", "level", "method", "metric"])


def _figure4_figure(table: pd.DataFrame) -> go.Figure:
    factors = list(dict.fromkeys(table["factor"])) or ["(none)"]
    cols = min(4, len(factors))
    rows = math.ceil(len(factors) / cols)
    titles = [FACTORS.get(f).display_name if f in FACTORS else f for f in factors]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, vertical_spacing=0.2)
    shown: set[str] = set()
    for i, factor in enumerate(factors):
        r, c = divmod(i, cols)
        sub = table[table["factor"] == factor]
        for (method, metric), g in sub.groupby(["method", "metric"], sort=False):
            if metric == "uscore":
                continue  # FPrec per method and the prediction UScore, as the paper's panels
            name = "prediction UScore" if metric == "prediction_uscore" else method_label(method)
            fig.add_trace(
                go.Scatter(
                    x=g["level"],
                    y=g["mean"],
                    error_y={"type": "data", "array": g["std"].fillna(0)},
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=name not in shown,
                    line={"dash": "dash", "color": "black"}
                    if metric == "prediction_uscore"
                    else {"color": method_color(method)},
                ),
                row=r + 1,
                col=c + 1,
            )
            shown.add(name)
        fig.update_xaxes(type="category", row=r + 1, col=c + 1)
        fig.update_yaxes(range=[0, 1.05], row=r + 1, col=c + 1)
    fig.update_layout(height=360 * rows)
    return layout(fig, "Figure 4: FPrec of each method (lines) and prediction UScore (dashed) vs one factor")


# --- Figure 5: convergence, consistency, time and memory --------------------------------------------


def _figure5_cells(grid: Grid, device: str) -> list[Cell]:
    ev = EvalConfig.create(samples=grid.eval_samples, curve_samples=256, measure_memory=True)
    return [
        Cell(
            f"formula {formula} seed {seed}",
            RunSpec("symbolic", _symbolic_base(grid, formula, seed), ev, device),
            {"formula": formula, "seed": seed},
        )
        for formula in grid.formulas
        for seed in grid.seeds
    ]


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


def _figure5_rows(scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"method": r["method"], "metric": "peak_memory_mib", "value": float(r["value"]) / 2**20}
        for r in scores
        if r["metric"] == "method_peak_memory_bytes" and _finite(r["value"])
    ]


def _figure5_table(scores: pd.DataFrame) -> pd.DataFrame:
    keep = scores[scores["metric"].isin(["convergence", "consistency", "method_seconds", "peak_memory_mib"])].copy()
    # The paper normalises convergence and consistency so that SA is 1 (per formula and seed).
    for metric in ("convergence", "consistency"):
        m = keep["metric"] == metric
        sa = keep[m & (keep["method"] == "saliency")].set_index(["formula", "seed"])["value"]
        ref = keep[m].set_index(["formula", "seed"]).index.map(sa.to_dict().get)
        keep.loc[m, "value"] = keep.loc[m, "value"].to_numpy() / np.asarray(ref, dtype=float)
    return _agg(keep, ["method", "metric"])


def _figure5_figure(table: pd.DataFrame) -> go.Figure:
    panels = [
        ("convergence", "Convergence (SA = 1)"),
        ("consistency", "Consistency (SA = 1)"),
        ("method_seconds", "Time (s)"),
        ("peak_memory_mib", "Peak memory (MiB)"),
    ]
    fig = make_subplots(rows=1, cols=4, subplot_titles=[t for _, t in panels])
    for i, (metric, _) in enumerate(panels):
        sub = table[table["metric"] == metric]
        fig.add_trace(
            go.Bar(
                x=[method_label(m) for m in sub["method"]],
                y=sub["mean"],
                error_y={"type": "data", "array": sub["std"].fillna(0)},
                marker_color=[method_color(m) for m in sub["method"]],
                showlegend=False,
            ),
            row=1,
            col=i + 1,
        )
    fig.update_layout(height=380)
    return layout(fig, "Figure 5: convergence, consistency and test-time cost of each method")


# --- Figures 6 and 7: recursive feature elimination --------------------------------------------------


def _rfe_config(grid: Grid, task: str, seed: int, strategy: str = "uni", target: int = 0) -> RFEConfig:
    data = {"task": task, **dict(grid.data)}
    if grid.samples is not None:
        data["samples"] = grid.samples
    if grid.noise_features is not None:
        data["noise_features"] = grid.noise_features
    base = RFEConfig(data=RFEDataConfig(**data), seed=seed, strategy=strategy, target=target)
    if grid.epochs is not None:
        base = replace(base, train=replace(base.train, epochs=grid.epochs))
    return base


def _figure6_cells(grid: Grid, device: str) -> list[Cell]:
    return [
        Cell(
            f"{strategy}-module seed {seed}",
            # the paper selects down to k = 3 features on Santander (section 4.1)
            RunSpec("rfe", _rfe_config(grid, "tabular:santander_like", seed, strategy, target=3), None, device),
            {"strategy": strategy, "seed": seed},
        )
        for strategy in grid.strategies
        for seed in grid.seeds
    ]


def _curve_rows(scores: pd.DataFrame, name: str) -> pd.DataFrame:
    sub = scores[scores["metric"].str.startswith(f"{name}@")].copy()
    sub["features"] = sub["metric"].str.split("@").str[1].astype(int)
    sub["metric"] = name
    return sub


def _figure6_table(scores: pd.DataFrame) -> pd.DataFrame:
    curves = pd.concat([_curve_rows(scores, "test_error"), _curve_rows(scores, "precision")])
    return _agg(curves, ["strategy", "method", "metric", "features"]).sort_values(
        ["strategy", "metric", "method", "features"], ascending=[True, True, True, False]
    )


def _figure6_figure(table: pd.DataFrame) -> go.Figure:
    strategies = list(dict.fromkeys(table["strategy"])) or ["uni"]
    names = {"test_error": "1 - balanced accuracy (test)", "precision": "precision of the kept features"}
    titles = [f"{s}-module: {names[m]}" for s in strategies for m in names]
    fig = make_subplots(rows=len(strategies), cols=2, subplot_titles=titles, vertical_spacing=0.18)
    shown: set[str] = set()
    for r, strategy in enumerate(strategies):
        for c, metric in enumerate(names):
            sub = table[(table["strategy"] == strategy) & (table["metric"] == metric)]
            for method, g in sub.groupby("method", sort=False):
                fig.add_trace(
                    go.Scatter(
                        x=g["features"],
                        y=g["mean"],
                        mode="lines+markers",
                        name=selector_label(method),
                        legendgroup=method,
                        showlegend=method not in shown,
                        line={"color": selector_color(method)},
                    ),
                    row=r + 1,
                    col=c + 1,
                )
                shown.add(method)
            fig.update_xaxes(type="log", autorange="reversed", title_text="features kept", row=r + 1, col=c + 1)
    fig.update_layout(height=380 * len(strategies))
    return layout(fig, "Figure 6: RFE on the Santander-like table, uni- and bi-module")


def _figure7_cells(grid: Grid, device: str) -> list[Cell]:
    return [
        Cell(
            f"formula {formula} seed {seed}",
            RunSpec("rfe", _rfe_config(grid, f"formula:{formula}", seed), None, device),
            {"formula": formula, "seed": seed},
        )
        for formula in grid.formulas
        for seed in grid.seeds
    ]


def _figure7_table(scores: pd.DataFrame) -> pd.DataFrame:
    keep = scores[scores["metric"].isin(["test_error", "precision", "seconds"])].copy()
    t = keep["metric"] == "seconds"
    keep.loc[t, "value"] = np.log1p(keep.loc[t, "value"].astype(float))
    keep.loc[t, "metric"] = "log1p_seconds"
    keep.loc[keep["metric"] == "test_error", "metric"] = "mae"
    return _agg(keep, ["task", "method", "metric"])


def _figure7_figure(table: pd.DataFrame) -> go.Figure:
    panels = [
        ("mae", "Test MAE (lower is better)"),
        ("precision", "FPrec of the kept features"),
        ("log1p_seconds", "log(1 + seconds)"),
    ]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in panels])
    shown: set[str] = set()
    for i, (metric, _) in enumerate(panels):
        sub = table[table["metric"] == metric]
        for method, g in sub.groupby("method", sort=False):
            fig.add_trace(
                go.Bar(
                    x=g["task"],
                    y=g["mean"],
                    name=selector_label(method),
                    legendgroup=method,
                    showlegend=method not in shown,
                    marker_color=selector_color(method),
                    offsetgroup=method,
                ),
                row=1,
                col=i + 1,
            )
            shown.add(method)
            if "paper" in g:  # each selector's published precision over its own bar
                fig.add_trace(
                    go.Scatter(
                        x=g["task"],
                        y=g["paper"],
                        mode="markers",
                        name="original code's result",
                        legendgroup="paper",
                        showlegend="paper" not in shown,
                        marker={"symbol": "x", "color": "black"},
                        offsetgroup=method,
                    ),
                    row=1,
                    col=i + 1,
                )
                shown.add("paper")
    fig.update_layout(barmode="group", scattermode="group", height=420)
    return layout(fig, "Figure 7: RFEwNA vs RFE on formulas 11-15")


# --- Tables 2, 3 and 4: localisation per model and noise condition ----------------------------------

_VISION_CONDITIONS = {
    "RBFP": ("random", "fixed"),
    "RBRP": ("random", "random"),
    "SBFP": ("structured", "fixed"),
    "SBRP": ("structured", "random"),
}


def _classifier_cells(
    grid: Grid, device: str, kind: str, config_type: Any, eval_type: Any, samples_field: str
) -> list[Cell]:
    """Tables 2-4: one run per model, noise condition and seed (vision and audio differ only in their configs
    and in the setting ``grid.samples`` sizes)."""
    cells = []
    for model in grid.models:
        for setting in grid.settings:
            background, position = _VISION_CONDITIONS[setting]
            for seed in grid.seeds:
                data = {"background": background, "position": position, **dict(grid.data)}
                if grid.samples is not None:
                    data[samples_field] = grid.samples
                train = {"epochs": grid.epochs} if grid.epochs is not None else None
                cfg = config_type.from_preset(grid.preset, model=model, seed=seed, train=train, **data)
                ev = eval_type.for_preset(grid.preset, **({"samples": grid.eval_samples} if grid.eval_samples else {}))
                cells.append(Cell(f"{model} {setting} seed {seed}", RunSpec(kind, cfg, ev, device), {"seed": seed}))
    return cells


def _vision_cells(grid: Grid, device: str) -> list[Cell]:
    return _classifier_cells(grid, device, "vision", VisionConfig, VisionEvalConfig, "train_size")


def _audio_cells(grid: Grid, device: str) -> list[Cell]:
    return _classifier_cells(grid, device, "audio", AudioConfig, AudioEvalConfig, "train_per_class")


def _accuracy_percent(scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"method": "", "metric": "accuracy_percent", "value": 100.0 * float(r["value"])}
        for r in scores
        if r["method"] == "" and r["metric"] == "accuracy" and r["value"] is not None
    ]


def _model_table(score: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def table(scores: pd.DataFrame) -> pd.DataFrame:
        keep = scores[scores["metric"].isin([score, "accuracy_percent"])]
        return _agg(keep, ["model", "setting", "method", "metric"])

    return table


def _model_figure(score: str, title: str) -> Callable[[pd.DataFrame], go.Figure]:
    def figure(table: pd.DataFrame) -> go.Figure:
        sub = table[table["metric"] == score]
        groups = [f"{m} {s}" for m, s in zip(sub["model"], sub["setting"])]
        sub = sub.assign(group=groups)
        fig = method_bars(sub, "group")
        if "paper" in sub:
            paper = sub[sub["paper"].notna()]
            paper_marks(fig, paper, "group", "paper", color="black", showlegend=False)
        fig.update_layout(barmode="group", scattermode="group", height=440, yaxis_range=[0, 1])
        return layout(fig, title + " (bars: this run, x: the paper)")

    return figure


_PAPER_MODEL_KEYS = {"model": "model", "setting": "setting", "method": "method", "metric": "metric"}

for _t in (
    Target(
        "figure4",
        "Figure 4: symbolic FPrec and UScore vs one factor at a time",
        "no numbers in the text (the authors' averages at the default: FPrec SA 0.82, IG 0.72, DL 0.69, FA 0.67)",
        _figure4_cells,
        _figure4_table,
        _figure4_figure,
    ),
    Target(
        "figure5",
        "Figure 5: convergence, consistency, time and memory of each method",
        "no numbers in the text (SA is the most consistent and the cheapest; IG the most expensive)",
        _figure5_cells,
        _figure5_table,
        _figure5_figure,
        rows=_figure5_rows,
    ),
    Target(
        "figure6",
        "Figure 6: RFE on the Santander-like table (uni- and bi-module)",
        "no numbers in the text; Santander is not available offline, the embedded Santander-like table stands in",
        _figure6_cells,
        _figure6_table,
        _figure6_figure,
    ),
    Target(
        "figure7",
        "Figure 7: RFEwNA vs RFE on formulas 11-15 (MAE, precision, time)",
        "the original code's final precisions (no numbers in the paper's text)",
        _figure7_cells,
        _figure7_table,
        _figure7_figure,
        paper_keys={"task": "setting", "method": "method", "metric": "metric"},
    ),
    Target(
        "table2",
        "Table 2: vision IoU and accuracy, random backgrounds (RBFP, RBRP)",
        "Table 2",
        _vision_cells,
        _model_table("iou"),
        _model_figure("iou", "Table 2: IoU on random backgrounds"),
        paper_keys=_PAPER_MODEL_KEYS,
        rows=_accuracy_percent,
    ),
    Target(
        "table3",
        "Table 3: vision IoU and accuracy, structured backgrounds (SBFP, SBRP)",
        "Table 3",
        _vision_cells,
        _model_table("iou"),
        _model_figure("iou", "Table 3: IoU on structured backgrounds"),
        paper_keys=_PAPER_MODEL_KEYS,
        rows=_accuracy_percent,
    ),
    Target(
        "table4",
        "Table 4: audio channel FPrec and accuracy (RBFP, SBFP)",
        "Table 4",
        _audio_cells,
        _model_table("channel_fprec"),
        _model_figure("channel_fprec", "Table 4: channel FPrec"),
        paper_keys=_PAPER_MODEL_KEYS,
        rows=_accuracy_percent,
    ),
):
    TARGETS.register(_t.name, _t)


# --- the grids of each scale ------------------------------------------------------------------------

_FIG4_FACTORS = tuple(n for n in FACTORS.names() if n != "formula")
_VISION_MODELS = ("alexnet", "densenet121", "googlenet", "resnet18", "resnet50", "vgg13", "vit_b_16", "vit_l_32")
_AUDIO_MODELS = ("rnn", "lstm", "tcn", "transformer")
_ALL_FORMULAS = tuple(str(i) for i in range(1, 16))
_RFE_FORMULAS = ("11", "12", "13", "14", "15")


def _vision_grids(settings: tuple[str, ...], paper_reduces: str) -> dict[str, Grid]:
    """Tables 2 and 3: the same scales, on the random- (2) or structured-background (3) conditions."""
    return {
        "quick": Grid(
            models=("compact_cnn",),
            settings=settings,
            preset="demo",
            reduces="the compact CNN instead of the paper's 8 architectures (so no paper row: they need the demo "
            "scale or a GPU) at the demo preset (10,000 images, 10 epochs, 200 attributed), 1 seed; seed 0 of "
            "every condition ships with the package and loads at once, other seeds train for minutes each",
        ),
        "demo": Grid(
            models=("compact_cnn", "resnet18"),
            settings=settings,
            preset="demo",
            reduces="2 of the 8 architectures (compact CNN, ResNet18), the demo preset (10,000 images, 10 epochs), 1 seed",
        ),
        "paper": Grid(
            seeds=PAPER_SEEDS, models=_VISION_MODELS, settings=settings, preset="paper", reduces=paper_reduces
        ),
    }


GRIDS: dict[str, dict[str, Grid]] = {
    "figure4": {
        "quick": Grid(
            formulas=("1", "7", "10"),
            factors=_FIG4_FACTORS,
            values=3,
            epochs=300,
            eval_samples=500,
            reduces="3 of 15 formulas (1, 7, 10), 3 values per factor (both ends and the middle), 1 seed, "
            "300 of 1,000 epochs, 500 test rows attributed",
        ),
        "demo": Grid(
            formulas=("1", "4", "7", "10", "13"),
            factors=_FIG4_FACTORS,
            values=0,
            epochs=500,
            eval_samples=1000,
            reduces="5 of 15 formulas, every value of the paper's grid, 1 seed, 500 of 1,000 epochs, 1,000 test rows",
        ),
        "paper": Grid(
            seeds=PAPER_SEEDS,
            formulas=_ALL_FORMULAS,
            factors=_FIG4_FACTORS,
            reduces="nothing: 15 formulas, every value, 5 seeds, 1,000 full-batch epochs",
        ),
    },
    "figure5": {
        "quick": Grid(
            formulas=("1", "7", "10"),
            epochs=300,
            eval_samples=500,
            reduces="3 of 15 formulas (1, 7, 10), 1 seed, 500 test rows attributed",
        ),
        "demo": Grid(
            formulas=_ALL_FORMULAS,
            epochs=300,
            eval_samples=1000,
            reduces="1 seed, 1,000 test rows attributed",
        ),
        "paper": Grid(
            seeds=PAPER_SEEDS, formulas=_ALL_FORMULAS, epochs=300, reduces="nothing: 15 formulas, 300 epochs, 5 seeds"
        ),
    },
    "figure6": {
        "quick": Grid(
            strategies=("uni", "bi"),
            samples=3000,
            noise_features=60,
            epochs=40,
            reduces="3,000 of 20,000 rows, 60 of 321 noise columns (108 columns), 40 of 500 epochs, 1 seed",
        ),
        "demo": Grid(
            strategies=("uni", "bi"),
            samples=10_000,
            epochs=150,
            reduces="10,000 of 20,000 rows, 150 of 500 epochs, 1 seed",
        ),
        "paper": Grid(
            seeds=PAPER_SEEDS,
            strategies=("uni", "bi"),
            reduces="nothing but the data: the Santander-like table, 5 seeds",
        ),
    },
    "figure7": {
        "quick": Grid(
            formulas=_RFE_FORMULAS,
            samples=2000,
            noise_features=50,
            epochs=150,
            reduces="2,000 of 10,000 rows, 50 of 150 noise features, 150 of 1,000 epochs, seed 0 (the paper's: 42)",
        ),
        "demo": Grid(
            formulas=_RFE_FORMULAS,
            samples=5000,
            epochs=400,
            reduces="5,000 of 10,000 rows, 400 of 1,000 epochs",
        ),
        "paper": Grid(seeds=(42,), formulas=_RFE_FORMULAS, reduces="nothing: the paper's protocol, seed 42"),
    },
    "table2": _vision_grids(
        ("RBFP", "RBRP"), "nothing but the foreground (procedural shapes for CIFAR-10 unless data_root is given)"
    ),
    "table3": _vision_grids(
        ("SBFP", "SBRP"),
        "nothing but the data (offline photo + fractal backgrounds for Flowers102 unless data_root is given)",
    ),
    "table4": {
        "quick": Grid(
            models=("tcn",),
            settings=("RBFP", "SBFP"),
            preset="demo",
            reduces="the TCN only (the demo preset is tuned for it; the other models stay at chance on a CPU), the "
            "demo preset (10 command words x 300 clips, 10 epochs), 1 seed; seed 0 ships with the package and "
            "loads at once, other seeds train for minutes each",
        ),
        "demo": Grid(
            models=_AUDIO_MODELS,
            settings=("RBFP", "SBFP"),
            preset="demo",
            reduces="the demo preset (10 command words x 300 clips, 10 epochs), 1 seed",
        ),
        "paper": Grid(
            seeds=PAPER_SEEDS,
            models=_AUDIO_MODELS,
            settings=("RBFP", "SBFP"),
            preset="paper",
            reduces="nothing but the speech (espeak-ng words unless a Speech Commands folder is given)",
        ),
    },
}


def grid_for(target: str, scale: str = "quick", seeds: Sequence[int] | None = None) -> Grid:
    """The grid of ``target`` at ``scale``, with ``seeds`` replacing its seeds when given."""
    TARGETS.get(target)
    if scale not in SCALES:
        raise ConfigError(f"The 'scale' parameter of reproduce must be one of {list(SCALES)}. Got {scale!r} instead.")
    grid = GRIDS[target][scale]
    if seeds:
        checked = tuple(check_int(s, "seeds", owner="reproduce", low=0, high=2**31 - 1) for s in seeds)
        grid = replace(grid, seeds=checked, reduces=f"{grid.reduces}; seeds {', '.join(map(str, checked))}")
    return grid


def plan(target: str, scale: str = "quick", seeds: Sequence[int] | None = None, device: str = "auto") -> list[Cell]:
    """The runs that make ``target`` at ``scale`` (identical runs appear once)."""
    cells = TARGETS.get(target).cells(grid_for(target, scale, seeds), device)
    seen: set[str] = set()
    out = []
    for c in cells:
        key = c.spec.key + repr(sorted(c.meta.items()))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


# --- running and summarising ------------------------------------------------------------------------


@dataclass
class Reproduction:
    """A finished (or partly failed) reproduction: the tidy scores, the table beside the paper's numbers.

    ``from_store``: cells answered by the results store (not submitted); ``cached``: cells the executor
    answered from the cache; the others were trained now or ``failed``.
    """

    target: str
    scale: str
    grid: Grid
    cells: int
    cached: int
    failed: dict[str, str]
    seconds: float
    scores: pd.DataFrame
    table: pd.DataFrame
    paper: list[PaperValue]
    from_store: int = 0

    @property
    def spec(self) -> Target:
        return TARGETS.get(self.target)

    def figure(self) -> go.Figure:
        return self.spec.figure(self.table)

    def summary(self) -> dict[str, Any]:
        """The JSON answer of ``python -m chaosmining reproduce ... --json``."""
        table = self.table.astype(object).where(self.table.notna(), None)
        return {
            "target": self.target,
            "title": self.spec.title,
            "scale": self.scale,
            "scale_means": SCALES[self.scale] if self.scale in SCALES else "",
            "reduces": self.grid.reduces,
            "seeds": list(self.grid.seeds),
            "runs": self.cells,
            "from_store": self.from_store,
            "from_cache": self.cached,
            "trained": self.cells - self.from_store - self.cached - len(self.failed),
            "failed": self.failed,
            "seconds": self.seconds,
            "paper_numbers": self.spec.paper,
            "columns": [str(c) for c in table.columns],
            "rows": table.to_dict(orient="records"),
        }

    def bundle(self) -> dict[str, Any]:
        return {
            "task": "reproduce",
            "config": {"target": self.target, "scale": self.scale, "grid": asdict(self.grid)},
            "results": self.summary(),
        }


def _paper_frame(target: Target, values: list[PaperValue]) -> pd.DataFrame:
    rows = [
        {ours: getattr(v, theirs) for ours, theirs in target.paper_keys.items()}
        | {"paper": v.value, "paper_std": v.std, "paper_source": v.source}
        for v in values
    ]
    return pd.DataFrame(rows)


def _beside_paper(target: Target, table: pd.DataFrame, values: list[PaperValue]) -> pd.DataFrame:
    """``table`` with the published value, its std and the difference (ours - paper) where they exist."""
    if not target.paper_keys or not values or table.empty:
        return table
    paper = _paper_frame(target, values).drop_duplicates(subset=list(target.paper_keys))
    out = table.merge(paper, on=list(target.paper_keys), how="left")
    out["difference"] = out["mean"] - out["paper"]
    return out


def store_key(spec: RunSpec) -> str:
    """The run key under which the results store files ``spec``'s run: :func:`run_key_for` of its result kind
    and the configuration the cache keeps with the result (``{"model", "eval"}`` for the modalities'
    experiments, which take an evaluation config; the configuration alone for the other kinds)."""
    config = {"model": spec.config, "eval": spec.eval} if spec.eval is not None else spec.config
    return run_key_for(spec.entry.result_kind, config)


def _cell_rows(
    cell: Cell, where: Mapping[str, Any], scores: list[dict[str, Any]], target: Target
) -> list[dict[str, Any]]:
    """A cell's tidy rows: its stored scores plus the target's rows derived from them, with the cell's place."""
    rows = [{**where, **r} for r in scores]
    rows += [{**where, **r} for r in (target.rows(scores) if target.rows else [])]
    return [{**r, **cell.meta} for r in rows]


def _where(cell: Cell, task: str, setting: str, model: str) -> dict[str, Any]:
    return {"label": cell.label, "run_key": cell.spec.key, "task": task, "setting": setting, "model": model}


def tidy_scores(cell: Cell, result: Any, target: Target) -> list[dict[str, Any]]:
    """One row per method and metric of a finished cell: the store's extractor plus the target's own rows."""
    record_ = extract(cell.spec.entry.result_kind, result)
    scores = [{"method": s.method, "metric": s.metric, "value": s.value} for s in record_.scores]
    return _cell_rows(cell, _where(cell, record_.task, record_.setting, record_.model), scores, target)


def _stored(store: ResultsStore, cells: list[Cell], target: Target) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Tidy rows of the cells whose run the store has, by cell (label, run key); none when the store cannot
    be read."""
    keys = {c.spec.key: store_key(c.spec) for c in cells}
    try:
        have = set(store.runs(run_key=list(set(keys.values())))["run_key"]) if keys else set()
        scores = store.scores(run_key=list(have)) if have else pd.DataFrame()
    except Exception as exc:  # noqa: BLE001 - an unreadable store means every cell is submitted, never a failure
        log.warning("The results store could not be read (%s: %s); every cell is submitted.", type(exc).__name__, exc)
        return {}
    by_key = {k: g for k, g in scores.groupby("run_key", sort=False)} if len(scores) else {}
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for cell in cells:
        key = keys[cell.spec.key]
        if key not in have:
            continue
        g = by_key.get(key)
        if g is None:
            out[(cell.label, cell.spec.key)] = []
            continue
        first = g.iloc[0]
        values = [None if pd.isna(v) else float(v) for v in g["value"]]
        scores_ = [{"method": m, "metric": k, "value": v} for m, k, v in zip(g["method"], g["metric"], values)]
        where = _where(cell, first["task"], first["setting"], first["model"])
        out[(cell.label, cell.spec.key)] = _cell_rows(cell, where, scores_, target)
    return out


def _method_order(spec: RunSpec) -> list[str]:
    for owner, name in ((spec.eval, "methods"), (spec.config, "methods"), (spec.config, "selectors")):
        names = getattr(owner, name, None)
        if names:
            return list(names)
    return []


def _in_order(rows: list[dict[str, Any]], cells: list[Cell]) -> list[dict[str, Any]]:
    """Rows in one order whichever way their cells were answered (trained, cache or store): by cell, by the
    cell's own method order (run-level scores last), then by metric name."""
    place = {(c.label, c.spec.key): i for i, c in enumerate(cells)}
    orders = {c.spec.key: _method_order(c.spec) for c in cells}

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        order, m = orders.get(r["run_key"], []), r["method"]
        rank = order.index(m) if m in order else len(order) + (m == "")
        return (place.get((r["label"], r["run_key"]), len(cells)), rank, m, r["metric"])

    return sorted(rows, key=key)


def _record_missing(
    store: ResultsStore, executor: Executor, finished: list[tuple[Cell, Any]], stored_keys: set[str]
) -> None:
    """File the cells the cache answered (the run layer files only the runs it trained) unless the store has them."""
    for cell, result in finished:
        key = store_key(cell.spec)
        if key in stored_keys:
            continue
        kind = cell.spec.entry
        entry = executor.cache.load(kind.result_kind, kind.result_key(cell.spec.config, cell.spec.eval))
        if entry is not None:
            record(kind.result_kind, entry.config, result, device=cell.spec.device, store=store, run_key=key)
        stored_keys.add(key)


def _run_cells(
    cells: list[Cell],
    target: str,
    scale: str,
    executor: Executor,
    store: ResultsStore,
    from_store: int,
    batched: bool = False,
) -> Callable[[RunContext], dict[str, Any]]:
    """The orchestration: submit every cell as a child run, wait, and gather results or errors per cell;
    the cells the cache answered are then filed in the store, so that a later reproduction needs no cache.

    With ``batched``, the uncached symbolic cells that share a network shape train together first, as
    ``symbolic-group`` runs (:mod:`chaosmining.grouping`); the cells then find their results cached.
    """
    spec = TARGETS.get(target)

    def work(ctx: RunContext) -> dict[str, Any]:
        fresh: set[str] = set()
        if batched:
            fresh = train_in_groups(
                [c.spec for c in cells],
                submit=ctx.submit,
                cache=ctx.executor.cache,
                executor=ctx.executor,
                report=ctx.report,
                should_stop=ctx.should_stop,
            )
        handles = [(c, ctx.submit(c.spec)) for c in cells]
        cached = sum(1 for c, h in handles if h.cached and c.spec.key not in fresh)
        total = len(cells) + from_store
        stage = f"{target} ({scale}): {total} runs, {from_store} from the store, {cached} from the cache"
        ctx.report(stage=stage, done=from_store, total=total)
        finished: set[int] = set()
        while len(finished) < len(handles):
            ctx.check_cancelled()
            for i, (_, h) in enumerate(handles):
                if i not in finished and h.wait(0.05):
                    finished.add(i)
                    ctx.report(stage=stage, done=from_store + len(finished), total=total)
        rows: list[dict[str, Any]] = []
        failed: dict[str, str] = {}
        answered: list[tuple[Cell, Any]] = []
        for cell, h in handles:
            try:
                result = h.result()
            except ChaosMiningError as exc:  # one failed cell is reported, the rest still tabulate
                failed[cell.label] = str(exc)
                continue
            rows += tidy_scores(cell, result, spec)
            if h.cached:
                answered.append((cell, result))
        flush_records()  # the run layer files the runs it trained on a background thread
        try:
            stored = set(store.runs(run_key=[store_key(c.spec) for c, _ in answered])["run_key"]) if answered else set()
        except Exception:  # noqa: BLE001 - record() below logs a store that cannot be written
            stored = set()
        _record_missing(store, executor, answered, stored)
        return {"rows": rows, "failed": failed, "cached": cached}

    return work


def reproduce(
    target: str,
    scale: str = "quick",
    *,
    executor: Executor,
    seeds: Sequence[int] | None = None,
    device: str = "auto",
    session: str = "reproduce",
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    batched: bool | None = None,
) -> Reproduction:
    """Run every cell of ``target`` at ``scale`` through ``executor`` and tabulate them beside the paper.

    The cells are child runs of one orchestration (so they queue fairly beside other sessions' runs and
    do not count towards a session's queue cap). Cells whose run the results store has (beside the executor's
    cache, or ``$CHAOSMINING_RESULTS``) are answered from it without being submitted, and cells the cache
    has are answered at once, so an interrupted reproduction resumes; a failed cell is reported in
    :attr:`Reproduction.failed` and the others still count. ``report`` receives ``stage``/``done``/``total``
    as cells finish. ``batched`` trains the uncached symbolic cells that share a network shape as one
    batched computation per group (default: on CUDA only; :mod:`chaosmining.grouping`).

    Raises
    ------
    JobCancelled
        When ``should_stop`` turns true (runs still queued or running are stopped; finished ones stay cached).
    ChaosMiningError
        When no cell finished.
    """
    spec = TARGETS.get(target)
    grid = grid_for(target, scale, seeds)
    cells = plan(target, scale, seeds, device)
    start = time.perf_counter()
    store = ResultsStore(default_results_root(executor.cache.root))
    stored = _stored(store, cells, spec)
    pending = [c for c in cells if (c.label, c.spec.key) not in stored]
    rows = [r for rows_ in stored.values() for r in rows_]
    out: dict[str, Any] = {"rows": [], "failed": {}, "cached": 0}
    if pending:
        key = "reproduce:" + stable_hash([target, scale, [c.spec.key for c in pending]])
        handle = executor.orchestrate(
            key,
            _run_cells(
                pending, target, scale, executor, store, len(cells) - len(pending), use_batching(batched, device)
            ),
            kind="reproduce",
            description=f"reproduce {target} ({scale}, {len(pending)} of {len(cells)} runs)",
            session=session,
        )
        out = follow(handle, report, should_stop)
    elif report is not None:
        report(stage=f"{target} ({scale}): {len(cells)} runs, all from the store", done=len(cells), total=len(cells))
    rows, failed = _in_order(rows + out["rows"], cells), out["failed"]
    if not rows:
        raise ChaosMiningError(
            f"No run of {target} ({scale}) finished: " + "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:3])
        )
    scores = pd.DataFrame(rows)
    scores["value"] = pd.to_numeric(scores["value"], errors="coerce")
    values = paper_reference(target)
    table = _beside_paper(spec, spec.table(scores), values)
    return Reproduction(
        target=target,
        scale=scale,
        grid=grid,
        cells=len(cells),
        cached=out["cached"],
        from_store=len(cells) - len(pending),
        failed=failed,
        seconds=time.perf_counter() - start,
        scores=scores,
        table=table.reset_index(drop=True),
        paper=values,
    )
