"""best_state.py: which state training returns to, and when."""

import math

import torch

from best_state import BestState, snapshot


class Scalar(torch.nn.Module):
    """A model with one parameter w: output w, so a state is a number."""

    def __init__(self, w: float):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([w], dtype=torch.float64))

    def forward(self, x):
        return self.w.expand(len(x), 1)

    def set(self, w: float) -> None:
        with torch.no_grad():
            self.w.fill_(w)


def test_snapshot_is_a_copy_not_a_view():
    model = Scalar(1.0)
    state = snapshot(model)
    model.set(2.0)
    assert float(state["w"]) == 1.0


def test_last_good_state_is_the_one_of_the_last_finite_check():
    model = Scalar(1.0)
    best = BestState(model, track_phase=False)
    model.set(2.0)
    best.checked(9, torch.zeros(10))
    model.set(math.nan)
    best.restore_last_good()
    assert float(model.w.detach()) == 2.0


def test_a_pending_state_is_scored_by_the_loss_recorded_one_step_later():
    """The state taken at the check after step 9 is the one whose loss the forward pass of step
    10 records: at the next check it competes with that number, no extra evaluation."""
    model = Scalar(0.0)
    best = BestState(model, track_phase=True)
    losses = torch.full((30,), 5.0, dtype=torch.float64)
    model.set(3.0)
    best.checked(9, losses)  # takes w=3 as pending for step 10
    losses[10] = 0.25
    model.set(7.0)
    best.checked(19, losses)  # w=3 scored 0.25; w=7 pending for step 20
    assert best.phase_best == (0.25, 10)
    x, y = torch.zeros(4, 1), torch.full((4, 1), 7.0, dtype=torch.float64)
    assert not best.keep_phase_best(x, y)  # the current w=7 fits (x, y) exactly: it stays
    assert float(model.w.detach()) == 7.0
    y.fill_(3.0)
    assert best.keep_phase_best(x, y)  # w=3 recorded 0.25 < current 16: restored
    assert float(model.w.detach()) == 3.0


def test_without_phase_tracking_nothing_is_kept_back():
    model = Scalar(0.0)
    best = BestState(model, track_phase=False)
    losses = torch.zeros(30, dtype=torch.float64)
    best.checked(9, losses)
    best.checked(19, losses)
    model.set(5.0)
    assert not best.keep_phase_best(torch.zeros(2, 1), torch.zeros(2, 1, dtype=torch.float64))


def test_a_grid_change_starts_a_new_phase():
    model = Scalar(1.0)
    best = BestState(model, track_phase=True)
    losses = torch.zeros(30, dtype=torch.float64)
    best.checked(9, losses)
    best.checked(19, losses)
    assert best.phase_best == (0.0, 10)
    best.grid_changed()
    assert best.phase_best == (math.inf, 0)


def test_validation_best_is_kept_and_patience_decides_the_stop():
    model = Scalar(0.0)
    best = BestState(model, track_phase=False, patience=3)
    stops = []
    for step, (w, val) in enumerate([(1.0, 0.5), (2.0, 0.2), (3.0, 0.3), (4.0, 0.4), (5.0, 0.9)]):
        model.set(w)
        stops.append(best.validated(step, val))
    assert stops == [False, False, False, False, True]  # 3 steps after the best (step 1)
    assert best.validation_step == 1
    best.restore_validation_best()
    assert float(model.w.detach()) == 2.0
