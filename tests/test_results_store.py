"""The results store: round trip, superseding, concurrent writers, interrupted writes, compaction,
read-only queries, record() from a real run, rebuild from a cache, the CLI, the paper's numbers."""

from __future__ import annotations

import json
import math
import multiprocessing as mp

import pyarrow as pa
import pytest

from chaosmining.cache import Cache
from chaosmining.cli import main
from chaosmining.results import (
    EXTRACTORS,
    SCORES_SCHEMA,
    ReadOnlyQueryError,
    ResultsStore,
    RunRecord,
    ScoreRow,
    paper_reference,
    rebuild,
    rebuild_kinds,
    record,
    run_key_for,
)


def _rec(value: float, method: str = "saliency") -> RunRecord:
    return RunRecord(
        "symbolic",
        "formula:1",
        "noise_features=5",
        "mlp",
        0,
        (ScoreRow(method, "fprec", value), ScoreRow("", "test_mae", 0.25), ScoreRow(method, "uscore", None)),
    )


def test_round_trip_and_superseding(tmp_path):
    store = ResultsStore(tmp_path / "r")
    assert store.scores().empty and store.runs().empty  # an empty store answers with the schema
    store.add("symbolic-result", {"seed": 0}, _rec(0.5), run_key="k1", device="cpu", seconds=2.0)
    store.add("symbolic-result", {"seed": 1}, _rec(0.9, "deeplift"), run_key="k2", device="cpu", seconds=1.0)
    s = store.scores(method="saliency", metric="fprec")
    assert s["value"].tolist() == [0.5] and s["run_key"].tolist() == ["k1"]
    assert math.isnan(store.scores(metric="uscore", run_key="k1")["value"].iloc[0])  # None is stored as null
    runs = store.runs()
    assert store.run_keys() == {"k1", "k2"}
    assert sorted(runs["run_key"]) == ["k1", "k2"] and json.loads(runs.set_index("run_key").loc["k1", "config"]) == {
        "seed": 0
    }
    # re-recording a run key supersedes its old rows (the new record lists fewer scores)
    store.add(
        "symbolic-result",
        {"seed": 0},
        RunRecord("symbolic", "formula:1", scores=(ScoreRow("saliency", "fprec", 0.75),)),
        run_key="k1",
    )
    assert store.scores(run_key="k1")[["metric", "value"]].values.tolist() == [["fprec", 0.75]]
    assert len(store.runs()) == 2
    raw = store.query("SELECT count(*) AS n FROM _scores_all")["n"].iloc[0]
    assert raw == 7  # 3 + 3 + 1 rows on disk; the views show 1 + 3
    removed = store.compact()
    assert removed == {"scores": 3, "runs": 3}
    assert len(store.parts("scores")) == 1 and len(store.parts("runs")) == 1
    assert store.query("SELECT count(*) AS n FROM _scores_all")["n"].iloc[0] == 4
    assert store.scores(run_key="k1")["value"].tolist() == [0.75]


def test_interrupted_write_is_never_read(tmp_path):
    store = ResultsStore(tmp_path / "r")
    store.add("symbolic-result", {}, _rec(0.5), run_key="k1")
    # what a writer killed mid-write leaves: a temporary part, even a truncated one
    (store.root / "scores" / ".tmp-part-x.part").write_bytes(b"PAR1 truncated")
    (store.root / "runs" / ".tmp-part-y.part").write_bytes(b"")
    assert len(store.scores()) == 3 and len(store.runs()) == 1
    # a scores part whose runs part never came (killed between the two) is invisible too
    store._write_part(
        "scores",
        pa.Table.from_pylist(
            [{"record_id": "orphan", "run_key": "k9", "method": "saliency", "metric": "fprec", "value": 0.1}],
            schema=SCORES_SCHEMA,
        ),
    )
    assert "k9" not in set(store.scores()["run_key"])
    assert store.sweep(older_than=0) == 2


def _writer(root: str, i: int, n: int) -> None:
    store = ResultsStore(root)
    for j in range(n):
        store.add("symbolic-result", {"i": i, "j": j}, _rec(i + j / 100), run_key=f"w{i}-{j}")


def test_concurrent_writers_in_several_processes(tmp_path):
    root = str(tmp_path / "r")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(root, i, 5)) for i in range(4)]
    for p in procs:
        p.start()
    compactions = 0
    while any(p.is_alive() for p in procs):  # compaction runs while they write
        ResultsStore(root).compact()
        compactions += 1
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = ResultsStore(root)
    assert len(store.runs()) == 20 and len(store.scores(metric="fprec")) == 20
    assert not list((tmp_path / "r").rglob(".tmp-*"))
    assert compactions >= 1 and store.compact()["runs"] >= 1 and len(store.runs()) == 20


