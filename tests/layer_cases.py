"""Layers and inputs for the layer and kernel tests: random layers on uniform, random and
density-refined grids, points in and beyond their grids, and the check that a fast path agrees
with the dense reference in value and in every gradient."""

import numpy as np
import torch
from references import random_knots

from adaptive_kan_layer import AdaptiveKANLayer

F64 = torch.float64


def perturb(layer, seed, scale=0.5):
    """Add noise to every parameter, so no test relies on the initialisation's special values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def make_layer(in_dim, out_dim, G, k, seed, grid="uniform", base="silu", dtype=F64):
    """A layer with random parameters on a uniform grid over [-1, 1] ("uniform"), on random
    non-uniform knots, one vector per input ("random"), or on knots refined by the density of
    samples crowded towards -1 ("density")."""
    torch.manual_seed(seed)
    layer = AdaptiveKANLayer(in_dim, out_dim, G, k, base_activation=base, dtype=dtype)
    if grid == "random":
        rng = np.random.default_rng(seed)
        t = np.stack(
            [random_knots(rng, k, G, lo=-1 - 0.3 * i, hi=1 + 0.2 * i) for i in range(in_dim)]
        )
        layer.set_grid(torch.tensor(t, dtype=dtype), layer.coef.data)
    elif grid == "density":
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(200, in_dim, generator=gen, dtype=dtype) ** 3 * 2 - 1
        layer.refine(x, k=3, placement="density")
    perturb(layer, seed)
    return layer


def sample_inputs(layer, N, seed, knots=True):
    """(N, in) points spread over each base interval and half its width beyond either end,
    plus (optionally) every interior knot and both ends."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = layer.grid_range().unbind(1)
    w = hi - lo
    x = lo - 0.5 * w + 2 * w * torch.rand(N, layer.in_dim, generator=gen, dtype=lo.dtype)
    if knots:
        x = torch.cat([x, layer.interior_knots().T], dim=0)
    return x


def max_rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1.0))


def output_and_gradients(layer, path, x, gy):
    """path(x) and the gradients of sum(gy * path(x)) w.r.t. x, coef, base_weight, spline_scale."""
    xi = x.clone().requires_grad_(True)
    y = path(xi)
    params = [layer.coef, layer.base_weight, layer.spline_scale]
    return (y, *torch.autograd.grad(y, [xi, *params], gy.to(y.dtype)))


def assert_paths_agree(layer, x, seed, tol=1e-10):
    """forward and forward_reference agree in value and in the gradients w.r.t. x and every
    parameter, for a random upstream gradient."""
    gy = torch.randn(x.shape[0], layer.out_dim, generator=torch.Generator().manual_seed(seed))
    results = [
        output_and_gradients(layer, path, x, gy)
        for path in (layer.forward, layer.forward_reference)
    ]
    names = ["output", "x", "coef", "base_weight", "spline_scale"]
    for name, fast, ref in zip(names, *results):
        assert max_rel(fast, ref) < tol, name
