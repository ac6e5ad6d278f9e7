"""Offline spoken command words: espeak-ng in process, with a numpy/scipy formant fallback.

The paper's foreground is a Speech Commands v0.02 word (35 classes) zero-padded to 1 s at 16 kHz.
Nothing here downloads anything; two engines make words on this machine:

* ``espeak`` - espeak-ng, the library that the PyPI package ``espeakng-loader`` ships, driven through
  ``ctypes`` (about 1.4 ms per word on an idle core). Every word is spoken by a "speaker": one of 8
  English accents with one of about 100 voice variants, at a random rate (130-230 words per minute),
  pitch and pitch range. The output (22,050 Hz) is resampled to 16 kHz, trimmed of silence and placed
  at a random onset. Speakers are split between train and test by a hash of their name, as Speech
  Commands splits its speakers, so test words come from voices the model never heard.
* ``formant`` - when no speech engine can be loaded: 35 pseudo-words, each a fixed sequence of
  consonant-vowel syllables, synthesised with a sawtooth glottal source through three formant
  resonators (Peterson & Barney vowel formants) and noise bands for consonants, with random pitch,
  vocal-tract length, rate, jitter and level per utterance. Class-conditional and speech-like, not
  English.

:func:`synthesize_words` returns a :class:`SpeechClips` of shape ``(n, 16000)``; the class index of a
word is its position in the sorted tuple :data:`WORDS`.

References
----------
Warden, *Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition*, arXiv:1804.03209.
Peterson & Barney, *Control Methods Used in a Study of the Vowels*, JASA 24 (1952).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..registry import Registry

__all__ = [
    "SAMPLE_RATE",
    "CLIP_SAMPLES",
    "WORDS",
    "CORE_WORDS",
    "SpeechClips",
    "EngineSpec",
    "ENGINES",
    "espeak_status",
    "resolve_engine",
    "synthesize_words",
    "place_in_clip",
    "formant_word",
    "espeak_word",
    "speaker_split",
]

SAMPLE_RATE = 16_000
CLIP_SAMPLES = 16_000

# The 35 Speech Commands v0.02 words, sorted: a word's class index is its position here.
WORDS: tuple[str, ...] = tuple(
    sorted(
        "backward bed bird cat dog down eight five follow forward four go happy house learn left marvin nine no off "
        "on one right seven sheila six stop three tree two up visual wow yes zero".split()
    )
)
# The ten command words of the Speech Commands keyword-spotting task.
CORE_WORDS: tuple[str, ...] = tuple(sorted("yes no up down left right on off stop go".split()))


@dataclass
class SpeechClips:
    """Words as 1-s clips: ``audio`` ``(n, 16000)`` float32 in [-1, 1], ``labels`` ``(n,)`` indices into
    ``words``, the ``speakers`` that said them and ``notes`` for the user (fallbacks, crops)."""

    audio: np.ndarray
    labels: np.ndarray
    words: tuple[str, ...]
    speakers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def place_in_clip(wave: np.ndarray, onset: float | None = None, length: int = CLIP_SAMPLES) -> tuple[np.ndarray, bool]:
    """Put ``wave`` into a zero clip of ``length`` samples; return the clip and whether it was cropped.

    ``onset`` in [0, 1) places the word at that fraction of the free room; ``None`` starts it at 0
    (the paper zero-pads at the end). Longer waves keep their centre ``length`` samples.
    """
    out = np.zeros(length, dtype=np.float32)
    n = len(wave)
    if n > length:
        start = (n - length) // 2
        out[:] = wave[start : start + length]
        return out, True
    start = 0 if onset is None else int(onset * (length - n + 1))
    out[start : start + n] = wave
    return out, False


def _trim(wave: np.ndarray, rel: float = 0.02, margin: int = 160) -> np.ndarray:
    """Cut leading and trailing samples quieter than ``rel`` x peak, keeping ``margin`` samples."""
    peak = float(np.max(np.abs(wave))) if len(wave) else 0.0
    if peak == 0.0:
        return wave[:0]
    loud = np.flatnonzero(np.abs(wave) > rel * peak)
    return wave[max(0, loud[0] - margin) : loud[-1] + 1 + margin]


# --- espeak-ng through espeakng-loader ----------------------------------------------------------

ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_ESPEAK_LOCK = threading.RLock()


class _Espeak:
    """The process-wide espeak-ng library (its state is global, so every call holds a lock)."""

    RATE, VOLUME, PITCH, RANGE = 1, 2, 3, 4

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_path = espeakng_loader.get_data_path()
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        # AUDIO_OUTPUT_SYNCHRONOUS (2): samples come back through the callback before Synth returns.
        self.rate = int(self.lib.espeak_Initialize(2, 0, data_path.encode(), 0))
        if self.rate <= 0:
            raise OSError(f"espeak_Initialize failed ({self.rate})")
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.variants = tuple(sorted(p.name for p in (Path(data_path) / "voices" / "!v").iterdir() if p.is_file()))

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), n: int, events: ctypes.c_void_p) -> int:  # noqa: ARG002
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def say(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> np.ndarray:
        """int16 samples at :attr:`rate` Hz."""
        with _ESPEAK_LOCK:
            self._chunks = []
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ConfigError(f"espeak-ng has no voice {voice!r}.")
            self.lib.espeak_SetParameter(self.RATE, int(rate), 0)
            self.lib.espeak_SetParameter(self.PITCH, int(pitch), 0)
            self.lib.espeak_SetParameter(self.RANGE, int(pitch_range), 0)
            self.lib.espeak_SetParameter(self.VOLUME, 100, 0)
            raw = text.encode()
            self.lib.espeak_Synth(raw, len(raw) + 1, 0, 1, 0, 0, None, None)  # POS_CHARACTER, espeakCHARS_AUTO
            self.lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


_ESPEAK: _Espeak | None = None
_ESPEAK_ERROR: str | None = None


def _espeak() -> _Espeak | None:
    global _ESPEAK, _ESPEAK_ERROR
    if _ESPEAK is None and _ESPEAK_ERROR is None:
        with _ESPEAK_LOCK:
            if _ESPEAK is None and _ESPEAK_ERROR is None:
                try:
                    _ESPEAK = _Espeak()
                except (ImportError, OSError, AttributeError, RuntimeError) as exc:
                    _ESPEAK_ERROR = f"{type(exc).__name__}: {exc}"
    return _ESPEAK


def espeak_status() -> tuple[bool, str]:
    """Whether espeak-ng can be used here, and why not."""
    engine = _espeak()
    if engine is not None:
        return True, f"espeak-ng from espeakng-loader, {len(engine.variants)} voice variants x {len(ACCENTS)} accents"
    return False, f"espeak-ng could not be loaded ({_ESPEAK_ERROR}); install espeakng-loader (pip) to use it"


def speaker_split(speaker: str, test_share: int = 10) -> str:
    """'test' for about 1 in ``test_share`` speakers (by a stable hash of the name), else 'train'."""
    digest = int(hashlib.sha1(speaker.encode()).hexdigest()[:8], 16)
    return "test" if digest % test_share == 0 else "train"


def _espeak_speakers(split: str) -> list[str]:
    engine = _espeak()
    assert engine is not None
    speakers = [f"{a}+{v}" for a in ACCENTS for v in engine.variants]
    return [s for s in speakers if speaker_split(s) == split]


def espeak_word(word: str, speaker: str, rate: int, pitch: int, pitch_range: int, noise_seed: int = 0) -> np.ndarray:
    """One utterance of ``word`` by ``speaker`` ('accent+variant'), float32 at 16 kHz, trimmed.

    espeak-ng draws from its own and libc's random generators for some voices (breath, jitter); both
    are seeded with ``noise_seed`` first. It also carries a little state from one utterance to the
    next, so the same sequence of calls in a fresh process gives the same waves: that is how
    :func:`synthesize_words` runs it.
    """
    engine = _espeak()
    if engine is None:
        raise ConfigError(espeak_status()[1])
    with _ESPEAK_LOCK:
        engine.libc.srand(noise_seed)
        engine.lib.espeak_ng_SetRandSeed(noise_seed)
        raw = engine.say(word, speaker, rate, pitch, pitch_range)
    g = np.gcd(SAMPLE_RATE, engine.rate)
    wave = _signal().resample_poly(raw.astype(np.float32) / 32768.0, SAMPLE_RATE // g, engine.rate // g)
    return _trim(wave.astype(np.float32))


# --- formant pseudo-words (no speech engine needed) ----------------------------------------------

# Peterson & Barney (1952) average adult male F1, F2, F3 in Hz.
VOWELS: dict[str, tuple[float, float, float]] = {
    "iy": (270, 2290, 3010),
    "ih": (390, 1990, 2550),
    "eh": (530, 1840, 2480),
    "ae": (660, 1720, 2410),
    "ah": (520, 1190, 2390),
    "aa": (730, 1090, 2440),
    "ao": (570, 840, 2410),
    "uh": (440, 1020, 2240),
    "uw": (300, 870, 2240),
    "er": (490, 1350, 1690),
}
# kind, then (low, high) noise band or formants for voiced consonants, relative level.
CONSONANTS: dict[str, tuple[str, tuple[float, ...], float]] = {
    "s": ("fricative", (4000, 7500), 0.35),
    "sh": ("fricative", (2000, 5000), 0.4),
    "f": ("fricative", (1200, 7000), 0.15),
    "p": ("burst", (500, 1500), 0.5),
    "t": ("burst", (3000, 6000), 0.5),
    "k": ("burst", (1500, 3000), 0.5),
    "m": ("voiced", (250, 1100, 2500), 0.3),
    "n": ("voiced", (250, 1700, 2600), 0.3),
    "l": ("voiced", (360, 1300, 2700), 0.6),
}
_FORMANT_TABLE_SEED = 20_240_611  # fixed: a class's pseudo-word never depends on the user's seed


def _formant_table(n_classes: int) -> list[tuple[tuple[str | None, str], ...]]:
    """One distinct syllable sequence per class: ((consonant or None, vowel), ..., (coda, ''))."""
    rng = np.random.default_rng(_FORMANT_TABLE_SEED)
    cons, vows = list(CONSONANTS), list(VOWELS)
    seen: set[tuple] = set()
    table: list[tuple[tuple[str | None, str], ...]] = []
    while len(table) < n_classes:
        sylls: list[tuple[str | None, str]] = []
        for _ in range(int(rng.integers(1, 4))):
            c = cons[int(rng.integers(len(cons)))] if rng.random() < 0.8 else None
            sylls.append((c, vows[int(rng.integers(len(vows)))]))
        if rng.random() < 0.5:
            sylls.append((cons[int(rng.integers(len(cons)))], ""))
        key = tuple(sylls)
        if key not in seen:
            seen.add(key)
            table.append(key)
    return table


def _signal():  # noqa: ANN202 - scipy.signal, imported on first use
    from scipy import signal

    return signal


def _resonators(x: np.ndarray, formants: Sequence[float], bandwidths: Sequence[float]) -> np.ndarray:
    for f, bw in zip(formants, bandwidths):
        f = min(f, 0.45 * SAMPLE_RATE)
        r = np.exp(-np.pi * bw / SAMPLE_RATE)
        c = 2 * r * np.cos(2 * np.pi * f / SAMPLE_RATE)
        x = _signal().lfilter([1 - c + r * r], [1, -c, r * r], x)
    return x


def _band_noise(n: int, band: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    sos = _signal().butter(2, [band[0], min(band[1], 7800)], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return _signal().sosfilt(sos, rng.standard_normal(n))


def _fade(n: int, ramp: int) -> np.ndarray:
    env = np.ones(n)
    ramp = max(1, min(ramp, n // 2))
    w = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
    env[:ramp] *= w
    env[n - ramp :] *= w[::-1]
    return env


def formant_word(label: int, rng: np.random.Generator, n_classes: int = 35) -> tuple[np.ndarray, dict]:
    """One utterance of pseudo-word ``label`` as float32 at 16 kHz (trimmed, peak 1)."""
    sylls = _formant_table(n_classes)[label]
    f0 = rng.uniform(85, 260)
    scale = rng.uniform(0.85, 1.2)
    rate = rng.uniform(0.75, 1.3)
    drift = rng.uniform(-0.15, 0.15)
    bws = (60.0, 90.0, 120.0)
    segments: list[np.ndarray] = []
    for i, (c, v) in enumerate(sylls):
        f0_here = f0 * (1 + rng.uniform(-0.1, 0.1)) * (1 + drift * i / max(1, len(sylls) - 1))
        if c is not None:
            kind, spec, level = CONSONANTS[c]
            n = int(SAMPLE_RATE * rng.uniform(0.06, 0.09) / rate)
            if kind == "fricative":
                seg = _band_noise(n, spec, rng) * level
            elif kind == "burst":
                nb = max(16, n // 4)
                seg = np.concatenate([np.zeros(n - nb), _band_noise(nb, spec, rng) * level * 2])
            else:
                seg = _voiced(n, f0_here, [f * scale for f in spec], bws, rng) * level
            segments.append(seg * _fade(len(seg), 80))
        if v:
            n = int(SAMPLE_RATE * rng.uniform(0.12, 0.18) / rate)
            formants = [f * scale * (1 + rng.normal(0, 0.03)) for f in VOWELS[v]]
            seg = _voiced(n, f0_here, formants, bws, rng)
            segments.append(seg * _fade(len(seg), 160))
    wave = np.concatenate(segments)
    peak = float(np.max(np.abs(wave))) or 1.0
    wave = _trim((wave / peak).astype(np.float32))
    return wave, {"f0": round(f0, 1), "tract_scale": round(scale, 3), "rate": round(rate, 3)}


def _voiced(n: int, f0: float, formants: Sequence[float], bws: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Sawtooth glottal pulses with a slow f0 wobble, a spectral tilt and three formant resonators."""
    t = np.arange(n) / SAMPLE_RATE
    inst = f0 * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    phase = np.cumsum(inst) / SAMPLE_RATE
    src = 2 * (phase % 1.0) - 1
    src = _signal().lfilter([1.0], [1.0, -0.9], src)  # -6 dB/octave tilt
    out = _resonators(src, formants, bws)
    return out / (np.max(np.abs(out)) or 1.0)


