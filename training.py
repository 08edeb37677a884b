"""The training loop: a plain function of (config, model, data) returning what happened.

One visible loop with a fixed order of named steps (`train`):
  1. grid range follows the data (every ``grid_range_update_every`` steps, until
     ``grid_range_update_until``), 2. refinement when the strategy says so (schedule.py),
  3. one optimizer step on a mini-batch from the sampler (optimizers.py), 4. record the
  train/test(/validation) MSE of that step, 5. checks (non-finite loss, early stopping), log,
  progress and checkpoint. Which state training ends in is best_state.py's business.
Host syncs: the per-step losses stay on the device and are read every ``CHECK_EVERY`` steps (the
finiteness check, the plateau rule), at log lines and progress updates — and with early
stopping every step (the validation loss decides). All file writes are the caller's (through
the ``checkpoint`` callback), and progress goes to a callback. With a ``group`` of several
processes (distributed.py) ``data`` holds this rank's shard of the rows: batches, losses, grid
samples and every decision are global (the same on every rank), see distributed.py.
"""

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

import distributed
from best_state import BestState
from classes import cross_entropy
from datasets import Data
from errors import ConfigError
from optimizers import Optimizer, adam_moments, restore_adam_moments
from schedule import RefinementTrigger, next_grid_size
from simple_kan import SimpleKAN

FINISHED = ("completed", "early_stopping")  # stops after which a model counts as trained
CHECK_EVERY = 10  # steps between host syncs for the plateau and non-finite checks
PROGRESS_EVERY = 50  # steps between progress updates
MAX_GRID_SAMPLES = 20000  # samples used for grid updates and refinements (a random subset)
HIDDEN_GRID_MARGIN = 0.05  # hidden grids reach this share of their data range beyond it


class Progress(Protocol):
    """Where a loop reports progress (a progress bar in the CLI; nothing by default)."""

    def start(self, total: int, label: str, unit: str | None = None) -> None: ...

    def update(self, done: int, train_rmse: float | None = None) -> None: ...

    def close(self) -> None: ...


