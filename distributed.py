"""Training on several processes (torchrun): the process group, row shards and global numbers.

A `Group` answers what training asks about its processes: rank, world size, and collective
operations that are the identity in a single process (`SINGLE`). Every rank holds a contiguous
`Shard` of the training (and test, validation) rows; the global data set is the concatenation
of the shards in rank order, so global row ``i`` lives on the rank whose shard contains it.

What is synchronised, and how:
- gradients and the batch loss: one all-reduce (sum) of one flat buffer per step
  (`sync_gradients`); each rank's loss is its rows' squared errors divided by the *global*
  count, so the sum is the global mean and its gradient the global gradient (the LBFGS closure
  calls it too, so the line search sees the global loss);
- test and validation MSE, the full-batch training MSE (`global_mse`): an all-reduce of sums;
- grid updates and refinement: the rows they use (a global random subset, `gather_rows`) are
  assembled on every rank by an exact all-reduce of zero-padded rows, every rank computes the
  same new grid, and rank 0's model is broadcast (`sync_model`) so all ranks hold identical
  knots and parameters.
Every decision (plateau, early stopping, non-finite loss, best state) then reads numbers that are
the same on every rank.
"""

import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from data_store import read_rows

ENV_RANK, ENV_WORLD, ENV_LOCAL_WORLD = "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"


def launched_ranks(environ=os.environ) -> int:
    """The number of processes torchrun started (1 for a plain run)."""
    return int(environ.get(ENV_WORLD, "1"))


def is_root_process(environ=os.environ) -> bool:
    """Whether this process is rank 0 (a plain run is)."""
    return environ.get(ENV_RANK, "0") == "0"


def share_cores(environ=os.environ) -> int:
    """Give each of the LOCAL_WORLD_SIZE ranks on this machine its share of the cores, before the
    kernel thread pools start (NUMBA_NUM_THREADS, OMP_NUM_THREADS; a value already set wins).
    Returns the share (all cores in a plain run, where nothing is set)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    local = int(environ.get(ENV_LOCAL_WORLD, "1"))
    if local <= 1:
        return cores or 1
    share = max(1, (cores or 1) // local)
    environ.setdefault("NUMBA_NUM_THREADS", str(share))
    environ.setdefault("OMP_NUM_THREADS", str(share))
    return int(environ["NUMBA_NUM_THREADS"])


@dataclass(frozen=True)
class Shard:
    """Rows ``offset .. offset + local`` of ``total`` global rows live on this rank."""

    offset: int
    local: int
    total: int

    def local_part(self, idx: torch.Tensor) -> torch.Tensor:
        """The global indices ``idx`` that fall into this shard, as local indices (in order)."""
        inside = (idx >= self.offset) & (idx < self.offset + self.local)
        return idx[inside] - self.offset


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """[lo, hi) of rank's contiguous part of n rows (the first n % world ranks get one more)."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


class PeerLost(RuntimeError):
    """A collective failed: another training process ended or became unreachable."""


def _collective(call, *args, **kwargs) -> None:
    try:
        call(*args, **kwargs)
    except RuntimeError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise PeerLost(
            f"another training process failed or was lost ({first[:100]}); stopped"
        ) from None


class Group:
    """This process's place among the training processes; collectives act on tensors in place
    and are the identity when ``world`` is 1."""

    def __init__(self, rank: int = 0, world: int = 1):
        self.rank, self.world = rank, world

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @staticmethod
    def run_collective(call, *args, **kwargs) -> None:
        """``call(*args, **kwargs)``, a failure of the backend raised as one-line `PeerLost`."""
        _collective(call, *args, **kwargs)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.active:
            _collective(dist.all_reduce, tensor, op=dist.ReduceOp.SUM)
        return tensor

    def min_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.active:
            _collective(dist.all_reduce, tensor, op=dist.ReduceOp.MIN)
        return tensor

    def max_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.active:
            _collective(dist.all_reduce, tensor, op=dist.ReduceOp.MAX)
        return tensor

    def broadcast_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.active:
            _collective(dist.broadcast, tensor, src=0)
        return tensor

    def abandon(self) -> None:
        """After a failed collective: leave the broken process group and go on as one process
        (every collective the identity from now on)."""
        if self.active and dist.is_initialized():
            try:
                dist.destroy_process_group()
            except RuntimeError:
                pass  # the backend may refuse to tear down a group whose peer is gone
        self.world = 1

    def shard(self, local_rows: int) -> Shard:
        """The shard of this rank's ``local_rows`` rows (offset and total from every rank)."""
        counts = torch.zeros(self.world, dtype=torch.int64)
        counts[self.rank] = local_rows
        self.sum_(counts)
        return Shard(int(counts[: self.rank].sum()), local_rows, int(counts.sum()))

    def flag(self, value: bool) -> bool:
        """True on every rank when ``value`` is True on any rank."""
        t = torch.tensor([1.0 if value else 0.0])
        return bool(self.max_(t)[0] > 0)


SINGLE = Group()


def start(device: torch.device, environ=os.environ) -> Group:
    """Join the process group torchrun describes (gloo on the CPU, nccl on CUDA); a plain run
    gets `SINGLE` and starts nothing."""
    world = launched_ranks(environ)
    if world <= 1:
        return SINGLE
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return Group(dist.get_rank(), dist.get_world_size())


def finish(group: Group) -> None:
    """Leave the process group (nothing for a plain run)."""
    if group.active and dist.is_initialized():
        try:  # leave together: a rank tearing down while a peer still talks to it can abort
            dist.barrier()
        except RuntimeError:
            pass  # a peer is gone already
        dist.destroy_process_group()


