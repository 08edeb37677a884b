"""Independent references for the spline tests: scipy.interpolate.BSpline and a naive
recursive Cox–de Boor evaluator, plus random knot vectors to test them on."""

import numpy as np
from scipy.interpolate import BSpline


def random_knots(rng, k, G, clamped=False, lo=-1.0, hi=1.0):
    """(G + 2k + 1,) non-uniform knots with base interval [lo, hi] split into G spans."""
    widths = rng.uniform(0.3, 1.7, G)
    interior = lo + (hi - lo) * np.r_[0.0, np.cumsum(widths)] / widths.sum()
    interior[-1] = hi
    if clamped:
        left, right = np.full(k, lo), np.full(k, hi)
    else:
        left = lo - np.cumsum(rng.uniform(0.05, 0.3, k))[::-1]
        right = hi + np.cumsum(rng.uniform(0.05, 0.3, k))
    return np.r_[left, interior, right]


def scipy_basis(x, t, k):
    """(N, n) basis from scipy's design matrix; outside [t[k], t[n]] the value at the nearest end
    plus scipy's one-sided derivative there times the distance."""
    n = len(t) - k - 1
    xc = np.clip(x, t[k], t[n])
    values = BSpline.design_matrix(xc, t, k).toarray()
    slopes = BSpline(t, np.eye(n), k)(xc, nu=1)
    return values + slopes * (x - xc)[:, None]


def scipy_basis_derivative(x, t, k):
    """(N, n) slopes from scipy's derivative spline, held at the nearest end outside."""
    n = len(t) - k - 1
    return BSpline(t, np.eye(n), k).derivative()(np.clip(x, t[k], t[n]))


def scipy_curve(x, t, c, k):
    """sum_i c_i B_i(x) for c (n, O), continued linearly outside the base interval."""
    return scipy_basis(x, t, k) @ c


def naive_basis(x, t, k):
    """Cox–de Boor by the textbook recursion, one point and one function at a time.

    The degree-0 function that is 1 at x is the one of the non-empty span t[s] <= x < t[s+1],
    with the right end t[n] taken into the last non-empty span of the base interval.
    """
    n = len(t) - k - 1
    spans = [i for i in range(k, n) if t[i] < t[i + 1]]
    s = max([i for i in spans if t[i] <= x] or [spans[0]])

    def b(i, p):
        if p == 0:
            return 1.0 if i == s else 0.0
        out = 0.0
        if t[i + p] > t[i]:
            out += (x - t[i]) / (t[i + p] - t[i]) * b(i, p - 1)
        if t[i + p + 1] > t[i + 1]:
            out += (t[i + p + 1] - x) / (t[i + p + 1] - t[i + 1]) * b(i + 1, p - 1)
        return out

    return np.array([b(i, k) for i in range(n)])
