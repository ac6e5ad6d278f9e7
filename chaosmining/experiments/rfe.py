"""Feature selection end to end: RFEwNA against classic RFE (paper section 4, Figures 6 and 7).

:func:`run_rfe` is the one code path of the CLI's ``rfe`` command and the app's Feature Selection page.

How the work is organised
-------------------------
* **Data** are prepared once per configuration and cached (``rfe-data``): a symbolic formula with noise
  features (regression), an embedded table or a user's CSV (binary classification). The validation
  split is carved from the training split; the test split is only ever used to report errors.
* **Trainings** are cached units keyed by the data, the *kept feature set*, the network and the seed
  (``rfe-model``). The first round trains the same model for every attribution selector (same
  features, same seed), so it is trained once; later rounds are shared wherever two selectors keep the
  same features. Importances are cached per unit and method (``rfe-importance``).
* **Scheduling**: every selector is a chain of rounds (:func:`chaosmining.selection.rfewna_rounds`);
  independent units and the classic baselines run in worker processes of one torch thread each (on CUDA,
  or with one worker, in this process); when fewer units than workers are ready, the idle cores are
  lent to the running ones (:class:`chaosmining.runtime.WorkerPool`). A Stop request halts the workers
  at their next epoch; finished units stay cached, so a re-run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..attribution import resolve_params
from ..cache import Cache
from ..config import ConfigBase, stable_hash, to_jsonable
from ..data.formulas import get_formula
from ..data.symbolic import SymbolicDataConfig, make_symbolic_data
from ..data.tabular import TABULAR_SOURCES, prepare_tabular, read_label_csv
from ..errors import ChaosMiningError, DataError, JobCancelled
from ..metrics import mae
from ..models.mlp import MLPConfig
from ..registry import Registry
from ..runtime import WorkerPool, resolve_device
from ..selection import (
    attribution_importance,
    classic_rfe,
    elimination_schedule,
    get_selector,
    precision_recall,
    rfewna_rounds,
    selector_names,
)
from ..training import TrainConfig, TrainedMLP, train_mlp, training_macs_per_second
from ..validation import check_bool, check_choice, check_float, check_int, param_error

__all__ = [
    "DEFAULT_SELECTORS",
    "TaskTypeSpec",
    "TASK_TYPE_SPECS",
    "TaskKind",
    "TASK_KINDS",
    "StrategySpec",
    "STRATEGIES",
    "RFEDataConfig",
    "RFEConfig",
    "SelectionData",
    "RoundRecord",
    "SelectorRun",
    "RFEResult",
    "prepare_data",
    "RFEPlan",
    "plan_rfe",
    "run_rfe",
    "run_rfe_many",
    "load_rfe",
    "rfe_config_from_dict",
    "RESULT_KIND",
]

DEFAULT_SELECTORS = ("saliency", "deeplift", "integrated_gradients", "feature_ablation", "linear", "svm", "tree")
DATA_KIND = "rfe-data"
MODEL_KIND = "rfe-model"
IMPORTANCE_KIND = "rfe-importance"
RESULT_KIND = "rfe-result"
UNKNOWN_TRUTH_TARGET = 3  # the paper's Figure 6 keeps three features of Santander


# --- task types: what a prediction's error is ---------------------------------------------------


def _regression_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return {"mae": mae(score, y)}


def _classification_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

    pred = (score > 0).astype(np.int64)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "roc_auc": float(roc_auc_score(y, score)),
    }


def _classic_score(estimator: Any, X: np.ndarray) -> np.ndarray:
    """A score whose sign is the predicted class (decision function, or probability - 0.5)."""
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=np.float64)
    return np.asarray(estimator.predict_proba(X)[:, 1], dtype=np.float64) - 0.5


@dataclass(frozen=True)
class TaskTypeSpec:
    """Regression or binary classification: default network and training, metrics, the error."""

    name: str
    error_name: str
    error_metric: str
    error_from: Callable[[dict[str, float]], float]
    metrics: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    classic_score: Callable[[Any, np.ndarray], np.ndarray]
    model: MLPConfig
    train: TrainConfig


TASK_TYPE_SPECS: Registry[TaskTypeSpec] = Registry("task type")
TASK_TYPE_SPECS.register(
    "regression",
    TaskTypeSpec(
        "regression",
        "MAE",
        "mae",
        lambda m: m["mae"],
        _regression_metrics,
        lambda est, X: np.asarray(est.predict(X), dtype=np.float64),
        # The paper's regression protocol: GELU 100x3, Adam 1e-3, 1000 full-batch epochs, MSE.
        MLPConfig(),
        TrainConfig(snapshots=1),
    ),
)
TASK_TYPE_SPECS.register(
    "classification",
    TaskTypeSpec(
        "classification",
        "1 - balanced accuracy",
        "balanced_accuracy",
        lambda m: 1.0 - m["balanced_accuracy"],
        _classification_metrics,
        _classic_score,
        # Appendix A.5: the same MLP with ReLU, BCE, batch 1000, 500 epochs.
        MLPConfig(activation="relu"),
        TrainConfig(epochs=500, batch_size=1000, snapshots=1, loss="bce"),
    ),
)


# --- data ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SelectionData:
    """A task ready for selection. ``X_*`` are float32 ``(n, n_features)``; ``y_val``/``y_test`` are
    noise-free targets (regression) or 0/1 labels. ``true_features`` is ``None`` without ground truth."""

    title: str
    task_type: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    true_features: tuple[int, ...] | None
    notes: tuple[str, ...] = ()
    formula_latex: str | None = None

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    _ARRAYS = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")

    def save(self, folder: Path) -> dict[str, Any]:
        buf = io.BytesIO()
        np.savez(buf, **{k: getattr(self, k) for k in self._ARRAYS})
        (folder / "data.npz").write_bytes(buf.getvalue())
        return {
            "title": self.title,
            "task_type": self.task_type,
            "feature_names": self.feature_names,
            "true_features": None if self.true_features is None else list(self.true_features),
            "notes": list(self.notes),
            "formula_latex": self.formula_latex,
            "rows": {k: int(len(getattr(self, k))) for k in ("y_train", "y_val", "y_test")},
        }

    @classmethod
    def load(cls, folder: Path, meta: Mapping[str, Any]) -> SelectionData:
        with np.load(folder / "data.npz") as npz:
            arrays = {k: npz[k] for k in cls._ARRAYS}
        true = meta["true_features"]
        return cls(
            title=meta["title"],
            task_type=meta["task_type"],
            feature_names=list(meta["feature_names"]),
            true_features=None if true is None else tuple(true),
            notes=tuple(meta["notes"]),
            formula_latex=meta["formula_latex"],
            **arrays,
        )


@dataclass(frozen=True)
class TaskKind:
    """A kind of task in ``--task KIND:ARG``: what it predicts, its defaults, how it is built."""

    name: str
    display_name: str
    task_type: str
    help: str
    default_noise: Callable[[str], int]
    default_samples: Callable[[str], int]
    validate: Callable[[RFEDataConfig], None]
    n_features: Callable[[RFEDataConfig], int | None]
    build: Callable[[RFEDataConfig, int], SelectionData]


def _f32(*arrays: np.ndarray) -> list[np.ndarray]:
    return [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]


def _symbolic_config(c: RFEDataConfig) -> SymbolicDataConfig:
    return SymbolicDataConfig(
        formula=c.arg,
        noise_features=c.noise_features,
        samples=c.samples,
        label_noise=c.label_noise,
        test_fraction=c.test_fraction,
    )


def _validate_formula(c: RFEDataConfig) -> None:
    cfg = _symbolic_config(c)  # validates formula, sizes and memory
    n_train = cfg.samples - int(round(cfg.samples * cfg.test_fraction))
    n_val = int(round(n_train * c.val_fraction))
    if n_val < 2 or n_train - n_val < 2:
        raise DataError(
            f"The 'samples' parameter of RFEDataConfig is too small: {cfg.samples} rows leave {n_train - n_val} "
            f"training and {n_val} validation rows; both need at least 2. Increase samples or change val_fraction."
        )


def _build_formula(c: RFEDataConfig, seed: int) -> SelectionData:
    ds = make_symbolic_data(_symbolic_config(c), seed)
    n_val = int(round(len(ds.X_train) * c.val_fraction))
    cut = len(ds.X_train) - n_val
    X_tr, X_va, X_te, y_tr, y_va, y_te = _f32(
        ds.X_train[:cut], ds.X_train[cut:], ds.X_test, ds.y_train[:cut], ds.y_train_clean[cut:], ds.y_test
    )
    notes = (ds.formula.note,) if ds.formula.note else ()
    return SelectionData(
        title=f"formula {c.arg}: f = {ds.formula.text} with {c.noise_features} noise features",
        task_type="regression",
        X_train=X_tr,
        y_train=y_tr,
        X_val=X_va,
        y_val=y_va,
        X_test=X_te,
        y_test=y_te,
        feature_names=ds.feature_names(),
        true_features=tuple(ds.relevant),
        notes=notes,
        formula_latex=ds.formula.latex,
    )


def _subset_rows(X: np.ndarray, y: np.ndarray, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if samples == 0 or samples >= len(y):
        return X, y
    rows = np.sort(np.random.default_rng(np.random.SeedSequence([seed, 0x5B5])).choice(len(y), samples, replace=False))
    return X[rows], y[rows]


def _table_task(
    c: RFEDataConfig,
    seed: int,
    X: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    true: Sequence[int] | None,
    name: str,
    title: Callable[[int], str],
    notes: tuple[str, ...] = (),
    subset: bool = True,
) -> SelectionData:
    """The paper's preprocessing of a table (:func:`prepare_tabular`), as a selection task.

    ``subset``: draw ``c.samples`` rows of a fixed data set (generated tables already have that many)."""
    if subset:
        X, y = _subset_rows(X, y, c.samples, seed)
    ds = prepare_tabular(
        X,
        y,
        feature_names=names,
        true_features=true,
        name=name,
        undersample=c.undersample,
        val_fraction=c.val_fraction,
        test_fraction=c.test_fraction,
        seed=seed,
    )
    if ds.dropped_constant:
        notes += (f"{len(ds.dropped_constant)} constant column(s) dropped: {', '.join(ds.dropped_constant[:8])}.",)
    rows = len(ds.y_train) + len(ds.y_val) + len(ds.y_test)
    how = "after undersampling the majority class" if c.undersample else "(classes as they are)"
    notes += (
        f"{rows} rows {how} of {ds.rows_before_undersampling}: {len(ds.y_train)} train / {len(ds.y_val)} "
        f"validation / {len(ds.y_test)} test, min-max scaled with the training rows' range.",
    )
    return SelectionData(
        title(ds.n_features),
        "classification",
        *_f32(ds.X_train, ds.y_train, ds.X_val, ds.y_val, ds.X_test, ds.y_test),
        feature_names=ds.feature_names,
        true_features=ds.true_features,
        notes=notes,
    )


def _validate_tabular(c: RFEDataConfig) -> None:
    source = TABULAR_SOURCES.get(c.arg)
    if not source.fixed_rows and c.samples < 100:
        raise param_error("samples", _DATA_OWNER, f"an int >= 100 for {c.arg!r} (rows generated)", c.samples)


def _build_tabular(c: RFEDataConfig, seed: int) -> SelectionData:
    source = TABULAR_SOURCES.get(c.arg)
    X, y, names, true = source.build(c.samples, c.noise_features, seed)
    return _table_task(
        c,
        seed,
        X,
        y,
        names,
        true,
        c.arg,
        lambda d: f"{source.display_name}: {d} columns, the first {source.true_columns} informative",
        subset=source.fixed_rows,
    )


def _validate_csv(c: RFEDataConfig) -> None:
    path = Path(c.arg).expanduser()
    if not path.is_file():
        raise param_error("task", "RFEDataConfig", "'csv:PATH' with an existing CSV file", c.task)
    try:  # /proc/self/mem is a "file" whose first read fails: a message, not a traceback
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise param_error(
            "task", "RFEDataConfig", "'csv:PATH' with a CSV file this process can read", c.task, exc.strerror or ""
        ) from None
    if c.noise_features != 0:
        raise param_error("noise_features", "RFEDataConfig", "0 for a CSV task", c.noise_features)


def _build_csv(c: RFEDataConfig, seed: int) -> SelectionData:
    X, y, names = read_label_csv(c.arg, c.label)
    name = Path(c.arg).name
    return _table_task(
        c,
        seed,
        X,
        y,
        names,
        None,
        name,
        lambda d: f"CSV {name}: {d} columns",
        ("No ground truth: precision and recall are not defined.",),
    )


TASK_KINDS: Registry[TaskKind] = Registry("task kind")
for _k in (
    TaskKind(
        "formula",
        "Symbolic formula (regression)",
        "regression",
        "formula:ID with a paper formula 1-15 (the paper's protocol uses 11-15) or an expression over a..j",
        lambda arg: 150,
        lambda arg: 10_000,
        _validate_formula,
        lambda c: get_formula(c.arg).n_columns + c.noise_features,
        _build_formula,
    ),
    TaskKind(
        "tabular",
        "Embedded table (classification)",
        "classification",
        f"tabular:NAME with NAME one of {', '.join(TABULAR_SOURCES.names())}",
        lambda arg: TABULAR_SOURCES.get(arg).default_noise_features,
        lambda arg: TABULAR_SOURCES.get(arg).default_samples or 0,
        _validate_tabular,
        lambda c: TABULAR_SOURCES.get(c.arg).true_columns + c.noise_features,
        _build_tabular,
    ),
    TaskKind(
        "csv",
        "CSV file (classification)",
        "classification",
        "csv:PATH to a CSV with a binary label column (Santander's train.csv: TARGET)",
        lambda arg: 0,
        lambda arg: 0,
        _validate_csv,
        lambda c: None,
        _build_csv,
    ),
):
    TASK_KINDS.register(_k.name, _k)


_FILE_HASHES: dict[tuple[str, float, int], str] = {}


def _file_digest(path: str) -> str:
    p = Path(path).expanduser().resolve()
    st = p.stat()
    key = (str(p), st.st_mtime, st.st_size)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


_DATA_OWNER = "RFEDataConfig"


@dataclass(frozen=True, kw_only=True)
class RFEDataConfig(ConfigBase):
    """Which task to select features for.

    Parameters
    ----------
    task : ``"formula:ID"``, ``"tabular:NAME"`` or ``"csv:PATH"`` (see :data:`TASK_KINDS`).
    noise_features : noise columns added (formula: 150, the paper's protocol; tables: up to 369 columns).
    samples : rows generated (formula 10,000; Santander-like 20,000 before undersampling), or drawn from a
        fixed data set (0 = all rows).
    label_noise : standard deviation of the Gaussian noise on the training target (formula only).
    label : label column of a CSV (default: TARGET, target, label, class or y).
    undersample : undersample the majority class to the minority's size (tables and CSV; the paper does).
    val_fraction : share of the training split held out for selection (attributions are computed there).
    test_fraction : share of all rows held out for the reported test error.
    """

    task: str = "formula:11"
    noise_features: int | None = None
    samples: int | None = None
    label_noise: float = 0.01
    label: str | None = None
    undersample: bool = True
    val_fraction: float = 0.2
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or ":" not in self.task:
            raise param_error("task", _DATA_OWNER, f"'KIND:ARG' with KIND one of {TASK_KINDS.names()}", self.task)
        kind, arg = (s.strip() for s in self.task.split(":", 1))
        spec = TASK_KINDS.get(kind)
        if not arg:
            raise param_error("task", _DATA_OWNER, f"'{kind}:ARG' ({spec.help})", self.task)
        object.__setattr__(self, "task", f"{kind}:{arg}")
        noise = spec.default_noise(arg) if self.noise_features is None else self.noise_features
        samples = spec.default_samples(arg) if self.samples is None else self.samples
        object.__setattr__(
            self, "noise_features", check_int(noise, "noise_features", owner=_DATA_OWNER, low=0, high=100_000)
        )
        object.__setattr__(self, "samples", check_int(samples, "samples", owner=_DATA_OWNER, low=0, high=10_000_000))
        object.__setattr__(
            self, "label_noise", check_float(self.label_noise, "label_noise", owner=_DATA_OWNER, low=0.0, high=100.0)
        )
        if self.label is not None and not isinstance(self.label, str):
            raise param_error("label", _DATA_OWNER, "a column name or None", self.label)
        check_bool(self.undersample, "undersample", owner=_DATA_OWNER)
        for name in ("val_fraction", "test_fraction"):
            value = check_float(getattr(self, name), name, owner=_DATA_OWNER, low=0.0, high=0.9, low_open=True)
            object.__setattr__(self, name, value)
        spec.validate(self)

    @property
    def kind(self) -> str:
        return self.task.split(":", 1)[0]

    @property
    def arg(self) -> str:
        return self.task.split(":", 1)[1]

    @property
    def kind_spec(self) -> TaskKind:
        return TASK_KINDS.get(self.kind)

    @property
    def task_type(self) -> str:
        return self.kind_spec.task_type

    @property
    def n_features(self) -> int | None:
        """The number of feature columns when known without reading data (``None`` for a CSV)."""
        return self.kind_spec.n_features(self)

    def hash_payload(self) -> dict[str, Any]:
        d = super().hash_payload()
        if self.kind == "formula":
            d["task"] = f"formula:{get_formula(self.arg).key}"
        elif self.kind == "csv":  # the file's content, not its name, identifies the data
            d["task"] = f"csv-sha256:{_file_digest(self.arg)}"
        return d


@dataclass(frozen=True)
class StrategySpec:
    name: str
    display_name: str
    description: str


STRATEGIES: Registry[StrategySpec] = Registry("strategy")
for _s in (
    StrategySpec(
        "uni",
        "Uni-module",
        "Each selector's own model predicts: the network for RFEwNA, the linear model / SVM / tree for classic RFE "
        "(paper Figures 6a-b and 7).",
    ),
    StrategySpec(
        "bi",
        "Bi-module",
        "Classic RFE selects, and a network trained on the selected features predicts, so the feature sets are "
        "compared with the same predictor (paper Figures 6c-d).",
    ),
):
    STRATEGIES.register(_s.name, _s)

_OWNER = "RFEConfig"


@dataclass(frozen=True, kw_only=True)
class RFEConfig(ConfigBase):
    """One feature-selection comparison.

    ``target=0`` keeps as many features as there are true ones (3 when the truth is unknown).
    ``model`` and ``train`` default to the task type's protocol (see :data:`TASK_TYPE_SPECS`); the
    training loss always follows the task type. ``method_params`` holds ``(method, ((name, value),
    ...))`` pairs for the attribution selectors.
    """

    data: RFEDataConfig = field(default_factory=RFEDataConfig)
    selectors: tuple[str, ...] = DEFAULT_SELECTORS
    drop_rate: float = 0.5
    target: int = 0
    strategy: str = "uni"
    model: MLPConfig | None = None
    train: TrainConfig | None = None
    method_params: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.selectors, str) or not self.selectors:
            raise param_error("selectors", _OWNER, "a non-empty list of selector names", self.selectors)
        for s in self.selectors:
            get_selector(s)
        order = {n: i for i, n in enumerate(selector_names())}
        object.__setattr__(self, "selectors", tuple(sorted(set(self.selectors), key=order.__getitem__)))
        object.__setattr__(
            self,
            "drop_rate",
            check_float(self.drop_rate, "drop_rate", owner=_OWNER, low=0.0, high=1.0, low_open=True, high_open=True),
        )
        n = self.data.n_features
        target = check_int(
            self.target,
            "target",
            owner=_OWNER,
            low=0,
            high=n,
            hint="" if n is None else f"The task has {n} features (0 keeps as many as there are true features).",
        )
        object.__setattr__(self, "target", target)
        check_choice(self.strategy, "strategy", owner=_OWNER, choices=STRATEGIES.names())
        spec = TASK_TYPE_SPECS.get(self.data.task_type)
        object.__setattr__(self, "model", self.model or spec.model)
        train = self.train or spec.train
        object.__setattr__(self, "train", replace(train, loss=spec.train.loss))
        resolved = tuple(
            (m, tuple(sorted(resolve_params(m, dict(p)).items())))
            for m, p in self.method_params
            if m in {get_selector(s).method for s in self.selectors}
        )
        object.__setattr__(self, "method_params", tuple(sorted(resolved)))
        object.__setattr__(self, "seed", check_int(self.seed, "seed", owner=_OWNER, low=0, high=2**31 - 1))

    @property
    def task_type(self) -> str:
        return self.data.task_type

    def params_for(self, method: str) -> dict[str, Any]:
        return resolve_params(method, dict(dict(self.method_params).get(method, ())))

    def resolved_target(self, n_features: int, true_features: Sequence[int] | None) -> int:
        """The number of features to stop at for data with ``n_features`` columns."""
        if self.target == 0:
            wanted = len(true_features) if true_features else UNKNOWN_TRUTH_TARGET
            return max(1, min(wanted, n_features))
        if self.target > n_features:
            raise param_error(
                "target",
                _OWNER,
                f"an int in [0, {n_features}]",
                self.target,
                f"The task has {n_features} features after preprocessing.",
            )
        return self.target


def rfe_config_from_dict(d: Mapping[str, Any]) -> RFEConfig:
    """Inverse of ``RFEConfig.to_dict()`` (used by ``rerun`` and the workers)."""
    return RFEConfig(
        data=RFEDataConfig(**d.get("data", {})),
        selectors=tuple(d.get("selectors", DEFAULT_SELECTORS)),
        drop_rate=d.get("drop_rate", 0.5),
        target=d.get("target", 0),
        strategy=d.get("strategy", "uni"),
        model=MLPConfig(**d["model"]) if d.get("model") else None,
        train=TrainConfig(**d["train"]) if d.get("train") else None,
        method_params=tuple((m, tuple(tuple(p) for p in ps)) for m, ps in d.get("method_params", ())),
        seed=d.get("seed", 0),
    )


def _data_key(config: RFEConfig) -> str:
    return stable_hash({"data": config.data.config_hash, "seed": config.seed})


def prepare_data(config: RFEConfig, cache: Cache | None = None) -> tuple[str, SelectionData]:
    """The task's data (built once and cached); returns ``(data_key, data)``."""
    cache = cache or Cache()
    key = _data_key(config)

    def build(folder: Path) -> dict[str, Any]:
        return config.data.kind_spec.build(config.data, config.seed).save(folder)

    outcome = cache.get_or_create(DATA_KIND, key, build, config={"data": config.data, "seed": config.seed})
    return key, SelectionData.load(outcome.entry.path, outcome.entry.meta)


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundRecord:
    """One round of one selector.

    ``error`` is the test error of the round's predictor (MAE, or 1 - balanced accuracy), ``val_error``
    the same on the validation rows; ``seconds`` is the compute time of the selection step (training +
    attribution for RFEwNA, the RFE fit for classic selectors), measured when it was computed even if
    it was shared or cached; ``eval_seconds`` the bi-module network's training time.
    """

    n_features: int
    kept: tuple[int, ...]
    error: float
    val_error: float
    test_metrics: dict[str, float]
    val_metrics: dict[str, float]
    precision: float | None
    recall: float | None
    seconds: float
    predictor: str
    cached: bool = False
    eval_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return to_jsonable(self)


@dataclass(frozen=True)
class SelectorRun:
    """Every round of one selector, from all features down to the target."""

    selector: str
    rounds: tuple[RoundRecord, ...]
    error_message: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def final(self) -> RoundRecord | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def kept(self) -> tuple[int, ...]:
        return self.final.kept if self.final else ()

    @property
    def final_precision(self) -> float | None:
        return self.final.precision if self.final else None

    @property
    def final_error(self) -> float | None:
        return self.final.error if self.final else None

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.rounds))


