"""Many same-shape MLPs trained as one batched computation (stacked weights, batched matrix products).

:func:`train_mlps` trains K networks that share every shape and hyperparameter (input width, training
rows, width, depth, activation, dropout, epochs, batch size, optimizer, learning rate, loss, precision) but
not their data or seed, as :func:`chaosmining.training.train_mlp` would train each one alone: the same
feature-major forward/backward, written with ``torch.baddbmm``/``torch.bmm`` over weights stacked to
``(K, out, in)``, and one optimizer over the stacked tensors (every registered optimizer's update is
elementwise, :attr:`OptimizerSpec.elementwise`, so that is K independent optimizers). A Figure 4 grid
of a few thousand small trainings becomes a few dozen large products per step, which a GPU runs near its
arithmetic bound where one 100-wide MLP at a time leaves it idle.

**Equivalence.** The randomness is train_mlp's, member by member: each member's initial weights come
from its own generator seeded exactly as train_mlp seeds it, and its mini-batch order and dropout masks
from its own generator in the same order of draws (the CPU generator after the initial weights; on CUDA
a CUDA generator seeded ``seed + 7919``). So the batched result is the unbatched one up to
floating-point rounding: on a CPU in float32 train_mlp runs its compiled kernels
(:mod:`chaosmining.native`) whose sums are ordered differently from PyTorch's products, and the weights
agree to float tolerance (``tests/test_batched.py`` checks the weights after training and the FPrec of
the attributions computed on them). Rounding differences grow over long trainings as in any two
builds of the same network; they are not a different random stream. At the paper's 1,000 full-batch
epochs (formulas 1-3, seeds 0 and 1, 2,000 training rows, 100 noise features, 500 rows attributed) the
FPrec of the five default methods agreed exactly in 5 of 6 cells and to 0.004 in the sixth, against a
median difference of 0.019 between two seeds of one cell.

A member whose loss becomes NaN or infinite is reported with train_mlp's own error
(:func:`chaosmining.training.diverged_error`, at the same epoch); the others train on, since nothing in
the batched products mixes members.

References
----------
Shi et al. (2024), ChaosMining, https://arxiv.org/abs/2406.12150 (Figure 4: 4,350 trainings).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from .errors import ConfigError, JobCancelled, TrainingDivergedError
from .models.mlp import ACTIVATIONS, MLPConfig, init_mlp_parameters
from .runtime import lend_idle_cores, resolve_device, tune_allocator
from .training import (
    LOSSES,
    OPTIMIZERS,
    TrainConfig,
    TrainedMLP,
    batched_loss_and_grads,
    check_precision,
    diverged_error,
    snapshot_epochs,
)

__all__ = [
    "BatchedMonitor",
    "BatchedTraining",
    "train_mlps",
    "batched_loss_and_grads",
    "batched_by_default",
    "member_bytes",
    "step_macs",
]


class BatchedMonitor(Protocol):
    """What :func:`train_mlps` reports to: every member's epoch loss, and Stop between epochs."""

    def on_progress(self, epoch: int, losses: np.ndarray) -> None: ...

    def should_stop(self) -> bool: ...


@dataclass
class BatchedTraining:
    """The K trained networks, in the order of the inputs.

    ``models[i]`` is member i's :class:`TrainedMLP` (its ``seconds`` is the batched run's time divided by
    K), or ``None`` when it diverged; ``errors[i]`` is then train_mlp's error for it.
    """

    models: list[TrainedMLP | None]
    errors: list[TrainingDivergedError | None]
    seconds: float = 0.0
    device: str = "cpu"
    steps: int = 0
    macs: float = 0.0  # multiply-accumulates of the whole training (forward and backward, every member)

    def model(self, i: int) -> TrainedMLP:
        """Member ``i``'s network; raises its :class:`TrainingDivergedError` when it diverged."""
        if self.errors[i] is not None:
            raise self.errors[i]
        model = self.models[i]
        assert model is not None
        return model


def batched_by_default(device: str | torch.device = "auto") -> bool:
    """Whether sweeps and reproductions batch their trainings unless told: on CUDA, yes; on a CPU, no
    (there the compiled single-model step is faster per model than PyTorch's batched products)."""
    if isinstance(device, torch.device):
        return device.type == "cuda"
    # an explicit 'cuda' is taken at its word (a Ray driver may have no GPU of its own); 'auto' asks this machine
    return device.startswith("cuda") or (device == "auto" and resolve_device(device).type == "cuda")


