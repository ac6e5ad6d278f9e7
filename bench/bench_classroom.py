"""A class on one server: 20 browser sessions press Train on different symbolic configurations, 2 more
train the vision quick preset, while fresh visitors keep opening the home and symbolic pages.

Reports, on this machine: p50/p95 seconds for a fresh session's home page and symbolic page to settle
during the load (and the same pages on the idle server before the class arrives, ``--idle-probes``), the
server process's peak RSS and its own CPU share apart from its workers, the runs completed, and the total
wall time against the same runs performed one after another by one worker (``--serial``).

    python bench/bench_classroom.py [--sessions 20] [--vision 2] [--epochs 300] [--serial]

Starts ``streamlit run app.py`` on a loopback port against a temporary cache and drives it with Playwright
and Debian's chromium; nothing leaves 127.0.0.1, and the run stops by itself after ``--timeout`` seconds.

The students' browsers stand in for the class's own machines, yet here they share the server's cores: they
run in one chromium at ``--load-nice`` (default 19) and under the ``SCHED_IDLE`` policy (``--no-load-idle``
to drop it; chromium raises its own processes' priority, which the idle policy ignores) so that their
rendering takes the CPU the server and its workers leave, as it would on 22 other machines. Playwright
starts every browser in a session of its own, and Linux's autogroup scheduling shares the CPU equally
between sessions before it applies nice values or the idle policy, so the students' session gets the same
nice value (``/proc/self/autogroup``). The fresh visitor that is timed has its own chromium at normal
priority. ``--load-nice 0 --no-load-idle`` puts everything on an equal footing (the harsher, less realistic
case). Probes start while the students arrive (after every ``--probe-arrival`` presses of Train) and go on
every ``--probe-every`` seconds until every run has finished; the runs' wall time counts from the first press.
"""

from __future__ import annotations

import argparse
import bisect
import calendar
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import choose, chromium_path, set_number, start_server, stop_server, wait_for_app  # noqa: E402


