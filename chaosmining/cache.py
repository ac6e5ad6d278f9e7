"""A content-addressed cache of trained checkpoints and results.

Layout: ``<root>/<kind>/<key>/`` holds the entry's files and a ``manifest.json`` written last, with
the configuration that produced the entry and a SHA-256 of every file. ``<root>`` is
``$CHAOSMINING_CACHE``, else ``cache/`` at the repository root in a checkout, else the user cache
folder of an installed copy (:func:`chaosmining.locations.default_cache_root`).

Guarantees
----------
* **Atomic**: an entry is built in a private temporary folder and renamed into place in one step;
  an interrupted run leaves at most a ``.tmp-*`` folder, which is never read and is swept later.
* **Built once**: :meth:`Cache.get_or_create` holds an exclusive ``flock`` on ``<kind>/<key>.lock``
  while checking and building, so two sessions (threads or processes) asking for the same
  configuration do not both train it; the second waits and then loads the first one's entry.
* **Checked**: every load verifies the manifest and the checksums; a corrupt entry is moved aside
  to ``.corrupt-*``, reported through :attr:`CacheOutcome.note`, and rebuilt.
* **Seeded**: entries shipped with the repository (and the wheel) under ``assets/cache/<kind>/<key>/`` (small demo
  checkpoints, each with the configuration that rebuilds it in its manifest) are copied into the
  cache the first time they are asked for, so a fresh install opens on trained results.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .config import SCHEMA_VERSION, to_jsonable
from .errors import CacheCorruptError
from .locations import ASSETS_ROOT, CACHE_ENV, default_cache_root

__all__ = ["Cache", "CacheEntry", "CacheOutcome", "default_cache_root", "CACHE_ENV"]

MANIFEST = "manifest.json"
_STALE_SECONDS = 6 * 3600
T = TypeVar("T")


def _tmp_name(key: str) -> str:
    """A private build folder's name; it carries the writer's pid so that the folders of a process
    that died can be removed at once (:meth:`Cache.sweep_process`)."""
    return f".tmp-{key}-p{os.getpid()}-{uuid.uuid4().hex}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """A verified entry: its folder and manifest."""

    kind: str
    key: str
    path: Path
    manifest: dict[str, Any]

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest.get("config", {})

    @property
    def meta(self) -> dict[str, Any]:
        return self.manifest.get("meta", {})


@dataclass(frozen=True)
class CacheOutcome:
    """What :meth:`Cache.get_or_create` did: ``status`` is 'hit', 'built' or 'rebuilt'."""

    entry: CacheEntry
    status: str
    note: str | None = None

    @property
    def cached(self) -> bool:
        return self.status == "hit"


class Cache:
    """See the module docstring. ``Cache()`` uses :func:`default_cache_root`."""

    def __init__(self, root: str | os.PathLike[str] | None = None, seed_roots: tuple[Path, ...] | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()
        self.seed_roots = (ASSETS_ROOT,) if seed_roots is None else tuple(seed_roots)

    def _seed(self, kind: str, key: str) -> bool:
        """Copy a shipped entry for ``(kind, key)`` into the cache if one exists; atomic."""
        for root in self.seed_roots:
            src = root / kind / key
            if not (src / MANIFEST).is_file():
                continue
            d = self._dir(kind)
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / _tmp_name(key)
            shutil.copytree(src, tmp)
            try:
                os.rename(tmp, self.path(kind, key))
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
            return True
        return False

    def has(self, kind: str, key: str) -> bool:
        """Whether an entry exists here or can be seeded from the shipped assets (not verified)."""
        return self.path(kind, key).is_dir() or any((r / kind / key / MANIFEST).is_file() for r in self.seed_roots)

    def _dir(self, kind: str) -> Path:
        if not kind or "/" in kind or kind.startswith("."):
            raise ValueError(f"Invalid cache kind {kind!r}.")
        return self.root / kind

    def path(self, kind: str, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"Invalid cache key {key!r}.")
        return self._dir(kind) / key

    @contextmanager
    def lock(self, kind: str, key: str) -> Iterator[None]:
        """Exclusive lock for ``(kind, key)`` across threads and processes."""
        d = self._dir(kind)
        d.mkdir(parents=True, exist_ok=True)
        with open(d / f"{key}.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def load(self, kind: str, key: str) -> CacheEntry | None:
        """The verified entry, ``None`` if absent; raises :class:`CacheCorruptError` if damaged."""
        path = self.path(kind, key)
        if not path.is_dir():
            return None
        return CacheEntry(kind, key, path, self._verified(path, kind, key))

    @staticmethod
    def _verified(path: Path, kind: str, key: str) -> dict[str, Any]:
        """The manifest of the entry folder ``path`` after checking every file against its checksum."""
        manifest_path = path / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text())
            files = manifest["files"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CacheCorruptError(f"cache entry {kind}/{key} has no readable manifest ({exc})") from None
        for name, digest in files.items():
            f = path / name
            if not f.is_file():
                raise CacheCorruptError(f"cache entry {kind}/{key} is missing {name}")
            if _sha256(f) != digest:
                raise CacheCorruptError(f"cache entry {kind}/{key}: {name} does not match its checksum")
        return manifest

    def import_entry(self, kind: str, key: str, data: bytes) -> bool:
        """Install an entry built elsewhere (a Ray worker's own cache), given as a tar archive of its folder.

        The archive is extracted into a private ``.tmp-*`` folder with tarfile's ``"data"`` filter (no
        absolute paths, links out of the folder or special files), its manifest and checksums are checked
        like a load's, and it is renamed into place in one step. Returns ``False`` without touching
        anything when the entry is already here (also when another writer wins the race). Raises
        :class:`CacheCorruptError` when the archive or its checksums do not hold.
        """
        final = self.path(kind, key)
        if final.exists():
            return False
        tmp = self._build_folder(kind, key)
        try:
            try:
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                    tar.extractall(tmp, filter="data")
            except tarfile.TarError as exc:
                raise CacheCorruptError(f"cache entry {kind}/{key} arrived as an unreadable archive ({exc})") from None
            manifest = self._verified(tmp, kind, key)
            if manifest.get("kind", kind) != kind or manifest.get("key", key) != key:
                raise CacheCorruptError(
                    f"cache entry {kind}/{key} arrived with the manifest of {manifest.get('kind')}/{manifest.get('key')}"
                )
            return self._publish(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _build_folder(self, kind: str, key: str) -> Path:
        """A new private folder beside ``kind``'s entries (named for this writer) to build an entry in."""
        d = self._dir(kind)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / _tmp_name(key)
        tmp.mkdir()
        return tmp

    @staticmethod
    def _publish(tmp: Path, final: Path) -> bool:
        """Rename the finished folder ``tmp`` to ``final`` in one step. Returns ``False`` (and removes ``tmp``)
        when another writer published that entry first."""
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        return True

    def _quarantine(self, kind: str, key: str) -> None:
        path = self.path(kind, key)
        if path.exists():
            dest = self._dir(kind) / f".corrupt-{key}-{int(time.time())}-{uuid.uuid4().hex[:6]}"
            os.replace(path, dest)
            shutil.rmtree(dest, ignore_errors=True)

    def write(
        self,
        kind: str,
        key: str,
        build: Callable[[Path], dict[str, Any] | None],
        config: Any = None,
    ) -> CacheEntry:
        """Build an entry in a temporary folder with ``build(folder)`` and publish it atomically.

        ``build`` writes its files into ``folder`` and may return a JSON-able ``meta`` dict. If the
        final folder appeared meanwhile (another writer won), the new copy is discarded.
        """
        tmp = self._build_folder(kind, key)
        try:
            meta = build(tmp) or {}
            files = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file() and p.name != MANIFEST}
            manifest = {
                "kind": kind,
                "key": key,
                "schema": SCHEMA_VERSION,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "config": to_jsonable(config),
                "meta": to_jsonable(meta),
                "files": files,
            }
            mtmp = tmp / (MANIFEST + ".part")
            mtmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
            with open(mtmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(mtmp, tmp / MANIFEST)
            self._publish(tmp, self.path(kind, key))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        entry = self.load(kind, key)
        assert entry is not None
        return entry

    def get_or_create(
        self,
        kind: str,
        key: str,
        build: Callable[[Path], dict[str, Any] | None],
        config: Any = None,
    ) -> CacheOutcome:
        """Load ``(kind, key)`` or build it exactly once, repairing a corrupt entry."""
        note = None
        if not self.path(kind, key).exists():
            self._seed(kind, key)
        try:
            entry = self.load(kind, key)
            if entry is not None:
                return CacheOutcome(entry, "hit")
        except CacheCorruptError as exc:
            note = f"{exc}; it was removed and rebuilt."
        with self.lock(kind, key):
            try:
                entry = self.load(kind, key)
                if entry is not None:
                    return CacheOutcome(entry, "hit")
            except CacheCorruptError as exc:
                note = f"{exc}; it was removed and rebuilt."
                self._quarantine(kind, key)
            entry = self.write(kind, key, build, config)
            return CacheOutcome(entry, "rebuilt" if note else "built", note)

    def get_and_read(
        self,
        kind: str,
        key: str,
        build: Callable[[Path], dict[str, Any] | None],
        read: Callable[[CacheEntry], T],
        config: Any = None,
    ) -> tuple[CacheOutcome, T]:
        """:meth:`get_or_create`, then ``read(entry)``. An entry that ``read`` refuses with
        :class:`CacheCorruptError` (an older format, a file that cannot be loaded safely) is treated as a
        cache miss: removed and rebuilt once, and the outcome's note says so."""
        outcome = self.get_or_create(kind, key, build, config)
        try:
            return outcome, read(outcome.entry)
        except CacheCorruptError as exc:
            note = f"{exc}; it was removed and rebuilt."
        with self.lock(kind, key):
            try:  # another process may have rebuilt it meanwhile
                entry = self.load(kind, key)
                if entry is not None:
                    return CacheOutcome(entry, "hit"), read(entry)
            except CacheCorruptError as exc:
                note = f"{exc}; it was removed and rebuilt."
            self._quarantine(kind, key)
            entry = self.write(kind, key, build, config)
        return CacheOutcome(entry, "rebuilt", note), read(entry)

    def delete(self, kind: str, key: str) -> None:
        path = self.path(kind, key)
        if path.exists():
            shutil.rmtree(path)

    def sweep(self, older_than: float = _STALE_SECONDS) -> int:
        """Remove temporary and quarantined folders older than ``older_than`` seconds."""
        removed = 0
        if not self.root.is_dir():
            return 0
        now = time.time()
        for kind_dir in self.root.iterdir():
            if not kind_dir.is_dir():
                continue
            for p in kind_dir.iterdir():
                if p.name.startswith((".tmp-", ".corrupt-")) and now - p.stat().st_mtime > older_than:
                    shutil.rmtree(p, ignore_errors=True)
                    removed += 1
        return removed

    def sweep_process(self, pid: int) -> int:
        """Remove the build folders left by process ``pid`` (a worker that crashed or was ended)."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for kind_dir in self.root.iterdir():
            if kind_dir.is_dir():
                for p in kind_dir.glob(f".tmp-*-p{pid}-*"):
                    shutil.rmtree(p, ignore_errors=True)
                    removed += 1
        return removed

    def summary(self) -> dict[str, dict[str, int]]:
        """Per kind: number of entries and bytes on disk."""
        out: dict[str, dict[str, int]] = {}
        if not self.root.is_dir():
            return out
        for kind_dir in sorted(self.root.iterdir()):
            if not kind_dir.is_dir() or kind_dir.name.startswith("."):
                continue
            entries = [p for p in kind_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
            size = sum(f.stat().st_size for p in entries for f in p.rglob("*") if f.is_file())
            out[kind_dir.name] = {"entries": len(entries), "bytes": size}
        return out

    def entries(self, kind: str) -> list[CacheEntry]:
        """All readable entries of ``kind`` (corrupt ones are skipped)."""
        d = self._dir(kind)
        found = []
        if d.is_dir():
            for p in sorted(d.iterdir()):
                if p.is_dir() and not p.name.startswith("."):
                    try:
                        e = self.load(kind, p.name)
                    except CacheCorruptError:
                        continue
                    if e is not None:
                        found.append(e)
        return found
