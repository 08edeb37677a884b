"""The composed formula's constants: refitted to the data, then snapped to simple values where
the fit does not get worse.

A formula composed from per-edge fits carries the small errors of every edge
(``0.99998*x1*x2/(x3 - 1.6e-5) + 8e-6*x1*x2`` for ``x1*x2/x3``). `refine_formula` first refits all
its floating-point constants jointly to the data (Levenberg-Marquardt on the formula itself),
then tries each constant, smallest first, at simple values: 0 (the term goes), integers,
halves and small-denominator rationals, and the same multiples of pi. A value is kept when the
formula's RMSE on the data stays within `SNAP_SLACK` of the refitted formula's, so all snaps
together never cost more than that; kept values are exact sympy rationals. The result is
simplified by sympy and kept only if simplification does not change its value.
"""

from fractions import Fraction

import numpy as np
import sympy

SNAP_SLACK = 1.01  # a snapped formula may have at most 1% more RMSE than the refitted one
SNAP_RADIUS = 0.05  # a simple value is tried within 5% (relative, at least 0.05 absolute)
MAX_DENOMINATOR = 6
LM_STEPS = 50


def rmse_of(expr: sympy.Expr, symbols, x: np.ndarray, y: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        value = sympy.lambdify(symbols, expr, "numpy")(*x.T)
    value = np.broadcast_to(np.asarray(value, dtype=float), y.shape)
    err = float(np.sqrt(np.mean((value - y) ** 2)))
    return err if np.isfinite(err) else np.inf


def refit_constants(expr: sympy.Expr, symbols, x: np.ndarray, y: np.ndarray) -> sympy.Expr:
    """All Float constants of ``expr`` refitted jointly by least squares to (x, y)."""
    floats = sorted(expr.atoms(sympy.Float), key=lambda f: float(f))
    if not floats:
        return expr
    params = sympy.symbols(f"_c0:{len(floats)}")
    template = expr.xreplace(dict(zip(floats, params)))
    f = sympy.lambdify(list(symbols) + list(params), template, "numpy")

    def residual(p):
        with np.errstate(all="ignore"):
            r = np.broadcast_to(np.asarray(f(*x.T, *p), dtype=float), y.shape) - y
        return r

    p = np.array([float(v) for v in floats])
    best = residual(p)
    if not np.all(np.isfinite(best)):
        return expr
    damping = 1e-3
    for _ in range(LM_STEPS):
        h = 1e-7 * np.maximum(1.0, np.abs(p))
        jac = np.stack(
            [(residual(p + e) - residual(p - e)) / (2 * e[i]) for i, e in enumerate(np.diag(h))],
            axis=1,
        )
        if not np.all(np.isfinite(jac)):
            break
        a = jac.T @ jac
        step = np.linalg.solve(a + damping * np.diag(np.diag(a) + 1e-30), -jac.T @ best)
        trial = residual(p + step)
        if np.all(np.isfinite(trial)) and trial @ trial < best @ best:
            p, best, damping = p + step, trial, damping / 3
        else:
            damping *= 10
        if np.linalg.norm(step) <= 1e-14 * (1 + np.linalg.norm(p)):
            break
    return template.xreplace({q: sympy.Float(v) for q, v in zip(params, p)})


def simple_values(value: float) -> list[sympy.Expr]:
    """Candidates near ``value``: 0, rationals with small denominators, multiples of pi."""
    radius = SNAP_RADIUS * max(1.0, abs(value))
    out = [sympy.Integer(0)] if abs(value) <= radius else []
    fraction = Fraction(value).limit_denominator(MAX_DENOMINATOR)
    if abs(float(fraction) - value) <= radius:
        out.append(sympy.Rational(fraction.numerator, fraction.denominator))
    over_pi = Fraction(value / np.pi).limit_denominator(4)
    if over_pi != 0 and abs(float(over_pi) * np.pi - value) <= radius:
        out.append(sympy.Rational(over_pi.numerator, over_pi.denominator) * sympy.pi)
    return sorted(out, key=lambda v: abs(float(v) - value))


def snap_constants(expr: sympy.Expr, symbols, x, y, reference: float) -> sympy.Expr:
    """Each Float constant, smallest first, set to the first simple value that keeps the RMSE
    within SNAP_SLACK of ``reference``."""
    limit = SNAP_SLACK * reference + 1e-15 * (1.0 + float(np.abs(y).max(initial=0.0)))
    for constant in sorted(expr.atoms(sympy.Float), key=lambda f: abs(float(f))):
        if constant not in expr.atoms(sympy.Float):
            continue  # gone with a term snapped to zero
        for value in simple_values(float(constant)):
            trial = expr.xreplace({constant: value})
            if rmse_of(trial, symbols, x, y) <= limit:
                expr = trial
                break
    return expr


def refine_formula(expr: sympy.Expr, symbols, x: np.ndarray, y: np.ndarray) -> sympy.Expr:
    """Refit, snap and simplify one output's formula against its data y (N,)."""
    start = rmse_of(expr, symbols, x, y)
    refit = refit_constants(expr, symbols, x, y)
    reference = rmse_of(refit, symbols, x, y)
    if not reference <= start:
        refit, reference = expr, start
    snapped = snap_constants(refit, symbols, x, y, reference)
    simpler = sympy.simplify(snapped)
    if rmse_of(simpler, symbols, x, y) <= SNAP_SLACK * rmse_of(snapped, symbols, x, y) + 1e-15:
        return simpler
    return snapped
