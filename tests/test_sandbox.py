"""Paths typed in the browser stay under the data roots; messages never show what lies outside them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chaosmining import sandbox
from chaosmining.sandbox import DATA_ROOTS_ENV, PathRefused, allowed_roots, resolve_user_path


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    r = tmp_path / "data"
    (r / "sub").mkdir(parents=True)
    (r / "sub" / "t.csv").write_text("x,y\n1,0\n")
    (tmp_path / "secret.txt").write_text("TOPSECRET\n")
    monkeypatch.setenv(DATA_ROOTS_ENV, f"{r}{os.pathsep}{tmp_path / 'missing-root'}")
    return r


def test_roots_come_from_the_environment_and_default_to_data_beside_the_cache(root, monkeypatch, tmp_path):
    assert allowed_roots() == (root.resolve(), (tmp_path / "missing-root").resolve())
    monkeypatch.delenv(DATA_ROOTS_ENV)
    monkeypatch.setenv("CHAOSMINING_CACHE", str(tmp_path / "c" / "cache"))
    assert allowed_roots()[:2] == ((tmp_path / "c" / "data").resolve(), Path("/usr/share/datasets"))


def test_a_file_and_a_folder_inside_a_root_are_resolved(root):
    assert resolve_user_path(str(root / "sub" / "t.csv"), parameter="CSV path") == (root / "sub" / "t.csv").resolve()
    assert resolve_user_path(f"  {root}/sub/../sub  ", parameter="data root", kind="folder") == (root / "sub").resolve()


@pytest.mark.parametrize(
    "typed",
    [
        "/proc/self/environ",
        "/etc/passwd",
        "/root",
        "{root}/../secret.txt",
        "{root}/sub/../../secret.txt",
        "relative.csv",
    ],
)
def test_paths_outside_the_roots_are_refused_naming_the_roots_and_nothing_else(root, typed):
    typed = typed.format(root=root)
    with pytest.raises(PathRefused) as info:
        resolve_user_path(typed, parameter="CSV path")
    msg = str(info.value)
    assert msg.startswith("The 'CSV path' parameter of the app must be a path under one of the data roots ")
    assert repr(str(root.resolve())) in msg and "CHAOSMINING_DATA_ROOTS" in msg and f"Got {typed!r} instead." in msg
    assert "TOPSECRET" not in msg and "PATH=" not in msg and "root:" not in msg


def test_a_symlink_that_leaves_the_root_is_refused_and_one_that_stays_inside_is_followed(root, tmp_path):
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    (root / "escape_dir").symlink_to(tmp_path)
    (root / "inside").symlink_to(root / "sub" / "t.csv")
    for name, kind in (("escape", "file"), ("escape_dir", "folder")):
        with pytest.raises(PathRefused, match="must be a path under one of the data roots"):
            resolve_user_path(str(root / name), parameter="data root", kind=kind)
    assert resolve_user_path(str(root / "inside"), parameter="CSV path") == (root / "sub" / "t.csv").resolve()


def test_refusal_outside_the_roots_does_not_reveal_whether_the_path_exists(root, tmp_path):
    messages = []
    for p in (tmp_path / "secret.txt", tmp_path / "nothing.txt"):
        with pytest.raises(PathRefused) as info:
            resolve_user_path(str(p), parameter="CSV path")
        messages.append(str(info.value).replace(str(p), "P"))
    assert messages[0] == messages[1]


def test_missing_wrong_kind_empty_and_unreadable_paths_get_a_message(root, monkeypatch):
    with pytest.raises(PathRefused, match=r"must be an existing file under the data roots. Got '.*nope.csv' instead"):
        resolve_user_path(str(root / "nope.csv"), parameter="CSV path")
    with pytest.raises(PathRefused, match="must be an existing folder"):
        resolve_user_path(str(root / "sub" / "t.csv"), parameter="data root", kind="folder")
    with pytest.raises(PathRefused, match="must be an existing file"):
        resolve_user_path(str(root / "sub"), parameter="CSV path")
    with pytest.raises(PathRefused, match="must be a file path. Got '' instead"):
        resolve_user_path("  ", parameter="CSV path")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sandbox, "open", refuse, raising=False)  # works as root too, where chmod 000 does not
    with pytest.raises(PathRefused, match="must be a file the server can read"):
        resolve_user_path(str(root / "sub" / "t.csv"), parameter="CSV path")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_a_file_without_read_permission_is_a_message(root):
    f = root / "sub" / "t.csv"
    f.chmod(0)
    with pytest.raises(PathRefused, match="the server can read"):
        resolve_user_path(str(f), parameter="CSV path")