# --- the engine registry -------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineSpec:
    """A speech engine.

    ``recipe(rng)`` draws the engine's random parameters of one utterance (in the calling process, so
    that the data depend only on the seed); ``render(word, class_index, speaker, recipe)`` makes the
    trimmed wave. ``isolated`` engines render in a fresh worker process: espeak-ng keeps global state.
    """

    name: str
    display_name: str
    description: str
    available: Callable[[], tuple[bool, str]]
    speakers: Callable[[str], list[str]]
    recipe: Callable[[np.random.Generator], dict]
    render: Callable[[str, int, str, dict], np.ndarray]
    isolated: bool = False


ENGINES: Registry[EngineSpec] = Registry("speech engine")
ENGINES.register(
    "espeak",
    EngineSpec(
        "espeak",
        "espeak-ng (real English words)",
        "The 35 Speech Commands words spoken by espeak-ng with many accents, voices, rates and pitches.",
        espeak_status,
        _espeak_speakers,
        lambda rng: {
            "rate": int(rng.integers(130, 231)),
            "pitch": int(rng.integers(20, 81)),
            "pitch_range": int(rng.integers(20, 81)),
            "noise_seed": int(rng.integers(1, 2**31 - 1)),
        },
        lambda word, label, speaker, r: espeak_word(word, speaker, **r),
        isolated=True,
    ),
)
ENGINES.register(
    "formant",
    EngineSpec(
        "formant",
        "Formant pseudo-words (no speech engine)",
        "35 speech-like pseudo-words made with numpy/scipy; used when espeak-ng is not available.",
        lambda: (True, "numpy/scipy formant synthesiser"),
        lambda split: [f"formant-{split}"],
        lambda rng: {"seed": int(rng.integers(0, 2**63 - 1))},
        lambda word, label, speaker, r: formant_word(label, np.random.default_rng(r["seed"]))[0],
    ),
)


