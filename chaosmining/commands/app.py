"""``app`` command: start the Streamlit app, from a checkout or from an installed wheel.

``chaosmining app [streamlit options]`` runs ``streamlit run <APP_ROOT>/app.py`` with the options it
is given (``--server.port 8502``, ``--server.address 0.0.0.0``, ...). The app's own settings come from
the ``.streamlit/config.toml`` beside ``app.py``, which Streamlit reads as the script's configuration;
options given here win over it. Streamlit runs in a child process, so the library and the rest of the
CLI never import it: it is an optional dependency (``pip install 'chaosmining-explorer[app]'``).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from collections.abc import Sequence

from ..errors import ChaosMiningError
from ..locations import APP_ROOT
from .base import COMMANDS, Command

__all__ = ["app_script", "streamlit_command"]

_HELP = "Start the Streamlit app (any option not listed below is passed on to 'streamlit run')."


def app_script() -> str:
    """The app's entry point: ``app.py`` of the checkout, or of the copy installed under ``chaosmining/_app``."""
    script = APP_ROOT / "app.py"
    if not script.is_file():
        raise ChaosMiningError(
            f"The app's files were not found (expected {script}); reinstall chaosmining-explorer from its wheel."
        )
    return str(script)


def streamlit_command(options: Sequence[str]) -> list[str]:
    """The child process's command line: this interpreter's ``streamlit run app.py`` with ``options``."""
    return [sys.executable, "-m", "streamlit", "run", app_script(), *options]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "Examples: 'chaosmining app', 'chaosmining app --server.port 8502'. See 'streamlit run --help' for the "
        "options. The cache is $CHAOSMINING_CACHE, else cache/ in a checkout, else the user cache folder."
    )
    p.add_argument(
        "--print-command", action="store_true", help="print the streamlit command line instead of running it"
    )


def _run(a: argparse.Namespace) -> int:
    command = streamlit_command(a.forwarded)
    if a.print_command:
        print(" ".join(command))
        return 0
    if importlib.util.find_spec("streamlit") is None:
        raise ChaosMiningError(
            "The app needs Streamlit, an optional dependency: pip install 'chaosmining-explorer[app]'."
        )
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:  # Ctrl-C reaches Streamlit too, which stops on its own
        return 130


COMMANDS.register(
    "app",
    Command("app", _HELP, _add_arguments, _run, work=False, forwards_unknown=True),
)