@dataclass
class TrainResult:
    steps: int  # steps taken in this call
    stopped: str  # "completed", "early_stopping", "interrupted", "terminated", "non_finite_loss",
    # "peer_lost"
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

    def state(self) -> dict:
        """Where the sampler stands (its generator, the epoch's order, the position in it)."""
        order = None if self._order is None else self._order.cpu()
        return {"generator": self.generator.get_state(), "order": order, "pos": self._pos}

    def load(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        order = state["order"]
        self._order = None if order is None else order.to(self.device)
        self._pos = state["pos"]

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


def rng_state() -> dict:
    """torch's CPU generator and numpy's global one (as tensors and numbers)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    numpy = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos}
    numpy.update(has_gauss=has_gauss, cached=cached)
    return {"torch": torch.get_rng_state(), "numpy": numpy}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached"]))


def _mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.mean((pred - y) ** 2)


LOSSES = {"regression": _mse, "classification": cross_entropy}  # by cfg["task"]


def history_keys(task: str) -> tuple[str, str, str]:
    """The history's (train, test, validation) keys: RMSEs for regression, the cross-entropy
    (log-loss) itself for classification."""
    if task == "classification":
        return "train_loss", "test_loss", "val_loss"
    return "train_rmse", "test_rmse", "val_rmse"


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
    progress: Progress | None = None,
    checkpoint: Callable | None = None,
    label: str = "train",
    stop=None,
    group: distributed.Group = distributed.SINGLE,
    resume: dict | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data`` as ``cfg`` says; returns what happened.

    ``num_steps`` overrides cfg["num_steps"] (fine-tuning phases); ``first_step`` offsets the step
    numbers in the history and the log; ``refine=False`` disables grid changes (fine-tuning).
    Ctrl-C stops the loop cleanly (stopped="interrupted"); a non-finite loss restores the last
    good state (stopped="non_finite_loss"); see best_state.py for the state training ends in.
    ``stop``: a `stop_signals.StopSignals`; once it is ``requested`` (SIGTERM, SIGHUP) the loop
    ends after the step in progress (stopped="terminated"). In one process the first Ctrl-C
    also ends the loop after the step in progress (stopped="interrupted"), a second one at once.
    With several ranks, a failed collective (another rank lost) ends the loop in the last good
    state with ``group`` abandoned (stopped="peer_lost").

    ``checkpoint(model, step, state, final)``: called every ``checkpoint_interval`` steps
    (final False) and once at a clean stop (completed, early stopping, SIGTERM, Ctrl-C between
    steps; final True), ``state`` the loop's whole state after that step (`export_state`; None
    with several processes). ``resume``: such a state; the loop continues after its step, as
    if it had never stopped.
    """
    run = _TrainingRun(cfg, model, data, num_steps, first_step, refine, regularize, log, label)
    run.join(group)
    first = 0 if resume is None else run.restore(resume)
    if resume is not None and first == run.steps and first % CHECK_EVERY:
        run.best.checked(first - 1, run.train_mse)  # the end-of-run check its state left out
    if progress is not None:
        progress.start(run.steps, label)
    with (
        distributed.StopRequests(group.active) as run.stop,
        DeferredInterrupt(group.active) as ctrl_c,
    ):
        try:
            for step in range(first, run.steps):
                run.follow_data_range(step)
                run.refine_if_due(step)
                loss = run.optimizer_step()
                run.record(step, loss)
                if run.stop_check(step):
                    break
                run.report(step, progress, checkpoint)
                if stop is not None and stop.requested:
                    run.terminated(stop.name)
                    break
                if ctrl_c.requested:
                    run.stopped_between_steps()
                    break
            run.final_checkpoint(checkpoint)
        except KeyboardInterrupt:
            run.interrupted()
        except distributed.PeerLost as lost:
            run.peer_lost(lost)
        finally:
            if progress is not None:
                progress.close()
    return run.finish()


class DeferredInterrupt:
    """While inside (one process, main thread, Python's own SIGINT handler in place): the first
    Ctrl-C only sets ``requested`` (the loop stops after the step in progress, its state whole,
    so it can be resumed); a second one raises KeyboardInterrupt at once."""

    def __init__(self, several: bool):
        self.requested, self.previous = False, None
        self.active = (
            not several
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        )

    def __enter__(self) -> "DeferredInterrupt":
        if self.active:
            self.previous = signal.signal(signal.SIGINT, self.request)
        return self

    def request(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None


class _TrainingRun:
    """The state of one `train` call; each method is one named step of the loop."""

    def __init__(self, cfg, model, data, num_steps, first_step, refine, regularize, log, label):
        self.cfg, self.model, self.data, self.log, self.label = cfg, model, data, log, label
        self.steps = cfg["num_steps"] if num_steps is None else num_steps
        self.first_step = first_step
        self.regularize = cfg["use_regularization"] if regularize is None else regularize
        self.loss = LOSSES[cfg["task"]]
        self.classify = cfg["task"] == "classification"
        x = data.x_train
        self.group = distributed.SINGLE
        self.sampler = BatchSampler(len(x), cfg["batch_size"], cfg["seed"], x.device)
        self.generator = torch.Generator().manual_seed(cfg["seed"] + 2)
        self.trigger = RefinementTrigger(cfg, refine, CHECK_EVERY)
        self.range_every = cfg["grid_range_update_every"] if refine else 0
        self.use_val = cfg["early_stopping_patience"] is not None and data.x_val is not None

        def history():
            return torch.full((self.steps,), math.nan, dtype=x.dtype, device=x.device)

        self.train_mse, self.test_mse = history(), history()
        self.val_mse = history() if self.use_val else None
        self.events: list[dict] = []
        self.opt = self.new_optimizer()
        # Full batch, no early stopping, no sparsity penalty: each grid phase ends at its best.
        track = cfg["batch_size"] is None and not self.use_val and not self.regularize
        self.best = BestState(model, track, cfg["early_stopping_patience"])
        self.last_change = 0  # step of the last grid change (plateau windows restart there)
        self.stopped, self.message, self.taken = "completed", "", 0
        self.saved_at, self.best_unchecked = None, None  # resumable states (see export_state)
        self.start = time.perf_counter()

    def export_state(self) -> dict:
        """Everything the loop keeps besides the model's own tensors, after ``taken`` steps:
        the losses so far, events, the plateau window's start, sampler, grid-sample generator,
        optimizer, best-state tracker and the global RNGs (nested dicts of tensors and plain
        values; see resume.py). An end-of-run check that an uninterrupted longer run would not
        have made is left out: the tracker is taken as it was before it."""
        taken = self.taken

        def losses(t):
            return None if t is None else t[:taken].detach().cpu().clone()

        best = self.best_unchecked if self.best_unchecked is not None else self.best.state()
        return {
            "steps_done": taken,
            "train_mse": losses(self.train_mse),
            "test_mse": losses(self.test_mse),
            "val_mse": losses(self.val_mse),
            "events": [dict(e) for e in self.events],
            "last_change": self.last_change,
            "sampler": self.sampler.state(),
            "grid_generator": self.generator.get_state(),
            "optimizer": self.opt.state(),
            "best": best,
            "rng": rng_state(),
        }

    def restore(self, state: dict) -> int:
        """Continue from an `export_state`; returns the step to continue at."""
        taken = state["steps_done"]
        for mine, saved in ((self.train_mse, "train_mse"), (self.test_mse, "test_mse")) + (
            (self.val_mse, "val_mse"),
        ):
            if mine is not None and state[saved] is not None:
                mine[:taken] = state[saved].to(mine)
        self.events = [dict(e) for e in state["events"]]
        self.last_change = state["last_change"]
        self.sampler.load(state["sampler"])
        self.generator.set_state(state["grid_generator"])
        self.opt.load(state["optimizer"])
        self.best.load(state["best"])
        set_rng_state(state["rng"])
        self.taken = self.saved_at = taken
        return taken

    def resumable_state(self) -> dict | None:
        return None if self.group.active else self.export_state()

    def final_checkpoint(self, checkpoint) -> None:
        """The checkpoint of a clean stop (unless the last interval's is of the same step)."""
        if checkpoint is None or self.stopped == "non_finite_loss" or self.saved_at == self.taken:
            return
        checkpoint(self.model, self.first_step + self.taken, self.resumable_state(), True)
        self.saved_at = self.taken

    def join(self, group: distributed.Group) -> None:
        """Train as one rank of ``group``: the sampler draws global batches over all ranks' rows
        and gradients are summed over the ranks (see distributed.py)."""
        if not group.active:
            return
        if self.classify:
            raise ConfigError("task classification runs in one process (not under torchrun)")
        data, cfg = self.data, self.cfg
        self.group = group
        self.shards = {
            "train": group.shard(len(data.x_train)),
            "test": group.shard(len(data.x_test)),
            "val": group.shard(len(data.x_val)) if self.use_val else None,
        }
        total = self.shards["train"].total
        self.sampler = BatchSampler(total, cfg["batch_size"], cfg["seed"], data.x_train.device)
        self.opt = self.new_optimizer()

    def new_optimizer(self, old: Optimizer | None = None) -> Optimizer:
        sync = None
        if self.group.active:

            def sync(mse, params):
                return distributed.sync_gradients(self.group, params, mse)

        trained = [p for p in self.model.parameters() if p.requires_grad]  # see make_linear
        return Optimizer(self.cfg, trained, old=old, sync=sync)

    def loss_fn(self, xb: torch.Tensor, yb: torch.Tensor, count: int | None = None):
        """(MSE, penalty or None) of a batch; with ``count`` (several ranks) this rank's share of
        the MSE over the global batch of ``count`` rows."""
        mse = self.loss if count is None else lambda p, y: distributed.squared_error(p, y, count)
        rough = None
        if self.cfg["smoothness_weight"]:  # of the parameters alone: each rank its 1 / world
            rough = self.cfg["smoothness_weight"] / self.group.world * self.model.roughness()
        if self.regularize:
            mean = None if count is None else distributed.global_batch_mean(self.group, count)
            pred, reg = self.model.forward_regularized(
                xb, self.cfg["l1_weight"], self.cfg["entropy_weight"], batch_mean=mean
            )
            return mse(pred, yb), reg if rough is None else reg + rough
        return mse(self.model(xb), yb), rough

    def mse(self, which: str, x: torch.Tensor, y: torch.Tensor) -> float | torch.Tensor:
        """The MSE of the current model on a whole split (global over the ranks)."""
        with torch.no_grad():
            if not self.group.active:
                return self.loss(self.model(x), y)
            return distributed.global_mse(self.group, self.model(x), y, self.shards[which].total)

    def _grid_samples(self):
        x, y = self.data.x_train, self.data.y_train
        n = self.shards["train"].total if self.group.active else len(x)
        idx = None
        if n > MAX_GRID_SAMPLES:
            idx = torch.randperm(n, generator=self.generator)[:MAX_GRID_SAMPLES].to(x.device)
        elif not torch.is_tensor(x):  # rows on disk (data_store.MappedRows): read them
            idx = torch.arange(n)
        if not self.group.active:
            return (x, y) if idx is None else (x[idx], y[idx])
        return distributed.gather_rows(self.group, self.shards["train"], (x, y), idx)

    def keep_phase_best(self) -> bool:
        x, y = self.data.x_train, self.data.y_train
        if not self.group.active:
            current = (lambda: float(self.mse("train", x, y))) if self.classify else None
            return self.best.keep_phase_best(x, y, mse=current)
        return self.best.keep_phase_best(x, y, mse=lambda: float(self.mse("train", x, y)))

    # 1. the grid range follows the data early in training
    def follow_data_range(self, step: int) -> None:
        if (
            not self.range_every
            or step % self.range_every
            or step >= self.cfg["grid_range_update_until"]
        ):
            return
        xs = self._grid_samples()[0]
        if self.model.update_grid_range(xs, self.cfg["grid_eps"], HIDDEN_GRID_MARGIN):
            distributed.sync_model(self.group, self.model)
            self.best.grid_changed()
            if self.opt.kind == "lbfgs":  # its curvature pairs belong to the old grid
                self.opt = self.new_optimizer()
            if step > 0:
                self.events.append({"step": self.first_step + step, "kind": "grid_range"})

    # 2. refinement, from the current phase's best state
    def refine_if_due(self, step: int) -> None:
        if not self.trigger.due(step, self.train_mse[self.last_change : step]):
            return
        target = next_grid_size(self.cfg, max(self.model.grid_sizes))
        if target is None:
            return
        self.keep_phase_best()
        self.best.grid_changed()
        xs, ys = self._grid_samples()
        moments = adam_moments(self.opt, self.model)
        carried = self.model.refine(
            xs,
            grid_size=target,
            placement=self.cfg["knot_placement"],
            y=ys,
            carry=[m[1:] for m in moments],
            loss=self.loss,
        )
        distributed.sync_model(self.group, self.model)
        self.opt = self.new_optimizer(old=self.opt)
        restore_adam_moments(self.opt, self.model, moments, carried)
        self.last_change = step
        self.best.refined()
        gstep = self.first_step + step
        self.events.append({"step": gstep, "kind": "refine", "grid_sizes": self.model.grid_sizes})
        self.log(f"step {gstep}: grid refined to {self.model.grid_sizes}")

    # 3. one optimizer step on the next batch; returns the batch MSE before it
    def optimizer_step(self) -> torch.Tensor:
        x, y = self.data.x_train, self.data.y_train
        idx = self.sampler.next()
        if not self.group.active:
            xb, yb = (x, y) if idx is None else (x[idx], y[idx])
            return self.opt.step(self.loss_fn, xb, yb)
        count = self.shards["train"].total if idx is None else len(idx)
        if idx is not None:  # this rank's part of the global batch
            local = self.shards["train"].local_part(idx)
            x, y = x[local], y[local]
        return self.opt.step(lambda xb, yb: self.loss_fn(xb, yb, count), x, y)

    # 4. record (mean squared errors; square roots at the end)
    def record(self, step: int, loss: torch.Tensor) -> None:
        data = self.data
        self.train_mse[step] = loss
        self.taken = step + 1
        if self.group.active:
            return self.record_global(step)
        self.test_mse[step] = self.mse("test", data.x_test, data.y_test)
        if self.use_val:
            self.val_mse[step] = self.mse("val", data.x_val, data.y_val)

    def record_global(self, step: int) -> None:
        """Several ranks: the test (and validation) MSE and the stop requests in one all-reduce;
        a stop requested on any rank interrupts every rank after this step."""
        data, sh = self.data, self.shards
        with torch.no_grad():
            parts = [
                distributed.squared_error(self.model(data.x_test), data.y_test, sh["test"].total)
            ]
            if self.use_val:
                pred = self.model(data.x_val)
                parts.append(distributed.squared_error(pred, data.y_val, sh["val"].total))
            parts.append(parts[0].new_tensor(float(self.stop.requested)))
            sums = self.group.sum_(torch.stack(parts))
        self.test_mse[step] = sums[0]
        if self.use_val:
            self.val_mse[step] = sums[1]
        if sums[-1] > 0:
            raise KeyboardInterrupt

    # 5a. checks: a non-finite loss, early stopping; True stops the loop
    def stop_check(self, step: int) -> bool:
        if (step + 1) % CHECK_EVERY == 0 or step + 1 == self.steps:
            lo = max(0, step + 1 - CHECK_EVERY)
            window = self.train_mse[lo : step + 1]
            if not bool(torch.isfinite(window).all()):
                bad = lo + int(torch.nonzero(~torch.isfinite(window))[0])
                self.best.restore_last_good()
                self.stopped, self.taken = "non_finite_loss", bad
                self.message = (
                    f"training loss became non-finite at step {self.first_step + bad + 1}; "
                    "stopped and kept the last good model (try a smaller learning_rate "
                    "or dtype float64)"
                )
                return True
            if (step + 1) % CHECK_EVERY:  # a check at the end only: a resume would not see it
                self.best_unchecked = self.best.state()
            self.best.checked(step, self.train_mse)
        if self.use_val and self.best.validated(step, float(self.val_mse[step])):
            self.stopped = "early_stopping"
            self.message = (
                f"early stopping at step {self.first_step + step + 1}: validation RMSE last "
                f"improved at step {self.first_step + self.best.validation_step + 1}"
            )
            return True
        return False

    # 5b. log line, progress, checkpoint
    def report(self, step: int, progress: Progress | None, checkpoint) -> None:
        done, last = step + 1, step + 1 == self.steps
        gstep = self.first_step + step
        if done % self.cfg["log_interval"] == 0 or last:
            shown = self.shown
            test = shown(float(self.test_mse[step])) if len(self.data.x_test) else None
            train_key, test_key, _ = history_keys(self.cfg["task"])
            self.log(
                f"{self.label} step {gstep + 1}/{self.first_step + self.steps}  "
                f"{train_key} {shown(float(self.train_mse[step])):.4e}  "
                + (f"{test_key} {test:.4e}  " if test is not None else "")
                + f"grid {self.model.grid_sizes}  ({time.perf_counter() - self.start:.1f} s)"
            )
        if progress is not None and (done % PROGRESS_EVERY == 0 or last):
            progress.update(done, self.shown(float(self.train_mse[step])))
        interval = self.cfg["checkpoint_interval"]
        if checkpoint is not None and interval and done % interval == 0:
            checkpoint(self.model, gstep + 1, self.resumable_state(), False)
            self.saved_at = done

    def shown(self, loss: float) -> float:
        """A recorded loss as the log shows it: the RMSE (regression), the log-loss itself."""
        return loss if self.classify else math.sqrt(loss)

    def interrupted(self) -> None:
        self.stopped = "interrupted"
        self.message = f"interrupted at step {self.first_step + self.taken}"
        self.best.restore_last_good()  # the step in progress may be half-applied

    def peer_lost(self, lost: Exception) -> None:
        """Another rank failed: this one goes on alone (`distributed.Group.abandon`) from the
        last good state, so rank 0 can still complete the run folder."""
        self.stopped = "peer_lost"
        self.message = f"{lost} after step {self.first_step + self.taken}"
        self.best.restore_last_good()  # the step in progress may be half-applied
        self.group.abandon()

    def stopped_between_steps(self) -> None:
        self.stopped = "interrupted"
        self.message = f"interrupted at step {self.first_step + self.taken}"

    def terminated(self, signal_name: str) -> None:
        self.stopped = "terminated"
        self.message = f"{signal_name} received: stopped after step {self.first_step + self.taken}"

    def finish(self) -> TrainResult:
        if self.use_val and self.stopped in ("completed", "early_stopping"):
            self.best.restore_validation_best()
        if self.stopped == "completed" and self.keep_phase_best():
            loss, step = self.best.phase_best
            what = "loss" if self.classify else "RMSE"
            self.log(
                f"kept the state after step {self.first_step + step} (training {what} "
                f"{self.shown(loss):.4e}, the lowest of the last grid phase)"
            )
        taken, first = self.taken, self.first_step
        keys = history_keys(self.cfg["task"])
        scale = (lambda t: t) if self.classify else torch.sqrt
        history = {
            "step": list(range(first + 1, first + taken + 1)),
            keys[0]: scale(self.train_mse[:taken]).tolist(),
            keys[1]: scale(self.test_mse[:taken]).tolist(),
        }
        if self.use_val:
            history[keys[2]] = scale(self.val_mse[:taken]).tolist()
        if self.message:
            self.log(self.message)
        return TrainResult(taken, self.stopped, self.message, self.events, history)
