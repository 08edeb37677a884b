"""Symbolic formulas of a whole network (symbolic.py): composition, the symbolic network, the
acceptance rule, the pipeline on stand-in models and a trained SimpleKAN, and the result's
document (symbolic.json)."""

import json
import math

import numpy as np
import pytest
import sympy
import torch

import edge_fits
import symbolic
import symbolic_fit
from symbolic import SymbolicKAN, SymbolicResult
from symbolic_fit import Fit

X1, X2 = sympy.symbols("x1 x2")


# ------------------------------------------------------------------------------ stand-in models
class ClosedFormLayer:
    """A layer whose edges are given closed forms; the API symbolify uses from a KAN layer."""

    def __init__(self, in_dim, out_dim, edges):
        self.in_dim, self.out_dim, self.edges = in_dim, out_dim, edges
        self.mask = torch.zeros(out_dim, in_dim, dtype=torch.float64)
        for j, i in edges:
            self.mask[j, i] = 1.0

    def edge_activations(self, x):
        out = torch.zeros(x.shape[0], self.out_dim, self.in_dim, dtype=x.dtype)
        for (j, i), f in self.edges.items():
            out[:, j, i] = f(x[:, i])
        return out


class ClosedFormKAN:
    def __init__(self, layer_dims, edges_per_layer):
        self.layer_dims = layer_dims
        self.layers = [
            ClosedFormLayer(d_in, d_out, edges)
            for d_in, d_out, edges in zip(layer_dims[:-1], layer_dims[1:], edges_per_layer)
        ]

    def layer_inputs(self, x):
        inputs = []
        for layer in self.layers:
            inputs.append(x)
            x = layer.edge_activations(x).sum(dim=2)
        return inputs


def uniform(n, dims, seed, lo=-1.0, hi=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, dims, generator=g, dtype=torch.float64) * (hi - lo) + lo


def same(expr, expected):
    """Symbolic equality, read through the formula text (our symbols are declared real)."""
    return sympy.simplify(sympy.sympify(str(expr)) - expected) == 0


def formula_rmse(result, truth, dims, seed=123):
    x = uniform(2000, dims, seed)
    got = symbolic.evaluate_formula(result.exprs, x.numpy())
    return float(np.sqrt(np.mean((got - truth(x).numpy()) ** 2)))


# ------------------------------------------------------------------------------ formulas
LAYER_DIMS = [2, 3, 1]
LAYER_FITS = [
    {
        (0, 0): Fit("sin", 2.1, 0.3, 1.3, -0.2, 1.0),
        (0, 1): Fit("x^2", 1.0, -0.4, 0.7, 0.1, 1.0),
        (1, 0): Fit("exp", 0.9, 0.0, 0.4, 0.05, 1.0),
        (2, 1): Fit("tanh", 1.7, 0.2, -1.1, 0.3, 1.0),
    },  # (1, 1) and (2, 0) are pruned
    {
        (0, 0): Fit("x", 1.0, 0.0, 0.8, 0.0, 1.0),
        (0, 1): Fit("log", 1.0, 2.5, 1.2, -0.3, 1.0),
        (0, 2): Fit("gaussian", 0.6, -0.1, 2.0, 0.0, 1.0),
    },
]


def numeric_composition(layer_fits, layer_dims, x):
    h = x
    for fits, d_out in zip(layer_fits, layer_dims[1:]):
        out = np.zeros((x.shape[0], d_out))
        for (j, i), fit in fits.items():
            out[:, j] += fit.evaluate(h[:, i])
        h = out
    return h


def test_compose_equals_the_numeric_composition():
    x = uniform(500, 2, 1).numpy()
    expected = numeric_composition(LAYER_FITS, LAYER_DIMS, x)
    plain = symbolic.compose(LAYER_FITS, LAYER_DIMS, simplify=False)
    np.testing.assert_allclose(symbolic.evaluate_formula(plain, x), expected, rtol=1e-12)
    simplified = symbolic.compose(LAYER_FITS, LAYER_DIMS)
    np.testing.assert_allclose(symbolic.evaluate_formula(simplified, x), expected, rtol=1e-6)


