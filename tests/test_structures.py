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


def test_product_pairs_finds_the_inputs_that_enter_only_as_their_product():
    origins = [0.5, -2.0, 0.25]  # the physical inputs are x' + origin

    def law(x):  # K / (1 + exp(-r t)) in those inputs
        u = x + torch.tensor(origins, dtype=x.dtype)
        return u[:, :1] * torch.sigmoid(u[:, 1:2] * u[:, 2:3])

    x = torch.rand(400, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    pairs = structures.product_pairs(law, x, origins)
    assert [(i, j) for _, i, j in pairs] == [(1, 2)] and pairs[0][0] < 1e-12
    # the same law read with the wrong origins is no longer a function of a product
    assert structures.product_pairs(law, x, [0.0, 0.0, 0.0]) == []
    unrelated = structures.product_pairs(
        lambda x: torch.sin(x[:, :1] + x[:, 1:2]) * x[:, 2:], x, origins
    )
    assert unrelated == []


def test_the_grouped_candidate_multiplies_the_physical_inputs_of_a_pair():
    cand = structures.grouped(3, 1, [(1, 2)], origins=[0.0, 1.0, -0.5])
    dims, arity = cand.overrides["layer_dims"], cand.overrides["mult_arity"]
    assert dims == [3, [1, 1], [0, 1], 1] and cand.linear_output
    model = cand.shaped(SimpleKAN(dims, grid_size=3, mult_arity=arity, dtype=torch.float64))
    with torch.no_grad():
        model.layers[0].spline_scale.uniform_(0.5, 2.0)
    x = torch.rand(64, 3, dtype=torch.float64) * 2 - 1
    nodes = model.layer_inputs(x)[1]  # level 1: x_1 alone, then the product node
    s = model.layers[0].spline_scale.detach()
    torch.testing.assert_close(nodes[:, 0], s[0, 0] * x[:, 0], rtol=0, atol=1e-12)
    pair = s[1, 1] * (x[:, 1] + 1.0) * s[2, 2] * (x[:, 2] - 0.5)
    torch.testing.assert_close(nodes[:, 1], pair, rtol=0, atol=1e-12)
    assert torch.equal(model.layers[1].mask, torch.eye(2, dtype=torch.float64))
    only = structures.grouped(2, 1, [(0, 1)], origins=[0.0, 0.0])  # y = psi(x1 * x2)
    assert only.overrides["layer_dims"] == [2, [0, 1], 1] and not only.linear_output


def test_a_law_of_a_product_inside_a_function_is_kept_as_the_grouped_product():
    data = data_of(lambda x: (x[:, 0] + 2) * torch.tanh(2 * x[:, 1] * x[:, 2]), n_in=3, n=600)
    lines = []
    found = structures.search(
        cfg_of(layer_dims=[3, [2, 2], 1], mult_arity=2, num_steps=150, grid_schedule=[3, 5, 10],
               fixed_update_interval=50), data, build(data), train_with(data), lines.append,
        ("completed", "early_stopping"),
    )  # fmt: skip
    assert [e["structure"] for e in found.report] == ["sum", "product", "grouped", "network"]
    assert found.name == "grouped", lines
    assert found.report[2]["pairs"] == [[1, 2]] and found.report[2]["relative_rmse"] <= 1e-3
