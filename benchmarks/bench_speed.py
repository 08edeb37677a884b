"""Median time of one training step (forward + backward + Adam, float32) per network shape.

    ./run_benchmarks.sh speed [--repeats 5] [--steps 5] [--threads 2] [--only 0 3] [--no-memory]

Implementations timed side by side, interleaved (each repeat runs every implementation once, so
machine drift hits all alike):
- ``ours``: pykan_mit as used for training: the fused CPU kernels (numba, on all cores); torch
  itself runs single-threaded then, as in the training pipeline;
- ``ours-loop``: the same as ``ours`` in a user's own loop: torch left at ``--threads`` (its
  default in a notebook) beside the kernels' threads;
- ``ours-torch``: the same layers through their torch-only path (the one CUDA uses);
- the peers from benchmarks/requirements.txt, each with its own defaults, when importable:
  inkan (``inkan.KANNetwork``, its basis under torch.compile), flashkan (``flashkan.KANNetwork``),
  efficient-kan (``efficient_kan.KAN``) and pykan (``kan.KAN``).
Every torch-based implementation runs with ``--threads`` torch threads (default: all cores).

Peak memory per step (Linux): each implementation and shape runs again in a fresh process; after
a warm-up step the kernel's peak-RSS counter is reset, and the figure is how far three steps
raise the peak above the resident set before them (activations saved for backward, scratch,
gradients: what a step needs beyond the model, the data and the optimizer state).

Prints a markdown table of median ms per step, the ratios ours / peer (and ours-loop / inkan),
the memory table, and the paper recipe end to end (benchmarks/recipe_timing.py, ``--no-recipe``
skips it).
"""

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recipe_timing import recipe_table  # noqa: E402

from simple_kan import SimpleKAN  # noqa: E402

SHAPES = [  # (layer_dims, batch, grid size)
    ([2, 5, 1], 1000, 10),
    ([8, 32, 32, 1], 4096, 10),
    ([64, 64, 64, 1], 4096, 10),
    ([8, 32, 1], 4096, 10),
    ([8, 32, 1], 4096, 100),
    ([8, 32, 1], 4096, 400),
]


def ours(dims, grid):
    return SimpleKAN(dims, grid_size=grid)


def ours_torch(dims, grid):
    model = SimpleKAN(dims, grid_size=grid)
    for layer in model.layers:
        layer.contraction = "dense" if layer.grid_size <= 2 * layer.out_dim else "gather"
    return model


def inkan(dims, grid):
    from inkan import KANNetwork

    return KANNetwork(dims, grid_size=grid, spline_order=3)


def flashkan(dims, grid):
    from flashkan import KANNetwork

    return KANNetwork(dims, grid_size=grid, spline_order=3)


def efficient_kan(dims, grid):
    from efficient_kan import KAN

    return KAN(dims, grid_size=grid, spline_order=3)


def pykan(dims, grid):
    from kan import KAN

    return KAN(width=dims, grid=grid, k=3, auto_save=False, seed=0)


IMPLEMENTATIONS = {
    "ours": ours,
    "ours-loop": ours,
    "ours-torch": ours_torch,
    "inkan": inkan,
    "flashkan": flashkan,
    "efficient-kan": efficient_kan,
    "pykan": pykan,
}


def torch_threads(name: str, threads: int) -> int:
    """ours runs torch single-threaded beside its multi-threaded kernels (as the pipeline does)."""
    return 1 if name == "ours" else threads


def build(name: str, dims, grid: int, threads: int):
    """A fresh seeded model of one implementation, with that implementation's torch threads."""
    torch.set_num_threads(torch_threads(name, threads))
    torch.manual_seed(0)
    return IMPLEMENTATIONS[name](list(dims), grid)  # a copy: pykan rewrites the list it is given


