"""The structure search of formula discovery: the simplest network shape the data allow.

Many laws are a sum or a product of functions of one variable each (y = sin a + b^2 + e^c,
E = m v^2 / 2, F = q1 q2 / r^2, P = n T / V). A general network can represent them, but its
edges then share the work between mixed terms, and no edge is a library function. With
``structure_search`` the run first trains the shapes that *are* these forms, from the simplest:

- ``sum``: ``[n, n_out]``, one layer: y = sum_i phi_i(x_i);
- ``product`` (n >= 2): ``[n, [0, 1], n_out]``, one multiplication node of arity n whose i-th
  factor is fed by input i alone (the first layer's mask is diagonal), and an output edge fixed
  to a line: y = w * prod_i phi_i(x_i). A free output edge psi would make the factors
  ambiguous (psi = x^2 with factors sqrt(L)^(1/2), or psi = cos of arcsin-shaped factors: any
  psi and its inverse spread over the factors), and no factor would be the law's. The output's
  origin is kept for this (units.py, ``keep_origin``): a shift of y would hide the product;
- ``network``: the configured ``layer_dims`` (and ``mult_arity``);
- ``grouped`` (found from the trained network): a product of factors each a function of one
  input or of the product of two, y = w * prod_g psi_g(u_g) with u_g = x_i or x_i * x_j
  (N = K / (1 + e^(-r t)) = K * psi(r t)). A function depends on x_i and x_j only through their
  product exactly when x_i df/dx_i = x_j df/dx_j everywhere (a symmetry test, as in AI Feynman,
  Udrescu & Tegmark 2020); `product_pairs` scores every pair by how far the trained network is
  from that and takes the disjoint pairs scoring below PAIR_SCORE_MAX. The first layer's edges
  are fixed to lines through the data's origin (the physical x_i, so that the multiplication
  node forms x_i * x_j itself), the factors psi_g are free, the output edge a line. It counts
  as simpler than the network (it is tried after it only because it needs it).

The sum, the product and the grouped product train without the sparsity penalty (they are
minimal already).

Each candidate trains as the run would (its starts, schedule and optimizer, from step 0) and is
scored by its relative RMSE: RMSE over the output's standard deviation, on the validation rows
(the training rows without a validation split), the largest over the outputs. The search stops
at the first of the sum and the product scoring at most ``structure_tolerance``; after the
network, the grouped product (when a pair was found) is kept if it scores at most that, else
the network if it does; when none does, the simplest whose score is within STRUCTURE_SLACK of
the best is kept. The kept candidate's trained model and training result go on through the run
(pruning, formulas).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

import starts
from datasets import Data

# The sum and the product are minimal already: no sparsity penalty, whose floor (about its weight
# times the edges' mean |phi|) would otherwise sit above the fit of an exact structure.
_PLAIN = {"use_regularization": False}
STRUCTURE_SLACK = 2.0  # without a candidate under the tolerance: simplest within 2x of the best
# A pair (i, j) is tried as the product x_i * x_j when the trained network's
# rms(x_i f_i - x_j f_j) / (rms(x_i f_i) + rms(x_j f_j)) is below this (f_i = df/dx_i): 0 for a
# function of the product, about 1 for unrelated inputs; the spline network's own error in its
# derivatives puts an exact pair at about 0.1 (a network at 4e-3 relative RMSE).
PAIR_SCORE_MAX = 0.3
PAIR_MIN_SHARE = 0.01  # inputs with rms(x_i f_i) below this share of the largest: not paired


@dataclass(frozen=True)
class Candidate:
    name: str
    overrides: dict
    diagonal: bool = False  # input i feeds factor i only
    linear_output: bool = False  # the output edge fixed to a line (AdaptiveKANLayer.make_linear)
    feeds: tuple[int, ...] = ()  # grouped: the input feeding each first-layer subnode
    origins: tuple[float, ...] = ()  # grouped: each input's zero in the model's coordinates

    def config(self, cfg: dict) -> dict:
        return {**cfg, **self.overrides}

    def shaped(self, model):
        """``model`` with this candidate's edge mask applied (in place; returned)."""
        if self.diagonal:
            _diagonal(model.layers[0])
        if self.feeds:
            first = model.layers[0]
            with torch.no_grad():
                first.mask.zero_()
                first.mask[range(len(self.feeds)), list(self.feeds)] = 1.0
            first.make_linear(offset=torch.tensor(self.origins))
            if len(model.layers) == 3:  # the factors psi_g: one per group
                _diagonal(model.layers[1])
        if self.linear_output:
            model.layers[-1].make_linear()
        return model