def member_bytes(n_inputs: int, rows: int, model: MLPConfig) -> int:
    """Peak float32 bytes one member adds to a batched training: its data, pre-activations, activations
    and their gradients for ``rows`` rows, and weights with gradients and two optimizer moments."""
    activations = 4 * rows * (n_inputs + 1 + 4 * model.width * model.depth + 2)
    weights = 4 * 4 * model.n_parameters(n_inputs)
    return int(activations + weights)


def step_macs(n_inputs: int, rows: int, model: MLPConfig) -> int:
    """Multiply-accumulates of one training step over ``rows`` rows: forward, and backward for the
    weights' and the hidden activations' gradients (the input gradient is not needed)."""
    w = model.width
    forward = rows * (n_inputs * w + (model.depth - 1) * w * w + w)
    return 3 * forward - rows * n_inputs * w


def _generator_seed(seed: int) -> int:
    return int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])  # train_mlp's


def _check_members(Xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], seeds: Sequence[int]) -> tuple[int, int]:
    if not len(Xs) or len(Xs) != len(ys) or len(Xs) != len(seeds):
        raise ConfigError(
            "The 'Xs', 'ys' and 'seeds' parameters of train_mlps must be non-empty and of one length. "
            f"Got {len(Xs)}, {len(ys)} and {len(seeds)} instead."
        )
    shapes = {np.shape(X) for X in Xs}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ConfigError(
            f"The 'Xs' parameter of train_mlps must hold arrays of one shape (n, d). Got shapes {sorted(shapes)} instead."
        )
    n, d = next(iter(shapes))
    bad = [np.shape(y) for y in ys if np.size(y) != n]
    if bad:
        raise ConfigError(f"The 'ys' parameter of train_mlps must hold {n} targets per member. Got {bad[0]} instead.")
    return n, d


