"""Data stores: a CSV converted once, memory-mapped, gives the same splits and the same training
as the CSV itself; conversion errors are one line and leave nothing behind."""

from pathlib import Path

import numpy as np
import pytest
import torch

import data_store
import datasets
import pykan_mit
import training
from errors import DataError
from experiment import build_model


@pytest.fixture
def csv_and_store(tmp_path, small_cfg):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (500, 2))
    y = np.sin(x[:, :1]) + x[:, 1:] ** 2
    lines = ["# made for the test", "a,b,out"] + [
        ",".join(repr(float(v)) for v in r) for r in np.c_[x, y]
    ]
    csv = tmp_path / "d.csv"
    csv.write_text("\n".join(lines[:100] + [""] + lines[100:]) + "\n")
    assert pykan_mit.main(["--convert", str(csv), str(tmp_path / "store")]) == 0
    return str(csv), str(tmp_path / "store")


def _same(a, b):
    return torch.equal(torch.as_tensor(a[:]) if torch.is_tensor(a) else a.read(), b)


@pytest.mark.parametrize("batch_size", [None, 64])
def test_a_store_splits_and_trains_exactly_like_its_csv(csv_and_store, small_cfg, batch_size):
    csv, store = csv_and_store
    cfg = small_cfg(test_size=50, batch_size=batch_size, early_stopping_patience=20)
    ref = datasets.make_data({**cfg, "data_file": csv}, "cpu", torch.float64)
    got = data_store.make_data({**cfg, "data_file": store}, "cpu", torch.float64)
    assert isinstance(got.x_train, data_store.MappedRows) == (batch_size is not None)
    for name in ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val"):
        assert _same(getattr(got, name), getattr(ref, name)), name
    assert torch.equal(got.input_range, ref.input_range) and got.input_names == ["a", "b"]
    results = []
    for data in (ref, got):
        model = build_model({**cfg, "data_file": csv}, data, "cpu", torch.float64)
        result = training.train(cfg, model, data, log=lambda _: None)
        results.append((model.state_dict(), result.history["test_rmse"]))
    assert results[0][1] == results[1][1]
    assert all(torch.equal(results[0][0][k], results[1][0][k]) for k in results[0][0])


def test_conversion_errors_name_the_line_and_leave_no_store(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,x,6\n")
    with pytest.raises(DataError, match=r"bad.csv line 2, column 2: 'x' is not a number"):
        data_store.convert_csv(str(bad), str(tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2,3\n4,5\n")
    with pytest.raises(DataError, match="line 2: 2 columns, expected 3"):
        data_store.convert_csv(str(ragged), str(tmp_path / "out"))


def test_a_folder_without_a_store_is_one_clear_error(tmp_path, small_cfg, capsys):
    code = pykan_mit.main(
        ["--set", f"data_file={tmp_path}", "--set", "target_function=null", "--check"]
    )
    assert code == 2
    assert "a folder without values.npy" in capsys.readouterr().err


def test_opening_a_large_store_reports_its_pass_over_the_rows(
    csv_and_store, small_cfg, monkeypatch, progress_recorder
):
    _, store = csv_and_store
    cfg = {**small_cfg(test_size=50), "data_file": store}
    data_store.make_data(cfg, "cpu", torch.float64, progress=progress_recorder)
    assert progress_recorder.calls == []  # 500 rows: small
    monkeypatch.setattr(data_store, "LARGE_FILE_BYTES", 1000)
    monkeypatch.setattr(data_store, "CHUNK_ROWS", 200)
    data_store.make_data(cfg, "cpu", torch.float64, progress=progress_recorder)
    assert progress_recorder.calls == [
        ("start", 500, "checking store", None),
        ("update", 200),
        ("update", 400),
        ("update", 500),
        ("close",),
    ]


def _resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_reading_every_row_of_a_store_does_not_pile_its_pages_up_in_memory(tmp_path, monkeypatch):
    values = np.random.default_rng(0).normal(size=(1_500_000, 8))  # 96 MB
    np.save(tmp_path / "values.npy", values)
    store = data_store.MappedFile(tmp_path / "values.npy")
    np.testing.assert_array_equal(store.values[::997], np.load(tmp_path / "values.npy")[::997])

    def growth(release_bytes: int) -> int:
        monkeypatch.setattr(data_store, "RELEASE_BYTES", release_bytes)
        store = data_store.MappedFile(tmp_path / "values.npy")
        before = _resident_bytes()
        for lo in range(0, len(values), 50_000):  # every page once, in batches
            store.read(slice(lo, lo + 50_000))
        grown = _resident_bytes() - before
        del store
        return grown

    assert growth(8 << 20) < 40 << 20  # the pages given back as it goes
    assert growth(1 << 40) > 80 << 20  # kept: the whole file ends up resident
