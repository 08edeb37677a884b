"""spline.py against independent references: scipy.interpolate.BSpline, a naive recursive
Cox–de Boor evaluator, closed forms and finite differences."""

import numpy as np
import pytest
import torch
from references import (
    naive_basis,
    random_knots,
    scipy_basis,
    scipy_basis_derivative,
    scipy_curve,
)
from scipy.interpolate import BSpline

import spline

DEGREES = [1, 2, 3, 4, 5]


def assert_close(got, want, tol):
    got = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)


def points_in_base_interval(rng, t, k, N=60):
    """Random points of the base interval, its two ends and every knot inside it."""
    n = len(t) - k - 1
    return np.r_[t[k], t[k : n + 1], rng.uniform(t[k], t[n], N), t[n]]


def points_outside(t, k):
    n = len(t) - k - 1
    width = t[n] - t[k]
    return np.r_[t[k] - width * np.array([2.0, 0.5, 1e-3]), t[n] + width * np.array([1e-3, 0.5, 2])]


# ---------------------------------------------------------------------- basis values
@pytest.mark.parametrize("clamped", [False, True])
@pytest.mark.parametrize("k", DEGREES)
def test_basis_matches_scipy_design_matrix(k, clamped):
    rng = np.random.default_rng(10 * k + clamped)
    t = random_knots(rng, k, G=7, clamped=clamped)
    x = points_in_base_interval(rng, t, k)
    got = spline.bspline_basis(torch.tensor(x), torch.tensor(t), k)
    assert got.dtype == torch.float64
    assert_close(got, BSpline.design_matrix(x, t, k).toarray(), 1e-12)


@pytest.mark.parametrize("clamped", [False, True])
@pytest.mark.parametrize("k", DEGREES)
def test_batched_basis_uses_each_inputs_own_knots(k, clamped):
    rng = np.random.default_rng(100 + 10 * k + clamped)
    D, G = 3, 6
    t = np.stack([random_knots(rng, k, G, clamped, lo=-1 - d, hi=0.5 + d) for d in range(D)])
    x = np.stack([points_in_base_interval(rng, t[d], k, N=40) for d in range(D)], axis=1)
    got = spline.bspline_basis(torch.tensor(x), torch.tensor(t), k)
    assert got.shape == (x.shape[0], D, G + k)
    want = np.stack([BSpline.design_matrix(x[:, d], t[d], k).toarray() for d in range(D)], axis=1)
    assert_close(got, want, 1e-12)


@pytest.mark.parametrize("clamped", [False, True])
@pytest.mark.parametrize("k", DEGREES)
def test_basis_includes_both_ends_of_the_base_interval(k, clamped):
    rng = np.random.default_rng(k)
    t = random_knots(rng, k, G=4, clamped=clamped)
    n = len(t) - k - 1
    ends = np.array([t[k], t[n]])
    got = spline.bspline_basis(torch.tensor(ends), torch.tensor(t), k).numpy()
    assert_close(got, BSpline.design_matrix(ends, t, k).toarray(), 1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-14)
    assert got[1, -1] > 0  # the last function is alive at t[n] (right end closed)
    if clamped:
        np.testing.assert_allclose(got[:, [0, -1]], np.eye(2), atol=1e-14)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_basis_matches_naive_recursion_with_repeated_interior_knots(k):
    rng = np.random.default_rng(7 * k)
    t = random_knots(rng, k, G=6)
    t = np.sort(np.r_[t, [t[k + 2]] * (k - 1)])  # an interior knot of multiplicity k
    x = points_in_base_interval(rng, t, k, N=30)
    got = spline.bspline_basis(torch.tensor(x), torch.tensor(t), k).numpy()
    want = np.stack([naive_basis(xi, t, k) for xi in x])
    assert_close(got, want, 1e-12)
    assert_close(got, BSpline.design_matrix(x, t, k).toarray(), 1e-12)


