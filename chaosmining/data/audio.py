"""Multi-channel audio with one speech channel among background channels (paper 3.3, appendix A.4).

Every sample is ``channels`` x 16,000 samples (1 s at 16 kHz). **The signal lives in one channel**:
the speech channel holds a spoken command word (zero elsewhere in time, as a padded Speech Commands
clip), every other channel holds background only. The speech channel is channel 0 (``position=
"fixed"``) or uniform over the channels (``"random"``); it is recorded per sample in
:attr:`AudioSplit.positions`.

Backgrounds, exactly as the paper builds them:

* ``random``: i.i.d. ``clip(N(0, 0.25^2), -1, 1)`` samples in every background channel;
* ``structured``: for every background channel a random 1-s window of a random recording, divided by
  the 99th percentile of its absolute value and clipped to [-1, 1]. The recordings are the
  procedural rainforest of :mod:`chaosmining.data.soundscape`, or the user's RFCx FLAC files.

Speech comes from :mod:`chaosmining.data.speech` (espeak-ng, or formant pseudo-words), or from the
user's Speech Commands v0.02 folder. The data set as the authors published it (``<SETTING>/<split>/
metadata.csv`` with 10-channel float64 WAVs) is read as it is. Nothing is downloaded; files are
read with ``soundfile`` (torchaudio 2.11 cannot decode without torchcodec and FFmpeg).

Made pools (speech clips, background recordings) are cached as arrays, so retraining a model never
re-synthesises; samples are composed on the fly, deterministically from the seed and their index.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy import signal

from ..cache import Cache
from ..config import ConfigBase, stable_hash
from ..errors import ConfigError, DataError
from ..registry import Registry
from ..validation import check_bool, check_choice, check_float, check_int, param_error
from .soundscape import rainforest
from .speech import CLIP_SAMPLES, CORE_WORDS, ENGINES, SAMPLE_RATE, WORDS, SpeechClips, place_in_clip, resolve_engine
from .speech import synthesize_words as _synthesize_words

__all__ = [
    "AudioDataConfig",
    "AudioData",
    "AudioSplit",
    "ComposedSplit",
    "PublishedSplit",
    "BackgroundPool",
    "SOURCES",
    "WORD_SETS",
    "RECOMMENDED_PER_CLASS",
    "compose",
    "random_background",
    "load_audio_data",
    "load_split",
    "load_speech_commands",
    "load_recordings",
    "find_speech_commands",
    "find_published",
    "setting_code",
    "read_wav",
    "wav_bytes",
    "SPEECH_KIND",
    "BACKGROUND_KIND",
]

SPEECH_KIND = "audio-speech"
BACKGROUND_KIND = "audio-background"
# data-sources.md 3.5: the 10-channel task stayed near chance with 60 clips per class, learned with 170.
RECOMMENDED_PER_CLASS = 170
WORD_SETS: dict[str, tuple[str, ...]] = {"all": WORDS, "core": CORE_WORDS}
_HOP = 1600  # structured windows start on a 0.1-s grid, so their normalisation is computed once
_DATA_VERSION = 1
_OWNER = "AudioDataConfig"


@dataclass(frozen=True)
class SourceSpec:
    """Where the speech comes from; ``root`` says whether it needs ``data_root``."""

    name: str
    display_name: str
    description: str
    needs_root: bool


SOURCES: Registry[SourceSpec] = Registry("audio source")
for _s in (
    SourceSpec("espeak", "espeak-ng words (offline)", "The 35 Speech Commands words spoken by espeak-ng.", False),
    SourceSpec("formant", "Formant pseudo-words (offline)", "35 pseudo-words from a numpy/scipy synthesiser.", False),
    SourceSpec(
        "speech_commands",
        "Speech Commands v0.02 (local folder)",
        "Real words from a Speech Commands v0.02 folder on this machine.",
        True,
    ),
    SourceSpec(
        "published",
        "ChaosMining audio as published (local folder)",
        "The authors' composed data set: <SETTING>/<split>/metadata.csv and 10-channel WAVs.",
        True,
    ),
):
    SOURCES.register(_s.name, _s)


def setting_code(background: str, position: str) -> str:
    """The published folder name: RBFP, RBRP, SBFP or SBRP."""
    return {"random": "RB", "structured": "SB"}[background] + {"fixed": "FP", "random": "RP"}[position]


@dataclass(frozen=True, kw_only=True)
class AudioDataConfig(ConfigBase):
    """How one audio data set is made.

    Parameters
    ----------
    background : ``"random"`` (Gaussian, std ``noise_std``, clipped) or ``"structured"`` (recordings).
    position : ``"fixed"`` (speech in channel 0) or ``"random"`` (uniform channel per sample).
    channels : channels per sample, the speech channel included (the paper: 10).
    source : ``"espeak"``, ``"formant"``, ``"speech_commands"`` or ``"published"`` (see :data:`SOURCES`).
    structured_source : ``"soundscape"`` (procedural) or ``"rfcx"`` (FLAC files in ``rfcx_root``).
    words : ``"all"`` (the 35 words) or ``"core"`` (the 10 command words).
    train_per_class, test_per_class : clips per word; 0 takes every clip a local data set has.
    noise_std : standard deviation of the random background before clipping (the paper: 0.25).
    fresh_backgrounds : draw new background channels for every training clip in every epoch (the words
        and their channels stay). The paper's data set is fixed; with a few thousand clips instead of its
        84,843, a fixed background can be memorised, and fresh ones stand in for the missing data.
    background_recordings, background_seconds : how many recordings the structured pool holds per
        split and how long each is (RFCx: the most files and seconds read per file).
    """

    background: str = "random"
    position: str = "fixed"
    channels: int = 10
    source: str = "espeak"
    structured_source: str = "soundscape"
    words: str = "all"
    train_per_class: int = 170
    test_per_class: int = 20
    noise_std: float = 0.25
    fresh_backgrounds: bool = False
    background_recordings: int = 96
    background_seconds: int = 8
    data_root: str = ""
    rfcx_root: str = ""

    def __post_init__(self) -> None:
        check_choice(self.background, "background", owner=_OWNER, choices=("random", "structured"))
        check_choice(self.position, "position", owner=_OWNER, choices=("fixed", "random"))
        object.__setattr__(self, "channels", check_int(self.channels, "channels", owner=_OWNER, low=2, high=64))
        check_choice(self.source, "source", owner=_OWNER, choices=SOURCES.names())
        check_choice(self.structured_source, "structured_source", owner=_OWNER, choices=("soundscape", "rfcx"))
        check_choice(self.words, "words", owner=_OWNER, choices=list(WORD_SETS))
        for name in ("train_per_class", "test_per_class"):
            object.__setattr__(self, name, check_int(getattr(self, name), name, owner=_OWNER, low=0, high=100_000))
        if self.source in ("espeak", "formant"):
            for name in ("train_per_class", "test_per_class"):
                if getattr(self, name) == 0:
                    raise param_error(name, _OWNER, "an int in [1, 100000] for synthesised words", 0)
        check_bool(self.fresh_backgrounds, "fresh_backgrounds", owner=_OWNER)
        object.__setattr__(
            self, "noise_std", check_float(self.noise_std, "noise_std", owner=_OWNER, low=0.0, high=10.0, low_open=True)
        )
        object.__setattr__(
            self,
            "background_recordings",
            check_int(self.background_recordings, "background_recordings", owner=_OWNER, low=1, high=100_000),
        )
        object.__setattr__(
            self,
            "background_seconds",
            check_int(self.background_seconds, "background_seconds", owner=_OWNER, low=1, high=600),
        )
        for name in ("data_root", "rfcx_root"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise param_error(name, _OWNER, "a folder path (str)", value)
            object.__setattr__(self, name, value.strip())
        if SOURCES.get(self.source).needs_root:
            if not self.data_root:
                raise param_error("data_root", _OWNER, f"a local folder for source {self.source!r}", self.data_root)
            if not Path(self.data_root).expanduser().is_dir():
                raise param_error("data_root", _OWNER, "an existing folder", self.data_root)
        if self.background == "structured" and self.structured_source == "rfcx" and self.source != "published":
            if not self.rfcx_root or not Path(self.rfcx_root).expanduser().is_dir():
                raise param_error(
                    "rfcx_root",
                    _OWNER,
                    "an existing folder of RFCx .flac files for structured_source='rfcx'",
                    self.rfcx_root,
                )

    @property
    def word_list(self) -> tuple[str, ...]:
        return WORD_SETS[self.words]

    @property
    def setting(self) -> str:
        return setting_code(self.background, self.position)

    def resolved_source(self) -> str:
        """The source that will actually run: an unavailable speech engine falls back to formants."""
        if self.source in ENGINES:
            return resolve_engine(self.source)[0]
        return self.source

    def hash_payload(self) -> dict[str, Any]:
        # What the data depend on: the engine that really runs, absolute paths, nothing unused.
        out = super().hash_payload()
        out["source"] = self.resolved_source()
        for name in ("data_root", "rfcx_root"):
            out[name] = str(Path(out[name]).expanduser().resolve()) if out[name] else ""
        if self.background == "random" or self.source == "published":
            for name in ("structured_source", "background_recordings", "background_seconds", "rfcx_root"):
                out.pop(name)
        if self.background == "structured" or self.source == "published":
            out.pop("noise_std")
        if self.source == "published":
            out.pop("fresh_backgrounds")
        return out


# --- composition -----------------------------------------------------------------------------------


def compose(speech: np.ndarray, positions: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Stack ``speech`` ``(b, T)`` into channel ``positions[i]`` and ``background`` ``(b, C-1, T)``
    into the other channels in order; returns ``(b, C, T)`` float32.

    Examples
    --------
    >>> x = compose(np.ones((1, 4)), np.array([2]), np.zeros((1, 2, 4)))
    >>> x[0].sum(axis=1).tolist()
    [0.0, 0.0, 4.0]
    """
    b, c1, t = background.shape
    out = np.empty((b, c1 + 1, t), dtype=np.float32)
    for i in range(b):
        p = int(positions[i])
        out[i, :p] = background[i, :p]
        out[i, p] = speech[i]
        out[i, p + 1 :] = background[i, p:]
    return out


