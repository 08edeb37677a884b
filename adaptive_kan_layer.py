"""One KAN layer with learnable B-spline activations on adaptive, per-input knot vectors.

Every edge (input i → output j) carries (KAN paper, eq. 2.10)

    phi_ji(x) = m_ji * (wb_ji * b(x) + ws_ji * sum_m c_imj B_m(x; t_i)),

b the base activation (SiLU by default), ``t_i`` the knot vector of input i, ``m`` a 0/1 edge mask
for pruning. Output j sums its incoming edges. Outside the base interval of ``t_i`` the spline
continues linearly (value and slope at the nearest end; see spline.py), so inputs beyond the grid
get a well-defined, non-zero value and a gradient.

Layouts: ``knots (in, M)``; ``coef (in, n, out)`` with ``n = M - k - 1``; ``base_weight``,
``spline_scale`` and ``mask (out, in)``. All inputs of a layer keep the same number of knots.
"""

import math

import torch
from torch import nn

import spline

try:  # fused CPU kernels; without numba the torch paths below serve (CPU and CUDA alike)
    import cpu_kernels
except ImportError:
    cpu_kernels = None

BASE_ACTIVATIONS = ("silu", "identity", "tanh", "none")


def fused_cpu_kernels() -> bool:
    """True when the fused CPU kernels (numba) are available."""
    return cpu_kernels is not None


KNOT_PLACEMENTS = ("error", "density", "uniform")
LOOKUP_BUCKETS = 4  # span-table buckets per grid interval (non-uniform grids, fused kernels)


