"""The KAN paper's function-fitting toys: test RMSE per grid size, next to pykan's numbers.

    ./run_benchmarks.sh toys [--only NAME ...] [--quick] [--out DIR]

Each toy (Liu et al., arXiv 2404.19756, sections 2.4 and 3.1) is an ordinary config,
``configs/paper_<name>.input``, and runs through the training command's own code path
(`pykan_mit.main`: config → data → model → train → run folder) with the paper's recipe: LBFGS
with a strong-Wolfe line search, 200 steps per grid, grid extension 3 → 5 → 10 → 20 → 50, cubic
splines, float64. The test RMSE of each grid size is the one at the last step before the next
extension (the returned model's for the last). pykan's reference numbers are the ones its 0.2.8
documentation prints (test RMSE per grid size) and, for the 2-D toy, the same recipe run with
pykan 0.2.8 on this project's 2-core machine. The paper itself shows these toys only as plots
(its figure 3.1), so the other toys have no printed reference.

Writes ``<out>/paper_toys.md`` (the table, also printed), ``<out>/paper_toys.pdf`` (test RMSE
against G on log-log axes with a G^-4 line, the cubic-spline scaling law of section 2.3) and
one run folder per toy under ``<out>/paper_toys_runs/``. ``--quick`` runs every toy with 20 steps
per grid and at most 300 training points: a smoke test of the machinery, not a result.
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pykan_mit  # noqa: E402

GRIDS = (3, 5, 10, 20, 50)
PYKAN_DOCS = "pykan 0.2.8 docs"
PYKAN_HERE = "pykan 0.2.8, here"


def toy(name, label, dims, references=None, note=""):
    """A toy: its config ``configs/paper_<name>.input`` and pykan's numbers as
    ``{source: ({grid size: test RMSE}, wall seconds or None)}``."""
    return {
        "name": name,
        "label": label,
        "dims": dims,
        "config": ROOT / "configs" / f"paper_{name}.input",
        "references": references or {},
        "note": note,
    }


TOYS = [
    toy("bessel", "J0(20x)", [1, 1]),
    toy(
        "exp_sin",
        "exp(sin(pi x) + y^2)",
        [2, 1, 1],
        {
            # docs "Example 1: Function fitting": grids 3, 10, 20, 50 (200 LBFGS steps each)
            PYKAN_DOCS: ({3: 1.53e-2, 10: 3.29e-4, 20: 4.04e-5, 50: 1.24e-5}, None),
            # the same recipe as ours, float32 (its float64 path did not train), 68 s wall
            PYKAN_HERE: ({3: 1.39e-2, 5: 7.2e-3, 10: 5.1e-4, 20: 6.05e-5, 50: 3.45e-5}, 68),
        },
    ),
    toy("product", "x y", [2, 2, 1]),
    toy("100d", "exp(mean_i sin^2(pi x_i / 2)), 100-D", [100, 1, 1]),
    toy("4d", "exp((sin(pi(x1^2+x2^2)) + sin(pi(x3^2+x4^2)))/2)", [4, 4, 2, 1]),
    toy(
        "4d_narrow",
        "the same 4-D function",
        [4, 2, 1, 1],
        # docs "Example 3: Deep formulas": 50 LBFGS steps per grid after a sparsity-regularised
        # pre-training and pruning
        {PYKAN_DOCS: ({3: 9.23e-3, 5: 3.25e-3, 10: 1.07e-3, 20: 3.75e-4, 50: 3.78e-5}, None)},
        note="8 starts of 40 steps (starts, start_steps; from one start most seeds stall in a "
        "local minimum whose hidden nodes mix all four inputs) and smoothness_weight 1e-4",
    ),
]
QUICK = ("num_steps=100", "fixed_update_interval=20", "grid_range_update_until=100")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [t["name"] for t in TOYS]
    p.add_argument("--only", nargs="+", choices=names, metavar="NAME", help=", ".join(names))
    p.add_argument("--quick", action="store_true", help="20 steps per grid, <= 300 points")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="results folder")
    return p.parse_args(argv)


def run_toy(spec: dict, runs: Path, overrides=()) -> dict:
    """Train one toy through the CLI; returns its test RMSE per grid size and wall time."""
    run_dir = runs / spec["name"]
    shutil.rmtree(run_dir, ignore_errors=True)
    args = ["--config", str(spec["config"]), "--dir", str(run_dir)]
    for item in ("plots=false", "progress_bar=false", *overrides):
        args += ["--set", item]
    start = time.perf_counter()
    code = pykan_mit.main(args)
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"{spec['name']}: training failed (exit code {code}), see {run_dir}")
    history = json.loads((run_dir / "history.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    cfg = json.loads((run_dir / "pykan_mit_config.json").read_text())
    rmse = {}
    grid = cfg["grid_size"]
    for event in history["events"]:
        if event["kind"] == "refine":  # the state before step `event["step"]` ends the phase
            rmse[grid] = history["test_rmse"][event["step"] - 1]
            grid = max(event["grid_sizes"])
    rmse[grid] = metrics["test_rmse"]
    return {
        "rmse": rmse,
        "train_rmse": metrics["train_rmse"],
        "wall_s": wall,
        "train_points": metrics["training_points"],
        "run_dir": str(run_dir),
    }


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.2e}"


def table(results: dict) -> str:
    head = "| toy | KAN | train points | " + " | ".join(f"G={g}" for g in GRIDS) + " | wall s |"
    rows = [head, "|" + "---|" * (len(GRIDS) + 4)]
    for spec in TOYS:
        if spec["name"] not in results:
            continue
        res = results[spec["name"]]
        cells = [_fmt(res["rmse"].get(g)) for g in GRIDS]
        rows.append(
            f"| {spec['label']} | {spec['dims']} | {res['train_points']} | "
            + " | ".join(cells)
            + f" | {res['wall_s']:.0f} |"
        )
        for source, (ref, wall) in spec["references"].items():
            cells = [_fmt(ref.get(g)) for g in GRIDS]
            wall = "" if wall is None else f"{wall:.0f}"
            rows.append(f"| ↳ {source} | | | " + " | ".join(cells) + f" | {wall} |")
    return "\n".join(rows)


def notes(results: dict, quick: bool) -> str:
    lines = [
        "Test RMSE (1000 test points) at the end of each grid size; LBFGS (strong Wolfe), 200 "
        "steps per grid, float64; wall time of the whole run in one process "
        f"(NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'all cores')}). pykan's "
        "rows: its documentation, and the same recipe run with pykan 0.2.8 on 2 cores of this "
        "machine (float32).",
    ]
    if quick:
        lines.append("**--quick: 20 steps per grid and at most 300 points; not a result.**")
    lines += [
        f"- {s['label']} {s['dims']}: {s['note']}"
        for s in TOYS
        if s["name"] in results and s["note"]
    ]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(10, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    shown = [s for s in TOYS if s["name"] in results]
    for i, spec in enumerate(shown):
        color = colors[i % len(colors)]
        rmse = results[spec["name"]]["rmse"]
        grids = sorted(rmse)
        label = f"{spec['label']} {spec['dims']}"
        ax.loglog(grids, [rmse[g] for g in grids], "o-", color=color, label=label)
        for source, (ref, _) in spec["references"].items():
            g = sorted(ref)
            style = "s--" if source == PYKAN_DOCS else "^:"
            ax.loglog(g, [ref[k] for k in g], style, color=color, mfc="none", label=f"  {source}")
    if shown:  # the scaling law, through the 2-D toy's (or else the first toy's) finest grid
        anchor = next((s for s in shown if s["name"] == "exp_sin"), shown[0])
        rmse = results[anchor["name"]]["rmse"]
        c = rmse[max(rmse)] * max(rmse) ** 4
        g = [GRIDS[0], GRIDS[-1]]
        ax.loglog(
            g, [c * k**-4 for k in g], "k-", lw=0.8, label=r"$\propto G^{-4}$ (cubic splines)"
        )
    ax.set_xticks(GRIDS, [str(g) for g in GRIDS])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("grid size G")
    ax.set_ylabel("test RMSE")
    ax.set_title("KAN paper toys: test RMSE against grid size (ours filled, pykan open)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.pdf")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    runs = out / "paper_toys_runs"
    runs.mkdir(parents=True, exist_ok=True)
    results = {}
    for spec in TOYS:
        if args.only and spec["name"] not in args.only:
            continue
        overrides = QUICK if args.quick else ()
        if args.quick:
            points = json.loads(spec["config"].read_text()).get("dataset_size", 1000)
            overrides += (f"dataset_size={min(points, 300)}",)
        print(f"== {spec['name']}: {spec['label']} with {spec['dims']}", flush=True)
        results[spec["name"]] = run_toy(spec, runs, overrides)
    text = table(results) + "\n\n" + notes(results, args.quick) + "\n"
    (out / "paper_toys.md").write_text("# KAN paper toys\n\n" + text, encoding="utf-8")
    plot(results, out / "paper_toys.pdf")
    print("\n" + text)
    print(f"written: {out / 'paper_toys.md'}, {out / 'paper_toys.pdf'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