def random_background(seeds: np.ndarray, channels: int, std: float, length: int = CLIP_SAMPLES) -> np.ndarray:
    """``clip(N(0, std^2), -1, 1)`` of shape ``(len(seeds), channels, length)``, one stream per seed."""
    import torch  # torch's generator draws normals about 2.5x faster than numpy's here

    out = torch.empty((len(seeds), channels, length))
    gen = torch.Generator()
    for i, s in enumerate(seeds):
        gen.manual_seed(int(s))
        torch.randn((channels, length), generator=gen, out=out[i])
    return out.mul_(std).clamp_(-1.0, 1.0).numpy()


@dataclass
class BackgroundPool:
    """Recordings ``(R, L)`` (float16) and the p99 scale of every window starting on the ``hop`` grid."""

    recordings: np.ndarray
    scales: np.ndarray
    hop: int = _HOP
    names: list[str] = field(default_factory=list)

    @property
    def windows(self) -> int:
        return self.scales.shape[1]

    def window(self, rec: np.ndarray, win: np.ndarray) -> np.ndarray:
        """Normalised windows for index arrays ``rec`` and ``win`` of equal shape; adds a time axis."""
        out = np.empty((*rec.shape, CLIP_SAMPLES), dtype=np.float32)
        flat_out = out.reshape(-1, CLIP_SAMPLES)
        for j, (r, w) in enumerate(zip(rec.ravel(), win.ravel())):
            start = int(w) * self.hop
            flat_out[j] = self.recordings[r, start : start + CLIP_SAMPLES]
            flat_out[j] /= self.scales[r, w]
        return np.clip(out, -1.0, 1.0, out=out)

    @classmethod
    def from_recordings(cls, recordings: np.ndarray, names: list[str] | None = None, hop: int = _HOP) -> BackgroundPool:
        """Pool ``recordings`` ``(R, L)`` with the exact p99 scale of every window on the ``hop`` grid.

        A window is ``CLIP_SAMPLES / hop`` whole blocks, and its 99th percentile of |x| (the 161st largest
        of 16,000 values) is among the 161 largest of each of its blocks, so each block is partitioned
        once and each window only searches the union of its blocks' candidates (10x less work).
        """
        rec = np.asarray(recordings, dtype=np.float16).astype(np.float32)  # the stored values, exactly
        if rec.ndim != 2 or rec.shape[1] < CLIP_SAMPLES:
            raise DataError(f"Background recordings must be at least 1 s long; got shape {rec.shape}.")
        if CLIP_SAMPLES % hop:
            raise ConfigError(f"The 'hop' parameter of BackgroundPool must divide {CLIP_SAMPLES}. Got {hop} instead.")
        per_window = CLIP_SAMPLES // hop
        n_blocks = rec.shape[1] // hop
        n_win = n_blocks - per_window + 1
        rank = CLIP_SAMPLES - int(np.ceil(0.99 * CLIP_SAMPLES))  # 160 values above the percentile
        blocks = np.abs(rec[:, : n_blocks * hop]).reshape(len(rec), n_blocks, hop)
        top = -np.partition(-blocks, rank, axis=2)[..., : rank + 1]  # each block's 161 largest
        scales = np.empty((len(rec), n_win), dtype=np.float32)
        for w in range(n_win):
            cand = top[:, w : w + per_window].reshape(len(rec), -1)
            scales[:, w] = -np.partition(-cand, rank, axis=1)[:, rank]
        scales[scales <= 0] = 1.0
        return cls(rec.astype(np.float16), scales, hop, list(names or []))


