"""Where a layer's knots go: pure functions of knots, samples and coefficients (no nn.Module).

Two jobs. *Range updates* move a grid onto the range of the values reaching its layer
(`range_interior`, then `extend`). *Refinement* adds knots (`insertions`): where the learned
function needs resolution ("error"), where the data are ("density"), or evenly ("uniform").
Every new knot returned here is inserted exactly (Boehm) by the layer; only a uniform re-grid
to a size that is not a multiple of the current one cannot be an insertion (`uniform_subdivision`
returns None then).

Shapes: ``interior (in, G+1)`` the base-interval knots of each input, ``knots (in, G+2k+1)``,
samples ``x (N, in)``, coefficients ``(in, n, out)``.
"""

import torch

import spline

KNOT_PLACEMENTS = ("error", "density", "uniform")


def range_interior(interior: torch.Tensor, x: torch.Tensor, grid_eps: float = 1.0) -> torch.Tensor:
    """New interior knots ``(in, G+1)`` over the range of the samples ``x (N, in)``.

    ``grid_eps * (current knots mapped affinely onto [min, max]) + (1 - grid_eps) * (sample
    quantiles)``: the paper's mix of uniform and data-adaptive knots (a uniform grid maps to a
    uniform one). A constant input still gets a grid of half-width 1e-3 (1 + |centre|).
    """
    G = interior.shape[1] - 1
    lo, hi = x.min(dim=0).values, x.max(dim=0).values
    half = 0.5 * (hi - lo)
    centre = 0.5 * (hi + lo)
    half = torch.maximum(half, 1e-3 * (1 + centre.abs()))
    lo, hi = centre - half, centre + half
    rel = (interior - interior[:, :1]) / (interior[:, -1:] - interior[:, :1])  # (in, G+1) in [0, 1]
    mapped = lo[:, None] + rel * (hi - lo)[:, None]
    if grid_eps < 1.0:
        q = torch.linspace(0, 1, G + 1, dtype=x.dtype, device=x.device)
        quant = torch.quantile(x.T.contiguous(), q, dim=1).T  # (in, G+1)
        quant[:, 0], quant[:, -1] = lo, hi
        mapped = grid_eps * mapped + (1 - grid_eps) * quant
    return mapped


def extend(interior: torch.Tensor, degree: int) -> torch.Tensor:
    """(in, G+1) interior knots → (in, G+2k+1) knots, k outside each end at the mean spacing."""
    k, G = degree, interior.shape[1] - 1
    h = (interior[:, -1] - interior[:, 0]) / G
    steps = torch.arange(1, k + 1, dtype=interior.dtype, device=interior.device)
    left = interior[:, :1] - steps.flip(0)[None, :] * h[:, None]
    right = interior[:, -1:] + steps[None, :] * h[:, None]
    return torch.cat([left, interior, right], dim=1)


def uniform_subdivision(knots: torch.Tensor, degree: int, target: int) -> torch.Tensor | None:
    """Knots ``(in, r)`` that turn uniform ``knots`` with G intervals into a uniform grid of
    ``target`` intervals over the same base interval by insertion; None when target is not a
    multiple of G (a least-squares re-grid is needed then)."""
    d = degree
    G = knots.shape[1] - 2 * d - 1
    if target % G != 0:
        return None
    lo, hi = spline.base_interval(knots, d)
    fine = spline.uniform_knots(lo, hi, target, d)
    keep = torch.ones(fine.shape[1], dtype=torch.bool, device=fine.device)
    keep[d : d + target + 1 : target // G] = False  # old interior knots already present
    keep[:d] = keep[d + target + 1 :] = False  # the outer knots are kept as they are
    return fine[:, keep]


def _sample_spans(interior: torch.Tensor, x: torch.Tensor):
    """Span ``(in, N)`` of every sample in its input's base interval, and whether it is inside."""
    G = interior.shape[1] - 1
    span = (torch.searchsorted(interior.contiguous(), x.T.contiguous(), right=True) - 1).clamp(
        0, G - 1
    )
    inside = (x.T >= interior[:, :1]) & (x.T <= interior[:, -1:])
    return span, inside


def interval_scores(
    interior: torch.Tensor,
    x: torch.Tensor,
    placement: str,
    knots: torch.Tensor,
    coef: torch.Tensor,
    degree: int,
    out_grad: torch.Tensor | None = None,
) -> torch.Tensor:
    """(in, G) non-negative score per interval; larger = more in need of a knot.

    - "uniform": the interval's width (widest first);
    - "density": the number of samples in it;
    - "error": with ``out_grad (N, out)``, the gradient of the loss w.r.t. the layer's outputs at
      the samples, the sum over the interval's samples of ``|out_grad|^2`` (where the residual
      carried through the layer is concentrated). Without it, or when that is zero everywhere,
      the data-free `curvature_scores` of ``coef`` (the layer's scaled, masked coefficients).
    """
    G = interior.shape[1] - 1
    span, inside = _sample_spans(interior, x)
    count = torch.zeros(interior.shape[0], G, dtype=x.dtype, device=x.device)
    count.scatter_add_(1, span, inside.to(x.dtype))
    if placement == "uniform":
        return interior[:, 1:] - interior[:, :-1]
    if placement == "density":
        return count
    if out_grad is not None:
        energy = (out_grad**2).sum(dim=1)[None, :].expand(interior.shape[0], -1) * inside
        scores = torch.zeros_like(count).scatter_add_(1, span, energy.to(x.dtype))
        if bool((scores > 0).any()):
            return scores
    return curvature_scores(knots, coef, degree, count)


def curvature_scores(
    knots: torch.Tensor, coef: torch.Tensor, degree: int, count: torch.Tensor
) -> torch.Tensor:
    """A data-free error proxy per interval ``(in, G)``: ``h_s^{k+1}`` times the jump of the k-th
    derivative of the edge splines at the ends of s (the local size of the (k+1)-th derivative),
    weighted by the share ``count`` of samples in s (plus a floor, so empty intervals count)."""
    k = degree
    G = count.shape[1]
    t = knots
    d = coef
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
    g = knots[:, k : k + G + 1]
    h = g[:, 1:] - g[:, :-1]
    share = count / count.sum(dim=1, keepdim=True).clamp_min(1)
    return h ** (k + 1) * 0.5 * (jump[:, :-1] + jump[:, 1:]) / h * (share + 1e-3 / G)


def split_intervals(
    interior: torch.Tensor,
    x: torch.Tensor,
    r: int,
    placement: str,
    scores: torch.Tensor,
    degree: int,
) -> torch.Tensor:
    """(in, r) new knots by greedy splitting of the interval with the largest score.

    "density" splits at the interval's median sample (kept 10 % off its ends), the others at the
    midpoint. After a split each half gets the score divided by 2 ("density", "uniform") or by
    2^(2k+3) ("error": the squared residual of a degree-k fit falls as h^(2k+2), half the samples
    each), so several knots spread over several bad intervals instead of piling into one. An
    input whose scores are zero everywhere (e.g. all its edges pruned) splits evenly.
    """
    widths = interior[:, 1:] - interior[:, :-1]
    flat = (scores <= 0).all(dim=1, keepdim=True)
    scores = torch.where(flat, widths, scores)
    out = []
    for i in range(interior.shape[0]):
        g = interior[i].tolist()
        score = scores[i].tolist()
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
            child = score[s] / (2 ** (2 * degree + 3)) if placement == "error" else score[s] / 2
            score[s : s + 1] = [child, child]
            new.append(u)
        out.append(new)
    return torch.tensor(out, dtype=interior.dtype, device=interior.device)
