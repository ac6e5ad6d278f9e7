"""Binary classification tables with known informative columns, for feature selection (paper section 4.1).

The paper selected features on Kaggle's Santander Customer Satisfaction data (369 columns, about 4 %
positives), which is not available offline and has no ground truth. Two embedded substitutes whose
informative columns are known by construction, and a loader for the real CSV:

* ``santander_like`` - :func:`sklearn.datasets.make_classification` with ``shuffle=False``, so the
  columns come in a fixed order: 12 informative, then 24 redundant (linear combinations of them) and 12
  repeated columns, then pure noise. **Ground truth: columns 0-47.** 4 % positives, 2 % flipped labels,
  three clusters per class and ``class_sep=0.8``: nonlinear, imbalanced and hard (a linear model
  reaches a ROC-AUC near 0.63, gradient boosting about 0.82), like Santander.
* ``breast_cancer`` - scikit-learn's breast-cancer data (569 rows, 30 real measurements, shipped with
  scikit-learn) followed by ``noise_features`` i.i.d. N(0, 1) columns. **Ground truth: columns 0-29.**
  Easy to classify, yet a linear model puts most of its weight on noise columns.
* :func:`read_label_csv` - any CSV with a binary label column, such as Santander's ``train.csv``
  (an ``ID`` column is dropped). There is no ground truth, so precision and recall are not defined.

Every source goes through :func:`prepare_tabular`, the paper's pipeline: constant columns dropped, the
majority class randomly undersampled to the size of the minority class, a stratified split into
train / validation / test, and min-max scaling fitted on the training rows only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, ResourceError
from ..registry import Registry
from ..sandbox import under_roots
from ..uploads import is_upload
from .symbolic import memory_budget_bytes

__all__ = [
    "TabularDataset",
    "TabularSource",
    "TABULAR_SOURCES",
    "make_santander_like",
    "make_breast_cancer_noise",
    "read_label_csv",
    "sniff_csv",
    "MAX_CSV_COLUMNS",
    "prepare_tabular",
    "LABEL_CANDIDATES",
    "SANTANDER_TRUE_FEATURES",
]

# Column order of make_classification(shuffle=False): informative, redundant, repeated, then noise.
_INFORMATIVE, _REDUNDANT, _REPEATED = 12, 24, 12
SANTANDER_TRUE_FEATURES = _INFORMATIVE + _REDUNDANT + _REPEATED
LABEL_CANDIDATES = ("TARGET", "target", "label", "Label", "class", "Class", "y")
_ID_COLUMNS = ("id", "ID", "Id")


@dataclass(frozen=True, eq=False)
class TabularDataset:
    """A prepared binary classification task.

    ``X_*`` have shape ``(n, n_features)`` (float64, min-max scaled with the training rows' range);
    ``y_*`` hold 0/1 labels. ``true_features`` lists the informative columns (after constant columns
    were dropped), or is ``None`` when the source has no ground truth.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    true_features: tuple[int, ...] | None
    dropped_constant: tuple[str, ...]
    rows_before_undersampling: int
    classes: tuple[str, str]

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


def _check_size(samples: int, n_features: int, what: str) -> None:
    needed = samples * n_features * 8 * 4
    if needed > memory_budget_bytes():
        raise ResourceError(
            f"The {what} ({samples} rows x {n_features} columns) would need about {needed / 2**30:.1f} GiB, more "
            f"than the {memory_budget_bytes() / 2**30:.1f} GiB this machine can give one experiment. Use fewer rows."
        )


def make_santander_like(
    samples: int = 20_000, noise_features: int = 321, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str], tuple[int, ...]]:
    """A Santander-like imbalanced table: ``(X, y, feature_names, true_features)``.

    ``X`` has ``48 + noise_features`` columns (369 by default, as Santander); the first 48 carry the
    signal (12 informative, 24 redundant, 12 repeated), the rest are N(0, 1) noise.

    Examples
    --------
    >>> X, y, names, true = make_santander_like(samples=200, noise_features=2)
    >>> X.shape, true[-1], names[48]
    ((200, 50), 47, 'noise0')
    """
    from sklearn.datasets import make_classification

    n_features = SANTANDER_TRUE_FEATURES + noise_features
    _check_size(samples, n_features, "Santander-like table")
    X, y = make_classification(
        n_samples=samples,
        n_features=n_features,
        n_informative=_INFORMATIVE,
        n_redundant=_REDUNDANT,
        n_repeated=_REPEATED,
        n_clusters_per_class=3,
        weights=[0.96, 0.04],
        flip_y=0.02,
        class_sep=0.8,
        shuffle=False,
        random_state=seed,
    )
    names = (
        [f"informative{i}" for i in range(_INFORMATIVE)]
        + [f"redundant{i}" for i in range(_REDUNDANT)]
        + [f"repeated{i}" for i in range(_REPEATED)]
        + [f"noise{i}" for i in range(noise_features)]
    )
    return X, y.astype(np.int64), names, tuple(range(SANTANDER_TRUE_FEATURES))