class AudioSplit(Protocol):
    """One split of composed samples: ``batch(idx)`` gives ``(b, C, 16000)`` float32 inputs."""

    labels: np.ndarray
    positions: np.ndarray
    channels: int

    def __len__(self) -> int: ...

    def batch(self, idx: np.ndarray) -> np.ndarray: ...

    def speech(self, idx: np.ndarray) -> np.ndarray: ...

    def for_epoch(self, epoch: int) -> AudioSplit: ...


@dataclass
class ComposedSplit:
    """Samples composed on the fly: sample ``i`` is speech clip ``order[i]`` in channel
    ``positions[i]`` plus its background, the same every time it is asked for."""

    clips: np.ndarray  # (n_clips, T), may be a read-only memory map
    clip_labels: np.ndarray
    order: np.ndarray
    positions: np.ndarray
    channels: int
    background: str
    noise_std: float
    noise_seeds: np.ndarray | None = None
    pool: BackgroundPool | None = None
    bg_rec: np.ndarray | None = None
    bg_win: np.ndarray | None = None
    fresh_seed: int | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.clip_labels)[self.order]

    def for_epoch(self, epoch: int) -> ComposedSplit:
        """This split with backgrounds drawn afresh for ``epoch`` (itself unless ``fresh_seed`` is set)."""
        if self.fresh_seed is None:
            return self
        rng = np.random.default_rng([self.fresh_seed, epoch, 211])
        n, c1 = len(self), self.channels - 1
        if self.background == "random":
            return replace(self, noise_seeds=rng.integers(0, 2**63 - 1, n))
        return replace(
            self,
            bg_rec=rng.integers(0, len(self.pool.recordings), (n, c1)),
            bg_win=rng.integers(0, self.pool.windows, (n, c1)),
        )

    def __len__(self) -> int:
        return len(self.order)

    def speech(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        return np.asarray(self.clips[self.order[idx]], dtype=np.float32)

    def background_of(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        if self.background == "random":
            return random_background(self.noise_seeds[idx], self.channels - 1, self.noise_std)
        return self.pool.window(self.bg_rec[idx], self.bg_win[idx])

    def batch(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        return compose(self.speech(idx), self.positions[idx], self.background_of(idx))


@dataclass
class AudioData:
    """Train and test splits, the class names (sorted) and notes for the user."""

    train: AudioSplit
    test: AudioSplit
    words: tuple[str, ...]
    channels: int
    notes: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.words)


# --- local data sets -------------------------------------------------------------------------------


def read_wav(path: str | os.PathLike[str], *, channels: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Read a WAV/FLAC as float32 ``(channels, 16000)`` at 16 kHz; returns the array and notes.

    Other sample rates are resampled (polyphase), longer clips cropped to their first second, shorter
    ones zero-padded at the end. A channel count other than ``channels`` raises :class:`DataError`.
    """
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise DataError(f"Could not read audio file {path}: {exc}") from None
    x = data.T
    notes = []
    if channels is not None and x.shape[0] != channels:
        raise DataError(
            f"The file {path} has {x.shape[0]} channel(s); {channels} were expected. Set 'channels' to the "
            "files' channel count or point 'data_root' at a folder made for it."
        )
    if sr != SAMPLE_RATE:
        g = np.gcd(SAMPLE_RATE, int(sr))
        x = signal.resample_poly(x, SAMPLE_RATE // g, int(sr) // g, axis=1).astype(np.float32)
        notes.append(f"resampled from {sr} Hz to {SAMPLE_RATE} Hz")
    if x.shape[1] > CLIP_SAMPLES:
        notes.append(f"cropped from {x.shape[1] / SAMPLE_RATE:.2f} s to 1 s")
        x = x[:, :CLIP_SAMPLES]
    elif x.shape[1] < CLIP_SAMPLES:
        x = np.pad(x, ((0, 0), (0, CLIP_SAMPLES - x.shape[1])))
    return np.ascontiguousarray(x, dtype=np.float32), notes


def wav_bytes(wave: np.ndarray, subtype: str = "PCM_16") -> bytes:
    """A WAV file (16 kHz) of ``wave`` ``(T,)`` or ``(C, T)`` as bytes; ``subtype`` 'DOUBLE' matches the
    published layout's float64 files."""
    import soundfile as sf

    x = np.asarray(wave, dtype=np.float64 if subtype == "DOUBLE" else np.float32)
    buf = io.BytesIO()
    sf.write(buf, x.T if x.ndim == 2 else x, SAMPLE_RATE, subtype=subtype, format="WAV")
    return buf.getvalue()


def _summarise(notes: list[str], what: str) -> list[str]:
    """Collapse per-file notes into counts ("12 files resampled ...")."""
    counts: dict[str, int] = {}
    for n in notes:
        key = n.split(" from ")[0]
        counts[key] = counts.get(key, 0) + 1
    return [f"{c} {what} {k} (to 1 s at 16 kHz, as the paper)." for k, c in counts.items()]


def find_speech_commands(root: str | os.PathLike[str]) -> Path:
    """The folder that holds the word folders and ``validation_list.txt`` under ``root``."""
    root = Path(root).expanduser()
    for cand in (root, root / "speech_commands_v0.02", root / "SpeechCommands" / "speech_commands_v0.02"):
        if (cand / "validation_list.txt").is_file() and any((cand / w).is_dir() for w in WORDS):
            return cand
    raise DataError(
        f"No Speech Commands v0.02 layout under {root}: expected word folders (yes/, no/, ...) beside "
        "validation_list.txt and testing_list.txt, in the folder itself, in speech_commands_v0.02/ or in "
        "SpeechCommands/speech_commands_v0.02/. Download it on another machine and point 'data_root' at it."
    )


def load_speech_commands(
    root: str | os.PathLike[str], words: tuple[str, ...], per_class: int, split: str, seed: int
) -> SpeechClips:
    """Words from a Speech Commands v0.02 folder: the validation list is the test split (as the paper),
    training is every file in neither list. ``per_class`` clips per word (0 = all), drawn by ``seed``."""
    base = find_speech_commands(root)
    held = set()
    for name in ("validation_list.txt", "testing_list.txt"):
        f = base / name
        if f.is_file():
            held |= {line.strip() for line in f.read_text().splitlines() if line.strip()}
    val = {line.strip() for line in (base / "validation_list.txt").read_text().splitlines() if line.strip()}
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, 31])
    audio, labels, who, notes, short = [], [], [], [], []
    for label, word in enumerate(words):
        files = (
            sorted(p.relative_to(base).as_posix() for p in (base / word).glob("*.wav"))
            if (base / word).is_dir()
            else []
        )
        files = [f for f in files if (f in val) == (split == "test") and (split == "test" or f not in held)]
        if per_class and len(files) > per_class:
            files = [files[i] for i in sorted(rng.choice(len(files), per_class, replace=False))]
        if per_class and len(files) < per_class:
            short.append(f"{word} ({len(files)})")
        for f in files:
            x, n = read_wav(base / f)
            audio.append(place_in_clip(x.mean(axis=0), None)[0])
            labels.append(label)
            who.append(Path(f).name.split("_nohash_")[0])
            notes += n
    if not audio:
        raise DataError(f"The Speech Commands folder {base} has no {split} clips of the words {list(words)}.")
    out_notes = _summarise(notes, "Speech Commands clips were")
    if short:
        out_notes.append(f"Fewer than {per_class} {split} clips for: {', '.join(short)}.")
    return SpeechClips(np.stack(audio), np.asarray(labels, dtype=np.int64), words, who, out_notes)


def load_recordings(
    root: str | os.PathLike[str], split: str, count: int, seconds: int
) -> tuple[np.ndarray, list[str], list[str]]:
    """Up to ``count`` recordings (``.flac``/``.wav``) of at most ``seconds`` s each for ``split``.

    ``root/train`` and ``root/test`` are used when they exist (the paper draws test backgrounds from
    RFCx's test folder); otherwise one file in ten (by a hash of its name) is a test file.
    Returns ``(recordings (R, L) float32 at 16 kHz, names, notes)``.
    """
    import soundfile as sf

    from .speech import speaker_split

    root = Path(root).expanduser()
    sub = root / ("train" if split == "train" else "test")
    files = sorted(p for ext in ("*.flac", "*.wav") for p in (sub if sub.is_dir() else root).rglob(ext))
    if not sub.is_dir():
        files = [f for f in files if speaker_split(f.name) == split]
    if not files:
        raise DataError(f"No .flac or .wav recordings for the {split} split under {root}.")
    length = seconds * SAMPLE_RATE
    recs, names, skipped = [], [], 0
    for f in files:
        if len(recs) >= count:
            break
        try:
            info = sf.info(str(f))
            frames = min(info.frames, int(seconds * info.samplerate))
            data, sr = sf.read(str(f), frames=frames, dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError, OSError):
            skipped += 1
            continue
        x = data.mean(axis=1)
        if sr != SAMPLE_RATE:
            g = np.gcd(SAMPLE_RATE, int(sr))
            x = signal.resample_poly(x, SAMPLE_RATE // g, int(sr) // g).astype(np.float32)
        if len(x) < CLIP_SAMPLES:
            skipped += 1
            continue
        recs.append(np.pad(x[:length], (0, max(0, length - len(x))), mode="wrap"))
        names.append(f.name)
    if not recs:
        raise DataError(f"None of the recordings under {root} could be read as at least 1 s of audio.")
    notes = (
        [f"{skipped} recording(s) under {root} were unreadable or shorter than 1 s and were skipped."]
        if skipped
        else []
    )
    return np.stack(recs), names, notes


def find_published(root: str | os.PathLike[str], setting: str) -> Path:
    """The folder of one published setting (``<root>[/audio]/<SETTING>`` or the setting folder itself)."""
    root = Path(root).expanduser()
    for cand in (root / setting, root / "audio" / setting, root):
        if any((cand / "train" / m).is_file() for m in ("metadata.csv", "meta_data.csv")):
            return cand
    raise DataError(
        f"No published ChaosMining audio layout for {setting} under {root}: expected {setting}/train/metadata.csv "
        "(or meta_data.csv) and {setting}/val/metadata.csv with columns file_name, label, position."
    )


@dataclass
class PublishedSplit:
    """A split of the published data set, read file by file (``(16000, C)`` float64 WAVs)."""

    folder: Path
    files: list[str]
    labels: np.ndarray
    positions: np.ndarray
    channels: int
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def batch(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), self.channels, CLIP_SAMPLES), dtype=np.float32)
        for j, i in enumerate(np.asarray(idx)):
            out[j], notes = read_wav(self.folder / self.files[int(i)], channels=self.channels)
            for n in notes:
                if n.split(" from ")[0] not in {m.split(" from ")[0] for m in self.notes}:
                    self.notes.append(n)
        return out

    def for_epoch(self, epoch: int) -> PublishedSplit:  # noqa: ARG002 - the published files are fixed
        return self

    def speech(self, idx: np.ndarray) -> np.ndarray:
        x = self.batch(idx)
        return x[np.arange(len(x)), self.positions[np.asarray(idx)]]


