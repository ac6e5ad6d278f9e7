"""Training of the symbolic MLP regressor: the paper's optimizers, MSE loss, full batch by default.

The same trainer fits binary classifiers (the paper's RFEwNA classification task) with
``TrainConfig(loss="bce")``: binary cross-entropy on the single output logit.

The hot loop is a hand-written forward/backward over the MLP's weight tensors (no autograd graph), in
a feature-major layout (a sample per column). On a CPU in float32 it runs as one compiled call per step
(:mod:`chaosmining.native`: cache-sized blocks of samples, fused elementwise work, register-tiled
products; with Adam compiled too): on this project's 2-core AVX-512 machine a whole training run takes
1.2-1.7x the floating-point bound of its work (median 1.37; a shared VM), against 2.3-2.7x for the same
computation in PyTorch's eager operators. Elsewhere (CUDA, bfloat16, float64, or no C compiler) the
same computation runs in PyTorch's operators.
``tests/test_training.py`` and ``tests/test_native.py`` check both against autograd for every
activation and loss.
"""

from __future__ import annotations

import ctypes
import math
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.func import vmap

from . import native
from .config import ConfigBase
from .errors import CacheCorruptError, JobCancelled, TrainingDivergedError
from .models.mlp import ACTIVATIONS, ActivationSpec, MLPConfig, build_mlp, init_mlp_parameters, load_parameters
from .registry import Registry
from .runtime import lend_idle_cores, native_bf16, tune_allocator
from .validation import check_choice, check_float, check_int, param_error

__all__ = [
    "OptimizerSpec",
    "OPTIMIZERS",
    "TrainConfig",
    "PrecisionSpec",
    "PRECISIONS",
    "check_precision",
    "diverged_error",
    "LossSpec",
    "LOSSES",
    "TrainingMonitor",
    "TrainedMLP",
    "train_mlp",
    "batched_loss_and_grads",
    "mlp_loss_and_grads",
    "snapshot_epochs",
    "training_macs_per_second",
]


@dataclass(frozen=True)
class OptimizerSpec:
    """A registered optimizer: ``factory(params, lr)``. Where PyTorch has one, the fused implementation
    (one kernel for all of a step's arithmetic, on CPU and CUDA) is used: the same update, 3-4x faster
    than the per-parameter loop on the symbolic MLP."""

    name: str
    display_name: str
    factory: Callable[[Sequence[torch.Tensor], float], torch.optim.Optimizer]
    reference: str
    native: int | None = None  # the compiled optimizer's code (chaosmining.native.Optimizer), if it has one
    # Every update is elementwise (no norm or dot product across entries), so one optimizer over K models'
    # stacked weights is K independent optimizers (chaosmining.batched trains same-shape models together).
    elementwise: bool = True


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")
for _o in (
    OptimizerSpec(
        "sgd",
        "SGD",
        lambda p, lr: torch.optim.SGD(p, lr=lr, fused=True),
        "https://pytorch.org/docs/stable/generated/torch.optim.SGD.html",
    ),
    OptimizerSpec(
        "rmsprop",
        "RMSprop",
        lambda p, lr: torch.optim.RMSprop(p, lr=lr),
        "https://pytorch.org/docs/stable/generated/torch.optim.RMSprop.html",
    ),
    OptimizerSpec(
        "adam",
        "Adam (paper default)",
        lambda p, lr: torch.optim.Adam(p, lr=lr, fused=True),
        "https://arxiv.org/abs/1412.6980",
        native=0,
    ),
    OptimizerSpec(
        "adadelta", "Adadelta", lambda p, lr: torch.optim.Adadelta(p, lr=lr), "https://arxiv.org/abs/1212.5701"
    ),
    OptimizerSpec(
        "adagrad",
        "Adagrad",
        lambda p, lr: torch.optim.Adagrad(p, lr=lr, fused=True),
        "https://jmlr.org/papers/v12/duchi11a.html",
    ),
    OptimizerSpec("asgd", "ASGD", lambda p, lr: torch.optim.ASGD(p, lr=lr), "https://doi.org/10.1137/0330046"),
    OptimizerSpec(
        "adamw", "AdamW", lambda p, lr: torch.optim.AdamW(p, lr=lr, fused=True), "https://arxiv.org/abs/1711.05101"
    ),
):
    OPTIMIZERS.register(_o.name, _o)


