"""Compiled training step of the symbolic MLP, built on first use with the machine's C compiler.

:func:`mlp_step` runs a whole forward and backward pass of the MLP in one call to ``mlp_kernels.c``.
The samples are taken in blocks of a few hundred, sized so that a block's activations stay in the L2
cache; each block goes forward and backward through every layer before the next is read, and the
blocks' gradients add up to the full-batch gradient. The products are register-tiled kernels for the
MLP's thin shapes (a 100 x 100 weight against a block), the elementwise work (bias, activation and its
derivative from one exponential, the backward through it with the bias gradient, the scalar output
and the loss) is fused into single passes. With PyTorch's eager operators the same step streams every
3 MB activation through memory about ten times and MKL packs both operands of every product. A trainer
binds the step to its parameters once (:class:`StepPlan`), and :class:`Optimizer` does Adam's update of all
of them in one call (PyTorch's fused Adam costs 0.4 ms of a 12 ms epoch in dispatch and cache misses).

The C file is compiled once per machine with ``-march=native`` into ``$CHAOSMINING_NATIVE_DIR`` or
``~/.cache/chaosmining/native`` (``$XDG_CACHE_HOME`` respected; an atomic rename, so concurrent first uses
are safe; the file name hashes the source, the compiler and the CPU), loaded with ``ctypes``, and checked against PyTorch before it
is used: every activation against float64, and a whole step (blocks, padding, dropout, both losses)
against autograd. Without a C compiler, a successful build or check, or with ``CHAOSMINING_NATIVE=0``,
:func:`kernels` returns ``None`` and the trainer uses PyTorch's operators: the same network, trained
slower (:func:`status` says which and why).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "NATIVE_ENV",
    "NATIVE_DIR_ENV",
    "build_dir",
    "NativeStatus",
    "kernels",
    "status",
    "reset",
    "prepare_in_background",
    "mlp_step",
    "StepPlan",
    "Optimizer",
    "block_columns",
]

NATIVE_ENV = "CHAOSMINING_NATIVE"
NATIVE_DIR_ENV = "CHAOSMINING_NATIVE_DIR"
SOURCE = Path(__file__).with_name("mlp_kernels.c")
# -fno-math-errno and -fno-trapping-math let the activations' selects and math calls vectorize (PyTorch is
# built with both); never -ffast-math: the exp kernel's rounding trick needs IEEE sums. The first set that
# compiles is used (-mprefer-vector-width is x86's). Without -march=native there is no build: a baseline
# x86-64 build (SSE2, no FMA) measured 17x the bound, slower than PyTorch's operators.
COMMON_FLAGS = ["-O3", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-pthread", "-shared", "-fPIC"]
FLAG_SETS = (["-march=native", "-mprefer-vector-width=512"], ["-march=native"])
MAX_LAYERS = 64  # the C step's limit on hidden layers (MLPConfig allows 32)
OPTIMIZER_CODES = {0: "adam"}  # cm_optimizer_step's codes (OptimizerSpec.native)
MAX_THREADS = 4  # the C step's LANES: its partial sums, so results do not depend on the thread count


@dataclass(frozen=True)
class NativeStatus:
    """Whether the compiled kernels are in use, the library's path, and why not when they are not."""

    available: bool
    detail: str
    path: str | None = None


