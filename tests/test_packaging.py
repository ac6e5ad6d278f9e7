"""The wheel holds the library, the app and the demo entries; `chaosmining app` works from an install;
the library never needs Streamlit; the Streamlit internal that page navigation relies on is still there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = "chaosmining/_app"
_NOT_BUILT = {".git", ".venv", "cache", "build", "exports", "tests", "bench", ".pytest_cache", ".ruff_cache"}


def _not_built(folder: str, names: list[str]) -> set[str]:
    """Top-level runtime and tool folders (the root's cache/, not assets/cache/) and bytecode."""
    top = _NOT_BUILT | {n for n in names if n.endswith(".egg-info")} if Path(folder) == ROOT else set()
    return top | {n for n in names if n == "__pycache__"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps`` of a copy of this tree (an in-tree build would leave build/ behind)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_not_built)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src), "-w", str(tmp)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (whl,) = tmp.glob("chaosmining_explorer-*.whl")
    return whl


def _names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def test_wheel_holds_the_library_the_app_and_the_demo_entries(wheel):
    names = _names(wheel)
    library = {p.relative_to(ROOT).as_posix() for p in (ROOT / "chaosmining").rglob("*.py")}
    assert library <= names
    app = {"app.py", ".streamlit/config.toml"}
    app |= {p.relative_to(ROOT).as_posix() for d in ("pages", "ui") for p in (ROOT / d).glob("*.py")}
    app |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "assets" / "cache").rglob("*") if p.is_file()}
    assert any(n.startswith("assets/cache/") for n in app) and any(n.startswith("pages/") for n in app)
    assert {f"{APP}/{n}" for n in app} <= names
    assert f"{APP}/setup.py" not in names
    assert not any(n.startswith(("tests/", "bench/", "cache/")) or n.startswith(f"{APP}/tests") for n in names)


def test_wheel_metadata_has_ranges_and_streamlit_only_in_the_app_extra(wheel):
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))).decode()
    requires = re.findall(r"^Requires-Dist: (.+)$", meta, flags=re.M)
    assert requires and not any("==" in r.split(";")[0] for r in requires)
    core = [r for r in requires if "extra ==" not in r]
    assert not any(r.startswith("streamlit") for r in core)
    assert any(r.startswith("streamlit") and 'extra == "app"' in r for r in requires)
    assert {"app", "cluster", "dev"} <= set(re.findall(r"^Provides-Extra: (\S+)$", meta, flags=re.M))
    assert "chaosmining = chaosmining.cli:main" in entry_points


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (--no-deps); its dependencies come from this interpreter's site-packages."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python*/site-packages"))
    shared = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "shared.pth").write_text("\n".join(shared) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "-q"]
    out = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return venv


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CHAOSMINING_CACHE")}
    return {**env, "XDG_CACHE_HOME": str(tmp_path / "xdg"), **extra}


def test_installed_chaosmining_app_help_and_command(installed, tmp_path):
    exe = installed / "bin" / "chaosmining"
    out = subprocess.run([exe, "app", "--help"], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "streamlit run" in out.stdout
    cmd = [exe, "app", "--print-command", "--server.port", "8599"]
    out = subprocess.run(cmd, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    script = out.stdout.split()[4]
    assert script.startswith(str(installed)) and script.endswith(f"{APP}/app.py")
    assert out.stdout.split()[-2:] == ["--server.port", "8599"]
    assert (Path(script).parent / "pages" / "2_Vision.py").is_file()


def test_installed_cache_defaults_to_the_user_cache_folder_and_seeds_from_the_wheel(installed, tmp_path):
    code = "from chaosmining.cache import Cache; c = Cache(); print(c.root); print(c.seed_roots[0])"
    py = installed / "bin" / "python"
    out = subprocess.run([py, "-c", code], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    root, seeds = out.stdout.split()
    assert root == str(tmp_path / "xdg" / "chaosmining")
    assert seeds.startswith(str(installed)) and any(Path(seeds).iterdir())
    env = _env(tmp_path, CHAOSMINING_CACHE=str(tmp_path / "mine"))
    out = subprocess.run([py, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.stdout.split()[0] == str(tmp_path / "mine")


def test_a_checkout_keeps_its_cache_folder(monkeypatch):
    from chaosmining import locations

    monkeypatch.delenv("CHAOSMINING_CACHE", raising=False)
    assert locations.CHECKOUT_ROOT == ROOT and locations.default_cache_root() == ROOT / "cache"
    assert locations.ASSETS_ROOT == ROOT / "assets" / "cache"


def test_the_library_and_the_cli_never_import_streamlit():
    for path in (ROOT / "chaosmining").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+streamlit\b", path.read_text(), flags=re.M), path
    # With Streamlit made unimportable, every library module imports and the CLI parses.
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        sys.modules["streamlit"] = None
        import chaosmining
        for m in pkgutil.walk_packages(chaosmining.__path__, "chaosmining."):
            if not m.name.endswith("__main__"):
                importlib.import_module(m.name)
        from chaosmining.cli import build_parser
        build_parser().parse_args(["symbolic", "--formula", "1", "--quiet"])
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# --- Streamlit conventions -------------------------------------------------------------------------------

_GUARDED_APP = """
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from ui.common import _through_app_navigation

st.session_state.setdefault("runs", [])
st.session_state["runs"].append(PagesManager.uses_pages_directory)
_through_app_navigation()
st.navigation([st.Page(lambda: st.write("home page"), title="Home", default=True)]).run()
"""


def test_the_pages_folder_guard_still_matches_the_pinned_streamlit(tmp_path, monkeypatch):
    """ui/common.py's guard relies on Streamlit's ``PagesManager.uses_pages_directory``: a ``pages/``
    folder beside the entry script switches on the legacy mode until ``st.navigation`` runs. This fails
    the day a Streamlit upgrade changes that (then the guard may be dropped or must be redone)."""
    from streamlit.testing.v1 import AppTest

    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "1_Page.py").write_text("import streamlit as st\nst.write('page')\n")
    (tmp_path / "app.py").write_text(_GUARDED_APP)
    monkeypatch.syspath_prepend(str(ROOT))
    at = AppTest.from_file(str(tmp_path / "app.py"), default_timeout=120).run()
    assert not at.exception
    # First run in the legacy mode; the guard cleared it and the rerun went through st.navigation.
    assert at.session_state["runs"] == [True, False]
    assert any("home page" in m.value for m in at.markdown)


def test_export_is_built_on_click_and_not_kept_in_session_state():
    from streamlit.testing.v1 import AppTest

    def page() -> None:
        import plotly.graph_objects as go

        from ui.common import export_section

        export_section("demo", lambda: {"line": go.Figure(go.Scatter(y=[1, 2]))}, lambda: {"task": "demo"})

    at = AppTest.from_function(page, default_timeout=120).run()
    assert not at.exception
    (button,) = at.get("download_button")
    assert button.proto.deferred_file_id and not button.proto.url  # data comes from the callable on click
    assert at.session_state.to_dict() == {"export_dl": False}  # no ZIP (bytes) waiting in session state
