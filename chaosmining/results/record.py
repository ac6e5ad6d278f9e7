"""``record(kind, config, result, ...)``: the one call that files a finished run in the results store.

The run layer calls it on the driver after each finished run; ``python -m chaosmining results rebuild``
calls it for every result already in a cache. It never raises: a store that cannot be written (a full
disk, a read-only folder, an unknown kind) is logged and the run goes on.
"""

from __future__ import annotations

import functools
import logging
import subprocess
from pathlib import Path
from typing import Any

from ..config import stable_hash, to_jsonable
from .extractors import extract
from .store import ResultsStore

__all__ = ["record", "run_key_for", "code_version"]

log = logging.getLogger(__name__)


def run_key_for(kind: str, config: Any) -> str:
    """``<kind>:<hash>`` of the run's configuration as JSON (the same for a config object and its ``to_dict()``)."""
    return f"{kind}:{stable_hash(to_jsonable(config))}"


@functools.cache
def code_version() -> str:
    """The package version, plus the git commit of the checkout when there is one (read once per process)."""
    from .. import __version__

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        commit = out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def record(
    kind: str,
    config: Any,
    result: Any,
    *,
    device: str | None = None,
    seconds: float | None = None,
    store: ResultsStore | None = None,
    run_key: str | None = None,
) -> str | None:
    """File ``result`` (a typed result of cache result kind ``kind``) in the results store.

    Parameters
    ----------
    kind : the cache result kind (a key of :data:`chaosmining.results.EXTRACTORS`).
    config : the configuration the cache stores with the result (a config object or its JSON form);
        ``run_key`` defaults to :func:`run_key_for` of it, so recording the same run again supersedes it.
    device, seconds : where the run ran and how long it took.

    Returns
    -------
    The record id, or ``None`` when the store could not be written (the reason is logged).
    """
    try:
        rec = extract(kind, result)
        cfg = to_jsonable(config)
        store = store or ResultsStore()
        return store.add(
            kind,
            cfg,
            rec,
            run_key=run_key or run_key_for(kind, cfg),
            device=device,
            seconds=seconds,
            code_version=code_version(),
        )
    except Exception as exc:  # noqa: BLE001 - a store failure must never fail the run that produced the result
        log.warning("The results store could not record a %s run: %s: %s", kind, type(exc).__name__, exc)
        return None
