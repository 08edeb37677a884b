"""Figures of a trained KAN and its run, in the style of the KAN paper (Liu et al.,
arXiv 2404.19756: a network drawn with every edge's learned 1-D function on it).

Files written into a run folder by `plot_all` (or from a saved run alone by `plot_run`, also
``python plots.py RUN_DIR``):

- ``mse_loss_plot.pdf``: train / validation / test RMSE per step (log scale), grid refinements
  (dashed, labelled with the new grid size), grid-range updates, pruning, fine-tune phases.
- ``layer_<n>_activations.pdf``, n = 1 .. L (1-based: ``layer_1`` is the layer fed by x1..xn):
  one panel per edge i → j (rows: outputs j, columns: inputs i, at most 8 × 8 panels a page),
  phi_ji on its real knot vector over the range of the data reaching input i, widened by 10 %
  each side. Knots are ticks on the top edge, the data a histogram at the bottom, the shaded
  ends lie outside the base interval (where the spline continues linearly), pruned edges are
  grey, symbolic fits dashed orange with their formula. The panel title gives the edge's
  attribution score (`SimpleKAN.edge_scores`, the score pruning compares with its threshold).
- ``3d_comparison_with_info.pdf``: target vs model (surfaces for 2 inputs, curves for 1, slices
  through the two most important inputs for more, predicted-vs-true for data files) with an
  info box; one page per output.
- ``network_diagram.pdf``: nodes per layer (inputs x1..xn at the bottom, outputs y1..ym at the
  top), a small plot of each edge's function on the edge, edge opacity tanh(3 * score / max
  score of its layer); pruned edges hidden, symbolic edges coloured and named.

Node names: inputs ``x1..xn``, outputs ``y1..ym``, node j of hidden level l ``h<l>.<j>``.
Panels and insets are drawn into one Axes per page in inch coordinates: a real Axes per edge
costs ~60 ms, this way all plots of a [2, 4, 8, 4, 1] network take about 3 s on two cores. No
pyplot: figures are plain `Figure` objects, so nothing global is opened or left to close, and
every file is written atomically. Layers wider than `MAX_GRID` inputs or outputs show their most
important ones (by attribution).
"""

import argparse
import math
import sys
import textwrap
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

import fileio
import simple_kan
import targets
from errors import UserError

LOSS_FILE = "mse_loss_plot.pdf"
ACTIVATIONS_FILE = "layer_{n}_activations.pdf"  # n = 1 .. number of layers
COMPARISON_FILE = "3d_comparison_with_info.pdf"
NETWORK_FILE = "network_diagram.pdf"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
SAMPLES_FILE = "samples.npz"
SYMBOLIC_FILE = "symbolic.json"

MAX_PANELS = 8  # rows and columns of edge panels per page
MAX_GRID = 32  # a wider layer shows its MAX_GRID most important inputs and outputs
# Activation pages: one panel and the gaps between panels, in inches
PANEL_W, PANEL_H, GAP_X, GAP_Y = 1.6, 1.05, 0.52, 0.5
PAGE_LEFT, PAGE_TOP, PAGE_BOTTOM, PAGE_MIN_WIDTH = 0.6, 1.15, 0.45, 6.8
TICK = 0.04
CURVE_POINTS = 200  # samples of every plotted activation
MARGIN = 0.1  # the sweep extends this fraction of the data range beyond each end
HIST_BINS = 30
BETA = 3.0  # edge opacity tanh(BETA * score / max score of the layer), as in the paper
MIN_ALPHA = 0.03  # live edges stay faintly visible
PLOT_POINTS = 2000  # at most this many samples feed the plots (evenly strided)
RASTER_DPI = 200  # of the rasterized parts of a PDF page (3-D surfaces)
FORMULA_LINES = 5  # lines of each output's formula shown above the network diagram

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
FUNCTION_COLORS = ("#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
PHASE_LABELS = {"prune_finetune": "prune fine-tune", "symbolic_finetune": "symbolic fine-tune"}
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
PDF_METADATA = {"Creator": "pykan_mit", "CreationDate": None}


class PlotWarning(RuntimeWarning):
    """A plot that could not be drawn; the run goes on without it."""


# ---------------------------------------------------------------------------------------------
# Model evaluation


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _like(x, ref: torch.Tensor) -> torch.Tensor:
    """x (array or tensor) as a tensor with ref's dtype and device."""
    return (x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))).to(ref)


def _model_tensor(model, x) -> torch.Tensor:
    return _like(x, model.layers[0].knots)


def _array(x) -> np.ndarray:
    """A float64 numpy copy of an array or (any device's) tensor."""
    return _np(x) if torch.is_tensor(x) else np.asarray(x, dtype=float)


def _thin(x, limit: int = PLOT_POINTS):
    """At most ``limit`` rows of x, evenly strided (deterministic)."""
    return x if len(x) <= limit else x[:: math.ceil(len(x) / limit)]


@torch.no_grad()
def _predict(model, x: np.ndarray) -> np.ndarray:
    """(N, n_in) → (N, n_out) model output, float64."""
    return _np(model(_model_tensor(model, x)))


