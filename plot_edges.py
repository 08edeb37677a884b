"""Every edge's learned function, in the style of the KAN paper (Liu et al., arXiv 2404.19756: a
network drawn with every edge's learned 1-D function on it).

- `activation_figures`: per layer, its pages of edge panels (rows: outputs j, columns: inputs
  i, at most 8 × 8 panels a page), phi_ji on its real knot vector over the range of the data
  reaching input i, widened by 10 % each side. Knots are ticks on the top edge, the data a
  histogram at the bottom, the shaded ends lie outside the base interval (where the spline
  continues linearly), pruned edges are grey, symbolic fits dashed orange with their formula.
  The panel title gives the edge's attribution score (`SimpleKAN.edge_scores`, the score
  pruning compares with its threshold).
- `network_figure`: nodes per layer (inputs x1..xn at the bottom, outputs y1..ym at the top), a
  small plot of each edge's function on the edge, edge opacity tanh(3 * score / max score of
  its layer); pruned edges hidden, symbolic edges coloured and named.

Node names: inputs by the data's names (``x1..xn`` without), outputs ``y1..ym``, node j of
hidden level l ``h<l>.<j>``; factor k of a multiplication node ``h<l>.<j>[k]`` (the diagram
draws a multiplication node as a × disc with its factors as dots below it).
Panels and insets are drawn into one Axes per page in inch coordinates (`_Sheet`): a real Axes
per edge costs ~60 ms. Figures are plain `Figure` objects (no pyplot). Layers wider than
`MAX_GRID` inputs or outputs show their most important ones (by attribution).
"""

import math
import textwrap
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import matplotlib
import numpy as np
import torch
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

