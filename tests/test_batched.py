"""Batched training of same-shape MLPs: the unbatched networks member by member, groups in the run layer.

The batched trainer draws each member's initial weights, mini-batch order and dropout masks from the
generator train_mlp would use, so on a CPU the weights agree with train_mlp's to float rounding (train_mlp
runs compiled kernels whose sums are ordered differently).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chaosmining import reproduce as R
from chaosmining.batched import batched_loss_and_grads, train_mlps
from chaosmining.cache import Cache
from chaosmining.data.symbolic import SymbolicDataConfig
from chaosmining.errors import ConfigError, JobCancelled
from chaosmining.experiments.symbolic import MODEL_KIND, RESULT_KIND, EvalConfig, SymbolicConfig, run_symbolic
from chaosmining.experiments.symbolic_group import (
    GROUP_KIND,
    SymbolicGroup,
    batch_key,
    group_configs,
    run_symbolic_group,
)
from chaosmining.grouping import plan_groups, use_batching
from chaosmining.models.mlp import ACTIVATIONS, MLPConfig, init_mlp_parameters
from chaosmining.results import ResultsStore, default_results_root, run_key_for
from chaosmining.runs import RunSpec, make_executor
from chaosmining.runs.factory import _RECORDER
from chaosmining.sweep import SweepConfig, run_sweep
from chaosmining.training import TrainConfig, mlp_loss_and_grads, train_mlp

GB = 2**30
EV = EvalConfig(methods=("saliency", "integrated_gradients", "random"), curve_samples=0, measure_memory=False)


def _data(k: int, n: int = 120, d: int = 5) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(7)
    Xs = [rng.uniform(-1, 1, (n, d)) for _ in range(k)]
    return Xs, [np.sin(2 * X[:, 0]) + (i + 1) * X[:, 1] ** 2 for i, X in enumerate(Xs)]


def _cfg(formula: str = "1", seed: int = 0, **kw) -> SymbolicConfig:
    data = {"formula": formula, "noise_features": 4, "samples": 200, **kw.pop("data", {})}
    return SymbolicConfig(
        data=SymbolicDataConfig(**data),
        model=kw.pop("model", MLPConfig(width=12, depth=2)),
        train=kw.pop("train", TrainConfig(epochs=25, lr=1e-2, snapshots=4)),
        seed=seed,
    )


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def test_batched_gradients_are_the_single_model_gradients():
    act = ACTIVATIONS.get("gelu")
    cfg = MLPConfig(width=6, depth=3)
    Xs, ys = _data(3, n=40, d=4)
    singles = [init_mlp_parameters(4, cfg, torch.Generator().manual_seed(s)) for s in range(3)]
    stacked = [torch.stack(ps) for ps in zip(*singles)]
    XT = torch.as_tensor(np.stack([X.T for X in Xs]), dtype=torch.float32)
    yT = torch.as_tensor(np.stack([y.reshape(1, -1) for y in ys]), dtype=torch.float32)
    losses, grads = batched_loss_and_grads(stacked, XT, yT, act)
    for k in range(3):
        loss, g = mlp_loss_and_grads(singles[k], XT[k], yT[k], act)
        assert float(losses[k]) == pytest.approx(float(loss), rel=1e-5)
        assert _max_diff([t[k] for t in grads], g) < 1e-5


@pytest.mark.parametrize(
    ("model", "train"),
    [
        (MLPConfig(width=16, depth=2), TrainConfig(epochs=40, lr=1e-2, snapshots=5)),
        (
            MLPConfig(width=16, depth=3, dropout=0.2, activation="relu"),
            TrainConfig(epochs=20, lr=1e-2, batch_size=32, optimizer="rmsprop", snapshots=3),
        ),
        (
            MLPConfig(width=16, depth=2, activation="tanh"),
            TrainConfig(epochs=20, lr=1e-2, batch_size=50, optimizer="sgd", loss="bce", snapshots=2),
        ),
    ],
    ids=["full-batch-adam", "minibatch-dropout-rmsprop", "minibatch-sgd-bce"],
)
def test_batched_training_gives_train_mlps_networks(model, train):
    Xs, ys = _data(3)
    if train.loss == "bce":
        ys = [(y > np.median(y)).astype(float) for y in ys]
    out = train_mlps(Xs, ys, model, train, seeds=[0, 5, 9])
    for k, seed in enumerate([0, 5, 9]):
        alone = train_mlp(Xs[k], ys[k], model, train, seed=seed)
        got = out.model(k)
        assert _max_diff(got.params, alone.params) < 1e-4
        assert [e for e, _ in got.snapshots] == [e for e, _ in alone.snapshots]
        assert _max_diff(got.snapshots[0][1], alone.snapshots[0][1]) == 0.0  # the same initial weights
        np.testing.assert_array_equal(got.loss_epochs, alone.loss_epochs)
        np.testing.assert_allclose(got.loss_values, alone.loss_values, rtol=1e-4, atol=1e-6)


def test_a_diverging_member_fails_alone_with_train_mlps_error():
    Xs, ys = _data(2)
    ys[1] = ys[1] + 1e200  # infinite once in float32
    train = TrainConfig(epochs=5, lr=1e-2)
    out = train_mlps(Xs, ys, MLPConfig(width=8, depth=2), train, seeds=[0, 1])
    assert out.models[0] is not None and out.errors[0] is None
    with pytest.raises(Exception) as alone:
        train_mlp(Xs[1], ys[1], MLPConfig(width=8, depth=2), train, seed=1)
    assert out.models[1] is None and str(out.errors[1]) == str(alone.value)


def test_stop_is_honoured_between_epochs():
    class Monitor:
        def __init__(self) -> None:
            self.epochs: list[int] = []

        def on_progress(self, epoch: int, losses: np.ndarray) -> None:
            assert losses.shape == (2,)
            self.epochs.append(epoch)

        def should_stop(self) -> bool:
            return len(self.epochs) >= 3

    Xs, ys = _data(2)
    monitor = Monitor()
    with pytest.raises(JobCancelled, match="epoch 3 of 50"):
        train_mlps(Xs, ys, MLPConfig(width=8, depth=2), TrainConfig(epochs=50), seeds=[0, 1], monitor=monitor)
    assert monitor.epochs == [1, 2, 3]


def test_members_of_other_shapes_are_refused():
    with pytest.raises(ConfigError, match="one shape"):
        train_mlps([np.zeros((10, 3)), np.zeros((10, 4))], [np.zeros(10)] * 2, MLPConfig(), TrainConfig(), seeds=[0, 1])


def test_the_grouping_key_separates_shapes_and_keeps_data_and_seeds_together():
    base = _cfg()
    same = [_cfg(seed=3), _cfg(formula="2"), _cfg(data={"label_noise": 0.1})]  # formulas 1 and 2: one column each
    assert {batch_key(c) for c in [base, *same]} == {batch_key(base)}
    other = [
        _cfg(data={"noise_features": 5}),
        _cfg(data={"samples": 300}),
        _cfg(formula="11"),  # more columns
        _cfg(model=MLPConfig(width=13, depth=2)),
        _cfg(model=MLPConfig(width=12, depth=3)),
        _cfg(model=MLPConfig(width=12, depth=2, dropout=0.1)),
        _cfg(train=TrainConfig(epochs=25, lr=2e-2, snapshots=4)),
        _cfg(train=TrainConfig(epochs=25, lr=1e-2, snapshots=4, optimizer="sgd")),
    ]
    keys = [batch_key(c) for c in other]
    assert batch_key(base) not in keys and len(set(keys)) == len(keys)
    groups = group_configs([base, *other, *same, base])
    assert sorted(len(g) for g in groups) == [1] * len(other) + [4]
    assert [len(g) for g in group_configs([base, *same], parts=2)] == [2, 2]
    with pytest.raises(ConfigError, match="train alike"):
        SymbolicGroup(members=((base, EV), (other[0], EV)))


def test_a_group_scores_each_member_as_a_plain_run(tmp_path):
    configs = [_cfg(seed=0), _cfg(formula="2", seed=1), _cfg(seed=2, data={"label_noise": 0.05})]
    group = SymbolicGroup(members=tuple((c, EV) for c in configs))
    out = run_symbolic_group(group, cache=Cache(tmp_path / "a"), device="cpu")
    assert out.trained == 3 and not out.errors
    for i, c in enumerate(configs):
        alone = run_symbolic(c, EV, cache=Cache(tmp_path / "b"), device="cpu")
        got = out.results[i]
        assert got.fprec == pytest.approx(alone.fprec, abs=1e-3)
        assert got.prediction_uscore == pytest.approx(alone.prediction_uscore, abs=1e-3)
        assert got.loss_epochs == alone.loss_epochs and got.curve_epochs == alone.curve_epochs


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    """One worker for the module's run-layer tests (its start is most of their time); their cells differ."""
    cache = Cache(tmp_path_factory.mktemp("batched") / "cache")
    ex = make_executor("local", cache=cache, workers=1, memory_budget=4 * GB)  # with the results store
    yield ex
    ex.shutdown(grace=5)


