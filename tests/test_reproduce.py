"""``reproduce``: the paper's grids as runs, a tiny grid end to end through the CLI, the paper's numbers beside ours."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest

from chaosmining import reproduce as R
from chaosmining.cli import main
from chaosmining.errors import ConfigError

TINY = R.Grid(
    formulas=("1",),
    factors=("depth",),
    values=2,
    epochs=15,
    samples=300,
    noise_features=4,
    eval_samples=40,
    reduces="a test grid",
)


@pytest.fixture
def tiny_figure4(monkeypatch):
    monkeypatch.setitem(R.GRIDS, "figure4", {**R.GRIDS["figure4"], "quick": TINY})


def test_every_target_has_every_scale_and_says_what_it_reduces():
    for target in R.TARGETS.names():
        assert set(R.GRIDS[target]) == set(R.SCALES)
        for scale in R.SCALES:
            assert R.GRIDS[target][scale].reduces
            assert R.plan(target, scale), (target, scale)


def test_quick_grids_stay_small_and_paper_grids_are_the_papers():
    assert len(R.plan("figure4", "quick")) <= 72
    # the paper's grid: 8 factors' values (44 settings) x 15 formulas x 5 seeds
    assert len(R.plan("figure4", "paper")) == 44 * 15 * 5
    assert len(R.plan("table2", "paper")) == 8 * 2 * 5
    assert {c.spec.config.condition for c in R.plan("table3", "quick")} == {"SBFP", "SBRP"}


def test_spread_keeps_both_ends():
    assert R._spread((1, 2, 3, 4, 5), 3) == (1, 3, 5)
    assert R._spread((1, 2, 3), 0) == (1, 2, 3)


def test_bad_scale_and_seeds_are_refused_with_the_house_wording():
    with pytest.raises(ConfigError, match="The 'scale' parameter of reproduce must be one of"):
        R.grid_for("table2", "huge")
    with pytest.raises(ConfigError, match="seeds"):
        R.grid_for("table2", "quick", seeds=[-1])
    assert R.grid_for("table2", "quick", seeds=[3, 4]).seeds == (3, 4)


def test_tables_join_the_papers_numbers():
    spec = R.TARGETS.get("table2")
    ours = pd.DataFrame(
        [
            {
                "model": "resnet18",
                "setting": "RBFP",
                "method": "saliency",
                "metric": "iou",
                "mean": 0.7,
                "std": 0.0,
                "n": 1,
            }
        ]
    )
    out = R._beside_paper(spec, ours, R.paper_reference("table2"))
    assert out.loc[0, "paper"] == pytest.approx(0.678)
    assert out.loc[0, "difference"] == pytest.approx(0.022)


def test_cli_reproduces_a_tiny_grid_then_resumes_from_the_store(tiny_figure4, tmp_path, capsys):
    args = ["reproduce", "figure4", "--json", "--quiet", "--cache-dir", str(tmp_path / "c"), "--executor", "local"]
    args += ["--workers", "2", "--export", str(tmp_path / "exp"), "--export-formats", "html,csv"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["runs"] == 2 and first["from_cache"] == 0 and first["failed"] == {}
    assert first["reduces"] == "a test grid"
    levels = {r["level"] for r in first["rows"]}
    assert levels == {"2", "6"}
    fprec = [r for r in first["rows"] if r["metric"] == "fprec" and r["method"] == "saliency"]
    assert all(0.0 <= r["mean"] <= 1.0 for r in fprec)
    files = {p.name for p in (tmp_path / "exp").iterdir()}
    assert {"figure4.html", "figure4_table.csv", "figure4_scores.csv", "bundle.json"} <= files
    # the same reproduction again: every run answered by the results store (beside the cache), same numbers
    assert main(args[:-4]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["from_store"] == 2 and again["from_cache"] == 0 and again["trained"] == 0
    assert again["rows"] == first["rows"]


def test_cli_prints_the_table_and_what_the_scale_reduces(tiny_figure4, tmp_path, capsys):
    assert main(["reproduce", "figure4", "--quiet", "--cache-dir", str(tmp_path / "c"), "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert "reduces: a test grid" in text and "Figure 4" in text and "prediction_uscore" in text


_RAY = importlib.util.find_spec("ray") is not None and importlib.util.find_spec("chaosmining.runs.ray_backend")


@pytest.mark.skipif(not _RAY, reason="the Ray backend (chaosmining.runs.ray_backend and ray) is not installed")
def test_cli_reproduces_a_tiny_grid_on_ray(tiny_figure4, tmp_path, capsys):
    args = ["reproduce", "figure4", "--json", "--quiet", "--cache-dir", str(tmp_path / "c"), "--executor", "ray"]
    assert main([*args, "--workers", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 2 and out["failed"] == {}


def test_reproduce_answers_from_the_store_when_the_cache_is_gone(tiny_figure4, tmp_path, capsys, monkeypatch):
    """Interrupted or not, a reproduction skips what the results store has: no cache entry is needed."""
    import shutil

    from chaosmining.cache import Cache
    from chaosmining.results import ResultsStore

    monkeypatch.delenv("CHAOSMINING_RESULTS", raising=False)
    cache_dir = tmp_path / "c"
    args = ["reproduce", "figure4", "--json", "--quiet", "--cache-dir", str(cache_dir), "--workers", "1"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["runs"] == 2 and first["trained"] == 2 and first["from_store"] == 0
    cells = R.plan("figure4", "quick")
    cache = Cache(cache_dir)
    for cell in cells:  # the store files each run under the key reproduce looks for
        entry = cache.load(cell.spec.entry.result_kind, cell.spec.entry.result_key(cell.spec.config, cell.spec.eval))
        assert R.store_key(cell.spec) == R.run_key_for(cell.spec.entry.result_kind, entry.config)
    assert set(ResultsStore(cache_dir / "results").run_keys()) == {R.store_key(c.spec) for c in cells}
    for child in cache_dir.iterdir():  # every cache entry gone, the store kept
        if child.name != "results":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["from_store"] == 2 and again["from_cache"] == 0 and again["trained"] == 0
    assert again["rows"] == first["rows"]
    assert not any(p.name != "results" for p in cache_dir.iterdir())  # nothing was trained again
    assert main(args[:2] + args[3:]) == 0  # the text output says where the runs came from
    assert "2 runs: 2 from the store, 0 from the cache, 0 trained" in capsys.readouterr().out


def test_target_rows_come_from_stored_scores():
    rows = [
        {"method": "", "metric": "accuracy", "value": 0.5},
        {"method": "saliency", "metric": "method_peak_memory_bytes", "value": 2.0**21},
        {"method": "deeplift", "metric": "method_peak_memory_bytes", "value": None},
    ]
    assert R._accuracy_percent(rows) == [{"method": "", "metric": "accuracy_percent", "value": 50.0}]
    assert R._figure5_rows(rows) == [{"method": "saliency", "metric": "peak_memory_mib", "value": 2.0}]
