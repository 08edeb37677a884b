import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import config as config_module
import plots
from simple_kan import SimpleKAN
from targets import compile_target

TARGETS = {1: "sin(3*x1)", 2: "exp(sin(pi*x1) + x2**2)", 3: "x1*x2 + sin(x3)"}


def pdf_pages(path: Path) -> int:
    """Page count of a PDF written by matplotlib (its page objects are not compressed)."""
    data = path.read_bytes()
    assert data.startswith(b"%PDF"), f"{path.name} is not a PDF"
    return len(re.findall(rb"/Type\s*/Page\b", data))


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


def write_run(run_dir: Path, dims=(2, 3, 1), target="default", symbolic=None):
    """A complete run folder as the pipeline writes it; returns (model, config, samples)."""
    target = TARGETS[dims[0]] if target == "default" else target
    samples = make_samples(dims, target)
    model = make_model(dims, samples)
    config = make_config(dims, target, None if target else "data.csv")
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save_model(run_dir, config)
    (run_dir / plots.HISTORY_FILE).write_text(json.dumps(make_history(dims=dims)))
    (run_dir / plots.METRICS_FILE).write_text(json.dumps(make_metrics(model, samples)))
    np.savez(run_dir / plots.SAMPLES_FILE, **samples)
    if symbolic is not None:
        (run_dir / plots.SYMBOLIC_FILE).write_text(json.dumps(symbolic))
    return model, config, samples


def expected_files(n_layers: int) -> list[str]:
    layers = [plots.ACTIVATIONS_FILE.format(n=n) for n in range(1, n_layers + 1)]
    return [plots.LOSS_FILE, plots.COMPARISON_FILE, plots.NETWORK_FILE, *layers]


def layer_input(model, samples, index):
    x = torch.as_tensor(samples["x_train"], dtype=torch.float32)
    with torch.no_grad():
        return model.layer_inputs(x)[index]


# ---------------------------------------------------------------------------------------------
# The plotted data


def test_activation_curve_is_the_layers_edge_activation():
    samples = make_samples([2, 4, 3, 1], TARGETS[2])
    model = make_model([2, 4, 3, 1], samples)
    layer, x_in = model.layers[1], layer_input(model, samples, 1)
    j, i = 2, 1
    xs, ys = plots.activation_curve(layer, x_in, j, i, num=150)
    assert xs.shape == ys.shape == (150,)
    assert xs[0] < x_in[:, i].min() and xs[-1] > x_in[:, i].max()  # the data range and a bit
    sweep = torch.rand(150, layer.in_dim)  # the other inputs do not matter for edge (j, i)
    sweep[:, i] = torch.as_tensor(xs)
    with torch.no_grad():
        expected = layer.edge_activations(sweep)[:, j, i].double().numpy()
    np.testing.assert_allclose(ys, expected, rtol=1e-6, atol=1e-7)


def test_curves_into_an_output_sum_to_the_layer_output():
    samples = make_samples([2, 4, 3, 1], TARGETS[2])
    model = make_model([2, 4, 3, 1], samples)
    layer, x_in = model.layers[1], layer_input(model, samples, 1)
    xs, ys = plots.activation_curves(layer, x_in)
    for k in (0, 77, len(xs) - 1):
        with torch.no_grad():
            out = layer(torch.as_tensor(xs[k : k + 1], dtype=torch.float32))[0].double().numpy()
        np.testing.assert_allclose(ys[k].sum(axis=1), out, rtol=1e-5, atol=1e-6)


def test_edge_opacity_follows_the_paper_and_hides_pruned_edges():
    samples = make_samples([2, 3, 1], TARGETS[2])
    model = make_model([2, 3, 1], samples)
    model.layers[0].mask[1, 0] = 0
    first = plots.layer_curves(model, samples["x_train"])[0]
    alpha = plots._edge_alpha(first)
    assert alpha[1, 0] == 0
    live = first.mask != 0
    best = first.score[live].max()
    expected = np.maximum(np.tanh(plots.BETA * first.score / best), plots.MIN_ALPHA)
    np.testing.assert_allclose(alpha[live], expected[live])


# ---------------------------------------------------------------------------------------------
# The files


