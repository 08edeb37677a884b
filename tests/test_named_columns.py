"""A CSV's header names the variables end to end: training on ``mass,speed,energy`` gives a
log, metrics and formula in mass and speed, and the saved model predicts a CSV by those names
through ./run_predict.sh."""

import json
import subprocess
from pathlib import Path

import numpy as np
import sympy

import predict
import pykan_mit
from run_folder import FORMULA_LATEX_FILE, FORMULA_TEXT_FILE, LOG_FILE, METRICS_FILE

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "configs" / "interpretability_demo.input"
# The demo config on 300 rows (as tests/test_interpretability.py runs its additive case); a low
# R^2 bar makes every edge symbolic, so a formula is written whatever its accuracy: this test
# is about the names it is written in.
KEYS = {
    "target_function": None,
    "layer_dims": [2, 3, 1],
    "test_size": 200,
    "learning_rate": 0.02,
    "num_steps": 300,
    "l1_weight": 0.003,
    "entropy_weight": 0.03,
    "prune_finetune_steps": 30,
    "symbolic_finetune_steps": 100,
    "symbolic_r2_threshold": 0.01,
    "plots": False,
    "progress_bar": False,
    "log_interval": 1000,
}


def energy(mass: float, speed: float) -> float:
    return float(mass**2 + np.sin(np.pi * speed))


def test_header_names_reach_log_metrics_formula_and_predict(tmp_path, capsys):
    rng = np.random.default_rng(0)
    mass, speed = rng.uniform(-1, 1, (2, 500)).tolist()
    rows = "".join(f"{m!r},{s!r},{energy(m, s)!r}\n" for m, s in zip(mass, speed))
    data = tmp_path / "energy.csv"
    data.write_text("mass,speed,energy\n" + rows)
    run_dir = tmp_path / "run"
    sets = [f"{key}={json.dumps(value)}" for key, value in {**KEYS, "data_file": str(data)}.items()]
    argv = ["--config", str(DEMO_CONFIG), "--dir", str(run_dir)]
    code = pykan_mit.main(argv + [arg for s in sets for arg in ("--set", s)])
    assert code == 0, capsys.readouterr().err

    log = (run_dir / LOG_FILE).read_text()
    importance_line = next(line for line in log.splitlines() if "input importance:" in line)
    shown = importance_line.split("input importance: ")[1].split(", ")
    assert [part.split()[0] for part in shown] == ["mass", "speed"]
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    assert list(metrics["input_importance"]) == ["mass", "speed"]
    formula = metrics["formula"]
    assert formula and (run_dir / FORMULA_TEXT_FILE).read_text().strip() == formula
    used = {s.name for s in sympy.sympify(formula).free_symbols}
    assert used and used <= {"mass", "speed"}, formula
    latex = (run_dir / FORMULA_LATEX_FILE).read_text()
    assert any(name in latex for name in used) and "x_{1}" not in latex, latex

    # predict by name: columns reordered, the target and an extra column in between
    points = np.array([[0.3, -0.4], [-0.8, 0.9]])  # (mass, speed)
    table = tmp_path / "points.csv"
    table.write_text(
        "speed,energy,mass,note\n"
        + "".join(f"{s!r},{energy(m, s)!r},{m!r},7\n" for m, s in points.tolist())
    )
    result = subprocess.run(
        [str(ROOT / "run_predict.sh"), str(run_dir), "--csv", str(table)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "mass,speed,y1"
    got = np.array([[float(c) for c in line.split(",")] for line in lines[1:]])
    assert got[:, :2].tolist() == points.tolist()
    assert got[:, 2].tolist() == predict.predict(run_dir, points)[:, 0].tolist()
