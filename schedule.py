"""When the grids are refined, and to which size: the refinement strategies.

- "adaptive": refine when the training loss has plateaued (`PlateauDetector`);
- "fixed": every ``fixed_update_interval`` steps;
- "none": never.
Each event adds ``adaptive_k`` intervals or moves to the next ``grid_schedule`` size, never past
``max_grid_size`` (`next_grid_size`).
"""

import torch

UPDATE_STRATEGIES = ("adaptive", "fixed", "none")


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


class RefinementTrigger:
    """Whether a refinement is due at a step, under the config's ``update_strategy``.

    ``check_every``: the adaptive rule is evaluated only at multiples of it (it reads the loss
    history, a host sync).
    """

    def __init__(self, cfg: dict, enabled: bool, check_every: int):
        self.strategy = cfg["update_strategy"] if enabled else "none"
        self.interval = cfg["fixed_update_interval"]
        self.check_every = check_every
        self.detector = PlateauDetector(cfg["adaptive_patience"], cfg["adaptive_threshold"])

    def due(self, step: int, losses_since_change: torch.Tensor) -> bool:
        if self.strategy == "fixed":
            return step > 0 and step % self.interval == 0
        if self.strategy == "adaptive" and step % self.check_every == 0:
            return self.detector.plateaued(losses_since_change)
        return False