@pytest.mark.parametrize("k", DEGREES)
def test_float32_basis_matches_scipy(k):
    rng = np.random.default_rng(200 + k)
    t = random_knots(rng, k, G=8)
    x = points_in_base_interval(rng, t, k)
    got = spline.bspline_basis(torch.tensor(x, dtype=torch.float32), torch.tensor(t).float(), k)
    assert got.dtype == torch.float32
    assert_close(got, BSpline.design_matrix(x, t, k).toarray(), 2e-5)


@pytest.mark.parametrize("clamped", [False, True])
@pytest.mark.parametrize("k", DEGREES)
def test_partition_of_unity_inside_and_outside(k, clamped):
    rng = np.random.default_rng(300 + k)
    t = random_knots(rng, k, G=9, clamped=clamped)
    x = np.r_[points_in_base_interval(rng, t, k), points_outside(t, k)]
    got = spline.bspline_basis(torch.tensor(x), torch.tensor(t), k).numpy()
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------- extrapolation, slopes
@pytest.mark.parametrize("clamped", [False, True])
@pytest.mark.parametrize("k", DEGREES)
def test_basis_continues_linearly_outside_the_base_interval(k, clamped):
    rng = np.random.default_rng(400 + k)
    t = random_knots(rng, k, G=5, clamped=clamped)
    x = points_outside(t, k)
    got = spline.bspline_basis(torch.tensor(x), torch.tensor(t), k).numpy()
    assert_close(got, scipy_basis(x, t, k), 1e-12)
    # a spline with random coefficients is a straight line beyond each end, and not a flat zero
    c = rng.normal(size=len(t) - k - 1)
    n = len(t) - k - 1
    for end, sign in ((t[k], -1.0), (t[n], 1.0)):
        xs = end + sign * np.array([0.5, 1.0, 1.5, 4.0])
        y = spline.bspline_basis(torch.tensor(xs), torch.tensor(t), k).numpy() @ c
        np.testing.assert_allclose(y[2] - 2 * y[1] + y[0], 0.0, atol=1e-12)
        assert abs(y[3]) > 1e-6


@pytest.mark.parametrize("clamped", [False, True])
@pytest.mark.parametrize("k", DEGREES)
def test_basis_derivative_matches_scipy(k, clamped):
    rng = np.random.default_rng(500 + k)
    D = 2
    t = np.stack([random_knots(rng, k, G=6, clamped=clamped) for _ in range(D)])
    x = np.stack([np.r_[rng.uniform(-1, 1, 40), points_outside(t[d], k)] for d in range(D)], axis=1)
    got = spline.bspline_basis_derivative(torch.tensor(x), torch.tensor(t), k)
    want = np.stack([scipy_basis_derivative(x[:, d], t[d], k) for d in range(D)], axis=1)
    assert_close(got, want, 1e-12)
    got_1d = spline.bspline_basis_derivative(torch.tensor(x[:, 0]), torch.tensor(t[0]), k)
    assert_close(got_1d, want[:, 0], 1e-12)


@pytest.mark.parametrize("k", DEGREES)
def test_basis_derivative_matches_central_differences(k):
    rng = np.random.default_rng(600 + k)
    t = random_knots(rng, k, G=6)
    n = len(t) - k - 1
    x = rng.uniform(t[0] - 0.5, t[-1] + 0.5, 80)
    gap = np.abs(x[:, None] - np.r_[t[k : n + 1]][None, :]).min(axis=1)
    x = x[gap > 1e-3]  # away from knots (and the base-interval ends), where slopes jump
    h = 1e-6

    def basis(z):
        return spline.bspline_basis(torch.tensor(z), torch.tensor(t), k).numpy()

    fd = (basis(x + h) - basis(x - h)) / (2 * h)
    got = spline.bspline_basis_derivative(torch.tensor(x), torch.tensor(t), k)
    assert_close(got, fd, 1e-6)


