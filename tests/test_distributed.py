"""Training on 2 gloo processes equals training in one: same parameters, refinements, knots."""

import socket

import pytest
import torch
import torch.multiprocessing as mp
from distributed_cases import case_configs, train_case, worker

import distributed

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"ranks": [results of rank 0, rank 1], "single": results of one process}."""
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(worker, args=(WORLD, _free_port(), str(out)), nprocs=WORLD, join=True)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    single = {
        name: train_case(name, cfg, distributed.SINGLE) for name, cfg in case_configs().items()
    }
    return {"ranks": ranks, "single": single}


def _max_relative(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    worst = 0.0
    for key in a:
        assert a[key].shape == b[key].shape, key
        scale = b[key].abs().max().clamp_min(1e-300)
        worst = max(worst, float((a[key] - b[key]).abs().max() / scale))
    return worst


@pytest.mark.parametrize("case", list(case_configs()))
def test_two_ranks_train_the_same_model_as_one_process(runs, case):
    single = runs["single"][case]
    for rank in runs["ranks"]:
        got = rank[case]
        assert got["events"] == single["events"]
        assert _max_relative(got["state"], single["state"]) < 1e-9
        for key in ("train_rmse", "test_rmse"):
            assert torch.allclose(
                torch.tensor(got["history"][key]), torch.tensor(single["history"][key]), rtol=1e-9
            )
    assert any(e["kind"] == "refine" for e in single["events"])


def test_ranks_hold_identical_knots_after_refinement_on_different_local_data(runs):
    r0, r1 = (rank["local"]["state"] for rank in runs["ranks"])
    knots = [k for k in r0 if k.endswith("knots")]
    assert knots and all(torch.equal(r0[k], r1[k]) for k in r0)
    assert r0[knots[0]].shape[1] > 4 + 2 * 3 + 1  # refined beyond the initial grid of 4


def test_shard_bounds_cover_every_row_once():
    for n in (0, 1, 7, 10):
        parts = [distributed.shard_bounds(n, r, 3) for r in range(3)]
        assert [lo for lo, _ in parts][0] == 0 and parts[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))


def test_each_local_rank_gets_its_share_of_the_cores():
    env = {"LOCAL_WORLD_SIZE": "2"}
    share = distributed.share_cores(env)
    cores = len(__import__("os").sched_getaffinity(0))
    assert share == max(1, cores // 2) and env["NUMBA_NUM_THREADS"] == str(share)
    assert env["OMP_NUM_THREADS"] == str(share)
    assert distributed.share_cores({}) == cores  # a plain run keeps every core
    assert distributed.share_cores({"LOCAL_WORLD_SIZE": "64"}) == 1  # never below one thread


def test_a_failed_collective_is_one_line_naming_a_lost_process():
    def broken(*args, **kwargs):
        raise RuntimeError("Connection reset by peer\nlong backend details")

    with pytest.raises(distributed.PeerLost, match=r"^another training process .*peer\); stopped$"):
        distributed.Group(0, 2).run_collective(broken)
