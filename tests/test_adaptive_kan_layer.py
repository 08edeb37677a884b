"""AdaptiveKANLayer: the fast path against the dense reference and scipy, linear extrapolation,
pruning masks, grid-range updates and function-preserving refinement."""

import copy
import io

import numpy as np
import pytest
import torch
from layer_cases import (
    F64,
    assert_paths_agree,
    make_layer,
    max_rel,
    sample_inputs,
)
from references import scipy_basis

import spline
from adaptive_kan_layer import AdaptiveKANLayer

DEGREES = [1, 2, 3, 4, 5]


def smooth_layer(in_dim, out_dim, G, k, seed):
    """A layer whose splines sample smooth functions (sin at the Greville abscissae)."""
    layer = make_layer(in_dim, out_dim, G, k, seed)
    gen = torch.Generator().manual_seed(seed)
    a = 1 + 2 * torch.rand(in_dim, 1, out_dim, generator=gen, dtype=F64)
    b = 6 * torch.rand(in_dim, 1, out_dim, generator=gen, dtype=F64)
    greville = layer.knots[:, 1:-1].unfold(1, k, 1).mean(-1)  # (in, n)
    with torch.no_grad():
        layer.coef.copy_(torch.sin(a * greville[:, :, None] + b))
    return layer


@pytest.mark.parametrize("contraction", ["fused", "dense", "gather"])
@pytest.mark.parametrize("grid", ["uniform", "random", "density"])
@pytest.mark.parametrize("k", DEGREES)
def test_fast_forward_and_gradients_match_dense_reference(k, grid, contraction):
    seed = 10 * k + len(grid) + len(contraction)
    gen = np.random.default_rng(seed)
    in_dim, out_dim, G = int(gen.integers(1, 5)), int(gen.integers(1, 6)), int(gen.integers(3, 9))
    layer = make_layer(in_dim, out_dim, G, k, seed, grid)
    layer.contraction = contraction
    # a degree-1 slope jumps at a knot, so exact knots are left out of the gradient there
    assert_paths_agree(layer, sample_inputs(layer, 50, seed, knots=k > 1), seed)


@pytest.mark.parametrize(("G", "out_dim"), [(3, 4), (12, 2)], ids=["small-grid", "large-grid"])
def test_automatic_contraction_matches_dense_reference(G, out_dim):
    layer = make_layer(3, out_dim, G, 3, 2, "random")
    assert layer.contraction == "auto"
    assert_paths_agree(layer, sample_inputs(layer, 50, 2), 2)


