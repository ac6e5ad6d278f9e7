"""Data roots: the only server folders that paths typed in the browser may name.

Whoever starts the app decides which folders a browser may read through the "data root" and "CSV
path" fields: ``CHAOSMINING_DATA_ROOTS`` lists them, separated by ``os.pathsep`` (``:`` on Linux).
Without it the roots are :func:`default_roots`: a ``data/`` folder beside the cache root (for
``cache/`` at the repository root, ``data/`` at the repository root), Debian's dataset folder
``/usr/share/datasets`` (``dataset-fashion-mnist``) and Debian's wallpaper folder
``/usr/share/backgrounds`` (public images, the Vision page's "photos from a local folder" example).

:func:`resolve_user_path` resolves what was typed (``~``, ``..`` and every symbolic link, with
:func:`os.path.realpath`) and refuses anything that does not land under a root. Its messages name
the parameter, the roots and what was typed, and nothing else: never a file's content, never a
folder's listing, and the same refusal whether or not a path outside the roots exists.

The command line, run by its user on their own machine, does not call this module: it reads any path
its user gives. ``python -m chaosmining rerun`` does, because a bundle is data from someone else.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .cache import default_cache_root
from .errors import ConfigError
from .validation import MESSAGE

__all__ = [
    "DATA_ROOTS_ENV",
    "PathRefused",
    "allowed_roots",
    "default_roots",
    "resolve_user_path",
    "resolve_user_folder",
    "roots_text",
]

DATA_ROOTS_ENV = "CHAOSMINING_DATA_ROOTS"
_OWNER = "the app"
_SHOWN = 200  # characters of a typed path echoed back


class PathRefused(ConfigError):
    """A path typed in the browser is outside the data roots, missing, of the wrong kind or unreadable."""


def default_roots() -> tuple[Path, ...]:
    """The roots used when ``CHAOSMINING_DATA_ROOTS`` is unset or empty (see the module docstring)."""
    return (default_cache_root().parent / "data", Path("/usr/share/datasets"), Path("/usr/share/backgrounds"))


def allowed_roots() -> tuple[Path, ...]:
    """The data roots, resolved (symbolic links followed), in the order given, duplicates dropped.

    Read from ``CHAOSMINING_DATA_ROOTS`` at every call, so a test or a server restart picks up a change.
    Relative entries are taken from the current folder; empty entries are ignored.
    """
    env = os.environ.get(DATA_ROOTS_ENV, "")
    given = [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()] or list(default_roots())
    out: list[Path] = []
    for p in given:
        real = Path(os.path.realpath(p))
        if real not in out:
            out.append(real)
    return tuple(out)


def roots_text(roots: tuple[Path, ...] | None = None) -> str:
    """The roots as the messages name them: ``'/a', '/b'``."""
    return ", ".join(repr(str(r)) for r in (allowed_roots() if roots is None else roots))


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _readable(path: Path, kind: str) -> bool:
    """Whether the server can open ``path`` (nothing read from it is kept or shown)."""
    try:
        if kind == "file":
            with open(path, "rb") as fh:
                fh.read(1)
        else:
            with os.scandir(path):
                pass
    except OSError:
        return False
    return True


def under_roots(path: str | os.PathLike[str], roots: tuple[Path, ...] | None = None) -> bool:
    """Whether the real path of ``path`` lies under a data root (nothing is read)."""
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError):
        return False
    return any(_under(real, r) for r in (allowed_roots() if roots is None else roots))


def resolve_user_path(
    text: str,
    *,
    parameter: str,
    kind: str = "file",
    owner: str = _OWNER,
    roots: tuple[Path, ...] | None = None,
) -> Path:
    """The real path of ``text`` if it lies under a data root and is a readable ``kind``, else :class:`PathRefused`.

    Parameters
    ----------
    text : the path as typed (``~`` is expanded; a relative path is taken from the server's folder).
    parameter : the field's name, used in the message ("The 'CSV path' parameter of the app ...").
    kind : ``"file"`` (a readable regular file) or ``"folder"`` (a readable, listable folder).
    roots : the allowed roots; default :func:`allowed_roots`.

    Examples
    --------
    >>> resolve_user_path("/proc/self/environ", parameter="CSV path", roots=(Path("/srv/data"),))
    Traceback (most recent call last):
    ...
    chaosmining.sandbox.PathRefused: The 'CSV path' parameter of the app must be a path under one of the data \
roots '/srv/data' (whoever starts the server sets them in CHAOSMINING_DATA_ROOTS). Got '/proc/self/environ' instead.
    """
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', got {kind!r}")
    roots = allowed_roots() if roots is None else roots
    typed = str(text).strip()
    if not typed or "\x00" in typed:
        raise PathRefused(MESSAGE.format(name=parameter, owner=owner, allowed=f"a {kind} path", got=_shown(typed)))
    try:
        real = Path(os.path.realpath(Path(typed).expanduser()))
    except (OSError, ValueError, RuntimeError):  # unresolvable: a loop of links, a name too long
        real = None
    if real is None or not any(_under(real, r) for r in roots):
        # Decided before anything is read, and the same whether or not the path exists outside the roots.
        raise PathRefused(
            MESSAGE.format(
                name=parameter,
                owner=owner,
                allowed=f"a path under one of the data roots {roots_text(roots)} (whoever starts the server sets "
                f"them in {DATA_ROOTS_ENV})",
                got=_shown(typed),
            )
        )
    try:
        mode = real.stat().st_mode
    except OSError:
        mode = None
    wanted = stat.S_ISREG if kind == "file" else stat.S_ISDIR
    if mode is None or not wanted(mode):
        raise PathRefused(
            MESSAGE.format(
                name=parameter, owner=owner, allowed=f"an existing {kind} under the data roots", got=_shown(typed)
            )
        )
    if not _readable(real, kind):
        raise PathRefused(
            MESSAGE.format(name=parameter, owner=owner, allowed=f"a {kind} the server can read", got=_shown(typed))
            + " Ask whoever runs the server to make it readable."
        )
    return real


def resolve_user_folder(text: str, *, parameter: str, owner: str = _OWNER) -> str | None:
    """:func:`resolve_user_path` for an optional folder field: ``None`` when left blank, else the real path."""
    if not str(text).strip():
        return None
    return str(resolve_user_path(text, parameter=parameter, kind="folder", owner=owner))
