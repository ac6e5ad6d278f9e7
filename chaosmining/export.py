"""Export of figures (PNG, SVG, interactive HTML), the numbers behind them (CSV) and a JSON bundle.

The JSON bundle holds the configuration, the seeds and the results; ``python -m chaosmining rerun
bundle.json`` re-runs it. PNG and SVG are rendered by Kaleido, which drives a Chromium browser
(Debian's ``chromium``; ``make run`` and ``make test`` install it when they can). Without a browser,
the export still contains HTML, CSV and JSON and a note says why PNG/SVG are missing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .config import to_jsonable

__all__ = [
    "csv_bytes",
    "neutralise_cell",
    "figure_table",
    "find_browser",
    "export_bundle",
    "write_bundle",
    "bundle_json",
    "ExportFormats",
]

ExportFormats = ("png", "svg", "html", "csv")
_RENDER_LOCK = threading.Lock()


def find_browser() -> str | None:
    """Path of a Chromium/Chrome for Kaleido, or ``None``."""
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).exists():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _values(v: Any) -> list[Any]:
    if v is None:
        return []
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return list(v)
    if isinstance(v, dict) and "bdata" in v:  # plotly's base64 typed arrays
        return list(np.asarray(go.Figure(data=[go.Scatter(y=v)]).data[0].y))
    return [v]


def figure_table(fig: go.Figure) -> pd.DataFrame:
    """The numbers behind ``fig`` in long format: one row per point (heatmaps: per cell)."""
    frames = []
    for i, tr in enumerate(fig.data):
        name = getattr(tr, "name", None) or f"trace{i}"
        if tr.type == "heatmap":
            z = np.asarray(tr.z, dtype=float)
            xs = _values(tr.x) or list(range(z.shape[1]))
            ys = _values(tr.y) or list(range(z.shape[0]))
            rr, cc = np.meshgrid(range(z.shape[0]), range(z.shape[1]), indexing="ij")
            frames.append(
                pd.DataFrame(
                    {
                        "trace": name,
                        "y": np.asarray(ys, dtype=object)[rr.ravel()],
                        "x": np.asarray(xs, dtype=object)[cc.ravel()],
                        "value": z.ravel(),
                    }
                )
            )
            continue
        xs, ys = _values(getattr(tr, "x", None)), _values(getattr(tr, "y", None))
        n = max(len(xs), len(ys))
        if n == 0:
            continue
        frame = pd.DataFrame({"trace": [name] * n, "x": xs + [None] * (n - len(xs)), "y": ys + [None] * (n - len(ys))})
        err = getattr(tr, "error_y", None)
        if err is not None and err.array is not None and err.visible is not False:
            e = _values(err.array)
            frame["error"] = e + [None] * (n - len(e))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["trace", "x", "y"])


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def neutralise_cell(value: Any) -> Any:
    """``value`` as a spreadsheet will show it, never run it (OWASP "CSV injection").

    A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
    ``'``, which spreadsheets read as "this is text". Numbers, and text that reads as a number
    (``"-1.5"``), stay as they are.

    Examples
    --------
    >>> neutralise_cell("=SUM(A1)"), neutralise_cell("-0.5"), neutralise_cell(-2), neutralise_cell("a")
    ("'=SUM(A1)", '-0.5', -2, 'a')
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def csv_bytes(table: pd.DataFrame) -> bytes:
    """``table`` as UTF-8 CSV bytes (CRLF rows) with every text cell and column name through :func:`neutralise_cell`."""
    safe = table.copy()
    safe.columns = [neutralise_cell(str(c)) for c in safe.columns]
    for i in range(safe.shape[1]):  # by position: column names may repeat
        if not pd.api.types.is_numeric_dtype(safe.iloc[:, i]):
            safe.isetitem(i, safe.iloc[:, i].map(neutralise_cell))
    # RFC 4180's CRLF rows: the csv writer then quotes any cell holding a CR or LF, which would otherwise split a row.
    return safe.to_csv(index=False, lineterminator="\r\n").encode()


