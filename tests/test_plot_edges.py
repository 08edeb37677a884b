"""plot_edges.py: every edge's curve, the activation pages and the network diagram."""

import numpy as np
import torch
from plot_cases import TARGETS, layer_input, make_model, make_samples, make_symbolic, rendered_pages

import plot_edges
from symbolic_fit import Fit


def test_activation_curve_is_the_layers_edge_activation():
    samples = make_samples([2, 4, 3, 1], TARGETS[2])
    model = make_model([2, 4, 3, 1], samples)
    layer, x_in = model.layers[1], layer_input(model, samples, 1)
    j, i = 2, 1
    xs, ys = plot_edges.activation_curve(layer, x_in, j, i, num=150)
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
    xs, ys = plot_edges.activation_curves(layer, x_in)
    for k in (0, 77, len(xs) - 1):
        with torch.no_grad():
            out = layer(torch.as_tensor(xs[k : k + 1], dtype=torch.float32))[0].double().numpy()
        np.testing.assert_allclose(ys[k].sum(axis=1), out, rtol=1e-5, atol=1e-6)


def test_edge_opacity_follows_the_paper_and_hides_pruned_edges():
    samples = make_samples([2, 3, 1], TARGETS[2])
    model = make_model([2, 3, 1], samples)
    model.layers[0].mask[1, 0] = 0
    first = plot_edges.layer_curves(model, samples["x_train"])[0]
    alpha = plot_edges.edge_opacity(first)
    assert alpha[1, 0] == 0
    live = first.mask != 0
    best = first.score[live].max()
    expected = np.maximum(np.tanh(plot_edges.BETA * first.score / best), plot_edges.MIN_ALPHA)
    np.testing.assert_allclose(alpha[live], expected[live])


def test_symbolic_fits_are_overlaid_with_their_formula():
    samples = make_samples([2, 3, 1], TARGETS[2])
    model = make_model([2, 3, 1], samples)
    symbolic = make_symbolic(
        [
            {(1, 0): Fit("sin", 3.14, 0.0, 0.5, 0.1, 0.999)},
            {(0, 2): Fit("x^2", 1.0, -0.5, 2.0, 0.0, 0.99), (5, 0): Fit("x", 1, 0, 1, 0, 1)},
        ]
    )
    curves = plot_edges.layer_curves(model, samples["x_train"], symbolic)
    sin_fit = curves[0].fits[(1, 0)]
    assert sin_fit.fit.label() == "0.5 sin(3.14x) +0.1" and sin_fit.r2 == 0.999
    np.testing.assert_allclose(sin_fit.ys, 0.5 * np.sin(3.14 * curves[0].xs[:, 0]) + 0.1)
    assert curves[1].fits[(0, 2)].fit.label() == "2(x-0.5)²"
    assert list(curves[1].fits) == [(0, 2)]  # an edge outside the layer is not drawn
    pages = plot_edges.activation_figures(model, samples["x_train"], symbolic)
    assert [rendered_pages(layer) for layer in pages] == [1, 1]
    diagram = plot_edges.network_figure(model, samples["x_train"], symbolic, "run")
    assert rendered_pages([diagram]) == 1
    texts = [t.get_text() for t in diagram.axes[0].texts]
    assert "y1 = x1*x2" in texts and "sin" in texts and "x^2" in texts


def test_a_layer_with_more_than_64_edges_spans_pages():
    samples = make_samples([9, 8], "x1 + x9")  # one layer, 72 edges
    model = make_model([9, 8], samples)
    (pages,) = plot_edges.activation_figures(model, samples["x_train"])
    assert len(pages) == 2  # 8 outputs x (5 + 4) inputs
    assert rendered_pages(pages) == 2


def test_a_very_wide_layer_shows_its_most_important_edges(monkeypatch):
    monkeypatch.setattr(plot_edges, "MAX_GRID", 3)
    samples = make_samples([5, 4], "x1")
    model = make_model([5, 4], samples)
    with torch.no_grad():
        model.layers[0].base_weight.mul_(torch.tensor([0.01, 1.0, 0.01, 1.0, 1.0]))
    ((page,),) = plot_edges.activation_figures(model, samples["x_train"])
    titles = [t.get_text() for t in page.axes[0].texts if " → " in t.get_text()]
    assert len(titles) == 9
    assert {title.split()[0] for title in titles} == {"x2", "x4", "x5"}


def test_pruned_edges_and_pruned_models_plot():
    samples = make_samples([2, 5, 1], TARGETS[2])
    model = make_model([2, 5, 1], samples)
    model.layers[0].mask[:, 1] = 0  # x2 feeds nothing
    model.layers[1].mask[0, :] = 0
    x = torch.as_tensor(samples["x_train"], dtype=torch.float32)
    small, _ = model.prune(x, threshold=0.05)
    for m in (model, small):
        pages = plot_edges.activation_figures(m, samples["x_train"])
        assert len(pages) == 2
        assert rendered_pages(pages[0]) == 1
        assert rendered_pages([plot_edges.network_figure(m, samples["x_train"])]) == 1


def test_multiplication_nodes_plot_as_x_nodes_with_named_subnodes():
    samples = make_samples([3, [1, 2], 1], TARGETS[3])
    model = make_model([3, [1, 2], 1], samples)
    assert plot_edges.subnode_names(1, model.levels[1], model.layer_dims) == [
        "h1.1",
        "h1.2[1]",
        "h1.2[2]",
        "h1.3[1]",
        "h1.3[2]",
    ]
    pages = plot_edges.activation_figures(model, samples["x_train"])
    assert len(pages) == 2 and rendered_pages(pages[0]) == 1
    figure = plot_edges.network_figure(model, samples["x_train"])
    texts = {t.get_text() for ax in figure.axes for t in ax.texts}
    assert "×" in texts  # the multiplication nodes are drawn as such
    assert rendered_pages([figure]) == 1
