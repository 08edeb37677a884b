"""Data sets larger than memory: a data store folder, memory-mapped, read a mini-batch at a time.

A data store is a folder holding ``values.npy`` (N, columns) float64 — inputs first, the last
n_out columns targets, as in a CSV — and ``columns.json`` (the header's names, or null). Write
one from a CSV once with ``python pykan_mit.py --convert data.csv data_store/`` (`convert_csv`,
with a progress bar); point ``data_file`` at the folder. The file is mapped read-only
(`MappedFile`, its pages given back as they are read): the rows are shuffled and split exactly
as a CSV's (the same seed gives the same test set), the test (and validation) rows are read into
memory, the training rows stay on disk as `MappedRows` and every mini-batch reads its rows on
demand. Without ``batch_size`` (full batch) the training rows are read into memory too.
"""

import json
import mmap
import os
import shutil
from pathlib import Path

import numpy as np
import torch

import datasets
from data_files import LARGE_FILE_BYTES, columns_hint, is_number
from errors import DataError
from names import variable_names

VALUES_FILE, COLUMNS_FILE = "values.npy", "columns.json"
CHUNK_ROWS = 1 << 16  # rows per read for whole-file passes and per write when converting
# The pages of the file a process has read count in its resident memory until they are given
# back; they are, after each RELEASE_BYTES read (the next read finds them in the page cache).
RELEASE_BYTES = 64 << 20
PAGE = mmap.PAGESIZE


