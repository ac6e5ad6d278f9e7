"""Cached wrappers and job submission for the Vision page (kept out of ``pages/``)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import streamlit as st

from chaosmining.attribution import METHODS
from chaosmining.config import stable_hash
from chaosmining.data.vision import BACKGROUNDS, FOREGROUNDS
from chaosmining.errors import ChaosMiningError
from chaosmining.experiments.vision import (
    MODEL_KIND,
    VisionConfig,
    VisionEvalConfig,
    VisionResult,
    noise_conditions,
    result_key,
)
from chaosmining.models.vision import ARCHITECTURES, build_model, method_availability
from chaosmining.runs import RunSpec, gather
from ui.common import PageRuns, orchestrate

__all__ = [
    "cached_result",
    "model_cached",
    "job_key",
    "conditions_key",
    "submit_conditions",
    "cached_conditions",
    "gallery_images",
    "availability",
    "data_problem",
    "reading",
    "conditions_reading",
]


RUNS = PageRuns("vision", "vis_", MODEL_KIND)
cached_result = RUNS.cached_result
job_key = RUNS.job_key

model_cached = RUNS.model_cached


def conditions_key(config: VisionConfig, ev: VisionEvalConfig) -> str:
    return "vision-conditions:" + stable_hash([result_key(c, ev) for c in noise_conditions(config).values()])


def submit_conditions(config: VisionConfig, ev: VisionEvalConfig, device: str) -> str | None:
    """Queue the four noise conditions as this session's runs (cached ones answer at once)."""

    def work(ctx: Any) -> dict[str, VisionResult]:
        specs = {code: RunSpec("vision", cfg, ev, device) for code, cfg in noise_conditions(config).items()}
        return gather(specs, submit=ctx.submit, report=ctx.report, should_stop=ctx.should_stop)

    return orchestrate(
        conditions_key(config, ev),
        work,
        kind="vision-conditions",
        description=f"{config.model}: the four noise conditions, {config.preset} preset",
        prefix="vis_",
        epochs=config.train.epochs,
    )


def cached_conditions(config: VisionConfig, ev: VisionEvalConfig) -> dict[str, VisionResult | None]:
    """Each noise condition's result from the cache, or ``None`` where it is not trained yet."""
    return {code: cached_result(cfg, ev) for code, cfg in noise_conditions(config).items()}


@st.cache_data(max_entries=64, show_spinner=False)
def _gallery(model_key: str, data_json: str, seed: int, index: tuple[int, ...]) -> np.ndarray:
    from chaosmining.data.vision import VisionDataConfig, make_vision_data

    data = make_vision_data(VisionDataConfig(**json.loads(data_json)), seed, splits=("val",))
    return data.val.images(list(index))


def gallery_images(result: VisionResult) -> np.ndarray | None:
    """The gallery's validation images (regenerated once per configuration and kept)."""
    try:
        return _gallery(
            result.config.config_hash,
            json.dumps(result.config.data.to_dict()),
            result.config.seed,
            tuple(int(i) for i in result.arrays["gallery_index"]),
        )
    except ChaosMiningError as exc:
        st.error(f"The gallery images could not be made again: {exc}")
        return None


@st.cache_data(max_entries=16, show_spinner=False)
def _check_data(data_json: str, seed: int) -> str | None:
    from chaosmining.data.vision import VisionDataConfig, make_vision_data

    try:
        make_vision_data(VisionDataConfig(**json.loads(data_json)), seed, splits=("val",))
    except ChaosMiningError as exc:
        return str(exc)
    return None


def data_problem(config: VisionConfig) -> str | None:
    """Why the data of ``config`` cannot be read (a wrong data root, a missing file), or ``None``.

    Only sources read from disk are opened here; generated ones cannot fail this way.
    """
    needs = [
        FOREGROUNDS.get(config.data.foreground).needs_root or config.data.foreground == "fashion_mnist",
        BACKGROUNDS.get(config.data.background).needs_root,
    ]
    if not any(needs):
        return None
    return _check_data(json.dumps(config.data.to_dict()), config.seed)


@st.cache_resource(max_entries=2, show_spinner=False)
def _probe_model(architecture: str, canvas: int) -> Any:
    return build_model(architecture, 10, canvas).eval()


def availability(architecture: str, methods: list[str], canvas: int) -> dict[str, tuple[str | None, list[str]]]:
    """For each method: why it cannot run on the architecture (or ``None``) and notes about it."""
    spec = ARCHITECTURES.get(architecture)
    needs_model = [m for m in methods if METHODS.get(m).checks or m in spec.method_notes]
    if not needs_model:
        return {m: (None, []) for m in methods}
    # Module reuse and functional activations do not depend on the canvas: probe on a small one.
    try:
        spec.check_canvas(64)
        probe = 64
    except ChaosMiningError:
        probe = canvas
    model = _probe_model(architecture, probe)
    return {m: method_availability(model, architecture, m, probe) if m in needs_model else (None, []) for m in methods}


def conditions_reading(results: dict[str, VisionResult]) -> str:
    """The paper's two questions asked of the cached conditions: fixed vs random position, RB vs SB."""
    lines = []
    pairs = (("FP", "RP", "fixed", "random position"), ("RB", "SB", "random", "structured background"))
    for a, b, word, what in pairs:
        for code_a, ra in results.items():
            code_b = code_a.replace(a, b)
            rb = results.get(code_b)
            if a not in code_a or rb is None:
                continue
            common = [m for m in ra.scores if m in rb.scores and not METHODS.get(m).is_control]
            ious = ", ".join(f"{METHODS.get(m).short} {ra.scores[m].iou:.2f} vs {rb.scores[m].iou:.2f}" for m in common)
            lines.append(
                f"- **{code_a} vs {code_b}** ({word} vs {what}): accuracy {ra.accuracy:.0%} vs {rb.accuracy:.0%}; "
                f"IoU {ious}."
            )
    return "\n".join(lines)


def reading(result: VisionResult) -> str:
    """A plain-language reading of the scores."""
    ranked = sorted(
        ((s.iou, m) for m, s in result.scores.items() if not METHODS.get(m).is_control),
        reverse=True,
    )
    if not ranked:
        return ""
    best_iou, best = ranked[0]
    text = (
        f"**Reading.** On {result.condition} the model classifies {result.accuracy:.0%} of the validation images "
        f"correctly (chance {result.chance_accuracy:.0%}). **{METHODS.get(best).display_name}** localises the "
        f"foreground best: its retrieved box overlaps the true one with IoU {best_iou:.2f}, between the random-map "
        f"floor {result.random_iou:.2f} and the perfect-map ceiling {result.perfect_iou:.2f}."
    )
    if result.accuracy < result.chance_accuracy + 0.1:
        text += (
            " The model is close to chance, and the paper finds attribution quality tracks the model's accuracy: "
            "train on more images (the demo or paper preset) before reading much into the maps."
        )
    return " ".join([text, *result.notes])
