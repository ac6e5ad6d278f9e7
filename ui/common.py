"""Page set-up, cached resources, job progress panels, parameter widgets and the export section."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from chaosmining import native
from chaosmining.attribution import METHODS, ParamSpec
from chaosmining.cache import Cache
from chaosmining.errors import ChaosMiningError
from chaosmining.export import export_bundle, find_browser
from chaosmining.jobs import JobManager, JobSnapshot, get_job_manager
from chaosmining.runtime import configure_threads, device_info

__all__ = [
    "setup_page",
    "init_defaults",
    "get_cache",
    "jobs",
    "persist",
    "param_widget",
    "method_params_widgets",
    "show_job",
    "export_section",
    "device_badge",
    "fmt",
    "PageRuns",
    "widget_state",
    "restore_widgets",
    "other_jobs",
    "remember_job",
    "result_or_run",
    "precision_select",
]


def setup_page(title: str, icon: str = ":material/insights:") -> None:
    _through_app_navigation()
    st.set_page_config(page_title=f"{title} - ChaosMining Explorer", page_icon=icon, layout="wide")
    configure_threads()
    native.prepare_in_background()  # a fresh machine compiles the CPU training step while the user reads


def _through_app_navigation() -> None:
    """Run every page through app.py's ``st.navigation``, also on a fresh server's first visit by a page url.

    Until some session has called ``st.navigation``, Streamlit treats ``pages/`` as an old-style multipage
    folder: a first visit to ``/Vision`` runs that page on its own, with the home page listed as "app" and
    without app.py's titles and icons. Streamlit notes that mode in a class attribute, which
    ``st.navigation`` clears; here a page that finds it still set clears it and reruns, so the rerun goes
    through app.py and lands on the same page.
    """
    try:  # Streamlit internals (pinned 1.67): without them the page simply runs as Streamlit started it
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


@st.cache_resource
def get_cache() -> Cache:
    cache = Cache()
    cache.sweep()
    return cache


def jobs() -> JobManager:
    return get_job_manager()


_PAGE_RUNS: dict[str, PageRuns] = {}


@st.cache_resource(max_entries=64, show_spinner=False)
def _load_result(name: str, key: str, config_json: str, eval_json: str) -> Any:
    runs = _PAGE_RUNS[name]
    return runs.run(
        runs.config_type.from_dict(json.loads(config_json)),
        runs.eval_type.from_dict(json.loads(eval_json)),
        cache=get_cache(),
    )


@dataclass(frozen=True)
class PageRuns:
    """One page's runs: load a cached result once per server process, or train it in a background job.

    ``run(config, ev, *, cache, device=..., report=..., should_stop=...)`` is the library's entry point
    (``run_symbolic``, ``run_vision``, ``run_audio``); its results live under ``result_kind`` at
    ``result_key(config, ev)``, and the job of a configuration is ``"<name>:<result key>"``. ``prefix`` is
    the page's widget-key prefix: the session's jobs are listed under ``prefix + "jobs"``. Trained models
    live under ``model_kind`` at ``config.config_hash`` (``None`` where the page does not ask).
    """

    name: str
    run: Callable[..., Any]
    config_type: Any
    eval_type: Any
    result_kind: str
    result_key: Callable[[Any, Any], str]
    describe: Callable[[Any], str]
    prefix: str
    model_kind: str | None = None

    def __post_init__(self) -> None:
        _PAGE_RUNS[self.name] = self

    def job_key(self, config: Any, ev: Any) -> str:
        return f"{self.name}:{self.result_key(config, ev)}"

    def model_cached(self, config: Any) -> bool:
        """Whether the trained model of ``config`` is in the cache (only attributions left to compute)."""
        return self.model_kind is not None and get_cache().has(self.model_kind, config.config_hash)

    def cached_result(self, config: Any, ev: Any) -> Any | None:
        """The result if the cache (or the shipped assets) hold it, else ``None``; errors shown with st.error."""
        key = self.result_key(config, ev)
        if not get_cache().has(self.result_kind, key):
            return None
        try:
            return _load_result(self.name, key, json.dumps(config.to_dict()), json.dumps(ev.to_dict()))
        except ChaosMiningError as exc:
            st.error(str(exc))
            return None

    def submit(self, config: Any, ev: Any, device: str, widgets: dict[str, Any], **payload: Any) -> str:
        """Train and evaluate in a background job, deduplicated by the cache key; returns the job key."""
        cache = get_cache()

        def work(ctx: Any) -> Any:
            return self.run(config, ev, cache=cache, device=device, report=ctx.report, should_stop=ctx.should_stop)

        key = self.job_key(config, ev)
        jobs().submit(
            key,
            work,
            kind=self.name,
            description=self.describe(config),
            payload={"epochs": config.train.epochs, **payload, "widgets": widgets},
        )
        remember_job(self.prefix, key)
        return key


def persist(*prefixes: str) -> None:
    """Keep widget values whose keys start with ``prefixes`` when the user visits another page.

    Streamlit forgets a widget's state when the widget is not drawn; re-assigning the values at the
    top of the page keeps them (the documented work-around).
    """
    for k in list(st.session_state.keys()):
        if isinstance(k, str) and k.startswith(prefixes) and not k.endswith(("_btn", "_button")):
            try:
                st.session_state[k] = st.session_state[k]
            except st.errors.StreamlitAPIException:  # buttons and forms cannot be set
                pass


def init_defaults(defaults: Mapping[str, Any]) -> None:
    """Give widgets their defaults through session state (once), so that values set by the user,
    by a reset or by "show its settings" are never fought by a ``value=`` argument."""
    for k, v in defaults.items():
        st.session_state.setdefault(k, v)


def param_widget(spec: ParamSpec, key: str, container: Any = st) -> Any:
    """A widget for one :class:`ParamSpec`, with its bounds and default."""
    init_defaults({key: spec.default})
    if spec.kind == "int":
        lo = int(spec.low) if spec.low is not None else None
        hi = int(spec.high) if spec.high is not None else None
        return container.number_input(spec.name, min_value=lo, max_value=hi, step=1, key=key, help=spec.help)
    if spec.kind == "float":
        return container.number_input(
            spec.name, min_value=spec.low, max_value=spec.high, key=key, help=spec.help, format="%g"
        )
    if spec.kind == "bool":
        return container.checkbox(spec.name, key=key, help=spec.help)
    return container.selectbox(spec.name, spec.choices, key=key, help=spec.help)


def precision_select(container: Any, prefix: str) -> str:
    """The trainer's number format (:data:`chaosmining.training.PRECISIONS`), under key ``prefix + "precision"``."""
    from chaosmining.training import PRECISIONS

    return container.selectbox(
        "Precision",
        PRECISIONS.names(),
        format_func=lambda p: PRECISIONS.get(p).display_name,
        key=prefix + "precision",
        help=" ".join(f"{PRECISIONS.get(n).display_name}: {PRECISIONS.get(n).description}" for n in PRECISIONS.names()),
    )


