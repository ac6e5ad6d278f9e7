"""Image classifiers for the vision task: the paper's eight torchvision architectures and a compact CNN.

Every architecture is trained from scratch (``weights=None``) with a head for the task's number of
classes, on any canvas it can take (:meth:`ArchitectureSpec.check_canvas` says which). Adjustments made
for attribution, not for accuracy:

* in-place activations and dropout are switched to out-of-place (Captum's hooks and in-place ops
  conflict; eval mode makes dropout a no-op anyway);
* GoogLeNet keeps its two auxiliary classifiers for training (weighted 0.3 each, as in Szegedy et al.);
  in eval mode, where every attribution runs, it returns the main logits only;
* the Vision Transformers get the canvas as ``image_size`` (it must be a multiple of the patch size).

:func:`method_availability` says before a run whether a method suits a model, from
:func:`chaosmining.attribution.preflight` plus the architecture's own notes: torchvision's ResNets call
one ReLU module twice per block, so DeepLift's hooks cannot run on them; GoogLeNet and DenseNet apply
ReLUs as functions, where DeepLift and Guided Backprop fall back to the plain gradient; ViTs use GELU,
which has no DeepLift rule.

The compact CNN (``compact_cnn``) is what trains in minutes on a CPU: a patchify stem (stride 8), three
3x3 convolutions with BatchNorm and ReLU, and a global max-pool (a fixed-size ``MaxPool2d`` built for the
canvas, which DeepLift supports), with one module instance per use so every Captum method works.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..attribution import METHODS, preflight
from ..errors import ConfigError
from ..registry import Registry

__all__ = [
    "ArchitectureSpec",
    "ARCHITECTURES",
    "CompactCNN",
    "build_model",
    "logits_of",
    "method_availability",
]


@dataclass(frozen=True)
class ArchitectureSpec:
    """A registered image classifier.

    ``build(n_classes, canvas)`` returns a fresh, randomly initialised model. ``aux_weight`` weights the
    auxiliary outputs in the training loss (GoogLeNet). ``method_notes`` explains, per method, how the
    model changes what the method computes.
    """

    name: str
    display_name: str
    reference: str
    description: str
    build: Callable[[int, int], nn.Module]
    min_canvas: int = 32
    canvas_multiple: int = 1
    cpu_friendly: bool = False
    aux_weight: float = 0.0
    method_notes: Mapping[str, str] = field(default_factory=dict)

    def check_canvas(self, canvas: int) -> None:
        """Raise :class:`ConfigError` if this architecture cannot take a ``canvas`` x ``canvas`` image."""
        if canvas < self.min_canvas or canvas % self.canvas_multiple:
            need = f"an int >= {self.min_canvas}"
            if self.canvas_multiple > 1:
                need += f" and a multiple of {self.canvas_multiple} (its patch size)"
            raise ConfigError(
                f"The 'canvas' parameter must be {need} for architecture {self.name!r}. Got {canvas} instead."
            )


class CompactCNN(nn.Sequential):
    """A small CNN that learns the 224-px composite task on a CPU in minutes.

    ``(n, 3, canvas, canvas) -> (n, n_classes)``. Patchify stem ``Conv(3, w0, 8, stride 8)``; then
    ``Conv3x3(w0, w1)``, ``Conv3x3(w1, w2)``, ``MaxPool(2)``, ``Conv3x3(w2, w3)``, each with BatchNorm and
    ReLU; a global max-pool; a linear head. The max-pool keeps the strongest local evidence, wherever
    the foreground is, so the model works for fixed and random positions alike.
    """

    def __init__(self, n_classes: int = 10, canvas: int = 224, widths: tuple[int, int, int, int] = (32, 48, 64, 96)):
        w0, w1, w2, w3 = widths
        grid = (canvas // 8) // 2
        if grid < 1:
            raise ConfigError(f"The 'canvas' parameter must be an int >= 16 for the compact CNN. Got {canvas} instead.")
        super().__init__(
            nn.Conv2d(3, w0, kernel_size=8, stride=8),
            nn.BatchNorm2d(w0),
            nn.ReLU(),
            nn.Conv2d(w0, w1, kernel_size=3, padding=1),
            nn.BatchNorm2d(w1),
            nn.ReLU(),
            nn.Conv2d(w1, w2, kernel_size=3, padding=1),
            nn.BatchNorm2d(w2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w2, w3, kernel_size=3, padding=1),
            nn.BatchNorm2d(w3),
            nn.ReLU(),
            nn.MaxPool2d(grid),
            nn.Flatten(),
            nn.Linear(w3, n_classes),
        )


def _no_inplace(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if getattr(m, "inplace", False):
            m.inplace = False
    return model


def _torchvision(name: str, **kwargs: Any) -> Callable[[int, int], nn.Module]:
    def build(n_classes: int, canvas: int) -> nn.Module:
        from torchvision import models

        extra = dict(kwargs)
        if name.startswith("vit_"):
            extra["image_size"] = canvas
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
            warnings.filterwarnings("ignore", category=FutureWarning, module="torchvision")
            return _no_inplace(models.get_model(name, weights=None, num_classes=n_classes, **extra))

    return build


_RESNET_DL = (
    "torchvision's ResNet blocks call one ReLU module twice per forward pass, so DeepLift's hooks would mix the "
    "two uses; DeepLift is unavailable for this model (choose the compact CNN, AlexNet, VGG13 or DenseNet121 for it)."
)

ARCHITECTURES: Registry[ArchitectureSpec] = Registry("architecture")
for _a in (
    ArchitectureSpec(
        "compact_cnn",
        "Compact CNN (CPU, minutes)",
        "https://arxiv.org/abs/2406.12150",
        "A patchify stem, three 3x3 convolutions and a global max-pool (about 110k parameters); learns the "
        "224-px task from 10k images on a CPU.",
        lambda n, c: CompactCNN(n, c),
        min_canvas=16,
        cpu_friendly=True,
    ),
    ArchitectureSpec(
        "alexnet",
        "AlexNet",
        "https://papers.nips.cc/paper/4824",
        "57M parameters; the paper found it never learned the task (10 % accuracy).",
        _torchvision("alexnet"),
        min_canvas=63,
    ),
    ArchitectureSpec(
        "densenet121",
        "DenseNet121",
        "https://arxiv.org/abs/1608.06993",
        "7M parameters; the paper's best on RBFP (83 %).",
        _torchvision("densenet121"),
    ),
    ArchitectureSpec(
        "googlenet",
        "GoogLeNet",
        "https://arxiv.org/abs/1409.4842",
        "10M parameters, with two auxiliary classifiers used in training (weight 0.3 each).",
        _torchvision("googlenet", aux_logits=True, init_weights=True, transform_input=False),
        min_canvas=16,
        aux_weight=0.3,
    ),
    ArchitectureSpec(
        "resnet18",
        "ResNet18",
        "https://arxiv.org/abs/1512.03385",
        "11M parameters.",
        _torchvision("resnet18"),
        min_canvas=16,
        method_notes={"deeplift": _RESNET_DL},
    ),
    ArchitectureSpec(
        "resnet50",
        "ResNet50",
        "https://arxiv.org/abs/1512.03385",
        "24M parameters.",
        _torchvision("resnet50"),
        min_canvas=16,
        method_notes={"deeplift": _RESNET_DL},
    ),
    ArchitectureSpec(
        "vgg13",
        "VGG13",
        "https://arxiv.org/abs/1409.1556",
        "129M parameters; the paper found it never learned the task (10 % accuracy).",
        _torchvision("vgg13"),
    ),
    ArchitectureSpec(
        "vit_b_16",
        "ViT-B/16",
        "https://arxiv.org/abs/2010.11929",
        "86M parameters; 16-px patches, so the canvas must be a multiple of 16.",
        _torchvision("vit_b_16"),
        min_canvas=16,
        canvas_multiple=16,
    ),
    ArchitectureSpec(
        "vit_l_32",
        "ViT-L/32",
        "https://arxiv.org/abs/2010.11929",
        "305M parameters; 32-px patches, so the canvas must be a multiple of 32.",
        _torchvision("vit_l_32"),
        min_canvas=32,
        canvas_multiple=32,
    ),
):
    ARCHITECTURES.register(_a.name, _a)


_BUILD_LOCK = threading.Lock()


def build_model(name: str, n_classes: int, canvas: int, seed: int = 0) -> nn.Module:
    """A freshly initialised ``name`` for ``n_classes`` classes and a ``canvas``-px input, in train mode.

    Initialisation is reproducible from ``seed``. torchvision's constructors draw from torch's global
    generator, so the build runs inside :func:`torch.random.fork_rng`: the global state is saved, seeded
    for the build only, and restored, under a lock so that concurrent builds do not interleave.
    """
    spec = ARCHITECTURES.get(name)
    spec.check_canvas(canvas)
    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.build(n_classes, canvas)


def logits_of(output: Any) -> torch.Tensor:
    """The main logits of a model's output (GoogLeNet returns a named tuple in train mode)."""
    return output.logits if hasattr(output, "logits") else output


def method_availability(model: nn.Module, architecture: str, method: str, canvas: int) -> tuple[str | None, list[str]]:
    """Whether ``method`` can run on ``model``: ``(reason it cannot or None, notes)``.

    Uses :func:`chaosmining.attribution.preflight` on a small example (module reuse, activations
    without a DeepLift rule) plus the architecture's own notes.
    """
    spec = ARCHITECTURES.get(architecture)
    METHODS.get(method)
    was_training = model.training
    model.eval()
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        notes = preflight(model, method, torch.zeros(1, 3, canvas, canvas, device=device))
    except ConfigError as exc:
        return spec.method_notes.get(method, str(exc)), []
    finally:
        model.train(was_training)
    extra = spec.method_notes.get(method)
    return None, notes + ([extra] if extra else [])
