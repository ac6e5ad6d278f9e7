"""``rfe`` command: RFEwNA against classic RFE on a formula, an embedded table or a CSV."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from ..bundle import config_from_bundle
from ..experiments.rfe import (
    DEFAULT_SELECTORS,
    STRATEGIES,
    TASK_KINDS,
    TASK_TYPE_SPECS,
    RFEConfig,
    RFEDataConfig,
    RFEResult,
    rfe_config_from_dict,
)
from ..export import write_bundle
from ..models.mlp import ACTIVATIONS
from ..selection import selector_names
from .base import COMMANDS, Command, cache_from_args, comma_list, parse_method_params, through_executor
from .progress import progress

__all__ = ["rfe_config_from_args"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    kinds = "; ".join(f"{k.name}: {k.help}" for _, k in TASK_KINDS.items())
    p.add_argument("--task", required=True, metavar="KIND:ARG", help=f"what to select features for ({kinds})")
    p.add_argument(
        "--selectors",
        type=comma_list,
        default=list(DEFAULT_SELECTORS),
        help=f"comma-separated selectors (registered: {', '.join(selector_names())})",
    )
    p.add_argument("--noise-features", type=int, default=None, help="noise columns (formula default 150)")
    p.add_argument("--samples", type=int, default=None, help="rows generated (or drawn from a fixed data set; 0 = all)")
    p.add_argument("--label-noise", type=float, default=0.01, help="std of the training-target noise (formula)")
    p.add_argument("--label", default=None, help="label column of a CSV (default TARGET, target, label, class or y)")
    p.add_argument("--no-undersample", action="store_true", help="keep the class balance of a table as it is")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of the training split used for selection")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--drop-rate", type=float, default=0.5, help="share of the features dropped per round (0.5 halves)")
    p.add_argument("--target", type=int, default=0, help="features to keep (0 = as many as there are true ones)")
    p.add_argument("--strategy", choices=STRATEGIES.names(), default="uni")
    p.add_argument("--epochs", type=int, default=None, help="default: 1000 (regression), 500 (classification)")
    p.add_argument("--batch-size", type=int, default=None, help="0 = full batch; default: full (regression), 1000")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument(
        "--precision", default=None, help="fp32 (the paper, default) or bf16: bfloat16 products, float32 weights"
    )
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--depth", type=int, default=None)
    p.add_argument("--activation", choices=ACTIVATIONS.names(), default=None)
    p.add_argument(
        "--param", action="append", default=[], metavar="METHOD.NAME=VALUE", help="e.g. integrated_gradients.steps=50"
    )
    p.add_argument("--seed", type=int, default=0)


def rfe_config_from_args(a: argparse.Namespace) -> RFEConfig:
    data = RFEDataConfig(
        task=a.task,
        noise_features=a.noise_features,
        samples=a.samples,
        label_noise=a.label_noise,
        label=a.label,
        undersample=not a.no_undersample,
        val_fraction=a.val_fraction,
        test_fraction=a.test_fraction,
    )
    spec = TASK_TYPE_SPECS.get(data.task_type)
    model = spec.model.replace(
        **{k: v for k, v in (("width", a.width), ("depth", a.depth), ("activation", a.activation)) if v is not None}
    )
    train = spec.train.replace(
        **{
            k: v
            for k, v in (("epochs", a.epochs), ("batch_size", a.batch_size), ("lr", a.lr), ("precision", a.precision))
            if v is not None
        }
    )
    return RFEConfig(
        data=data,
        selectors=tuple(a.selectors),
        drop_rate=a.drop_rate,
        target=a.target,
        strategy=a.strategy,
        model=model,
        train=train,
        method_params=tuple((m, tuple(p.items())) for m, p in parse_method_params(a.param).items()),
        seed=a.seed,
    )


def _export(result: RFEResult, directory: str, formats: list[str]) -> None:
    from ..viz import rfe_figures

    write_bundle(
        directory,
        rfe_figures(result),
        result.bundle(),
        {"final": pd.DataFrame(result.final_table()), "rounds": pd.DataFrame(result.rounds_table())},
        formats,
    )


def _run(a: argparse.Namespace) -> dict[str, Any]:
    config = rfe_config_from_args(a)
    with progress(a) as report:
        result = through_executor("rfe", a)(config, cache=cache_from_args(a), device=a.device, report=report)
    if a.export:
        _export(result, a.export, a.export_formats)
    return result.summary()


def _rerun(bundle: dict[str, Any], a: argparse.Namespace) -> dict[str, Any]:
    config = config_from_bundle(rfe_config_from_dict, bundle.get("config", {}), "rfe")
    with progress(a) as report:
        result = through_executor("rfe", a)(config, cache=cache_from_args(a), device=a.device, report=report)
    if a.export:
        _export(result, a.export, a.export_formats)
    return result.summary()


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _render(out: dict[str, Any]) -> str:
    lines = [
        out["title"],
        f"schedule {' -> '.join(str(n) for n in out['schedule'])} features, {out['strategy']}-module, "
        f"error = test {out['error_metric']}",
        f"{'selector':<24}{'precision':>10}{'recall':>8}{'error':>9}{'seconds':>10}  kept",
    ]
    for s, r in out["selectors"].items():
        if r["error_message"]:
            lines.append(f"{s:<24}failed: {r['error_message']}")
            continue
        kept = ", ".join(r["kept_names"][:12]) + (" ..." if len(r["kept"]) > 12 else "")
        lines.append(
            f"{s:<24}{_fmt(r['final_precision']):>10}{_fmt(r['final_recall'], 2):>8}{_fmt(r['final_error'], 4):>9}"
            f"{r['seconds']:>10.1f}  {kept}"
        )
    lines.append("* = a true feature" if out["true_features"] is not None else "no ground truth for this task")
    took = f"{out['seconds']:.1f} s with {out['workers']} worker(s)"
    lines.append(f"loaded from the cache (computing it took {took})" if out["cached"] else f"computed in {took}")
    lines += [f"note: {n}" for n in out["notes"]]
    for s, r in out["selectors"].items():
        lines += [f"note ({s}): {w}" for w in r["warnings"]]
    return "\n".join(lines)


COMMANDS.register(
    "rfe",
    Command(
        "rfe",
        "Feature selection: RFEwNA (attribution-driven RFE on an MLP) against scikit-learn RFE (paper section 4).",
        _add_arguments,
        _run,
        _render,
        _rerun,
    ),
)