# ---------------------------------------------------------------------- local form
@pytest.mark.parametrize("uniform", [False, True])
@pytest.mark.parametrize("k", DEGREES)
def test_local_basis_scattered_equals_dense_basis(k, uniform):
    rng = np.random.default_rng(700 + k)
    D, G = 3, 7
    if uniform:
        lo, hi = torch.tensor([-1.0, 0.0, 2.0]), torch.tensor([1.0, 0.5, 5.0])
        t = spline.uniform_knots(lo.double(), hi.double(), G, k).numpy()
    else:
        t = np.stack([random_knots(rng, k, G) for _ in range(D)])
    x = np.stack(
        [
            np.r_[points_in_base_interval(rng, t[d], k, 30), points_outside(t[d], k)]
            for d in range(D)
        ],
        axis=1,
    )
    xt, tt = torch.tensor(x), torch.tensor(t)
    first, values, slopes = spline.local_basis(xt, tt, k, uniform=uniform)
    assert first.shape == x.shape and values.shape == slopes.shape == (*x.shape, k + 1)
    n = G + k
    want_values = np.stack([scipy_basis(x[:, d], t[d], k) for d in range(D)], axis=1)
    want_slopes = np.stack([scipy_basis_derivative(x[:, d], t[d], k) for d in range(D)], axis=1)
    assert_close(spline.scatter_local(first, values, n), want_values, 1e-12)
    assert_close(spline.scatter_local(first, values, n), spline.bspline_basis(xt, tt, k), 1e-13)
    # a degree-1 slope jumps at a knot; the side a knot belongs to is checked by find_span's test
    smooth = np.ones(x.shape[0], dtype=bool) if k > 1 else ~np.isin(x, t).any(axis=1)
    assert_close(spline.scatter_local(first, slopes, n)[smooth], want_slopes[smooth], 1e-12)


@pytest.mark.parametrize("uniform", [False, True])
@pytest.mark.parametrize("G", [5, 7, 10, 20])
def test_find_span_follows_its_convention_at_the_knots(G, uniform):
    """A point on knot t[i] belongs to span i (t[i] <= x < t[i+1]); t[n] to span n-1."""
    k = 1
    lo, hi = torch.tensor([-1.0, 0.0, 2.0]).double(), torch.tensor([1.0, 0.5, 5.0]).double()
    t = spline.uniform_knots(lo, hi, G, k)  # (3, M)
    x = t[:, k : G + k + 1].T.contiguous()  # (G+1, 3): every knot of the base interval
    want = torch.arange(k, G + k + 1)[:, None].clamp(max=G + k - 1).expand(-1, 3)
    assert torch.equal(spline.find_span(x, t, k, uniform=uniform), want)


@pytest.mark.parametrize("k", DEGREES)
def test_span_polynomials_reproduce_the_basis_on_every_span(k):
    rng = np.random.default_rng(800 + k)
    D, G = 2, 5
    t = np.stack([random_knots(rng, k, G, clamped=d == 1) for d in range(D)])
    P = spline.span_polynomials(torch.tensor(t), k).numpy()
    assert P.shape == (D, G, k + 1, k + 1)
    u = np.r_[0.0, rng.uniform(0, 1, 9), 1.0]
    powers = u[:, None] ** np.arange(k + 1)  # (U, m)
    for d in range(D):
        for g in range(G):
            a, b = t[d, k + g], t[d, k + g + 1]
            want = BSpline.design_matrix(a + u * (b - a), t[d], k).toarray()[:, g : g + k + 1]
            assert_close(powers @ P[d, g].T, want, 1e-11)


def test_uniform_knots_split_the_range_evenly():
    lo, hi = torch.tensor([-1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, 5.0])
    t = spline.uniform_knots(lo, hi.double(), 6, 3)
    assert t.shape == (2, 6 + 2 * 3 + 1)
    a, b = spline.base_interval(t, 3)
    assert torch.equal(a, lo) and torch.allclose(b, hi.double(), atol=1e-15)
    np.testing.assert_allclose(np.diff(t.numpy()), [[1 / 3] * 12, [0.5] * 12], atol=1e-14)


