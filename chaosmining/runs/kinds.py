"""The library's run kinds: each modality's experiment and each evaluation test, with what it costs.

Memory estimates are peak bytes beyond a worker's baseline, from the configuration alone: the data
(rows x features, images x canvas x canvas x channels, clips x channels x samples) in float32, the
model's parameters with their gradients and Adam moments (counted on PyTorch's ``meta`` device, so
nothing is allocated), and a working-set factor for activations and attribution batches. They are
deliberately generous: admission must never let the machine swap.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.audio import WORD_SETS
from ..data.speech import CLIP_SAMPLES
from ..evaluation import blur_bias, faithfulness, road, roar, sanity
from ..evaluation.blur_bias import BlurConfig, run_blur
from ..evaluation.common import MethodsConfig
from ..evaluation.faithfulness import FaithfulnessConfig, run_faithfulness
from ..evaluation.road import RoadConfig, run_road
from ..evaluation.roar import RoarConfig, run_roar
from ..evaluation.sanity import SanityConfig, run_sanity
from ..experiments import audio, rfe_tasks, rfe_units, symbolic, symbolic_group, vision
from ..models.vision import ARCHITECTURES
from .spec import RUN_KINDS, MemoryEstimate, RunKind, RunSpec

__all__ = ["vision_model_parameters"]

_MB = 2**20
_F32 = 4
_ADAM = 4  # parameter, gradient and two moments


def _symbolic_memory(c: symbolic.SymbolicConfig, ev: Any) -> MemoryEstimate:
    d = c.data
    data = d.samples * (d.n_features + 1) * _F32 * 6  # arrays, tensors, attribution copies per method
    params = (d.n_features * c.model.width + c.model.depth * c.model.width**2) * _F32 * _ADAM
    return MemoryEstimate(int(data + params + 64 * _MB), "samples", "the number of samples or noise features")


def _symbolic_seconds(c: symbolic.SymbolicConfig, ev: Any) -> float:
    return 5.0 + 2e-9 * c.data.samples * (c.data.n_features + c.model.width) * c.model.width * c.train.epochs


def _group_memory(g: symbolic_group.SymbolicGroup, ev: Any) -> MemoryEstimate:
    return MemoryEstimate(g.estimated_bytes() + 64 * _MB, "samples", "the number of models trained together")


def _group_seconds(g: symbolic_group.SymbolicGroup, ev: Any) -> float:
    return sum(_symbolic_seconds(c, e) for c, e in g.members)


class _SymbolicGroupKind(RunKind):
    """Symbolic runs trained together: finished when every member's result is cached."""

    def cached(self, spec: RunSpec, cache: Any) -> bool:
        return symbolic_group.group_cached(spec.config, cache)


def vision_model_parameters(model: str, canvas: int, classes: int = 10) -> int:
    """The number of parameters of architecture ``model`` at ``canvas`` px, counted without allocating."""
    with torch.device("meta"):
        net = ARCHITECTURES.get(model).build(classes, canvas)
    return sum(p.numel() for p in net.parameters())


def _vision_memory(c: vision.VisionConfig, ev: Any) -> MemoryEstimate:
    d = c.data
    images = d.train_size + d.val_size
    pixels = d.canvas * d.canvas * 3
    data = images * pixels * _F32
    params = vision_model_parameters(c.model, d.canvas) * _F32 * _ADAM
    activations = c.train.batch_size * pixels * _F32 * 24
    return MemoryEstimate(
        int(data + params + activations + 128 * _MB), "train_size", "the number of training images or the canvas"
    )


def _vision_seconds(c: vision.VisionConfig, ev: Any) -> float:
    d = c.data
    return 10.0 + 2e-8 * (d.train_size + d.val_size) * d.canvas**2 * c.train.epochs / 10


def _audio_memory(c: audio.AudioConfig, ev: Any) -> MemoryEstimate:
    d = c.data
    per_class = (d.train_per_class or 170) + (d.test_per_class or 20)
    clips = len(WORD_SETS[d.words]) * per_class
    data = clips * d.channels * CLIP_SAMPLES * _F32 * 2  # clips and their composed batches
    activations = c.train.batch_size * d.channels * CLIP_SAMPLES * _F32 * 16
    return MemoryEstimate(
        int(data + activations + 128 * _MB), "train_per_class", "the clips per word, the words or the channels"
    )


def _audio_seconds(c: audio.AudioConfig, ev: Any) -> float:
    d = c.data
    return (
        20.0
        + 1e-7 * len(WORD_SETS[d.words]) * (d.train_per_class or 170) * d.channels * CLIP_SAMPLES * c.train.epochs / 10
    )


_EVAL_MEMORY = {"tabular": 256 * _MB, "vision": 2048 * _MB, "audio": 2048 * _MB}


def _eval_memory(c: MethodsConfig, ev: Any) -> MemoryEstimate:
    return MemoryEstimate(_EVAL_MEMORY.get(c.task.spec.modality, 1024 * _MB), "task", "a tabular or quick task")


def _eval_seconds(c: MethodsConfig, ev: Any) -> float:
    return {"tabular": 20.0, "vision": 300.0, "audio": 300.0}.get(c.task.spec.modality, 120.0)


