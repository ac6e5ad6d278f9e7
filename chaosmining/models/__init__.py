"""Model zoo. Each modality registers its architectures in :data:`MODELS`."""

from .mlp import ACTIVATIONS, MLPConfig, build_mlp, init_mlp_parameters, load_parameters

__all__ = ["ACTIVATIONS", "MLPConfig", "build_mlp", "init_mlp_parameters", "load_parameters"]
