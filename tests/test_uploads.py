"""Uploads: size limit, private temporary storage, bad CSVs named; exported CSVs never run as formulas."""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

from chaosmining.data.tabular import MAX_CSV_COLUMNS, read_label_csv, sniff_csv
from chaosmining.errors import ConfigError, DataError
from chaosmining.experiments.rfe import RFEDataConfig
from chaosmining.export import csv_bytes, export_bundle
from chaosmining.uploads import UPLOADS_ENV, is_upload, store_upload, sweep_uploads, upload_dir


@pytest.fixture
def uploads(tmp_path, monkeypatch):
    monkeypatch.setenv(UPLOADS_ENV, str(tmp_path / "up"))
    return tmp_path / "up"


def test_an_upload_over_the_limit_is_refused_with_the_limit_and_its_size(uploads):
    with pytest.raises(DataError, match=r"The 'upload' parameter of the app must be a file of at most 1 MB\. "):
        store_upload("big.csv", b"x" * (1024 * 1024 + 1), max_mb=1)
    assert not list(upload_dir().iterdir())


def test_uploads_are_content_addressed_private_and_swept_after_a_day(uploads):
    a = store_upload("../../etc/My data.csv", b"x,y\n1,0\n")
    assert a.name == "My_data.csv" and a.parent.parent == uploads and is_upload(a)
    assert store_upload("../../etc/My data.csv", b"x,y\n1,0\n") == a
    assert store_upload("other", b"x,y\n1,0\n") == a.parent / "other.csv"
    assert oct(uploads.stat().st_mode & 0o777) == "0o700"
    old = time.time() - 2 * 24 * 3600
    os.utime(a.parent, (old, old))
    assert sweep_uploads() == 1 and not a.exists()
    assert not is_upload(uploads.parent / "elsewhere.csv")


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"is binary \(it holds NUL bytes\)"),
        ("x,y\ncafé,0\n".encode("latin-1"), r"is not UTF-8 text \(an invalid byte at offset 7\)"),
        (b"\n1,0\n", "has no header line"),
    ],
)
def test_bad_csv_files_get_a_message_naming_the_problem(tmp_path, content, problem):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"The CSV file 'bad.csv' {problem}"):
        read_label_csv(path)


def test_a_too_wide_csv_is_refused_where_a_limit_is_given(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(MAX_CSV_COLUMNS + 1)) + ",y\n")
    with pytest.raises(DataError, match=rf"has {MAX_CSV_COLUMNS + 2} columns; at most {MAX_CSV_COLUMNS} are allowed"):
        sniff_csv(path, max_columns=MAX_CSV_COLUMNS)
    assert sniff_csv(path) == MAX_CSV_COLUMNS + 2  # the command line has no limit


def test_messages_about_a_file_outside_the_data_roots_never_quote_its_content(tmp_path, uploads, monkeypatch):
    """The issue's leak: the header of /proc/self/environ (or /etc/shadow) came back as 'its columns'."""
    monkeypatch.setenv("CHAOSMINING_DATA_ROOTS", str(tmp_path / "data"))
    secret = tmp_path / "environ.csv"
    secret.write_text("SECRET_TOKEN=abc123,city\n1,x\n2,y\n")
    with pytest.raises(DataError) as info:
        read_label_csv(secret)
    assert "SECRET" not in str(info.value) and "abc123" not in str(info.value) and "its 2 columns" in str(info.value)
    with pytest.raises(DataError) as info:
        read_label_csv(secret, label="SECRET_TOKEN=abc123")  # a label the user typed may be echoed
    assert "non-numeric columns at positions 2 (counting from 1)" in str(info.value) and "city" not in str(info.value)
    mine = store_upload("mine.csv", secret.read_bytes())  # the user's own upload: its column names are fine
    with pytest.raises(DataError, match=r"columns \('SECRET_TOKEN=abc123', 'city'\)"):
        read_label_csv(mine)
    (tmp_path / "data").mkdir()
    public = tmp_path / "data" / "public.csv"  # under a data root, which a browser may name anyway
    public.write_bytes(secret.read_bytes())
    with pytest.raises(DataError, match=r"columns \('SECRET_TOKEN=abc123', 'city'\)"):
        read_label_csv(public)


def test_proc_self_mem_is_a_message_not_a_traceback():
    with pytest.raises(ConfigError, match=r"'csv:PATH' with a CSV file this process can read"):
        RFEDataConfig(task="csv:/proc/self/mem")


def test_exported_csv_cells_that_a_spreadsheet_would_run_are_neutralised():
    table = pd.DataFrame(
        {
            "=cmd|' /C calc'!A0": [1, 2, 3, 4, 5, 6],
            "name": ["=1+1", "+SUM(A1)", "-2+3", "@x", "\tTAB", "plain"],
            "mixed": ["-0.5", -1.5, "\rCR", 1e-3, None, "a=b"],
            "value": [-1.0, 2.0, -3.0, 4.0, 5.0, 6.0],
        }
    )
    back = pd.read_csv(pd.io.common.BytesIO(csv_bytes(table)), keep_default_na=False)
    assert list(back.columns) == ["'=cmd|' /C calc'!A0", "name", "mixed", "value"]
    assert list(back["name"]) == ["'=1+1", "'+SUM(A1)", "'-2+3", "'@x", "'\tTAB", "plain"]
    assert list(back["mixed"])[:2] == ["-0.5", "-1.5"] and list(back["mixed"])[3:] == ["0.001", "", "a=b"]
    assert list(back["value"]) == [-1.0, 2.0, -3.0, 4.0, 5.0, 6.0]  # numbers stay numbers
    assert back["mixed"][2] == "'\rCR"
    data, names = export_bundle({}, None, tables={"t": table}, formats=("csv",))
    assert names == ["t.csv"]


def test_streamlit_refuses_the_same_upload_size_as_the_server():
    import tomllib
    from pathlib import Path

    from chaosmining.uploads import MAX_UPLOAD_MB

    config = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB


def test_the_feature_selection_page_refuses_a_large_upload_a_wide_one_and_a_path_outside_the_roots(
    tmp_path, uploads, monkeypatch
):
    from chaosmining.sandbox import PathRefused
    from ui.selection import csv_source

    class Upload:  # what st.file_uploader returns, as far as the page uses it
        def __init__(self, name: str, data: bytes) -> None:
            self.name, self._data = name, data

        def getvalue(self) -> bytes:
            return self._data

    monkeypatch.setenv("CHAOSMINING_DATA_ROOTS", str(tmp_path / "data"))
    with pytest.raises(DataError, match=r"must be a file of at most 20 MB\. Got 'big.csv \(20.0 MB\)' instead"):
        csv_source(Upload("big.csv", b"0" * (20 * 1024 * 1024 + 1)), "")
    wide = ",".join(f"c{i}" for i in range(MAX_CSV_COLUMNS)) + ",TARGET\n"
    with pytest.raises(DataError, match=rf"has {MAX_CSV_COLUMNS + 1} columns; at most {MAX_CSV_COLUMNS}"):
        csv_source(Upload("wide.csv", wide.encode()), "")
    ok = csv_source(Upload("fine.csv", b"x,TARGET\n1,0\n2,1\n"), "/etc/passwd")  # the upload wins over the path
    assert is_upload(ok) and ok.endswith("fine.csv")
    with pytest.raises(PathRefused, match="data roots"):
        csv_source(None, "/etc/passwd")