def method_params_widgets(methods: list[str], prefix: str) -> dict[str, dict[str, Any]]:
    """Sidebar widgets for the parameters of the chosen methods, built from the registry."""
    out: dict[str, dict[str, Any]] = {}
    for m in methods:
        spec = METHODS.get(m)
        if not spec.params:
            continue
        with st.sidebar.expander(f"{spec.display_name} settings"):
            out[m] = {p.name: param_widget(p, f"{prefix}_param_{m}_{p.name}") for p in spec.params}
    return out


def fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def learning_warning(result: Any) -> bool:
    """Say, before any map, that a classifier at chance has not learned (``result.learning_note``).

    Returns whether the model learned, so a page can tone down what follows.
    """
    note = getattr(result, "learning_note", None)
    if note:
        st.warning(f"**The model has not learned.** {note}", icon=":material/warning:")
    return note is None


def device_badge() -> str:
    info = device_info()
    if info.cuda_available:
        return f"GPU in use: {info.gpu_name} (torch {info.torch_version})"
    return (
        f"CPU ({info.threads} torch thread(s); no GPU found), torch {info.torch_version}; "
        f"symbolic MLP trainer: {info.cpu_trainer}"
    )


def show_job(
    key: str,
    render_progress: Callable[[JobSnapshot], None],
    *,
    interval: float = 1.0,
    on_done: Callable[[JobSnapshot], None] | None = None,
) -> None:
    """Poll the job ``key`` and draw its progress with a Stop button; rerun the page when it ends."""

    @st.fragment(run_every=interval)
    def _panel() -> None:
        job = jobs().get(key)
        if job is None:
            return
        snap = job.snapshot()
        if snap.done:
            if on_done:
                on_done(snap)
            st.rerun()
        cols = st.columns([5, 1])
        cols[0].caption(f"{snap.description} - running for {snap.elapsed:.0f} s")
        if cols[1].button("Stop", key=f"stop_{snap.id}", type="secondary", icon=":material/stop_circle:"):
            job.stop()
            st.toast("Stopping at the next epoch...")
        render_progress(snap)

    _panel()