def make_breast_cancer_noise(
    noise_features: int = 339, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str], tuple[int, ...]]:
    """Breast-cancer measurements followed by ``noise_features`` N(0, 1) columns.

    Label 1 is malignant (212 of 569 rows). ``true_features`` are columns 0-29.
    """
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xBC]))
    noise = rng.standard_normal((data.data.shape[0], noise_features))
    X = np.hstack([data.data, noise])
    y = (data.target == 0).astype(np.int64)  # sklearn codes malignant as 0
    names = [str(n) for n in data.feature_names] + [f"noise{i}" for i in range(noise_features)]
    return X, y, names, tuple(range(data.data.shape[1]))


MAX_CSV_COLUMNS = 2000  # the app's limit for a CSV typed or uploaded in the browser
_SNIFF_BYTES = 1 << 20


def sniff_csv(path: str | Path, *, max_columns: int | None = None) -> int:
    """Check that ``path`` looks like a CSV text file before pandas reads it; returns its number of columns.

    Reads at most the first MiB. Refuses, with a :class:`DataError` naming the problem, an empty file, a
    binary one (NUL bytes), one that is not UTF-8 text, one without a header line, and, with
    ``max_columns``, one with more columns than that. The messages name the file and the problem and
    never quote its content.
    """
    import codecs
    import csv

    path = Path(path).expanduser()
    name = repr(path.name)
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise DataError(f"The CSV file {name} could not be read ({exc.strerror or type(exc).__name__}).") from None
    if not head.strip():
        raise DataError(f"The CSV file {name} is empty. Upload or name a CSV with a header line and rows.")
    if b"\x00" in head:
        raise DataError(f"The CSV file {name} is binary (it holds NUL bytes), not a CSV text file.")
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=len(head) < _SNIFF_BYTES)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"The CSV file {name} is not UTF-8 text (an invalid byte at offset {exc.start}). Save it as UTF-8 CSV."
        ) from None
    first = text.splitlines()[0] if text.splitlines() else ""
    if len(head) == _SNIFF_BYTES and len(first) == len(text):
        n_columns = first.count(",") + 1  # a header line longer than a MiB: a lower bound is enough here
    else:
        n_columns = len(next(csv.reader([first]), []))
    if n_columns == 0 or not first.strip():
        raise DataError(f"The CSV file {name} has no header line (its first line is blank).")
    if max_columns is not None and n_columns > max_columns:
        raise DataError(
            f"The CSV file {name} has {n_columns} columns; at most {max_columns} are allowed here "
            "(drop columns first, or run it with `python -m chaosmining rfe`)."
        )
    return n_columns


