"""The paper-toy benchmark: its configs are ordinary inputs, its machinery runs end to end, and
LBFGS keeps converging at the tiny losses the toys reach (the accuracy numbers themselves are the
benchmark's business, not the suite's)."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import config
import targets
import training

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


def quadratic(scale):
    """An ill-conditioned least-squares objective of 30 parameters, times ``scale``."""
    torch.manual_seed(0)
    a = torch.logspace(0, 1, 30, dtype=torch.float64)
    b = torch.randn(30, dtype=torch.float64)
    p = torch.nn.Parameter(torch.zeros(30, dtype=torch.float64))
    return p, lambda xb, yb: (scale * ((a * p - b) ** 2).mean(), None)


@pytest.mark.parametrize("scale", [1.0, 1e-12])
def test_lbfgs_converges_the_same_whatever_the_scale_of_the_loss(scale):
    """torch's LBFGS stores a curvature pair only when y·s > 1e-10; at a loss of 1e-12 none
    would pass and it would crawl like gradient descent. Our step normalises the objective."""
    p, loss_fn = quadratic(scale)
    cfg = {"optimizer": "lbfgs", "learning_rate": 1.0, "lbfgs_max_iter": 20}
    opt = training.make_optimizer(cfg, [p])
    with torch.no_grad():
        start = float(loss_fn(None, None)[0])
    for _ in range(3):
        training._lbfgs_step(opt, loss_fn, None, None)
    with torch.no_grad():
        assert float(loss_fn(None, None)[0]) < 1e-8 * start


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


def test_grid_range_updates_pad_hidden_layers_and_leave_a_settled_first_layer_alone():
    """The toys' grid-range updates run every 5 steps: a layer whose inputs did not move keeps
    its knots (no refit onto the same knots; the first layer sees the fixed data), and hidden
    layers reach 5% beyond the values their training inputs produce."""
    from simple_kan import SimpleKAN

    torch.manual_seed(0)
    model = SimpleKAN([2, 3, 1], grid_size=5, dtype=torch.float64)
    x = torch.rand(200, 2, dtype=torch.float64) * 1.6 - 0.8
    margin = training.HIDDEN_GRID_MARGIN
    assert model.update_grid_range(x, margin=margin)
    first = model.layers[0].knots.clone()
    with torch.no_grad():
        before = model(x)
    assert not model.update_grid_range(x, margin=margin)  # settled: nothing to move
    assert torch.equal(model.layers[0].knots, first)
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, atol=1e-9, rtol=0)
    for layer, h in zip(model.layers, model.layer_inputs(x)):
        lo, hi = h.min(dim=0).values, h.max(dim=0).values
        pad = 0.0 if layer is model.layers[0] else margin * (hi - lo)
        torch.testing.assert_close(layer.grid_range()[:, 0], lo - pad, atol=1e-9, rtol=0)
        torch.testing.assert_close(layer.grid_range()[:, 1], hi + pad, atol=1e-9, rtol=0)
