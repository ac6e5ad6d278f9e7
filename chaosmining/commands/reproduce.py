"""``reproduce``: regenerate one of the paper's figures or tables, beside its published numbers.

``python -m chaosmining reproduce table2 --scale quick`` expands the target's grid into runs of the run
layer (runs the results store or the cache already has answer at once, so an interrupted reproduction
resumes), prints the table (ours: mean, std and count over seeds and formulas; the paper's value and the difference where it publishes one) and,
with ``--export DIR``, writes the figure (HTML, PNG, SVG), the table and the tidy scores as CSV. The
logic lives in :mod:`chaosmining.reproduce`.
"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from ..errors import ConfigError
from ..export import write_bundle
from ..reproduce import SCALES, TARGETS, reproduce
from .base import COMMANDS, Command, add_batched_option, cache_from_args, comma_list, command_executor
from .progress import progress


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", choices=TARGETS.names(), help="the paper's figure or table to regenerate")
    p.add_argument(
        "--scale",
        choices=list(SCALES),
        default="quick",
        help="; ".join(f"{name}: {words}" for name, words in SCALES.items()) + " (default: quick)",
    )
    p.add_argument("--seeds", type=comma_list, default=None, help="comma-separated seeds (default: the scale's)")
    add_batched_option(p)


def _seeds(a: argparse.Namespace) -> tuple[int, ...] | None:
    if not a.seeds:
        return None
    try:
        return tuple(int(s) for s in a.seeds)
    except ValueError:
        raise ConfigError(
            f"The '--seeds' argument must be comma-separated ints. Got {','.join(a.seeds)!r} instead."
        ) from None


def _run(a: argparse.Namespace) -> dict[str, Any]:
    executor = command_executor(a, cache_from_args(a))
    with progress(a, label=f"reproduce {a.target}") as report:
        rep = reproduce(
            a.target, a.scale, executor=executor, seeds=_seeds(a), device=a.device, report=report, batched=a.batched
        )
    out = rep.summary()
    if a.export:
        written = write_bundle(
            a.export,
            {a.target: rep.figure()},
            rep.bundle(),
            {f"{a.target}_table": rep.table, f"{a.target}_scores": rep.scores},
            a.export_formats,
        )
        out["exported"] = [str(p) for p in written]
    return out


def _numeric(df: pd.DataFrame) -> pd.DataFrame:
    """Columns that hold numbers (and blanks) as floats, so the table prints aligned with '-' for blanks."""
    out = df.copy()
    for col in out.columns:
        try:
            out[col] = pd.to_numeric(out[col])
        except (TypeError, ValueError):
            continue
    return out


def _render(out: dict[str, Any]) -> str:
    lines = [
        out["title"],
        f"scale {out['scale']} ({out['scale_means']})",
        f"reduces: {out['reduces']}",
        f"{out['runs']} runs: {out.get('from_store', 0)} from the store, {out['from_cache']} from the cache, "
        f"{out['trained']} trained, {len(out['failed'])} failed; {out['seconds']:.1f} s",
        f"paper's numbers: {out['paper_numbers']}",
        "",
        _numeric(pd.DataFrame(out["rows"], columns=out["columns"])).to_string(
            index=False, na_rep="-", float_format=lambda v: f"{v:.3f}"
        ),
    ]
    lines += [f"failed: {label}: {error}" for label, error in out["failed"].items()]
    if out.get("exported"):
        lines.append(f"exported {len(out['exported'])} files to {out['exported'][0].rsplit('/', 1)[0]}")
    return "\n".join(lines)


COMMANDS.register(
    "reproduce",
    Command(
        "reproduce",
        "Regenerate one of the paper's figures (4-7) or tables (2-4) at a chosen scale, beside the published numbers.",
        _add_arguments,
        _run,
        _render,
    ),
)
