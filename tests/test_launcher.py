"""`./run_pykan_mit.sh --nproc N` (launcher.py): the ranks' environment, one exit code, Ctrl-C
passed on once, and a lost rank: the survivor completes the run folder."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runs import assert_whole, cli_args, wait_for_log

import launcher
from run_folder import LOG_FILE, METRICS_FILE, PROJECT_DIR
from simple_kan import load_model

SETS = {
    "layer_dims": [2, 3, 1],
    "grid_size": 4,
    "dataset_size": 200,
    "test_size": 40,
    "num_steps": 10**6,
    "dtype": "float64",
    "update_strategy": "none",
    "log_interval": 20,
    "plots": False,
    "symbolic": False,
}
ENV = {"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"}


def test_each_rank_gets_the_environment_torchrun_gives_its_workers():
    env = launcher.rank_environment(1, 2, 29500, environ={"HOME": "/h"})
    assert env["HOME"] == "/h" and env["RANK"] == env["LOCAL_RANK"] == "1"
    assert env["WORLD_SIZE"] == env["LOCAL_WORLD_SIZE"] == "2"
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("127.0.0.1", "29500")


def test_the_exit_code_is_rank_0s_unless_only_another_failed():
    assert launcher.exit_code([0, 0]) == 0
    assert launcher.exit_code([130, 130]) == 130
    assert launcher.exit_code([3, -9]) == 3  # rank 0 explains the loss of rank 1
    assert launcher.exit_code([0, 1]) == 1
    assert launcher.exit_code([-15, 0]) == 143


def test_a_bad_process_count_is_one_line(capsys):
    assert launcher.main(["zero"]) == 2
    assert capsys.readouterr().err.startswith("error: --nproc needs a number of processes")


def _launch(run_dir: Path) -> subprocess.Popen:
    command = [sys.executable, str(PROJECT_DIR / "launcher.py"), "2", *cli_args(run_dir, SETS)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    return subprocess.Popen(command, env=ENV, **pipes)


def _ranks(pid: int) -> dict[int, int]:
    """{rank: pid} of the launcher's children."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        rank = next((v[5:] for v in environ if v.startswith(b"RANK=")), None)
        if parent == pid and rank is not None:
            found[int(rank)] = int(entry.name)
    return found


def _finish(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            for pid in _ranks(proc.pid).values():
                os.kill(pid, signal.SIGKILL)
            proc.kill()


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_ctrl_c_reaches_every_rank_once_and_the_launch_exits_130_without_a_traceback(tmp_path):
    run_dir = tmp_path / "run"
    proc = _launch(run_dir)
    wait_for_log(run_dir, "train step", proc)
    proc.send_signal(signal.SIGINT)  # the terminal's Ctrl-C reaches the launcher alone
    out, err = _finish(proc)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "Traceback" not in out
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    assert metrics["stopped"] == "interrupted" and metrics["processes"] == 2
    assert_whole(run_dir)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_a_killed_rank_ends_the_launch_and_rank_0_completes_the_run_folder(tmp_path):
    run_dir = tmp_path / "run"
    proc = _launch(run_dir)
    wait_for_log(run_dir, "train step", proc)
    ranks = {}
    deadline = time.monotonic() + 30
    while len(ranks) < 2 and time.monotonic() < deadline:
        ranks = _ranks(proc.pid)
    os.kill(ranks[1], signal.SIGKILL)
    out, err = _finish(proc)
    assert proc.returncode == 3, err[-2000:]
    assert "Traceback" not in err and "Traceback" not in out
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "another training process" in errors[0], err[-2000:]
    assert str(run_dir) in errors[0]
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    assert metrics["stopped"] == "peer_lost" and metrics["training_points"] == 200
    assert "completing the run folder in this process" in (run_dir / LOG_FILE).read_text()
    model, _ = load_model(run_dir)
    assert model.layer_dims == [2, 3, 1]
    assert_whole(run_dir)
