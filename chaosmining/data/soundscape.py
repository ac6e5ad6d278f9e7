"""A procedural rainforest soundscape: the offline stand-in for the paper's RFCx recordings.

The paper's structured background is a random second of a Rainforest Connection (RFCx) recording,
divided by the 99th percentile of its absolute value and clipped to [-1, 1]. Without that data set,
:func:`rainforest` layers what such recordings hold, each second independently:

* 1/f^beta ambience (beta 1-2), always, at a gain of 0.05-0.2;
* birds (probability 0.8): 1-5 calls - rising or falling sweeps and trills at 2-7 kHz, 1-3 repeats;
* insects (0.5): a 3-7 kHz carrier amplitude-modulated at 15-90 pulses per second;
* frogs (0.3): trains of short croaks at 250-1200 Hz;
* rain (0.4): Poisson-distributed drops, each a decaying high-passed click.

The normalisation is the paper's and is applied by the composer (:mod:`chaosmining.data.audio`) to
each drawn second, as upstream does with RFCx; see :func:`normalise_p99`.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from .speech import SAMPLE_RATE

__all__ = ["rainforest", "rainforest_second", "normalise_p99", "pink_noise"]


def normalise_p99(x: np.ndarray, q: float = 0.99) -> np.ndarray:
    """``clip(x / quantile(|x|, q), -1, 1)`` along the last axis (silent rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    k = int(np.ceil(q * x.shape[-1])) - 1
    scale = np.partition(np.abs(x), k, axis=-1)[..., k : k + 1]
    return np.clip(x / np.where(scale > 0, scale, 1.0), -1.0, 1.0)


def pink_noise(n: int, rng: np.random.Generator, beta: float = 1.0) -> np.ndarray:
    """Noise with a 1/f^beta power spectrum, unit standard deviation."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    f[0] = f[1]
    x = np.fft.irfft(spec / f ** (beta / 2), n)
    return x / (x.std() or 1.0)


def _chirp(n: int, f0: float, f1: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1] if n > 1 else 1))
    env = np.sin(np.pi * np.arange(n) / max(1, n - 1)) ** 2
    return np.sin(phase + rng.uniform(0, 2 * np.pi)) * env


def _bird(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    for _ in range(int(rng.integers(1, 6))):
        style = rng.integers(3)
        f0 = rng.uniform(2000, 7000)
        if style == 0:  # rising or falling sweep
            call = _chirp(int(rng.uniform(0.04, 0.2) * SAMPLE_RATE), f0, f0 * rng.uniform(0.6, 1.6), rng)
        elif style == 1:  # trill: a fast frequency wobble
            m = int(rng.uniform(0.1, 0.3) * SAMPLE_RATE)
            t = np.arange(m) / SAMPLE_RATE
            inst = f0 * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(20, 60) * t))
            call = np.sin(2 * np.pi * np.cumsum(inst) / SAMPLE_RATE) * np.hanning(m)
        else:  # down-chirp
            call = _chirp(int(rng.uniform(0.03, 0.1) * SAMPLE_RATE), f0, f0 * 0.5, rng)
        gap = int(len(call) * rng.uniform(1.2, 2.5))
        start = int(rng.integers(0, n))
        level = rng.uniform(0.3, 1.0)
        for r in range(int(rng.integers(1, 4))):
            s = start + r * gap
            if s >= n:
                break
            seg = call[: n - s]
            out[s : s + len(seg)] += level * seg
    return out


def _insects(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    carrier = np.sin(2 * np.pi * rng.uniform(3000, 7000) * t)
    pulses = (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(15, 90) * t)) ** 4
    return rng.uniform(0.1, 0.5) * carrier * pulses


def _frogs(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    f = rng.uniform(250, 1200)
    m = int(rng.uniform(0.02, 0.06) * SAMPLE_RATE)
    croak = np.sin(2 * np.pi * f * np.arange(m) / SAMPLE_RATE) * np.hanning(m) * np.sign(np.sin(np.linspace(0, 6, m)))
    period = int(rng.uniform(0.08, 0.3) * SAMPLE_RATE)
    for s in range(int(rng.integers(0, period)), n, period):
        seg = croak[: n - s]
        out[s : s + len(seg)] += rng.uniform(0.4, 1.0) * seg
    return out


def _rain(n: int, rng: np.random.Generator) -> np.ndarray:
    drops = np.zeros(n)
    k = rng.poisson(rng.uniform(20, 200) * n / SAMPLE_RATE)
    drops[rng.integers(0, n, k)] = rng.uniform(0.2, 1.0, k) * rng.choice([-1, 1], k)
    decay = np.exp(-np.arange(int(0.004 * SAMPLE_RATE)) / (0.0008 * SAMPLE_RATE))
    sos = signal.butter(2, 2000, btype="highpass", fs=SAMPLE_RATE, output="sos")
    return signal.sosfilt(sos, np.convolve(drops, decay)[:n]) * 3


_LAYERS = ((0.8, _bird), (0.5, _insects), (0.3, _frogs), (0.4, _rain))


def rainforest_second(rng: np.random.Generator, n: int = SAMPLE_RATE) -> np.ndarray:
    """One second (``n`` samples) of soundscape, not normalised, float32."""
    x = rng.uniform(0.05, 0.2) * pink_noise(n, rng, beta=rng.uniform(1.0, 2.0))
    for p, layer in _LAYERS:
        if rng.random() < p:
            x = x + layer(n, rng)
    return x.astype(np.float32)


def rainforest(seconds: int, rng: np.random.Generator) -> np.ndarray:
    """A recording of ``seconds`` independent soundscape seconds, shape ``(seconds * 16000,)``.

    Examples
    --------
    >>> rainforest(2, np.random.default_rng(0)).shape
    (32000,)
    """
    return np.concatenate([rainforest_second(rng) for _ in range(seconds)]) if seconds else np.zeros(0, np.float32)
