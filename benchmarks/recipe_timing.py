"""The KAN paper's recipe end to end, wall seconds: `configs/paper_exp_sin.input` (exp(sin(pi x)
+ y^2), [2, 1, 1], 1000 train / 1000 test points, LBFGS 200 steps per grid, grids 3 → 5 → 10 →
20 → 50) through the training command, and the same recipe with pykan when it is installed.

Each run is a fresh process. Ours runs twice: the first may compile the fused kernels (numba
caches them on disk, so it does only when the cache is cold or stale), the second shows the
run without compilation. pykan runs its own `KAN.fit` (LBFGS) and `refine` with its defaults
(float32).
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from run_folder import METRICS_FILE  # noqa: E402

CONFIG = ROOT / "configs" / "paper_exp_sin.input"
GRIDS = (3, 5, 10, 20, 50)


def ours_run() -> dict:
    """One run of the config through pykan_mit.py in a fresh process: wall s and test RMSE."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [sys.executable, str(ROOT / "pykan_mit.py"), "--config", str(CONFIG)]
        cmd += ["--dir", str(run_dir), "--set", "plots=false", "--set", "progress_bar=false"]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            return {"wall_s": wall, "error": done.stderr.strip().splitlines()[-1:]}
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
        return {"wall_s": wall, "test_rmse": metrics["test_rmse"]}


PYKAN_SCRIPT = """
import json, time, torch
from kan import KAN
torch.manual_seed(0)
f = lambda x: torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2)
xs = [torch.rand(1000, 2) * 2 - 1 for _ in range(2)]
data = {"train_input": xs[0], "train_label": f(xs[0]), "test_input": xs[1], "test_label": f(xs[1])}
start = time.perf_counter()
model = KAN(width=[2, 1, 1], grid=3, k=3, seed=0, auto_save=False)
for i, grid in enumerate(%r):
    if i:
        model = model.refine(grid)
    model.fit(data, opt="LBFGS", steps=200, log=10**9)
rmse = float(torch.sqrt(torch.mean((model(data["test_input"]) - data["test_label"]) ** 2)))
print(json.dumps({"train_s": time.perf_counter() - start, "test_rmse": rmse}))
"""


def pykan_run() -> dict | None:
    """The recipe with pykan in a fresh process, or None when pykan is not importable."""
    probe = subprocess.run([sys.executable, "-c", "import kan"], capture_output=True)
    if probe.returncode != 0:
        return None
    start = time.perf_counter()
    cmd = [sys.executable, "-c", PYKAN_SCRIPT % (GRIDS,)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return {"wall_s": wall, "error": done.stderr.strip().splitlines()[-1:]}
    return {"wall_s": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def _row(name: str, run: dict) -> str:
    rmse = f"{run['test_rmse']:.2e}" if "test_rmse" in run else f"failed: {run.get('error')}"
    return f"| {name} | {run['wall_s']:.1f} | {rmse} |"


def recipe_table() -> list[str]:
    """Rows of wall seconds and final test RMSE (G = 50), printed as they finish."""
    lines = ["| paper recipe (paper_exp_sin) | wall s | test RMSE at G=50 |", "|---|---|---|"]
    print("\n".join(lines), flush=True)
    runs = [("ours, first run (compiles if the cache is cold)", ours_run())]
    print(_row(*runs[0]), flush=True)
    runs.append(("ours, second run", ours_run()))
    print(_row(*runs[1]), flush=True)
    peer = pykan_run()
    if peer is not None:
        runs.append(("pykan 0.2.8", peer))
        print(_row(*runs[2]), flush=True)
    return lines + [_row(name, run) for name, run in runs]
