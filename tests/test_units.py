"""Standardised training coordinates (units.py): the map, the model that takes it in, and a run
on data in physical units whose model, history and formula come back in those units."""

import json

import numpy as np
import sympy
import torch

import pykan_mit
import units
from datasets import Data
from simple_kan import SimpleKAN, load_model


def physical_data(n=400, seed=0) -> Data:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([900.0, 2e-3])
    x = x + torch.tensor([100.0, -1e-3])
    y = (x[:, :1] * x[:, 1:]) * 1e3 + 5.0
    rng = torch.tensor([[100.0, 1000.0], [-1e-3, 1e-3]], dtype=torch.float64)
    return Data(x, y, x[:50], y[:50], None, None, rng, None, "test", ["a", "b"], ["y"])


def test_standardised_data_span_the_unit_box_and_map_back():
    data = physical_data()
    scale = units.units_of(data)
    std = units.standardized(data, scale)
    assert torch.allclose(
        std.x_train.min(0).values, torch.tensor([-1.0, -1.0], dtype=torch.float64)
    )
    assert torch.allclose(std.x_train.max(0).values, torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert (
        abs(float(std.y_train.mean())) < 1e-12
        and abs(float(std.y_train.std(unbiased=False)) - 1) < 1e-12
    )
    back = std.x_train * scale.in_scale + scale.in_shift
    assert torch.allclose(back, data.x_train, rtol=1e-14, atol=0)


def test_a_model_with_units_maps_data_units_through_its_standardised_network(tmp_path):
    data = physical_data()
    scale = units.units_of(data)
    torch.manual_seed(0)
    model = SimpleKAN([2, [1, 1], 1], grid_size=5, dtype=torch.float64, input_names=["a", "b"])
    with torch.no_grad():
        inner = model(units.standardized(data, scale).x_train)
    model.set_units(scale)
    with torch.no_grad():
        got = model(data.x_train)
    assert torch.allclose(got, inner * scale.out_scale + scale.out_shift, rtol=1e-13, atol=1e-13)
    import config

    model.save_model(tmp_path, config.validate_config({"layer_dims": [2, [1, 1], 1]}, "t"))
    loaded, _ = load_model(tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(data.x_train), got)
    small, _ = model.prune(data.x_train, threshold=0.0)
    with torch.no_grad():
        assert torch.allclose(small(data.x_train), got, rtol=1e-12, atol=1e-12)


def test_a_law_in_physical_units_comes_back_in_its_column_names(tmp_path, capsys):
    rng = np.random.default_rng(0)
    m, v = rng.uniform(1, 10, 800), rng.uniform(-3, 3, 800)
    csv = tmp_path / "energy.csv"
    np.savetxt(
        csv, np.column_stack([m, v, m * v**2 / 2]), delimiter=",", header="m,v,E", comments=""
    )
    keys = {
        "data_file": str(csv),
        "target_function": None,
        "layer_dims": [2, [0, 1], 1],
        "test_size": 300,
        "dtype": "float64",
        "optimizer": "lbfgs",
        "learning_rate": 1,
        "num_steps": 150,
        "grid_size": 3,
        "update_strategy": "fixed",
        "fixed_update_interval": 50,
        "grid_schedule": [3, 5, 10],
        "grid_range_update_every": 100,  # this free [2, [0, 1], 1] fits its edges best with it
        "standardize": True,
        "symbolic": True,
        "plots": False,
        "progress_bar": False,
    }
    sets = [a for k, val in keys.items() for a in ("--set", f"{k}={json.dumps(val)}")]
    run_dir = tmp_path / "run"
    assert pykan_mit.main(["--dir", str(run_dir)] + sets) == 0, capsys.readouterr().err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    sm, sv = sympy.symbols("m v")
    assert sympy.simplify(sympy.sympify(metrics["formula"]) - sm * sv**2 / 2) == 0
    assert set(metrics["input_importance"]) == {"m", "v"}
    model, _ = load_model(run_dir)  # the saved model predicts in the data's units
    x = torch.tensor([[2.0, 1.5], [9.0, -2.5]], dtype=torch.float64)
    with torch.no_grad():
        got = model(x)[:, 0].numpy()
    np.testing.assert_allclose(got, [2.25, 28.125], rtol=1e-3)
    history = json.loads((run_dir / "history.json").read_text())
    assert abs(history["train_rmse"][-1] - metrics["train_rmse"]) <= 0.05 * metrics["train_rmse"]


def test_keeping_the_origin_scales_outputs_by_their_root_mean_square():
    data = physical_data()
    scale = units.units_of(data, keep_origin=True)
    y = data.y_train[:, 0]
    assert float(scale.out_shift[0]) == 0.0
    assert np.isclose(float(scale.out_scale[0]), float(np.sqrt(np.mean(y.numpy() ** 2))))
    mapped = units.standardized(data, scale).y_train[:, 0]
    assert torch.allclose(mapped * scale.out_scale[0], y)  # a product stays a product
