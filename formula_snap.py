"""The composed formula's constants: refitted to the data, then snapped to simple values where
the fit does not get worse.

A formula composed from per-edge fits carries the small errors of every edge
(``0.99998*x1*x2/(x3 - 1.6e-5) + 8e-6*x1*x2`` for ``x1*x2/x3``), and its constants are
entangled: a product of shifted factors, ``(0.26*m + 3e-4)*(0.29*v + 1e-3)**2``, hides the
monomial ``m*v**2`` behind constants that only mean something together. `refine_formula` tries
the formula as composed and expanded (powers and products of sums multiplied out, so every
monomial has one coefficient). For each form it refits all floating-point constants jointly to
the data (Levenberg-Marquardt on the formula itself), then tries each constant, smallest
first, at simple values: 0 (the term goes), integers, halves and small-denominator rationals,
and the same multiples of pi; after each trial the other constants are refitted, so a snap
that the rest can absorb is kept. A value is kept when the formula's RMSE on the data stays
within `SNAP_SLACK` of the refitted formula's (or within EXACT_FLOOR of the data's spread,
which is rounding, not fit), so snaps never cost more than that; kept values are exact sympy
rationals. The result is simplified by sympy and kept only if simplification does not change
its value; of the forms, the one with the fewest operations among those that fit as well as the
best is returned.
"""

from fractions import Fraction

import numpy as np
import sympy

SNAP_SLACK = 1.01  # a snapped formula may have at most 1% more RMSE than the refitted one
EXACT_FLOOR = 1e-9  # RMSE below this times std(y) counts as exact (floating-point rounding)
SNAP_RADIUS = 0.05  # a simple value is tried within 5% (relative, at least 0.05 absolute)
MAX_DENOMINATOR = 6
LM_STEPS = 50
MAX_EXPANDED_OPS = 400  # a longer expansion is not tried (its refit would be slow)