def bundle_json(task: str, config: Any, results: Any, **extra: Any) -> dict[str, Any]:
    """The re-runnable JSON bundle: ``python -m chaosmining rerun bundle.json``."""
    from . import __version__

    return to_jsonable(
        {"task": task, "chaosmining_version": __version__, "config": config, "results": results, **extra}
    )


@contextmanager
def _image_server() -> Iterator[bool]:
    """Start Kaleido's browser once for a batch of images; yields whether images can be made."""
    browser = find_browser()
    if browser is None:
        yield False
        return
    os.environ.setdefault("BROWSER_PATH", browser)
    import kaleido

    with _RENDER_LOCK:
        try:
            kaleido.start_sync_server(silence_warnings=True)
        except Exception:  # noqa: BLE001 - Kaleido/Chromium start failures vary; fall back to per-call mode
            pass
        try:
            yield True
        finally:
            try:
                kaleido.stop_sync_server(silence_warnings=True)
            except Exception:  # noqa: BLE001
                pass


def _files(
    figures: Mapping[str, go.Figure],
    bundle: Mapping[str, Any] | None,
    tables: Mapping[str, pd.DataFrame] | None,
    formats: Iterable[str],
    extra_files: Mapping[str, bytes] | None = None,
) -> Iterator[tuple[str, bytes]]:
    formats = set(formats)
    notes: list[str] = []
    if "html" in formats and figures:
        yield "plotly.min.js", _plotly_js()
    for name, fig in figures.items():
        if "html" in formats:
            yield f"{name}.html", fig.to_html(include_plotlyjs="directory", full_html=True).encode()
        if "csv" in formats:
            yield f"{name}.csv", csv_bytes(figure_table(fig))
    for name, table in (tables or {}).items():
        yield f"{name}.csv", csv_bytes(table)
    if bundle is not None:
        yield "bundle.json", json.dumps(bundle, indent=1, allow_nan=True).encode()
    for name, data in (extra_files or {}).items():
        yield name, data
    if formats & {"png", "svg"} and figures:
        with _image_server() as ok:
            if not ok:
                notes.append(
                    "PNG and SVG were skipped: no Chromium/Chrome browser was found for Kaleido (install Debian's chromium or set BROWSER_PATH)."
                )
            else:
                for name, fig in figures.items():
                    for fmt in ("png", "svg"):
                        if fmt in formats:
                            try:
                                yield (
                                    f"{name}.{fmt}",
                                    fig.to_image(
                                        format=fmt,
                                        width=1000,
                                        height=fig.layout.height or 450,
                                        scale=2 if fmt == "png" else 1,
                                    ),
                                )
                            except Exception as exc:  # noqa: BLE001 - report and carry on with the rest
                                notes.append(f"{name}.{fmt} failed: {type(exc).__name__}: {exc}")
    if notes:
        yield "EXPORT-NOTES.txt", "\n".join(notes).encode()


def _plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


def export_bundle(
    figures: Mapping[str, go.Figure],
    bundle: Mapping[str, Any] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    formats: Iterable[str] = ExportFormats,
    extra_files: Mapping[str, bytes] | None = None,
) -> tuple[bytes, list[str]]:
    """A ZIP of every figure in ``formats``, the CSV behind each, extra tables and ``bundle.json``.

    Returns the ZIP's bytes and the list of file names in it.
    """
    buf = io.BytesIO()
    names = []
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in _files(figures, bundle, tables, formats, extra_files):
            zf.writestr(name, data)
            names.append(name)
    return buf.getvalue(), names


def write_bundle(
    directory: str | os.PathLike[str],
    figures: Mapping[str, go.Figure],
    bundle: Mapping[str, Any] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    formats: Iterable[str] = ExportFormats,
    extra_files: Mapping[str, bytes] | None = None,
) -> list[Path]:
    """Write the same files as :func:`export_bundle` into ``directory`` (created if needed)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in _files(figures, bundle, tables, formats, extra_files):
        tmp = d / f".{name}.part"
        tmp.write_bytes(data)
        os.replace(tmp, d / name)
        written.append(d / name)
    return written