def test_plot_all_writes_every_file_quickly(tmp_path):
    dims = [2, 4, 8, 4, 1]
    model, config, samples = write_run(tmp_path, dims)
    history = json.loads((tmp_path / plots.HISTORY_FILE).read_text())
    metrics = make_metrics(model, samples, formula="exp(sin(pi*x1) + x2**2)")
    start = time.perf_counter()
    failures = plots.plot_all(
        tmp_path, model, samples["x_train"], history, metrics, config, samples
    )
    elapsed = time.perf_counter() - start
    assert failures == []
    for name in expected_files(len(dims) - 1):
        assert pdf_pages(tmp_path / name) == 1, name
    assert elapsed < 15.0, f"plot_all took {elapsed:.1f} s"


def test_a_layer_with_more_than_64_edges_spans_pages(tmp_path):
    samples = make_samples([9, 8], "x1 + x9")  # one layer, 72 edges
    model = make_model([9, 8], samples)
    paths = plots.plot_activations(model, samples["x_train"], tmp_path)
    assert [p.name for p in paths] == ["layer_1_activations.pdf"]
    assert pdf_pages(paths[0]) == 2  # 8 outputs x (5 + 4) inputs


def test_a_very_wide_layer_shows_its_most_important_edges(monkeypatch):
    monkeypatch.setattr(plots, "MAX_GRID", 3)
    samples = make_samples([5, 4], "x1")
    model = make_model([5, 4], samples)
    with torch.no_grad():
        model.layers[0].base_weight.mul_(torch.tensor([0.01, 1.0, 0.01, 1.0, 1.0]))
    (c,) = plots.layer_curves(model, samples["x_train"])
    assert plots._strongest(c.score.sum(axis=0)) == [1, 3, 4]
    (page,) = plots._activation_pages(c)
    titles = [t.get_text() for t in page.axes[0].texts if " → " in t.get_text()]
    assert len(titles) == 9 and all(t.startswith(("x2 ", "x4 ", "x5 ")) for t in titles)


def test_pruned_edges_and_pruned_models_plot(tmp_path):
    samples = make_samples([2, 5, 1], TARGETS[2])
    model = make_model([2, 5, 1], samples)
    model.layers[0].mask[:, 1] = 0  # x2 feeds nothing
    model.layers[1].mask[0, :] = 0
    x = torch.as_tensor(samples["x_train"], dtype=torch.float32)
    small, _ = model.prune(x, threshold=0.05)
    for k, m in enumerate((model, small)):
        run = tmp_path / str(k)
        run.mkdir()
        assert len(plots.plot_activations(m, samples["x_train"], run)) == 2
        plots.plot_network(m, samples["x_train"], run / plots.NETWORK_FILE)
        assert pdf_pages(run / "layer_1_activations.pdf") == 1
        assert pdf_pages(run / plots.NETWORK_FILE) == 1


@pytest.mark.parametrize(
    "dims, target",
    [
        ([1, 3, 1], "default"),
        ([2, 3, 1], "default"),
        ([3, 3, 1], "default"),
        ([3, 3, 1], None),  # data file
        ([1, 3, 2], ["sin(3*x1)", "x1**2"]),  # one page per output
    ],
    ids=["1-input", "2-input", "3-input", "data-file", "2-outputs"],
)
def test_comparison_plot_for_every_kind_of_run(tmp_path, dims, target):
    target = TARGETS[dims[0]] if target == "default" else target
    samples = make_samples(dims, target)
    model = make_model(dims, samples)
    config = make_config(dims, target, None if target else "data.csv")
    path = tmp_path / plots.COMPARISON_FILE
    plots.plot_comparison(model, samples, config, make_metrics(model, samples), path)
    assert pdf_pages(path) == dims[-1]


def test_loss_plot_survives_sparse_and_degenerate_histories(tmp_path):
    path = tmp_path / plots.LOSS_FILE
    cases = [  # a full history is drawn by the plot_all and plot_run tests
        {"step": [0, 1, 2], "train_rmse": [1.0, float("nan"), 0.0], "test_rmse": [0.0, 0.0, 0.0]},
        {},
    ]
    for history in cases:
        plots.plot_loss(history, path, "title")
        assert pdf_pages(path) == 1