def sync_gradients(group: Group, params: Sequence[torch.Tensor], mse: torch.Tensor):
    """Sum the gradients of ``params`` and the loss ``mse`` over the ranks in one all-reduce;
    the gradients are replaced by the sums, the summed loss (detached) is returned."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([mse.detach().reshape(1).to(grads[0].dtype)] + [g.reshape(-1) for g in grads])
    group.sum_(flat)
    pos = 1
    for p in params:
        p.grad = flat[pos : pos + p.numel()].view_as(p)
        pos += p.numel()
    return flat[0]


def squared_error(pred: torch.Tensor, y: torch.Tensor, count: int) -> torch.Tensor:
    """This rank's share of the global MSE over ``count`` rows: its squared errors / (count·out)."""
    return torch.sum((pred - y) ** 2) / (count * y.shape[1])


def global_mse(group: Group, pred: torch.Tensor, y: torch.Tensor, count: int) -> torch.Tensor:
    """The MSE over all ranks' rows (``count`` in all), the same on every rank."""
    return group.sum_(squared_error(pred, y, count).detach().clone())


def global_batch_mean(group: Group, count: int):
    """``f(a (N, ...)) -> mean over the global batch`` for a differentiable batch statistic
    (the sparsity penalty): its value is the global mean on every rank, its gradient flows only
    through this rank's rows, so summing the gradients over the ranks gives the exact gradient."""

    def mean(a: torch.Tensor) -> torch.Tensor:
        local = a.sum(dim=0) / count
        total = group.sum_(local.detach().clone())
        return local + (total - local.detach())

    return mean


def gather_rows(group: Group, shard: Shard, tensors, idx: torch.Tensor | None = None) -> list:
    """The global rows ``idx`` (None: all, in order) of row-sharded ``tensors``, on every rank.

    Each rank places its rows into zeros and the ranks sum: adding zeros is exact, so the result
    equals the rows themselves, in the order of ``idx`` (what one process would index)."""
    if not group.active:
        return [t if idx is None else t[idx.to(t.device)] for t in tensors]
    if idx is None:
        idx = torch.arange(shard.total)
    idx = idx.cpu()
    inside = (idx >= shard.offset) & (idx < shard.offset + shard.local)
    local = (idx[inside] - shard.offset).tolist()
    out = []
    for t in tensors:
        full = torch.zeros((len(idx), *t.shape[1:]), dtype=t.dtype, device=t.device)
        if local:
            full[inside.to(t.device)] = torch.as_tensor(t[local]).to(full)
        out.append(group.sum_(full))
    return out


@torch.no_grad()
def sync_model(group: Group, model: torch.nn.Module) -> None:
    """Every rank takes rank 0's parameters and buffers (knots included; shapes must agree)."""
    if not group.active:
        return
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for value in state.values():
        group.broadcast_(value)
    model.load_state_dict(state)


def shard_data(data, group: Group):
    """This rank's contiguous part of every split of a `datasets.Data` (rows in order)."""
    if not group.active:
        return data

    def part(x):
        if x is None:
            return None
        lo, hi = shard_bounds(len(x), group.rank, group.world)
        return x[lo:hi]

    return replace(
        data,
        x_train=part(data.x_train),
        y_train=part(data.y_train),
        x_test=part(data.x_test),
        y_test=part(data.y_test),
        x_val=part(data.x_val),
        y_val=part(data.y_val),
    )


def global_view(data, group: Group, max_train_rows: int, seed: int):
    """What the phases after training look at (importance, pruning, formulas, samples, plots):
    the same on every rank. One process: ``data`` itself. Several: the whole test and
    validation splits and all training rows, or a random ``max_train_rows`` of them (the same
    subset on every rank), gathered from the shards."""
    if not group.active and torch.is_tensor(data.x_train):
        return data
    shard = group.shard(len(data.x_train))
    idx = torch.arange(shard.total)
    if shard.total > max_train_rows:
        generator = torch.Generator().manual_seed(seed + 3)
        idx = torch.randperm(shard.total, generator=generator)[:max_train_rows]
    x_train, y_train = gather_rows(group, shard, (data.x_train, data.y_train), idx)
    x_test, y_test = gather_rows(group, group.shard(len(data.x_test)), (data.x_test, data.y_test))
    x_val = y_val = None
    if data.x_val is not None:
        val_shard = group.shard(len(data.x_val))
        x_val, y_val = gather_rows(group, val_shard, (data.x_val, data.y_val))
    return replace(
        data,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        x_val=x_val,
        y_val=y_val,
    )


@torch.no_grad()
def split_rmse(group: Group, model, x, y, chunk: int = 1 << 16) -> float:
    """The model's RMSE over a whole split (tensors or data_store.MappedRows, read ``chunk``
    rows at a time), all ranks' rows together."""
    count = group.shard(len(x)).total
    total = torch.zeros((), dtype=torch.float64)
    for lo in range(0, len(x), chunk):
        xb, yb = read_rows(x, lo, lo + chunk), read_rows(y, lo, lo + chunk)
        total += squared_error(model(xb), yb, count).double().cpu()
    return float(group.sum_(total)) ** 0.5


class SilentRunFolder:
    """The run folder of ranks other than 0: every write and log line goes nowhere."""

    path = None

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class StopRequests:
    """While inside (several ranks only): Ctrl-C (SIGINT), SIGTERM and SIGHUP set ``requested``
    instead of interrupting this rank wherever it is. Training sums the flags over the ranks
    every step, so every rank stops after the same step and the run folder can still be
    completed (a rank stopping on its own would leave the others in a collective)."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self, active: bool):
        self.active, self.requested, self.saved = active, False, {}

    def __enter__(self) -> "StopRequests":
        if self.active and threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                number = getattr(signal, name)
                self.saved[number] = signal.signal(number, self.request)
        return self

    def request(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        for number, handler in self.saved.items():
            signal.signal(number, handler)
        self.saved = {}
