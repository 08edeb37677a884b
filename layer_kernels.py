"""The KAN layer's forward and backward passes as autograd Functions, and the grid tables they
read. Two paths compute the same maths (tests compare both with the dense reference):

- `TorchSplineFunction`: torch operations with an analytic backward (CUDA, or without numba);
- `FusedCPUFunction`: the fused numba kernels of cpu_kernels.py (the CPU).

Both use the piecewise-polynomial form of the splines: on span g of input d every edge spline
is a degree-k polynomial in u = (x - t_g) / h_g (`spline.span_polynomials`), continued linearly
beyond the base interval. Per sample only the span and k+1 powers of u are needed.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

import spline

try:  # fused CPU kernels; without numba the torch path serves (CPU and CUDA alike)
    import cpu_kernels
except ImportError:
    cpu_kernels = None

BASE_ACTIVATIONS = ("silu", "identity", "tanh", "none")
CONTRACTIONS = ("auto", "fused", "dense", "gather")
LOOKUP_BUCKETS = 4  # span-table buckets per grid interval (non-uniform grids, fused kernels)


def fused_cpu_kernels() -> bool:
    """True when the fused CPU kernels (numba) are available."""
    return cpu_kernels is not None


@contextmanager
def torch_serial() -> Iterator[None]:
    """While inside: torch single-threaded (restored on exit, also on an error).

    The fused kernels split their work over their own threads; torch's pool, at whatever size the
    caller left it, would spin beside them between its small operations and take their cores.
    Torch's products here are then one thread's, in one fixed order, for any thread count."""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def base(x: torch.Tensor, name: str) -> torch.Tensor:
    """The base branch b(x) of every edge."""
    if name == "silu":
        return torch.nn.functional.silu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "identity":
        return x
    return torch.zeros_like(x)


def base_backward(g: torch.Tensor, x: torch.Tensor, act: str) -> torch.Tensor:
    """g * b'(x), in one fused elementwise op where torch has one."""
    if act == "silu":
        return torch.ops.aten.silu_backward(g, x)
    if act == "tanh":
        return torch.ops.aten.tanh_backward(g, torch.tanh(x))
    if act == "identity":
        return g
    return torch.zeros_like(x)


def grid_tables(knots: torch.Tensor, degree: int) -> tuple[dict[str, torch.Tensor], bool]:
    """What the fast paths read, derived from a layer's knots ``(in, M)`` (never saved).

    Returns ``(tables, uniform)``: ``interior (in, G+1)`` the base-interval knots, ``inv_h
    (in, G)`` 1 / span widths, ``poly (in, G, k+1, k+1)`` the span polynomials, and for the fused
    kernels on non-uniform grids a bucket table: bucket j of LOOKUP_BUCKETS*G equal parts of the
    base interval starts in span ``lookup[:, j]``, ``bucket_scale (in,)`` buckets per unit
    length. ``uniform``: the spans are evenly spaced (then a span has a closed form).
    """
    k = degree
    G = knots.shape[1] - 2 * k - 1
    g = knots[:, k : k + G + 1].contiguous()
    h = g[:, 1:] - g[:, :-1]
    # Uniform up to rounding (knots off by a few ulps of their magnitude): then the span has a
    # closed form (a point within rounding of a knot may take the neighbouring span, whose
    # polynomial agrees there up to the same rounding).
    spread = (h - h[:, :1]).abs().amax(dim=1)
    eps = torch.finfo(h.dtype).eps
    tol = torch.minimum(64 * eps * g.abs().amax(dim=1), 1e-3 * h.abs().amin(dim=1))
    uniform = bool((spread <= tol).all())
    B = LOOKUP_BUCKETS * G
    lo, hi = g[:, :1], g[:, -1:]
    edges = lo + (hi - lo) * torch.linspace(0, 1, B + 1, dtype=g.dtype, device=g.device)
    span = torch.searchsorted(g, edges.contiguous(), right=True) - 1
    tables = {
        "interior": g,
        "inv_h": 1.0 / h,
        "poly": spline.span_polynomials(knots, degree).contiguous(),
        "lookup": span.clamp_(0, G - 1),
        "bucket_scale": (B / (hi - lo)).reshape(-1),
    }
    return tables, uniform


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


