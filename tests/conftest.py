"""Shared fixtures.

* The whole session uses a private cache folder (``CHAOSMINING_CACHE``), never the repository's.
* ``app_server`` starts ``streamlit run app.py`` once per session on a free port, against that cache.
* ``page`` is a Playwright page in Debian's Chromium (``/usr/bin/chromium``); Playwright's own browser
  download does not work offline. Without Chromium the browser tests fail when
  ``CHAOSMINING_REQUIRE_BROWSER=1`` (as ``make test`` sets) and are skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SESSION_CACHE = Path(tempfile.mkdtemp(prefix="chaosmining-test-cache-"))
os.environ["CHAOSMINING_CACHE"] = str(SESSION_CACHE)
# Screenshots of the browser tests land here (not committed) for a human to look at.
SHOTS = Path(os.environ.get("CHAOSMINING_SHOTS", tempfile.gettempdir())) / "chaosmining-shots"
SHOTS.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("CHAOSMINING_THREADS", "1")
os.environ.setdefault("CHAOSMINING_WORKERS", "2")

import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_sessionfinish(session, exitstatus):  # noqa: ANN001, ARG001
    shutil.rmtree(SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def session_cache() -> Path:
    return SESSION_CACHE


@pytest.fixture
def tmp_cache(tmp_path):
    """A fresh, empty cache for tests that need to see building, locking or corruption."""
    from chaosmining.cache import Cache

    return Cache(tmp_path / "cache")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cache: Path, log_path: Path, **env: str) -> tuple[subprocess.Popen, str]:
    """Start ``streamlit run app.py`` on a free loopback port against ``cache``; return the process and its URL."""
    port = _free_port()
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process by stop_server
    full_env = {
        **os.environ,
        "CHAOSMINING_CACHE": str(cache),
        "PYTHONUNBUFFERED": "1",
        "PYTHONFAULTHANDLER": "1",
        **env,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc.log = log  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early, see {log_path}")
    else:
        proc.kill()
        raise RuntimeError("streamlit did not become healthy within 90 s")
    return proc, url


def stop_server(proc: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM the server, wait for it (kill after ``timeout``) and return its exit status."""
    proc.terminate()
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack into the log
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        code = -signal.SIGKILL
    proc.log.close()  # type: ignore[attr-defined]
    return code


@pytest.fixture(scope="session")
def app_server():
    """URL of a Streamlit server running this repository's app (one per test session)."""
    proc, url = start_server(SESSION_CACHE, SESSION_CACHE.parent / "streamlit-session.log")
    yield url
    stop_server(proc, 10)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    exe = chromium_path()
    if exe is None:
        if os.environ.get("CHAOSMINING_REQUIRE_BROWSER") == "1":
            pytest.fail("Debian's chromium is required for the browser tests (apt-get install chromium).")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=exe,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def wait_for_app(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished running the page's script (the app root's script state)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=stApp]');"
        " const s = a && a.getAttribute('data-test-script-state');"
        " return s === 'notRunning' || s === 'initial'; }",
        timeout=timeout,
    )


APP_TITLES = (
    "Home",
    "Symbolic functions",
    "Vision",
    "Audio",
    "Feature selection",
    "Evaluate the evaluators",
    "Results",
)


def expect_app_navigation(page, timeout: float = 60_000) -> None:
    """The sidebar lists app.py's page titles, never Streamlit's old-style entry named after the script ("app"),
    also when the first visit to a fresh server opens a page by its url."""
    from playwright.sync_api import expect

    nav = page.get_by_test_id("stSidebarNav")
    expect(nav).to_contain_text("Home", timeout=timeout)
    labels = nav.inner_text()
    assert all(title in labels for title in APP_TITLES), labels
    assert "app" not in labels.split(), labels


def _widget(page, testid: str, label: str, scope: str | None):
    root = page.locator(scope) if scope else page
    return (
        root.get_by_test_id(testid)
        .filter(has=page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True))
        .filter(visible=True)
        .first
    )


def set_number(page, label: str, value: str, *, scope: str | None = None) -> None:
    """Type ``value`` into the number input labelled ``label``, then wait until the rerun has shown it."""
    from playwright.sync_api import expect

    wait_for_app(page)
    box = _widget(page, "stNumberInput", label, scope).locator("input")
    box.fill(value)
    box.press("Enter")
    wait_for_app(page)
    expect(box).to_have_value(value, timeout=30_000)


def choose(page, label: str, option: str, *, scope: str | None = None, exact: bool = True, attempts: int = 4) -> None:
    """Pick ``option`` in the select box labelled ``label``; retried when a rerun replaces the popup."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    box = _widget(page, "stSelectbox", label, scope)
    value = box.get_by_role("combobox")  # Streamlit's select box is a combo box; its input holds the choice
    for _ in range(attempts):
        wait_for_app(page)
        try:
            if value.input_value(timeout=30_000) == option or (not exact and option in value.input_value()):
                return
            box.get_by_role("button", name="Open").click(timeout=15_000)
            page.get_by_role("option", name=option, exact=exact).first.click(timeout=15_000)
            if exact:
                expect(value).to_have_value(option, timeout=30_000)
            wait_for_app(page)
            return
        except (PlaywrightTimeout, AssertionError):
            page.keyboard.press("Escape")
    raise AssertionError(f"could not choose {option!r} in the select box {label!r}")


BROKEN = ("broken_raises", "broken_shape", "broken_nan")


@pytest.fixture
def broken(tmp_path, monkeypatch):
    """Three broken attribution methods (``tests/broken_plugin.py``: one raises, one returns the wrong shape,
    one NaN), loaded from a copy of the plugin file that worker processes load too (``CHAOSMINING_PLUGINS``);
    unregistered afterwards. A fresh copy per test, as loading one file twice does nothing."""
    from chaosmining.plugins import load_plugin, unregister_method

    path = tmp_path / "broken_plugin.py"
    path.write_text((Path(__file__).parent / "broken_plugin.py").read_text())
    monkeypatch.setenv("CHAOSMINING_PLUGINS", str(path))
    assert sorted(load_plugin(str(path))) == sorted(BROKEN)
    yield BROKEN
    for name in BROKEN:
        unregister_method(name)
