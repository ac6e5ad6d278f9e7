"""What every CLI command is built from: the :class:`Command` record, the :data:`COMMANDS` registry,
the shared options and the argument helpers.

Command modules import from here and register themselves; :mod:`chaosmining.cli` imports the
commands package and builds the parser. Nothing here imports :mod:`chaosmining.cli`, so there is no
import circle.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..bundle import config_from_bundle
from ..cache import Cache
from ..errors import ConfigError
from ..registry import Registry
from ..runs import EXECUTORS, RUN_KINDS, Executor, RunSpec, execute, get_executor
from .progress import progress

__all__ = [
    "Command",
    "COMMANDS",
    "Parser",
    "comma_list",
    "parse_method_params",
    "cache_from_args",
    "rerun_model_bundle",
    "add_common_options",
    "add_run_options",
    "add_batched_option",
]


@dataclass(frozen=True)
class Command:
    """A CLI command: arguments, the run function, an optional re-run from a JSON bundle.

    ``run`` returns the result's summary (printed as JSON with ``--json``, through ``render``
    otherwise), or an ``int`` exit status for a command that prints nothing itself (``app``).
    ``work`` commands get :func:`add_common_options` and :func:`add_run_options`; ``forwards_unknown``
    commands receive the arguments they do not know as ``args.forwarded`` instead of an error.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any] | int]
    render: Callable[[dict[str, Any]], str] | None = None
    rerun: Callable[[dict[str, Any], argparse.Namespace], dict[str, Any]] | None = None
    work: bool = True
    forwards_unknown: bool = False


COMMANDS: Registry[Command] = Registry("command")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, exit status 2."""

    def error(self, message: str) -> None:
        self.exit(2, f"error: {message}\n")


def comma_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (the type of every comma-separated option)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_method_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--param METHOD.NAME=VALUE`` items as ``{method: {name: value}}`` (ints and floats cast)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        try:
            lhs, value = item.split("=", 1)
            method, name = lhs.split(".", 1)
        except ValueError:
            raise ConfigError(
                f"The '--param' argument must look like METHOD.NAME=VALUE. Got {item!r} instead."
            ) from None
        for cast in (int, float):
            try:
                value = cast(value)  # type: ignore[assignment]
                break
            except ValueError:
                continue
        out.setdefault(method, {})[name] = value
    return out


def cache_from_args(a: argparse.Namespace) -> Cache | None:
    """The cache that ``--cache-dir`` names, or ``None`` for the default (see :func:`chaosmining.cache.default_cache_root`)."""
    return Cache(a.cache_dir) if a.cache_dir else None


def rerun_model_bundle(
    bundle: dict[str, Any],
    a: argparse.Namespace,
    *,
    task: str,
    score: str,
    export: Callable[[Any, argparse.Namespace], None],
    report: Any = None,
) -> dict[str, Any]:
    """Re-run a model + evaluation bundle of run kind ``task`` through the run layer and report how far its
    ``score`` (by method) moved from the bundle's."""
    kind = RUN_KINDS.get(task)
    run = through_executor(task, a)
    cfg = bundle.get("config", {})
    config = config_from_bundle(kind.config_from, cfg.get("model", {}), task, "config.model")
    ev = config_from_bundle(kind.eval_from, cfg.get("eval", {}), task, "config.eval")
    result = run(config, ev, cache=cache_from_args(a), device=a.device, report=report)
    out = result.summary()
    old, new = bundle.get("results", {}).get(score), out[score]
    old = old if isinstance(old, dict) else {}  # the bundle's own numbers are only compared, never trusted
    diffs = [
        abs(new[m] - v)
        for m, v in old.items()
        if new.get(m) is not None and isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    out[f"max_{score}_difference_from_bundle"] = max(diffs) if diffs else None
    if a.export:
        export(result, a)
    return out


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Output, device, cache, threads and export options of every work command and ``rerun``."""
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument(
        "--cache-dir",
        default=None,
        help="cache folder (default: $CHAOSMINING_CACHE, else cache/ in a checkout or the user cache folder)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of each run (default: the cores shared among the runs, a run alone taking the idle "
        "workers' cores) and of the command itself (default 1 or $CHAOSMINING_THREADS)",
    )
    p.add_argument(
        "--export", metavar="DIR", default=None, help="write figures (PNG, SVG, HTML), CSV and a JSON bundle to DIR"
    )
    p.add_argument(
        "--export-formats",
        type=comma_list,
        default=["png", "svg", "html", "csv"],
        help="comma-separated subset of png,svg,html,csv (default: all)",
    )


def add_run_options(p: argparse.ArgumentParser) -> None:
    """How a work command runs: the options every long-running command shares."""
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--executor",
        choices=EXECUTORS.names(),
        default=None,
        help="where the work runs: local worker processes, or a Ray cluster ($RAY_ADDRESS, else a local Ray "
        "instance) (default: $CHAOSMINING_EXECUTOR or local)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="runs at once: local worker processes or Ray tasks (default: $CHAOSMINING_WORKERS or the CPU count)",
    )


def model_rerun(
    task: str, score: str, export: Callable[[Any, argparse.Namespace], None]
) -> Callable[..., dict[str, Any]]:
    """The ``rerun`` of a modality command: :func:`rerun_model_bundle` with a progress bar."""

    def rerun(bundle: dict[str, Any], a: argparse.Namespace) -> dict[str, Any]:
        with progress(a) as report:
            return rerun_model_bundle(bundle, a, task=task, score=score, export=export, report=report)

    return rerun


def command_executor(a: argparse.Namespace, cache: Cache | None) -> Executor:
    """The process-wide executor with the command's ``--executor``, ``--workers`` and ``--threads``."""
    if a.workers is not None and a.workers < 1:
        raise ConfigError(f"The '--workers' argument must be an int >= 1. Got {a.workers} instead.")
    return get_executor(cache, a.executor, workers=a.workers, threads=a.threads)


def through_executor(kind: str, a: argparse.Namespace) -> Callable[..., Any]:
    """A function with the library's run signature (``run(config, ev, *, cache, device, report)``) that
    performs ``kind`` through the run layer with the command's ``--executor`` and ``--workers``."""

    def run(
        config: Any, ev: Any = None, *, cache: Cache | None = None, device: str = "auto", report: Any = None, **_: Any
    ) -> Any:
        return execute(RunSpec(kind, config, ev, device), executor=command_executor(a, cache), report=report)

    return run


def add_batched_option(p: argparse.ArgumentParser) -> None:
    """``--batched``/``--no-batched``: train same-shape symbolic models together (default: on CUDA only)."""
    p.add_argument(
        "--batched",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train the symbolic models that share a shape as one batched computation (default: on CUDA, not on "
        "a CPU, where the compiled one-model step is faster)",
    )
