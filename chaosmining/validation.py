"""Parameter validation at the public boundary, with one message template.

Messages follow scikit-learn's wording so that users and tests can rely on them::

    The 'lr' parameter of TrainConfig must be a float in (0, 10]. Got -1.0 instead.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from .errors import ConfigError

__all__ = ["param_error", "check_int", "check_float", "check_choice", "check_bool", "MESSAGE"]

MESSAGE = "The '{name}' parameter of {owner} must be {allowed}. Got {got!r} instead."


def param_error(name: str, owner: str, allowed: str, got: Any, hint: str = "") -> ConfigError:
    """Build the standard error for parameter ``name`` of ``owner``."""
    msg = MESSAGE.format(name=name, owner=owner, allowed=allowed, got=got)
    if hint:
        msg = f"{msg} {hint}"
    return ConfigError(msg)


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"


def check_int(
    value: Any,
    name: str,
    *,
    owner: str,
    low: int | None = None,
    high: int | None = None,
    hint: str = "",
) -> int:
    """Return ``value`` as an int in ``[low, high]`` or raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise param_error(name, owner, f"an int in {_interval(low, high, False, False)}", value, hint)
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise param_error(name, owner, f"an int in {_interval(low, high, False, False)}", value, hint)
    return value


def check_float(
    value: Any,
    name: str,
    *,
    owner: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> float:
    """Return ``value`` as a finite float inside the interval or raise :class:`ConfigError`."""
    allowed = f"a float in {_interval(low, high, low_open, high_open)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise param_error(name, owner, allowed, value, hint)
    value = float(value)
    if not math.isfinite(value):
        raise param_error(name, owner, allowed, value, hint)
    if low is not None and (value < low or (low_open and value == low)):
        raise param_error(name, owner, allowed, value, hint)
    if high is not None and (value > high or (high_open and value == high)):
        raise param_error(name, owner, allowed, value, hint)
    return value


def check_choice(value: Any, name: str, *, owner: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices`` or raise :class:`ConfigError` listing them."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise param_error(name, owner, f"one of {choices}", value)
    return value


def check_bool(value: Any, name: str, *, owner: str) -> bool:
    if not isinstance(value, bool):
        raise param_error(name, owner, "a bool", value)
    return value
