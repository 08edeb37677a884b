"""The formula in the data's units (formula_units.py): the data settle edges that several library
functions fit equally well."""

import formula_units
from symbolic_fit import Fit


def fit(name: str) -> Fit:
    return Fit(name, 1.0, 0.0, 1.0, 0.0, 0.9999)


def chooser(errors: dict[str, float]):
    """refined(fits) -> (formulas, RMSE) with the RMSE looked up by the names of the edges."""

    def refined(layer_fits):
        key = "+".join(f.name for layer in layer_fits for _, f in sorted(layer.items()))
        return [key], errors[key]

    return refined


def test_the_alternative_whose_formula_fits_the_data_best_is_kept():
    fits = [{(0, 0): fit("x^2"), (1, 1): fit("x")}, {(0, 0): fit("x")}]
    alternatives = [{(0, 0): [fit("x^2"), fit("tan"), fit("x^-0.25")]}, {}]
    errors = {"x^2+x+x": 1e-5, "tan+x+x": 9e-7, "x^-0.25+x+x": 1e-15}
    kept, exprs, value = formula_units._data_choice(fits, alternatives, chooser(errors), 0.0)
    assert kept[0][(0, 0)].name == "x^-0.25" and exprs == ["x^-0.25+x+x"] and value == 1e-15
    assert fits[0][(0, 0)].name == "x^2"  # the given fits are not changed


def test_an_alternative_must_halve_the_error_and_an_exact_formula_ends_the_search():
    fits = [{(0, 0): fit("x")}]
    alternatives = [{(0, 0): [fit("sin")]}]
    kept, _, value = formula_units._data_choice(
        fits, alternatives, chooser({"x": 1e-5, "sin": 0.6e-5}), 0.0
    )
    assert kept[0][(0, 0)].name == "x" and value == 1e-5  # 0.6x is not better enough
    calls = []

    def exact(layer_fits):
        calls.append(layer_fits)
        return ["x"], 1e-16

    kept, _, _ = formula_units._data_choice(fits, alternatives, exact, 1e-12)
    assert kept[0][(0, 0)].name == "x" and len(calls) == 1  # nothing tried after an exact fit
