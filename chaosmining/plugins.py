"""Your own attribution method: register a function or a Captum-style class beside the built-in ones.

A registered method goes into the same :data:`chaosmining.attribution.METHODS` registry as Saliency or
Integrated Gradients, so it appears in every page's method list (with its parameters in the sidebar),
in the CLI's ``--methods``, in feature selection, and its scores reach the results store like any other.

Plugins are Python code chosen by whoever starts the process: ``--plugin MODULE_OR_FILE`` on the command
line, ``$CHAOSMINING_PLUGINS`` (comma-separated modules or ``.py`` files) for the app and the CLI, or a
package's entry point in the group ``chaosmining.methods``. The browser never uploads code.

A plugin that raises, returns another shape than its input's, or NaN fails alone: the run reports an
:class:`~chaosmining.errors.AttributionMethodError` for it and scores the other methods
(:func:`chaosmining.attribution.checked_compute`).

Examples
--------
>>> import torch
>>> def gradient_sign(model, inputs, *, target=None):
...     out = model(inputs)
...     out = out[:, target] if target is not None and out.dim() > 1 else out
...     return torch.autograd.grad(out.sum(), inputs)[0].sign()
>>> spec = register_method("gradient_sign_doc", gradient_sign, display_name="Gradient sign")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .attribution import METHODS, AttributionRequest, MethodSpec, ParamSpec
from .errors import PluginError
from .selection import SELECTORS

__all__ = [
    "register_method",
    "unregister_method",
    "load_plugin",
    "load_plugins",
    "PLUGINS_ENV",
    "ENTRY_POINT_GROUP",
    "loaded_plugins",
    "plugin_sources",
]

PLUGINS_ENV = "CHAOSMINING_PLUGINS"
ENTRY_POINT_GROUP = "chaosmining.methods"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_MODALITIES = ("symbolic", "vision", "audio")
# What a plugin may ask for besides its parameters (passed only when its signature names them).
_CONTEXT = ("target", "baselines", "feature_mask", "generator")

_lock = threading.RLock()
_loaded: dict[str, list[str]] = {}  # plugin spec (resolved) -> method names it registered
_sources: dict[str, Any] = {}  # method name -> the registered function or class
_scanned_entry_points = False  # installed packages do not change while the process runs


def _param_specs(name: str, params: Any) -> tuple[ParamSpec, ...]:
    """``params`` as ParamSpecs: a sequence of ParamSpec, or ``{name: default}`` / ``{name: ParamSpec}``."""
    if params is None:
        return ()
    if isinstance(params, Mapping):
        out = []
        for pname, value in params.items():
            if isinstance(value, ParamSpec):
                out.append(value)
            elif isinstance(value, bool):
                out.append(ParamSpec(pname, "bool", value))
            elif isinstance(value, int):
                out.append(ParamSpec(pname, "int", value))
            elif isinstance(value, float):
                out.append(ParamSpec(pname, "float", value))
            else:
                raise PluginError(
                    f"The 'params' parameter of register_method({name!r}) must map each parameter to an int, float "
                    f"or bool default, or to a ParamSpec. Got {pname}={value!r} instead."
                )
        return tuple(out)
    specs = tuple(params)
    if not all(isinstance(p, ParamSpec) for p in specs):
        raise PluginError(
            f"The 'params' parameter of register_method({name!r}) must be a mapping or a sequence of ParamSpec. "
            f"Got {params!r} instead."
        )
    return specs


def _accepted(fn: Callable[..., Any]) -> tuple[set[str], bool]:
    """Keyword names ``fn`` accepts, and whether it takes ``**kwargs``."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in sig.parameters.values() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return names, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def _adapter(fn_or_class: Any) -> Callable[[AttributionRequest], torch.Tensor]:
    """One ``compute(request)`` for a function ``fn(model, inputs, **kw)`` or a class ``C(model).attribute(inputs, **kw)``."""
    is_class = inspect.isclass(fn_or_class)
    call = fn_or_class.attribute if is_class else fn_or_class
    names, var_kw = _accepted(call)

    def compute(req: AttributionRequest) -> torch.Tensor:
        context = {k: getattr(req, k) for k in _CONTEXT}
        kwargs = {k: v for k, v in context.items() if var_kw or k in names}
        kwargs.update(req.params)
        with torch.enable_grad():  # callers may be under no_grad (the live FPrec curve during training)
            if is_class:
                return fn_or_class(req.model).attribute(req.inputs, **kwargs)
            return fn_or_class(req.model, req.inputs, **kwargs)

    return compute


