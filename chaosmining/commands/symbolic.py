"""``symbolic`` and ``sweep`` commands."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from ..bundle import config_from_bundle
from ..data.symbolic import SymbolicDataConfig
from ..errors import ConfigError
from ..experiments.symbolic import DEFAULT_METHODS, EvalConfig, SymbolicConfig, SymbolicResult
from ..export import write_bundle
from ..models.mlp import MLPConfig
from ..sweep import FACTORS, SweepConfig, run_sweep, sweep_from_dict
from ..training import TrainConfig
from .base import (
    COMMANDS,
    Command,
    add_batched_option,
    cache_from_args,
    comma_list,
    command_executor,
    model_rerun,
    parse_method_params,
    through_executor,
)
from .progress import progress

__all__ = ["config_from_args", "eval_from_args"]


def _add_symbolic_arguments(p: argparse.ArgumentParser, formula_required: bool = True) -> None:
    d, m, t = SymbolicDataConfig(), MLPConfig(), TrainConfig()
    p.add_argument(
        "--formula", required=formula_required, default="1", help="paper formula ID 1-15 or an expression over a..j"
    )
    p.add_argument("--noise-features", type=int, default=d.noise_features)
    p.add_argument("--samples", type=int, default=d.samples)
    p.add_argument("--label-noise", type=float, default=d.label_noise)
    p.add_argument("--test-fraction", type=float, default=d.test_fraction)
    p.add_argument("--width", type=int, default=m.width)
    p.add_argument("--depth", type=int, default=m.depth)
    p.add_argument("--dropout", type=float, default=m.dropout)
    p.add_argument("--activation", default=m.activation)
    p.add_argument("--optimizer", default=t.optimizer)
    p.add_argument("--lr", type=float, default=t.lr)
    p.add_argument("--epochs", type=int, default=t.epochs)
    p.add_argument("--batch-size", type=int, default=t.batch_size, help="0 = full batch (the paper)")
    p.add_argument(
        "--precision",
        default=t.precision,
        help="fp32 (the paper) or bf16: bfloat16 products with float32 weights, ~2x faster where native",
    )
    p.add_argument("--methods", type=comma_list, default=list(DEFAULT_METHODS), help="comma-separated method names")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="METHOD.NAME=VALUE",
        help="a method parameter, e.g. integrated_gradients.steps=50",
    )
    p.add_argument("--eval-samples", type=int, default=0, help="test rows to attribute (0 = all)")
    p.add_argument("--seed", type=int, default=0)


def config_from_args(a: argparse.Namespace) -> SymbolicConfig:
    return SymbolicConfig(
        data=SymbolicDataConfig(
            formula=a.formula,
            noise_features=a.noise_features,
            samples=a.samples,
            label_noise=a.label_noise,
            test_fraction=a.test_fraction,
        ),
        model=MLPConfig(width=a.width, depth=a.depth, dropout=a.dropout, activation=a.activation),
        train=TrainConfig(
            optimizer=a.optimizer, lr=a.lr, epochs=a.epochs, batch_size=a.batch_size, precision=a.precision
        ),
        seed=a.seed,
    )


def eval_from_args(a: argparse.Namespace, **kw: Any) -> EvalConfig:
    return EvalConfig.create(a.methods, parse_method_params(a.param), samples=a.eval_samples, **kw)


def _export(result: SymbolicResult, a: argparse.Namespace) -> None:
    from ..viz import symbolic_figures

    write_bundle(
        a.export,
        symbolic_figures(result),
        result.bundle(),
        {"scores": pd.DataFrame(result.scores_table())},
        a.export_formats,
    )


def _run(a: argparse.Namespace) -> dict[str, Any]:
    config, ev = config_from_args(a), eval_from_args(a)
    with progress(a) as report:
        result = through_executor("symbolic", a)(config, ev, cache=cache_from_args(a), device=a.device, report=report)
    if a.export:
        _export(result, a)
    return result.summary()


_rerun = model_rerun("symbolic", "fprec", _export)


def _render(out: dict[str, Any]) -> str:
    lines = [
        f"formula {out['formula']}  relevant features {out['relevant_features']} of {out['n_features']}",
        f"prediction UScore {out['prediction_uscore']:.3f}   test MAE {out['test_mae']:.4f}   "
        f"({'cached' if out['cached'] else 'trained'} on {out['device']}, {out['seconds']:.1f} s)",
        f"{'method':<24}{'FPrec':>8}{'UScore':>9}{'seconds':>10}",
    ]
    errors = out.get("errors", {})
    for m, f in out["fprec"].items():
        if m in errors:  # a method that failed: its row says why, the others are scored
            lines.append(f"{m:<24}{'n/a':>8}  {errors[m]}")
            continue
        u = out["uscore"][m]
        lines.append(f"{m:<24}{f:>8.3f}{'' if u is None else format(u, '.3f'):>9}{out['method_seconds'][m]:>10.3f}")
    lines.append(f"random floor (k/d): {out['random_fprec_expected']:.3f}")
    for m, ws in out.get("warnings", {}).items():
        lines += [f"note ({m}): {w}" for w in ws if w != errors.get(m)]
    return "\n".join(lines)


COMMANDS.register(
    "symbolic",
    Command(
        "symbolic",
        "Train (or load) an MLP on a symbolic formula with noise features and score attribution methods.",
        _add_symbolic_arguments,
        _run,
        _render,
        _rerun,
    ),
)


def _add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--factor", required=True, choices=FACTORS.names())
    p.add_argument("--values", type=comma_list, default=None, help="comma-separated values (default: the paper's grid)")
    p.add_argument("--seeds", type=comma_list, default=["0"], help="comma-separated seeds")
    add_batched_option(p)
    _add_symbolic_arguments(p, formula_required=False)


def _sweep_config(a: argparse.Namespace) -> SweepConfig:
    spec = FACTORS.get(a.factor)
    try:
        values = tuple(spec.parse(v) for v in a.values) if a.values else ()
        seeds = tuple(int(s) for s in a.seeds)
    except ValueError as exc:
        raise ConfigError(
            f"The '--values'/'--seeds' arguments could not be parsed for factor {a.factor!r}: {exc}"
        ) from None
    return SweepConfig(
        base=config_from_args(a),
        factor=a.factor,
        values=values,
        seeds=seeds,
        eval=eval_from_args(a, curve_samples=0, measure_memory=False),
    )


def _run_sweep(a: argparse.Namespace) -> dict[str, Any]:
    config = _sweep_config(a)
    with progress(a, label="sweep cells") as report:
        ex = command_executor(a, cache_from_args(a))
        result = run_sweep(config, executor=ex, device=a.device, report=report, batched=a.batched)
    if a.export:
        from ..viz import sweep_curves

        write_bundle(
            a.export,
            {"sweep_fprec": sweep_curves(result, "fprec"), "sweep_uscore": sweep_curves(result, "uscore")},
            result.bundle(),
            {"cells": pd.DataFrame(result.rows())},
            a.export_formats,
        )
    return result.summary()


def _render_sweep(out: dict[str, Any]) -> str:
    methods = list(out["fprec"])
    lines = [f"{out['factor']:<16}" + "".join(f"{m[:12]:>14}" for m in methods) + f"{'pred UScore':>14}"]
    for i, v in enumerate(out["values"]):
        cells = "".join(
            f"{(out['fprec'][m][i] if out['fprec'][m][i] is not None else float('nan')):>14.3f}" for m in methods
        )
        p = out["prediction_uscore"][i]
        lines.append(f"{str(v):<16}{cells}{(p if p is not None else float('nan')):>14.3f}")
    lines += [f"error: {e}" for e in out["errors"]]
    lines.append(f"{len(out['cells'])} cells in {out['seconds']:.1f} s (values are FPrec means over seeds)")
    return "\n".join(lines)


def _rerun_sweep(bundle: dict[str, Any], a: argparse.Namespace) -> dict[str, Any]:
    config = config_from_bundle(sweep_from_dict, bundle.get("config", {}), "sweep")
    with progress(a, label="sweep cells") as report:
        ex = command_executor(a, cache_from_args(a))
        return run_sweep(
            config, executor=ex, device=a.device, report=report, batched=getattr(a, "batched", None)
        ).summary()


COMMANDS.register(
    "sweep",
    Command(
        "sweep",
        "What-if: vary one factor of the symbolic task (Figure 4) over several seeds.",
        _add_sweep_arguments,
        _run_sweep,
        _render_sweep,
        _rerun_sweep,
    ),
)
