"""Benchmarks and fidelity runs of the evaluation of evaluators (issue 6). Prints absolute times with the
machine named (CPU, cores, load average) and ratios measured in the same run.

    python bench/bench_evaluation.py quick      # the 16-d example and one retraining per lite task (default)
    python bench/bench_evaluation.py page       # every section of the page at its defaults, fresh cache
    python bench/bench_evaluation.py retrains   # ROAR retrainings per minute per task, quick presets included
    python bench/bench_evaluation.py fidelity   # the questions of the issue, on our data (tens of minutes)

Every run uses a fresh temporary cache unless ``--cache-dir`` is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from chaosmining.cache import Cache  # noqa: E402
from chaosmining.evaluation import (  # noqa: E402
    BlurConfig,
    FaithfulnessConfig,
    RoadConfig,
    RoarConfig,
    SanityConfig,
    TaskConfig,
    load_task,
    run_blur,
    run_faithfulness,
    run_road,
    run_roar,
    run_sanity,
)
from chaosmining.evaluation.common import derive_seed  # noqa: E402
from chaosmining.runtime import configure_threads  # noqa: E402

TOY_METHODS = ("saliency", "input_x_gradient", "oracle", "anti_oracle", "random")
PAGE_METHODS = ("saliency", "integrated_gradients", "random", "oracle")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, load average {load}"


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _toy(cache: Cache, repeats: int = 3) -> float:
    task = TaskConfig(task="toy16")
    _, seconds = timed(
        lambda: [
            run_roar(RoarConfig(task=task, methods=TOY_METHODS, keep=k, repeats=repeats), cache=cache)
            for k in (False, True)
        ]
    )
    return seconds


def retrain_seconds(task: TaskConfig, cache: Cache, n: int = 2) -> tuple[float, float]:
    """Seconds of one retraining of ``task``'s model (median of ``n``) and of loading the task."""
    loaded, load_s = timed(lambda: load_task(task, cache=cache))
    times = []
    for i in range(n):
        _, s = timed(lambda i=i: loaded.fit(loaded.X_train, loaded.y_train, seed=derive_seed(99, i)))
        times.append(s)
    return float(np.median(times)), load_s


def audio_quick_retrain_seconds() -> float:
    """One training of the Audio page's quick preset (a fresh seed, so nothing comes from a cache)."""
    from chaosmining.experiments.audio import AudioConfig, train_audio_model

    cfg = AudioConfig.from_preset("quick", seed=12345) if hasattr(AudioConfig, "from_preset") else AudioConfig()
    with tempfile.TemporaryDirectory() as tmp:
        _, s = timed(lambda: train_audio_model(cfg, cache=Cache(tmp), device="cpu"))
    return s


def cmd_quick(cache: Cache) -> None:
    print(f"machine: {machine()}")
    toy = _toy(cache)
    print(f"16-d example, ROAR + KAR, 5 estimators x 5 fractions x 3 repeats: {toy:.1f} s")
    for name in ("formula:7", "vision", "audio"):
        r, load = retrain_seconds(TaskConfig(task=name), cache, n=1)
        print(
            f"{name:<12} first load/training {load:6.1f} s, one retraining {r:6.2f} s = {60 / r:6.1f} retrains/minute"
        )


def cmd_retrains(cache: Cache) -> None:
    print(f"machine: {machine()}")
    rows = {}
    for name in ("formula:7", "vision", "audio", "vision-quick"):
        r, load = retrain_seconds(TaskConfig(task=name), cache, n=2 if name != "vision-quick" else 1)
        rows[name] = r
        print(f"{name:<13} load {load:7.1f} s, retraining {r:7.2f} s = {60 / r:7.2f} retrains/minute", flush=True)
    try:
        a = audio_quick_retrain_seconds()
        rows["audio quick preset"] = a
        print(
            f"{'audio-quick':<13} one training of the Audio page's quick preset {a:7.1f} s = {60 / a:7.2f} retrains/minute"
        )
    except Exception as exc:  # noqa: BLE001 - report and carry on
        print(f"audio quick preset: not measured ({type(exc).__name__}: {exc})")
    base = rows["vision"]
    print(
        "ratios to one retraining of the lite vision task: "
        + ", ".join(f"{k} {v / base:.1f}x" for k, v in rows.items())
    )