def resolve_engine(requested: str) -> tuple[str, str | None]:
    """The engine that will run for ``requested``, and a note when it had to fall back."""
    spec = ENGINES.get(requested)
    ok, why = spec.available()
    if ok:
        return requested, None
    return "formant", f"The speech engine {requested!r} is not available here ({why}); using formant pseudo-words."


_CHUNK = 1024


def _render_items(engine: str, items: list[tuple]) -> tuple[np.ndarray, int]:
    """Render ``(word, class_index, speaker, recipe, gain, onset_u)`` items into 1-s clips (float32)."""
    spec = ENGINES.get(engine)
    out = np.zeros((len(items), CLIP_SAMPLES), dtype=np.float32)
    cropped = 0
    for i, (word, label, speaker, recipe, gain, onset_u) in enumerate(items):
        wave = spec.render(word, label, speaker, recipe)
        out[i], was_cropped = place_in_clip(wave * (gain / (float(np.max(np.abs(wave))) or 1.0)), onset_u)
        cropped += was_cropped
    return out, cropped


# The worker imports this module without the chaosmining.data package's __init__ (which loads sympy).
_WORKER = (
    "import sys, types, chaosmining, pathlib; "
    "pkg = types.ModuleType('chaosmining.data'); "
    "pkg.__path__ = [str(pathlib.Path(chaosmining.__file__).parent / 'data')]; "
    "sys.modules['chaosmining.data'] = pkg; "
    "from chaosmining.data.speech import _serve; _serve()"
)


