"""The structure search of formula discovery (structures.py): candidates, the diagonal product,
and the rule that keeps the first candidate within tolerance."""

import numpy as np
import torch

import structures
from datasets import Data
from simple_kan import SimpleKAN

FAST = {"num_steps": 60, "grid_schedule": [3, 5], "fixed_update_interval": 30, "starts": 1}


def cfg_of(**keys) -> dict:
    import config

    return {**config.DEFAULTS, "dtype": "float64", "optimizer": "lbfgs", "learning_rate": 1.0,
            "grid_size": 3, "update_strategy": "fixed", **FAST, **keys}  # fmt: skip


def data_of(f, n_in=2, n=300, seed=0) -> Data:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, n_in, generator=g, dtype=torch.float64) * 2 - 1
    y = f(x).reshape(-1, 1)
    y = y / y.square().mean().sqrt()  # the search's coordinates: the origin kept (units.py)
    rng = torch.tensor([[-1.0, 1.0]] * n_in, dtype=torch.float64)
    names = [f"x{i + 1}" for i in range(n_in)]
    return Data(x, y, x[:60], y[:60], None, None, rng, None, "test", names, ["y"])


def build(data):
    def make(cfg, start):
        torch.manual_seed(start)
        return SimpleKAN(cfg["layer_dims"], grid_size=cfg["grid_size"], dtype=torch.float64,
                         grid_range=data.input_range, mult_arity=cfg["mult_arity"])  # fmt: skip

    return make


def train_with(data):
    import training

    return lambda cfg, model, log: training.train(cfg, model, data, log=log)


def test_candidates_go_from_the_sum_to_the_configured_network():
    cands = structures.candidates(cfg_of(layer_dims=[3, 4, 1]), 3, 1)
    assert [c.name for c in cands] == ["sum", "product", "network"]
    assert cands[0].overrides["layer_dims"] == [3, 1]
    assert cands[1].overrides["layer_dims"] == [3, [0, 1], 1]
    assert cands[1].overrides["mult_arity"] == 3
    assert cands[2].overrides["layer_dims"] == [3, 4, 1]
    assert [c.name for c in structures.candidates(cfg_of(layer_dims=[1, 3, 1]), 1, 1)] == [
        "sum",
        "network",
    ]


def test_the_product_candidate_feeds_each_factor_from_one_input():
    cand = structures.candidates(cfg_of(layer_dims=[3, 4, 1]), 3, 1)[1]
    model = cand.shaped(SimpleKAN([3, [0, 1], 1], grid_size=3, mult_arity=3))
    assert torch.equal(model.layers[0].mask, torch.eye(3, dtype=model.layers[0].mask.dtype))
    # the output does not change when an input feeds another factor's edge: only i -> i counts
    x = torch.rand(50, 3, dtype=model.layers[0].mask.dtype)
    with torch.no_grad():
        before = model(x)
        model.layers[0].coef[0, :, 1] += 5.0  # edge input 1 -> factor 2, masked
        assert torch.equal(model(x), before)


def test_relative_rmse_is_rmse_over_std():
    model = torch.nn.Identity()
    y = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
    assert np.isclose(structures.relative_rmse(lambda x: x + 0.1, y, y), 0.1)  # std(y) = 1
    assert np.isclose(structures.relative_rmse(lambda x: x + 0.1, 3 * y, 3 * y), 0.1 / 3)
    assert structures.relative_rmse(model, y, y) == 0.0


def test_an_additive_law_stops_at_the_sum():
    data = data_of(lambda x: torch.sin(2 * x[:, 0]) + x[:, 1] ** 2)
    lines = []
    found = structures.search(
        cfg_of(layer_dims=[2, 3, 1]), data, build(data), train_with(data), lines.append,
        ("completed", "early_stopping"),
    )  # fmt: skip
    assert found.name == "sum" and found.cfg["layer_dims"] == [2, 1]
    assert [e["structure"] for e in found.report] == ["sum"]
    assert found.report[0]["relative_rmse"] <= 1e-3 and found.report[0]["kept"]


def test_a_product_law_is_kept_as_the_product_and_a_mixed_one_falls_through():
    data = data_of(lambda x: (x[:, 0] + 2) * (x[:, 1] + 1.5) ** 2)
    found = structures.search(
        cfg_of(layer_dims=[2, 3, 1], starts=3, start_steps=20), data, build(data),
        train_with(data), lambda _: None, ("completed", "early_stopping"),
    )  # fmt: skip
    assert [e["structure"] for e in found.report] == ["sum", "product"]
    assert found.name == "product" and found.report[0]["relative_rmse"] > 1e-3
    mixed = data_of(lambda x: torch.sin(2 * x[:, 0] * x[:, 1]) + x[:, 0])
    found = structures.search(
        cfg_of(layer_dims=[2, 3, 1], structure_tolerance=1e-9), mixed, build(mixed),
        train_with(mixed), lambda _: None, ("completed", "early_stopping"),
    )  # fmt: skip
    assert [e["structure"] for e in found.report] == ["sum", "product", "network"]
    scores = {e["structure"]: e["relative_rmse"] for e in found.report}
    best = min(scores.values())
    kept = next(n for n in ("sum", "product", "network") if scores[n] <= 2 * best)
    assert found.name == kept
