"""Batched training of many same-shape MLPs against one at a time (issue 14, "On a GPU").

    python bench/bench_batched.py                          # 16 models x 100 epochs, 2,000 rows, on CUDA if present
    python bench/bench_batched.py --models 512 --epochs 1000 --samples 10000 --device cuda   # paper-sized cells

Trains ``--models`` networks of the default Figure 4 shape (width 100, depth 3, GELU, Adam, full batch) on
``--models`` datasets (formula 1, one seed each) two ways: one after another with ``train_mlp`` (on a CPU its
compiled step; ``--unbatched`` of them, the rate extrapolated) and all together with
``chaosmining.batched.train_mlps``. It reports models per second both ways and their ratio, the achieved
floating-point rate of each as a share of the fp32 bound of the same machine measured in the same run (a
large square float32 product, TF32 off, timed before, between and after, the fastest kept), the largest weight
difference between the two ways (same seeds: float rounding only), and what the measured batched rate means
for the paper-scale Figure 4: 4,350 trainings x 1,000 epochs of the default cell, and the exact training
work of the package's paper grid (``reproduce.plan("figure4", "paper")``: every cell's own shape).

Training work is counted exactly: forward 2*N*sum(in*out), weight gradients as much again, input
gradients of every layer but the first (``chaosmining.batched``; the same count as bench_symbolic.py).
Attribution and scoring are not counted (they run per model after training).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from chaosmining.batched import step_macs, train_mlps  # noqa: E402
from chaosmining.data.symbolic import SymbolicDataConfig, make_symbolic_data  # noqa: E402
from chaosmining.models.mlp import MLPConfig  # noqa: E402
from chaosmining.runtime import configure_threads, resolve_device, synchronize  # noqa: E402
from chaosmining.training import TrainConfig, train_mlp  # noqa: E402

PAPER_TRAININGS = 4350  # 58 settings x 15 formulas x 5 seeds (issue 14)
PAPER_EPOCHS = 1000


def machine(device: torch.device) -> str:
    load = os.getloadavg()
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    threads = torch.get_num_threads()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores ({threads} torch threads){gpu}, "
        f"load {load[0]:.2f}/{load[1]:.2f}, torch {torch.__version__}"
    )


def fp32_bound(device: torch.device, reps: int = 5) -> float:
    """FLOP/s of a large square float32 product (2048 wide on a CPU, 8192 on CUDA; TF32 off)."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    synchronize(device)
    reps = 20 if device.type == "cuda" else reps
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    synchronize(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def paper_grid_flops() -> tuple[int, float]:
    """Cells of the package's paper-scale Figure 4 grid and the exact FLOPs of their training."""
    from chaosmining.reproduce import plan

    total, cells = 0.0, {}
    for cell in plan("figure4", "paper", device="cpu"):
        c = cell.spec.config
        cells[c.config_hash] = 2.0 * c.train.epochs * step_macs(c.data.n_features, c.n_train_rows, c.model)
    total = sum(cells.values())
    return len(cells), total


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=int, default=16)
    p.add_argument(
        "--unbatched", type=int, default=4, help="how many of them to train one at a time (rate extrapolated)"
    )
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--samples", type=int, default=2000, help="rows per dataset before the 80/20 split (paper: 10,000)")
    p.add_argument("--noise-features", type=int, default=100)
    p.add_argument("--width", type=int, default=100)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="torch threads on a CPU (default 1: a shared machine)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    device = resolve_device(a.device)
    configure_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 bound and the training: true float32 products
    torch.backends.cudnn.allow_tf32 = False
    model = MLPConfig(width=a.width, depth=a.depth)
    train = TrainConfig(epochs=a.epochs)
    data = SymbolicDataConfig(formula="1", noise_features=a.noise_features, samples=a.samples)
    sets = [make_symbolic_data(data, seed) for seed in range(a.models)]
    Xs, ys = [s.X_train for s in sets], [s.y_train for s in sets]
    n, d = Xs[0].shape
    flops_per_model = 2.0 * a.epochs * step_macs(d, n, model)

    warm = TrainConfig(epochs=2)  # first calls load the compiled kernels and warm the allocator: not timed
    train_mlp(Xs[0], ys[0], model, warm, seed=0, device=device)
    train_mlps(Xs[:2], ys[:2], model, warm, seeds=[0, 1], device=device)
    bound_before = fp32_bound(device)
    k = max(1, min(a.unbatched, a.models))
    synchronize(device)
    t = time.perf_counter()
    singles = [train_mlp(Xs[i], ys[i], model, train, seed=i, device=device) for i in range(k)]
    synchronize(device)
    unbatched_s = time.perf_counter() - t
    bound_between = fp32_bound(device)  # this shared machine's speed moves: the bound is the best of three
    t = time.perf_counter()
    out = train_mlps(Xs, ys, model, train, seeds=list(range(a.models)), device=device)
    synchronize(device)
    batched_s = time.perf_counter() - t
    bound = max(bound_before, bound_between, fp32_bound(device))

    diff = max(float((x - y).abs().max()) for i in range(k) for x, y in zip(out.model(i).params, singles[i].params))
    unbatched_rate = k / unbatched_s
    batched_rate = a.models / batched_s
    batched_flops = a.models * flops_per_model / batched_s
    unbatched_flops = k * flops_per_model / unbatched_s
    paper_model_flops = 2.0 * PAPER_EPOCHS * step_macs(101, 8000, MLPConfig())
    grid_cells, grid_flops = paper_grid_flops()
    result = {
        "machine": machine(device),
        "device": str(device),
        "models": a.models,
        "unbatched_models": k,
        "epochs": a.epochs,
        "rows": n,
        "features": d,
        "width": a.width,
        "depth": a.depth,
        "fp32_bound_gflops": bound / 1e9,
        "unbatched_models_per_s": unbatched_rate,
        "batched_models_per_s": batched_rate,
        "batched_over_unbatched": batched_rate / unbatched_rate,
        "unbatched_gflops": unbatched_flops / 1e9,
        "batched_gflops": batched_flops / 1e9,
        "unbatched_share_of_bound": unbatched_flops / bound,
        "batched_share_of_bound": batched_flops / bound,
        "max_weight_difference": diff,
        "paper_default_cell_tflop": paper_model_flops / 1e12,
        "paper_4350_default_cells_s": PAPER_TRAININGS * paper_model_flops / batched_flops,
        "paper_grid_cells": grid_cells,
        "paper_grid_s": grid_flops / batched_flops,
        "paper_4350_s_at_bound": PAPER_TRAININGS * paper_model_flops / bound,
    }
    if a.json:
        print(json.dumps(result, indent=2))
        return result
    r = result
    print(f"machine: {r['machine']}")
    print(
        f"{a.models} models ({k} one at a time), {a.epochs} epochs, {n} rows x {d} features, width {a.width}, "
        f"depth {a.depth}, on {device}"
    )
    print(f"fp32 bound (square product): {r['fp32_bound_gflops']:.1f} GFLOP/s")
    print(
        f"one at a time: {r['unbatched_models_per_s']:.3f} models/s, {r['unbatched_gflops']:.1f} GFLOP/s "
        f"= {r['unbatched_share_of_bound']:.2f} of the bound"
    )
    print(
        f"batched:       {r['batched_models_per_s']:.3f} models/s, {r['batched_gflops']:.1f} GFLOP/s "
        f"= {r['batched_share_of_bound']:.2f} of the bound"
    )
    print(f"batched / one at a time: {r['batched_over_unbatched']:.2f}x; largest weight difference {diff:.2e}")
    print(
        f"paper-scale Figure 4 training at the batched rate: 4,350 x 1,000 epochs of the default cell "
        f"({r['paper_default_cell_tflop']:.2f} TFLOP each) {r['paper_4350_default_cells_s']:.0f} s "
        f"(at the bound: {r['paper_4350_s_at_bound']:.0f} s); the package's paper grid ({grid_cells} distinct "
        f"cells, each its own shape) {r['paper_grid_s']:.0f} s"
    )
    return result


if __name__ == "__main__":
    main()
