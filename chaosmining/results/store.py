"""An embedded results store: immutable Parquet part files, queried with DuckDB.

Layout under the store's root (``<cache root>/results/``, or ``$CHAOSMINING_RESULTS``)::

    scores/part-<time>-<uuid>.parquet   one row per score of one recorded run
    runs/part-<time>-<uuid>.parquet     one row per recorded run
    .lock                               shared by writers and readers, exclusive for compact()

Guarantees
----------
* **Atomic parts**: a part is written to a hidden temporary name (``.tmp-*.part``) in the same folder,
  flushed to disk and renamed into place; queries read only ``*.parquet``, so an interrupted write
  leaves at most a temporary file that no query reads (:meth:`ResultsStore.sweep` removes old ones).
* **One record, two parts**: a record writes its scores part first and its runs part last, and the
  ``scores`` view joins on the runs row, so a query sees all of a record's scores or none.
* **Concurrent writers**: every writer adds new files with unique names and holds a shared ``flock``
  while it writes; :meth:`ResultsStore.compact` holds it exclusively, so merging never races a writer.
* **Superseded runs**: recording the same ``run_key`` again appends; the ``runs`` and ``scores`` views
  show only each run key's latest record (by time, then record id), and ``compact()`` drops the rest.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..cache import default_cache_root
from ..errors import ChaosMiningError

__all__ = [
    "RESULTS_ENV",
    "ResultsStore",
    "ScoreRow",
    "RunRecord",
    "default_results_root",
    "SCORES_SCHEMA",
    "RUNS_SCHEMA",
    "ReadOnlyQueryError",
    "check_read_only",
]

RESULTS_ENV = "CHAOSMINING_RESULTS"
_TABLES = ("scores", "runs")
_STALE_SECONDS = 3600
# Every record adds two files and a query reads them all (measured: 21 records in 21 parts took 6x as
# long to query as the same rows compacted), so a writer that finds this many runs parts compacts, if
# nobody else holds the lock.
AUTO_COMPACT_PARTS = 128

_IDENTITY = [  # the columns both tables start with: which run, of what
    ("record_id", pa.string()),
    ("run_key", pa.string()),
    ("kind", pa.string()),
    ("modality", pa.string()),
    ("task", pa.string()),
    ("setting", pa.string()),
    ("model", pa.string()),
]
SCORES_SCHEMA = pa.schema(
    [
        *_IDENTITY,
        ("method", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("seed", pa.int64()),
        ("time", pa.timestamp("us", tz="UTC")),
    ]
)
RUNS_SCHEMA = pa.schema(
    [
        *_IDENTITY,
        ("seed", pa.int64()),
        ("config", pa.string()),
        ("device", pa.string()),
        ("seconds", pa.float64()),
        ("code_version", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("n_scores", pa.int64()),
    ]
)
_SCHEMAS = {"scores": SCORES_SCHEMA, "runs": RUNS_SCHEMA}

# The latest record of every run key; scores are those of the latest record, once each (a crash
# inside compact() between writing the merged part and removing the old ones leaves duplicates).
_VIEWS = """
CREATE OR REPLACE VIEW runs AS
SELECT * EXCLUDE (_rank) FROM (
    SELECT *, row_number() OVER (PARTITION BY run_key ORDER BY time DESC, record_id DESC) AS _rank
    FROM _runs_all
) WHERE _rank = 1;
CREATE OR REPLACE VIEW scores AS
SELECT * EXCLUDE (_rank) FROM (
    SELECT s.*, row_number() OVER (
        PARTITION BY s.record_id, s.method, s.metric, s.task, s.setting, s.model ORDER BY s.time
    ) AS _rank
    FROM _scores_all s SEMI JOIN runs r ON s.record_id = r.record_id
) WHERE _rank = 1;
"""

# DuckDB statement types a read-only query may be, checked on the parsed statement, not the text: SELECT
# covers WITH, DESCRIBE, SHOW, SUMMARIZE, FROM-first queries and VALUES; every writing or configuring
# statement (COPY, CREATE, ATTACH, SET, INSTALL/LOAD, PRAGMA, CALL...) has a type of its own.
_READ_ONLY_TYPES = ("SELECT", "EXPLAIN")


class ReadOnlyQueryError(ChaosMiningError, ValueError):
    """A query that would change something was refused."""


def default_results_root(cache_root: str | os.PathLike[str] | None = None) -> Path:
    """``$CHAOSMINING_RESULTS``, else ``<cache root>/results`` (``cache_root`` or
    :func:`chaosmining.cache.default_cache_root`): runs computed into a cache are filed beside it."""
    env = os.environ.get(RESULTS_ENV)
    if env:
        return Path(env).expanduser()
    return Path(cache_root if cache_root is not None else default_cache_root()) / "results"


@dataclass(frozen=True)
class ScoreRow:
    """One score: ``method`` is ``""`` for a score of the run itself (a model's accuracy, a prediction UScore)."""

    method: str
    metric: str
    value: float | None


@dataclass(frozen=True)
class RunRecord:
    """What an extractor says about one run: where it belongs and its scores."""

    modality: str
    task: str
    setting: str = ""
    model: str = ""
    seed: int | None = None
    scores: tuple[ScoreRow, ...] = field(default_factory=tuple)


def _now() -> datetime:
    return datetime.now(UTC)


def _as_float(v: Any) -> float | None:
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


class ResultsStore:
    """The results store at ``root`` (default :func:`default_results_root`).

    Examples
    --------
    >>> store = ResultsStore("/tmp/cm-results-doctest")  # doctest: +SKIP
    >>> store.add("symbolic-result", {"seed": 0}, RunRecord("symbolic", "formula:1", scores=(
    ...     ScoreRow("saliency", "fprec", 1.0),)), run_key="k1", device="cpu")  # doctest: +SKIP
    >>> store.scores(method="saliency")["value"].tolist()  # doctest: +SKIP
    [1.0]
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_results_root()

    # --- files and locks ----------------------------------------------------------------------

    def _dir(self, table: str) -> Path:
        return self.root / table

    def parts(self, table: str) -> list[Path]:
        """The published part files of ``table`` (never temporary files)."""
        d = self._dir(table)
        return sorted(d.glob("*.parquet")) if d.is_dir() else []

    @contextmanager
    def _lock(self, exclusive: bool, wait: bool = True) -> Iterator[bool]:
        """Hold the store's lock; yields False (and holds nothing) when ``wait`` is off and it is taken."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as fh:
            try:
                fcntl.flock(fh, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write_part(self, table: str, rows: pa.Table, prefix: str = "part") -> Path:
        d = self._dir(table)
        d.mkdir(parents=True, exist_ok=True)
        name = f"{prefix}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex}"
        tmp = d / f".tmp-{name}.part"
        final = d / f"{name}.parquet"
        try:
            pq.write_table(rows, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return final

    # --- writing ------------------------------------------------------------------------------

    def add(
        self,
        kind: str,
        config: Any,
        record: RunRecord,
        *,
        run_key: str,
        device: str | None = None,
        seconds: float | None = None,
        code_version: str | None = None,
        when: datetime | None = None,
    ) -> str:
        """Append one run and its scores; returns the record id. ``config`` must be JSON-able."""
        record_id = uuid.uuid4().hex
        t = when or _now()
        where = {
            "record_id": record_id,
            "run_key": run_key,
            "kind": kind,
            "modality": record.modality,
            "task": record.task,
            "setting": record.setting,
            "model": record.model,
        }
        scores = [
            {
                **where,
                "method": s.method,
                "metric": s.metric,
                "value": _as_float(s.value),
                "seed": record.seed,
                "time": t,
            }
            for s in record.scores
        ]
        run = {
            **where,
            "seed": record.seed,
            "config": json.dumps(config, sort_keys=True, default=str, allow_nan=True),
            "device": device,
            "seconds": _as_float(seconds),
            "code_version": code_version,
            "time": t,
            "n_scores": len(scores),
        }
        with self._lock(exclusive=False):
            if scores:
                self._write_part("scores", pa.Table.from_pylist(scores, schema=SCORES_SCHEMA))
            self._write_part("runs", pa.Table.from_pylist([run], schema=RUNS_SCHEMA))
        if len(self.parts("runs")) >= AUTO_COMPACT_PARTS:
            self.compact(wait=False)
        return record_id

    # --- reading ------------------------------------------------------------------------------

    def connect(self, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with the ``scores`` and ``runs`` views (latest records only)
        and the raw tables ``_scores_all`` and ``_runs_all``.

        The parts are loaded into memory under the store's shared lock, so a concurrent
        :meth:`compact` cannot remove a file mid-query. With ``read_only`` the connection is then cut
        off from files and extensions (``enable_external_access = false``, configuration locked): SQL
        on it can read the two tables and nothing else.
        """
        con = duckdb.connect(":memory:")
        with self._lock(exclusive=False):
            for table in _TABLES:
                files = self.parts(table)
                if files:
                    con.execute(
                        f"CREATE TABLE _{table}_all AS SELECT * FROM read_parquet(?, union_by_name = true)",
                        [[str(f) for f in files]],
                    )
                else:
                    empty = _SCHEMAS[table].empty_table()
                    con.register("_empty", empty)
                    con.execute(f"CREATE TABLE _{table}_all AS SELECT * FROM _empty")
                    con.unregister("_empty")
        con.execute(_VIEWS)
        if read_only:
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        return con

    def query(self, sql: str, params: Sequence[Any] | None = None, *, read_only: bool = True) -> pd.DataFrame:
        """Run ``sql`` against the ``scores`` and ``runs`` views; one SELECT-like statement only.

        Raises
        ------
        ReadOnlyQueryError
            For anything other than one ``SELECT``/``WITH``/``DESCRIBE``/``SHOW``/``SUMMARIZE`` statement.
        """
        check_read_only(sql)
        con = self.connect(read_only=read_only)
        try:
            return con.execute(sql, params or []).df()
        except duckdb.Error as exc:
            raise ChaosMiningError(f"The query failed: {exc}") from None
        finally:
            con.close()

    def scores(self, **filters: Any) -> pd.DataFrame:
        """Latest scores, filtered by column equality (a list or tuple value means any of them).

        Filter names are columns of ``scores``: ``run_key``, ``kind``, ``modality``, ``task``, ``setting``,
        ``model``, ``method``, ``metric``, ``seed``.
        """
        return self._select("scores", filters)

    def runs(self, **filters: Any) -> pd.DataFrame:
        """Latest run records (``config`` is the run's configuration as JSON text)."""
        return self._select("runs", filters)

    def run_keys(self) -> set[str]:
        """Run keys the store has (their latest records): what a resumed reproduction can skip."""
        return set(self.query("SELECT DISTINCT run_key FROM runs")["run_key"])

    def _select(self, view: str, filters: Mapping[str, Any]) -> pd.DataFrame:
        allowed = [f.name for f in _SCHEMAS[view]]
        where, params = [], []
        for name, value in filters.items():
            if name not in allowed:
                raise ChaosMiningError(
                    f"The filter {name!r} of ResultsStore.{view}() must be one of {allowed}. Got {name!r} instead."
                )
            if value is None:
                continue
            values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
            where.append(f'"{name}" IN ({", ".join("?" * len(values))})')
            params += values
        sql = f"SELECT * FROM {view}" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY time, run_key"
        return self.query(sql, params)

    # --- maintenance --------------------------------------------------------------------------

    def compact(self, wait: bool = True) -> dict[str, int]:
        """Merge every table's parts into one, dropping superseded records; returns parts removed per table.

        Holds the store's lock exclusively: writers and readers wait, and no part is removed while one
        is read. The merged part is published before the old parts are removed; a crash in between
        leaves duplicates that the views ignore, and the next compaction removes them. With ``wait``
        off, returns ``{}`` at once when another process holds the lock.
        """
        removed: dict[str, int] = {}
        with self._lock(exclusive=True, wait=wait) as held:
            if not held:
                return removed
            con = duckdb.connect(":memory:")
            try:
                olds = {t: self.parts(t) for t in _TABLES}
                for table, files in olds.items():
                    if files:
                        con.execute(
                            f"CREATE TABLE _{table}_all AS SELECT * FROM read_parquet(?, union_by_name = true)",
                            [[str(f) for f in files]],
                        )
                    else:
                        con.register("_empty", _SCHEMAS[table].empty_table())
                        con.execute(f"CREATE TABLE _{table}_all AS SELECT * FROM _empty")
                        con.unregister("_empty")
                con.execute(_VIEWS)
                for table, files in olds.items():
                    if len(files) == 0:
                        removed[table] = 0
                        continue
                    cols = ", ".join(f'"{f.name}"' for f in _SCHEMAS[table])
                    merged = con.sql(f"SELECT {cols} FROM {table} ORDER BY time, record_id").to_arrow_table()
                    merged = merged.cast(_SCHEMAS[table])
                    if merged.num_rows:
                        self._write_part(table, merged, prefix="compact")
                    for f in files:
                        f.unlink(missing_ok=True)
                    removed[table] = len(files)
            finally:
                con.close()
        return removed

    def sweep(self, older_than: float = _STALE_SECONDS) -> int:
        """Remove temporary files older than ``older_than`` seconds (left by interrupted writes)."""
        n = 0
        now = time.time()
        for table in _TABLES:
            d = self._dir(table)
            if not d.is_dir():
                continue
            for p in d.glob(".tmp-*"):
                if now - p.stat().st_mtime > older_than:
                    p.unlink(missing_ok=True)
                    n += 1
        return n


def check_read_only(sql: str) -> None:
    """Refuse anything but one read-only statement (``SELECT``, ``WITH``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``)."""
    if not isinstance(sql, str) or not sql.strip():
        raise ReadOnlyQueryError(f"The 'sql' parameter must be a non-empty SQL string. Got {sql!r} instead.")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise ReadOnlyQueryError(f"The query could not be parsed: {exc}") from None
    if len(statements) != 1:
        raise ReadOnlyQueryError(
            f"The query must be exactly one statement (SELECT, WITH, DESCRIBE, SHOW). Got {len(statements)} instead."
        )
    kind = statements[0].type.name
    if kind not in _READ_ONLY_TYPES:
        raise ReadOnlyQueryError(
            "The query must be read-only: one SELECT, WITH, DESCRIBE, SHOW or SUMMARIZE statement. "
            f"Got a {kind} statement instead."
        )
