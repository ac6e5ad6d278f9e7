"""Imputers that fill removed units, for ROAD (Rong et al., ICML 2022, https://arxiv.org/abs/2202.00449).

* ``mean`` - the training mean of each feature (tabular) or channel (images, audio): the fixed value
  ROAR uses, whose mask shape can leak class information.
* ``linear`` - noisy linear imputation, modality-aware:

  - images: every removed pixel equals the weighted mean of its 8 neighbours (edge neighbours 1/6,
    diagonal 1/12, renormalised where neighbours fall outside the image); all removed pixels of an
    image are solved *jointly* as one sparse linear system, the same system for each channel; then
    noise of 1 % of the channel's value range is added (ROAD's 0.01 on images in [0, 1]);
  - audio ``(C, T)``: the one-dimensional analogue along time within each channel (weights 1/2 for
    t - 1 and t + 1); solved jointly its solution is linear interpolation between the nearest kept
    samples (constant beyond the last one), plus the same small noise. Channels are not coupled;
  - tabular: conditional (regression) imputation under a Gaussian fitted to the training data,
    ``E[x_S | x_K] = mu_S + Sigma_SK Sigma_KK^-1 (x_K - mu_K)``, plus noise of 1 % of each feature's
    standard deviation (features have no neighbours).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from ..registry import Registry
from .removal import apply_mask

__all__ = ["IMPUTERS", "ImputerSpec", "fit_imputer", "impute_image_linear", "impute_time_linear"]

NOISE = 0.01
# Neighbour offsets and weights of ROAD's noisy linear imputer.
_NEIGHBOURS = (
    (-1, 0, 1 / 6),
    (1, 0, 1 / 6),
    (0, -1, 1 / 6),
    (0, 1, 1 / 6),
    (-1, -1, 1 / 12),
    (-1, 1, 1 / 12),
    (1, -1, 1 / 12),
    (1, 1, 1 / 12),
)

Imputer = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def impute_image_linear(x: np.ndarray, removed: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """Noise-free linear imputation of one image ``x`` ``(C, H, W)`` at the pixels ``removed`` ``(H, W)``.

    Returns a new array. When every pixel is removed there is nothing to interpolate from, so
    ``fallback`` (per-channel values, default 0) is used.
    """
    C, H, W = x.shape
    idx = np.flatnonzero(removed)
    out = np.array(x, dtype=np.float64, copy=True)
    if len(idx) == 0:
        return out
    if len(idx) == H * W:
        out[:] = (np.zeros(C) if fallback is None else np.asarray(fallback)).reshape(C, 1, 1)
        return out
    position = np.full(H * W, -1)
    position[idx] = np.arange(len(idx))
    r, c = np.divmod(idx, W)
    flat = out.reshape(C, H * W)
    entries_i, entries_j, entries_w, parts = [], [], [], []
    total = np.zeros(len(idx))
    for dr, dc, w in _NEIGHBOURS:
        rr, cc = r + dr, c + dc
        inside = (rr >= 0) & (rr < H) & (cc >= 0) & (cc < W)
        total += w * inside
        parts.append((inside, rr * W + cc, w))
    rhs = np.zeros((len(idx), C))
    for inside, neighbour, w in parts:
        rows = np.flatnonzero(inside)
        nb = neighbour[inside]
        weight = w / total[rows]
        unknown = position[nb] >= 0
        entries_i.append(rows[unknown])
        entries_j.append(position[nb[unknown]])
        entries_w.append(-weight[unknown])
        np.add.at(rhs, rows[~unknown], weight[~unknown, None] * flat[:, nb[~unknown]].T)
    n = len(idx)
    A = sparse.coo_matrix(
        (
            np.concatenate([np.ones(n), *entries_w]),
            (np.concatenate([np.arange(n), *entries_i]), np.concatenate([np.arange(n), *entries_j])),
        ),
        shape=(n, n),
    ).tocsc()
    solution = splu(A).solve(rhs)
    flat[:, idx] = solution.T
    return out


def impute_time_linear(x: np.ndarray, removed: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """Noise-free 1-D linear imputation along time of one clip ``x`` ``(C, T)`` at ``removed`` ``(C, T)``.

    A channel with every step removed takes ``fallback[c]`` (default 0).
    """
    out = np.array(x, dtype=np.float64, copy=True)
    t = np.arange(x.shape[1])
    for ch in range(x.shape[0]):
        gone = removed[ch]
        if not gone.any():
            continue
        kept = ~gone
        if not kept.any():
            out[ch] = 0.0 if fallback is None else fallback[ch]
            continue
        out[ch, gone] = np.interp(t[gone], t[kept], out[ch, kept])
    return out


def _fit_mean(X_train: np.ndarray, modality: str) -> Imputer:
    axes = (0,) if modality == "tabular" else (0, *range(2, X_train.ndim))
    mean = X_train.mean(axis=axes, keepdims=True)[0]
    fill = np.broadcast_to(mean, X_train.shape[1:])

    def impute(X: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return apply_mask(X, mask, fill, modality)

    return impute


def _fit_linear_image(X_train: np.ndarray) -> Imputer:
    channel_mean = X_train.mean(axis=(0, 2, 3))
    span = X_train.max(axis=(0, 2, 3)) - X_train.min(axis=(0, 2, 3))

    def impute(X: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty_like(X)
        for i in range(len(X)):
            filled = impute_image_linear(X[i], mask[i], channel_mean)
            noise = rng.standard_normal(X[i].shape) * (NOISE * span).reshape(-1, 1, 1) * mask[i][None]
            out[i] = filled + noise
        return out

    return impute


def _fit_linear_time(X_train: np.ndarray) -> Imputer:
    channel_mean = X_train.mean(axis=(0, 2))
    span = X_train.max(axis=(0, 2)) - X_train.min(axis=(0, 2))

    def impute(X: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty_like(X)
        for i in range(len(X)):
            filled = impute_time_linear(X[i], mask[i], channel_mean)
            out[i] = filled + rng.standard_normal(X[i].shape) * (NOISE * span)[:, None] * mask[i]
        return out

    return impute


def _fit_conditional(X_train: np.ndarray) -> Imputer:
    X64 = np.asarray(X_train, dtype=np.float64)
    mu = X64.mean(axis=0)
    cov = np.cov(X64, rowvar=False).reshape(X64.shape[1], X64.shape[1])
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    ridge = 1e-6 * max(float(np.mean(np.diag(cov))), 1e-12)

    def impute(X: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.array(X, dtype=np.float64, copy=True)
        patterns, inverse = np.unique(mask.reshape(len(X), -1), axis=0, return_inverse=True)
        for p, pattern in enumerate(patterns):
            rows = np.flatnonzero(inverse.ravel() == p)
            S, K = np.flatnonzero(pattern), np.flatnonzero(~pattern)
            if len(S) == 0:
                continue
            if len(K) == 0:
                out[np.ix_(rows, S)] = mu[S]
            else:
                gain = np.linalg.solve(cov[np.ix_(K, K)] + ridge * np.eye(len(K)), cov[np.ix_(K, S)])
                out[np.ix_(rows, S)] = mu[S] + (out[np.ix_(rows, K)] - mu[K]) @ gain
            out[np.ix_(rows, S)] += rng.standard_normal((len(rows), len(S))) * NOISE * std[S]
        return out.astype(X.dtype)

    return impute


@dataclass(frozen=True)
class ImputerSpec:
    name: str
    display_name: str
    fit: Callable[[np.ndarray, str], Imputer]


_LINEAR_BY_MODALITY: dict[str, Callable[[np.ndarray], Imputer]] = {
    "image": _fit_linear_image,
    "audio": _fit_linear_time,
    "tabular": _fit_conditional,
}

IMPUTERS: Registry[ImputerSpec] = Registry("imputer")
for _i in (
    ImputerSpec("linear", "noisy linear (ROAD)", lambda X, modality: _LINEAR_BY_MODALITY[modality](X)),
    ImputerSpec("mean", "training mean", _fit_mean),
):
    IMPUTERS.register(_i.name, _i)


def fit_imputer(kind: str, X_train: np.ndarray, modality: str) -> Imputer:
    """An imputer ``impute(X, mask, rng)`` fitted on ``X_train``; ``mask`` marks removed units."""
    return IMPUTERS.get(kind).fit(X_train, modality)