def rmse_of(expr: sympy.Expr, symbols, x: np.ndarray, y: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        value = sympy.lambdify(symbols, expr, "numpy")(*x.T)
    value = np.broadcast_to(np.asarray(value, dtype=float), y.shape)
    err = float(np.sqrt(np.mean((value - y) ** 2)))
    return err if np.isfinite(err) else np.inf


class _Constants:
    """A formula whose Float constants are parameters: some free (refitted), some fixed."""

    def __init__(self, expr: sympy.Expr, symbols, x: np.ndarray, y: np.ndarray):
        floats = sorted(expr.atoms(sympy.Float), key=float)
        self.params = list(sympy.symbols(f"_c0:{len(floats)}"))
        self.template = expr.xreplace(dict(zip(floats, self.params)))
        self.values = {p: float(v) for p, v in zip(self.params, floats)}
        self.fixed: dict = {}  # param -> exact sympy value
        self.symbols, self.x, self.y = list(symbols), x, y
        self._all = None

    def free(self) -> list:
        return [p for p in self.params if p not in self.fixed]

    def expr(self, fixed: dict | None = None) -> sympy.Expr:
        fixed = self.fixed if fixed is None else fixed
        values = {p: fixed.get(p, sympy.Float(self.values[p])) for p in self.params}
        return self.template.xreplace(values)

    def fit(self, fixed: dict, steps: int = LM_STEPS) -> tuple[dict, float]:
        """Free constants (not in ``fixed``) refitted by least squares: (values, RMSE)."""
        if self._all is None:  # one code object for every choice of fixed constants
            self._all = sympy.lambdify(self.symbols + self.params, self.template, "numpy")
        free = [i for i, p in enumerate(self.params) if p not in fixed]
        given = np.array([float(fixed.get(p, self.values[p])) for p in self.params])
        y, columns = self.y, list(self.x.T)

        def residual(q):
            values = given.copy()
            values[free] = q
            with np.errstate(all="ignore"):
                out = self._all(*columns, *values)
            return np.broadcast_to(np.asarray(out, dtype=float), y.shape) - y

        q, best = _levenberg_marquardt(residual, given[free], steps)
        values = {**self.values, **{self.params[i]: v for i, v in zip(free, q.tolist())}}
        return values, float(np.sqrt(np.mean(best**2))) if np.all(np.isfinite(best)) else np.inf


def _levenberg_marquardt(residual, p: np.ndarray, steps: int):
    """Minimise |residual(p)|^2 from p (finite-difference Jacobian); returns (p, residual)."""
    best = residual(p)
    if not np.all(np.isfinite(best)) or not len(p):
        return p, best
    damping = 1e-3
    for _ in range(steps):
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
        if np.linalg.norm(step) <= 1e-14 * (1 + np.linalg.norm(p)) or damping > 1e12:
            break
    return p, best


def refit_constants(expr: sympy.Expr, symbols, x: np.ndarray, y: np.ndarray) -> sympy.Expr:
    """All Float constants of ``expr`` refitted jointly by least squares to (x, y)."""
    constants = _Constants(expr, symbols, x, y)
    if not constants.params:
        return expr
    values, _ = constants.fit({})
    constants.values = values
    return constants.expr()


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


def _limit(reference: float, y: np.ndarray) -> float:
    """The largest RMSE that fits as well as ``reference``."""
    return SNAP_SLACK * reference + EXACT_FLOOR * float(np.std(y)) + 1e-15


def snap_constants(expr: sympy.Expr, symbols, x, y, reference: float) -> sympy.Expr:
    """Each Float constant, smallest first, set to the first simple value with which the
    formula, its other constants refitted, keeps the RMSE within `_limit` of ``reference``;
    repeated while a pass snaps something (a refit can bring a constant near a simple value)."""
    constants = _Constants(expr, symbols, x, y)
    limit = _limit(reference, y)
    changed = True
    while changed:
        changed = False
        for param in sorted(constants.free(), key=lambda p: abs(constants.values[p])):
            for value in simple_values(constants.values[param]):
                fixed = {**constants.fixed, param: value}
                values, error = constants.fit(fixed)
                if error <= limit:
                    constants.fixed, constants.values, changed = fixed, values, True
                    break
    return constants.expr()


def forms(expr: sympy.Expr) -> list[sympy.Expr]:
    """The formula as composed and, when different and not too long, expanded."""
    expanded = sympy.expand(expr, power_exp=False, log=False)
    if expanded == expr or sympy.count_ops(expanded) > MAX_EXPANDED_OPS:
        return [expr]
    return [expr, expanded]


def _refined_form(expr: sympy.Expr, symbols, x, y) -> tuple[sympy.Expr, float]:
    start = rmse_of(expr, symbols, x, y)
    refit = refit_constants(expr, symbols, x, y)
    reference = rmse_of(refit, symbols, x, y)
    if not reference <= start:
        refit, reference = expr, start
    snapped = snap_constants(refit, symbols, x, y, reference)
    error = rmse_of(snapped, symbols, x, y)
    simpler = sympy.simplify(snapped)
    if rmse_of(simpler, symbols, x, y) > _limit(error, y):
        return snapped, error
    whole = snap_coefficients(simpler, symbols, x, y, reference)
    if whole != simpler:
        simpler = sympy.simplify(whole)
    return simpler, rmse_of(simpler, symbols, x, y)


def snap_coefficients(expr: sympy.Expr, symbols, x, y, reference: float) -> sympy.Expr:
    """The numeric coefficient of each term (of the sum, or of the product), taken whole,
    snapped like a constant (`snap_constants`): simplification pulls exact factors out of
    powers (sqrt(2*L) becomes sqrt(2)*sqrt(L)), and 4.4429*sqrt(2) is 2*pi where neither factor
    alone is simple."""
    terms = expr.args if expr.is_Add else (expr,)
    swaps = {}
    for term in terms:
        coefficient, rest = term.as_independent(*symbols, as_Add=False)
        if coefficient.atoms(sympy.Float) and not coefficient.is_Float and rest != 1:
            swaps[term] = sympy.Float(float(coefficient)) * rest
    if not swaps:
        return expr
    return snap_constants(expr.xreplace(swaps), symbols, x, y, reference)


def refine_formula(expr: sympy.Expr, symbols, x: np.ndarray, y: np.ndarray) -> sympy.Expr:
    """Refit, snap and simplify one output's formula against its data y (N,) (module
    docstring): the shortest of its refined forms that fits as well as the best."""
    refined = [_refined_form(form, symbols, x, y) for form in forms(expr)]
    limit = _limit(min(error for _, error in refined), y)
    fitting = [_exact(form) for form, error in refined if error <= limit]
    return min(fitting, key=lambda form: (len(form.atoms(sympy.Float)), sympy.count_ops(form)))


def _exact(expr: sympy.Expr) -> sympy.Expr:
    """Floats that are a small-denominator rational to 1e-12 (products of snapped constants
    with a float, 2.0 * 1/4) written as that rational."""
    swaps = {}
    for f in expr.atoms(sympy.Float):
        fraction = Fraction(float(f)).limit_denominator(MAX_DENOMINATOR)
        if abs(float(fraction) - float(f)) <= 1e-12 * max(1.0, abs(float(f))):
            swaps[f] = sympy.Rational(fraction.numerator, fraction.denominator)
    return expr.xreplace(swaps) if swaps else expr
