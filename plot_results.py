"""How well a run did: the RMSE history of its training and the model against its target.

- `loss_figure`: train / validation / test RMSE per step (log scale), grid refinements (dashed,
  labelled with the new grid size), grid-range updates, pruning, fine-tune phases.
- `importance_figure`: every input's attribution score, as bars.
- `comparison_figures`: one page per output, target vs model: surfaces for 2 inputs, curves for
  1, slices through the two most important inputs for more, predicted-vs-true on the test set
  for data files (no target expression); each with an info box (the run's key numbers).

Figures are plain `Figure` objects (no pyplot). Margins are set by hand where a layout engine
would double the time.
"""

import math
import textwrap

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

import targets
from arrays import as_tensor_like, rmse, to_numpy
from errors import UserError
from plot_style import COLORS, STYLE, limits, thin_rows

PHASE_LABELS = {"prune_finetune": "prune fine-tune", "symbolic_finetune": "symbolic fine-tune"}
RMSE_CURVES = (  # (history key, label, colour)
    ("train_rmse", "train", "train"),
    ("val_rmse", "validation", "val"),
    ("test_rmse", "test", "test"),
)


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


def _draw_rmse(ax, history: dict, steps: np.ndarray) -> None:
    """The RMSE curves of the history (non-positive values left out) on a log axis."""
    shown = []
    for key, label, color in RMSE_CURVES:
        values = np.asarray(history.get(key) or [], dtype=float)
        if values.size == 0 or values.size != steps.size:
            continue
        values = np.where(np.isfinite(values) & (values > 0), values, np.nan)
        shown += list(values[np.isfinite(values)])
        ax.plot(steps, values, color=COLORS[color], lw=1.3, label=f"{label} RMSE")
    if shown:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.yaxis.set_minor_formatter(_minor_log_labels(math.log10(max(shown) / min(shown))))


def _draw_phases(ax, history: dict) -> None:
    """Fine-tune phases shaded and named at the bottom."""
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


def _draw_events(ax, events: list) -> list[tuple[float, str]]:
    """Grid-range updates (markers on top), refinements and pruning (vertical lines); returns
    the (step, text) labels of the lines."""
    on_x = ax.get_xaxis_transform()
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
    styles = {"refine": ("--", 0.8, "refinement"), "prune": ("-", 1.1, "pruning")}
    first = {"refine": True, "prune": True}
    for event in events:
        kind, step = event.get("kind"), float(event["step"])
        if kind not in styles:
            continue
        ls, lw, name = styles[kind]
        label = name if first[kind] else None
        ax.axvline(step, ls=ls, lw=lw, color=COLORS[kind], zorder=1, label=label)
        first[kind] = False
        if kind == "refine":
            labels.append((step, _grid_label(event.get("grid_sizes"))))
        else:
            after = "-".join(map(str, event.get("dims_after") or []))
            labels.append((step, f"pruned → {after}" if after else "pruned"))
    return labels


def _draw_event_labels(ax, labels: list[tuple[float, str]], xlo: float, xhi: float) -> None:
    """The labels, rotated, left out where one would touch the previous one."""
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
            transform=ax.get_xaxis_transform(),
            rotation=90,
            ha="right",
            va="top",
            fontsize=6.5,
            color="0.25",
            clip_on=True,
            bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.7},
        )


@matplotlib.rc_context(STYLE)
def loss_figure(history: dict, title: str | None = None) -> Figure:
    """The RMSE history (history as in history.json: step, train_rmse, test_rmse, val_rmse,
    events, phases; any of them may be missing)."""
    history = history or {}
    fig = Figure(figsize=(8.2, 4.4), layout="constrained")
    ax = fig.add_subplot()
    steps = np.asarray(history.get("step") or [], dtype=float)
    _draw_rmse(ax, history, steps)
    events = history.get("events") or []
    span = [s for s in steps] + [float(e["step"]) for e in events]
    span += [float(p[k]) for p in history.get("phases") or [] for k in ("start", "end")]
    if span:
        lo, hi = min(span), max(span)
        ax.set_xlim(lo, hi if hi > lo else lo + 1)
    xlo, xhi = ax.get_xlim()
    _draw_phases(ax, history)
    _draw_event_labels(ax, _draw_events(ax, events), xlo, xhi)
    if not steps.size:
        ax.text(0.5, 0.5, "no history recorded", transform=ax.transAxes, ha="center")
    ax.set_xlabel("step")
    ax.set_ylabel("RMSE")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(f"{title}: RMSE during training" if title else "RMSE during training")
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside right upper", frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------
# Input importance


