"""Several starts against bad local minima: short trial runs from different initial weights,
then the best one is trained in full.

A small network (the KAN paper's minimal shapes, multiplication nodes) can stall in a local
minimum from some initialisations. Start k draws its initial weights with seed
``seed + START_SEED_STRIDE * k`` (start 0 is the plain run), trains ``start_steps`` steps with the
run's own schedule, and is scored by its validation RMSE (training RMSE without a validation
split). The winner is rebuilt from its seed and trained from step 0, so the final run is exactly
the single-start run with that seed.
"""

from collections.abc import Callable

import torch

import training
from arrays import rmse
from datasets import Data

START_SEED_STRIDE = 7919
MIN_START_STEPS = 50


def start_seed(cfg: dict, start: int) -> int:
    return cfg["seed"] + START_SEED_STRIDE * start


def trial_steps(cfg: dict) -> int:
    if cfg["start_steps"] is not None:
        return min(cfg["start_steps"], cfg["num_steps"])
    return min(cfg["num_steps"], max(cfg["num_steps"] // 10, MIN_START_STEPS))


_SCORE_NAMES = {"regression": "rmse", "classification": "log-loss"}


def _score(cfg: dict, pred: torch.Tensor, y: torch.Tensor) -> float:
    if cfg["task"] == "classification":
        return float(training.LOSSES["classification"](pred, y))
    return rmse(pred, y)


def best_start(cfg: dict, data: Data, build: Callable[[int], torch.nn.Module], log) -> int:
    """The start (0 .. starts-1) whose trial run scores best; logs one line per start."""
    if cfg["starts"] == 1:
        return 0
    steps = trial_steps(cfg)
    x, y = (data.x_val, data.y_val) if data.x_val is not None else (data.x_train, data.y_train)
    scores = []
    for start in range(cfg["starts"]):
        model = build(start)
        result = training.train(cfg, model, data, num_steps=steps, log=lambda _: None)
        with torch.no_grad():
            score = _score(cfg, model(x), y) if result.stopped in training.FINISHED else None
        scores.append(float("inf") if score is None or score != score else score)
        shown = "failed" if score is None else f"{_SCORE_NAMES[cfg['task']]} {score:.4e}"
        log(f"start {start + 1}/{cfg['starts']} (seed {start_seed(cfg, start)}): {shown}")
        if result.stopped == "interrupted":
            log("trial starts interrupted: going on with the best so far")
            break
    best = min(range(len(scores)), key=scores.__getitem__)
    log(f"training start {best + 1} (seed {start_seed(cfg, best)}) in full")
    return best
