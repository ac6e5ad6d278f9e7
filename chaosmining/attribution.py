"""One registry of post-hoc attribution methods, as thin adapters over Captum.

Every method has one signature: ``compute(request) -> Tensor`` with the input's shape. Entries carry
what the UI and the tests need: a display name, a paper link, the symbolic ground truth they are
compared with, and a parameter spec (bounds and defaults) from which the app builds its sidebar.

Notes on faithfulness to the paper and to Captum
------------------------------------------------
* ``saliency`` is the *signed* gradient (Captum ``abs=False``) so that it can be compared with the
  signed analytic derivative; ``saliency_abs`` is Captum's default ``|gradient|``, which the original
  code compared with signed derivatives (every negative derivative then scores 0).
* ``deeplift``: Captum has rules for ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus, max-pooling and
  Softmax. Other activations (GELU, the paper's default) are passed with their plain gradient, so on a
  GELU MLP DeepLift equals Input x Gradient ``(x - baseline) * dF/dx``. :func:`preflight` says so.
* ``random`` is a control: i.i.d. uniform scores, the floor of every metric.
"""

from __future__ import annotations

import time
import warnings
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from captum.attr import DeepLift, FeatureAblation, IntegratedGradients, Saliency
from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .errors import ConfigError
from .registry import Registry
from .validation import check_bool, check_choice, check_float, check_int

__all__ = [
    "ParamSpec",
    "MethodSpec",
    "AttributionRequest",
    "AttributionResult",
    "METHODS",
    "attribute",
    "resolve_params",
    "preflight",
    "measure_peak_memory",
    "KNOWN_NONLINEAR",
]


@dataclass(frozen=True)
class ParamSpec:
    """A user-settable parameter with bounds and a default; the app's sidebar is built from these."""

    name: str
    kind: Literal["int", "float", "choice", "bool"]
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""
    log: bool = False

    def validate(self, value: Any, owner: str) -> Any:
        if self.kind == "int":
            return check_int(value, self.name, owner=owner, low=self.low, high=self.high)  # type: ignore[arg-type]
        if self.kind == "float":
            return check_float(value, self.name, owner=owner, low=self.low, high=self.high)
        if self.kind == "bool":
            return check_bool(value, self.name, owner=owner)
        return check_choice(value, self.name, owner=owner, choices=self.choices)


@dataclass
class AttributionRequest:
    """Everything a method needs. ``inputs`` has a leading batch dimension."""

    model: nn.Module
    inputs: torch.Tensor
    target: int | torch.Tensor | None
    baselines: float | torch.Tensor
    params: dict[str, Any]
    generator: torch.Generator
    feature_mask: torch.Tensor | None = None


@dataclass(frozen=True)
class MethodSpec:
    """A registered attribution method."""

    name: str
    display_name: str
    short: str
    reference: str
    description: str
    compute: Callable[[AttributionRequest], torch.Tensor]
    params: tuple[ParamSpec, ...] = ()
    ground_truth: str | None = None
    uses_hooks: bool = False
    is_control: bool = False
    modalities: tuple[str, ...] = ("symbolic", "vision", "audio")


@dataclass(frozen=True)
class AttributionResult:
    """Attributions with the input's shape, plus what they cost."""

    method: str
    values: np.ndarray
    seconds: float
    peak_memory_bytes: int | None
    warnings: tuple[str, ...] = field(default_factory=tuple)


METHODS: Registry[MethodSpec] = Registry("attribution method")


def _saliency(req: AttributionRequest, absolute: bool) -> torch.Tensor:
    return Saliency(req.model).attribute(req.inputs, target=req.target, abs=absolute)


def _deeplift(req: AttributionRequest) -> torch.Tensor:
    with warnings.catch_warnings():
        # Captum warns that it sets hooks on activations; preflight() already told the user what matters.
        warnings.filterwarnings("ignore", message="Setting forward, backward hooks", category=UserWarning)
        return DeepLift(req.model).attribute(req.inputs, baselines=req.baselines, target=req.target)


def _integrated_gradients(req: AttributionRequest) -> torch.Tensor:
    steps = req.params["steps"]
    return IntegratedGradients(req.model).attribute(
        req.inputs,
        baselines=req.baselines,
        target=req.target,
        n_steps=steps,
        method=req.params["integration"],
        internal_batch_size=chunk_rows(req.inputs),
    )


