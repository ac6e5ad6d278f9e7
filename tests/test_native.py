"""The compiled training step (chaosmining.native): gradients against autograd, fallback, atomic build."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
import torch

from chaosmining import native
from chaosmining.models.mlp import ACTIVATIONS, MLPConfig
from chaosmining.training import LOSSES, OPTIMIZERS, TrainConfig, mlp_loss_and_grads, train_mlp

needs_compiler = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")


@pytest.fixture
def fresh_native(monkeypatch):
    """Forget the loaded kernels before and after the test, so environment changes take effect."""
    native.reset()
    yield monkeypatch
    native.reset()


def _problem(dims, n, seed=0, dropout=0.0):
    gen = torch.Generator().manual_seed(seed)
    params = []
    for fan_in, fan_out in zip(dims, dims[1:] + [1]):
        params += [torch.randn(fan_out, fan_in, generator=gen) / fan_in**0.5, torch.randn(fan_out, generator=gen)]
    XT = torch.randn(dims[0], n, generator=gen)
    yT = (torch.rand(1, n, generator=gen) > 0.5).float()
    mask = None
    if dropout:
        mask = (torch.rand(dims[-1], n, generator=gen) > dropout).float() / (1 - dropout)
    return params, XT, yT, mask


def _autograd(params, XT, yT, mask, activation, loss):
    leaves = [p.double().requires_grad_() for p in params]
    act = ACTIVATIONS.get(activation).module()
    h = XT.double()
    for W, b in zip(leaves[0:-2:2], leaves[1:-2:2]):
        h = act(W @ h + b[:, None])
    if mask is not None:
        h = h * mask.double()
    pred = leaves[-2] @ h + leaves[-1][:, None]
    y = yT.double()
    if loss == "mse":
        value = ((pred - y) ** 2).mean()
    else:
        value = torch.nn.functional.binary_cross_entropy_with_logits(pred, y)
    return value.detach(), torch.autograd.grad(value, leaves)


@needs_compiler
def test_kernels_build_and_pass_their_self_check_here():
    st = native.status()
    assert st.available, st.detail
    assert native.kernels() is not None


@needs_compiler
@pytest.mark.parametrize("activation", ACTIVATIONS.names())
@pytest.mark.parametrize("loss", ["mse", "bce"])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
@pytest.mark.parametrize(("n", "block"), [(200, 64), (37, 16), (5, 16), (160, 32)])
def test_compiled_step_matches_autograd(activation, loss, dropout, n, block):
    # n not a multiple of the block or of 16: the last block is padded and must add nothing.
    lib = native.kernels()
    params, XT, yT, mask = _problem([7, 9, 11, 5], n, dropout=dropout)
    act, spec = ACTIVATIONS.get(activation), LOSSES.get(loss)
    value, grads = native.mlp_step(lib, params, XT, yT, act.native, spec.native, mask, block=block)
    ref, ref_grads = _autograd(params, XT, yT, mask, activation, loss)
    assert float(value) == pytest.approx(float(ref), rel=1e-5, abs=1e-6)
    for g, r in zip(grads, ref_grads):
        assert g.shape == r.shape and g.dtype == torch.float32
        torch.testing.assert_close(g.double(), r, rtol=1e-4, atol=2e-5)


@needs_compiler
def test_strided_inputs_and_one_hidden_layer():
    # A column slice of a wider matrix (row stride != n) and a mask view are read in place.
    lib = native.kernels()
    params, XT, yT, mask = _problem([4, 12], 100, dropout=0.5)
    wide = torch.randn(4, 130)
    wide[:, 10:110] = XT
    value, grads = native.mlp_step(lib, params, wide[:, 10:110], yT, 0, 0, mask, block=32)
    ref, ref_grads = _autograd(params, XT, yT, mask, "gelu", "mse")
    assert float(value) == pytest.approx(float(ref), rel=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g.double(), r, rtol=1e-4, atol=2e-5)


@needs_compiler
def test_trainer_dispatches_float32_cpu_to_the_compiled_step_and_agrees_with_pytorch(fresh_native):
    params, XT, yT, _ = _problem([6, 16, 16], 300)
    act = ACTIVATIONS.get("gelu")
    v_native, g_native = mlp_loss_and_grads(params, XT, yT, act)
    assert native.status().available
    fresh_native.setenv(native.NATIVE_ENV, "0")
    native.reset()
    assert native.kernels() is None and "turned off" in native.status().detail
    v_torch, g_torch = mlp_loss_and_grads(params, XT, yT, act)
    assert float(v_native) == pytest.approx(float(v_torch), rel=1e-5)
    for a, b in zip(g_native, g_torch):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@needs_compiler
def test_a_step_plan_reads_parameters_updated_in_place_and_reuses_its_gradients():
    # A training loop binds p.grad to the plan's tensors once; each call must see the optimizer's in-place
    # update and overwrite (not add to) the gradients, for any batch width.
    lib = native.kernels()
    params, XT, yT, _ = _problem([5, 16, 16], 120)
    plan = native.StepPlan(lib, params, 0, 0)
    grads = plan.grads
    plan(XT, yT)
    with torch.no_grad():
        for p in params:
            p.mul_(0.9).add_(0.01)
    for cols in (120, 40):
        value = plan(XT[:, :cols], yT[:, :cols])
        assert plan.grads is grads
        ref, ref_grads = _autograd(params, XT[:, :cols], yT[:, :cols], None, "gelu", "mse")
        assert value == pytest.approx(float(ref), rel=1e-5)
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g.double(), r, rtol=1e-4, atol=2e-5)


@needs_compiler
def test_the_compiled_adam_follows_pytorchs_adam_over_many_steps():
    lib = native.kernels()
    gen = torch.Generator().manual_seed(1)
    ours = [torch.randn(shape, generator=gen) for shape in [(7, 5), (7,), (1, 7), (1,)]]
    theirs = [p.clone() for p in ours]
    mine, ref = native.Optimizer(lib, ours, OPTIMIZERS.get("adam").native, 1e-2), torch.optim.Adam(theirs, lr=1e-2)
    for _ in range(300):
        for a, b in zip(ours, theirs):
            a.grad = torch.randn(a.shape, generator=gen) * 0.1
            b.grad = a.grad.clone()
        mine.step()
        ref.step()
    for a, b, (m, v) in zip(ours, theirs, mine.state):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(m, ref.state[b]["exp_avg"], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(v, ref.state[b]["exp_avg_sq"], rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="grad"):
        ours[0].grad = None
        mine.step()
    with pytest.raises(ValueError, match="code 7"):
        native.Optimizer(lib, ours, 7, 1e-3)
    with pytest.raises(ValueError, match="contiguous"):  # a copy would miss the optimizer's in-place updates
        native.StepPlan(lib, [ours[0].T, ours[1], ours[2], ours[3]], 0, 0)


@needs_compiler
@pytest.mark.parametrize(("optimizer", "compiled"), [("adam", True), ("sgd", False)])
def test_the_trainer_uses_the_compiled_optimizer_where_the_registry_has_one(monkeypatch, optimizer, compiled):
    calls = []
    step = native.Optimizer.step
    monkeypatch.setattr(native.Optimizer, "step", lambda self: calls.append(1) or step(self))
    X, y = _toy(n=100)
    res = train_mlp(X, y, MLPConfig(width=8, depth=2), TrainConfig(epochs=20, optimizer=optimizer), seed=0)
    assert len(calls) == (20 if compiled else 0)
    assert np.isfinite(res.loss_values).all()


def _toy(n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = np.clip(rng.standard_normal((n, d)) * 0.33, -1, 1)
    return X, np.sin(2 * X[:, 0]) + X[:, 1] ** 2


def test_training_without_the_compiled_step_reaches_the_same_fit(fresh_native):
    X, y = _toy()
    cfg, tc = MLPConfig(width=16, depth=2), TrainConfig(epochs=300, lr=1e-2, snapshots=2)
    fast = train_mlp(X, y, cfg, tc, seed=3)
    fresh_native.setenv(native.NATIVE_ENV, "off")
    native.reset()
    slow = train_mlp(X, y, cfg, tc, seed=3)
    assert fast.loss_values[-1] < 0.1 * fast.loss_values[0]
    # Float32 rounding differs between the two paths; the fits agree, not the last bits.
    assert fast.loss_values[-1] == pytest.approx(slow.loss_values[-1], rel=0.05)
    for a, b in zip(fast.params, slow.params):
        torch.testing.assert_close(a, b, rtol=0.05, atol=5e-3)


def test_a_failing_compiler_falls_back_with_a_reason(fresh_native, tmp_path):
    fresh_native.setenv("CC", shutil.which("false") or "/bin/false")
    fresh_native.setenv(native.NATIVE_DIR_ENV, str(tmp_path / "native"))
    assert native.kernels() is None
    st = native.status()
    assert not st.available and "could not compile" in st.detail and "PyTorch's operators" in st.detail
    assert not list((tmp_path / "native").glob(".build-*"))  # no half-written library left behind
    X, y = _toy(n=60)
    trained = train_mlp(X, y, MLPConfig(width=8, depth=1), TrainConfig(epochs=5, snapshots=1), seed=0)
    assert np.isfinite(trained.loss_values).all()


@needs_compiler
def test_the_build_is_atomic_and_reused(fresh_native, tmp_path):
    fresh_native.setenv(native.NATIVE_DIR_ENV, str(tmp_path / "native"))
    assert native.kernels() is not None
    built = list((tmp_path / "native").iterdir())
    assert len(built) == 1 and built[0].suffix == ".so" and not built[0].name.startswith(".")
    inode = built[0].stat().st_ino
    native.reset()
    assert native.kernels() is not None
    assert [p.stat().st_ino for p in (tmp_path / "native").iterdir()] == [inode]  # reused, not rebuilt


@needs_compiler
def test_a_new_build_prunes_builds_unused_for_a_month_and_stale_temporaries(fresh_native, tmp_path):
    folder = tmp_path / "native"
    folder.mkdir()
    old, recent, stale_tmp = folder / "mlp_kernels-0ld.so", folder / "mlp_kernels-2ecent.so", folder / ".build-x.so"
    for path, days in ((old, native.PRUNE_AFTER_DAYS + 1), (recent, 2), (stale_tmp, 2)):
        path.write_bytes(b"")
        stamp = time.time() - days * 86400
        os.utime(path, (stamp, stamp))
    fresh_native.setenv(native.NATIVE_DIR_ENV, str(folder))
    assert native.kernels() is not None
    names = sorted(p.name for p in folder.iterdir())
    assert recent.name in names and old.name not in names and stale_tmp.name not in names
    assert len(names) == 2  # the recent one and the new build


def test_block_columns_fit_the_cache_in_multiples_of_16():
    for dims, n in (([110, 100, 100, 100], 8000), ([5, 3], 7), ([1000, 2000], 100_000)):
        block = native.block_columns(dims, n)
        assert block % 16 == 0 and 16 <= block <= max(16, n + 15)


@needs_compiler
@pytest.mark.parametrize("n", [1000, 70])
def test_the_result_does_not_depend_on_the_number_of_threads(n):
    # Fixed partial sums (lanes): a sweep worker that is lent an idle core mid-training stays reproducible.
    lib = native.kernels()
    params, XT, yT, mask = _problem([6, 20, 20], n, dropout=0.2)
    results = [native.mlp_step(lib, params, XT, yT, 0, 0, mask, block=64, threads=t) for t in (1, 2, 3, 4)]
    for value, grads in results[1:]:
        assert float(value) == float(results[0][0])
        for a, b in zip(grads, results[0][1]):
            assert torch.equal(a, b)


@needs_compiler
def test_prepare_in_background_builds_once(fresh_native, tmp_path):
    fresh_native.setenv(native.NATIVE_DIR_ENV, str(tmp_path / "native"))
    native.prepare_in_background()
    native.prepare_in_background()  # a second page load starts no second build
    assert native.kernels() is not None  # waits for the background build, then shares it
    assert len(list((tmp_path / "native").glob("*.so"))) == 1