def _read_metadata(
    folder: Path, words: tuple[str, ...] | None, channels: int, per_class: int, seed: int
) -> tuple[PublishedSplit, tuple[str, ...]]:
    import pandas as pd

    meta = next((folder / m for m in ("metadata.csv", "meta_data.csv") if (folder / m).is_file()), None)
    if meta is None:
        raise DataError(f"No metadata.csv (or meta_data.csv) in {folder}.")
    try:
        df = pd.read_csv(meta)
    except (OSError, ValueError) as exc:
        raise DataError(f"Could not read {meta}: {exc}") from None
    missing = {"file_name", "label", "position"} - set(df.columns)
    if missing:
        raise DataError(f"{meta} lacks the column(s) {sorted(missing)}; expected file_name, label, position.")
    names = words or tuple(sorted(df["label"].astype(str).unique()))
    index = {w: i for i, w in enumerate(names)}
    df = df[df["label"].astype(str).isin(index)]
    if per_class:
        order = np.random.default_rng([seed, 53]).permutation(len(df))
        df = df.iloc[order].groupby("label", sort=False).head(per_class).sort_index()
    positions = df["position"].to_numpy(dtype=np.int64)
    if len(df) and (positions.min() < 0 or positions.max() >= channels):
        raise DataError(f"{meta} has positions outside 0..{channels - 1}.")
    split = PublishedSplit(
        folder,
        df["file_name"].astype(str).tolist(),
        np.array([index[w] for w in df["label"].astype(str)], dtype=np.int64),
        positions,
        channels,
    )
    return split, names


