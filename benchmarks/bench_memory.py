"""The memory estimate of memory_estimate.py against the peak RSS of real training runs.

    ./run_benchmarks.sh memory [--only 0 2] [--plots]

Each configuration trains in a fresh process (the whole CLI run: data, training, attribution,
run folder; plots only with --plots): the process computes the estimate at the point where the
command line checks it, runs `pykan_mit.main`, then reads its own peak resident set
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). Prints one markdown row per configuration:
estimate, measured peak, their ratio (the README's table).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONFIGS = [  # (what it stresses, --set keys)
    ("small net, demo-sized data", {"layer_dims": [2, 5, 1], "dataset_size": 10000}),
    (
        "many points, full batch",
        {"layer_dims": [2, 4, 8, 4, 1], "dataset_size": 1000000, "test_size": 100000},
    ),
    (
        "wide layers, fine grid",
        {"layer_dims": [4, 64, 64, 1], "grid_size": 40, "dataset_size": 5000},
    ),
]
COMMON = {"num_steps": 30, "update_strategy": "none", "log_interval": 1000, "progress_bar": False}

CHILD = """
import json, resource, sys
sys.path.insert(0, {root!r})
import config, memory_estimate, pykan_mit
argv = json.loads(sys.argv[1])
cfg = config.load_config(pykan_mit.default_config_path(), argv[3::2])
need = memory_estimate.estimate(cfg)
code = pykan_mit.main(argv)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"code": code, "estimate": need.total, "parts": need.parts, "peak": peak}}))
"""


def measure(keys: dict, plots: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--dir", str(Path(tmp) / "run")]
        for key, value in {**COMMON, "plots": plots, **keys}.items():
            argv += ["--set", f"{key}={json.dumps(value)}"]
        done = subprocess.run(
            [sys.executable, "-c", CHILD.format(root=str(ROOT)), json.dumps(argv)],
            capture_output=True,
            text=True,
            env={**os.environ, "MPLBACKEND": "Agg"},
        )
    if done.returncode != 0:
        raise SystemExit(f"run failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, nargs="*", help="indices of CONFIGS to run")
    parser.add_argument("--plots", action="store_true", help="draw the plots too")
    args = parser.parse_args(argv)
    chosen = args.only if args.only is not None else range(len(CONFIGS))
    print("| configuration | keys | estimate (MB) | peak RSS (MB) | estimate / peak |")
    print("|---|---|---|---|---|")
    for index in chosen:
        name, keys = CONFIGS[index]
        result = measure(keys, args.plots)
        est, peak = result["estimate"] / 1e6, result["peak"] / 1e6
        shown = ", ".join(f"{k} {json.dumps(v)}" for k, v in keys.items())
        print(f"| {name} | {shown} | {est:.0f} | {peak:.0f} | {est / peak:.2f} |", flush=True)
        parts = ", ".join(f"{k} {v / 1e6:.0f}" for k, v in result["parts"].items())
        print(f"<!-- parts (MB): {parts} -->", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
