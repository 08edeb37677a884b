"""The speed benchmark runs end to end on its smallest shape (the timings themselves are the
benchmark's business, not the suite's)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_speed.py"


def run(*args):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_prints_a_time_and_a_ratio_row_per_shape():
    args = ("--only", "0", "--repeats", "1", "--steps", "1", "--no-memory", "--no-recipe")
    out = run(*args, "--impl", "ours", "ours-torch")
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| [2, 5, 1]")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert float(cells[1]) > 0 and float(cells[2]) > 0
    assert "vs ours-torch" in cells[3]


def test_memory_probe_reports_the_rise_of_peak_memory():
    out = run("--memory-probe", "ours", "0", "--threads", "1")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["mib"] >= 0
