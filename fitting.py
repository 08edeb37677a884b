"""Training from Python: ``fit(model, x, y, **keys)`` (also ``SimpleKAN.fit``), the CLI's loop
without a config file.

The keys are the config's training keys (config.py), checked by the same rules with the same
one-line errors; the loop is `training.train` (refinement, regularisation, LBFGS/Adam, early
stopping, the best-state rule). Keys that describe the model or the data set (its widths, grid,
data source, device, dtype) belong to the model and the arrays given, and keys of the phases
after training (pruning, symbolic formulas) to their own calls (`SimpleKAN.prune`,
`symbolic.symbolify`): both are refused with a line saying so. Nothing is written to disk unless
``run_dir`` is given; torch's thread count and the model's train/eval mode are restored on
return.
"""

from collections.abc import Callable

import numpy as np
import torch

import config
import training
from datasets import Data
from errors import ConfigError, DataError, UserError
from experiment import History, measure
from progress import ProgressBar
from run_folder import RunFolder
from runtime import kernel_threads

WHERE = "fit"  # names the source of the keys in error messages
MODEL_KEYS = (  # fixed by the model or the arrays given
    "layer_dims",
    "mult_arity",
    "grid_size",
    "spline_degree",
    "base_activation",
    "dtype",
    "device",
    "target_function",
    "data_file",
    "input_range",
    "dataset_size",
    "test_size",
)
LATER_PHASES = {  # key: the call that does its work
    "prune": "model.prune(x)",
    "prune_threshold": "model.prune(x, threshold)",
    "prune_inputs": "model.prune(x, threshold, prune_inputs=True)",
    "prune_finetune_steps": "fit after model.prune(x)",
    "symbolic": "symbolic.symbolify(model, x, y)",
    "symbolic_library": "symbolic.symbolify(model, x, y, library=...)",
    "symbolic_r2_threshold": "symbolic.symbolify(model, x, y, r2_threshold=...)",
    "symbolic_finetune_steps": "symbolic.symbolify(model, x, y, finetune_steps=...)",
}


def fit_keys(keys: dict) -> dict:
    """The training config of ``keys`` (defaults for the others); refused keys and bad values
    raise `ConfigError` with one line."""
    for key in keys:
        if key in MODEL_KEYS:
            raise ConfigError(
                f"{WHERE}: {key} is fixed by the model or the arrays given; set it when building "
                "the model (SimpleKAN(...)) or preparing the data"
            )
        if key in LATER_PHASES:
            raise ConfigError(f"{WHERE}: {key} is not a training key; use {LATER_PHASES[key]}")
    return config.check_keys(keys, WHERE)


def as_tensor(name: str, values, columns: int, like: torch.Tensor) -> torch.Tensor:
    """numpy / torch / nested lists → a finite (N, columns) tensor on ``like``'s device and
    dtype; a 1-D array is one column (columns == 1) or one row per value. Else DataError."""
    try:
        t = values if torch.is_tensor(values) else torch.tensor(np.asarray(values))
    except (TypeError, ValueError, RuntimeError):
        raise DataError(f"{WHERE}: {name} is not a numeric array") from None
    if t.dtype == torch.bool or t.is_complex():
        raise DataError(f"{WHERE}: {name} is not a real numeric array (dtype {t.dtype})")
    if t.dim() == 1 and columns == 1:
        t = t[:, None]
    if t.dim() != 2 or t.shape[1] != columns:
        raise DataError(
            f"{WHERE}: {name} has shape {tuple(t.shape)}, expected (N, {columns}) for this model"
        )
    if len(t) == 0:
        raise DataError(f"{WHERE}: {name} has no rows")
    t = t.detach().to(device=like.device, dtype=like.dtype)
    if not bool(torch.isfinite(t).all()):
        raise DataError(
            f"{WHERE}: {name} holds NaN or infinite values (or values too large for "
            f"{str(like.dtype).removeprefix('torch.')})"
        )
    return t


def _pair(name: str, x, y, n_in: int, n_out: int, like: torch.Tensor):
    if (x is None) != (y is None):
        given, missing = (f"x_{name}", f"y_{name}") if y is None else (f"y_{name}", f"x_{name}")
        raise DataError(f"{WHERE}: {given} given without {missing}")
    if x is None:
        return None, None
    xt, yt = as_tensor(f"x_{name}", x, n_in, like), as_tensor(f"y_{name}", y, n_out, like)
    if len(xt) != len(yt):
        raise DataError(f"{WHERE}: x_{name} has {len(xt)} rows but y_{name} has {len(yt)}")
    return xt, yt


