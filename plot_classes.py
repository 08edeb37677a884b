"""Figures of a classification run (``task: "classification"``): the log-loss history, the
confusion matrix of the test set and, for two inputs, the decision regions with the test points.
Drawn into the run folder by plots.py (file names in run_folder.py)."""

import numpy as np
import torch
from matplotlib.figure import Figure

import classes
from arrays import as_tensor_like

REGION_GRID = 200  # points per axis of the decision-region raster


def loss_figure(history: dict, title: str | None = None) -> Figure:
    """The cross-entropy (log-loss) per step of every split the history holds."""
    fig = Figure(figsize=(8.2, 4.4), layout="constrained")
    ax = fig.add_subplot()
    steps = np.asarray(history.get("step") or [], dtype=float)
    for key, label in (("train_loss", "train"), ("val_loss", "validation"), ("test_loss", "test")):
        values = np.asarray(history.get(key) or [], dtype=float)
        if values.size and steps.size == values.size and np.isfinite(values).any():
            ax.plot(steps, values, label=label)
    if ax.get_legend_handles_labels()[0]:
        ax.set_yscale("log")
        ax.legend(frameon=False)
    ax.set_xlabel("step")
    ax.set_ylabel("log-loss (cross-entropy)")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{title}: log-loss during training" if title else "log-loss during training")
    return fig


def _logits(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(as_tensor_like(x, next(model.parameters()))).cpu().numpy()


def confusion_figure(model, samples: dict, names: list[str], title: str | None = None) -> Figure:
    """The test set's (true class, predicted class) counts; the training set without test rows."""
    split = "test" if len(samples["x_test"]) else "train"
    x, y = samples[f"x_{split}"], samples[f"y_{split}"]
    table = classes.confusion(_logits(model, x), y, len(names))
    size = 2.5 + 0.45 * len(names)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(table, cmap="Blues")
    fig.colorbar(image, ax=ax, label="points")
    for (i, j), count in np.ndenumerate(table):
        dark = count > table.max() / 2
        ax.text(j, i, str(count), ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(table) / max(1, table.sum())
    head = f"{title}: " if title else ""
    ax.set_title(f"{head}{split} set, accuracy {accuracy:.3f} ({table.sum()} points)")
    return fig


def regions_figure(model, samples: dict, names: list[str], input_names, title=None) -> Figure:
    """Two inputs: the predicted class over the inputs' range, with the test points on it
    (coloured by their true class; a black edge marks a misclassified one)."""
    split = "test" if len(samples["x_test"]) else "train"
    x, y = samples[f"x_{split}"], samples[f"y_{split}"].argmax(axis=1)
    both = np.concatenate([samples["x_train"], samples["x_test"]])
    lo, hi = both.min(axis=0), both.max(axis=0)
    pad = 0.05 * np.where(hi > lo, hi - lo, 1.0)
    g0, g1 = (np.linspace(lo[k] - pad[k], hi[k] + pad[k], REGION_GRID) for k in range(2))
    mesh = np.stack(np.meshgrid(g0, g1), axis=-1).reshape(-1, 2)
    region = _logits(model, mesh).argmax(axis=1).reshape(REGION_GRID, REGION_GRID)
    fig = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.add_subplot()
    cmap = "tab10" if len(names) <= 10 else "tab20"
    extent = (g0[0], g0[-1], g1[0], g1[-1])
    vmax = len(names) - 1
    ax.imshow(
        region,
        origin="lower",
        extent=extent,
        aspect="auto",
        cmap=cmap,
        vmin=0,
        vmax=vmax,
        alpha=0.35,
        interpolation="nearest",
    )
    wrong = _logits(model, x).argmax(axis=1) != y
    ax.scatter(
        x[:, 0],
        x[:, 1],
        c=y,
        cmap=cmap,
        vmin=0,
        vmax=vmax,
        s=14,
        edgecolors=np.where(wrong, "black", "none"),
        linewidths=0.8,
    )
    ax.set_xlabel(input_names[0])
    ax.set_ylabel(input_names[1])
    head = f"{title}: " if title else ""
    ax.set_title(f"{head}decision regions, {split} points ({int(wrong.sum())} misclassified)")
    return fig
