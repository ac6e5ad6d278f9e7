"""Page set-up, cached resources, job progress panels, parameter widgets and the export section."""

from __future__ import annotations

import json
import threading
import uuid
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
from chaosmining.runs import RUN_KINDS, Executor, RunRefused, RunSnapshot, RunSpec, get_executor
from chaosmining.runtime import configure_threads, device_info
from ui.links import begin_run, note_defaults

__all__ = [
    "setup_page",
    "init_defaults",
    "get_cache",
    "jobs",
    "session_id",
    "submit_run",
    "orchestrate",
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
    "job_notice",
    "watch_interval",
    "precision_select",
]


def setup_page(title: str, icon: str = ":material/insights:") -> None:
    _through_app_navigation()
    begin_run()  # links compare settings with this run's defaults (ui/links.py)
    st.set_page_config(page_title=f"{title} - ChaosMining Explorer", page_icon=icon, layout="wide")
    configure_threads()
    native.prepare_in_background()  # a fresh machine compiles the CPU training step while the user reads


def _through_app_navigation() -> None:
    """Run every page through app.py's ``st.navigation``, also on a fresh server's first visit by a page url.

    Streamlit treats a ``pages/`` folder beside the entry script as its legacy multipage layout until
    some session calls ``st.navigation`` ("as soon as any session of your app executes the
    st.navigation command, your app will ignore the pages/ directory", its documentation says).
    Streamlit 1.67 has no setting that turns the detection off (``client.showSidebarNavigation`` only
    hides the legacy menu), so a fresh server's first visit to ``/Vision`` would run that page on its
    own, with the home page listed as "app" and without app.py's titles and icons. Streamlit keeps the
    mode in a class attribute, which ``st.navigation`` clears; a page that finds it still set clears
    it and reruns, so the rerun goes through app.py and lands on the same page. The attribute is
    internal: tests/test_packaging.py fails the day a Streamlit upgrade changes it.
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


@st.cache_data(ttl=30, show_spinner=False, max_entries=4)
def cache_summary(root: str) -> dict[str, dict[str, int]]:
    """The cache's entries and bytes per kind, recounted at most every 30 s (the home page shows it to every
    visitor; walking a class's cache on each visit would slow every page down)."""
    return Cache(root).summary()


def jobs() -> Executor:
    """The server's executor, shared by every browser session (``CHAOSMINING_EXECUTOR``: local or ray)."""
    return get_executor(get_cache())


def session_id() -> str:
    """This browser session's id: the queue is fair across these."""
    return st.session_state.setdefault("_chaosmining_session", uuid.uuid4().hex[:12])


def submit_run(
    spec: RunSpec,
    prefix: str,
    widgets: dict[str, Any] | None = None,
    *,
    description: str | None = None,
    **payload: Any,
) -> str | None:
    """Queue ``spec`` for this session and list it among the page's runs; a refusal is shown with st.error.

    Returns the run key, or ``None`` when the executor refused the run (too big, too many queued).
    """
    try:
        handle = jobs().submit(
            spec, session=session_id(), payload={**payload, "widgets": widgets or {}}, description=description
        )
    except RunRefused as exc:
        st.error(str(exc))
        return None
    remember_job(prefix, handle.key)
    return handle.key


def orchestrate(
    key: str, fn: Callable[[Any], Any], *, kind: str, description: str, prefix: str, **payload: Any
) -> str | None:
    """Start a driver-side orchestration (a sweep, the four noise conditions) whose child runs queue for this session."""
    try:
        jobs().orchestrate(key, fn, kind=kind, description=description, session=session_id(), payload=payload)
    except RunRefused as exc:
        st.error(str(exc))
        return None
    remember_job(prefix, key)
    return key


@st.cache_resource(max_entries=64, show_spinner=False)
def _load_result(name: str, key: str, config_json: str, eval_json: str) -> Any:
    kind = RUN_KINDS.get(name)
    spec = RunSpec(name, kind.config_from(json.loads(config_json)), kind.eval_from(json.loads(eval_json)))
    return kind.load(spec, get_cache())