@pytest.mark.parametrize(
    ("x", "t", "k"),
    [
        (torch.zeros(3), torch.linspace(0, 1, 10), 0),
        (torch.zeros(3), torch.linspace(0, 1, 7), 3),
        (torch.zeros(3), torch.tensor([0.0, 1, 2, 1.5, 3, 4, 5, 6, 7, 8]), 3),
        (torch.zeros(3), torch.zeros(10), 3),
        (torch.zeros(3, 2), torch.linspace(0, 1, 10), 3),
        (torch.zeros(3, 2), torch.linspace(0, 1, 10).expand(3, 10), 3),
        (torch.zeros(3), torch.zeros(2, 3, 10), 3),
    ],
)
def test_invalid_arguments_are_refused(x, t, k):
    with pytest.raises(ValueError):
        spline.bspline_basis(x, t, k)


# ---------------------------------------------------------------------- knot insertion
def assert_same_curve(t_old, c_old, t_new, c_new, k, tol=1e-13, tol_outside=None):
    """Both (D, M)/(D, n, O) splines agree on the old base interval (its knots included) and,
    to ``tol_outside``, on the straight lines that continue it."""
    assert c_new.shape[1] == t_new.shape[1] - k - 1
    n = t_old.shape[1] - k - 1
    for d in range(t_old.shape[0]):
        inside = np.r_[np.linspace(t_old[d, k], t_old[d, n], 301), t_old[d, k : n + 1]]
        outside = points_outside(t_old[d], k)
        for x, eps in ((inside, tol), (outside, tol_outside or tol)):
            want = scipy_curve(x, t_old[d], c_old[d], k)
            assert_close(scipy_curve(x, t_new[d], c_new[d], k), want, eps)


def spline_problem(seed, k, D=2, O=3, G=6, clamped=False):
    rng = np.random.default_rng(seed)
    t = np.stack([random_knots(rng, k, G, clamped) for _ in range(D)])
    c = rng.normal(size=(D, G + k, O))
    return rng, t, c


@pytest.mark.parametrize("clamped", [False, True])
@pytest.mark.parametrize("k", DEGREES)
def test_knot_insertion_preserves_curve(k, clamped):
    rng, t, c = spline_problem(900 + k, k, clamped=clamped)
    u = rng.uniform(-1, 1, size=2)
    t2, c2 = spline.insert_knot(torch.tensor(t), torch.tensor(c), k, torch.tensor(u))
    assert t2.shape == (2, t.shape[1] + 1) and c2.shape == (2, c.shape[1] + 1, 3)
    assert all((t2[d].numpy() == u[d]).any() for d in range(2))
    assert_same_curve(t, c, t2.numpy(), c2.numpy(), k)


@pytest.mark.parametrize("k", DEGREES)
def test_inserting_an_existing_knot_preserves_curve(k):
    _, t, c = spline_problem(1000 + k, k)
    for j in (k, k + 1, k + 3):  # the left end of the base interval and two interior knots
        u = torch.tensor(t[:, j])
        t2, c2 = spline.insert_knot(torch.tensor(t), torch.tensor(c), k, u)
        assert_same_curve(t, c, t2.numpy(), c2.numpy(), k)


@pytest.mark.parametrize("clamped", [False, True])
@pytest.mark.parametrize("k", DEGREES)
def test_inserting_knots_near_the_base_interval_ends_preserves_curve(k, clamped):
    _, t, c = spline_problem(1100 + k, k, clamped=clamped)
    n = t.shape[1] - k - 1
    for offset in (1e-9, 1e-6, 1e-3):
        for u in (t[:, k] + offset, t[:, n] - offset):
            t2, c2 = spline.insert_knot(torch.tensor(t), torch.tensor(c), k, torch.tensor(u))
            # beyond the ends the slope comes from coefficients 'offset' apart: rounding / offset
            assert_same_curve(t, c, t2.numpy(), c2.numpy(), k, tol_outside=1e-13 + 1e-15 / offset)