def read_label_csv(
    path: str | Path, label: str | None = None, *, max_columns: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a CSV with one binary label column: ``(X, y, feature_names)``.

    ``label`` names the label column; by default the first of :data:`LABEL_CANDIDATES` that exists
    (Santander's is ``TARGET``). A column named ``ID``/``id`` is dropped. Every other column must be
    numeric and complete. The file is checked with :func:`sniff_csv` first (``max_columns`` is passed on).

    Messages never quote the content of a file outside the data roots (:mod:`chaosmining.sandbox`): they
    count its columns and give their positions. For an upload (:func:`chaosmining.uploads.is_upload`, the
    user's own content) or a file under the data roots (which the browser may name anyway) they name the
    columns, escaped and shortened.

    Raises
    ------
    DataError
        The file cannot be read, is empty, binary, not UTF-8 or too wide, has no label column, has
        non-numeric or missing values, or a label that is not binary.
    """
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(
            f"The 'path' parameter of read_label_csv must be an existing CSV file. Got {str(path)!r} instead."
        )
    sniff_csv(path, max_columns=max_columns)
    name = repr(path.name)
    try:
        frame = pd.read_csv(path)
    except UnicodeDecodeError:
        raise DataError(f"The CSV file {name} is not UTF-8 text. Save it as UTF-8 CSV.") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"The CSV file {name} is empty. Upload or name a CSV with a header line and rows.") from None
    except pd.errors.ParserError:
        raise DataError(
            f"The CSV file {name} could not be parsed as CSV: its rows do not all have as many fields as its "
            "header, or a quote is not closed."
        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"The CSV file {name} could not be read ({type(exc).__name__}).") from None
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    own = is_upload(path) or under_roots(path)  # content any browser user may read anyway
    if label is None:
        label = next((c for c in LABEL_CANDIDATES if c in columns), None)
        if label is None:
            raise DataError(
                f"The CSV file {name} has no label column: none of {list(LABEL_CANDIDATES)} is among its "
                f"{_columns(columns, own, 'columns')}. Name the label column with --label (or the Label column "
                "setting)."
            )
    elif label not in columns:
        raise DataError(
            f"The 'label' parameter of read_label_csv must be a column of {name}. Got {label!r} instead; "
            f"the file has {_columns(columns, own, 'columns')}."
        )
    features = frame.drop(columns=[label, *[c for c in _ID_COLUMNS if c in columns and c != label]])
    if features.shape[1] == 0:
        raise DataError(f"The CSV file {name} has no feature columns besides the label {label!r}.")
    position = {c: i for i, c in enumerate(columns)}
    bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        raise DataError(
            f"The CSV file {name} has non-numeric {_columns(bad, own, 'columns', position)}. Encode or drop them; "
            "every feature column must hold numbers."
        )
    missing = [c for c in features.columns if features[c].isna().any()]
    if missing:
        raise DataError(
            f"The CSV file {name} has missing values, in {_columns(missing, own, 'columns', position)}. Fill "
            "or drop them."
        )
    y_raw = frame[label]
    if y_raw.isna().any():
        raise DataError(f"The label column {label!r} of {name} has missing values.")
    classes = sorted(y_raw.unique().tolist(), key=str)
    if len(classes) != 2:
        shown = f": {_names([str(c) for c in classes])}" if own else ""
        raise DataError(
            f"The label column {label!r} of {name} must hold exactly two classes. Got {len(classes)}{shown}."
        )
    y = (y_raw == classes[1]).to_numpy(dtype=np.int64)
    return features.to_numpy(dtype=np.float64), y, list(features.columns)


def _names(names: Sequence[str], most: int = 10, width: int = 40) -> str:
    """Names quoted and escaped (``repr``), each cut to ``width`` characters, at most ``most`` of them."""
    shown = ", ".join(repr(n if len(n) <= width else n[:width] + "...") for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _columns(names: Sequence[str], own: bool, noun: str, position: dict[str, int] | None = None) -> str:
    """``columns 'a', 'b'`` where the names may be shown (``own``); otherwise only counts and 1-based positions."""
    if own:
        return f"{noun} ({_names(names)})" if position is None else f"{noun}: {_names(names)}"
    if position is None:
        return f"{len(names)} {noun}"
    at = [str(position[n] + 1) for n in names[:10]]
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return f"{noun} at positions {', '.join(at)}{more} (counting from 1)"


def _split_class(idx: np.ndarray, fractions: tuple[float, float], rng: np.random.Generator) -> list[np.ndarray]:
    idx = rng.permutation(idx)
    n_test = int(round(len(idx) * fractions[1]))
    n_val = int(round((len(idx) - n_test) * fractions[0]))
    return [idx[n_test + n_val :], idx[n_test : n_test + n_val], idx[:n_test]]


def prepare_tabular(
    X: np.ndarray,
    y: np.ndarray,
    *,
    feature_names: Sequence[str],
    true_features: Sequence[int] | None,
    name: str = "table",
    undersample: bool = True,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    classes: tuple[str, str] = ("0", "1"),
) -> TabularDataset:
    """The paper's preprocessing, leak-free: drop constant columns, undersample, split, min-max scale.

    The test split is ``test_fraction`` of the (undersampled) rows; the validation split is
    ``val_fraction`` of the remaining training rows. Both are stratified. The scaler's minimum and
    maximum come from the training rows only.

    Raises
    ------
    DataError
        When a class has too few rows to put at least one in each split.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7AB]))
    constant = np.ptp(X, axis=0) == 0 if len(X) else np.ones(X.shape[1], dtype=bool)
    keep_cols = np.flatnonzero(~constant)
    if len(keep_cols) == 0:
        raise DataError(f"Every feature column of {name!r} is constant; there is nothing to select from.")
    new_index = {int(old): new for new, old in enumerate(keep_cols)}
    true = None if true_features is None else tuple(new_index[i] for i in true_features if i in new_index)
    X = X[:, keep_cols]
    names = [str(feature_names[i]) for i in keep_cols]
    dropped = tuple(str(feature_names[i]) for i in np.flatnonzero(constant))

    by_class = [np.flatnonzero(y == c) for c in (0, 1)]
    for c, idx in enumerate(by_class):
        if len(idx) < 3:
            raise DataError(
                f"Class {classes[c]!r} of {name!r} has {len(idx)} row(s); at least 3 are needed to put one in each "
                "of the train, validation and test splits. Add rows of that class or choose another label."
            )
    rows_before = len(y)
    if undersample:
        size = min(len(idx) for idx in by_class)
        by_class = [np.sort(rng.choice(idx, size=size, replace=False)) for idx in by_class]
    parts = [_split_class(idx, (val_fraction, test_fraction), rng) for idx in by_class]
    for c, (tr, va, te) in enumerate(parts):
        if min(len(tr), len(va), len(te)) == 0:
            raise DataError(
                f"Class {classes[c]!r} of {name!r} has too few rows ({len(tr) + len(va) + len(te)}) to split into "
                f"train, validation ({val_fraction:g} of train) and test ({test_fraction:g}). Use more rows or larger "
                "fractions."
            )
    splits = [np.sort(np.concatenate([parts[0][s], parts[1][s]])) for s in range(3)]
    lo = X[splits[0]].min(axis=0)
    span = X[splits[0]].max(axis=0) - lo
    span[span == 0] = 1.0  # constant on the training rows only: maps to 0 there
    scaled = [(X[s] - lo) / span for s in splits]
    return TabularDataset(
        name=name,
        X_train=scaled[0],
        y_train=y[splits[0]],
        X_val=scaled[1],
        y_val=y[splits[1]],
        X_test=scaled[2],
        y_test=y[splits[2]],
        feature_names=names,
        true_features=true,
        dropped_constant=dropped,
        rows_before_undersampling=rows_before,
        classes=classes,
    )


