"""Symbolic functional data with noise features and label noise (paper section 3.1, appendix A.2).

Every feature is i.i.d. ``clip(0.33 * N(0, 1), -1, 1)`` (0.33 is a standard deviation, as in the
original code). The formula's columns come first (variable ``a`` is column 0), the ``noise_features``
irrelevant columns after them. Gaussian label noise of standard deviation ``label_noise`` is added to
the *training* target only; test metrics compare with the noise-free target.

Ground truths per relevant feature come from sympy (see :func:`ground_truth`):

* ``derivative``  - the partial derivative df/dx_i at x (Saliency);
* ``ablation``    - f(x) - f(x with x_i := baseline_i) (Feature Ablation);
* ``path_integral`` - the paper's equation 12: the Riemann sum over S steps of coordinate-wise
  differences along the straight path from the baseline to x (Integrated Gradients with S steps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import ConfigBase
from ..errors import DataError, ResourceError
from ..registry import Registry
from ..validation import check_float, check_int
from .formulas import Formula, get_formula

__all__ = [
    "SymbolicDataConfig",
    "SymbolicDataset",
    "make_symbolic_data",
    "ground_truth",
    "GROUND_TRUTHS",
    "memory_budget_bytes",
]

_OWNER = "SymbolicDataConfig"


def memory_budget_bytes() -> int:
    """Half of the physical memory: the most one experiment may plan to use."""
    try:
        import os

        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


@dataclass(frozen=True, kw_only=True)
class SymbolicDataConfig(ConfigBase):
    """How the data of one symbolic task are generated (paper defaults).

    Parameters
    ----------
    formula : paper formula ID ``"1"``..``"15"`` or an expression over ``a``..``j``.
    noise_features : irrelevant columns appended after the formula's columns.
    samples : total rows before the train/test split.
    label_noise : standard deviation of the Gaussian noise added to the training target.
    test_fraction : share of rows held out for testing (0.2 = the paper's 80/20 split).
    feature_scale : standard deviation of the features before clipping to [-1, 1].
    """

    formula: str = "1"
    noise_features: int = 100
    samples: int = 10_000
    label_noise: float = 0.01
    test_fraction: float = 0.2
    feature_scale: float = 0.33

    def __post_init__(self) -> None:
        formula = self.formula
        if isinstance(formula, int) and not isinstance(formula, bool):
            object.__setattr__(self, "formula", str(formula))
        get_formula(self.formula)  # raises FormulaError with the reason
        object.__setattr__(
            self, "noise_features", check_int(self.noise_features, "noise_features", owner=_OWNER, low=0, high=100_000)
        )
        object.__setattr__(
            self,
            "samples",
            check_int(
                self.samples,
                "samples",
                owner=_OWNER,
                low=10,
                high=100_000_000,
                hint="At least 10 rows are needed so that both the train and the test split are non-empty.",
            ),
        )
        object.__setattr__(
            self, "label_noise", check_float(self.label_noise, "label_noise", owner=_OWNER, low=0.0, high=100.0)
        )
        object.__setattr__(
            self,
            "test_fraction",
            check_float(
                self.test_fraction, "test_fraction", owner=_OWNER, low=0.0, high=1.0, low_open=True, high_open=True
            ),
        )
        object.__setattr__(
            self,
            "feature_scale",
            check_float(self.feature_scale, "feature_scale", owner=_OWNER, low=0.0, high=100.0, low_open=True),
        )
        n_test = int(round(self.samples * self.test_fraction))
        if n_test < 2 or self.samples - n_test < 2:
            raise DataError(
                f"The 'samples' parameter of {_OWNER} is too small for the split: {self.samples} rows with "
                f"test_fraction={self.test_fraction} leave {self.samples - n_test} training and {n_test} test rows; "
                "both need at least 2. Increase samples or change test_fraction."
            )
        needed = self.samples * self.n_features * 8 * 6  # float64 data, ground truths and float32 copies
        if needed > memory_budget_bytes():
            raise ResourceError(
                f"The requested data ({self.samples} samples x {self.n_features} features) would need about "
                f"{needed / 2**30:.1f} GiB, more than the {memory_budget_bytes() / 2**30:.1f} GiB this machine can "
                "give one experiment. Reduce 'samples' or 'noise_features'."
            )

    @property
    def formula_obj(self) -> Formula:
        return get_formula(self.formula)

    @property
    def n_features(self) -> int:
        return get_formula(self.formula).n_columns + self.noise_features

    def hash_payload(self) -> dict:
        d = super().hash_payload()
        d["formula"] = get_formula(self.formula).key  # canonical: "a+b" and "b + a" hash alike
        return d


@dataclass(frozen=True, eq=False)
class SymbolicDataset:
    """One generated task.

    ``X_*`` have shape ``(n, n_features)`` (float64); ``y_train`` is the noisy training target,
    ``y_train_clean`` and ``y_test`` are noise-free. ``relevant`` lists the ground-truth columns.
    """

    formula: Formula
    X_train: np.ndarray
    y_train: np.ndarray
    y_train_clean: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    config: SymbolicDataConfig
    seed: int

    @property
    def relevant(self) -> tuple[int, ...]:
        return self.formula.relevant

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def relevant_mask(self) -> np.ndarray:
        mask = np.zeros(self.n_features, dtype=bool)
        mask[list(self.relevant)] = True
        return mask

    def feature_names(self) -> list[str]:
        from .formulas import VARIABLES

        names = [VARIABLES[i] for i in range(self.formula.n_columns)]
        return names + [f"noise{i}" for i in range(self.n_features - len(names))]


def make_symbolic_data(config: SymbolicDataConfig, seed: int = 0) -> SymbolicDataset:
    """Generate the task described by ``config``; deterministic in ``seed``.

    Raises
    ------
    DataError
        If the formula is not finite on the generated features (for example ``log(a)`` for a <= 0).

    Examples
    --------
    >>> ds = make_symbolic_data(SymbolicDataConfig(formula="2", noise_features=3, samples=100), seed=0)
    >>> ds.X_train.shape, ds.relevant
    ((80, 4), (0,))
    """
    formula = config.formula_obj
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    n, d = config.samples, config.n_features
    X = np.clip(rng.standard_normal((n, d)) * config.feature_scale, -1.0, 1.0)
    y = formula(X)
    bad = ~np.isfinite(y)
    if bad.any():
        raise DataError(
            f"The formula {formula.text!r} is not finite on {int(bad.sum())} of {n} generated rows "
            f"(features lie in [-1, 1]). Change the formula, for example log(a**2+1) instead of log(a), "
            "or guard divisions away from zero."
        )
    n_test = int(round(n * config.test_fraction))
    n_train = n - n_test
    noise = rng.standard_normal(n_train) * config.label_noise
    return SymbolicDataset(
        formula=formula,
        X_train=X[:n_train],
        y_train=y[:n_train] + noise,
        y_train_clean=y[:n_train],
        X_test=X[n_train:],
        y_test=y[n_train:],
        config=config,
        seed=seed,
    )


# --- ground truths -----------------------------------------------------------------------------

GroundTruthFn = Callable[..., np.ndarray]
GROUND_TRUTHS: Registry[GroundTruthFn] = Registry("ground truth")


def _pad(formula: Formula, X: np.ndarray, cols: np.ndarray) -> np.ndarray:
    out = np.zeros((X.shape[0], X.shape[1]))
    out[:, : formula.n_columns] = cols
    return out


@GROUND_TRUTHS.register("derivative")
def _gt_derivative(formula: Formula, X: np.ndarray, **_: object) -> np.ndarray:
    return _pad(formula, X, formula.gradient(X))


@GROUND_TRUTHS.register("ablation")
def _gt_ablation(formula: Formula, X: np.ndarray, baseline: float = 0.0, **_: object) -> np.ndarray:
    fx = formula(X)
    cols = np.zeros((X.shape[0], formula.n_columns))
    for i in formula.relevant:
        Xb = X.copy()
        Xb[:, i] = baseline
        cols[:, i] = fx - formula(Xb)
    return _pad(formula, X, cols)


@GROUND_TRUTHS.register("path_integral")
def _gt_path_integral(
    formula: Formula, X: np.ndarray, steps: int = 20, baseline: float = 0.0, **_: object
) -> np.ndarray:
    """Paper eq. 12: sum_s f(x_s) - f(x_s with x_i := x_{s-1,i}), x_s = b + s/S (x - b)."""
    X = np.asarray(X, dtype=np.float64)
    base = np.full_like(X, baseline)
    cols = np.zeros((X.shape[0], formula.n_columns))
    prev = base
    for s in range(1, steps + 1):
        cur = base + (s / steps) * (X - base)
        f_cur = formula(cur)
        for i in formula.relevant:
            back = cur.copy()
            back[:, i] = prev[:, i]
            cols[:, i] += f_cur - formula(back)
        prev = cur
    return _pad(formula, X, cols)


def ground_truth(kind: str, formula: Formula, X: np.ndarray, **params: object) -> np.ndarray:
    """Ground-truth attribution of ``kind`` for every row of ``X``; shape ``(n, n_features)``.

    Columns that are not relevant are zero.
    """
    return GROUND_TRUTHS.get(kind)(formula, np.asarray(X, dtype=np.float64), **params)