def _feature_ablation(req: AttributionRequest) -> torch.Tensor:
    n_features = int(req.feature_mask.max()) + 1 if req.feature_mask is not None else req.inputs[0].numel()
    per_eval = max(1, min(n_features, 2_000_000 // max(1, req.inputs.numel())))
    return FeatureAblation(req.model).attribute(
        req.inputs,
        baselines=req.baselines,
        target=req.target,
        feature_mask=req.feature_mask,
        perturbations_per_eval=per_eval,
    )


def _random(req: AttributionRequest) -> torch.Tensor:
    values = torch.rand(req.inputs.shape, generator=req.generator)
    return values.to(req.inputs.device)


for _m in (
    MethodSpec(
        "saliency",
        "Saliency (signed gradient)",
        "SA",
        "https://arxiv.org/abs/1312.6034",
        "The gradient dF/dx of the output. Signed here, so it can be compared with the analytic "
        "derivative; rankings use |gradient|.",
        lambda r: _saliency(r, absolute=False),
        ground_truth="derivative",
    ),
    MethodSpec(
        "saliency_abs",
        "Saliency |gradient| (Captum default)",
        "SA|.|",
        "https://arxiv.org/abs/1312.6034",
        "Captum's default abs=True. The original code compared this with signed derivatives, so every "
        "negative derivative scores 0 in UScore; kept to show that pitfall.",
        lambda r: _saliency(r, absolute=True),
        ground_truth="derivative",
    ),
    MethodSpec(
        "deeplift",
        "DeepLift",
        "DL",
        "https://arxiv.org/abs/1704.02685",
        "Rescale rule relative to a zero baseline. Without a rule for the model's activation (GELU), "
        "Captum back-propagates plain gradients and the result equals Input x Gradient.",
        _deeplift,
        uses_hooks=True,
    ),
    MethodSpec(
        "integrated_gradients",
        "Integrated Gradients",
        "IG",
        "https://arxiv.org/abs/1703.01365",
        "Path integral of the gradient from a zero baseline to x.",
        _integrated_gradients,
        params=(
            ParamSpec("steps", "int", 20, 1, 1000, help="Integration steps (the paper: 20)."),
            ParamSpec(
                "integration",
                "choice",
                "gausslegendre",
                choices=("gausslegendre", "riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid"),
                help="Captum's quadrature rule (default Gauss-Legendre, as the original).",
            ),
        ),
        ground_truth="path_integral",
    ),
    MethodSpec(
        "feature_ablation",
        "Feature Ablation",
        "FA",
        "https://arxiv.org/abs/1311.2901",
        "F(x) - F(x with feature i set to the baseline 0), one feature (or feature group) at a time.",
        _feature_ablation,
        ground_truth="ablation",
    ),
    MethodSpec(
        "random",
        "Random control",
        "RND",
        "https://arxiv.org/abs/1806.10758",
        "I.i.d. uniform scores independent of the model: every metric's floor.",
        _random,
        is_control=True,
    ),
):
    METHODS.register(_m.name, _m)


def resolve_params(method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults of ``method`` updated with ``params``, each validated against its spec."""
    spec = METHODS.get(method)
    params = dict(params or {})
    known = {p.name for p in spec.params}
    unknown = set(params) - known
    if unknown:
        raise ConfigError(
            f"Unknown parameter(s) {sorted(unknown)} for method {method!r}; it accepts {sorted(known) or 'none'}."
        )
    owner = f"method {method!r}"
    return {p.name: p.validate(params.get(p.name, p.default), owner) for p in spec.params}


# Activation modules that are non-linear but have no DeepLift rule in Captum.
KNOWN_NONLINEAR: tuple[type[nn.Module], ...] = (
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.ReLU6,
    nn.SELU,
    nn.CELU,
    nn.PReLU,
    nn.RReLU,
    nn.LogSigmoid,
    nn.Softsign,
    nn.Tanhshrink,
    nn.GLU,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.LogSoftmax,
)


def _module_calls(model: nn.Module, example: torch.Tensor) -> Counter[str]:
    counts: Counter[str] = Counter()
    handles = []
    for name, module in model.named_modules():
        if not list(module.children()):
            handles.append(module.register_forward_hook(lambda m, i, o, name=name: counts.update([name])))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return counts


def preflight(model: nn.Module, method: str, example: torch.Tensor | None = None) -> list[str]:
    """Check before a run whether ``model`` suits ``method``; return warnings for the user.

    Raises
    ------
    ConfigError
        When a hook-based method cannot run correctly: a module instance used more than once in one
        forward pass (DeepLift's hooks would mix the two uses).
    """
    spec = METHODS.get(method)
    warnings: list[str] = []
    if not spec.uses_hooks:
        return warnings
    if example is not None:
        reused = [name for name, n in _module_calls(model, example[:1]).items() if n > 1]
        if reused:
            raise ConfigError(
                f"Method {method!r} cannot run on this model: module(s) {reused} are called more than once per "
                "forward pass, and hook-based methods need one module instance per use. Choose another method "
                "or a model that instantiates each activation and pooling layer separately."
            )
    if method == "deeplift":
        missing = sorted(
            {
                type(m).__name__
                for m in model.modules()
                if isinstance(m, KNOWN_NONLINEAR) and type(m) not in SUPPORTED_NON_LINEAR
            }
        )
        if missing:
            warnings.append(
                f"DeepLift has no rule for {', '.join(missing)}: Captum back-propagates the plain gradient through "
                "it, so on this model 'deeplift' computes Input x Gradient, (x - baseline) * dF/dx, not DeepLift's "
                "Rescale rule. Choose the ReLU, Tanh or ELU activation for genuine DeepLift."
            )
    return warnings


class _PeakMemory(TorchDispatchMode):
    """Counts the bytes of tensor storages created by aten ops while active (CPU tensors).

    Works below autograd, so backward passes are counted too; storages are released when the last
    tensor produced on them is garbage-collected. Unlike the torch profiler it prints nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] <= 0:
            del self.live[key]
            self.current -= entry[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)
        }
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type != "cpu":
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key == 0 or key in inputs:
                continue  # views and in-place results allocate nothing new
            if key in self.live:
                self.live[key][0] += 1
            else:
                self.live[key] = [1, storage.nbytes()]
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)
            weakref.finalize(t, self._release, key)
        return out


def measure_peak_memory(fn: Callable[[], Any], device: torch.device) -> tuple[Any, int | None]:
    """Run ``fn`` and return its result and the peak bytes of tensors it allocated.

    On CUDA this is ``max_memory_allocated`` above the starting level; on CPU the storages created by
    every aten op are tracked with a dispatch mode (torch tensors only, not Python objects).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        torch.cuda.synchronize(device)
        return out, int(torch.cuda.max_memory_allocated(device) - start)
    tracker = _PeakMemory()
    with tracker:
        out = fn()
    return out, int(tracker.peak)


def attribute(
    model: nn.Module,
    inputs: torch.Tensor | np.ndarray,
    method: str,
    *,
    target: int | torch.Tensor | None = None,
    baselines: float | torch.Tensor = 0.0,
    params: Mapping[str, Any] | None = None,
    feature_mask: torch.Tensor | None = None,
    seed: int = 0,
    measure_memory: bool = False,
) -> AttributionResult:
    """Attribute ``model``'s output for ``inputs`` with ``method``.

    Parameters
    ----------
    model : an ``nn.Module`` in eval mode (it is put in eval mode here; attributions are never
        computed with dropout on, unlike the original code).
    inputs : shape ``(n, ...)``.
    target : output index (class) to explain; ``0`` for a scalar regressor, ``None`` if the output is
        one value per sample.
    feature_mask : optional integer tensor grouping input elements (feature ablation over patches or
        channels); broadcastable to ``inputs``.

    Returns
    -------
    AttributionResult with ``values`` of the same shape as ``inputs``.

    Examples
    --------
    >>> lin = torch.nn.Linear(3, 1)
    >>> attribute(lin, torch.ones(2, 3), "saliency", target=0).values.shape
    (2, 3)
    """
    spec = METHODS.get(method)
    resolved = resolve_params(method, params)
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.as_tensor(inputs, dtype=torch.float32, device=device)
    notes = tuple(preflight(model, method, x))
    chunk = chunk_rows(x)

    def run() -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        parts = []
        for start in range(0, len(x), chunk):
            rows = slice(start, start + chunk)
            t = target[rows] if isinstance(target, torch.Tensor) and target.ndim > 0 else target
            b = (
                baselines[rows]
                if isinstance(baselines, torch.Tensor) and baselines.shape[:1] == x.shape[:1]
                else baselines
            )
            xc = x[rows].clone().requires_grad_(not spec.is_control)
            request = AttributionRequest(model, xc, t, b, resolved, gen, feature_mask)
            parts.append(spec.compute(request).detach())
        return torch.cat(parts)

    start = time.perf_counter()
    values = run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = None
    if measure_memory:
        _, peak = measure_peak_memory(run, device)
    return AttributionResult(method, values.cpu().numpy(), seconds, peak, notes)


def chunk_rows(x: torch.Tensor, budget: int = 4_000_000, most: int = 2000) -> int:
    """Rows attributed per call.

    Captum's gradient helper unbinds the batch into one autograd root per row, which grows faster than
    linearly (Saliency on 40,000 rows took 180x the time of 2,000 rows here), so batches stay small.
    """
    per_row = max(1, x[0].numel()) if len(x) else 1
    return int(max(1, min(most, budget // per_row)))