def fit_data(model, cfg: dict, x, y, x_val=None, y_val=None, x_test=None, y_test=None) -> Data:
    """The arrays as the training loop takes them. Without x_val, early stopping holds out the
    last validation_fraction of (x, y) as the CLI does; x_val without early stopping is refused.
    Without x_test, the test curve is absent (no rows)."""
    like, n_in, n_out = model.layers[0].knots, model.node_counts[0], model.node_counts[-1]
    x_train, y_train = as_tensor("x", x, n_in, like), as_tensor("y", y, n_out, like)
    if len(x_train) != len(y_train):
        raise DataError(f"{WHERE}: x has {len(x_train)} rows but y has {len(y_train)}")
    xv, yv = _pair("val", x_val, y_val, n_in, n_out, like)
    xt, yt = _pair("test", x_test, y_test, n_in, n_out, like)
    patience = cfg["early_stopping_patience"]
    if xv is not None and patience is None:
        raise ConfigError(
            f"{WHERE}: x_val is for early stopping, but early_stopping_patience is null (set it)"
        )
    if patience is not None and xv is None:
        if len(x_train) < 2:
            raise DataError(f"{WHERE}: early stopping needs at least 2 rows of x to hold out")
        n_val = min(max(1, round(cfg["validation_fraction"] * len(x_train))), len(x_train) - 1)
        x_train, xv = x_train[:-n_val], x_train[-n_val:]
        y_train, yv = y_train[:-n_val], y_train[-n_val:]
    if xt is None:
        xt, yt = x_train[:0], y_train[:0]
    return Data(
        x_train,
        y_train,
        xt,
        yt,
        xv,
        yv,
        torch.tensor(model.input_range, dtype=like.dtype, device=like.device),
        None,
        f"{len(x_train)} training points given to fit",
        list(model.input_names),
    )


def fit(
    model,
    x,
    y,
    *,
    x_val=None,
    y_val=None,
    x_test=None,
    y_test=None,
    run_dir=None,
    log: Callable[[str], None] | None = print,
    **keys,
) -> dict:
    """Train ``model`` (a `SimpleKAN`) in place on ``x (N, n_in)``, ``y (N, n_out)`` (numpy,
    torch or lists; a 1-D y for one output) as the config ``keys`` say; returns the history:
    "step", "train_rmse", "test_rmse" (with x_test), "val_rmse" (with early stopping), "events"
    (refinements, grid-range updates), "phases", "stopped" ("completed", "early_stopping",
    "interrupted" or "non_finite_loss") and "message".

    ``log`` receives the loop's lines (refinements, the state kept; None: silent); the key
    ``progress_bar`` shows a tqdm.auto bar (a widget in a notebook). ``run_dir`` (a new or empty
    folder) also writes the model, config, metrics and history there, with checkpoints every
    ``checkpoint_interval`` steps. Ctrl-C stops training cleanly (stopped "interrupted").
    """
    cfg = fit_keys(keys)
    data = fit_data(model, cfg, x, y, x_val, y_val, x_test, y_test)
    cfg.update(_model_keys(model, data.x_train))
    bar = ProgressBar(notebook=True) if cfg["progress_bar"] else None
    echo = bar.write if bar is not None and log is print else log  # print would break the bar
    run = _run_folder(run_dir, echo)
    checkpoint = None
    if run is not None:

        def checkpoint(m, step, state, final):
            if not final:
                run.write_model(m.checkpoint(), cfg, m.architecture())

    was_training = model.training
    model.train()
    try:
        with kernel_threads(data.x_train.device):
            result = training.train(
                cfg,
                model,
                data,
                log=run.log if run is not None else (echo or (lambda _: None)),
                progress=bar,
                checkpoint=checkpoint,
            )
            history = History(result)
            if run is not None:
                _write_run(run, cfg, model, data, history, result.stopped)
    finally:
        model.train(was_training)
        if run is not None:
            run.close()
    record = dict(history.record)
    if x_test is None:
        record.pop("test_rmse", None)
        record.pop("test_loss", None)
    return {**record, "stopped": result.stopped, "message": result.message}


def _model_keys(model, x: torch.Tensor) -> dict:
    """The config keys the model and the arrays fix, as a saved config records them."""
    arch = model.architecture()
    return {
        "layer_dims": list(model.layer_dims),
        "mult_arity": arch["mult_arity"],
        "grid_size": arch["grid_sizes"][0],
        "spline_degree": arch["spline_degree"],
        "base_activation": arch["base_activation"],
        "dtype": arch["dtype"],
        "device": x.device.type,
        "target_function": None,
        "input_range": arch["input_range"],
        "dataset_size": len(x),
    }


def _run_folder(run_dir, echo) -> RunFolder | None:
    if run_dir is None:
        return None
    try:
        return RunFolder.create(str(run_dir), echo=echo)
    except UserError as error:  # its message names the CLI's --dir
        raise UserError(f"{WHERE}: run_dir {str(error).removeprefix('--dir ')}") from None


def _write_run(run: RunFolder, cfg: dict, model, data: Data, history: History, stopped: str):
    metrics = measure(cfg, model, data, history, stopped, data.x_train.device)
    run.write_model(model.checkpoint(), cfg, model.architecture())
    run.write_history(history.record)
    if len(data.x_test) == 0:
        for key in ("test_rmse", "test_accuracy", "test_log_loss"):
            metrics.pop(key, None)
    run.write_metrics(metrics)
