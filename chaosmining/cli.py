"""Command line: ``python -m chaosmining <command> ...``.

Commands live in the :data:`COMMANDS` registry; each modality adds its own. A command parses its
arguments into the same config objects the app builds, calls the same library function, and prints
one JSON object with ``--json`` (a human summary otherwise). Bad input exits with status 2 and a
one-line message naming the argument.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bundle import config_from_bundle, read_bundle
from .errors import ChaosMiningError, ConfigError
from .registry import Registry

__all__ = ["Command", "COMMANDS", "main", "build_parser"]


@dataclass(frozen=True)
class Command:
    """A CLI command: arguments, the run function, an optional re-run from a JSON bundle."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any]]
    render: Callable[[dict[str, Any]], str] | None = None
    rerun: Callable[[dict[str, Any], argparse.Namespace], dict[str, Any]] | None = None


COMMANDS: Registry[Command] = Registry("command")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit status 2
        self.exit(2, f"error: {message}\n")


def _comma_list(text: str) -> list[str]:
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


def cache_from_args(a: argparse.Namespace) -> Any:
    """The cache that ``--cache-dir`` names, or ``None`` for the default (``$CHAOSMINING_CACHE`` or ``cache/``)."""
    from .cache import Cache

    return Cache(a.cache_dir) if a.cache_dir else None


def rerun_model_bundle(
    bundle: dict[str, Any],
    a: argparse.Namespace,
    *,
    task: str,
    config_type: Any,
    eval_type: Any,
    run: Callable[..., Any],
    score: str,
    export: Callable[[Any, argparse.Namespace], None],
    **run_kwargs: Any,
) -> dict[str, Any]:
    """Re-run a model + evaluation bundle and report how far its ``score`` (by method) moved from the bundle's."""
    cfg = bundle.get("config", {})
    config = config_from_bundle(config_type.from_dict, cfg.get("model", {}), task, "config.model")
    ev = config_from_bundle(eval_type.from_dict, cfg.get("eval", {}), task, "config.eval")
    result = run(config, ev, cache=cache_from_args(a), device=a.device, **run_kwargs)
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


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--cache-dir", default=None, help="cache folder (default: cache/ or $CHAOSMINING_CACHE)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default 1 or $CHAOSMINING_THREADS)")
    p.add_argument(
        "--export", metavar="DIR", default=None, help="write figures (PNG, SVG, HTML), CSV and a JSON bundle to DIR"
    )
    p.add_argument(
        "--export-formats",
        type=_comma_list,
        default=["png", "svg", "html", "csv"],
        help="comma-separated subset of png,svg,html,csv (default: all)",
    )


def build_parser() -> argparse.ArgumentParser:
    _load_commands()
    parser = _Parser(prog="python -m chaosmining", description="ChaosMining Explorer command line.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        _common(p)
    rerun = sub.add_parser("rerun", help="re-run a JSON bundle exported by the app or the CLI")
    rerun.add_argument("bundle", type=Path)
    _common(rerun)
    return parser


def _load_commands() -> None:
    from . import commands  # noqa: F401  (registers the built-in commands)


def _rerun(args: argparse.Namespace) -> dict[str, Any]:
    bundle = read_bundle(args.bundle)  # checked: shape, size, no cache folder, paths only under the data roots
    task = bundle["task"]
    cmd = COMMANDS.get(task) if task in COMMANDS else None
    if cmd is None or cmd.rerun is None:
        raise ChaosMiningError(
            f"The bundle's 'task' must be one of {[n for n, c in COMMANDS.items() if c.rerun]}. Got {task!r} instead."
        )
    return cmd.rerun(bundle, args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .runtime import configure_threads

    try:
        configure_threads(args.threads)
        if args.command == "rerun":
            out = _rerun(args)
            render = None
        else:
            cmd = COMMANDS.get(args.command)
            out = cmd.run(args)
            render = cmd.render
    except (ChaosMiningError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(out, allow_nan=True))
    else:
        print(render(out) if render else json.dumps(out, indent=2, allow_nan=True))
    return 0
