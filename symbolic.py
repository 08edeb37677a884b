"""Symbolic formulas from a trained KAN (Liu et al. 2024, section 2.5: symbolification).

Every surviving edge phi_ji is replaced by ``c * f(a * x + b) + d`` with f from `LIBRARY`, and the
edges compose into one closed-form expression per output. `symbolify` runs the whole pipeline:

1. sample every unmasked edge on the data reaching its layer and fit each library function
   (`fit_function`): a coarse (a, b) grid with (c, d) solved in closed form at all grid points
   at once, then Levenberg–Marquardt on (a, b) from the best few grid points with (c, d) re-solved
   linearly at every step (variable projection);
2. choose one function per edge (`select_fit`) and snap its constants to nice values (`snap`);
3. fine-tune all constants together on the real targets (`SymbolicKAN`, `finetune`);
4. compose, round constants lying within a tolerance of simple numbers, simplify (`compose`).
Steps 3 and 4 run first on the simplest acceptable function of every edge, which is kept when
the formula fits the targets as well as the network does (see `symbolify`).

Conventions, used throughout:
- ``z = a * x + b``. A candidate (a, b) is admissible only when f is defined and finite on the
  whole interval ``[min z, max z]`` spanned by the samples, not only at the samples (a pole
  between two samples counts): sqrt needs z >= 0, log z > 0, 1/x a z range not containing 0,
  tan a z range inside one branch (k pi - pi/2, k pi + pi/2). No |z| tricks are used.
- ``R^2 = 1 - SSE / SST``. Data whose spread is negligible (max - min <= 1e-12 max(1, max |y|))
  are constant: they get the "0" fit (c = 0, d = mean) with R^2 = 1, whatever the library.
- After a fit, (a, b, c, d) are brought to a canonical form using the symmetries of f (the
  function is unchanged): a >= 0 for even/odd f, a = +-1 for powers, abs and log (the scale moves
  into c or d), b = 0 for exp (e^b moves into c), b reduced modulo the period for sin/cos/tan.
  The parameters fixed by this (see `free_parameters`) are not fine-tuned.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache

import numpy as np
import sympy
import torch
from torch import nn

# Coarse grid of the search, in coordinates where the samples span x in [-1, 1].
GRID_A = np.geomspace(0.1, 20.0, 40)  # |a|, both signs are searched
GRID_B = np.linspace(-10.0, 10.0, 61)
GRID_SAMPLES = 128  # samples used on the grid (evenly spread over sorted x, ends included)
FIT_SAMPLES = 1000  # at most this many samples are fitted (same thinning)
N_STARTS = 4  # grid points polished by Levenberg–Marquardt

# Selection (`select_fit`): a candidate is as good as the best when its unexplained variance
# 1 - R^2 is at most SELECT_REL times the best one's plus SELECT_ABS.
SELECT_REL = 10.0
SELECT_ABS = 1e-9
# `symbolify` first tries the simplest function of every edge that reaches this R^2 (or the
# caller's threshold when lower); the fit of the whole formula to the data decides.
SIMPLEST_R2 = 0.95

# Snapping (`snap`): values tried, how far they may be, how much R^2 may drop.
SNAP_DENOMINATOR = 2  # integers and halves, and the same multiples of pi
SNAP_RADIUS = 0.05  # a nice value is tried when within 5% (relative, at least 0.05 absolute)
SNAP_R2_DROP = 1e-5

# Composition (`compose`): constants within `tolerance` of p/q or p/q * pi (q <= 12) are
# replaced by that number; larger expressions than this are not rewritten.
ROUND_DENOMINATOR = 12
SIMPLIFY_MAX_OPS = 400


# ---------------------------------------------------------------------------------------------
# The library


def _anywhere(lo, hi):
    return np.isfinite(lo) & np.isfinite(hi)


def _nonnegative(lo, hi):
    return np.isfinite(hi) & (lo >= 0)


def _positive(lo, hi):
    return np.isfinite(hi) & (lo > 0)


def _without_zero(lo, hi):
    return np.isfinite(lo) & np.isfinite(hi) & ((lo > 0) | (hi < 0))


def _one_tan_branch(lo, hi):
    k = np.round((lo + hi) / (2 * np.pi))  # the branch centred at k pi holds the midpoint
    return (lo > (k - 0.5) * np.pi) & (hi < (k + 0.5) * np.pi)


@dataclass(frozen=True)
class LibraryEntry:
    """One candidate f of ``c * f(a * x + b) + d``.

    ``complexity``: the cost `select_fit` weighs against R^2 (see the note on the entries).
    ``domain(lo, hi)`` says (elementwise, on arrays) whether f is defined on [lo, hi].
    Symmetries used for the canonical form: ``parity`` f(-z) = parity * f(z) (0: none);
    ``period``; ``scaling``: "power" f(s z) = s^power f(z) (s > 0), "log" f(s z) = log s + f(z),
    "exp" f(z + t) = e^t f(z). ``fixed_ab``: (a, b) of a function with nothing to search.
    """

    name: str
    torch_fn: Callable[[torch.Tensor], torch.Tensor]
    numpy_fn: Callable[[np.ndarray], np.ndarray]
    sympy_fn: Callable[[sympy.Expr], sympy.Expr]
    complexity: int
    domain: Callable[[np.ndarray, np.ndarray], np.ndarray] = _anywhere
    parity: int = 0
    period: float | None = None
    scaling: str | None = None
    power: float = 0.0
    fixed_ab: tuple[float, float] | None = None


# Complexity: constant 0, linear 1, quadratic 2, the other elementary functions 3, the rest 4.
# x^2 ranks below cos (and x below sin, exp, log, ...) because those reach the simpler shape in a
# limit (cos(a z) with small a is a parabola) and would otherwise win on spline noise.
_ENTRIES = (
    LibraryEntry(
        "0", torch.zeros_like, np.zeros_like, lambda z: sympy.Integer(0), 0, fixed_ab=(0.0, 0.0)
    ),
    LibraryEntry("x", lambda z: z, lambda z: z, lambda z: z, 1, fixed_ab=(1.0, 0.0)),
    LibraryEntry(
        "x^2", torch.square, np.square, lambda z: z**2, 2, parity=1, scaling="power", power=2
    ),
    LibraryEntry(
        "x^3",
        lambda z: z**3,
        lambda z: z**3,
        lambda z: z**3,
        3,
        parity=-1,
        scaling="power",
        power=3,
    ),
    LibraryEntry(
        "x^4", lambda z: z**4, lambda z: z**4, lambda z: z**4, 4, parity=1, scaling="power", power=4
    ),
    LibraryEntry(
        "1/x",
        torch.reciprocal,
        np.reciprocal,
        lambda z: 1 / z,
        3,
        _without_zero,
        parity=-1,
        scaling="power",
        power=-1,
    ),
    LibraryEntry(
        "sqrt", torch.sqrt, np.sqrt, sympy.sqrt, 3, _nonnegative, scaling="power", power=0.5
    ),
    LibraryEntry("abs", torch.abs, np.abs, sympy.Abs, 3, parity=1, scaling="power", power=1),
    LibraryEntry("exp", torch.exp, np.exp, sympy.exp, 3, scaling="exp"),
    LibraryEntry("log", torch.log, np.log, sympy.log, 3, _positive, scaling="log"),
    LibraryEntry("sin", torch.sin, np.sin, sympy.sin, 3, parity=-1, period=2 * math.pi),
    LibraryEntry("cos", torch.cos, np.cos, sympy.cos, 3, parity=1, period=2 * math.pi),
    LibraryEntry(
        "tan", torch.tan, np.tan, sympy.tan, 4, _one_tan_branch, parity=-1, period=math.pi
    ),
    LibraryEntry("tanh", torch.tanh, np.tanh, sympy.tanh, 4, parity=-1),
    LibraryEntry(
        "gaussian",
        lambda z: torch.exp(-(z**2)),
        lambda z: np.exp(-(z**2)),
        lambda z: sympy.exp(-(z**2)),
        4,
        parity=1,
    ),
)
LIBRARY: dict[str, LibraryEntry] = {entry.name: entry for entry in _ENTRIES}


def _entry(name: str) -> LibraryEntry:
    if name not in LIBRARY:
        raise ValueError(f"unknown library function {name!r}; known: {', '.join(LIBRARY)}")
    return LIBRARY[name]


def _library_names(library: Sequence[str] | None) -> list[str]:
    names = list(LIBRARY) if library is None else list(library)
    for name in names:
        _entry(name)
    if not names:
        raise ValueError("library must name at least one function, got an empty list")
    return names


@cache
def _derivative(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """f' as a numpy function, differentiated by sympy."""
    z = sympy.Symbol("z", real=True)
    fn = sympy.lambdify(z, sympy.diff(LIBRARY[name].sympy_fn(z), z), "numpy")
    return lambda values: np.broadcast_to(fn(values), np.shape(values))