@pytest.mark.parametrize("k", DEGREES)
def test_inserting_many_knots_preserves_curve(k):
    rng, t, c = spline_problem(1200 + k, k, clamped=k % 2 == 0)
    u = np.sort(rng.uniform(-1, 1, size=(2, 8)), axis=1)
    u[:, 3] = u[:, 2]  # the same new knot twice
    u[:, 5] = t[:, k + 2]  # and an existing one
    t2, c2 = spline.insert_knots(torch.tensor(t), torch.tensor(c), k, torch.tensor(u))
    assert t2.shape == (2, t.shape[1] + 8)
    assert np.all(np.diff(t2.numpy(), axis=1) >= 0)
    assert_same_curve(t, c, t2.numpy(), c2.numpy(), k, tol=1e-12)


def test_inserting_a_knot_outside_the_base_interval_is_refused():
    _, t, c = spline_problem(1300, 3)
    k, n = 3, t.shape[1] - 4
    tt, cc = torch.tensor(t), torch.tensor(c)
    for u in (t[:, n], t[:, k] - 1e-6, t[:, n] + 1.0):
        with pytest.raises(ValueError):
            spline.insert_knot(tt, cc, k, torch.tensor(u))


# ---------------------------------------------------------------------- least-squares fit
@pytest.mark.parametrize("clamped", [False, True])
@pytest.mark.parametrize("k", DEGREES)
def test_fit_recovers_a_spline_of_the_space(k, clamped):
    rng, t, c = spline_problem(1400 + k, k, clamped=clamped)
    x = rng.uniform(-1, 1, size=(200, 2))
    y = np.stack([scipy_curve(x[:, d], t[d], c[d], k) for d in range(2)], axis=1)  # (N, D, O)
    fit = spline.fit_coefficients(torch.tensor(x), torch.tensor(y), torch.tensor(t), k)
    assert fit.shape == c.shape and fit.dtype == torch.float64
    fitted = np.stack([scipy_curve(x[:, d], t[d], fit[d].numpy(), k) for d in range(2)], axis=1)
    assert_close(fitted, y, 1e-10)
    assert_close(fit, c, 1e-8)


@pytest.mark.parametrize("k", DEGREES)
def test_fit_with_empty_spans_stays_finite_and_follows_the_data(k):
    rng, t, c = spline_problem(1500 + k, k, G=12)
    # samples only at the two ends of the range: several spans in the middle hold none
    x = np.concatenate([rng.uniform(-1, -0.6, (80, 2)), rng.uniform(0.7, 1, (80, 2))])
    in_space = np.stack([scipy_curve(x[:, d], t[d], c[d], k) for d in range(2)], axis=1)
    smooth = np.stack([np.sin(3 * x + o) for o in range(3)], axis=-1)
    grid = np.linspace(-1, 1, 201)
    for y in (in_space, smooth):
        fit = spline.fit_coefficients(torch.tensor(x), torch.tensor(y), torch.tensor(t), k)
        assert torch.isfinite(fit).all()
        for d in range(2):
            B = scipy_basis(x[:, d], t[d], k)
            best = np.abs(B @ np.linalg.lstsq(B, y[:, d], rcond=None)[0] - y[:, d]).max()
            fitted = B @ fit[d].numpy()
            assert np.abs(fitted - y[:, d]).max() <= best + 1e-4 * np.abs(y).max()
            # across the gap the curve is a bridge of moderate size, not a blow-up
            assert np.abs(scipy_curve(grid, t[d], fit[d].numpy(), k)).max() < 20 * np.abs(y).max()


def test_fit_in_float32_returns_float32():
    rng, t, c = spline_problem(1600, 3)
    x = rng.uniform(-1, 1, size=(100, 2))
    y = np.stack([scipy_curve(x[:, d], t[d], c[d], 3) for d in range(2)], axis=1)
    fit = spline.fit_coefficients(
        torch.tensor(x).float(), torch.tensor(y).float(), torch.tensor(t).float(), 3
    )
    assert fit.dtype == torch.float32
    assert_close(fit, c, 1e-3)
