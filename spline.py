"""B-spline mathematics on tensors: knot vectors, basis values and slopes, knot insertion, fits.

Conventions (the same for every function here):
- knots ``t`` are non-decreasing, degree ``k`` >= 1, ``n = M - k - 1`` basis functions for
  ``M = len(t)`` knots. Batched forms carry one knot vector per input: ``t : (D, M)``.
- The base interval is ``t[k] <= x <= t[n]``, closed at the right end; there the values are the
  standard (de Boor / Cox–de Boor) B-splines, identical to ``scipy.interpolate.BSpline``.
- Outside the base interval every evaluation extrapolates *linearly*: a spline continues with the
  value and slope it has at the nearest end of the base interval. Each basis function does the
  same, so the extrapolated curve is still ``sum_i c_i B_i(x)`` and is never silently zero.
- Shapes: ``x : (N,)`` with ``t : (M,)`` gives ``(N, n)``; ``x : (N, D)`` with ``t : (D, M)`` gives
  ``(N, D, n)``. Coefficients of many splines per input are laid out ``c : (..., n)`` for one knot
  vector and ``c : (D, n, O)`` for per-input knots (O splines per input, as in a KAN layer).

Public entry points validate their arguments; the ``_``-prefixed helpers trust their callers.
"""

import torch

__all__ = [
    "uniform_knots",
    "base_interval",
    "find_span",
    "local_basis",
    "bspline_basis",
    "bspline_basis_derivative",
    "scatter_local",
    "span_polynomials",
    "insert_knot",
    "insert_knots",
    "fit_coefficients",
]


def _check(t: torch.Tensor, k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"degree must be an integer >= 1, got {k!r}")
    if t.dim() not in (1, 2):
        raise ValueError(f"knots must have shape (M,) or (D, M), got {tuple(t.shape)}")
    if t.shape[-1] < 2 * k + 2:
        raise ValueError(f"degree {k} needs at least {2 * k + 2} knots, got {t.shape[-1]}")
    if bool((t[..., 1:] < t[..., :-1]).any()):
        raise ValueError("knots must be non-decreasing")
    n = t.shape[-1] - k - 1
    if bool((t[..., n] <= t[..., k]).any()):
        raise ValueError("the base interval t[k] <= x <= t[n] is empty")


def _check_x(x: torch.Tensor, t: torch.Tensor) -> None:
    if t.dim() == 1 and x.dim() != 1:
        raise ValueError(f"x must have shape (N,) for knots (M,), got {tuple(x.shape)}")
    if t.dim() == 2 and (x.dim() != 2 or x.shape[1] != t.shape[0]):
        raise ValueError(
            f"x must have shape (N, {t.shape[0]}) for knots {tuple(t.shape)}, got {tuple(x.shape)}"
        )


def uniform_knots(lo: torch.Tensor, hi: torch.Tensor, grid_size: int, k: int) -> torch.Tensor:
    """Uniform knots whose base interval is [lo, hi] split into ``grid_size`` intervals.

    ``lo, hi : (D,)`` → ``(D, grid_size + 2k + 1)``; k extra knots continue the spacing on each
    side, so every basis function on the base interval is a full (unclamped) B-spline.
    """
    if grid_size < 1:
        raise ValueError(f"grid_size must be >= 1, got {grid_size}")
    h = (hi - lo) / grid_size  # (D,)
    steps = torch.arange(-k, grid_size + k + 1, dtype=lo.dtype, device=lo.device)
    return lo[:, None] + steps[None, :] * h[:, None]