_lock = threading.Lock()
_loaded: tuple[ctypes.CDLL | None, NativeStatus] | None = None


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def build_dir() -> Path:
    """Where compiled kernels live: one build per machine and user, whatever experiment cache is in use."""
    if os.environ.get(NATIVE_DIR_ENV):
        return Path(os.environ[NATIVE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "chaosmining" / "native"


def _machine_signature() -> str:
    """What a ``-march=native`` build depends on: the CPU's model and instruction-set flags."""
    text = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            text += "".join(line for line in fh if line.startswith(("flags", "model name", "Features")))
    except OSError:
        pass
    return text


def _build(cc: str, folder: Path) -> Path:
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    source = SOURCE.read_bytes()
    flags = repr((COMMON_FLAGS, FLAG_SETS)).encode()
    key = hashlib.sha256(b"\0".join([source, flags, version.encode(), _machine_signature().encode()])).hexdigest()[:16]
    target = folder / f"mlp_kernels-{key}.so"
    if target.exists():
        try:
            os.utime(target)  # its modification time is its last use: what pruning goes by
        except OSError:
            pass
        return target
    folder.mkdir(parents=True, exist_ok=True)
    errors = []
    for arch in FLAG_SETS:
        fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=folder)
        os.close(fd)
        try:
            cmd = [cc, *COMMON_FLAGS, *arch, "-o", tmp, str(SOURCE), "-lm"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if proc.returncode == 0:
                os.replace(tmp, target)  # atomic: another process sees no library or a whole one
                _prune(folder, target)
                return target
            errors.append(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise RuntimeError(f"{cc} could not compile {SOURCE.name}: {'; '.join(errors)}")


PRUNE_AFTER_DAYS = 30  # builds unused this long go when a new one is made (other versions, other CPUs)


def _prune(folder: Path, keep: Path) -> None:
    """Remove builds not used for :data:`PRUNE_AFTER_DAYS` days and temporary files a killed build left
    (older than a day). A process that still has a removed library loaded keeps its mapping."""
    now = time.time()
    for path, age in [(p, PRUNE_AFTER_DAYS * 86400) for p in folder.glob("mlp_kernels-*.so")] + [
        (p, 86400) for p in folder.glob(".build-*")
    ]:
        try:
            if path != keep and now - path.stat().st_mtime > age:
                path.unlink()
        except OSError:
            pass


def _declare(lib: ctypes.CDLL) -> None:
    p, i = ctypes.c_void_p, ctypes.c_int64
    lib.cm_bias_act.argtypes = [p, p, p, i, i, ctypes.c_int]
    lib.cm_bias_act.restype = None
    lib.cm_mlp_step.argtypes = [i, p, p, p, p, p, p, i, p, p, i, i, ctypes.c_int, ctypes.c_int, i, i, p]
    lib.cm_mlp_step.restype = ctypes.c_double
    lib.cm_work_size.argtypes = [i, p, i, i]
    lib.cm_work_size.restype = i
    d = ctypes.c_double
    lib.cm_optimizer_step.argtypes = [ctypes.c_int, i, p, p, p, p, p, d, d, d, d, i]
    lib.cm_optimizer_step.restype = None


_L2_BYTES: int | None = None


def _l2_bytes() -> int:
    global _L2_BYTES
    if _L2_BYTES is None:
        try:
            _L2_BYTES = int(os.sysconf("SC_LEVEL2_CACHE_SIZE")) or 1 << 20
        except (ValueError, OSError, AttributeError):
            _L2_BYTES = 1 << 20
    return _L2_BYTES


def block_columns(dims: list[int], n: int) -> int:
    """Samples per block (a multiple of 16): as many as keep a block's activations in half the L2 cache."""
    per_column = 4 * (2 * dims[0] + 2 * sum(dims[1:]) + 2 * max(dims[1:]) + max(dims[:-1]) + 1)
    block = (_l2_bytes() // 2) // per_column
    return int(max(16, min(block, n + 15) // 16 * 16))


class StepPlan:
    """The compiled step bound to one set of parameters, for a training loop's many calls.

    Built once per training: the gradient tensors (overwritten by every call, so ``p.grad`` can be bound
    to them once), the work space per batch width and the ctypes argument arrays are made here, so that a
    call costs the C step and a few microseconds. ``params`` are read through their storage at each call
    (an optimizer updates them in place); they must stay float32, contiguous and on the CPU.
    """

    def __init__(self, lib: ctypes.CDLL, params: list[torch.Tensor], activation: int, loss: int) -> None:
        _check_parameters(params, "step")
        self.lib, self.activation, self.loss = lib, activation, loss
        self.Ws, self.bs = list(params[0::2]), list(params[1::2])
        self.n_hidden = len(self.Ws) - 1
        if not 1 <= self.n_hidden <= MAX_LAYERS:
            raise ValueError(f"The compiled step takes 1 to {MAX_LAYERS} hidden layers; got {self.n_hidden}.")
        self.grads = [torch.empty_like(p) for pair in zip(self.Ws, self.bs) for p in pair]
        self.dims = [self.Ws[0].shape[1]] + [W.shape[0] for W in self.Ws[:-1]]
        self._c_dims = (ctypes.c_int64 * len(self.dims))(*self.dims)
        self._c_W, self._c_b = _pointers(self.Ws), _pointers(self.bs)
        self._c_gW, self._c_gb = _pointers(self.grads[0::2]), _pointers(self.grads[1::2])
        self._work: dict[tuple[int, int], torch.Tensor] = {}

    def __call__(
        self,
        XT: torch.Tensor,
        yT: torch.Tensor,
        dropout_mask: torch.Tensor | None = None,
        block: int | None = None,
        threads: int | None = None,
    ) -> float:
        """Mean loss of ``XT`` (``(inputs, n)``) against ``yT`` (``(1, n)``); the gradients land in
        :attr:`grads` (the order of ``params``). ``dropout_mask`` is ``(width, n)``, already scaled."""
        XT = XT if XT.stride(1) == 1 else XT.contiguous()
        y = yT.reshape(-1)
        y = y if y.stride(0) == 1 else y.contiguous()
        n = XT.shape[1]
        block = block or block_columns(self.dims, n)
        threads = max(1, min(MAX_THREADS, threads or torch.get_num_threads()))
        work = self._work.get((block, threads))
        if work is None:
            work = self._work[(block, threads)] = torch.empty(
                self.lib.cm_work_size(self.n_hidden, self._c_dims, block, threads)
            )
        mask = dropout_mask
        if mask is not None and mask.stride(1) != 1:
            mask = mask.contiguous()
        return self.lib.cm_mlp_step(
            self.n_hidden, self._c_dims, self._c_W, self._c_b, self._c_gW, self._c_gb, XT.data_ptr(),
            XT.stride(0), y.data_ptr(), None if mask is None else mask.data_ptr(),
            0 if mask is None else mask.stride(0), n, self.activation, self.loss, block, threads, work.data_ptr(),
        )  # fmt: skip


class Optimizer:
    """A compiled optimizer step over float32 CPU parameters, in place, from their ``.grad``: one call for
    all tensors instead of PyTorch's dispatch (0.4 of the 12 ms of a paper-default epoch on this machine).

    ``code`` is the C file's (``OptimizerSpec.native``): 0 is ``torch.optim.Adam(params, lr)`` (betas
    0.9 and 0.999, eps 1e-8, no weight decay, no amsgrad), the same arithmetic as PyTorch's fused CPU
    kernel, up to float rounding. Like a ``torch.optim.Optimizer``, :meth:`step` reads ``p.grad``.
    """

    def __init__(
        self,
        lib: ctypes.CDLL,
        params: list[torch.Tensor],
        code: int,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        _check_parameters(params, "optimizer")
        if code not in OPTIMIZER_CODES:
            raise ValueError(f"Unknown compiled optimizer code {code!r}; known: {OPTIMIZER_CODES}.")
        self.lib, self.params, self.code = lib, list(params), code
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]  # Adam's m and v
        self.steps = 0
        self._c_sizes = (ctypes.c_int64 * len(self.params))(*[p.numel() for p in self.params])
        self._c_p = _pointers(self.params)
        self._c_m = _pointers([m for m, _ in self.state])
        self._c_v = _pointers([v for _, v in self.state])

    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if any(g is None or not g.is_contiguous() or g.dtype != torch.float32 for g in grads):
            raise ValueError("Every parameter needs a contiguous float32 .grad before an optimizer step.")
        self.steps += 1
        self.lib.cm_optimizer_step(
            self.code, len(self.params), self._c_sizes, self._c_p, _pointers(grads), self._c_m, self._c_v,
            self.lr, self.betas[0], self.betas[1], self.eps, self.steps,
        )  # fmt: skip


def _check_parameters(params: list[torch.Tensor], what: str) -> None:
    """The compiled step and optimizer read and write parameters in place through their storage (a
    contiguous copy would not see the other's updates): float32, contiguous, on the CPU."""
    if not all(p.dtype == torch.float32 and p.device.type == "cpu" and p.is_contiguous() for p in params):
        raise ValueError(f"The compiled {what} takes contiguous float32 CPU parameters.")


def _pointers(ts: list[torch.Tensor]) -> ctypes.Array:
    return (ctypes.c_void_p * len(ts))(*[t.data_ptr() for t in ts])


def mlp_step(
    lib: ctypes.CDLL,
    params: list[torch.Tensor],
    XT: torch.Tensor,
    yT: torch.Tensor,
    activation: int,
    loss: int,
    dropout_mask: torch.Tensor | None = None,
    block: int | None = None,
    threads: int | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Mean loss and gradients of the MLP ``params = [W1, b1, ..., W_out, b_out]`` (float32, CPU), in one call.

    ``XT`` is ``(inputs, n)`` (a sample per column), ``yT`` ``(1, n)``, ``dropout_mask`` ``(width, n)``
    (scaled) or ``None``; ``activation`` and ``loss`` are the C file's codes (``ActivationSpec.native``,
    ``LossSpec.native``). The gradients come back in the order of ``params``. ``threads`` (default:
    PyTorch's thread count, at most :data:`MAX_THREADS`) share the blocks; the result is the same for
    any number of threads (fixed partial sums), so a worker lent an idle core stays reproducible.
    A training loop builds a :class:`StepPlan` once instead.
    """
    plan = StepPlan(lib, [p.contiguous() for p in params], activation, loss)
    value = plan(XT, yT, dropout_mask, block=block, threads=threads)
    return torch.tensor(value, dtype=torch.float32), plan.grads


def _self_check(lib: ctypes.CDLL) -> str | None:
    """Compare every activation and its derivative with PyTorch's in float64, then a whole step with every
    loss against autograd on the losses' own definitions; a message when one is off.

    The activations' tolerance is PyTorch's own float32 accuracy: its GELU, also an erf approximation, is off by up to
    1.2e-6 from the float64 value (the compiled one by up to 5e-7).
    """
    from ..models.mlp import ACTIVATIONS
    from ..training import LOSSES, OPTIMIZERS  # late: the training module imports this one

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3, 257, generator=gen) * 4
    b = torch.randn(3, generator=gen)
    for name, spec in ACTIVATIONS.items():
        if spec.native is None:
            continue
        h, d = z.clone(), torch.empty_like(z)
        lib.cm_bias_act(h.data_ptr(), b.data_ptr(), d.data_ptr(), 3, 257, spec.native)
        with torch.enable_grad():  # the first call may come from inside a trainer's no_grad block
            x = (z + b[:, None]).double().requires_grad_()
            out = spec.module()(x)
            (grad,) = torch.autograd.grad(out.sum(), x)
        for mine, ref in ((h, out.detach()), (d, grad)):
            if not torch.allclose(mine.double(), ref, rtol=1e-5, atol=2e-6):
                return f"the compiled {name} disagrees with PyTorch's"
    # A whole step (three blocks, the last one partial; dropout; both losses) against autograd in float64.
    dims, n = [5, 7, 6], 150
    params = []
    for fan_in, fan_out in zip(dims, dims[1:] + [1]):
        params += [torch.randn(fan_out, fan_in, generator=gen) / fan_in**0.5, torch.randn(fan_out, generator=gen)]
    XT, yT = torch.randn(dims[0], n, generator=gen), torch.randn(1, n, generator=gen).clamp(0, 1)
    mask = (torch.rand(dims[-1], n, generator=gen) > 0.3).float() / 0.7
    gelu = ACTIVATIONS.get("gelu")
    for _, loss in LOSSES.items():
        if loss.native is None:
            continue
        value, grads = mlp_step(lib, params, XT, yT, gelu.native, loss.native, mask, block=64)
        with torch.enable_grad():  # the reference: the loss's own PyTorch definition, differentiated
            leaves = [p.double().requires_grad_() for p in params]
            h = XT.double()
            for W, b in zip(leaves[0:-2:2], leaves[1:-2:2]):
                h = gelu.forward(W @ h + b[:, None])
            ref, _ = loss.value_and_grad(leaves[-2] @ (h * mask) + leaves[-1][:, None], yT.double())
            ref_grads = torch.autograd.grad(ref, leaves)
        ref = ref.detach()
        if abs(float(value) - float(ref)) > 1e-5 * (1 + abs(float(ref))):
            return f"the compiled step's loss ({float(value):.6g}) disagrees with autograd's ({float(ref):.6g})"
        for g, r in zip(grads, ref_grads):
            if not torch.allclose(g.double(), r, rtol=1e-4, atol=1e-5):
                return "the compiled step's gradients disagree with autograd's"
    # Every compiled optimizer against its registered PyTorch one, a few steps on the same gradients.
    for name, spec in OPTIMIZERS.items():
        if spec.native is None:
            continue
        ours, theirs = [p.clone() for p in params], [p.clone() for p in params]
        opt_ours, opt_theirs = Optimizer(lib, ours, spec.native, 1e-2), spec.factory(theirs, 1e-2)
        for _ in range(4):
            for a, b in zip(ours, theirs):
                a.grad = torch.randn(a.shape, generator=gen)
                b.grad = a.grad.clone()
            opt_ours.step()
            opt_theirs.step()
        if not all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(ours, theirs)):
            return f"the compiled {name} optimizer disagrees with PyTorch's"
    return None


def _load() -> tuple[ctypes.CDLL | None, NativeStatus]:
    if os.environ.get(NATIVE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None, NativeStatus(False, f"turned off by {NATIVE_ENV}={os.environ[NATIVE_ENV]}")
    cc = _compiler()
    if cc is None:
        return None, NativeStatus(False, "no C compiler found (cc, gcc, clang or $CC): PyTorch's operators are used")
    try:
        path = _build(cc, build_dir())
        lib = ctypes.CDLL(str(path))
        _declare(lib)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return None, NativeStatus(False, f"not built ({exc}): PyTorch's operators are used")
    problem = _self_check(lib)
    if problem is not None:
        return None, NativeStatus(False, f"{problem}: PyTorch's operators are used", str(path))
    return lib, NativeStatus(True, f"compiled with {Path(cc).name} for this CPU", str(path))


def kernels() -> ctypes.CDLL | None:
    """The compiled kernels (built and checked on the first call in a process), or ``None``."""
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = _load()
        return _loaded[0]


def prepare_in_background() -> None:
    """Build or load the kernels in a daemon thread (once per process), so that a fresh machine's first
    training does not wait for the compiler (about 3 s); a training that starts meanwhile waits for it."""
    global _preparing
    with _prep_lock:  # not _lock, which a build holds for seconds
        if _loaded is not None or _preparing:
            return
        _preparing = True
    threading.Thread(target=kernels, name="chaosmining-native-build", daemon=True).start()


_preparing = False
_prep_lock = threading.Lock()


def status() -> NativeStatus:
    """Whether :func:`kernels` is in use, and why not when it is not."""
    kernels()
    assert _loaded is not None
    return _loaded[1]


def reset() -> None:
    """Forget the loaded kernels so that the next call builds or loads them again (tests)."""
    global _loaded, _preparing
    with _lock:
        _loaded = None
        _preparing = False
