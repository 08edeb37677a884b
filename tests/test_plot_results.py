"""plot_results.py: the loss history and the target/model comparison pages."""

import pytest
from plot_cases import TARGETS, make_config, make_metrics, make_model, make_samples, rendered_pages

import plot_results


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
def test_comparison_plot_for_every_kind_of_run(dims, target):
    target = TARGETS[dims[0]] if target == "default" else target
    samples = make_samples(dims, target)
    model = make_model(dims, samples)
    config = make_config(dims, target, None if target else "data.csv")
    pages = plot_results.comparison_figures(model, samples, config, make_metrics(model, samples))
    assert rendered_pages(pages) == dims[-1]


@pytest.mark.parametrize("known", [True, False], ids=["trained-range", "samples-range"])
def test_comparison_spans_the_range_the_model_was_trained_on(known):
    samples = make_samples([1, 3, 1], TARGETS[1])
    model = make_model([1, 3, 1], samples)
    model.input_range = [[-2.0, 1.5]] if known else None
    config = make_config([1, 3, 1], TARGETS[1])
    (page,) = plot_results.comparison_figures(model, samples, config, {})
    target_curve = page.axes[0].lines[0].get_xdata()
    x = samples["x_train"][:, 0]
    expected = (-2.0, 1.5) if known else (x.min(), x.max())
    assert (target_curve[0], target_curve[-1]) == expected


def test_loss_plot_survives_sparse_and_degenerate_histories():
    cases = [  # a full history is drawn by the plot_all and plot_run tests
        {"step": [0, 1, 2], "train_rmse": [1.0, float("nan"), 0.0], "test_rmse": [0.0, 0.0, 0.0]},
        {},
    ]
    for history in cases:
        assert rendered_pages([plot_results.loss_figure(history, "title")]) == 1


def test_input_importance_is_a_bar_per_input_with_the_threshold():
    figure = plot_results.importance_figure({"m": 0.7, "v": 1.3, "noise": 1e-4}, threshold=0.01)
    ax = figure.axes[0]
    widths = sorted(round(p.get_width(), 6) for p in ax.patches)
    assert widths == [0.0001, 0.7, 1.3]
    labels = {t.get_text() for t in ax.get_yticklabels()}
    assert {"m", "v", "noise"} <= labels
    assert any(abs(line.get_xdata()[0] - 0.01) < 1e-12 for line in ax.lines)