@contextlib.contextmanager
def _worker_renders(engine: str) -> Iterator[Callable[[list[tuple]], tuple[np.ndarray, int]]]:
    """A fresh worker process that renders chunks in the order they are sent.

    The worker is a plain ``python -c`` subprocess (not multiprocessing, which would re-import the
    caller's main script); chunks go in and clips come back as pickles over its stdin and stdout.
    """
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )

    def render(chunk: list[tuple]) -> tuple[np.ndarray, int]:
        try:
            pickle.dump((engine, chunk), proc.stdin)
            proc.stdin.flush()
            return pickle.load(proc.stdout)
        except (EOFError, BrokenPipeError, pickle.UnpicklingError):
            proc.wait(5)
            raise DataError(
                f"The speech worker ({engine}) stopped with exit status {proc.returncode}. Choose the 'formant' "
                "source to synthesise without it."
            ) from None

    try:
        yield render
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve() -> None:
    """Worker loop: read ``(engine, items)`` pickles from stdin until EOF, write results to stdout."""
    data_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything the C library prints goes to stderr, not into the data pipe
    data_in = sys.stdin.buffer
    while True:
        try:
            engine, items = pickle.load(data_in)
        except EOFError:
            break
        pickle.dump(_render_items(engine, items), data_out, protocol=pickle.HIGHEST_PROTOCOL)
        data_out.flush()


