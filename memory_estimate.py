"""How much memory a training configuration needs, checked before any work starts.

`estimate` adds up what a run holds at its peak (bytes; b = 4 for float32, 8 for float64):

- **parameters and grids**: per layer fed by D nodes into O subnodes (multiplication nodes
  count their factors) on a grid of G intervals, degree k: ``coef`` D·(G+k)·O, ``base_weight``
  and ``spline_scale`` 2·D·O (the parameters), ``mask`` D·O, knots D·(G+2k+1), the span
  polynomials D·G·(k+1)² and the span lookup tables; G is the largest grid the run can reach
  (`largest_grid`);
- **optimizer**: Adam keeps a gradient and two moments (3 per parameter); LBFGS a gradient, its
  10 curvature pairs and a few directions (24 per parameter);
- **data**: the points sampled and evaluated in float64, their copies in the run's dtype, the
  per-step RMSE history, and a few float64 columns the target expression computes through;
- **training step**: per layer the saved input, base activation and output, their gradients,
  and the span-polynomial weights and their gradient (2·D·G·(k+1)·O), for a batch
  (``batch_size`` or every training point); with ``use_regularization`` also the edge values
  (N, O, D) and the active coefficients (N, D, k+1, O) kept for the backward pass; plus the
  test-set evaluation of every step;
- **grid update**: a least-squares refit of one layer on up to 20 000 samples (the spline
  values there, `_spline_values`, the basis and the fitted values in float64);
- **attribution**: the edge values (N, O, D) of every layer over the training set (input
  importance after training, pruning), plus one layer's temporaries (`_spline_values`: the
  local basis of every point, or the gather of its active coefficients);
- the process itself: its resident memory when the check runs (interpreter, torch) and the
  libraries loaded later (CPU kernels, plotting: `LATER_LIBRARIES`, measured).

The peak is the process, the parameters and the data plus the largest of (optimizer + step,
optimizer + grid update, attribution): the phases follow one another. `check` compares it with
the memory available (/proc/meminfo MemAvailable, or the cgroup's limit minus its usage when
that is lower) and refuses with one line: the total, the largest parts, what is available, which
keys to change. benchmarks/bench_memory.py compares the estimate with the measured peak RSS.

On an accelerator (device cuda) everything but the process lives in the device's memory: that
part is compared with the device's free memory (`device_memory`: ``torch.cuda.mem_get_info``,
the same for any torch device module that has it), and the process and the data (read or
generated on the host first) with the host's.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch

from errors import ConfigError
from nodes import parse_levels

GRID_SAMPLES = 20000  # training.MAX_GRID_SAMPLES: samples of a grid update or refinement
LATER_LIBRARIES = 150 * 2**20  # measured: numba kernels +75 MB, matplotlib and plots +65 MB
LOOKUP_BUCKETS = 4  # layer_kernels.LOOKUP_BUCKETS
PROCESS = "process and libraries"  # the part of an estimate in host memory whatever the device
KEYS = {
    "parameters and grids": "layer_dims, grid_size or max_grid_size",
    "optimizer": "layer_dims, grid_size or max_grid_size (or optimizer adam)",
    "data": "dataset_size or test_size",
    "training step": "batch_size or dataset_size (or layer_dims)",
    "grid update": "layer_dims or max_grid_size",
    "attribution": "dataset_size or layer_dims",
}


@dataclass
class Estimate:
    """``parts``: bytes per item (the phases' parts as they add up at the peak); ``total``."""

    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def largest(self) -> str:
        return max((k for k in self.parts if k in KEYS), key=self.parts.get)


def largest_grid(cfg: dict) -> int:
    """The largest grid the run can reach: refinement adds knots up to max_grid_size."""
    grid, top = cfg["grid_size"], cfg["max_grid_size"]
    if cfg["update_strategy"] == "none":
        return grid
    if cfg.get("grid_schedule"):
        return max(grid, min(top, max(cfg["grid_schedule"])))
    every = cfg["fixed_update_interval"]
    if cfg["update_strategy"] == "adaptive":
        every = cfg["adaptive_patience"]
    events = cfg["num_steps"] // max(every, 1)
    return max(grid, min(top, grid + cfg["adaptive_k"] * events))


def _layers(cfg: dict) -> list[tuple[int, int]]:
    levels = parse_levels(cfg["layer_dims"], cfg["mult_arity"])
    return [(a.n_nodes, b.n_sub) for a, b in zip(levels[:-1], levels[1:])]


def parameter_count(cfg: dict) -> int:
    """Trainable parameters at the largest grid the run reaches."""
    return _model_parts(cfg, _layers(cfg), 4)[1]


def _model_parts(cfg, layers, b: int) -> tuple[int, int]:
    """(parameters and grids, number of parameters)."""
    G, k = largest_grid(cfg), cfg["spline_degree"]
    params = sum(D * (G + k) * O + 2 * D * O for D, O in layers)
    masks = sum(D * O for D, O in layers)
    tables = masks + sum(D * (G + 2 * k + 1) + D * G * (k + 1) ** 2 + 3 * D * G for D, _ in layers)
    lookup = sum(D * LOOKUP_BUCKETS * G for D, _ in layers) * 8
    return (params + tables) * b + lookup, params


def _step(cfg, layers, b: int, n_train: int, n_test: int) -> int:
    G, k = largest_grid(cfg), cfg["spline_degree"]
    n = min(cfg["batch_size"] or n_train, n_train)
    saved = sum((3 * n * D + 2 * n * O + 2 * D * G * (k + 1) * O) for D, O in layers)
    saved *= b
    if cfg["use_regularization"]:  # edge values through autograd: kept for the backward pass
        saved += sum(_spline_values(n, D, O, k, b) + 4 * n * O * D * b for D, O in layers)
    test = max(n_test * (D + O) for D, O in layers) * 2 * b
    return saved + test


def _spline_values(n: int, D: int, O: int, k: int, b: int) -> int:
    """What `AdaptiveKANLayer.spline_values` on n points allocates at its peak: the local basis
    (`spline.local_basis`: two int64 index arrays and the knots around each span, (n, D, 2k+2),
    and about ten (n, D, k+1) temporaries of de Boor's triangle), or the gather of the active
    coefficients (n, D, k+1, O) with its int64 index and the (n, D, O) result."""
    local = n * D * (16 * (2 * k + 2) + b * (2 * k + 2) + 10 * b * (k + 1))
    gather = n * D * (k + 1) * (O * b + 8) + n * D * O * b
    return max(local, gather) + n * D * (k + 1) * b


def _grid_update(cfg, layers, b: int, n_train: int) -> int:
    if cfg["update_strategy"] == "none" and not cfg["grid_range_update_every"]:
        return 0
    G, k = largest_grid(cfg), cfg["spline_degree"]
    worst = 0
    for D, O in layers:
        p = min(n_train, GRID_SAMPLES) + 4 * (G + 2 * k + 1)
        solve = (p * D * O + p * D * (G + k)) * 8 * 2  # values and basis in float64, permuted
        worst = max(worst, _spline_values(p, D, O, k, b) + p * D * O * b + solve)
    return worst


def _attribution(cfg, layers, b: int, n_train: int) -> int:
    """Edge values (N, O, D) and subnode sums kept for every layer, plus one layer's
    `edge_activations` temporaries (spline values, then four (N, O, D) products)."""
    k, n = cfg["spline_degree"], n_train
    kept = sum(n * O * D * b + n * O * b for D, O in layers)
    temporaries = max(_spline_values(n, D, O, k, b) + 4 * n * O * D * b for D, O in layers)
    return kept + temporaries


def estimate(cfg: dict, n_train: int | None = None, n_test: int | None = None) -> Estimate:
    """The memory a resolved config needs at its peak; ``n_train`` / ``n_test`` default to the
    config's dataset_size / test_size (give the real counts for a data file)."""
    b = 8 if cfg["dtype"] == "float64" else 4
    n_train = cfg["dataset_size"] if n_train is None else n_train
    n_test = cfg["test_size"] if n_test is None else n_test
    layers = _layers(cfg)
    n_in, n_out = layers[0][0], layers[-1][1]
    model, n_params = _model_parts(cfg, layers, b)
    per_param = 24 if cfg["optimizer"] == "lbfgs" else 3
    optimizer = per_param * n_params * b
    points = n_train + n_test
    data = points * (n_in + n_out) * (8 + b) + 3 * 8 * max(n_train, n_test)
    data += 3 * cfg["num_steps"] * b
    phases = {
        "training step": optimizer + _step(cfg, layers, b, n_train, n_test),
        "grid update": optimizer + _grid_update(cfg, layers, b, n_train),
        "attribution": _attribution(cfg, layers, b, n_train),
    }
    peak = max(phases, key=phases.get)
    parts = {"parameters and grids": model, "data": data}
    if peak == "attribution":
        parts["attribution"] = phases[peak]
    else:
        parts["optimizer"] = optimizer
        parts[peak] = phases[peak] - optimizer
    parts[PROCESS] = resident_memory() + LATER_LIBRARIES
    return Estimate(parts)


def resident_memory() -> int:
    """This process's resident memory now (bytes; 0 where /proc is not there)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cgroup_headroom() -> int | None:
    """The cgroup's memory limit minus its usage (v2, else v1); None without a limit."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 2**60:
            return None
        return max(int(limit) - usage, 0)
    return None


def available_memory() -> tuple[int, str]:
    """(bytes this process may still take, where that figure comes from), its own resident
    memory included; (0, "") when nothing says."""
    try:
        info = Path("/proc/meminfo").read_text()
        free = next(int(ln.split()[1]) * 1024 for ln in info.splitlines() if "MemAvailable" in ln)
        source = "MemAvailable"
    except (OSError, StopIteration, ValueError):
        free, source = None, ""
    headroom = _cgroup_headroom()
    if headroom is not None and (free is None or headroom < free):
        free, source = headroom, "the cgroup memory limit"
    if free is None:
        return 0, ""
    return free + resident_memory(), source


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def device_memory(device) -> tuple[int, str]:
    """(free bytes on the accelerator ``device``, where that figure comes from), from its torch
    module's ``mem_get_info`` (torch.cuda); (0, "") when it has none or cannot say."""
    device = torch.device(device)
    query = getattr(getattr(torch, device.type, None), "mem_get_info", None)
    if query is None:
        return 0, ""
    try:
        free, _total = query(device)
    except (RuntimeError, AssertionError, ValueError):  # no such device, no driver
        return 0, ""
    return int(free), f"free on {device}, torch.{device.type}.mem_get_info"


def check(
    cfg: dict,
    n_train: int | None = None,
    n_test: int | None = None,
    available: tuple[int, str] | None = None,
    device="cpu",
) -> Estimate:
    """The estimate, or a `ConfigError` (one line) when it exceeds the memory available (a
    machine that does not say what it has is not checked). ``available``: the host's (default
    `available_memory`); on an accelerator ``device`` also its free memory (`device_memory`)."""
    need = estimate(cfg, n_train, n_test)
    host = available_memory() if available is None else available
    if torch.device(device).type == "cpu":
        _refuse_over(cfg, need, host, "")
        return need
    _refuse_over(cfg, Estimate({k: need.parts[k] for k in ("data", PROCESS)}), host, "")
    on_device = Estimate({k: v for k, v in need.parts.items() if k != PROCESS})
    _refuse_over(cfg, on_device, device_memory(device), f" on {torch.device(device)}")
    return need


def _refuse_over(cfg: dict, need: Estimate, available: tuple[int, str], where: str) -> None:
    free, source = available
    if not free or need.total <= free:
        return
    shown = sorted(need.parts.items(), key=lambda kv: -kv[1])[:3]
    parts = ", ".join(f"{name} {human(size)}" for name, size in shown)
    grid = largest_grid(cfg)
    layers = f"layer_dims {cfg['layer_dims']} at grid {grid}"
    raise ConfigError(
        f"not enough memory{where}: this configuration needs about {human(need.total)}{where} "
        f"({layers}, {cfg['dtype']}: {parts}), but {human(free)} is available ({source}); "
        f"lower {KEYS[need.largest()]}"
    )
