"""Benchmarks of the audio modality (issue 4). Prints ratios measured in one run, and absolute times
with the machine named (CPU, cores, load average).

    python bench/bench_audio.py synthesis      # ms per clip: espeak-ng, formant words, soundscape
    python bench/bench_audio.py training       # training clips per second per model (batch 32, CPU)
    python bench/bench_audio.py attribution    # seconds per clip per method per model
    python bench/bench_audio.py page           # fresh install: opening the Audio page until the bars
    python bench/bench_audio.py fidelity       # demo preset, 4 models x 2 backgrounds, beside Table 4

``fidelity`` trains (or loads from the cache, ``--cache-dir``) every model on the demo preset for both
backgrounds and prints accuracy and channel FPrec per method beside the paper's Table 4.
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

from chaosmining.attribution import attribute  # noqa: E402
from chaosmining.cache import Cache  # noqa: E402
from chaosmining.data.audio import random_background  # noqa: E402
from chaosmining.data.soundscape import rainforest  # noqa: E402
from chaosmining.data.speech import WORDS, synthesize_words  # noqa: E402
from chaosmining.experiments.audio import (  # noqa: E402
    AUDIO_DEFAULT_METHODS,
    CHANNEL_FEATURE_METHODS,
    AudioConfig,
    AudioEvalConfig,
    _no_cudnn,
    channel_mask,
    run_audio,
)
from chaosmining.models.audio import AUDIO_MODELS, AudioModelConfig, build_audio_model  # noqa: E402
from chaosmining.runtime import configure_threads  # noqa: E402

# The paper's Table 4 (fixed position): accuracy % and channel FPrec per method.
PAPER = {
    "random": {
        "rnn": (
            67.00,
            {"saliency": 0.653, "deeplift": 0.585, "integrated_gradients": 0.275, "feature_ablation": 0.447},
        ),
        "lstm": (
            73.77,
            {"saliency": 0.684, "deeplift": 0.590, "integrated_gradients": 0.260, "feature_ablation": 0.515},
        ),
        "tcn": (
            80.96,
            {"saliency": 0.641, "deeplift": 0.297, "integrated_gradients": 0.258, "feature_ablation": 0.539},
        ),
        "transformer": (
            23.25,
            {"saliency": 0.460, "deeplift": 0.236, "integrated_gradients": 0.138, "feature_ablation": 0.335},
        ),
    },
    "structured": {
        "rnn": (
            63.16,
            {"saliency": 0.644, "deeplift": 0.541, "integrated_gradients": 0.340, "feature_ablation": 0.482},
        ),
        "lstm": (
            76.07,
            {"saliency": 0.810, "deeplift": 0.772, "integrated_gradients": 0.439, "feature_ablation": 0.546},
        ),
        "tcn": (
            82.52,
            {"saliency": 0.721, "deeplift": 0.427, "integrated_gradients": 0.337, "feature_ablation": 0.561},
        ),
        "transformer": (
            25.75,
            {"saliency": 0.513, "deeplift": 0.315, "integrated_gradients": 0.193, "feature_ablation": 0.373},
        ),
    },
}
SHORT = {"saliency": "SA", "deeplift": "DL", "integrated_gradients": "IG", "feature_ablation": "FA"}


def machine() -> str:
    load = os.getloadavg()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
        f"{load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
        + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "")
    )


def _timed(fn, reps: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps


def bench_synthesis(a: argparse.Namespace) -> dict:
    """Marginal cost per clip: (time for 2n clips - time for n clips) / n. Both runs pay the espeak
    worker's start, so the difference leaves it out; the start is reported on its own (one clip)."""
    n = a.clips
    words = WORDS[: max(1, n // 4)]
    per = max(1, n // len(words))
    total = len(words) * per
    out = {}
    for engine in ("espeak", "formant"):
        one = _timed(lambda engine=engine: synthesize_words(words[:1], 1, engine=engine))
        single = _timed(lambda engine=engine: synthesize_words(words, per, engine=engine))
        double = _timed(lambda engine=engine: synthesize_words(words, 2 * per, engine=engine))
        out[f"{engine}_ms_per_clip"] = 1000 * (double - single) / total
        out[f"{engine}_first_clip_s"] = one
    rng = np.random.default_rng(0)
    out["soundscape_ms_per_channel_second"] = 1000 * _timed(lambda: rainforest(20, rng)) / 20
    out["random_background_ms_per_clip"] = 1000 * _timed(lambda: random_background(np.arange(64), 9, 0.25)) / 64
    out["espeak_vs_formant"] = out["espeak_ms_per_clip"] / out["formant_ms_per_clip"]
    return out


def _model(arch: str, device: str = "cpu") -> torch.nn.Module:
    torch.manual_seed(0)
    return build_audio_model(AudioModelConfig(arch=arch), 10, 35).to(device)


def bench_training(a: argparse.Namespace) -> dict:
    x = torch.randn(a.batch, 10, 16_000, device=a.device) * 0.25
    y = torch.randint(0, 35, (a.batch,), device=a.device)
    out = {}
    for arch in AUDIO_MODELS.names():
        model = _model(arch, a.device).train()
        opt = torch.optim.AdamW(model.parameters(), 1e-3)

        def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()
        out[f"{arch}_clips_per_s"] = a.batch / _timed(step, a.reps)
    base = out["tcn_clips_per_s"]
    out.update({f"{arch}_vs_tcn": out[f"{arch}_clips_per_s"] / base for arch in AUDIO_MODELS.names()})
    return out


def bench_attribution(a: argparse.Namespace) -> dict:
    x = torch.randn(a.clips, 10, 16_000) * 0.25
    target = torch.zeros(a.clips, dtype=torch.long, device=a.device)
    out = {}
    for arch in AUDIO_MODELS.names():
        model = _model(arch, a.device).eval()
        for m in AUDIO_DEFAULT_METHODS:
            mask = channel_mask(10) if m in CHANNEL_FEATURE_METHODS else None
            with _no_cudnn(torch.device(a.device), AUDIO_MODELS.get(arch).recurrent):
                res = attribute(model, x, m, target=target, feature_mask=mask)
            out[f"{arch}_{m}_s_per_clip"] = res.seconds / a.clips
        out[f"{arch}_ig_vs_saliency"] = (
            out[f"{arch}_integrated_gradients_s_per_clip"] / out[f"{arch}_saliency_s_per_clip"]
        )
    return out


def bench_page(a: argparse.Namespace) -> dict:
    """A fresh install: an empty cache (shipped entries only), a new Streamlit server, a browser that opens
    the Audio page; time until the channel bars are drawn (and, for comparison, the home page)."""
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return {"error": "chromium not found"}
    cache = tempfile.mkdtemp(prefix="bench-audio-cache-")
    port = 8765
    env = {**os.environ, "CHAOSMINING_CACHE": cache}
    t_start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out: dict = {}
    try:
        import urllib.request

        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        out["server_start_s"] = time.perf_counter() - t_start
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t0 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/Audio")
            page.locator(".js-plotly-plot").filter(has_text="Channel importance per method").first.wait_for(
                timeout=600_000
            )
            out["open_audio_page_to_bars_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            page.reload()
            page.locator(".js-plotly-plot").filter(has_text="Channel importance per method").first.wait_for(
                timeout=600_000
            )
            out["second_visit_to_bars_s"] = time.perf_counter() - t0
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(cache, ignore_errors=True)
    out["first_vs_second_visit"] = out["open_audio_page_to_bars_s"] / out["second_visit_to_bars_s"]
    return out


def bench_fidelity(a: argparse.Namespace) -> dict:
    cache = Cache(a.cache_dir) if a.cache_dir else Cache()
    rows = []
    for arch in a.models.split(","):
        for bg in a.backgrounds.split(","):
            cfg = AudioConfig.from_preset(a.preset, model=arch, background=bg, seed=a.seed)
            ev = AudioEvalConfig.for_preset(a.preset)
            t = time.perf_counter()
            r = run_audio(cfg, ev, cache=cache, device=a.device)
            row = {
                "model": arch,
                "background": bg,
                "accuracy": r.accuracy,
                "class_chance": r.class_chance,
                "channel_fprec": r.channel_fprec,
                "fprec_std": {m: s.channel_fprec_std for m, s in r.scores.items()},
                "top1_hit": {m: s.top1_hit for m, s in r.scores.items()},
                "train_seconds": r.train_seconds,
                "seconds": time.perf_counter() - t,
                "cached": r.cached,
                "result_key": r.summary()["model_key"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(f"{'model':<12}{'bg':<11}{'acc%':>6} {'(paper)':>8}" + "".join(f"{SHORT[m]:>7}{'(p)':>6}" for m in SHORT))
    for row in rows:
        acc_p, fp_p = PAPER[row["background"]][row["model"]]
        cells = "".join(f"{row['channel_fprec'].get(m, float('nan')):>7.3f}{fp_p[m]:>6.2f}" for m in SHORT)
        print(f"{row['model']:<12}{row['background']:<11}{100 * row['accuracy']:>6.1f} {acc_p:>8.1f}{cells}")
    return {"rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["synthesis", "training", "attribution", "page", "fidelity"])
    p.add_argument("--clips", type=int, default=200)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--preset", default="demo")
    p.add_argument("--models", default="tcn,lstm,rnn,transformer")
    p.add_argument("--backgrounds", default="random,structured")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--device", default="cpu", help="training/attribution/fidelity: cpu, cuda or cuda:N")
    a = p.parse_args()
    configure_threads()
    print(f"machine: {machine()}", flush=True)
    out = {"synthesis": bench_synthesis, "training": bench_training, "attribution": bench_attribution}.get(a.what)
    out = out(a) if out else {"page": bench_page, "fidelity": bench_fidelity}[a.what](a)
    if a.what != "fidelity":
        for k, v in out.items():
            print(f"{k:<42}{v:10.3f}" if isinstance(v, float) else f"{k:<42}{v}")
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
