"""An example plugin: the sign of the gradient as an attribution method.

Load it with ``python -m chaosmining --plugin examples/gradient_sign_plugin.py symbolic --methods
saliency,gradient_sign`` or ``CHAOSMINING_PLUGINS=examples/gradient_sign_plugin.py make run``; the method
then appears in every page's method list, in the CLI's ``--methods`` and on the leaderboard.

A plugin is a function ``fn(model, inputs, *, target=None, **params)`` (it may also ask for
``baselines``, ``feature_mask`` and ``generator``) returning attributions of the input's shape, or a
Captum-style class (``cls(model).attribute(inputs, **kw)``), registered with
:func:`chaosmining.register_method`.
"""

import torch

import chaosmining


def gradient_sign(model: torch.nn.Module, inputs: torch.Tensor, *, target=None, scale: float = 1.0) -> torch.Tensor:
    """``scale * sign(dF/dx)``: which way each feature pushes the output, without its size."""
    out = model(inputs)
    if out.dim() > 1:
        index = torch.as_tensor(target if target is not None else 0, device=out.device).reshape(-1, 1)
        out = out.gather(1, index.expand(len(out), 1))
    grad = torch.autograd.grad(out.sum(), inputs)[0]
    return scale * grad.sign()


chaosmining.register_method(
    "gradient_sign",
    gradient_sign,
    modalities=("symbolic", "vision", "audio"),
    params={"scale": 1.0},
    display_name="Gradient sign (example plugin)",
    reference="https://arxiv.org/abs/1312.6034",
)
