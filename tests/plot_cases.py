"""Stand-in runs for the plot tests: samples, models, histories, metrics, configs, symbolic
results and whole run folders, and page counts of the PDFs and figures they give."""

import io
import re
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_pdf import PdfPages

import config as config_module
import run_folder
from simple_kan import SimpleKAN
from symbolic import SymbolicResult
from targets import compile_target

TARGETS = {1: "sin(3*x1)", 2: "exp(sin(pi*x1) + x2**2)", 3: "x1*x2 + sin(x3)"}


def pdf_pages(data: bytes) -> int:
    """Page count of a PDF written by matplotlib (its page objects are not compressed)."""
    assert data.startswith(b"%PDF"), "not a PDF"
    return len(re.findall(rb"/Type\s*/Page\b", data))


def file_pages(path: Path) -> int:
    return pdf_pages(path.read_bytes())


def rendered_pages(figures) -> int:
    """Draw the figures into an in-memory PDF, as `plots.plot_all` does; its page count."""
    buffer = io.BytesIO()
    with PdfPages(buffer) as pdf:
        for fig in figures:
            pdf.savefig(fig)
    return pdf_pages(buffer.getvalue())


def make_samples(dims, target, n_train=300, n_test=100, seed=0):
    rng = np.random.default_rng(seed)
    x_train = rng.uniform(-1, 1, (n_train, dims[0]))
    x_test = rng.uniform(-1, 1, (n_test, dims[0]))
    if target is None:
        weights = rng.normal(size=(dims[0], dims[-1]))
        y_train, y_test = np.tanh(x_train @ weights), np.tanh(x_test @ weights)
    else:
        f = compile_target(target, dims[0])
        y_train = f(torch.from_numpy(x_train)).numpy()
        y_test = f(torch.from_numpy(x_test)).numpy()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def make_model(dims, samples, seed=0):
    torch.manual_seed(seed)
    model = SimpleKAN(dims, grid_size=5)
    x = torch.as_tensor(samples["x_train"], dtype=torch.float32)
    model.update_grid_range(x)
    model.refine(x, k=3)
    return model


def make_history(n_steps=200, dims=(2, 3, 1), validation=True):
    steps = list(range(0, n_steps, 10))
    decay = np.exp(-np.asarray(steps) / 80.0)
    history = {
        "step": steps,
        "train_rmse": list(0.5 * decay + 1e-3),
        "test_rmse": list(0.6 * decay + 2e-3),
        "events": [
            {"step": 0, "kind": "grid_range"},
            {"step": 50, "kind": "grid_range"},
            {"step": 80, "kind": "refine", "grid_sizes": [8] * (len(dims) - 1)},
            {"step": 120, "kind": "refine", "grid_sizes": [13] * (len(dims) - 1)},
            {"step": 150, "kind": "prune", "dims_before": list(dims), "dims_after": list(dims)},
        ],
        "phases": [
            {"name": "train", "start": 0, "end": 150},
            {"name": "prune_finetune", "start": 150, "end": 180},
            {"name": "symbolic_finetune", "start": 180, "end": n_steps - 10},
        ],
    }
    if validation:
        history["val_rmse"] = list(0.55 * decay + 1.5e-3)
    return history


def make_metrics(model, samples, name="test_run", formula=None):
    metrics = {
        "project_name": name,
        "train_rmse": 0.01,
        "test_rmse": 0.02,
        "num_parameters": model.num_parameters,
        "layer_dims": model.layer_dims,
        "grid_sizes": model.grid_sizes,
        "spline_degree": model.spline_degree,
        "steps": 200,
        "wall_time_s": 1.5,
        "training_points": len(samples["x_train"]),
        "test_points": len(samples["x_test"]),
    }
    if formula is not None:
        metrics["formula"] = [formula]
        metrics["formula_test_rmse"] = 0.03
    return metrics


def make_config(dims, target, data_file=None):
    return dict(
        config_module.DEFAULTS,
        layer_dims=list(dims),
        target_function=target,
        data_file=data_file,
        grid_size=5,
        project_name="test_run",
    )


def make_symbolic(layer_fits) -> SymbolicResult:
    """An ok symbolic result of these fits, formula x1*x2 (edge R^2 = each fit's r2)."""
    edge_r2 = [{edge: fit.r2 for edge, fit in fits.items()} for fits in layer_fits]
    return SymbolicResult(["x1*x2"], ["x_{1} x_{2}"], [], layer_fits, edge_r2, [], True)


def write_run(run_dir: Path, dims=(2, 3, 1), target="default", symbolic=None):
    """A complete run folder as the pipeline writes it; returns (model, config, samples).
    symbolic: a symbolic.json document."""
    target = TARGETS[dims[0]] if target == "default" else target
    samples = make_samples(dims, target)
    model = make_model(dims, samples)
    config = make_config(dims, target, None if target else "data.csv")
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save_model(run_dir, config)
    run = run_folder.RunFolder(run_dir, echo=None)
    run.write_history(make_history(dims=dims))
    run.write_metrics(make_metrics(model, samples))
    run.write_samples(samples)
    if symbolic is not None:
        run.write_symbolic(symbolic)
    return model, config, samples


def expected_files(n_layers: int) -> list[str]:
    layers = [run_folder.activations_plot_file(n) for n in range(1, n_layers + 1)]
    return [
        run_folder.LOSS_PLOT_FILE,
        run_folder.COMPARISON_PLOT_FILE,
        run_folder.NETWORK_PLOT_FILE,
        *layers,
    ]


def layer_input(model, samples, index):
    x = torch.as_tensor(samples["x_train"], dtype=torch.float32)
    with torch.no_grad():
        return model.layer_inputs(x)[index]


# ---------------------------------------------------------------------------------------------
# plot_edges: the plotted data


SYMBOLIC_DOCUMENT = {
    "ok": True,
    "formulas": ["x1*x2"],
    "latex": ["x_{1} x_{2}"],
    "edges": [
        {"layer": 0, "out": 0, "in": 0, "function": "x", "a": 1, "b": 0, "c": 1, "d": 0, "r2": 1}
    ],
    "unfit_edges": [],
}
