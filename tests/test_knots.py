"""knots.py: where range updates and refinement put knots (pure functions, no layer)."""

import numpy as np
import pytest
import torch

import knots
import spline

F64 = torch.float64


def uniform_interior(lo, hi, G, D=1):
    return torch.linspace(lo, hi, G + 1, dtype=F64).expand(D, G + 1).clone()


def test_range_update_maps_a_uniform_grid_onto_the_samples_range():
    x = torch.tensor([[-0.2, 3.0], [0.6, 5.0], [0.1, 4.0]], dtype=F64)
    new = knots.range_interior(uniform_interior(-1, 1, 4, D=2), x)
    torch.testing.assert_close(new[0], torch.linspace(-0.2, 0.6, 5, dtype=F64))
    torch.testing.assert_close(new[1], torch.linspace(3.0, 5.0, 5, dtype=F64))


def test_range_update_with_grid_eps_zero_puts_knots_at_the_sample_quantiles():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1001, 1, generator=gen, dtype=F64) ** 3
    new = knots.range_interior(uniform_interior(-1, 1, 4), x, grid_eps=0.0)[0]
    want = np.quantile(x[:, 0].numpy(), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(new.numpy(), want, rtol=0, atol=1e-15)


def test_a_constant_input_gets_a_small_grid_around_its_value():
    x = torch.full((5, 1), 2.0, dtype=F64)
    new = knots.range_interior(uniform_interior(-1, 1, 2), x)[0]
    half = 1e-3 * (1 + 2.0)
    torch.testing.assert_close(new, torch.tensor([2 - half, 2.0, 2 + half], dtype=F64))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_extend_continues_the_mean_spacing_on_both_sides(k):
    interior = torch.tensor([[0.0, 0.1, 0.5, 1.0]], dtype=F64)
    t = knots.extend(interior, k)
    assert t.shape == (1, 4 + 2 * k)
    h = 1.0 / 3
    torch.testing.assert_close(t[0, :k], -h * torch.arange(k, 0, -1, dtype=F64))
    torch.testing.assert_close(t[0, -k:], 1.0 + h * torch.arange(1, k + 1, dtype=F64))
    torch.testing.assert_close(t[0, k : k + 4], interior[0])


@pytest.mark.parametrize(("G", "target"), [(3, 6), (4, 12), (5, 5)])
def test_uniform_subdivision_adds_exactly_the_missing_knots_of_the_finer_grid(G, target):
    k = 3
    lo, hi = torch.tensor([-1.0, 0.0], dtype=F64), torch.tensor([1.0, 4.0], dtype=F64)
    t = spline.uniform_knots(lo, hi, G, k)
    new = knots.uniform_subdivision(t, k, target)
    fine = spline.uniform_knots(lo, hi, target, k)
    merged = torch.sort(torch.cat([t, new], dim=1), dim=1).values
    torch.testing.assert_close(merged[:, k : k + target + 1], fine[:, k : k + target + 1])
    assert new.shape == (2, target - G)


def test_uniform_subdivision_to_a_non_multiple_is_not_an_insertion():
    t = spline.uniform_knots(torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64), 4, 3)
    assert knots.uniform_subdivision(t, 3, 6) is None


def test_density_scores_count_the_samples_of_each_interval():
    interior = torch.tensor([[0.0, 0.1, 0.5, 1.0]], dtype=F64)
    x = torch.tensor([0.05, 0.2, 0.3, 0.4, 0.9, 1.0, 1.5], dtype=F64)[:, None]
    t = knots.extend(interior, 3)
    coef = torch.zeros(1, 6, 1, dtype=F64)
    scores = knots.interval_scores(interior, x, "density", t, coef, 3)
    assert scores.tolist() == [[1.0, 3.0, 2.0]]  # 1.5 lies outside the base interval
    widths = knots.interval_scores(interior, x, "uniform", t, coef, 3)
    torch.testing.assert_close(widths, torch.diff(interior, dim=1))


def test_error_scores_sum_the_squared_output_gradient_per_interval():
    interior = torch.tensor([[0.0, 0.5, 1.0]], dtype=F64)
    x = torch.tensor([0.1, 0.2, 0.7], dtype=F64)[:, None]
    out_grad = torch.tensor([[1.0, 2.0], [0.5, 0.0], [3.0, 1.0]], dtype=F64)
    t = knots.extend(interior, 3)
    coef = torch.zeros(1, 5, 2, dtype=F64)
    scores = knots.interval_scores(interior, x, "error", t, coef, 3, out_grad)
    assert scores.tolist() == [[1 + 4 + 0.25, 9 + 1]]


def test_curvature_scores_vanish_for_a_polynomial_of_the_spline_degree_and_peak_at_a_kink():
    k, G = 3, 8
    t = spline.uniform_knots(torch.tensor([-1.0], dtype=F64), torch.tensor([1.0], dtype=F64), G, k)
    x = torch.linspace(-1, 1, 400, dtype=F64)[:, None]
    count = torch.full((1, G), 50.0, dtype=F64)
    cubic = spline.fit_coefficients(x, (x**3 - x)[:, :, None], t, k)
    assert float(knots.curvature_scores(t, cubic, k, count).abs().max()) < 1e-9
    kink = spline.fit_coefficients(x, (x - 0.3).abs()[:, :, None], t, k)
    scores = knots.curvature_scores(t, kink, k, count)[0]
    # the kink (in [0.25, 0.5]) makes the largest jumps at the knot 0.25 nearest to it: the two
    # intervals that share that knot score highest
    assert sorted(torch.argsort(scores, descending=True)[:2].tolist()) == [4, 5]


def test_error_splits_spread_over_intervals_instead_of_slicing_one():
    """After a split each half keeps 1/2^(2k+3) of the score, so a second knot goes to the next
    worst interval rather than into the same one."""
    interior = torch.tensor([[0.0, 1.0, 2.0, 3.0]], dtype=F64)
    scores = torch.tensor([[1.0, 0.5, 0.1]], dtype=F64)
    x = torch.zeros(3, 1, dtype=F64)
    new = knots.split_intervals(interior, x, 2, "error", scores, 3)
    assert new.tolist() == [[0.5, 1.5]]
    new = knots.split_intervals(interior, x, 3, "uniform", scores, 3)
    assert new.tolist() == [[0.5, 0.25, 0.75]]  # halving: the halves of the first stay worst


def test_density_splits_at_the_median_sample_kept_off_the_interval_ends():
    interior = torch.tensor([[0.0, 1.0]], dtype=F64)
    x = torch.tensor([0.01, 0.02, 0.03, 0.6, 0.7], dtype=F64)[:, None]
    new = knots.split_intervals(interior, x, 1, "density", torch.ones(1, 1, dtype=F64), 3)
    assert new.tolist() == [[0.1]]  # the median 0.03 moved to 10 % of the interval


def test_inputs_without_any_score_split_evenly():
    interior = torch.tensor([[0.0, 0.2, 1.0]], dtype=F64)
    new = knots.split_intervals(
        interior, torch.zeros(1, 1, dtype=F64), 1, "error", torch.zeros(1, 2, dtype=F64), 3
    )
    assert new.tolist() == [[0.6]]  # the widest interval's midpoint
