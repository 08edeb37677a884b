"""Fused CPU kernels of the KAN layer (numba): span, powers and contraction in one pass.

The layer's splines are in piecewise-polynomial form: on span g of input d the spline of edge
(d → o) is ``sum_m Q[d, g, m, o] u^m`` with ``u = (x - t_g) / h_g`` (`fold` builds Q from the
B-spline coefficients and the per-edge scale, `unfold` is its adjoint); outside the base interval
the spline continues linearly. For a block of sample rows the kernels first locate every input
(span and powers of u: closed form on uniform knots, a count of the knots below it on grids of
few spans, else a bucket table and at most a short branch-free search), then contract input by
input: a SIMD loop over the outputs (contiguous in Q and y), consecutive rows independent of
each other; a layer with one output sums over its inputs in a register instead. No
intermediate tensor is materialised, so the cost is O(N·D·O·(k+1)) whatever the grid size.

The kernels compute the spline branch only: the base branch b(x) @ w and its gradients are dense
matrix products and vectorised elementwise ops, which torch does better (and the kernels then
hold no transcendental calls). Everything runs in the arrays' own precision (float32 stays
float32: constants are cast, never promoted).

Parallelism: the kernels are serial and release the GIL; a call splits its work into one range
per thread (`THREADS`, or one for small work) and runs them on a small thread pool: the forward
and `fold` / `unfold` split the inputs or rows they write, the backward splits the inputs, so
every gradient entry is summed by one thread in sample order and results do not depend on the
number of threads. (numba's parallel compilation took up to 18 s per kernel and float type.)
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

THREADS = numba.config.NUMBA_NUM_THREADS  # kernel threads (NUMBA_NUM_THREADS, default: all cores)
ROWS = 32  # sample rows located at a time
SERIAL_WORK = 1 << 15  # below this many (sample, input, output) triples one thread is faster
COUNT_SPANS = 64  # non-uniform grids of at most this many spans: count knots, no table
SERIAL_TABLE = 1 << 18  # the same for (fold, unfold): table entries, weighted for the loop overhead

_FAST = {"reassoc", "contract", "nsz", "arcp"}


@njit(fastmath=_FAST, cache=True, nogil=True)
def _locate_rows(x, n0, R, grid, span, U, dU, scratch, d0, d1):
    """Spans and powers of samples n0 .. n0+R-1 (column i of the scratch arrays for sample
    n0+i) in inputs d0 <= d < d1: span[d, i] and U[m, d, i] = u^m + m u^(m-1) e (e: the linear
    continuation beyond the grid, zero inside it); dU[m, d, i] = dU_m/dx when dU has rows.
    ``scratch`` (3, ROWS) holds one input's u, e and 1/h. Inputs run outermost and the block's
    rows innermost and contiguous, so the closed form of uniform knots, the knot count and the
    powers are SIMD loops over rows, whatever the number of inputs. (Kernels index arrays in
    full rather than taking row views: a view costs a reference-count update per use.)"""
    interior, inv_h, lookup, bucket_scale, uniform = grid
    K1 = U.shape[0]
    G, B = inv_h.shape[1], lookup.shape[1] - 1
    T = U.dtype.type
    top = T(G - 1)
    slopes = dU.shape[0] > 0
    for d in range(d0, d1):
        lo, hi = interior[d, 0], interior[d, G]
        if uniform:
            ih = inv_h[d, 0]
            for i in range(R):
                xv = x[n0 + i, d]
                xc = min(max(xv, lo), hi)
                t = (xc - lo) * ih
                f = min(np.floor(t), top)
                span[d, i] = np.int64(f)
                scratch[0, i] = t - f
                scratch[1, i] = (xv - xc) * ih
                scratch[2, i] = ih
        elif G <= COUNT_SPANS:  # few spans: count the knots at or below each input (SIMD)
            for i in range(R):
                scratch[0, i] = min(max(x[n0 + i, d], lo), hi)
                scratch[1, i] = 0
            for g in range(1, G):
                knot = interior[d, g]
                for i in range(R):
                    scratch[1, i] += T(knot <= scratch[0, i])
            for i in range(R):
                xv, xc, s = x[n0 + i, d], scratch[0, i], np.int64(scratch[1, i])
                ih = inv_h[d, s]
                span[d, i] = s
                scratch[0, i] = (xc - interior[d, s]) * ih
                scratch[1, i] = (xv - xc) * ih
                scratch[2, i] = ih
        else:  # bucket j holds spans lookup[d, j] .. lookup[d, j+1]: search only those
            for i in range(R):
                xv = x[n0 + i, d]
                xc = min(max(xv, lo), hi)
                j = min(int((xc - lo) * bucket_scale[d]), B - 1)
                s, last = lookup[d, j], lookup[d, j + 1]
                if last - s <= 1:  # the usual case: at most one knot inside the bucket
                    s += (last - s) * (interior[d, last] <= xc)
                else:  # crowded bucket: branch-free binary search over its spans
                    width = last - s + 1
                    while width > 1:
                        half = width >> 1
                        s += half * (interior[d, s + half] <= xc)
                        width -= half
                # rounding of the bucket index can land one bucket off: one step either way
                s -= (s > 0) * (interior[d, s] > xc)
                s += (s < G - 1) * (interior[d, s + 1] <= xc)
                ih = inv_h[d, s]
                span[d, i] = s
                scratch[0, i] = (xc - interior[d, s]) * ih
                scratch[1, i] = (xv - xc) * ih
                scratch[2, i] = ih
        for i in range(R):
            U[0, d, i] = T(1)
        if K1 == 4:
            for i in range(R):
                u, e = scratch[0, i], scratch[1, i]
                U[1, d, i] = u + e
                U[2, d, i] = u * (u + T(2) * e)
                U[3, d, i] = u * u * (u + T(3) * e)
            if slopes:
                for i in range(R):
                    u, ih = scratch[0, i], scratch[2, i]
                    dU[1, d, i] = ih
                    dU[2, d, i] = T(2) * u * ih
                    dU[3, d, i] = T(3) * u * u * ih
            continue
        for m in range(1, K1):
            fm = T(m)
            for i in range(R):
                u = scratch[0, i]
                p = T(1)  # u^(m-1)
                for _ in range(m - 1):
                    p *= u
                U[m, d, i] = p * (u + fm * scratch[1, i])
                if slopes:
                    dU[m, d, i] = fm * p * scratch[2, i]


def _fold(P, W, scale, base_weight, mask, Q, wb, d0, d1):
    """Q[d, g, m, o] = scale[o, d] mask[o, d] sum_r P[d, g, r, m] W[d, g + r, o]: B-spline
    coefficients W (D, n, O), scaled per edge, to span polynomials Q (D, G, K1, O), with
    P (D, G, K1, K1) from `spline.span_polynomials`; and wb[d, o] = base_weight[o, d] mask[o, d],
    the base weights as the kernels read them; for inputs d0 <= d < d1."""
    D, G, K1, O = Q.shape
    for d in range(d0, d1):
        for o in range(O):
            wb[d, o] = base_weight[o, d] * mask[o, d]
        for g in range(G):
            for m in range(K1):
                if O < 8:  # narrow: sum over r in a register
                    for o in range(O):
                        acc = Q.dtype.type(0)
                        for r in range(K1):
                            acc += P[d, g, r, m] * W[d, g + r, o]
                        Q[d, g, m, o] = acc * scale[o, d] * mask[o, d]
                    continue
                for o in range(O):
                    Q[d, g, m, o] = 0
                for r in range(K1):
                    c = P[d, g, r, m]
                    for o in range(O):
                        Q[d, g, m, o] += c * W[d, g + r, o]
                for o in range(O):
                    Q[d, g, m, o] *= scale[o, d] * mask[o, d]


def _unfold(P, gQ, W, scale, mask, gW, gscale, d0, d1):
    """Adjoint of `fold`: from gQ (D, G, K1, O), gW (D, n, O) for the coefficients and gscale
    (O, D) for the per-edge scale; for inputs d0 <= d < d1."""
    D, G, K1, O = gQ.shape
    n = gW.shape[1]
    for d in range(d0, d1):
        for j in range(n):
            for o in range(O):
                gW[d, j, o] = 0
        for g in range(G):
            for r in range(K1):
                if O < 8:  # narrow: sum over m in a register
                    for o in range(O):
                        acc = gW.dtype.type(0)
                        for m in range(K1):
                            acc += P[d, g, r, m] * gQ[d, g, m, o]
                        gW[d, g + r, o] += acc
                    continue
                for m in range(K1):
                    c = P[d, g, r, m]
                    for o in range(O):
                        gW[d, g + r, o] += c * gQ[d, g, m, o]
        for o in range(O):
            acc = gW.dtype.type(0)
            for j in range(n):
                acc += gW[d, j, o] * W[d, j, o]
            gscale[o, d] = acc * mask[o, d]
        for j in range(n):
            for o in range(O):
                gW[d, j, o] *= scale[o, d] * mask[o, d]


def _forward(x, grid, Q, y, r0, r1):
    """y (N, O) += the spline part of the layer at x (N, D), with Q (D, G, K1, O) the span
    polynomials and ``grid = (interior (D, G+1), 1/widths (D, G), bucket table (D, B+1), buckets
    per unit (D,), uniform)``. (The base branch b(x) @ w is one matrix product, left to the
    caller, which passes y holding it.)

    Rows are processed in blocks, inputs outermost: consecutive updates then go to different
    rows of y and overlap in the pipeline instead of waiting on each other, and one input's
    polynomials stay in the cache while the block's rows read them. Rows r0 <= n < r1 only."""
    D = x.shape[1]
    K1, O = Q.shape[2], Q.shape[3]
    span = np.empty((D, ROWS), np.int64)
    U = np.empty((K1, D, ROWS), y.dtype)
    scratch = np.empty((3, ROWS), y.dtype)
    for n0 in range(r0, r1, ROWS):
        R = min(r1, n0 + ROWS) - n0
        _locate_rows(x, n0, R, grid, span, U, U[:0], scratch, 0, D)
        if O == 1 and K1 == 4:  # one output: a register sum over the inputs per sample
            for i in range(R):
                acc = y[n0 + i, 0]
                for d in range(D):
                    s = span[d, i]
                    acc += (
                        Q[d, s, 0, 0]
                        + U[1, d, i] * Q[d, s, 1, 0]
                        + U[2, d, i] * Q[d, s, 2, 0]
                        + U[3, d, i] * Q[d, s, 3, 0]
                    )
                y[n0 + i, 0] = acc
            continue
        for d in range(D):
            for i in range(R):
                n, s = n0 + i, span[d, i]
                if K1 == 4:
                    u1, u2, u3 = U[1, d, i], U[2, d, i], U[3, d, i]
                    for o in range(O):
                        y[n, o] += (
                            Q[d, s, 0, o]
                            + u1 * Q[d, s, 1, o]
                            + u2 * Q[d, s, 2, o]
                            + u3 * Q[d, s, 3, o]
                        )
                else:
                    for m in range(K1):
                        um = U[m, d, i]
                        for o in range(O):
                            y[n, o] += um * Q[d, s, m, o]


