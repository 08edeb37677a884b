"""Symbolic regression of KAN edges (symbolic.py): fitting, selection, snapping, composition,
the symbolic network and the whole pipeline on stand-in models and a trained SimpleKAN."""

import math
import warnings

import numpy as np
import pytest
import sympy
import torch

import symbolic
from symbolic import LIBRARY, Fit, SymbolicKAN

X1, X2 = sympy.symbols("x1 x2")

# Per function: (a, b) such that z = a x + b stays inside the domain for x in [-1, 1].
PARAMS = {
    "x": (1.0, 0.0),
    "x^2": (1.3, -0.4),
    "x^3": (-0.8, 0.5),
    "x^4": (1.1, 0.3),
    "1/x": (0.7, 1.5),
    "sqrt": (-0.9, 1.3),
    "abs": (1.4, 0.3),
    "exp": (1.7, -0.2),
    "log": (1.2, 1.6),
    "sin": (2.5, 0.7),
    "cos": (-1.9, 0.4),
    "tan": (0.8, 0.3),
    "tanh": (2.2, -0.5),
    "gaussian": (1.8, 0.4),
}


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


# ------------------------------------------------------------------------------ the library
def test_library_has_the_required_functions():
    required = {"x", "x^2", "x^3", "x^4", "1/x", "sqrt", "exp", "log", "sin", "cos", "tan"}
    assert required | {"tanh", "abs", "gaussian", "0"} <= set(LIBRARY)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_library_torch_numpy_and_sympy_forms_agree(name):
    entry = LIBRARY[name]
    a, b = PARAMS[name]
    z = a * np.linspace(-1, 1, 7) + b
    z_sym = sympy.Symbol("z")
    from_sympy = sympy.lambdify(z_sym, entry.sympy_fn(z_sym), "numpy")(z)
    np.testing.assert_allclose(entry.torch_fn(torch.tensor(z)).numpy(), entry.numpy_fn(z))
    np.testing.assert_allclose(np.broadcast_to(from_sympy, z.shape), entry.numpy_fn(z))


# ------------------------------------------------------------------------------ fitting
@pytest.mark.parametrize("name", sorted(PARAMS))
def test_fit_function_recovers_each_library_function(name):
    rng = np.random.default_rng(sorted(PARAMS).index(name))
    a, b = PARAMS[name]
    c, d = rng.uniform(0.5, 2.0) * rng.choice([-1, 1]), rng.uniform(-1, 1)
    x = rng.uniform(-1, 1, 400)
    y = c * LIBRARY[name].numpy_fn(a * x + b) + d
    fit = symbolic.fit_function(x, y, name)
    assert fit.name == name
    assert fit.r2 > 0.9999
    np.testing.assert_allclose(fit.evaluate(x), y, atol=1e-6 * np.ptp(y))


@pytest.mark.parametrize(
    "name, f",
    [
        ("sin", lambda x: np.sin(np.pi * x)),
        ("x^2", lambda x: 2 * (x - 0.3) ** 2 + 1),
        ("x", lambda x: 3 * x - 1),
        ("exp", lambda x: 0.5 * np.exp(1.5 * x)),
        ("log", lambda x: np.log(x + 1.5)),
        ("gaussian", lambda x: np.exp(-((2 * x) ** 2))),
        ("abs", lambda x: np.abs(x - 0.2)),
    ],
)
def test_fit_edge_chooses_the_generating_function(name, f):
    x = np.linspace(-1, 1, 300)
    edge = symbolic.fit_edge(x, f(x))
    assert edge is not None and edge.fit.name == name
    assert edge.fit.r2 > 0.9999
    assert set(edge.candidates) == set(LIBRARY)


def test_fit_edge_keeps_the_spline_when_nothing_fits():
    x = np.linspace(-1, 1, 300)
    assert symbolic.fit_edge(x, np.sin(9 * x) * np.exp(x)) is None


