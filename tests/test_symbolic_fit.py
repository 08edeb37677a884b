"""Fitting one function (symbolic_fit.py): the library, fitting, selection, snapping, and a
fit's text and document forms."""

import math
import warnings

import numpy as np
import pytest
import sympy
import torch

import symbolic_fit
from symbolic_fit import LIBRARY, Fit

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
    "x^-2": (0.6, 1.5),
    "x^-0.5": (0.8, 1.2),
    "x^1.5": (0.9, 1.1),
    "x^-1.5": (-0.7, 1.4),
    "x^0.25": (0.8, 1.1),
    "x^-0.25": (-0.6, 1.3),
    "arcsin": (0.9, 0.05),
    "arctan": (2.3, -0.6),
}


# ------------------------------------------------------------------------------ the library
def test_library_has_the_required_functions():
    required = {"x", "x^2", "x^3", "x^4", "1/x", "sqrt", "exp", "log", "sin", "cos", "tan"}
    assert required | {"tanh", "abs", "gaussian", "0"} <= set(LIBRARY)
    # half-integer and negative powers, inverse trigonometric functions
    assert {"x^-2", "x^-0.5", "x^1.5", "x^-1.5", "arcsin", "arctan"} <= set(LIBRARY)
    assert {"x^0.25", "x^-0.25"} <= set(LIBRARY)  # a square's factors in a product


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
    fit = symbolic_fit.fit_function(x, y, name)
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
        ("x^-2", lambda x: 2 / (x + 1.6) ** 2),
        ("x^-0.5", lambda x: 1 / np.sqrt(0.5 * x + 1)),
        ("arcsin", lambda x: np.arcsin(0.95 * x)),
    ],
)
def test_fit_edge_chooses_the_generating_function(name, f):
    x = np.linspace(-1, 1, 300)
    edge = symbolic_fit.fit_edge(x, f(x))
    assert edge is not None and (edge.fit.name, edge.fit.inner) == (name, 1)
    assert edge.fit.r2 > 0.9999
    composed = {f"{n}(x^2)" for n, entry in LIBRARY.items() if entry.fixed_ab is None}
    assert set(edge.candidates) == set(LIBRARY) | composed  # x spans 0: no x^-1 forms


@pytest.mark.parametrize(
    "x, f, name, inner, truth",
    [
        # the relativistic factor, a Lorentzian, an Arrhenius factor: no plain f fits them
        (np.linspace(0, 0.9, 400), lambda v: 3 / np.sqrt(1 - v**2), "x^-0.5", 2, "3/sqrt(1-x**2)"),
        (np.linspace(-2, 2, 400), lambda x: 1 / (1 + 4 * x**2), "1/x", 2, "1/(1+4*x**2)"),
        (np.linspace(300, 600, 400), lambda t: np.exp(-900 / t), "exp", -1, "exp(-900/x)"),
    ],
)
def test_a_composed_form_is_found_where_no_plain_function_fits(x, f, name, inner, truth):
    edge = symbolic_fit.fit_edge(x, f(x))
    assert edge is not None and (edge.fit.name, edge.fit.inner) == (name, inner)
    plain = max(fit.r2 for fit in edge.candidates.values() if fit.inner == 1)
    assert 1 - edge.fit.r2 < 1e-3 * (1 - plain)
    v = sympy.Symbol("x")
    assert (
        sympy.simplify(sympy.nsimplify(edge.fit.expr(v), rational=True) - sympy.sympify(truth)) == 0
    )
    fresh = np.random.default_rng(0).uniform(x.min(), x.max(), 200)
    np.testing.assert_allclose(edge.fit.evaluate(fresh), f(fresh), rtol=1e-9)
    assert symbolic_fit.Fit.from_dict(edge.fit.to_dict()) == edge.fit


def test_a_composed_form_of_a_standardised_input_takes_the_power_of_the_physical_variable():
    # v in [0, 0.9] standardised to [-1, 1]: v = 0.45 * (x + 1), the origin is x = -1
    x = np.linspace(-1, 1, 400)
    v = 0.45 * (x + 1)
    edge = symbolic_fit.fit_edge(x, 1 / np.sqrt(1 - v**2), origin=1.0)
    assert (edge.fit.name, edge.fit.inner, edge.fit.origin) == ("x^-0.5", 2, 1.0)
    s = sympy.Symbol("x")
    expected = 1 / sympy.sqrt(1 - (sympy.Rational(45, 100) * (s + 1)) ** 2)
    grid = np.linspace(-1, 1, 101)
    np.testing.assert_allclose(
        sympy.lambdify(s, edge.fit.expr(s))(grid), sympy.lambdify(s, expected)(grid), rtol=1e-8
    )
    assert symbolic_fit.fit_edge(x, 1 / np.sqrt(1 - v**2)).fit.inner == 1  # origin 0: no x^2


