"""The optimizers training uses, and how they survive a grid change.

`Optimizer` wraps Adam or LBFGS behind one ``step(loss_fn, x, y)``. A grid change (range update
or refinement) replaces parameters: LBFGS then starts afresh (its curvature pairs belong to the
old parametrisation); Adam carries over the state of the parameters that survived, and its
moment estimates of the refined coefficients go through the same knot insertion as the
coefficients (`adam_moments`, `restore_adam_moments`), so it does not restart its step sizes.
"""

from collections.abc import Callable

import torch

OPTIMIZERS = ("adam", "lbfgs")

LossFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


class Optimizer:
    """Adam or LBFGS (strong-Wolfe line search) over ``params``, as ``cfg`` says.

    ``step(loss_fn, x, y)`` takes one step on ``loss_fn(x, y) -> (mse, penalty or None)`` and
    returns the MSE before the step (detached; for LBFGS from its first closure call).

    LBFGS minimises the objective divided by ``loss_scale``, its value at this optimizer's first
    evaluation. torch's LBFGS stores a curvature pair only when y·s > 1e-10, an absolute
    threshold: near a mean squared error of 1e-9 (RMSE 3e-5) no pair passes, so an optimizer
    started there (one per grid change) never builds its memory and crawls like gradient
    descent with a line search, and the fit stalls far above what the grid resolves (pykan's own
    copy of LBFGS makes the threshold a parameter, tolerance_ys, set to 1e-32). Divided by the
    starting loss the test is relative. The scale is fixed per optimizer, so its curvature
    pairs share one unit.
    """

    def __init__(self, cfg: dict, params, old: "Optimizer | None" = None, sync=None):
        """``sync(mse, params) -> global mse``: called after each backward pass (several
        processes: sums the gradients and the loss over the ranks; see distributed.py)."""
        self.kind = cfg["optimizer"]
        self.params = list(params)
        self.sync = sync
        self.loss_scale: float | None = None
        if self.kind == "lbfgs":
            self.torch = torch.optim.LBFGS(
                self.params,
                lr=cfg["learning_rate"],
                max_iter=cfg["lbfgs_max_iter"],
                history_size=10,
                line_search_fn="strong_wolfe",
                tolerance_grad=1e-32,
                tolerance_change=1e-32,
            )
            return
        self.torch = torch.optim.Adam(self.params, lr=cfg["learning_rate"])
        if old is not None and old.kind == "adam":
            for p in self.params:
                if p in old.torch.state:
                    self.torch.state[p] = old.torch.state[p]

    def state(self) -> dict:
        """torch's state dict (Adam's moments and step counts, LBFGS's curvature pairs and
        line-search state) and the loss scale."""
        return {"kind": self.kind, "torch": self.torch.state_dict(), "loss_scale": self.loss_scale}

    def load(self, state: dict) -> None:
        """Continue from `state` of an optimizer of the same kind over the same parameters."""
        self.torch.load_state_dict(state["torch"])
        self.loss_scale = state["loss_scale"]

    def step(self, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "lbfgs":
            return self._lbfgs_step(loss_fn, x, y)
        self.torch.zero_grad(set_to_none=True)
        mse, penalty = loss_fn(x, y)
        (mse if penalty is None else mse + penalty).backward()
        if self.sync is not None:
            mse = self.sync(mse, self.params)
        self.torch.step()
        return mse.detach()

    def _lbfgs_step(self, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        first = []

        def closure():
            for p in self.params:  # zero_grad's profiling wrappers cost more than tiny layers
                p.grad = None
            mse, penalty = loss_fn(x, y)
            total = mse if penalty is None else mse + penalty
            if self.sync is not None:
                return synced(mse, penalty, total)
            if self.loss_scale is None:
                tiny = torch.finfo(total.dtype).tiny
                self.loss_scale = 1.0 / max(float(total.detach()), tiny)
            scaled = total * self.loss_scale
            scaled.backward()
            if not first:
                first.append(mse.detach())
            return scaled

        def synced(mse, penalty, total):
            """The closure across ranks: the line search sees the global loss and gradient."""
            total.backward()
            mse = self.sync(mse, self.params)
            total = mse if penalty is None else mse + penalty.detach()
            if self.loss_scale is None:
                self.loss_scale = 1.0 / max(float(total), torch.finfo(total.dtype).tiny)
            for p in self.params:
                p.grad.mul_(self.loss_scale)
            if not first:
                first.append(mse)
            return total * self.loss_scale

        self.torch.step(closure)
        return first[0]


def adam_moments(opt: Optimizer, model) -> list:
    """Per layer, Adam's (step, exp_avg, exp_avg_sq) of the spline coefficients, or () if none."""
    moments = []
    keys = ("step", "exp_avg", "exp_avg_sq")
    for layer in model.layers:
        state = opt.torch.state.get(layer.coef, {}) if opt.kind == "adam" else {}
        moments.append(tuple(state[key] for key in keys) if all(k in state for k in keys) else ())
    return moments


def restore_adam_moments(opt: Optimizer, model, moments, carried) -> None:
    """Give the refined coefficients the moments put through the same knot insertion, so Adam
    continues where it was instead of restarting its step-size estimates (a restart makes the
    loss jump right after every refinement). Both moments map by convex combinations, so the
    second stays non-negative."""
    if opt.kind != "adam":
        return
    for layer, old, new in zip(model.layers, moments, carried):
        if old and new:
            opt.torch.state[layer.coef] = {"step": old[0], "exp_avg": new[0], "exp_avg_sq": new[1]}
