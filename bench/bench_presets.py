"""Do the quick and demo presets give a model worth explaining, and how fast? (issue 15)

    python bench/bench_presets.py vision              # compact CNN, quick preset, 4 conditions x 2 seeds
    python bench/bench_presets.py audio               # TCN, quick preset, 2 backgrounds x 2 seeds
    python bench/bench_presets.py audio --models rnn,lstm,transformer --preset sequence  # 2x chance is their goal
    python bench/bench_presets.py vision --preset demo --threads 2 --conditions RBFP,SBFP  # demo goals: 0.75, 5 min
    python bench/bench_presets.py audio --preset demo --threads 2                          # demo goals: 0.7, 5 min

Each run trains from scratch in a fresh cache and prints one line: accuracy against chance (and
whether it passes the has-not-learned test), every method's IoU (vision) or channel FPrec (audio)
beside the random floor, the wall time, the process CPU time (``time.process_time``, this process and
its threads; on a CPU shared with other work the wall time is inflated and the CPU time is the steadier
figure) and the share of the wall time spent making data (from the run's progress events: everything
before the first training event). The last lines give the goal of issue 15 for each line.

Throughput against the machine: each line also gives the training samples per second (images or clips
seen in training over the training time) beside the FLOP bound of the same model, the rate at which the
samples could go if training ran at the speed of a large fp32 matrix product: that product's rate
(measured in this process with the same threads, at the start of the run) over the model's forward +
backward FLOPs per sample (counted by ``torch.utils.flop_counter`` on one batch). Their ratio says how
far the trainer is from the arithmetic the machine can do (data making, small kernels, memory traffic).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from chaosmining.cache import Cache  # noqa: E402
from chaosmining.data.vision import condition_code  # noqa: E402
from chaosmining.experiments import audio as A  # noqa: E402
from chaosmining.experiments import vision as V  # noqa: E402
from chaosmining.runtime import configure_threads  # noqa: E402

# Issue 15's goals: accuracy per condition (vision) or background (the audio TCN) and the wall time of a
# whole run, per preset. Other audio models aim at 2x chance; a condition without a goal is reported only.
VISION_GOAL = {
    "quick": {"RBFP": 0.6, "SBFP": 0.6, "RBRP": 0.4, "SBRP": 0.4},
    "demo": {"RBFP": 0.75, "SBFP": 0.75},
}
AUDIO_GOAL = {"quick": {"random": 0.5, "structured": 0.4}, "demo": {"random": 0.7, "structured": 0.7}}
WALL_GOAL = {"quick": 120.0, "demo": 300.0}


def machine() -> str:
    load = os.getloadavg()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, {torch.get_num_threads()} torch thread(s)"
    )


def matmul_flops_per_second(n: int = 2048, seconds: float = 2.0) -> float:
    """fp32 FLOP/s of an ``n`` x ``n`` matrix product on this process's torch threads (best of repeats)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm up
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def train_flops_per_sample(model: torch.nn.Module, sample: torch.Tensor, batch: int = 8) -> float:
    """Forward + backward FLOPs of one training sample of ``model`` (one ``batch`` counted, divided)."""
    x = sample.expand(batch, *sample.shape[1:]).clone()
    model.train()
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        out = out if isinstance(out, torch.Tensor) else out[0]
        out.float().sum().backward()
    return counter.get_total_flops() / batch


def throughput(samples_seen: int, train_seconds: float, flops: float, rate: float) -> dict[str, float]:
    """Samples per second achieved, the FLOP bound, and their ratio."""
    achieved = samples_seen / max(train_seconds, 1e-9)
    bound = rate / max(flops, 1.0)
    return {
        "samples_per_s": achieved,
        "flop_bound_per_s": bound,
        "of_bound": achieved / bound,
        "gflop_per_sample": flops / 1e9,
    }