def base_interval(t: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ends ``(t[..., k], t[..., n])`` of the base interval."""
    n = t.shape[-1] - k - 1
    return t[..., k], t[..., n]


def find_span(x: torch.Tensor, t: torch.Tensor, k: int, uniform: bool = False) -> torch.Tensor:
    """Index i with ``t[i] <= x < t[i+1]``, clamped to ``k <= i <= n-1`` (x = t[n] → n-1).

    ``x : (N, D)`` (already inside the base interval), ``t : (D, M)`` → ``(N, D)`` int64.
    ``uniform=True`` computes it in closed form; valid only when t[k..n] are evenly spaced.
    """
    n = t.shape[-1] - k - 1
    if uniform:
        lo, hi = t[:, k], t[:, n]
        pos = (x - lo) * ((n - k) / (hi - lo))
        span = (pos.floor().to(torch.int64) + k).clamp_(k, n - 1)
        # rounding can land a point sitting on a knot one span off: compare with the knots
        left = t.gather(1, span.T.contiguous()).T
        right = t.gather(1, (span + 1).T.contiguous()).T
        span = span - (x < left).long() + (x >= right).long()
    else:
        span = torch.searchsorted(t, x.T.contiguous(), right=True).T - 1
    return span.clamp_(k, n - 1)


def _span_knots(t: torch.Tensor, span: torch.Tensor, k: int) -> torch.Tensor:
    """Knots ``t[span-k .. span+k+1]`` around each span: ``(N, D)`` → ``(N, D, 2k+2)``."""
    offsets = torch.arange(-k, k + 2, device=span.device)
    idx = span[..., None] + offsets  # (N, D, 2k+2)
    D = t.shape[0]
    flat = idx + (torch.arange(D, device=span.device) * t.shape[1])[None, :, None]
    return t.reshape(-1)[flat]


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den with 0/0 := 0 (the Cox–de Boor convention for repeated knots)."""
    zero = den == 0
    return torch.where(zero, torch.zeros_like(num), num / torch.where(zero, 1.0, den))


def _local_triangle(xc: torch.Tensor, g: torch.Tensor, k: int):
    """de Boor's triangle on one span.

    ``xc : (N, D)``, ``g : (N, D, 2k+2)`` with ``g[..., m] = t[i-k+m]`` for span i.
    Returns the k+1 nonzero values ``B_{i-k+r,k}(xc)`` and slopes, each ``(N, D, k+1)``.
    """
    x = xc[..., None]
    vals = torch.ones_like(x)  # degree 0: B_{i,0} = 1 on its own span
    for p in range(1, k + 1):
        a, b = g[..., k - p : k + 1], g[..., k : k + p + 1]  # t_j, t_{j+p} for j = i-p+s
        c, d = g[..., k + 1 : k + p + 2], g[..., k - p + 1 : k + 2]  # t_{j+p+1}, t_{j+1}
        zero = torch.zeros_like(x)
        left = torch.cat([zero, vals], dim=-1)  # B_{j,p-1}
        right = torch.cat([vals, zero], dim=-1)  # B_{j+1,p-1}
        if p == k:  # B'_{j,k} = k (B_{j,k-1}/(t_{j+k}-t_j) - B_{j+1,k-1}/(t_{j+k+1}-t_{j+1}))
            slopes = k * (_safe_div(left, b - a) - _safe_div(right, c - d))
        vals = _safe_div((x - a) * left, b - a) + _safe_div((c - x) * right, c - d)
    return vals, slopes


def local_basis(x: torch.Tensor, t: torch.Tensor, k: int, uniform: bool = False):
    """The k+1 nonzero basis functions at each x, linearly extrapolated outside the base interval.

    ``x : (N, D)``, ``t : (D, M)``. Returns ``(first, values, slopes)``: ``first : (N, D)`` the
    index of the first nonzero basis function (span - k), ``values``, ``slopes`` ``(N, D, k+1)`` so
    that ``sum_r c[first+r] * values[..., r]`` is the spline at x and ``slopes`` its derivative.
    Work per point is O(k^2), independent of the number of knots.
    """
    lo, hi = base_interval(t, k)
    xc = torch.minimum(torch.maximum(x, lo), hi)
    span = find_span(xc, t, k, uniform)
    vals, slopes = _local_triangle(xc, _span_knots(t, span, k), k)
    vals = vals + slopes * (x - xc)[..., None]
    return span - k, vals, slopes


def scatter_local(first: torch.Tensor, local: torch.Tensor, n: int) -> torch.Tensor:
    """Place local values ``(N, D, k+1)`` at columns ``first..first+k`` of a dense ``(N, D, n)``."""
    k1 = local.shape[-1]
    idx = first[..., None] + torch.arange(k1, device=first.device)
    out = local.new_zeros(*first.shape, n)
    return out.scatter_(-1, idx, local)


def span_polynomials(t: torch.Tensor, k: int) -> torch.Tensor:
    """The k+1 nonzero basis functions of each base-interval span as polynomials.

    ``t : (D, M)`` with G = n - k spans in the base interval → ``P : (D, G, k+1, k+1)`` with
    ``B_{k+g-k+r}(t[k+g] + u h_g) = sum_m P[d, g, r, m] u^m`` for ``0 <= u <= 1``, ``h_g`` the
    span's width: the piecewise-polynomial form a fast evaluation needs only powers of u for.
    Computed in float64 by interpolating the de Boor values at k+1 points per span.
    """
    D, M = t.shape
    n = M - k - 1
    G = n - k
    td = t.double()
    u = torch.linspace(0, 1, k + 1, dtype=torch.float64, device=t.device)  # (k+1,)
    span = (torch.arange(G, device=t.device) + k)[None, :, None].expand(D, G, k + 1)
    left = td[:, k : k + G]  # (D, G)
    width = td[:, k + 1 : k + G + 1] - left
    xs = left[..., None] + u * width[..., None]  # (D, G, k+1) sample points
    flat_span = span.permute(1, 2, 0).reshape(-1, D)  # (G*(k+1), D) as "samples"
    flat_x = xs.permute(1, 2, 0).reshape(-1, D)
    vals, _ = _local_triangle(flat_x, _span_knots(td, flat_span, k), k)  # (G*(k+1), D, k+1)
    V = vals.reshape(G, k + 1, D, k + 1).permute(2, 0, 1, 3)  # (D, G, q, r)
    vander = u[:, None] ** torch.arange(k + 1, dtype=torch.float64, device=t.device)  # (q, m)
    coeffs = torch.linalg.solve(vander, V)  # (D, G, m, r)
    return coeffs.transpose(-1, -2).to(t.dtype)


def _dense_tables(x: torch.Tensor, t: torch.Tensor, k: int):
    """Full Cox–de Boor recursion at the clamped x: tables for degree k-1 and k.

    An independent (dense, O(M) per point) algorithm, kept as the reference for the local one.
    """
    lo, hi = base_interval(t, k)
    xc = torch.minimum(torch.maximum(x, lo), hi)
    M = t.shape[-1]
    if t.dim() == 1:
        span = find_span(xc[:, None], t[None, :], k)[:, 0]
    else:
        span = find_span(xc, t, k)
    xe = xc[..., None]
    table = torch.nn.functional.one_hot(span, M - 1).to(x.dtype)  # degree 0
    prev = table
    for p in range(1, k + 1):
        m = M - 1 - p  # number of degree-p functions
        tj, tjp = t[..., :m], t[..., p : p + m]
        tj1, tjp1 = t[..., 1 : m + 1], t[..., p + 1 : p + 1 + m]
        prev, table = (
            table,
            _safe_div((xe - tj) * table[..., :m], tjp - tj)
            + _safe_div((tjp1 - xe) * table[..., 1 : m + 1], tjp1 - tj1),
        )
    return xc, prev, table


def _dense_slopes(prev: torch.Tensor, t: torch.Tensor, k: int) -> torch.Tensor:
    n = t.shape[-1] - k - 1
    left = _safe_div(prev[..., :n], t[..., k : k + n] - t[..., :n])
    right = _safe_div(prev[..., 1 : n + 1], t[..., k + 1 : k + 1 + n] - t[..., 1 : n + 1])
    return k * (left - right)


def bspline_basis(x: torch.Tensor, t: torch.Tensor, k: int) -> torch.Tensor:
    """All n basis functions at x (dense reference). ``(N,)``/``(M,)`` → ``(N, n)``;
    ``(N, D)``/``(D, M)`` → ``(N, D, n)``. Linear extrapolation outside ``[t[k], t[n]]``."""
    _check(t, k)
    _check_x(x, t)
    xc, prev, table = _dense_tables(x, t, k)
    return table + _dense_slopes(prev, t, k) * (x - xc)[..., None]


def bspline_basis_derivative(x: torch.Tensor, t: torch.Tensor, k: int) -> torch.Tensor:
    """d/dx of every basis function (dense), same shapes as `bspline_basis`; outside the base
    interval the slope is the one at its nearest end (the extrapolation is linear)."""
    _check(t, k)
    _check_x(x, t)
    _, prev, _ = _dense_tables(x, t, k)
    return _dense_slopes(prev, t, k)


def insert_knot(t: torch.Tensor, c: torch.Tensor, k: int, u: torch.Tensor):
    """Insert one knot per knot vector (Boehm's algorithm); the spline is unchanged, exactly.

    ``t : (D, M)``, ``c : (D, n, O)``, ``u : (D,)`` with ``t[k] <= u < t[n]`` →
    ``(t' : (D, M+1), c' : (D, n+1, O))``. The new coefficients are convex combinations of the
    old ones: ``c'_i = a_i c_i + (1 - a_i) c_{i-1}``, ``a_i = (u - t_i) / (t_{i+k} - t_i)`` for
    ``s-k+1 <= i <= s`` (s the span of u), 1 before and 0 after.
    """
    n = t.shape[1] - k - 1
    lo, hi = base_interval(t, k)
    if bool(((u < lo) | (u >= hi)).any()):
        raise ValueError("inserted knots must lie in [t[k], t[n])")
    s = (torch.searchsorted(t, u[:, None].contiguous(), right=True) - 1).clamp(k, n - 1)  # (D,1)
    i = torch.arange(n + 1, device=t.device)[None, :]  # (1, n+1)
    ti, tik = t[:, : n + 1], t[:, k : k + n + 1]
    alpha = _safe_div(u[:, None] - ti, tik - ti)
    alpha = torch.where(i <= s - k, 1.0, torch.where(i >= s + 1, 0.0, alpha))  # (D, n+1)
    zero = c.new_zeros(c.shape[0], 1, c.shape[2])
    cur = torch.cat([c, zero], dim=1)  # c_i
    prv = torch.cat([zero, c], dim=1)  # c_{i-1}
    a = alpha[..., None].to(c.dtype)
    c_new = a * cur + (1 - a) * prv
    t_new = torch.sort(torch.cat([t, u[:, None]], dim=1), dim=1).values
    return t_new, c_new


def insert_knots(t: torch.Tensor, c: torch.Tensor, k: int, u: torch.Tensor):
    """Insert r knots into each knot vector, ``u : (D, r)``; see `insert_knot`."""
    for j in range(u.shape[1]):
        t, c = insert_knot(t, c, k, u[:, j].contiguous())
    return t, c


def fit_coefficients(
    x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, k: int, smoothing: float = 1e-13
) -> torch.Tensor:
    """Least-squares coefficients of O splines per input on the knots t.

    ``x : (N, D)``, ``y : (N, D, O)`` (samples of spline (d, o) at x[:, d]), ``t : (D, M)`` →
    ``c : (D, n, O)`` minimising ``sum |B c - y|^2 + lam |Δ² c|^2``. The tiny second-difference
    penalty (``lam = smoothing * mean diag(BᵀB)``) keeps the system regular when some knot span
    holds no sample: such coefficients are bridged smoothly from their neighbours instead of
    making the solve fail. Solved in float64 whatever the input dtype.
    """
    _check(t, k)
    _check_x(x, t)
    dt = x.dtype
    B = bspline_basis(x.double(), t.double(), k).permute(1, 0, 2)  # (D, N, n)
    n = B.shape[-1]
    A = B.transpose(1, 2) @ B  # (D, n, n)
    rhs = B.transpose(1, 2) @ y.double().permute(1, 0, 2)  # (D, n, O)
    if n >= 3:
        R = torch.diff(torch.eye(n, dtype=A.dtype, device=A.device), n=2, dim=0)  # (n-2, n)
        scale = A.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(1e-300)  # (D,)
        A = A + (smoothing * scale)[:, None, None] * (R.T @ R)
    A = A + 1e-14 * A.diagonal(dim1=1, dim2=2).mean() * torch.eye(n, dtype=A.dtype, device=A.device)
    return torch.linalg.solve(A, rhs).to(dt)
