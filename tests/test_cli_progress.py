"""Command-line progress (stderr, never in --json output, silent with --quiet) and command registration."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chaosmining.cli import build_parser, main
from chaosmining.commands import COMMANDS
from chaosmining.commands.progress import ProgressReporter

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--formula", "1", "--noise-features", "3", "--samples", "200", "--epochs", "20", "--methods", "saliency"]


def test_progress_goes_to_stderr_and_json_stays_alone_on_stdout(tmp_path, capsys):
    assert main(["symbolic", *TINY, "--json", "--cache-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["fprec"]["saliency"] >= 0  # stdout is exactly one JSON object
    assert "%|" not in out and "training" not in out
    assert re.search(r"training: 100%\|.*\| 20/20", err), err
    assert "attributing" in err


def test_quiet_prints_no_progress(tmp_path, capsys):
    assert main(["symbolic", *TINY, "--json", "--quiet", "--cache-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["cached"] is False
    assert err == ""


def test_every_work_command_and_rerun_take_the_run_options():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001 - argparse has no public accessor
    work = [name for name, cmd in COMMANDS.items() if cmd.work] + ["rerun"]
    assert {"symbolic", "sweep", "vision", "audio", "rfe", "roar", "road", "blur", "sanity", "faithfulness"} <= set(
        work
    )
    for name in work:
        assert "--quiet" in sub.choices[name].format_usage(), name


def test_one_reporter_sums_selection_rounds_and_restarts_per_stage():
    """Events as the library sends them: two selectors x three rounds is one count of six."""
    f = io.StringIO()
    with ProgressReporter(file=f) as report:
        report(stage="making train images", done=10, total=10)
        report(stage="training", epoch=1.5, epochs=3, loss=0.25, test_accuracy=0.5)
        report(config=0, schedule=[12, 6, 3], selectors=["rfewna_ig", "rfe_linear"])
        report(config=0, selector="rfewna_ig", round=0, done_rounds=2, total_rounds=3)
        report(config=0, selector="rfe_linear", round=0, done_rounds=1, total_rounds=3)
    text = f.getvalue().replace("\r", "\n")
    assert "making train images: 100%" in text
    assert "1.5/3" in text and "loss 0.25" in text and "test acc 0.500" in text
    assert re.search(r"selection rounds:\s+50%.*\| 3/6", text), text


def test_disabled_reporter_writes_nothing():
    f = io.StringIO()
    with ProgressReporter(enabled=False, file=f) as report:
        report(stage="training", epoch=1, epochs=2, loss=1.0)
    assert f.getvalue() == ""


def test_commands_register_without_cli_and_without_private_helpers():
    """No command module imports chaosmining.cli (no circle, no private helpers); cli imports the commands."""
    for path in (ROOT / "chaosmining" / "commands").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"from \.\.cli import|import chaosmining\.cli|from chaosmining\.cli", text), path
    code = "import sys, chaosmining.commands as c; assert 'chaosmining.cli' not in sys.modules; print(len(c.COMMANDS))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 11


@pytest.mark.parametrize("args", [["symbolic", "--formula", "1", "--bogus"], ["rerun", "x.json", "--bogus", "1"]])
def test_unknown_arguments_are_still_one_line_errors(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: unrecognized arguments: --bogus") and err.count("\n") == 1