def _diagonal(layer) -> None:
    """Keep only the edges i -> i of ``layer`` (its mask the identity)."""
    with torch.no_grad():
        layer.mask.copy_(torch.eye(*layer.mask.shape, dtype=layer.mask.dtype))


def candidates(cfg: dict, n_in: int, n_out: int) -> list[Candidate]:
    """The shapes tried, simplest first (module docstring); the configured network last,
    unless it is one of the others."""
    found = [Candidate("sum", {"layer_dims": [n_in, n_out], **_PLAIN})]
    if n_in >= 2:
        product = {"layer_dims": [n_in, [0, 1], n_out], "mult_arity": n_in, **_PLAIN}
        found.append(Candidate("product", product, diagonal=True, linear_output=True))
    own = {"layer_dims": cfg["layer_dims"], "mult_arity": cfg["mult_arity"]}
    if cfg["layer_dims"] != found[0].overrides["layer_dims"]:
        found.append(Candidate("network", own))
    return found


def grouped(n_in: int, n_out: int, pairs, origins) -> Candidate:
    """The grouped product (module docstring) of the disjoint ``pairs`` (i, j), the other
    inputs single factors; ``origins``: each input's zero in the model's coordinates."""
    paired = [i for pair in pairs for i in pair]
    singles = [i for i in range(n_in) if i not in paired]
    feeds = tuple(singles + paired)
    n_groups = len(singles) + len(pairs)
    if n_groups == 1:  # y = psi(x_i * x_j)
        dims, arity, linear_output = [n_in, [0, 1], n_out], 2, False
    else:
        dims = [n_in, [len(singles), len(pairs)], [0, 1], n_out]
        arity, linear_output = [[], [2] * len(pairs), [n_groups], []], True
    overrides = {"layer_dims": dims, "mult_arity": arity, **_PLAIN}
    origins = tuple(float(o) for o in origins)
    return Candidate(
        "grouped", overrides, linear_output=linear_output, feeds=feeds, origins=origins
    )


