"""Multiplication nodes (KAN 2.0): level structure, the product and its gradient, refinement,
attribution, pruning as units and save/load, each against an independent computation."""

import numpy as np
import pytest
import torch

import config
from errors import ConfigError
from nodes import Level, combine, parse_levels
from simple_kan import SimpleKAN, load_model


def trained_like(dims, mult_arity=2, seed=0, n_in=None) -> SimpleKAN:
    """A float64 model with non-trivial random weights (as if trained)."""
    torch.manual_seed(seed)
    model = SimpleKAN(dims, grid_size=5, dtype=torch.float64, mult_arity=mult_arity)
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.normal_(0.0, 0.5)
            layer.base_weight.normal_(0.0, 0.5)
    return model


def test_widths_and_arities_become_levels():
    levels = parse_levels([3, [2, 2], [0, 1], 1], [0, [2, 3], 4, 0])
    assert levels[1] == Level(2, (2, 3))
    assert [b for b in levels[1].blocks()] == [range(2, 4), range(4, 7)]
    assert levels[1].n_sub == 7 and levels[1].n_nodes == 4
    assert levels[2] == Level(0, (4,))
    assert levels[1].node_of_subnode() == [0, 1, 2, 2, 3, 3, 3]


@pytest.mark.parametrize(
    "dims, arity, words",
    [
        ([[1, 1], 2, 1], 2, "input level cannot have multiplication"),
        ([2, 2, [0, 1]], 2, "output level cannot have multiplication"),
        ([2, [0, 1], 1], 1, "mult_arity must be >= 2"),
        ([2, [1, 2], 1], [0, [2], 0], "must list the arities of the 2"),
        ([2, [0, 0], 1], 2, "level 1 has no nodes"),
        ([2, [1, 2, 3], 1], 2, "pair [n_add, n_mult]"),
    ],
)
def test_bad_widths_and_arities_are_refused_in_one_line(dims, arity, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_levels(dims, arity)
    with pytest.raises(ConfigError) as error:
        config.validate_config({"layer_dims": dims, "mult_arity": arity}, "run.json")
    assert "\n" not in str(error.value) and "run.json" in str(error.value)


def test_combine_multiplies_each_block_in_node_order():
    level = Level(1, (3, 2))  # arities out of sorted order: the node order must be restored
    sub = torch.randn(5, level.n_sub, dtype=torch.float64)
    want = torch.stack([sub[:, 0], sub[:, 1] * sub[:, 2] * sub[:, 3], sub[:, 4] * sub[:, 5]], dim=1)
    assert torch.equal(combine(level, sub), want)
    same = Level(1, (2, 2))  # one arity: the blocks tile the tail
    sub = torch.randn(5, same.n_sub, dtype=torch.float64)
    want = torch.stack([sub[:, 0], sub[:, 1] * sub[:, 2], sub[:, 3] * sub[:, 4]], dim=1)
    assert torch.equal(combine(same, sub), want)


def test_gradient_through_a_product_with_an_exactly_zero_factor_is_finite_and_exact():
    level = Level(0, (3,))
    sub = torch.tensor([[0.0, 2.0, -3.0], [0.0, 0.0, 5.0]], dtype=torch.float64)
    sub.requires_grad_(True)
    combine(level, sub).sum().backward()
    # d(abc)/da = bc, d/db = ac, d/dc = ab: no quotient, so zeros stay finite
    want = torch.tensor([[-6.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    assert torch.equal(sub.grad, want)
    assert torch.autograd.gradcheck(lambda s: combine(level, s), (sub.detach().requires_grad_(),))


@pytest.mark.parametrize("fast", [True, False])
def test_gradcheck_through_a_network_with_multiplication_nodes(fast):
    model = trained_like([2, [1, 2], 1], mult_arity=[0, [2, 3], 0])
    x = torch.rand(7, 2, dtype=torch.float64) * 2 - 1
    x[0, 0] = 0.0  # silu(0) = 0 and a spline that may vanish there: a zero factor on the way
    forward = model.forward if fast else model.forward_reference
    assert torch.autograd.gradcheck(forward, (x.requires_grad_(),))
    params = [p for p in model.parameters()]
    assert torch.autograd.gradcheck(
        lambda *ps: _with_params(model, ps, forward, x.detach()), tuple(params)
    )


def _with_params(model, params, forward, x):
    saved = [p.data for p in model.parameters()]
    try:
        for p, q in zip(model.parameters(), params):
            p.data = q
        return torch.func.functional_call(
            model, {n: q for (n, _), q in zip(model.named_parameters(), params)}, (x,)
        )
    finally:
        for p, s in zip(model.parameters(), saved):
            p.data = s


@pytest.mark.parametrize("placement", ["uniform", "error"])
def test_refinement_with_multiplication_nodes_keeps_the_output(placement):
    model = trained_like([3, [1, 2], [0, 1], 1], mult_arity=[0, [2, 3], 2, 0])
    x = torch.rand(400, 3, dtype=torch.float64) * 2 - 1
    y = torch.sin(3 * x[:, :1])
    with torch.no_grad():
        before = model(x)
    model.refine(x, grid_size=10, placement=placement, y=y)
    assert model.grid_sizes == [10, 10, 10]
    with torch.no_grad():
        assert torch.allclose(model(x), before, rtol=0, atol=1e-9)


def test_attribution_follows_the_kan2_definition_by_hand():
    model = trained_like([2, [1, 1], 1])
    x = torch.rand(300, 2, dtype=torch.float64) * 2 - 1
    edges, nodes = model.edge_scores(x)
    with torch.no_grad():
        phi1 = model.layers[0].edge_activations(x).numpy()  # (N, 3 subnodes, 2 inputs)
        hidden = combine(model.levels[1], torch.from_numpy(phi1.sum(axis=2))).numpy()
        phi2 = model.layers[1].edge_activations(torch.from_numpy(hidden)).numpy()  # (N, 1, 2)
    out_std = phi2.sum(axis=2).std(axis=0)  # (1,)
    e2 = phi2.std(axis=0) / out_std[:, None]  # output score 1
    hidden_score = e2.sum(axis=0)  # (2 nodes): addition node, multiplication node
    sub_score = hidden_score[[0, 1, 1]]  # the product's score copied to its two subnodes
    e1 = phi1.std(axis=0) * (sub_score / phi1.sum(axis=2).std(axis=0))[:, None]
    np.testing.assert_allclose(edges[1].numpy(), e2, rtol=1e-10)
    np.testing.assert_allclose(nodes[1].numpy(), hidden_score, rtol=1e-10)
    np.testing.assert_allclose(edges[0].numpy(), e1, rtol=1e-10)
    np.testing.assert_allclose(nodes[0].numpy(), e1.sum(axis=0), rtol=1e-10)
    importance = model.input_importance(x)
    assert list(importance) == ["x1", "x2"]
    np.testing.assert_allclose(list(importance.values()), e1.sum(axis=0), rtol=1e-10)


def test_a_weak_multiplication_node_is_pruned_with_its_subnodes():
    model = trained_like([2, [1, 2], 1], mult_arity=[0, [2, 3], 0])
    with torch.no_grad():
        model.layers[1].base_weight[:, 1] = 0.0  # the arity-2 node feeds the output nothing
        model.layers[1].coef[1] = 0.0
    x = torch.rand(300, 2, dtype=torch.float64) * 2 - 1
    small, report = model.prune(x, threshold=0.01)
    assert small.layer_dims == [2, [1, 1], 1] and small.mult_arity == [[], [3], []]
    assert small.layers[0].out_dim == 1 + 3
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-12)


def test_an_unimportant_input_is_dropped_and_the_model_takes_the_others():
    model = trained_like([3, [0, 1], 1])
    with torch.no_grad():
        model.layers[0].mask[:, 2] = 0.0  # x3 feeds nothing
    x = torch.rand(300, 3, dtype=torch.float64) * 2 - 1
    small, report = model.prune(x, threshold=0.01, prune_inputs=True)
    assert report["dropped_inputs"] == ["x3"] and small.input_names == ["x1", "x2"]
    with torch.no_grad():
        assert torch.allclose(small(x[:, :2]), model(x), atol=1e-12)


def test_save_load_predict_equals_the_model_with_multiplication_nodes(tmp_path):
    model = trained_like([3, [2, 2], 1], mult_arity=[0, [2, 3], 0])
    x = torch.rand(50, 3, dtype=torch.float64) * 2 - 1
    model.refine(x, grid_size=10, placement="error", y=x[:, :1] * x[:, 1:2])
    model.save_model(tmp_path, config.validate_config({"layer_dims": [3, [2, 2], 1]}, "t"))
    loaded, _ = load_model(tmp_path)
    assert loaded.layer_dims == [3, [2, 2], 1] and loaded.mult_arity == [[], [2, 3], []]
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
