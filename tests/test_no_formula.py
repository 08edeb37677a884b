"""The failure path of formula discovery: where no formula exists, the run says "no formula"
with the reason and never presents a wrong formula as found."""

import json

import numpy as np

import pykan_mit

KEYS = {
    "target_function": None,
    "layer_dims": [2, 3, 1],
    "test_size": 200,
    "dtype": "float64",
    "optimizer": "lbfgs",
    "learning_rate": 1,
    "num_steps": 60,
    "grid_size": 5,
    "standardize": True,
    "symbolic": True,
    "plots": False,
    "progress_bar": False,
}


def run_on(tmp_path, capsys, columns) -> dict:
    csv = tmp_path / "data.csv"
    np.savetxt(csv, np.column_stack(columns), delimiter=",", header="a,b,y", comments="")
    keys = {**KEYS, "data_file": str(csv)}
    sets = [arg for k, v in keys.items() for arg in ("--set", f"{k}={json.dumps(v)}")]
    run_dir = tmp_path / "run"
    assert pykan_mit.main(["--dir", str(run_dir)] + sets) == 0, capsys.readouterr().err
    return json.loads((run_dir / "metrics.json").read_text())


def test_pure_noise_gives_no_formula_with_the_reason(tmp_path, capsys):
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-1, 1, 700), rng.uniform(-1, 1, 700)
    metrics = run_on(tmp_path, capsys, [a, b, rng.normal(0, 1, 700)])
    assert metrics["formula"] is None
    assert metrics["formula_note"].startswith("no formula: the network explains only R^2")


def test_a_step_function_is_not_presented_as_a_formula(tmp_path, capsys):
    rng = np.random.default_rng(2)
    a, b = rng.uniform(-1, 1, 700), rng.uniform(-1, 1, 700)
    metrics = run_on(tmp_path, capsys, [a, b, np.where(a > 0.1, 1.0, 0.0)])
    if metrics["formula"] is not None:  # only a formula that truly fits may be presented
        assert metrics["formula_test_rmse"] <= 10 * metrics["test_rmse"]
        assert metrics["formula_test_rmse"] < 0.05
    else:
        assert metrics["formula_note"].startswith("no formula:")