def _rss_mb(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` itself, without its children (the run workers)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _busiest(trace: list[tuple[float, float]], since: float, window: float) -> float:
    """The server's highest CPU share of one core over any ``window`` seconds after ``since``."""
    points = [(t, c) for t, c in trace if t >= since]
    times = [t for t, _ in points]
    best = 0.0
    for t0, c0 in points:
        j = bisect.bisect_left(times, t0 + window)  # the first sample at least ``window`` later
        if j < len(points):
            t1, c1 = points[j]
            best = max(best, (c1 - c0) / (t1 - t0))
    return best


def _results(cache: Path, kind: str, since: float) -> int:
    """Results of ``kind`` computed since ``since`` (shipped demo entries seeded into the cache carry their
    original creation time and do not count)."""
    d = cache / kind
    n = 0
    for p in d.iterdir() if d.is_dir() else ():
        try:
            created = json.loads((p / "manifest.json").read_text())["created"]
        except (OSError, ValueError, KeyError):
            continue
        if calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")) >= since - 1:
            n += 1
    return n


def _niced(exe: str, nice: int, idle: bool, folder: Path) -> str:
    """A launcher that starts ``exe`` at CPU priority ``nice``, under the ``SCHED_IDLE`` policy when ``idle``
    (Playwright takes any executable path). Chromium raises the nice value of its own browser and GPU
    processes when it may (as root); the idle policy is one it does not leave, so its weight stays the lowest."""
    if nice <= 0 and not idle:
        return exe
    chrt = "chrt --idle 0 " if idle else ""
    # Playwright starts each browser in a session of its own; under autogroup scheduling sessions share the
    # CPU equally whatever their processes' nice values, so the session's group gets the nice value too.
    group = f"echo {nice} > /proc/self/autogroup 2>/dev/null\n" if nice > 0 else ""
    script = folder / "chromium-niced"
    script.write_text(f'#!/bin/sh\n{group}exec {chrt}nice -n {max(nice, 0)} {exe} "$@"\n')
    script.chmod(0o755)
    return str(script)


def _settle_seconds(browser, url: str) -> float:
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    t = time.perf_counter()
    page.goto(url)
    wait_for_app(page, timeout=120_000)
    secs = time.perf_counter() - t
    ctx.close()
    return secs


def _serial_seconds(args: argparse.Namespace, cache: Path) -> float:
    """The same runs, one after another, through a one-worker executor on a fresh cache."""
    from dataclasses import replace

    from chaosmining.cache import Cache
    from chaosmining.experiments.symbolic import EvalConfig, SymbolicConfig
    from chaosmining.experiments.vision import VisionConfig, VisionEvalConfig
    from chaosmining.runs import RunSpec, make_executor

    ex = make_executor("local", cache=Cache(cache), workers=1)
    base = SymbolicConfig()
    specs = [
        RunSpec("symbolic", replace(base, seed=i, train=replace(base.train, epochs=args.epochs)), EvalConfig(), "cpu")
        for i in range(args.sessions)
    ]
    specs += [
        RunSpec("vision", VisionConfig.from_preset("quick", seed=i), VisionEvalConfig(), "cpu")
        for i in range(args.vision)
    ]
    t = time.perf_counter()
    for s in specs:
        ex.submit(s, session="serial").wait()
    secs = time.perf_counter() - t
    ex.shutdown()
    return secs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--vision", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=300, help="symbolic epochs per run (the page's default is 1000)")
    ap.add_argument("--probe-every", type=float, default=10.0, help="seconds between fresh-visitor probes")
    ap.add_argument(
        "--probe-arrival",
        type=int,
        default=4,
        help="probe after every N students have pressed Train (0: not while they arrive)",
    )
    ap.add_argument("--idle-probes", type=int, default=3, help="probes of the idle server before the class arrives")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--serial", action="store_true", help="also time the same runs one after another")
    ap.add_argument(
        "--load-nice", type=int, default=19, help="CPU priority of the students' browsers (0: as the server)"
    )
    ap.add_argument(
        "--load-idle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the students' browsers under the SCHED_IDLE policy (default on)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    exe = chromium_path()
    if exe is None:
        print("Debian's chromium is required (apt-get install chromium).", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="chaosmining-classroom-"))
    cache = tmp / "cache"
    proc, url = start_server(cache, tmp / "server.log")
    peak = {"rss": 0.0}
    stop = threading.Event()

    cpu_trace: list[tuple[float, float]] = []  # (time, the server's CPU seconds so far)

    def sample() -> None:
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], _rss_mb(proc.pid))
            cpu_trace.append((time.perf_counter(), _cpu_seconds(proc.pid)))
            time.sleep(0.5)

    threading.Thread(target=sample, daemon=True).start()
    home, sym, probed_at = [], [], []
    t0, started_at = time.perf_counter(), time.time()
    try:
        with sync_playwright() as p:
            flags = ["--no-sandbox", "--disable-gpu"]
            browser = p.chromium.launch(
                executable_path=_niced(exe, args.load_nice, args.load_idle, tmp), headless=True, args=flags
            )
            visitor = p.chromium.launch(executable_path=exe, headless=True, args=flags)
            _settle_seconds(visitor, url)  # the server's first page (imports, cache seeding) is not a probe
            idle = [
                (_settle_seconds(visitor, url), _settle_seconds(visitor, url + "/Symbolic_functions"))
                for _ in range(args.idle_probes)
            ]
            students = []
            first_press = cpu0 = None  # when the first student pressed Train, and the server's CPU seconds then

            def probe() -> None:
                probed_at.append(time.perf_counter() - (first_press or time.perf_counter()))
                home.append(_settle_seconds(visitor, url))
                sym.append(_settle_seconds(visitor, url + "/Symbolic_functions"))

            def student(path: str, numbers: dict[str, int], preset: str | None = None) -> None:
                """A student opens ``path``, picks ``preset``, types ``numbers`` (label: value) and presses Train;
                the page stays open."""
                nonlocal first_press, cpu0
                ctx = browser.new_context(viewport={"width": 1200, "height": 900})
                page = ctx.new_page()
                page.set_default_timeout(180_000)
                page.goto(url + path)
                wait_for_app(page, timeout=180_000)
                if preset is not None:
                    choose(page, "Preset", preset, exact=False)
                for label, value in numbers.items():
                    set_number(page, label, str(value))
                page.get_by_role("button", name="Train").click()
                if first_press is None:
                    first_press, cpu0 = time.perf_counter(), _cpu_seconds(proc.pid)
                students.append(ctx)
                if args.probe_arrival and len(students) % args.probe_arrival == 0:
                    probe()  # while the class is still arriving: students' pages load as runs train

            for i in range(args.sessions):
                student("/Symbolic_functions", {"Seed": i, "Epochs": args.epochs})
            for i in range(args.vision):
                student("/Vision", {"Seed": i}, preset="Quick")
            submitted = time.perf_counter()
            total = args.sessions + args.vision
            while time.perf_counter() - t0 < args.timeout:
                done = _results(cache, "symbolic-result", started_at) + _results(cache, "vision-result", started_at)
                probe()
                if done >= total:
                    break
                time.sleep(args.probe_every)
            wall = time.perf_counter() - first_press
            server_cpu = _cpu_seconds(proc.pid) - cpu0
            done = _results(cache, "symbolic-result", started_at) + _results(cache, "vision-result", started_at)
            for ctx in students:
                ctx.close()
            browser.close()
            visitor.close()
    finally:
        stop.set()
        code = stop_server(proc, 60)

    def pct(xs: list[float], q: float) -> float:
        return statistics.quantiles(xs, n=100)[int(q) - 1] if len(xs) >= 2 else (xs[0] if xs else float("nan"))

    out = {
        "machine": f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30} GB",
        "sessions": args.sessions,
        "vision": args.vision,
        "students_browser_nice": args.load_nice,
        "students_browser_sched_idle": args.load_idle,
        "runs_completed": done,
        "runs_submitted": total,
        # from the first press of Train to the last; the runs' wall time counts from the first
        "arrival_seconds": round(submitted - first_press, 1),
        "wall_seconds_all_runs": round(wall, 1),
        "server_cpu_share_of_one_core": round(server_cpu / wall, 3),
        "server_cpu_share_busiest_10s": round(_busiest(cpu_trace, first_press, 10.0), 3),
        "home_settle_p50_s": round(pct(home, 50), 2),
        "home_settle_p95_s": round(pct(home, 95), 2),
        "symbolic_settle_p50_s": round(pct(sym, 50), 2),
        "symbolic_settle_p95_s": round(pct(sym, 95), 2),
        "probes": len(home),
        "idle_server_home_symbolic_s": [[round(a, 2), round(b, 2)] for a, b in idle],
        "server_peak_rss_mb": round(peak["rss"], 0),
        "server_exit_status": code,
        "probe_started_s": [round(x, 1) for x in probed_at],
        "home_settle_s": [round(x, 2) for x in home],
        "symbolic_settle_s": [round(x, 2) for x in sym],
    }
    if args.serial:
        serial = _serial_seconds(args, tmp / "serial-cache")
        out["serial_wall_seconds"] = round(serial, 1)
        out["parallel_over_serial"] = round(wall / serial, 2)
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
