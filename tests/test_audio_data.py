"""Audio data: composition, background statistics, speech engines and the local-data loaders."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from chaosmining.data import speech
from chaosmining.data.audio import (
    AudioDataConfig,
    BackgroundPool,
    compose,
    find_published,
    load_audio_data,
    load_recordings,
    load_speech_commands,
    load_split,
    random_background,
    read_wav,
)
from chaosmining.data.soundscape import normalise_p99, rainforest
from chaosmining.data.speech import CLIP_SAMPLES, CORE_WORDS, WORDS, synthesize_words
from chaosmining.errors import ConfigError, DataError

SMALL = dict(source="formant", words="core", train_per_class=2, test_per_class=1, background_recordings=3)


def test_words_are_the_35_speech_commands_sorted():
    assert len(WORDS) == 35 and list(WORDS) == sorted(WORDS)
    assert set(CORE_WORDS) <= set(WORDS) and len(CORE_WORDS) == 10


@pytest.mark.parametrize("background", ["random", "structured"])
def test_speech_lands_in_the_recorded_channel_and_nowhere_else(tmp_cache, background):
    cfg = AudioDataConfig(background=background, position="random", channels=6, background_seconds=2, **SMALL)
    split, words, _ = load_split(cfg, "train", 3, cache=tmp_cache)
    idx = np.arange(len(split))
    x = split.batch(idx)
    speech_clips = split.speech(idx)
    bg = split.background_of(idx)
    assert x.shape == (len(idx), 6, CLIP_SAMPLES) and len(set(split.positions.tolist())) > 1
    for i, p in enumerate(split.positions):
        assert np.array_equal(x[i, p], speech_clips[i])
        others = np.delete(x[i], p, axis=0)
        assert np.array_equal(others, bg[i])
        # the word itself appears in no other channel
        assert max(abs(np.corrcoef(o, speech_clips[i])[0, 1]) for o in others) < 0.2
    # and composing with silent backgrounds leaves only the speech channel non-zero
    silent = compose(speech_clips, split.positions, np.zeros_like(bg))
    energy = (silent**2).sum(axis=2)
    assert np.array_equal(energy.argmax(axis=1), split.positions)
    assert np.count_nonzero(energy, axis=1).tolist() == [1] * len(idx)


def test_fixed_position_is_channel_zero_and_composition_is_deterministic(tmp_cache):
    cfg = AudioDataConfig(background="random", position="fixed", channels=4, **SMALL)
    a = load_split(cfg, "test", 0, cache=tmp_cache)[0]
    b = load_split(cfg, "test", 0, cache=tmp_cache)[0]
    assert (a.positions == 0).all()
    assert np.array_equal(a.batch(np.array([1, 0])), b.batch(np.array([1, 0])))
    assert np.array_equal(a.batch(np.array([1]))[0], a.batch(np.array([0, 1]))[1])  # independent of the batch


def test_random_background_matches_the_paper():
    x = random_background(np.arange(20), 9, 0.25)
    assert x.shape == (20, 9, CLIP_SAMPLES)
    assert abs(x.std() - 0.25) < 0.002 and abs(x.mean()) < 0.002
    assert x.min() >= -1 and x.max() <= 1
    assert not np.array_equal(x[0], x[1])
    assert np.array_equal(random_background(np.array([7]), 9, 0.25)[0], random_background(np.arange(8), 9, 0.25)[7])


def test_structured_windows_are_normalised_by_their_99th_percentile():
    rng = np.random.default_rng(0)
    pool = BackgroundPool.from_recordings(np.stack([rainforest(3, rng) for _ in range(4)]))
    rec, win = np.array([[0, 3], [2, 1]]), np.array([[0, 5], [20, 11]])
    got = pool.window(rec, win)
    for i in range(2):
        for j in range(2):
            start = win[i, j] * pool.hop
            raw = pool.recordings[rec[i, j], start : start + CLIP_SAMPLES].astype(np.float32)
            np.testing.assert_allclose(got[i, j], normalise_p99(raw), atol=1e-6)
            assert abs(np.quantile(np.abs(got[i, j]), 0.99) - 1.0) < 0.01
            assert np.abs(got[i, j]).max() <= 1.0


def test_soundscape_level_is_close_to_the_random_background():
    rng = np.random.default_rng(1)
    x = normalise_p99(np.stack([rainforest(1, rng) for _ in range(30)]))
    assert 0.15 < x.std() < 0.5


def test_formant_words_are_class_conditional_and_seeded():
    a = synthesize_words(CORE_WORDS[:3], 2, engine="formant", split="train", seed=1)
    b = synthesize_words(CORE_WORDS[:3], 2, engine="formant", split="train", seed=1)
    c = synthesize_words(CORE_WORDS[:3], 2, engine="formant", split="test", seed=1)
    assert a.audio.shape == (6, CLIP_SAMPLES) and a.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert np.array_equal(a.audio, b.audio) and not np.array_equal(a.audio, c.audio)
    peaks = np.abs(a.audio).max(axis=1)
    assert (peaks >= 0.29).all() and (peaks <= 0.91).all()
    assert len(speech._formant_table(35)) == len(set(speech._formant_table(35)))


@pytest.mark.skipif(not speech.espeak_status()[0], reason="espeakng-loader is not installed")
def test_espeak_words_are_deterministic_and_speakers_are_split():
    a = synthesize_words(("no", "yes"), 2, engine="espeak", split="train", seed=5)
    b = synthesize_words(("no", "yes"), 2, engine="espeak", split="train", seed=5)
    assert np.array_equal(a.audio, b.audio)
    assert (np.abs(a.audio).max(axis=1) > 0.25).all()
    test_voices = {s for s in speech._espeak_speakers("test")}
    assert test_voices and not test_voices & set(speech._espeak_speakers("train"))


def test_missing_speech_engine_falls_back_and_says_so(monkeypatch, tmp_cache):
    monkeypatch.setitem(
        speech.ENGINES._entries,
        "espeak",
        speech.ENGINES.get("espeak").__class__(
            **{**speech.ENGINES.get("espeak").__dict__, "available": lambda: (False, "no library")}
        ),
    )
    clips = synthesize_words(("go",), 1, engine="espeak")
    assert any("not available here (no library); using formant pseudo-words" in n for n in clips.notes)
    cfg = AudioDataConfig(**{**SMALL, "source": "espeak"})
    assert cfg.resolved_source() == "formant"
    assert cfg.config_hash == AudioDataConfig(**SMALL).config_hash  # same data, same cache key
    _, _, notes = load_split(cfg, "test", 0, cache=tmp_cache)
    assert any("using formant pseudo-words" in n for n in notes)


def test_too_few_clips_per_class_warns(tmp_cache):
    data = load_audio_data(AudioDataConfig(**SMALL), 0, cache=tmp_cache)
    assert any("at least 170 per word" in n for n in data.notes)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"background": "pink"}, "The 'background' parameter of AudioDataConfig must be one of"),
        ({"channels": 1}, "The 'channels' parameter of AudioDataConfig must be an int in \\[2, 64\\]"),
        ({"source": "speech_commands"}, "The 'data_root' parameter of AudioDataConfig must be a local folder"),
        ({"source": "published", "data_root": "/no/such/folder"}, "must be an existing folder"),
        ({"background": "structured", "structured_source": "rfcx"}, "The 'rfcx_root' parameter"),
        ({"train_per_class": 0}, "for synthesised words"),
    ],
)
def test_bad_data_settings_name_the_parameter(kw, match):
    with pytest.raises(ConfigError, match=match):
        AudioDataConfig(**kw)


def _write(path, data, sr=16000, subtype="DOUBLE"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sr, subtype=subtype)


def _published(root, setting="RBFP", channels=10, n=3, sr=16000, seconds=1.0):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        rows = ["file_name,label,position"]
        for i in range(n):
            word = ("backward", "bed")[i % 2]
            x = rng.uniform(-0.5, 0.5, (int(sr * seconds), channels))
            x[:, 0] = 0.9 * np.sin(np.arange(len(x)) * (i + 1) / 20)
            _write(root / setting / split / word / f"spk{i}_0.wav", x, sr)
            rows.append(f"{word}/spk{i}_0.wav,{word},0")
        (root / setting / split / "metadata.csv").write_text("\n".join(rows) + "\n")


def test_published_layout_loader_reads_a_tiny_fake_folder(tmp_path, tmp_cache):
    _published(tmp_path)
    cfg = AudioDataConfig(source="published", data_root=str(tmp_path), train_per_class=0, test_per_class=0)
    data = load_audio_data(cfg, 0, cache=tmp_cache)
    assert data.words == ("backward", "bed")
    assert len(data.train) == 3 and data.train.labels.tolist() == [0, 1, 0]
    x = data.train.batch(np.arange(3))
    assert x.shape == (3, 10, CLIP_SAMPLES) and x.dtype == np.float32
    np.testing.assert_allclose(x[1, 0], data.train.speech(np.array([1]))[0])
    assert find_published(tmp_path / "RBFP", "RBFP") == tmp_path / "RBFP"  # the setting folder itself works too


def test_published_files_at_another_rate_or_length_are_converted_and_reported(tmp_path, tmp_cache):
    _published(tmp_path, sr=8000, seconds=1.5)
    cfg = AudioDataConfig(source="published", data_root=str(tmp_path), train_per_class=0, test_per_class=0)
    split, _, notes = load_split(cfg, "train", 0, cache=tmp_cache)
    assert split.batch(np.arange(2)).shape == (2, 10, CLIP_SAMPLES)
    assert any("resampled from 8000 Hz" in n for n in notes) and any("cropped from 1.50 s" in n for n in notes)


def test_published_layout_with_the_wrong_channel_count_is_rejected(tmp_path, tmp_cache):
    _published(tmp_path, channels=8)
    cfg = AudioDataConfig(source="published", data_root=str(tmp_path), train_per_class=0, test_per_class=0)
    with pytest.raises(DataError, match="has 8 channel\\(s\\); 10 were expected"):
        load_audio_data(cfg, 0, cache=tmp_cache)


def test_missing_layout_is_a_clear_error(tmp_path, tmp_cache):
    cfg = AudioDataConfig(source="published", data_root=str(tmp_path), train_per_class=0, test_per_class=0)
    with pytest.raises(DataError, match="No published ChaosMining audio layout for RBFP"):
        load_audio_data(cfg, 0, cache=tmp_cache)


def test_wav_reader_resamples_and_crops_long_clips(tmp_path):
    _write(tmp_path / "a.wav", np.zeros((22050 * 2, 2)), sr=22050, subtype="PCM_16")
    x, notes = read_wav(tmp_path / "a.wav", channels=2)
    assert x.shape == (2, CLIP_SAMPLES)
    assert any("resampled from 22050 Hz" in n for n in notes) and any("cropped from 2.00 s" in n for n in notes)
    _write(tmp_path / "b.wav", np.ones(8000) * 0.5, subtype="PCM_16")
    y, notes = read_wav(tmp_path / "b.wav")
    assert y.shape == (1, CLIP_SAMPLES) and y[0, 8000:].max() == 0 and not notes


def test_speech_commands_loader_uses_the_validation_list_as_test(tmp_path):
    base = tmp_path / "SpeechCommands" / "speech_commands_v0.02"
    for word in ("yes", "no"):
        for i in range(3):
            _write(base / word / f"s{i}_nohash_0.wav", np.full(12000, 0.1 * (i + 1)), subtype="PCM_16")
    (base / "validation_list.txt").write_text("yes/s0_nohash_0.wav\nno/s0_nohash_0.wav\n")
    (base / "testing_list.txt").write_text("yes/s1_nohash_0.wav\n")
    train = load_speech_commands(tmp_path, ("no", "yes"), 0, "train", 0)
    test = load_speech_commands(tmp_path, ("no", "yes"), 0, "test", 0)
    assert train.labels.tolist() == [0, 0, 1] and test.labels.tolist() == [0, 1]
    assert train.audio.shape == (3, CLIP_SAMPLES) and train.audio[0, 12000:].max() == 0  # zero-padded at the end
    few = load_speech_commands(tmp_path, ("no", "yes"), 5, "train", 0)
    assert any("Fewer than 5 train clips" in n for n in few.notes)
    with pytest.raises(DataError, match="No Speech Commands v0.02 layout"):
        load_speech_commands(base / "yes", ("no",), 0, "train", 0)


def test_rfcx_folder_becomes_a_structured_pool(tmp_path, tmp_cache):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for i in range(2):
            _write(tmp_path / split / f"r{i}.flac", rng.uniform(-0.3, 0.3, 48000 * 2), sr=48000, subtype="PCM_16")
    recs, names, _ = load_recordings(tmp_path, "test", 5, 4)
    assert recs.shape == (2, 4 * CLIP_SAMPLES) and names == ["r0.flac", "r1.flac"]
    cfg = AudioDataConfig(background="structured", structured_source="rfcx", rfcx_root=str(tmp_path), **SMALL)
    split, _, _ = load_split(cfg, "train", 0, cache=tmp_cache)
    x = split.batch(np.arange(2))
    assert np.abs(x).max() <= 1.0 and x.shape[1] == 10


@pytest.mark.parametrize("background", ["random", "structured"])
def test_fresh_backgrounds_change_every_epoch_but_keep_the_words(tmp_cache, background):
    cfg = AudioDataConfig(background=background, fresh_backgrounds=True, channels=3, background_seconds=2, **SMALL)
    split = load_split(cfg, "train", 0, cache=tmp_cache)[0]
    idx = np.arange(3)
    e1, e1_again, e2 = split.for_epoch(1), split.for_epoch(1), split.for_epoch(2)
    assert np.array_equal(e1.batch(idx), e1_again.batch(idx))
    assert not np.array_equal(e1.batch(idx)[:, 1:], e2.batch(idx)[:, 1:])
    assert np.array_equal(e1.batch(idx)[:, 0], e2.batch(idx)[:, 0])  # the speech channel is the same clip
    test = load_split(cfg, "test", 0, cache=tmp_cache)[0]
    assert test.for_epoch(5) is test  # evaluation data never change


def test_batches_composed_in_worker_processes_equal_those_composed_here(tmp_cache):
    """GPU runs compose training batches in forked DataLoader workers; they must be the same inputs."""
    from chaosmining.experiments.audio import _batches

    cfg = AudioDataConfig(background="structured", position="random", channels=3, background_seconds=2, **SMALL)
    split = load_split(cfg, "train", 0, cache=tmp_cache)[0]
    order = np.random.default_rng(0).permutation(len(split))
    here = list(_batches(split, order, 4, workers=0))
    there = list(_batches(split, order, 4, workers=2))
    assert len(here) == len(there) == -(-len(split) // 4)
    for (x0, i0), (x1, i1) in zip(here, there, strict=True):
        np.testing.assert_array_equal(np.asarray(i1), i0)
        np.testing.assert_array_equal(np.asarray(x1), x0)
