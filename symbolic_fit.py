"""Fitting one 1-D function ``y ~ c * f(a * x + b) + d`` with f from `LIBRARY` (Liu et al. 2024,
section 2.5: the per-edge step of symbolification; the network level is in symbolic.py).

`fit_function` fits one library function: a coarse (a, b) grid with (c, d) solved in closed form
at all grid points at once, then Levenberg–Marquardt on (a, b) from the best few grid points with
(c, d) re-solved linearly at every step (variable projection). `fit_candidates` fits every
function of the library, `select_fit` chooses one and `snap` moves its constants to nice values;
`fit_edge` does all three for one edge's samples.

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
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import numpy as np
import sympy
import torch

from arrays import to_numpy

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

# Snapping (`snap`): values tried, how far they may be, how much R^2 may drop.
SNAP_DENOMINATOR = 2  # integers and halves, and the same multiples of pi
SNAP_RADIUS = 0.05  # a nice value is tried when within 5% (relative, at least 0.05 absolute)
SNAP_R2_DROP = 1e-5


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


def _within_one(lo, hi):
    return (lo >= -1) & (hi <= 1)


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


def _fractional_power(p: Fraction) -> "LibraryEntry":
    """z^p for a non-integer p (``x^0.25``, ``x^-1.5``, ...): defined for z >= 0 (p > 0) or
    z > 0 (p < 0), complexity 4, exact rational exponent in sympy."""
    value = float(p)
    return LibraryEntry(
        f"x^{value:g}",
        lambda z: z**value,
        lambda z: z**value,
        lambda z: z ** sympy.Rational(p.numerator, p.denominator),
        4,
        _nonnegative if value > 0 else _positive,
        scaling="power",
        power=value,
    )


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
        "x^-2",
        lambda z: z**-2,
        lambda z: z**-2.0,
        lambda z: z**-2,
        3,
        _without_zero,
        parity=1,
        scaling="power",
        power=-2,
    ),
    LibraryEntry(
        "sqrt", torch.sqrt, np.sqrt, sympy.sqrt, 3, _nonnegative, scaling="power", power=0.5
    ),
    LibraryEntry(
        "x^-0.5",
        torch.rsqrt,
        lambda z: 1 / np.sqrt(z),
        lambda z: 1 / sympy.sqrt(z),
        3,
        _positive,
        scaling="power",
        power=-0.5,
    ),
    *(_fractional_power(Fraction(n, d)) for n, d in ((1, 4), (-1, 4), (3, 2), (-3, 2))),
    LibraryEntry("abs", torch.abs, np.abs, sympy.Abs, 3, parity=1, scaling="power", power=1),
    LibraryEntry("exp", torch.exp, np.exp, sympy.exp, 3, scaling="exp"),
    LibraryEntry("log", torch.log, np.log, sympy.log, 3, _positive, scaling="log"),
    LibraryEntry("sin", torch.sin, np.sin, sympy.sin, 3, parity=-1, period=2 * math.pi),
    LibraryEntry("cos", torch.cos, np.cos, sympy.cos, 3, parity=1, period=2 * math.pi),
    LibraryEntry(
        "tan", torch.tan, np.tan, sympy.tan, 4, _one_tan_branch, parity=-1, period=math.pi
    ),
    LibraryEntry("tanh", torch.tanh, np.tanh, sympy.tanh, 4, parity=-1),
    LibraryEntry("arcsin", torch.asin, np.arcsin, sympy.asin, 4, _within_one, parity=-1),
    LibraryEntry("arctan", torch.atan, np.arctan, sympy.atan, 4, parity=-1),
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


def library_entry(name: str) -> LibraryEntry:
    """LIBRARY[name]; an unknown name is a ValueError listing the known ones."""
    if name not in LIBRARY:
        raise ValueError(f"unknown library function {name!r}; known: {', '.join(LIBRARY)}")
    return LIBRARY[name]


def library_names(library: Sequence[str] | None) -> list[str]:
    """The names of ``library`` (None: all of LIBRARY), each checked to be known."""
    names = list(LIBRARY) if library is None else list(library)
    for name in names:
        library_entry(name)
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
    entry = library_entry(name)
    if entry.fixed_ab is not None:
        return (False, False, True, True)
    return (entry.scaling not in ("power", "log"), entry.scaling != "exp", True, True)


# ---------------------------------------------------------------------------------------------
# Fitting one function


_FIT_FIELDS = ("a", "b", "c", "d", "r2")
_POWER_SUFFIXES = {"x": "", "x^2": "²", "x^3": "³", "x^4": "⁴", "x^-2": "⁻²", "x^-0.5": "^-0.5"}
_POWER_SUFFIXES |= {"x^1.5": "^1.5", "x^-1.5": "^-1.5", "x^0.25": "^0.25", "x^-0.25": "^-0.25"}


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
        """The fitted function at x (any shape); inf or nan where f is not defined."""
        with np.errstate(all="ignore"):
            return self.c * LIBRARY[self.name].numpy_fn(self.a * np.asarray(x) + self.b) + self.d

    def expr(self, v: sympy.Expr) -> sympy.Expr:
        c, a, b, d = (sympy.Float(p) for p in (self.c, self.a, self.b, self.d))
        return c * LIBRARY[self.name].sympy_fn(a * v + b) + d

    def label(self) -> str:
        """``c f(a x + b) + d`` in short form, e.g. ``0.98 sin(1.57x+0.2) +0.01``."""
        if self.name == "0":
            return f"{self.d:.3g}"
        scale = {1.0: "", -1.0: "-"}.get(self.a, f"{self.a:.3g}")
        inner = f"{scale}x" + (f"{self.b:+.3g}" if self.b else "")
        if self.name in _POWER_SUFFIXES:
            core = f"({inner}){_POWER_SUFFIXES[self.name]}"
        elif self.name == "1/x":
            core = f"/({inner})"
        else:
            core = f" {self.name}({inner})"
        return f"{self.c:.3g}{core}" + (f" {self.d:+.3g}" if self.d else "")

    def to_dict(self) -> dict:
        """``{"function": name, "a", "b", "c", "d", "r2"}`` (the form symbolic.json holds)."""
        return {"function": self.name, **{key: getattr(self, key) for key in _FIT_FIELDS}}

    @classmethod
    def from_dict(cls, document: dict) -> "Fit":
        """The inverse of `to_dict`; a missing key, a non-number or an unknown function is a
        ValueError."""
        if not isinstance(document, dict):
            raise ValueError(f"a fit must be an object, got {document!r}")
        name = document.get("function")
        if not isinstance(name, str):
            raise ValueError(f"a fit needs a function name, got {name!r}")
        library_entry(name)
        values = []
        for key in _FIT_FIELDS:
            value = document.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"fit {name!r}: {key} must be a number, got {value!r}")
            values.append(float(value))
        return cls(name, *values)


@dataclass(frozen=True)
class EdgeFit:
    """The function chosen for one edge (snapped) and every candidate's fit (unsnapped)."""

    fit: Fit
    candidates: dict[str, Fit]


def _as_samples(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = to_numpy(x).ravel(), to_numpy(y).ravel()
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
    entry = library_entry(name)
    x, y = _thin(*_as_samples(x, y), FIT_SAMPLES)
    if _is_constant(y) or _is_constant(x):
        return _constant_fit(y)
    return _fit_samples(entry, x, y)


def fit_candidates(x, y, library: Sequence[str] | None = None) -> dict[str, Fit]:
    """`fit_function` for every name in ``library`` (default: all of LIBRARY).

    Constant y (or constant x) gives only the "0" fit: {"0": Fit("0", 0, 0, 0, mean, r2)}.
    """
    names = library_names(library)
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
    entry = library_entry(fit.name)
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
