"""Cached wrappers and job submission for the Symbolic page (kept out of ``pages/``)."""

from __future__ import annotations

from typing import Any

from chaosmining.attribution import METHODS, preflight
from chaosmining.errors import ChaosMiningError
from chaosmining.experiments.symbolic import EvalConfig, SymbolicConfig, SymbolicResult, _result_key
from chaosmining.models.mlp import build_mlp
from chaosmining.sweep import SweepConfig, SweepResult, run_sweep
from chaosmining.sweep import load_sweep as _load_sweep
from ui.common import PageRuns, get_cache, jobs, orchestrate, restore_widgets, widget_state

__all__ = [
    "result_key",
    "cached_result",
    "preflight_notes",
    "submit_training",
    "submit_sweep",
    "sweep_key",
    "load_sweep",
    "widget_state",
    "restore_widgets",
    "reading",
    "symbolic_bundle",
]


def result_key(config: SymbolicConfig, ev: EvalConfig) -> str:
    return _result_key(config, ev)


RUNS = PageRuns("symbolic", "sym_")
cached_result = RUNS.cached_result


def preflight_notes(config: SymbolicConfig, ev: EvalConfig) -> list[str]:
    """What each selected method's pre-flight check says about this architecture, before a run."""
    import torch

    model = build_mlp(config.data.n_features, config.model)
    example = torch.zeros(1, config.data.n_features)
    notes = []
    for m in ev.methods:
        try:
            notes += [f"**{METHODS.get(m).display_name}**: {n}" for n in preflight(model, m, example)]
        except ChaosMiningError as exc:
            notes.append(f"**{METHODS.get(m).display_name}**: {exc}")
    return notes


def submit_training(config: SymbolicConfig, ev: EvalConfig, device: str, widgets: dict[str, Any]) -> str | None:
    """Queue the training and evaluation of ``config``; the payload carries FPrec's random floor."""
    return RUNS.submit(
        config, ev, device, widgets, floor=len(config.data.formula_obj.relevant) / config.data.n_features
    )


def sweep_key(sweep: SweepConfig) -> str:
    return sweep.config_hash


def submit_sweep(sweep: SweepConfig, device: str) -> str | None:
    """Start the sweep as an orchestration: its cells queue as this session's runs, beside other users' runs."""
    cache = get_cache()

    def work(ctx: Any) -> SweepResult:
        return run_sweep(
            sweep, cache=cache, device=device, submit=ctx.submit, report=ctx.report, should_stop=ctx.should_stop
        )

    return orchestrate(
        f"sweep:{sweep_key(sweep)}",
        work,
        kind="sweep",
        description=f"sweep of {sweep.factor} over {len(sweep.values)} values x {len(sweep.seeds)} seed(s)",
        prefix="sym_sweep",
    )


def load_sweep(sweep: SweepConfig) -> SweepResult | None:
    """The finished sweep: from this process's job, else from the cache."""
    job = jobs().get(f"sweep:{sweep_key(sweep)}")
    if job is not None and job.status == "done":
        return job.result()
    return _load_sweep(sweep, get_cache())


def reading(result: SymbolicResult) -> str:
    """A plain-language reading of the scores."""
    ranked = sorted(
        ((s.fprec, m) for m, s in result.scores.items() if not METHODS.get(m).is_control and not s.error), reverse=True
    )
    if not ranked:
        return ""
    best_f, best = ranked[0]
    floor = result.random_fprec_expected
    k = len(result.relevant)
    text = (
        f"**Reading.** With {len(result.feature_names) - k} noise features, a random ranking puts a relevant feature "
        f"among the top {k} with probability {floor:.3f}. **{METHODS.get(best).display_name}** does best: on average "
        f"{best_f:.0%} of its top-{k} features are relevant."
    )
    if result.prediction_uscore < 0.5:
        text += (
            f" The model itself predicts poorly (prediction UScore {result.prediction_uscore:.2f}); the paper finds "
            "attribution quality tracks the model's accuracy, so train longer or reduce the noise."
        )
    return text


def symbolic_bundle(result: SymbolicResult) -> dict[str, Any]:
    return result.bundle()
