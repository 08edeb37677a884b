"""What every figure of a run shares: the matplotlib style, the colours, value limits, and the
thinning of samples before they are plotted."""

import math

import numpy as np

PLOT_POINTS = 2000  # at most this many samples feed the plots (evenly strided)

STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
COLORS = {
    "train": "#1f77b4",
    "val": "#2ca02c",
    "test": "#d62728",
    "curve": "#1f4e8c",
    "symbolic": "#e8710a",
    "target": "#333333",
    "model": "#1f77b4",
    "error": "#d62728",
    "hist": "#cdd6e0",
    "outside": "#ececec",
    "knot": "#555555",
    "pruned": "#b8b8b8",
    "refine": "#7f7f7f",
    "prune": "#b35c00",
    "prune_finetune": "#fdebd6",
    "symbolic_finetune": "#ece3f8",
}


def thin_rows(x, limit: int = PLOT_POINTS):
    """At most ``limit`` rows of x (array or tensor), evenly strided (deterministic)."""
    return x if len(x) <= limit else x[:: math.ceil(len(x) / limit)]


def limits(values: np.ndarray, pad: float = 0.08) -> tuple[float, float]:
    """Padded (lo, hi) of the finite values; a flat curve gets a small symmetric range."""
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if hi - lo <= 1e-9 * max(1.0, abs(lo), abs(hi)):
        half = max(0.1 * abs(lo), 1e-3)
        lo, hi = lo - half, hi + half
    span = hi - lo
    return lo - pad * span, hi + pad * span
