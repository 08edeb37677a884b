"""`torchrun … pykan_mit.py` end to end: 2 gloo ranks write one run folder (rank 0's) that
matches a plain run; a config mistake is one line."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from cli_runs import cli_args, script_command, start

import pykan_mit
from run_folder import LOG_FILE, METRICS_FILE, MODEL_FILE

SETS = {
    "layer_dims": [2, 3, 1],
    "grid_size": 4,
    "dataset_size": 200,
    "test_size": 40,
    "num_steps": 40,
    "dtype": "float64",
    "update_strategy": "fixed",
    "fixed_update_interval": 20,
    "plots": False,
    "symbolic": False,
}


ENV = {"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"}  # nothing of this process's environment


def _args(run_dir, **extra) -> list[str]:
    return cli_args(run_dir, {**SETS, **extra})


def _torchrun(args) -> subprocess.CompletedProcess:
    command = script_command(args, processes=2)
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env=ENV)


def test_two_ranks_write_one_run_folder_matching_a_plain_run(tmp_path):
    done = _torchrun(_args(tmp_path / "two"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert pykan_mit.main(_args(tmp_path / "one")) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # nothing else written
    two = json.loads((tmp_path / "two" / METRICS_FILE).read_text())
    one = json.loads((tmp_path / "one" / METRICS_FILE).read_text())
    assert two["processes"] == 2 and (tmp_path / "two" / MODEL_FILE).is_file()
    assert two["training_points"] == one["training_points"] == 200
    assert two["refinements"] == one["refinements"]
    assert abs(two["test_rmse"] - one["test_rmse"]) < 1e-9 * one["test_rmse"]


def test_a_config_mistake_under_torchrun_is_one_line_and_no_folder(tmp_path):
    done = _torchrun(_args(tmp_path / "bad", grid_size=0))
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: --set grid_size=0: grid_size must be an integer >= 1, got 0"]
    assert not Path(tmp_path / "bad").exists()


def test_ctrl_c_stops_every_rank_after_the_same_step_and_completes_the_run_folder(tmp_path):
    """SIGINT to the whole process group (what a terminal's Ctrl-C does): the ranks agree on the
    step to stop after, and rank 0 still writes a complete run folder."""
    run_dir = tmp_path / "run"
    args = _args(run_dir, num_steps=10**6, log_interval=20, update_strategy="none")
    proc = start(args, processes=2, start_new_session=True, env=ENV)
    try:
        deadline = time.monotonic() + 120
        log = run_dir / LOG_FILE
        while not (log.is_file() and "train step" in log.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    assert metrics["stopped"] == "interrupted" and metrics["processes"] == 2
    assert (run_dir / MODEL_FILE).is_file() and "interrupted at step" in log.read_text()