def free_parameters(name: str) -> tuple[bool, bool, bool, bool]:
    """Which of (a, b, c, d) stay free once the fit is in canonical form."""
    entry = _entry(name)
    if entry.fixed_ab is not None:
        return (False, False, True, True)
    return (entry.scaling not in ("power", "log"), entry.scaling != "exp", True, True)


# ---------------------------------------------------------------------------------------------
# Fitting one function


@dataclass(frozen=True)
class Fit:
    """``y ~ c * f(a * x + b) + d`` with f = LIBRARY[name]; r2 on the data it was fitted to."""

    name: str
    a: float
    b: float
    c: float
    d: float
    r2: float

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return self.c * LIBRARY[self.name].numpy_fn(self.a * np.asarray(x) + self.b) + self.d

    def expr(self, v: sympy.Expr) -> sympy.Expr:
        c, a, b, d = (sympy.Float(p) for p in (self.c, self.a, self.b, self.d))
        return c * LIBRARY[self.name].sympy_fn(a * v + b) + d


@dataclass(frozen=True)
class EdgeFit:
    """The function chosen for one edge (snapped) and every candidate's fit (unsnapped)."""

    fit: Fit
    candidates: dict[str, Fit]


def _as_array(v) -> np.ndarray:
    v = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v
    return np.asarray(v, dtype=np.float64)


def _as_samples(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_array(x).ravel(), _as_array(y).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"x and y must be non-empty and of one length, got {x.size} and {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite")
    return x, y


