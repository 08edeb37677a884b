"""The composed formula's constants: refit, snapping within the fit, simplification that keeps
the value (formula_snap.py), checked on data whose law is known."""

import numpy as np
import sympy

from formula_snap import SNAP_SLACK, refine_formula, refit_constants, rmse_of, simple_values

X, Y, Z = SYMBOLS = sympy.symbols("x y z", real=True)
RNG = np.random.default_rng(7)
DATA = np.column_stack([RNG.uniform(-1, 1, 400), RNG.uniform(-1, 1, 400), RNG.uniform(1, 2, 400)])


def values(expr):
    return np.asarray(sympy.lambdify(SYMBOLS, expr, "numpy")(*DATA.T), dtype=float)


def test_a_composed_ratio_with_edge_errors_comes_back_exact():
    noisy = sympy.Float(8e-6) * X * Y + sympy.Float(0.99998) * X * Y / (Z - sympy.Float(1.6e-5))
    got = refine_formula(noisy, SYMBOLS, DATA, values(X * Y / Z))
    assert sympy.simplify(got - X * Y / Z) == 0, got


def test_refit_finds_the_constants_of_the_data():
    truth = sympy.Float(1.37) * sympy.exp(sympy.Float(-0.61) * Z) + sympy.Float(0.25) * X
    start = truth.xreplace({sympy.Float(1.37): sympy.Float(1.2), sympy.Float(-0.61): -0.5})
    got = refit_constants(start, SYMBOLS, DATA, values(truth))
    assert rmse_of(got, SYMBOLS, DATA, values(truth)) < 1e-9


def test_a_constant_that_is_not_simple_is_not_snapped():
    truth = sympy.Float(1.37) * X**2 + Y  # 1.37 is near 4/3 but the data say otherwise
    got = refine_formula(truth, SYMBOLS, DATA, values(truth))
    assert rmse_of(got, SYMBOLS, DATA, values(truth)) < 1e-9
    assert abs(float(got.coeff(X**2)) - 1.37) < 1e-9


def test_snapping_never_costs_more_than_its_slack_on_noisy_data():
    y = values(2 * X * Y + sympy.sin(sympy.pi * Z)) + RNG.normal(0, 1e-3, len(DATA))
    start = sympy.Float(1.97) * X * Y + sympy.Float(1.03) * sympy.sin(sympy.Float(3.13) * Z)
    refit = refit_constants(start, SYMBOLS, DATA, y)
    got = refine_formula(start, SYMBOLS, DATA, y)
    assert rmse_of(got, SYMBOLS, DATA, y) <= SNAP_SLACK * rmse_of(refit, SYMBOLS, DATA, y) + 1e-15
    assert got.atoms(sympy.Float) == set(), got  # 2, 1 and pi: within the noise


def test_simplification_keeps_the_value():
    start = sympy.Float(0.5) * (X + 1) ** 2 - sympy.Float(0.5) * (X - 1) ** 2 + Y * Z / Z
    got = refine_formula(start, SYMBOLS, DATA, values(start))
    np.testing.assert_allclose(values(got), values(start), rtol=1e-12, atol=1e-12)
    assert sympy.simplify(got - (2 * X + Y)) == 0


def test_simple_values_are_zero_rationals_and_multiples_of_pi():
    assert sympy.Integer(0) in simple_values(0.01)
    assert sympy.Rational(1, 2) in simple_values(0.49)
    assert sympy.pi / 2 in simple_values(1.5705)
    for value in (17.3, 0.3, -2.7, 123.456):
        for candidate in simple_values(value):
            assert abs(float(candidate) - value) <= 0.05 * max(1.0, abs(value))


def test_a_product_of_shifted_factors_comes_back_as_its_monomial():
    # the shape a product network composes: every factor shifted and scaled, a square outside
    start = (sympy.Float(0.26) * X + sympy.Float(3e-4)) * (
        sympy.Float(0.29) * Y + sympy.Float(1e-3)
    ) ** 2 * sympy.Float(6.7) + sympy.Float(2e-3)
    got = refine_formula(start, SYMBOLS, DATA, values(X * Y**2 / 2))
    assert sympy.simplify(got - X * Y**2 / 2) == 0, got


def test_a_coefficient_is_snapped_whole_after_simplification():
    # sqrt(2 z) simplifies to sqrt(2) sqrt(z): 4.4429 * sqrt(2) is 2 pi, neither factor alone is
    start = sympy.Float(4.4) * sympy.sqrt(sympy.Float(2.0) * Z + sympy.Float(1e-3))
    got = refine_formula(start, SYMBOLS, DATA, values(2 * sympy.pi * sympy.sqrt(Z)))
    assert sympy.simplify(got - 2 * sympy.pi * sympy.sqrt(Z)) == 0, got


def test_a_snap_the_other_constants_cannot_absorb_is_refused():
    truth = sympy.Float(0.37) * X * Y + sympy.Float(0.81) * sympy.exp(sympy.Float(0.55) * Z)
    got = refine_formula(truth, SYMBOLS, DATA, values(truth))
    assert rmse_of(got, SYMBOLS, DATA, values(truth)) < 1e-9  # no constant is simple here
    assert len(got.atoms(sympy.Float)) == 3, got
