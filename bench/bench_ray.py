"""Ray against local for a 30-cell symbolic sweep on one machine (issue 13; target <= 1.15x local).

    python bench/bench_ray.py                 # 30 cells, workers = CPU count
    python bench/bench_ray.py --cells 10 --epochs 20 --workers 2

Each cell is a small symbolic run (its own seed); all cells are submitted at once to a fresh executor
with a fresh temporary cache, and the wall time from the first submission until every cell is done is
measured, first on the local executor (worker processes), then on the Ray executor (a local Ray
instance started here; its start-up is reported apart: a server pays it once), in the order local,
ray, ray, local so that a drift in the machine's load weighs on both alike; the ratio is of the sums.
Every sweep must give the same FPrec, UScore and test MAE cell for cell. The machine and its load are printed: timings on a
shared machine are contended, the ratio measured in one run is the figure to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chaosmining.cache import Cache  # noqa: E402
from chaosmining.experiments.symbolic import EvalConfig, SymbolicConfig  # noqa: E402
from chaosmining.runs import RunSpec, make_executor  # noqa: E402


def cells(n: int, samples: int, epochs: int) -> list[RunSpec]:
    base = SymbolicConfig()
    base = replace(
        base, data=replace(base.data, samples=samples, noise_features=5), train=replace(base.train, epochs=epochs)
    )
    ev = EvalConfig(methods=("saliency",))
    return [RunSpec("symbolic", replace(base, seed=s), ev, "cpu") for s in range(n)]


def sweep(name: str, specs: list[RunSpec], workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-ray-{name}-") as root:
        return _sweep(name, specs, workers, Cache(root))


def _sweep(name: str, specs: list[RunSpec], workers: int, cache: Cache) -> dict:
    t0 = time.perf_counter()
    ex = make_executor(name, cache=cache, workers=workers)
    start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    handles = [ex.submit(s, session=f"cell{i}") for i, s in enumerate(specs)]
    numbers = []
    for h in handles:
        r = h.result(3600)
        numbers.append((r.fprec, r.uscore, r.test_mae))
    wall = time.perf_counter() - t0
    ex.shutdown(10.0)
    return {"executor": name, "start_s": round(start_s, 2), "sweep_s": round(wall, 2), "numbers": numbers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=30)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--single", dest="abba", action="store_false", help="local then ray once (default: local, ray, ray, local)"
    )
    args = ap.parse_args()
    specs = cells(args.cells, args.samples, args.epochs)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} (shared machines are contended: quote the ratio)"
    )
    order = ["local", "ray", "ray", "local"] if args.abba else ["local", "ray"]
    runs = [sweep(name, specs, args.workers) for name in order]
    local = [r for r in runs if r["executor"] == "local"]
    ray = [r for r in runs if r["executor"] == "ray"]
    same = all(r["numbers"] == runs[0]["numbers"] for r in runs)
    ratio = sum(r["sweep_s"] for r in ray) / sum(r["sweep_s"] for r in local)
    print(
        json.dumps(
            {
                "cells": args.cells,
                "workers": args.workers,
                "order": order,
                "local_sweep_s": [r["sweep_s"] for r in local],
                "ray_sweep_s": [r["sweep_s"] for r in ray],
                "ray_start_s": [r["start_s"] for r in ray],
                "ratio_ray_over_local": round(ratio, 3),
                "target": "<= 1.15",
                "same_numbers": same,
                "load_average_after": round(os.getloadavg()[0], 2),
            },
            indent=1,
        )
    )
    if not same:
        sys.exit("The two executors gave different numbers.")


if __name__ == "__main__":
    main()
