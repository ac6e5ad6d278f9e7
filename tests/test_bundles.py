"""Nothing untrusted runs: hostile rerun bundles get one-line errors, cached models load as plain tensors."""

from __future__ import annotations

import json
import os

import pytest
import torch

from chaosmining.cache import MANIFEST, Cache, _sha256
from chaosmining.cli import main
from chaosmining.data.symbolic import SymbolicDataConfig
from chaosmining.experiments.symbolic import MODEL_KIND, SymbolicConfig, train_symbolic_model
from chaosmining.models.mlp import MLPConfig
from chaosmining.sandbox import DATA_ROOTS_ENV
from chaosmining.training import TrainConfig, TrainedMLP

TINY = SymbolicConfig(
    data=SymbolicDataConfig(formula="1", noise_features=2, samples=200),
    model=MLPConfig(width=4, depth=1),
    train=TrainConfig(epochs=3, snapshots=2),
)


class _Boom:
    """Unpickling this runs ``open(marker, 'w')``: what a file dropped into the cache could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def roots(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "t.csv").write_text("x,y\n1,0\n2,1\n")
    (tmp_path / "secret.csv").write_text("SECRET,y\n1,0\n")
    monkeypatch.setenv(DATA_ROOTS_ENV, str(data))
    return data


def _symbolic(model=None, eval_=None, **extra):
    return {"task": "symbolic", "config": {"model": model or TINY.to_dict(), "eval": eval_ or {}}, **extra}


HOSTILE = [
    ("not json {", "could not be read as JSON"),
    ([1, 2, 3], "The bundle must be a JSON object. Got list instead."),
    ({"task": ["symbolic"]}, "The bundle's 'task' must be a string."),
    ({"task": "shell", "config": {}}, "The bundle's 'task' must be one of"),
    (_symbolic(results=["x"]), "The bundle's 'results' must be an object. Got list instead."),
    ({"task": "symbolic", "config": "rm -rf /"}, "The bundle's 'config' must be an object. Got str instead."),
    (_symbolic(model={**TINY.to_dict(), "bogus": 1}), "'config.model.bogus' is not a setting there"),
    (_symbolic(model={**TINY.to_dict(), "data": {"formula": "1", "x": 1}}), "unexpected keyword argument 'x'"),
    (_symbolic(model=[1, 2]), "'config.model' does not describe a 'symbolic' run: AttributeError"),
    (_symbolic(model={**TINY.to_dict(), "seed": "0; import os"}), "The 'seed' parameter of SymbolicConfig"),
    (_symbolic(model={**TINY.to_dict(), "seed": 10**30}), "The 'seed' parameter of SymbolicConfig"),
    (
        _symbolic(model={**TINY.to_dict(), "data": {**TINY.data.to_dict(), "samples": 10**15}}),
        "The 'samples' parameter of SymbolicDataConfig",
    ),
    ('{"task": "symbolic", "config": {"seed": ' + "9" * 5000 + "}}", "could not be read as JSON"),
    ("[" * 100_000 + "]" * 100_000, "could not be read as JSON"),
    (_symbolic(model={**TINY.to_dict(), "cache_dir": "/tmp/elsewhere"}), "'config.model.cache_dir' is not allowed"),
    ({"task": "rfe", "config": {"cache_root": "/"}}, "'config.cache_root' is not allowed"),
    ({"task": "vision", "config": {"model": {"data": {"data_root": "/etc"}}}}, "'config.model.data.data_root'"),
    ({"task": "audio", "config": {"model": {"data": {"rfcx_root": "{data}/../"}}}}, "must be a path under one"),
    ({"task": "rfe", "config": {"data": {"task": "csv:/proc/self/environ"}}}, "must be a path under one"),
    ({"task": "rfe", "config": {"data": {"task": "csv:{data}/../secret.csv"}}}, "must be a path under one"),
    ({"task": "rfe", "config": {"data": {"task": "csv:{data}/t.csv", "bogus": [1]}}}, "does not describe a 'rfe'"),
    ({"task": "sweep", "config": {"base": {}}}, "does not describe a 'sweep' run: KeyError"),
    ({"task": "roar", "config": {"task": {"task": "toy16", "n_train": 10**12}}}, "The 'n_train' parameter"),
]


@pytest.mark.parametrize("bundle, needle", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_hostile_bundles_exit_2_with_one_line_and_touch_nothing(bundle, needle, roots, tmp_path, capsys):
    path = tmp_path / "bundle.json"
    text = bundle if isinstance(bundle, str) else json.dumps(bundle)
    path.write_text(text.replace("{data}", str(roots)))
    cache = tmp_path / "cache"
    assert main(["rerun", str(path), "--json", "--cache-dir", str(cache)]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], err
    assert "SECRET" not in err and "PATH=" not in err
    assert not cache.exists() or not any(cache.rglob("*.pt"))  # nothing was trained or written


def test_an_oversized_bundle_is_refused_before_it_is_parsed(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("chaosmining.bundle.MAX_BUNDLE_BYTES", 100)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_symbolic()))
    assert main(["rerun", str(path)]) == 2
    assert "must be a JSON file of at most" in capsys.readouterr().err


def test_a_pickle_with_code_in_the_cache_is_never_run_and_is_rebuilt(tmp_path):
    cache = Cache(tmp_path / "cache", seed_roots=())
    first, cached, _ = train_symbolic_model(TINY, cache=cache, device="cpu")
    assert not cached
    entry = cache.load(MODEL_KIND, TINY.config_hash)
    marker = tmp_path / "pwned"
    state = first.state()
    state["seconds"] = _Boom(str(marker))
    torch.save(state, entry.file("model.pt"))  # pickles _Boom's instructions; they run only if unpickled
    manifest = json.loads(entry.file(MANIFEST).read_text())  # a checksum that matches: only the format is wrong
    manifest["files"]["model.pt"] = _sha256(entry.file("model.pt"))
    entry.file(MANIFEST).write_text(json.dumps(manifest))

    again, cached, note = train_symbolic_model(TINY, cache=cache, device="cpu")
    assert not marker.exists() and not cached
    assert "model.pt cannot be loaded as plain tensors (UnpicklingError)" in note and "rebuilt" in note
    assert all(torch.equal(a, b) for a, b in zip(again.params, first.params))  # the same seed trains the same
    assert TrainedMLP.load(cache.load(MODEL_KIND, TINY.config_hash).file("model.pt")).n_inputs == first.n_inputs


def test_trained_state_is_plain_data_that_weights_only_loads(tmp_path):
    trained, _, _ = train_symbolic_model(TINY, cache=Cache(tmp_path, seed_roots=()), device="cpu")
    torch.save(trained.state(), tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert state["n_inputs"] == trained.n_inputs and type(state["seconds"]) is float
    assert os.path.getsize(tmp_path / "m.pt") > 0
