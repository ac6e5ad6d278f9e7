"""Evaluate the evaluators: ROAR/KAR, ROAD, the blur bias, sanity checks and faithfulness curves."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from chaosmining import viz
from chaosmining.config import field_default
from chaosmining.data.formulas import FORMULAS, PAPER_FORMULAS
from chaosmining.errors import ChaosMiningError
from chaosmining.evaluation import (
    DISTRACTORS,
    IMPUTERS,
    POSTPROCESS,
    SANITY_TESTS,
    SIMILARITIES,
    TASKS,
    BlurConfig,
    FaithfulnessConfig,
    RoadConfig,
    RoarConfig,
    SanityConfig,
    TaskConfig,
    estimator_label,
    estimator_names,
)
from chaosmining.evaluation.estimators import CONTROLS
from chaosmining.evaluation.sanity import DEFAULT_SANITY_METHODS
from chaosmining.evaluation.tasks import MODALITY_METHODS, preflight_notes
from ui import links
from ui.common import init_defaults, method_params_widgets, persist, setup_page
from ui.evaluation import conclude, export, parse_fractions, parse_numbers, section

setup_page("Evaluate the evaluators", ":material/rule:")
persist("ev_")
P = "ev_"
TOY_METHODS = ("saliency", "input_x_gradient", "oracle", "anti_oracle", "random")
DEFAULT_METHODS = ["saliency", "integrated_gradients", "random", "oracle"]
TABS = ["16-d example", "ROAR / KAR", "ROAD", "Blur bias", "Sanity checks", "Faithfulness"]


def _estimators(controls: bool = True) -> list[str]:
    """Every estimator of any modality: a link is read before the task decides which apply (the page filters)."""
    names = dict.fromkeys(m for modality in MODALITY_METHODS for m in estimator_names(modality))
    return [m for m in names if controls or m not in CONTROLS]


LINK = {  # the settings a shared link carries (ui/links.py), with the widgets' bounds and choices
    "toy_distractor": links.one_of(DISTRACTORS.names),
    "toy_repeats": links.integer(1, 20),
    "task": links.one_of(TASKS.names),
    "formula": links.one_of(FORMULAS.names),
    "epochs": links.integer(0, 10_000),
    "seed": links.integer(0, 2**31 - 1),
    "methods": links.some_of(_estimators),
    **links.method_param_fields(_estimators(controls=False)),
    "roar_fractions": links.text(500),
    "roar_keep": links.flag(),
    "roar_retrain": links.flag(),
    "roar_post": links.one_of(POSTPROCESS.names),
    "roar_repeats": links.integer(1, 10),
    "roar_probe": links.flag(),
    "road_fractions": links.text(500),
    "road_imputations": links.some_of(IMPUTERS.names),
    "road_samples": links.integer(10, 5000),
    "road_repeats": links.integer(1, 10),
    "blur_method": links.one_of(lambda: _estimators(controls=False)),
    "blur_fractions": links.text(500),
    "blur_repeats": links.integer(1, 10),
    "sanity_test": links.one_of(SANITY_TESTS.names),
    "sanity_methods": links.some_of(lambda: _estimators(controls=False)),
    "sanity_samples": links.integer(2, 2000),
    "faith_samples": links.integer(10, 5000),
    "faith_steps": links.integer(2, 200),
    "faith_sens_samples": links.integer(2, 5000),
    "faith_subsets": links.integer(3, 10_000),
    "faith_n_values": links.text(500),
    "tab": links.tab(TABS),
}

st.title("Evaluate the evaluators")
st.caption(
    "Do the tests that rank attribution methods measure what they claim? Remove-and-retrain (ROAR, KAR), "
    "ROAD's debiased removal, the blur bias of removal benchmarks, the sanity checks of Adebayo et al., and "
    "faithfulness curves, each with the baselines (random ranking, ground-truth oracle) that make it readable."
)

init_defaults(
    {
        P + "toy_distractor": "dense",
        P + "toy_repeats": 3,
        P + "task": "vision",
        P + "formula": "7",
        P + "epochs": 0,
        P + "seed": 0,
        P + "methods": DEFAULT_METHODS,
        P + "roar_fractions": "",
        P + "roar_keep": False,
        P + "roar_retrain": True,
        P + "roar_post": "none",
        P + "roar_repeats": 1,
        P + "roar_probe": False,
        P + "road_fractions": "",
        P + "road_imputations": ["linear", "mean"],
        P + "road_samples": 200,
        P + "road_repeats": field_default(RoadConfig, "repeats"),  # the CLI's: one cache entry
        P + "blur_method": "saliency",
        P + "blur_fractions": "0.05, 0.1, 0.3",
        P + "blur_repeats": 1,
        P + "sanity_test": "cascading",
        P + "sanity_samples": 64,
        P + "faith_samples": 200,
        P + "faith_steps": 16,
        P + "faith_sens_samples": field_default(FaithfulnessConfig, "sens_samples"),
        P + "faith_subsets": field_default(FaithfulnessConfig, "subsets"),
        P + "faith_n_values": "",
    }
)
link = links.sync_query_params(P, LINK)


def _show(fig: Any, key: str, container: Any = st) -> None:
    container.plotly_chart(fig, key=key)


# ---- sidebar: the task and estimators of every section below the 16-d example ----------------------
sb = st.sidebar
sb.header("Task")
task_kind = sb.selectbox(
    "Task",
    TASKS.names(),
    format_func=lambda t: TASKS.get(t).display_name,
    key=P + "task",
    help="Data with a known ground truth and a model to explain; ROAR retrains this model many times.",
)
if TASKS.get(task_kind).argument:
    formula = sb.selectbox(
        "Formula", FORMULAS.names(), format_func=lambda i: f"{i}: {PAPER_FORMULAS[int(i)][1]}", key=P + "formula"
    )
    task_name = f"{task_kind}:{formula}"
else:
    task_name = task_kind
epochs = sb.number_input(
    "Training budget (epochs; 0 = the task's default)",
    0,
    10_000,
    key=P + "epochs",
    help="The budget of every (re)training. It confounds ROAR: an under-trained model loses accuracy on any masked data.",
)
seed = sb.number_input("Seed", 0, 2**31 - 1, key=P + "seed")
modality = TASKS.get(task_kind).modality
options = estimator_names(modality)
st.session_state[P + "methods"] = [m for m in st.session_state[P + "methods"] if m in options] or ["saliency", "random"]
sb.header("Estimators")
methods = sb.multiselect(
    "Methods and controls",
    options,
    format_func=estimator_label,
    key=P + "methods",
    help="Attribution methods, the random ranking and the ground-truth oracle (controls rank without the model).",
)
method_params = method_params_widgets([m for m in methods if m not in CONTROLS], P)

try:
    task = TaskConfig(task=task_name, epochs=epochs, seed=seed)
except ChaosMiningError as exc:
    st.error(str(exc))
    st.stop()

# Pre-flight: what the hook-based methods will compute on this task's architecture, before any run.
for method, note, fatal in preflight_notes(task, [*methods, *st.session_state.get(P + "sanity_methods", [])]):
    (st.error if fatal else st.warning)(f"{estimator_label(method)}: {note}", icon=":material/info:")

tabs = st.tabs(TABS, key=P + "tab", on_change="rerun")

# ---- 1. the 16-d example ----------------------------------------------------------------------------
with tabs[0]:
    st.markdown(
        "**Why ROAR retrains.** x = a z/10 + d η + ε/10 with 4 informative dimensions (a = 1 on 0-3), "
        "y = 1(z > 0), fitted by least squares (Hooker et al.). The least-squares weights (Saliency of the linear "
        "model) rank the informative dimensions first. The **anti-oracle** removes only *uninformative* dimensions: "
        "without retraining accuracy still drops, because those dimensions are suppressors the model uses to cancel "
        "the distractor η, so removal without retraining calls useless features important. After retraining it "
        "stays flat."
    )
    c1, c2 = st.columns(2)
    distractor = c1.selectbox(
        "Distractor d",
        DISTRACTORS.names(),
        format_func=lambda d: f"{d}: {DISTRACTORS.get(d)}",
        key=P + "toy_distractor",
    )
    repeats = c2.number_input("Repeats (new data each)", 1, 20, key=P + "toy_repeats")
    toy_task = TaskConfig(task="toy16", distractor=distractor)
    toy = {keep: RoarConfig(task=toy_task, methods=TOY_METHODS, keep=keep, repeats=repeats) for keep in (False, True)}
    results: dict[bool, Any] = {}
    for keep, cfg in toy.items():
        results[keep] = section(
            "roar",
            cfg,
            lambda r: None,
            description=f"16-d example, d {distractor}, {'KAR' if keep else 'ROAR'}",
            estimate="Least squares in closed form: a few seconds.",
            auto=True,
            slot=f"toy_{'kar' if keep else 'roar'}",
        )
    if results[False] is not None and results[True] is not None:
        roar_res, kar_res = results[False], results[True]
        c1, c2, c3 = st.columns(3)
        _show(viz.roar_figure(roar_res), "toy_roar", c1)
        _show(viz.roar_no_retrain_figure(roar_res), "toy_noretrain", c2)
        _show(viz.roar_figure(kar_res), "toy_kar", c3)
        st.markdown("**Reading.** " + roar_res.reading())
        anti_rt, anti_nr = roar_res.curves.get("anti_oracle"), roar_res.no_retrain.get("anti_oracle")
        if anti_rt is not None and anti_nr is not None:
            st.markdown(
                f"Removing the uninformative dimensions: accuracy {anti_nr.score[-2]:.2f} without retraining against "
                f"{anti_rt.score[-2]:.2f} with retraining at {roar_res.fractions[-2]:g} removed."
                + (
                    " With d = 0 there are no suppressors and the two agree."
                    if distractor == "zero"
                    else " With d = 1 keeping only the informative dimensions (KAR) fails: they cannot be de-noised "
                    "without the others."
                    if distractor == "one"
                    else ""
                )
            )
        with st.expander("Numbers and export"):
            st.dataframe(pd.DataFrame(roar_res.table() + kar_res.table()), hide_index=True, key="toy_table")
            export("toy16", roar_res)
            export("toy16-kar", kar_res)

# ---- 2. ROAR / KAR ----------------------------------------------------------------------------------
with tabs[1]:
    st.markdown(
        "Remove (ROAR) or keep (KAR) the top-ranked fraction of every input, replacing the rest by the training "
        "mean, **retrain a fresh model** and score it. ROAR: a lower curve is a better ranking; KAR: higher. The "
        "default fractions are dense below the share of relevant units, where good curves saturate."
    )
    c = st.columns(6)
    fractions_text = c[0].text_input("Fractions (blank = auto)", key=P + "roar_fractions")
    keep = c[1].checkbox("KAR (keep)", key=P + "roar_keep")
    retrain = c[2].checkbox("Retrain", key=P + "roar_retrain")
    post = c[3].selectbox(
        "Post-processing",
        POSTPROCESS.names(),
        key=P + "roar_post",
        disabled=modality == "tabular",
        help="Model-agnostic blur of the maps before ranking (not of the controls).",
    )
    roar_repeats = c[4].number_input("Repeats", 1, 10, key=P + "roar_repeats")
    probe = c[5].checkbox(
        "Mask probe",
        key=P + "roar_probe",
        help="Also measure the removal masks (roughness, pieces, share of the ground truth) and fit a probe that "
        "predicts the label from the mask alone (first repeat): when the mask gives the label away, ROAR measures "
        "the mask, not the ranking.",
    )
    try:
        cfg = RoarConfig.create(
            task,
            methods,
            method_params,
            fractions=parse_fractions(fractions_text),
            keep=keep,
            retrain=retrain,
            postprocess=post if modality != "tabular" else "none",
            repeats=roar_repeats,
            probe=probe,
        )
    except ChaosMiningError as exc:
        st.error(str(exc))
    else:

        def render_roar(r: Any) -> None:
            st.caption(
                f"Training budget per retraining: {r.task['budget']}."
                + (f" {r.n_retrains} retrainings, {r.retrain_seconds:.1f} s each." if r.retrain_seconds else "")
            )
            c1, c2 = st.columns(2)
            _show(viz.roar_figure(r), "roar_main", c1)
            if r.config.retrain:
                _show(viz.roar_no_retrain_figure(r), "roar_noretrain", c2)
            if r.probe:
                c1, c2 = st.columns(2)
                _show(viz.mask_stats_figure(r, "probe"), "roar_probe", c1)
                _show(viz.mask_stats_figure(r, "boundary_ratio"), "roar_boundary", c2)
            conclude("roar", r)

        n_fr = len(cfg.fractions) or 5
        section(
            "roar",
            cfg,
            render_roar,
            description=f"{cfg.variant.upper()} on {task_name}",
            estimate=f"About {len(methods) * n_fr * roar_repeats if retrain else 0} retrainings of the task's model "
            "(seconds each on 2 cores for the default tasks).",
        )

# ---- 3. ROAD ----------------------------------------------------------------------------------------
with tabs[2]:
    st.markdown(
        "No retraining: removed units are filled by **noisy linear imputation** (images: the 8-neighbour mean solved "
        "jointly; audio: along time; tabular: a conditional regression) so the inputs stay close to the data, and the "
        "original model is scored. Both orders are the fraction *removed*: most relevant first (MoRF, lower is "
        "better) and least relevant first (LeRF, higher is better). Mean imputation is shown beside it."
    )
    c = st.columns(4)
    road_fractions = c[0].text_input("Fractions removed (blank = auto)", key=P + "road_fractions")
    imputations = c[1].multiselect(
        "Imputations", IMPUTERS.names(), format_func=lambda i: IMPUTERS.get(i).display_name, key=P + "road_imputations"
    )
    road_samples = c[2].number_input("Test rows", 10, 5000, key=P + "road_samples")
    road_repeats = c[3].number_input("Repeats", 1, 10, key=P + "road_repeats", help="Re-draw rows and noise.")
    try:
        rcfg = RoadConfig.create(
            task,
            methods,
            method_params,
            fractions=parse_fractions(road_fractions),
            imputations=tuple(imputations),
            samples=road_samples,
            repeats=road_repeats,
        )
    except ChaosMiningError as exc:
        st.error(str(exc))
    else:

        def render_road(r: Any) -> None:
            for imp in r.curves:
                c1, c2 = st.columns(2)
                for col, order in zip((c1, c2), ("morf", "lerf")):
                    if order in r.curves[imp]:
                        _show(viz.road_figure(r, imp, order), f"road_{imp}_{order}", col)
            conclude("road", r)

        section(
            "road",
            rcfg,
            render_road,
            description=f"ROAD on {task_name}",
            estimate="No retraining: forward passes and (for images) one sparse solve per image and fraction.",
        )

# ---- 4. the blur bias ------------------------------------------------------------------------------
with tabs[3]:
    st.markdown(
        "Blurring a map (3x3 maximum filter, Gaussian sigma 1; along time for audio) knows nothing about the model, "
        "so it cannot add information about it (Song et al.). If it still improves ROAR or ROAD, the benchmark rewards "
        "blurry masks. The masks' roughness (boundary ratio: 1 is as rough as random), their number of pieces, and a "
        "linear probe that predicts the label **from the mask alone** show why."
    )
    if modality == "tabular":
        st.info("The blur bias needs neighbouring units: choose the vision or audio task in the sidebar.")
    else:
        c = st.columns(3)
        blur_method = c[0].selectbox(
            "Method to blur",
            [m for m in options if m not in CONTROLS],
            format_func=estimator_label,
            key=P + "blur_method",
        )
        blur_fractions = c[1].text_input("Fractions removed", key=P + "blur_fractions")
        blur_repeats = c[2].number_input("Repeats", 1, 10, key=P + "blur_repeats")
        try:
            bcfg = BlurConfig.create(
                task,
                (blur_method, "random", "oracle"),
                method_params,
                fractions=parse_fractions(blur_fractions),
                repeats=blur_repeats,
            )
        except ChaosMiningError as exc:
            st.error(str(exc))
        else:

            def render_blur(r: Any) -> None:
                c1, c2 = st.columns(2)
                _show(viz.blur_roar_figure(r), "blur_roar", c1)
                if r.road:
                    _show(viz.blur_road_figure(r, "morf"), "blur_road", c2)
                c1, c2, c3 = st.columns(3)
                _show(viz.mask_stats_figure(r, "boundary_ratio"), "blur_boundary", c1)
                _show(viz.mask_stats_figure(r, "components"), "blur_components", c2)
                _show(viz.mask_stats_figure(r, "probe"), "blur_probe", c3)
                conclude(
                    "blur",
                    r,
                    lambda: st.dataframe(
                        pd.DataFrame(r.mask_table()).drop(columns=["key"]), hide_index=True, key="blur_masks"
                    ),
                )

            n_fr = len(bcfg.fractions) or 5
            section(
                "blur",
                bcfg,
                render_blur,
                description=f"blur bias of {blur_method} on {task_name}",
                estimate=f"About {7 * n_fr * blur_repeats} retrainings (raw, max, Gaussian for the method and for random, "
                "plus the oracle), then ROAD on 200 test images.",
            )

# ---- 5. sanity checks -------------------------------------------------------------------------------
with tabs[4]:
    st.markdown(
        "Do the maps depend on the model? **Cascading**: re-draw the weights from the top layer down; "
        "**independent**: one layer at a time; **labels**: a model trained on permuted labels until it memorises them, "
        "beside a second true-label model (another seed) as the control; **random logit**: the map of another class. "
        "A method passes when its map changes (similarity near 0). Signed Spearman is the primary metric (the verdict); SSIM and HOG (images) are shown beside it; "
        "the absolute Spearman stays high from the input's structure alone."
    )
    sanity_options = [m for m in options if m not in CONTROLS]
    init_defaults({P + "sanity_methods": [m for m in DEFAULT_SANITY_METHODS if m in sanity_options]})
    st.session_state[P + "sanity_methods"] = [m for m in st.session_state[P + "sanity_methods"] if m in sanity_options]
    c = st.columns([2, 3, 1])
    test = c[0].selectbox(
        "Test",
        SANITY_TESTS.names(),
        format_func=lambda t: f"{t}: {SANITY_TESTS.get(t).description}",
        key=P + "sanity_test",
    )
    sanity_methods = c[1].multiselect("Methods", sanity_options, format_func=estimator_label, key=P + "sanity_methods")
    samples = c[2].number_input("Test rows", 2, 2000, key=P + "sanity_samples")
    try:
        scfg = SanityConfig.create(task, sanity_methods, method_params, test=test, samples=samples)
    except ChaosMiningError as exc:
        st.error(str(exc))
    else:

        def render_sanity(r: Any) -> None:
            cols = st.columns(2)
            for i, metric in enumerate(r.metrics):
                _show(viz.sanity_figure(r, metric), f"sanity_{metric}", cols[i % 2])
            if r.info:
                st.caption(
                    "; ".join(
                        f"{k.replace('_', ' ')}: {v:.3f}" if isinstance(v, float) else f"{k.replace('_', ' ')}: {v}"
                        for k, v in r.info.items()
                    )
                )
            conclude("sanity", r)

        section(
            "sanity",
            scfg,
            render_sanity,
            description=f"sanity check '{test}' on {task_name}",
            estimate="Attributions of randomised copies of the model; the label test trains three models first.",
        )
        st.caption("Metrics: " + ", ".join(SIMILARITIES.get(m).display_name for m in SIMILARITIES.names()))

# ---- 6. faithfulness --------------------------------------------------------------------------------
with tabs[5]:
    st.markdown(
        "Without retraining: **deletion** removes units in the estimator's order and tracks how much of the "
        "prediction survives (lower area is better); **insertion** adds them back to a blurred copy (higher is "
        "better). **Sensitivity-n** correlates the sum of the attributions over random subsets of n units with "
        "the output's drop when those units are zeroed: Input x Gradient and Integrated Gradients give 1 for every "
        "n on a linear model."
    )
    c = st.columns(5)
    faith_samples = c[0].number_input("Test rows", 10, 5000, key=P + "faith_samples")
    steps = c[1].number_input("Steps", 2, 200, key=P + "faith_steps")
    sens_samples = c[2].number_input(
        "Sensitivity-n rows", 2, 5000, key=P + "faith_sens_samples", help="Test rows of the Sensitivity-n part."
    )
    subsets = c[3].number_input(
        "Subsets per n", 3, 10000, key=P + "faith_subsets", help="Random subsets of n units drawn per row and n."
    )
    n_text = c[4].text_input(
        "n values (blank = auto)",
        key=P + "faith_n_values",
        help="Subset sizes; blank: powers of two up to 80% of the units.",
    )
    try:
        fcfg = FaithfulnessConfig.create(
            task,
            methods,
            method_params,
            samples=faith_samples,
            steps=steps,
            sens_samples=sens_samples,
            subsets=subsets,
            n_values=parse_numbers(n_text, "n_values", int, "1, 4, 16"),
        )
    except ChaosMiningError as exc:
        st.error(str(exc))
    else:

        def render_faith(r: Any) -> None:
            c1, c2, c3 = st.columns(3)
            _show(viz.deletion_insertion_figure(r, "deletion"), "faith_deletion", c1)
            _show(viz.deletion_insertion_figure(r, "insertion"), "faith_insertion", c2)
            _show(viz.sensitivity_n_figure(r), "faith_sens", c3)
            conclude("faithfulness", r)

        section(
            "faithfulness",
            fcfg,
            render_faith,
            description=f"deletion, insertion and Sensitivity-n on {task_name}",
            estimate="Forward passes only: seconds to a minute.",
        )

link.finish()
