"""Symbolic functions: formulas with noise features and label noise, MLP regressors, Captum attributions."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from chaosmining import viz
from chaosmining.attribution import METHODS
from chaosmining.data.formulas import FORMULAS, PAPER_FORMULAS, VARIABLES, get_formula
from chaosmining.data.symbolic import SymbolicDataConfig
from chaosmining.errors import ChaosMiningError
from chaosmining.experiments.symbolic import DEFAULT_METHODS, EvalConfig, SymbolicConfig, symbolic_methods
from chaosmining.models.mlp import ACTIVATIONS, MLPConfig
from chaosmining.runtime import resolve_device
from chaosmining.sweep import FACTORS, SweepConfig
from chaosmining.training import OPTIMIZERS, PRECISIONS, TrainConfig, check_precision
from ui import links
from ui.common import (
    export_section,
    fmt,
    init_defaults,
    job_notice,
    jobs,
    live_figure,
    method_params_widgets,
    other_jobs,
    persist,
    precision_select,
    setup_page,
    show_job,
    widget_state,
)
from ui.symbolic import (
    RUNS,
    cached_result,
    load_sweep,
    preflight_notes,
    reading,
    result_key,
    submit_sweep,
    submit_training,
    sweep_key,
    symbolic_bundle,
)

setup_page("Symbolic functions", ":material/functions:")
persist("sym_")

P = "sym_"
D, M, T = SymbolicDataConfig(), MLPConfig(), TrainConfig()
SOURCES = ["Paper formula (Table 5)", "Type a formula"]
TABS = ["Results", "What-if sweep", "Export"]
LINK = {  # the settings a shared link carries (ui/links.py), with the widgets' bounds and choices
    "source": links.one_of(SOURCES),
    "fid": links.one_of(FORMULAS.names, name="formula"),
    "typed": links.text(500, name="expression"),
    "noise": links.integer(0, 5000),
    "samples": links.integer(10, 1_000_000),
    "label_noise": links.number(0.0, 10.0),
    "test_fraction": links.number(0.05, 0.95),
    "width": links.integer(1, 4096),
    "depth": links.integer(1, 16),
    "dropout": links.number(0.0, 0.95),
    "activation": links.one_of(ACTIVATIONS.names),
    "optimizer": links.one_of(OPTIMIZERS.names),
    "lr": links.number(1e-6, 10.0),
    "epochs": links.integer(1, 100_000),
    "batch": links.integer(0, 1_000_000),
    "precision": links.one_of(PRECISIONS.names),
    "device": links.one_of(["auto", "cpu", "cuda"]),
    "methods": links.some_of(symbolic_methods),
    **links.method_param_fields(symbolic_methods()),
    "seed": links.integer(0, 2**31 - 1),
    "factor": links.one_of(FACTORS.names),
    **{f"values_{f}": links.text(500) for f in FACTORS.names()},
    "n_seeds": links.integer(1, 10),
    "tab": links.tab(TABS),
}


def _reset() -> None:
    for k in [k for k in st.session_state if isinstance(k, str) and k.startswith(P)]:
        del st.session_state[k]


st.title("Symbolic functions")
st.caption(
    "Paper section 3.1: a formula over a few features, many noise features, Gaussian label noise; an MLP "
    "regressor; four attribution methods scored against the analytic ground truth from sympy."
)

# ---- sidebar: every setting, the paper's defaults preselected ---------------------------------
init_defaults(
    {
        P + "source": "Paper formula (Table 5)",
        P + "fid": "1",
        P + "typed": "0.5*sin(a) + b**2 - a*c",
        P + "noise": D.noise_features,
        P + "samples": D.samples,
        P + "label_noise": D.label_noise,
        P + "test_fraction": D.test_fraction,
        P + "width": M.width,
        P + "depth": M.depth,
        P + "dropout": M.dropout,
        P + "activation": M.activation,
        P + "optimizer": T.optimizer,
        P + "lr": T.lr,
        P + "epochs": T.epochs,
        P + "batch": T.batch_size,
        P + "precision": T.precision,
        P + "device": "auto",
        P + "methods": list(DEFAULT_METHODS),
        P + "seed": 0,
        P + "factor": "noise_features",
        P + "n_seeds": 1,
    }
)
link = links.sync_query_params(P, LINK)
sb = st.sidebar
sb.header("Formula")
source = sb.radio("Source", SOURCES, key=P + "source", horizontal=True)
if source.startswith("Paper"):
    formula_text = sb.selectbox(
        "Paper formula",
        FORMULAS.names(),
        format_func=lambda i: f"{i}: {PAPER_FORMULAS[int(i)][1]}",
        key=P + "fid",
    )
else:
    formula_text = sb.text_input(
        "f(a, ..., j) =",
        key=P + "typed",
        help="Variables a..j are features 0..9; constants E and pi; + - * / ** (^ also means power); "
        "functions sin cos tan cot asin acos atan sinh cosh tanh exp log sqrt abs sign erf Max Min. "
        "Nothing you type is executed: it is checked against this whitelist first.",
    )

sb.header("Data")
noise_features = sb.number_input(
    "Noise features", 0, 5000, key=P + "noise", help="Irrelevant columns added after the formula's columns."
)
samples = sb.number_input("Samples", 10, 1_000_000, step=500, key=P + "samples", help="Rows before the 80/20 split.")
label_noise = sb.number_input(
    "Label noise (std)",
    0.0,
    10.0,
    step=0.01,
    format="%g",
    key=P + "label_noise",
    help="Gaussian noise on the training target only.",
)
test_fraction = sb.number_input("Test fraction", 0.05, 0.95, step=0.05, key=P + "test_fraction")

sb.header("Model")
width = sb.number_input("Width", 1, 4096, key=P + "width")
depth = sb.number_input("Depth (hidden layers)", 1, 16, key=P + "depth")
dropout = sb.number_input("Dropout", 0.0, 0.95, step=0.05, key=P + "dropout")
activation = sb.selectbox(
    "Activation", ACTIVATIONS.names(), format_func=lambda a: ACTIVATIONS.get(a).display_name, key=P + "activation"
)

sb.header("Training")
optimizer = sb.selectbox(
    "Optimizer", OPTIMIZERS.names(), format_func=lambda o: OPTIMIZERS.get(o).display_name, key=P + "optimizer"
)
lr = sb.number_input("Learning rate", 1e-6, 10.0, format="%g", key=P + "lr")
epochs = sb.number_input("Epochs", 1, 100_000, step=100, key=P + "epochs")
batch_size = sb.number_input("Batch size (0 = full batch, as the paper)", 0, 1_000_000, key=P + "batch")
precision = precision_select(sb, P)
device = sb.selectbox("Device", ["auto", "cpu", "cuda"], key=P + "device", help="auto uses CUDA when a GPU is present.")

sb.header("Attribution")
methods = sb.multiselect(
    "Methods",
    symbolic_methods(),
    format_func=lambda m: METHODS.get(m).display_name,
    key=P + "methods",
    help="Saliency is the signed gradient here; 'Saliency |gradient|' is Captum's default, as the original code used.",
)
method_params = method_params_widgets(methods, P)
seed = sb.number_input("Seed", 0, 2**31 - 1, key=P + "seed")
sb.button("Reset to paper defaults", on_click=_reset, key=P + "reset_btn")

# ---- validate: bad input gets a clear message, the other settings stay --------------------------
try:
    formula = get_formula(formula_text)
except ChaosMiningError as exc:
    st.error(str(exc))
    st.stop()

st.latex(r"f = " + formula.latex)
names = ", ".join(VARIABLES[i] for i in formula.relevant)
st.caption(
    f"Relevant features: {names} (k = {len(formula.relevant)}), then {noise_features} noise features. "
    "Variables are typeset upright; Euler's number is the italic e."
)
if formula.note:
    st.info(formula.note)
if not methods:
    st.error("The 'methods' setting must name at least one attribution method. Got none instead.")
    st.stop()

try:
    config = SymbolicConfig(
        data=SymbolicDataConfig(
            formula=formula_text,
            noise_features=noise_features,
            samples=samples,
            label_noise=label_noise,
            test_fraction=test_fraction,
        ),
        model=MLPConfig(width=width, depth=depth, dropout=dropout, activation=activation),
        train=TrainConfig(optimizer=optimizer, lr=lr, epochs=epochs, batch_size=batch_size, precision=precision),
        seed=seed,
    )
    ev = EvalConfig.create(methods, method_params)
    check_precision(precision, resolve_device(device))
except ChaosMiningError as exc:
    st.error(str(exc))
    st.stop()

for note in preflight_notes(config, ev):
    st.warning(note, icon=":material/info:")

tab_results, tab_whatif, tab_export = st.tabs(TABS, key=P + "tab", on_change="rerun")


def render_progress(snap: Any) -> None:
    total = snap.payload.get("epochs", 1)
    epoch = snap.latest("epoch") or 0
    loss = snap.latest("loss")
    stage = snap.latest("stage") or "starting"
    st.progress(
        min(1.0, epoch / max(total, 1)),
        text=f"{stage}: epoch {epoch} / {total}" + (f", loss {loss:.3g}" if loss is not None else ""),
    )
    fp_events = [e for e in snap.events if "fprec" in e]
    if fp_events:
        curves: dict[str, list[float]] = {}
        for e in fp_events:
            for m, v in e["fprec"].items():
                curves.setdefault(m, []).append(v)
        floor = snap.payload.get("floor")
        c1, c2 = st.columns(2)
        c1.plotly_chart(
            live_figure(
                snap,
                "fprec",
                lambda: viz.fprec_curve(
                    [e["epoch"] for e in fp_events], curves, floor, "Live FPrec while training", total
                ),
            ),
            key=f"live_fprec_{snap.id}_{len(fp_events)}",
        )
        losses = [(e["epoch"], e["loss"]) for e in snap.events if "loss" in e]
        if losses:
            c2.plotly_chart(
                live_figure(
                    snap, "loss", lambda: viz.loss_curve([a for a, _ in losses], [b for _, b in losses], total)
                ),
                key=f"live_loss_{snap.id}_{len(losses)}",
            )


def render_result(result: Any) -> None:
    c = st.columns(4)
    c[0].metric("Prediction UScore", fmt(result.prediction_uscore))
    c[1].metric("Test MAE", fmt(result.test_mae, 4))
    c[2].metric("Training time", f"{result.train_seconds:.1f} s")
    done_job = jobs().get(RUNS.job_key(result.config, result.eval))
    fresh = done_job is not None and done_job.status == "done" and not done_job.cached
    c[3].metric(
        "Source",
        "trained now" if fresh else "cache",
        help=f"trained on {result.device}; loaded in {result.seconds:.2f} s",
    )
    if result.cache_note:
        st.warning(result.cache_note)
    for m, s in result.scores.items():
        if s.error:
            st.warning(f"**{METHODS.get(m).display_name} could not be scored.** {s.error}", icon=":material/block:")
    st.markdown(reading(result))
    c1, c2 = st.columns(2)
    c1.plotly_chart(viz.fprec_bars(result), key="fprec_bars")
    c2.plotly_chart(viz.uscore_bars(result), key="uscore_bars")
    st.dataframe(pd.DataFrame(result.scores_table()).drop(columns=["method"]), hide_index=True, key="scores_table")
    c1, c2 = st.columns(2)
    if result.curve_fprec:
        c1.plotly_chart(
            viz.fprec_curve(
                result.curve_epochs,
                result.curve_fprec,
                result.random_fprec_expected,
                total_epochs=result.config.train.epochs,
            ),
            key="conv",
        )
    c2.plotly_chart(viz.loss_curve(result.loss_epochs, result.loss_values, result.config.train.epochs), key="loss")
    method = st.selectbox(
        "Method for the detailed views",
        [m for m, s in result.scores.items() if not s.error] or list(result.scores),
        format_func=viz.method_label,
        key=P + "detail_method",
    )
    st.plotly_chart(viz.attribution_heatmap(result, method), key="heatmap")
    c1, c2 = st.columns(2)
    c1.plotly_chart(viz.mean_abs_bars(result, method), key="meanabs")
    c2.plotly_chart(viz.ground_truth_scatter(result, method), key="scatter")
    c1, c2 = st.columns(2)
    c1.plotly_chart(viz.fprec_distribution(result), key="fdist")
    c2.plotly_chart(viz.cost_bars(result), key="cost")


with tab_results:
    key = result_key(config, ev)
    job_key = RUNS.job_key(config, ev)
    result = cached_result(config, ev)
    job = jobs().get(job_key)
    if result is not None:
        render_result(result)
    elif job is not None and not job.snapshot().done:
        show_job(job_key, render_progress, interval=0.5)
    else:
        job_notice(job_key)
        st.info(
            f"This configuration is not in the cache yet. Training {config.train.epochs} full-batch epochs on "
            f"{int(config.data.samples * (1 - config.data.test_fraction))} rows x {config.data.n_features} features; "
            "FPrec per method is drawn live while it trains."
        )
        if st.button("Train", type="primary", key=P + "train_btn", icon=":material/play_arrow:"):
            if submit_training(config, ev, device, widget_state(P)) is not None:
                st.rerun()
    other_jobs(P, job_key, render_progress)

with tab_whatif:
    st.markdown(
        "Vary one factor around the settings in the sidebar, as in the paper's Figure 4; cells already trained are read from the cache."
    )
    c1, c2, c3 = st.columns([2, 3, 1])
    factor = c1.selectbox(
        "Factor", FACTORS.names(), format_func=lambda f: FACTORS.get(f).display_name, key=P + "factor"
    )
    spec = FACTORS.get(factor)
    init_defaults({P + f"values_{factor}": ", ".join(str(v) for v in spec.default_values)})
    values_text = c2.text_input("Values (comma-separated)", key=P + f"values_{factor}")
    n_seeds = c3.number_input("Seeds", 1, 10, key=P + "n_seeds")
    try:
        values = tuple(spec.parse(v.strip()) for v in values_text.split(",") if v.strip())
        sweep = SweepConfig(
            base=config,
            factor=factor,
            values=values,
            seeds=tuple(range(seed, seed + n_seeds)),
            eval=EvalConfig.create(methods, method_params, curve_samples=0, measure_memory=False),
        )
    except (ChaosMiningError, ValueError) as exc:
        st.error(f"The 'values' setting could not be used for factor {factor!r}: {exc}")
        st.stop()
    skey = sweep_key(sweep)
    sjob_key = f"sweep:{skey}"
    sjob = jobs().get(sjob_key)
    st.caption(
        f"{len(values) * n_seeds} cells of {config.train.epochs} epochs each, queued as your runs beside everyone else's and run in worker processes."
    )
    if sjob is not None and not sjob.snapshot().done:

        def sweep_progress(snap: Any) -> None:
            done, total = snap.latest("done") or 0, snap.latest("total") or 1
            st.progress(done / max(total, 1), text=f"{done} of {total} cells")

        show_job(sjob_key, sweep_progress, interval=2.0)
    else:
        job_notice(sjob_key)
        if st.button("Run sweep", key=P + "sweep_btn", icon=":material/tune:"):
            if submit_sweep(sweep, device) is not None:
                st.rerun()
    sres = load_sweep(sweep)
    if sres is not None:
        for e in sres.errors:
            st.error(e)
        c1, c2 = st.columns(2)
        c1.plotly_chart(viz.sweep_curves(sres, "fprec"), key="sweep_fprec")
        c2.plotly_chart(viz.sweep_curves(sres, "uscore"), key="sweep_uscore")
        st.dataframe(pd.DataFrame(sres.rows()), hide_index=True)
        export_section(
            f"chaosmining-sweep-{factor}",
            lambda: {"sweep_fprec": viz.sweep_curves(sres, "fprec"), "sweep_uscore": viz.sweep_curves(sres, "uscore")},
            sres.bundle,
            lambda: {"cells": pd.DataFrame(sres.rows())},
            key=f"sweep_export_{skey}",
        )

with tab_export:
    result = cached_result(config, ev)
    if result is None:
        st.info(
            "Train this configuration first; its figures, numbers and a re-runnable JSON bundle can then be exported."
        )
    else:
        export_section(
            f"chaosmining-symbolic-{key}",
            lambda: viz.symbolic_figures(result),
            lambda: symbolic_bundle(result),
            lambda: {"scores": pd.DataFrame(result.scores_table())},
            key=f"export_{key}",
        )

link.finish()
