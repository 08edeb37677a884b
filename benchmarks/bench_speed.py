"""Median time of one training step (forward + backward + Adam, float32) per network shape.

    .venv/bin/python benchmarks/bench_speed.py [--repeats 5] [--steps 5] [--threads 2]

Implementations timed side by side, interleaved (each repeat runs every implementation once, so
machine drift hits all alike):
- ``ours``: pykan_mit as used for training (fused CPU kernels when numba is installed; the
  pipeline then runs torch itself single-threaded, as here);
- ``ours-torch``: the same layer through its torch-only path (the one CUDA uses);
- peers, when importable (``pip install -r benchmarks/requirements.txt``): efficient-kan
  (``efficient_kan.KAN``) and pykan (``kan.KAN``). Others can be added to ``PEERS``.
Prints a markdown table of median ms per step and the ratio ours / peer.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simple_kan import SimpleKAN  # noqa: E402

SHAPES = [  # (layer_dims, batch, grid size)
    ([2, 5, 1], 1000, 10),
    ([8, 32, 32, 1], 4096, 10),
    ([64, 64, 64, 1], 4096, 10),
    ([8, 32, 1], 4096, 100),
    ([8, 32, 1], 4096, 400),
]


def ours(dims, grid, torch_only=False):
    model = SimpleKAN(dims, grid_size=grid)
    if torch_only:
        for layer in model.layers:
            layer.contraction = "dense" if layer.grid_size <= 2 * layer.out_dim else "gather"
    return model


def efficient_kan(dims, grid):
    from efficient_kan import KAN

    return KAN(dims, grid_size=grid, spline_order=3)


def pykan(dims, grid):
    from kan import KAN

    return KAN(width=dims, grid=grid, k=3, auto_save=False, seed=0)


PEERS = {"efficient-kan": efficient_kan, "pykan": pykan}


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (numba uses all cores)")
    p.add_argument("--only", nargs="*", help="shape indices to run (0-based)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    impls = {"ours": ours, "ours-torch": lambda d, g: ours(d, g, torch_only=True)}
    for name, build in PEERS.items():
        try:
            build([2, 2, 1], 3)
            impls[name] = build
        except Exception as exc:  # not installed or incompatible: reported, not fatal
            print(f"# {name}: skipped ({type(exc).__name__}: {str(exc)[:80]})")
    names = list(impls)
    print("| shape (layer_dims, batch, G) | " + " | ".join(names) + " | ours / peer |")
    print("|---" * (len(names) + 2) + "|")
    for index, (dims, batch, grid) in enumerate(SHAPES):
        if args.only and str(index) not in args.only:
            continue
        x = torch.rand(batch, dims[0]) * 2 - 1
        y = torch.randn(batch, dims[-1])
        runs = {}
        for name in names:
            model = impls[name](dims, grid)
            runs[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-3), [])
            step_time(model, x, y, runs[name][1], 2)  # warm-up (kernel compilation, caches)
        for _ in range(args.repeats):
            for name in names:
                model, opt, times = runs[name]
                times.append(step_time(model, x, y, opt, args.steps))
        med = {name: 1000 * statistics.median(runs[name][2]) for name in names}
        ratios = ", ".join(
            f"{med['ours'] / med[n]:.2f} vs {n}" for n in names if n != "ours" and med[n] > 0
        )
        cells = " | ".join(f"{med[n]:.1f}" for n in names)
        print(f"| {dims}, {batch}, {grid} | {cells} | {ratios} |", flush=True)


if __name__ == "__main__":
    main()