def test_symbolic_fits_are_overlaid_with_their_formula(tmp_path):
    samples = make_samples([2, 3, 1], TARGETS[2])
    model = make_model([2, 3, 1], samples)
    symbolic = {
        "ok": True,
        "formulas": ["exp(sin(pi*x1) + x2**2)"],
        "edges": [
            {
                "layer": 0,
                "out": 1,
                "in": 0,
                "function": "sin",
                "a": 3.14,
                "b": 0.0,
                "c": 0.5,
                "d": 0.1,
                "r2": 0.999,
            },
            {
                "layer": 1,
                "out": 0,
                "in": 2,
                "function": "x^2",
                "a": 1.0,
                "b": -0.5,
                "c": 2.0,
                "d": 0.0,
                "r2": 0.99,
            },
            {
                "layer": 1,
                "out": 0,
                "in": 0,
                "function": "no_such_function",
                "a": 1.0,
                "b": 0.0,
                "c": 1.0,
                "d": 0.0,
                "r2": 0.9,
            },
        ],
    }
    curves = plots.layer_curves(model, samples["x_train"], symbolic)
    sin_fit = curves[0].fits[(1, 0)]
    assert sin_fit.label == "0.5 sin(3.14x) +0.1"
    np.testing.assert_allclose(sin_fit.ys, 0.5 * np.sin(3.14 * curves[0].xs[:, 0]) + 0.1)
    assert curves[1].fits[(0, 2)].label == "2(x-0.5)²"
    assert curves[1].fits[(0, 0)].ys is None  # unknown function: nothing drawn, no failure
    plots.plot_activations(model, samples["x_train"], tmp_path, symbolic)
    plots.plot_network(model, samples["x_train"], tmp_path / plots.NETWORK_FILE, symbolic)
    assert pdf_pages(tmp_path / "layer_2_activations.pdf") == 1
    assert pdf_pages(tmp_path / plots.NETWORK_FILE) == 1


def test_a_failing_plot_is_reported_and_the_others_are_written(tmp_path, monkeypatch):
    model, config, samples = write_run(tmp_path)
    history = json.loads((tmp_path / plots.HISTORY_FILE).read_text())

    def broken(*args):
        raise RuntimeError("no surface today")

    monkeypatch.setattr(plots, "plot_comparison", broken)
    with pytest.warns(plots.PlotWarning, match="no surface today"):
        x = torch.as_tensor(samples["x_train"])  # a float64 tensor for a float32 model
        failures = plots.plot_all(tmp_path, model, x, history, {}, config, samples)
    assert failures == [f"{plots.COMPARISON_FILE} not written: RuntimeError: no surface today"]
    assert not (tmp_path / plots.COMPARISON_FILE).exists()
    for name in expected_files(2):
        if name != plots.COMPARISON_FILE:
            assert pdf_pages(tmp_path / name) == 1, name


# ---------------------------------------------------------------------------------------------
# Re-plotting a saved run


def test_plot_run_redraws_a_saved_run_from_its_folder(tmp_path):
    symbolic = {
        "ok": True,
        "formulas": ["x1*x2"],
        "edges": [
            {
                "layer": 0,
                "out": 0,
                "in": 0,
                "function": "x",
                "a": 1.0,
                "b": 0.0,
                "c": 1.0,
                "d": 0.0,
                "r2": 1.0,
            }
        ],
    }
    write_run(tmp_path, (2, 3, 1), symbolic=symbolic)
    assert plots.plot_run(tmp_path) == []
    for name in expected_files(2):
        assert pdf_pages(tmp_path / name) == 1, name


@pytest.mark.parametrize("problem", ["no folder", "no samples", "bad metrics", "metrics list"])
def test_command_line_bad_run_folder_is_one_line_and_exit_2(tmp_path, capsys, problem):
    run = tmp_path / "run"
    if problem != "no folder":
        write_run(run)
    if problem == "no samples":
        (run / plots.SAMPLES_FILE).unlink()
    if problem == "bad metrics":
        (run / plots.METRICS_FILE).write_text("{not json")
    if problem == "metrics list":
        (run / plots.METRICS_FILE).write_text("[1, 2]")
    assert plots.main([str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "Traceback" not in err
