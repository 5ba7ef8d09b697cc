"""The CSV reader (pyarrow fast path, Python csv for what it refuses), in process.

Accepted values are checked against float() of each cell (the reference the fast path
must match) cast to float32; refusals against the words the csv-module path has always
used, so the fast reader cannot change which files are accepted or what is said.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import tricks.ingest.tabular as tabular
from tricks.ingest.pipeline import ingest_file
from tricks.uploads import UploadError, open_stored


def ingest(tmp_path: Path, text: str | bytes, name: str = "t.csv"):
    src = tmp_path / name
    src.write_bytes(text.encode() if isinstance(text, str) else text)
    ds = tmp_path / "ds"
    meta = ingest_file(src, name, datasets_dir=ds, dataset_id="d1")
    return meta, {k: np.array(v) for k, v in open_stored(ds, "d1").items()}


def refused(tmp_path: Path, text: str | bytes) -> UploadError:
    with pytest.raises(UploadError) as e:
        ingest(tmp_path, text)
    assert not (tmp_path / "ds").exists() or not list((tmp_path / "ds").iterdir())
    return e.value


def rows_text(header: list[str], rows: list[list[str]]) -> str:
    return ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows)


def test_values_match_float_of_each_cell_over_many_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(tabular, "ARROW_BLOCK", 4096)  # many pyarrow batches
    rng = np.random.default_rng(5)
    cells = [[repr(float(v)) for v in rng.normal(scale=1e3, size=4)] for _ in range(900)]
    cells = [[*r[:2], str(i % 3), *r[2:]] for i, r in enumerate(cells)]
    cells[7][0], cells[8][1], cells[9][3] = "1e-40", " 2.5 ", "-0"  # subnormal, spaces, -0
    meta, a = ingest(tmp_path, rows_text(["a", "b", "y", "c", "d"], cells))
    want = np.array([[float(c) for j, c in enumerate(r) if j != 2] for r in cells], np.float32)
    np.testing.assert_array_equal(a["x"], want)
    np.testing.assert_array_equal(a["y"], [i % 3 for i in range(900)])
    assert meta.class_counts == [300, 300, 300]


def test_rows_pyarrow_refuses_but_float_accepts_are_still_accepted(tmp_path):
    rows = [[str(i), str(i * 2), str(i % 2)] for i in range(12)]
    rows[3][0] = "1_0"  # float("1_0") == 10.0; pyarrow refuses it
    text = rows_text(["a", "b", "label"], rows) + " , , \n"  # a blank-looking row is skipped
    meta, a = ingest(tmp_path, text)
    assert a["x"].shape == (12, 2) and a["x"][3, 0] == 10.0 and meta.num_classes == 2


def test_a_text_cell_late_in_a_big_file_is_named_by_column_and_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tabular, "ARROW_BLOCK", 4096)
    rows = [[str(i), f"{i}.5", str(i % 2)] for i in range(3000)]
    rows[2500][1] = "oops"
    err = refused(tmp_path, rows_text(["a", "b", "label"], rows))
    assert err.field == "b" and "line 2502" in str(err) and "'oops'" in str(err), err


@pytest.mark.parametrize(
    ("text", "words", "field"),
    [
        ("a,b,label\n" + "1,2,0\n" * 11 + "1,2\n", "CSV line 13 has 2 fields", "file"),
        ("a,b,label\n" + "1,2,0\n" * 11 + "1,,1\n", "column 'b', line 13", "b"),
        (b"a,b,label\n" + b"1,2,0\n" * 11 + b"1,\xff,1\n", "not UTF-8", "file"),
        (
            "a,label\n" + "1,0\n" * 11 + "1" * 140_000 + ",1\n",
            f"{csv.field_size_limit()} characters",
            "file",
        ),
        ("a,b,label\n" + "1,2,0\n" * 11 + "inf,2,1\n", "NaN or infinite value", "x"),
        ("a,b,label\n" + "1,2,0\n" * 11 + "1e39,2,1\n", "too large for float32", "x"),
        ("a,b,label\n" + "1,2,0\n" * 11 + "1,2,0.5\n", "non-integer label 0.5", "y"),
        ("a,b,label\n" + "1,2,0\n" * 11 + "1,2,nan\n", "NaN or infinite labels", "y"),
        ("a,b,label\n\n\n", "no data rows", "file"),
    ],
    ids=[
        "short-row",
        "empty-cell",
        "bad-utf8",
        "long-field",
        "inf",
        "overflow",
        "half-label",
        "nan-label",
        "no-rows",
    ],  # fmt: skip
)
def test_refusals_say_what_the_csv_module_path_says(tmp_path, text, words, field):
    err = refused(tmp_path, text)
    assert words in str(err) and err.field == field, str(err)


def test_quoted_cells_bom_and_crlf(tmp_path):
    rows = "".join(f'"{i}.25",{-i},{i % 2}\r\n' for i in range(12))
    meta, a = ingest(tmp_path, "\ufeffa,b,label\r\n" + rows)
    np.testing.assert_array_equal(a["x"][5], np.float32([5.25, -5]))
    assert meta.input_shape == [2]