def test_formula_strings_parse_back_with_sympy():
    exprs = symbolic.compose(LAYER_FITS, LAYER_DIMS)
    text, latex = symbolic.formula_strings(exprs)
    assert len(text) == len(latex) == 1 and latex[0]
    parsed = [sympy.sympify(s) for s in text]
    assert {s.name for s in parsed[0].free_symbols} == {"x1", "x2"}
    x = uniform(100, 2, 2).numpy()
    np.testing.assert_allclose(
        symbolic.evaluate_formula(parsed, x), symbolic.evaluate_formula(exprs, x), rtol=1e-12
    )


def test_compose_rounds_nearly_nice_constants_and_simplifies():
    fits = [
        {(0, 0): Fit("x", 1.0, 0.0, 1.0000000001, 0.0, 1.0), (0, 1): Fit("x", 1.0, 0.0, 1.0, 0, 1)},
        {(0, 0): Fit("sin", 3.1415926536, 0.0, 0.4999999999, 1e-11, 1.0)},
    ]
    (expr,) = symbolic.compose(fits, [2, 1, 1])
    assert same(expr, sympy.sin(sympy.pi * (X1 + X2)) / 2)


def test_evaluate_formula_broadcasts_constant_outputs():
    values = symbolic.evaluate_formula([sympy.Integer(3), X1 * X2], np.ones((4, 2)))
    assert values.shape == (4, 2)
    np.testing.assert_allclose(values[:, 0], 3.0)


# ------------------------------------------------------------------------------ symbolic network
def test_symbolic_kan_forward_equals_the_composition():
    x = uniform(300, 2, 3)
    model = SymbolicKAN(LAYER_DIMS, LAYER_FITS)
    with torch.no_grad():
        got = model(x).numpy()
    np.testing.assert_allclose(got, numeric_composition(LAYER_FITS, LAYER_DIMS, x.numpy()))
    assert model.fits() == LAYER_FITS


def perturb(fit, factor):
    """Scale the free ones of (a, b, c, d) by factor (canonical ones stay)."""
    free = symbolic_fit.free_parameters(fit.name)
    values = [v * factor if keep else v for v, keep in zip((fit.a, fit.b, fit.c, fit.d), free)]
    return Fit(fit.name, *values, fit.r2)


def test_finetune_recovers_perturbed_constants_and_keeps_canonical_ones_fixed():
    x = uniform(400, 2, 4)
    y = torch.tensor(numeric_composition(LAYER_FITS, LAYER_DIMS, x.numpy()))
    model = SymbolicKAN(
        LAYER_DIMS, [{e: perturb(f, 1.02) for e, f in fits.items()} for fits in LAYER_FITS]
    )
    with torch.no_grad():
        before = float(((model(x) - y) ** 2).mean())
    mse = symbolic.finetune(model, x, y, steps=100)
    assert mse < 1e-6 * before
    tuned = model.fits()
    assert tuned[0][(0, 1)].a == 1.0 and tuned[0][(1, 0)].b == 0.0  # x^2: a = 1, exp: b = 0
    assert tuned[0][(0, 0)].a == pytest.approx(2.1, rel=1e-3)


def test_finetune_survives_steps_that_leave_the_domain():
    x = torch.linspace(0, 1, 200, dtype=torch.float64)[:, None]
    y = 3 * torch.sqrt(torch.clamp(x - 0.2, min=0))  # pulls the sqrt argument below 0
    model = SymbolicKAN([1, 1], [{(0, 0): Fit("sqrt", 1.0, 0.01, 1.0, 0.0, 1.0)}])
    with torch.no_grad():
        before = float(((model(x) - y) ** 2).mean())
    mse = symbolic.finetune(model, x, y, steps=100)
    assert math.isfinite(mse) and mse <= before
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with torch.no_grad():
        assert float(((model(x) - y) ** 2).mean()) == pytest.approx(mse)


