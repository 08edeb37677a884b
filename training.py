"""The training loop: a plain function of (config, model, data) returning what happened.

One visible loop with a fixed order per step:
  1. grid-range update from the samples (every ``grid_range_update_every`` steps, until
     ``grid_range_update_until``), 2. refinement when the strategy says so, 3. one optimizer step
  on a mini-batch from the sampler (Adam, or LBFGS with strong-Wolfe line search), 4. record the
  train/test(/validation) RMSE of that step, 5. log / checkpoint / stop checks.
Host syncs (``.item()``) happen only every ``CHECK_EVERY`` steps and at log lines; the per-step
losses stay on the device until then. All file writes are the caller's (via the callbacks), so a
distributed version only has to wrap the model and the sampler.
"""

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from simple_kan import SimpleKAN
from targets import Data

CHECK_EVERY = 10  # steps between host syncs for the plateau, NaN and early-stopping checks
MAX_GRID_SAMPLES = 20000  # samples used for grid updates and refinements (a random subset)
HIDDEN_GRID_MARGIN = 0.05  # hidden grids reach this share of their data range beyond it


@dataclass
class TrainResult:
    steps: int  # steps taken in this call
    stopped: str  # "completed", "early_stopping", "interrupted" or "non_finite_loss"
    message: str = ""
    events: list = field(default_factory=list)  # [{"step", "kind", ...}]
    history: dict = field(default_factory=dict)  # {"step", "train_rmse", "test_rmse"[, "val_rmse"]}


class BatchSampler:
    """Index batches over n points: the full set each step, or shuffled epochs of batch_size."""

    def __init__(self, n: int, batch_size: int | None, seed: int, device):
        self.n, self.device = n, device
        self.batch_size = None if batch_size is None or batch_size >= n else batch_size
        self.generator = torch.Generator().manual_seed(seed + 1)
        self._order, self._pos = None, n

    def next(self) -> torch.Tensor | None:
        """Indices of the next batch, or None for the full set."""
        if self.batch_size is None:
            return None
        if self._pos + self.batch_size > self.n:
            self._order = torch.randperm(self.n, generator=self.generator).to(self.device)
            self._pos = 0
        batch = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return batch


def make_optimizer(cfg: dict, params, old: torch.optim.Optimizer | None = None):
    """Adam or LBFGS over ``params``; Adam carries over the state of parameters that survived a
    grid change (refinement replaces only the spline coefficients). LBFGS always starts afresh:
    its curvature history does not survive a change of parametrisation."""
    params = list(params)
    if cfg["optimizer"] == "lbfgs":
        return torch.optim.LBFGS(
            params,
            lr=cfg["learning_rate"],
            max_iter=cfg["lbfgs_max_iter"],
            history_size=10,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-32,
            tolerance_change=1e-32,
        )
    opt = torch.optim.Adam(params, lr=cfg["learning_rate"])
    if old is not None and isinstance(old, torch.optim.Adam):
        for p in params:
            if p in old.state:
                opt.state[p] = old.state[p]
    return opt


