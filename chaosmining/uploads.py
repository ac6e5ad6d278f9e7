"""Files uploaded in the browser: size-limited, kept in a private temporary folder, swept after a day.

An upload is stored as ``<SHA-256 of its content>/<its name>`` in :func:`upload_dir` (a folder of the system's
temporary directory that only the server's user can open), never in the cache: uploads are one
session's data, not results to keep. :func:`store_upload` removes uploads older than
:data:`UPLOAD_TTL_SECONDS` each time it stores one. The page shows the upload's own name, never this
folder's path.

``MAX_UPLOAD_MB`` matches ``server.maxUploadSize`` in ``.streamlit/config.toml``; Streamlit refuses
larger files in the browser, and :func:`store_upload` refuses them again on the server.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from .errors import DataError
from .validation import MESSAGE

__all__ = [
    "MAX_UPLOAD_MB",
    "UPLOADS_ENV",
    "UPLOAD_TTL_SECONDS",
    "upload_dir",
    "store_upload",
    "is_upload",
    "sweep_uploads",
]

MAX_UPLOAD_MB = 20
UPLOAD_TTL_SECONDS = 24 * 3600
UPLOADS_ENV = "CHAOSMINING_UPLOADS"


def _folder() -> Path:
    env = os.environ.get(UPLOADS_ENV)
    return Path(env) if env else Path(tempfile.gettempdir()) / f"chaosmining-uploads-{os.getuid()}"


def upload_dir() -> Path:
    """``$CHAOSMINING_UPLOADS``, else ``<tmp>/chaosmining-uploads-<uid>``; created with mode 0700."""
    d = _folder()
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def is_upload(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a stored upload (its content is the user's own, so messages may name its columns)."""
    try:
        real, base = Path(os.path.realpath(path)), Path(os.path.realpath(_folder()))
    except (OSError, ValueError):
        return False
    return real.parent.parent == base


def sweep_uploads(older_than: float = UPLOAD_TTL_SECONDS) -> int:
    """Remove stored uploads last used more than ``older_than`` seconds ago; returns how many."""
    removed, now = 0, time.time()
    for d in upload_dir().iterdir():
        try:
            if d.is_dir() and now - d.stat().st_mtime > older_than:
                shutil.rmtree(d)
                removed += 1
        except OSError:  # another session removed or touched it meanwhile
            continue
    return removed


def _safe_name(name: str, suffix: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._")[:80] or "upload"
    return stem if stem.lower().endswith(suffix) else stem + suffix


def store_upload(name: str, data: bytes, *, suffix: str = ".csv", max_mb: float = MAX_UPLOAD_MB) -> Path:
    """Store ``data`` as ``<sha256>/<name>`` and return its path; refuses an upload over ``max_mb`` megabytes.

    The folder is named by the content, the file keeps the user's name (made safe: letters, digits,
    ``._-``), so the page can title it. Storing the same upload again renews its day.
    """
    if len(data) > max_mb * 1024 * 1024:
        raise DataError(
            MESSAGE.format(
                name="upload",
                owner="the app",
                allowed=f"a file of at most {max_mb:g} MB",
                got=f"{name[:80]} ({len(data) / 1024 / 1024:.1f} MB)",
            )
        )
    sweep_uploads()
    folder = upload_dir() / hashlib.sha256(data).hexdigest()[:32]
    folder.mkdir(mode=0o700, exist_ok=True)
    os.utime(folder)
    path = folder / _safe_name(name, suffix)
    if not path.is_file():
        tmp = folder / f".{path.name}.{os.getpid()}.part"
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path
