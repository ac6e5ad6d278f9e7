"""Do the quick presets give a model worth explaining, and how fast? (issue 15)

    python bench/bench_presets.py vision              # compact CNN, quick preset, 4 conditions x 2 seeds
    python bench/bench_presets.py audio               # TCN, quick preset, 2 backgrounds x 2 seeds
    python bench/bench_presets.py audio --models rnn,lstm,transformer --preset sequence  # 2x chance is their goal
    python bench/bench_presets.py vision --preset demo --seeds 0

Each run trains from scratch in a fresh cache and prints one line: accuracy against chance (and
whether it passes the has-not-learned test), every method's IoU (vision) or channel FPrec (audio)
beside the random floor, the wall time, the process CPU time (``time.process_time``, this process and
its threads; on a CPU shared with other work the wall time is inflated and the CPU time is the steadier
figure) and the share of the wall time spent making data (from the run's progress events: everything
before the first training event). The last lines give the goal of issue 15 for each line.
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

from chaosmining.cache import Cache  # noqa: E402
from chaosmining.experiments import audio as A  # noqa: E402
from chaosmining.experiments import vision as V  # noqa: E402
from chaosmining.runtime import configure_threads  # noqa: E402

# Issue 15's goals for the quick presets: accuracy per condition, within 120 s of wall time.
VISION_GOAL = {"RBFP": 0.6, "SBFP": 0.6, "RBRP": 0.4, "SBRP": 0.4}
AUDIO_GOAL = {"random": 0.5, "structured": 0.4}
WALL_GOAL = 120.0


def machine() -> str:
    load = os.getloadavg()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, {torch.get_num_threads()} torch thread(s)"
    )


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
    return (
        f"{what}: accuracy {r.accuracy:.3f} (goal {row['goal']:.2f}{'' if r.learned else ', NOT LEARNED'}) {scores}"
        f" | {floor}  wall {row['wall_s']:.0f} s, CPU {row['cpu_s']:.0f} s, training {row['train_s']:.0f} s,"
        f" data {row['data_share']:.0%} of wall"
    )


def bench_vision(a: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    methods = tuple(a.methods.split(",")) if a.methods else V.DEFAULT_METHODS
    for seed in a.seeds:
        for background in ("random", "structured"):
            for position in ("fixed", "random"):
                cache = Cache(Path(tempfile.mkdtemp(prefix="bench-presets-")))
                cfg = V.VisionConfig.from_preset(
                    a.preset, model=a.model or "compact_cnn", seed=seed, background=background, position=position
                )
                ev = V.VisionEvalConfig.for_config(cfg, methods)
                r, common = _timed(V.run_vision, cfg, ev, cache)
                row = {
                    "condition": r.condition,
                    "seed": seed,
                    "accuracy": r.accuracy,
                    "chance": r.chance_accuracy,
                    "goal": VISION_GOAL[r.condition],
                    "iou": {m: round(v, 3) for m, v in r.iou.items() if v is not None},
                    "random_iou": r.random_iou,
                    **common,
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
                row = {
                    "model": model,
                    "background": background,
                    "seed": seed,
                    "accuracy": r.accuracy,
                    "chance": r.class_chance,
                    "goal": AUDIO_GOAL[background] if model == "tcn" else 2 * r.class_chance,
                    "channel_fprec": {m: round(v, 3) for m, v in r.channel_fprec.items()},
                    "floor": r.chance,
                    **common,
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
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="write the rows to this file")
    a = p.parse_args()
    configure_threads(a.threads)
    print(f"## quick-preset bench ({a.what}, preset {a.preset}) on {machine()}", flush=True)
    rows = bench_vision(a) if a.what == "vision" else bench_audio(a)
    met = [r for r in rows if r["accuracy"] >= r["goal"]]
    fast = [r for r in rows if r["wall_s"] <= WALL_GOAL]
    print(
        f"accuracy goal met in {len(met)} of {len(rows)} runs; wall <= {WALL_GOAL:.0f} s in {len(fast)} of {len(rows)}"
    )
    print(f"## load at the end: {machine()}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