def test_a_record_with_an_unknown_inner_power_is_refused():
    document = symbolic_fit.Fit("exp", 1.0, 0.0, 1.0, 0.0, 1.0, 2).to_dict()
    assert document["inner"] == 2
    with pytest.raises(ValueError, match="inner"):
        symbolic_fit.Fit.from_dict({**document, "inner": 3})


def test_fit_edge_keeps_the_spline_when_nothing_fits():
    x = np.linspace(-1, 1, 300)
    assert symbolic_fit.fit_edge(x, np.sin(9 * x) * np.exp(x)) is None


def test_select_fit_prefers_the_simpler_of_equally_good_fits():
    candidates = {
        "cos": Fit("cos", 0.05, 0.0, -800.0, 800.0, 1 - 2e-7),
        "x^2": Fit("x^2", 1.0, 0.0, 1.0, 0.0, 1 - 5e-7),
        "sin": Fit("sin", 3.0, 0.0, 1.0, 0.0, 0.95),
    }
    assert symbolic_fit.select_fit(candidates).name == "x^2"  # within 10x of the best error
    candidates["x^2"] = Fit("x^2", 1.0, 0.0, 1.0, 0.0, 1 - 5e-5)
    assert symbolic_fit.select_fit(candidates).name == "cos"  # now clearly worse
    assert symbolic_fit.select_fit(candidates, r2_threshold=0.9999999) is None
    # relative=inf: the simplest candidate reaching the threshold, however much better others are
    assert symbolic_fit.select_fit(candidates, 0.99, relative=math.inf).name == "x^2"
    assert symbolic_fit.select_fit(candidates, 0.9, relative=math.inf).name == "x^2"
    assert symbolic_fit.select_fit(candidates, 0.99999, relative=math.inf).name == "cos"


def test_constant_edge_is_zero_plus_constant():
    x = np.linspace(-1, 1, 50)
    edge = symbolic_fit.fit_edge(x, np.full(50, 2.5))
    assert edge.fit.name == "0"
    assert edge.fit.c == 0.0 and edge.fit.d == pytest.approx(2.5) and edge.fit.r2 == 1.0
    # a constant input (e.g. a hidden node with no live edges) also gives a constant
    assert symbolic_fit.fit_edge(np.zeros(50), np.full(50, -1.0)).fit.name == "0"


def test_fits_never_raise_on_domain_invalid_candidates():
    x = np.linspace(-5, 5, 201)  # contains 0 and negative values
    y = np.sin(x) + 0.1 * x**2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        candidates = symbolic_fit.fit_candidates(x, y)
        tiny = symbolic_fit.fit_candidates(np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.0, 1.0]))
    dense = np.linspace(-5, 5, 10001)  # admissible on the whole interval, not just the samples
    for fit in candidates.values():
        assert np.isfinite(fit.evaluate(dense)).all(), fit
    assert all(np.isfinite(f.r2) and f.r2 <= 1.0 for f in tiny.values())


def test_poles_between_samples_are_not_admissible():
    x = np.linspace(-1, 1, 40)  # 0 is not a sample, but lies between two
    fit = symbolic_fit.fit_function(x, 1 / (x + 1e-3), "1/x")
    z = fit.a * x + fit.b
    assert z.min() > 0 or z.max() < 0
    tan = symbolic_fit.fit_function(x, np.tan(2.0 * x), "tan")
    z = tan.a * x + tan.b
    assert np.floor(z.min() / np.pi + 0.5) == np.floor(z.max() / np.pi + 0.5)


# ------------------------------------------------------------------------------ snapping
def test_snap_turns_near_pi_into_pi_and_near_integers_into_integers():
    x = np.linspace(-1, 1, 200)
    y = 2 * np.sin(np.pi * x)
    rough = Fit("sin", 3.14159, 1e-7, 2.0000001, 0.0, 0.0)
    snapped = symbolic_fit.snap(rough, x, y)
    assert snapped.a == math.pi and snapped.b == 0.0 and snapped.c == 2.0 and snapped.d == 0.0
    assert snapped.r2 == pytest.approx(1.0, abs=1e-14)