def cmd_page(cache: Cache) -> None:
    print(f"machine: {machine()}")
    task = TaskConfig(task="vision")
    times: dict[str, float] = {}
    times["16-d example (ROAR + KAR, 3 repeats)"] = _toy(cache)
    _, times["train the vision task's model"] = timed(lambda: load_task(task, cache=cache))
    runs = {
        "ROAR (4 estimators, default fractions, 1 repeat)": lambda: run_roar(
            RoarConfig(task=task, methods=PAGE_METHODS), cache=cache
        ),
        "ROAD (linear + mean, 200 rows, 3 repeats)": lambda: run_road(
            RoadConfig(task=task, methods=PAGE_METHODS, samples=200), cache=cache
        ),
        "blur bias (saliency, random, oracle at 0.05/0.1/0.3)": lambda: run_blur(
            BlurConfig(task=task, fractions=(0.05, 0.1, 0.3)), cache=cache
        ),
        "sanity: cascading (5 methods, 64 rows)": lambda: run_sanity(SanityConfig(task=task), cache=cache),
        "sanity: labels (3 trainings on 500 rows)": lambda: run_sanity(
            SanityConfig(task=task, test="labels"), cache=cache
        ),
        "faithfulness (4 estimators, 200 rows)": lambda: run_faithfulness(
            FaithfulnessConfig(task=task, methods=PAGE_METHODS), cache=cache
        ),
    }
    for name, fn in runs.items():
        _, times[name] = timed(fn)
        print(f"  {name:<55}{times[name]:8.1f} s", flush=True)
    toy = times["16-d example (ROAR + KAR, 3 repeats)"]
    print(f"  {'16-d example (ROAR + KAR, 3 repeats)':<55}{toy:8.1f} s")
    print("ratios to the 16-d example: " + ", ".join(f"{k.split(' (')[0]} {v / toy:.0f}x" for k, v in times.items()))


def _area_table(res: Any, title: str) -> None:
    print(
        f"\n{title}: {res.task['score_name']} (unmodified {res.task['base_score']:.3f}, chance {res.task['chance']:.2f})"
    )
    curves = res.main if hasattr(res, "main") else res
    fr = res.fractions
    print(f"  {'estimator':<34}" + "".join(f"{f:>9g}" for f in fr) + f"{'area':>9}")
    for c in curves.values():
        print(f"  {c.label[:33]:<34}" + "".join(f"{s:>9.3f}" for s in c.score) + f"{c.area():>9.3f}")


def cmd_fidelity(cache: Cache, repeats: int) -> None:
    print(f"machine: {machine()}")
    start = time.perf_counter()
    methods = ("saliency", "integrated_gradients", "smoothgrad", "smoothgrad_sq", "vargrad", "random", "oracle")
    for name, fractions in (
        ("vision", (0.035, 0.07, 0.14, 0.3, 0.5)),
        ("audio", (0.03, 0.06, 0.12, 0.3, 0.5)),
        ("formula:10", ()),
    ):
        res = run_roar(
            RoarConfig(task=TaskConfig(task=name), methods=methods, fractions=fractions, repeats=repeats), cache=cache
        )
        _area_table(res, f"ROAR on {name}, {repeats} repeats (lower is better)")
        print("  " + res.reading())
        nr = res.no_retrain
        print("  no retraining, area: " + ", ".join(f"{k} {c.area():.3f}" for k, c in nr.items()))
    for name in ("vision", "audio"):
        b = run_blur(
            BlurConfig(task=TaskConfig(task=name), fractions=(0.05, 0.1, 0.3, 0.5), repeats=repeats), cache=cache
        )
        print(
            f"\nBlur bias on {name} ({repeats} repeats): ROAR area / ROAD MoRF area / boundary ratio / components / probe"
        )
        for k, c in b.roar.items():
            road = b.road.get("morf", {}).get(k)
            st = b.mask_stats.get(k, {})
            print(
                f"  {c.label[:44]:<45}{c.area():7.3f} {road.area() if road else float('nan'):7.3f} "
                f"{np.nanmean(st.get('boundary_ratio', [np.nan])):7.2f} {np.nanmean(st.get('components', [np.nan])):7.1f} "
                f"{np.nanmean(b.probe.get(k, [np.nan])):7.3f}"
            )
        print("  " + b.reading())
    sanity_methods = ("saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "guided_backprop")
    for name in ("vision", "audio", "formula:10"):
        for test in ("cascading", "labels"):
            s = run_sanity(SanityConfig(task=TaskConfig(task=name), methods=sanity_methods, test=test), cache=cache)
            step = s.steps[0]
            print(
                f"\nSanity '{test}' on {name}, {step}: "
                + ", ".join(f"{m} {by[step]['spearman'][0]:.2f}" for m, by in s.values.items())
            )
            if test == "labels":
                ctrl = s.steps[1]
                print(
                    "  control (true vs true): "
                    + ", ".join(f"{m} {by[ctrl]['spearman'][0]:.2f}" for m, by in s.values.items())
                )
                print(
                    f"  memorised: permuted-label train {s.info['permuted_train_score']:.2f}, test {s.info['permuted_test_score']:.2f}"
                )
    print(f"\nfidelity runs took {time.perf_counter() - start:.0f} s; machine at the end: {machine()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", default="quick", choices=["quick", "page", "retrains", "fidelity"])
    parser.add_argument("--cache-dir", default=None, help="reuse a cache (default: a fresh temporary one)")
    parser.add_argument("--repeats", type=int, default=3, help="fidelity: repeats per ROAR point")
    a = parser.parse_args()
    configure_threads()
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        cache = Cache(a.cache_dir or tmp)
        if a.what == "fidelity":
            cmd_fidelity(cache, a.repeats)
        else:
            {"quick": cmd_quick, "page": cmd_page, "retrains": cmd_retrains}[a.what](cache)


if __name__ == "__main__":
    main()