@dataclass(frozen=True)
class TabularSource:
    """An embedded table: how to build it and what its defaults are."""

    name: str
    display_name: str
    description: str
    build: Callable[[int, int, int], tuple[np.ndarray, np.ndarray, list[str], tuple[int, ...]]]
    default_samples: int | None
    default_noise_features: int
    true_columns: int
    reference: str

    @property
    def fixed_rows(self) -> bool:
        """Whether the rows are a fixed data set (``samples`` then draws a subset) or generated."""
        return self.default_samples is None


TABULAR_SOURCES: Registry[TabularSource] = Registry("tabular data set")
for _s in (
    TabularSource(
        "santander_like",
        "Santander-like synthetic (make_classification)",
        "369 columns, 4 % positives, undersampled like the paper's Santander data; columns 0-47 carry the signal "
        "(12 informative, 24 redundant, 12 repeated).",
        lambda samples, noise, seed: make_santander_like(samples, noise, seed),
        20_000,
        369 - SANTANDER_TRUE_FEATURES,
        SANTANDER_TRUE_FEATURES,
        "https://scikit-learn.org/stable/modules/generated/sklearn.datasets.make_classification.html",
    ),
    TabularSource(
        "breast_cancer",
        "Breast cancer + noise columns",
        "scikit-learn's 569 breast-cancer rows: 30 real measurements (columns 0-29) followed by N(0, 1) noise columns.",
        lambda samples, noise, seed: make_breast_cancer_noise(noise, seed),
        None,
        339,
        30,
        "https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_breast_cancer.html",
    ),
):
    TABULAR_SOURCES.register(_s.name, _s)
