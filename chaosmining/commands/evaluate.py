"""``roar``, ``road``, ``blur``, ``sanity`` and ``faithfulness``: evaluating the evaluators from the command line.

Each command builds the same configuration the "Evaluate the evaluators" page builds and calls the same
library function; ``--json`` prints the result's ``summary()``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..bundle import config_from_bundle
from ..config import field_default
from ..errors import ConfigError
from ..evaluation import (
    AGGREGATIONS,
    DISTRACTORS,
    POSTPROCESS,
    SANITY_TESTS,
    BlurConfig,
    FaithfulnessConfig,
    RoadConfig,
    RoarConfig,
    SanityConfig,
    TaskConfig,
    run_blur,
    run_faithfulness,
    run_road,
    run_roar,
    run_sanity,
    task_names,
)
from ..evaluation.common import MethodsConfig
from ..export import write_bundle
from .base import COMMANDS, Command, cache_from_args, comma_list, parse_method_params, through_executor
from .progress import progress

__all__ = ["EVALUATION_COMMANDS"]


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _task_arguments(p: argparse.ArgumentParser, methods: tuple[str, ...], task: str = "toy16") -> None:
    p.add_argument("--task", default=task, help=f"one of {', '.join(task_names())} (default {task})")
    p.add_argument("--distractor", default="dense", choices=DISTRACTORS.names(), help="toy16 only")
    p.add_argument("--n-train", type=int, default=0, help="training examples (0 = the task's default)")
    p.add_argument("--n-test", type=int, default=0, help="test examples (0 = the task's default)")
    p.add_argument("--epochs", type=int, default=0, help="training budget per model (0 = the task's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", type=comma_list, default=list(methods), help="comma-separated methods and controls")
    p.add_argument("--param", action="append", default=[], metavar="METHOD.NAME=VALUE", help="a method parameter")


def _task(a: argparse.Namespace) -> TaskConfig:
    return TaskConfig(
        task=a.task, distractor=a.distractor, n_train=a.n_train, n_test=a.n_test, epochs=a.epochs, seed=a.seed
    )


def _base(a: argparse.Namespace) -> dict[str, Any]:
    params = parse_method_params(a.param)
    return {
        "task": _task(a),
        "methods": tuple(a.methods),
        "method_params": tuple((m, tuple(p.items())) for m, p in params.items()),
    }


# --- per-command arguments and configs ---------------------------------------------------------------


def _roar_arguments(p: argparse.ArgumentParser) -> None:
    _task_arguments(p, field_default(RoarConfig, "methods"))
    p.add_argument(
        "--fractions",
        type=_floats,
        default=[],
        help="fractions removed (kept with --keep); default: a grid dense below the relevant share",
    )
    p.add_argument(
        "--retrain", action=argparse.BooleanOptionalAction, default=True, help="retrain per point (ROAR) or not"
    )
    p.add_argument("--keep", action="store_true", help="KAR: keep the top fraction, remove the rest")
    p.add_argument("--postprocess", default="none", choices=POSTPROCESS.names())
    p.add_argument("--aggregate", default=field_default(RoarConfig, "aggregate"), choices=AGGREGATIONS.names())
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--probe", action="store_true", help="also compute mask statistics and the mask-only probe")


def _roar_config(a: argparse.Namespace) -> RoarConfig:
    return RoarConfig(
        **_base(a),
        fractions=tuple(a.fractions),
        retrain=a.retrain,
        keep=a.keep,
        postprocess=a.postprocess,
        aggregate=a.aggregate,
        repeats=a.repeats,
        probe=a.probe,
    )


def _road_arguments(p: argparse.ArgumentParser) -> None:
    _task_arguments(p, field_default(RoadConfig, "methods"))
    p.add_argument("--fractions", type=_floats, default=[], help="fractions removed (both orders)")
    p.add_argument("--orders", type=comma_list, default=["morf", "lerf"])
    p.add_argument("--imputations", type=comma_list, default=["linear", "mean"])
    p.add_argument("--postprocess", default="none", choices=POSTPROCESS.names())
    p.add_argument("--samples", type=int, default=200, help="test rows per repeat (0 = all)")
    p.add_argument("--repeats", type=int, default=field_default(RoadConfig, "repeats"))
    p.add_argument(
        "--aggregate",
        default=field_default(RoadConfig, "aggregate"),
        choices=AGGREGATIONS.names(),
        help="how a pixel's colour channels (and the sign) make one score",
    )


def _road_config(a: argparse.Namespace) -> RoadConfig:
    return RoadConfig(
        **_base(a),
        fractions=tuple(a.fractions),
        orders=tuple(a.orders),
        imputations=tuple(a.imputations),
        postprocess=a.postprocess,
        samples=a.samples,
        repeats=a.repeats,
        aggregate=a.aggregate,
    )


def _blur_arguments(p: argparse.ArgumentParser) -> None:
    _task_arguments(p, field_default(BlurConfig, "methods"), task="vision")
    p.add_argument("--fractions", type=_floats, default=[])
    p.add_argument("--posts", type=comma_list, default=list(field_default(BlurConfig, "posts")))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--retrain", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--road", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--road-samples",
        type=int,
        default=field_default(BlurConfig, "road_samples"),
        help="test rows of the ROAD part (0 = all)",
    )


def _blur_config(a: argparse.Namespace) -> BlurConfig:
    return BlurConfig(
        **_base(a),
        fractions=tuple(a.fractions),
        posts=tuple(a.posts),
        repeats=a.repeats,
        retrain=a.retrain,
        road=a.road,
        road_samples=a.road_samples,
    )


def _sanity_arguments(p: argparse.ArgumentParser) -> None:
    _task_arguments(p, field_default(SanityConfig, "methods"))
    p.add_argument("--test", default="cascading", choices=SANITY_TESTS.names())
    p.add_argument("--samples", type=int, default=64, help="test rows whose maps are compared")
    p.add_argument("--label-samples", type=int, default=500, help="training rows of the label test")
    p.add_argument("--memorise", type=float, default=20.0, help="training budget multiplier for permuted labels")
    p.add_argument(
        "--true-scale",
        type=float,
        default=field_default(SanityConfig, "true_scale"),
        help="training budget multiplier of the label test's models on true labels",
    )


def _sanity_config(a: argparse.Namespace) -> SanityConfig:
    return SanityConfig(
        **_base(a),
        test=a.test,
        samples=a.samples,
        label_samples=a.label_samples,
        memorise=a.memorise,
        true_scale=a.true_scale,
    )


def _faith_arguments(p: argparse.ArgumentParser) -> None:
    _task_arguments(p, field_default(FaithfulnessConfig, "methods"))
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--sens-samples", type=int, default=50)
    p.add_argument("--subsets", type=int, default=100)
    p.add_argument("--n-values", type=_ints, default=[])


def _faith_config(a: argparse.Namespace) -> FaithfulnessConfig:
    return FaithfulnessConfig(
        **_base(a),
        samples=a.samples,
        steps=a.steps,
        sens_samples=a.sens_samples,
        subsets=a.subsets,
        n_values=tuple(a.n_values),
    )


# --- rendering ---------------------------------------------------------------------------------------


def _header(out: dict[str, Any]) -> list[str]:
    t = out["task"]
    return [
        f"task {t['task']} ({t['display']}): {t['score_name']} {t['base_score']:.3f} unmodified, chance {t['chance']:.2f}",
        f"budget: {t['budget']}",
    ]


def _curve_lines(curves: dict[str, list[dict[str, float]]], x: str = "fraction") -> list[str]:
    lines = []
    for name, points in curves.items():
        cells = "  ".join(f"{p[x]:g}: {p['score']:.3f}±{p['spread']:.3f}" for p in points)
        lines.append(f"  {name:<28}{cells}")
    return lines


def _render_roar(out: dict[str, Any]) -> str:
    kind = "KAR (fraction kept)" if out["keep"] else "ROAR (fraction removed)"
    lines = _header(out) + [f"{kind}, {'retrained' if out['retrain'] else 'no retraining'}:"]
    lines += _curve_lines(out["methods"])
    if out["retrain"]:
        lines.append("no retraining (the original model on the same modified test sets):")
        lines += _curve_lines({k: c["points"] for k, c in out["no_retrain"].items()})
    if out.get("retrain_seconds"):
        lines.append(f"{out['n_retrains']} retrainings, {out['retrain_seconds']:.2f} s each on average")
    lines.append(f"{'cached' if out['cached'] else 'computed'} in {out['seconds']:.1f} s")
    return "\n".join(lines)


def _render_road(out: dict[str, Any]) -> str:
    lines = _header(out)
    for imp, orders in out["curves"].items():
        for o, cs in orders.items():
            lines.append(f"{o.upper()} with {imp} imputation (fraction removed):")
            lines += _curve_lines({k: c["points"] for k, c in cs.items()})
        if out["consistency"].get(imp) is not None:
            lines.append(f"  MoRF/LeRF ranking agreement (Spearman): {out['consistency'][imp]:.2f}")
    return "\n".join(lines)


def _render_blur(out: dict[str, Any]) -> str:
    lines = _header(out) + ["ROAR (fraction removed):"]
    lines += _curve_lines(out["methods"])
    for o, cs in out["road"].items():
        lines.append(f"ROAD {o.upper()} (noisy linear imputation):")
        lines += _curve_lines({k: c["points"] for k, c in cs.items()})
    lines.append("mask statistics (per fraction): boundary ratio / components / coverage / mask-only probe")
    for k, st in out["mask_stats"].items():
        cells = "  ".join(
            f"{f:g}: {st.get('boundary_ratio', [float('nan')] * 99)[i]:.2f}/{st.get('components', [float('nan')] * 99)[i]:.1f}/"
            f"{st['coverage'][i]:.2f}/{out['probe'][k][i]:.2f}"
            for i, f in enumerate(out["fractions"])
        )
        lines.append(f"  {k:<28}{cells}")
    return "\n".join(lines)


def _render_sanity(out: dict[str, Any]) -> str:
    lines = _header(out) + [f"sanity test: {out['test']}; similarity to the reference map (mean over samples):"]
    metrics = out["metrics"]
    lines.append(f"  {'method':<24}{'step':<34}" + "".join(f"{m:>14}" for m in metrics))
    for m, steps in out["methods"].items():
        for s, by in steps.items():
            lines.append(f"  {m:<24}{s[:33]:<34}" + "".join(f"{by[k]:>14.3f}" for k in metrics))
    for k, v in out["info"].items():
        if not isinstance(v, list):
            lines.append(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")
    return "\n".join(lines)


def _render_faith(out: dict[str, Any]) -> str:
    lines = _header(out) + [f"  {'estimator':<28}{'deletion AUC':>14}{'insertion AUC':>15}  Sensitivity-n (n: r)"]
    for k, v in out["auc"].items():
        sens = out["sensitivity_n"].get(k)
        cells = "  ".join(f"{p['fraction']:g}: {p['score']:.2f}" for p in sens["points"]) if sens else ""
        lines.append(f"  {k:<28}{v['deletion_auc']:>14.3f}{v['insertion_auc']:>15.3f}  {cells}")
    return "\n".join(lines)


# --- one table drives the five commands --------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationCommand:
    name: str
    help: str
    config_type: type[MethodsConfig]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    config: Callable[[argparse.Namespace], MethodsConfig]
    run: Callable[..., Any]
    render: Callable[[dict[str, Any]], str]


EVALUATION_COMMANDS = (
    EvaluationCommand(
        "roar",
        "ROAR/KAR: remove (or keep) the top-ranked units, retrain, and score; with random and oracle baselines.",
        RoarConfig,
        _roar_arguments,
        _roar_config,
        run_roar,
        _render_roar,
    ),
    EvaluationCommand(
        "road",
        "ROAD: noisy linear vs mean imputation, most- and least-relevant-first, without retraining.",
        RoadConfig,
        _road_arguments,
        _road_config,
        run_road,
        _render_road,
    ),
    EvaluationCommand(
        "blur",
        "The blur bias: raw vs max-filtered vs Gaussian-blurred maps under ROAR and ROAD, mask blurriness and leakage.",
        BlurConfig,
        _blur_arguments,
        _blur_config,
        run_blur,
        _render_blur,
    ),
    EvaluationCommand(
        "sanity",
        "Sanity checks: cascading/independent parameter randomisation, permuted labels, random logit.",
        SanityConfig,
        _sanity_arguments,
        _sanity_config,
        run_sanity,
        _render_sanity,
    ),
    EvaluationCommand(
        "faithfulness",
        "Deletion and insertion AUC and Sensitivity-n, without retraining.",
        FaithfulnessConfig,
        _faith_arguments,
        _faith_config,
        run_faithfulness,
        _render_faith,
    ),
)


def _figures(result: Any) -> dict[str, Any]:
    from ..viz import evaluation_figures

    return evaluation_figures(result)


def _finish(result: Any, a: argparse.Namespace) -> dict[str, Any]:
    if a.export:
        write_bundle(
            a.export, _figures(result), result.bundle(), {"table": pd.DataFrame(result.table())}, a.export_formats
        )
    return result.summary()


def _check_device(a: argparse.Namespace) -> None:
    """The evaluation tasks retrain small models many times on the CPU; a GPU request is refused, not ignored."""
    if a.device not in ("auto", "cpu"):
        raise ConfigError(
            "The '--device' argument of the evaluation commands must be 'auto' or 'cpu' (their small models are "
            f"retrained many times on the CPU). Got {a.device!r} instead."
        )


def _make(spec: EvaluationCommand) -> Command:
    def run(a: argparse.Namespace) -> dict[str, Any]:
        _check_device(a)
        config, cache = spec.config(a), cache_from_args(a)
        with progress(a, label=spec.name) as report:
            result = through_executor(spec.name, a)(config, cache=cache, device="cpu", report=report)
        return _finish(result, a)

    def rerun(bundle: dict[str, Any], a: argparse.Namespace) -> dict[str, Any]:
        _check_device(a)
        cfg = bundle.get("config")
        if not isinstance(cfg, dict):
            raise ConfigError(
                f"The bundle's 'config' must be an object for a {spec.name!r} bundle. Got {cfg!r} instead."
            )
        config, cache = config_from_bundle(spec.config_type.from_dict, cfg, spec.name), cache_from_args(a)
        with progress(a, label=spec.name) as report:
            result = through_executor(spec.name, a)(config, cache=cache, device="cpu", report=report)
        return _finish(result, a)

    return Command(spec.name, spec.help, spec.add_arguments, run, _with_failures(spec.render), rerun)


def _with_failures(render: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
    """``render`` followed by an 'n/a' row per estimator that failed (it has no curve; the others scored)."""

    def rendered(out: dict[str, Any]) -> str:
        text = render(out)
        rows = [f"  {k:<28}{'n/a':>6}  {msg}" for k, msg in (out.get("errors") or {}).items()]
        return "\n".join([text, "failed (no scores):", *rows]) if rows else text

    return rendered


for _spec in EVALUATION_COMMANDS:
    COMMANDS.register(_spec.name, _make(_spec))
