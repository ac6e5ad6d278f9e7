"""Benchmarks of the vision modality (issue 3). Prints ratios measured in one run and absolute times.

    python bench/bench_vision.py train         # training images/s per architecture (CPU presets' geometry)
    python bench/bench_vision.py attribution   # attribution seconds per image per method (compact CNN, 224 px)
    python bench/bench_vision.py page          # fresh install: opening the Vision page until the gallery shows
    python bench/bench_vision.py fidelity      # demo preset, four noise conditions, beside the paper's Tables 2/3
    python bench/bench_vision.py all           # train + attribution + page (fidelity trains for an hour on a CPU)

Every line names the machine and its load: on a shared CPU the absolute numbers move by 2x or more, the
ratios measured in one run much less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from chaosmining.attribution import METHODS  # noqa: E402
from chaosmining.cache import Cache  # noqa: E402
from chaosmining.data.vision import VisionDataConfig, make_vision_data, to_model_input  # noqa: E402
from chaosmining.errors import ConfigError  # noqa: E402
from chaosmining.experiments.vision import (  # noqa: E402
    DEFAULT_METHODS,
    VisionConfig,
    VisionEvalConfig,
    classification_loss,
    patch_mask,
    run_conditions,
    vision_methods,
    vision_param_defaults,
)
from chaosmining.models.vision import ARCHITECTURES, build_model  # noqa: E402
from chaosmining.runtime import configure_threads, synchronize  # noqa: E402

# The paper's Tables 2 and 3 for ResNet18 and DenseNet121 (accuracy %, IoU of SA, DL, IG, FA).
PAPER = {
    "ResNet18": {
        "RBFP": (77.44, 0.678, 0.530, 0.551, 0.677),
        "RBRP": (76.26, 0.659, 0.393, 0.287, 0.321),
        "SBFP": (80.41, 0.745, 0.610, 0.618, 0.825),
        "SBRP": (77.56, 0.637, 0.509, 0.514, 0.381),
    },
    "DenseNet121": {
        "RBFP": (83.38, 0.738, 0.566, 0.601, 0.748),
        "RBRP": (82.07, 0.699, 0.367, 0.372, 0.362),
        "SBFP": (85.60, 0.767, 0.645, 0.658, 0.857),
        "SBRP": (84.23, 0.681, 0.599, 0.608, 0.400),
    },
}


def machine() -> str:
    load = os.getloadavg()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {gpu}, load "
        f"{load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}"
    )


def bench_train(canvases: list[int], steps: int, models: list[str], device: str = "cpu") -> None:
    """Images per second of training steps (forward, backward, AdamW) per architecture and canvas; on CUDA
    as the trainer runs them (bfloat16 autocast, channels-last, batch 64)."""
    dev = torch.device(device)
    gpu = dev.type == "cuda"
    print(f"## training throughput on {dev} ({machine()})")
    for canvas in canvases:
        rows = []
        for name in models:
            spec = ARCHITECTURES.get(name)
            try:
                spec.check_canvas(canvas)
            except Exception as exc:  # noqa: BLE001 - report and go on
                print(f"{name:<12} {canvas:>4} px  skipped: {exc}")
                continue
            batch = 64 if gpu else 32 if spec.cpu_friendly else 8
            model = build_model(name, 10, canvas).train().to(dev)
            if gpu:
                model.to(memory_format=torch.channels_last)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            x = torch.randn(batch, 3, canvas, canvas, device=dev)
            y = torch.randint(0, 10, (batch,), device=dev)
            n = max(1, steps if spec.cpu_friendly or gpu else min(steps, 2))
            for i in range(n + 2):
                if i == 2:  # two warm-up steps (cuDNN picks its kernels in the first)
                    synchronize(dev)
                    start = time.perf_counter()
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=gpu):
                    loss = classification_loss(spec, model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            synchronize(dev)
            rate = batch * n / (time.perf_counter() - start)
            rows.append((name, rate))
            del model, opt
        base = dict(rows).get("compact_cnn")
        for name, rate in rows:
            ratio = f"{base / rate:8.1f}x slower than compact_cnn" if base and name != "compact_cnn" else ""
            print(f"{name:<12} {canvas:>4} px  {rate:9.2f} images/s  {ratio}")


def bench_attribution(images: int, model_name: str = "compact_cnn", device: str = "cpu") -> None:
    """Seconds per image of each image method on ``model_name`` at the paper's geometry."""
    dev = torch.device(device)
    print(f"## attribution time per image, {model_name} on {dev}, 224 px, {images} images ({machine()})")
    data = make_vision_data(VisionDataConfig(train_size=10, val_size=images), 0, splits=("val",))
    x = torch.from_numpy(to_model_input(data.val.images(range(images))))
    model = build_model(model_name, 10, 224).eval().to(dev)
    target = torch.zeros(images, dtype=torch.long, device=dev)
    from chaosmining.attribution import attribute

    attribute(model, x[:2], "saliency", target=target[:2])  # warm-up (CUDA context, cuDNN kernels)
    rows = []
    for m in vision_methods():
        params = vision_param_defaults(m, 224, 32)
        try:
            res = attribute(
                model,
                x,
                m,
                target=target,
                params=params,
                feature_mask=patch_mask(224, 32) if m == "feature_ablation" else None,
            )
        except ConfigError as exc:  # e.g. DeepLift on a model that re-uses its ReLU modules (ResNets)
            print(f"{METHODS.get(m).display_name:<40} not applicable: {str(exc)[:100]}")
            continue
        rows.append((m, res.seconds / images))
    base = dict(rows)["saliency"]
    for m, s in rows:
        print(f"{METHODS.get(m).display_name:<40} {s * 1000:9.2f} ms/image  {s / base:8.1f}x Saliency")