import run_folder
from arrays import as_tensor_like, to_numpy
from nodes import Level
from plot_style import COLORS, STYLE, limits, thin_rows
from symbolic import SymbolicResult
from symbolic_fit import Fit

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
FORMULA_LINES = 5  # lines of each output's formula shown above the network diagram
NODE_RADIUS = 0.055  # of the network diagram's nodes, inches
SUBNODE_DROP = 0.3  # factors of a multiplication node sit this far below it, inches
FUNCTION_COLORS = ("#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


# ---------------------------------------------------------------------------------------------
# The plotted data


@torch.no_grad()
def activation_curves(layer, x_in, num: int = CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Every edge's function on a sweep of its input: ``xs (num, in)``, ``ys (num, out, in)``.

    Column i of xs runs evenly over the range of ``x_in[:, i]`` (the samples entering the layer,
    ``(N, in)``) widened by `MARGIN` of that range at each end (a constant input gets its base
    interval). ``ys[:, j, i] = phi_ji(xs[:, i])`` is ``layer.edge_activations(xs)[:, j, i]``: edge
    (j, i) depends on input i only, so one sweep of all inputs together gives every edge.
    """
    x_in = as_tensor_like(x_in, layer.knots)
    lo, hi = x_in.amin(dim=0), x_in.amax(dim=0)
    span = hi - lo
    flat = span <= 1e-9 * (1 + torch.maximum(lo.abs(), hi.abs()))
    base = layer.grid_range()
    lo = torch.where(flat, torch.minimum(lo, base[:, 0]), lo - MARGIN * span)
    hi = torch.where(flat, torch.maximum(hi, base[:, 1]), hi + MARGIN * span)
    u = torch.linspace(0, 1, num, dtype=lo.dtype, device=lo.device)
    xs = lo + u[:, None] * (hi - lo)  # (num, in)
    return to_numpy(xs), to_numpy(layer.edge_activations(xs))


def activation_curve(layer, x_in, j: int, i: int, num: int = CURVE_POINTS):
    """``(xs, ys)``, both (num,): edge i → j of ``layer`` exactly as plotted (see
    `activation_curves`)."""
    xs, ys = activation_curves(layer, x_in, num)
    return xs[:, i], ys[:, j, i]


def node_name(level: int, index: int, dims: list[int], input_names=None) -> str:
    if level == 0:
        return input_names[index] if input_names else f"x{index + 1}"
    if level == len(dims) - 1:
        return f"y{index + 1}"
    return f"h{level}.{index + 1}"


def _levels(model) -> list[Level]:
    """The model's levels (a model without multiplication nodes may only have layer_dims)."""
    return list(getattr(model, "levels", None) or [Level(int(d)) for d in model.layer_dims])


def subnode_names(level_index: int, level: Level, dims: list[int]) -> list[str]:
    """The outputs of the layer feeding a level: its addition nodes by name, then factor k of
    multiplication node h as ``h[k]``."""
    names = []
    for s, node in enumerate(level.node_of_subnode()):
        name = node_name(level_index, node, dims)
        if node >= level.n_add:
            name += f"[{s - level.blocks()[node - level.n_add].start + 1}]"
        names.append(name)
    return names


@dataclass
class SymbolicCurve:
    """A symbolic edge fit, its values on the sweep and the R^2 of the fit to the edge."""

    fit: Fit
    ys: np.ndarray
    r2: float


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


def _symbolic_curves(symbolic: SymbolicResult | None, index: int, layer, xs) -> dict:
    """{(j, i): SymbolicCurve} of layer ``index``'s fits, by edge (edges outside it skipped)."""
    if symbolic is None or index >= len(symbolic.layer_fits):
        return {}
    return {
        (j, i): SymbolicCurve(fit, fit.evaluate(xs[:, i]), symbolic.edge_r2[index][(j, i)])
        for (j, i), fit in sorted(symbolic.layer_fits[index].items())
        if j < layer.out_dim and i < layer.in_dim
    }


@torch.no_grad()
def layer_curves(model, x, symbolic: SymbolicResult | None = None) -> list[LayerCurves]:
    """The data of every layer's plots, from the model inputs x (N, n_in)."""
    xt = as_tensor_like(thin_rows(x), model.layers[0].knots)
    inputs = model.layer_inputs(xt)
    scores = model.edge_scores(xt)[0]
    levels = _levels(model)
    dims = [level.n_nodes for level in levels]
    names = getattr(model, "input_names", None)
    result = []
    for index, (layer, x_in, score) in enumerate(zip(model.layers, inputs, scores)):
        xs, ys = activation_curves(layer, x_in)
        data = to_numpy(x_in)
        hist = np.empty((layer.in_dim, HIST_BINS))
        edges = np.empty((layer.in_dim, HIST_BINS + 1))
        for i in range(layer.in_dim):
            counts, edges[i] = np.histogram(data[:, i], HIST_BINS, range=(xs[0, i], xs[-1, i]))
            hist[i] = counts / max(counts.max(), 1)
        result.append(
            LayerCurves(
                index=index,
                degree=layer.degree,
                grid_size=layer.grid_size,
                xs=xs,
                ys=ys,
                knots=to_numpy(layer.knots),
                base=to_numpy(layer.grid_range()),
                hist=hist,
                hist_edges=edges,
                score=to_numpy(score),
                mask=to_numpy(layer.mask),
                fits=_symbolic_curves(symbolic, index, layer, xs),
                inputs=[node_name(index, i, dims, names) for i in range(layer.in_dim)],
                outputs=subnode_names(index + 1, levels[index + 1], dims),
            )
        )
    return result


def edge_opacity(c: LayerCurves) -> np.ndarray:
    """(out, in) opacity tanh(BETA * score / max live score), at least MIN_ALPHA; 0 if pruned."""
    live = c.mask != 0
    top = c.score[live].max() if live.any() else 0.0
    rel = c.score / top if top > 0 else np.ones_like(c.score)
    return np.where(live, np.maximum(np.tanh(BETA * rel), MIN_ALPHA), 0.0)


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


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _tick_text(v: float) -> str:
    return f"{v + 0.0:.3g}"


# ---------------------------------------------------------------------------------------------
# Activation pages


def _draw_panel(sheet: _Sheet, c: LayerCurves, j: int, i: int, x0, y0, bottom_row: bool) -> None:
    """Edge i → j at (x0, y0): frame, outside-base shading, knots, data histogram, zero line,
    learned curve, symbolic overlay, ticks and title."""
    xlim = (c.xs[0, i], c.xs[-1, i])
    box = _Box(x0, y0, PANEL_W, PANEL_H, xlim, limits(c.ys[:, j, i]))
    x_ticks = [t for t in MaxNLocator(4).tick_values(*xlim) if xlim[0] <= t <= xlim[1]]
    if bottom_row:
        for t in x_ticks:
            sheet.text(box.X(t), y0 - TICK - 0.02, _tick_text(t), 6, ha="center", va="top")
    if c.mask[j, i] == 0:
        _draw_pruned_panel(sheet, box, f"{c.inputs[i]} → {c.outputs[j]}")
        return
    _draw_panel_ground(sheet, box, c.base[i], c.hist_edges[i], c.hist[i], c.knots[i])
    sheet.line(box.curve(c.xs[:, i], c.ys[:, j, i]), COLORS["curve"], 1.2, z=4)
    fit = c.fits.get((j, i))
    if fit is not None:
        _draw_fit(sheet, box, c.xs[:, i], fit)
    for t in x_ticks:
        sheet.line([(box.X(t), y0), (box.X(t), y0 - TICK)], "0.25", 0.6)
    for t in MaxNLocator(3).tick_values(*box.ylim):
        if box.ylim[0] <= t <= box.ylim[1]:
            y = float(box.Y(t))
            sheet.line([(x0 - TICK, y), (x0, y)], "0.25", 0.6)
            sheet.text(x0 - TICK - 0.02, y, _tick_text(t), 6, ha="right", va="center")
    title = f"{c.inputs[i]} → {c.outputs[j]}   {c.score[j, i]:.2g}"
    sheet.text(x0 + PANEL_W / 2, y0 + PANEL_H + 0.04, title, 7, ha="center", va="bottom")


def _draw_pruned_panel(sheet: _Sheet, box: _Box, title: str) -> None:
    x0, y0, w, h = box.x0, box.y0, box.w, box.h
    sheet.rect(x0, y0, w, h, "#f5f5f5", COLORS["pruned"], 0.6)
    sheet.text(x0 + w / 2, y0 + h / 2, "pruned", 7, ha="center", va="center", color="0.6")
    sheet.text(x0 + w / 2, y0 + h + 0.04, title, 7, ha="center", va="bottom", color="0.55")


def _draw_panel_ground(sheet: _Sheet, box: _Box, base, hist_edges, hist, knots) -> None:
    """Frame, shading outside the base interval, data histogram, knot ticks and zero line."""
    x0, y0, w, h = box.x0, box.y0, box.w, box.h
    xlim = box.xlim
    sheet.rect(x0, y0, w, h, "white", "0.25", 0.6)
    lo, hi = base
    for a, b in ((xlim[0], min(lo, xlim[1])), (max(hi, xlim[0]), xlim[1])):  # linear extension
        if b > a:
            sheet.rect(box.X(a), y0, box.X(b) - box.X(a), h, COLORS["outside"], z=1.1)
    heights = hist * 0.22 * h
    steps = np.column_stack(
        [box.X(np.repeat(hist_edges, 2)), y0 + np.concatenate([[0], np.repeat(heights, 2), [0]])]
    )
    sheet.poly(steps, COLORS["hist"], z=1.2)
    for t in knots[(knots >= xlim[0]) & (knots <= xlim[1])]:
        sheet.line([(box.X(t), y0 + h), (box.X(t), y0 + 0.93 * h)], COLORS["knot"], 0.6, z=3)
    if box.ylim[0] < 0 < box.ylim[1]:
        sheet.line([(x0, box.Y(0.0)), (x0 + w, box.Y(0.0))], "0.7", 0.5, ":", z=1.5)


def _draw_fit(sheet: _Sheet, box: _Box, xs: np.ndarray, fit: SymbolicCurve) -> None:
    """The symbolic fit dashed over the learned curve, its formula and R^2 in the corner."""
    sheet.line(box.curve(xs, fit.ys), COLORS["symbolic"], 1.1, (0, (3, 1.5)), z=5)
    bbox = {"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75}
    sheet.text(
        box.x0 + 0.04,
        box.y0 + box.h - 0.08,
        f"{fit.fit.label()}\nR² {fit.r2:.4g}",
        5.5,
        ha="left",
        va="top",
        color=COLORS["symbolic"],
        zorder=6,
        bbox=bbox,
    )


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
    if c.fits:
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
def activation_figures(model, x, symbolic: SymbolicResult | None = None) -> list[list[Figure]]:
    """Per layer (layer 1 first, fed by the inputs), its pages of edge panels (see the module
    docstring); x: model inputs (N, n_in), at most `plot_style.PLOT_POINTS` of them used."""
    return [list(_activation_pages(c)) for c in layer_curves(model, x, symbolic)]


# ---------------------------------------------------------------------------------------------
# Network diagram


@dataclass
class _Layout:
    """The network diagram's geometry, inches: levels (0 = inputs) level_h apart from bottom,
    nodes spread over plot_w from left."""

    plot_w: float
    left: float = 0.6
    bottom: float = 0.6
    level_h: float = 1.8

    def node_x(self, d: int) -> np.ndarray:
        return self.left + (np.arange(d) + 0.5) * self.plot_w / d

    def level_y(self, level: float) -> float:
        return self.bottom + level * self.level_h


def _formula_lines(formulas: list[str], width: float) -> list[str]:
    """``y<k> = formula`` wrapped to the plot width, at most FORMULA_LINES lines each."""
    return [
        line
        for k, text in enumerate(formulas)
        for line in textwrap.wrap(
            f"y{k + 1} = {text}",
            int(width * 14),
            subsequent_indent="    ",
            max_lines=FORMULA_LINES,
            placeholder=f" … (full formula in {run_folder.METRICS_FILE})",
        )
    ]


def _function_colors(curves: list[LayerCurves]) -> dict[str, str]:
    """A colour per symbolic function, in order of first appearance."""
    colors = {}
    for c in curves:
        for fit in c.fits.values():
            colors.setdefault(fit.fit.name, FUNCTION_COLORS[len(colors) % len(FUNCTION_COLORS)])
    return colors


def _subnode_xy(level: Level, x_nodes: np.ndarray, y: float, spacing: float):
    """Where the edges into a level end: an addition node itself, or the factors of a
    multiplication node, spread in a row under it (x, y per subnode)."""
    xs, ys = [], []
    for s, node in enumerate(level.node_of_subnode()):
        if node < level.n_add:
            xs.append(x_nodes[node])
            ys.append(y)
            continue
        block = level.blocks()[node - level.n_add]
        offset = (s - block.start) - (len(block) - 1) / 2
        xs.append(x_nodes[node] + offset * spacing)
        ys.append(y - SUBNODE_DROP)
    return np.array(xs), np.array(ys)


def _draw_edges(sheet: _Sheet, c: LayerCurves, layout: _Layout, colors, alive, levels) -> None:
    """Layer c's live edges, each with an inset of its function (plain lines when crowded);
    marks the nodes they join in ``alive``. Edges into a multiplication node end at its
    factors (subnodes), drawn as small dots joined to the × node."""
    r, l = NODE_RADIUS, c.index
    level = levels[l + 1]
    owner = level.node_of_subnode()
    xi = layout.node_x(len(c.inputs))
    x_nodes = layout.node_x(level.n_nodes)
    yi, y_node = layout.level_y(l), layout.level_y(l + 1)
    gap = layout.plot_w / level.n_nodes
    xj, yj = _subnode_xy(level, x_nodes, y_node, min(0.22, gap / (1 + max(level.arities or (1,)))))
    spacing = layout.plot_w / (len(c.inputs) * len(c.outputs))
    side = min(0.8 * spacing, 0.62)
    alpha = edge_opacity(c)
    for s, node in enumerate(owner):
        if node >= level.n_add:  # a factor: a dot joined to its × node
            sheet.line([(xj[s], yj[s]), (x_nodes[node], y_node - r)], "0.35", 0.7, z=5)
            sheet.ax.scatter([xj[s]], [yj[s]], s=(r * 72) ** 2, c="0.35", zorder=6, linewidths=0)
    for i in range(len(c.inputs)):
        for j in range(len(c.outputs)):
            if alpha[j, i] == 0:
                continue
            alive[l][i] = alive[l + 1][owner[j]] = True
            fit = c.fits.get((j, i))
            rgb = matplotlib.colors.to_rgb(colors[fit.fit.name] if fit else "black")
            rgba = (*rgb, float(alpha[j, i]))
            end = yj[j] - (r if owner[j] < level.n_add else r / 2)
            if spacing < 0.15:  # too many edges for insets: plain lines
                sheet.line([(xi[i], yi + r), (xj[j], end)], rgba, 0.8)
                continue
            xq = layout.left + (i * len(c.outputs) + j + 0.5) * spacing
            yq = layout.level_y(l + 0.5) - SUBNODE_DROP / 2
            sheet.line([(xi[i], yi + r), (xq, yq - side / 2)], rgba, 0.8)
            sheet.line([(xq, yq + side / 2), (xj[j], end)], rgba, 0.8)
            xlim, ylim = (c.xs[0, i], c.xs[-1, i]), limits(c.ys[:, j, i], pad=0.12)
            box = _Box(xq - side / 2, yq - side / 2, side, side, xlim, ylim)
            sheet.rect(box.x0, box.y0, side, side, (1, 1, 1, 1), rgba, 0.6, z=3)
            sheet.line(box.curve(c.xs[:, i], c.ys[:, j, i]), rgba, 0.9, z=4)
            if fit:
                sheet.text(
                    xq,
                    yq - side / 2 - 0.03,
                    fit.fit.name,
                    5.5,
                    ha="center",
                    va="top",
                    color=rgb,
                    alpha=float(alpha[j, i]),
                    zorder=5,
                )


def _draw_nodes(sheet: _Sheet, levels: list[Level], layout: _Layout, alive, names) -> None:
    """Every level's nodes (grey when no live edge touches them) and their names; a
    multiplication node is a white disc with a ×."""
    r = NODE_RADIUS
    dims = [level.n_nodes for level in levels]
    for level, d in enumerate(dims):
        y = layout.level_y(level)
        xs = layout.node_x(d)
        n_add = levels[level].n_add
        colors = ["black" if a else COLORS["pruned"] for a in alive[level]]
        sheet.ax.scatter(
            xs[:n_add],
            np.full(n_add, y),
            s=(2 * r * 72) ** 2,
            c=colors[:n_add],
            zorder=6,
            linewidths=0,
        )
        if d > n_add:
            mult = xs[n_add:]
            sheet.ax.scatter(
                mult,
                np.full(len(mult), y),
                s=(3 * r * 72) ** 2,
                c="white",
                edgecolors=colors[n_add:],
                linewidths=0.9,
                zorder=6,
            )
            for x, color in zip(mult, colors[n_add:]):
                sheet.text(x, y, "×", 8, ha="center", va="center", color=color, zorder=7)
        gap = layout.plot_w / d
        size = 9 if gap >= 0.4 else 6
        for k, x in enumerate(xs):
            name = node_name(level, k, dims, names)
            if gap < 0.2 and k not in (0, d - 1):  # too crowded to name every node
                continue
            if level == 0:
                sheet.text(x, y - 0.12, name, size, ha="center", va="top")
            elif level == len(dims) - 1:
                sheet.text(x, y + 0.12, name, size, ha="center", va="bottom")
            elif gap >= 0.4:
                sheet.text(x + 0.1, y + 0.03, name, 5.5, ha="left", va="bottom", color="0.45")


def _network_page(curves: list[LayerCurves], levels, title: str, formulas, names) -> Figure:
    dims = [level.n_nodes for level in levels]
    n_edges = [c.ys.shape[1] * c.ys.shape[2] for c in curves]
    layout = _Layout(plot_w=min(max(0.42 * max(n_edges), 0.6 * max(dims), 4.5), 24.0))
    wrapped = _formula_lines(formulas, layout.plot_w)
    top = 0.95 + 0.2 * len(wrapped)
    width = layout.plot_w + 2 * layout.left
    height = layout.bottom + layout.level_h * len(curves) + top
    sheet = _Sheet(width, height)
    colors = _function_colors(curves)
    alive = [np.zeros(d, dtype=bool) for d in dims]
    for c in curves:
        _draw_edges(sheet, c, layout, colors, alive, levels)
    _draw_nodes(sheet, levels, layout, alive, names)
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
            layout.left,
            height - 0.72 - 0.2 * k,
            line,
            7.5,
            ha="left",
            va="top",
            family="monospace",
        )
    return sheet.finish()


@matplotlib.rc_context(STYLE)
def network_figure(
    model, x, symbolic: SymbolicResult | None = None, title: str | None = None
) -> Figure:
    """The network diagram (see the module docstring); x: model inputs (N, n_in). The formulas
    of an ok symbolic result are written above it."""
    curves = layer_curves(model, x, symbolic)
    levels = _levels(model)
    formulas = symbolic.formulas if symbolic is not None and symbolic.ok else []
    widths = [str(level.width()).replace(" ", "") for level in levels]
    head = f"{title + ': ' if title else ''}KAN {'-'.join(widths)}"
    names = getattr(model, "input_names", None)
    return _network_page(curves, levels, head, formulas, names)
