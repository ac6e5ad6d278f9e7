"""The paper's MLP regressor for symbolic data.

``depth`` hidden blocks ``Linear -> activation``, then ``Dropout`` and a ``Linear(width, 1)``
projection, exactly as the original ``MLPRegressor``. Models are plain :class:`torch.nn.Sequential`
objects so that every Captum method (including hook-based DeepLift) sees ordinary modules, one module
instance per use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..config import ConfigBase
from ..registry import Registry
from ..validation import check_choice, check_float, check_int

__all__ = ["ActivationSpec", "ACTIVATIONS", "MLPConfig", "build_mlp", "init_mlp_parameters", "load_parameters"]


@dataclass(frozen=True)
class ActivationSpec:
    """An activation: its module, and the forward/backward used by the fast trainer.

    ``backward(grad, z, a)`` returns dL/dz from dL/da, the pre-activation ``z`` and output ``a``.
    ``deeplift_rule`` says whether Captum's DeepLift has a rule for the module. ``native`` is the
    activation's code in the trainer's compiled kernels (``chaosmining/native/mlp_kernels.c``), or
    ``None`` where the trainer uses ``forward``/``backward`` only.
    """

    name: str
    display_name: str
    module: Callable[[], nn.Module]
    forward: Callable[[torch.Tensor], torch.Tensor]
    backward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    deeplift_rule: bool
    native: int | None = None


ACTIVATIONS: Registry[ActivationSpec] = Registry("activation")
_aten = torch.ops.aten
for _spec in (
    ActivationSpec(
        "gelu",
        "GELU (paper default)",
        nn.GELU,
        torch.nn.functional.gelu,
        lambda g, z, a: _aten.gelu_backward(g, z),
        deeplift_rule=False,
        native=0,
    ),
    ActivationSpec(
        "relu",
        "ReLU",
        nn.ReLU,
        torch.relu,
        lambda g, z, a: _aten.threshold_backward(g, a, 0),
        deeplift_rule=True,
        native=1,
    ),
    ActivationSpec(
        "tanh", "Tanh", nn.Tanh, torch.tanh, lambda g, z, a: _aten.tanh_backward(g, a), deeplift_rule=True, native=2
    ),
    ActivationSpec(
        "elu",
        "ELU",
        nn.ELU,
        torch.nn.functional.elu,
        lambda g, z, a: _aten.elu_backward(g, 1.0, 1.0, 1.0, True, a),
        deeplift_rule=True,
        native=3,
    ),
):
    ACTIVATIONS.register(_spec.name, _spec)

_OWNER = "MLPConfig"


@dataclass(frozen=True, kw_only=True)
class MLPConfig(ConfigBase):
    """Architecture of the MLP regressor (paper defaults: width 100, depth 3, GELU, no dropout)."""

    width: int = 100
    depth: int = 3
    dropout: float = 0.0
    activation: str = "gelu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", check_int(self.width, "width", owner=_OWNER, low=1, high=8192))
        object.__setattr__(self, "depth", check_int(self.depth, "depth", owner=_OWNER, low=1, high=32))
        object.__setattr__(
            self, "dropout", check_float(self.dropout, "dropout", owner=_OWNER, low=0.0, high=1.0, high_open=True)
        )
        check_choice(self.activation, "activation", owner=_OWNER, choices=ACTIVATIONS.names())

    def n_parameters(self, n_inputs: int) -> int:
        w, d = self.width, self.depth
        return (n_inputs + 1) * w + (d - 1) * (w + 1) * w + (w + 1)


def build_mlp(n_inputs: int, config: MLPConfig) -> nn.Sequential:
    """An uninitialised-weights MLP (values come from :func:`load_parameters`).

    Layout: ``[Linear, act] * depth, Dropout, Linear(width, 1)``; output shape ``(n, 1)``.
    """
    act = ACTIVATIONS.get(config.activation)
    layers: list[nn.Module] = []
    width_in = n_inputs
    for _ in range(config.depth):
        layers += [nn.Linear(width_in, config.width), act.module()]
        width_in = config.width
    layers += [nn.Dropout(config.dropout), nn.Linear(config.width, 1)]
    return nn.Sequential(*layers)


def init_mlp_parameters(
    n_inputs: int, config: MLPConfig, generator: torch.Generator, device: torch.device | str = "cpu"
) -> list[torch.Tensor]:
    """Weights and biases ``[W1, b1, ..., W_out, b_out]`` drawn as ``nn.Linear`` draws them.

    Each ``W`` has shape ``(out, in)``; entries and biases are uniform in +-1/sqrt(fan_in), the
    distribution of PyTorch's default initialisation, but from ``generator`` (no global seeding).
    """
    sizes = [n_inputs] + [config.width] * config.depth + [1]
    params: list[torch.Tensor] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        W = (torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * bound
        b = (torch.rand(fan_out, generator=generator) * 2 - 1) * bound
        params += [W.to(device), b.to(device)]
    return params


def load_parameters(model: nn.Sequential, params: list[torch.Tensor]) -> nn.Sequential:
    """Copy ``[W1, b1, ...]`` into the ``Linear`` layers of ``model`` (in order)."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if len(linears) * 2 != len(params):
        raise ValueError(f"Expected {len(linears) * 2} tensors for {len(linears)} Linear layers, got {len(params)}.")
    with torch.no_grad():
        for layer, W, b in zip(linears, params[0::2], params[1::2]):
            layer.weight.copy_(W)
            layer.bias.copy_(b)
    return model