def product_pairs(model, x: torch.Tensor, origins) -> list[tuple[float, int, int]]:
    """(score, i, j) of the disjoint input pairs the trained ``model`` says enter only as
    x_i * x_j (module docstring: the score, PAIR_SCORE_MAX, PAIR_MIN_SHARE), best first."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).sum(), x)
    moment = ((x.detach() + torch.as_tensor(origins).to(x)) * grad).double()  # x_i df/dx_i
    size = moment.square().mean(dim=0).sqrt()
    live = [i for i in range(x.shape[1]) if size[i] >= PAIR_MIN_SHARE * size.max() > 0]
    scored = []
    for a, i in enumerate(live):
        for j in live[a + 1 :]:
            gap = float((moment[:, i] - moment[:, j]).square().mean().sqrt())
            scored.append((gap / float(size[i] + size[j]), i, j))
    chosen, used = [], set()
    for score, i, j in sorted(scored):
        if score < PAIR_SCORE_MAX and not used & {i, j}:
            chosen.append((score, i, j))
            used |= {i, j}
    return chosen


def relative_rmse(model, x: torch.Tensor, y: torch.Tensor) -> float:
    """max over outputs of RMSE / std (a constant output: RMSE / max(1, |mean|))."""
    with torch.no_grad():
        err = ((model(x) - y) ** 2).mean(dim=0).sqrt()
        spread = y.std(dim=0, unbiased=False)
        spread = torch.where(spread > 0, spread, y.mean(dim=0).abs().clamp(min=1.0))
        score = float((err / spread).max())
    return score if score == score else float("inf")


@dataclass
class Found:
    """The kept candidate: its config, trained model, start index and training result, and one
    report entry per candidate trained."""

    cfg: dict
    model: object
    start: int
    result: object
    report: list = field(default_factory=list)
    name: str = ""


def search(
    cfg: dict,
    data: Data,
    build: Callable[[dict, int], object],
    train: Callable[[dict, object, Callable], object],
    log: Callable[[str], None],
    finished: tuple[str, ...],
    origins=None,
) -> Found:
    """Train the candidates (module docstring) and return the one kept.

    ``build(cfg, start)`` makes a fresh model for a candidate's config, ``train(cfg, model,
    log)`` trains it in full and returns a `training.TrainResult`; a candidate whose training
    does not end in one of ``finished`` (interrupted, terminated, non-finite) ends the search
    with that candidate, as a plain run would end. ``origins``: each input's zero in the
    model's coordinates (units.py: in_shift / in_scale; None: 0)."""
    x, y = (data.x_val, data.y_val) if data.x_val is not None else (data.x_train, data.y_train)
    split = "validation" if data.x_val is not None else "training"
    n_in, n_out = data.x_train.shape[1], data.y_train.shape[1]
    origins = [0.0] * n_in if origins is None else list(origins)
    tried: list[Found] = []

    def attempt(cand: Candidate) -> Found:
        began = time.perf_counter()
        c = cand.config(cfg)
        log(f"structure {cand.name} {c['layer_dims']}: training")
        start = starts.best_start(c, data, lambda k, c=c, cand=cand: cand.shaped(build(c, k)), log)
        model = cand.shaped(build(c, start))
        result = train(c, model, lambda line, n=cand.name: log(f"[{n}] {line}"))
        found = Found(c, model, start, result, name=cand.name)
        if result.stopped not in finished:
            return found
        score = relative_rmse(model, x, y)
        entry = {"structure": cand.name, "layer_dims": c["layer_dims"], "relative_rmse": score}
        entry["wall_time_s"] = round(time.perf_counter() - began, 3)
        found.report = [entry]
        log(f"structure {cand.name}: {split} RMSE / std {score:.3e}")
        return found

    for cand in candidates(cfg, n_in, n_out):
        found = attempt(cand)
        if not found.report:
            return _kept(found, tried, log)
        tried.append(found)
        if cand.name == "network":
            pairs = product_pairs(found.model, x, origins)
            for score, i, j in pairs:
                log(f"structure: {data.input_names[i]} and {data.input_names[j]} enter as their "
                    f"product (symmetry score {score:.3f})")  # fmt: skip
            if pairs:
                group = attempt(grouped(n_in, n_out, [(i, j) for _, i, j in pairs], origins))
                if not group.report:
                    return _kept(group, tried, log)
                group.report[0]["pairs"] = [[i, j] for _, i, j in pairs]
                tried.insert(len(tried) - 1, group)  # simpler than the network
        elif found.report[0]["relative_rmse"] <= cfg["structure_tolerance"]:
            return _kept(found, tried, log)
    within = [f for f in tried if f.report[0]["relative_rmse"] <= cfg["structure_tolerance"]]
    if within:
        return _kept(within[0], tried, log)
    best = min(f.report[0]["relative_rmse"] for f in tried)
    kept = next(f for f in tried if f.report[0]["relative_rmse"] <= STRUCTURE_SLACK * best)
    return _kept(kept, tried, log)


def _kept(found: Found, tried: list[Found], log) -> Found:
    report = [f.report[0] for f in tried]
    for entry in report:
        entry["kept"] = entry["structure"] == found.name
    log(f"structure kept: {found.name} {found.cfg['layer_dims']}")
    return Found(found.cfg, found.model, found.start, found.result, report, found.name)
