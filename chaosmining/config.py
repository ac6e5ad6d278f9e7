"""Frozen configuration dataclasses with a stable hash used as the cache key."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, TypeVar

__all__ = ["ConfigBase", "field_default", "stable_hash", "to_jsonable", "SCHEMA_VERSION"]

# Bump when a change to the code makes old cache entries meaningless.
SCHEMA_VERSION = 1

C = TypeVar("C", bound="ConfigBase")


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, tuples and numpy scalars to plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    return obj


def field_default(cls: type, name: str) -> Any:
    """A config field's default, read without building a config (some defaults are invalid together):
    for command-line defaults and page widgets that must match the library's."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def stable_hash(payload: Any, length: int = 16) -> str:
    """SHA-256 of the canonical JSON of ``payload`` (sorted keys, no whitespace)."""
    text = json.dumps(to_jsonable(payload), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class ConfigBase:
    """Mixin for frozen, keyword-only config dataclasses.

    Subclasses validate in ``__post_init__``; ``config_hash`` depends only on the field values, the
    class name and :data:`SCHEMA_VERSION`, so it is stable across processes and machines.
    """

    def to_dict(self) -> dict[str, Any]:
        """Plain field values; ``from_dict``/the constructor accept them back."""
        return to_jsonable(self)

    def hash_payload(self) -> dict[str, Any]:
        """What the hash depends on: fields, nested configs' payloads (override to canonicalise)."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            out[f.name] = v.hash_payload() if isinstance(v, ConfigBase) else to_jsonable(v)
        return out

    @property
    def config_hash(self) -> str:
        return stable_hash({"kind": type(self).__name__, "schema": SCHEMA_VERSION, "fields": self.hash_payload()})

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