@matplotlib.rc_context(STYLE)
def importance_figure(
    importance: dict[str, float], threshold: float | None = None, title: str | None = None
) -> Figure:
    """A horizontal bar per input: its attribution score (metrics.json "input_importance", the
    trained network's, before any pruning), largest first, with the share of the total; a
    dashed line at the pruning threshold when given."""
    names = sorted(importance, key=lambda n: -importance[n])
    values = np.array([importance[n] for n in names], dtype=float)
    fig = Figure(figsize=(6.4, 1.2 + 0.28 * len(names)), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(names))[::-1]
    ax.barh(y, values, color=COLORS["train"], height=0.65)
    total = values.sum()
    for yk, v in zip(y, values):
        share = f"  {v:.3g} ({100 * v / total:.1f} %)" if total > 0 else f"  {v:.3g}"
        ax.text(v, yk, share, va="center", ha="left", fontsize=7)
    ax.set_yticks(y, names)
    if threshold is not None and threshold > 0:
        ax.axvline(threshold, color="0.4", ls="--", lw=0.9, label=f"prune_threshold {threshold:g}")
        ax.legend(loc="lower right", frameon=False, fontsize=7)
    ax.set_xlim(0, 1.25 * max(float(values.max(initial=0.0)), threshold or 0.0, 1e-12))
    ax.set_xlabel("attribution score (KAN 2.0; the outputs score 1)")
    head = "input importance"
    ax.set_title(f"{title}: {head}" if title else head)
    return fig


# ---------------------------------------------------------------------------------------------
# Comparison with the target


def _target(config: dict, n_in: int, n_out: int, names=None):
    """The compiled target expression x (N, n_in) → (N, n_out) as numpy, or None (data file, or
    a model that no longer takes the inputs x1..xn the expression is written in: ``names``)."""
    text = config.get("target_function")
    if text is None or config.get("data_file"):
        return None
    if names is not None and list(names) != [f"x{i + 1}" for i in range(n_in)]:
        return None
    try:
        f = targets.compile_target(text, n_in)
    except UserError:
        return None
    if (1 if isinstance(text, str) else len(text)) != n_out:
        return None
    return lambda x: to_numpy(f(torch.as_tensor(x, dtype=torch.float64)))


def _input_ranges(model, samples, n_in: int) -> np.ndarray:
    """(n_in, 2): the range the model was trained on (``model.input_range``), or the training
    samples' range when the model does not know it."""
    if model.input_range is not None:
        return np.asarray(model.input_range, dtype=float).reshape(n_in, 2)
    x = to_numpy(samples["x_train"]).reshape(-1, n_in)
    return np.column_stack([x.min(axis=0), x.max(axis=0)])


@torch.no_grad()
def _predict(model, x: np.ndarray) -> np.ndarray:
    """(N, n_in) → (N, n_out) model output, float64."""
    return to_numpy(model(as_tensor_like(x, model.layers[0].knots)))


def _info_text(model, metrics: dict, config: dict) -> str:
    def number(key, fmt, fallback=None, unit=""):
        v = metrics.get(key, fallback)
        ok = isinstance(v, int | float) and not isinstance(v, bool)
        return format(v, fmt) + unit if ok else "–"

    target = config.get("target_function")
    source = target if target is not None else config.get("data_file") or "–"
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
    ax_s.scatter(y_true, y_pred, s=5, alpha=0.5, color=COLORS["model"], linewidths=0)
    lo, hi = limits(np.concatenate([y_true, y_pred]), pad=0.03)
    ax_s.plot([lo, hi], [lo, hi], color=COLORS["target"], lw=0.8, ls="--", label="y = x")
    ax_s.set_xlim(lo, hi)
    ax_s.set_ylim(lo, hi)
    ax_s.set_aspect("equal")
    ax_s.set_xlabel(f"true {name}")
    ax_s.set_ylabel(f"predicted {name}")
    ax_s.set_title(f"test set: RMSE {rmse(y_pred, y_true):.3g}")
    ax_s.legend(loc="upper left", frameon=False)
    ax_h.hist(y_pred - y_true, bins=40, color=COLORS["error"], alpha=0.75)
    ax_h.set_xlabel(f"predicted − true {name}")
    ax_h.set_ylabel("test points")
    ax_h.set_title("prediction error")