@dataclass(frozen=True)
class PageRuns:
    """One page's runs: load a cached result once per server process, or queue it on the executor.

    ``name`` is the page's run kind in :data:`chaosmining.runs.RUN_KINDS` (``"symbolic"``, ``"vision"``,
    ``"audio"``): it says how the run is performed, where its result lives and how to describe it. The job
    of a configuration is its run key. ``prefix`` is the page's widget-key prefix: the session's runs are
    listed under ``prefix + "jobs"``. Trained models live under ``model_kind`` at ``config.config_hash``
    (``None`` where the page does not ask).
    """

    name: str
    prefix: str
    model_kind: str | None = None

    def spec(self, config: Any, ev: Any, device: str = "auto") -> RunSpec:
        return RunSpec(self.name, config, ev, device)

    def job_key(self, config: Any, ev: Any) -> str:
        return self.spec(config, ev).key

    def model_cached(self, config: Any) -> bool:
        """Whether the trained model of ``config`` is in the cache (only attributions left to compute)."""
        return self.model_kind is not None and get_cache().has(self.model_kind, config.config_hash)

    def cached_result(self, config: Any, ev: Any) -> Any | None:
        """The result if the cache (or the shipped assets) hold it, else ``None``; errors shown with st.error."""
        kind = RUN_KINDS.get(self.name)
        key = kind.result_key(config, ev)
        if not get_cache().has(kind.result_kind, key):
            return None
        try:
            return _load_result(self.name, key, json.dumps(config.to_dict()), json.dumps(ev.to_dict()))
        except ChaosMiningError as exc:
            st.error(str(exc))
            return None

    def submit(self, config: Any, ev: Any, device: str, widgets: dict[str, Any], **payload: Any) -> str | None:
        """Queue the training and evaluation of ``config`` (deduplicated by its key); returns the run key."""
        return submit_run(self.spec(config, ev, device), self.prefix, widgets, epochs=config.train.epochs, **payload)


# Keys of buttons and download buttons: Streamlit refuses to have their state set, so they are never kept.
_ACTION_SUFFIXES = ("_btn", "_button", "_dl")


def persist(*prefixes: str) -> None:
    """Keep widget values whose keys start with ``prefixes`` when the user visits another page.

    Streamlit forgets a widget's state when the widget is not drawn; re-assigning the values at the
    top of the page keeps them (the documented work-around).
    """
    for k in list(st.session_state.keys()):
        if isinstance(k, str) and k.startswith(prefixes) and not k.endswith(_ACTION_SUFFIXES):
            try:
                st.session_state[k] = st.session_state[k]
            except st.errors.StreamlitAPIException:  # buttons and forms cannot be set
                pass


def init_defaults(defaults: Mapping[str, Any]) -> None:
    """Give widgets their defaults through session state (once), so that values set by the user,
    by a reset or by "show its settings" are never fought by a ``value=`` argument."""
    for k, v in defaults.items():
        st.session_state.setdefault(k, v)
    note_defaults(defaults)


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


def watch_interval(base: float) -> float:
    """How often a progress panel polls: ``base`` seconds, slower when many pages watch runs at once, so
    that a class's open pages do not starve the server (and the runs they watch) of CPU."""
    watchers = sum(len(h.watchers) for h in jobs().active())
    return float(min(5.0, max(base, 0.25 * watchers)))


_LIVE_FIGURES: dict[tuple[str, str], tuple[int, go.Figure]] = {}
_LIVE_LOCK = threading.Lock()


def live_figure(snap: RunSnapshot, name: str, build: Callable[[], go.Figure]) -> go.Figure:
    """Progress figure ``name`` of a running run, built again only when the run has reported something new.

    Shared by every session watching the run (two students with the same settings watch one run), and
    kept for the most recent runs only. Building a Plotly figure costs far more than sending it, so a
    panel polled between two events costs the server almost nothing.
    """
    key = (snap.id, name)
    with _LIVE_LOCK:
        hit = _LIVE_FIGURES.get(key)
    if hit is not None and hit[0] == snap.version:
        return hit[1]
    fig = build()
    with _LIVE_LOCK:
        _LIVE_FIGURES[key] = (snap.version, fig)
        while len(_LIVE_FIGURES) > 64:
            _LIVE_FIGURES.pop(next(iter(_LIVE_FIGURES)))
    return fig