# --- building and caching the data ------------------------------------------------------------------


def _speech_pool(
    config: AudioDataConfig, split: str, seed: int, cache: Cache, progress: Callable[..., None] | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    per_class = config.train_per_class if split == "train" else config.test_per_class
    source = config.resolved_source()
    payload = {
        "v": _DATA_VERSION,
        "source": source,
        "root": config.hash_payload()["data_root"],
        "words": config.word_list,
        "per_class": per_class,
        "split": split,
        "seed": seed,
    }

    def build(folder: Path) -> dict[str, Any]:
        if source == "speech_commands":
            clips = load_speech_commands(config.data_root, config.word_list, per_class, split, seed)
        else:
            report = (
                (lambda done, total: progress(stage=f"synthesising {split} words", done=done, total=total))
                if progress
                else None
            )
            clips = _synthesize_words(
                config.word_list, per_class, engine=source, split=split, seed=seed, progress=report
            )
        np.save(folder / "audio.npy", clips.audio.astype(np.float16))
        np.save(folder / "labels.npy", clips.labels)
        return {"notes": clips.notes, "clips": len(clips), "speakers": len(set(clips.speakers))}

    outcome = cache.get_or_create(SPEECH_KIND, stable_hash(payload), build, config=payload)
    audio = np.load(outcome.entry.file("audio.npy"), mmap_mode="r")
    labels = np.load(outcome.entry.file("labels.npy"))
    return audio, labels, list(outcome.entry.meta.get("notes", []))


def _background_pool(
    config: AudioDataConfig, split: str, seed: int, cache: Cache, progress: Callable[..., None] | None
) -> tuple[BackgroundPool, list[str]]:
    payload = {
        "v": _DATA_VERSION,
        "source": config.structured_source,
        "root": config.hash_payload().get("rfcx_root", ""),
        "recordings": config.background_recordings,
        "seconds": config.background_seconds,
        "split": split,
        "seed": seed,
    }

    def build(folder: Path) -> dict[str, Any]:
        if progress:
            progress(stage=f"making {split} background recordings")
        if config.structured_source == "rfcx":
            recs, names, notes = load_recordings(
                config.rfcx_root, split, config.background_recordings, config.background_seconds
            )
        else:
            rng = np.random.default_rng([seed, 0 if split == "train" else 1, 4099])
            recs = np.stack([rainforest(config.background_seconds, rng) for _ in range(config.background_recordings)])
            names, notes = [f"rainforest-{split}-{i}" for i in range(len(recs))], []
        pool = BackgroundPool.from_recordings(recs, names)
        np.save(folder / "recordings.npy", pool.recordings)
        np.save(folder / "scales.npy", pool.scales)
        return {"notes": notes, "names": names, "hop": pool.hop}

    outcome = cache.get_or_create(BACKGROUND_KIND, stable_hash(payload), build, config=payload)
    meta = outcome.entry.meta
    pool = BackgroundPool(
        np.load(outcome.entry.file("recordings.npy"), mmap_mode="r"),
        np.load(outcome.entry.file("scales.npy")),
        int(meta.get("hop", _HOP)),
        list(meta.get("names", [])),
    )
    return pool, list(meta.get("notes", []))


def _composed_split(
    config: AudioDataConfig, split: str, seed: int, cache: Cache, progress: Callable[..., None] | None
) -> tuple[ComposedSplit, list[str]]:
    clips, labels, notes = _speech_pool(config, split, seed, cache, progress)
    n, c = len(labels), config.channels
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, 7919])
    order = rng.permutation(n)
    positions = np.zeros(n, dtype=np.int64) if config.position == "fixed" else rng.integers(0, c, n)
    kw: dict[str, Any] = {}
    if config.background == "random":
        kw["noise_seeds"] = rng.integers(0, 2**63 - 1, n)
    else:
        pool, bg_notes = _background_pool(config, split, seed, cache, progress)
        notes = notes + bg_notes
        kw.update(
            pool=pool,
            bg_rec=rng.integers(0, len(pool.recordings), (n, c - 1)),
            bg_win=rng.integers(0, pool.windows, (n, c - 1)),
        )
    if config.fresh_backgrounds and split == "train":
        kw["fresh_seed"] = seed
    return ComposedSplit(clips, labels, order, positions, c, config.background, config.noise_std, **kw), notes


