"""Where the app, the shipped demo cache entries and the default cache live, in a checkout and installed.

In a checkout (the repository: ``pyproject.toml`` and ``app.py`` beside the ``chaosmining`` package,
also an editable install) everything stays where the repository has it: ``app.py``, ``pages/``,
``ui/``, ``assets/cache/`` and the cache in ``cache/``. A wheel (``pip install .``) installs the same
app files under ``chaosmining/_app/`` (see ``setup.py``), and the cache then defaults to the user's
cache folder (``$XDG_CACHE_HOME/chaosmining`` or ``~/.cache/chaosmining`` on Linux), never inside
site-packages. ``$CHAOSMINING_CACHE`` wins in both cases.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_path

__all__ = ["CACHE_ENV", "PACKAGE_DIR", "CHECKOUT_ROOT", "APP_ROOT", "ASSETS_ROOT", "default_cache_root"]

CACHE_ENV = "CHAOSMINING_CACHE"
PACKAGE_DIR = Path(__file__).resolve().parent


def _checkout_root() -> Path | None:
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "app.py").is_file() else None


CHECKOUT_ROOT = _checkout_root()
# The folder holding app.py, pages/, ui/, .streamlit/ and assets/: the repository, or the installed copy.
APP_ROOT = CHECKOUT_ROOT if CHECKOUT_ROOT is not None else PACKAGE_DIR / "_app"
ASSETS_ROOT = APP_ROOT / "assets" / "cache"


def default_cache_root() -> Path:
    """``$CHAOSMINING_CACHE``, else ``cache/`` in a checkout, else the user cache folder."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    if CHECKOUT_ROOT is not None:
        return CHECKOUT_ROOT / "cache"
    return user_cache_path("chaosmining", appauthor=False)