def test_a_group_run_writes_entries_a_plain_symbolic_run_answers_from(executor):
    configs = [_cfg(seed=s) for s in (0, 1, 2)]
    cache = executor.cache
    run_symbolic(configs[2], EV, cache=cache, device="cpu")  # already cached: the planner leaves it out
    specs = [RunSpec("symbolic", c, EV, "cpu") for c in configs]
    groups = plan_groups(specs, cache)
    assert len(groups) == 1 and [c.seed for c in groups[0].config.configs] == [0, 1]
    h = executor.submit(groups[0])
    group_result = h.result(timeout=300)
    assert h.status == "done" and not group_result.errors
    assert cache.has(GROUP_KIND, groups[0].config.config_hash) and group_result.trained == 2
    for i, spec in enumerate(specs[:2]):
        assert cache.has(MODEL_KIND, spec.config.config_hash) and cache.has(RESULT_KIND, spec.key.split(":", 1)[1])
        plain = executor.submit(spec)
        assert plain.cached and plain.result().fprec == group_result.results[i].fprec
    assert executor.submit(groups[0]).cached  # every member cached: the group itself is answered at once
    _RECORDER.submit(lambda: None).result(timeout=60)  # the store is written on the driver's recorder thread
    runs = ResultsStore(default_results_root(cache.root)).runs()
    recorded = {run_key_for(RESULT_KIND, {"model": c, "eval": EV}) for c in configs}
    mine = runs[runs["run_key"].isin(recorded)]  # the two members, as plain symbolic results (not the third)
    assert sorted(mine["kind"]) == ["symbolic-result"] * 2 and len(set(mine["run_key"])) == 2


