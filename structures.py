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
- ``network``: the configured ``layer_dims`` (and ``mult_arity``).

The sum and the product train without the sparsity penalty (they are minimal already).

Each candidate trains as the run would (its starts, schedule and optimizer, from step 0) and is
scored by its relative RMSE: RMSE over the output's standard deviation, on the validation rows
(the training rows without a validation split), the largest over the outputs. The search stops
at the first candidate scoring at most ``structure_tolerance``; when none does, every candidate
is trained and the simplest whose score is within STRUCTURE_SLACK of the best is kept. The kept
candidate's trained model and training result go on through the run (pruning, formulas).
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


@dataclass(frozen=True)
class Candidate:
    name: str
    overrides: dict
    diagonal: bool = False  # input i feeds factor i only
    linear_output: bool = False  # the output edge fixed to a line (AdaptiveKANLayer.make_linear)

    def config(self, cfg: dict) -> dict:
        return {**cfg, **self.overrides}

    def shaped(self, model):
        """``model`` with this candidate's edge mask applied (in place; returned)."""
        if self.diagonal:
            layer = model.layers[0]
            with torch.no_grad():
                layer.mask.copy_(torch.eye(*layer.mask.shape, dtype=layer.mask.dtype))
        if self.linear_output:
            model.layers[-1].make_linear()
        return model


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
) -> Found:
    """Train the candidates (module docstring) and return the one kept.

    ``build(cfg, start)`` makes a fresh model for a candidate's config, ``train(cfg, model,
    log)`` trains it in full and returns a `training.TrainResult`; a candidate whose training
    does not end in one of ``finished`` (interrupted, terminated, non-finite) ends the search
    with that candidate, as a plain run would end."""
    x, y = (data.x_val, data.y_val) if data.x_val is not None else (data.x_train, data.y_train)
    split = "validation" if data.x_val is not None else "training"
    tried: list[Found] = []
    for cand in candidates(cfg, data.x_train.shape[1], data.y_train.shape[1]):
        began = time.perf_counter()
        c = cand.config(cfg)
        log(f"structure {cand.name} {c['layer_dims']}: training")
        start = starts.best_start(c, data, lambda k, c=c, cand=cand: cand.shaped(build(c, k)), log)
        model = cand.shaped(build(c, start))
        result = train(c, model, lambda line, n=cand.name: log(f"[{n}] {line}"))
        found = Found(c, model, start, result, name=cand.name)
        if result.stopped not in finished:
            return _kept(found, tried, log)
        score = relative_rmse(model, x, y)
        entry = {"structure": cand.name, "layer_dims": c["layer_dims"], "relative_rmse": score}
        entry["wall_time_s"] = round(time.perf_counter() - began, 3)
        found.report = [entry]
        tried.append(found)
        log(f"structure {cand.name}: {split} RMSE / std {score:.3e}")
        if score <= cfg["structure_tolerance"]:
            return _kept(found, tried, log)
    best = min(f.report[0]["relative_rmse"] for f in tried)
    kept = next(f for f in tried if f.report[0]["relative_rmse"] <= STRUCTURE_SLACK * best)
    return _kept(kept, tried, log)


def _kept(found: Found, tried: list[Found], log) -> Found:
    report = [f.report[0] for f in tried]
    for entry in report:
        entry["kept"] = entry["structure"] == found.name
    log(f"structure kept: {found.name} {found.cfg['layer_dims']}")
    return Found(found.cfg, found.model, found.start, found.result, report, found.name)