class _RFETrainKind(RunKind):
    """A feature-selection training unit: finished when its network and every importance it asks for
    are cached (one ``rfe-model`` entry and one ``rfe-importance`` entry per method)."""

    def cached(self, spec: RunSpec, cache: Any) -> bool:
        return rfe_units.train_unit_cached(spec.config, cache)


def _rfe_estimate(unit: Any, ev: Any) -> MemoryEstimate:
    return MemoryEstimate(unit.estimated_bytes(), "samples", "the number of rows or noise features")


def _evaluation(name: str, kind: str, config_type: type, perform: Any, title: str) -> RunKind:
    return RunKind(
        name=name,
        perform=lambda config, ev, *, cache, device="auto", report=None, should_stop=None: perform(
            config, cache=cache, report=report, should_stop=should_stop
        ),
        config_from=config_type.from_dict,
        eval_from=None,
        result_kind=kind,
        result_key=lambda config, ev: config.config_hash,
        memory=_eval_memory,
        seconds=_eval_seconds,
        describe=lambda config: f"{title}: {config.task.task}, {', '.join(config.methods)}",
        uses_device=False,
        modality="evaluation",
    )


def _model_kind(
    name: str, module: Any, perform: Any, config_type: Any, eval_type: Any, describe: Any, memory: Any, seconds: Any
) -> RunKind:
    """A modality's experiment: ``perform`` trains (or loads) the model ``MODEL_KIND/config_hash`` and writes
    its evaluation under ``RESULT_KIND/result_key(config, ev)`` (the same layout for symbolic, vision and audio)."""
    return RunKind(
        name=name,
        perform=perform,
        config_from=config_type.from_dict,
        eval_from=eval_type.from_dict,
        result_kind=module.RESULT_KIND,
        inputs=lambda c, ev: [(module.MODEL_KIND, c.config_hash)],
        result_key=getattr(module, "result_key", None) or module._result_key,
        memory=memory,
        seconds=seconds,
        describe=describe,
        modality=name,
    )


for _kind in (
    _model_kind(
        "symbolic",
        symbolic,
        symbolic.run_symbolic,
        symbolic.SymbolicConfig,
        symbolic.EvalConfig,
        lambda c: f"formula {c.data.formula}, {c.train.epochs} epochs, seed {c.seed}",
        _symbolic_memory,
        _symbolic_seconds,
    ),
    _model_kind(
        "vision",
        vision,
        vision.run_vision,
        vision.VisionConfig,
        vision.VisionEvalConfig,
        lambda c: f"{c.model} on {c.condition}, {c.preset} preset, seed {c.seed}",
        _vision_memory,
        _vision_seconds,
    ),
    _model_kind(
        "audio",
        audio,
        audio.run_audio,
        audio.AudioConfig,
        audio.AudioEvalConfig,
        lambda c: f"{c.model.arch} on {c.data.setting}, {c.preset} preset, seed {c.seed}",
        _audio_memory,
        _audio_seconds,
    ),
    _SymbolicGroupKind(
        name=symbolic_group.GROUP_KIND,
        perform=symbolic_group.run_symbolic_group,
        config_from=symbolic_group.SymbolicGroup.from_dict,
        eval_from=None,
        result_kind=symbolic_group.GROUP_KIND,
        result_key=lambda g, ev: g.config_hash,
        inputs=lambda g, ev: [(symbolic.MODEL_KIND, c.config_hash) for c in g.configs],
        memory=_group_memory,
        seconds=_group_seconds,
        describe=lambda g: g.describe(),
        loader=symbolic_group.load_symbolic_group,
        members=lambda g, ev: [("symbolic", c, e) for c, e in g.members],
    ),
    _RFETrainKind(
        name="rfe-train",
        perform=rfe_units.perform_train_unit,
        config_from=rfe_units.TrainUnit.from_dict,
        eval_from=None,
        result_kind=rfe_units.MODEL_KIND,
        inputs=lambda u, ev: [(rfe_tasks.DATA_KIND, u.data_key), (rfe_units.MODEL_KIND, u.model_key)],
        result_key=lambda unit, ev: unit.run_key,
        memory=_rfe_estimate,
        seconds=lambda unit, ev: unit.estimated_seconds(),
        describe=lambda unit: unit.describe(),
        modality="selection",
    ),
    RunKind(
        name="rfe-classic",
        perform=rfe_units.perform_classic_unit,
        config_from=rfe_units.ClassicUnit.from_dict,
        eval_from=None,
        result_kind=rfe_units.CLASSIC_KIND,
        inputs=lambda u, ev: [(rfe_tasks.DATA_KIND, u.data_key)],
        result_key=lambda unit, ev: unit.key,
        memory=_rfe_estimate,
        seconds=lambda unit, ev: unit.estimated_seconds(),
        describe=lambda unit: unit.describe(),
        uses_device=False,
        modality="selection",
    ),
    _evaluation("roar", roar.KIND, RoarConfig, run_roar, "ROAR / KAR"),
    _evaluation("road", road.KIND, RoadConfig, run_road, "ROAD"),
    _evaluation("blur", blur_bias.KIND, BlurConfig, run_blur, "Blur bias"),
    _evaluation("sanity", sanity.KIND, SanityConfig, run_sanity, "Sanity checks"),
    _evaluation("faithfulness", faithfulness.KIND, FaithfulnessConfig, run_faithfulness, "Faithfulness"),
):
    RUN_KINDS.register(_kind.name, _kind)
