"""Inference from a run folder: `predict(run_dir, points)` and the command line.

    python predict.py RUN_DIR X1 ... XN                 one point, one line per output
    python predict.py RUN_DIR --csv IN [--out OUT]      every row of IN, as CSV

Points become a tensor of the model's dtype exactly as ``torch.tensor(points, dtype=...)`` makes
it, and values are printed with ``repr(float(v))``, so a printed prediction parses back to the
model's output bit for bit. Points outside the range the model was trained on are still
predicted (the splines continue linearly there); the command line warns once on stderr.
Nothing in the run folder is imported or executed (see `simple_kan.load_model`).
"""

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import cli
import fileio
import run_folder
from arrays import as_tensor_like
from data_files import is_number, read_csv
from errors import DataError, UserError
from names import default_names, variable_names
from run_folder import METRICS_FILE, MODEL_FILE
from runtime import DEVICES, resolve_device
from simple_kan import load_model

__all__ = ["load_model", "predict", "evaluate", "read_points_csv", "main"]


def evaluate(model: torch.nn.Module, points) -> np.ndarray:
    """The model's outputs ``(N, n_out)`` at ``points`` ``(N, n_in)`` or ``(n_in,)``."""
    n_in = model.layer_dims[0]
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"points must be numbers, an array of shape (N, {n_in})") from None
    shape = array.shape
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != n_in:
        raise UserError(
            f"points must have shape (N, {n_in}) or ({n_in},) for this model, got {shape}"
        )
    x = as_tensor_like(array, next(model.parameters()))
    with torch.no_grad():
        return model(x).cpu().numpy()


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities (N, C) of logits (N, C)."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def class_names(run_dir, n_classes: int) -> list[str]:
    """The classes of a classification run, from its metrics.json (class k if it has none)."""
    metrics_file = run_folder.model_paths(run_dir)[0].parent / METRICS_FILE
    names = None
    if metrics_file.is_file():
        names = fileio.read_json_object(metrics_file, "metrics").get("classes")
    if not isinstance(names, list) or len(names) != n_classes:
        return [str(k) for k in range(n_classes)]
    return [str(name) for name in names]


def predict(run_dir, points, device: str = "cpu") -> np.ndarray:
    """Predictions ``(N, n_out)`` of the model saved in ``run_dir`` at ``points``
    (``(N, n_in)`` or one point ``(n_in,)``). Raises `UserError` for a bad folder or points."""
    model, _ = load_model(run_dir, resolve_device(device))
    return evaluate(model, points)


# ---------------------------------------------------------------------------------------------
# Command line


def _short(value: float) -> str:
    """A bound as people write it (``-1``, ``0.5``) unless that would change its value."""
    text = f"{value:g}"
    return text if float(text) == value else repr(value)


def _names(names: list[str]) -> str:
    """The inputs as messages show them: all of them up to 3, else first..last."""
    return ", ".join(names) if len(names) <= 3 else f"{names[0]}..{names[-1]}"


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{where}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{where}: {text.strip()!r} is not a finite number")
    return value


def read_points_csv(
    path: str, n_in: int, n_out: int = 0, names: list[str] | None = None
) -> tuple[np.ndarray, list[int]]:
    """The points ``(N, n_in)`` in a CSV file and the line each came from (the CSV rules of
    data_files.read_csv).

    With a header that names every input in ``names`` (the model's input names; default
    x1..xn), columns are matched by name: any order, other columns ignored. A header names
    its columns as training does (names.py), so ``mass-kg`` is ``mass_kg``. A header
    lacking a name the model was trained with is an error naming it. Without a header, and
    for a model trained without one (inputs x1..xn) whatever the header, columns are read
    by position: a file of ``n_in + n_out`` columns, like the one the model was trained on,
    gives its first ``n_in`` columns (the targets are not read)."""
    names = list(names or default_names(n_in, "x"))
    hint = f"the model takes {n_in} input{'s' * (n_in != 1)} ({_names(names)})"
    table = read_csv(path, None, hint)
    if table.header is not None:
        columns, _ = variable_names(table.header, len(table.header), 0)
        missing = [name for name in names if name not in columns]
        if not missing:
            return table.values[:, [columns.index(name) for name in names]], table.lines
        if names != default_names(n_in, "x"):
            raise DataError(
                f"{path}: the header has no column {', '.join(map(repr, missing))} "
                f"({hint}; the header names {', '.join(columns)})"
            )
    widths = (n_in, n_in + n_out) if n_out else (n_in,)
    if table.values.shape[1] not in widths:
        read_csv(path, widths, hint)  # raises the width error, naming the first line
    return table.values[:, :n_in], table.lines


