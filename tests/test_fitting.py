"""fitting.fit: the CLI's training loop on arrays, its key checks and one-line errors, and
nothing global left changed."""

import json
import math

import numpy as np
import pytest
import torch

import datasets
import fitting
import training
from errors import ConfigError, DataError, UserError
from run_folder import CONFIG_FILE, HISTORY_FILE, METRICS_FILE
from simple_kan import SimpleKAN, load_model

QUIET = {"progress_bar": False, "log": None}


def _pair_of_models(cfg, data, dtype=torch.float32):
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(
            SimpleKAN(cfg["layer_dims"], grid_size=5, grid_range=data.input_range, dtype=dtype)
        )
    return models


def test_fit_is_the_cli_loop_bit_for_bit_refinement_included(small_cfg):
    """The same keys, data and initial model through training.train (the CLI's loop) and
    through fit give identical weights, grids and histories."""
    keys = {"update_strategy": "fixed", "fixed_update_interval": 20, "num_steps": 50}
    cfg = small_cfg(**keys)
    data = datasets.make_data(cfg, "cpu", torch.float32)
    cli_model, fit_model = _pair_of_models(cfg, data)
    result = training.train(cfg, cli_model, data, log=lambda _: None)
    history = fitting.fit(
        fit_model,
        data.x_train.numpy(),
        data.y_train.numpy(),
        x_test=data.x_test,
        y_test=data.y_test,
        learning_rate=cfg["learning_rate"],
        **keys,
        **QUIET,
    )
    assert fit_model.grid_sizes == cli_model.grid_sizes == [15, 15]
    for (name, a), b in zip(cli_model.state_dict().items(), fit_model.state_dict().values()):
        assert torch.equal(a, b), name
    assert history["train_rmse"] == result.history["train_rmse"]
    assert history["test_rmse"] == result.history["test_rmse"]
    assert [e["step"] for e in history["events"] if e["kind"] == "refine"] == [20, 40]
    assert history["stopped"] == "completed" and len(history["step"]) == 50


def test_fit_learns_a_one_input_function_from_numpy_vectors():
    x = np.linspace(-1, 1, 200)
    y = np.sin(3 * x)
    torch.manual_seed(0)
    model = SimpleKAN([1, 1], grid_size=10)
    history = fitting.fit(
        model,
        x,
        y,
        num_steps=60,
        optimizer="lbfgs",
        learning_rate=1,
        update_strategy="none",
        **QUIET,
    )
    with torch.no_grad():
        pred = model(torch.tensor(x[:, None], dtype=torch.float32)).numpy()[:, 0]
    assert math.sqrt(np.mean((pred - y) ** 2)) < 1e-3
    assert "test_rmse" not in history and history["train_rmse"][-1] < 1e-2


def test_fit_leaves_threads_mode_and_rng_as_they_were(small_cfg):
    cfg = small_cfg()
    data = datasets.make_data(cfg, "cpu", torch.float32)
    model = _pair_of_models(cfg, data)[0].eval()
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    fitting.fit(model, data.x_train, data.y_train, num_steps=5, **QUIET)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), rng)
    assert not model.training


def test_ctrl_c_in_fit_stops_cleanly_and_restores_the_threads(small_cfg):
    """Ctrl-C (here raised from the log callback at the first log line) ends fit with
    stopped "interrupted", a finite model and torch's thread count as it was."""
    cfg = small_cfg()
    data = datasets.make_data(cfg, "cpu", torch.float32)
    model = _pair_of_models(cfg, data)[0]
    threads = torch.get_num_threads()

    lines = []

    def interrupt(line):
        lines.append(line)
        if len(lines) == 1:
            raise KeyboardInterrupt

    history = fitting.fit(
        model,
        data.x_train,
        data.y_train,
        num_steps=50,
        log_interval=20,
        log=interrupt,
        progress_bar=False,
    )
    assert history["stopped"] == "interrupted" and len(history["step"]) == 20
    assert lines[-1] == history["message"] == "interrupted at step 20"
    assert torch.get_num_threads() == threads
    with torch.no_grad():
        assert bool(torch.isfinite(model(data.x_test)).all())