def register_method(
    name: str,
    fn_or_class: Any,
    *,
    modalities: Sequence[str] = _MODALITIES,
    params: Mapping[str, Any] | Sequence[ParamSpec] | None = None,
    display_name: str | None = None,
    reference: str = "",
    description: str = "",
    short: str | None = None,
    ground_truth: str | None = None,
) -> MethodSpec:
    """Register a user's attribution method in :data:`chaosmining.attribution.METHODS`.

    Parameters
    ----------
    name : the registry name (lower case, digits and ``_``), as ``--methods`` takes it.
    fn_or_class : a function ``fn(model, inputs, *, target=None, baselines=0.0, **params) -> Tensor`` or
        a Captum-style class, instantiated as ``cls(model)`` and called as ``.attribute(inputs, **kw)``.
        ``inputs`` has shape ``(n, ...)`` and requires grad; the result must have the same shape. Only
        the context arguments the signature names (``target``, ``baselines``, ``feature_mask``,
        ``generator``; all with ``**kwargs``) are passed, plus the method's parameters.
    modalities : the pages that offer it, among 'symbolic', 'vision', 'audio'.
    params : ``{name: default}`` (int, float or bool) or a sequence of :class:`ParamSpec` with bounds.
    display_name, reference, description, short : what the pages and tables show (a paper link for
        ``reference``).
    ground_truth : a symbolic ground truth to compute the UScore against ('derivative', 'ablation' or
        'path_integral'), or None (FPrec only).

    Returns
    -------
    The registered :class:`MethodSpec`. Registering the same function again under the same name returns
    the existing entry (a re-imported plugin); another function under a taken name is refused.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(
            "The 'name' parameter of register_method must be lower case letters, digits and '_' (starting with a "
            f"letter, at most 48 characters). Got {name!r} instead."
        )
    if not (inspect.isclass(fn_or_class) and callable(getattr(fn_or_class, "attribute", None))) and not (
        callable(fn_or_class) and not inspect.isclass(fn_or_class)
    ):
        raise PluginError(
            f"The 'fn_or_class' parameter of register_method({name!r}) must be a function or a class with an "
            f"'attribute' method. Got {fn_or_class!r} instead."
        )
    mods = tuple(modalities)
    wrong = [m for m in mods if m not in _MODALITIES]
    if not mods or wrong:
        raise PluginError(
            f"The 'modalities' parameter of register_method({name!r}) must be a non-empty subset of "
            f"{list(_MODALITIES)}. Got {list(mods)} instead."
        )
    if ground_truth not in (None, "derivative", "ablation", "path_integral"):
        raise PluginError(
            f"The 'ground_truth' parameter of register_method({name!r}) must be None, 'derivative', 'ablation' or "
            f"'path_integral'. Got {ground_truth!r} instead."
        )
    param_specs = _param_specs(name, params)
    if ground_truth == "path_integral" and "steps" not in {p.name for p in param_specs}:
        raise PluginError(
            f"The 'ground_truth' parameter of register_method({name!r}) can be 'path_integral' only for a method "
            "with a 'steps' parameter."
        )
    with _lock:
        if name in METHODS:
            if _sources.get(name) is fn_or_class:
                return METHODS.get(name)
            raise PluginError(
                f"An attribution method named {name!r} is already registered; choose another name for this plugin."
            )
        spec = MethodSpec(
            name=name,
            display_name=display_name or name,
            short=short or (display_name or name)[:6],
            reference=reference,
            description=description or (inspect.getdoc(fn_or_class) or "").split("\n\n")[0],
            compute=_adapter(fn_or_class),
            params=param_specs,
            ground_truth=ground_truth,
            modalities=mods,
            plugin=True,
        )
        METHODS.register(name, spec)
        _sources[name] = fn_or_class
        return spec


def unregister_method(name: str) -> None:
    """Remove a plugin method (built-in methods cannot be removed); for tests and interactive sessions."""
    with _lock:
        if name not in _sources:
            raise PluginError(
                f"The 'name' parameter of unregister_method must name a plugin method. Got {name!r} instead."
            )
        del METHODS._entries[name]  # noqa: SLF001 - the registry has no public removal on purpose
        del _sources[name]
        for key in [k for k, names in _loaded.items() if name in names]:
            _loaded[key].remove(name)
            if not _loaded[key]:
                del _loaded[key]  # loading the plugin again registers it again
        SELECTORS._entries.pop(name, None)  # noqa: SLF001 - its RFEwNA selector, synced from METHODS


def _import_file(path: Path) -> None:
    module_name = f"chaosmining_plugin_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}_{abs(hash(str(path))) % 10**8}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"The plugin file {str(path)!r} could not be read as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise


def load_plugin(spec: str) -> list[str]:
    """Import one plugin, a module name (``mypkg.methods``) or a ``.py`` file; returns the methods it registered.

    Loading the same plugin again does nothing (the app reruns its script on every interaction).
    """
    text = spec.strip()
    is_file = text.endswith(".py") or os.sep in text
    key = str(Path(text).expanduser().resolve()) if is_file else text
    with _lock:
        if key in _loaded:
            return list(_loaded[key])
        before = set(METHODS.names())
        try:
            if is_file:
                path = Path(key)
                if not path.is_file():
                    raise PluginError(f"The plugin file {text!r} does not exist.")
                _import_file(path)
            else:
                importlib.import_module(text)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"The plugin {text!r} could not be loaded: {type(exc).__name__}: {exc}") from exc
        added = [n for n in METHODS.names() if n not in before]
        _loaded[key] = added
        return added


def _entry_points() -> Iterable[Any]:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def load_plugins(specs: Sequence[str] = (), *, env: bool = True, entry_points: bool = True) -> list[str]:
    """Load ``specs``, then ``$CHAOSMINING_PLUGINS`` and the ``chaosmining.methods`` entry points.

    An entry point names a module (importing it registers its methods) or a function or class, which is
    registered under the entry point's name with default options; entry points are read once per
    process once they all load (the app calls this on every rerun). Returns the names of the methods registered by this call.
    """
    global _scanned_entry_points
    added: list[str] = []
    wanted = list(specs)
    if env:
        wanted += [s for s in os.environ.get(PLUGINS_ENV, "").split(",") if s.strip()]
    for s in wanted:
        added += load_plugin(s)
    if entry_points and not _scanned_entry_points:
        for ep in _entry_points():
            key = f"entry-point:{ep.value}"
            with _lock:
                if key in _loaded:
                    continue
                before = set(METHODS.names())
                try:
                    obj = ep.load()
                except Exception as exc:
                    raise PluginError(
                        f"The plugin entry point {ep.name!r} ({ep.value}) could not be loaded: {type(exc).__name__}: "
                        f"{exc}"
                    ) from exc
                if not inspect.ismodule(obj) and ep.name not in METHODS:
                    register_method(ep.name, obj)
                _loaded[key] = [n for n in METHODS.names() if n not in before]
                added += _loaded[key]
        _scanned_entry_points = True  # not before: a broken entry point is reported again on the next call
    return added


def loaded_plugins() -> dict[str, list[str]]:
    """Loaded plugins (module, file or entry point) and the methods each registered."""
    with _lock:
        return {k: list(v) for k, v in _loaded.items()}


def plugin_sources() -> list[str]:
    """The plugin modules and files this process has loaded, as :func:`load_plugin` takes them: the run layer
    sends them with every run, so a worker started before a plugin was loaded (``--plugin``,
    ``CHAOSMINING_PLUGINS`` set later) loads it too. Entry points load in every process by themselves."""
    with _lock:
        return [k for k in _loaded if not k.startswith("entry-point:")]