# ------------------------------------------------------------------------------ the pipeline
def test_a_formula_fits_as_well_within_ten_percent_and_a_margin():
    assert symbolic.fits_as_well(1.1, 1.0, 0.0)
    assert not symbolic.fits_as_well(1.1000001, 1.0, 0.0)
    assert symbolic.fits_as_well(1.1 + 2e-6, 1.0, 2.0)  # margin: 1e-6 of the targets' spread
    assert not symbolic.fits_as_well(1.1 + 3e-6, 1.0, 2.0)
    assert symbolic.fits_as_well(1e-7, 0.0, 0.1) and not symbolic.fits_as_well(math.nan, 1.0, 1.0)


def test_symbolify_recovers_an_additive_function():
    def truth(x):
        return torch.sin(math.pi * x[:, :1]) + x[:, 1:2] ** 2 + 0.5 * torch.exp(x[:, 2:3])

    model = ClosedFormKAN(
        [3, 1],
        [
            {
                (0, 0): lambda v: torch.sin(math.pi * v),
                (0, 1): lambda v: v**2,
                (0, 2): lambda v: 0.5 * torch.exp(v),
            }
        ],
    )
    x = uniform(400, 3, 5)
    result = symbolic.symbolify(model, x, truth(x))
    assert result.ok and result.unfit_edges == []
    assert formula_rmse(result, truth, 3) < 1e-3
    x1, x2, x3 = sympy.symbols("x1 x2 x3")
    expected = sympy.sin(sympy.pi * x1) + x2**2 + sympy.exp(x3) / 2
    assert same(result.formulas[0], expected)


def test_symbolify_recovers_a_nested_function():
    def truth(x):
        return torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:2] ** 2)

    model = ClosedFormKAN(  # the hidden node is scaled and shifted, as a trained KAN may do
        [2, 1, 1],
        [
            {
                (0, 0): lambda v: 0.7 * torch.sin(math.pi * v) + 0.2,
                (0, 1): lambda v: 0.7 * v**2 - 0.5,
            },
            {(0, 0): lambda h: torch.exp((h + 0.3) / 0.7)},
        ],
    )
    x = uniform(400, 2, 6)
    result = symbolic.symbolify(model, x, truth(x))
    assert result.ok
    assert formula_rmse(result, truth, 2) < 1e-3
    expected = sympy.exp(sympy.sin(sympy.pi * X1) + X2**2)
    assert same(result.formulas[0], expected)


def test_symbolify_recovers_a_product_through_a_hidden_layer():
    def truth(x):
        return x[:, :1] * x[:, 1:2]

    model = ClosedFormKAN(  # x1 x2 = ((x1 + x2)^2 - (x1 - x2)^2) / 4
        [2, 2, 1],
        [
            {(0, 0): lambda v: v, (0, 1): lambda v: v, (1, 0): lambda v: v, (1, 1): lambda v: -v},
            {(0, 0): lambda h: h**2 / 4, (0, 1): lambda h: -(h**2) / 4},
        ],
    )
    x = uniform(400, 2, 7)
    result = symbolic.symbolify(model, x, truth(x), library=["x", "x^2", "sin", "exp", "x^3"])
    assert result.ok
    assert formula_rmse(result, truth, 2) < 1e-3
    assert result.formulas == ["x1*x2"]


def test_symbolify_prefers_the_simplest_formula_that_fits_the_data():
    def tan_like(v):  # z + z^3 / 10 + ...: a spline of z that bends a little
        return torch.tan(0.6 * v) / 0.6

    def cos_like(h):  # h^2 / 4 - h^4 / 192 + ...
        return (1 - torch.cos(h / 2)) * 2

    def truth(x):
        return x[:, :1] * x[:, 1:2]

    # The layers trade curvature: each edge is fitted exactly by tan or cos, and the network is
    # x1 * x2 only to 3e-2; x and x^2 fit the edges to R^2 ~ 0.999 and the data exactly.
    model = ClosedFormKAN(
        [2, 2, 1],
        [
            {(0, 0): tan_like, (0, 1): tan_like, (1, 0): tan_like, (1, 1): lambda v: -tan_like(v)},
            {(0, 0): cos_like, (0, 1): lambda h: -cos_like(h)},
        ],
    )
    x = uniform(400, 2, 7)
    result = symbolic.symbolify(model, x, truth(x))
    assert result.ok and result.formulas == ["x1*x2"]
    assert {fit.name for fits in result.layer_fits for fit in fits.values()} == {"x", "x^2"}


