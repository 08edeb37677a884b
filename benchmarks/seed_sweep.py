"""Do the paper toys' minimal networks depend on a lucky seed? One toy for many seeds, and the
2-D recipe with the grid-range keys left at their defaults.

    ./run_benchmarks.sh seeds [--toy NAME] [--seeds S ...] [--set KEY=VALUE ...] [--out DIR]

Each seed trains ``configs/paper_<toy>.input`` (default ``4d_narrow``, the 4-D toy with the
minimal ``[4, 2, 1, 1]``) through the training command's own code path with ``seed=S`` (and the
``--set`` keys), like ``./run_benchmarks.sh toys``. Then ``configs/paper_exp_sin.input`` runs
once without its ``grid_range_update_*`` and ``grid_eps`` keys: what a user who sets only the
recipe (LBFGS, grids 3 → 50, 200 steps per grid, uniform knots, float64) gets from the
defaults. Writes ``<out>/seed_sweep.md`` (the table, also printed) and the run folders under
``<out>/seed_sweep_runs/``.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from paper_toys import TOYS, run_toy  # noqa: E402

GRID_RANGE_KEYS = ("grid_range_update_every", "grid_range_update_until", "grid_eps")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [t["name"] for t in TOYS]
    p.add_argument("--toy", default="4d_narrow", choices=names, help="default: 4d_narrow")
    p.add_argument("--seeds", nargs="+", type=int, default=list(range(10)), help="default 0-9")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config key for every seed's run (repeatable)")  # fmt: skip
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="results folder")
    return p.parse_args(argv)


def _start(run_dir: str) -> str:
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    return str(metrics.get("start_seed", "–"))


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    runs = out / "seed_sweep_runs"
    runs.mkdir(parents=True, exist_ok=True)
    spec = next(t for t in TOYS if t["name"] == args.toy)
    rows = ["| run | start kept | train RMSE | test RMSE | wall s |", "|---|---|---|---|---|"]

    def row(label, res):
        rows.append(f"| {label} | {_start(res['run_dir'])} | {res['train_rmse']:.2e} | "
                    f"{res['rmse'][max(res['rmse'])]:.2e} | {res['wall_s']:.0f} |")  # fmt: skip
        print(rows[-1], flush=True)

    for seed in args.seeds:
        one = {**spec, "name": f"{spec['name']}_seed{seed}"}
        row(
            f"{spec['label']} {spec['dims']}, seed {seed}",
            run_toy(one, runs, [*args.set, f"seed={seed}"]),
        )
    recipe = json.loads((ROOT / "configs" / "paper_exp_sin.input").read_text())
    for key in GRID_RANGE_KEYS:
        recipe.pop(key, None)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "recipe_defaults.input"
        config.write_text(json.dumps(recipe, indent=2), encoding="utf-8")
        exp_sin = next(t for t in TOYS if t["name"] == "exp_sin")
        res = run_toy({**exp_sin, "name": "exp_sin_recipe_defaults", "config": config}, runs)
        row("exp(sin(pi x) + y^2) [2, 1, 1], recipe keys only (grid-range keys at defaults)", res)
    text = "\n".join(rows)
    (out / "seed_sweep.md").write_text(
        f"{text}\n\nSettings: configs/paper_{spec['name']}.input with seed=S"
        + "".join(f", {s}" for s in args.set) + "\n", encoding="utf-8")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
