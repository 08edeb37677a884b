"""Every figure of a trained KAN and its run: written into its run folder (`plot_all`, or from a
saved run alone by `plot_run`, also ``python plots.py RUN_DIR``), or returned for display in a
notebook (`show`). The figures are drawn by plot_results.py and plot_edges.py; the files are
named in run_folder.py:

- `run_folder.LOSS_PLOT_FILE`: the RMSE history (`plot_results.loss_figure`);
- `run_folder.activations_plot_file` (n), n = 1 .. L (layer 1 is fed by x1..xn): every
  edge's learned function (`plot_edges.activation_figures`);
- `run_folder.COMPARISON_PLOT_FILE`: target vs model with an info box, one page per output
  (`plot_results.comparison_figures`);
- `run_folder.NETWORK_PLOT_FILE`: the network with each edge's function on it
  (`plot_edges.network_figure`);
- `run_folder.IMPORTANCE_PLOT_FILE`: each input's attribution score, when metrics hold
  "input_importance" (`plot_results.importance_figure`).

All plots of a [2, 4, 8, 4, 1] network take about 3 s on two cores.
"""

import sys
import warnings

import matplotlib
from matplotlib.figure import Figure

import cli
import plot_edges
import plot_results
import saved_run
from errors import WriteError
from plot_style import STYLE, thin_rows
from run_folder import (
    ACTIVATIONS_PLOT_FILE,
    COMPARISON_PLOT_FILE,
    CONFUSION_PLOT_FILE,
    IMPORTANCE_PLOT_FILE,
    LOSS_PLOT_FILE,
    NETWORK_PLOT_FILE,
    REGIONS_PLOT_FILE,
    RunFolder,
    activations_plot_file,
)
from symbolic import SymbolicResult


class PlotWarning(RuntimeWarning):
    """A plot that could not be drawn; the run goes on without it."""


def plot_all(
    run: RunFolder,
    model,
    x_train,
    history: dict,
    metrics: dict,
    config: dict,
    samples: dict,
    symbolic: SymbolicResult | None = None,
) -> list[str]:
    """Write every plot into the run folder; x_train: the model inputs the edge plots show
    (None: samples["x_train"]). A plot that fails is reported (a `PlotWarning` and a line in the
    returned list) and the others are still drawn."""
    x = thin_rows(samples["x_train"] if x_train is None else x_train)
    title = (metrics or {}).get("project_name") or config.get("project_name")

    jobs = {  # name in a failure: the files it draws, {file: its pages}
        LOSS_PLOT_FILE: lambda: {LOSS_PLOT_FILE: [plot_results.loss_figure(history, title)]},
        ACTIVATIONS_PLOT_FILE: lambda: {
            activations_plot_file(n): pages
            for n, pages in enumerate(plot_edges.activation_figures(model, x, symbolic), 1)
        },
        COMPARISON_PLOT_FILE: lambda: {
            COMPARISON_PLOT_FILE: plot_results.comparison_figures(model, samples, config, metrics)
        },
        NETWORK_PLOT_FILE: lambda: {
            NETWORK_PLOT_FILE: [plot_edges.network_figure(model, x, symbolic, title)]
        },
    }
    if config.get("task") == "classification":
        _class_jobs(jobs, model, history, samples, metrics, title)
    importance = (metrics or {}).get("input_importance")
    if importance:
        threshold = config.get("prune_threshold") if config.get("prune") else None
        jobs[IMPORTANCE_PLOT_FILE] = lambda: {
            IMPORTANCE_PLOT_FILE: [plot_results.importance_figure(importance, threshold, title)]
        }
    failures = []
    for name, draw in jobs.items():
        try:
            with matplotlib.rc_context(STYLE):  # also while the pages are drawn into the file
                for file, figures in draw().items():
                    run.write_pdf(file, figures)
        except WriteError:  # a full disk or a read-only folder ends the run, clearly
            raise
        except Exception as exc:  # a broken plot must not end the run
            message = f"{name} not written: {type(exc).__name__}: {exc}".splitlines()[0]
            warnings.warn(message, PlotWarning, stacklevel=2)
            failures.append(message)
    return failures


def _class_jobs(jobs: dict, model, history: dict, samples: dict, metrics: dict, title) -> None:
    """A classification's plots replace the RMSE history and the target comparison."""
    import plot_classes

    names = (metrics or {}).get("classes") or [str(k) for k in range(model.layer_dims[-1])]
    jobs.pop(COMPARISON_PLOT_FILE)
    jobs[LOSS_PLOT_FILE] = lambda: {LOSS_PLOT_FILE: [plot_classes.loss_figure(history, title)]}
    jobs[CONFUSION_PLOT_FILE] = lambda: {
        CONFUSION_PLOT_FILE: [plot_classes.confusion_figure(model, samples, names, title)]
    }
    if model.layer_dims[0] == 2:
        jobs[REGIONS_PLOT_FILE] = lambda: {
            REGIONS_PLOT_FILE: [
                plot_classes.regions_figure(model, samples, names, model.input_names, title)
            ]
        }


def plot_run(run_dir) -> list[str]:
    """Re-draw every plot of a saved run from its folder alone (`saved_run.read_run`). Returns
    the failures (see `plot_all`); a missing or unreadable folder raises UserError."""
    saved = saved_run.read_run(run_dir)
    return plot_all(
        RunFolder(run_dir, echo=None),
        saved.model,
        saved.samples["x_train"],
        saved.history,
        saved.metrics,
        saved.config,
        saved.samples,
        saved.symbolic,
    )


def show(
    model,
    x,
    samples: dict | None = None,
    symbolic: SymbolicResult | None = None,
    history: dict | None = None,
    target: str | list[str] | None = None,
) -> dict[str, Figure | list]:
    """The figures `plot_all` writes, returned instead (e.g. to display in a notebook):
    "activations" (per layer, its pages) and "network" always; "comparison" (one page per
    output) when samples are given: with ``target`` (an expression in x1..xn as in the config,
    one per output) and 1 or 2 inputs, the fit against it (curve, or surfaces); else predicted
    vs true on samples["x_test"], samples["y_test"]; "loss" when history (e.g. `fitting.fit`'s)
    is given. They are built in
    the plots' style; matplotlib makes some tick labels only when a figure is drawn, so display
    or save them inside ``matplotlib.rc_context(plot_style.STYLE)`` to get the PDFs' exactly."""
    x = thin_rows(x)
    figures = {
        "activations": plot_edges.activation_figures(model, x, symbolic),
        "network": plot_edges.network_figure(model, x, symbolic),
    }
    if samples is not None:
        cfg = {"target_function": target}
        figures["comparison"] = plot_results.comparison_figures(model, samples, cfg, {})
    if history is not None:
        figures["loss"] = plot_results.loss_figure(history)
    return figures


def _main(argv: list[str]) -> int:
    parser = cli.ArgumentParser(
        prog="plots.py", description="Re-draw every plot of a saved pykan_mit run folder."
    )
    parser.add_argument("run_dir", help="run folder written by pykan_mit.py")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PlotWarning)
        failures = plot_run(args.run_dir)
    for line in failures:
        print(f"warning: {line}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Exit code: 0 every plot written, 1 some failed (each named on stderr), 2 bad arguments or
    run folder (one line on stderr)."""
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
