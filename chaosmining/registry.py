"""One small generic registry per kind of thing (formulas, models, methods, metrics, ...).

The app's select boxes, the CLI's choices and the registry-parametrised tests all read these, so a new
entry shows up everywhere at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> entry mapping that rejects duplicates and explains unknown names.

    Examples
    --------
    >>> r = Registry("colour")
    >>> _ = r.register("red", 1)
    >>> r.get("red")
    1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None) -> T | Callable[[T], T]:
        """Register ``entry`` under ``name``; without ``entry``, return a decorator."""

        def _add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"A {self.kind} named {name!r} is already registered.")
            self._entries[name] = obj
            return obj

        if entry is None:
            return _add
        return _add(entry)

    def get(self, name: str) -> T:
        """Return the entry called ``name`` or raise :class:`ConfigError` listing valid names."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(
                f"Unknown {self.kind} {name!r}. Valid {self.kind} names are: {', '.join(self._entries)}."
            ) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