def test_a_batched_sweep_trains_in_groups_and_reports_its_cells_as_trained(executor):
    cfg = SweepConfig(base=_cfg(), factor="label_noise", values=(0.0, 0.05), seeds=(0, 1), eval=EV)
    events = []
    groups_before = len(executor.cache.entries(GROUP_KIND))
    batched = run_sweep(cfg, executor=executor, device="cpu", batched=True, report=lambda **e: events.append(e))
    assert len(executor.cache.entries(GROUP_KIND)) == groups_before + 1 and not any(c.cached for c in batched.cells)
    assert any("4 models in 1 batched groups" in str(e.get("stage")) for e in events)
    again = run_sweep(cfg, executor=executor, device="cpu", batched=True)
    assert all(c.cached for c in again.cells) and [c.fprec for c in again.cells] == [c.fprec for c in batched.cells]


def test_reproduce_batched_groups_the_figure4_cells_and_tabulates_them(executor, monkeypatch):
    tiny = R.Grid(
        formulas=("1", "2"),
        factors=("label_noise",),
        values=2,
        epochs=15,
        samples=200,
        noise_features=4,
        eval_samples=30,
        reduces="a test grid",
    )
    monkeypatch.setitem(R.GRIDS, "figure4", {**R.GRIDS["figure4"], "quick": tiny})
    groups_before = len(executor.cache.entries(GROUP_KIND))
    rep = R.reproduce("figure4", "quick", executor=executor, device="cpu", batched=True)
    assert rep.cells == 4 and rep.cached == 0 and not rep.failed
    assert len(executor.cache.entries(GROUP_KIND)) == groups_before + 1
    assert set(rep.table["level"]) == {"0", "0.16"}


def test_reproduce_and_sweep_take_batched_on_off_or_the_device_default():
    from chaosmining.cli import build_parser

    p = build_parser()
    assert p.parse_args(["reproduce", "figure4"]).batched is None  # the default: on CUDA only
    assert p.parse_args(["reproduce", "figure4", "--batched"]).batched is True
    assert p.parse_args(["sweep", "--factor", "depth", "--no-batched"]).batched is False
    assert use_batching(None, "cpu") is False and use_batching(True, "cpu") is True


# --- on a GPU (skipped without one): the same equivalences on CUDA; bench/gpu_check.sh runs them --------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.fixture
def full_fp32():
    """True float32 products on the GPU (no TF32), as train_mlp and the fp32 bound use."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@cuda
def test_batched_training_on_the_gpu_gives_train_mlps_gpu_networks(full_fp32):
    Xs, ys = _data(3)
    model = MLPConfig(width=16, depth=3, dropout=0.2)
    train = TrainConfig(epochs=20, lr=1e-2, batch_size=32, snapshots=3)
    out = train_mlps(Xs, ys, model, train, seeds=[0, 5, 9], device="cuda")
    assert out.device == "cuda"
    for k, seed in enumerate([0, 5, 9]):  # the same CUDA generators per member: mini-batches and masks agree
        alone = train_mlp(Xs[k], ys[k], model, train, seed=seed, device="cuda")
        assert _max_diff(out.model(k).params, alone.params) < 1e-4


@cuda
def test_a_group_on_the_gpu_scores_each_member_as_a_plain_gpu_run(tmp_path, full_fp32):
    configs = [_cfg(seed=0), _cfg(formula="2", seed=1)]
    out = run_symbolic_group(
        SymbolicGroup(members=tuple((c, EV) for c in configs)), cache=Cache(tmp_path / "a"), device="cuda"
    )
    assert out.device.startswith("cuda") and not out.errors
    for i, c in enumerate(configs):
        alone = run_symbolic(c, EV, cache=Cache(tmp_path / "b"), device="cuda")
        assert out.results[i].fprec == pytest.approx(alone.fprec, abs=1e-3)