class Clock:
    """Progress hook that notes when training starts (everything before is data making)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.training_at: float | None = None

    def __call__(self, **e: Any) -> None:
        if self.training_at is None and str(e.get("stage", "")).startswith("training"):
            self.training_at = time.perf_counter()

    def data_share(self, wall: float) -> float:
        at = self.training_at if self.training_at is not None else self.start + wall
        return (at - self.start) / max(wall, 1e-9)


def _timed(run: Any, cfg: Any, ev: Any, cache: Cache) -> tuple[Any, dict[str, Any]]:
    """Run ``run(cfg, ev)`` on the CPU; its result and the fields every row shares (times, data share)."""
    clock, cpu = Clock(), time.process_time()
    r = run(cfg, ev, cache=cache, device="cpu", report=clock)
    wall, cpu = time.perf_counter() - clock.start, time.process_time() - cpu
    common = {
        "learned": r.learned,
        "unavailable": r.unavailable,
        "wall_s": wall,
        "cpu_s": cpu,
        "train_s": r.train_seconds,
        "data_share": clock.data_share(wall),
    }
    return r, common


def _line(r: Any, row: dict[str, Any], what: str, scores: str, floor: str) -> str:
    goal = "no goal" if row["goal"] is None else f"goal {row['goal']:.2f}"
    return (
        f"{what}: accuracy {r.accuracy:.3f} ({goal}"
        f"{'' if r.learned else ', NOT LEARNED'}) {scores}"
        f" | {floor}  wall {row['wall_s']:.0f} s, CPU {row['cpu_s']:.0f} s, training {row['train_s']:.0f} s,"
        f" data {row['data_share']:.0%} of wall; {row['samples_per_s']:.0f} samples/s in training against a "
        f"FLOP bound of {row['flop_bound_per_s']:.0f}/s ({row['of_bound']:.1%}; {row['gflop_per_sample']:.3f} "
        "GFLOP per sample forward+backward)"
    )


def bench_vision(a: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    methods = tuple(a.methods.split(",")) if a.methods else V.DEFAULT_METHODS
    conditions = [(b, q) for b in ("random", "structured") for q in ("fixed", "random")]
    conditions = [(b, q) for b, q in conditions if condition_code(b, q) in a.conditions.split(",")]
    for seed in a.seeds:
        for background, position in conditions:
            cache = Cache(Path(tempfile.mkdtemp(prefix="bench-presets-")))
            cfg = V.VisionConfig.from_preset(
                a.preset, model=a.model or "compact_cnn", seed=seed, background=background, position=position
            )
            ev = V.VisionEvalConfig.for_config(cfg, methods)
            r, common = _timed(V.run_vision, cfg, ev, cache)
            canvas = cfg.data.canvas
            model = V.build_model(cfg.model, round(1 / r.chance_accuracy), canvas, seed)
            flops = train_flops_per_sample(model, torch.randn(1, 3, canvas, canvas))
            seen = cfg.data.train_size * cfg.train.epochs
            row = {
                "condition": r.condition,
                "seed": seed,
                "accuracy": r.accuracy,
                "chance": r.chance_accuracy,
                "goal": VISION_GOAL.get(a.preset, {}).get(r.condition),
                "iou": {m: round(v, 3) for m, v in r.iou.items() if v is not None},
                "random_iou": r.random_iou,
                **common,
                **throughput(seen, r.train_seconds, flops, a.rate),
            }
            rows.append(row)
            scores = "IoU " + " ".join(f"{V.METHODS.get(m).short} {v:.3f}" for m, v in row["iou"].items())
            what = f"{row['condition']} seed {seed} (chance {r.chance_accuracy:.2f})"
            print(_line(r, row, what, scores, f"random {r.random_iou:.3f}"), flush=True)
    return rows


def bench_audio(a: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    methods = tuple(a.methods.split(",")) if a.methods else A.AUDIO_DEFAULT_METHODS
    for model in (a.models or "tcn").split(","):
        for seed in a.seeds:
            for background in a.backgrounds.split(","):
                cache = Cache(Path(a.cache_dir or tempfile.mkdtemp(prefix="bench-presets-")))
                cfg = A.AudioConfig.from_preset(a.preset, model=model, seed=seed, background=background)
                ev = A.AudioEvalConfig.for_preset(a.preset, methods)
                r, common = _timed(A.run_audio, cfg, ev, cache)
                classes = round(1 / r.class_chance)
                net = A.build_audio_model(cfg.model, cfg.data.channels, classes, A.CLIP_SAMPLES)
                flops = train_flops_per_sample(net, torch.randn(1, cfg.data.channels, A.CLIP_SAMPLES))
                seen = cfg.data.train_per_class * classes * cfg.train.epochs
                row = {
                    "model": model,
                    "background": background,
                    "seed": seed,
                    "accuracy": r.accuracy,
                    "chance": r.class_chance,
                    "goal": AUDIO_GOAL.get(a.preset, {}).get(background) if model == "tcn" else 2 * r.class_chance,
                    "channel_fprec": {m: round(v, 3) for m, v in r.channel_fprec.items()},
                    "floor": r.chance,
                    **common,
                    **throughput(seen, r.train_seconds, flops, a.rate),
                }
                rows.append(row)
                scores = "channel FPrec " + " ".join(
                    f"{A.METHODS.get(m).short} {v:.3f}" for m, v in row["channel_fprec"].items()
                )
                what = f"{model} {background} seed {seed} (chance {r.class_chance:.2f})"
                print(_line(r, row, what, scores, f"floor {r.chance:.3f}"), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["vision", "audio"])
    p.add_argument("--preset", default="quick")
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 7])
    p.add_argument("--model", default=None, help="vision architecture (default compact_cnn)")
    p.add_argument("--models", default=None, help="audio architectures, comma-separated (default tcn)")
    p.add_argument("--methods", default=None, help="comma-separated (default: the modality's defaults)")
    p.add_argument("--cache-dir", default=None, help="audio: reuse synthesised words between runs")
    p.add_argument("--backgrounds", default="random,structured", help="audio: which backgrounds")
    p.add_argument("--conditions", default="RBFP,SBFP,RBRP,SBRP", help="vision: which noise conditions")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="write the rows to this file")
    a = p.parse_args()
    configure_threads(a.threads)
    a.rate = matmul_flops_per_second()
    print(
        f"## preset bench ({a.what}, preset {a.preset}) on {machine()}; fp32 2048^3 product {a.rate / 1e9:.1f} GFLOP/s",
        flush=True,
    )
    rows = bench_vision(a) if a.what == "vision" else bench_audio(a)
    aimed = [r for r in rows if r["goal"] is not None]
    met = [r for r in aimed if r["accuracy"] >= r["goal"]]
    print(f"accuracy goal met in {len(met)} of {len(aimed)} runs with a goal ({len(rows)} runs)")
    wall = WALL_GOAL.get(a.preset)
    if wall is not None:
        fast = [r for r in rows if r["wall_s"] <= wall]
        print(f"wall <= {wall:.0f} s in {len(fast)} of {len(rows)} runs")
    print(f"## load at the end: {machine()}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