def export_section(
    name: str,
    figures: Callable[[], Mapping[str, go.Figure]],
    bundle: Callable[[], dict[str, Any]],
    tables: Callable[[], Mapping[str, pd.DataFrame]] | None = None,
    key: str = "export",
    extra_files: Callable[[], Mapping[str, bytes]] | None = None,
) -> None:
    """Prepare a ZIP of every figure (PNG, SVG, HTML), its CSV, tables and the JSON bundle."""
    st.caption(
        "Every figure as PNG, SVG and interactive HTML, the numbers behind each as CSV, and a JSON bundle "
        "that `python -m chaosmining rerun bundle.json` re-runs."
        + ("" if find_browser() else " No Chromium was found, so PNG/SVG will be skipped.")
    )
    state_key = f"{key}_zip"
    if st.button("Prepare export", key=f"{key}_btn", icon=":material/package_2:"):
        with st.spinner("Rendering figures..."):
            t = time.perf_counter()
            try:
                data, names = export_bundle(
                    figures(),
                    bundle(),
                    tables() if tables else None,
                    extra_files=extra_files() if extra_files else None,
                )
            except ChaosMiningError as exc:
                st.error(str(exc))
                return
            st.session_state[state_key] = (data, names, time.perf_counter() - t)
    if state_key in st.session_state:
        data, names, secs = st.session_state[state_key]
        st.download_button(
            "Download ZIP",
            data,
            file_name=f"{name}.zip",
            mime="application/zip",
            key=f"{key}_dl",
            icon=":material/download:",
        )
        st.caption(
            f"{len(names)} files, {len(data) / 2**20:.1f} MiB, prepared in {secs:.1f} s: "
            + ", ".join(names[:12])
            + (" ..." if len(names) > 12 else "")
        )


def widget_state(prefix: str) -> dict[str, Any]:
    """The page's widget values (keys starting with ``prefix``), kept with a job to restore its settings."""
    return {
        k: v
        for k, v in st.session_state.items()
        if isinstance(k, str)
        and k.startswith(prefix)
        and not k.endswith(("_btn", "_button"))
        and not k.startswith(prefix + "jobs")
    }


def restore_widgets(state: dict[str, Any]) -> None:
    """Put a job's widget values back (a button callback, so before the widgets are drawn)."""
    for k, v in state.items():
        st.session_state[k] = v


def remember_job(prefix: str, key: str) -> None:
    """List job ``key`` among this session's jobs of the page with widget prefix ``prefix`` (see :func:`other_jobs`)."""
    mine = st.session_state.setdefault(prefix + "jobs", [])
    if key not in mine:
        mine.append(key)


def other_jobs(prefix: str, current: str | None, render_progress: Callable[[JobSnapshot], None] | None = None) -> None:
    """Jobs this session started for other settings keep running: list them, each with its settings one click away."""
    for other in st.session_state.get(prefix + "jobs", []):
        j = jobs().get(other)
        if j is None or other == current or j.snapshot().done:
            continue
        with st.container(border=True):
            st.write(f"Still running another configuration: {j.description}")
            st.button(
                "Show its settings",
                key=f"{prefix}restore_{j.id}_btn",
                on_click=restore_widgets,
                args=(j.payload.get("widgets", {}),),
            )
            if render_progress is not None:
                show_job(other, render_progress, interval=2.0)


def result_or_run(
    runs: PageRuns,
    config: Any,
    ev: Any,
    device: str,
    *,
    render_result: Callable[[Any], None],
    render_progress: Callable[[JobSnapshot], None],
    plan: str,
    have_model: bool,
    warnings: Sequence[str] = (),
) -> Any | None:
    """A modality page's main panel: the cached result, else the running job's progress, else the plan and a button.

    ``plan`` says what a run will do; the button reads "Evaluate" when the trained model is cached
    (``have_model``), else "Train". Jobs this session started for other settings are listed below.
    Returns the result (``None`` until there is one).
    """
    key = runs.job_key(config, ev)
    result = runs.cached_result(config, ev)
    job = jobs().get(key)
    if result is not None:
        render_result(result)
    elif job is not None and not job.snapshot().done:
        show_job(key, render_progress)
    else:
        if job is not None and job.status == "failed":
            st.error(job.error)
        elif job is not None and job.status == "cancelled":
            st.info(f"The run was stopped: {job.error}")
        for w in warnings:
            st.warning(w)
        st.info(plan)
        label = "Evaluate" if have_model else "Train"
        if st.button(label, type="primary", key=runs.prefix + "train_btn", icon=":material/play_arrow:"):
            runs.submit(config, ev, device, widget_state(runs.prefix))
            st.rerun()
    other_jobs(runs.prefix, key, render_progress)
    return result