def load_split(
    config: AudioDataConfig,
    split: str,
    seed: int = 0,
    *,
    cache: Cache | None = None,
    progress: Callable[..., None] | None = None,
) -> tuple[AudioSplit, tuple[str, ...], list[str]]:
    """One split (``'train'`` or ``'test'``) of ``config``: the samples, the class names and notes.

    Made pools are read from (or written to) ``cache``. ``progress(**event)`` receives ``stage``
    strings and ``done``/``total`` counts while words are synthesised. Raises :class:`DataError` when a
    local folder lacks the expected layout.
    """
    check_choice(split, "split", owner="load_split", choices=("train", "test"))
    cache = cache or Cache()
    notes: list[str] = []
    if config.source in ENGINES:
        note = resolve_engine(config.source)[1]
        if note:
            notes.append(note)
    if config.source == "published":
        folder = find_published(config.data_root, config.setting)
        if split == "train":
            data, words = _read_metadata(folder / "train", None, config.channels, config.train_per_class, seed)
        else:
            # The class list always comes from the training metadata, so indices agree between splits.
            _, words = _read_metadata(folder / "train", None, config.channels, 0, seed)
            val = folder / "val" if (folder / "val").is_dir() else folder / "test"
            data, _ = _read_metadata(val, words, config.channels, config.test_per_class, seed)
        if len(data):  # fail early on a wrong channel count; say once what every clip goes through
            _, first = read_wav(data.folder / data.files[0], channels=config.channels)
            notes += [f"The {split} files are {n.split(' (')[0]}: every clip is made 1 s at 16 kHz." for n in first]
    else:
        data, more = _composed_split(config, split, seed, cache, progress)
        notes += [n for n in more if n not in notes]
        words = config.word_list
    if split == "train" and len(data):
        counts = np.bincount(data.labels, minlength=len(words))
        if counts.min() < RECOMMENDED_PER_CLASS:
            notes.append(
                f"Only {int(counts.min())} training clips for some word(s): at least {RECOMMENDED_PER_CLASS} per word "
                f"are needed for the {config.channels}-channel task to clearly beat chance, so expect an accuracy near "
                f"chance (1/{len(words)}) and channel scores that say little."
            )
    if not len(data):
        raise DataError(f"The {split} split of this configuration has no clips.")
    return data, words, notes


def load_audio_data(
    config: AudioDataConfig, seed: int = 0, *, cache: Cache | None = None, progress: Callable[..., None] | None = None
) -> AudioData:
    """Both splits of ``config`` (see :func:`load_split`)."""
    train, words, notes = load_split(config, "train", seed, cache=cache, progress=progress)
    test, _, more = load_split(config, "test", seed, cache=cache, progress=progress)
    return AudioData(train, test, words, config.channels, notes + [n for n in more if n not in notes])
