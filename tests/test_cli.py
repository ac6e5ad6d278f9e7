"""The command line contract: JSON keys, one-line errors, bundles that re-run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaosmining.cli import main

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--noise-features", "6", "--samples", "600", "--epochs", "40", "--width", "16", "--depth", "2", "--lr", "0.01"]


def test_python_dash_m_symbolic_json_contract_export_and_rerun(tmp_path):
    """The real entry point, in a subprocess: JSON keys, cache flag, export, bundle re-run."""
    cache, exp = tmp_path / "c", tmp_path / "exp"
    cmd = [sys.executable, "-m", "chaosmining", "symbolic", "--formula", "a*b + c", *SMALL]
    cmd += ["--methods", "saliency,integrated_gradients", "--json", "--cache-dir", str(cache)]
    cmd += ["--export", str(exp), "--export-formats", "html,csv"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    for key in ("fprec", "uscore", "prediction_uscore", "test_mae", "seconds", "cached", "device"):
        assert key in s
    assert set(s["fprec"]) == {"saliency", "integrated_gradients"} and s["cached"] is False
    files = {p.name for p in exp.iterdir()}
    assert {"bundle.json", "fprec.html", "fprec.csv", "scores.csv", "plotly.min.js"} <= files
    assert main(["rerun", str(exp / "bundle.json"), "--json", "--cache-dir", str(cache)]) == 0


def test_rerun_reports_agreement_with_the_bundle(tmp_path, capsys):
    args = ["symbolic", "--formula", "2", *SMALL, "--methods", "saliency", "--cache-dir", str(tmp_path), "--json"]
    assert main(args + ["--export", str(tmp_path / "e"), "--export-formats", "csv"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["rerun", str(tmp_path / "e" / "bundle.json"), "--json", "--cache-dir", str(tmp_path)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["cached"] and again["fprec"] == first["fprec"] and again["max_fprec_difference_from_bundle"] == 0


@pytest.mark.parametrize(
    "args,needle",
    [
        (["symbolic", "--formula", "__import__('os').system('true')"], "double underscores"),
        (["symbolic", "--formula", "1", "--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
        (["symbolic", "--formula", "1", "--lr", "-3"], "The 'lr' parameter of TrainConfig"),
        (["symbolic", "--formula", "1", "--methods", "gradcam"], "Unknown attribution method 'gradcam'"),
        (["symbolic", "--formula", "1", "--precision", "fp16"], "The 'precision' parameter of TrainConfig"),
        (["rfe", "--task", "formula:11", "--precision", "fp8"], "The 'precision' parameter of TrainConfig"),
        (["symbolic", "--formula", "1", "--samples", "5"], "The 'samples' parameter"),
        (["symbolic", "--formula", "log(a)", "--samples", "100", "--epochs", "1"], "not finite"),
        (["symbolic"], "the following arguments are required: --formula"),
        (["sweep", "--factor", "depth", "--values", "x"], "--values"),
        (["rerun", "/nonexistent/bundle.json"], "'bundle' argument could not be read"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_naming_them(args, needle, tmp_path, capsys):
    try:
        code = main([*args, "--cache-dir", str(tmp_path)])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], err


def test_sweep_command_over_two_values(tmp_path, capsys):
    args = ["sweep", "--factor", "noise_features", "--values", "2,8", "--formula", "1", *SMALL[2:]]
    assert main([*args, "--methods", "saliency", "--workers", "1", "--json", "--cache-dir", str(tmp_path)]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["values"] == [2, 8] and len(s["fprec"]["saliency"]) == 2 and not s["errors"]
