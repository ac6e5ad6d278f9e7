"""Command line: ``chaosmining <command> ...`` (or ``python -m chaosmining``).

Commands live in the :data:`COMMANDS` registry (:mod:`chaosmining.commands.base`); importing
:mod:`chaosmining.commands` registers the built-in ones. A work command parses its arguments into the
same config objects the app builds, calls the same library function with a progress bar on stderr
(``--quiet``: none), and prints one JSON object with ``--json`` (a human summary otherwise). Bad input
exits with status 2 and a one-line message naming the argument.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .bundle import read_bundle
from .commands import COMMANDS, Command
from .commands.base import (
    Parser,
    add_common_options,
    add_run_options,
    cache_from_args,
    parse_method_params,
    rerun_model_bundle,
)
from .errors import ChaosMiningError
from .runs import shutdown_executor
from .runtime import configure_threads

__all__ = [
    "Command",
    "COMMANDS",
    "main",
    "build_parser",
    "parse_method_params",
    "cache_from_args",
    "rerun_model_bundle",
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="chaosmining", description="ChaosMining Explorer command line.")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="load your own attribution method(s) from a module or a .py file before the command (repeatable; "
        "also $CHAOSMINING_PLUGINS)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        if cmd.work:
            add_common_options(p)
            add_run_options(p)
    rerun = sub.add_parser("rerun", help="re-run a JSON bundle exported by the app or the CLI")
    rerun.add_argument("bundle", type=Path)
    add_common_options(rerun)
    add_run_options(rerun)
    return parser


def _rerun(args: argparse.Namespace) -> dict[str, Any]:
    bundle = read_bundle(args.bundle)  # checked: shape, size, no cache folder, paths only under the data roots
    task = bundle["task"]
    cmd = COMMANDS.get(task) if task in COMMANDS else None
    if cmd is None or cmd.rerun is None:
        raise ChaosMiningError(
            f"The bundle's 'task' must be one of {[n for n, c in COMMANDS.items() if c.rerun]}. Got {task!r} instead."
        )
    return cmd.rerun(bundle, args)


def _load_plugins(argv: Sequence[str] | None) -> None:
    """``--plugin`` options (before the command) and ``$CHAOSMINING_PLUGINS``, loaded before the parser is
    built so that plugin methods are valid choices; exported in the environment for worker processes."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--plugin", action="append", default=[])
    specs = [
        str(Path(s).expanduser().resolve()) if s.endswith(".py") else s for s in pre.parse_known_args(argv)[0].plugin
    ]
    from .plugins import PLUGINS_ENV, load_plugins

    load_plugins(specs)
    if specs:
        os.environ[PLUGINS_ENV] = ",".join([*specs, *filter(None, os.environ.get(PLUGINS_ENV, "").split(","))])


class _Terminated(BaseException):
    """SIGTERM, turned into an exception so that the work stops cleanly (exit status 143)."""


def _on_sigterm(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal's signature
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    try:
        _load_plugins(argv)
    except ChaosMiningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    cmd = COMMANDS.get(args.command) if args.command != "rerun" else None
    if unknown and not (cmd and cmd.forwards_unknown):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.forwarded = unknown
    try:
        if cmd is None:
            configure_threads(args.threads)
            out = _rerun(args)
            render = None
        else:
            if cmd.work:
                configure_threads(args.threads)
            out = cmd.run(args)
            render = cmd.render
    except (ChaosMiningError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; the running work was stopped and nothing half-written was kept", file=sys.stderr)
        shutdown_executor()
        return 130
    except _Terminated:
        print("error: terminated; the running work was stopped and nothing half-written was kept", file=sys.stderr)
        shutdown_executor()
        return 143
    if isinstance(out, int):
        return out
    if args.json:
        print(json.dumps(out, allow_nan=True))
    else:
        print(render(out) if render else json.dumps(out, indent=2, allow_nan=True))
    return 0
