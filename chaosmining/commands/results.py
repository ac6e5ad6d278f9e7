"""``results``: the results store from the command line.

``python -m chaosmining results rebuild`` backfills the store from a cache; ``results query "SQL"
[--json|--csv]`` answers ad hoc questions (one read-only statement, on a connection cut off from
files); ``results compact`` merges the store's part files; ``results paper [TARGET]`` lists the
paper's published numbers.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError
from .base import COMMANDS, Command

_ACTIONS = ("query", "rebuild", "compact", "paper")


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action", choices=_ACTIONS, help="query the store, rebuild it from a cache, compact it, or list paper numbers"
    )
    p.add_argument(
        "sql",
        nargs="?",
        default=None,
        help="query: one SELECT/WITH/DESCRIBE/SHOW statement over the views 'scores' and 'runs'; "
        "paper: a target (table2, table3, table4, figure4 ... figure7)",
    )
    p.add_argument("--csv", action="store_true", help="print CSV (query, paper)")
    p.add_argument(
        "--results-dir",
        default=None,
        help="the store's folder (default: $CHAOSMINING_RESULTS, else <cache dir>/results)",
    )
    p.add_argument("--kinds", default=None, help="rebuild: comma-separated result kinds (default: all)")


def _store(a: argparse.Namespace) -> Any:
    from ..results import RESULTS_ENV, ResultsStore

    if a.results_dir:
        return ResultsStore(a.results_dir)
    if a.cache_dir and not os.environ.get(RESULTS_ENV):
        return ResultsStore(Path(a.cache_dir) / "results")
    return ResultsStore()


def _table(df: pd.DataFrame, a: argparse.Namespace) -> dict[str, Any]:
    if a.csv:
        return {"csv": df.to_csv(index=False)}
    rows = json.loads(df.to_json(orient="records", date_format="iso")) if len(df) else []
    return {"columns": [str(c) for c in df.columns], "rows": rows}


def _run(a: argparse.Namespace) -> dict[str, Any]:
    if a.json and a.csv:
        raise ConfigError("The '--json' and '--csv' arguments of 'results' exclude each other. Got both instead.")
    if a.action == "query":
        if not a.sql:
            raise ConfigError("The 'sql' argument of 'results query' must be a SQL statement. Got nothing instead.")
        return _table(_store(a).query(a.sql), a)
    if a.action == "paper":
        from dataclasses import asdict

        from ..results import paper_reference

        return _table(pd.DataFrame([asdict(v) for v in paper_reference(a.sql)]), a)
    if a.action == "compact":
        return {"removed_parts": _store(a).compact()}
    from ..cache import Cache
    from ..results import rebuild

    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()] if a.kinds else None
    cache = Cache(a.cache_dir) if a.cache_dir else Cache()
    report = rebuild(cache, _store(a), kinds)
    return {**report.to_dict(), "store": str(_store(a).root), "cache": str(cache.root)}


def _render(out: dict[str, Any]) -> str:
    if "csv" in out:
        return out["csv"].rstrip("\n")
    if "rows" in out:
        return pd.DataFrame(out["rows"], columns=out["columns"]).to_string(index=False) if out["rows"] else "(no rows)"
    if "removed_parts" in out:
        return "compacted: " + ", ".join(f"{t}: {n} parts merged" for t, n in out["removed_parts"].items())
    lines = [f"recorded {out['total']} runs from {out['cache']} into {out['store']}"]
    lines += [f"  {k}: {n}" for k, n in out["recorded"].items() if n]
    lines += [f"skipped {s}" for s in out["skipped"]]
    return "\n".join(lines)


COMMANDS.register(
    "results",
    Command(
        "results",
        "The results store: query it with SQL, rebuild it from the cache, compact it, list the paper's numbers.",
        _add_arguments,
        _run,
        _render,
    ),
)
