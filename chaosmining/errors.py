"""Exceptions raised by the library.

Every error a user can cause is a :class:`ChaosMiningError`. Its message names the parameter, what is
allowed and what was given, and says how to recover; the CLI prints it on one line and the app shows it
with ``st.error``.
"""

from __future__ import annotations

__all__ = [
    "ChaosMiningError",
    "ConfigError",
    "FormulaError",
    "DataError",
    "ResourceError",
    "TrainingDivergedError",
    "CacheCorruptError",
    "JobCancelled",
    "AttributionMethodError",
    "PluginError",
]


class ChaosMiningError(Exception):
    """Base class of every error the library raises on purpose."""


class ConfigError(ChaosMiningError, ValueError):
    """A parameter is outside what is allowed."""


class FormulaError(ConfigError):
    """A typed formula was rejected before anything in it was evaluated."""


class DataError(ChaosMiningError, ValueError):
    """Data could not be generated or read as requested (non-finite values, bad layout, ...)."""


class ResourceError(ConfigError):
    """The requested size would not fit in this machine's memory."""


class TrainingDivergedError(ChaosMiningError, RuntimeError):
    """The loss became NaN or infinite during training."""


class CacheCorruptError(ChaosMiningError):
    """A cache entry failed its integrity check; it is removed and rebuilt."""


class JobCancelled(ChaosMiningError):
    """A running job was stopped by the user."""


class AttributionMethodError(ChaosMiningError):
    """One attribution method failed: it raised, or returned the wrong shape or non-finite values.

    The modalities catch it per method, so the run's other methods are still scored.
    """

    def __init__(self, method: str, problem: str, detail: str = "") -> None:
        self.method = method
        self.problem = problem
        why = f"{detail.rstrip('.')}. " if detail else ""
        super().__init__(
            f"Method {method!r} failed: it {problem}. {why}The run's other methods were scored; fix the method or "
            "leave it out."
        )


class PluginError(ConfigError):
    """A plugin (a user's attribution method) could not be loaded or registered."""
