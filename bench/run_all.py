"""Run every benchmark script in bench/ with its default (quick) arguments: `make bench`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_ARGS = {"bench_symbolic.py": ["all"]}

for script in sorted(HERE.glob("bench_*.py")):
    print(f"##### {script.name}", flush=True)
    subprocess.run([sys.executable, str(script), *DEFAULT_ARGS.get(script.name, [])], check=False)