@dataclass
class RFEResult:
    """What :func:`run_rfe` produced for one configuration."""

    config: RFEConfig
    title: str
    task_type: str
    feature_names: list[str]
    true_features: tuple[int, ...] | None
    schedule: list[int]
    runs: dict[str, SelectorRun]
    notes: tuple[str, ...] = ()
    formula_latex: str | None = None
    seconds: float = 0.0
    cached: bool = False
    workers: int = 1

    @property
    def error_name(self) -> str:
        return TASK_TYPE_SPECS.get(self.task_type).error_name

    @property
    def errors(self) -> list[str]:
        return [f"{s}: {r.error_message}" for s, r in self.runs.items() if r.error_message]

    def summary(self) -> dict[str, Any]:
        """The CLI's JSON contract (per selector: ``rounds``, ``final_precision``, ``final_error``,
        ``kept``) plus what is needed to reproduce and read the run."""
        return {
            "task": "rfe",
            "title": self.title,
            "task_type": self.task_type,
            "error_metric": self.error_name,
            "n_features": len(self.feature_names),
            "true_features": None if self.true_features is None else list(self.true_features),
            "schedule": list(self.schedule),
            "strategy": self.config.strategy,
            "selectors": {
                s: {
                    "rounds": [
                        {
                            "n_features": r.n_features,
                            "error": r.error,
                            "precision": r.precision,
                            "recall": r.recall,
                            "seconds": r.seconds,
                            "val_error": r.val_error,
                            "metrics": r.test_metrics,
                            "cached": r.cached,
                        }
                        for r in run.rounds
                    ],
                    "final_precision": run.final_precision,
                    "final_recall": run.final.recall if run.final else None,
                    "final_error": run.final_error,
                    "kept": list(run.kept),
                    "kept_names": [self._name(i) for i in run.kept],
                    "seconds": run.seconds,
                    "error_message": run.error_message,
                    "warnings": list(run.warnings),
                }
                for s, run in self.runs.items()
            },
            "notes": list(self.notes),
            "seconds": self.seconds,
            "cached": self.cached,
            "workers": self.workers,
            "config": self.config.to_dict(),
        }

    def bundle(self) -> dict[str, Any]:
        """The re-runnable JSON bundle (``python -m chaosmining rerun bundle.json``)."""
        from ..export import bundle_json

        return bundle_json("rfe", self.config.to_dict(), self.summary())

    def final_table(self) -> list[dict[str, Any]]:
        rows = []
        for s, run in self.runs.items():
            f = run.final
            rows.append(
                {
                    "selector": s,
                    "display": get_selector(s).display_name,
                    "features kept": None if f is None else f.n_features,
                    "precision": None if f is None else f.precision,
                    "recall": None if f is None else f.recall,
                    f"test {self.error_name}": None if f is None else f.error,
                    f"validation {self.error_name}": None if f is None else f.val_error,
                    **({} if f is None else {f"test {k}": v for k, v in f.test_metrics.items()}),
                    "seconds": run.seconds,
                    "kept (* = true)": ", ".join(self._name(i) for i in run.kept),
                    "error": run.error_message or "",
                }
            )
        return rows

    def _name(self, i: int) -> str:
        return self.feature_names[i] + ("*" if self.true_features and i in self.true_features else "")

    def rounds_table(self) -> list[dict[str, Any]]:
        rows = []
        for s, run in self.runs.items():
            for i, r in enumerate(run.rounds):
                rows.append(
                    {
                        "selector": s,
                        "round": i,
                        "n_features": r.n_features,
                        "error": r.error,
                        "val_error": r.val_error,
                        "precision": r.precision,
                        "recall": r.recall,
                        "seconds": r.seconds,
                        "eval_seconds": r.eval_seconds,
                        "predictor": r.predictor,
                        "cached": r.cached,
                        **{f"test_{k}": v for k, v in r.test_metrics.items()},
                    }
                )
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "task_type": self.task_type,
            "feature_names": self.feature_names,
            "true_features": None if self.true_features is None else list(self.true_features),
            "schedule": self.schedule,
            "runs": {
                s: {
                    "rounds": [r.to_json() for r in run.rounds],
                    "error_message": run.error_message,
                    "warnings": list(run.warnings),
                }
                for s, run in self.runs.items()
            },
            "notes": list(self.notes),
            "formula_latex": self.formula_latex,
            "seconds": self.seconds,
            "workers": self.workers,
        }

    @classmethod
    def from_json(cls, config: RFEConfig, d: Mapping[str, Any], cached: bool = True) -> RFEResult:
        def record(r: Mapping[str, Any]) -> RoundRecord:
            return RoundRecord(**{**r, "kept": tuple(r["kept"])})

        return cls(
            config=config,
            title=d["title"],
            task_type=d["task_type"],
            feature_names=list(d["feature_names"]),
            true_features=None if d["true_features"] is None else tuple(d["true_features"]),
            schedule=list(d["schedule"]),
            runs={
                s: SelectorRun(s, tuple(record(r) for r in v["rounds"]), v["error_message"], tuple(v["warnings"]))
                for s, v in d["runs"].items()
            },
            notes=tuple(d["notes"]),
            formula_latex=d["formula_latex"],
            seconds=d["seconds"],
            cached=cached,
            workers=d["workers"],
        )


