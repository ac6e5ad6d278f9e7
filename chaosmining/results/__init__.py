"""The results store: every finished run's scores, in Parquet files queried with DuckDB.

* :class:`ResultsStore` (``store.py``): append-only, atomic part files under ``<cache root>/results/``
  (``$CHAOSMINING_RESULTS`` moves it); ``scores`` and ``runs`` DuckDB views; ``query``, ``scores()``,
  ``runs()``, ``compact()``.
* :func:`record` (``record.py``): what the run layer calls after each finished run; never raises.
* :data:`EXTRACTORS` (``extractors.py``): how each cache result kind becomes score rows.
* :func:`rebuild` (``rebuild.py``): backfill the store from a cache.
* :func:`paper_reference` (``paper.py``): the paper's published numbers, with their source.
"""

from .extractors import EXTRACTORS, extract
from .paper import PAPER_TARGETS, PaperValue, paper_reference
from .rebuild import RebuildReport, rebuild, rebuild_kinds
from .record import code_version, record, run_key_for
from .store import (
    RESULTS_ENV,
    RUNS_SCHEMA,
    SCORES_SCHEMA,
    ReadOnlyQueryError,
    ResultsStore,
    RunRecord,
    ScoreRow,
    check_read_only,
    default_results_root,
)

__all__ = [
    "EXTRACTORS",
    "rebuild_kinds",
    "PAPER_TARGETS",
    "PaperValue",
    "RESULTS_ENV",
    "RUNS_SCHEMA",
    "ReadOnlyQueryError",
    "RebuildReport",
    "ResultsStore",
    "RunRecord",
    "SCORES_SCHEMA",
    "ScoreRow",
    "check_read_only",
    "code_version",
    "default_results_root",
    "extract",
    "paper_reference",
    "rebuild",
    "record",
    "run_key_for",
]
