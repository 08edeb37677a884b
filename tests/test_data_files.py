"""data_files.py: the CSV reader's rules (header, comments, blank lines, widths, numbers) and
the .npz reader."""

import os

import numpy as np
import pytest

import data_files
from data_files import load_data_file
from errors import DataError


def test_csv_with_a_header_row_is_read(write_file):
    path = write_file("x1,x2,y\n0.5,1,2\n\n-1,2e-3,4\n")
    x, y = load_data_file(path, 2, 1)
    np.testing.assert_array_equal(x, [[0.5, 1], [-1, 2e-3]])
    np.testing.assert_array_equal(y, [[2], [4]])
    assert x.dtype == y.dtype == np.float64


def test_csv_without_a_header_keeps_the_first_row(write_file):
    path = write_file("# made by hand\n1,2,3,4\n5,6,7,8\n")
    x, y = load_data_file(path, 2, 2)
    np.testing.assert_array_equal(x, [[1, 2], [5, 6]])
    np.testing.assert_array_equal(y, [[3, 4], [7, 8]])


def test_csv_ragged_row_names_the_line(write_file):
    path = write_file("a,b,c,d\n" + "1,2,3,4\n" * 5 + "1,2,3\n")
    with pytest.raises(DataError) as error:
        load_data_file(path, 3, 1)
    assert str(error.value).startswith(f"{path} line 7: 3 columns, expected 4")


def test_csv_non_numeric_cell_names_line_and_column(write_file):
    path = write_file("x,y\n1,2\n3,4\n5,6\n7,abc\n")
    with pytest.raises(DataError) as error:
        load_data_file(path, 1, 1)
    assert str(error.value) == f"{path} line 5, column 2: 'abc' is not a number"


def test_csv_nan_or_inf_is_rejected(write_file):
    for bad in ("nan", "inf"):
        path = write_file(f"1,2\n3,{bad}\n")
        with pytest.raises(DataError, match=r"line 2, column 2: .* is not finite"):
            load_data_file(path, 1, 1)


def test_csv_column_count_must_match_layer_dims(write_file):
    path = write_file("1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match=r"line 1: 3 columns, expected 4 \(3 inputs \+ 1 output"):
        load_data_file(path, 3, 1)
    path = write_file("1;2;3\n")
    with pytest.raises(DataError, match="separated by commas"):
        load_data_file(path, 2, 1)


def test_empty_or_missing_data_file_is_rejected(write_file, tmp_path):
    with pytest.raises(DataError, match="no data rows"):
        load_data_file(write_file("x,y\n\n"), 1, 1)
    with pytest.raises(DataError, match="absent.csv: cannot read: file not found"):
        load_data_file(str(tmp_path / "absent.csv"), 1, 1)


def test_npz_round_trip(tmp_path):
    x = np.random.default_rng(1).normal(size=(20, 3))
    y = x.sum(axis=1)
    path = tmp_path / "points.npz"
    np.savez(path, x=x, y=y)
    x_read, y_read = load_data_file(str(path), 3, 1)
    np.testing.assert_array_equal(x_read, x)
    np.testing.assert_array_equal(y_read, y[:, None])


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((4, 2))}, r"missing array 'y' \(found: x\)"),
        ({"x": np.zeros((4, 3)), "y": np.zeros(4)}, r"'x' has shape \(4, 3\), expected \(N, 2\)"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(3)}, "'x' has 4 rows but 'y' has 3"),
        ({"x": np.full((4, 2), np.nan), "y": np.zeros(4)}, r"x\[0, 0\] is nan"),
        ({"x": np.array([["a", "b"]]), "y": np.zeros(1)}, "expected numbers"),
    ],
)
def test_bad_npz_is_rejected(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_data_file(str(path), 2, 1)


def test_file_that_is_not_an_npz_archive_is_rejected(tmp_path):
    for content in (b"hello", b"PK\x03\x04broken"):
        path = tmp_path / "broken.npz"
        path.write_bytes(content)
        with pytest.raises(DataError, match="not an .npz archive"):
            load_data_file(str(path), 2, 1)
    np.savez(path, x=np.array([object()]), y=np.zeros(1))
    with pytest.raises(DataError, match="cannot read array 'x'"):
        load_data_file(str(path), 2, 1)


@pytest.fixture
def large_csv(write_file, monkeypatch):
    """A 2-input, 1-output CSV of 3000 rows (about 40 kB), with LARGE_FILE_BYTES lowered to
    10 kB so that it counts as large; returns (path, its values)."""
    values = np.random.default_rng(0).uniform(-1, 1, (3000, 3)).round(6)
    text = "a,b,y\n" + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in values)
    monkeypatch.setattr(data_files, "LARGE_FILE_BYTES", 10_000)
    monkeypatch.setattr(data_files, "PROGRESS_LINES", 500)
    return write_file(text), values


def test_reading_a_large_csv_reports_the_bytes_read(large_csv, progress_recorder):
    path, values = large_csv
    size = os.path.getsize(path)
    x, y, header = data_files.read_data_file(path, 2, 1, progress_recorder)
    np.testing.assert_array_equal(np.c_[x, y], values)  # the same values as without progress
    calls = progress_recorder.calls
    assert calls[0] == ("start", size, "reading data.csv", "B") and calls[-1] == ("close",)
    done = [c[1] for c in calls if c[0] == "update"]
    assert len(done) == 3001 // 500 and done == sorted(done) and 0 < done[-1] <= size


def test_a_small_csv_or_no_bar_reports_nothing(large_csv, progress_recorder, monkeypatch):
    path, _ = large_csv
    monkeypatch.setattr(data_files, "LARGE_FILE_BYTES", os.path.getsize(path) + 1)
    data_files.read_data_file(path, 2, 1, progress_recorder)
    assert progress_recorder.calls == []


def test_the_bar_shows_on_stderr_for_a_large_file_only(large_csv, capsys, monkeypatch):
    from progress import ProgressBar

    path, _ = large_csv
    data_files.read_data_file(path, 2, 1, ProgressBar())
    assert "reading data.csv" in capsys.readouterr().err
    monkeypatch.setattr(data_files, "LARGE_FILE_BYTES", 50 * 10**6)
    data_files.read_data_file(path, 2, 1, ProgressBar())
    assert capsys.readouterr().err == ""


def test_a_labelled_csv_reports_its_reading_too(write_file, monkeypatch, progress_recorder):
    from classes import read_labelled_file

    path = write_file("a,b,label\n" + "0.5,1,cat\n-1,2,dog\n" * 200)
    monkeypatch.setattr(data_files, "LARGE_FILE_BYTES", 1000)
    x, y, names, header = read_labelled_file(path, 2, 2, progress_recorder)
    assert names == ["cat", "dog"] and x.shape == (400, 2) and header == ["a", "b", "label"]
    assert progress_recorder.calls[0][2] == "reading data.csv"