def test_select_fit_prefers_the_simpler_of_equally_good_fits():
    candidates = {
        "cos": Fit("cos", 0.05, 0.0, -800.0, 800.0, 1 - 2e-7),
        "x^2": Fit("x^2", 1.0, 0.0, 1.0, 0.0, 1 - 5e-7),
        "sin": Fit("sin", 3.0, 0.0, 1.0, 0.0, 0.95),
    }
    assert symbolic.select_fit(candidates).name == "x^2"  # within 10x of the best error
    candidates["x^2"] = Fit("x^2", 1.0, 0.0, 1.0, 0.0, 1 - 5e-5)
    assert symbolic.select_fit(candidates).name == "cos"  # now clearly worse
    assert symbolic.select_fit(candidates, r2_threshold=0.9999999) is None
    # relative=inf: the simplest candidate reaching the threshold, however much better others are
    assert symbolic.select_fit(candidates, 0.99, relative=math.inf).name == "x^2"
    assert symbolic.select_fit(candidates, 0.9, relative=math.inf).name == "x^2"
    assert symbolic.select_fit(candidates, 0.99999, relative=math.inf).name == "cos"


def test_constant_edge_is_zero_plus_constant():
    x = np.linspace(-1, 1, 50)
    edge = symbolic.fit_edge(x, np.full(50, 2.5))
    assert edge.fit.name == "0"
    assert edge.fit.c == 0.0 and edge.fit.d == pytest.approx(2.5) and edge.fit.r2 == 1.0
    # a constant input (e.g. a hidden node with no live edges) also gives a constant
    assert symbolic.fit_edge(np.zeros(50), np.full(50, -1.0)).fit.name == "0"


def test_fits_never_raise_on_domain_invalid_candidates():
    x = np.linspace(-5, 5, 201)  # contains 0 and negative values
    y = np.sin(x) + 0.1 * x**2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        candidates = symbolic.fit_candidates(x, y)
        tiny = symbolic.fit_candidates(np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.0, 1.0]))
    dense = np.linspace(-5, 5, 10001)  # admissible on the whole interval, not just the samples
    for fit in candidates.values():
        assert np.isfinite(fit.evaluate(dense)).all(), fit
    assert all(np.isfinite(f.r2) and f.r2 <= 1.0 for f in tiny.values())


def test_poles_between_samples_are_not_admissible():
    x = np.linspace(-1, 1, 40)  # 0 is not a sample, but lies between two
    fit = symbolic.fit_function(x, 1 / (x + 1e-3), "1/x")
    z = fit.a * x + fit.b
    assert z.min() > 0 or z.max() < 0
    tan = symbolic.fit_function(x, np.tan(2.0 * x), "tan")
    z = tan.a * x + tan.b
    assert np.floor(z.min() / np.pi + 0.5) == np.floor(z.max() / np.pi + 0.5)


# ------------------------------------------------------------------------------ snapping
def test_snap_turns_near_pi_into_pi_and_near_integers_into_integers():
    x = np.linspace(-1, 1, 200)
    y = 2 * np.sin(np.pi * x)
    rough = Fit("sin", 3.14159, 1e-7, 2.0000001, 0.0, 0.0)
    snapped = symbolic.snap(rough, x, y)
    assert snapped.a == math.pi and snapped.b == 0.0 and snapped.c == 2.0 and snapped.d == 0.0
    assert snapped.r2 == pytest.approx(1.0, abs=1e-14)


def test_snap_keeps_values_whose_snap_would_cost_r2():
    x = np.linspace(-1, 1, 200)
    y = np.sin(1.04 * x + 0.3)
    fit = symbolic.fit_function(x, y, "sin")
    snapped = symbolic.snap(fit, x, y)
    assert snapped.a == pytest.approx(1.04) and snapped.b == pytest.approx(0.3)
    assert snapped.r2 >= fit.r2 - symbolic.SNAP_R2_DROP


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
    free = symbolic.free_parameters(fit.name)
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
    x_sq = symbolic.fit_function(x[:, 0], y[:, 0], "x^2")
    assert x_sq.r2 >= symbolic.SIMPLEST_R2  # so the simplest formula, c (x + b)^2 + d, is tried
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
        symbolic.fit_function(x[:, 0], x[:, 1], "cosh")


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
