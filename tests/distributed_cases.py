"""Training runs on 2 spawned gloo processes and the same runs in one process (for
test_distributed.py; module level so spawned processes can import it)."""

import os
from dataclasses import replace

import torch

import config
import datasets
import distributed
import training
from experiment import build_model


def case_configs() -> dict:
    """Small float64 runs that refine (error-placed knots) during training."""
    base = dict(config.DEFAULTS, layer_dims=[2, 3, 1], grid_size=4, dataset_size=301)
    base.update(test_size=51, num_steps=80, learning_rate=0.02, log_interval=1000)
    base.update(dtype="float64", update_strategy="fixed", fixed_update_interval=25)
    base.update(adaptive_k=3, knot_placement="error", grid_range_update_every=20)
    base.update(grid_range_update_until=45)
    cases = {
        "full_adam": {},
        "batch": {"batch_size": 64},
        "lbfgs": {
            "optimizer": "lbfgs",
            "num_steps": 6,
            "fixed_update_interval": 3,
            "lbfgs_max_iter": 5,
        },
        "adaptive_val": {
            "early_stopping_patience": 30,
            "update_strategy": "adaptive",
            "adaptive_patience": 10,
            "adaptive_threshold": 0.5,
        },
        "regularized": {
            "use_regularization": True,
            "l1_weight": 1e-3,
            "batch_size": 50,
            "smoothness_weight": 1e-3,  # a penalty of the parameters alone: 1 / world per rank
        },
        "local": {"grid_range_update_every": 0},
    }
    return {name: config.validate_config({**base, **keys}, "test") for name, keys in cases.items()}


def local_data(cfg: dict, rank: int) -> datasets.Data:
    """Rank ``rank``'s own data set in the "local" case: a different seed per rank."""
    return datasets.make_data({**cfg, "seed": cfg["seed"] + 10 * rank}, "cpu", torch.float64)


def joined_data(cfg: dict, world: int) -> datasets.Data:
    """The "local" case's ranks' data sets one after the other (what one process sees)."""
    parts = [local_data(cfg, r) for r in range(world)]

    def cat(name):
        return torch.cat([getattr(p, name) for p in parts])

    names = ("x_train", "y_train", "x_test", "y_test")
    return replace(parts[0], **{n: cat(n) for n in names})


def train_case(name: str, cfg: dict, group: distributed.Group) -> dict:
    """Train the case as one rank of ``group`` (SINGLE: alone, on all rows)."""
    if name == "local":
        data = local_data(cfg, group.rank) if group.active else joined_data(cfg, 2)
    else:
        data = distributed.shard_data(datasets.make_data(cfg, "cpu", torch.float64), group)
    model = build_model(cfg, data, "cpu", torch.float64)
    result = training.train(cfg, model, data, log=lambda _: None, group=group)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    return {"state": state, "events": result.events, "history": result.history}


def worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """One spawned rank: joins the gloo group, trains every case, saves what it got."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    group = distributed.start(torch.device("cpu"))
    try:
        results = {name: train_case(name, cfg, group) for name, cfg in case_configs().items()}
    finally:
        distributed.finish(group)
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
