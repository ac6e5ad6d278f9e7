"""The CUDA path, checked against the CPU where the answer must agree.

Skipped on a machine without a CUDA device (CI has none). On a GPU machine run ``pytest tests/test_gpu.py``,
and the rest of the library suite on the GPU with ``CHAOSMINING_DEVICE=cuda`` (what 'auto' then resolves to);
``bench/gpu_check.sh`` does both and times the benchmarks there.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from test_attribution_methods import FAST, _tiny_audio_cnn, _tiny_cnn
from test_audio_experiment import TINY as AUDIO_TINY
from test_experiment_symbolic import TINY
from test_vision_experiment import _eval as vision_eval
from test_vision_experiment import _tiny as vision_config

from chaosmining.attribution import METHODS, attribute
from chaosmining.cache import Cache
from chaosmining.cli import main
from chaosmining.experiments.audio import AudioConfig, AudioEvalConfig, run_audio
from chaosmining.experiments.rfe import RFEConfig, RFEDataConfig, run_rfe
from chaosmining.experiments.symbolic import EvalConfig, run_symbolic
from chaosmining.experiments.vision import run_vision
from chaosmining.models.mlp import MLPConfig, build_mlp
from chaosmining.runtime import device_info, native_bf16, resolve_device
from chaosmining.sweep import SweepConfig, run_sweep
from chaosmining.training import TrainConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
CUDA = torch.device("cuda")


@pytest.fixture
def exact_fp32():
    """Full float32 products on the GPU (no TF32), so that CPU and GPU may be compared closely."""
    matmul, conv = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, conv


def _cpu_and_gpu(model: torch.nn.Module, x: torch.Tensor, method: str, target) -> tuple[np.ndarray, np.ndarray]:
    params = FAST.get(method)
    cpu = attribute(model, x, method, target=target, params=params).values
    on_gpu = copy.deepcopy(model).to(CUDA)
    gpu_target = target.to(CUDA) if isinstance(target, torch.Tensor) else target
    gpu = attribute(on_gpu, x, method, target=gpu_target, params=params).values
    return cpu, gpu


def test_auto_resolves_to_cuda_and_the_home_page_facts_name_the_gpu(monkeypatch):
    monkeypatch.delenv("CHAOSMINING_DEVICE", raising=False)
    assert resolve_device("auto").type == "cuda"
    info = device_info()
    assert info.cuda_available and info.gpu_name and info.device == "cuda"
    assert native_bf16("cuda") == torch.cuda.is_bf16_supported()


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_on_the_gpu_gives_the_cpu_answer(method, exact_fp32):
    """Same model, same inputs, same seed: every registered method agrees across devices (random draws
    come from a CPU generator on both, so even the sampling methods must match)."""
    torch.manual_seed(0)
    mlp = build_mlp(6, MLPConfig(width=16, depth=2)).eval()
    for model, x, target in (
        (mlp, torch.randn(5, 6), 0),
        (_tiny_cnn(), torch.randn(2, 3, 8, 8), 1),
        (_tiny_audio_cnn(), torch.randn(2, 2, 24), torch.tensor([0, 2])),
    ):
        cpu, gpu = _cpu_and_gpu(model, x, method, target)
        assert gpu.shape == cpu.shape and np.isfinite(gpu).all()
        np.testing.assert_allclose(gpu, cpu, rtol=2e-3, atol=2e-4 * (np.abs(cpu).max() + 1e-6), err_msg=method)


def test_peak_memory_is_measured_on_the_gpu():
    model = build_mlp(50, MLPConfig(width=64, depth=2)).to(CUDA)
    res = attribute(model, torch.randn(256, 50), "integrated_gradients", target=0, measure_memory=True)
    assert res.peak_memory_bytes and res.peak_memory_bytes > 256 * 50 * 4


def test_symbolic_training_on_the_gpu_reaches_the_cpu_quality(tmp_path):
    ev = EvalConfig(methods=("saliency", "integrated_gradients", "random"))
    cpu = run_symbolic(TINY, ev, cache=Cache(tmp_path / "cpu"), device="cpu")
    gpu = run_symbolic(TINY, ev, cache=Cache(tmp_path / "gpu"), device="cuda")
    s = json.loads(json.dumps(gpu.summary()))
    assert s["device"].startswith("cuda") and not s["cached"]
    assert abs(gpu.test_mae - cpu.test_mae) < 0.02
    for m in ("saliency", "integrated_gradients"):
        assert abs(gpu.fprec[m] - cpu.fprec[m]) < 0.05, m
    assert gpu.fprec["saliency"] > 0.9 > gpu.fprec["random"]
    assert gpu.scores["saliency"].peak_memory_bytes > 0
    # the checkpoint loads back on the GPU as a cache hit
    again = run_symbolic(TINY, ev, cache=Cache(tmp_path / "gpu"), device="cuda")
    assert again.cached and again.fprec == gpu.fprec


def test_bf16_training_on_the_gpu_keeps_fp32_weights_and_finds_the_features(tmp_path):
    if not native_bf16("cuda"):
        pytest.skip("this GPU has no native bfloat16")
    config = TINY.replace(train=TINY.train.replace(precision="bf16"))
    r = run_symbolic(config, EvalConfig(methods=("saliency",)), cache=Cache(tmp_path), device="cuda")
    assert r.fprec["saliency"] > 0.9 and r.test_mae < 0.2


def test_a_sweep_on_the_gpu_runs_its_cells_in_one_process(tmp_path):
    cfg = SweepConfig(
        base=TINY.replace(train=TrainConfig(epochs=60, lr=1e-2)),
        factor="noise_features",
        values=(2, 20),
        seeds=(0,),
        eval=EvalConfig(methods=("saliency", "random"), curve_samples=0),
    )
    res = run_sweep(cfg, cache=Cache(tmp_path), device="cuda", workers=2)
    assert [c.error for c in res.cells] == [None, None]
    assert res.aggregate()[(2, "saliency")]["fprec_mean"] > 0.5


def test_vision_trains_with_mixed_precision_and_attributes_on_the_gpu(tmp_path):
    r = run_vision(vision_config(), vision_eval(), cache=Cache(tmp_path), device="cuda")
    s = r.summary()
    assert s["device"].startswith("cuda")
    assert all(0.0 <= v <= 1.0 for v in s["iou"].values()) and 0.0 <= s["accuracy"] <= 1.0
    assert np.isfinite(r.arrays["map_saliency"]).all()


@pytest.mark.parametrize("model", ["rnn", "lstm", "tcn", "transformer"])
def test_every_audio_model_trains_and_is_attributed_on_the_gpu(model, tmp_path):
    """cuDNN refuses the backward pass of a recurrent network in eval mode: attribution must work anyway."""
    config = AudioConfig.from_preset("quick", model=model, train={"epochs": 1}, **AUDIO_TINY)
    ev = AudioEvalConfig.for_preset("quick", samples=4, examples=2, params={"integrated_gradients": {"steps": 4}})
    r = run_audio(config, ev, cache=Cache(tmp_path), device="cuda")
    s = r.summary()
    assert s["device"].startswith("cuda")
    assert all(0 <= v <= 1 for v in s["channel_fprec"].values())
    assert np.allclose(r.arrays["importance_saliency"].sum(axis=1), 1, atol=1e-5)


def test_rfe_on_the_gpu_keeps_the_dominant_features(tmp_path):
    config = RFEConfig(
        data=RFEDataConfig(task="formula:2*a - 3*b + c", noise_features=9, samples=800),
        selectors=("saliency", "feature_ablation", "linear"),
        train=TrainConfig(epochs=150, snapshots=1),
    )
    torch.cuda.reset_peak_memory_stats()
    result = run_rfe(config, cache=Cache(tmp_path), device="cuda", workers=2)  # on CUDA: in this process
    for s in ("saliency", "feature_ablation"):
        assert result.runs[s].error_message is None and result.runs[s].kept == (0, 1, 2), s
    assert torch.cuda.max_memory_allocated() > 0  # the networks were trained on the GPU


def test_the_cli_runs_on_the_gpu(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CHAOSMINING_CACHE", str(tmp_path))
    args = ["symbolic", "--formula", "2*a - b", "--noise-features", "4", "--samples", "400", "--epochs", "50"]
    assert main([*args, "--methods", "saliency", "--device", "cuda", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"].startswith("cuda") and 0 <= out["fprec"]["saliency"] <= 1
