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
* ``smoothgrad``, ``smoothgrad_sq`` and ``vargrad`` are Captum's ``NoiseTunnel`` over the signed
  gradient, with the noise's standard deviation given *in units of each sample's value range*
  (``noise_level * (max(x) - min(x))``, as Smilkov et al. define it). Captum draws the noise from
  torch's global generator; here it comes from the request's generator, so results are reproducible
  without global seeding.
* ``gradient_shap`` is Captum's GradientShap estimator (noisy input, a baseline drawn from the baseline
  distribution, a uniform point on the path, ``(x - baseline) * gradient``) with the draws taken from
  the request's generator: Captum's own class uses NumPy's and torch's global generators.
* ``guided_backprop`` modifies only ``nn.ReLU`` *modules*; on a model without them (the GELU MLP) it is
  the plain gradient, and ReLUs called as functions are not guided. :func:`preflight` says so.
* ``occlusion`` slides a window over the input's non-channel axes (tabular: features; audio ``(C, T)``:
  time within one channel; images ``(C, H, W)``: a square over all channels).
* ``kernel_shap`` fits Captum's KernelSHAP per sample over interpretable features: each feature
  (tabular), ``segments`` windows per channel (audio) or a ``segments x segments`` grid of patches
  (images), unless a ``feature_mask`` is given. It costs ``samples`` forward passes per input row.
"""

from __future__ import annotations

import threading
import time
import warnings
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from captum.attr import (
    DeepLift,
    FeatureAblation,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    KernelShap,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .errors import AttributionMethodError, ChaosMiningError, ConfigError, JobCancelled
from .registry import Registry
from .runtime import synchronize
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
    "NONLINEAR_FUNCTIONS",
    "functional_nonlinearities",
    "methods_for",
    "ModelTrace",
    "trace_model",
    "PREFLIGHT_CHECKS",
    "group_mask",
    "checked_compute",
    "InputGeometry",
    "ModalityNeeds",
    "method_defaults",
    "method_feature_mask",
    "method_availability",
    "patch_grid_mask",
    "channel_groups",
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
class InputGeometry:
    """What a method's per-modality needs depend on: the modality and the size of one input.

    ``canvas`` and ``patch`` (the foreground's side) for images; ``channels`` and ``samples`` for audio.
    """

    modality: str
    canvas: int = 224
    patch: int = 32
    channels: int = 10
    samples: int = 16_000


@dataclass(frozen=True)
class ModalityNeeds:
    """What a method needs on one modality, declared once with the method.

    ``defaults(geometry)`` gives parameter defaults that replace the registry's there (Occlusion's
    3-element window suits tabular rows but slides 49,284 windows over a 224-px image and 16,000 per
    audio channel). ``groups(geometry)`` gives the feature mask ``(1, *input shape)`` that groups input
    elements into the features the method removes (image patches, audio channels), or None.
    """

    defaults: Callable[[InputGeometry], dict[str, Any]] | None = None
    groups: Callable[[InputGeometry], torch.Tensor] | None = None


@dataclass(frozen=True)
class MethodSpec:
    """A registered attribution method.

    ``modalities`` lists the pages that offer it; ``checks`` names the :data:`PREFLIGHT_CHECKS` run
    before it (hook-based methods only); ``needs`` maps a modality to its :class:`ModalityNeeds`
    (parameter defaults and feature groups there), read through :func:`method_defaults` and
    :func:`method_feature_mask` by every experiment, page and the CLI. ``plugin`` marks a user's method
    (:func:`chaosmining.plugins.register_method`): whatever it raises becomes an
    :class:`~chaosmining.errors.AttributionMethodError` naming it (:func:`checked_compute`).
    """

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
    checks: tuple[str, ...] = ()
    needs: Mapping[str, ModalityNeeds] = field(default_factory=dict)
    plugin: bool = False


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


def _sample_range(x: torch.Tensor) -> torch.Tensor:
    """Per-row value range ``max - min`` over all of a row's elements, shape ``(n,)`` (1 where constant)."""
    flat = x.detach().reshape(len(x), -1)
    span = flat.max(dim=1).values - flat.min(dim=1).values
    return torch.where(span > 0, span, torch.ones_like(span))