def _thin(x: np.ndarray, y: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """At most m samples, evenly spread over sorted x, smallest and largest x included."""
    if x.size <= m:
        return x, y
    order = np.argsort(x, kind="stable")
    keep = order[np.linspace(0, x.size - 1, m).round().astype(int)]
    return x[keep], y[keep]


def _is_constant(v: np.ndarray) -> bool:
    return float(np.ptp(v)) <= 1e-12 * max(1.0, float(np.abs(v).max()))


def _constant_fit(y: np.ndarray) -> Fit:
    return Fit("0", 0.0, 0.0, 0.0, float(y.mean()), 1.0 if _is_constant(y) else 0.0)


def _linear(g: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(c, d) minimising |y - c g - d|; c = 0 when g is (numerically) constant."""
    gm = g.mean()
    gc = g - gm
    var = gc @ gc
    small = (1e-12 * max(1.0, abs(gm))) ** 2 * g.size
    c = (gc @ (y - y.mean())) / var if math.isfinite(var) and var > small else 0.0
    return float(c), float(y.mean() - c * gm)


def _values(entry: LibraryEntry, x: np.ndarray, a: float, b: float) -> np.ndarray | None:
    """f(a x + b), or None when (a, b) is not admissible (see the module docstring)."""
    z = a * x + b
    if not bool(entry.domain(np.asarray(z.min()), np.asarray(z.max()))):
        return None
    with np.errstate(all="ignore"):
        g = entry.numpy_fn(z)
    return g if np.isfinite(g).all() else None


def _sse(entry, x, y, a, b, c=None, d=None):
    """(SSE, c, d) at (a, b), with c and/or d solved linearly when not given (inf: inadmissible)."""
    g = _values(entry, x, a, b)
    if g is None:
        return math.inf, 0.0, float(y.mean())
    with np.errstate(all="ignore"):
        if c is None and d is None:
            c, d = _linear(g, y)
        elif c is None:
            c = float(g @ (y - d) / (g @ g)) if g @ g > 0 else 0.0
        elif d is None:
            d = float((y - c * g).mean())
        r = y - c * g - d
        sse = float(r @ r)
    return (sse, c, d) if math.isfinite(sse) else (math.inf, 0.0, float(y.mean()))


def _grid_starts(entry: LibraryEntry, xs: np.ndarray, ys: np.ndarray) -> list[tuple[float, float]]:
    """The best few grid points (a, b) for samples xs spanning [-1, 1], not grid neighbours."""
    A = np.concatenate([-GRID_A[::-1], GRID_A])
    Z = A[:, None, None] * xs + GRID_B[None, :, None]  # (nA, nB, n)
    ok = entry.domain(GRID_B[None, :] - np.abs(A)[:, None], GRID_B[None, :] + np.abs(A)[:, None])
    with np.errstate(all="ignore"):
        G = entry.numpy_fn(Z)
    ok &= np.isfinite(G).all(axis=-1)
    G = np.where(ok[..., None], G, 0.0)
    # closed-form (c, d) at every grid point: SSE = SST - cov^2 / var
    n = xs.size
    yc = ys - ys.mean()
    g_sum = G.sum(axis=-1)
    var = np.einsum("...n,...n->...", G, G) - g_sum**2 / n
    cov = G @ yc
    with np.errstate(all="ignore"):
        explained = np.where(var > 1e-12 * np.abs(g_sum) ** 2 / n + 1e-300, cov**2 / var, 0.0)
    sse = np.where(ok, np.maximum(yc @ yc - explained, 0.0), np.inf)
    starts: list[tuple[int, int]] = []
    for flat in np.argsort(sse, axis=None, kind="stable"):
        ia, ib = np.unravel_index(flat, sse.shape)
        if not np.isfinite(sse[ia, ib]) or len(starts) == N_STARTS:
            break
        if all(max(abs(ia - ja), abs(ib - jb)) > 1 for ja, jb in starts):
            starts.append((ia, ib))
    return [(float(A[ia]), float(GRID_B[ib])) for ia, ib in starts]


def _levenberg_marquardt(entry, x, y, a, b, free=(True, True), max_iter=50):
    """Minimise the SSE over the free ones of (a, b), (c, d) re-solved linearly at each step.

    The Jacobian is Kaufman's variable-projection approximation: d r / d(a, b) with (c, d)
    held, projected onto the complement of span{1, f(a x + b)}. Returns (a, b, SSE).
    """
    mask = np.array(free)
    theta = np.array([a, b], dtype=np.float64)
    sse, c, _ = _sse(entry, x, y, *theta)
    lam = 1e-3
    for _ in range(max_iter):
        if not np.isfinite(sse) or sse == 0.0:
            break
        z = theta[0] * x + theta[1]
        with np.errstate(all="ignore"):  # huge values end the run through the finiteness test
            g = entry.numpy_fn(z)
            fp = _derivative(entry.name)(z)
            J = -c * np.stack([fp * x, fp], axis=1)[:, mask]  # (N, free): d r / d(a, b)
            J -= J.mean(axis=0)  # project out 1 ...
            gc = g - g.mean()
            if gc @ gc > 0:  # ... and f(a x + b)
                J -= np.outer(gc, gc @ J / (gc @ gc))
            r = y - c * g - (y - c * g).mean()
            H, grad = J.T @ J, J.T @ r
        if not (np.isfinite(H).all() and np.isfinite(grad).all() and np.diag(H).max() > 0):
            break
        damping = np.diag(H) + 1e-15 * np.diag(H).max()
        accepted = False
        while lam < 1e12:
            step = np.zeros(2)
            step[mask] = np.linalg.solve(H + lam * np.diag(damping), -grad)
            trial = theta + step
            new_sse, new_c, _ = _sse(entry, x, y, *trial)
            if new_sse < sse:
                accepted, gain = True, sse - new_sse
                theta, sse, c = trial, new_sse, new_c
                lam = max(lam / 10, 1e-12)
                break
            lam *= 10
        if (
            not accepted
            or gain <= 1e-8 * sse
            or np.abs(step).max() <= 1e-14 * (1 + np.abs(theta).max())
        ):
            break
    return float(theta[0]), float(theta[1]), sse


def _canonical(entry: LibraryEntry, a: float, b: float, c: float, d: float):
    """The same function with (a, b, c, d) in canonical form (module docstring)."""
    if entry.fixed_ab is not None:
        return (*entry.fixed_ab, c, d)
    if entry.parity and a < 0:
        a, b, c = -a, -b, entry.parity * c
    if entry.scaling == "power":
        s = abs(a)
        a, b, c = math.copysign(1.0, a), b / s, c * s**entry.power
    elif entry.scaling == "log":
        s = abs(a)
        a, b, d = math.copysign(1.0, a), b / s, d + c * math.log(s)
    elif entry.scaling == "exp":
        b, c = 0.0, c * math.exp(b)
    if entry.period:
        b -= entry.period * round(b / entry.period)
    return a, b, c, d


def _fit_samples(entry: LibraryEntry, x: np.ndarray, y: np.ndarray) -> Fit:
    """Fit one function to prepared samples (finite, non-constant x and y)."""
    sst = float(((y - y.mean()) ** 2).sum())
    if entry.fixed_ab is not None:
        a, b = entry.fixed_ab
        sse, c, d = _sse(entry, x, y, a, b)
        return Fit(entry.name, a, b, float(c), float(d), 1.0 - sse / sst)
    # search where the samples span [-1, 1]: x = mu + s * xn, so a x + b = (a s) xn + (a mu + b)
    mu, s = (x.max() + x.min()) / 2, (x.max() - x.min()) / 2
    xn = (x - mu) / s
    xs, ys = _thin(xn, y, GRID_SAMPLES)
    # a few steps from each start on the grid samples, then the best one to convergence
    polished = [
        _levenberg_marquardt(entry, xs, ys, *ab, max_iter=8) for ab in _grid_starts(entry, xs, ys)
    ]
    an, bn, sse = min(polished, key=lambda p: p[2], default=(0.0, 0.0, math.inf))
    if np.isfinite(sse):
        an, bn, sse = _levenberg_marquardt(entry, xn, y, an, bn)
    if not np.isfinite(sse):
        return Fit(entry.name, 0.0, 0.0, 0.0, float(y.mean()), -math.inf)
    a, b = an / s, bn - an * mu / s
    sse, c, d = _sse(entry, x, y, a, b)
    canon = _canonical(entry, a, b, c, d)
    canon_sse, c2, d2 = _sse(entry, x, y, canon[0], canon[1])
    if canon_sse <= sse * (1 + 1e-9) + 1e-30 * sst:  # rounding may push a boundary (sqrt at 0)
        a, b, c, d, sse = canon[0], canon[1], c2, d2, canon_sse
    return Fit(entry.name, float(a), float(b), float(c), float(d), 1.0 - sse / sst)


def fit_function(x, y, name: str) -> Fit:
    """Least-squares fit of ``y ~ c * f(a * x + b) + d`` for f = LIBRARY[name].

    x, y: (N,) arrays or tensors. Never raises for functions whose domain does not suit the
    data: inadmissible (a, b) are skipped, and a function with no admissible (a, b) at all gets
    r2 = -inf. Constant y gives the exact "0" fit (see the module docstring). At most
    `FIT_SAMPLES` samples are used (evenly spread over sorted x).
    """
    entry = _entry(name)
    x, y = _thin(*_as_samples(x, y), FIT_SAMPLES)
    if _is_constant(y) or _is_constant(x):
        return _constant_fit(y)
    return _fit_samples(entry, x, y)


def fit_candidates(x, y, library: Sequence[str] | None = None) -> dict[str, Fit]:
    """`fit_function` for every name in ``library`` (default: all of LIBRARY).

    Constant y (or constant x) gives only the "0" fit: {"0": Fit("0", 0, 0, 0, mean, r2)}.
    """
    names = _library_names(library)
    x, y = _thin(*_as_samples(x, y), FIT_SAMPLES)
    if _is_constant(y) or _is_constant(x):
        return {"0": _constant_fit(y)}
    return {name: _fit_samples(LIBRARY[name], x, y) for name in names}


def select_fit(
    candidates: dict[str, Fit], r2_threshold: float = 0.99, relative: float = SELECT_REL
) -> Fit | None:
    """The simplest candidate that fits as well as the best one, or None when none is good.

    Rule: with e = 1 - R^2 and e* the best (smallest) e, the candidates with
    ``e <= relative * e* + SELECT_ABS`` and ``R^2 >= r2_threshold`` are equivalent; among them
    the one of lowest `LibraryEntry.complexity` wins, then the smaller e (values below 1e-13,
    round-off, count as equal), then the smaller |b| (cos(z) over sin(z + pi/2)). None when the
    best R^2 is below r2_threshold (the edge keeps its spline). ``relative=math.inf``: every
    candidate reaching r2_threshold is equivalent (the simplest acceptable one).
    """
    fits = [fit for fit in candidates.values() if np.isfinite(fit.r2)]
    if not fits:
        return None
    best_err = min(1.0 - fit.r2 for fit in fits)
    bound = math.inf if math.isinf(relative) else relative * best_err + SELECT_ABS
    equivalent = [fit for fit in fits if fit.r2 >= r2_threshold and 1.0 - fit.r2 <= bound]
    if not equivalent:
        return None
    return min(
        equivalent,
        key=lambda fit: (LIBRARY[fit.name].complexity, max(1.0 - fit.r2, 1e-13), abs(fit.b)),
    )


def _nice_values(v: float, max_denominator: int) -> list[float]:
    """p/q and p/q * pi (q <= max_denominator) nearest to v, nearest first."""
    near = [
        float(Fraction(v).limit_denominator(max_denominator)),
        float(Fraction(v / math.pi).limit_denominator(max_denominator)) * math.pi,
    ]
    return sorted(set(near), key=lambda w: abs(w - v))


def snap(fit: Fit, x, y, tol: float = SNAP_R2_DROP) -> Fit:
    """Snap a, b, c, d (in this order) to nearby nice values, each kept only if R^2 holds.

    Nice values are integers and halves, and integer and half multiples of pi; one is tried when
    within `SNAP_RADIUS` * max(1, |value|) of the value. After a parameter is set, the ones not
    yet treated are re-solved: after a, b by Levenberg–Marquardt (when free) and (c, d) linearly;
    after b, (c, d); after c, d; after d, c (when c did not snap). The snap is kept when the R^2
    on (x, y) stays >= (R^2 of the incoming fit) - tol, so all snaps together cost at most tol.
    Parameters fixed by the canonical form (`free_parameters`) are left alone. Like the fits,
    it uses at most `FIT_SAMPLES` of the samples.
    """
    entry = _entry(fit.name)
    x, y = _thin(*_as_samples(x, y), FIT_SAMPLES)
    if _is_constant(y):
        return fit
    sst = float(((y - y.mean()) ** 2).sum())
    free = free_parameters(fit.name)
    p = [fit.a, fit.b, fit.c, fit.d]
    p_sse, _, _ = _sse(entry, x, y, *p[:2], *p[2:])
    reference = 1.0 - p_sse / sst
    snapped: set[int] = set()
    for index in range(4):
        if not free[index]:
            continue
        for value in _nice_values(p[index], SNAP_DENOMINATOR):
            if value == p[index] or abs(value - p[index]) > SNAP_RADIUS * max(1.0, abs(p[index])):
                continue
            q = list(p)
            q[index] = value
            if index == 0 and free[1]:
                q[1] = _levenberg_marquardt(entry, x, y, q[0], q[1], free=(False, True))[1]
            if index <= 1:
                sse, q[2], q[3] = _sse(entry, x, y, q[0], q[1])
            elif index == 2:
                sse, _, q[3] = _sse(entry, x, y, q[0], q[1], c=q[2])
            else:
                c_fixed = q[2] if 2 in snapped else None
                sse, q[2], _ = _sse(entry, x, y, q[0], q[1], c=c_fixed, d=q[3])
            if 1.0 - sse / sst >= reference - tol:
                p, p_sse = q, sse
                snapped.add(index)
                break
    return Fit(fit.name, *(float(v) for v in p), 1.0 - p_sse / sst)


def fit_edge(
    x, y, library: Sequence[str] | None = None, r2_threshold: float = 0.99
) -> EdgeFit | None:
    """Fit every library function to one edge's samples, choose one (`select_fit`) and snap it.

    None when no function reaches r2_threshold: the edge keeps its spline.
    """
    candidates = fit_candidates(x, y, library)
    chosen = select_fit(candidates, r2_threshold)
    if chosen is None:
        return None
    return EdgeFit(snap(chosen, x, y), candidates)


# ---------------------------------------------------------------------------------------------
# Formulas


def _check_layer_fits(layer_fits, layer_dims) -> None:
    if len(layer_fits) != len(layer_dims) - 1:
        raise ValueError(
            f"expected {len(layer_dims) - 1} layers of fits for dims {list(layer_dims)}, "
            f"got {len(layer_fits)}"
        )
    for index, fits in enumerate(layer_fits):
        for j, i in fits:
            if not (0 <= j < layer_dims[index + 1] and 0 <= i < layer_dims[index]):
                raise ValueError(f"edge {(j, i)} outside layer {index} of dims {list(layer_dims)}")
        for fit in fits.values():
            _entry(fit.name)


def _input_symbols(n: int) -> list[sympy.Symbol]:
    return [sympy.Symbol(f"x{i + 1}", real=True) for i in range(n)]


def _nice_constant(v: float, tol: float) -> sympy.Expr | None:
    """p/q or p/q * pi (q <= ROUND_DENOMINATOR) within tol * max(1, |v|) of v, else None."""
    if not math.isfinite(v):
        return None
    for base in (sympy.Integer(1), sympy.pi):
        frac = Fraction(v / float(base)).limit_denominator(ROUND_DENOMINATOR)
        if abs(float(frac) * float(base) - v) <= tol * max(1.0, abs(v)):
            return sympy.Rational(frac.numerator, frac.denominator) * base
    return None


def _pull_exp_constants(expr: sympy.Expr) -> sympy.Expr:
    """exp(C + u) → e^C exp(u) for a numeric term C (|C| <= 50, so e^C stays a float)."""

    def split(arg):
        const, rest = arg.as_independent(*arg.free_symbols, as_Add=True)
        if const.is_Float and abs(float(const)) <= 50 and rest != 0:
            return sympy.exp(const) * sympy.exp(rest)
        return sympy.exp(arg)

    return expr.replace(sympy.exp, split)


def _round_constants(expr: sympy.Expr, tol: float) -> sympy.Expr:
    """Replace the floats of expr that lie within tol of a nice number (`_nice_constant`)."""
    swaps = {}
    for f in expr.atoms(sympy.Float):
        nice = _nice_constant(float(f), tol)
        if nice is not None:
            swaps[f] = nice
    return expr.xreplace(swaps)


def compose(
    layer_fits: Sequence[dict[tuple[int, int], Fit]],
    layer_dims: Sequence[int],
    tolerance: float = 1e-6,
    simplify: bool = True,
) -> list[sympy.Expr]:
    """One sympy expression per output in the symbols x1..xn (real).

    ``layer_fits[l][(j, i)]`` is the fit of the edge from node i of level l to node j of level
    l + 1; a missing edge is pruned and contributes 0; a node is the sum of its incoming edges.
    With ``simplify``: after every layer, numeric terms are pulled out of exponentials and
    constants within ``tolerance`` (relative, at least absolute) of p/q or p/q * pi with q <= 12
    become exact (tolerance 0: only exact matches); at the end each output takes its shortest
    form (`_shortest_form`; skipped above SIMPLIFY_MAX_OPS operations). Without: the plain
    composition.
    """
    _check_layer_fits(layer_fits, layer_dims)
    nodes: list[sympy.Expr] = list(_input_symbols(layer_dims[0]))
    for index, fits in enumerate(layer_fits):
        out: list[sympy.Expr] = [sympy.Integer(0)] * layer_dims[index + 1]
        for (j, i), fit in sorted(fits.items()):
            out[j] = out[j] + fit.expr(nodes[i])
        if simplify:
            out = [_round_constants(_pull_exp_constants(node), tolerance) for node in out]
        nodes = out
    if not simplify:
        return nodes
    return [_round_constants(_shortest_form(e), tolerance) for e in nodes]


def _shortest_form(expr: sympy.Expr) -> sympy.Expr:
    """The fewest-operations one of: expr, its expansion (powers and products of sums; not
    exponentials or logs), and either after powsimp. Cheap, unlike sympy.simplify (seconds)."""
    if sympy.count_ops(expr) > SIMPLIFY_MAX_OPS:
        return expr
    expanded = sympy.expand(expr, power_exp=False, log=False)
    forms = [expr, expanded, sympy.powsimp(expr), sympy.powsimp(expanded)]
    return min(forms, key=sympy.count_ops)  # the first of equally short ones


def formula_strings(exprs: Sequence[sympy.Expr]) -> tuple[list[str], list[str]]:
    """(plain text, LaTeX) per expression; the text parses back with sympy.sympify."""
    return [str(e) for e in exprs], [sympy.latex(e) for e in exprs]


def evaluate_formula(exprs: Sequence[sympy.Expr], x) -> np.ndarray:
    """Evaluate expressions in x1..xn at x (N, n) → (N, len(exprs)), through numpy.

    Only for expressions built here or parsed from them (sympy.lambdify generates code).
    """
    x = _as_array(x)
    if x.ndim != 2:
        raise ValueError(f"x must be (N, n_inputs), got shape {x.shape}")
    n = x.shape[1]
    by_name = {s.name: s for e in exprs for s in e.free_symbols}
    unknown = sorted(set(by_name) - {f"x{i + 1}" for i in range(n)})
    if unknown:
        raise ValueError(f"formula uses {unknown}, but x has only {n} columns")
    args = [by_name.get(f"x{i + 1}", sympy.Symbol(f"x{i + 1}")) for i in range(n)]
    fn = sympy.lambdify(args, list(exprs), "numpy")
    with np.errstate(all="ignore"):
        values = fn(*x.T)
    out = [np.broadcast_to(np.asarray(v, dtype=np.float64), (x.shape[0],)) for v in values]
    return np.stack(out, axis=1) if out else np.zeros((x.shape[0], 0))


# ---------------------------------------------------------------------------------------------
# The symbolic network and its fine-tuning


class _SymbolicLayer(nn.Module):
    """Edges c * f(a x_i + b) + d summed into outputs j; params (E, 4) = (a, b, c, d)."""

    def __init__(self, in_dim: int, out_dim: int, fits: dict[tuple[int, int], Fit]):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        edges = sorted(fits)
        self.names = [fits[e].name for e in edges]
        self.r2 = [fits[e].r2 for e in edges]
        values = [[fits[e].a, fits[e].b, fits[e].c, fits[e].d] for e in edges]
        self.params = nn.Parameter(torch.tensor(values, dtype=torch.float64).reshape(-1, 4))
        train = [free_parameters(name) for name in self.names]
        self.register_buffer("trainable", torch.tensor(train, dtype=torch.bool).reshape(-1, 4))
        self.register_buffer("dst", torch.tensor([j for j, _ in edges], dtype=torch.long))
        self.register_buffer("src", torch.tensor([i for _, i in edges], dtype=torch.long))
        self.groups: dict[str, list[int]] = {}
        for k, name in enumerate(self.names):
            self.groups.setdefault(name, []).append(k)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        p = torch.where(self.trainable, self.params, self.params.detach())  # frozen: no gradient
        out = h.new_zeros(h.shape[0], self.out_dim)
        for name, members in self.groups.items():
            idx = torch.tensor(members, device=h.device)
            a, b, c, d = p[idx].T  # each (E_f,)
            z = a * h[:, self.src[idx]] + b  # (N, E_f)
            out = out.index_add(1, self.dst[idx], c * LIBRARY[name].torch_fn(z) + d)
        return out

    def fits(self) -> dict[tuple[int, int], Fit]:
        edges = zip(self.dst.tolist(), self.src.tolist(), strict=True)
        return {
            (j, i): Fit(name, *(float(v) for v in row), r2)
            for (j, i), name, row, r2 in zip(
                edges, self.names, self.params.tolist(), self.r2, strict=True
            )
        }


class SymbolicKAN(nn.Module):
    """The network in which every surviving edge is ``c * f(a * x + b) + d`` (float64).

    Built from ``layer_dims`` and ``layer_fits`` (as in `compose`); (a, b, c, d) of every edge are
    trainable except those fixed by the canonical form (`free_parameters`). A fit's r2 is carried
    along unchanged (it describes the original edge fit).
    """

    def __init__(self, layer_dims: Sequence[int], layer_fits: Sequence[dict[tuple[int, int], Fit]]):
        super().__init__()
        _check_layer_fits(layer_fits, layer_dims)
        self.layer_dims = [int(d) for d in layer_dims]
        self.layers = nn.ModuleList(
            _SymbolicLayer(d_in, d_out, fits)
            for d_in, d_out, fits in zip(
                self.layer_dims[:-1], self.layer_dims[1:], layer_fits, strict=True
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, n_in) → (N, n_out), float64."""
        h = x.to(torch.float64)
        for layer in self.layers:
            h = layer(h)
        return h

    def fits(self) -> list[dict[tuple[int, int], Fit]]:
        return [layer.fits() for layer in self.layers]


def finetune(
    symbolic_kan: SymbolicKAN, x: torch.Tensor, y: torch.Tensor, steps: int = 200
) -> float:
    """Fit the constants to (x, y) by LBFGS (strong Wolfe) on the MSE; returns the best MSE.

    ``steps``: LBFGS iterations, run in chunks of 10; after each chunk the best parameters so far
    are recorded, and the run ends at the first chunk without improvement. A chunk that ends
    with a non-finite loss or parameters (e.g. a log argument pushed below 0) is undone: the best
    parameters are restored and LBFGS restarts with a 4x smaller step (at most 3 times).
    The best parameters are in the model on return.
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64).reshape(x.shape[0], -1)
    params = [p for p in symbolic_kan.parameters() if p.numel() > 0]

    def mse() -> torch.Tensor:
        return ((symbolic_kan(x) - y) ** 2).mean()

    def lbfgs(lr: float) -> torch.optim.LBFGS:
        return torch.optim.LBFGS(
            params,
            lr=lr,
            max_iter=10,
            history_size=50,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = mse()
        loss.backward()
        return loss

    with torch.no_grad():
        best = float(mse())
    best_state = [p.detach().clone() for p in params]
    lr, failures = 1.0, 0
    optimizer = lbfgs(lr)
    for _ in range(math.ceil(steps / 10) if params and math.isfinite(best) else 0):
        optimizer.step(closure)
        with torch.no_grad():
            loss = float(mse())
        if not (math.isfinite(loss) and all(torch.isfinite(p).all() for p in params)):
            failures += 1
            if failures == 3:
                break
            with torch.no_grad():
                for p, saved in zip(params, best_state, strict=True):
                    p.copy_(saved)
            lr /= 4
            optimizer = lbfgs(lr)
            continue
        if not loss < best * (1 - 1e-9):
            break
        best, best_state = loss, [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, saved in zip(params, best_state, strict=True):
            p.copy_(saved)
    return best


# ---------------------------------------------------------------------------------------------
# The whole pipeline


@dataclass
class SymbolicResult:
    """What `symbolify` found.

    formulas / latex / exprs: one per output (empty unless ok). layer_fits: per layer
    {(j, i): Fit}, fine-tuned when ok, else the edge fits (below-threshold edges: their best
    candidate). edge_r2: per layer {(j, i): R^2 of the edge fit to its spline}. unfit_edges:
    (layer, j, i) of the edges with no fit reaching the threshold. rmse: of the formulas on the
    (x, y) given (None unless ok).
    """

    formulas: list[str]
    latex: list[str]
    exprs: list[sympy.Expr]
    layer_fits: list[dict[tuple[int, int], Fit]]
    edge_r2: list[dict[tuple[int, int], float]]
    unfit_edges: list[tuple[int, int, int]] = field(default_factory=list)
    ok: bool = False
    rmse: float | None = None


def _model_input(model, x) -> torch.Tensor:
    reference = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    if reference is None:
        return torch.as_tensor(x, dtype=torch.float64)
    return torch.as_tensor(x).to(dtype=reference.dtype, device=reference.device)


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def symbolify(
    model,
    x,
    y,
    library: Sequence[str] | None = None,
    r2_threshold: float = 0.99,
    finetune_steps: int = 200,
) -> SymbolicResult:
    """Symbolic formulas for a trained KAN: fit every unmasked edge on the samples x, then
    (when every edge has a fit) fine-tune the symbolic network on (x, y), compose and simplify.

    ``model`` needs ``layer_dims``, ``layers`` (each with ``mask (out, in)`` and
    ``edge_activations(x_in) -> (N, out, in)``) and ``layer_inputs(x)``, as SimpleKAN has.
    x: (N, n_in), y: (N, n_out), arrays or tensors.

    Two choices of edge functions are tried. First the simplest one on every edge that reaches
    R^2 >= min(r2_threshold, SIMPLEST_R2) (``select_fit(..., relative=math.inf)``): a spline only
    approximates its function, and layers can trade curvature (x1 * x2 learnt as cos of sums
    of tan-like edges instead of squares of sums of linear ones), so a more flexible candidate
    can fit an edge better while the simple one is the law; the joint fine-tuning settles it.
    That formula is kept when it fits (x, y) as well as the network does (RMSE at most 10 %
    plus 1e-6 of y's spread above the network's). Otherwise the per-edge choice of `select_fit`
    is fine-tuned too, and the one of the two with the smaller RMSE is returned.
    When the rounded formulas fit (x, y) worse than their fine-tuned symbolic network (same
    margin), the plain composition (no rounding, no simplification) is used instead.
    """
    names = _library_names(library)
    xt = _model_input(model, x)
    n_out = model.layer_dims[-1]
    if xt.ndim != 2 or xt.shape[1] != model.layer_dims[0]:
        raise ValueError(f"x must be (N, {model.layer_dims[0]}), got shape {tuple(xt.shape)}")
    if _as_array(y).size != xt.shape[0] * n_out:
        raise ValueError(f"y must be (N, {n_out}) with N = {xt.shape[0]}, got {_as_array(y).shape}")
    with torch.no_grad():
        inputs = model.layer_inputs(xt)
        activations = [
            layer.edge_activations(h) for layer, h in zip(model.layers, inputs, strict=True)
        ]
    chosen_fits: list[dict[tuple[int, int], Fit]] = []
    simplest_fits: list[dict[tuple[int, int], Fit]] = []
    unfit: list[tuple[int, int, int]] = []
    for index, (layer, h, phi) in enumerate(zip(model.layers, inputs, activations, strict=True)):
        h = h.detach().cpu().double().numpy()  # (N, in)
        phi = phi.detach().cpu().double().numpy()  # (N, out, in)
        fits, simplest = {}, {}
        for j, i in np.argwhere(layer.mask.detach().cpu().numpy() > 0).tolist():
            candidates = fit_candidates(h[:, i], phi[:, j, i], names)
            chosen = select_fit(candidates, r2_threshold)
            if chosen is None:
                unfit.append((index, j, i))
                fits[(j, i)] = max(candidates.values(), key=lambda fit: fit.r2)
                continue
            fits[(j, i)] = snap(chosen, h[:, i], phi[:, j, i])
            simple = select_fit(candidates, min(r2_threshold, SIMPLEST_R2), relative=math.inf)
            same = simple.name == chosen.name
            simplest[(j, i)] = fits[(j, i)] if same else snap(simple, h[:, i], phi[:, j, i])
        chosen_fits.append(fits)
        simplest_fits.append(simplest)
    if unfit:
        edge_r2 = [{edge: fit.r2 for edge, fit in fits.items()} for fits in chosen_fits]
        return SymbolicResult([], [], [], chosen_fits, edge_r2, unfit, ok=False)

    x64 = torch.as_tensor(_as_array(xt))
    y64 = torch.as_tensor(_as_array(y)).reshape(x64.shape[0], -1)
    target = y64.numpy()
    network = activations[-1].sum(dim=2).detach().cpu().double().numpy()  # the model's output
    margin = 1e-6 * float(np.ptp(target))
    tries = [_formulas(model.layer_dims, simplest_fits, x64, y64, finetune_steps, margin)]
    if simplest_fits != chosen_fits and tries[0][3] > 1.1 * _rmse(network, target) + margin:
        tries.append(_formulas(model.layer_dims, chosen_fits, x64, y64, finetune_steps, margin))
    layer_fits, tuned, exprs, rmse = min(tries, key=lambda result: result[3])
    edge_r2 = [{edge: fit.r2 for edge, fit in fits.items()} for fits in layer_fits]
    formulas, latex = formula_strings(exprs)
    return SymbolicResult(formulas, latex, exprs, tuned, edge_r2, [], True, rmse)


def _formulas(layer_dims, layer_fits, x64, y64, finetune_steps, margin):
    """Fine-tune the symbolic network of ``layer_fits`` on (x64, y64) and compose it (rounded
    and simplified unless that costs accuracy, see `symbolify`).

    Returns (layer_fits, fine-tuned fits, expressions, RMSE of the expressions on (x64, y64)).
    """
    sym = SymbolicKAN(layer_dims, layer_fits)
    finetune(sym, x64, y64, finetune_steps)
    tuned = sym.fits()
    target = y64.numpy()
    with torch.no_grad():
        network_rmse = _rmse(sym(x64).numpy(), target)
    exprs = compose(tuned, layer_dims)
    rmse = _rmse(evaluate_formula(exprs, x64.numpy()), target)
    if not rmse <= 1.1 * network_rmse + margin:
        exprs = compose(tuned, layer_dims, simplify=False)
        rmse = _rmse(evaluate_formula(exprs, x64.numpy()), target)
    return layer_fits, tuned, exprs, rmse