def load_rfe(config: RFEConfig, cache: Cache | None = None) -> RFEResult | None:
    """A finished comparison from the cache, or ``None``."""
    cache = cache or Cache()
    try:
        entry = cache.load(RESULT_KIND, config.config_hash) if cache.has(RESULT_KIND, config.config_hash) else None
    except ChaosMiningError:
        return None
    if entry is None:
        return None
    return RFEResult.from_json(config, json.loads(entry.file("result.json").read_text()))


def _save_result(result: RFEResult, cache: Cache) -> None:
    if result.errors:
        return  # a failed selector is retried next time; its finished units are cached anyway
    payload = json.dumps(to_jsonable(result.to_json()), allow_nan=True)

    def build(folder: Path) -> dict[str, Any]:
        (folder / "result.json").write_text(payload)
        return {}

    cache.delete(RESULT_KIND, result.config.config_hash)
    cache.write(RESULT_KIND, result.config.config_hash, build, config=result.config)


# --- units of work (run in worker processes or in this one) --------------------------------------

_WORKER_DATA: dict[str, SelectionData] = {}


def _worker_data(cache: Cache, key: str) -> SelectionData:
    if key not in _WORKER_DATA:
        entry = cache.load(DATA_KIND, key)
        if entry is None:
            raise DataError(f"The prepared data {key} vanished from the cache {cache.root}; run again.")
        if len(_WORKER_DATA) >= 4:
            _WORKER_DATA.pop(next(iter(_WORKER_DATA)))
        _WORKER_DATA[key] = SelectionData.load(entry.path, entry.meta)
    return _WORKER_DATA[key]


