"""Feature selection: RFEwNA (attribution-driven RFE on an MLP) against scikit-learn's RFE (paper section 4)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from chaosmining import viz
from chaosmining.data.formulas import FORMULAS, PAPER_FORMULAS
from chaosmining.data.tabular import MAX_CSV_COLUMNS, TABULAR_SOURCES
from chaosmining.errors import ChaosMiningError
from chaosmining.experiments.rfe import (
    DEFAULT_SELECTORS,
    STRATEGIES,
    TASK_KINDS,
    TASK_TYPE_SPECS,
    RFEConfig,
    RFEDataConfig,
)
from chaosmining.models.mlp import ACTIVATIONS
from chaosmining.runtime import resolve_device
from chaosmining.sandbox import roots_text
from chaosmining.selection import get_selector, selector_names
from chaosmining.training import PRECISIONS, check_precision
from chaosmining.uploads import MAX_UPLOAD_MB
from ui import links
from ui.common import (
    export_section,
    init_defaults,
    job_notice,
    jobs,
    method_params_widgets,
    other_jobs,
    persist,
    precision_select,
    setup_page,
    show_job,
    widget_state,
)
from ui.selection import (
    cached_result,
    csv_source,
    deeplift_note,
    duration,
    job_key,
    reading,
    render_progress,
    submit_rfe,
    task_preview,
)

setup_page("Feature selection", ":material/filter_alt:")
persist("rfe_")
P = "rfe_"


def _reset() -> None:
    for k in [k for k in st.session_state if isinstance(k, str) and k.startswith(P)]:
        del st.session_state[k]


st.title("Feature selection")
st.caption(
    "Paper section 4 and Algorithm 1: recursive feature elimination driven by an MLP and a post-hoc attribution "
    "method (RFEwNA), against scikit-learn's RFE with a linear model, a linear SVM and a decision tree. Features "
    "are ranked on a validation split carved from the training rows; the test rows only measure the error."
)

# ---- sidebar ------------------------------------------------------------------------------------
REG, CLS = TASK_TYPE_SPECS.get("regression"), TASK_TYPE_SPECS.get("classification")
TABS = ["Results", "Rounds", "Export"]
LINK = {  # the settings a shared link carries (ui/links.py), with the widgets' bounds and choices
    "kind": links.one_of(TASK_KINDS.names),
    "formula": links.one_of(FORMULAS.names),
    "noise_formula": links.integer(0, 5000),
    "samples_formula": links.integer(10, 1_000_000),
    "label_noise": links.number(0.0, 10.0),
    "table": links.one_of(TABULAR_SOURCES.names),
    **{f"noise_{n}": links.integer(0, 5000) for n in TABULAR_SOURCES.names()},
    **{f"samples_{n}": links.integer(0, 1_000_000) for n in TABULAR_SOURCES.names()},
    "csv_path": links.path(),
    "csv_label": links.text(200),
    "undersample": links.flag(),
    "selectors": links.some_of(selector_names),
    "strategy": links.one_of(STRATEGIES.names),
    "drop_rate": links.number(0.05, 0.95),
    "target": links.integer(0, 100_000),
    "seed": links.integer(0, 2**31 - 1),
    "width": links.integer(1, 4096),
    "depth": links.integer(1, 16),
    **{f"act_{t}": links.one_of(ACTIVATIONS.names) for t in TASK_TYPE_SPECS.names()},
    **{f"epochs_{t}": links.integer(1, 100_000) for t in TASK_TYPE_SPECS.names()},
    **{f"batch_{t}": links.integer(0, 1_000_000) for t in TASK_TYPE_SPECS.names()},
    **{f"lr_{t}": links.number(1e-6, 10.0) for t in TASK_TYPE_SPECS.names()},
    "precision": links.one_of(PRECISIONS.names),
    "val_fraction": links.number(0.05, 0.9),
    "test_fraction": links.number(0.05, 0.9),
    "workers": links.integer(0, 64),
    **links.method_param_fields(dict.fromkeys(m for s in selector_names() if (m := get_selector(s).method))),
    "tab": links.tab(TABS),
}
init_defaults(
    {
        P + "kind": "formula",
        P + "formula": "11",
        P + "noise_formula": 150,
        P + "samples_formula": 10_000,
        P + "label_noise": 0.01,
        P + "table": "santander_like",
        P + "csv_path": "",
        P + "csv_label": "",
        P + "undersample": True,
        P + "selectors": list(DEFAULT_SELECTORS),
        P + "strategy": "uni",
        P + "drop_rate": 0.5,
        P + "target": 0,
        P + "seed": 0,
        P + "val_fraction": 0.2,
        P + "test_fraction": 0.2,
        P + "width": REG.model.width,
        P + "depth": REG.model.depth,
        P + "precision": REG.train.precision,
        **{P + f"epochs_{t.name}": t.train.epochs for t in (REG, CLS)},
        **{P + f"batch_{t.name}": t.train.batch_size for t in (REG, CLS)},
        **{P + f"lr_{t.name}": t.train.lr for t in (REG, CLS)},
        **{P + f"act_{t.name}": t.model.activation for t in (REG, CLS)},
        **{P + f"noise_{n}": s.default_noise_features for n, s in TABULAR_SOURCES.items()},
        **{P + f"samples_{n}": s.default_samples or 0 for n, s in TABULAR_SOURCES.items()},
    }
)
link = links.sync_query_params(P, LINK)
sb = st.sidebar
sb.header("Task")
kind = sb.radio("Kind", TASK_KINDS.names(), format_func=lambda k: TASK_KINDS.get(k).display_name, key=P + "kind")
label = None
if kind == "formula":
    fid = sb.selectbox(
        "Formula", FORMULAS.names(), format_func=lambda i: f"{i}: {PAPER_FORMULAS[int(i)][1]}", key=P + "formula"
    )
    task = f"formula:{fid}"
    noise = sb.number_input("Noise features", 0, 5000, key=P + "noise_formula", help="The paper's protocol: 150.")
    samples = sb.number_input("Samples", 10, 1_000_000, step=500, key=P + "samples_formula")
    label_noise = sb.number_input("Label noise (std)", 0.0, 10.0, step=0.01, format="%g", key=P + "label_noise")
elif kind == "tabular":
    table = sb.selectbox(
        "Table", TABULAR_SOURCES.names(), format_func=lambda n: TABULAR_SOURCES.get(n).display_name, key=P + "table"
    )
    source = TABULAR_SOURCES.get(table)
    sb.caption(source.description)
    task = f"tabular:{table}"
    noise = sb.number_input("Noise columns", 0, 5000, key=P + f"noise_{table}")
    samples = sb.number_input(
        "Rows (0 = all)" if source.fixed_rows else "Rows generated",
        0,
        1_000_000,
        step=1000,
        key=P + f"samples_{table}",
        help="Before the majority class is undersampled.",
    )
    label_noise = 0.01
else:
    # The uploader's key lacks the page prefix: persist() must not write to it (uploaders are read-only).
    upload = sb.file_uploader(
        "Upload a CSV",
        type=["csv"],
        key="upload_rfe_csv",
        help=f"At most {MAX_UPLOAD_MB} MB and {MAX_CSV_COLUMNS} columns; kept on the server for a day. "
        "An upload is not part of a shared link (a path under the data roots is).",
    )
    path = sb.text_input(
        "CSV path on the server",
        key=P + "csv_path",
        disabled=upload is not None,
        help=f"A CSV under the data roots ({roots_text()}), for example Kaggle's "
        "santander-customer-satisfaction/train.csv placed there.",
    )
    if upload is not None:
        sb.caption(f"Using the upload {upload.name!r}; remove it to read a path on the server instead.")
        path = upload.name
    label = (
        sb.text_input("Label column (empty = TARGET, target, label, Label, class, Class or y)", key=P + "csv_label")
        or None
    )
    task = f"csv:{path}"
    noise, samples, label_noise = 0, 0, 0.01
task_type = TASK_KINDS.get(kind).task_type
if task_type == "classification":
    sb.checkbox("Undersample the majority class (as the paper)", key=P + "undersample")

sb.header("Selection")
selectors = sb.multiselect(
    "Selectors",
    selector_names(),
    format_func=viz.selector_label,
    key=P + "selectors",
    help="RFEwNA with an attribution method, or scikit-learn RFE with a classic model.",
)
strategy = sb.radio(
    "Strategy",
    STRATEGIES.names(),
    format_func=lambda s: STRATEGIES.get(s).display_name,
    key=P + "strategy",
    horizontal=True,
    help=" ".join(f"{s.display_name}: {s.description}" for _, s in STRATEGIES.items()),
)
drop_rate = sb.slider("Drop rate per round", 0.05, 0.95, step=0.05, key=P + "drop_rate", help="0.5 halves (the paper).")
target = sb.number_input("Target features (0 = as many as are true)", 0, 100_000, key=P + "target")
seed = sb.number_input("Seed", 0, 2**31 - 1, key=P + "seed")
with sb.expander("Network, training and splits"):
    width = st.number_input("Width", 1, 4096, key=P + "width")
    depth = st.number_input("Depth (hidden layers)", 1, 16, key=P + "depth")
    activation = st.selectbox(
        "Activation",
        ACTIVATIONS.names(),
        format_func=lambda a: ACTIVATIONS.get(a).display_name,
        key=P + f"act_{task_type}",
    )
    epochs = st.number_input("Epochs", 1, 100_000, step=50, key=P + f"epochs_{task_type}")
    batch = st.number_input("Batch size (0 = full batch)", 0, 1_000_000, key=P + f"batch_{task_type}")
    lr = st.number_input("Learning rate", 1e-6, 10.0, format="%g", key=P + f"lr_{task_type}")
    precision = precision_select(st, P)
    val_fraction = st.number_input(
        "Validation share of the training split", 0.05, 0.9, step=0.05, key=P + "val_fraction"
    )
    test_fraction = st.number_input("Test share", 0.05, 0.9, step=0.05, key=P + "test_fraction")
    st.caption(
        "Independent trainings run in parallel in the server's worker processes, queued fairly beside other "
        "users' runs (the server's CHAOSMINING_WORKERS sets how many)."
    )
methods = [get_selector(s).method for s in selectors if get_selector(s).method]
method_params = method_params_widgets(methods, P)
sb.button("Reset to the paper's protocol", on_click=_reset, key=P + "reset_btn")

# ---- validate: a clear message, the other settings stay -------------------------------------------
if not selectors:
    st.error("The 'selectors' setting must name at least one selector. Got none instead.")
    st.stop()
if kind == "csv" and not task.split(":", 1)[1].strip():
    st.info(
        "Upload a CSV with a binary label column in the sidebar, or type its path (Kaggle's Santander "
        "train.csv works as it is: its ID column is dropped and TARGET is the label)."
    )
    st.stop()
try:
    if kind == "csv":  # typed paths stay under the data roots; the real path is never shown
        task = f"csv:{csv_source(upload, path)}"
    spec = TASK_TYPE_SPECS.get(task_type)
    config = RFEConfig(
        data=RFEDataConfig(
            task=task,
            noise_features=noise,
            samples=samples,
            label_noise=label_noise,
            label=label,
            undersample=st.session_state[P + "undersample"],
            val_fraction=val_fraction,
            test_fraction=test_fraction,
        ),
        selectors=tuple(selectors),
        drop_rate=drop_rate,
        target=target,
        strategy=strategy,
        model=spec.model.replace(width=width, depth=depth, activation=activation),
        train=spec.train.replace(epochs=epochs, batch_size=batch, lr=lr, precision=precision),
        method_params=tuple((m, tuple(p.items())) for m, p in method_params.items()),
        seed=seed,
    )
    preview = task_preview(config)
    check_precision(precision, resolve_device())
except ChaosMiningError as exc:
    st.error(str(exc))
    st.stop()

st.subheader(preview.title)
if preview.formula_latex:
    st.latex(r"f = " + preview.formula_latex)
truth = (
    f"True features: {', '.join(preview.true_names)} (m = {len(preview.true_names)})"
    if preview.true_names is not None
    else "No ground truth"
)
plan = preview.plan
st.caption(
    f"{truth}. {preview.n_features} features; {preview.rows[0]} train / {preview.rows[1]} validation / "
    f"{preview.rows[2]} test rows. Schedule: {' → '.join(map(str, plan.schedule))} features; up to "
    f"{plan.trainings} network trainings of {config.train.epochs} epochs (about {duration(plan.estimated_seconds)} "
    "on one core; selectors that keep the same features share them)."
)
for note in preview.notes:
    st.info(note)
note = deeplift_note(config, preview.n_features)
if note:
    st.warning(note, icon=":material/info:")

tab_results, tab_rounds, tab_export = st.tabs(TABS, key=P + "tab", on_change="rerun")
key = job_key(config)


def render_result(result) -> None:  # noqa: ANN001
    c = st.columns(4)
    c[0].metric("Features", f"{result.schedule[0]} → {result.schedule[-1]}")
    c[1].metric("Rounds", len(result.schedule))
    c[2].metric("Selectors", len(result.runs))
    c[3].metric(
        "Source",
        "cache" if result.cached else "new",
        help=f"computed in {duration(result.seconds)} with {result.workers} worker(s)",
    )
    for e in result.errors:
        st.error(e)
    for w in sorted({w for r in result.runs.values() for w in r.warnings} - {note}):
        st.warning(w, icon=":material/info:")
    st.markdown(reading(result))
    c1, c2 = st.columns(2)
    c1.plotly_chart(viz.rfe_error_curves(result), key="rfe_err")
    if result.true_features is not None:
        c2.plotly_chart(viz.rfe_precision_curves(result), key="rfe_prec")
    c1, c2 = st.columns(2)
    c1.plotly_chart(viz.rfe_time_bars(result), key="rfe_time")
    c2.plotly_chart(viz.rfe_kept_features(result), key="rfe_kept")
    st.dataframe(pd.DataFrame(result.final_table()).drop(columns=["selector"]), hide_index=True, key="rfe_final")


with tab_results:
    result = cached_result(config)
    job = jobs().get(key)
    if result is not None:
        render_result(result)
    elif job is not None and not job.snapshot().done:
        show_job(key, render_progress, interval=1.5)
    else:
        job_notice(key)
        if st.button("Run selection", type="primary", key=P + "run_btn", icon=":material/play_arrow:"):
            if submit_rfe(config, widget_state(P), plan) is not None:
                st.rerun()
    other_jobs(P, key)

with tab_rounds:
    result = cached_result(config)
    if result is None:
        st.info("Every round of every selector appears here once the run has finished.")
    else:
        st.dataframe(pd.DataFrame(result.rounds_table()), hide_index=True, key="rfe_rounds")

with tab_export:
    result = cached_result(config)
    if result is None:
        st.info("Run the selection first; its figures, tables and a re-runnable JSON bundle can then be exported.")
    else:
        export_section(
            f"chaosmining-rfe-{config.config_hash}",
            lambda: viz.rfe_figures(result),
            result.bundle,
            lambda: {"final": pd.DataFrame(result.final_table()), "rounds": pd.DataFrame(result.rounds_table())},
            key=f"rfe_export_{config.config_hash}",
        )

link.finish()