class TorchSplineFunction(torch.autograd.Function):
    """Fast forward/backward of a layer in piecewise-polynomial form, in torch operations.

    The span-polynomial coefficients ``Q (D*G*(k+1), O)`` are folded from the B-spline
    coefficients once per step (`AdaptiveKANLayer.poly_weights`). Then either
    - "dense": scatter the powers into an (N, D*G*(k+1)) matrix and do one GEMM with Q
      (fastest while G is small next to the output width), or
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
            y = torch.addmm(base(x, act) @ w_base, S, Q)
            ctx.save_for_backward(x, span, S, dU, Q, w_base)
        else:
            Qg = Q.reshape(D * G, K1 * O)[cell].reshape(N, D * K1, O)
            y = torch.bmm(U.reshape(N, 1, D * K1), Qg).reshape(N, O)
            y = y + base(x, act) @ w_base
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
            g_wb = base(x, act).T @ gy
        if ctx.needs_input_grad[0]:
            g_x = base_backward(gy @ w_base.T, x, act) + (local * dU).sum(-1)
        return g_x, None, None, g_q, g_wb, None, None, None


class FusedCPUFunction(torch.autograd.Function):
    """The layer on the CPU through the fused kernels of cpu_kernels.py (same maths as
    `TorchSplineFunction`), from the raw parameters: coefficients ``coef (D, n, O)``, ``scale``
    and ``base_weight (O, D)``, ``mask (O, D)``, and the span-polynomial table
    ``P (D, G, K1, K1)``. Scaling, masking and folding into span polynomials happen inside, so a
    layer is one node of the autograd graph."""

    @staticmethod
    def forward(ctx, x, coef, scale, base_weight, mask, P, grid, act):
        with torch_serial():
            return FusedCPUFunction.fused_forward(
                ctx, x, coef, scale, base_weight, mask, P, grid, act
            )

    @staticmethod
    def fused_forward(ctx, x, coef, scale, base_weight, mask, P, grid, act):
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
        b = base(x, act)
        y = b @ wb  # the base branch; the kernel adds the splines
        cpu_kernels.layer_forward(x.numpy(), grid, Q.numpy(), y.numpy())
        ctx.save_for_backward(x, b, coef, scale, wb, mask, P, Q)
        ctx.grid, ctx.act = grid, act
        return y

    @staticmethod
    def backward(ctx, gy):
        with torch_serial():
            return FusedCPUFunction.fused_backward(ctx, gy)

    @staticmethod
    def fused_backward(ctx, gy):
        x, b, coef, scale, wb, mask, P, Q = ctx.saved_tensors
        need_x = ctx.needs_input_grad[0]
        gy = gy.detach().contiguous()
        # the base branch's input gradient; the kernel adds the splines' into it
        gx = base_backward(gy @ wb.T, x, act=ctx.act) if need_x else x.new_empty(1, 1)
        gq = torch.empty_like(Q)
        xa, Qa, gya, gxa, gqa = (t.numpy() for t in (x, Q, gy, gx, gq))
        cpu_kernels.layer_backward(xa, ctx.grid, Qa, gya, gxa, gqa, need_x)
        g_coef, g_scale = torch.empty_like(coef), torch.empty_like(scale)
        arrays = (P, coef, scale, mask, g_coef, g_scale)
        Pa, coefa, scalea, maska, g_coefa, g_scalea = (t.numpy() for t in arrays)
        cpu_kernels.unfold(Pa, gqa, coefa, scalea, maska, g_coefa, g_scalea)
        g_base = (gy.T @ b).mul_(mask)
        return (gx if need_x else None), g_coef, g_scale, g_base, None, None, None, None
