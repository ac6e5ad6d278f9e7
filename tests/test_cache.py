"""The cache: built once, atomic, checked, repaired, seeded from shipped assets."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from chaosmining.cache import Cache
from chaosmining.errors import CacheCorruptError
from chaosmining.runtime import spawn_context


def _build_counter(folder: Path, counter: Path | None = None, sleep: float = 0.0) -> dict:
    if counter is not None:
        with open(counter, "a") as f:
            f.write("x")
    time.sleep(sleep)
    (folder / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (folder / "result.json").write_text(json.dumps({"value": 42}))
    return {"note": "built"}


def test_second_request_is_a_hit_and_the_config_is_stored_beside_the_files(tmp_cache):
    out1 = tmp_cache.get_or_create("model", "abc", _build_counter, config={"lr": 0.001})
    out2 = tmp_cache.get_or_create("model", "abc", _build_counter)
    assert (out1.status, out2.status) == ("built", "hit") and out2.cached
    assert out2.entry.config == {"lr": 0.001} and out2.entry.meta == {"note": "built"}
    assert json.loads(out2.entry.file("result.json").read_text()) == {"value": 42}


def test_a_failing_build_leaves_no_entry_and_no_temporary_folder(tmp_cache):
    def broken(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"123")
        raise KeyboardInterrupt  # an interrupted run

    with pytest.raises(KeyboardInterrupt):
        tmp_cache.get_or_create("model", "k", broken)
    assert tmp_cache.load("model", "k") is None
    assert not [p for p in (tmp_cache.root / "model").iterdir() if p.is_dir()]


@pytest.mark.parametrize("damage", ["modify", "delete_file", "delete_manifest", "garbage_manifest"])
def test_a_corrupt_entry_is_detected_reported_and_rebuilt(tmp_cache, damage):
    entry = tmp_cache.get_or_create("model", "k", _build_counter).entry
    target = {
        "modify": entry.file("weights.bin"),
        "delete_file": entry.file("result.json"),
        "delete_manifest": entry.file("manifest.json"),
        "garbage_manifest": entry.file("manifest.json"),
    }[damage]
    if damage == "modify":
        target.write_bytes(b"\xff" * 10)
    elif damage == "garbage_manifest":
        target.write_text("{not json")
    else:
        target.unlink()
    with pytest.raises(CacheCorruptError):
        tmp_cache.load("model", "k")
    out = tmp_cache.get_or_create("model", "k", _build_counter)
    assert out.status == "rebuilt" and "rebuilt" in out.note
    assert tmp_cache.load("model", "k") is not None


def test_two_threads_asking_for_the_same_configuration_build_it_once(tmp_cache, tmp_path):
    counter = tmp_path / "count"
    results = []

    def ask():
        results.append(tmp_cache.get_or_create("model", "same", lambda f: _build_counter(f, counter, sleep=0.5)).status)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.read_text() == "x"
    assert sorted(results) == ["built", "hit", "hit", "hit"]


def _process_request(root: str, counter: str) -> str:
    from functools import partial

    return Cache(root).get_or_create("model", "p", partial(_build_counter, counter=Path(counter), sleep=1.0)).status


def test_two_processes_asking_for_the_same_configuration_build_it_once(tmp_path):
    counter = tmp_path / "count"
    with spawn_context().Pool(2) as pool:
        statuses = pool.starmap(_process_request, [(str(tmp_path / "c"), str(counter))] * 2)
    assert counter.read_text() == "x"
    assert sorted(statuses) == ["built", "hit"]


def test_shipped_entries_are_seeded_into_an_empty_cache(tmp_path):
    shipped = Cache(tmp_path / "assets")
    shipped.get_or_create("demo", "d1", _build_counter, config={"preset": "demo"})
    cache = Cache(tmp_path / "fresh", seed_roots=(tmp_path / "assets",))
    assert cache.has("demo", "d1") and not cache.path("demo", "d1").exists()
    out = cache.get_or_create("demo", "d1", lambda f: pytest.fail("must not rebuild a shipped entry"))
    assert out.status == "hit" and out.entry.config == {"preset": "demo"}
    assert cache.path("demo", "d1").is_dir()


def test_summary_and_sweep(tmp_cache):
    tmp_cache.get_or_create("model", "a", _build_counter)
    (tmp_cache.root / "model" / ".tmp-old").mkdir()
    assert tmp_cache.summary()["model"]["entries"] == 1
    assert tmp_cache.sweep(older_than=0) == 1
    assert [e.key for e in tmp_cache.entries("model")] == ["a"]
