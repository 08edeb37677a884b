"""Fitting one 1-D function ``y ~ c * f(a * x + b) + d`` with f from `LIBRARY` (symbolic_library.py;
Liu et al. 2024, section 2.5: the per-edge step of symbolification; the network level is in
symbolic.py), or the composed ``c * f(a * (x + origin)^p + b) + d`` for p in INNER_POWERS.

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
- A composed form is the plain fit of f to the samples of u = (x + origin)^p: everything above
  holds with u in the place of x. Only physical variables (a network's inputs) get them.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import sympy

from arrays import to_numpy
from symbolic_library import (
    LIBRARY,
    LibraryEntry,
    derivative,
    free_parameters,
    library_entry,
    library_names,
)

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
# Fitting one function


_FIT_FIELDS = ("a", "b", "c", "d", "r2")

# Compositions on one edge: ``c * f(a * x^p + b) + d`` for these inner powers p (1 - v^2 under a
# root, exp(-a / T), 1 / (1 + a x^2)), tried beside the plain functions; the composed form costs
# INNER_COMPLEXITY more than its f, so it is chosen only where no plain function fits as well.
INNER_POWERS = (2, -1)
INNER_COMPLEXITY = 2
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
    inner: int = 1  # p of c * f(a * (x + origin)^p + b) + d (INNER_POWERS); 1: plain f
    origin: float = 0.0  # where the edge's variable is 0 in the data's units (composed forms)

    @property
    def complexity(self) -> int:
        """The cost `select_fit` weighs: f's, plus INNER_COMPLEXITY for a composed form."""
        return LIBRARY[self.name].complexity + (0 if self.inner == 1 else INNER_COMPLEXITY)

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """The fitted function at x (any shape); inf or nan where f is not defined."""
        with np.errstate(all="ignore"):
            u = _inner_values(np.asarray(x, dtype=np.float64) + self.origin, self.inner)
            return self.c * LIBRARY[self.name].numpy_fn(self.a * u + self.b) + self.d

    def expr(self, v: sympy.Expr) -> sympy.Expr:
        c, a, b, d = (sympy.Float(p) for p in (self.c, self.a, self.b, self.d))
        if self.inner != 1:
            v = (v + sympy.Float(self.origin)) ** sympy.Integer(self.inner)
        return c * LIBRARY[self.name].sympy_fn(a * v + b) + d

    def label(self) -> str:
        """``c f(a x + b) + d`` in short form, e.g. ``0.98 sin(1.57x+0.2) +0.01``."""
        if self.name == "0":
            return f"{self.d:.3g}"
        scale = {1.0: "", -1.0: "-"}.get(self.a, f"{self.a:.3g}")
        variable = {1: "x", 2: "x²", -1: "/x"}.get(self.inner, f"x^{self.inner}")
        if self.inner != 1 and self.origin:
            variable = variable.replace("x", f"(x{self.origin:+.3g})")
        inner = f"{scale}{variable}" + (f"{self.b:+.3g}" if self.b else "")
        if self.name in _POWER_SUFFIXES:
            core = f"({inner}){_POWER_SUFFIXES[self.name]}"
        elif self.name == "1/x":
            core = f"/({inner})"
        else:
            core = f" {self.name}({inner})"
        return f"{self.c:.3g}{core}" + (f" {self.d:+.3g}" if self.d else "")

    def to_dict(self) -> dict:
        """``{"function": name, "a", "b", "c", "d", "r2"}`` and, for a composed form,
        ``"inner"`` and ``"origin"`` (the form symbolic.json holds)."""
        document = {"function": self.name, **{key: getattr(self, key) for key in _FIT_FIELDS}}
        composed = {"inner": self.inner, "origin": self.origin} if self.inner != 1 else {}
        return document | composed

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
        inner = document.get("inner", 1)
        if inner != 1 and inner not in INNER_POWERS:
            raise ValueError(
                f"fit {name!r}: inner must be 1 or one of {INNER_POWERS}, got {inner!r}"
            )
        origin = document.get("origin", 0.0)
        if isinstance(origin, bool) or not isinstance(origin, int | float):
            raise ValueError(f"fit {name!r}: origin must be a number, got {origin!r}")
        return cls(name, *values, int(inner), float(origin))


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


def _inner_values(x: np.ndarray, p: int) -> np.ndarray:
    """x^p (x itself for p = 1)."""
    return x if p == 1 else x ** float(p)


def _inner_admissible(x: np.ndarray, p: int) -> bool:
    """Whether x^p is defined on the whole range of x (a negative p: 0 not in [min x, max x])."""
    return p > 0 or float(x.min()) > 0 or float(x.max()) < 0


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
            fp = derivative(entry.name)(z)
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


def fit_candidates(
    x, y, library: Sequence[str] | None = None, origin: float | None = 0.0
) -> dict[str, Fit]:
    """`fit_function` for every name in ``library`` (default: all of LIBRARY), and the composed
    forms ``c * f(a * (x + origin)^p + b) + d`` of the searched ones (not "0" or "x") for p in
    INNER_POWERS where the power is defined on the samples' range, keyed ``"f(x^p)"``.
    ``origin``: where the variable is 0 in the data's units (x is a standardised input,
    units.py), so that the powers are those of the physical variable; None: x is no physical
    variable (a hidden node's value), and no composed form is tried.

    Constant y (or constant x) gives only the "0" fit: {"0": Fit("0", 0, 0, 0, mean, r2)}.
    """
    names = library_names(library)
    x, y = _thin(*_as_samples(x, y), FIT_SAMPLES)
    if _is_constant(y) or _is_constant(x):
        return {"0": _constant_fit(y)}
    found = {name: _fit_samples(LIBRARY[name], x, y) for name in names}
    for p in INNER_POWERS if origin is not None else ():
        shifted = x + origin
        u = _inner_values(shifted, p) if _inner_admissible(shifted, p) else None
        if u is None or _is_constant(u):
            continue
        for name in names:
            if LIBRARY[name].fixed_ab is None:
                fit = _fit_samples(LIBRARY[name], u, y)
                found[f"{name}(x^{p})"] = replace(fit, inner=p, origin=float(origin))
    return found


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
        key=lambda fit: (fit.complexity, max(1.0 - fit.r2, 1e-13), abs(fit.b)),
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
    x = _inner_values(x + fit.origin, fit.inner)  # a composed form snaps as f of (x + origin)^p
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
    return Fit(fit.name, *(float(v) for v in p), 1.0 - p_sse / sst, fit.inner, fit.origin)


def fit_edge(
    x,
    y,
    library: Sequence[str] | None = None,
    r2_threshold: float = 0.99,
    origin: float | None = 0.0,
) -> EdgeFit | None:
    """Fit every library function to one edge's samples, choose one (`select_fit`) and snap it.

    None when no function reaches r2_threshold: the edge keeps its spline. ``origin``: see
    `fit_candidates`.
    """
    candidates = fit_candidates(x, y, library, origin)
    chosen = select_fit(candidates, r2_threshold)
    if chosen is None:
        return None
    return EdgeFit(snap(chosen, x, y), candidates)
