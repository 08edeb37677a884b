"""The paper's interpretability loop end to end (section 2.5): sparsify, prune, symbolify.

Functions with a known formula are learnt by the training entry point (`pykan_mit.main`, in
process) from configs/interpretability_demo.input, scaled down to small float64 data sets; the
pruned network's formula (metrics.json) is parsed back with sympy and compared with the truth on
fresh points.
"""

import json
from pathlib import Path

import numpy as np
import sympy

import pykan_mit
import symbolic

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "configs" / "interpretability_demo.input"
# The demo config on 300 points: a faster schedule, the same penalty, pruning and symbolics.
SMALL = {
    "dataset_size": 300,
    "test_size": 200,
    "learning_rate": 0.02,
    "num_steps": 400,
    "prune_finetune_steps": 50,
    "plots": False,
    "progress_bar": False,
    "log_interval": 1000,
}
X1, X2 = sympy.symbols("x1 x2")


def run_pipeline(tmp_path, capsys, **keys) -> dict:
    """Train, prune and symbolify with the demo config plus ``keys``; returns metrics.json."""
    sets = [f"{key}={json.dumps(value)}" for key, value in {**SMALL, **keys}.items()]
    run_dir = tmp_path / "run"
    args = ["--config", str(DEMO_CONFIG), "--dir", str(run_dir)]
    code = pykan_mit.main(args + [arg for key in sets for arg in ("--set", key)])
    assert code == 0, capsys.readouterr().err
    return json.loads((run_dir / "metrics.json").read_text())


def fresh_rmse(formula: str, truth: sympy.Expr) -> float:
    """RMSE of the formula text against the truth on 2000 fresh points of [-1, 1]^2."""
    x = np.random.default_rng(2024).uniform(-1.0, 1.0, size=(2000, 2))
    got, want = symbolic.evaluate_formula([sympy.sympify(formula), truth], x).T
    return float(np.sqrt(np.mean((got - want) ** 2)))


def test_demo_config_is_the_papers_setup():
    config = json.loads(DEMO_CONFIG.read_text())
    assert config["target_function"] == "exp(sin(pi*x1) + x2**2)"
    assert config["layer_dims"] == [2, 5, 1]
    assert config["use_regularization"] and config["prune"] and config["symbolic"]


def test_nested_demo_function_prunes_to_one_hidden_node_and_recovers_its_formula(tmp_path, capsys):
    metrics = run_pipeline(tmp_path, capsys, seed=0)
    assert metrics["prune"]["dims_after"] == [2, 1, 1]
    assert metrics["layer_dims"] == [2, 1, 1]
    assert fresh_rmse(metrics["formula"], sympy.exp(sympy.sin(sympy.pi * X1) + X2**2)) < 1e-3


def test_additive_function_prunes_to_one_hidden_node_and_recovers_its_formula(tmp_path, capsys):
    # A smaller function than the demo's exp: a lighter penalty keeps the fit ahead of it.
    metrics = run_pipeline(
        tmp_path,
        capsys,
        target_function="x1**2 + sin(pi*x2)",
        layer_dims=[2, 3, 1],
        l1_weight=0.003,
        entropy_weight=0.03,
        seed=0,
    )
    assert metrics["layer_dims"] == [2, 1, 1]
    assert fresh_rmse(metrics["formula"], X1**2 + sympy.sin(sympy.pi * X2)) < 1e-3


def test_product_keeps_its_two_hidden_nodes_and_recovers_the_exact_product(tmp_path, capsys):
    # x1 * x2 = ((x1 + x2)^2 - (x1 - x2)^2) / 4 needs both hidden nodes: pruning keeps them.
    metrics = run_pipeline(
        tmp_path,
        capsys,
        target_function="x1*x2",
        layer_dims=[2, 2, 1],
        use_regularization=False,
        seed=0,
    )
    assert metrics["prune"]["dims_after"] == [2, 2, 1]
    assert fresh_rmse(metrics["formula"], X1 * X2) < 1e-3
    # The trained splines fit tan-like and cos-like edges slightly better than x and x^2
    # (a formula within ~5e-4 of the truth); the simplest edge functions give x1*x2 exactly.
    assert sympy.simplify(sympy.sympify(metrics["formula"]) - X1 * X2) == 0
