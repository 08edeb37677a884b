"""Symbolic formulas of a classifier: one formula per class logit.

The symbolic step of a regression fits every edge and fine-tunes the symbolic network on the
training targets (symbolic.py). A classifier's targets are one-hot labels, which no logit
approximates; the formulas are therefore fitted to the network's own logits on the training
rows (the same edge fits, fine-tuning, rounding and snapping), so ``logit_<class> = ...``
reproduces the function the network computes, and its argmax its decisions.

"No formula" rules for classification (instead of the regression's RMSE rules):
- before fitting: the network must classify the test points better than always answering the
  most frequent class (otherwise it has learnt no boundary to read off);
- every edge needs a symbolic fit reaching ``symbolic_r2_threshold``, as for regression;
- the formulas' argmax must classify the test points correctly at most ACCURACY_SLACK (a
  share of the points) less often than the network, and every formula must reproduce its
  network logit on the test points to R^2 >= LOGIT_R2 (the logits decide the probabilities,
  not only the classes).
Without test rows the training rows stand in.
"""

import numpy as np
import torch

from arrays import to_numpy

ACCURACY_SLACK = 0.01  # formula accuracy may fall this far (a share of points) below the network's
LOGIT_R2 = 0.95  # each formula reproduces its network logit on the test points to this R^2


def _tex(text: str) -> str:
    """A class name as LaTeX text (its special characters escaped)."""
    return "".join("\\" + c if c in "_&%#${}" else c for c in text)


def logit_r2(formula: np.ndarray, network: np.ndarray) -> float:
    """The smallest R^2 over the classes of the formulas' logits against the network's (a
    constant network logit counts as 1 when matched exactly)."""
    var = network.var(axis=0)
    mse = ((formula - network) ** 2).mean(axis=0)
    with np.errstate(all="ignore"):
        r2 = np.where(var > 0, 1 - mse / np.where(var > 0, var, 1.0), np.where(mse == 0, 1.0, 0.0))
    r2 = np.where(np.isfinite(r2), r2, -np.inf)
    return float(r2.min()) if r2.size else 1.0


def fit_class_formulas(cfg, model, data, run, metrics: dict, no_formula, unfit_note):
    """One formula per class logit (see the module doc), written to the run folder (formula.txt
    and formula.tex lines ``logit_<class> = ...``) and into ``metrics["formulas"]`` by class.
    ``no_formula(run, metrics, note, partial=None)`` and ``unfit_note(result)`` are the
    regression's reporting. Returns the `symbolic.SymbolicResult` (None without a formula)."""
    import symbolic

    names = list(data.output_names)
    x_eval, y_eval = (
        (data.x_test, data.y_test) if len(data.x_test) else (data.x_train, data.y_train)
    )
    with torch.no_grad():
        network = to_numpy(model(x_eval)).astype(float)
        train_logits = model(data.x_train).detach()
    truth = to_numpy(y_eval).argmax(axis=1)
    network_accuracy = float((network.argmax(axis=1) == truth).mean())
    majority = float(np.bincount(truth, minlength=len(names)).max() / len(truth))
    metrics["formulas"] = None
    if network_accuracy <= majority:
        return no_formula(
            run,
            metrics,
            f"no formula: the network classifies {network_accuracy:.3g} of the test points "
            f"correctly, no better than always answering the most frequent class ({majority:.3g})",
        )
    run.log("fitting symbolic functions to every edge (to the network's logits) ...")
    result = symbolic.symbolify(
        model,
        data.x_train,
        train_logits,
        library=cfg["symbolic_library"],
        r2_threshold=cfg["symbolic_r2_threshold"],
        finetune_steps=cfg["symbolic_finetune_steps"],
    )
    run.write_symbolic(result.to_dict())
    if not result.ok:
        no_formula(run, metrics, unfit_note(result))
        return result
    logits = symbolic.evaluate_formula(result.exprs, to_numpy(x_eval), model.input_names)
    accuracy = float((logits.argmax(axis=1) == truth).mean())
    agreement = float((logits.argmax(axis=1) == network.argmax(axis=1)).mean())
    r2 = logit_r2(logits, network)
    by_class = dict(zip(names, result.formulas))
    facts = {"formula_test_accuracy": accuracy, "formula_agreement": agreement}
    metrics.update(facts, formula_logit_r2=r2)
    if not (accuracy >= network_accuracy - ACCURACY_SLACK and r2 >= LOGIT_R2):
        no_formula(
            run,
            metrics,
            f"no formula: the logit formulas classify {accuracy:.3g} of the test points "
            f"correctly (the network {network_accuracy:.3g}) and reproduce its logits to "
            f"R^2 = {r2:.3g} (needed: within {ACCURACY_SLACK} and {LOGIT_R2})",
            partial=by_class,
        )
        return None
    metrics["formulas"] = by_class
    run.write_formulas(
        [f"logit_{n} = {f}" for n, f in by_class.items()],
        [f"\\mathrm{{logit}}_{{\\mathrm{{{_tex(n)}}}}} = {t}" for n, t in zip(names, result.latex)],
    )
    for n, f in by_class.items():
        run.log(f"formula logit_{n} = {f}")
    run.log(
        f"formula test_accuracy {accuracy:.4f} (the network {network_accuracy:.4f}), the same "
        f"class as the network for {agreement:.4f} of the test points, logit R^2 {r2:.4f}"
    )
    return result
