"""Feature-selection tasks: what a prediction's error is (task types) and how a task's data are built.

A task is named ``KIND:ARG`` (:data:`TASK_KINDS`): a symbolic formula with noise features (regression),
an embedded table or a user's CSV (binary classification). :func:`prepare_task_data` builds it once per
data configuration and seed and caches it (``rfe-data``); the validation split is carved from the
training split, and the test split is only ever used to report errors.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cache import Cache
from ..config import stable_hash
from ..data.formulas import get_formula
from ..data.symbolic import SymbolicDataConfig, make_symbolic_data
from ..data.tabular import TABULAR_SOURCES, prepare_tabular, read_label_csv
from ..errors import DataError
from ..metrics import mae
from ..models.mlp import MLPConfig
from ..registry import Registry
from ..training import TrainConfig
from ..validation import param_error

if TYPE_CHECKING:
    from .rfe_config import RFEDataConfig

__all__ = [
    "DATA_KIND",
    "TaskTypeSpec",
    "TASK_TYPE_SPECS",
    "TaskKind",
    "TASK_KINDS",
    "SelectionData",
    "data_key",
    "prepare_task_data",
    "load_task_data",
]

DATA_KIND = "rfe-data"
_DATA_OWNER = "RFEDataConfig"

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


def data_key(data: RFEDataConfig, seed: int) -> str:
    """The cache key of a task's prepared data (its configuration and the seed that split it)."""
    return stable_hash({"data": data.config_hash, "seed": seed})


def prepare_task_data(data: RFEDataConfig, seed: int, cache: Cache) -> tuple[str, SelectionData]:
    """The task's data (built once and cached); returns ``(data_key, data)``."""
    key = data_key(data, seed)

    def build(folder: Path) -> dict[str, Any]:
        return data.kind_spec.build(data, seed).save(folder)

    outcome = cache.get_or_create(DATA_KIND, key, build, config={"data": data, "seed": seed})
    return key, SelectionData.load(outcome.entry.path, outcome.entry.meta)


_LOADED: dict[str, SelectionData] = {}


def load_task_data(key: str, cache: Cache) -> SelectionData:
    """Prepared data by their key (:func:`prepare_task_data` wrote them), remembered in this process so
    that a worker reuses the arrays across units."""
    if key not in _LOADED:
        entry = cache.load(DATA_KIND, key)
        if entry is None:
            raise DataError(f"The prepared data {key} vanished from the cache {cache.root}; run again.")
        if len(_LOADED) >= 4:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = SelectionData.load(entry.path, entry.meta)
    return _LOADED[key]