def _per_row(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape ``(n,)`` to broadcast over the rows of ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


class _SeededNoiseTunnel(NoiseTunnel):
    """Captum's NoiseTunnel with the noise drawn from ``generator`` and scaled by each row's range.

    Captum calls ``stdevs * N(0, 1)`` with torch's global generator; here row ``i`` gets noise of
    standard deviation ``stdevs * scale[i]``, drawn from the generator of the request.
    """

    def __init__(self, method: Any, generator: torch.Generator, scale: torch.Tensor) -> None:
        super().__init__(method)
        self._generator = generator
        self._scale = scale

    def _add_noise_to_input(self, input: torch.Tensor, stdev: float, nt_samples_partition: int) -> torch.Tensor:  # noqa: A002
        expanded = input.repeat_interleave(nt_samples_partition, dim=0)
        std = _per_row(self._scale.repeat_interleave(nt_samples_partition) * stdev, expanded)
        noise = torch.randn(expanded.shape, generator=self._generator, dtype=input.dtype).to(input.device)
        return expanded + noise * std.to(input.device)


def _noise_batch(req: AttributionRequest, samples: int) -> int:
    """Noisy copies per Captum call: at most about 4 million input elements and 4000 rows per call
    (Captum's gradient helper slows down more than linearly with the rows of one call)."""
    per_call = min(4_000_000 // max(1, req.inputs.numel()), 4000 // max(1, len(req.inputs)))
    return int(max(1, min(samples, per_call)))


def _noise_tunnel(req: AttributionRequest, nt_type: str) -> torch.Tensor:
    samples = req.params["samples"]
    tunnel = _SeededNoiseTunnel(Saliency(req.model), req.generator, _sample_range(req.inputs))
    return tunnel.attribute(
        req.inputs,
        nt_type=nt_type,
        nt_samples=samples,
        nt_samples_batch_size=_noise_batch(req, samples),
        stdevs=float(req.params["noise_level"]),
        target=req.target,
        abs=False,
    )


def _input_x_gradient(req: AttributionRequest) -> torch.Tensor:
    return InputXGradient(req.model).attribute(req.inputs, target=req.target)


def _guided_backprop(req: AttributionRequest) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks", category=UserWarning)
        return GuidedBackprop(req.model).attribute(req.inputs, target=req.target)


def _baseline_draws(baselines: float | torch.Tensor, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One baseline per row of ``x``: the scalar, the row's own baseline, or a draw from a distribution.

    A tensor whose first dimension differs from the batch (shape ``(k, *x.shape[1:])``) is a baseline
    distribution; each row draws one of its ``k`` members uniformly.
    """
    if not isinstance(baselines, torch.Tensor):
        return torch.full_like(x, float(baselines))
    b = baselines.to(x.device, x.dtype)
    if b.shape == x.shape:
        return b
    if b.dim() == x.dim() and b.shape[1:] == x.shape[1:]:
        idx = torch.randint(len(b), (len(x),), generator=gen)
        return b[idx.to(b.device)]
    return b.expand_as(x)


def _gradient_shap(req: AttributionRequest) -> torch.Tensor:
    x = req.inputs.detach()
    scale = _per_row(_sample_range(x) * float(req.params["noise_level"]), x)
    saliency = Saliency(req.model)
    total = torch.zeros_like(x)
    samples = req.params["samples"]
    for _ in range(samples):
        noisy = x + torch.randn(x.shape, generator=req.generator, dtype=x.dtype).to(x.device) * scale
        base = _baseline_draws(req.baselines, x, req.generator)
        alpha = _per_row(torch.rand(len(x), generator=req.generator, dtype=x.dtype).to(x.device), x)
        point = (base + alpha * (noisy - base)).requires_grad_()
        total += (noisy - base) * saliency.attribute(point, target=req.target, abs=False)
    return total / samples


def _occlusion_window(shape: tuple[int, ...], window: int, stride: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Sliding-window and stride shapes for one row of shape ``shape`` (channel axis first)."""
    if stride > window:
        raise ConfigError(
            f"The 'stride' parameter of method 'occlusion' must be an int in [1, window={window}] (Captum slides "
            f"windows that overlap or touch). Got {stride} instead."
        )
    if len(shape) == 1:
        w = min(window, shape[0])
        return (w,), (min(stride, w),)
    if len(shape) == 2:  # (channels, time): a window along time within one channel
        w = min(window, shape[1])
        return (1, w), (1, min(stride, w))
    sizes = tuple(min(window, s) for s in shape[1:])
    return (shape[0], *sizes), (shape[0], *(min(stride, s) for s in sizes))


def _occlusion(req: AttributionRequest) -> torch.Tensor:
    window, stride = _occlusion_window(tuple(req.inputs.shape[1:]), req.params["window"], req.params["stride"])
    per_eval = max(1, min(64, 2_000_000 // max(1, req.inputs.numel())))
    return Occlusion(req.model).attribute(
        req.inputs,
        sliding_window_shapes=window,
        strides=stride,
        baselines=req.baselines,
        target=req.target,
        perturbations_per_eval=per_eval,
    )


def group_mask(shape: tuple[int, ...], segments: int) -> torch.Tensor | None:
    """Interpretable features for one row of shape ``shape``: ``None`` (every element) for tabular rows,
    ``segments`` windows along time per channel for ``(C, T)``, a ``segments x segments`` grid of
    patches shared by all channels for ``(C, H, W)``. Returns an integer mask of shape ``(1, *shape)``.
    """
    if len(shape) <= 1:
        return None
    if len(shape) == 2:
        c, t = shape
        seg = torch.clamp(torch.arange(t) * min(segments, t) // t, max=min(segments, t) - 1)
        return (torch.arange(c)[:, None] * min(segments, t) + seg[None, :]).unsqueeze(0)
    h, w = shape[-2], shape[-1]
    sh, sw = min(segments, h), min(segments, w)
    rows = torch.arange(h) * sh // h
    cols = torch.arange(w) * sw // w
    grid = rows[:, None] * sw + cols[None, :]
    return grid.expand(shape).unsqueeze(0).contiguous()


def patch_grid_mask(canvas: int, patch: int) -> torch.Tensor:
    """Image features: a grid of ``patch``-px squares, ``(1, 1, canvas, canvas)`` int64 (shared by the
    colour channels). At 224 px with 32-px patches this is the paper's 7x7 grid of 49 patches."""
    idx = torch.arange(canvas) // patch
    cols = -(-canvas // patch)
    return (idx[:, None] * cols + idx[None, :]).reshape(1, 1, canvas, canvas)


def channel_groups(channels: int) -> torch.Tensor:
    """Audio features: each channel one feature, ``(1, C, 1)`` (broadcast over time)."""
    return torch.arange(channels).view(1, channels, 1)


class _SeededKernelShap(KernelShap):
    """Captum's KernelSHAP with its coalitions drawn from ``generator`` (Captum uses the global one)."""

    def __init__(self, model: nn.Module, generator: torch.Generator) -> None:
        super().__init__(model)
        self._generator = generator

    def kernel_shap_perturb_generator(self, original_inp: Any, **kwargs: Any):  # noqa: ANN201
        num_features = int(kwargs["num_interp_features"])
        probs = kwargs["num_select_distribution"].probs
        device = original_inp.device if isinstance(original_inp, torch.Tensor) else original_inp[0].device
        yield torch.ones(1, num_features, device=device, dtype=torch.long)
        yield torch.zeros(1, num_features, device=device, dtype=torch.long)
        while True:
            k = int(torch.multinomial(probs, 1, generator=self._generator))
            order = torch.randperm(num_features, generator=self._generator)[:k]
            draw = torch.zeros(1, num_features, dtype=torch.long)
            draw[0, order] = 1
            yield draw.to(device)


def _kernel_shap(req: AttributionRequest) -> torch.Tensor:
    mask = req.feature_mask
    if mask is None:
        mask = group_mask(tuple(req.inputs.shape[1:]), req.params["segments"])
    if mask is not None:
        mask = mask.to(req.inputs.device)
    samples = req.params["samples"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        return _SeededKernelShap(req.model, req.generator).attribute(
            req.inputs.detach(),
            baselines=req.baselines,
            target=req.target,
            feature_mask=mask,
            n_samples=samples,
            perturbations_per_eval=max(1, min(samples, 2_000_000 // max(1, req.inputs[0].numel()))),
        )


_NOISE_PARAMS = (
    ParamSpec("samples", "int", 25, 1, 1000, help="Noisy copies averaged per input (Smilkov et al.: 50)."),
    ParamSpec(
        "noise_level",
        "float",
        0.15,
        0.0,
        2.0,
        help="Noise standard deviation in units of each sample's value range, max(x) - min(x) "
        "(Smilkov et al. recommend 0.1-0.2).",
    ),
)


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
        checks=("reused_modules", "deeplift_rules", "functional_nonlinear"),
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
        needs={
            # the paper's grid of foreground-sized patches; one feature per audio channel
            "vision": ModalityNeeds(groups=lambda g: patch_grid_mask(g.canvas, g.patch)),
            "audio": ModalityNeeds(groups=lambda g: channel_groups(g.channels)),
        },
    ),
    MethodSpec(
        "input_x_gradient",
        "Input x Gradient",
        "IxG",
        "https://arxiv.org/abs/1605.01713",
        "The input times the gradient, x * dF/dx (Shrikumar et al.); on a linear model with a zero baseline it "
        "equals Integrated Gradients and satisfies Sensitivity-n for every n.",
        _input_x_gradient,
    ),
    MethodSpec(
        "smoothgrad",
        "SmoothGrad",
        "SG",
        "https://arxiv.org/abs/1706.03825",
        "The signed gradient averaged over noisy copies of the input (Captum NoiseTunnel); the noise is given in "
        "units of each sample's value range.",
        lambda r: _noise_tunnel(r, "smoothgrad"),
        params=_NOISE_PARAMS,
    ),
    MethodSpec(
        "smoothgrad_sq",
        "SmoothGrad-squared",
        "SG2",
        "https://arxiv.org/abs/1806.10758",
        "The mean of the squared gradient over noisy copies (Hooker et al.'s SG-SQ, which beat random under ROAR "
        "on ImageNet); always non-negative.",
        lambda r: _noise_tunnel(r, "smoothgrad_sq"),
        params=_NOISE_PARAMS,
    ),
    MethodSpec(
        "vargrad",
        "VarGrad",
        "VG",
        "https://arxiv.org/abs/1810.03292",
        "The variance of the gradient over noisy copies (Adebayo et al.); non-negative, like SmoothGrad-squared.",
        lambda r: _noise_tunnel(r, "vargrad"),
        params=_NOISE_PARAMS,
    ),
    MethodSpec(
        "guided_backprop",
        "Guided Backprop",
        "GBP",
        "https://arxiv.org/abs/1412.6806",
        "The gradient with negative signals zeroed at every ReLU on the way back. Only nn.ReLU modules are "
        "modified: on a model without them it is the plain gradient. Known to fail the parameter-randomisation "
        "sanity check (Adebayo et al.).",
        _guided_backprop,
        uses_hooks=True,
        checks=("relu_modules", "functional_relu"),
    ),
    MethodSpec(
        "gradient_shap",
        "GradientShap",
        "GS",
        "https://arxiv.org/abs/1705.07874",
        "Expected gradients: (x - b) * dF/dx at a uniform point between a baseline b and a noisy copy of x, "
        "averaged over draws (Captum's estimator, with seeded draws). With a zero baseline it is a stochastic "
        "Integrated Gradients.",
        _gradient_shap,
        params=(
            ParamSpec("samples", "int", 20, 1, 1000, help="Draws of (baseline, point on the path, noise) per input."),
            ParamSpec(
                "noise_level",
                "float",
                0.0,
                0.0,
                2.0,
                help="Noise added to the input, in units of each sample's value range (Captum's default: none).",
            ),
        ),
    ),
    MethodSpec(
        "occlusion",
        "Occlusion",
        "OCC",
        "https://arxiv.org/abs/1311.2901",
        "F(x) - F(x with a sliding window set to the baseline 0), averaged over the windows covering each "
        "element. Window 1 on tabular data equals Feature Ablation.",
        _occlusion,
        params=(
            ParamSpec(
                "window",
                "int",
                3,
                1,
                4096,
                help="Window length along each non-channel axis (features, time steps or pixels; capped at the axis "
                "length).",
            ),
            ParamSpec("stride", "int", 1, 1, 4096, help="Step between windows; at most the window."),
        ),
        needs={
            # a foreground-sized window at half-window steps; 0.1-s windows along each audio channel
            "vision": ModalityNeeds(defaults=lambda g: {"window": g.patch, "stride": max(1, g.patch // 2)}),
            "audio": ModalityNeeds(defaults=lambda g: {"window": g.samples // 10, "stride": g.samples // 10}),
        },
    ),
    MethodSpec(
        "kernel_shap",
        "KernelSHAP",
        "KS",
        "https://arxiv.org/abs/1705.07874",
        "Shapley values estimated by a weighted linear fit over random coalitions of interpretable features, "
        "which are set to the baseline 0 when absent. Slow: one linear fit and 'samples' forward passes per row.",
        _kernel_shap,
        params=(
            ParamSpec("samples", "int", 100, 10, 100_000, help="Coalitions sampled per input row.", log=True),
            ParamSpec(
                "segments",
                "int",
                4,
                1,
                64,
                help="Images: a segments x segments grid of patches; audio: windows per channel; tabular data use "
                "every feature.",
            ),
        ),
        needs={
            # foreground-sized patches; ten 0.1-s windows per audio channel
            "vision": ModalityNeeds(defaults=lambda g: {"segments": max(1, g.canvas // g.patch)}),
            "audio": ModalityNeeds(defaults=lambda g: {"segments": 10}),
        },
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


def methods_for(modality: str) -> list[str]:
    """Registered methods that apply to ``modality`` ('symbolic', 'vision' or 'audio'), in registry order."""
    return [name for name, spec in METHODS.items() if modality in spec.modalities]


def method_defaults(method: str, geometry: InputGeometry | None = None) -> dict[str, Any]:
    """``method``'s parameters with the defaults its registry entry declares for ``geometry``'s
    modality (the registry's own defaults elsewhere), validated.

    Examples
    --------
    >>> method_defaults("occlusion", InputGeometry("vision", canvas=224, patch=32))
    {'window': 32, 'stride': 16}
    >>> method_defaults("occlusion")
    {'window': 3, 'stride': 1}
    """
    needs = METHODS.get(method).needs.get(geometry.modality) if geometry is not None else None
    return resolve_params(method, needs.defaults(geometry) if needs is not None and needs.defaults else {})


def method_feature_mask(method: str, geometry: InputGeometry) -> torch.Tensor | None:
    """The feature groups ``method`` removes on ``geometry``'s modality (``(1, *input shape)``), or None."""
    needs = METHODS.get(method).needs.get(geometry.modality)
    return needs.groups(geometry) if needs is not None and needs.groups else None


def method_availability(model: nn.Module, method: str, example: torch.Tensor) -> tuple[str | None, list[str]]:
    """Whether ``model`` can run ``method``: ``(reason it cannot, or None; notes for the user)``.

    Runs the method's pre-flight checks (:func:`preflight`) on one ``example`` row in eval mode; a
    check that refuses the model gives the reason. Every modality asks this before attributing, and
    reports a refused method beside the others' scores instead of failing the run.
    """
    was_training = model.training
    model.eval()
    try:
        return None, preflight(model, method, example[:1])
    except ConfigError as exc:
        return str(exc), []
    finally:
        model.train(was_training)


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


# Non-linear functions that hook-based methods cannot see when they are called as functions rather
# than through an activation module (``torch.relu``, ``F.gelu``, ``x.sigmoid()``, ``F.max_pool2d``...).
NONLINEAR_FUNCTIONS: frozenset[str] = frozenset(
    {
        "relu",
        "relu_",
        "relu6",
        "gelu",
        "silu",
        "mish",
        "elu",
        "selu",
        "celu",
        "leaky_relu",
        "prelu",
        "softplus",
        "sigmoid",
        "tanh",
        "hardtanh",
        "hardswish",
        "hardsigmoid",
        "logsigmoid",
        "softsign",
        "softmax",
        "log_softmax",
        "glu",
        "max_pool1d",
        "max_pool2d",
        "max_pool3d",
        "max_pool1d_with_indices",
        "max_pool2d_with_indices",
        "max_pool3d_with_indices",
        "adaptive_max_pool1d",
        "adaptive_max_pool2d",
    }
)
_ACTIVATION_MODULE_FILES = ("torch.nn.modules.activation", "torch.nn.modules.pooling")


@dataclass(frozen=True)
class ModelTrace:
    """What one forward pass of one row revealed.

    ``calls`` counts the calls of each leaf module; ``functional`` lists ``(function, module)`` pairs of
    non-linear functions called outside an activation or pooling module (``module`` is the class whose
    ``forward`` called them).
    """

    calls: Counter[str]
    functional: tuple[tuple[str, str], ...]


class _FunctionRecorder(TorchFunctionMode):
    def __init__(self, stack: list[nn.Module]) -> None:
        super().__init__()
        self.stack = stack
        self.found: list[tuple[str, str]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        name = getattr(func, "__name__", "")
        if name in NONLINEAR_FUNCTIONS:
            owner = self.stack[-1] if self.stack else None
            inside_activation = (
                owner is not None and not list(owner.children()) and type(owner).__module__ in _ACTIVATION_MODULE_FILES
            )
            if not inside_activation:
                pair = (name, type(owner).__name__ if owner is not None else "the forward function")
                if pair not in self.found:
                    self.found.append(pair)
        return func(*args, **(kwargs or {}))


_TRACE_LOCK = threading.Lock()


def trace_model(model: nn.Module, example: torch.Tensor) -> ModelTrace:
    """Run ``model`` on ``example`` (one row is enough) and record module calls and functional non-linearities.

    The trace hangs hooks on the model for one forward pass. Models shared between threads (the app caches
    one probe model per architecture for every session) are traced one at a time, so concurrent requests
    never see each other's hooks.
    """
    with _TRACE_LOCK:
        return _trace(model, example)


def _trace(model: nn.Module, example: torch.Tensor) -> ModelTrace:
    counts: Counter[str] = Counter()
    stack: list[nn.Module] = []
    handles = []

    def enter(module: nn.Module, _inputs: Any) -> None:
        stack.append(module)

    def leave(_module: nn.Module, _inputs: Any, _output: Any) -> None:
        stack.pop()  # a hook that returned a value would replace the module's output

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
        if not list(module.children()):
            handles.append(module.register_forward_hook(lambda m, i, o, name=name: counts.update([name])))
    recorder = _FunctionRecorder(stack)
    try:
        with torch.no_grad(), recorder:
            model(example)
    finally:
        for h in handles:
            h.remove()
    return ModelTrace(counts, tuple(recorder.found))


def functional_nonlinearities(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """``(function, calling module)`` pairs of non-linearities ``model`` calls as functions."""
    return list(trace_model(model, example[:1]).functional)


PreflightCheck = Callable[[nn.Module, str, "ModelTrace | None"], list[str]]
PREFLIGHT_CHECKS: Registry[PreflightCheck] = Registry("pre-flight check")


@PREFLIGHT_CHECKS.register("reused_modules")
def _check_reused(model: nn.Module, method: str, trace: ModelTrace | None) -> list[str]:
    reused = [name for name, n in trace.calls.items() if n > 1] if trace is not None else []
    if reused:
        raise ConfigError(
            f"Method {method!r} cannot run on this model: module(s) {reused} are called more than once per "
            "forward pass, and hook-based methods need one module instance per use. Choose another method "
            "or a model that instantiates each activation and pooling layer separately."
        )
    return []


@PREFLIGHT_CHECKS.register("deeplift_rules")
def _check_deeplift_rules(model: nn.Module, method: str, trace: ModelTrace | None) -> list[str]:
    notes = []
    missing = sorted(
        {
            type(m).__name__
            for m in model.modules()
            if isinstance(m, KNOWN_NONLINEAR) and type(m) not in SUPPORTED_NON_LINEAR
        }
    )
    ruled = any(type(m) in SUPPORTED_NON_LINEAR for m in model.modules())
    if missing and not ruled:
        notes.append(
            f"DeepLift has no rule for {', '.join(missing)}: Captum back-propagates the plain gradient through "
            "it, so on this model 'deeplift' computes Input x Gradient, (x - baseline) * dF/dx, not DeepLift's "
            "Rescale rule. Choose the ReLU, Tanh or ELU activation for genuine DeepLift."
        )
    elif missing:
        notes.append(
            f"DeepLift has no rule for {', '.join(missing)}: Captum back-propagates the plain gradient through "
            "it, so DeepLift's Rescale rule applies only to the model's other non-linearities."
        )
    recurrent = sorted({type(m).__name__ for m in model.modules() if isinstance(m, nn.RNNBase)})
    if recurrent:
        notes.append(
            f"DeepLift has no rule for the gates inside {', '.join(recurrent)}: their sigmoid and tanh are computed "
            "inside one fused operation, so 'deeplift' passes the plain gradient through the recurrent layers."
        )
    return notes


def _functional_note(method: str, pairs: list[tuple[str, str]]) -> str:
    where = ", ".join(f"{f}() in {owner}" for f, owner in pairs)
    return (
        f"'{method}' sees only modules, but this model calls {where} as function(s): those non-linearities get "
        "the plain gradient, so the result mixes the method with ordinary back-propagation. Use one activation "
        "module (nn.ReLU(), nn.MaxPool2d(), ...) per use for a faithful result."
    )


@PREFLIGHT_CHECKS.register("functional_nonlinear")
def _check_functional(model: nn.Module, method: str, trace: ModelTrace | None) -> list[str]:
    pairs = list(trace.functional) if trace is not None else []
    return [_functional_note(method, pairs)] if pairs else []


@PREFLIGHT_CHECKS.register("functional_relu")
def _check_functional_relu(model: nn.Module, method: str, trace: ModelTrace | None) -> list[str]:
    pairs = [p for p in (trace.functional if trace is not None else ()) if p[0] in ("relu", "relu_")]
    return [_functional_note(method, pairs)] if pairs else []


@PREFLIGHT_CHECKS.register("relu_modules")
def _check_relu_modules(model: nn.Module, method: str, trace: ModelTrace | None) -> list[str]:
    others = sorted(
        {
            type(m).__name__
            for m in model.modules()
            if isinstance(m, KNOWN_NONLINEAR + tuple(SUPPORTED_NON_LINEAR))
            and not isinstance(m, nn.ReLU)
            and "Pool" not in type(m).__name__
            and "Softmax" not in type(m).__name__
        }
    )
    if not any(isinstance(m, nn.ReLU) for m in model.modules()):
        what = f" (it uses {', '.join(others)})" if others else ""
        return [
            f"Guided Backprop modifies only nn.ReLU modules and this model has none{what}: here "
            f"'{method}' equals the signed gradient (Saliency)."
        ]
    if others:
        return [
            f"Guided Backprop modifies only nn.ReLU modules; the {', '.join(others)} activation(s) of this model "
            "pass the plain gradient."
        ]
    return []


def preflight(model: nn.Module, method: str, example: torch.Tensor | None = None) -> list[str]:
    """Check before a run whether ``model`` suits ``method``; return warnings for the user.

    The checks are those the method's :class:`MethodSpec` lists (``checks``), from
    :data:`PREFLIGHT_CHECKS`. With an ``example`` (one row is used), one traced forward pass also finds
    modules called more than once and non-linearities called as functions (``F.relu``), which hook-based
    methods cannot see.

    Raises
    ------
    ConfigError
        When a hook-based method cannot run correctly: a module instance used more than once in one
        forward pass (DeepLift's hooks would mix the two uses).
    """
    spec = METHODS.get(method)
    if not spec.checks:
        return []
    trace = trace_model(model, example[:1]) if example is not None else None
    notes: list[str] = []
    for check in spec.checks:
        notes += PREFLIGHT_CHECKS.get(check)(model, method, trace)
    return notes


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

    Raises
    ------
    AttributionMethodError
        When the method cannot run on ``model`` (a pre-flight check refused it), raises, or returns
        another shape than its input's or NaN or infinite values (:func:`checked_compute`). Every
        experiment catches it per method, records the message and scores the others.

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
    try:
        notes = tuple(preflight(model, method, x))
    except ConfigError as exc:  # the model cannot run this method: that method fails, not the run
        raise AttributionMethodError(method, "cannot run on this model", str(exc)) from exc
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
            parts.append(checked_compute(spec, request).detach())
        return torch.cat(parts)

    start = time.perf_counter()
    values = run()
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = None
    if measure_memory:
        _, peak = measure_peak_memory(run, device)
    return AttributionResult(method, values.cpu().numpy(), seconds, peak, notes)


def checked_compute(spec: MethodSpec, request: AttributionRequest) -> torch.Tensor:
    """``spec.compute(request)``, checked once here for every method, built-in or plugin.

    Each failure becomes an :class:`AttributionMethodError` naming the method and what was wrong, which
    every experiment catches per method (the run's other methods still score):

    * an exception (a built-in's own :class:`ChaosMiningError`, such as a parameter refused with the
      recovery it needs, passes unchanged; a plugin's is wrapped too);
    * a result that is not a tensor or array, or not of the input's shape;
    * NaN or infinite values.
    """
    try:
        out = spec.compute(request)
    except (JobCancelled, KeyboardInterrupt, AttributionMethodError):
        raise
    except ChaosMiningError as exc:
        if not spec.plugin:
            raise
        raise AttributionMethodError(spec.name, f"raised {exc}") from exc
    except Exception as exc:
        raise AttributionMethodError(spec.name, f"raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, torch.Tensor):
        try:
            out = torch.as_tensor(np.asarray(out, dtype=np.float32), device=request.inputs.device)
        except (TypeError, ValueError):
            raise AttributionMethodError(
                spec.name, f"returned a {type(out).__name__}, not a tensor or array of the input's shape"
            ) from None
    if tuple(out.shape) != tuple(request.inputs.shape):
        raise AttributionMethodError(
            spec.name,
            f"returned an array of shape {tuple(out.shape)} for inputs of shape {tuple(request.inputs.shape)} "
            "(an attribution must have its input's shape)",
        )
    bad = int((~torch.isfinite(out.detach())).sum())
    if bad:
        raise AttributionMethodError(
            spec.name, f"returned {bad} NaN or infinite value(s) among {out.numel()} for {len(out)} input rows"
        )
    return out


def chunk_rows(x: torch.Tensor, budget: int = 4_000_000, most: int = 2000) -> int:
    """Rows attributed per call.

    Captum's gradient helper unbinds the batch into one autograd root per row, which grows faster than
    linearly (Saliency on 40,000 rows took 180x the time of 2,000 rows here), so batches stay small.
    """
    per_row = max(1, x[0].numel()) if len(x) else 1
    return int(max(1, min(most, budget // per_row)))