def synthesize_words(
    words: Sequence[str],
    per_class: int,
    *,
    engine: str = "espeak",
    split: str = "train",
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> SpeechClips:
    """``per_class`` utterances of every word in ``words`` (sorted order = class index).

    Each utterance gets a random peak level in [0.3, 0.9] and a random onset inside the 1-s clip
    (words longer than 1 s keep their centre second, and a note says how many). ``split`` picks the
    speakers ('train' and 'test' voices are disjoint for espeak) and, with ``seed``, the random
    stream: the same call gives the same clips. espeak-ng runs in a fresh worker process for that
    reason (and so that a crash in the C library cannot take the app down).

    Returns
    -------
    SpeechClips with ``audio`` of shape ``(len(words) * per_class, 16000)``, class-major order.
    """
    words = tuple(words)
    if list(words) != sorted(set(words)) or not words:
        raise ConfigError(
            f"The 'words' parameter of synthesize_words must be sorted, unique and not empty. Got {words!r} instead."
        )
    used, note = resolve_engine(engine)
    spec = ENGINES.get(used)
    speakers = spec.speakers(split)
    rng = np.random.default_rng([seed, {"train": 0, "test": 1}.get(split, 2), 104729])
    labels = np.repeat(np.arange(len(words)), per_class)
    index = {w: i for i, w in enumerate(WORDS if set(words) <= set(WORDS) else words)}
    items = []
    who = []
    for label in labels:
        speaker = speakers[int(rng.integers(len(speakers)))]
        items.append(
            (words[label], index[words[label]], speaker, spec.recipe(rng), rng.uniform(0.3, 0.9), rng.random())
        )
        who.append(speaker)
    chunks = [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    parts: list[np.ndarray] = []
    cropped = 0
    renders = _worker_renders(used) if spec.isolated else contextlib.nullcontext(partial(_render_items, used))
    with renders as render:
        for chunk in chunks:
            audio, c = render(chunk)
            parts.append(audio)
            cropped += c
            if progress is not None:
                progress(sum(len(p) for p in parts), len(items))
    audio = np.concatenate(parts) if parts else np.zeros((0, CLIP_SAMPLES), dtype=np.float32)
    notes = [note] if note else []
    if cropped:
        notes.append(
            f"{cropped} of {len(items)} synthesised words were longer than 1 s and were cropped to their centre second."
        )
    return SpeechClips(audio, labels.astype(np.int64), words, who, notes)