def test_symbolify_keeps_the_better_fit_when_the_simplest_formula_falls_short():
    model = ClosedFormKAN([1, 1], [{(0, 0): lambda v: torch.exp(1.5 * v)}])
    x = uniform(300, 1, 12)
    y = torch.exp(1.5 * x)
    x_sq = symbolic_fit.fit_function(x[:, 0], y[:, 0], "x^2")
    assert x_sq.r2 >= edge_fits.SIMPLEST_R2  # so the simplest formula, c (x + b)^2 + d, is tried
    result = symbolic.symbolify(model, x, y)
    assert same(result.formulas[0], sympy.exp(sympy.Rational(3, 2) * X1))
    assert result.rmse < 1e-9


def test_symbolify_reports_edges_without_a_symbolic_fit():
    model = ClosedFormKAN(
        [2, 1],
        [{(0, 0): lambda v: torch.sin(9 * v) * torch.exp(v), (0, 1): lambda v: 2 * v}],
    )
    x = uniform(300, 2, 8)
    y = model.layers[0].edge_activations(x).sum(dim=2)
    result = symbolic.symbolify(model, x, y)
    assert not result.ok
    assert result.formulas == [] and result.latex == [] and result.exprs == []
    assert result.unfit_edges == [(0, 0, 0)]
    assert set(result.edge_r2[0]) == {(0, 0), (0, 1)}
    assert result.edge_r2[0][(0, 0)] < 0.99 and result.layer_fits[0][(0, 1)].name == "x"


def test_symbolify_skips_masked_edges():
    model = ClosedFormKAN([2, 1], [{(0, 1): lambda v: v**2}])  # the edge from x1 is pruned
    x = uniform(300, 2, 9)
    result = symbolic.symbolify(model, x, x[:, 1:] ** 2, library=["x", "x^2", "exp"])
    assert result.ok and list(result.layer_fits[0]) == [(0, 1)]
    assert result.formulas == ["x2**2"]


def test_symbolify_and_compose_reject_mismatched_shapes():
    model = ClosedFormKAN([2, 1], [{(0, 0): lambda v: v}])
    x = uniform(10, 2, 11)
    with pytest.raises(ValueError, match="y must be"):
        symbolic.symbolify(model, x, torch.zeros(10, 2))
    with pytest.raises(ValueError, match="x must be"):
        symbolic.symbolify(model, x[:, :1], torch.zeros(10, 1))
    with pytest.raises(ValueError, match="outside layer"):
        symbolic.compose([{(1, 0): Fit("x", 1.0, 0.0, 1.0, 0.0, 1.0)}], [2, 1])
    with pytest.raises(ValueError, match="unknown library function"):
        symbolic.compose([{(0, 0): Fit("cosh", 1.0, 0.0, 1.0, 0.0, 1.0)}], [2, 1])


def test_symbolify_a_trained_simple_kan():
    from simple_kan import SimpleKAN

    def truth(x):
        return torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:2] ** 2)

    torch.manual_seed(0)
    x = uniform(300, 2, 10)
    y = truth(x)
    model = SimpleKAN([2, 1, 1], grid_size=8, spline_degree=3, dtype=torch.float64)

    def loss():
        return ((model(x) - y) ** 2).mean()

    adam = torch.optim.Adam(model.parameters(), lr=0.05)
    for step in range(100):
        if step % 20 == 0:
            model.update_grid_range(x)
        adam.zero_grad()
        loss().backward()
        adam.step()
    lbfgs = torch.optim.LBFGS(
        model.parameters(), lr=1, max_iter=20, history_size=50, line_search_fn="strong_wolfe"
    )

    def closure():
        lbfgs.zero_grad()
        value = loss()
        value.backward()
        return value

    for _ in range(4):
        model.update_grid_range(x)
        lbfgs.step(closure)
    with torch.no_grad():
        assert float(loss()) ** 0.5 < 1e-2  # the KAN itself is only approximately right

    result = symbolic.symbolify(model, x, y)
    assert result.ok
    assert {fit.name for fit in result.layer_fits[0].values()} == {"sin", "x^2"}
    assert result.layer_fits[1][(0, 0)].name == "exp"
    assert formula_rmse(result, truth, 2) < 1e-3
    assert same(result.formulas[0], sympy.exp(sympy.sin(sympy.pi * X1) + X2**2))


