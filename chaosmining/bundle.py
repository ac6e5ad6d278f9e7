"""JSON bundles read back by ``python -m chaosmining rerun``: data from someone else, checked before use.

A bundle is plain JSON (never a pickle), so reading one cannot run code. :func:`read_bundle` also
makes sure it can do nothing else a re-run of its configuration would not: it refuses a file over
:data:`MAX_BUNDLE_BYTES`, JSON nested deeper than :data:`MAX_DEPTH`, a ``config`` that names a cache or
output folder (the cache and ``--export`` come from the command line only), and any path in the
``config`` (``*_root`` folders, ``csv:PATH`` tasks) outside the data roots of
:mod:`chaosmining.sandbox`, whoever exported it. Each command then builds its configuration with
:func:`config_from_bundle`, whose config classes validate every value (types, bounds, names), and a
wrong shape (an unknown key, a list for an object) becomes a :class:`ConfigError` naming the task.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError
from .sandbox import PathRefused, resolve_user_path

__all__ = ["MAX_BUNDLE_BYTES", "MAX_DEPTH", "read_bundle", "check_bundle", "config_from_bundle"]

MAX_BUNDLE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32
_FORBIDDEN_KEYS = frozenset({"cache", "cache_dir", "cache_root", "export", "export_dir", "output", "output_dir"})
_FOLDER_SUFFIXES = ("_root", "_dir", "_folder")
_FILE_SUFFIXES = ("_path", "_file")
T = TypeVar("T")


def read_bundle(path: str | Path) -> dict[str, Any]:
    """The checked bundle at ``path`` (see the module docstring); raises :class:`ConfigError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BUNDLE_BYTES:
            raise ConfigError(
                f"The 'bundle' argument must be a JSON file of at most {MAX_BUNDLE_BYTES // 2**20} MB. "
                f"Got {size / 2**20:.1f} MB instead."
            )
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"The 'bundle' argument could not be read as JSON: {type(exc).__name__}: {exc}") from None
    check_bundle(bundle)
    return bundle


def _walk(value: Any, where: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ConfigError(f"The bundle's '{where}' is nested more than {MAX_DEPTH} levels deep.")
    if isinstance(value, dict):
        for key, v in value.items():
            here = f"{where}.{key}"
            if key in _FORBIDDEN_KEYS:
                raise ConfigError(
                    f"The bundle's '{here}' is not allowed: a bundle cannot choose the cache or an output folder "
                    "(use --cache-dir and --export)."
                )
            if isinstance(v, str) and v:
                if key.endswith(_FOLDER_SUFFIXES):
                    _check_path(v, here, "folder")
                elif key.endswith(_FILE_SUFFIXES):
                    _check_path(v, here, "file")
                elif key == "task" and v.startswith("csv:"):
                    _check_path(v[4:], here, "file")
            _walk(v, here, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk(v, f"{where}[{i}]", depth + 1)


def _check_path(text: str, where: str, kind: str) -> None:
    try:
        resolve_user_path(text, parameter=where, kind=kind, owner="the bundle")
    except PathRefused as exc:
        raise ConfigError(f"{exc} A bundle may only name data under the data roots.") from None


def check_bundle(bundle: Any) -> None:
    """Refuse a bundle that is not an object with a string ``task`` and an object ``config``, or whose
    ``config`` names a cache or output folder or a path outside the data roots."""
    if not isinstance(bundle, dict):
        raise ConfigError(f"The bundle must be a JSON object. Got {type(bundle).__name__} instead.")
    task = bundle.get("task")
    if not isinstance(task, str):
        raise ConfigError(f"The bundle's 'task' must be a string. Got {task!r:.80} instead.")
    config = bundle.get("config", {})
    if not isinstance(config, dict):
        raise ConfigError(f"The bundle's 'config' must be an object. Got {type(config).__name__} instead.")
    results = bundle.get("results", {})
    if not isinstance(results, dict):
        raise ConfigError(f"The bundle's 'results' must be an object. Got {type(results).__name__} instead.")
    _walk(config, "config")


def _unknown_keys(given: Any, built: Any, where: str) -> None:
    """Refuse keys of ``given`` that the built configuration does not have (a typo or a crafted field)."""
    if not (isinstance(given, dict) and isinstance(built, dict)):
        return
    for key, value in given.items():
        if key not in built:
            raise ConfigError(f"The bundle's '{where}.{key}' is not a setting there; the settings are {sorted(built)}.")
        _unknown_keys(value, built[key], f"{where}.{key}")


def config_from_bundle(build: Callable[[Any], T], config: Any, task: str, where: str = "config") -> T:
    """``build(config)``, refusing keys the built configuration does not have. A wrong shape (a list for
    an object, a missing key) becomes a :class:`ConfigError` naming ``task``; the config classes' own
    errors (types, bounds, names) pass through unchanged."""
    try:
        built = build(config)
    except (TypeError, KeyError, AttributeError, IndexError) as exc:
        raise ConfigError(
            f"The bundle's '{where}' does not describe a {task!r} run: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    _unknown_keys(config, built.to_dict() if hasattr(built, "to_dict") else None, where)
    return built
