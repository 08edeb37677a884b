"""Which state training returns to, and when: the best-state rules in one place.

Three states are tracked, each a copy of the model's state dict:

- *last good*: taken at every check whose training losses were all finite (and after each
  refinement). A non-finite loss, or Ctrl-C in the middle of a step, restores it.
- *phase best* (only when ``track_phase``: full-batch training without validation and without
  the sparsity penalty, which the MSE alone would ignore): the lowest training loss among the
  states taken at the checks of the current grid phase. Full-batch Adam at a small loss
  oscillates, so refinement and the end of training start from that state when it beats the
  current one. A state taken after step s has its loss recorded at step s+1 (the loss of the
  forward pass before step s+1's update), so it is compared at the next check at no extra
  evaluation: it waits there as *pending*.
- *validation best* (early stopping): the state of lowest validation RMSE; training stops when
  ``patience`` steps brought no improvement, and ends in that state.
"""

import math

import torch


def snapshot(model: torch.nn.Module) -> dict:
    """A detached copy of the model's state dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class BestState:
    def __init__(self, model: torch.nn.Module, track_phase: bool, patience: int | None = None):
        self.model = model
        self.track_phase = track_phase
        self.patience = patience
        self.last_good = snapshot(model)
        self.validation = (math.inf, 0, self.last_good)  # (validation MSE, step, state)
        self.phase: tuple[float, int, dict | None] = (math.inf, 0, None)  # (loss, step, state)
        self.pending: tuple[int, dict] | None = None  # (step whose recorded loss is its, state)

    def state(self) -> dict:
        """The tracked states (for a checkpoint that training resumes from)."""
        return {
            "last_good": self.last_good,
            "validation": self.validation,
            "phase": self.phase,
            "pending": self.pending,
        }

    def load(self, state: dict) -> None:
        self.last_good = state["last_good"]
        self.validation = tuple(state["validation"])
        self.phase = tuple(state["phase"])
        self.pending = None if state["pending"] is None else tuple(state["pending"])

    def grid_changed(self) -> None:
        """A new grid phase: states of the old grid no longer compete."""
        self.phase, self.pending = (math.inf, 0, None), None

    def refined(self) -> None:
        """After a refinement: the refined model is the new last good state."""
        self.grid_changed()
        self.last_good = snapshot(self.model)

    def checked(self, step: int, train_losses: torch.Tensor) -> None:
        """At a check after step ``step`` whose losses were finite; ``train_losses`` the per-step
        losses recorded so far (indexed by step)."""
        if self.pending is not None and self.pending[0] <= step:
            loss = float(train_losses[self.pending[0]])
            if loss < self.phase[0]:
                self.phase = (loss, self.pending[0], self.pending[1])
        self.last_good = snapshot(self.model)
        self.pending = (step + 1, self.last_good) if self.track_phase else None

    def restore_last_good(self) -> None:
        self.model.load_state_dict(self.last_good)

    def keep_phase_best(self, x: torch.Tensor, y: torch.Tensor, mse=None) -> bool:
        """Restore the phase's best state when it beats the current one on (x, y); ``mse()``,
        when given, is the current training MSE instead (e.g. over several processes)."""
        loss, _, state = self.phase
        if state is None:
            return False
        with torch.no_grad():
            current = float(torch.mean((self.model(x) - y) ** 2)) if mse is None else mse()
        if loss >= current:
            return False
        self.model.load_state_dict(state)
        return True

    @property
    def phase_best(self) -> tuple[float, int]:
        """(training MSE, step) of the phase's best state."""
        return self.phase[0], self.phase[1]

    def validated(self, step: int, val_loss: float) -> bool:
        """Record step ``step``'s validation loss; True when training should stop (no
        improvement for ``patience`` steps)."""
        if val_loss < self.validation[0]:
            self.validation = (val_loss, step, snapshot(self.model))
            return False
        return step - self.validation[1] >= self.patience

    @property
    def validation_step(self) -> int:
        return self.validation[1]

    def restore_validation_best(self) -> None:
        self.model.load_state_dict(self.validation[2])
