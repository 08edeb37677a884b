"""The paper-toy benchmark: its configs are ordinary inputs and its machinery runs end to end
(the accuracy numbers themselves are the benchmark's business, not the suite's)."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import config
import targets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import paper_toys  # noqa: E402


@pytest.mark.parametrize("spec", paper_toys.TOYS, ids=lambda spec: spec["name"])
def test_every_toy_config_loads_and_follows_the_paper_recipe(spec):
    cfg = config.load_config(str(spec["config"]))
    assert cfg["layer_dims"] == spec["dims"]
    assert cfg["optimizer"] == "lbfgs" and cfg["dtype"] == "float64"
    assert cfg["knot_placement"] == "uniform" and cfg["update_strategy"] == "fixed"
    sizes = [cfg["grid_size"]] + [g for g in cfg["grid_schedule"] if g > cfg["grid_size"]]
    assert sizes == list(paper_toys.GRIDS)
    assert cfg["num_steps"] == cfg["fixed_update_interval"] * len(paper_toys.GRIDS)


def test_the_100d_target_is_a_flat_sum_that_matches_numpy():
    cfg = config.load_config(str(ROOT / "configs" / "paper_100d.input"))
    x = np.random.default_rng(0).uniform(-1, 1, (50, 100))
    y = targets.compile_target(cfg["target_function"], 100)(torch.from_numpy(x))
    expected = np.exp(np.mean(np.sin(np.pi * x / 2) ** 2, axis=1))
    np.testing.assert_allclose(y[:, 0].numpy(), expected, rtol=1e-12)


def test_a_quick_run_writes_the_table_the_plot_and_the_runs(tmp_path, capsys):
    assert paper_toys.main(["--only", "bessel", "product", "--quick", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "paper_toys.md").read_text()
    assert table.removeprefix("# KAN paper toys\n").strip() in capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| J0(20x) |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert all(math.isfinite(float(v)) for v in cells[3:8])  # one test RMSE per grid size
    assert (tmp_path / "paper_toys.pdf").stat().st_size > 1000
    run = tmp_path / "paper_toys_runs" / "product"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["grid_sizes"] == [50, 50]
    assert f"{metrics['test_rmse']:.2e}" in table  # the last grid's entry is the model returned