def test_snap_keeps_values_whose_snap_would_cost_r2():
    x = np.linspace(-1, 1, 200)
    y = np.sin(1.04 * x + 0.3)
    fit = symbolic_fit.fit_function(x, y, "sin")
    snapped = symbolic_fit.snap(fit, x, y)
    assert snapped.a == pytest.approx(1.04) and snapped.b == pytest.approx(0.3)
    assert snapped.r2 >= fit.r2 - symbolic_fit.SNAP_R2_DROP


def test_unknown_function_names_are_refused():
    x = np.linspace(-1, 1, 10)
    with pytest.raises(ValueError, match="unknown library function"):
        symbolic_fit.fit_function(x, x, "cosh")
    with pytest.raises(ValueError, match="unknown library function"):
        symbolic_fit.fit_candidates(x, x, ["x", "cosh"])


# ------------------------------------------------------------------------------ text and documents
@pytest.mark.parametrize(
    "fit, text",
    [
        (Fit("sin", 1.57, 0.2, 0.98, 0.01, 1.0), "0.98 sin(1.57x+0.2) +0.01"),
        (Fit("x^2", 1.0, -0.5, 2.0, 0.0, 1.0), "2(x-0.5)²"),
        (Fit("x^3", -1.0, 0.0, 0.5, -1.25, 1.0), "0.5(-x)³ -1.25"),
        (Fit("1/x", 1.0, 2.0, 3.0, 0.0, 1.0), "3/(x+2)"),
        (Fit("x", 1.0, 0.0, 0.8, 0.0, 1.0), "0.8(x)"),
        (Fit("0", 0.0, 0.0, 0.0, 2.5, 1.0), "2.5"),
    ],
)
def test_label_is_the_short_formula(fit, text):
    assert fit.label() == text


def test_fit_document_round_trips():
    fit = Fit("tanh", 1.7, 0.2, -1.1, 0.3, 0.9991)
    document = fit.to_dict()
    assert document == {"function": "tanh", "a": 1.7, "b": 0.2, "c": -1.1, "d": 0.3, "r2": 0.9991}
    assert Fit.from_dict(document) == fit
    assert Fit.from_dict({**document, "a": 2, "layer": 0}) == Fit(
        "tanh", 2.0, 0.2, -1.1, 0.3, 0.9991
    )


@pytest.mark.parametrize(
    "change",
    [{"function": "cosh"}, {"function": None}, {"a": "1"}, {"r2": None}, {"c": True}],
    ids=["unknown", "no-name", "text", "null", "bool"],
)
def test_fit_from_a_malformed_document_is_a_value_error(change):
    document = {"function": "sin", "a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0, "r2": 1.0, **change}
    with pytest.raises(ValueError):
        Fit.from_dict(document)
    with pytest.raises(ValueError):
        Fit.from_dict(["sin", 1.0])


def test_the_symbolic_network_evaluates_a_composed_form_as_the_fit_does():
    from symbolic import SymbolicKAN

    fits = {
        (0, 0): Fit("x^-0.5", -1.0, 1.0, 2.0, 0.5, 1.0, 2, 0.25),
        (0, 1): Fit("exp", -3, 0, 1, 0, 1, -1),
    }
    net = SymbolicKAN([2, 1], [fits])
    x = np.column_stack([np.linspace(-0.25, 0.6, 50), np.linspace(1, 4, 50)])
    expected = 2 / np.sqrt(1 - (x[:, 0] + 0.25) ** 2) + 0.5 + np.exp(-3 / x[:, 1])
    np.testing.assert_allclose(
        net(torch.from_numpy(x)).detach().numpy()[:, 0], expected, rtol=1e-12
    )
    assert net.fits() == [fits]


def test_a_value_that_is_no_physical_variable_gets_no_composed_forms():
    x = np.linspace(0, 0.9, 200)
    hidden = symbolic_fit.fit_candidates(x, 1 / np.sqrt(1 - x**2), origin=None)
    assert set(hidden) == set(LIBRARY) and all(fit.inner == 1 for fit in hidden.values())
