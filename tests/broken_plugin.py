"""Three deliberately broken attribution methods (a plugin file for the per-method isolation tests:
loaded through ``CHAOSMINING_PLUGINS`` so that worker processes have them too)."""

import torch

from chaosmining.plugins import register_method


def _raises(model, inputs, *, target=None):
    raise ZeroDivisionError("my bug")


def _wrong_shape(model, inputs, *, target=None):
    return torch.zeros(len(inputs))


def _nan(model, inputs, *, target=None):
    return torch.full_like(inputs, float("nan"))


register_method("broken_raises", _raises)
register_method("broken_shape", _wrong_shape)
register_method("broken_nan", _nan)