# ------------------------------------------------------------------------------ the document
def documented_result(ok=True, test_rmse=0.25):
    exprs = symbolic.compose(LAYER_FITS, LAYER_DIMS)
    formulas, latex = symbolic.formula_strings(exprs)
    edge_r2 = [{edge: 0.5 + 0.1 * k for k, edge in enumerate(fits)} for fits in LAYER_FITS]
    unfit = [] if ok else [(1, 0, 2), (0, 2, 1)]
    return SymbolicResult(
        formulas, latex, exprs, LAYER_FITS, edge_r2, unfit, ok, rmse=0.125, test_rmse=test_rmse
    )


def test_the_document_lists_every_edge_in_order_with_its_edge_r2():
    result = documented_result()
    document = result.to_dict()
    assert list(document) == [
        "ok",
        "formulas",
        "latex",
        "edges",
        "unfit_edges",
        "formula_test_rmse",
    ]
    assert document["ok"] is True and document["formula_test_rmse"] == 0.25
    assert document["formulas"] == result.formulas and document["latex"] == result.latex
    order = [(e["layer"], e["out"], e["in"]) for e in document["edges"]]
    assert order == sorted((layer, *edge) for layer, fits in enumerate(LAYER_FITS) for edge in fits)
    first = document["edges"][0]
    assert list(first) == ["layer", "out", "in", "function", "a", "b", "c", "d", "r2"]
    fit = LAYER_FITS[0][(0, 0)]
    assert first == {
        "layer": 0,
        "out": 0,
        "in": 0,
        **fit.to_dict(),
        "r2": result.edge_r2[0][(0, 0)],
    }
    assert document["unfit_edges"] == []


def test_the_formula_test_rmse_is_documented_only_when_known_and_ok():
    assert "formula_test_rmse" not in documented_result(test_rmse=None).to_dict()
    failed = documented_result(ok=False).to_dict()
    assert "formula_test_rmse" not in failed
    assert failed["unfit_edges"] == [[1, 0, 2], [0, 2, 1]]


@pytest.mark.parametrize("ok", [True, False])
def test_a_result_read_from_its_document_writes_the_same_document(ok):
    document = json.loads(json.dumps(documented_result(ok).to_dict()))
    back = SymbolicResult.from_dict(document)
    assert back.to_dict() == document
    assert back.layer_fits[1][(0, 1)] == Fit("log", 1.0, 2.5, 1.2, -0.3, 0.6)  # r2: the edge's
    assert back.ok is ok and back.exprs == [] and back.rmse is None
    assert back.test_rmse == (0.25 if ok else None)


@pytest.mark.parametrize(
    "change",
    [
        {"ok": "yes"},
        {"formulas": "x1"},
        {"latex": [1]},
        {"edges": {}},
        {"unfit_edges": [[0, 1]]},
        {"unfit_edges": [[0, -1, 0]]},
        {"formula_test_rmse": "small"},
        {"edges": [{"layer": 0, "out": 0, "function": "x", "a": 1, "b": 0, "c": 1, "d": 0}]},
        {"edges": [{"layer": 0, "out": 0, "in": 0, "function": "cosh", "a": 1, "b": 0, "c": 1}]},
    ],
)
def test_a_malformed_document_is_a_value_error(change):
    document = {**documented_result().to_dict(), **change}
    with pytest.raises(ValueError):
        SymbolicResult.from_dict(document)


def test_a_document_without_a_key_or_with_an_edge_twice_is_a_value_error():
    document = documented_result().to_dict()
    with pytest.raises(ValueError, match="missing latex"):
        SymbolicResult.from_dict({k: v for k, v in document.items() if k != "latex"})
    with pytest.raises(ValueError, match="given twice"):
        SymbolicResult.from_dict({**document, "edges": document["edges"] * 2})
    with pytest.raises(ValueError, match="JSON object"):
        SymbolicResult.from_dict([document])
