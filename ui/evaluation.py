"""Cached wrappers, jobs and section rendering for the "Evaluate the evaluators" page (kept out of ``pages/``).

One table (:data:`EVALUATIONS`) maps each section to its configuration type, its library run function
and its cache kind; the page builds configurations from widgets and calls :func:`section`, which shows
the cached result, the running job's progress or a Run button.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from chaosmining import viz
from chaosmining.errors import ChaosMiningError
from chaosmining.evaluation import (
    BlurConfig,
    FaithfulnessConfig,
    RoadConfig,
    RoarConfig,
    SanityConfig,
    blur_bias,
    faithfulness,
    road,
    roar,
    run_blur,
    run_faithfulness,
    run_road,
    run_roar,
    run_sanity,
    sanity,
)
from chaosmining.evaluation.common import MethodsConfig
from chaosmining.evaluation.estimators import estimator_label
from chaosmining.runs import RunSpec
from ui.common import export_section, get_cache, job_notice, jobs, show_job, submit_run

__all__ = [
    "EVALUATIONS",
    "EvaluationPage",
    "section",
    "cached_result",
    "job_key",
    "parse_fractions",
    "conclude",
    "export",
]


@dataclass(frozen=True)
class EvaluationPage:
    """One section of the page: what it runs and where its results are cached."""

    name: str
    title: str
    config_type: type[MethodsConfig]
    run: Callable[..., Any]
    kind: str


EVALUATIONS: dict[str, EvaluationPage] = {
    e.name: e
    for e in (
        EvaluationPage("roar", "ROAR / KAR", RoarConfig, run_roar, roar.KIND),
        EvaluationPage("road", "ROAD", RoadConfig, run_road, road.KIND),
        EvaluationPage("blur", "Blur bias", BlurConfig, run_blur, blur_bias.KIND),
        EvaluationPage("sanity", "Sanity checks", SanityConfig, run_sanity, sanity.KIND),
        EvaluationPage("faithfulness", "Faithfulness", FaithfulnessConfig, run_faithfulness, faithfulness.KIND),
    )
}


def job_key(name: str, config: MethodsConfig) -> str:
    return RunSpec(name, config).key


@st.cache_resource(max_entries=64, show_spinner=False)
def _load(name: str, key: str, config_json: str) -> Any:
    spec = EVALUATIONS[name]
    return spec.run(spec.config_type.from_dict(json.loads(config_json)), cache=get_cache())


def cached_result(name: str, config: MethodsConfig) -> Any | None:
    """The result if the cache holds it (loaded once per server process), else ``None``."""
    spec = EVALUATIONS[name]
    if not get_cache().has(spec.kind, config.config_hash):
        return None
    try:
        return _load(name, config.config_hash, json.dumps(config.to_dict()))
    except ChaosMiningError as exc:
        st.error(str(exc))
        return None


def submit(name: str, config: MethodsConfig, description: str) -> str | None:
    """Queue evaluation ``name`` (a run kind of :mod:`chaosmining.runs.kinds`) for this session."""
    return submit_run(RunSpec(name, config), "ev_", description=description)


def _progress(snap: Any) -> None:
    done, total = snap.latest("done") or 0, snap.latest("total") or 1
    stage = snap.latest("stage") or "starting"
    st.progress(min(1.0, done / max(total, 1)), text=f"{stage} ({done} of {total} steps)")


def parse_numbers(text: str, name: str, kind: type = float, example: str = "0.05, 0.1, 0.3") -> tuple[Any, ...]:
    """``"0.05, 0.1"`` -> (0.05, 0.1) (``kind`` converts each); empty -> () (the default). Raises a ChaosMiningError."""
    from chaosmining.errors import ConfigError

    try:
        return tuple(kind(t) for t in text.replace(";", ",").split(",") if t.strip())
    except ValueError:
        what = "whole numbers" if kind is int else "numbers"
        raise ConfigError(
            f"The '{name}' setting must be comma-separated {what} such as {example}. Got {text!r} instead."
        ) from None


def parse_fractions(text: str, name: str = "fractions") -> tuple[float, ...]:
    """``"0.05, 0.1"`` -> (0.05, 0.1); empty -> () (the task's default grid). Raises a ChaosMiningError."""
    return parse_numbers(text, name)


def section(
    name: str,
    config: MethodsConfig,
    render: Callable[[Any], None],
    *,
    description: str,
    estimate: str,
    auto: bool = False,
    slot: str | None = None,
) -> Any | None:
    """Show the result of ``config`` (cached), its running job, or a Run button; returns the result.

    With ``auto`` the job starts without a click (the seconds-long 16-d example). ``slot`` names the
    place on the page (widget keys), by default the evaluation's name.
    """
    key = job_key(name, config)
    result = cached_result(name, config)
    job = jobs().get(key)
    if result is not None:
        failure_notices(result)
        render(result)
        return result
    if job is not None and not job.snapshot().done:
        show_job(key, _progress)
        return None
    job_notice(key)
    st.caption(estimate)
    if auto and job is None and jobs().interrupted(key) is None:
        if submit(name, config, description) is not None:
            st.rerun()
    if st.button("Run", type="primary", key=f"ev_{slot or name}_run_btn", icon=":material/play_arrow:"):
        if submit(name, config, description) is not None:
            st.rerun()
    return None


def failure_notices(result: Any) -> None:
    """One notice per estimator whose method failed in ``result`` (it has no curve; the others are scored)."""
    for key, message in getattr(result, "errors", {}).items():
        method, _, post = key.partition("+")
        label = estimator_label(method) + (f" ({post})" if post else "")
        st.warning(f"**{label} could not be scored.** {message}", icon=":material/block:")


def export(name: str, result: Any) -> None:
    """The export section of one result: every figure, the table and the re-runnable bundle."""
    export_section(
        f"chaosmining-{name}-{result.config.config_hash}",
        lambda: viz.evaluation_figures(result),
        result.bundle,
        lambda: {"table": pd.DataFrame(result.table())},
        key=f"ev_export_{name}_{result.config.config_hash}",
    )


def conclude(name: str, result: Any, extra: Callable[[], None] | None = None) -> None:
    """The plain-language reading of a result, then its numbers and export folded away."""
    st.markdown("**Reading.** " + result.reading())
    with st.expander("Numbers and export"):
        if extra is not None:
            extra()
        st.dataframe(pd.DataFrame(result.table()), hide_index=True, key=f"ev_{name}_table")
        export(name, result)