@pytest.mark.parametrize(
    "sql",
    [
        "DROP VIEW scores",
        "COPY (SELECT 1) TO 'x.csv'",
        "SELECT 1; DELETE FROM _runs_all",
        "ATTACH 'x.db'",
        "INSTALL httpfs",
        "CREATE TABLE t AS SELECT 1",
        "SET threads = 1",
        "CALL pragma_version()",
    ],
)
def test_queries_are_read_only(tmp_path, sql):
    with pytest.raises(ReadOnlyQueryError):
        ResultsStore(tmp_path / "r").query(sql)


def test_queries_cannot_read_files(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with pytest.raises(Exception, match="disabled|Permission"):
        ResultsStore(tmp_path / "r").query(f"SELECT * FROM read_csv('{secret}')")


def test_record_never_raises(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert record("symbolic-result", {}, object(), store=ResultsStore(blocked)) is None
    assert record("no-such-kind", {}, object(), store=ResultsStore(tmp_path / "r")) is None
    assert "could not record" in caplog.text


def test_every_cache_result_kind_has_an_extractor_and_a_loader(tmp_path):
    from chaosmining.evaluation import blur_bias, faithfulness, road, roar, sanity
    from chaosmining.experiments import audio, rfe, symbolic, vision

    kinds = {m.RESULT_KIND for m in (symbolic, vision, audio, rfe)} | {
        m.KIND for m in (roar, road, blur_bias, sanity, faithfulness)
    }
    assert kinds == set(EXTRACTORS.names())
    assert kinds == set(rebuild_kinds())  # the run layer's kinds say how to load each of them
    assert rebuild(Cache(tmp_path / "empty"), ResultsStore(tmp_path / "r")).recorded == dict.fromkeys(kinds, 0)


def _tiny_symbolic(cache):
    from chaosmining.data.symbolic import SymbolicDataConfig
    from chaosmining.experiments.symbolic import EvalConfig, SymbolicConfig, run_symbolic
    from chaosmining.models.mlp import MLPConfig
    from chaosmining.training import TrainConfig

    cfg = SymbolicConfig(
        data=SymbolicDataConfig(formula="1", noise_features=4, samples=300),
        model=MLPConfig(width=8, depth=2),
        train=TrainConfig(epochs=15),
    )
    ev = EvalConfig(methods=("saliency", "random"), samples=50, curve_samples=0, measure_memory=False)
    return cfg, ev, run_symbolic(cfg, ev, cache=cache, device="cpu")


def test_rebuild_from_a_tiny_cache_and_record_agree(tmp_cache, tmp_path):
    cfg, ev, result = _tiny_symbolic(tmp_cache)
    direct = ResultsStore(tmp_path / "direct")
    rid = record("symbolic-result", {"model": cfg, "eval": ev}, result, device="cpu", seconds=1.0, store=direct)
    assert rid is not None
    store = ResultsStore(tmp_path / "rebuilt")
    report = rebuild(tmp_cache, store)
    assert report.recorded["symbolic-result"] == 1 and not report.skipped
    fprec = store.scores(metric="fprec").set_index("method")["value"]
    assert fprec["saliency"] == pytest.approx(result.fprec["saliency"])
    assert set(fprec.index) == {"saliency", "random"}
    # the same run key whichever way it was recorded (config objects or the manifest's JSON)
    assert (
        set(store.runs()["run_key"])
        == set(direct.runs()["run_key"])
        == {run_key_for("symbolic-result", {"model": cfg, "eval": ev})}
    )
    row = store.scores(metric="fprec", method="saliency").iloc[0]
    assert (row["modality"], row["task"], row["seed"]) == ("symbolic", "formula:1", 0)
    assert store.scores(method="", metric="test_mae")["value"].iloc[0] == pytest.approx(result.test_mae)
    # rebuilding again supersedes, it does not duplicate
    rebuild(tmp_cache, store)
    assert len(store.runs()) == 1 and len(store.scores(metric="fprec")) == 2


def test_results_cli_rebuild_query_json_csv(tmp_cache, tmp_path, capsys):
    _tiny_symbolic(tmp_cache)
    results = tmp_path / "store"
    common = ["--cache-dir", str(tmp_cache.root), "--results-dir", str(results)]
    assert main(["results", "rebuild", *common, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 1
    sql = "SELECT method, value FROM scores WHERE metric = 'fprec' ORDER BY method"
    assert main(["results", "query", sql, *common, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["columns"] == ["method", "value"] and [r["method"] for r in out["rows"]] == ["random", "saliency"]
    assert main(["results", "query", sql, *common, "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "method,value" and lines[1].startswith("random,") and len(lines) == 3
    assert main(["results", "query", "-- a comment first\nFROM runs SELECT count(*) AS n", *common, "--csv"]) == 0
    assert capsys.readouterr().out.split() == ["n", "1"]
    assert main(["results", "query", "DELETE FROM _runs_all", *common]) == 2
    assert "read-only" in capsys.readouterr().err


def test_results_query_reads_the_store_the_environment_variable_names(tmp_path, monkeypatch, capsys):
    root = tmp_path / "env-store"
    ResultsStore(root).add("symbolic-result", {}, _rec(0.5), run_key="k1")
    monkeypatch.setenv("CHAOSMINING_RESULTS", str(root))
    assert main(["results", "query", "SELECT count(*) AS n FROM scores", "--csv"]) == 0
    assert capsys.readouterr().out.split() == ["n", "3"]


def test_paper_reference_rows_name_their_source():
    t2 = paper_reference("table2")
    assert {v.source for v in t2} == {"Table 2"} and {v.setting for v in t2} == {"RBFP", "RBRP"}
    resnet = {(v.label, v.setting): (v.value, v.std) for v in t2 if v.model == "resnet18"}
    assert resnet[("Pred", "RBFP")] == (77.44, 0.164) and resnet[("SA", "RBRP")] == (0.659, 0.008)
    assert len(t2) == 8 * 2 * 5 - 1  # ViT-B/16's DeepLift IoU on RBFP is empty in the paper
    t4 = paper_reference("table4")
    assert {(v.model, v.label): v.value for v in t4 if v.setting == "SBFP"}[("lstm", "SA")] == 0.810
    assert paper_reference("figure4") == []
    assert {v.document for v in paper_reference("figure7")} == {"original code"}
    assert all(v.source for v in paper_reference())
    with pytest.raises(ValueError, match="table2"):
        paper_reference("table9")


def test_evaluation_results_rebuild_with_their_summary_numbers(tmp_cache, tmp_path):
    from chaosmining.evaluation import FaithfulnessConfig, RoarConfig, TaskConfig, run_faithfulness, run_roar

    task = TaskConfig(task="toy16", n_train=500, n_test=100)
    faith = run_faithfulness(
        FaithfulnessConfig(task=task, methods=("saliency", "random"), samples=100, steps=4, sens_samples=5, subsets=10),
        cache=tmp_cache,
    )
    roar = run_roar(RoarConfig(task=task, methods=("saliency", "random"), retrain=False), cache=tmp_cache)
    store = ResultsStore(tmp_path / "r")
    report = rebuild(tmp_cache, store)
    assert report.recorded["eval-faithfulness"] == 1 and report.recorded["eval-roar"] == 1, report.skipped
    deletion = store.scores(kind="eval-faithfulness", metric="deletion_auc").set_index("method")["value"]
    assert deletion["saliency"] == pytest.approx(faith.aucs()["saliency"]["deletion_auc"])
    area = store.scores(kind="eval-roar", metric="roar_no_retrain_area").set_index("method")["value"]
    assert area["random"] == pytest.approx(roar.no_retrain["random"].area())
    row = store.scores(kind="eval-roar", method="saliency").iloc[0]
    assert (row["task"], row["seed"]) == ("toy16", 0)


def test_writers_compact_a_store_of_many_parts_unless_it_is_busy(tmp_path, monkeypatch):
    import fcntl

    from chaosmining.results import store as store_module

    monkeypatch.setattr(store_module, "AUTO_COMPACT_PARTS", 3)
    store = ResultsStore(tmp_path / "r")
    for i in range(3):
        store.add("symbolic-result", {}, _rec(i / 10), run_key=f"k{i}")
    assert len(store.parts("runs")) == 1 and len(store.runs()) == 3
    with open(store.root / ".lock", "a+") as fh:  # another process reading: compaction does not wait
        fcntl.flock(fh, fcntl.LOCK_SH)
        store.add("symbolic-result", {}, _rec(0.5), run_key="k3")
        store.add("symbolic-result", {}, _rec(0.6), run_key="k4")
        assert store.compact(wait=False) == {} and len(store.parts("runs")) == 3
        fcntl.flock(fh, fcntl.LOCK_UN)
    assert len(store.runs()) == 5


def test_feature_selection_results_rebuild_with_precision_and_error_per_selector(tmp_cache, tmp_path):
    from chaosmining.experiments.rfe import RFEConfig, RFEDataConfig, run_rfe
    from chaosmining.training import TrainConfig

    config = RFEConfig(
        data=RFEDataConfig(task="formula:2*a - 3*b + c", noise_features=5, samples=300),
        selectors=("saliency", "linear"),
        train=TrainConfig(epochs=20, snapshots=1),
    )
    result = run_rfe(config, cache=tmp_cache, workers=1)
    store = ResultsStore(tmp_path / "r")
    assert rebuild(tmp_cache, store, kinds=["rfe-result"]).recorded == {"rfe-result": 1}
    s = store.scores(kind="rfe-result")
    final = s[s["metric"] == "precision"].set_index("method")["value"]
    assert final.to_dict() == pytest.approx({k: r.final_precision for k, r in result.runs.items()})
    error = s[s["metric"] == "test_error"].set_index("method")["value"]
    assert error["linear"] == pytest.approx(result.runs["linear"].final_error)
    rounds = s[(s["method"] == "saliency") & s["metric"].str.startswith("precision@")]
    assert len(rounds) == len(result.runs["saliency"].rounds)
    assert (s["modality"] == "feature_selection").all() and (s["task"] == "formula:2*a - 3*b + c").all()