def step_time(model, x, y, opt, steps: int) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def inputs(dims, batch):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, dims[0], generator=gen) * 2 - 1
    return x, torch.randn(batch, dims[-1], generator=gen)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_memory(name: str, shape: int, threads: int) -> float:
    """Run in this process (a fresh one): MiB by which three steps raise the peak resident set
    above the resident set before them (after a warm-up step; Linux's peak counter is reset)."""
    dims, batch, grid = SHAPES[shape]
    model = build(name, dims, grid, threads)
    x, y = inputs(dims, batch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    step_time(model, x, y, opt, 1)  # compile and allocate what is kept between steps
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = _status_kib("VmRSS")
    step_time(model, x, y, opt, 3)
    return max(0, _status_kib("VmHWM") - before) / 1024


def memory_table(names, shapes, threads) -> list[str]:
    lines = ["| shape | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    print("\n".join(lines), flush=True)
    for index in shapes:
        cells = []
        for name in names:
            cmd = [sys.executable, __file__, "--memory-probe", name, str(index)]
            cmd += ["--threads", str(threads)]
            run = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            cells.append(f"{json.loads(run.stdout)['mib']:.0f}" if run.returncode == 0 else "-")
        dims, batch, grid = SHAPES[index]
        lines.append(f"| {dims}, {batch}, {grid} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of peers")
    p.add_argument("--only", nargs="*", type=int, help="shape indices to run (0-based)")
    p.add_argument("--impl", nargs="*", help="implementations to run (default: all importable)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory table")
    p.add_argument("--memory-only", action="store_true", help="only the peak-memory table")
    p.add_argument("--no-recipe", action="store_true", help="skip the paper recipe's wall time")
    p.add_argument("--recipe-only", action="store_true", help="only the paper recipe's wall time")
    p.add_argument("--memory-probe", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_probe:
        name, shape = args.memory_probe
        print(json.dumps({"mib": peak_memory(name, int(shape), args.threads)}))
        return
    if args.recipe_only:
        recipe_table()
        return
    torch.manual_seed(0)
    names = []
    for name in args.impl or IMPLEMENTATIONS:
        try:
            IMPLEMENTATIONS[name]([2, 2, 1], 3)
            names.append(name)
        except Exception as exc:  # not installed or incompatible: reported, not fatal
            print(f"# {name}: skipped ({type(exc).__name__}: {str(exc)[:80]})")
    shapes = [i for i in range(len(SHAPES)) if not args.only or i in args.only]
    print(f"# torch {torch.__version__}, {os.cpu_count()} cores, peers at {args.threads} threads")
    if args.memory_only:
        print("\npeak memory per step, MiB (rise of the peak RSS during 3 steps)\n")
        memory_table(names, shapes, args.threads)
        return
    print("\nmedian ms per training step (forward + backward + Adam)\n")
    peers = [n for n in names if n != "ours"]
    print("| shape (layer_dims, batch, G) | " + " | ".join(names) + " | ours / peer |")
    print("|---" * (len(names) + 2) + "|")
    for index in shapes:
        dims, batch, grid = SHAPES[index]
        x, y = inputs(dims, batch)
        runs = {}
        for name in names:
            model = build(name, dims, grid, args.threads)
            runs[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-3), [])
            step_time(model, x, y, runs[name][1], 2)  # warm-up (compilation, caches)
        for _ in range(args.repeats):
            for name in names:
                torch.set_num_threads(torch_threads(name, args.threads))
                model, opt, times = runs[name]
                times.append(step_time(model, x, y, opt, args.steps))
        med = {name: 1000 * statistics.median(runs[name][2]) for name in names}
        ratios = ", ".join(f"{med['ours'] / med[n]:.2f} vs {n}" for n in peers if med[n] > 0)
        if "ours-loop" in med and med.get("inkan", 0) > 0:
            spread = [a / b for a, b in zip(runs["ours-loop"][2], runs["inkan"][2])]
            ratios += f"; ours-loop / inkan {med['ours-loop'] / med['inkan']:.2f}"
            ratios += f" (repeats {min(spread):.2f}-{max(spread):.2f})"
        cells = " | ".join(f"{med[n]:.1f}" for n in names)
        print(f"| {dims}, {batch}, {grid} | {cells} | {ratios} |", flush=True)
        del runs
    if not args.no_memory:
        print("\npeak memory per step, MiB (rise of the peak RSS during 3 steps)\n")
        memory_table(names, shapes, args.threads)
    if not args.no_recipe:
        print("\nthe KAN paper's recipe end to end, each run a fresh process\n")
        recipe_table()


if __name__ == "__main__":
    main()
