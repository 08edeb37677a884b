"""The formula of a model trained in standardised coordinates (units.py), in the data's units.

`symbolic.symbolify` fits the edges of the model's standardised view and composes them; here
that composition is mapped to the data's symbols and units (`units.raw_formulas`) and refined
there (formula_snap.py: constants refitted, snapped, simplified), where constants mean
something.

Before that, the data settle the edges whose spline several library functions fit equally well
(`symbolic.SymbolicResult.alternatives`): over a narrow range g^-1/4, a line and a parabola
are one curve to a spline's accuracy, but only one of them makes the composed formula fit the
data exactly. Edge by edge, each alternative is composed in place of the current choice, the
formula refined in the data's units, and the alternative whose formula has the lowest RMSE on
the data is kept when that at most halves the current one's.
"""

from dataclasses import replace

import torch

from arrays import rmse, to_numpy
from formula_snap import EXACT_FLOOR, refine_formula
from symbolic import compose, evaluate_formula, formula_strings, input_symbols
from units import Units, raw_formulas

BETTER = 0.5  # an alternative edge function is kept when it at least halves the RMSE


def in_data_units(result, model, x, y):
    """``result`` of `symbolic.symbolify(..., standardized=True)` on ``model``'s standardised
    view → its formulas in the data's symbols and units (module docstring), on (x, y) in the
    data's units."""
    names = list(model.input_names)
    symbols = input_symbols(names)
    units = Units(**{k: torch.tensor(v, dtype=torch.float64) for k, v in model.units().items()})
    xs = to_numpy(x).astype(float)
    ys = to_numpy(y).astype(float).reshape(len(xs), -1)

    def refined(layer_fits):
        exprs = compose(
            layer_fits,
            model.layer_dims,
            tolerance=0.0,
            mult_arity=getattr(model, "mult_arity", 2),
            names=names,
        )
        exprs = raw_formulas(exprs, symbols, units)
        exprs = [refine_formula(e, symbols, xs, ys[:, k]) for k, e in enumerate(exprs)]
        return exprs, rmse(evaluate_formula(exprs, xs, names), ys)

    exact = EXACT_FLOOR * float(ys.std(axis=0).max(initial=0.0))
    layer_fits, exprs, value = _data_choice(result.layer_fits, result.alternatives, refined, exact)
    formulas, latex = formula_strings(exprs)
    return replace(
        result, formulas=formulas, latex=latex, exprs=exprs, rmse=value, layer_fits=layer_fits
    )


def _data_choice(layer_fits, alternatives, refined, exact: float):
    """(fits, formulas, RMSE): ``layer_fits`` with, edge by edge (in order), the alternative
    whose ``refined(fits)`` has the lowest RMSE kept where that is at most BETTER times the
    current one's; done as soon as the RMSE is at most ``exact``."""
    fits = [dict(layer) for layer in layer_fits]
    exprs, best = refined(fits)
    for index, layer in enumerate(alternatives):
        for edge, options in sorted(layer.items()):
            if best <= exact:
                return fits, exprs, best
            tried = []
            for option in options:
                if (option.name, option.inner) != (fits[index][edge].name, fits[index][edge].inner):
                    trial = [dict(f) for f in fits]
                    trial[index][edge] = option
                    tried.append((*refined(trial), trial))
            if tried:
                trial_exprs, value, trial = min(tried, key=lambda t: t[1])
                if value <= BETTER * best:
                    fits, exprs, best = trial, trial_exprs, value
    return fits, exprs, best
