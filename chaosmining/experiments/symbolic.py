"""The symbolic-function experiment end to end: data -> MLP -> attributions -> scores (paper 3.1).

:func:`run_symbolic` is the one code path shared by the CLI, the app's jobs and the what-if sweeps.
The trained model and the evaluation are cached separately: changing the methods re-uses the trained
checkpoint, and the weight snapshots kept during training let any method's convergence curve be
computed afterwards.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..attribution import METHODS, InputGeometry, attribute, method_defaults, resolve_params
from ..cache import Cache
from ..config import ConfigBase, stable_hash, to_jsonable
from ..data.symbolic import SymbolicDataConfig, SymbolicDataset, ground_truth, make_symbolic_data, memory_budget_bytes
from ..errors import AttributionMethodError, ConfigError, ResourceError
from ..metrics import (
    attribution_uscore,
    consistency,
    convergence,
    fprec,
    fprec_per_sample,
    mae,
    random_fprec_expectation,
    uscore,
)
from ..models.mlp import MLPConfig
from ..runtime import resolve_device
from ..training import TrainConfig, TrainedMLP, train_mlp
from ..validation import check_int
from .common import ModelRunResult

__all__ = [
    "DEFAULT_METHODS",
    "SymbolicConfig",
    "EvalConfig",
    "MethodScores",
    "SymbolicResult",
    "run_symbolic",
    "train_symbolic_model",
    "evaluate_symbolic",
    "symbolic_methods",
]

DEFAULT_METHODS = ("saliency", "deeplift", "integrated_gradients", "feature_ablation", "random")
MODEL_KIND = "symbolic-model"
RESULT_KIND = "symbolic-result"
HEATMAP_ROWS = 100
SCATTER_ROWS = 500


def symbolic_methods() -> list[str]:
    """Registered methods that apply to symbolic data, in registry order."""
    return [name for name, spec in METHODS.items() if "symbolic" in spec.modalities]


@dataclass(frozen=True, kw_only=True)
class SymbolicConfig(ConfigBase):
    """Everything that determines a trained model: data, architecture, training and the seed."""

    data: SymbolicDataConfig = field(default_factory=SymbolicDataConfig)
    model: MLPConfig = field(default_factory=MLPConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", check_int(self.seed, "seed", owner="SymbolicConfig", low=0, high=2**31 - 1))
        need = self.estimated_bytes()
        if need > memory_budget_bytes():
            raise ResourceError(
                f"Training this model would need about {need / 2**30:.1f} GiB (activations of "
                f"{self.n_train_rows} rows x width {self.model.width} x depth {self.model.depth}, plus weights and "
                f"optimizer state), more than the {memory_budget_bytes() / 2**30:.1f} GiB available. Reduce 'width', "
                "'depth' or 'samples', or set a 'batch_size'."
            )

    @property
    def n_train_rows(self) -> int:
        return self.data.samples - int(round(self.data.samples * self.data.test_fraction))

    def estimated_bytes(self) -> int:
        """Peak float32 bytes of training: activations and their gradients per batch, weights x 4."""
        rows = self.train.batch_size or self.n_train_rows
        rows = min(rows, self.n_train_rows)
        activations = 4 * rows * (self.data.n_features + 3 * self.model.width * self.model.depth)
        weights = 4 * 4 * self.model.n_parameters(self.data.n_features)
        return int(activations + weights)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SymbolicConfig:
        return cls(
            data=SymbolicDataConfig(**d.get("data", {})),
            model=MLPConfig(**d.get("model", {})),
            train=TrainConfig(**d.get("train", {})),
            seed=d.get("seed", 0),
        )


@dataclass(frozen=True, kw_only=True)
class EvalConfig(ConfigBase):
    """Which methods to run and on how many test rows.

    ``method_params`` holds ``(method, ((param, value), ...))`` pairs; build it with
    :meth:`EvalConfig.create`. ``samples=0`` attributes the whole test split. ``curve_samples`` rows
    are used for the FPrec-over-training curve (0 switches the curve and convergence off).
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    method_params: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    samples: int = 0
    curve_samples: int = 256
    measure_memory: bool = True

    def __post_init__(self) -> None:
        methods = tuple(self.methods)
        if not methods:
            raise ConfigError("The 'methods' parameter of EvalConfig must name at least one method. Got () instead.")
        for m in methods:
            METHODS.get(m)
        order = {name: i for i, name in enumerate(METHODS.names())}
        object.__setattr__(self, "methods", tuple(sorted(set(methods), key=order.__getitem__)))
        given = {m: dict(p) for m, p in self.method_params}
        unused = set(given) - set(self.methods)
        if unused:
            raise ConfigError(
                f"The 'method_params' parameter of EvalConfig names methods that are not selected: {sorted(unused)}."
            )
        # Canonical form: every selected method with parameters, defaults filled in (those the method
        # declares for this modality first), so that explicit defaults and implicit ones hash alike.
        geometry = self.default_geometry()
        resolved = tuple(
            (m, tuple(sorted(resolve_params(m, {**method_defaults(m, geometry), **given.get(m, {})}).items())))
            for m in self.methods
            if METHODS.get(m).params
        )
        object.__setattr__(self, "method_params", resolved)
        check_int(self.samples, "samples", owner="EvalConfig", low=0)
        check_int(self.curve_samples, "curve_samples", owner="EvalConfig", low=0)

    @classmethod
    def create(
        cls, methods: Sequence[str] = DEFAULT_METHODS, params: Mapping[str, Mapping[str, Any]] | None = None, **kw: Any
    ) -> EvalConfig:
        params = params or {}
        return cls(
            methods=tuple(methods), method_params=tuple((m, tuple(dict(p).items())) for m, p in params.items()), **kw
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvalConfig:
        d = dict(d)
        d["methods"] = tuple(d.get("methods", DEFAULT_METHODS))
        d["method_params"] = tuple((m, tuple(tuple(p) for p in ps)) for m, ps in d.get("method_params", ()))
        return cls(**d)

    def default_geometry(self) -> InputGeometry | None:
        """The input geometry whose per-modality method defaults fill unspecified parameters (None: the
        registry's own defaults, which suit tabular rows)."""
        return None

    def params_for(self, method: str) -> dict[str, Any]:
        given = dict(dict(self.method_params).get(method, ()))
        return resolve_params(method, given)


@dataclass(frozen=True)
class MethodScores:
    """Scores of one attribution method. ``uscore`` is ``None`` where there is no ground truth."""

    method: str
    fprec: float
    fprec_std: float
    uscore: float | None
    ground_truth: str | None
    consistency: float
    convergence: float | None
    seconds: float
    peak_memory_bytes: int | None
    warnings: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class SymbolicResult(ModelRunResult):
    """What one configuration produced. Arrays are kept for the app's figures (see ``arrays``)."""

    bundle_task: ClassVar[str] = "symbolic"

    config: SymbolicConfig
    eval: EvalConfig
    formula_text: str
    formula_latex: str
    formula_note: str | None
    relevant: tuple[int, ...]
    feature_names: list[str]
    prediction_uscore: float
    test_mae: float
    train_seconds: float
    scores: dict[str, MethodScores]
    random_fprec_expected: float
    curve_epochs: list[int]
    curve_fprec: dict[str, list[float]]
    loss_epochs: list[int]
    loss_values: list[float]
    device: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    cached: bool = False
    seconds: float = 0.0
    cache_note: str | None = None

    @property
    def fprec(self) -> dict[str, float]:
        return {m: s.fprec for m, s in self.scores.items()}

    @property
    def uscore(self) -> dict[str, float | None]:
        return {m: s.uscore for m, s in self.scores.items()}

    def summary(self) -> dict[str, Any]:
        """The CLI's JSON contract plus everything needed to reproduce the run."""
        return {
            "task": "symbolic",
            "formula": self.formula_text,
            "relevant_features": list(self.relevant),
            "n_features": len(self.feature_names),
            "fprec": self.fprec,
            "uscore": self.uscore,
            "prediction_uscore": self.prediction_uscore,
            "test_mae": self.test_mae,
            "random_fprec_expected": self.random_fprec_expected,
            "consistency": {m: s.consistency for m, s in self.scores.items()},
            "convergence": {m: s.convergence for m, s in self.scores.items()},
            "method_seconds": {m: s.seconds for m, s in self.scores.items()},
            "method_peak_memory_bytes": {m: s.peak_memory_bytes for m, s in self.scores.items()},
            "warnings": {m: list(s.warnings) for m, s in self.scores.items() if s.warnings},
            "errors": {m: s.error for m, s in self.scores.items() if s.error},
            **self.run_fields(),
        }

    def scores_table(self) -> list[dict[str, Any]]:
        rows = []
        for m, s in self.scores.items():
            spec = METHODS.get(m)
            rows.append(
                {
                    "method": m,
                    "display": spec.display_name,
                    "FPrec": s.fprec,
                    "FPrec std": s.fprec_std,
                    "UScore": s.uscore,
                    "ground truth": s.ground_truth or "",
                    "consistency": s.consistency,
                    "convergence": s.convergence,
                    "seconds": s.seconds,
                    "peak MiB": None if s.peak_memory_bytes is None else s.peak_memory_bytes / 2**20,
                }
            )
        return rows


# --- training ----------------------------------------------------------------------------------


class _Monitor:
    def __init__(
        self,
        report: Callable[..., None] | None,
        should_stop: Callable[[], bool] | None,
        live: Callable[[torch.nn.Module], dict[str, float]] | None,
        epochs: int,
    ) -> None:
        self._report, self._stop, self._live, self._epochs = report, should_stop, live, epochs

    def on_progress(self, epoch: int, loss: float) -> None:
        if self._report:
            self._report(epoch=epoch, epochs=self._epochs, loss=loss)

    def on_snapshot(self, epoch: int, model: torch.nn.Module) -> None:
        if self._report and self._live:
            self._report(epoch=epoch, epochs=self._epochs, fprec=self._live(model))

    def should_stop(self) -> bool:
        return bool(self._stop and self._stop())


def _curve_rows(ds: SymbolicDataset, n: int) -> np.ndarray:
    return ds.X_test[: min(n, len(ds.X_test))]


def _method_fprec(
    model: torch.nn.Module, X: np.ndarray, ds: SymbolicDataset, ev: EvalConfig, seed: int
) -> dict[str, float]:
    out = {}
    for m in ev.methods:
        try:
            values = attribute(model, X, m, target=0, params=ev.params_for(m), seed=seed).values
        except AttributionMethodError:
            out[m] = float("nan")  # reported once, by evaluate_symbolic
            continue
        out[m] = fprec(values, ds.relevant)
    return out


def _failed(m: str, exc: AttributionMethodError, X: np.ndarray, k: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A method that failed: NaN scores and arrays of the usual shapes (so every figure still draws), its error."""
    nan = float("nan")
    score = {
        "method": m,
        "fprec": nan,
        "fprec_std": nan,
        "uscore": None,
        "ground_truth": None,
        "consistency": nan,
        "convergence": None,
        "seconds": 0.0,
        "peak_memory_bytes": None,
        "warnings": [str(exc)],
        "error": str(exc),
    }
    arrays = {
        f"attr_{m}": np.full(X[:HEATMAP_ROWS].shape, np.nan, np.float32),
        f"meanabs_{m}": np.full(X.shape[1], np.nan, np.float32),
        f"fprec_{m}": np.full(len(X), np.nan, np.float32),
        f"scatter_attr_{m}": np.full((min(len(X), SCATTER_ROWS), k), np.nan, np.float32),
    }
    return score, arrays


def train_symbolic_model(
    config: SymbolicConfig,
    *,
    cache: Cache | None = None,
    device: str | torch.device = "auto",
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    live_eval: EvalConfig | None = None,
    dataset: SymbolicDataset | None = None,
    trained: TrainedMLP | None = None,
) -> tuple[TrainedMLP, bool, str | None]:
    """The trained model for ``config`` from the cache, or trained now (once) and cached.

    Returns ``(model, cached, cache_note)``. With ``live_eval``, each weight snapshot's FPrec is
    reported as ``report(epoch=..., fprec={method: value})`` while training. ``trained`` is a network
    already trained for ``config`` elsewhere (:mod:`chaosmining.batched`), cached instead of training.
    """
    cache = cache or Cache()
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    ds = dataset or make_symbolic_data(config.data, config.seed)
    live = None
    if live_eval is not None and live_eval.curve_samples > 0:
        X_live = _curve_rows(ds, live_eval.curve_samples)
        live = lambda model: _method_fprec(model, X_live, ds, live_eval, config.seed)  # noqa: E731

    def build(folder: Path) -> dict[str, Any]:
        monitor = _Monitor(report, should_stop, live, config.train.epochs)
        model = trained or train_mlp(
            ds.X_train, ds.y_train, config.model, config.train, seed=config.seed, device=dev, monitor=monitor
        )
        torch.save(model.state(), folder / "model.pt")
        return {"train_seconds": model.seconds, "device": model.device, "final_loss": float(model.loss_values[-1])}

    outcome, model = cache.get_and_read(
        MODEL_KIND, config.config_hash, build, lambda e: TrainedMLP.load(e.file("model.pt")), config=config
    )
    return model, outcome.cached, outcome.note


# --- evaluation --------------------------------------------------------------------------------


def evaluate_symbolic(
    trained: TrainedMLP,
    ds: SymbolicDataset,
    ev: EvalConfig,
    *,
    device: torch.device,
    seed: int = 0,
    known_curve: dict[str, list[float]] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Scores (a JSON-able dict) and arrays for the figures.

    ``known_curve`` holds FPrec-over-training values already computed live during training on the
    same rows and snapshots; they are reused instead of recomputed.
    """
    model = trained.model(device=device)
    rows = len(ds.X_test) if ev.samples == 0 else min(ev.samples, len(ds.X_test))
    X = ds.X_test[:rows]
    with torch.no_grad():
        pred = model(torch.as_tensor(ds.X_test, dtype=torch.float32, device=device)).cpu().numpy().ravel()
    k = len(ds.relevant)
    arrays: dict[str, np.ndarray] = {
        "y_pred": pred.astype(np.float32),
        "y_test": ds.y_test.astype(np.float32),
        "X_heat": X[:HEATMAP_ROWS].astype(np.float32),
        "X_scatter": X[:SCATTER_ROWS][:, list(ds.relevant)].astype(np.float32),
    }
    scores: dict[str, Any] = {}
    curve_epochs = [e for e, _ in trained.snapshots]
    curve: dict[str, list[float]] = {}
    X_curve = _curve_rows(ds, ev.curve_samples) if ev.curve_samples > 0 else None
    for m in ev.methods:
        spec = METHODS.get(m)
        params = ev.params_for(m)
        try:
            res = attribute(model, X, m, target=0, params=params, seed=seed, measure_memory=ev.measure_memory)
        except AttributionMethodError as exc:
            scores[m], failed_arrays = _failed(m, exc, X, k)
            arrays.update(failed_arrays)
            continue
        a = res.values
        gt_kind = spec.ground_truth if not spec.is_control else "derivative"
        gt_params = {"steps": params["steps"]} if gt_kind == "path_integral" else {}
        gt = ground_truth(gt_kind, ds.formula, X, **gt_params) if gt_kind else None
        per_sample = fprec_per_sample(a, ds.relevant)
        conv = None
        if X_curve is not None and known_curve and len(known_curve.get(m, ())) == len(curve_epochs):
            curve[m] = list(known_curve[m])
            conv = convergence(curve_epochs, curve[m])
        elif X_curve is not None:
            curve[m] = []
            for _, snap in trained.snapshots:
                snap_model = trained.model(snap, device=device)
                try:
                    snap_attr = attribute(snap_model, X_curve, m, target=0, params=params, seed=seed).values
                except AttributionMethodError:  # a snapshot the method fails on: a gap in its curve
                    curve[m].append(float("nan"))
                    continue
                curve[m].append(fprec(snap_attr, ds.relevant))
            conv = convergence(curve_epochs, curve[m])
        scores[m] = {
            "method": m,
            "fprec": float(per_sample.mean()),
            "fprec_std": float(per_sample.std()),
            "uscore": attribution_uscore(a, gt, ds.relevant) if gt is not None else None,
            "ground_truth": gt_kind if gt is not None else None,
            "consistency": consistency(a, k),
            "convergence": conv,
            "seconds": res.seconds,
            "peak_memory_bytes": res.peak_memory_bytes,
            "warnings": list(res.warnings),
        }
        arrays[f"attr_{m}"] = a[:HEATMAP_ROWS].astype(np.float32)
        arrays[f"meanabs_{m}"] = np.abs(a).mean(axis=0).astype(np.float32)
        arrays[f"fprec_{m}"] = per_sample.astype(np.float32)
        arrays[f"scatter_attr_{m}"] = a[:SCATTER_ROWS][:, list(ds.relevant)].astype(np.float32)
        if gt is not None:
            arrays[f"scatter_gt_{m}"] = gt[:SCATTER_ROWS][:, list(ds.relevant)].astype(np.float32)
    summary = {
        "prediction_uscore": uscore(pred, ds.y_test),
        "test_mae": mae(pred, ds.y_test),
        "scores": scores,
        "curve_epochs": curve_epochs,
        "curve_fprec": curve,
        "random_fprec_expected": random_fprec_expectation(k, ds.n_features),
    }
    return summary, arrays


def _result_key(config: SymbolicConfig, ev: EvalConfig) -> str:
    return stable_hash({"model": config.config_hash, "eval": ev.config_hash})


def run_symbolic(
    config: SymbolicConfig,
    ev: EvalConfig | None = None,
    *,
    cache: Cache | None = None,
    device: str | torch.device = "auto",
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    trained: TrainedMLP | None = None,
) -> SymbolicResult:
    """Train (or load) the model for ``config``, attribute with ``ev.methods`` and score them.

    Parameters
    ----------
    trained : a network already trained for ``config`` (a batched group's member, :mod:`chaosmining.batched`):
        cached as the model entry instead of training, with the same keys as a model trained here.
    report : called with progress events: ``epoch``/``loss`` during training, ``fprec`` (a dict by
        method) at each weight snapshot, and ``stage`` strings.
    should_stop : polled between epochs; when it returns True a :class:`JobCancelled` is raised and
        nothing is cached.

    Examples
    --------
    >>> cfg = SymbolicConfig(data=SymbolicDataConfig(formula="1", noise_features=5, samples=200),
    ...                      train=TrainConfig(epochs=20))
    >>> run_symbolic(cfg, EvalConfig(methods=("saliency",))).fprec["saliency"] >= 0  # doctest: +SKIP
    True
    """
    start = time.perf_counter()
    ev = ev or EvalConfig()
    cache = cache or Cache()
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    ds = make_symbolic_data(config.data, config.seed)
    key = _result_key(config, ev)
    model_cached = True
    note = None

    live: dict[str, list[float]] = {}

    def capture(**event: Any) -> None:
        for m, v in event.get("fprec", {}).items():
            live.setdefault(m, []).append(v)
        if report:
            report(**event)

    def build(folder: Path) -> dict[str, Any]:
        nonlocal model_cached, note
        capture(stage="training")
        model, model_cached, note = train_symbolic_model(
            config,
            cache=cache,
            device=dev,
            report=capture,
            should_stop=should_stop,
            live_eval=ev,
            dataset=ds,
            trained=trained,
        )
        capture(stage="attributing")
        summary, arrays = evaluate_symbolic(model, ds, ev, device=dev, seed=config.seed, known_curve=live)
        summary["train_seconds"] = model.seconds
        summary["loss_epochs"] = model.loss_epochs.tolist()
        summary["loss_values"] = model.loss_values.tolist()
        summary["device"] = str(dev) if not model_cached else model.device
        (folder / "result.json").write_text(json.dumps(to_jsonable(summary), allow_nan=True))
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        (folder / "arrays.npz").write_bytes(buf.getvalue())
        return {"model_key": config.config_hash}

    outcome = cache.get_or_create(RESULT_KIND, key, build, config={"model": config, "eval": ev})
    summary = json.loads(outcome.entry.file("result.json").read_text())
    with np.load(outcome.entry.file("arrays.npz")) as npz:
        arrays = {k: npz[k] for k in npz.files}
    formula = ds.formula
    result = SymbolicResult(
        config=config,
        eval=ev,
        formula_text=formula.text,
        formula_latex=formula.latex,
        formula_note=formula.note,
        relevant=ds.relevant,
        feature_names=ds.feature_names(),
        prediction_uscore=summary["prediction_uscore"],
        test_mae=summary["test_mae"],
        train_seconds=summary["train_seconds"],
        scores={m: MethodScores(**{**s, "warnings": tuple(s["warnings"])}) for m, s in summary["scores"].items()},
        random_fprec_expected=summary["random_fprec_expected"],
        curve_epochs=summary["curve_epochs"],
        curve_fprec=summary["curve_fprec"],
        loss_epochs=summary["loss_epochs"],
        loss_values=summary["loss_values"],
        device=summary["device"],
        arrays=arrays,
        cached=outcome.cached,
        seconds=time.perf_counter() - start,
        cache_note=outcome.note or note,
    )
    return result
