"""The per-edge step of symbolification on a trained network: every unmasked edge's spline
sampled and fitted by the library (symbolic_fit.py), with the choices `symbolic.symbolify`
composes and the alternatives formula_units.py may try."""

import math

import numpy as np

from arrays import to_numpy
from symbolic_fit import SELECT_ABS, SELECT_REL, Fit, fit_candidates, select_fit, snap

# `symbolify` first tries the simplest function of every edge that reaches this R^2 (or the
# caller's threshold when lower); the fit of the whole formula to the data decides.
SIMPLEST_R2 = 0.95

# An edge whose spread is below this fraction of the spread of the subnode it feeds (its
# attribution share) is a constant in the formula (e.g. the cross edges of a product learnt by
# a multiplication node); its recorded R^2 is 1 - share^2, what the subnode keeps.
NEGLIGIBLE_SHARE = 1e-3

ALTERNATIVES = 3  # library functions per edge that formula_units.py may try


def edge_fits(model, inputs, activations, names, r2_threshold, snapping=True, origins=None):
    """Fit every unmasked edge: per layer, the choice of `select_fit` and the simplest
    acceptable fit (both snapped, with ``snapping``), the alternatives (`_alternatives`), and
    the (layer, j, i) of the edges with no acceptable fit (those keep their best candidate
    among the choices, and have no simplest fit). ``origins``: the first layer's input origins
    (`symbolic.symbolify`); hidden values get no composed forms (`fit_candidates`)."""

    def snapped(fit, h, phi):
        return snap(fit, h, phi) if snapping else fit

    chosen_fits, simplest_fits, others = [], [], []
    unfit: list[tuple[int, int, int]] = []
    for index, (layer, h, phi) in enumerate(zip(model.layers, inputs, activations, strict=True)):
        h = to_numpy(h)  # (N, in)
        phi = to_numpy(phi)  # (N, out, in)
        fits, simplest, alternatives = {}, {}, {}
        share = phi.std(axis=0) / np.maximum(phi.sum(axis=2).std(axis=0), 1e-300)[:, None]
        for j, i in np.argwhere(layer.mask.detach().cpu().numpy() > 0).tolist():
            if share[j, i] < NEGLIGIBLE_SHARE:  # a constant: its mean, fine-tuned with the rest
                fits[(j, i)] = simplest[(j, i)] = Fit(
                    "0", 0.0, 0.0, 0.0, float(phi[:, j, i].mean()), 1.0 - float(share[j, i]) ** 2
                )
                continue
            origin = None  # composed forms: of the inputs, the physical variables, alone
            if index == 0:
                origin = float(origins[i]) if origins is not None else 0.0
            candidates = fit_candidates(h[:, i], phi[:, j, i], names, origin)
            chosen = select_fit(candidates, r2_threshold)
            if chosen is None:
                unfit.append((index, j, i))
                fits[(j, i)] = max(candidates.values(), key=lambda fit: fit.r2)
                continue
            fits[(j, i)] = snapped(chosen, h[:, i], phi[:, j, i])
            simple = select_fit(candidates, min(r2_threshold, SIMPLEST_R2), relative=math.inf)
            same = simple.name == chosen.name
            simplest[(j, i)] = fits[(j, i)] if same else snapped(simple, h[:, i], phi[:, j, i])
            alternatives[(j, i)] = _alternatives(candidates, r2_threshold)
        chosen_fits.append(fits)
        simplest_fits.append(simplest)
        others.append({edge: fits for edge, fits in alternatives.items() if fits})
    return chosen_fits, simplest_fits, others, unfit


def _alternatives(candidates: dict[str, Fit], r2_threshold: float) -> list[Fit]:
    """The ALTERNATIVES best fits as good as the best by `select_fit`'s rule (R^2 at least
    ``r2_threshold``, unexplained variance within SELECT_REL of the best's), best first."""
    fits = [fit for fit in candidates.values() if np.isfinite(fit.r2)]
    bound = SELECT_REL * min(1.0 - fit.r2 for fit in fits) + SELECT_ABS
    same = [fit for fit in fits if fit.r2 >= r2_threshold and 1.0 - fit.r2 <= bound]
    return sorted(same, key=lambda fit: 1.0 - fit.r2)[:ALTERNATIVES]