class MappedFile:
    """A ``.npy`` file mapped read-only: ``values`` (N, C), and `read` / `release` so that its
    pages do not pile up in this process's resident memory as mini-batches read them."""

    def __init__(self, path: Path):
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"{path.name}: .npy format version {version} is not read here")
            fmt = np.lib.format
            header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = header(file)
            offset = file.tell()
            self.map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        count = int(np.prod(shape))
        if fortran or dtype.hasobject or offset + count * dtype.itemsize > len(self.map):
            raise ValueError(f"{path.name}: not a C-ordered numeric array of the size it says")
        flat = np.frombuffer(self.map, dtype=dtype, count=count, offset=offset)
        self.values = flat.reshape(shape)
        self.unreleased = 0

    def read(self, rows) -> np.ndarray:
        """``values[rows]`` as a new array (a slice or row indices), giving pages back when due
        (scattered rows count a page each)."""
        block = np.array(self.values[rows])
        row_bytes = block.nbytes // max(len(block), 1)
        pages = block.nbytes if isinstance(rows, slice) else len(block) * max(row_bytes, PAGE)
        self.unreleased += pages
        if self.unreleased >= RELEASE_BYTES:
            self.release()
        return block

    def release(self) -> None:
        """Give the mapped pages back (they stay in the page cache, not in this process)."""
        self.unreleased = 0
        if hasattr(self.map, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            self.map.madvise(mmap.MADV_DONTNEED)


def is_store(path) -> bool:
    return path is not None and (Path(path) / VALUES_FILE).is_file()


class MappedRows:
    """Rows ``index`` (and columns ``columns``) of a `MappedFile`'s (N, C) array, read on demand
    as tensors of ``dtype`` on ``device``: ``rows[idx]`` (an index tensor or list) reads those
    rows, ``rows[lo:hi]`` is a lazy part, ``rows[:, cols]`` a lazy column selection."""

    def __init__(self, store: MappedFile, index: np.ndarray, columns, dtype, device):
        self.store, self.index, self.columns = store, index, list(columns)
        self.dtype, self.device = dtype, torch.device(device)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple:
        return (len(self.index), len(self.columns))

    def _like(self, index=None, columns=None) -> "MappedRows":
        index = self.index if index is None else index
        columns = self.columns if columns is None else columns
        return MappedRows(self.store, index, columns, self.dtype, self.device)

    def __getitem__(self, key):
        if isinstance(key, tuple):  # [:, columns]
            rows, cols = key
            return self._like(columns=[self.columns[c] for c in cols])[rows]
        if isinstance(key, slice):
            return self._like(index=self.index[key]) if key != slice(None) else self
        positions = np.asarray(torch.as_tensor(key).cpu(), dtype=np.int64)
        return self._read(self.index[positions])

    def _read(self, file_rows: np.ndarray) -> torch.Tensor:
        block = self.store.read(np.sort(file_rows) if len(file_rows) else slice(0, 0))
        if len(file_rows):  # sorted reads touch each page once; put the rows back in order
            block = block[np.argsort(np.argsort(file_rows, kind="stable"), kind="stable")]
        return torch.from_numpy(np.ascontiguousarray(block[:, self.columns])).to(
            device=self.device, dtype=self.dtype
        )

    def read(self, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """Rows lo .. hi as one tensor."""
        return self._read(self.index[lo:hi])


def read_rows(x, lo: int, hi: int) -> torch.Tensor:
    """Rows lo .. hi of a tensor or of `MappedRows`, as a tensor."""
    return x.read(lo, hi) if isinstance(x, MappedRows) else x[lo:hi]


def make_data(cfg: dict, device, dtype, progress=None) -> datasets.Data:
    """`datasets.make_data`, with a data store folder as ``data_file`` opened memory-mapped."""
    if not is_store(cfg["data_file"]):
        if cfg["data_file"] is not None and Path(cfg["data_file"]).is_dir():
            raise DataError(
                f"{cfg['data_file']}: a folder without {VALUES_FILE} (write a data store with "
                "python pykan_mit.py --convert data.csv FOLDER)"
            )
        return datasets.make_data(cfg, device, dtype, progress=progress)
    path = cfg["data_file"]
    if cfg["task"] == "classification":
        raise DataError(f"{path}: task classification reads a CSV or .npz file, not a data store")
    store, header = open_store(path)
    values = store.values
    n_in, n_out = cfg["layer_dims"][0], cfg["layer_dims"][-1]
    if values.shape[1] != n_in + n_out:
        raise DataError(
            f"{path}: {values.shape[1]} columns, expected {n_in + n_out} "
            f"({columns_hint(n_in, n_out)})"
        )
    test_size, early = cfg["test_size"], cfg["early_stopping_patience"] is not None
    if len(values) < test_size + 1 + early:
        raise DataError(f"{path}: {len(values)} rows, too few for test_size {test_size}")
    order = torch.randperm(len(values), generator=datasets.shuffle_generator(cfg["seed"])).numpy()
    test_index, train_index = order[:test_size], order[test_size:]
    val_index = None
    if early:
        n_val = min(
            max(1, round(cfg["validation_fraction"] * len(train_index))), len(train_index) - 1
        )
        train_index, val_index = train_index[:-n_val], train_index[-n_val:]
    lo, hi = _column_ranges(path, store, train_index, dtype, progress)

    def rows(index, columns):
        return MappedRows(store, index, columns, dtype, device)

    x_cols, y_cols = range(n_in), range(n_in, n_in + n_out)
    x_train, y_train = rows(train_index, x_cols), rows(train_index, y_cols)
    if cfg["batch_size"] is None:
        x_train, y_train = x_train.read(), y_train.read()
    split = [
        None if i is None else rows(i, c).read()
        for i in (test_index, val_index)
        for c in (x_cols, y_cols)
    ]
    ranges = torch.stack([lo[:n_in], hi[:n_in]], dim=1)
    flat = ranges[:, 0] == ranges[:, 1]
    ranges[flat, 0] -= 0.5
    ranges[flat, 1] += 0.5
    input_names, output_names = variable_names(header, n_in, n_out)
    sizes = f"{len(train_index)} train" + (f", {len(val_index)} validation" if early else "")
    return datasets.Data(
        x_train,
        y_train,
        split[0],
        split[1],
        split[2],
        split[3],
        ranges.to(device=device, dtype=dtype),
        None,
        f"{path} (memory-mapped; {sizes}, {test_size} test points)",
        input_names,
        output_names,
    )


def open_store(path) -> tuple[MappedFile, list[str] | None]:
    """(the values mapped read-only, column names or None) of a data store folder."""
    try:
        store = MappedFile(Path(path) / VALUES_FILE)
        values = store.values
        names_file = Path(path) / COLUMNS_FILE
        header = json.loads(names_file.read_text()) if names_file.is_file() else None
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: damaged data store ({error})") from None
    if values.ndim != 2 or values.dtype.kind != "f" or len(values) == 0:
        raise DataError(f"{path}: {VALUES_FILE} must hold a non-empty (N, columns) float array")
    return store, header


def _column_ranges(path, store: MappedFile, train_index, dtype, progress=None):
    """Per-column min and max of the training inputs, one pass over the file in chunks (also
    checking every value is finite in ``dtype``); ``progress`` follows it for a store of
    data_files.LARGE_FILE_BYTES or more."""
    bar = progress if progress is not None and store.values.nbytes >= LARGE_FILE_BYTES else None
    if bar is not None:
        bar.start(len(store.values), f"checking {Path(path).name}")
    try:
        return _scan_ranges(path, store, train_index, dtype, bar)
    finally:
        if bar is not None:
            bar.close()


def _scan_ranges(path, store: MappedFile, train_index, dtype, bar):
    values = store.values
    train = np.zeros(len(values), dtype=bool)
    train[train_index] = True
    lo = np.full(values.shape[1], np.inf)
    hi = np.full(values.shape[1], -np.inf)
    big = torch.finfo(dtype).max
    for start in range(0, len(values), CHUNK_ROWS):
        block = np.asarray(store.read(slice(start, start + CHUNK_ROWS)), dtype=np.float64)
        if not np.isfinite(block).all() or np.abs(block).max() > big:
            row = start + int(np.argwhere(~np.isfinite(block) | (np.abs(block) > big))[0][0])
            raise DataError(f"{path}: row {row + 1} holds a value not finite in {dtype}")
        kept = block[train[start : start + CHUNK_ROWS]]
        if len(kept):
            lo, hi = np.minimum(lo, kept.min(axis=0)), np.maximum(hi, kept.max(axis=0))
        if bar is not None:
            bar.update(start + len(block))
    return torch.from_numpy(lo), torch.from_numpy(hi)


def convert_csv(source: str, target: str, progress=None) -> int:
    """Write the data store folder ``target`` from the CSV ``source`` (same rules as a training
    CSV: '#' comments and blank lines skipped, an optional header, equal widths, finite numbers);
    returns the number of rows. Written beside the target and renamed at the end: an error or
    Ctrl-C leaves no half-written store. ``progress(done_bytes, total_bytes)`` is called as it
    reads."""
    out = Path(target)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{target}: already exists and is not an empty folder")
    if not Path(source).is_file():
        raise DataError(f"{source}: cannot read: file not found")
    rows, width, header = _scan_csv(source)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        values = np.lib.format.open_memmap(partial / VALUES_FILE, "w+", np.float64, (rows, width))
        _fill(source, values, progress)
        values.flush()
        del values
        (partial / COLUMNS_FILE).write_text(json.dumps(header))
        if out.exists():
            out.rmdir()
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return rows


def _data_lines(source: str):
    """(line number, cells, bytes read so far) of the CSV's non-blank, non-comment lines."""
    done = 0
    with open(source, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            done += len(raw)
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
            except UnicodeDecodeError:
                raise DataError(f"{source} line {number}: not UTF-8 text") from None
            if line and not line.startswith("#"):
                yield number, line.split(","), done


def _scan_csv(source: str) -> tuple[int, int, list[str] | None]:
    """First pass: (data rows, columns, header) of the CSV."""
    rows, width, header = 0, None, None
    for number, cells, _ in _data_lines(source):
        if width is None:
            width = len(cells)
            if not any(is_number(c) for c in cells):
                header = [c.strip() for c in cells]
                continue
        elif len(cells) != width:
            raise DataError(f"{source} line {number}: {len(cells)} columns, expected {width}")
        rows += 1
    if not rows:
        raise DataError(f"{source}: no data rows")
    return rows, width, header


def _fill(source: str, values: np.ndarray, progress) -> None:
    """Second pass: parse the rows into ``values`` a chunk at a time."""
    total, block, at = os.path.getsize(source), [], 0
    header_seen = False
    for number, cells, done in _data_lines(source):
        if not header_seen:
            header_seen = True
            if not any(is_number(c) for c in cells):
                continue
        try:
            row = [float(c) for c in cells]
        except ValueError:
            bad = next(i for i, c in enumerate(cells) if not is_number(c))
            raise DataError(
                f"{source} line {number}, column {bad + 1}: {cells[bad].strip()!r} is not a number"
            ) from None
        if not all(np.isfinite(row)):
            raise DataError(f"{source} line {number}: a value is not finite")
        block.append(row)
        if len(block) == CHUNK_ROWS:
            values[at : at + len(block)] = block
            at, block = at + len(block), []
            if progress is not None:
                progress(done, total)
    values[at : at + len(block)] = block
    if progress is not None:
        progress(total, total)