class _StopMonitor:
    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop = should_stop

    def on_progress(self, epoch: int, loss: float) -> None:
        pass

    def on_snapshot(self, epoch: int, model: torch.nn.Module) -> None:
        pass


def _stop_check(job: Mapping[str, Any], should_stop: Callable[[], bool] | None) -> Callable[[], bool]:
    """In this process: the caller's ``should_stop``. In a worker: the stop file, or the parent's death
    (a killed run must not leave orphaned workers training for minutes)."""
    if should_stop is not None:
        return should_stop
    stop_file, parent = job.get("stop_file"), job.get("parent_pid")
    return lambda: bool(stop_file and os.path.exists(stop_file)) or (parent is not None and os.getppid() != parent)


def _predict(net: torch.nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        device = next(net.parameters()).device
        return net(torch.as_tensor(X, dtype=torch.float32, device=device)).cpu().numpy().ravel().astype(np.float64)


def _unit_task(job: dict[str, Any], should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Train (or load) the network on ``job['kept']`` and compute the requested importances.

    Selection reads the training rows (fit) and the validation rows (attributions) only; the test rows
    are read after training, to report the model's error.
    """
    try:
        cache = Cache(job["cache_root"])
        data = _worker_data(cache, job["data_key"])
        cols = list(job["kept"])
        spec = TASK_TYPE_SPECS.get(data.task_type)
        model_cfg, train_cfg = MLPConfig(**job["model"]), TrainConfig(**job["train"])
        device = torch.device(job["device"])
        stop = _stop_check(job, should_stop)

        def build(folder: Path) -> dict[str, Any]:
            trained = train_mlp(
                data.X_train[:, cols],
                data.y_train,
                model_cfg,
                train_cfg,
                seed=job["seed"],
                device=device,
                monitor=_StopMonitor(stop),
            )
            torch.save(trained.state(), folder / "model.pt")
            net = trained.model(device=device)
            return {
                "train_seconds": trained.seconds,
                "device": str(device),
                "val": spec.metrics(data.y_val, _predict(net, data.X_val[:, cols])),
                "test": spec.metrics(data.y_test, _predict(net, data.X_test[:, cols])),
            }

        outcome, trained = cache.get_and_read(
            MODEL_KIND,
            job["unit_key"],
            build,
            (lambda e: TrainedMLP.load(e.file("model.pt"))) if job["methods"] else (lambda e: None),
            config={k: job[k] for k in ("data_key", "kept", "model", "train", "seed")},
        )
        meta = outcome.entry.meta
        out: dict[str, Any] = {
            "train_seconds": meta["train_seconds"],
            "val": meta["val"],
            "test": meta["test"],
            "cached": outcome.cached,
            "importance": {},
            "attr_seconds": {},
            "warnings": {},
        }
        net = None
        if trained is not None:
            net = trained.model(device=device)
        for method, params in job["methods"]:
            ikey = stable_hash({"unit": job["unit_key"], "method": method, "params": params, "seed": job["seed"]})

            def ibuild(folder: Path, method: str = method, params: dict = params) -> dict[str, Any]:
                imp, secs, warns = attribution_importance(
                    net, data.X_val[:, cols], method, params=params, seed=job["seed"]
                )
                np.save(folder / "importance.npy", imp)
                return {"seconds": secs, "warnings": list(warns)}

            io_ = cache.get_or_create(IMPORTANCE_KIND, ikey, ibuild, config={"unit": job["unit_key"], "method": method})
            out["importance"][method] = np.load(io_.entry.file("importance.npy")).tolist()
            out["attr_seconds"][method] = io_.entry.meta["seconds"]
            out["warnings"][method] = io_.entry.meta["warnings"]
        return out
    except JobCancelled as exc:
        return {"cancelled": str(exc)}
    except ChaosMiningError as exc:
        return {"error": str(exc)}


def _classic_task(job: dict[str, Any], should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run one classic selector's whole chain; errors of its own predictor on every round (uni-module)."""
    try:
        cache = Cache(job["cache_root"])
        data = _worker_data(cache, job["data_key"])
        spec = TASK_TYPE_SPECS.get(data.task_type)
        rounds = classic_rfe(
            job["selector"],
            data.task_type,
            data.X_train,
            data.y_train,
            job["schedule"],
            seed=job["seed"],
            should_stop=_stop_check(job, should_stop),
        )
        return {
            "rounds": [
                {
                    "kept": list(r.kept),
                    "seconds": r.seconds,
                    "predictor": type(r.estimator).__name__,
                    "val": spec.metrics(data.y_val, spec.classic_score(r.estimator, data.X_val[:, list(r.kept)])),
                    "test": spec.metrics(data.y_test, spec.classic_score(r.estimator, data.X_test[:, list(r.kept)])),
                }
                for r in rounds
            ]
        }
    except JobCancelled as exc:
        return {"cancelled": str(exc)}
    except (ChaosMiningError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


class _InlineExecutor:
    """Runs submitted tasks in this process (CUDA, or a single worker), one at a time and in order, when the
    scheduler's loop asks for the next (:meth:`run_next`), so that each finished training is recorded and
    reported before the next one starts, as with worker processes."""

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        self._stop = should_stop or (lambda: False)
        self._queue: list[tuple[Future, Callable[..., Any], dict[str, Any]]] = []

    def submit(self, fn: Callable[..., Any], job: dict[str, Any]) -> Future:
        fut: Future = Future()
        self._queue.append((fut, fn, job))
        return fut

    def run_next(self) -> None:
        """Run the oldest task not yet run, if any."""
        if not self._queue:
            return
        fut, fn, job = self._queue.pop(0)
        try:
            fut.set_result(fn(job, self._stop))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(exc)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        for fut, _, _ in self._queue:
            fut.cancel()
        self._queue.clear()


def default_workers() -> int:
    from ..sweep import default_workers as _default

    return _default()


# Below this much estimated training, starting worker processes (several seconds of imports each) costs
# more than it saves.
_INLINE_SECONDS = 30.0


@dataclass(frozen=True)
class RFEPlan:
    """What a comparison will cost before it runs: the schedule and the number of network trainings
    (at most; selectors that keep the same features share them), with a rough single-core estimate."""

    schedule: list[int]
    trainings: int
    estimated_seconds: float


def plan_rfe(config: RFEConfig, data: SelectionData) -> RFEPlan:
    """The elimination schedule of ``config`` on ``data`` and an upper bound of its trainings."""
    schedule = elimination_schedule(
        data.n_features, config.drop_rate, config.resolved_target(data.n_features, data.true_features)
    )
    n_attr = sum(get_selector(s).family == "attribution" for s in config.selectors)
    n_classic = len(config.selectors) - n_attr
    trainings = (1 if n_attr else 0) + n_attr * (len(schedule) - 1)
    if config.strategy == "bi":
        trainings += n_classic * len(schedule)
    seconds = 0.0
    for i, n in enumerate(schedule):
        networks = min(n_attr, 1) if i == 0 else n_attr  # round 1 is shared by every attribution selector
        networks += n_classic if config.strategy == "bi" else 0
        macs = 3 * len(data.y_train) * config.train.epochs * config.model.n_parameters(n)
        seconds += networks * macs
    return RFEPlan(schedule, trainings, seconds / training_macs_per_second(config.train.precision))


def _auto_workers(runs: Sequence[_RunState]) -> int:
    """One worker (this process) for small jobs, else :func:`default_workers`."""
    total = sum(plan_rfe(run.config, run.data).estimated_seconds for run in runs)
    return 1 if total < _INLINE_SECONDS else default_workers()


# --- the scheduler -------------------------------------------------------------------------------


@dataclass
class _Waiter:
    run: _RunState
    selector: str
    method: str | None
    round_index: int | None = None  # bi-module evaluation of a classic round


@dataclass
class _RunState:
    index: int
    config: RFEConfig
    data_key: str
    data: SelectionData
    schedule: list[int]
    records: dict[str, list[RoundRecord | None]] = field(default_factory=dict)
    chains: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, set[str]] = field(default_factory=dict)
    pending_classic: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class _Scheduler:
    def __init__(
        self,
        cache: Cache,
        device: torch.device,
        workers: int,
        report: Callable[..., None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.cache, self.device, self.workers = cache, device, workers
        self.report, self.should_stop = report, should_stop
        self.stop_file = str(Path(tempfile.gettempdir()) / f"chaosmining-rfe-stop-{os.getpid()}-{time.time_ns()}")
        self.executor: Any = None
        self.inflight: dict[Future, tuple[str, str | None, dict[str, Any]]] = {}
        self.inflight_units: set[str] = set()
        self.waiting: dict[str, list[_Waiter]] = {}
        self.unit_jobs: dict[str, dict[str, Any]] = {}
        self.dirty: list[str] = []

    # -- plumbing
    def _executor(self) -> Any:
        if self.executor is None:
            if self.device.type == "cuda" or self.workers <= 1:
                self.executor = _InlineExecutor(self.should_stop)
            else:
                self.executor = WorkerPool(self.workers)
        return self.executor

    def _emit(self, **event: Any) -> None:
        if self.report:
            self.report(**event)

    def _job_base(self, run: _RunState) -> dict[str, Any]:
        return {
            "cache_root": str(self.cache.root),
            "data_key": run.data_key,
            "seed": run.config.seed,
            "stop_file": self.stop_file,
            "parent_pid": os.getpid(),
            "device": "cpu" if self.workers > 1 and self.device.type != "cuda" else str(self.device),
        }

    # -- requests
    def request_unit(self, waiter: _Waiter, kept: tuple[int, ...]) -> None:
        run = waiter.run
        key = stable_hash(
            {
                "data": run.data_key,
                "kept": list(kept),
                "model": run.config.model.config_hash,
                "train": run.config.train.config_hash,
                "seed": run.config.seed,
            }
        )
        if key not in self.unit_jobs:
            self.unit_jobs[key] = {
                **self._job_base(run),
                "unit_key": key,
                "kept": list(kept),
                "model": run.config.model.to_dict(),
                "train": run.config.train.to_dict(),
                "_run": run,
            }
        self.waiting.setdefault(key, []).append(waiter)
        if key not in self.dirty:
            self.dirty.append(key)

    def flush(self) -> None:
        for key in self.dirty:
            if key in self.inflight_units or not self.waiting.get(key):
                continue
            base = self.unit_jobs[key]
            run: _RunState = base["_run"]
            methods = sorted({w.method for w in self.waiting[key] if w.method})
            job = {k: v for k, v in base.items() if k != "_run"}
            job["methods"] = [(m, run.config.params_for(m)) for m in methods]
            fut = self._executor().submit(_unit_task, job)
            self.inflight[fut] = (key, None, job)
            self.inflight_units.add(key)
        self.dirty = []
        self._emit(running=len(self.inflight_units))

    def submit_classic(self, run: _RunState, selector: str) -> None:
        job = {**self._job_base(run), "selector": selector, "schedule": run.schedule}
        fut = self._executor().submit(_classic_task, job)
        self.inflight[fut] = ("", selector, {**job, "_run": run})

    # -- completions
    def _fail(self, run: _RunState, selector: str, message: str) -> None:
        if selector not in run.errors:
            run.errors[selector] = message
            self._emit(config=run.index, selector=selector, error=message)

    def _record(self, run: _RunState, selector: str, index: int, record: RoundRecord) -> None:
        recs = run.records.setdefault(selector, [None] * len(run.schedule))
        recs[index] = record
        done = sum(r is not None for r in recs)
        self._emit(
            config=run.index,
            selector=selector,
            round=index,
            n_features=record.n_features,
            error=record.error,
            precision=record.precision,
            seconds=record.seconds,
            done_rounds=done,
            total_rounds=len(run.schedule),
        )

    def _metrics_record(
        self,
        run: _RunState,
        kept: tuple[int, ...],
        val: dict[str, float],
        test: dict[str, float],
        seconds: float,
        predictor: str,
        cached: bool,
        eval_seconds: float = 0.0,
    ) -> RoundRecord:
        spec = TASK_TYPE_SPECS.get(run.data.task_type)
        precision, recall = precision_recall(kept, run.data.true_features)
        return RoundRecord(
            n_features=len(kept),
            kept=kept,
            error=spec.error_from(test),
            val_error=spec.error_from(val),
            test_metrics=test,
            val_metrics=val,
            precision=precision,
            recall=recall,
            seconds=seconds,
            predictor=predictor,
            cached=cached,
            eval_seconds=eval_seconds,
        )

    def _unit_done(self, key: str, out: dict[str, Any]) -> None:
        self.inflight_units.discard(key)
        waiters = self.waiting.pop(key, [])
        if "cancelled" in out:
            raise JobCancelled(out["cancelled"])
        kept = tuple(self.unit_jobs[key]["kept"])
        still: list[_Waiter] = []
        for w in waiters:
            run = w.run
            if "error" in out:
                self._fail(run, w.selector, out["error"])
                continue
            if w.round_index is not None:  # bi-module: the network predicts on a classic selector's features
                info = run.pending_classic[w.selector][w.round_index]
                record = self._metrics_record(
                    run, kept, out["val"], out["test"], info["seconds"], "MLP", out["cached"], out["train_seconds"]
                )
                self._record(run, w.selector, w.round_index, record)
                continue
            if w.method is not None and w.method not in out["importance"]:
                still.append(w)  # the unit was already in flight for other methods: ask again (cache hit)
                continue
            seconds = out["train_seconds"] + (out["attr_seconds"].get(w.method, 0.0) if w.method else 0.0)
            record = self._metrics_record(run, kept, out["val"], out["test"], seconds, "MLP", out["cached"])
            if w.method:
                run.warnings.setdefault(w.selector, set()).update(out["warnings"].get(w.method, ()))
            index = run.schedule.index(len(kept))
            self._record(run, w.selector, index, record)
            importance = np.asarray(out["importance"][w.method]) if w.method else None
            try:
                request = run.chains[w.selector].send(importance)
            except StopIteration:
                continue
            self.request_unit(_Waiter(run, w.selector, request.method), request.kept)
        if still:
            self.waiting[key] = still
            self.dirty.append(key)

    def _classic_done(self, run: _RunState, selector: str, out: dict[str, Any]) -> None:
        if "cancelled" in out:
            raise JobCancelled(out["cancelled"])
        if "error" in out:
            self._fail(run, selector, out["error"])
            return
        run.pending_classic[selector] = out["rounds"]
        for i, r in enumerate(out["rounds"]):
            kept = tuple(r["kept"])
            if run.config.strategy == "uni":
                record = self._metrics_record(run, kept, r["val"], r["test"], r["seconds"], r["predictor"], False)
                self._record(run, selector, i, record)
            else:
                self.request_unit(_Waiter(run, selector, None, round_index=i), kept)

    def _check_stop(self, where: str) -> None:
        if self.should_stop and self.should_stop():
            Path(self.stop_file).touch()
            raise JobCancelled(f"Stopped by the user {where}; finished trainings are cached and a re-run resumes.")

    def loop(self) -> None:
        self.flush()
        while self.inflight:
            if isinstance(self.executor, _InlineExecutor):
                self.executor.run_next()
            finished, _ = wait(list(self.inflight), timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in finished:
                key, selector, job = self.inflight.pop(fut)
                out = fut.result()
                if selector is None:
                    self._unit_done(key, out)
                else:
                    self._classic_done(job["_run"], selector, out)
            self.flush()
            self._check_stop(f"with {len(self.inflight_units)} training(s) running")

    def close(self, cancel: bool) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=cancel)
        Path(self.stop_file).unlink(missing_ok=True)


def _result_of(run: _RunState, seconds: float, workers: int) -> RFEResult:
    runs = {}
    for s in run.config.selectors:
        recs = tuple(r for r in run.records.get(s, []) if r is not None)
        runs[s] = SelectorRun(s, recs, run.errors.get(s), tuple(sorted(run.warnings.get(s, ()))))
    return RFEResult(
        config=run.config,
        title=run.data.title,
        task_type=run.data.task_type,
        feature_names=run.data.feature_names,
        true_features=run.data.true_features,
        schedule=run.schedule,
        runs=runs,
        notes=run.data.notes,
        formula_latex=run.data.formula_latex,
        seconds=seconds,
        cached=False,
        workers=workers,
    )


def run_rfe_many(
    configs: Sequence[RFEConfig],
    *,
    cache: Cache | None = None,
    device: str | torch.device = "auto",
    workers: int | None = None,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[RFEResult]:
    """Run several comparisons through one pool of workers (the Figure 7 protocol runs five formulas).

    Finished comparisons come from the cache. ``report`` receives progress events: ``schedule`` (per
    configuration, at the start), ``round`` records (``config``, ``selector``, ``n_features``,
    ``error``, ``precision``, ``done_rounds``/``total_rounds``), ``running`` (trainings in flight) and
    ``error`` messages.

    Raises
    ------
    JobCancelled
        When ``should_stop()`` turns true; every finished training stays cached.
    """
    start = time.perf_counter()
    cache = cache or Cache()
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    results: list[RFEResult | None] = [load_rfe(c, cache) for c in configs]
    runs: list[_RunState] = []
    for i, config in enumerate(configs):
        if results[i] is not None:
            continue
        key, data = prepare_data(config, cache)
        schedule = plan_rfe(config, data).schedule
        runs.append(_RunState(i, config, key, data, schedule))
        if report:
            report(config=i, schedule=schedule, selectors=list(config.selectors))
    n_workers = max(1, workers) if workers else _auto_workers(runs)
    scheduler = _Scheduler(cache, dev, n_workers, report, should_stop)
    cancelled = True
    try:
        for run in runs:  # first every round-1 training, so that workers start at once
            for s in run.config.selectors:
                method = get_selector(s).method
                if method is None:
                    continue
                run.chains[s] = rfewna_rounds(run.data.n_features, method, run.schedule)
                request = next(run.chains[s])
                scheduler.request_unit(_Waiter(run, s, request.method), request.kept)
        scheduler.flush()
        for run in runs:
            for s in run.config.selectors:
                if get_selector(s).family == "classic":
                    scheduler.submit_classic(run, s)
        scheduler.loop()
        cancelled = False
    finally:
        scheduler.close(cancel=cancelled)
    seconds = time.perf_counter() - start
    for run in runs:
        result = _result_of(run, seconds, n_workers)
        _save_result(result, cache)
        results[run.index] = result
    return [r for r in results if r is not None]


def run_rfe(
    config: RFEConfig,
    *,
    cache: Cache | None = None,
    device: str | torch.device = "auto",
    workers: int | None = None,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RFEResult:
    """Compare the configured selectors on one task; see :func:`run_rfe_many` for the events.

    Examples
    --------
    >>> cfg = RFEConfig(data=RFEDataConfig(task="formula:2", noise_features=3, samples=200),
    ...                 selectors=("saliency", "linear"), train=TrainConfig(epochs=20, snapshots=1))
    >>> run_rfe(cfg, workers=1).runs["saliency"].kept  # doctest: +SKIP
    (0,)
    """
    return run_rfe_many([config], cache=cache, device=device, workers=workers, report=report, should_stop=should_stop)[
        0
    ]
