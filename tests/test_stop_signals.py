"""SIGTERM / SIGHUP end a run like Ctrl-C: the step finishes, the run folder is completed."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import datasets
import pykan_mit
import training
from experiment import build_model
from simple_kan import load_model
from stop_signals import StopSignals

ROOT = Path(__file__).resolve().parent.parent
SMALL = {
    "layer_dims": [2, 3, 1],
    "grid_size": 5,
    "dataset_size": 200,
    "test_size": 100,
    "learning_rate": 0.01,
    "num_steps": 1000000,
    "log_interval": 10,
}
PLOTS = ["mse_loss_plot.pdf", "layer_1_activations.pdf", "3d_comparison_with_info.pdf"]


def settings(**keys) -> list[str]:
    out = []
    for key, value in {**SMALL, **keys}.items():
        out += ["--set", f"{key}={json.dumps(value)}"]
    return out


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def start_training(run: Path, **keys) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "pykan_mit.py"), "--dir", str(run), *settings(**keys)]
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(run: Path, text: str, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.time() + seconds  # the first run after set-up compiles the CPU kernels
    while time.time() < deadline and text not in read(run / "run.log") and proc.poll() is None:
        time.sleep(0.1)
    assert text in read(run / "run.log"), f"the run never logged {text!r}"


def test_sigterm_mid_run_completes_the_run_folder_and_exits_143(tmp_path):
    run = tmp_path / "run"
    proc = start_training(run)
    wait_for(run, "train step 20/", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stopped"] == "terminated"
    assert 20 <= metrics["steps"] < 1000000
    history = json.loads((run / "history.json").read_text())
    assert len(history["train_rmse"]) == metrics["steps"]  # the last step was whole
    model, _ = load_model(run)
    assert model.layer_dims == [2, 3, 1]
    for name in PLOTS:
        assert (run / name).stat().st_size > 0, name
    assert f"SIGTERM received: stopped after step {metrics['steps']}" in read(run / "run.log")


def test_a_second_signal_ends_at_once_and_leaves_whole_files(tmp_path):
    run = tmp_path / "run"
    proc = start_training(run, plots=True)
    wait_for(run, "train step 20/", proc)
    proc.send_signal(signal.SIGTERM)
    wait_for(run, "SIGTERM received", proc, 60)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    names = [p.name for p in run.iterdir()]
    assert not [n for n in names if n.startswith(".")], names  # no temporary file left
    for path in run.glob("*.json"):
        json.loads(path.read_text())
    if (run / "pykan_mit_model.pth").exists():
        load_model(run)


def test_sighup_in_process_exits_129_and_restores_the_handlers(tmp_path, capsys):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    run = tmp_path / "run"
    sender = threading.Thread(target=lambda: _signal_when_logged(run, signal.SIGHUP))
    sender.start()
    code = pykan_mit.main(["--dir", str(run), *settings(plots=False)])
    sender.join()
    capsys.readouterr()
    assert code == 129
    assert json.loads((run / "metrics.json").read_text())["stopped"] == "terminated"
    assert {s: signal.getsignal(s) for s in before} == before


def _signal_when_logged(run: Path, signum: int) -> None:
    deadline = time.time() + 240
    while time.time() < deadline and "train step 10/" not in read(run / "run.log"):
        time.sleep(0.05)
    os.kill(os.getpid(), signum)


def test_first_signal_is_recorded_second_raises_and_ignored_signals_stay_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with StopSignals() as stop:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            assert stop.requested and stop.name == "SIGTERM" and stop.exit_code() == 143
            with pytest.raises(SystemExit) as ended:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.5)
            assert ended.value.code == 143
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, previous)


class StopAfter:
    """A stop request that becomes true once ``steps`` log lines were written."""

    def __init__(self, steps: int):
        self.steps, self.seen, self.name = steps, 0, "SIGTERM"

    @property
    def requested(self) -> bool:
        self.seen += 1
        return self.seen > self.steps


def test_training_finishes_the_step_in_progress_then_stops(small_cfg):
    cfg = small_cfg(num_steps=500)
    data = datasets.make_data(cfg, torch.device("cpu"), torch.float32)
    model = build_model(cfg, data, "cpu", torch.float32)
    result = training.train(cfg, model, data, log=lambda line: None, stop=StopAfter(37))
    assert result.stopped == "terminated" and result.steps == 38
    assert len(result.history["train_rmse"]) == 38
    assert all(v == v for v in result.history["train_rmse"])  # every recorded step is whole