def _warn_outside(
    points: np.ndarray, ranges, describe: Callable[[int], str], names: list[str]
) -> None:
    """One stderr line when any point lies outside the training range; ``describe(i)`` names
    point i for the message, ``names`` the inputs."""
    if ranges is None:
        return
    lo, hi = np.array(ranges, dtype=np.float64).T
    outside = (points < lo) | (points > hi)  # (N, n_in)
    rows = np.flatnonzero(outside.any(axis=1))
    if len(rows) == 0:
        return
    columns = ", ".join(
        f"{names[j]} [{_short(a)}, {_short(b)}]"
        for j, (a, b) in enumerate(ranges)
        if outside[:, j].any()
    )
    where = describe(rows[0])
    if len(points) > 1:
        where = f"{len(rows)} of {len(points)} points, first {where}"
    print(
        f"warning: point(s) outside the training range of {columns}: {where} "
        "(predicted anyway; the model extrapolates there)",
        file=sys.stderr,
    )


def _parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="predict.py",
        description="Predict with a trained pykan_mit model: one point given on the command "
        "line, or every row of a CSV file.",
    )
    parser.add_argument("run_dir", nargs="?", help=f"the run folder (or its {MODEL_FILE})")
    parser.add_argument(
        "coordinates", nargs="*", metavar="X", help="the point's coordinates x1 ... xn"
    )
    parser.add_argument("--csv", metavar="IN", help="predict every row of this CSV file")
    parser.add_argument("--out", metavar="OUT", help="write the --csv predictions here")
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="default: cpu")
    return parser


# argparse reads "-1e-3", "-2." or "-inf" as an unknown option; an argument holding a space is
# always a positional to it, so such numbers travel with a leading space, removed after parsing.
def _shield(argument: str) -> str:
    return f" {argument}" if argument.startswith("-") and is_number(argument) else argument


def _unshield(value):
    if isinstance(value, list):
        return [_unshield(v) for v in value]
    if isinstance(value, str) and value.startswith(" -") and is_number(value):
        return value[1:]
    return value


def _parse_args(argv: list[str]) -> argparse.Namespace:
    args = _parser().parse_intermixed_args([_shield(a) for a in argv])
    for key, value in vars(args).items():
        setattr(args, key, _unshield(value))
    if args.run_dir is None:
        raise UserError(
            "missing the run folder: RUN_DIR X1 ... XN, or RUN_DIR --csv IN [--out OUT]"
        )
    if args.out is not None and args.csv is None:
        raise UserError("--out needs --csv IN")
    if args.csv is not None and args.coordinates:
        raise UserError("give either the coordinates of one point or --csv IN, not both")
    return args


def _check_out(out: str) -> None:
    path = Path(out)
    if path.is_dir():
        raise UserError(f"--out {out}: is a directory")
    if not path.parent.is_dir():
        raise UserError(f"--out {out}: directory '{path.parent}' does not exist")


def run(argv: list[str]) -> None:
    args = _parse_args(argv)
    device = resolve_device(args.device)
    point = [_number(t, f"coordinate x{i}") for i, t in enumerate(args.coordinates, 1)]
    if args.out is not None:
        _check_out(args.out)
    model, config = load_model(args.run_dir, device)
    n_in, n_out = model.layer_dims[0], model.layer_dims[-1]
    ranges, inputs = model.input_range, list(model.input_names)
    names = class_names(args.run_dir, n_out) if config.get("task") == "classification" else None

    if args.csv is None:
        if len(point) != n_in:
            raise UserError(
                f"the model in {args.run_dir} takes {n_in} coordinate{'s' * (n_in != 1)} "
                f"({_names(inputs)}), got {len(point)}"
            )
        shown = ", ".join(repr(v) for v in point)
        _warn_outside(np.array([point]), ranges, lambda i: f"({shown})", inputs)
        values = evaluate(model, [point])[0]
        if names is not None:
            probabilities = softmax(values[None])[0]
            print(f"class({shown}) = {names[int(values.argmax())]}")
            for name, p in zip(names, probabilities):
                print(f"p({name}) = {float(p)!r}")
            return
        names = ["f"] if n_out == 1 else [f"f{j}" for j in range(1, n_out + 1)]
        for name, value in zip(names, values):
            print(f"{name}({shown}) = {float(value)!r}")
        return

    points, lines = read_points_csv(args.csv, n_in, n_out, inputs)
    _warn_outside(points, ranges, lambda i: f"{args.csv} line {lines[i]}", inputs)
    values = evaluate(model, points)
    header = inputs + default_names(n_out, "y")
    if names is not None:
        header = header[:n_in] + ["class"] + [f"p_{name}" for name in names]
        best = [names[k] for k in values.argmax(axis=1)]
        values = softmax(values)
    rows = [",".join(header)]
    rows += [
        ",".join(
            [repr(float(v)) for v in p] + ([best[i]] if names else []) + [repr(float(v)) for v in y]
        )
        for i, (p, y) in enumerate(zip(points, values))
    ]
    text = "\n".join(rows) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return
    fileio.write_text(args.out, text)  # a failure is a WriteError naming the file


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a user mistake prints ``error: …`` (one line) and returns 2."""
    return cli.run(run, argv)


if __name__ == "__main__":
    sys.exit(main())