def _backward(x, grid, Q, gy, gx, gq, need_x, d0, d1):
    """Gradients of sum(gy * spline part of the layer at x) in inputs d0 <= d < d1, over all
    rows: added into gx[:, d] (N, D) when need_x, and the span-polynomial gradient gq[d]
    (D, G, K1, O), overwritten. Threads split the inputs, so each entry of gq and gx is summed
    by one thread in row order: the results do not depend on the number of threads. (The base
    branch's gradients, b(x)^T gy and b'(x) (gy w^T), are matrix products left to the caller:
    summed here they would chain every sample's update on the same memory.)"""
    N, D = x.shape
    K1, O = Q.shape[2], Q.shape[3]
    T = gy.dtype.type
    gq[d0:d1] = 0
    span = np.empty((D, ROWS), np.int64)
    U = np.empty((K1, D, ROWS), gy.dtype)
    dU = np.empty((K1 if need_x else 0, D, ROWS), gy.dtype)
    scratch = np.empty((3, ROWS), gy.dtype)
    for n0 in range(0, N, ROWS):
        R = min(N, n0 + ROWS) - n0
        _locate_rows(x, n0, R, grid, span, U, dU, scratch, d0, d1)
        if O == 1 and K1 == 4:  # one output: scalar code, no loop over the outputs
            for d in range(d0, d1):
                for i in range(R):
                    n, s = n0 + i, span[d, i]
                    go = gy[n, 0]
                    gq[d, s, 0, 0] += go
                    gq[d, s, 1, 0] += go * U[1, d, i]
                    gq[d, s, 2, 0] += go * U[2, d, i]
                    gq[d, s, 3, 0] += go * U[3, d, i]
                    if need_x:
                        gx[n, d] += go * (
                            dU[1, d, i] * Q[d, s, 1, 0]
                            + dU[2, d, i] * Q[d, s, 2, 0]
                            + dU[3, d, i] * Q[d, s, 3, 0]
                        )
            continue
        for d in range(d0, d1):
            for i in range(R):
                n, s = n0 + i, span[d, i]
                if K1 == 4:
                    u1, u2, u3 = U[1, d, i], U[2, d, i], U[3, d, i]
                    for o in range(O):
                        go = gy[n, o]
                        gq[d, s, 0, o] += go
                        gq[d, s, 1, o] += go * u1
                        gq[d, s, 2, o] += go * u2
                        gq[d, s, 3, o] += go * u3
                    if need_x:
                        v1, v2, v3 = dU[1, d, i], dU[2, d, i], dU[3, d, i]
                        acc = T(0)
                        for o in range(O):
                            acc += gy[n, o] * (
                                v1 * Q[d, s, 1, o] + v2 * Q[d, s, 2, o] + v3 * Q[d, s, 3, o]
                            )
                        gx[n, d] += acc
                else:
                    for m in range(K1):
                        um = U[m, d, i]
                        for o in range(O):
                            gq[d, s, m, o] += gy[n, o] * um
                    if need_x:
                        acc = T(0)
                        for m in range(1, K1):
                            vm = dU[m, d, i]
                            for o in range(O):
                                acc += gy[n, o] * vm * Q[d, s, m, o]
                        gx[n, d] += acc