@pytest.mark.parametrize("contraction", ["fused", "dense", "gather"])
def test_fast_path_on_inputs_of_very_different_scales(contraction):
    """Input 0 on a wide uniform grid, input 1 on a tiny non-uniform one: each input's grid is
    what it is, whatever the scale of the others."""
    k = 3
    layer = make_layer(2, 2, 5, k, 3)
    wide = spline.uniform_knots(
        torch.tensor([-100.0]).double(), torch.tensor([100.0]).double(), 5, k
    )
    widths = torch.tensor([1.0, 2, 1, 3, 1], dtype=F64) * 1e-5
    inner = torch.cat([torch.zeros(1, dtype=F64), torch.cumsum(widths, 0)])
    outer = widths.mean() * torch.arange(1, k + 1, dtype=F64)
    tiny = torch.cat([inner[0] - outer.flip(0), inner, inner[-1] + outer])
    layer.set_grid(torch.cat([wide, tiny[None, :]]), layer.coef.data)
    layer.contraction = contraction
    u = torch.rand(200, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    x = torch.stack([200 * u[:, 0] - 100, 8e-5 * u[:, 1]], dim=1)
    assert max_rel(layer(x), layer.forward_reference(x)) < 1e-10


@pytest.mark.parametrize("contraction", ["fused", "dense", "gather"])
def test_fast_path_at_exact_knots_matches_reference_values(contraction):
    layer = make_layer(3, 4, 7, 1, 5, "random")
    layer.contraction = contraction
    x = layer.interior_knots().T.contiguous()
    assert max_rel(layer(x), layer.forward_reference(x)) < 1e-12


@pytest.mark.parametrize("base", ["silu", "identity", "tanh", "none"])
def test_every_base_activation_agrees_between_fast_and_reference(base):
    layer = make_layer(3, 2, 5, 3, 7, "random", base=base)
    x = sample_inputs(layer, 40, 7).requires_grad_(True)
    y_fast, y_ref = layer(x), layer.forward_reference(x)
    assert max_rel(y_fast, y_ref) < 1e-10
    g_fast = torch.autograd.grad(y_fast.sum(), x)[0]
    g_ref = torch.autograd.grad(y_ref.sum(), x)[0]
    assert max_rel(g_fast, g_ref) < 1e-10


def test_float32_layer_follows_its_float64_reference():
    layer = make_layer(3, 4, 6, 3, 11, "random")
    x = sample_inputs(layer, 60, 11)
    want = layer.forward_reference(x)
    layer32 = AdaptiveKANLayer(3, 4, 1, 3, dtype=torch.float32)
    layer32.load_state_dict(layer.state_dict())
    y = layer32(x.float())
    assert y.dtype == torch.float32
    assert max_rel(y.double(), want) < 1e-5


# ---------------------------------------------------------------------- edges and masks
def test_edge_activations_follow_the_papers_formula():
    layer = make_layer(3, 2, 6, 3, 13, "random")
    with torch.no_grad():
        layer.mask[1, 2] = 0.0
    x = sample_inputs(layer, 30, 13)
    t, c = layer.knots.numpy(), layer.coef.detach().numpy()
    xs = x.numpy()
    silu = xs / (1 + np.exp(-xs))
    want = np.zeros((x.shape[0], 2, 3))
    for i in range(3):
        splines = scipy_basis(xs[:, i], t[i], 3) @ c[i]  # (N, out)
        for j in range(2):
            wb, ws = layer.base_weight[j, i].item(), layer.spline_scale[j, i].item()
            want[:, j, i] = layer.mask[j, i].item() * (wb * silu[:, i] + ws * splines[:, j])
    got = layer.edge_activations(x).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("contraction", ["fused", "dense", "gather"])
def test_edge_activations_sum_to_the_output(contraction):
    layer = make_layer(4, 3, 5, 2, 17, "random")
    layer.contraction = contraction
    x = sample_inputs(layer, 40, 17)
    phi = layer.edge_activations(x)
    assert phi.shape == (x.shape[0], 3, 4)
    assert max_rel(phi.sum(-1), layer(x)) < 1e-12


@pytest.mark.parametrize("contraction", ["fused", "dense", "gather"])
def test_a_pruned_edge_contributes_nothing(contraction):
    layer = make_layer(3, 2, 5, 3, 19, "random")
    layer.contraction = contraction
    with torch.no_grad():
        layer.mask[0, 1] = 0.0
    x = sample_inputs(layer, 40, 19)
    assert torch.equal(layer.edge_activations(x)[:, 0, 1], torch.zeros(x.shape[0], dtype=F64))
    moved = x.clone()
    moved[:, 1] = moved[:, 1] * 3 + 0.7  # output 0 must not see input 1 any more
    y, y_moved = layer(x), layer(moved)
    assert torch.equal(y[:, 0], y_moved[:, 0])
    assert not torch.allclose(y[:, 1], y_moved[:, 1])
    coef_grad = torch.autograd.grad(layer(x)[:, 0].sum(), layer.coef)[0]
    assert torch.equal(coef_grad[1, :, 0], torch.zeros_like(coef_grad[1, :, 0]))
    assert bool((coef_grad[0, :, 0] != 0).any())


# ---------------------------------------------------------------------- outside the grid
@pytest.mark.parametrize("contraction", ["fused", "dense", "gather"])
@pytest.mark.parametrize("k", DEGREES)
@torch.no_grad()
def test_output_is_linear_and_alive_outside_the_grid(k, contraction):
    layer = make_layer(2, 3, 5, k, 23 + k, "random", base="identity")
    layer.contraction = contraction
    lo, hi = layer.grid_range().unbind(1)
    steps = torch.tensor([0.1, 0.6, 1.1, 5.0], dtype=F64)[:, None]
    for x in (hi + steps, lo - steps):
        y = layer(x)
        second = y[2] - 2 * y[1] + y[0]
        assert float(second.abs().max()) < 1e-11 * float(y.abs().max())
        assert float(y[3].abs().min()) > 1e-6  # never a silent zero
        assert float((y[3] - y[2]).abs().min()) > 1e-6  # a slope, not a constant
    layer.base_activation = "none"
    spline_only = layer(hi + steps)
    assert float((spline_only[2] - 2 * spline_only[1] + spline_only[0]).abs().max()) < 1e-11


# ---------------------------------------------------------------------- grid range
@pytest.mark.parametrize("grid_eps", [1.0, 0.5])
@pytest.mark.parametrize(
    ("ranges", "tol"),
    [([(-0.6, 0.9), (-0.2, 0.3)], 2e-4), ([(-1.4, 1.3), (-0.5, 1.6)], 5e-3)],
    ids=["shrink", "grow"],
)
def test_update_grid_range_moves_the_grid_and_keeps_the_function(ranges, tol, grid_eps):
    layer = smooth_layer(2, 3, 8, 3, 29)
    gen = torch.Generator().manual_seed(29)
    lo, hi = torch.tensor(ranges, dtype=F64).unbind(1)
    x = lo + (hi - lo) * torch.rand(300, 2, generator=gen, dtype=F64)
    before = layer(x)
    layer.update_grid_range(x, grid_eps=grid_eps)
    assert layer.grid_size == 8
    got_range = layer.grid_range()
    torch.testing.assert_close(got_range[:, 0], x.min(0).values, rtol=0, atol=1e-12)
    torch.testing.assert_close(got_range[:, 1], x.max(0).values, rtol=0, atol=1e-12)
    assert max_rel(layer(x), before) < tol
    assert max_rel(layer(x), layer.forward_reference(x)) < 1e-10


def test_update_grid_range_gives_a_constant_input_a_small_grid_around_it():
    layer = smooth_layer(2, 2, 6, 3, 31)
    gen = torch.Generator().manual_seed(31)
    x = torch.rand(100, 2, generator=gen, dtype=F64) * 2 - 1
    x[:, 1] = 0.3
    before = layer.edge_activations(x)[:, :, 1]  # (N, out): the edges of the constant input
    layer.update_grid_range(x)
    lo, hi = layer.grid_range()[1].tolist()
    assert lo < 0.3 < hi and hi - lo < 0.01
    assert max_rel(layer.edge_activations(x)[:, :, 1], before) < 1e-9


# ---------------------------------------------------------------------- refinement
def new_knots(before, after):
    """Per input, the knots of `after` that are not in `before` (knot insertion keeps the old)."""
    out = []
    for b, a in zip(before.numpy(), after.numpy()):
        assert np.isin(b, a).all(), "an old knot went missing"
        extra = list(a)
        for v in b:
            extra.remove(v)
        out.append(np.array(extra))
    return out


@pytest.mark.parametrize("placement", ["error", "density", "uniform"])
@pytest.mark.parametrize(
    ("k", "grid"), [(k, "random") for k in DEGREES] + [(1, "uniform"), (3, "uniform")]
)
def test_refine_by_k_inserts_knots_and_preserves_the_output(k, grid, placement):
    layer = make_layer(3, 2, 5, k, 31 + k, grid)
    x = sample_inputs(layer, 80, 31 + k)
    before, knots = layer(x), layer.knots.clone()
    layer.refine(x, k=3, placement=placement)
    assert layer.grid_size == 8 and layer.coef.shape == (3, 8 + k, 2)
    assert all(len(extra) == 3 for extra in new_knots(knots, layer.knots))
    assert max_rel(layer(x), before) < 1e-9
    assert max_rel(layer(x), layer.forward_reference(x)) < 1e-10


@pytest.mark.parametrize("factor", [2, 3])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_uniform_refinement_to_a_multiple_is_exact_and_stays_uniform(k, factor):
    G = 4
    layer = make_layer(2, 3, G, k, 37 + k)
    lo_hi = layer.grid_range().clone()
    x = sample_inputs(layer, 60, 37)
    before = layer(x)
    layer.refine(x, grid_size=factor * G, placement="uniform")
    assert layer.grid_size == factor * G
    torch.testing.assert_close(layer.grid_range(), lo_hi, rtol=0, atol=0)
    widths = torch.diff(layer.interior_knots(), dim=1)
    torch.testing.assert_close(
        widths, torch.full_like(widths, 2 / (factor * G)), rtol=0, atol=1e-14
    )
    assert max_rel(layer(x), before) < 1e-12


def test_uniform_refinement_to_a_non_multiple_is_a_close_least_squares_refit():
    G = 5
    layer = smooth_layer(2, 3, G, 3, 41)
    x = sample_inputs(layer, 200, 41, knots=False)
    before = layer(x)
    layer.refine(x, grid_size=G + 3, placement="uniform")
    assert layer.grid_size == G + 3
    widths = torch.diff(layer.interior_knots(), dim=1)
    torch.testing.assert_close(widths, torch.full_like(widths, 2 / (G + 3)), rtol=0, atol=1e-14)
    assert max_rel(layer(x), before) < 3e-3


def test_error_placement_follows_the_output_gradient():
    layer = make_layer(2, 2, 6, 3, 43)
    gen = torch.Generator().manual_seed(43)
    x = torch.rand(400, 2, generator=gen, dtype=F64) * 2 - 1
    region = (x[:, 0] >= 0.4) & (x[:, 0] <= 0.7)
    out_grad = torch.randn(400, 2, generator=gen, dtype=F64) * region[:, None]
    g = layer.interior_knots()[0].clone()
    knots = layer.knots.clone()
    layer.refine(x, k=3, placement="error", out_grad=out_grad)
    # the old intervals of input 0 that hold samples of the region
    touched = [(a, b) for a, b in zip(g[:-1].tolist(), g[1:].tolist()) if a <= 0.7 and b >= 0.4]
    lo, hi = min(a for a, _ in touched), max(b for _, b in touched)
    extra = new_knots(knots, layer.knots)[0]
    assert len(extra) == 3 and ((extra > lo) & (extra < hi)).all(), (extra, lo, hi)


def test_density_placement_puts_knots_where_the_samples_are():
    layer = make_layer(2, 2, 6, 3, 47)
    gen = torch.Generator().manual_seed(47)
    x = torch.rand(400, 2, generator=gen, dtype=F64) * 2 - 1
    x[:360, 0] = 0.1 + 0.15 * torch.rand(360, generator=gen, dtype=F64)  # 90% in [0.1, 0.25]
    knots = layer.knots.clone()
    layer.refine(x, k=3, placement="density")
    extra = new_knots(knots, layer.knots)[0]
    assert len(extra) == 3 and ((extra >= 0.1) & (extra <= 0.25)).all(), extra


def test_error_placement_spreads_knots_when_no_interval_stands_out():
    """Input 1's splines are zero (no curvature anywhere, e.g. a fresh layer with noise_scale=0 or
    a pruned input): the indicator ties everywhere, and refinement must not keep halving one
    interval into slivers."""
    G = 4
    layer = make_layer(2, 2, G, 3, 61)
    with torch.no_grad():
        layer.coef[1] = 0.0
    x = sample_inputs(layer, 200, 61, knots=False)
    before = layer(x)
    for _ in range(2):
        layer.refine(x, k=G)
    assert max_rel(layer(x), before) < 1e-9
    widths = torch.diff(layer.interior_knots()[1])
    assert float(widths.min()) >= 0.25 * 2 / G, widths.tolist()


def test_uniform_placement_by_k_splits_the_widest_intervals_in_the_middle():
    layer = make_layer(1, 2, 4, 2, 53, "random")
    g = layer.interior_knots()[0].clone()
    knots = layer.knots.clone()
    layer.refine(torch.zeros(10, 1, dtype=F64), k=2, placement="uniform")
    widths = torch.diff(g)
    widest = torch.argsort(widths, descending=True)[:2]
    want = np.sort(((g[:-1] + g[1:]) / 2)[widest].numpy())
    np.testing.assert_allclose(np.sort(new_knots(knots, layer.knots)[0]), want, atol=1e-15)


def test_refine_refuses_bad_requests():
    layer = make_layer(2, 2, 5, 3, 59)
    x = sample_inputs(layer, 10, 59)
    for kwargs in ({}, {"k": 1, "grid_size": 8}, {"k": 1, "placement": "random"}):
        with pytest.raises(ValueError):
            layer.refine(x, **kwargs)
    with pytest.raises(ValueError):
        layer.refine(x, grid_size=3, placement="error")


def test_uniform_knots_of_a_fresh_layer_span_its_grid_range():
    layer = AdaptiveKANLayer(2, 3, grid_size=6, spline_degree=3, grid_range=[(-2, 1), (0, 4)])
    torch.testing.assert_close(layer.grid_range(), torch.tensor([[-2.0, 1.0], [0.0, 4.0]]))
    want = spline.uniform_knots(torch.tensor([-2.0, 0.0]), torch.tensor([1.0, 4.0]), 6, 3)
    torch.testing.assert_close(layer.knots, want)
    assert layer.coef.shape == (2, 9, 3) and layer.num_basis == 9 and layer.grid_size == 6


# ---------------------------------------------------------------------- a drop-in layer
def kan_in_mlp(seed=0):
    """A small model with a KAN layer between two linear layers."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 4), AdaptiveKANLayer(4, 5, grid_size=5), torch.nn.Linear(5, 2)
    )


@pytest.mark.parametrize("contraction", ["fused", "dense", "gather"])
def test_leading_axes_behave_like_nn_linear(contraction):
    """(B, T, in) → (B, T, out): the same values and gradients as the flattened (B*T, in)."""
    layer = make_layer(3, 4, 6, 3, seed=1)
    layer.contraction = contraction
    x = sample_inputs(layer, 10, seed=2, knots=False).reshape(2, 5, 3).requires_grad_()
    y = layer(x)
    assert y.shape == (2, 5, 4)
    (gx,) = torch.autograd.grad((y**2).sum(), x)
    flat = x.detach().reshape(10, 3).requires_grad_()
    y_flat = layer(flat)
    (g_flat,) = torch.autograd.grad((y_flat**2).sum(), flat)
    assert torch.equal(y.detach().reshape(10, 4), y_flat.detach())
    assert torch.equal(gx.reshape(10, 3), g_flat)
    assert torch.equal(layer(x.detach()[0, 0]), y_flat.detach()[0])  # (in,) → (out,)


def test_a_kan_layer_trains_inside_a_model_with_sgd():
    model = kan_in_mlp()
    x = torch.linspace(-1, 1, 64).reshape(4, 16, 1).expand(4, 16, 3)
    y = torch.stack([torch.sin(3 * x[..., 0]), x[..., 1] ** 2], dim=-1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.2 * losses[0]


def test_deepcopy_is_an_equal_and_independent_layer():
    layer = make_layer(2, 3, 5, 3, seed=0)
    x = sample_inputs(layer, 50, seed=1, knots=False)
    twin = copy.deepcopy(layer)
    assert torch.equal(twin(x), layer(x))
    before = layer(x)
    twin.refine(x, k=4)
    with torch.no_grad():
        twin.coef.mul_(2)
    assert layer.grid_size == 5 and torch.equal(layer(x), before)


def test_state_dict_round_trip_after_refinement_resizes_the_layer():
    """A refined model's state dict (saved with weights_only) loads into a fresh model of the
    initial size, which takes on the refined grid and gives the same outputs."""
    model, fresh = kan_in_mlp(0), kan_in_mlp(1)
    x = torch.rand(2, 30, 3) * 2 - 1
    model[1].refine(model[0](x).reshape(-1, 4).detach(), k=7)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert fresh[1].grid_size == model[1].grid_size == 12
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))


def test_to_dtype_moves_the_grid_tables_too():
    layer = make_layer(2, 3, 5, 3, seed=0).float()
    x = sample_inputs(layer, 40, seed=1, knots=False).double()
    y32 = layer(x.float())
    layer.to(torch.float64)
    y64 = layer(x)
    assert y64.dtype == torch.float64 and layer.knots.dtype == torch.float64
    assert torch.allclose(y64, y32.double(), atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_to_cuda_gives_the_cpu_outputs():
    layer = make_layer(2, 3, 5, 3, seed=0)
    x = sample_inputs(layer, 40, seed=1, knots=False).double()
    expected = layer(x)
    assert torch.allclose(layer.to("cuda")(x.cuda()).cpu(), expected, atol=1e-12)


@pytest.mark.parametrize("contraction", ["fused", "gather"])
def test_torch_compile_of_a_model_with_a_kan_layer_gives_the_same_values_and_gradients(
    contraction,
):
    """Smoke test: dynamo traces the model (graph breaks where it must) and AOT autograd runs
    the layer's custom backward; "aot_eager" keeps it quick (inductor needs a C++ build)."""
    model = kan_in_mlp()
    model[1].contraction = contraction
    x = torch.rand(4, 8, 3) * 2 - 1
    expected = model(x)
    (g_expected,) = torch.autograd.grad(expected.sum(), model[0].weight)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager")
    y = compiled(x)
    (g,) = torch.autograd.grad(y.sum(), model[0].weight)
    assert torch.allclose(y, expected, atol=1e-6) and torch.allclose(g, g_expected, atol=1e-5)


def test_a_linear_layer_is_exactly_a_line_through_refinement_range_updates_and_training():
    layer = AdaptiveKANLayer(1, 2, grid_size=3, dtype=torch.float64)
    layer.make_linear()
    with torch.no_grad():
        layer.spline_scale.copy_(torch.tensor([[1.7], [-0.4]], dtype=torch.float64))
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)[:, None]

    def assert_line():
        expected = x * layer.spline_scale[:, 0]  # phi_j(x) = spline_scale_j * x, no base
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)

    assert_line()
    layer.update_grid_range(x * 1.5)
    assert_line()
    layer.refine(x, grid_size=7, placement="uniform")  # least squares on the new knots
    assert layer.linear and layer.grid_size == 7
    assert_line()
    layer.refine(x, k=3)  # knots inserted where the error indicator says
    assert layer.linear and layer.grid_size == 10
    assert_line()
    opt = torch.optim.Adam([p for p in layer.parameters() if p.requires_grad], lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        (layer(x) - torch.sin(3 * x)).square().mean().backward()
        opt.step()
    assert_line()  # only the slopes trained


def test_a_linear_layer_with_offsets_is_a_line_through_the_data_origin_and_stays_one():
    # the edges proportional to the physical input x = 2 * (x' + 0.75) of a standardised x'
    layer = AdaptiveKANLayer(2, 1, grid_size=4, dtype=torch.float64)
    layer.make_linear(offset=torch.tensor([0.75, -3.0]))
    x = torch.rand(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6)) * 2 - 1
    expected = (x + torch.tensor([0.75, -3.0], dtype=torch.float64)).sum(dim=1, keepdim=True)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)
    layer.refine(x, grid_size=9, placement="uniform")
    layer.update_grid_range(x * 1.2)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-10)
    assert layer.linear