def _queued_caption(snap: RunSnapshot) -> str:
    wait = snap.wait_seconds
    eta = (
        ""
        if wait is None
        else f"; estimated wait {wait / 60:.0f} min"
        if wait >= 90
        else f"; estimated wait {wait:.0f} s"
    )
    return f"{snap.description} - waiting in the queue, position {snap.position}{eta}"


def show_job(
    key: str,
    render_progress: Callable[[RunSnapshot], None],
    *,
    interval: float = 1.0,
    on_done: Callable[[RunSnapshot], None] | None = None,
) -> None:
    """Poll the run ``key`` and draw its progress (its place in the queue while it waits) with a Stop
    button; rerun the page when it ends. Stop detaches this session; the run stops when nobody else waits for it."""

    @st.fragment(run_every=watch_interval(interval))
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
        if snap.status == "queued":
            cols[0].caption(_queued_caption(snap))
        else:
            cols[0].caption(f"{snap.description} - running for {snap.elapsed:.0f} s")
        if cols[1].button("Stop", key=f"stop_{snap.id}", type="secondary", icon=":material/stop_circle:"):
            job.stop(session=session_id())
            st.toast("Stopping at the next epoch..." if snap.status == "running" else "Removed from the queue.")
        if snap.status == "running":
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
    """A download button for a ZIP of every figure (PNG, SVG, HTML), its CSV, tables and the JSON bundle.

    The ZIP is built when the button is clicked (``st.download_button`` with a callable, run on
    Streamlit's download thread), so no user's ZIP waits in session state; the callables given here
    must therefore not draw anything.
    """
    st.caption(
        "Every figure as PNG, SVG and interactive HTML, the numbers behind each as CSV, the tables, and a "
        "`bundle.json` that `chaosmining rerun bundle.json` re-runs; the ZIP is made when you click (a few "
        "seconds per figure with images)."
        + ("" if find_browser() else " No Chromium was found, so PNG/SVG will be skipped.")
    )

    def build_zip() -> bytes:
        data, _ = export_bundle(
            figures(),
            bundle(),
            tables() if tables else None,
            extra_files=extra_files() if extra_files else None,
        )
        return data

    st.download_button(
        "Download ZIP",
        build_zip,
        file_name=f"{name}.zip",
        mime="application/zip",
        key=f"{key}_dl",
        icon=":material/download:",
        on_click="ignore",
    )


def widget_state(prefix: str) -> dict[str, Any]:
    """The page's widget values (keys starting with ``prefix``), kept with a job to restore its settings."""
    return {
        k: v
        for k, v in st.session_state.items()
        if isinstance(k, str)
        and k.startswith(prefix)
        and not k.endswith(_ACTION_SUFFIXES)
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


def other_jobs(prefix: str, current: str | None, render_progress: Callable[[RunSnapshot], None] | None = None) -> None:
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


def job_notice(key: str) -> None:
    """Say how the last run of ``key`` ended when it did not finish: failed, stopped, or interrupted by a
    server restart (the user can press the button again)."""
    job = jobs().get(key)
    if job is not None and job.status == "failed":
        st.error(job.error)
    elif job is not None and job.status == "cancelled":
        st.info(f"The run was stopped: {job.error}")
    elif job is None and (record := jobs().interrupted(key)) is not None:
        st.warning(
            f"An earlier run of these settings was interrupted: {record.get('error')} Press the button to run it again."
        )


def result_or_run(
    runs: PageRuns,
    config: Any,
    ev: Any,
    device: str,
    *,
    render_result: Callable[[Any], None],
    render_progress: Callable[[RunSnapshot], None],
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
        job_notice(key)
        for w in warnings:
            st.warning(w)
        st.info(plan)
        label = "Evaluate" if have_model else "Train"
        if st.button(label, type="primary", key=runs.prefix + "train_btn", icon=":material/play_arrow:"):
            if runs.submit(config, ev, device, widget_state(runs.prefix)) is not None:
                st.rerun()
    other_jobs(runs.prefix, key, render_progress)
    return result