@dataclass(frozen=True)
class LossSpec:
    """A training loss on the scalar output.

    ``value_and_grad(pred, y)`` takes predictions and targets of shape ``(1, n)`` and returns the mean
    loss and its gradient with respect to ``pred`` (same shape), without autograd. ``native`` is the
    loss's code in the compiled training step (``chaosmining/native/mlp_kernels.c``), or ``None``.
    """

    name: str
    display_name: str
    value_and_grad: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    reference: str
    native: int | None = None


def _mse(pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = pred.shape[1]
    r = pred - y
    return (r * r).sum() / n, r * (2.0 / n)


def _bce_with_logits(pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # mean(softplus(z) - y z) is BCE(sigmoid(z), y) without overflow; its derivative is sigmoid(z) - y.
    n = pred.shape[1]
    loss = (torch.nn.functional.softplus(pred) - y * pred).sum() / n
    return loss, (torch.sigmoid(pred) - y) / n


LOSSES: Registry[LossSpec] = Registry("loss")
for _l in (
    LossSpec(
        "mse", "Mean squared error (regression, paper default)", _mse, "https://arxiv.org/abs/2406.12150", native=0
    ),
    LossSpec(
        "bce",
        "Binary cross-entropy on the logit (classification)",
        _bce_with_logits,
        "https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html",
        native=1,
    ),
):
    LOSSES.register(_l.name, _l)


@dataclass(frozen=True)
class PrecisionSpec:
    """The number format of the trainer's matrix products and activations.

    Weights, their gradients handed to the optimizer and the optimizer's state stay float32 in every
    format (mixed precision, as automatic mixed precision on a GPU); attributions and scores are
    always computed in float32 on the float32 weights.
    """

    name: str
    display_name: str
    dtype: torch.dtype
    description: str
    speedup: float = 1.0  # speed against fp32 in PyTorch's operators, one core of an AMX CPU (time estimates)


PRECISIONS: Registry[PrecisionSpec] = Registry("precision")
for _p in (
    PrecisionSpec(
        "fp32",
        "float32 (paper)",
        torch.float32,
        "Every product and activation in float32, as the paper's code.",
    ),
    PrecisionSpec(
        "bf16",
        "bfloat16 products, float32 weights",
        torch.bfloat16,
        "Products and activations in bfloat16 (8-bit mantissa) with float32 accumulation, float32 weights and "
        "optimizer: 1.6x faster than float32 in PyTorch's operators on an AMX CPU, but 1.2x slower than the "
        "compiled float32 step the CPU trainer uses where it can; needs AVX512-BF16/AMX or an Ampere+ GPU. "
        "Results move slightly (the paper's Figure 7 run kept other features on formula 12): for what-ifs.",
        speedup=1.6,
    ),
):
    PRECISIONS.register(_p.name, _p)

_OWNER = "TrainConfig"

# Multiply-accumulates per second of MLP training on one core of the project's 2-core AVX-512 machine, for
# time estimates: PyTorch's operators in float32 (about 40 GFLOP/s), and the compiled step with the compiled
# Adam (about 110 GFLOP/s with two busy workers; 125 alone).
TORCH_MACS_PER_SECOND = 2e10
NATIVE_MACS_PER_SECOND = 5.5e10


def training_macs_per_second(precision: str = "fp32") -> float:
    """Estimated single-core training speed on a CPU in ``precision`` (see the constants above)."""
    if PRECISIONS.get(precision).dtype == torch.float32 and native.kernels() is not None:
        return NATIVE_MACS_PER_SECOND
    return TORCH_MACS_PER_SECOND * PRECISIONS.get(precision).speedup


@dataclass(frozen=True, kw_only=True)
class TrainConfig(ConfigBase):
    """How the MLP is trained (paper defaults: Adam, lr 1e-3, 1000 epochs, full batch, MSE).

    ``batch_size=0`` means full batch: one optimizer step per epoch, as in the paper. ``snapshots``
    evenly spaced copies of the weights are kept (plus the initial ones) so that attribution quality
    can be traced over training (the convergence of Figure 5) for any method, later. ``loss`` is a
    :data:`LOSSES` name: ``"mse"`` for regression, ``"bce"`` for a binary classifier's logit.
    ``precision`` is a :data:`PRECISIONS` name: ``"fp32"`` (the paper) or ``"bf16"`` (mixed precision).
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    epochs: int = 1000
    batch_size: int = 0
    snapshots: int = 20
    loss: str = "mse"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        check_choice(self.optimizer, "optimizer", owner=_OWNER, choices=OPTIMIZERS.names())
        check_choice(self.loss, "loss", owner=_OWNER, choices=LOSSES.names())
        check_choice(self.precision, "precision", owner=_OWNER, choices=PRECISIONS.names())
        object.__setattr__(self, "lr", check_float(self.lr, "lr", owner=_OWNER, low=0.0, high=100.0, low_open=True))
        object.__setattr__(self, "epochs", check_int(self.epochs, "epochs", owner=_OWNER, low=1, high=1_000_000))
        object.__setattr__(
            self, "batch_size", check_int(self.batch_size, "batch_size", owner=_OWNER, low=0, high=100_000_000)
        )
        object.__setattr__(self, "snapshots", check_int(self.snapshots, "snapshots", owner=_OWNER, low=1, high=1000))

    def hash_payload(self) -> dict:
        d = super().hash_payload()
        for name, default in (("loss", "mse"), ("precision", "fp32")):
            if d[name] == default:  # a default keeps the hashes (cache keys) from before the option existed
                del d[name]
        return d


class TrainingMonitor(Protocol):
    """What the trainer reports to (a job, the CLI's progress line, a test)."""

    def on_progress(self, epoch: int, loss: float) -> None: ...

    def on_snapshot(self, epoch: int, model: nn.Module) -> None: ...

    def should_stop(self) -> bool: ...


def snapshot_epochs(epochs: int, snapshots: int) -> list[int]:
    """Epochs after which weights are copied: 0 (initial), evenly spaced ones, and ``epochs``."""
    return sorted({round(i * epochs / snapshots) for i in range(snapshots + 1)})


def mlp_loss_and_grads(
    params: list[torch.Tensor],
    XT: torch.Tensor,
    yT: torch.Tensor,
    act: ActivationSpec,
    dropout_mask: torch.Tensor | None = None,
    loss: str | LossSpec = "mse",
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The loss (MSE by default) and its gradients for the MLP, in feature-major layout.

    Float32 on a CPU goes to the compiled step when it is available (:func:`chaosmining.native.mlp_step`).

    Parameters
    ----------
    params : ``[W1, b1, ..., W_out, b_out]`` with ``W`` of shape ``(out, in)``.
    XT : inputs, shape ``(n_inputs, n)`` (one column per sample).
    yT : targets, shape ``(1, n)``.
    dropout_mask : ``(width, n)`` already scaled by 1/(1-p), or ``None`` for no dropout.
    loss : a :data:`LOSSES` name or entry; ``"bce"`` treats ``f(x)`` as a logit and ``y`` as 0/1 labels.

    Returns
    -------
    loss : scalar tensor, ``mean((f(x) - y)^2)`` for MSE, ``mean(softplus(f) - y f)`` for BCE.
    grads : gradients in the order of ``params``.
    """
    spec = LOSSES.get(loss) if isinstance(loss, str) else loss
    lib = _native_kernels([*params, XT, yT] + ([] if dropout_mask is None else [dropout_mask]), act, spec)
    if lib is not None:  # the same computation in one compiled call (chaosmining.native)
        return native.mlp_step(lib, params, XT, yT, act.native, spec.native, dropout_mask)
    values, grads = batched_loss_and_grads(
        [p.unsqueeze(0) for p in params],
        XT.unsqueeze(0),
        yT.unsqueeze(0),
        act,
        None if dropout_mask is None else dropout_mask.unsqueeze(0),
        spec,
    )
    return values[0], [g[0] for g in grads]


def batched_loss_and_grads(
    params: list[torch.Tensor],
    XT: torch.Tensor,
    yT: torch.Tensor,
    act: ActivationSpec,
    dropout_mask: torch.Tensor | None = None,
    loss: str | LossSpec = "mse",
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """:func:`mlp_loss_and_grads` for K stacked networks at once (K = 1 for one network).

    Parameters
    ----------
    params : ``[W1, b1, ..., W_out, b_out]``, each ``W`` of shape ``(K, out, in)`` and ``b`` ``(K, out)``.
    XT : inputs, ``(K, n_inputs, n)``: member k's rows are the columns of ``XT[k]``.
    yT : targets, ``(K, 1, n)``.
    dropout_mask : ``(K, width, n)`` already scaled by 1/(1-p), or ``None``.
    loss : a :data:`LOSSES` name or entry; its ``value_and_grad`` is applied per member (``vmap``).

    Returns
    -------
    losses : ``(K,)``, each member's mean loss.
    grads : gradients in the order and shapes of ``params``.
    """
    spec = LOSSES.get(loss) if isinstance(loss, str) else loss
    Ws, bs = params[0::2], params[1::2]
    zs: list[torch.Tensor] = []
    acts: list[torch.Tensor] = [XT]
    h = XT
    for W, b in zip(Ws[:-1], bs[:-1]):
        z = torch.baddbmm(b.unsqueeze(2), W, h)
        h = act.forward(z)
        zs.append(z)
        acts.append(h)
    last_in = h if dropout_mask is None else h * dropout_mask
    pred = torch.baddbmm(bs[-1].unsqueeze(2), Ws[-1], last_in)  # (K, 1, n)
    if pred.shape[0] == 1:  # one network: no vmap (its per-call cost shows on a GPU, where steps are short)
        value, g = spec.value_and_grad(pred[0], yT[0])
        values, g = value.unsqueeze(0), g.unsqueeze(0)
    else:
        values, g = vmap(spec.value_and_grad)(pred, yT)  # (K,), (K, 1, n)
    grads: list[torch.Tensor] = [torch.empty(0)] * len(params)
    grads[-2] = torch.bmm(g, last_in.transpose(1, 2))
    grads[-1] = g.sum(2)
    ga = Ws[-1].transpose(1, 2) * g  # (K, width, n): a broadcast, not a rank-1 product
    if dropout_mask is not None:
        ga = ga * dropout_mask
    for layer in range(len(zs) - 1, -1, -1):
        gz = act.backward(ga, zs[layer], acts[layer + 1])
        grads[2 * layer] = torch.bmm(gz, acts[layer].transpose(1, 2))
        grads[2 * layer + 1] = gz.sum(2)
        if layer > 0:
            ga = torch.bmm(Ws[layer].transpose(1, 2), gz)
    return values, grads


def _native_kernels(tensors: list[torch.Tensor], act: ActivationSpec, loss: LossSpec) -> ctypes.CDLL | None:
    """The compiled step when it applies: float32 CPU tensors (weights, inputs, targets, mask) and an
    activation and loss it knows."""
    if act.native is None or loss.native is None:
        return None
    if not all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors):
        return None
    return native.kernels()


@dataclass
class TrainedMLP:
    """A trained regressor: final weights, weight snapshots and the loss curve (all on CPU)."""

    n_inputs: int
    config: MLPConfig
    params: list[torch.Tensor]
    snapshots: list[tuple[int, list[torch.Tensor]]] = field(default_factory=list)
    loss_epochs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    loss_values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seconds: float = 0.0
    device: str = "cpu"

    def model(self, params: list[torch.Tensor] | None = None, device: torch.device | str = "cpu") -> nn.Sequential:
        """The trained network as an ``nn.Sequential`` in eval mode (dropout off)."""
        net = build_mlp(self.n_inputs, self.config)
        load_parameters(net, self.params if params is None else params)
        return net.to(device).eval()

    def state(self) -> dict:
        """Tensors, plain numbers, strings, lists and dicts only: ``torch.load(weights_only=True)`` reads it."""
        return {
            "n_inputs": int(self.n_inputs),
            "config": self.config.to_dict(),
            "params": list(self.params),
            "snapshots": [(int(e), list(p)) for e, p in self.snapshots],
            "loss_epochs": torch.from_numpy(np.ascontiguousarray(self.loss_epochs)),
            "loss_values": torch.from_numpy(np.ascontiguousarray(self.loss_values)),
            "seconds": float(self.seconds),
            "device": str(self.device),
        }

    @classmethod
    def load(cls, path: str | Path) -> TrainedMLP:
        """Read a file written with ``torch.save(trained.state(), path)``, never unpickling code.

        Raises :class:`CacheCorruptError` when the file holds anything but plain data (an entry of an
        older format, or a file dropped into the cache), so the cache rebuilds it
        (:meth:`Cache.get_and_read`).
        """
        try:
            return cls.from_state(torch.load(path, map_location="cpu", weights_only=True))
        except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CacheCorruptError(
                f"{Path(path).name} cannot be loaded as plain tensors ({type(exc).__name__})"
            ) from None

    @classmethod
    def from_state(cls, state: dict) -> TrainedMLP:
        return cls(
            n_inputs=int(state["n_inputs"]),
            config=MLPConfig(**state["config"]),
            params=list(state["params"]),
            snapshots=[(int(e), list(p)) for e, p in state["snapshots"]],
            loss_epochs=state["loss_epochs"].numpy(),
            loss_values=state["loss_values"].numpy(),
            seconds=float(state["seconds"]),
            device=str(state["device"]),
        )


def diverged_error(epoch: int, value: float, train_config: TrainConfig) -> TrainingDivergedError:
    """The error of a training whose loss became ``value`` (NaN or infinite) at ``epoch``."""
    return TrainingDivergedError(
        f"Training diverged at epoch {epoch}: the loss became {value}. The 'lr' parameter "
        f"({train_config.lr:g}) is too large for optimizer {train_config.optimizer!r}; "
        "lower it (the paper uses 1e-3) or pick another optimizer."
    )


def check_precision(precision: str, device: torch.device | str = "cpu") -> torch.dtype:
    """The dtype of :data:`PRECISIONS` entry ``precision``, or a ConfigError when ``device`` cannot run it well."""
    dtype = PRECISIONS.get(check_choice(precision, "precision", owner=_OWNER, choices=PRECISIONS.names())).dtype
    device = torch.device(device)
    if dtype != torch.float32 and not native_bf16(device):
        raise param_error(
            "precision",
            _OWNER,
            f"'fp32' on {device}",
            precision,
            hint="This device has no native bfloat16 products (AVX512-BF16 or AMX on a CPU, Ampere or later on a "
            "GPU), so 'bf16' would be slower than float32.",
        )
    return dtype


def train_mlp(
    X: np.ndarray,
    y: np.ndarray,
    model_config: MLPConfig,
    train_config: TrainConfig,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    monitor: TrainingMonitor | None = None,
    report_every: int | None = None,
) -> TrainedMLP:
    """Train a fresh MLP on ``X`` (``(n, d)``) and ``y`` (``(n,)``) with ``train_config.loss`` (MSE).

    Randomness (initial weights, mini-batch order, dropout) comes from generators seeded by ``seed``.

    Raises
    ------
    TrainingDivergedError
        When the loss becomes NaN or infinite; the message says which epoch and what to change.
    JobCancelled
        When ``monitor.should_stop()`` turns true.
    """
    tune_allocator()  # epoch-sized buffers stay in the heap (see chaosmining.runtime)
    device = torch.device(device)
    dtype = check_precision(train_config.precision, device)
    act = ACTIVATIONS.get(model_config.activation)
    loss_spec = LOSSES.get(train_config.loss)
    n, d = X.shape
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))
    dev_gen = gen if device.type == "cpu" else torch.Generator(device=device).manual_seed(seed + 7919)
    params = [p.contiguous() for p in init_mlp_parameters(d, model_config, gen, device)]
    XT = torch.as_tensor(np.ascontiguousarray(X.T), dtype=torch.float32, device=device).to(dtype)
    yT = torch.as_tensor(np.asarray(y).reshape(1, -1), dtype=torch.float32, device=device).to(dtype)
    bs = n if train_config.batch_size in (0, None) or train_config.batch_size >= n else train_config.batch_size
    p_drop = model_config.dropout
    epochs = train_config.epochs
    snaps = set(snapshot_epochs(epochs, train_config.snapshots))
    every = report_every or max(1, epochs // 200)
    result = TrainedMLP(n_inputs=d, config=model_config, params=[], device=str(device))
    loss_epochs: list[int] = []
    loss_values: list[float] = []

    def snapshot(epoch: int) -> None:
        copy = [p.detach().cpu().clone() for p in params]
        result.snapshots.append((epoch, copy))
        if monitor is not None:
            monitor.on_snapshot(epoch, result.model(copy))

    # Float32 on a CPU: the compiled step, bound once to the parameters; its gradient tensors are
    # overwritten in place by every call, so they are the parameters' .grad for the whole run.
    lib = _native_kernels([*params, XT, yT], act, loss_spec)  # None for bf16 (XT) or CUDA
    plan = None if lib is None else native.StepPlan(lib, params, act.native, loss_spec.native)
    if plan is not None:
        for p, g in zip(params, plan.grads):
            p.grad = g
    # The optimizer: compiled too beside the compiled step where the registry has one (Adam), else PyTorch's.
    opt_spec = OPTIMIZERS.get(train_config.optimizer)
    if plan is not None and opt_spec.native is not None:
        opt: torch.optim.Optimizer | native.Optimizer = native.Optimizer(lib, params, opt_spec.native, train_config.lr)
    else:
        opt = opt_spec.factory(params, train_config.lr)
    start = time.perf_counter()
    snapshot(0)
    with torch.no_grad():
        for epoch in range(1, epochs + 1):
            if monitor is not None and monitor.should_stop():
                raise JobCancelled(f"Training stopped by the user at epoch {epoch - 1} of {epochs}.")
            if bs == n:
                batches = [(XT, yT)]
            else:
                perm = torch.randperm(n, generator=dev_gen, device=device)
                batches = [(XT[:, idx], yT[:, idx]) for idx in perm.split(bs)]
            epoch_loss: float | torch.Tensor = 0.0 if plan is not None else torch.zeros((), device=device)
            for xb, yb in batches:
                mask = None
                if p_drop > 0:
                    mask = torch.empty(model_config.width, xb.shape[1], device=device)
                    mask.bernoulli_(1 - p_drop, generator=dev_gen).div_(1 - p_drop)
                    mask = mask.to(dtype)
                if plan is not None:
                    epoch_loss += plan(xb, yb, mask) * (xb.shape[1] / n)
                    opt.step()
                    continue
                work = params if dtype == torch.float32 else [p.to(dtype) for p in params]
                loss, grads = mlp_loss_and_grads(work, xb, yb, act, mask, loss_spec)
                for p, g in zip(params, grads):
                    p.grad = g.float()  # a no-op in float32; the optimizer always works on float32
                opt.step()
                epoch_loss += loss.float() * (xb.shape[1] / n)
            if epoch % every == 0 or epoch == epochs:
                lend_idle_cores()  # in a worker pool: take a share of the cores other workers left idle
                value = float(epoch_loss)
                if not math.isfinite(value):
                    raise diverged_error(epoch, value, train_config)
                loss_epochs.append(epoch)
                loss_values.append(value)
                if monitor is not None:
                    monitor.on_progress(epoch, value)
            if epoch in snaps:
                snapshot(epoch)
    result.seconds = time.perf_counter() - start
    result.params = [p.detach().cpu().clone() for p in params]
    result.loss_epochs = np.asarray(loss_epochs, dtype=np.int64)
    result.loss_values = np.asarray(loss_values, dtype=np.float64)
    return result
