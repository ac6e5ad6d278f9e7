"""The 16-dimensional synthetic example of Hooker et al.'s ROAR talk (signal, distractor, noise).

``x = a z / 10 + d eta + eps / 10`` and ``y = 1(z > 0)``, with ``z, eta ~ N(0, 1)``,
``eps ~ N(0, I_16)`` and ``a`` equal to 1 on the 4 informative dimensions 0-3 and 0 elsewhere. The
model is least squares on ``y``, thresholded at 1/2.

The distractor ``d`` decides whether the uninformative dimensions matter to the model:

* ``dense`` - ``d ~ N(0, I_16)``, drawn once per data set: every dimension carries the same
  ``eta``, so the uninformative dimensions are *suppressors* that the linear model needs to cancel
  ``eta`` on the informative ones. Removing them without retraining hurts; with retraining it does not.
* ``zero`` - no distractor: retraining makes no difference.
* ``one`` - ``d = 1`` everywhere: the informative dimensions cannot be de-noised without the others,
  so keeping only them (KAR) fails.

The Bayes accuracy with a dense distractor is ``1 - arctan(1/2) / pi = 0.852``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..registry import Registry

__all__ = ["Toy16", "make_toy16", "least_squares", "DISTRACTORS", "INFORMATIVE", "BAYES_ACCURACY_DENSE"]

INFORMATIVE = (0, 1, 2, 3)
DIMENSIONS = 16
BAYES_ACCURACY_DENSE = 1 - float(np.arctan(0.5)) / np.pi

DISTRACTORS: Registry[str] = Registry("distractor")
for _name, _text in (
    ("dense", "d ~ N(0, I): the uninformative dimensions are suppressors the model uses"),
    ("zero", "d = 0: no distractor, the uninformative dimensions are pure noise"),
    ("one", "d = 1: the distractor is collinear with the signal on the informative dimensions"),
):
    DISTRACTORS.register(_name, _text)


@dataclass(frozen=True, eq=False)
class Toy16:
    """Train and test splits (``X`` float32 of shape ``(n, 16)``, ``y`` in {0, 1}) and the vectors used."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    a: np.ndarray
    d: np.ndarray
    distractor: str

    @property
    def relevant(self) -> np.ndarray:
        """The informative dimensions as a boolean mask of shape ``(16,)``."""
        return self.a != 0


def make_toy16(n_train: int, n_test: int, distractor: str, seed: int) -> Toy16:
    """Draw the data; deterministic in ``seed``.

    Examples
    --------
    >>> t = make_toy16(100, 50, "dense", 0)
    >>> t.X_train.shape, sorted(np.flatnonzero(t.relevant))
    ((100, 16), [0, 1, 2, 3])
    """
    DISTRACTORS.get(distractor)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x16]))
    a = np.zeros(DIMENSIONS)
    a[list(INFORMATIVE)] = 1.0
    d = {"dense": rng.standard_normal(DIMENSIONS), "zero": np.zeros(DIMENSIONS), "one": np.ones(DIMENSIONS)}[distractor]

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        z = rng.standard_normal(n)
        eta = rng.standard_normal(n)
        eps = rng.standard_normal((n, DIMENSIONS))
        X = np.outer(z, a) / 10 + np.outer(eta, d) + eps / 10
        return X.astype(np.float32), (z > 0).astype(np.int64)

    X_train, y_train = draw(n_train)
    X_test, y_test = draw(n_test)
    return Toy16(X_train, y_train, X_test, y_test, a, d, distractor)


def least_squares(X: np.ndarray, y: np.ndarray) -> nn.Linear:
    """The least-squares fit of ``y`` on ``X`` with an intercept, as an ``nn.Linear(d, 1)``.

    Constant columns (removed features replaced by their mean) get weight 0 through the
    minimum-norm solution.
    """
    X64 = np.asarray(X, dtype=np.float64)
    y64 = np.asarray(y, dtype=np.float64)
    mean = X64.mean(axis=0)
    centred = X64 - mean
    gram = centred.T @ centred
    keep = np.diag(gram) > 1e-12 * max(float(np.diag(gram).max()), 1e-300)
    w = np.zeros(X64.shape[1])
    if keep.any():  # the normal equations on the non-constant columns: the minimum-norm solution
        w[keep] = np.linalg.solve(gram[np.ix_(keep, keep)], centred[:, keep].T @ (y64 - y64.mean()))
    b = float(y64.mean() - mean @ w)
    lin = nn.Linear(X.shape[1], 1)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(w, dtype=torch.float32)[None, :])
        lin.bias.fill_(b)
    return lin.eval()
