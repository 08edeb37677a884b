"""A data set larger than one wants in memory: training from a memory-mapped data store on 1 and
2 processes, peak resident memory and rows per second.

    .venv/bin/python benchmarks/bench_scale.py [--rows 5000000] [--steps 300] [--batch 4096]

Writes (once) a data store of ``--rows`` rows of y = exp(sin(pi x1) + x2^2) under
data/scale_<rows>/ (not committed; about 24 bytes a row), then trains a [2, 5, 1] KAN with
mini-batches from it, first in one process, then with ``torchrun --nproc_per_node=2``. Each run
is its own process tree under /usr/bin/time; peak RSS is the largest process's maximum resident
set (GNU time's "Maximum resident set size"). Rows/s: steps x batch over the training loop's
time, from the run's log. Prints one JSON line per run and a markdown table.
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from data_store import CHUNK_ROWS, VALUES_FILE  # noqa: E402


def make_store(rows: int) -> Path:
    folder = ROOT / "data" / f"scale_{rows}"
    if (folder / VALUES_FILE).is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / (VALUES_FILE + ".partial.npy")
    values = np.lib.format.open_memmap(partial, "w+", np.float64, (rows, 3))
    rng = np.random.default_rng(0)
    for lo in range(0, rows, 16 * CHUNK_ROWS):
        n = min(16 * CHUNK_ROWS, rows - lo)
        x = rng.uniform(-1, 1, (n, 2))
        values[lo : lo + n, :2] = x
        values[lo : lo + n, 2] = np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)
    values.flush()
    del values
    partial.rename(folder / VALUES_FILE)
    (folder / "columns.json").write_text('["x1", "x2", "y"]')
    return folder


def run(store: Path, nproc: int, steps: int, batch: int, out: Path) -> dict:
    sets = {
        "data_file": str(store),
        "target_function": None,
        "layer_dims": [2, 5, 1],
        "batch_size": batch,
        "num_steps": steps,
        "test_size": 10000,
        "log_interval": steps,
        "update_strategy": "none",
        "plots": False,
        "symbolic": False,
        "progress_bar": False,
    }
    args = [str(ROOT / "pykan_mit.py"), "--dir", str(out)]
    for key, value in sets.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    launch = [sys.executable]
    if nproc > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", *launch, *args], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"run failed ({nproc} processes):\n{done.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])
    log = (out / "run.log").read_text()
    train_s = float(re.findall(rf"train step {steps}/{steps} .*\(([\d.]+) s\)", log)[-1])
    return {
        "processes": nproc,
        "rows": int(re.search(r"(\d+) train", log)[1]),
        "steps": steps,
        "batch": batch,
        "train_s": train_s,
        "rows_per_s": round(steps * batch / train_s),
        "peak_rss_mib": round(rss_kb / 1024),
        "wall_s": round(wall, 1),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=5_000_000)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    args = p.parse_args(argv)
    store = make_store(args.rows)
    results = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for nproc in args.nproc:
        out = ROOT / "data" / f"bench_scale_{stamp}_{nproc}"
        results.append(run(store, nproc, args.steps, args.batch, out))
        print(json.dumps(results[-1]), flush=True)
    print("\n| processes | training rows | batch | rows/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['processes']} | {r['rows']} | {r['batch']} | {r['rows_per_s']} | "
            f"{r['peak_rss_mib']} |"
        )


if __name__ == "__main__":
    main()