def bench_page(timeout: float) -> None:
    """A fresh install (empty cache): start the app, open the Vision page, wait for the gallery."""
    print(f"## fresh install: open the Vision page until the gallery shows ({machine()})")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    cache = tempfile.mkdtemp(prefix="bench-vision-cache-")
    env = {**os.environ, "CHAOSMINING_CACHE": cache}
    port = 8800 + os.getpid() % 100
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import urllib.request

        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        server = time.perf_counter() - t0
        if exe is None:
            print(f"server healthy after {server:.1f} s; no Chromium, so the page was not opened")
            return
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t1 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/Vision")
            page.get_by_test_id("stImage").first.wait_for(timeout=timeout * 1000)
            first = time.perf_counter() - t1
            t2 = time.perf_counter()
            page.reload()
            page.get_by_test_id("stImage").first.wait_for(timeout=timeout * 1000)
            again = time.perf_counter() - t2
            browser.close()
        print(f"server start {server:.1f} s; first visit to the gallery {first:.1f} s (seeds the shipped entry, ")
        print(f"loads it, regenerates 8 images); a second visit {again:.1f} s ({first / again:.1f}x the second)")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(cache, ignore_errors=True)


def bench_fidelity(preset: str, model: str, cache_dir: str | None, out: str | None) -> None:
    """The four noise conditions on ``preset`` beside the paper's ResNet18 and DenseNet121 rows."""
    print(f"## fidelity: {model}, {preset} preset, four noise conditions ({machine()})")
    config = VisionConfig.from_preset(preset, model=model)
    ev = VisionEvalConfig.for_preset(preset, DEFAULT_METHODS)
    t = time.perf_counter()
    results = run_conditions(config, ev, cache=Cache(cache_dir) if cache_dir else None)
    print(
        f"({time.perf_counter() - t:.0f} s; cached: {', '.join(c for c, r in results.items() if r.cached) or 'none'})"
    )
    short = [METHODS.get(m).short for m in DEFAULT_METHODS]
    print(
        f"{'':<22}{'acc %':>7}"
        + "".join(f"{s:>7}" for s in short)
        + f"{'floor':>7}{'ceil':>7}{'point SA':>10}{'mass SA':>9}"
    )
    table = {}
    for code, r in results.items():
        ious = [r.scores[m].iou if m in r.scores else float("nan") for m in DEFAULT_METHODS]
        sa = r.scores.get("saliency")
        print(
            f"ours {code:<17}{100 * r.accuracy:>7.1f}"
            + "".join(f"{v:>7.3f}" for v in ious)
            + f"{r.random_iou:>7.3f}{r.perfect_iou:>7.3f}{sa.pointing if sa else float('nan'):>10.2f}"
            f"{sa.mass if sa else float('nan'):>9.3f}"
        )
        table[code] = {"accuracy": r.accuracy, "iou": dict(zip(DEFAULT_METHODS, ious)), "floor": r.random_iou}
        for arch, rows in PAPER.items():
            acc, *p = rows[code]
            print(f"  paper {arch:<14}{acc:>7.1f}" + "".join(f"{v:>7.3f}" for v in p))
    if out:
        Path(out).write_text(json.dumps(table, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="all", choices=["train", "attribution", "page", "fidelity", "all"])
    ap.add_argument("--canvases", default="112,224", help="canvases for 'train' (the quick and demo presets')")
    ap.add_argument("--steps", type=int, default=5, help="timed training steps (2 for the torchvision models)")
    ap.add_argument("--models", default=",".join(ARCHITECTURES.names()), help="architectures for 'train'")
    ap.add_argument("--images", type=int, default=16, help="images for 'attribution'")
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--model", default="compact_cnn")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", default=None, help="write the fidelity table as JSON here")
    ap.add_argument("--device", default="cpu", help="train/attribution: cpu, cuda or cuda:N")
    a = ap.parse_args()
    configure_threads()
    np.seterr(all="ignore")
    if a.what in ("train", "all"):
        bench_train([int(c) for c in a.canvases.split(",")], a.steps, a.models.split(","), a.device)
    if a.what in ("attribution", "all"):
        bench_attribution(a.images, a.model, a.device)
    if a.what in ("page", "all"):
        bench_page(a.timeout)
    if a.what == "fidelity":
        bench_fidelity(a.preset, a.model, a.cache_dir, a.out)


if __name__ == "__main__":
    main()