def train_mlps(
    Xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    model_config: MLPConfig,
    train_config: TrainConfig,
    *,
    seeds: Sequence[int],
    device: torch.device | str = "cpu",
    monitor: BatchedMonitor | None = None,
    report_every: int | None = None,
) -> BatchedTraining:
    """Train K fresh MLPs, member k on ``Xs[k]`` (``(n, d)``) and ``ys[k]`` (``(n,)``) with seed ``seeds[k]``.

    Every member is the network ``train_mlp(Xs[k], ys[k], model_config, train_config, seed=seeds[k],
    device=device)`` would return, up to floating-point rounding (see the module docstring): the same
    initial weights, mini-batch order, dropout masks, loss curve epochs and weight snapshots.

    Raises
    ------
    ConfigError
        When the members' data differ in shape, or the optimizer's update is not elementwise.
    JobCancelled
        When ``monitor.should_stop()`` turns true (checked before every epoch).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> Xs = [rng.uniform(-1, 1, (64, 3)) for _ in range(4)]
    >>> out = train_mlps(Xs, [X[:, 0] for X in Xs], MLPConfig(width=8, depth=2), TrainConfig(epochs=5),
    ...                  seeds=[0, 1, 2, 3])
    >>> len(out.models), out.models[0].params[0].shape
    (4, torch.Size([8, 3]))
    """
    n, d = _check_members(Xs, ys, seeds)
    tune_allocator()
    device = torch.device(device)
    dtype = check_precision(train_config.precision, device)
    act = ACTIVATIONS.get(model_config.activation)
    loss_spec = LOSSES.get(train_config.loss)
    opt_spec = OPTIMIZERS.get(train_config.optimizer)
    if not opt_spec.elementwise:
        raise ConfigError(
            f"The 'optimizer' parameter of train_mlps must name an optimizer with an elementwise update. Got "
            f"{train_config.optimizer!r} instead; train these models one at a time (train_mlp)."
        )
    K = len(seeds)
    gens = [torch.Generator().manual_seed(_generator_seed(int(s))) for s in seeds]
    inits = [init_mlp_parameters(d, model_config, g, "cpu") for g in gens]  # before any other draw, as train_mlp
    dev_gens = (
        gens if device.type == "cpu" else [torch.Generator(device=device).manual_seed(int(s) + 7919) for s in seeds]
    )
    params = [torch.stack([member[i] for member in inits]).to(device).contiguous() for i in range(len(inits[0]))]
    XT = torch.as_tensor(np.stack([np.asarray(X).T for X in Xs]), dtype=torch.float32).to(device=device, dtype=dtype)
    yT = torch.as_tensor(np.stack([np.asarray(y).reshape(1, -1) for y in ys]), dtype=torch.float32).to(device, dtype)
    bs = n if train_config.batch_size in (0, None) or train_config.batch_size >= n else train_config.batch_size
    p_drop = model_config.dropout
    epochs = train_config.epochs
    snaps = set(snapshot_epochs(epochs, train_config.snapshots))
    every = report_every or max(1, epochs // 200)
    snapshots: list[list[tuple[int, list[torch.Tensor]]]] = [[] for _ in range(K)]
    loss_epochs: list[int] = []
    loss_values: list[np.ndarray] = []
    errors: list[TrainingDivergedError | None] = [None] * K
    opt = opt_spec.factory(params, train_config.lr)

    def snapshot(epoch: int) -> None:
        stacked = [p.detach().cpu() for p in params]  # one copy of the stack, then each member's own tensors
        for k in range(K):
            snapshots[k].append((epoch, [p[k].clone() for p in stacked]))

    start = time.perf_counter()
    steps = 0
    snapshot(0)
    with torch.no_grad():
        for epoch in range(1, epochs + 1):
            if monitor is not None and monitor.should_stop():
                raise JobCancelled(f"Training stopped by the user at epoch {epoch - 1} of {epochs}.")
            if bs == n:
                batches = [(XT, yT)]
            else:
                perms = torch.stack([torch.randperm(n, generator=g, device=device) for g in dev_gens])  # (K, n)
                batches = []
                for idx in perms.split(bs, dim=1):
                    batches.append(
                        (
                            torch.gather(XT, 2, idx.unsqueeze(1).expand(K, d, idx.shape[1])),
                            torch.gather(yT, 2, idx.unsqueeze(1)),
                        )
                    )
            epoch_loss = torch.zeros(K, device=device)
            for xb, yb in batches:
                mask = None
                if p_drop > 0:
                    masks = []
                    for g in dev_gens:  # each member's own stream, in train_mlp's order of draws
                        m = torch.empty(model_config.width, xb.shape[2], device=device)
                        masks.append(m.bernoulli_(1 - p_drop, generator=g).div_(1 - p_drop))
                    mask = torch.stack(masks).to(dtype)
                work = params if dtype == torch.float32 else [p.to(dtype) for p in params]
                losses, grads = batched_loss_and_grads(work, xb, yb, act, mask, loss_spec)
                for p, g in zip(params, grads):
                    p.grad = g.float()
                opt.step()
                steps += 1
                epoch_loss += losses.float() * (xb.shape[2] / n)
            if epoch % every == 0 or epoch == epochs:
                lend_idle_cores()
                values = epoch_loss.double().cpu().numpy()
                for k in np.flatnonzero(~np.isfinite(values)):
                    if errors[k] is None:
                        errors[k] = diverged_error(epoch, float(values[k]), train_config)
                loss_epochs.append(epoch)
                loss_values.append(values)
                if monitor is not None:
                    monitor.on_progress(epoch, values)
            if epoch in snaps:
                snapshot(epoch)
    seconds = time.perf_counter() - start
    final = [p.detach().cpu() for p in params]
    curves = np.stack(loss_values, axis=1) if loss_values else np.zeros((K, 0))
    models: list[TrainedMLP | None] = []
    for k in range(K):
        if errors[k] is not None:
            models.append(None)
            continue
        models.append(
            TrainedMLP(
                n_inputs=d,
                config=model_config,
                params=[p[k].clone() for p in final],
                snapshots=snapshots[k],
                loss_epochs=np.asarray(loss_epochs, dtype=np.int64),
                loss_values=np.asarray(curves[k], dtype=np.float64),
                seconds=seconds / K,
                device=str(device),
            )
        )
    return BatchedTraining(
        models=models,
        errors=errors,
        seconds=seconds,
        device=str(device),
        steps=steps,
        macs=float(K) * epochs * step_macs(d, n, model_config),
    )