def _base(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "silu":
        return torch.nn.functional.silu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "identity":
        return x
    return torch.zeros_like(x)


def _base_backward(g: torch.Tensor, x: torch.Tensor, act: str) -> torch.Tensor:
    """g * b'(x), in one fused elementwise op where torch has one."""
    if act == "silu":
        return torch.ops.aten.silu_backward(g, x)
    if act == "tanh":
        return torch.ops.aten.tanh_backward(g, torch.tanh(x))
    if act == "identity":
        return g
    return torch.zeros_like(x)


def _powers(x, xc, left, ih, k):
    """Powers of the local coordinate u = (xc - left) / h, continued linearly beyond the grid.

    Returns ``U (N, D, k+1)`` with ``U_m = u^m + m u^(m-1) e`` (e = (x - xc) / h: the first-order
    Taylor step outside the base interval, zero inside) and ``dU/dx (N, D, k+1)``.
    """
    u = (xc - left) * ih
    e = (x - xc) * ih
    pw = [torch.ones_like(u), u]
    for _ in range(2, k + 1):
        pw.append(pw[-1] * u)
    U = [pw[0], u + e] + [pw[m] + (m * e) * pw[m - 1] for m in range(2, k + 1)]
    dU = [torch.zeros_like(u), ih] + [(m * ih) * pw[m - 1] for m in range(2, k + 1)]
    return torch.stack(U, dim=-1), torch.stack(dU, dim=-1)


class _KANLayerFunction(torch.autograd.Function):
    """Fast forward/backward of a layer in piecewise-polynomial form.

    On span g of input d every edge spline is a degree-k polynomial in u = (x - t_g) / h_g; its
    coefficients ``Q (D*G*(k+1), O)`` are folded from the B-spline coefficients once per step
    (`AdaptiveKANLayer.poly_weights`). Per sample only the span and k+1 powers of u are needed:
    - "dense": scatter the powers into an (N, D*G*(k+1)) matrix and do one GEMM with Q
      (fastest while G is small next to the output width);
    - "gather": gather each sample's k+1 rows of Q and contract them (work independent of G).
    The backward uses the analytic slopes dU/dx; nothing is differentiated through small ops.
    """

    @staticmethod
    def forward(ctx, x, interior, inv_h, Q, w_base, uniform, act, dense):
        # x (N, D), interior (D, G+1), inv_h (D, G), Q (D*G*K1, O), w_base (D, O)
        N, D = x.shape
        G = inv_h.shape[1]
        K1, O = Q.shape[0] // (D * G), Q.shape[1]
        lo, hi = interior[:, 0], interior[:, -1]
        xc = torch.clamp(x, lo, hi)
        if uniform:
            span = ((xc - lo) * inv_h[:, 0]).floor_().long().clamp_(0, G - 1)
        else:
            span = (torch.searchsorted(interior, xc.T.contiguous(), right=True) - 1).T
            span = span.clamp_(0, G - 1)
        cell = span + torch.arange(0, D * G, G, device=x.device)  # (N, D) flat (input, span)
        left = interior.reshape(-1)[cell + torch.arange(D, device=x.device)]
        U, dU = _powers(x, xc, left, inv_h.reshape(-1)[cell], K1 - 1)  # (N, D, K1) x2
        if dense:
            S = x.new_zeros(N, D, G, K1)
            S.scatter_(2, span[:, :, None, None].expand(N, D, 1, K1), U[:, :, None, :])
            S = S.reshape(N, D * G * K1)
            y = torch.addmm(_base(x, act) @ w_base, S, Q)
            ctx.save_for_backward(x, span, S, dU, Q, w_base)
        else:
            Qg = Q.reshape(D * G, K1 * O)[cell].reshape(N, D * K1, O)
            y = torch.bmm(U.reshape(N, 1, D * K1), Qg).reshape(N, O)
            y = y + _base(x, act) @ w_base
            ctx.save_for_backward(x, cell, U, dU, Qg, w_base)
        ctx.act, ctx.dense, ctx.shape = act, dense, (N, D, G, K1, O)
        return y

    @staticmethod
    def backward(ctx, gy):
        N, D, G, K1, O = ctx.shape
        act = ctx.act
        g_x = g_q = g_wb = None
        if ctx.dense:
            x, span, S, dU, Q, w_base = ctx.saved_tensors
            if ctx.needs_input_grad[3]:
                g_q = S.T @ gy
            if ctx.needs_input_grad[0]:
                GQ = (gy @ Q.T).reshape(N, D, G, K1)
                local = GQ.gather(2, span[:, :, None, None].expand(N, D, 1, K1))[:, :, 0]
        else:
            x, cell, U, dU, Qg, w_base = ctx.saved_tensors
            if ctx.needs_input_grad[3]:
                src = (U[..., None] * gy[:, None, None, :]).reshape(N * D, K1 * O)
                g_q = gy.new_zeros(D * G, K1 * O).index_add_(0, cell.reshape(-1), src)
                g_q = g_q.reshape(D * G * K1, O)
            if ctx.needs_input_grad[0]:
                local = torch.bmm(Qg, gy[:, :, None]).reshape(N, D, K1)
        if ctx.needs_input_grad[4]:
            g_wb = _base(x, act).T @ gy
        if ctx.needs_input_grad[0]:
            g_x = _base_backward(gy @ w_base.T, x, act) + (local * dU).sum(-1)
        return g_x, None, None, g_q, g_wb, None, None, None


class _FusedCPUFunction(torch.autograd.Function):
    """The layer on the CPU through the fused kernels of cpu_kernels.py (same maths as
    `_KANLayerFunction`), from the raw parameters: coefficients ``coef (D, n, O)``, ``scale`` and
    ``base_weight (O, D)``, ``mask (O, D)``, and the span-polynomial table ``P (D, G, K1, K1)``.
    Scaling, masking and folding into span polynomials happen inside, so a layer is one node of
    the autograd graph."""

    @staticmethod
    def forward(ctx, x, coef, scale, base_weight, mask, P, grid, act):
        x, coef = x.detach().contiguous(), coef.detach().contiguous()
        scale, base_weight = scale.detach().contiguous(), base_weight.detach().contiguous()
        mask = mask.contiguous()
        D, G, K1, _ = P.shape
        O = coef.shape[2]
        Q = coef.new_empty(D, G, K1, O)
        wb = coef.new_empty(D, O)  # base weights, masked, (D, O)
        cpu_kernels.fold(
            P.numpy(),
            coef.numpy(),
            scale.numpy(),
            base_weight.numpy(),
            mask.numpy(),
            Q.numpy(),
            wb.numpy(),
        )
        b = _base(x, act)
        y = b @ wb  # the base branch; the kernel adds the splines
        cpu_kernels.layer_forward(x.numpy(), grid, Q.numpy(), y.numpy())
        ctx.save_for_backward(x, b, coef, scale, wb, mask, P, Q)
        ctx.grid, ctx.act = grid, act
        return y

    @staticmethod
    def backward(ctx, gy):
        x, b, coef, scale, wb, mask, P, Q = ctx.saved_tensors
        need_x = ctx.needs_input_grad[0]
        gy = gy.detach().contiguous()
        # the base branch's input gradient; the kernel adds the splines' into it
        gx = _base_backward(gy @ wb.T, x, act=ctx.act) if need_x else x.new_empty(1, 1)
        gq = torch.empty_like(Q)
        xa, Qa, gya, gxa, gqa = (t.numpy() for t in (x, Q, gy, gx, gq))
        cpu_kernels.layer_backward(xa, ctx.grid, Qa, gya, gxa, gqa, need_x)
        g_coef, g_scale = torch.empty_like(coef), torch.empty_like(scale)
        arrays = (P, coef, scale, mask, g_coef, g_scale)
        Pa, coefa, scalea, maska, g_coefa, g_scalea = (t.numpy() for t in arrays)
        cpu_kernels.unfold(Pa, gqa, coefa, scalea, maska, g_coefa, g_scalea)
        g_base = (gy.T @ b).mul_(mask)
        return (gx if need_x else None), g_coef, g_scale, g_base, None, None, None, None


class AdaptiveKANLayer(nn.Module):
    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        grid_size: int = 10,
        spline_degree: int = 3,
        grid_range=(-1.0, 1.0),
        base_activation: str = "silu",
        noise_scale: float = 0.1,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__()
        if base_activation not in BASE_ACTIVATIONS:
            raise ValueError(f"base_activation must be one of {BASE_ACTIVATIONS}")
        self.in_dim, self.out_dim, self.degree = in_dim, out_dim, spline_degree
        self.base_activation = base_activation
        fk = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        rng = torch.as_tensor(grid_range, **fk).reshape(-1, 2).expand(in_dim, 2)
        knots = spline.uniform_knots(rng[:, 0], rng[:, 1], grid_size, spline_degree)
        self.register_buffer("knots", knots.contiguous())
        self.register_buffer("mask", torch.ones(out_dim, in_dim, **fk))
        n = grid_size + spline_degree
        # Paper's initialisation: splines start as small noise, base weights Xavier-uniform.
        self.coef = nn.Parameter(
            (torch.rand(in_dim, n, out_dim, **fk) - 0.5) * noise_scale / grid_size
        )
        bound = math.sqrt(6.0 / (in_dim + out_dim))
        self.base_weight = nn.Parameter((torch.rand(out_dim, in_dim, **fk) * 2 - 1) * bound)
        self.spline_scale = nn.Parameter(torch.ones(out_dim, in_dim, **fk))
        self.contraction = "auto"  # "fused", "dense", "gather" or "auto" (see forward)
        self._refresh_tables()

    # ------------------------------------------------------------------ shapes and grids
    @property
    def grid_size(self) -> int:
        """Number of knot intervals in the base interval (the same for every input)."""
        return self.knots.shape[1] - 2 * self.degree - 1

    @property
    def num_basis(self) -> int:
        return self.knots.shape[1] - self.degree - 1

    def grid_range(self) -> torch.Tensor:
        """(in, 2): the base interval [t_k, t_n] of every input."""
        lo, hi = spline.base_interval(self.knots, self.degree)
        return torch.stack([lo, hi], dim=1)

    def interior_knots(self) -> torch.Tensor:
        """(in, G+1): the knots of the base interval."""
        k = self.degree
        return self.knots[:, k : k + self.grid_size + 1]

    def _set_grid(self, knots: torch.Tensor, coef: torch.Tensor) -> None:
        """Swap in new knots and coefficients (a new shape replaces the coef Parameter)."""
        self.knots = knots.contiguous()
        if coef.shape == self.coef.shape:  # same shape: keep the Parameter (and optimizer state)
            self.coef.data.copy_(coef)
        else:
            self.coef = nn.Parameter(coef.contiguous().to(self.coef.dtype))
        self._refresh_tables()

    def _refresh_tables(self) -> None:
        """Derived from the knots (not saved): span polynomials, interior knots, 1/widths."""
        g = self.interior_knots().contiguous()
        h = g[:, 1:] - g[:, :-1]
        self.register_buffer("_interior", g, persistent=False)
        self.register_buffer("_inv_h", 1.0 / h, persistent=False)
        self.register_buffer(
            "_poly",
            spline.span_polynomials(self.knots, self.degree).contiguous(),
            persistent=False,
        )
        # Uniform up to rounding (knots off by a few ulps of their magnitude): then the span has
        # a closed form (a point within rounding of a knot may take the neighbouring span, whose
        # polynomial agrees there up to the same rounding).
        spread = (h - h[:, :1]).abs().amax(dim=1)
        eps = torch.finfo(h.dtype).eps
        tol = torch.minimum(64 * eps * g.abs().amax(dim=1), 1e-3 * h.abs().amin(dim=1))
        self._uniform = bool((spread <= tol).all())
        self._grid_views = (None,)  # numpy views for the fused kernels, made on first use
        # Otherwise the fused kernels count the knots below a point on grids of few spans, and
        # beyond that find its span through a bucket table: bucket j of LOOKUP_BUCKETS*G equal
        # parts of the base interval starts in span lookup[:, j].
        B = LOOKUP_BUCKETS * self.grid_size
        lo, hi = g[:, :1], g[:, -1:]
        edges = lo + (hi - lo) * torch.linspace(0, 1, B + 1, dtype=g.dtype, device=g.device)
        span = torch.searchsorted(g, edges.contiguous(), right=True) - 1
        self.register_buffer("_lookup", span.clamp_(0, self.grid_size - 1), persistent=False)
        self.register_buffer("_bucket_scale", (B / (hi - lo)).reshape(-1), persistent=False)

    def _kernel_grid(self) -> tuple:
        """The grid tables as the fused kernels take them (numpy views, made once per grid)."""
        tables = (self._interior, self._inv_h, self._lookup, self._bucket_scale)
        key = tuple((t.data_ptr(), t.dtype) for t in tables)
        if self._grid_views[0] != key:
            self._grid_views = (key, (*(t.numpy() for t in tables), self._uniform))
        return self._grid_views[1]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A saved layer may have been refined: adopt its shapes before copying the values.
        knots, coef = state_dict.get(prefix + "knots"), state_dict.get(prefix + "coef")
        if knots is not None and coef is not None:
            self._set_grid(knots.to(self.knots), coef.to(self.coef))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ evaluation
    def effective_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(in, out) base weights and (in, n, out) spline coefficients, scale and mask folded in."""
        w_base = (self.base_weight * self.mask).T
        w_spline = self.coef * (self.spline_scale * self.mask).T[:, None, :]
        return w_base, w_spline

    def poly_weights(self, w_spline: torch.Tensor) -> torch.Tensor:
        """(in, n, out) B-spline coefficients → (in, G, k+1, out) span-polynomial coefficients:
        ``Q[d, g, m, o] = sum_r P[d, g, r, m] * w[d, g + r, o]`` (differentiable, small)."""
        k1 = self.degree + 1
        windows = w_spline.unfold(1, k1, 1)  # (in, G, out, k+1): coefficients active on span g
        return torch.einsum("dgrm,dgor->dgmo", self._poly, windows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in) → (N, out), the fast path (span polynomials, analytic backward).

        ``contraction``: "fused" (one numba pass per sample, CPU only), "dense" (scatter the
        powers + one GEMM: good while the grid is small next to the output width), "gather"
        (gather each sample's polynomial rows: cost independent of the grid size). "auto" takes
        "fused" on the CPU when numba is installed, else "dense" or "gather" by shape.
        """
        assert x.dim() == 2 and x.shape[1] == self.in_dim, (
            f"expected (N, {self.in_dim}), got {tuple(x.shape)}"
        )
        mode = self.contraction
        if mode == "auto":
            if fused_cpu_kernels() and x.device.type == "cpu":
                mode = "fused"
            else:
                mode = "dense" if self.grid_size <= 2 * self.out_dim else "gather"
        if mode == "fused":
            grid = self._kernel_grid()
            return _FusedCPUFunction.apply(
                x,
                self.coef,
                self.spline_scale,
                self.base_weight,
                self.mask,
                self._poly,
                grid,
                self.base_activation,
            )
        w_base, w_spline = self.effective_weights()
        Q = self.poly_weights(w_spline)  # (in, G, k+1, out)
        return _KANLayerFunction.apply(
            x,
            self._interior,
            self._inv_h,
            Q.reshape(-1, self.out_dim),
            w_base,
            self._uniform,
            self.base_activation,
            mode == "dense",
        )

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in) → (N, out) through the dense basis and plain autograd (slow; for tests)."""
        w_base, w_spline = self.effective_weights()
        B = spline.bspline_basis(x, self.knots, self.degree)  # (N, in, n)
        return _base(x, self.base_activation) @ w_base + torch.einsum("nim,imo->no", B, w_spline)

    def spline_values(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in) → (N, in, out): sum_m c_imj B_m(x_i), the raw splines (no scale, no mask).

        Evaluated from the k+1 basis functions that are nonzero at each point
        (`spline.local_basis`, linear beyond the grid like the layer), so the cost does not grow
        with the grid; differentiable (the sparsity penalty trains through it)."""
        first, values, _ = spline.local_basis(x, self.knots, self.degree)  # (N, in, k+1)
        index = first[..., None] + torch.arange(values.shape[-1], device=x.device)
        rows = torch.arange(x.shape[1], device=x.device)[None, :, None]
        coef = self.coef[rows, index]  # (N, in, k+1, out): the coefficients active at x
        return torch.einsum("nir,niro->nio", values, coef)

    def edge_activations(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in) → (N, out, in): phi_ji(x_i) for every edge, pruned edges give 0.

        Summing over the last axis gives ``forward(x)``; used by regularisation, pruning, plots.
        """
        base = _base(x, self.base_activation)[:, None, :] * self.base_weight  # (N, out, in)
        spl = self.spline_values(x).transpose(1, 2) * self.spline_scale  # (N, out, in)
        return (base + spl) * self.mask

    # ------------------------------------------------------------------ grid changes
    @torch.no_grad()
    def update_grid_range(self, x: torch.Tensor, grid_eps: float = 1.0) -> None:
        """Move every input's base interval to the range of the samples ``x (N, in)``.

        The new interior knots are ``grid_eps * (current knots mapped affinely onto [min, max])
        + (1 - grid_eps) * (sample quantiles)`` (the paper's mix of uniform and data-adaptive
        knots; a uniform grid maps to a uniform one). The coefficients are refitted by least
        squares on ``x``, so the function is kept where the data are.
        """
        G = self.grid_size
        lo, hi = x.min(dim=0).values, x.max(dim=0).values
        half = 0.5 * (hi - lo)
        centre = 0.5 * (hi + lo)
        half = torch.maximum(half, 1e-3 * (1 + centre.abs()))  # a constant input still gets a grid
        lo, hi = centre - half, centre + half
        g_old = self.interior_knots()
        rel = (g_old - g_old[:, :1]) / (g_old[:, -1:] - g_old[:, :1])  # (in, G+1) in [0, 1]
        mapped = lo[:, None] + rel * (hi - lo)[:, None]
        if grid_eps < 1.0:
            q = torch.linspace(0, 1, G + 1, dtype=x.dtype, device=x.device)
            quant = torch.quantile(x.T.contiguous(), q, dim=1).T  # (in, G+1)
            quant[:, 0], quant[:, -1] = lo, hi
            mapped = grid_eps * mapped + (1 - grid_eps) * quant
        self._regrid(x, self._extend(mapped))

    def _extend(self, interior: torch.Tensor) -> torch.Tensor:
        """(in, G+1) interior knots → (in, G+2k+1), k knots outside each end at the mean spacing."""
        k, G = self.degree, interior.shape[1] - 1
        h = (interior[:, -1] - interior[:, 0]) / G
        steps = torch.arange(1, k + 1, dtype=interior.dtype, device=interior.device)
        left = interior[:, :1] - steps.flip(0)[None, :] * h[:, None]
        right = interior[:, -1:] + steps[None, :] * h[:, None]
        return torch.cat([left, interior, right], dim=1)

    def _regrid(self, x: torch.Tensor, knots: torch.Tensor) -> None:
        """Least-squares refit of every spline onto new knots, on the samples x and on a fine
        uniform sweep of the new base interval (so spans without samples stay well defined)."""
        lo, hi = spline.base_interval(knots, self.degree)
        sweep = torch.linspace(0, 1, 4 * knots.shape[1], dtype=x.dtype, device=x.device)
        pts = torch.cat([x, (lo[None, :] + sweep[:, None] * (hi - lo)[None, :])], dim=0)
        values = self.spline_values(pts)  # (P, in, out)
        self._set_grid(knots, spline.fit_coefficients(pts, values, knots, self.degree))

    @torch.no_grad()
    def refine(
        self,
        x: torch.Tensor,
        k: int | None = None,
        grid_size: int | None = None,
        placement: str = "error",
        out_grad: torch.Tensor | None = None,
        carry: list[torch.Tensor] = (),
    ) -> list[torch.Tensor] | None:
        """Give every input ``k`` more knot intervals, or ``grid_size`` in all.

        The function is preserved exactly whenever the new knots contain the old ones: new knots
        are *inserted* (Boehm) for every placement, except "uniform" with a ``grid_size`` that is
        not a multiple of the current one, which re-grids by least squares on ``x``.

        Where the new knots go (``placement``):
        - "uniform": an evenly spaced grid (``k``: midpoints of the widest intervals).
        - "density": split the intervals holding the most samples, at the median sample.
        - "error": split the intervals whose *error indicator* is largest, at their midpoint.
          With ``out_grad`` (N, out), the gradient of the loss w.r.t. this layer's outputs at the
          samples, the indicator of interval s of input i is sum over samples in s of
          ``|out_grad|^2`` — where the residual carried through this layer is concentrated.
          Without it, a data-free proxy: ``h_s^{k+1}`` times the jump of the k-th derivative of
          the edge splines at the ends of s (the local size of the (k+1)-th derivative), weighted
          by the share of samples in s. After a split each half gets the indicator divided by
          2^(2k+3) (squared residual of a degree-k fit falls as h^(2k+2), half the samples each),
          so several knots spread over several bad intervals instead of piling into one.

        ``carry``: more tensors laid out like ``coef`` (in, n, out), e.g. an optimizer's moment
        estimates, put through the same knot insertion; returned transformed, or None when the
        grid changed by a least-squares re-grid instead (or did not change).
        """
        if placement not in KNOT_PLACEMENTS:
            raise ValueError(f"placement must be one of {KNOT_PLACEMENTS}, got {placement!r}")
        if (k is None) == (grid_size is None):
            raise ValueError("give exactly one of k and grid_size")
        G = self.grid_size
        target = G + k if k is not None else grid_size
        if target < 1:
            raise ValueError(f"grid size must be >= 1, got {target}")
        if target == G:
            return None
        if placement == "uniform" and grid_size is not None:
            lo, hi = self.grid_range().unbind(1)
            if not (self._uniform and target % G == 0):
                self._regrid(x, spline.uniform_knots(lo, hi, target, self.degree))
                return None
            fine = spline.uniform_knots(lo, hi, target, self.degree)
            sub = target // G
            keep = torch.ones(fine.shape[1], dtype=torch.bool, device=fine.device)
            d = self.degree
            keep[d : d + target + 1 : sub] = False  # old interior knots already present
            keep[:d] = keep[d + target + 1 :] = False  # the outer knots are kept as they are
            return self._insert(fine[:, keep], carry)
        if target < G:
            raise ValueError(f"refine adds knots: grid_size {target} < current {G}")
        indicator = self._indicator(x, placement, out_grad)  # (in, G)
        # an input whose indicator is zero everywhere (e.g. all its edges pruned) splits evenly
        widths = self._interior[:, 1:] - self._interior[:, :-1]
        flat = (indicator <= 0).all(dim=1, keepdim=True)
        indicator = torch.where(flat, widths, indicator)
        return self._insert(self._choose_knots(x, target - G, placement, indicator), carry)

    def _insert(self, new_knots: torch.Tensor, carry=()) -> list[torch.Tensor]:
        k = self.degree
        moved = [spline.insert_knots(self.knots, m, k, new_knots)[1] for m in carry]
        t, c = spline.insert_knots(self.knots, self.coef.data, k, new_knots)
        self._set_grid(t, c)
        return moved

    def _indicator(self, x, placement, out_grad) -> torch.Tensor:
        """(in, G) non-negative score per interval; larger = more in need of a knot."""
        g = self.interior_knots()
        G = self.grid_size
        span = (torch.searchsorted(g.contiguous(), x.T.contiguous(), right=True) - 1).clamp(
            0, G - 1
        )
        inside = (x.T >= g[:, :1]) & (x.T <= g[:, -1:])
        count = torch.zeros(self.in_dim, G, dtype=x.dtype, device=x.device)
        count.scatter_add_(1, span, inside.to(x.dtype))
        if placement == "uniform":
            return g[:, 1:] - g[:, :-1]  # widest first
        if placement == "density":
            return count
        if out_grad is not None:
            energy = (out_grad**2).sum(dim=1)[None, :].expand(self.in_dim, -1) * inside
            ind = torch.zeros_like(count).scatter_add_(1, span, energy.to(x.dtype))
            if bool((ind > 0).any()):
                return ind
        return self._curvature_indicator(count)

    def _curvature_indicator(self, count: torch.Tensor) -> torch.Tensor:
        k, G = self.degree, self.grid_size
        t = self.knots
        d = self.coef.data * (self.spline_scale * self.mask).T[:, None, :]  # (in, n, out)
        for p in range(k, 0, -1):  # k-th derivative: differences of the coefficients
            width = (t[:, p + 1 : p + 1 + d.shape[1] - 1] - t[:, 1 : d.shape[1]])[..., None]
            d = p * (d[:, 1:] - d[:, :-1]) / width.clamp_min(1e-300)
            t = t[:, 1:-1]
        # d (in, n-k, out): piecewise-constant k-th derivative; interval s of the base interval
        # uses d[:, s + ...]. The base interval's G pieces are the middle ones.
        off = (d.shape[1] - G) // 2
        pieces = d[:, off : off + G]  # (in, G, out)
        padded = torch.cat([pieces[:, :1], pieces, pieces[:, -1:]], dim=1)
        jump = (padded[:, 1:] - padded[:, :-1]).abs().amax(dim=2)  # (in, G+1) at each knot
        g = self.interior_knots()
        h = g[:, 1:] - g[:, :-1]
        share = count / count.sum(dim=1, keepdim=True).clamp_min(1)
        return h ** (k + 1) * 0.5 * (jump[:, :-1] + jump[:, 1:]) / h * (share + 1e-3 / G)

    def _choose_knots(self, x, r, placement, indicator) -> torch.Tensor:
        """(in, r) new knots by greedy splitting of the interval with the largest indicator."""
        k = self.degree
        out = []
        for i in range(self.in_dim):
            g = self.interior_knots()[i].tolist()
            score = indicator[i].tolist()
            xi = torch.sort(x[:, i]).values if placement == "density" else None
            new = []
            for _ in range(r):
                s = max(range(len(score)), key=score.__getitem__)
                a, b = g[s], g[s + 1]
                u = 0.5 * (a + b)
                if xi is not None:  # the median sample of the interval, kept off its ends
                    lo_i, hi_i = torch.searchsorted(
                        xi, torch.tensor([a, b], dtype=xi.dtype, device=xi.device)
                    ).tolist()
                    if hi_i > lo_i:
                        u = min(
                            max(xi[(lo_i + hi_i) // 2].item(), a + 0.1 * (b - a)), b - 0.1 * (b - a)
                        )
                g[s + 1 : s + 1] = [u]
                child = score[s] / (2 ** (2 * k + 3)) if placement == "error" else score[s] / 2
                score[s : s + 1] = [child, child]
                new.append(u)
            out.append(new)
        return torch.tensor(out, dtype=self.knots.dtype, device=self.knots.device)
