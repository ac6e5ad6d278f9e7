"""Vision: a foreground on a random or structured background, image classifiers, saliency overlays and boxes."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from chaosmining import viz
from chaosmining.attribution import METHODS
from chaosmining.data.vision import (
    BACKGROUNDS,
    FOREGROUNDS,
    POSITIONS,
    VisionDataConfig,
    condition_code,
    data_warnings,
)
from chaosmining.errors import ChaosMiningError
from chaosmining.experiments.vision import (
    DEFAULT_METHODS,
    PRESETS,
    VisionConfig,
    VisionEvalConfig,
    result_key,
    vision_methods,
    vision_param_defaults,
)
from chaosmining.models.vision import ARCHITECTURES
from chaosmining.sandbox import resolve_user_folder, roots_text
from ui import links
from ui.common import (
    export_section,
    fmt,
    init_defaults,
    job_notice,
    jobs,
    learning_warning,
    method_params_widgets,
    persist,
    result_or_run,
    setup_page,
    show_job,
)
from ui.vision import (
    RUNS,
    availability,
    cached_conditions,
    conditions_key,
    conditions_reading,
    data_problem,
    gallery_images,
    job_key,
    model_cached,
    reading,
    submit_conditions,
)

setup_page("Vision", ":material/image:")
persist("vis_")

P = "vis_"
D = VisionDataConfig()
TABS = ["Gallery", "Scores", "Detail", "What-if: noise conditions", "Export"]
LINK = {  # the settings a shared link carries (ui/links.py), with the widgets' bounds and choices
    "foreground": links.one_of(FOREGROUNDS.names),
    "background": links.one_of(BACKGROUNDS.names),
    "position": links.one_of(POSITIONS.names),
    "data_root": links.path(),
    "preset": links.one_of(PRESETS.names),
    "canvas": links.integer(16, 1024),
    "fg_size": links.integer(4, 1024),
    "model": links.one_of(ARCHITECTURES.names),
    "device": links.one_of(["auto", "cpu", "cuda"]),
    "methods": links.some_of(vision_methods),
    **links.method_param_fields(vision_methods()),
    "target": links.one_of(["predicted", "true"]),
    "seed": links.integer(0, 2**31 - 1),
    "opacity": links.number(0.0, 1.0),
    "shown": links.integer(1, 10_000),
    "tab": links.tab(TABS),
}


def _reset() -> None:
    for k in [k for k in st.session_state if isinstance(k, str) and k.startswith(P)]:
        del st.session_state[k]


def _apply_preset() -> None:
    p = PRESETS.get(st.session_state[P + "preset"])
    st.session_state[P + "canvas"] = p.canvas
    st.session_state[P + "fg_size"] = p.foreground_size


st.title("Vision")
st.caption(
    "Paper section 3.2: a small labelled foreground pasted on a 224-px canvas of random pixels or natural "
    "structure, at a fixed or a random place. A classifier learns the foreground's class; each attribution "
    "method's saliency map should point at the foreground. The box retrieved from the map (red) is compared "
    "with the true box (yellow) by IoU, beside the floor of a random map and the ceiling of a perfect one."
)

# ---- sidebar: every setting, built from the registries ----------------------------------------
init_defaults(
    {
        P + "foreground": D.foreground,
        P + "background": D.background,
        P + "position": D.position,
        P + "data_root": "",
        P + "preset": "demo",
        P + "canvas": PRESETS.get("demo").canvas,
        P + "fg_size": PRESETS.get("demo").foreground_size,
        P + "model": "compact_cnn",
        P + "device": "auto",
        P + "methods": list(DEFAULT_METHODS),
        P + "target": "predicted",
        P + "seed": 0,
        P + "opacity": 0.6,
        P + "shown": 8,
    }
)
link = links.sync_query_params(P, LINK)
sb = st.sidebar
sb.header("Data")
foreground = sb.selectbox(
    "Foreground",
    FOREGROUNDS.names(),
    format_func=lambda n: FOREGROUNDS.get(n).display_name,
    key=P + "foreground",
    help="The labelled patch. Sources marked 'local folder' read data_root and never download.",
)
background = sb.selectbox(
    "Background",
    BACKGROUNDS.names(),
    format_func=lambda n: BACKGROUNDS.get(n).display_name,
    key=P + "background",
)
position = sb.selectbox(
    "Position", POSITIONS.names(), format_func=lambda n: POSITIONS.get(n).display_name, key=P + "position"
)
data_root = sb.text_input(
    "Data root (local folder)",
    key=P + "data_root",
    help="Needed by CIFAR-10, Fashion-MNIST (e.g. /usr/share/datasets/fashion-mnist), Flowers102, the published "
    "ChaosMining images (<root>/<SETTING>/<split>/metadata.csv) and 'Photos from a local folder'. "
    f"A folder under the data roots: {roots_text()}.",
)
c1, c2 = sb.columns(2)
canvas = c1.number_input("Canvas (px)", 16, 1024, step=16, key=P + "canvas")
fg_size = c2.number_input("Foreground (px)", 4, 1024, step=4, key=P + "fg_size")

sb.header("Model and training")
model_name = sb.selectbox(
    "Architecture",
    ARCHITECTURES.names(),
    format_func=lambda n: (
        ARCHITECTURES.get(n).display_name + ("" if ARCHITECTURES.get(n).cpu_friendly else " (GPU recommended)")
    ),
    key=P + "model",
    help="The paper's eight torchvision models train from scratch; on a CPU only the compact CNN finishes in minutes.",
)
preset = sb.selectbox(
    "Preset",
    PRESETS.names(),
    format_func=lambda n: PRESETS.get(n).display_name,
    key=P + "preset",
    on_change=_apply_preset,
    help="Data size, geometry and training. Choosing one resets the canvas and foreground size to its own.",
)
sb.caption(PRESETS.get(preset).description)
device = sb.selectbox("Device", ["auto", "cpu", "cuda"], key=P + "device", help="auto uses CUDA when present.")

sb.header("Attribution")
methods = sb.multiselect(
    "Methods",
    vision_methods(),
    format_func=lambda m: METHODS.get(m).display_name,
    key=P + "methods",
    help="The paper: Saliency, DeepLift, Integrated Gradients (20 steps) and Feature Ablation over a grid of "
    "foreground-sized patches. Every map is scored by |attribution|, so signed and absolute Saliency agree.",
)
for m in methods:  # image-sized defaults where the registry's suit tabular rows
    init_defaults({f"{P}_param_{m}_{k}": v for k, v in vision_param_defaults(m, int(canvas), int(fg_size)).items()})
method_params = method_params_widgets(methods, P)
target = sb.radio(
    "Class to explain",
    ["predicted", "true"],
    key=P + "target",
    horizontal=True,
    help="The paper explains the predicted class.",
)
seed = sb.number_input("Seed", 0, 2**31 - 1, key=P + "seed")
sb.button("Reset to defaults", on_click=_reset, key=P + "reset_btn")

# ---- validate: bad input gets a clear message, the other settings stay ---------------------------
if not methods:
    st.error("The 'methods' setting must name at least one attribution method. Got none instead.")
    st.stop()
try:
    root = resolve_user_folder(data_root, parameter="data root")  # only under the data roots
    config = VisionConfig.from_preset(
        preset,
        model=model_name,
        seed=int(seed),
        foreground=foreground,
        background=background,
        position=position,
        canvas=int(canvas),
        foreground_size=int(fg_size),
        data_root=root,
    )
    ev = VisionEvalConfig.for_preset(preset, methods, params=method_params, target=target)
except ChaosMiningError as exc:
    st.error(str(exc))
    st.stop()

st.markdown(
    f"**Noise condition {condition_code(background, position)}**: "
    f"{FOREGROUNDS.get(foreground).display_name} on {BACKGROUNDS.get(background).display_name}, "
    f"{POSITIONS.get(position).display_name} position; {config.data.canvas}-px canvas, "
    f"{config.data.foreground_size}-px foreground ({config.data.area_fraction:.1%} of the image)."
)
problem = data_problem(config)
if problem:
    st.error(problem)
    st.stop()
try:
    avail = availability(model_name, methods, config.data.canvas)
except ChaosMiningError as exc:
    st.error(str(exc))
    st.stop()
for m, (reason, notes) in avail.items():
    if reason:
        st.warning(
            f"**{METHODS.get(m).display_name} is unavailable for {model_name}.** {reason}", icon=":material/block:"
        )
    for note in notes:
        st.info(note, icon=":material/info:")

tab_gallery, tab_scores, tab_detail, tab_whatif, tab_export = st.tabs(TABS, key=P + "tab", on_change="rerun")


def render_progress(snap: Any) -> None:
    stage = snap.latest("stage") or "starting"
    epoch, total = snap.latest("epoch"), snap.payload.get("epochs", 1)
    done, count = snap.latest("done"), snap.latest("total")
    if stage.startswith("training") and epoch is not None:
        loss = snap.latest("loss")
        st.progress(
            min(1.0, epoch / max(total, 1)),
            text=f"training: epoch {epoch:.1f} / {total}" + (f", loss {loss:.3f}" if loss is not None else ""),
        )
    elif done is not None and count:
        st.progress(min(1.0, done / count), text=f"{stage}: {done} / {count}")
    else:
        st.progress(0.0, text=stage)
    accs = [(e["epoch"], e["val_accuracy"]) for e in snap.events if "val_accuracy" in e]
    if accs:
        st.caption("Validation accuracy by epoch: " + ", ".join(f"{a:.0%}" for _, a in accs))


def render_scores(result: Any) -> None:
    learning_warning(result)
    c = st.columns(5)
    c[0].metric("Accuracy", f"{result.accuracy:.1%}", help=f"chance {result.chance_accuracy:.0%}")
    c[1].metric("Random-map IoU (floor)", fmt(result.random_iou))
    c[2].metric("Perfect-map IoU (ceiling)", fmt(result.perfect_iou))
    c[3].metric("Training time", f"{result.train_seconds:.0f} s", help=f"on {result.device}")
    done_job = jobs().get(job_key(result.config, result.eval))
    c[4].metric(
        "Source",
        "trained now" if done_job is not None and done_job.status == "done" and not done_job.cached else "cache",
        help=f"loaded in {result.seconds:.2f} s",
    )
    if result.cache_note:
        st.warning(result.cache_note)
    for w in result.warnings:
        st.warning(w)
    st.markdown(reading(result))
    c1, c2 = st.columns(2)
    c1.plotly_chart(viz.iou_bars(result), key="vis_iou_bars")
    c2.plotly_chart(viz.box_free_bars(result), key="vis_box_free")
    st.dataframe(pd.DataFrame(result.scores_table()).drop(columns=["method"]), hide_index=True, key="vis_table")
    c1, c2 = st.columns(2)
    c1.plotly_chart(viz.iou_distribution(result), key="vis_iou_dist")
    c2.plotly_chart(viz.training_curve(result.history), key="vis_training")
    st.plotly_chart(viz.confusion_figure(result), key="vis_confusion")


def render_gallery(result: Any) -> None:
    learning_warning(result)
    images = gallery_images(result)
    if images is None:
        return
    shown_methods = [m for m in result.scores if f"map_{m}" in result.arrays]
    c1, c2, c3 = st.columns([2, 2, 1])
    method = c1.selectbox(
        "Saliency map",
        [*shown_methods, None],
        format_func=lambda m: "none (image and true box)" if m is None else viz.method_label(m),
        key=P + "gallery_method",
    )
    opacity = c2.slider("Overlay opacity", 0.0, 1.0, step=0.05, key=P + "opacity")
    if st.session_state.get(P + "shown", 8) > len(images):  # a result with a smaller gallery
        st.session_state[P + "shown"] = len(images)
    shown = c3.number_input("Images", 1, len(images), key=P + "shown") if len(images) > 1 else 1
    st.caption(
        "Yellow: the true foreground box. Red: the box spanning the k most salient pixels of the smoothed map "
        f"(k = {config.data.foreground_size}x{config.data.foreground_size}), as in the paper's Figure 9."
    )
    overlays = viz.gallery_overlays(result, images[: int(shown)], method, opacity)
    names = result.class_names
    a = result.arrays
    captions = []
    for j in range(len(overlays)):
        cap = f"true {names[int(a['labels'][j])]} / predicted {names[int(a['preds'][j])]}"
        if method is not None:
            cap += f" / IoU {float(a[f'iou_{method}'][j]):.2f}"
        captions.append(cap)
    st.image(overlays, caption=captions, width=230)


def render_detail(result: Any) -> None:
    learning_warning(result)
    images = gallery_images(result)
    if images is None:
        return
    if st.session_state.get(P + "detail_index", 0) > len(images) - 1:
        st.session_state[P + "detail_index"] = 0
    j = st.slider("Gallery image", 0, len(images) - 1, key=P + "detail_index") if len(images) > 1 else 0
    opacity = st.session_state.get(P + "opacity", 0.6)
    st.plotly_chart(viz.detail_figure(result, images, int(j), opacity), key="vis_detail")


with tab_gallery:
    have_model = model_cached(config)
    d = config.data
    result = result_or_run(
        RUNS,
        config,
        ev,
        device,
        render_result=render_gallery,
        render_progress=render_progress,
        have_model=have_model,
        warnings=data_warnings(config.data),
        plan=(
            "The trained model is cached; only the attributions need computing "
            f"({ev.samples or d.val_size} validation images, {len(methods)} method(s))."
        )
        if have_model
        else (
            f"This configuration is not in the cache yet. Training {model_name} for {config.train.epochs} epochs "
            f"on {d.train_size} images of {d.canvas} px ({PRESETS.get(preset).display_name}), then attributing "
            f"{ev.samples or d.val_size} validation images."
        ),
    )

with tab_scores:
    if result is not None:
        render_scores(result)
    else:
        st.info("Scores appear here once this configuration is trained and evaluated (see the Gallery tab).")

with tab_detail:
    if result is not None:
        render_detail(result)
    else:
        st.info("Train this configuration first (Gallery tab) to compare every method on one image.")

with tab_whatif:
    st.markdown(
        "The same model, preset and methods under the paper's four noise conditions: random (RB) or structured "
        "(SB) background, fixed (FP) or random (RP) position. Tables 2 and 3 of the paper found fixed positions "
        "easier than random ones and structured backgrounds easier than random pixels."
    )
    conds = cached_conditions(config, ev)
    ready = {c: r for c, r in conds.items() if r is not None}
    ckey = conditions_key(config, ev)
    cjob = jobs().get(ckey)
    st.caption("Cached: " + ", ".join(f"{c} {'yes' if r is not None else 'no'}" for c, r in conds.items()) + ".")
    if cjob is not None and not cjob.snapshot().done:
        show_job(ckey, render_progress, interval=2.0)
    elif len(ready) < len(conds):
        job_notice(ckey)
        if st.button(f"Run the {len(conds) - len(ready)} missing condition(s)", key=P + "conditions_btn"):
            if submit_conditions(config, ev, device) is not None:
                st.rerun()
    if ready:
        st.plotly_chart(viz.conditions_figure(ready), key="vis_conditions")
        st.markdown(conditions_reading(ready))
        rows = []
        for code, r in ready.items():
            row = {"condition": code, "accuracy": r.accuracy, "learned": r.learned, "random-map IoU": r.random_iou}
            row.update({f"{METHODS.get(m).short} IoU": s.iou for m, s in r.scores.items()})
            rows.append(row)
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="vis_conditions_table")

with tab_export:
    if result is None:
        st.info(
            "Train this configuration first; its figures, numbers, images and a re-runnable bundle can then be exported."
        )
    else:

        def _figures() -> dict[str, Any]:
            figs = viz.vision_figures(result)
            images = gallery_images(result)
            if images is not None:
                for m in result.scores:
                    if f"map_{m}" in result.arrays:
                        figs[f"gallery_{m}"] = viz.gallery_figure(result, images[:8], m)
            if len(ready) > 1:
                figs["noise_conditions"] = viz.conditions_figure(ready)
            return figs

        def _images() -> dict[str, bytes]:
            images = gallery_images(result)
            out: dict[str, bytes] = {}
            if images is None:
                return out
            for m in result.scores:
                for j, img in enumerate(viz.gallery_overlays(result, images, m)):
                    out[f"overlay_{m}_{j:03d}.png"] = viz.png_bytes(img)
            return out

        export_section(
            f"chaosmining-vision-{result.condition}-{config.model}",
            _figures,
            result.bundle,
            lambda: {
                "scores": pd.DataFrame(result.scores_table()),
                "per_image": pd.DataFrame(result.per_image_table()),
            },
            key=f"vis_export_{result_key(config, ev)}",
            extra_files=_images,
        )

link.finish()