def test_fit_early_stopping_uses_the_validation_arrays_given(small_cfg):
    cfg = small_cfg()
    data = datasets.make_data(cfg, "cpu", torch.float64)
    model = _pair_of_models(cfg, data, torch.float64)[0]
    x_val, y_val = data.x_test[:50], data.y_test[:50] + 5.0  # a target training cannot approach
    history = fitting.fit(
        model,
        data.x_train,
        data.y_train,
        x_val=x_val,
        y_val=y_val,
        early_stopping_patience=5,
        num_steps=200,
        learning_rate=0.01,
        **QUIET,
    )
    assert history["stopped"] == "early_stopping"
    assert len(history["val_rmse"]) == len(history["step"]) < 200


def test_fit_writes_a_run_folder_only_when_asked(tmp_path, small_cfg):
    cfg = small_cfg()
    data = datasets.make_data(cfg, "cpu", torch.float32)
    model = _pair_of_models(cfg, data)[0]
    fitting.fit(model, data.x_train, data.y_train, num_steps=10, run_dir=tmp_path / "run", **QUIET)
    saved, _ = load_model(tmp_path / "run")
    with torch.no_grad():
        assert torch.equal(saved(data.x_test), model(data.x_test))
    metrics = json.loads((tmp_path / "run" / METRICS_FILE).read_text())
    assert "test_rmse" not in metrics and metrics["steps"] == 10
    assert len(json.loads((tmp_path / "run" / HISTORY_FILE).read_text())["step"]) == 10


def test_fit_run_dir_must_be_new_or_empty_and_records_the_models_keys(tmp_path, small_cfg):
    cfg = small_cfg()
    data = datasets.make_data(cfg, "cpu", torch.float32)
    model = _pair_of_models(cfg, data)[0]
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(UserError, match="^fit: run_dir .*taken: already exists") as caught:
        fitting.fit(model, data.x_train, data.y_train, run_dir=tmp_path / "taken", **QUIET)
    assert "\n" not in str(caught.value)
    fitting.fit(model, data.x_train, data.y_train, num_steps=2, run_dir=tmp_path / "r", **QUIET)
    saved = json.loads((tmp_path / "r" / CONFIG_FILE).read_text())
    assert saved["layer_dims"] == [2, 3, 1] and saved["grid_size"] == 5
    assert saved["target_function"] is None and saved["num_steps"] == 2


@pytest.mark.parametrize(
    "keys, error, words",
    [
        ({"num_step": 5}, ConfigError, "unknown key 'num_step' (did you mean 'num_steps'?)"),
        ({"learning_rate": -1}, ConfigError, "learning_rate must be"),
        ({"grid_size": 20}, ConfigError, "grid_size is fixed by the model"),
        ({"prune": True}, ConfigError, "use model.prune(x)"),
        ({"x_val": np.zeros((3, 2))}, DataError, "x_val given without y_val"),
        ({"x_val": np.zeros((3, 2)), "y_val": np.zeros(3)}, ConfigError, "early_stopping"),
    ],
)
def test_fit_refuses_bad_keys_with_one_line(keys, error, words):
    model = SimpleKAN([2, 1], grid_size=3)
    with pytest.raises(error) as caught:
        fitting.fit(model, np.zeros((4, 2)), np.zeros(4), **keys, **QUIET)
    assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "x, y, words",
    [
        (np.zeros((4, 3)), np.zeros(4), "x has shape (4, 3), expected (N, 2)"),
        (np.zeros((4, 2)), np.zeros(5), "x has 4 rows but y has 5"),
        (np.full((4, 2), np.nan), np.zeros(4), "x holds NaN"),
        ([["a", "b"]], [1.0], "x is not a numeric array"),
        (np.zeros((0, 2)), np.zeros(0), "x has no rows"),
    ],
)
def test_fit_refuses_bad_arrays_with_one_line(x, y, words):
    model = SimpleKAN([2, 1], grid_size=3)
    with pytest.raises(DataError) as caught:
        fitting.fit(model, x, y, **QUIET)
    assert words in str(caught.value) and "\n" not in str(caught.value)
