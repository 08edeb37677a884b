"""The library of one-variable functions f that symbolification fits as ``c * f(a * x + b) + d``
(symbolic_fit.py): each function with its torch, numpy and sympy forms, its complexity, its
domain and the symmetries that give a fit its canonical form."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import numpy as np
import sympy
import torch


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
def derivative(name: str) -> Callable[[np.ndarray], np.ndarray]:
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