def _subset(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
    if len(x) <= MAX_GRID_SAMPLES:
        return x, y
    idx = torch.randperm(len(x), generator=generator)[:MAX_GRID_SAMPLES].to(x.device)
    return x[idx], y[idx]


class PlateauDetector:
    """The "adaptive" refinement trigger.

    Rule: since the last grid change, let ``best_old`` be the lowest training loss up to
    ``patience`` steps ago and ``best_new`` the lowest within the last ``patience`` steps. The
    loss has plateaued when ``best_new > (1 - threshold) * best_old``: a whole patience window
    brought less than a ``threshold`` relative improvement. At least 2·patience steps must have
    passed since the last grid change.
    """

    def __init__(self, patience: int, threshold: float):
        self.patience, self.threshold = patience, threshold

    def plateaued(self, losses: torch.Tensor) -> bool:
        """``losses``: the per-step training losses since the last grid change (on any device)."""
        p = self.patience
        if len(losses) < 2 * p:
            return False
        best_old = float(losses[:-p].min())
        best_new = float(losses[-p:].min())
        return best_new > (1 - self.threshold) * best_old


def next_grid_size(cfg: dict, current: int) -> int | None:
    """Grid size after the next refinement event, or None when no refinement is left."""
    cap = cfg["max_grid_size"]
    if cfg["grid_schedule"] is not None:
        later = [g for g in cfg["grid_schedule"] if g > current]
        target = later[0] if later else None
    else:
        target = current + cfg["adaptive_k"]
    if target is None or current >= cap:
        return None
    return min(target, cap)


def _mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.mean((pred - y) ** 2)


def train(
    cfg: dict,
    model: SimpleKAN,
    data: Data,
    *,
    num_steps: int | None = None,
    first_step: int = 0,
    refine: bool = True,
    regularize: bool | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
    checkpoint: Callable[[SimpleKAN, int], None] | None = None,
    label: str = "train",
) -> TrainResult:
    """Train ``model`` in place on ``data`` as ``cfg`` says; returns what happened.

    ``num_steps`` overrides cfg["num_steps"] (fine-tuning phases); ``first_step`` offsets the step
    numbers in the history and the log; ``refine=False`` disables grid changes (fine-tuning).
    Ctrl-C stops the loop cleanly (stopped="interrupted"); a non-finite loss restores the last
    good state (stopped="non_finite_loss"); with early stopping the best-validation state is
    restored at the end. Full-batch training without the sparsity penalty ends each grid phase
    at its lowest training loss (refinement and the end of training restore the best checked
    state when it beats the current one): full-batch Adam at a small loss oscillates.
    """
    steps = cfg["num_steps"] if num_steps is None else num_steps
    regularize = cfg["use_regularization"] if regularize is None else regularize
    l1, ent = cfg["l1_weight"], cfg["entropy_weight"]
    x, y = data.x_train, data.y_train
    device = x.device
    sampler = BatchSampler(len(x), cfg["batch_size"], cfg["seed"], device)
    generator = torch.Generator().manual_seed(cfg["seed"] + 2)
    detector = PlateauDetector(cfg["adaptive_patience"], cfg["adaptive_threshold"])
    strategy = cfg["update_strategy"] if refine else "none"
    range_every = cfg["grid_range_update_every"] if refine else 0
    patience = cfg["early_stopping_patience"]
    use_val = patience is not None and data.x_val is not None

    train_hist = torch.full((steps,), math.nan, dtype=x.dtype, device=device)
    test_hist = torch.full((steps,), math.nan, dtype=x.dtype, device=device)
    val_hist = torch.full((steps,), math.nan, dtype=x.dtype, device=device) if use_val else None
    events: list[dict] = []
    opt = make_optimizer(cfg, model.parameters())
    good_state = _snapshot(model)
    best = (math.inf, 0, good_state)  # validation RMSE, step, state
    # Full batch, no early stopping, no sparsity penalty (which the MSE alone would ignore):
    # each grid phase ends at its lowest training loss.
    # A snapshot taken after step s has its loss recorded at step s+1 (compared at the next
    # check), so tracking it costs no extra evaluation.
    track_best = cfg["batch_size"] is None and not use_val and not regularize
    phase_best: tuple[float, int, dict | None] = (math.inf, 0, None)
    pending: tuple[int, dict] | None = None  # (step whose recorded loss belongs to it, state)
    last_change = 0  # step of the last grid change (plateau windows restart there)
    stopped, message = "completed", ""
    start = time.perf_counter()
    bar = _progress_bar(steps, label) if progress else None

    def loss_fn(xb, yb):
        if regularize:
            pred, reg = model.forward_regularized(xb, l1, ent)
            return _mse(pred, yb), reg
        return _mse(model(xb), yb), None

    taken = 0  # steps completed (and recorded)
    try:
        for step in range(steps):
            gstep = first_step + step
            # 1. grid range follows the data early in training
            if range_every and step % range_every == 0 and step < cfg["grid_range_update_until"]:
                xs = _subset(x, y, generator)[0]
                if model.update_grid_range(xs, cfg["grid_eps"], HIDDEN_GRID_MARGIN):
                    phase_best, pending = (math.inf, 0, None), None
                    if cfg["optimizer"] == "lbfgs":  # its curvature pairs belong to the old grid
                        opt = make_optimizer(cfg, model.parameters())
                    if step > 0:
                        events.append({"step": gstep, "kind": "grid_range"})
            # 2. refinement
            due = False
            if strategy == "fixed":
                due = step > 0 and step % cfg["fixed_update_interval"] == 0
            elif strategy == "adaptive" and step % CHECK_EVERY == 0:
                due = detector.plateaued(train_hist[last_change:step])
            if due:
                target = next_grid_size(cfg, max(model.grid_sizes))
                if target is not None:
                    _keep_best(model, phase_best, x, y)  # refine from this phase's best state
                    phase_best, pending = (math.inf, 0, None), None
                    xs, ys = _subset(x, y, generator)
                    moments = _adam_moments(opt, model)
                    carried = model.refine(
                        xs,
                        grid_size=target,
                        placement=cfg["knot_placement"],
                        y=ys,
                        carry=[m[1:] for m in moments],
                    )
                    opt = make_optimizer(cfg, model.parameters(), old=opt)
                    _restore_adam_moments(opt, model, moments, carried)
                    last_change = step
                    good_state = _snapshot(model)
                    events.append({"step": gstep, "kind": "refine", "grid_sizes": model.grid_sizes})
                    log(f"step {gstep}: grid refined to {model.grid_sizes}")
            # 3. one optimizer step
            idx = sampler.next()
            xb, yb = (x, y) if idx is None else (x[idx], y[idx])
            if cfg["optimizer"] == "lbfgs":
                mse = _lbfgs_step(opt, loss_fn, xb, yb)
            else:
                opt.zero_grad(set_to_none=True)
                mse, reg = loss_fn(xb, yb)
                (mse if reg is None else mse + reg).backward()
                opt.step()
                mse = mse.detach()
            # 4. record (mean squared errors; square roots at the end)
            train_hist[step] = mse
            with torch.no_grad():
                test_hist[step] = _mse(model(data.x_test), data.y_test)
                if use_val:
                    val_hist[step] = _mse(model(data.x_val), data.y_val)
            taken = step + 1
            # 5. checks, log, checkpoint
            if (step + 1) % CHECK_EVERY == 0 or step + 1 == steps:
                window = train_hist[max(0, step + 1 - CHECK_EVERY) : step + 1]
                if not bool(torch.isfinite(window).all()):
                    bad = max(0, step + 1 - CHECK_EVERY) + int(
                        torch.nonzero(~torch.isfinite(window))[0]
                    )
                    model.load_state_dict(good_state)
                    stopped, taken = "non_finite_loss", bad
                    message = (
                        f"training loss became non-finite at step {first_step + bad + 1}; "
                        "stopped and kept the last good model (try a smaller learning_rate "
                        "or dtype float64)"
                    )
                    break
                if pending is not None and pending[0] <= step:
                    loss = float(train_hist[pending[0]])
                    if loss < phase_best[0]:
                        phase_best = (loss, pending[0], pending[1])
                good_state = _snapshot(model)
                pending = (step + 1, good_state) if track_best else None
            if use_val:
                v = float(val_hist[step])
                if v < best[0]:
                    best = (v, step, _snapshot(model))
                elif step - best[1] >= patience:
                    stopped = "early_stopping"
                    message = (
                        f"early stopping at step {gstep + 1}: validation RMSE last improved at "
                        f"step {first_step + best[1] + 1}"
                    )
                    break
            if (step + 1) % cfg["log_interval"] == 0 or step + 1 == steps:
                log(
                    f"{label} step {gstep + 1}/{first_step + steps}  "
                    f"train_rmse {math.sqrt(float(train_hist[step])):.4e}  "
                    f"test_rmse {math.sqrt(float(test_hist[step])):.4e}  "
                    f"grid {model.grid_sizes}  ({time.perf_counter() - start:.1f} s)"
                )
            if bar is not None and ((step + 1) % 50 == 0 or step + 1 == steps):
                bar.update(step + 1 - bar.n)
                bar.set_postfix_str(f"rmse {math.sqrt(float(train_hist[step])):.3e}")
            interval = cfg["checkpoint_interval"]
            if checkpoint is not None and interval and (step + 1) % interval == 0:
                checkpoint(model, gstep + 1)
    except KeyboardInterrupt:
        stopped, message = "interrupted", f"interrupted at step {first_step + taken}"
        model.load_state_dict(good_state)  # the step in progress may be half-applied
    finally:
        if bar is not None:
            bar.close()
    if use_val and stopped in ("completed", "early_stopping"):
        model.load_state_dict(best[2])  # keep the best-validation model
    if stopped == "completed" and _keep_best(model, phase_best, x, y):
        log(
            f"kept the state after step {first_step + phase_best[1]} (training RMSE "
            f"{math.sqrt(phase_best[0]):.4e}, the lowest of the last grid phase)"
        )
    history = {
        "step": list(range(first_step + 1, first_step + taken + 1)),
        "train_rmse": torch.sqrt(train_hist[:taken]).tolist(),
        "test_rmse": torch.sqrt(test_hist[:taken]).tolist(),
    }
    if use_val:
        history["val_rmse"] = torch.sqrt(val_hist[:taken]).tolist()
    if message:
        log(message)
    return TrainResult(taken, stopped, message, events, history)


def _keep_best(model: SimpleKAN, phase_best, x, y) -> bool:
    """Restore the phase's best state when it beats the current one on the training data."""
    if phase_best[2] is None:
        return False
    with torch.no_grad():
        current = float(_mse(model(x), y))
    if phase_best[0] >= current:
        return False
    model.load_state_dict(phase_best[2])
    return True


def _adam_moments(opt, model: SimpleKAN) -> list:
    """Per layer, Adam's (exp_avg, exp_avg_sq) of the spline coefficients, or () if none."""
    moments = []
    for layer in model.layers:
        state = opt.state.get(layer.coef, {}) if isinstance(opt, torch.optim.Adam) else {}
        keys = ("step", "exp_avg", "exp_avg_sq")
        moments.append(tuple(state[key] for key in keys) if all(k in state for k in keys) else ())
    return moments


def _restore_adam_moments(opt, model: SimpleKAN, moments, carried) -> None:
    """Give the refined coefficients the moments put through the same knot insertion, so Adam
    continues where it was instead of restarting its step-size estimates (a restart makes the
    loss jump right after every refinement). Both moments map by convex combinations, so the
    second stays non-negative."""
    if not isinstance(opt, torch.optim.Adam):
        return
    for layer, old, new in zip(model.layers, moments, carried):
        if old and new:
            opt.state[layer.coef] = {"step": old[0], "exp_avg": new[0], "exp_avg_sq": new[1]}


def _lbfgs_step(opt, loss_fn, xb, yb) -> torch.Tensor:
    """One LBFGS step; returns the loss before it (from the first closure call, no extra pass).

    LBFGS minimises the objective divided by its value at the optimizer's first evaluation.
    torch's LBFGS stores a curvature pair only when y·s > 1e-10, an absolute threshold: near a
    mean squared error of 1e-9 (RMSE 3e-5) no pair passes, so an optimizer started there (one
    per grid change) never builds its memory and crawls like gradient descent with a line
    search, and the fit stalls far above what the grid resolves (pykan's own copy of LBFGS
    makes the threshold a parameter, tolerance_ys, set to 1e-32). Divided by the starting loss
    the test is relative. The scale is fixed per optimizer (kept in its param group), so its
    curvature pairs share one unit.
    """
    group = opt.param_groups[0]
    params = group["params"]
    first = []

    def closure():
        for p in params:  # opt.zero_grad's profiling wrappers cost more than the tiny layers here
            p.grad = None
        mse, reg = loss_fn(xb, yb)
        total = mse if reg is None else mse + reg
        if "loss_scale" not in group:
            group["loss_scale"] = 1.0 / max(float(total.detach()), torch.finfo(total.dtype).tiny)
        scaled = total * group["loss_scale"]
        scaled.backward()
        if not first:
            first.append(mse.detach())
        return scaled

    opt.step(closure)
    return first[0]


def _snapshot(model: SimpleKAN) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _progress_bar(total: int, label: str):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="step", leave=False, dynamic_ncols=True)
