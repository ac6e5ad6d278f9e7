"""The log-mel view (librosa) puts a tone in the mel band centred nearest its frequency."""

from __future__ import annotations

import numpy as np

from chaosmining.viz import log_mel_db


def test_a_1khz_tone_peaks_in_the_mel_band_nearest_1khz():
    t = np.arange(16_000) / 16_000
    centres, times, db = log_mel_db(0.5 * np.sin(2 * np.pi * 1000 * t), n_mels=64)
    assert db.shape == (64, len(times)) and len(centres) == 64 and np.all(np.diff(centres) > 0)
    assert db.max() == 0.0 and db.min() >= -80.0  # dB relative to the peak, floored 80 dB below it
    peak = int(np.argmax(db.mean(axis=1)))
    assert peak == int(np.argmin(np.abs(centres - 1000)))
    assert abs(times[1] - times[0] - 128 / 16_000) < 1e-12
