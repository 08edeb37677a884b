"""A training step of a layer feeding multiplication nodes against the plain layer with the same
number of subnodes (the layer is the same; the nodes add the products and their backward).

    .venv/bin/python benchmarks/bench_mult_nodes.py [--repeats 7] [--steps 5]

Shapes: (in, subnodes, batch, grid); the multiplication level has all subnodes in arity-2 nodes
(the most products a layer can feed). Each repeat times both variants one after the other
(interleaved), so machine drift hits both alike; the table gives the median ms per step and
the median ratio with its range over the repeats. Float32, the fused CPU kernels, torch at one
thread as in training (runtime.kernel_threads).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from adaptive_kan_layer import AdaptiveKANLayer  # noqa: E402
from nodes import Level, combine  # noqa: E402
from runtime import kernel_threads  # noqa: E402

SHAPES = [(8, 32, 4096, 10), (64, 64, 4096, 10), (16, 128, 1024, 20)]


def step(layer, opt, x, y, level) -> float:
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    out = layer(x)
    out = combine(level, out) if level is not None else out
    torch.mean((out - y) ** 2).backward()
    opt.step()
    return time.perf_counter() - start


def time_shape(shape, repeats: int, steps: int):
    n_in, n_sub, batch, grid = shape
    torch.manual_seed(0)
    layer = AdaptiveKANLayer(n_in, n_sub, grid_size=grid)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    x = torch.rand(batch, n_in) * 2 - 1
    level = Level(0, (2,) * (n_sub // 2))
    y_plain, y_mult = torch.randn(batch, n_sub), torch.randn(batch, n_sub // 2)
    for _ in range(2):  # warm-up (kernel compilation)
        step(layer, opt, x, y_plain, None), step(layer, opt, x, y_mult, level)
    plain, mult = [], []
    for _ in range(repeats):
        plain.append(statistics.median(step(layer, opt, x, y_plain, None) for _ in range(steps)))
        mult.append(statistics.median(step(layer, opt, x, y_mult, level) for _ in range(steps)))
    ratios = sorted(m / p for m, p in zip(mult, plain))
    return statistics.median(plain), statistics.median(mult), ratios


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    print("| layer (in → subnodes), batch, G | plain ms | with products ms | ratio (range) |")
    print("|---|---|---|---|")
    with kernel_threads(torch.device("cpu")):
        for shape in SHAPES:
            plain, mult, ratios = time_shape(shape, args.repeats, args.steps)
            n_in, n_sub, batch, grid = shape
            print(
                f"| {n_in} → {n_sub} ({n_sub // 2} × nodes), {batch}, {grid} | {plain * 1e3:.2f} "
                f"| {mult * 1e3:.2f} | {statistics.median(ratios):.2f} "
                f"({ratios[0]:.2f}–{ratios[-1]:.2f}) |"
            )


if __name__ == "__main__":
    main()