_COMPILE = {"cache": True, "fastmath": _FAST, "nogil": True}
_fold, _unfold = njit(**_COMPILE)(_fold), njit(**_COMPILE)(_unfold)
_forward, _backward = njit(**_COMPILE)(_forward), njit(**_COMPILE)(_backward)

_pool = None


def _run(kernel, parts: int, size: int, *args) -> None:
    """kernel(*args, lo, hi) over ``parts`` equal ranges of 0 .. size, the first on this thread
    and the others on the pool's (the kernels release the GIL)."""
    global _pool
    if parts == 1:
        kernel(*args, 0, size)
        return
    bounds = [t * size // parts for t in range(parts + 1)]
    if _pool is None:
        _pool = ThreadPoolExecutor(THREADS - 1, thread_name_prefix="kan-kernels")
    futures = [_pool.submit(kernel, *args, bounds[t], bounds[t + 1]) for t in range(1, parts)]
    kernel(*args, bounds[0], bounds[1])
    for future in futures:
        future.result()


def _forget_pool() -> None:  # a forked child inherits the pool's object but not its threads
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def _parts(work: int, size: int) -> int:
    """Threads for a call of this much work over ``size`` rows or inputs: one for small work,
    where waking a thread costs more than it saves."""
    return 1 if work < SERIAL_WORK else min(THREADS, size)


def _table_parts(Q_shape) -> int:
    D, G, K1, O = Q_shape
    return 1 if D * G * K1 * (O + 16) < SERIAL_TABLE else min(THREADS, D)


def fold(P, W, scale, base_weight, mask, Q, wb) -> None:
    """Span polynomials Q and masked base weights wb from the parameters (see `_fold`)."""
    _run(_fold, _table_parts(Q.shape), Q.shape[0], P, W, scale, base_weight, mask, Q, wb)


def unfold(P, gQ, W, scale, mask, gW, gscale) -> None:
    """Gradients of the coefficients and scales from gQ (D, G, K1, O) (see `_unfold`)."""
    _run(_unfold, _table_parts(gQ.shape), gW.shape[0], P, gQ, W, scale, mask, gW, gscale)


def layer_forward(x, grid, Q, y) -> None:
    """y += the spline part of the layer at x (see `_forward`), rows split over the threads."""
    N, D = x.shape
    _run(_forward, _parts(N * D * Q.shape[3], N), N, x, grid, Q, y)


def layer_backward(x, grid, Q, gy, gx, gq, need_x) -> None:
    """The spline part's gradients (see `_backward`), inputs split over the threads."""
    N, D = x.shape
    _run(_backward, _parts(N * D * Q.shape[3], D), D, x, grid, Q, gy, gx, gq, need_x)