@torch.no_grad()
def activation_curves(layer, x_in, num: int = CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Every edge's function on a sweep of its input: ``xs (num, in)``, ``ys (num, out, in)``.

    Column i of xs runs evenly over the range of ``x_in[:, i]`` (the samples entering the layer,
    ``(N, in)``) widened by `MARGIN` of that range at each end (a constant input gets its base
    interval). ``ys[:, j, i] = phi_ji(xs[:, i])`` is ``layer.edge_activations(xs)[:, j, i]``: edge
    (j, i) depends on input i only, so one sweep of all inputs together gives every edge.
    """
    x_in = _like(x_in, layer.knots)
    lo, hi = x_in.amin(dim=0), x_in.amax(dim=0)
    span = hi - lo
    flat = span <= 1e-9 * (1 + torch.maximum(lo.abs(), hi.abs()))
    base = layer.grid_range()
    lo = torch.where(flat, torch.minimum(lo, base[:, 0]), lo - MARGIN * span)
    hi = torch.where(flat, torch.maximum(hi, base[:, 1]), hi + MARGIN * span)
    u = torch.linspace(0, 1, num, dtype=lo.dtype, device=lo.device)
    xs = lo + u[:, None] * (hi - lo)  # (num, in)
    return _np(xs), _np(layer.edge_activations(xs))


def activation_curve(layer, x_in, j: int, i: int, num: int = CURVE_POINTS):
    """``(xs, ys)``, both (num,): edge i → j of ``layer`` exactly as plotted (see
    `activation_curves`)."""
    xs, ys = activation_curves(layer, x_in, num)
    return xs[:, i], ys[:, j, i]


# ---------------------------------------------------------------------------------------------
# Symbolic fits (symbolic.json): edge (j, i) of layer l is c * f(a * x + b) + d


@cache
def _library_function(name: str):
    """The numpy function of a symbolic library entry, or None when there is none to use."""
    try:
        import symbolic
    except Exception:  # the symbolic module is optional for plotting
        return None
    entry = getattr(symbolic, "LIBRARY", {}).get(name)
    fn = getattr(entry, "numpy_fn", entry)
    return fn if callable(fn) else None


def _symbolic_edges(symbolic: dict | None) -> dict[tuple[int, int, int], dict]:
    """{(layer, out, in): edge fit} from a symbolic.json document (empty when absent)."""
    if not symbolic:
        return {}
    return {(int(e["layer"]), int(e["out"]), int(e["in"])): e for e in symbolic.get("edges", [])}


def _fit_params(edge: dict) -> tuple[float, float, float, float]:
    return tuple(float(edge.get(key, v)) for key, v in (("a", 1), ("b", 0), ("c", 1), ("d", 0)))


def _fit_label(edge: dict) -> str:
    """``c f(a x + b) + d`` in short form, e.g. ``0.98 sin(1.57x+0.2) +0.01``."""
    name = str(edge["function"])
    a, b, c, d = _fit_params(edge)
    if name == "0":
        return f"{d:.3g}"
    scale = {1.0: "", -1.0: "-"}.get(a, f"{a:.3g}")
    inner = f"{scale}x" + (f"{b:+.3g}" if b else "")
    powers = {"x": "", "x^2": "²", "x^3": "³", "x^4": "⁴"}
    if name in powers:
        core = f"({inner}){powers[name]}"
    elif name == "1/x":
        core = f"/({inner})"
    else:
        core = f" {name}({inner})"
    return f"{c:.3g}{core}" + (f" {d:+.3g}" if d else "")


def _fit_values(edge: dict, xs: np.ndarray) -> np.ndarray | None:
    fn = _library_function(str(edge["function"]))
    if fn is None:
        return None
    a, b, c, d = _fit_params(edge)
    with np.errstate(all="ignore"):
        ys = c * np.asarray(fn(a * xs + b), dtype=float) + d
    return np.where(np.isfinite(ys), ys, np.nan)


# ---------------------------------------------------------------------------------------------
# Per-layer data shared by the activation pages and the network diagram


def node_name(level: int, index: int, dims: list[int]) -> str:
    if level == 0:
        return f"x{index + 1}"
    if level == len(dims) - 1:
        return f"y{index + 1}"
    return f"h{level}.{index + 1}"


@dataclass
class SymbolicCurve:
    """A symbolic edge fit: its library function, formula text and values on the sweep (None
    when the function is not available to evaluate)."""

    function: str
    label: str
    ys: np.ndarray | None
    r2: float | None = None


@dataclass
class LayerCurves:
    """What is drawn for one layer. Shapes: xs (num, in), ys (num, out, in), knots (in, M),
    base (in, 2), hist (in, HIST_BINS) in [0, 1], hist_edges (in, HIST_BINS + 1), score and
    mask (out, in); fits {(j, i): SymbolicCurve} of the edges with a symbolic fit."""

    index: int
    degree: int
    grid_size: int
    xs: np.ndarray
    ys: np.ndarray
    knots: np.ndarray
    base: np.ndarray
    hist: np.ndarray
    hist_edges: np.ndarray
    score: np.ndarray
    mask: np.ndarray
    fits: dict
    inputs: list[str]
    outputs: list[str]


@torch.no_grad()
def layer_curves(model, x, symbolic: dict | None = None) -> list[LayerCurves]:
    """The data of every layer's plots, from the model inputs x (N, n_in)."""
    xt = _model_tensor(model, _thin(x))
    inputs = model.layer_inputs(xt)
    scores = model.edge_scores(xt)[0]
    sym = _symbolic_edges(symbolic)
    dims = model.layer_dims
    result = []
    for index, (layer, x_in, score) in enumerate(zip(model.layers, inputs, scores)):
        xs, ys = activation_curves(layer, x_in)
        data = _np(x_in)
        hist = np.empty((layer.in_dim, HIST_BINS))
        edges = np.empty((layer.in_dim, HIST_BINS + 1))
        for i in range(layer.in_dim):
            counts, edges[i] = np.histogram(data[:, i], HIST_BINS, range=(xs[0, i], xs[-1, i]))
            hist[i] = counts / max(counts.max(), 1)
        fits = {
            (j, i): SymbolicCurve(
                str(e["function"]), _fit_label(e), _fit_values(e, xs[:, i]), e.get("r2")
            )
            for (l, j, i), e in sym.items()
            if l == index and j < layer.out_dim and i < layer.in_dim
        }
        result.append(
            LayerCurves(
                index=index,
                degree=layer.degree,
                grid_size=layer.grid_size,
                xs=xs,
                ys=ys,
                knots=_np(layer.knots),
                base=_np(layer.grid_range()),
                hist=hist,
                hist_edges=edges,
                score=_np(score),
                mask=_np(layer.mask),
                fits=fits,
                inputs=[node_name(index, i, dims) for i in range(layer.in_dim)],
                outputs=[node_name(index + 1, j, dims) for j in range(layer.out_dim)],
            )
        )
    return result


# ---------------------------------------------------------------------------------------------
# Drawing in inches: one Axes spanning the figure, primitives gathered into a few collections


class _Sheet:
    def __init__(self, width: float, height: float):
        self.width, self.height = width, height
        self.fig = Figure(figsize=(width, height))
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_xlim(0, width)
        self.ax.set_ylim(0, height)
        self.ax.set_axis_off()
        self._lines = defaultdict(lambda: ([], []))  # (width, style, zorder) -> (xy, colors)
        self._polys = defaultdict(lambda: ([], [], []))  # (width, zorder) -> (xy, face, edge)

    def line(self, xy, color, lw: float = 1.0, ls: str = "-", z: float = 2) -> None:
        segments, colors = self._lines[(lw, ls, z)]
        segments.append(np.asarray(xy, dtype=float))
        colors.append(matplotlib.colors.to_rgba(color) if isinstance(color, str) else color)

    def poly(self, xy, face, edge="none", lw: float = 0.0, z: float = 1) -> None:
        polys, faces, edges = self._polys[(lw, z)]
        polys.append(np.asarray(xy, dtype=float))
        faces.append(face)
        edges.append(edge)

    def rect(self, x0, y0, w, h, face, edge="none", lw: float = 0.0, z: float = 1) -> None:
        self.poly([(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)], face, edge, lw, z)

    def text(self, x, y, s, size=7, **kwargs):
        return self.ax.text(x, y, s, fontsize=size, **kwargs)

    def finish(self) -> Figure:
        for (lw, ls, z), (segments, colors) in self._lines.items():
            self.ax.add_collection(
                LineCollection(segments, colors=colors, linewidths=lw, linestyles=ls, zorder=z)
            )
        for (lw, z), (polys, faces, edges) in self._polys.items():
            self.ax.add_collection(
                PolyCollection(polys, facecolors=faces, edgecolors=edges, linewidths=lw, zorder=z)
            )
        return self.fig


def _limits(values: np.ndarray, pad: float = 0.08) -> tuple[float, float]:
    """Padded (lo, hi) of the finite values; a flat curve gets a small symmetric range."""
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if hi - lo <= 1e-9 * max(1.0, abs(lo), abs(hi)):
        half = max(0.1 * abs(lo), 1e-3)
        lo, hi = lo - half, hi + half
    span = hi - lo
    return lo - pad * span, hi + pad * span


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _tick_text(v: float) -> str:
    return f"{v + 0.0:.3g}"


class _Box:
    """A panel at (x0, y0) of size (w, h) inches, showing data limits xlim × ylim."""

    def __init__(self, x0, y0, w, h, xlim, ylim):
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.xlim, self.ylim = xlim, ylim

    def X(self, x):
        return self.x0 + (np.asarray(x) - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * self.w

    def Y(self, y):
        y = np.asarray(y, dtype=float)
        inside = (y >= self.ylim[0]) & (y <= self.ylim[1])
        scaled = self.y0 + (y - self.ylim[0]) / (self.ylim[1] - self.ylim[0]) * self.h
        return np.where(inside, scaled, np.nan)  # off-panel points break the line

    def curve(self, x, y) -> np.ndarray:
        return np.column_stack([self.X(x), self.Y(y)])


def _draw_panel(sheet: _Sheet, c: LayerCurves, j: int, i: int, x0, y0, bottom_row: bool) -> None:
    """Edge i → j at (x0, y0): frame, outside-base shading, knots, data histogram, zero line,
    learned curve, symbolic overlay, ticks and title."""
    w, h = PANEL_W, PANEL_H
    xlim = (c.xs[0, i], c.xs[-1, i])
    box = _Box(x0, y0, w, h, xlim, _limits(c.ys[:, j, i]))
    x_ticks = [t for t in MaxNLocator(4).tick_values(*xlim) if xlim[0] <= t <= xlim[1]]
    if bottom_row:
        for t in x_ticks:
            sheet.text(box.X(t), y0 - TICK - 0.02, _tick_text(t), 6, ha="center", va="top")
    if c.mask[j, i] == 0:
        sheet.rect(x0, y0, w, h, "#f5f5f5", COLORS["pruned"], 0.6)
        sheet.text(x0 + w / 2, y0 + h / 2, "pruned", 7, ha="center", va="center", color="0.6")
        title = f"{c.inputs[i]} → {c.outputs[j]}"
        sheet.text(x0 + w / 2, y0 + h + 0.04, title, 7, ha="center", va="bottom", color="0.55")
        return
    sheet.rect(x0, y0, w, h, "white", "0.25", 0.6)
    lo, hi = c.base[i]
    for a, b in ((xlim[0], min(lo, xlim[1])), (max(hi, xlim[0]), xlim[1])):  # linear extension
        if b > a:
            sheet.rect(box.X(a), y0, box.X(b) - box.X(a), h, COLORS["outside"], z=1.1)
    e, f = c.hist_edges[i], c.hist[i] * 0.22 * h
    steps = np.column_stack(
        [box.X(np.repeat(e, 2)), y0 + np.concatenate([[0], np.repeat(f, 2), [0]])]
    )
    sheet.poly(steps, COLORS["hist"], z=1.2)
    knots = c.knots[i][(c.knots[i] >= xlim[0]) & (c.knots[i] <= xlim[1])]
    for t in knots:
        sheet.line([(box.X(t), y0 + h), (box.X(t), y0 + 0.93 * h)], COLORS["knot"], 0.6, z=3)
    if box.ylim[0] < 0 < box.ylim[1]:
        sheet.line([(x0, box.Y(0.0)), (x0 + w, box.Y(0.0))], "0.7", 0.5, ":", z=1.5)
    sheet.line(box.curve(c.xs[:, i], c.ys[:, j, i]), COLORS["curve"], 1.2, z=4)
    fit = c.fits.get((j, i))
    if fit is not None:
        if fit.ys is not None:
            sheet.line(box.curve(c.xs[:, i], fit.ys), COLORS["symbolic"], 1.1, (0, (3, 1.5)), z=5)
        bbox = {"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75}
        sheet.text(
            x0 + 0.04,
            y0 + h - 0.08,
            fit.label if fit.r2 is None else f"{fit.label}\nR² {fit.r2:.4g}",
            5.5,
            ha="left",
            va="top",
            color=COLORS["symbolic"],
            zorder=6,
            bbox=bbox,
        )
    for t in x_ticks:
        sheet.line([(box.X(t), y0), (box.X(t), y0 - TICK)], "0.25", 0.6)
    for t in MaxNLocator(3).tick_values(*box.ylim):
        if box.ylim[0] <= t <= box.ylim[1]:
            y = float(box.Y(t))
            sheet.line([(x0 - TICK, y), (x0, y)], "0.25", 0.6)
            sheet.text(x0 - TICK - 0.02, y, _tick_text(t), 6, ha="right", va="center")
    title = f"{c.inputs[i]} → {c.outputs[j]}   {c.score[j, i]:.2g}"
    sheet.text(x0 + w / 2, y0 + h + 0.04, title, 7, ha="center", va="bottom")


def _activation_page(c: LayerCurves, rows: list[int], cols: list[int], page: str) -> Figure:
    grid_w = len(cols) * PANEL_W + (len(cols) - 1) * GAP_X
    width = max(grid_w + 2 * PAGE_LEFT, PAGE_MIN_WIDTH)
    height = PAGE_TOP + len(rows) * PANEL_H + (len(rows) - 1) * GAP_Y + PAGE_BOTTOM
    sheet = _Sheet(width, height)
    left = (width - grid_w) / 2
    for r, j in enumerate(rows):
        y0 = PAGE_BOTTOM + (len(rows) - 1 - r) * (PANEL_H + GAP_Y)
        for k, i in enumerate(cols):
            _draw_panel(sheet, c, j, i, left + k * (PANEL_W + GAP_X), y0, r == len(rows) - 1)
    head = (
        f"Layer {c.index + 1}: {_count(len(c.inputs), 'input')} × "
        f"{_count(len(c.outputs), 'output')}, "
        f"grid {c.grid_size}, degree {c.degree}{page}"
    )
    sheet.text(width / 2, height - 0.12, head, 10, ha="center", va="top", weight="bold")
    note = "panel title: edge and its attribution score (the score pruning uses)"
    sheet.text(width / 2, height - 0.36, note, 7.5, ha="center", va="top", color="0.3")
    handles = [
        Line2D([], [], color=COLORS["curve"], lw=1.2, label="learned φ"),
        Line2D([], [], color=COLORS["knot"], marker="|", ls="none", label="knots"),
        Patch(color=COLORS["hist"], label="data reaching the input"),
        Patch(color=COLORS["outside"], label="outside base interval"),
    ]
    if any(f.ys is not None for f in c.fits.values()):
        handles.append(Line2D([], [], color=COLORS["symbolic"], ls="--", label="symbolic fit"))
    sheet.fig.legend(
        handles=handles,
        loc="upper center",
        ncol=len(handles),
        frameon=False,
        bbox_to_anchor=(0.5, 1 - 0.58 / height),
        handlelength=1.6,
        columnspacing=1.2,
    )
    return sheet.finish()


def _save_pdf(path, figures: Iterable[Figure]) -> None:
    """Write the figures as the pages of one PDF, atomically (each drawn as it is needed)."""

    def write(tmp: str) -> None:
        with PdfPages(tmp, metadata=PDF_METADATA) as pdf:
            for fig in figures:
                pdf.savefig(fig, dpi=RASTER_DPI)

    fileio.atomic_write(path, write)


def _chunks(n: int, size: int = MAX_PANELS) -> list[list[int]]:
    """range(n) in ceil(n / size) nearly equal consecutive parts."""
    return [list(map(int, part)) for part in np.array_split(np.arange(n), math.ceil(n / size))]


def _strongest(weights: np.ndarray) -> list[int]:
    """Indices of the `MAX_GRID` largest weights, in index order (all when there are fewer)."""
    return sorted(int(k) for k in np.argsort(-weights, kind="stable")[:MAX_GRID])


def _activation_pages(c: LayerCurves) -> Iterable[Figure]:
    outs, ins = _strongest(c.score.sum(axis=1)), _strongest(c.score.sum(axis=0))
    note = ""
    if len(outs) < len(c.outputs) or len(ins) < len(c.inputs):
        note = f"  [the {len(ins)} × {len(outs)} most important inputs × outputs]"
    blocks = [
        ([outs[k] for k in rows], [ins[k] for k in cols])
        for rows in _chunks(len(outs))
        for cols in _chunks(len(ins))
    ]
    for number, (rows, cols) in enumerate(blocks, start=1):
        page = f"  (page {number}/{len(blocks)})" if len(blocks) > 1 else ""
        yield _activation_page(c, rows, cols, page + note)


@matplotlib.rc_context(STYLE)
def plot_activations(model, x, run_dir, symbolic: dict | None = None) -> list[Path]:
    """Write ``layer_<n>_activations.pdf`` (n = 1..L) into run_dir; x: model inputs (N, n_in).
    Returns the paths written."""
    paths = []
    for c in layer_curves(model, x, symbolic):
        path = Path(run_dir) / ACTIVATIONS_FILE.format(n=c.index + 1)
        _save_pdf(path, _activation_pages(c))
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------
# Network diagram


def _edge_alpha(c: LayerCurves) -> np.ndarray:
    """(out, in) opacity tanh(BETA * score / max live score), at least MIN_ALPHA; 0 if pruned."""
    live = c.mask != 0
    top = c.score[live].max() if live.any() else 0.0
    rel = c.score / top if top > 0 else np.ones_like(c.score)
    return np.where(live, np.maximum(np.tanh(BETA * rel), MIN_ALPHA), 0.0)


def _network_figure(curves: list[LayerCurves], dims: list[int], title: str, formulas) -> Figure:
    n_edges = [c.ys.shape[1] * c.ys.shape[2] for c in curves]
    plot_w = min(max(0.42 * max(n_edges), 0.6 * max(dims), 4.5), 24.0)
    level_h, left, bottom = 1.8, 0.6, 0.6
    wrapped = [
        line
        for k, text in enumerate(formulas)
        for line in textwrap.wrap(
            f"y{k + 1} = {text}",
            int(plot_w * 14),
            subsequent_indent="    ",
            max_lines=FORMULA_LINES,
            placeholder=" … (full formula in metrics.json)",
        )
    ]
    top = 0.95 + 0.2 * len(wrapped)
    width, height = plot_w + 2 * left, bottom + level_h * len(curves) + top
    sheet = _Sheet(width, height)

    def node_x(d: int) -> np.ndarray:
        return left + (np.arange(d) + 0.5) * plot_w / d

    colors = {}
    for c in curves:
        for fit in c.fits.values():
            colors.setdefault(fit.function, FUNCTION_COLORS[len(colors) % len(FUNCTION_COLORS)])
    alive = [np.zeros(d, dtype=bool) for d in dims]
    r = 0.055
    for c, n in zip(curves, n_edges):
        l = c.index
        xi, xj = node_x(len(c.inputs)), node_x(len(c.outputs))
        yi, yj = bottom + l * level_h, bottom + (l + 1) * level_h
        spacing = plot_w / n
        side = min(0.8 * spacing, 0.62)
        alpha = _edge_alpha(c)
        for i in range(len(c.inputs)):
            for j in range(len(c.outputs)):
                if alpha[j, i] == 0:
                    continue
                alive[l][i] = alive[l + 1][j] = True
                fit = c.fits.get((j, i))
                rgb = matplotlib.colors.to_rgb(colors[fit.function] if fit else "black")
                rgba = (*rgb, float(alpha[j, i]))
                if spacing < 0.15:  # too many edges for insets: plain lines
                    sheet.line([(xi[i], yi + r), (xj[j], yj - r)], rgba, 0.8)
                    continue
                xq = left + (i * len(c.outputs) + j + 0.5) * spacing
                yq = bottom + (l + 0.5) * level_h
                sheet.line([(xi[i], yi + r), (xq, yq - side / 2)], rgba, 0.8)
                sheet.line([(xq, yq + side / 2), (xj[j], yj - r)], rgba, 0.8)
                box = _Box(
                    xq - side / 2,
                    yq - side / 2,
                    side,
                    side,
                    (c.xs[0, i], c.xs[-1, i]),
                    _limits(c.ys[:, j, i], pad=0.12),
                )
                sheet.rect(box.x0, box.y0, side, side, (1, 1, 1, 1), rgba, 0.6, z=3)
                sheet.line(box.curve(c.xs[:, i], c.ys[:, j, i]), rgba, 0.9, z=4)
                if fit:
                    sheet.text(
                        xq,
                        yq - side / 2 - 0.03,
                        fit.function,
                        5.5,
                        ha="center",
                        va="top",
                        color=rgb,
                        alpha=float(alpha[j, i]),
                        zorder=5,
                    )
    for level, d in enumerate(dims):
        y = bottom + level * level_h
        xs = node_x(d)
        sheet.ax.scatter(
            xs,
            np.full(d, y),
            s=(2 * r * 72) ** 2,
            c=["black" if a else COLORS["pruned"] for a in alive[level]],
            zorder=6,
            linewidths=0,
        )
        gap = plot_w / d
        size = 9 if gap >= 0.4 else 6
        for k, x in enumerate(xs):
            name = node_name(level, k, dims)
            if gap < 0.2 and k not in (0, d - 1):  # too crowded to name every node
                continue
            if level == 0:
                sheet.text(x, y - 0.12, name, size, ha="center", va="top")
            elif level == len(dims) - 1:
                sheet.text(x, y + 0.12, name, size, ha="center", va="bottom")
            elif gap >= 0.4:
                sheet.text(x + 0.07, y + 0.03, name, 5.5, ha="left", va="bottom", color="0.45")
    sheet.text(width / 2, height - 0.12, title, 11, ha="center", va="top", weight="bold")
    sheet.text(
        width / 2,
        height - 0.42,
        f"edge opacity tanh({BETA:g}·score / layer max); inset: φ over its input's data range",
        7.5,
        ha="center",
        va="top",
        color="0.3",
    )
    for k, line in enumerate(wrapped):
        sheet.text(
            left, height - 0.72 - 0.2 * k, line, 7.5, ha="left", va="top", family="monospace"
        )
    return sheet.finish()


@matplotlib.rc_context(STYLE)
def plot_network(model, x, path, symbolic: dict | None = None, title: str | None = None) -> None:
    """Write the network diagram (``network_diagram.pdf``) to path; x: model inputs (N, n_in)."""
    curves = layer_curves(model, x, symbolic)
    dims = list(model.layer_dims)
    formulas = symbolic.get("formulas", []) if symbolic and symbolic.get("ok") else []
    head = f"{title + ': ' if title else ''}KAN {'-'.join(map(str, dims))}"
    _save_pdf(path, [_network_figure(curves, dims, head, formulas)])


# ---------------------------------------------------------------------------------------------
# Loss history


def _grid_label(sizes) -> str:
    """ "G=10" (one grid size for every layer) or "G=10/10/20"; "refined" when not given."""
    sizes = [int(g) for g in sizes or []]
    if not sizes:
        return "refined"
    return f"G={sizes[0]}" if len(set(sizes)) == 1 else "G=" + "/".join(map(str, sizes))


def _minor_log_labels(decades: float) -> FuncFormatter:
    """Labels of the minor ticks of a log axis spanning `decades`: all of them below one decade,
    2·10^k and 5·10^k below three, none beyond. Plain text: mathtext labels cost ~10 ms each."""
    keep = range(1, 10) if decades < 1 else (2, 5) if decades < 3 else ()

    def label(v: float, _) -> str:
        return f"{v:.3g}" if round(v / 10 ** math.floor(math.log10(v))) in keep else ""

    return FuncFormatter(label)


def _loss_figure(history: dict, title: str | None) -> Figure:
    fig = Figure(figsize=(8.2, 4.4), layout="constrained")
    ax = fig.add_subplot()
    steps = np.asarray(history.get("step") or [], dtype=float)
    shown = []
    for key, label, color in (
        ("train_rmse", "train", COLORS["train"]),
        ("val_rmse", "validation", COLORS["val"]),
        ("test_rmse", "test", COLORS["test"]),
    ):
        values = np.asarray(history.get(key) or [], dtype=float)
        if values.size == 0 or values.size != steps.size:
            continue
        values = np.where(np.isfinite(values) & (values > 0), values, np.nan)
        shown += list(values[np.isfinite(values)])
        ax.plot(steps, values, color=color, lw=1.3, label=f"{label} RMSE")
    if shown:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.yaxis.set_minor_formatter(_minor_log_labels(math.log10(max(shown) / min(shown))))
    events = history.get("events") or []
    span = [s for s in steps] + [float(e["step"]) for e in events]
    span += [float(p[k]) for p in history.get("phases") or [] for k in ("start", "end")]
    if span:
        lo, hi = min(span), max(span)
        ax.set_xlim(lo, hi if hi > lo else lo + 1)
    xlo, xhi = ax.get_xlim()
    on_x = ax.get_xaxis_transform()
    for phase in history.get("phases") or []:
        name = phase.get("name")
        if name not in PHASE_LABELS:
            continue
        a, b = float(phase["start"]), float(phase["end"])
        ax.axvspan(a, b, color=COLORS[name], lw=0, zorder=0, label=PHASE_LABELS[name])
        ax.text(
            (a + b) / 2,
            0.02,
            PHASE_LABELS[name],
            transform=on_x,
            ha="center",
            va="bottom",
            fontsize=7,
            color="0.3",
            clip_on=True,
        )
    labels = []
    ranges = [float(e["step"]) for e in events if e.get("kind") == "grid_range"]
    if ranges:
        ax.plot(
            ranges,
            np.full(len(ranges), 1.0),
            ls="none",
            marker="v",
            ms=4,
            color="0.55",
            transform=on_x,
            clip_on=False,
            label="grid range update",
        )
    first = {"refine": True, "prune": True}
    for event in events:
        kind, step = event.get("kind"), float(event["step"])
        if kind == "refine":
            ax.axvline(
                step,
                ls="--",
                lw=0.8,
                color=COLORS["refine"],
                zorder=1,
                label="refinement" if first["refine"] else None,
            )
            labels.append((step, _grid_label(event.get("grid_sizes"))))
        elif kind == "prune":
            ax.axvline(
                step,
                ls="-",
                lw=1.1,
                color=COLORS["prune"],
                zorder=1,
                label="pruning" if first["prune"] else None,
            )
            after = "-".join(map(str, event.get("dims_after") or []))
            labels.append((step, f"pruned → {after}" if after else "pruned"))
        if kind in first:
            first[kind] = False
    last = -1.0
    for step, text in sorted(labels):
        frac = (step - xlo) / (xhi - xlo)
        if frac - last < 0.025:  # the rotated labels would touch
            continue
        last = frac
        ax.text(
            step,
            0.94,
            text,
            transform=on_x,
            rotation=90,
            ha="right",
            va="top",
            fontsize=6.5,
            color="0.25",
            clip_on=True,
            bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.7},
        )
    if not steps.size:
        ax.text(0.5, 0.5, "no history recorded", transform=ax.transAxes, ha="center")
    ax.set_xlabel("step")
    ax.set_ylabel("RMSE")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(f"{title}: RMSE during training" if title else "RMSE during training")
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside right upper", frameon=False)
    return fig


@matplotlib.rc_context(STYLE)
def plot_loss(history: dict, path, title: str | None = None) -> None:
    """Write the RMSE history (``mse_loss_plot.pdf``) to path; history as in history.json."""
    _save_pdf(path, [_loss_figure(history or {}, title)])


# ---------------------------------------------------------------------------------------------
# Comparison with the target


def _target(config: dict, n_in: int, n_out: int):
    """The compiled target expression x (N, n_in) → (N, n_out) as numpy, or None (data file)."""
    text = config.get("target_function")
    if text is None or config.get("data_file"):
        return None
    try:
        f = targets.compile_target(text, n_in)
    except UserError:
        return None
    if (1 if isinstance(text, str) else len(text)) != n_out:
        return None
    return lambda x: _np(f(torch.as_tensor(x, dtype=torch.float64)))


def _input_ranges(config: dict, samples, n_in: int) -> np.ndarray:
    """(n_in, 2): the sampling range of each input (the data's range when none fits)."""
    given = (config.get("model") or {}).get("input_range") or config.get("input_range")
    try:
        ranges = np.asarray(given, dtype=float).reshape(-1, 2)
        ranges = np.broadcast_to(ranges, (n_in, 2)).copy()
    except (TypeError, ValueError):
        x = _array(samples["x_train"]).reshape(-1, n_in)
        ranges = np.column_stack([x.min(axis=0), x.max(axis=0)])
    return ranges


def _info_text(model, metrics: dict, config: dict) -> str:
    def number(key, fmt, fallback=None, unit=""):
        v = metrics.get(key, fallback)
        ok = isinstance(v, int | float) and not isinstance(v, bool)
        return format(v, fmt) + unit if ok else "–"

    target = config.get("target_function")
    source = config.get("data_file") if target is None else target
    source = "; ".join(source) if isinstance(source, list) else str(source)
    rows = [
        ("project", metrics.get("project_name", config.get("project_name", "–"))),
        ("target" if target is not None else "data file", source),
        ("architecture", "-".join(map(str, metrics.get("layer_dims", model.layer_dims)))),
        ("grid sizes", ", ".join(map(str, metrics.get("grid_sizes", model.grid_sizes)))),
        ("spline degree", number("spline_degree", "d", model.spline_degree)),
        ("parameters", number("num_parameters", ",", model.num_parameters)),
        ("steps", number("steps", ",")),
        ("train RMSE", number("train_rmse", ".3e")),
        ("test RMSE", number("test_rmse", ".3e")),
        ("train points", number("training_points", ",")),
        ("test points", number("test_points", ",")),
        ("wall time", number("wall_time_s", ".1f", unit=" s")),
    ]
    formula = metrics.get("formula")
    if formula:
        for k, text in enumerate([formula] if isinstance(formula, str) else formula):
            rows.append((f"formula y{k + 1}", text))
        rows.append(("formula RMSE", number("formula_test_rmse", ".3e")))
    lines = []
    for key, value in rows:
        parts = textwrap.wrap(str(value), 30, max_lines=4, placeholder=" …") or [""]
        lines.append(f"{key:<14}{parts[0]}")
        lines += [" " * 14 + part for part in parts[1:]]
    return "\n".join(lines)


def _info_box(ax, text: str) -> None:
    ax.set_axis_off()
    ax.text(
        0.02,
        0.5,
        text,
        transform=ax.transAxes,
        ha="left",
        va="center",
        family="monospace",
        fontsize=7.5,
        linespacing=1.35,
        bbox={"boxstyle": "round,pad=0.7", "fc": "#f6f7f9", "ec": "0.75"},
    )


def _scatter_and_histogram(ax_s, ax_h, y_true: np.ndarray, y_pred: np.ndarray, name: str):
    rmse = float(np.sqrt(np.mean((y_pred - y_true) ** 2)))
    ax_s.scatter(y_true, y_pred, s=5, alpha=0.5, color=COLORS["model"], linewidths=0)
    lo, hi = _limits(np.concatenate([y_true, y_pred]), pad=0.03)
    ax_s.plot([lo, hi], [lo, hi], color=COLORS["target"], lw=0.8, ls="--", label="y = x")
    ax_s.set_xlim(lo, hi)
    ax_s.set_ylim(lo, hi)
    ax_s.set_aspect("equal")
    ax_s.set_xlabel(f"true {name}")
    ax_s.set_ylabel(f"predicted {name}")
    ax_s.set_title(f"test set: RMSE {rmse:.3g}")
    ax_s.legend(loc="upper left", frameon=False)
    ax_h.hist(y_pred - y_true, bins=40, color=COLORS["error"], alpha=0.75)
    ax_h.set_xlabel(f"predicted − true {name}")
    ax_h.set_ylabel("test points")
    ax_h.set_title("prediction error")


def _grid(ranges: np.ndarray, n: int):
    """Two (n, n) meshes over ranges[0] × ranges[1]."""
    return np.meshgrid(np.linspace(*ranges[0], n), np.linspace(*ranges[1], n))


def _comparison_page(model, samples, ranges, target, info, o: int, scores) -> Figure:
    n_in, n_out = model.layer_dims[0], model.layer_dims[-1]
    name = f"y{o + 1}"
    x_test = _array(samples["x_test"]).reshape(-1, n_in)
    y_test = _array(samples["y_test"]).reshape(len(x_test), -1)[:, o]

    # Margins by hand (inches at the top, for the titles): a layout engine doubles the time.
    def top(height: float) -> float:
        return 1 - (0.75 if n_out > 1 else 0.4) / height

    if target is None or n_in > 2:
        rows = 2 if target is not None else 1
        height = 8.2 if rows == 2 else 4.3
        fig = Figure(figsize=(13, height))
        gs = fig.add_gridspec(
            rows,
            3,
            width_ratios=[1, 1, 0.9],
            left=0.06,
            right=0.99,
            bottom=0.55 / height,
            top=top(height),
            wspace=0.3,
            hspace=0.35,
        )
        _scatter_and_histogram(
            fig.add_subplot(gs[0, 0]),
            fig.add_subplot(gs[0, 1]),
            y_test,
            _predict(model, x_test)[:, o],
            name,
        )
        _info_box(fig.add_subplot(gs[0, 2]), info)
        if target is not None:
            _slices(fig, gs, model, ranges, target, o, scores)
    elif n_in == 1:
        fig = Figure(figsize=(11, 6))
        gs = fig.add_gridspec(
            2,
            2,
            width_ratios=[2.2, 1],
            height_ratios=[2.2, 1],
            left=0.08,
            right=0.99,
            bottom=0.09,
            top=top(6),
            wspace=0.1,
            hspace=0.2,
        )
        ax, ax_e = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[1, 0])
        xs = np.linspace(*ranges[0], 400)[:, None]
        yt, ym = target(xs)[:, o], _predict(model, xs)[:, o]
        x_train = _array(samples["x_train"]).reshape(-1, 1)
        y_train = _array(samples["y_train"]).reshape(len(x_train), -1)[:, o]
        shown = _thin(np.column_stack([x_train[:, 0], y_train]), 500)
        ax.scatter(shown[:, 0], shown[:, 1], s=4, color="0.7", linewidths=0, label="training data")
        ax.plot(xs[:, 0], yt, color=COLORS["target"], lw=1.6, label="target")
        ax.plot(xs[:, 0], ym, color=COLORS["model"], lw=1.3, ls="--", label="model")
        ax.set_ylabel(name)
        ax.set_title(f"target and model, {name}")
        ax.legend(frameon=False)
        ax_e.plot(xs[:, 0], np.abs(ym - yt), color=COLORS["error"], lw=1.2)
        ax_e.set_xlabel("x1")
        ax_e.set_ylabel("|model − target|")
        ax_e.set_xlim(ax.get_xlim())
        _info_box(fig.add_subplot(gs[:, 1]), info)
    else:
        fig = Figure(figsize=(16, 5.2))
        gs = fig.add_gridspec(
            1, 4, width_ratios=[1, 1, 1, 0.85], left=0.0, right=0.99, bottom=0.03, top=top(5.2)
        )
        X1, X2 = _grid(ranges, 40)
        pts = np.column_stack([X1.ravel(), X2.ravel()])
        zt = target(pts)[:, o].reshape(X1.shape)
        zm = _predict(model, pts)[:, o].reshape(X1.shape)
        vmin, vmax = _limits(np.concatenate([zt.ravel(), zm.ravel()]), pad=0.0)
        err = np.abs(zm - zt)
        panels = (
            (f"target {name}", zt, "viridis", (vmin, vmax)),
            (f"model {name}", zm, "viridis", (vmin, vmax)),
            (f"|model − target| (max {np.nanmax(err):.2g})", err, "Reds", None),
        )
        for k, (title, z, cmap, lim) in enumerate(panels):
            ax = fig.add_subplot(gs[0, k], projection="3d")
            norm = matplotlib.colors.Normalize(*lim) if lim else None
            ax.plot_surface(
                X1,
                X2,
                z,
                cmap=cmap,
                norm=norm,
                linewidth=0,
                antialiased=False,
                rstride=1,
                cstride=1,
                rasterized=True,  # thousands of PDF polygons otherwise: slow to write and view
            )
            if lim:
                ax.set_zlim(*lim)
            ax.set_title(title, pad=0)
            ax.set_xlabel("x1", labelpad=-6)
            ax.set_ylabel("x2", labelpad=-6)
            ax.tick_params(labelsize=6, pad=-2)
            for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
                axis.set_major_locator(MaxNLocator(5))
        _info_box(fig.add_subplot(gs[0, 3]), info)
    if n_out > 1:
        fig.suptitle(f"output {name} of {n_out}", weight="bold")
    return fig


def _slices(fig, gs, model, ranges, target, o: int, scores) -> None:
    """Target, model and |error| on the plane of the two most important inputs, the others at
    the middle of their ranges."""
    a, b = (int(k) for k in np.argsort(-scores, kind="stable")[:2])
    X1, X2 = _grid(ranges[[a, b]], 60)
    pts = np.tile(ranges.mean(axis=1), (X1.size, 1))
    pts[:, a], pts[:, b] = X1.ravel(), X2.ravel()
    zt = target(pts)[:, o].reshape(X1.shape)
    zm = _predict(model, pts)[:, o].reshape(X1.shape)
    vmin, vmax = _limits(np.concatenate([zt.ravel(), zm.ravel()]), pad=0.0)
    extent = (*ranges[a], *ranges[b])
    others = ", ".join(f"x{k + 1}={ranges[k].mean():.3g}" for k in range(len(ranges)))
    others = ", ".join(p for k, p in enumerate(others.split(", ")) if k not in (a, b))
    for k, (title, z, cmap, lim) in enumerate(
        (
            ("target", zt, "viridis", (vmin, vmax)),
            ("model", zm, "viridis", (vmin, vmax)),
            ("|model − target|", np.abs(zm - zt), "Reds", (None, None)),
        )
    ):
        ax = fig.add_subplot(gs[1, k])
        image = ax.imshow(
            z,
            origin="lower",
            extent=extent,
            aspect="auto",
            cmap=cmap,
            vmin=lim[0],
            vmax=lim[1],
            interpolation="nearest",
        )
        fig.colorbar(image, ax=ax, shrink=0.9)
        ax.set_xlabel(f"x{a + 1}")
        ax.set_ylabel(f"x{b + 1}")
        ax.set_title(f"{title} ({others})" if k == 0 else title)


@matplotlib.rc_context(STYLE)
def plot_comparison(model, samples, config: dict, metrics: dict, path) -> None:
    """Write ``3d_comparison_with_info.pdf`` to path: one page per output (see module doc).
    samples: x_train, y_train, x_test, y_test arrays (samples.npz)."""
    n_in, n_out = model.layer_dims[0], model.layer_dims[-1]
    target = _target(config, n_in, n_out)
    ranges = _input_ranges(config, samples, n_in)
    info = _info_text(model, metrics or {}, config)
    scores = None
    if target is not None and n_in > 2:
        with torch.no_grad():
            x = _model_tensor(model, _thin(_array(samples["x_train"])))
            scores = _np(model.edge_scores(x)[1][0])
    pages = (
        _comparison_page(model, samples, ranges, target, info, o, scores) for o in range(n_out)
    )
    _save_pdf(path, pages)


# ---------------------------------------------------------------------------------------------
# Everything, and re-plotting a saved run


def plot_all(
    run_dir, model, x_train, history, metrics, config, samples, symbolic=None
) -> list[str]:
    """Write every plot into run_dir. A plot that fails is reported (a `PlotWarning` and a line
    in the returned list) and the others are still drawn."""
    run_dir = Path(run_dir)
    x = _thin(samples["x_train"] if x_train is None else x_train)
    title = (metrics or {}).get("project_name") or config.get("project_name")
    jobs = (
        (LOSS_FILE, lambda: plot_loss(history, run_dir / LOSS_FILE, title)),
        (ACTIVATIONS_FILE, lambda: plot_activations(model, x, run_dir, symbolic)),
        (
            COMPARISON_FILE,
            lambda: plot_comparison(model, samples, config, metrics, run_dir / COMPARISON_FILE),
        ),
        (NETWORK_FILE, lambda: plot_network(model, x, run_dir / NETWORK_FILE, symbolic, title)),
    )
    failures = []
    for name, job in jobs:
        try:
            job()
        except Exception as exc:  # a broken plot must not end the run
            message = f"{name} not written: {type(exc).__name__}: {exc}".splitlines()[0]
            warnings.warn(message, PlotWarning, stacklevel=2)
            failures.append(message)
    return failures


def _read_json(path: Path) -> dict | None:
    """The JSON object in path, None when there is no such file."""
    if not path.is_file():
        return None
    return fileio.read_json_object(path)


def _read_samples(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise UserError(f"no {path.name} in {path.parent}: the plots need the saved samples")
    try:
        with np.load(path, allow_pickle=False) as data:
            samples = {key: np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in samples]
    if missing:
        raise UserError(f"{path}: missing array{'s' * (len(missing) > 1)} {', '.join(missing)}")
    return samples


def plot_run(run_dir) -> list[str]:
    """Re-draw every plot of a saved run from its folder alone (model, config, history.json,
    metrics.json, samples.npz, symbolic.json when present); nothing in it is imported.
    Returns the failures (see `plot_all`); a missing or unreadable folder raises UserError."""
    run_dir = Path(run_dir)
    model, config = simple_kan.load_model(run_dir)
    samples = _read_samples(run_dir / SAMPLES_FILE)
    history = _read_json(run_dir / HISTORY_FILE) or {}
    metrics = _read_json(run_dir / METRICS_FILE) or {}
    symbolic = _read_json(run_dir / SYMBOLIC_FILE)
    return plot_all(run_dir, model, samples["x_train"], history, metrics, config, samples, symbolic)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="plots.py", description="Re-draw every plot of a saved pykan_mit run folder."
    )
    parser.add_argument("run_dir", help="run folder written by pykan_mit.py")
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PlotWarning)
            failures = plot_run(args.run_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in failures:
        print(f"warning: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
