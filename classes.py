"""Class labels for ``task: "classification"``: reading them, one-hot targets, the loss, metrics.

A labelled CSV has the inputs first and the label last (an integer or any text; a header row
is recognised when none of its input cells is a number). An .npz holds ``x (N, n_in)`` and ``y``
(N,) of integers or text. The classes are the distinct labels of the whole file, sorted
(numerically when every label is an integer); the network has one output (a logit) per class
and is trained on the one-hot targets with the cross-entropy of the softmax.
Problems raise `DataError` with one line naming the file (and the line where there is one).
"""

import zipfile
from pathlib import Path

import numpy as np
import torch

from data_files import csv_rows, is_number
from errors import ConfigError, DataError


def check_task(cfg: dict, where) -> None:
    """What task classification needs of a config: labels from a data file; ``where(*keys)``
    names the origin in the message."""
    if cfg["task"] != "classification":
        return
    if cfg["data_file"] is None:
        raise ConfigError(
            f"{where('task')}: task classification reads its labels from data_file's last "
            "column: set data_file (target_function is for regression)"
        )


def cross_entropy(logits: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """The mean cross-entropy of softmax(logits) against one-hot (or soft) targets."""
    return -(onehot * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def class_names(labels: np.ndarray) -> list[str]:
    """The sorted distinct labels as text (numeric order when all are integers)."""
    unique = set(_text(labels))
    if all(_is_int(v) for v in unique):
        return sorted(unique, key=int)
    return sorted(unique)


def _text(labels: np.ndarray) -> list[str]:
    return [str(int(float(v))) if _is_int(v) else str(v).strip() for v in labels.tolist()]


def _is_int(value) -> bool:
    try:
        return float(value) == int(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def one_hot(labels: np.ndarray, names: list[str]) -> np.ndarray:
    """(N, len(names)) float64 one-hot rows of ``labels`` (text or numbers) over ``names``."""
    index = {name: k for k, name in enumerate(names)}
    text = _text(labels)
    rows = np.zeros((len(text), len(names)))
    rows[np.arange(len(text)), [index[t] for t in text]] = 1.0
    return rows


def read_labelled_file(path: str, n_in: int, n_classes: int, progress=None):
    """x (N, n_in) float64, one-hot y (N, n_classes), the class names and the input names of
    the header (None: no header) of a labelled CSV or .npz; ``progress``: see
    `data_files.csv_rows`."""
    if Path(path).is_dir():
        raise DataError(f"{path}: task classification reads a CSV or .npz file, not a data store")
    if Path(path).suffix.lower() == ".npz" and Path(path).is_file():
        x, labels, header = _read_npz(path, n_in)
    else:
        x, labels, header = _read_csv(path, n_in, progress)
    names = class_names(labels)
    if len(names) < 2:
        raise DataError(f"{path}: one class only ({names[0]}); classification needs two or more")
    if len(names) != n_classes:
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        raise DataError(
            f"{path}: {len(names)} classes ({shown}) but layer_dims has {n_classes} outputs; "
            f"set the last width of layer_dims to {len(names)}"
        )
    return x, one_hot(labels, names), names, header


def _read_csv(path: str, n_in: int, progress=None):
    rows, labels, header = [], [], None
    for line, cells in csv_rows(path, progress):
        if len(cells) != n_in + 1:
            raise DataError(
                f"{path} line {line}: {len(cells)} columns, expected {n_in + 1} "
                f"({n_in} inputs from layer_dims + the class label)"
            )
        if not rows and header is None and not any(map(is_number, cells[:n_in])):
            header = [cell.strip() for cell in cells]
            continue
        rows.append(_inputs(cells[:n_in], path, line))
        labels.append(_label(cells[-1], path, line))
    if not rows:
        raise DataError(f"{path}: no data rows")
    return np.array(rows, dtype=np.float64), np.array(labels, dtype=object), header


def _inputs(cells: list[str], path: str, line: int) -> list[float]:
    for column, cell in enumerate(cells, 1):
        if not is_number(cell) or not np.isfinite(float(cell)):
            raise DataError(
                f"{path} line {line}, column {column}: {cell.strip()!r} is not a number"
            )
    return [float(cell) for cell in cells]


def _label(cell: str, path: str, line: int) -> str:
    label = cell.strip()
    if not label:
        raise DataError(f"{path} line {line}: the class label (last column) is empty")
    return label


def _read_npz(path: str, n_in: int):
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as error:
        raise DataError(f"{path}: not a readable .npz archive ({error})") from None
    if "x" not in arrays or "y" not in arrays:
        raise DataError(f"{path}: missing array 'x' or 'y' (found: {', '.join(sorted(arrays))})")
    x, y = arrays["x"], arrays["y"]
    if x.dtype.kind not in "biuf" or x.ndim != 2 or x.shape[1] != n_in:
        raise DataError(f"{path}: array 'x' must be numbers of shape (N, {n_in}), got {x.shape}")
    if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "biuU":
        raise DataError(
            f"{path}: array 'y' must hold {len(x)} integer or text labels (shape (N,)), got "
            f"{y.dtype} {y.shape}"
        )
    if not np.isfinite(x).all():
        raise DataError(f"{path}: 'x' holds non-finite values")
    return x.astype(np.float64), y.astype(object), None


def class_counts(onehot: torch.Tensor, names: list[str]) -> dict[str, int]:
    counts = onehot.sum(dim=0).round().long().tolist() if len(onehot) else [0] * len(names)
    return dict(zip(names, counts))


def classification_metrics(logits: torch.Tensor, onehot: torch.Tensor) -> dict:
    """accuracy and log-loss (mean cross-entropy, natural log) of logits against one-hot rows."""
    if len(onehot) == 0:
        return {"accuracy": None, "log_loss": None}
    correct = (logits.argmax(dim=1) == onehot.argmax(dim=1)).double().mean()
    return {"accuracy": float(correct), "log_loss": float(cross_entropy(logits, onehot))}


def confusion(logits, onehot, n: int) -> np.ndarray:
    """(true class, predicted class) counts."""
    true, pred = np.asarray(onehot).argmax(axis=1), np.asarray(logits).argmax(axis=1)
    table = np.zeros((n, n), dtype=np.int64)
    np.add.at(table, (true, pred), 1)
    return table
