"""Helpers of the tests that run the command line, in this process or as a child process
(signals, torchrun, failing writes): the arguments, the child's command and environment,
waiting for a line of its log, and the check that a run folder holds only whole files."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from run_folder import LOG_FILE, MODEL_FILE, PROJECT_DIR, SAMPLES_FILE
from simple_kan import load_model

SCRIPT = PROJECT_DIR / "pykan_mit.py"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def cli_args(run: Path | None, keys: dict) -> list[str]:
    """``--dir run`` (when given) and one ``--set key=<JSON>`` per key."""
    out = [] if run is None else ["--dir", str(run)]
    for key, value in keys.items():
        out += ["--set", f"{key}={json.dumps(value)}"]
    return out


def script_command(args: list[str], processes: int | None = None) -> list[str]:
    """The command running pykan_mit.py with ``args``: plain, or under torchrun with
    ``processes`` ranks."""
    head = [sys.executable] if processes is None else [*TORCHRUN, f"--nproc_per_node={processes}"]
    return [*head, str(SCRIPT), *args]


def child_env(**extra: str) -> dict:
    """This process's environment with plots drawn off screen."""
    return dict(os.environ, MPLBACKEND="Agg", **extra)


def start(args: list[str], processes: int | None = None, **popen) -> subprocess.Popen:
    """pykan_mit.py started as a child process, its output captured as text."""
    popen.setdefault("env", child_env())
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    return subprocess.Popen(script_command(args, processes), **pipes, **popen)


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def wait_for_log(run: Path, text: str, proc: subprocess.Popen, seconds: float = 240) -> None:
    """Wait until the run's log holds ``text`` (the child still running); fail otherwise."""
    deadline = time.time() + seconds  # the first run after set-up compiles the CPU kernels
    while time.time() < deadline and text not in read(run / LOG_FILE) and proc.poll() is None:
        time.sleep(0.05)
    assert text in read(run / LOG_FILE), f"the run never logged {text!r}"


def assert_whole(run: Path) -> None:
    """Every file in the run folder is complete: no temporary file, each readable."""
    names = sorted(p.name for p in run.iterdir())
    assert not [n for n in names if n.startswith(".")], names
    for path in run.glob("*.json"):
        json.loads(path.read_text())
    for path in run.glob("*.pdf"):
        assert path.read_bytes().rstrip().endswith(b"%%EOF"), path
    if (run / MODEL_FILE).exists():
        load_model(run)
    if (run / SAMPLES_FILE).exists():
        with np.load(run / SAMPLES_FILE) as data:
            assert "x_train" in data.files
