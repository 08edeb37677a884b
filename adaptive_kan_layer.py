"""One KAN layer with learnable B-spline activations on adaptive, per-input knot vectors.

Every edge (input i → output j) carries (KAN paper, eq. 2.10)

    phi_ji(x) = m_ji * (wb_ji * b(x) + ws_ji * sum_m c_imj B_m(x; t_i)),

b the base activation (SiLU by default), ``t_i`` the knot vector of input i, ``m`` a 0/1 edge mask
for pruning. Output j sums its incoming edges. Outside the base interval of ``t_i`` the spline
continues linearly (value and slope at the nearest end; see spline.py), so inputs beyond the grid
get a well-defined, non-zero value and a gradient.

Layouts: ``knots (in, M)``; ``coef (in, n, out)`` with ``n = M - k - 1``; ``base_weight``,
``spline_scale`` and ``mask (out, in)``. All inputs of a layer keep the same number of knots.
The forward passes live in layer_kernels.py, where the knots go in knots.py.
"""

import math

import torch
from torch import nn

import knots as knot_policy
import layer_kernels
import spline
from knots import KNOT_PLACEMENTS
from layer_kernels import BASE_ACTIVATIONS, CONTRACTIONS, fused_cpu_kernels

__all__ = ["AdaptiveKANLayer", "BASE_ACTIVATIONS", "CONTRACTIONS", "KNOT_PLACEMENTS"]


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
        self.contraction = "auto"  # one of CONTRACTIONS (see forward)
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

    def set_grid(self, knots: torch.Tensor, coef: torch.Tensor) -> None:
        """Swap in new knots ``(in, M)`` and coefficients ``(in, M-k-1, out)`` (a new shape
        replaces the coef Parameter; the same shape keeps it, and an optimizer's state)."""
        self.knots = knots.contiguous()
        if coef.shape == self.coef.shape:
            self.coef.data.copy_(coef)
        else:
            trained = self.coef.requires_grad  # a linear layer's stays fixed (`make_linear`)
            self.coef = nn.Parameter(coef.contiguous().to(self.coef.dtype), requires_grad=trained)
        self._refresh_tables()

    def make_linear(self, offset: torch.Tensor | None = None) -> None:
        """Fix every edge to phi(x) = spline_scale * (x + offset_i) (offset: ``(in,)``, default
        0): the spline's coefficients become the Greville abscissae of the knots plus the
        offset (a cubic B-spline with those is exactly that line, and stays it through
        refinement and range updates, which refit it by least squares), the base weight 0; only
        spline_scale trains. Not saved: a reloaded layer trains in full again."""
        k = self.degree
        with torch.no_grad():
            greville = self.knots.unfold(1, k, 1)[:, 1 : self.coef.shape[1] + 1].mean(dim=2)
            if offset is not None:
                greville = greville + torch.as_tensor(offset).to(greville)[:, None]
            self.coef.copy_(greville[:, :, None].expand_as(self.coef))
            self.base_weight.zero_()
        self.freeze_spline()

    def freeze_spline(self) -> None:
        """Stop training the coefficients and the base weight (`make_linear`; a pruned copy of
        a linear layer, whose coefficients are already its lines)."""
        self.coef.requires_grad_(False)
        self.base_weight.requires_grad_(False)

    @property
    def linear(self) -> bool:
        """Whether `make_linear` fixed this layer's edges."""
        return not self.coef.requires_grad

    def _refresh_tables(self) -> None:
        """The fast paths' tables (layer_kernels.grid_tables), as buffers that are not saved
        but move with the layer (``.to(device)``)."""
        tables, self._uniform = layer_kernels.grid_tables(self.knots, self.degree)
        for name, table in tables.items():
            self.register_buffer(f"_{name}", table, persistent=False)
        self._grid_views = (None,)  # numpy views for the fused kernels, made on first use

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
            self.set_grid(knots.to(self.knots), coef.to(self.coef))
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
        """(..., in) → (..., out) like ``nn.Linear``: the leading axes are flattened into one
        batch axis for `forward_2d` and restored after."""
        assert x.dim() >= 1 and x.shape[-1] == self.in_dim, (
            f"expected (..., {self.in_dim}), got {tuple(x.shape)}"
        )
        if x.dim() == 2:
            return self.forward_2d(x)
        return self.forward_2d(x.reshape(-1, self.in_dim)).reshape(*x.shape[:-1], self.out_dim)

    def forward_2d(self, x: torch.Tensor) -> torch.Tensor:
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
            return layer_kernels.FusedCPUFunction.apply(
                x,
                self.coef,
                self.spline_scale,
                self.base_weight,
                self.mask,
                self._poly,
                self._kernel_grid(),
                self.base_activation,
            )
        w_base, w_spline = self.effective_weights()
        Q = self.poly_weights(w_spline)  # (in, G, k+1, out)
        return layer_kernels.TorchSplineFunction.apply(
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
        base = layer_kernels.base(x, self.base_activation)
        return base @ w_base + torch.einsum("nim,imo->no", B, w_spline)

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
        base = layer_kernels.base(x, self.base_activation)[:, None, :] * self.base_weight
        spl = self.spline_values(x).transpose(1, 2) * self.spline_scale  # (N, out, in)
        return (base + spl) * self.mask

    # ------------------------------------------------------------------ grid changes
    @torch.no_grad()
    def update_grid_range(self, x: torch.Tensor, grid_eps: float = 1.0) -> None:
        """Move every input's base interval to the range of the samples ``x (N, in)``
        (`knots.range_interior`); the coefficients are refitted by least squares on ``x``, so
        the function is kept where the data are."""
        interior = knot_policy.range_interior(self.interior_knots(), x, grid_eps)
        self._regrid(x, knot_policy.extend(interior, self.degree))

    def _regrid(self, x: torch.Tensor, knots: torch.Tensor) -> None:
        """Least-squares refit of every spline onto new knots, on the samples x and on a fine
        uniform sweep of the new base interval (so spans without samples stay well defined)."""
        lo, hi = spline.base_interval(knots, self.degree)
        sweep = torch.linspace(0, 1, 4 * knots.shape[1], dtype=x.dtype, device=x.device)
        pts = torch.cat([x, (lo[None, :] + sweep[:, None] * (hi - lo)[None, :])], dim=0)
        values = self.spline_values(pts)  # (P, in, out)
        self.set_grid(knots, spline.fit_coefficients(pts, values, knots, self.degree))

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
        not a multiple of the current one, which re-grids by least squares on ``x``. Where the
        new knots go: `knots.interval_scores` and `knots.split_intervals` (placement "error"
        uses ``out_grad (N, out)``, the loss gradient w.r.t. this layer's outputs, when given).

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
            new = knot_policy.uniform_subdivision(self.knots, self.degree, target)
            if new is None or not self._uniform:
                lo, hi = self.grid_range().unbind(1)
                self._regrid(x, spline.uniform_knots(lo, hi, target, self.degree))
                return None
            return self._insert(new, carry)
        if target < G:
            raise ValueError(f"refine adds knots: grid_size {target} < current {G}")
        interior = self.interior_knots()
        weighted = self.coef.data * (self.spline_scale * self.mask).T[:, None, :]
        scores = knot_policy.interval_scores(
            interior, x, placement, self.knots, weighted, self.degree, out_grad
        )
        new = knot_policy.split_intervals(interior, x, target - G, placement, scores, self.degree)
        return self._insert(new, carry)

    def _insert(self, new_knots: torch.Tensor, carry=()) -> list[torch.Tensor]:
        k = self.degree
        moved = [spline.insert_knots(self.knots, m, k, new_knots)[1] for m in carry]
        t, c = spline.insert_knots(self.knots, self.coef.data, k, new_knots)
        self.set_grid(t, c)
        return moved
