"""Tabular data for feature selection: embedded tables, the CSV loader and the paper's preprocessing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from chaosmining.data.tabular import (
    SANTANDER_TRUE_FEATURES,
    TABULAR_SOURCES,
    make_breast_cancer_noise,
    make_santander_like,
    prepare_tabular,
    read_label_csv,
)
from chaosmining.errors import DataError


def test_santander_like_puts_the_signal_in_the_first_48_columns():
    X, y, names, true = make_santander_like(samples=3000, noise_features=20, seed=0)
    assert X.shape == (3000, 68) and true == tuple(range(SANTANDER_TRUE_FEATURES))
    assert names[0] == "informative0" and names[47] == "repeated11" and names[48] == "noise0"
    assert 0.03 < y.mean() < 0.09  # 4 % positives plus 2 % flipped labels
    # Repeated columns are exact copies of informative or redundant ones (shuffle=False keeps the order).
    for j in range(36, 48):
        assert any(np.array_equal(X[:, j], X[:, i]) for i in range(36))
    # Redundant columns are linear combinations of the informative ones: zero residual.
    coef, *_ = np.linalg.lstsq(X[:, :12], X[:, 12:36], rcond=None)
    assert np.abs(X[:, :12] @ coef - X[:, 12:36]).max() < 1e-8
    # Noise columns carry no signal: their correlation with the label is at the sampling level.
    corr = [abs(np.corrcoef(X[:, j], y)[0, 1]) for j in range(48, 68)]
    assert max(corr) < 0.08


def test_breast_cancer_keeps_the_real_measurements_first():
    X, y, names, true = make_breast_cancer_noise(noise_features=5, seed=1)
    data = load_breast_cancer()
    assert X.shape == (569, 35) and true == tuple(range(30))
    assert np.array_equal(X[:, :30], data.data)
    assert y.sum() == 212  # malignant is the positive class
    assert names[:2] == ["mean radius", "mean texture"] and names[30] == "noise0"
    assert abs(X[:, 30:].std() - 1.0) < 0.05


def test_registry_entries_build_what_they_declare():
    for _name, source in TABULAR_SOURCES.items():
        X, y, names, true = source.build(2000, 4, 0)
        assert X.shape[1] == source.true_columns + 4 == len(names)
        assert true == tuple(range(source.true_columns))
        assert set(np.unique(y)) == {0, 1}


def _toy(n0: int = 60, n1: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n0 + n1, 5)) * 3 + 7
    X[:, 2] = 4.0  # constant column
    y = np.r_[np.zeros(n0, int), np.ones(n1, int)]
    return X, y


def test_prepare_drops_constants_undersamples_splits_and_scales_without_leaks():
    X, y = _toy()
    ds = prepare_tabular(X, y, feature_names=list("abcde"), true_features=[0, 3], seed=3)
    assert ds.feature_names == ["a", "b", "d", "e"] and ds.dropped_constant == ("c",)
    assert ds.true_features == (0, 2)  # column 3 ('d') moved to index 2
    ys = [ds.y_train, ds.y_val, ds.y_test]
    assert [int((t == 1).sum()) for t in ys] == [int((t == 0).sum()) for t in ys]  # balanced in every split
    assert sum(len(t) for t in ys) == 40  # the 60 negatives were undersampled to 20
    # Per class of 20: test round(0.2 * 20) = 4, validation round(0.2 * 16) = 3, train 13.
    assert [len(t) for t in ys] == [26, 6, 8]
    assert np.allclose(ds.X_train.min(axis=0), 0) and np.allclose(ds.X_train.max(axis=0), 1)
    rows = np.vstack([ds.X_train, ds.X_val, ds.X_test])
    assert len(np.unique(rows, axis=0)) == 40  # no row is in two splits


def test_prepare_without_undersampling_keeps_every_row():
    X, y = _toy()
    ds = prepare_tabular(X, y, feature_names=list("abcde"), true_features=None, undersample=False)
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 80 and ds.true_features is None


def test_a_class_too_small_to_split_is_refused():
    X, y = _toy(n0=30, n1=2)
    with pytest.raises(DataError, match="Class '1' of 'table' has 2 row\\(s\\); at least 3 are needed"):
        prepare_tabular(X, y, feature_names=list("abcde"), true_features=None)


def _csv(tmp_path, frame: pd.DataFrame, name: str = "t.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def test_csv_loader_finds_target_and_drops_the_id(tmp_path):
    frame = pd.DataFrame({"ID": [1, 2, 3, 4], "var3": [2, 2, 3, 4], "x": [0.1, 0.2, 0.3, 0.4], "TARGET": [0, 1, 0, 1]})
    X, y, names = read_label_csv(_csv(tmp_path, frame))
    assert names == ["var3", "x"] and X.shape == (4, 2) and list(y) == [0, 1, 0, 1]


def test_csv_without_label_column_says_so_and_lists_the_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSMINING_DATA_ROOTS", str(tmp_path))  # under a data root: its columns may be named
    path = _csv(tmp_path, pd.DataFrame({"a": [1, 2], "b": [3, 4]}))
    with pytest.raises(DataError, match=r"has no label column: .*columns \('a', 'b'\).*--label"):
        read_label_csv(path)
    with pytest.raises(DataError, match=r"The 'label' parameter of read_label_csv must be a column of 't.csv'"):
        read_label_csv(path, label="outcome")


def test_csv_with_non_numeric_columns_names_them(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSMINING_DATA_ROOTS", str(tmp_path))  # under a data root: its columns may be named
    frame = pd.DataFrame({"city": ["a", "b"], "x": [1.0, 2.0], "kind": ["u", "v"], "target": [0, 1]})
    with pytest.raises(DataError, match=r"non-numeric columns: 'city', 'kind'"):
        read_label_csv(_csv(tmp_path, frame))


def test_csv_with_missing_values_or_a_non_binary_label_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSMINING_DATA_ROOTS", str(tmp_path))  # under a data root: its columns may be named
    with pytest.raises(DataError, match=r"missing values, in columns: 'x'"):
        read_label_csv(_csv(tmp_path, pd.DataFrame({"x": [1.0, None], "y": [0, 1]})))
    with pytest.raises(DataError, match=r"must hold exactly two classes. Got 3"):
        read_label_csv(_csv(tmp_path, pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 2]})))
    with pytest.raises(DataError, match=r"must be an existing CSV file"):
        read_label_csv(tmp_path / "missing.csv")
