"""plots.py: every file of a run, failures reported, figures for a notebook, re-plotting a
saved run and the command line."""

import json

import numpy as np
import pytest
import torch
from plot_cases import (
    SYMBOLIC_DOCUMENT,
    expected_files,
    file_pages,
    make_history,
    make_metrics,
    make_model,
    make_samples,
    make_symbolic,
    pdf_pages,
    rendered_pages,
    write_run,
)

import plot_results
import plots
import run_folder
from symbolic_fit import Fit


def test_plot_all_writes_every_file(tmp_path):
    dims = [2, 4, 8, 4, 1]
    model, config, samples = write_run(tmp_path, dims)
    history = json.loads((tmp_path / run_folder.HISTORY_FILE).read_text())
    metrics = make_metrics(model, samples, formula="exp(sin(pi*x1) + x2**2)")
    run = run_folder.RunFolder(tmp_path, echo=None)
    failures = plots.plot_all(run, model, samples["x_train"], history, metrics, config, samples)
    assert failures == []
    for name in expected_files(len(dims) - 1):
        assert file_pages(tmp_path / name) == 1, name


def test_a_failing_plot_is_reported_and_the_others_are_written(tmp_path, monkeypatch):
    model, config, samples = write_run(tmp_path)
    history = json.loads((tmp_path / run_folder.HISTORY_FILE).read_text())

    def broken(*args):
        raise RuntimeError("no surface today")

    monkeypatch.setattr(plot_results, "comparison_figures", broken)
    run = run_folder.RunFolder(tmp_path, echo=None)
    with pytest.warns(plots.PlotWarning, match="no surface today"):
        x = torch.as_tensor(samples["x_train"])  # a float64 tensor for a float32 model
        failures = plots.plot_all(run, model, x, history, {}, config, samples)
    name = run_folder.COMPARISON_PLOT_FILE
    assert failures == [f"{name} not written: RuntimeError: no surface today"]
    assert not (tmp_path / name).exists()
    for other in expected_files(2):
        if other != name:
            assert file_pages(tmp_path / other) == 1, other


def test_show_returns_every_figure_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    samples = make_samples([3, 3, 2], None)
    model = make_model([3, 3, 2], samples)
    symbolic = make_symbolic([{(0, 0): Fit("x", 1.0, 0.0, 1.0, 0.0, 1.0)}, {}])
    figures = plots.show(model, samples["x_train"], samples, symbolic, make_history())
    assert set(figures) == {"activations", "network", "comparison", "loss"}
    assert [len(pages) for pages in figures["activations"]] == [1, 1]
    assert len(figures["comparison"]) == 2  # predicted vs true, one page per output
    assert rendered_pages([figures["network"], figures["loss"]]) == 2
    assert list(tmp_path.iterdir()) == []
    assert set(plots.show(model, samples["x_train"])) == {"activations", "network"}


def test_show_draws_the_fit_against_a_target_expression_for_one_input():
    """With a target, the comparison page of a 1-input model is its curve: the target line
    equals sin(3 x) (numpy) and the model line equals model(x) at the plotted points."""
    samples = make_samples([1, 2, 1], "sin(3*x1)")
    model = make_model([1, 2, 1], samples)
    (page,) = plots.show(model, samples["x_train"], samples, target="sin(3*x1)")["comparison"]
    target_line, model_line = page.axes[0].get_lines()
    xs = target_line.get_xdata()
    assert np.allclose(target_line.get_ydata(), np.sin(3 * xs))
    with torch.no_grad():
        expected = model(torch.tensor(xs[:, None], dtype=torch.float32))[:, 0].double().numpy()
    assert np.allclose(model_line.get_ydata(), expected)


def test_plot_run_redraws_a_saved_run_from_its_folder_identically(tmp_path):
    write_run(tmp_path, (2, 3, 1), symbolic=SYMBOLIC_DOCUMENT)
    assert plots.plot_run(tmp_path) == []
    first = {name: (tmp_path / name).read_bytes() for name in expected_files(2)}
    for name, data in first.items():
        assert pdf_pages(data) == 1, name
    assert plots.plot_run(tmp_path) == []
    assert {name: (tmp_path / name).read_bytes() for name in first} == first  # deterministic


@pytest.mark.parametrize(
    "problem", ["no folder", "no samples", "bad metrics", "metrics list", "bad symbolic"]
)
def test_command_line_bad_run_folder_is_one_line_and_exit_2(tmp_path, capsys, problem):
    run = tmp_path / "run"
    if problem != "no folder":
        write_run(run)
    if problem == "no samples":
        (run / run_folder.SAMPLES_FILE).unlink()
    if problem == "bad metrics":
        (run / run_folder.METRICS_FILE).write_text("{not json")
    if problem == "metrics list":
        (run / run_folder.METRICS_FILE).write_text("[1, 2]")
    if problem == "bad symbolic":
        (run / run_folder.SYMBOLIC_FILE).write_text(json.dumps({"ok": True}))
    assert plots.main([str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [[], ["a", "b", "--bogus"]], ids=["no-argument", "extra"])
def test_command_line_bad_arguments_are_one_line_and_exit_2(capsys, argv):
    assert plots.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1
    assert err.rstrip().endswith("(see --help)")


def test_command_line_exit_1_names_each_failed_plot(tmp_path, capsys, monkeypatch):
    write_run(tmp_path)

    def broken(*args):
        raise RuntimeError("no history today")

    monkeypatch.setattr(plot_results, "loss_figure", broken)
    assert plots.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"warning: {run_folder.LOSS_PLOT_FILE} not written: RuntimeError: no history today\n"
    )
    monkeypatch.undo()
    assert plots.main([str(tmp_path)]) == 0
