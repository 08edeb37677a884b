"""Data files: the one CSV reader (training and prediction) and the .npz reader.

CSV: comma separated, one row per point. Blank lines and lines starting with '#' are skipped.
The first remaining row is a header when none of its cells is a number; its cells name the
columns. Every row has the same number of columns, each cell a finite number.
NPZ: arrays `x` (N, n_in) and `y` (N, n_out); 1-D is accepted for a width of 1.

Problems raise `DataError` with one line naming the file, and the line and column where there
is one. A CSV of LARGE_FILE_BYTES or more shows its reading on the progress bar given (the
CLI's, on a terminal only).
"""

import csv
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from errors import DataError

LARGE_FILE_BYTES = 50 * 10**6  # a CSV this large shows a progress bar while it is read
PROGRESS_LINES = 1 << 16  # lines between two updates of that bar


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


@dataclass
class CsvTable:
    """A CSV file's numbers ``values (N, columns)`` (float64, finite), its header (the column
    names, or None) and the file line of every row (for messages)."""

    values: np.ndarray
    header: list[str] | None
    lines: list[int]


def csv_rows(path: str, progress=None) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every row of the CSV ``path`` that is neither blank nor a '#'
    comment; a missing or unreadable file, or one not UTF-8, is a `DataError`. ``progress`` (a
    `progress.ProgressBar`) shows the bytes read, for a file of LARGE_FILE_BYTES or more."""
    file = Path(path)
    if not file.is_file():
        why = "not a file" if file.exists() else "file not found"
        raise DataError(f"{path}: cannot read: {why}")
    size = file.stat().st_size
    bar = progress if progress is not None and size >= LARGE_FILE_BYTES else None
    read = 0

    def counted(handle) -> Iterator[str]:
        nonlocal read
        for text in handle:
            read += len(text)
            yield text

    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            if bar is not None:
                bar.start(size, f"reading {file.name}", unit="B")
            reader = csv.reader(counted(handle))
            for cells in reader:
                if bar is not None and reader.line_num % PROGRESS_LINES == 0:
                    bar.update(min(read, size))
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                if not cells[0].lstrip().startswith("#"):
                    yield reader.line_num, cells
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file (expected CSV or .npz)") from None
    except (OSError, csv.Error) as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    finally:
        if bar is not None:
            bar.close()


def read_csv(path: str, widths: Sequence[int] | None, hint: str, progress=None) -> CsvTable:
    """Read a CSV whose rows have one of ``widths`` columns (None: any, the first row's), all
    rows the same; ``hint`` says in messages where the widths come from (e.g. "2 inputs + 1
    output from layer_dims"); ``progress``: see `csv_rows`."""
    rows: list[list[float]] = []
    lines: list[int] = []
    header, width = None, None
    for line, cells in csv_rows(path, progress):
        wrong = widths is not None and len(cells) not in widths
        if wrong or (width is not None and len(cells) != width):
            raise _width_error(path, line, cells, width or widths, hint)
        first = width is None
        width = len(cells)
        if first and not any(is_number(cell) for cell in cells):
            header = [cell.strip() for cell in cells]
            continue
        rows.append(_parse_row(cells, path, line))
        lines.append(line)
    if not rows:
        raise DataError(f"{path}: no data rows")
    values = np.array(rows, dtype=np.float64)
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        row, column = bad[0]
        raise DataError(
            f"{path} line {lines[row]}, column {column + 1}: {values[row, column]} is not finite"
        )
    return CsvTable(values, header, lines)


def _width_error(path, line, cells, expected, hint) -> DataError:
    wanted = (
        str(expected)
        if isinstance(expected, int)
        else " or ".join(str(w) for w in dict.fromkeys(expected))
    )
    if len(cells) == 1 and re.search(r"[;\t ]", cells[0].strip()):
        hint += "; values must be separated by commas"
    return DataError(
        f"{path} line {line}: {_plural(len(cells), 'column')}, expected {wanted} ({hint})"
    )


def _parse_row(cells: list[str], path: str, line: int) -> list[float]:
    try:
        return [float(cell) for cell in cells]
    except ValueError:
        column = next(i for i, cell in enumerate(cells) if not is_number(cell))
        raise DataError(
            f"{path} line {line}, column {column + 1}: {cells[column].strip()!r} is not a number"
        ) from None


def columns_hint(n_in: int, n_out: int) -> str:
    return f"{_plural(n_in, 'input')} + {_plural(n_out, 'output')} from layer_dims"


def load_data_file(path: str, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Read a training data file into x (N, n_in) and y (N, n_out), both float64 and finite:
    a CSV with inputs first and the last n_out columns targets, or an .npz (any other suffix
    than `.npz` is read as CSV)."""
    x, y, _ = read_data_file(path, n_in, n_out)
    return x, y


def read_data_file(
    path: str, n_in: int, n_out: int, progress=None
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """`load_data_file` and the column names of the file's header (None: no header);
    ``progress``: see `csv_rows`."""
    if Path(path).suffix.lower() == ".npz" and Path(path).is_file():
        return (*_load_npz(path, n_in, n_out), None)
    table = read_csv(path, (n_in + n_out,), columns_hint(n_in, n_out), progress)
    return table.values[:, :n_in], table.values[:, n_in:], table.header


def _load_npz(path: str, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        archive = None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: not an .npz archive (write one with numpy.savez(path, x=x, y=y))")
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
                raise DataError(f"{path}: cannot read array '{key}' ({error})") from None
    found = ", ".join(sorted(arrays)) or "none"
    hint = columns_hint(n_in, n_out)
    x = _npz_array(path, arrays, "x", n_in, found, hint)
    y = _npz_array(path, arrays, "y", n_out, found, hint)
    if len(x) != len(y):
        raise DataError(f"{path}: 'x' has {len(x)} rows but 'y' has {len(y)}")
    if len(x) == 0:
        raise DataError(f"{path}: no data rows")
    return x, y


def _npz_array(path, arrays, key: str, width: int, found: str, hint: str) -> np.ndarray:
    if key not in arrays:
        raise DataError(f"{path}: missing array '{key}' (found: {found})")
    array = arrays[key]
    if array.dtype.kind not in "biuf":
        raise DataError(f"{path}: array '{key}' has dtype {array.dtype}, expected numbers")
    if array.ndim == 1 and width == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != width:
        raise DataError(
            f"{path}: array '{key}' has shape {array.shape}, expected (N, {width}) ({hint})"
        )
    array = array.astype(np.float64)
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        row, column = bad[0]
        raise DataError(
            f"{path}: {key}[{row}, {column}] is {array[row, column]} "
            f"({len(bad)} non-finite value{'s' * (len(bad) != 1)} in '{key}')"
        )
    return array
