"""The data sets a config describes: training, test and validation tensors.

From ``target_function``: points drawn uniformly in ``input_range`` and evaluated by the compiled
expression (targets.py). From ``data_file``: the file's rows (data_files.py), shuffled with the
seed and split. Problems raise `DataError` with one line saying what is wrong and where.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from classes import read_labelled_file
from data_files import read_data_file
from errors import DataError
from names import default_names, variable_names
from targets import compile_target


@dataclass
class Data:
    """Training, test and (with early stopping) validation sets, as tensors on one device/dtype.

    x_* are (N, n_in), y_* are (N, n_out). `input_range` (n_in, 2) holds [lo, hi] per input: the
    sampling range for a target expression, the observed min/max of x_train for a data file.
    `target` maps x (N, n_in) to y (N, n_out) for a target expression and is None for a data file.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_val: torch.Tensor | None
    y_val: torch.Tensor | None
    input_range: torch.Tensor
    target: Callable[[torch.Tensor], torch.Tensor] | None
    description: str
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)

    def select_inputs(self, columns: list[int]) -> "Data":
        """The same data with only the input columns ``columns`` (e.g. the inputs pruning kept)."""

        def pick(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x[:, columns]

        return Data(
            pick(self.x_train),
            self.y_train,
            pick(self.x_test),
            self.y_test,
            pick(self.x_val),
            self.y_val,
            self.input_range[columns],
            None,
            self.description,
            [self.input_names[i] for i in columns],
            list(self.output_names),
        )


EVAL_CHUNK = 1_000_000  # rows per target evaluation when progress is shown


def make_data(cfg: dict, device: torch.device | str, dtype: torch.dtype, progress=None) -> Data:
    """Build the data sets a config describes; the same seed gives the same sets on every run.

    `cfg` is a resolved config (`config.load_config`); `device` a concrete device ("auto" resolved).
    From target_function: dataset_size training and test_size test points drawn uniformly in
    input_range, from independent generators seeded by cfg["seed"] (so the test set does not
    change with dataset_size), sampled and evaluated in float64 on the CPU, then cast.
    From data_file: dataset_size is ignored; the rows are shuffled with the seed, the first
    test_size become the test set and the rest the training set, which must keep at least one row.
    With early_stopping_patience set, the last validation_fraction of the training points (at
    least one, leaving at least one) become the validation set. ``progress`` (a
    `training.Progress`, e.g. the CLI's bar on a terminal) follows the evaluation of the target
    over more than EVAL_CHUNK points, chunk by chunk (the values are the same: the expressions
    act row by row), and the reading of a CSV of data_files.LARGE_FILE_BYTES or more.
    """
    n_in, n_out = cfg["layer_dims"][0], cfg["layer_dims"][-1]
    train_generator, test_generator, shuffle_generator = _generators(cfg["seed"])
    early_stopping = cfg["early_stopping_patience"] is not None
    if cfg["data_file"] is not None:
        path, test_size = cfg["data_file"], cfg["test_size"]
        x_np, y_np, input_names, output_names = _read_file(cfg, path, n_in, n_out, progress)
        x_all, y_all = torch.from_numpy(x_np), torch.from_numpy(y_np)
        needed = test_size + 1 + early_stopping
        if len(x_all) < needed:
            raise DataError(
                f"{path}: {len(x_all)} rows, but test_size {test_size} needs at least {needed} "
                f"(the test rows plus at least one training{' and one validation' * early_stopping}"
                " row); lower test_size"
            )
        if not (torch.isfinite(x_all.to(dtype)).all() and torch.isfinite(y_all.to(dtype)).all()):
            raise DataError(f"{path}: values too large for {dtype} (use dtype float64)")
        order = torch.randperm(len(x_all), generator=shuffle_generator)
        x_all, y_all = x_all[order], y_all[order]
        x_test, y_test = x_all[:test_size], y_all[:test_size]
        x_train, y_train = x_all[test_size:], y_all[test_size:]
        target = None
    else:
        ranges = torch.tensor(cfg["input_range"], dtype=torch.float64).expand(n_in, 2)
        target = compile_target(cfg["target_function"], n_in)
        input_names, output_names = default_names(n_in, "x"), default_names(n_out, "y")
        x_train = _sample(train_generator, cfg["dataset_size"], ranges)
        x_test = _sample(test_generator, cfg["test_size"], ranges)
        y_train = _evaluate(target, x_train, dtype, "training", progress)
        y_test = _evaluate(target, x_test, dtype, "test", progress)
    x_val = y_val = None
    if early_stopping:
        if len(x_train) < 2:
            raise DataError(
                f"early stopping needs at least 2 training points to hold out validation points, "
                f"got {len(x_train)}"
            )
        n_val = min(max(1, round(cfg["validation_fraction"] * len(x_train))), len(x_train) - 1)
        x_val, y_val = x_train[-n_val:], y_train[-n_val:]
        x_train, y_train = x_train[:-n_val], y_train[:-n_val]
    if target is None:
        ranges = _observed_ranges(x_train)
        description = f"{cfg['data_file']}"
    else:
        ranges = ranges.contiguous()
        description = f"{_describe_target(cfg['target_function'])} on {_describe_ranges(ranges)}"
    sizes = f"{len(x_train)} train" + (f", {len(x_val)} validation" if x_val is not None else "")
    description += f" ({sizes}, {len(x_test)} test points)"

    def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else tensor.to(device=device, dtype=dtype)

    return Data(
        x_train=move(x_train),
        y_train=move(y_train),
        x_test=move(x_test),
        y_test=move(y_test),
        x_val=move(x_val),
        y_val=move(y_val),
        input_range=move(ranges),
        target=target,
        description=description,
        input_names=input_names,
        output_names=output_names,
    )


def _read_file(cfg: dict, path: str, n_in: int, n_out: int, progress=None):
    """(x, y, input names, output names) of a data file; for classification y holds one-hot
    rows and the output names are the classes (classes.py). ``progress`` follows the reading
    of a large CSV (data_files.LARGE_FILE_BYTES)."""
    if cfg["task"] == "classification":
        x, y, classes, header = read_labelled_file(path, n_in, n_out, progress)
        return x, y, variable_names(header[:n_in] + ["y"] if header else None, n_in, 1)[0], classes
    x, y, header = read_data_file(path, n_in, n_out, progress)
    return x, y, *variable_names(header, n_in, n_out)


def shuffle_generator(seed: int) -> torch.Generator:
    """The generator that shuffles a data file's rows before the split (data_store.py too)."""
    return _generators(seed)[2]


def _generators(seed: int) -> list[torch.Generator]:
    """Three independent CPU generators (train, test, shuffle) derived from one seed."""
    states = np.random.SeedSequence(seed).generate_state(3, dtype=np.uint64)
    return [torch.Generator().manual_seed(int(state)) for state in states]


def _sample(generator: torch.Generator, n: int, ranges: torch.Tensor) -> torch.Tensor:
    """n points uniform in the box `ranges` (n_in, 2) → (n, n_in), float64."""
    u = torch.rand((n, len(ranges)), generator=generator, dtype=torch.float64)
    return ranges[:, 0] + (ranges[:, 1] - ranges[:, 0]) * u


def _evaluate(target: Callable, x: torch.Tensor, dtype, which: str, progress=None):
    """target(x) in float64, checked finite once cast to `dtype` → (N, n_out), float64."""
    if progress is None or len(x) <= EVAL_CHUNK:
        y = target(x)
    else:
        progress.start(len(x), f"{which} points")
        parts = []
        for start in range(0, len(x), EVAL_CHUNK):
            parts.append(target(x[start : start + EVAL_CHUNK]))
            progress.update(start + len(parts[-1]))
        progress.close()
        y = torch.cat(parts)
    finite = torch.isfinite(y.to(dtype)).all(dim=1)
    if not finite.all():
        first = int(torch.nonzero(~finite)[0])
        point = ", ".join(f"x{j + 1}={v:.6g}" for j, v in enumerate(x[first].tolist()))
        raise DataError(
            f"target_function is not finite in {str(dtype).removeprefix('torch.')} at "
            f"{int((~finite).sum())} of {len(x)} "
            f"{which} points, e.g. at {point}; change the expression or input_range"
        )
    return y


def _observed_ranges(x: torch.Tensor) -> torch.Tensor:
    """[min, max] per input column → (n_in, 2); a constant column gets a range of width 1."""
    lo, hi = x.min(dim=0).values, x.max(dim=0).values
    flat = lo == hi
    lo, hi = torch.where(flat, lo - 0.5, lo), torch.where(flat, hi + 0.5, hi)
    return torch.stack([lo, hi], dim=1)


def _describe_target(target_function: str | list[str]) -> str:
    if isinstance(target_function, str):
        return target_function
    return "[" + ", ".join(target_function) + "]"


def _describe_ranges(ranges: torch.Tensor) -> str:
    pairs = [f"[{lo:g}, {hi:g}]" for lo, hi in ranges.tolist()]
    if len(set(pairs)) == 1:
        names = "x1" if len(pairs) == 1 else f"x1..x{len(pairs)}"
        return f"{names} in {pairs[0]}"
    return ", ".join(f"x{i + 1} in {pair}" for i, pair in enumerate(pairs))