def _grid(ranges: np.ndarray, n: int):
    """Two (n, n) meshes over ranges[0] × ranges[1]."""
    return np.meshgrid(np.linspace(*ranges[0], n), np.linspace(*ranges[1], n))


def _top(height: float, n_out: int) -> float:
    """The top of the plots as a fraction of the page height (room for the titles)."""
    return 1 - (0.75 if n_out > 1 else 0.4) / height


def _test_page(model, samples, ranges, target, info, o: int, scores) -> Figure:
    """Predicted vs true on the test set and its error histogram; below, for a target of more
    than two inputs, slices through the two most important ones."""
    n_in, n_out = model.layer_dims[0], model.layer_dims[-1]
    x_test = to_numpy(samples["x_test"]).reshape(-1, n_in)
    y_test = to_numpy(samples["y_test"]).reshape(len(x_test), -1)[:, o]
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
        top=_top(height, n_out),
        wspace=0.3,
        hspace=0.35,
    )
    _scatter_and_histogram(
        fig.add_subplot(gs[0, 0]),
        fig.add_subplot(gs[0, 1]),
        y_test,
        _predict(model, x_test)[:, o],
        f"y{o + 1}",
    )
    _info_box(fig.add_subplot(gs[0, 2]), info)
    if target is not None:
        _slices(fig, gs, model, ranges, target, o, scores)
    return fig


def _curve_page(model, samples, ranges, target, info, o: int) -> Figure:
    """One input: target and model curves over the training data, |error| below."""
    name = f"y{o + 1}"
    fig = Figure(figsize=(11, 6))
    gs = fig.add_gridspec(
        2,
        2,
        width_ratios=[2.2, 1],
        height_ratios=[2.2, 1],
        left=0.08,
        right=0.99,
        bottom=0.09,
        top=_top(6, model.layer_dims[-1]),
        wspace=0.1,
        hspace=0.2,
    )
    ax, ax_e = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[1, 0])
    xs = np.linspace(*ranges[0], 400)[:, None]
    yt, ym = target(xs)[:, o], _predict(model, xs)[:, o]
    x_train = to_numpy(samples["x_train"]).reshape(-1, 1)
    y_train = to_numpy(samples["y_train"]).reshape(len(x_train), -1)[:, o]
    shown = thin_rows(np.column_stack([x_train[:, 0], y_train]), 500)
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
    return fig


def _surface_page(model, ranges, target, info, o: int) -> Figure:
    """Two inputs: target, model and |error| surfaces over the input range."""
    name = f"y{o + 1}"
    fig = Figure(figsize=(16, 5.2))
    gs = fig.add_gridspec(
        1,
        4,
        width_ratios=[1, 1, 1, 0.85],
        left=0.0,
        right=0.99,
        bottom=0.03,
        top=_top(5.2, model.layer_dims[-1]),
    )
    X1, X2 = _grid(ranges, 40)
    pts = np.column_stack([X1.ravel(), X2.ravel()])
    zt = target(pts)[:, o].reshape(X1.shape)
    zm = _predict(model, pts)[:, o].reshape(X1.shape)
    vmin, vmax = limits(np.concatenate([zt.ravel(), zm.ravel()]), pad=0.0)
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
    vmin, vmax = limits(np.concatenate([zt.ravel(), zm.ravel()]), pad=0.0)
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
def comparison_figures(model, samples, config: dict, metrics: dict) -> list[Figure]:
    """One page per output (see the module docstring). samples: x_train, y_train, x_test,
    y_test arrays (as samples.npz holds them); config: the run's (target_function, data_file,
    project_name are read); metrics: metrics.json, for the info box."""
    n_in, n_out = model.layer_dims[0], model.layer_dims[-1]
    target = _target(config, n_in, n_out, getattr(model, "input_names", None))
    ranges = _input_ranges(model, samples, n_in)
    info = _info_text(model, metrics or {}, config)
    scores = None
    if target is not None and n_in > 2:
        with torch.no_grad():
            x = as_tensor_like(thin_rows(to_numpy(samples["x_train"])), model.layers[0].knots)
            scores = to_numpy(model.edge_scores(x)[1][0])
    pages = []
    for o in range(n_out):
        if target is None or n_in > 2:
            fig = _test_page(model, samples, ranges, target, info, o, scores)
        elif n_in == 1:
            fig = _curve_page(model, samples, ranges, target, info, o)
        else:
            fig = _surface_page(model, ranges, target, info, o)
        if n_out > 1:
            fig.suptitle(f"output y{o + 1} of {n_out}", weight="bold")
        pages.append(fig)
    return pages
