"""Shareable links: a page's settings live in the URL (``st.query_params``) and a copied link opens them again.

Every page keeps its widget values in ``st.session_state`` under a prefix (``sym_``, ``vis_``, ...). A page
declares which of them belong in a link with a small spec (session-state key without the prefix -> :class:`Field`),
then makes two calls::

    link = sync_query_params(P, LINK)   # after init_defaults, before the widgets are drawn
    ...                                 # the page
    link.finish()                       # at the end: the URL follows the final values

On a session's first run of the page, :func:`sync_query_params` reads the URL, checks every value against its
field (type, bounds, choices; paths against the data roots) and writes the valid ones into session state before
the widgets are drawn; a bad value gets an ``st.warning`` naming the parameter and the value used instead (shown
until the user changes a setting; text from the link is shown as code, never as Markdown). On
every run it writes the current values back, only those that differ from the page's defaults (recorded by
:func:`ui.common.init_defaults` through :func:`note_defaults`), so links stay short. A "Share this configuration"
box at the top of the sidebar shows the full link with a copy button.

Streamlit 1.67's own ``bind="query-params"`` needs an argument on every widget, uses the full widget key as the
parameter name and drops an invalid value silently; this module keeps the pages' widget calls as they are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import streamlit as st

from chaosmining.attribution import METHODS
from chaosmining.sandbox import under_roots

__all__ = [
    "Field",
    "integer",
    "number",
    "flag",
    "text",
    "path",
    "one_of",
    "some_of",
    "tab",
    "method_param_fields",
    "Link",
    "sync_query_params",
    "note_defaults",
    "begin_run",
    "encode",
    "parse",
]

Kind = Literal["int", "float", "bool", "text", "path", "choice", "choices"]
Choices = Sequence[Any] | Callable[[], Sequence[Any]]

_DEFAULTS = "_links_defaults"  # key -> the value a fresh session gives it (this run's first init_defaults)
_RUN_SEEN = "_links_run_seen"  # keys whose default was noted in this run
_LOADED = "_links_loaded_"  # + prefix: the URL of this page was read in this session
_PROBLEMS = "_links_problems_"  # + prefix: the opening link's problems, shown until a setting changes
_INT = re.compile(r"[+-]?\d+")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Field:
    """How one setting is written in a link and checked when a link is read.

    ``name`` is the URL parameter (default: the session-state key without the page prefix); ``choices`` may be
    a callable (a registry's ``names``) so that a new entry is accepted at once; ``default`` is needed only for
    widgets that get no default through ``init_defaults`` (tabs).
    """

    kind: Kind
    low: float | None = None
    high: float | None = None
    choices: Choices = ()
    name: str | None = None
    default: Any = None
    max_length: int = 2000

    def options(self) -> list[Any]:
        return list(self.choices() if callable(self.choices) else self.choices)

    def allowed(self) -> str:
        """What the field accepts, worded like :mod:`chaosmining.validation`'s messages."""
        if self.kind in ("int", "float"):
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            return f"{'an int' if self.kind == 'int' else 'a number'} in [{lo}, {hi}]"
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(repr(str(o)) for o in self.options())
        if self.kind == "choices":
            return "a comma-separated list of " + ", ".join(repr(str(o)) for o in self.options())
        if self.kind == "path":
            return "a path under the data roots (whoever starts the server sets them)"
        return f"a text of at most {self.max_length} characters"


def integer(low: int | None, high: int | None, **kw: Any) -> Field:
    return Field("int", low, high, **kw)


def number(low: float | None, high: float | None, **kw: Any) -> Field:
    return Field("float", low, high, **kw)


def flag(**kw: Any) -> Field:
    return Field("bool", **kw)


def text(max_length: int = 2000, **kw: Any) -> Field:
    return Field("text", max_length=max_length, **kw)


def path(**kw: Any) -> Field:
    """A server path typed in a field: a link may only name one under the data roots (nothing is read)."""
    return Field("path", **kw)


def one_of(choices: Choices, **kw: Any) -> Field:
    return Field("choice", choices=choices, **kw)


def some_of(choices: Choices, **kw: Any) -> Field:
    return Field("choices", choices=choices, **kw)


def tab(labels: Sequence[str], **kw: Any) -> Field:
    """The open tab of ``st.tabs(labels, key=..., on_change="rerun")``; the first is the default."""
    return Field("choice", choices=tuple(labels), default=labels[0], **kw)


def method_param_fields(methods: Iterable[str]) -> dict[str, Field]:
    """Fields for every parameter of ``methods`` as :func:`ui.common.method_params_widgets` draws them
    (key ``_param_<method>_<name>``, URL parameter ``<method>.<name>``), from the methods registry."""
    out: dict[str, Field] = {}
    for m in methods:
        for p in METHODS.get(m).params:
            kind = {"int": "int", "float": "float", "bool": "bool"}.get(p.kind, "choice")
            out[f"_param_{m}_{p.name}"] = Field(kind, p.low, p.high, choices=p.choices, name=f"{m}.{p.name}")  # type: ignore[arg-type]
    return out


def encode(f: Field, value: Any) -> str:
    """The URL text of ``value``: lists comma-joined, floats as Python writes them (exact round trip)."""
    if f.kind == "choices":
        return ",".join(str(v) for v in value)
    if f.kind == "bool":
        return "true" if value else "false"
    if f.kind == "int" and isinstance(value, int | float) and float(value).is_integer():
        return str(int(value))
    if f.kind == "float" and isinstance(value, int | float):
        return repr(float(value))
    return str(value)


def parse(f: Field, raw: str) -> Any:
    """The value of ``raw`` for field ``f``; ``ValueError`` when it is malformed or out of range."""
    raw = raw.strip() if f.kind not in ("text", "path") else raw
    if f.kind == "int":
        if not _INT.fullmatch(raw):
            raise ValueError
        value: Any = int(raw)
    elif f.kind == "float":
        value = float(raw)  # ValueError when malformed
        if not math.isfinite(value):
            raise ValueError
    elif f.kind == "bool":
        if raw.lower() not in _TRUE + _FALSE:
            raise ValueError
        return raw.lower() in _TRUE
    elif f.kind == "choice":
        by_text = {str(o): o for o in f.options()}
        if raw not in by_text:
            raise ValueError
        return by_text[raw]
    elif f.kind == "choices":
        by_text = {str(o): o for o in f.options()}
        items = [s.strip() for s in raw.split(",") if s.strip()]
        if any(s not in by_text for s in items) or len(set(items)) != len(items):
            raise ValueError
        return [by_text[s] for s in items]
    else:
        if len(raw) > f.max_length or "\x00" in raw:
            raise ValueError
        if f.kind == "path" and raw.strip() and not under_roots(raw.strip()):
            raise ValueError
        return raw
    if (f.low is not None and value < f.low) or (f.high is not None and value > f.high):
        raise ValueError
    return value


def begin_run() -> None:
    """Start a run's record of defaults (called by :func:`ui.common.setup_page`)."""
    st.session_state[_RUN_SEEN] = set()


def note_defaults(defaults: Mapping[str, Any]) -> None:
    """Remember the value a fresh session gives each key: the first ``init_defaults`` of the key in this run
    wins, as it does in session state (Vision's image-sized method defaults come before the registry's)."""
    seen = st.session_state.setdefault(_RUN_SEEN, set())
    known = st.session_state.setdefault(_DEFAULTS, {})
    for k, v in defaults.items():
        if k not in seen:
            seen.add(k)
            known[k] = v


@dataclass
class _Problem:
    name: str
    raw: str
    allowed: str
    key: str | None


@dataclass
class Link:
    """A page's link: :meth:`finish` at the end of the page writes the final values and the share box."""

    prefix: str
    spec: Mapping[str, Field]
    problems: list[_Problem] = field(default_factory=list)
    _warn_slot: Any = None
    _share_slot: Any = None

    def _url_name(self, suffix: str) -> str:
        return self.spec[suffix].name or suffix

    def _default(self, suffix: str) -> Any:
        key = self.prefix + suffix
        known = st.session_state.get(_DEFAULTS, {})
        return known[key] if key in known else self.spec[suffix].default

    def values(self) -> dict[str, str]:
        """The URL parameters of the current settings: those that differ from their default, as text."""
        out: dict[str, str] = {}
        for suffix, f in self.spec.items():
            key = self.prefix + suffix
            if key not in st.session_state:
                continue
            value = encode(f, st.session_state[key])
            default = self._default(suffix)
            if default is None or value != encode(f, default):
                out[self._url_name(suffix)] = value
        return out

    def write(self) -> None:
        """Bring ``st.query_params`` in line with the current settings (only parameters that change)."""
        wanted = self.values()
        for suffix in self.spec:
            name = self._url_name(suffix)
            if name in wanted:
                if st.query_params.get(name) != wanted[name]:
                    st.query_params[name] = wanted[name]
            elif name in st.query_params:
                del st.query_params[name]

    def url(self) -> str:
        base = st.context.url or ""
        query = urlencode(self.values())
        return f"{base}?{query}" if query else base or "?"

    def _show(self) -> None:
        if self.problems:
            with self._warn_slot.container():
                for p in self.problems:
                    st.warning(_problem_text(p), icon=":material/link_off:")
        with self._share_slot.container(), st.expander("Share this configuration", icon=":material/link:"):
            st.code(self.url(), language=None, wrap_lines=True)
            st.caption(
                "Copy the link with the button at the corner of the box: it opens this page with these settings, "
                "and the cached result at once. Uploaded files are not part of a link."
            )

    def _state(self) -> dict[str, str]:
        return {
            s: encode(f, st.session_state[self.prefix + s])
            for s, f in self.spec.items()
            if self.prefix + s in st.session_state
        }

    def _keep_problems(self) -> None:
        """The opening link's warnings stay while the settings are those it opened (a page may rerun itself at
        once, as a finished run does); the user's first change dismisses them."""
        stored = st.session_state.get(_PROBLEMS + self.prefix)
        if stored is None:
            return
        problems, seen = stored
        current = self._state()
        if seen is not None and any(current.get(s) != v for s, v in seen.items()):
            del st.session_state[_PROBLEMS + self.prefix]
            return
        self.problems = problems

    def finish(self) -> None:
        """At the end of the page: the URL and the share box follow the values this run ended with."""
        stored = st.session_state.get(_PROBLEMS + self.prefix)
        if stored is not None and stored[1] is None:
            st.session_state[_PROBLEMS + self.prefix] = (stored[0], self._state())
        self.write()
        self._show()


def _literal(value: Any) -> str:
    """``value`` as a code span: text from a link is shown, never rendered as Markdown (no links, no LaTeX)."""
    return "`" + repr(str(value)[:100]).replace("`", "'") + "`"


def _problem_text(p: _Problem) -> str:
    if p.key is None:
        return f"The link's parameter {_literal(p.name)} is not a setting of this page; it was ignored."
    used = st.session_state.get(p.key, "its default")
    shown = ",".join(map(str, used)) if isinstance(used, list | tuple) else used
    return (
        f"The '{p.name}' parameter of the link must be {p.allowed}. Got {_literal(p.raw)} instead; "
        f"the setting keeps {_literal(shown)}."
    )


def sync_query_params(prefix: str, spec: Mapping[str, Field]) -> Link:
    """Read the page's settings from the URL once per session (before the widgets), then keep the URL current.

    Call it after the page's ``init_defaults`` and before its widgets are drawn; call :meth:`Link.finish` at
    the end of the page. Returns the page's :class:`Link`.
    """
    link = Link(prefix, spec)
    by_name = {link._url_name(s): s for s in spec}
    if _LOADED + prefix not in st.session_state:
        st.session_state[_LOADED + prefix] = True
        for name in list(st.query_params.keys()):
            raw = st.query_params.get(name, "")
            suffix = by_name.get(name)
            if suffix is None:
                link.problems.append(_Problem(name, raw, "", None))
                del st.query_params[name]
                continue
            try:
                st.session_state[prefix + suffix] = parse(spec[suffix], raw)
            except ValueError:
                link.problems.append(_Problem(name, raw, spec[suffix].allowed(), prefix + suffix))
        if link.problems:
            st.session_state[_PROBLEMS + prefix] = (link.problems, None)
    else:
        link._keep_problems()
    link._warn_slot = st.empty()
    link._share_slot = st.sidebar.empty()
    link.write()
    link._show()
    return link
