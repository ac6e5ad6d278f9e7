"""``vision`` command: train (or load) an image classifier on composite images and score attributions.

``python -m chaosmining vision --background random|structured --position fixed|random --model NAME
--preset quick|demo|paper [--foreground NAME] [--data-root PATH] [--methods ...] [--seed S] [--json]``
prints one JSON object with ``accuracy``, ``iou`` (by method), ``random_iou``, ``perfect_iou``,
``pointing_game``, ``mass_inside``, ``seconds`` and ``cached``. ``--conditions`` runs the four noise
conditions instead and prints one such object per condition.
"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from ..data.vision import BACKGROUNDS, FOREGROUNDS, POSITIONS
from ..experiments.vision import (
    DEFAULT_METHODS,
    PRESETS,
    SCHEDULES,
    VisionConfig,
    VisionEvalConfig,
    VisionResult,
    noise_conditions,
)
from ..export import write_bundle
from ..models.vision import ARCHITECTURES
from ..runs import RunSpec, gather
from .base import (
    COMMANDS,
    Command,
    cache_from_args,
    comma_list,
    command_executor,
    model_rerun,
    parse_method_params,
    through_executor,
)
from .progress import progress

__all__ = ["config_from_args", "eval_from_args"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--background", default="random", choices=BACKGROUNDS.names(), help="random = RB, structured = SB")
    p.add_argument("--position", default="fixed", choices=POSITIONS.names(), help="fixed = FP, random = RP")
    p.add_argument("--model", default="compact_cnn", choices=ARCHITECTURES.names())
    p.add_argument("--preset", default="demo", choices=PRESETS.names())
    p.add_argument("--foreground", default="shapes10", choices=FOREGROUNDS.names())
    p.add_argument(
        "--data-root",
        default=None,
        help="local folder for cifar10, fashion_mnist, published, flowers102 or a folder of photos (background folder)",
    )
    p.add_argument("--canvas", type=int, default=None, help="image side in pixels (default: the preset's)")
    p.add_argument("--foreground-size", type=int, default=None, help="foreground side in pixels (default: 32)")
    p.add_argument("--train-size", type=int, default=None, help="training images (default: the preset's)")
    p.add_argument("--val-size", type=int, default=None, help="validation images (default: the preset's)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--schedule", default=None, choices=SCHEDULES.names())
    p.add_argument("--methods", type=comma_list, default=list(DEFAULT_METHODS), help="comma-separated method names")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="METHOD.NAME=VALUE",
        help="a method parameter, e.g. integrated_gradients.steps=50",
    )
    p.add_argument("--target", default="predicted", choices=("predicted", "true"), help="class to explain")
    p.add_argument("--eval-samples", type=int, default=None, help="validation images to attribute (0 = all)")
    p.add_argument("--gallery", type=int, default=None, help="images whose maps are kept for the gallery")
    p.add_argument("--conditions", action="store_true", help="run all four noise conditions (RBFP, RBRP, SBFP, SBRP)")
    p.add_argument("--seed", type=int, default=0)


def config_from_args(a: argparse.Namespace) -> VisionConfig:
    return VisionConfig.from_preset(
        a.preset,
        model=a.model,
        seed=a.seed,
        train={"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr, "schedule": a.schedule},
        foreground=a.foreground,
        background=a.background,
        position=a.position,
        canvas=a.canvas,
        foreground_size=a.foreground_size,
        train_size=a.train_size,
        val_size=a.val_size,
        data_root=a.data_root,
    )


def eval_from_args(a: argparse.Namespace, config: VisionConfig) -> VisionEvalConfig:
    kw = {"target": a.target, "params": parse_method_params(a.param)}
    if a.eval_samples is not None:
        kw["samples"] = a.eval_samples
    if a.gallery is not None:
        kw["gallery"] = a.gallery
    return VisionEvalConfig.for_config(config, a.methods, **kw)


def _export(result: VisionResult, a: argparse.Namespace) -> None:
    from ..viz import gallery_overlays, png_bytes, vision_figures

    images = result.gallery_images()
    extra = {}
    for m in result.scores:
        for j, img in enumerate(gallery_overlays(result, images, m)):
            extra[f"overlay_{m}_{j:03d}.png"] = png_bytes(img)
    write_bundle(
        a.export,
        vision_figures(result),
        result.bundle(),
        {"scores": pd.DataFrame(result.scores_table()), "per_image": pd.DataFrame(result.per_image_table())},
        a.export_formats,
        extra_files=extra,
    )


def _run(a: argparse.Namespace) -> dict[str, Any]:
    config = config_from_args(a)
    ev = eval_from_args(a, config)
    cache = cache_from_args(a)
    with progress(a) as report:
        if a.conditions:
            ex = command_executor(a, cache)
            specs = {code: RunSpec("vision", c, ev, a.device) for code, c in noise_conditions(config).items()}
            results = gather(specs, submit=lambda spec: ex.submit(spec, session="cli"), report=report)
            return {"task": "vision-conditions", "conditions": {c: r.summary() for c, r in results.items()}}
        result = through_executor("vision", a)(config, ev, cache=cache, device=a.device, report=report)
    if a.export:
        _export(result, a)
    return result.summary()


_rerun = model_rerun("vision", "iou", _export)


def _render_one(out: dict[str, Any]) -> list[str]:
    lines = [f"WARNING: {out['learning_note']}"] if out.get("learning_note") else []
    lines += [
        f"{out['condition']}  {out['config']['model']}  accuracy {out['accuracy']:.3f} (chance {out['chance_accuracy']:.2f})"
        f"  ({'cached' if out['cached'] else 'trained'} on {out['device']}, {out['seconds']:.1f} s)",
        f"{'method':<24}{'IoU':>8}{'pointing':>10}{'mass':>8}{'s/image':>10}",
    ]
    for m, v in out["iou"].items():
        if v is None:
            lines.append(f"{m:<24}{'n/a':>8}  {out['unavailable'].get(m, '')}")
            continue
        lines.append(
            f"{m:<24}{v:>8.3f}{out['pointing_game'][m]:>10.3f}{out['mass_inside'][m]:>8.3f}"
            f"{out['method_seconds_per_image'][m]:>10.4f}"
        )
    lines.append(
        f"random map IoU {out['random_iou']:.3f}   perfect map IoU {out['perfect_iou']:.3f}   "
        f"pointing/mass chance {out['pointing_chance']:.3f}"
    )
    lines += [f"note ({m}): {w}" for m, ws in out.get("warnings", {}).items() for w in ws]
    lines += [f"warning: {w}" for w in out.get("data_warnings", [])]
    return lines


def _render(out: dict[str, Any]) -> str:
    if "conditions" in out:
        return "\n\n".join("\n".join(_render_one(o)) for o in out["conditions"].values())
    return "\n".join(_render_one(out))


COMMANDS.register(
    "vision",
    Command(
        "vision",
        "Train (or load) an image classifier on a foreground pasted on a noisy background and score how well "
        "attribution maps find the foreground (IoU, pointing game, mass inside the box).",
        _add_arguments,
        _run,
        _render,
        _rerun,
    ),
)
