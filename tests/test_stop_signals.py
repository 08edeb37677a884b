"""SIGTERM / SIGHUP end a run like Ctrl-C: the step finishes, the run folder is completed."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest
import torch
from cli_runs import assert_whole, cli_args, read, start, wait_for_log

import datasets
import pykan_mit
import training
from experiment import build_model
from simple_kan import load_model
from stop_signals import SecondSignal, StopSignals

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
AGAIN = "SIGTERM received again: stopped at once (the files written so far are whole)"


def settings(**keys) -> list[str]:
    return cli_args(None, {**SMALL, **keys})


def start_training(run: Path, **keys) -> subprocess.Popen:
    return start(cli_args(run, {**SMALL, **keys}))


def test_sigterm_mid_run_completes_the_run_folder_and_exits_143(tmp_path):
    run = tmp_path / "run"
    proc = start_training(run)
    wait_for_log(run, "train step 20/", proc)
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
    """The second SIGTERM lands while the run folder is being completed (plots take seconds):
    the process ends there, with one line and no traceback, every file written whole."""
    run = tmp_path / "run"
    proc = start_training(run, plots=True)
    wait_for_log(run, "train step 20/", proc)
    proc.send_signal(signal.SIGTERM)
    wait_for_log(run, "SIGTERM received", proc, 60)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.splitlines().count(AGAIN) == 1, err  # it ended on the second signal, said once
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert read(run / "run.log").count("run folder:") == 1  # not the last line: ended before
    assert_whole(run)


WEAKREF_CALLBACK = """
class Thing:
    pass
thing = Thing()
ref = weakref.ref(thing, lambda r: signal.raise_signal(signal.SIGTERM))
del thing  # the callback runs now: the second signal lands inside it
"""
WRITING = """
fileio.write_json(target, {"old": 1})
def write(tmp):
    with open(tmp, "w") as f:
        f.write('{"half')
    signal.raise_signal(signal.SIGTERM)
fileio.atomic_write(target, write)
"""


@pytest.mark.parametrize("during", [WEAKREF_CALLBACK, WRITING], ids=["weakref", "write"])
def test_the_command_lines_process_ends_on_the_second_signal_wherever_it_lands(during, tmp_path):
    """Exit 143 with one line, whatever runs when the signal lands: inside a weakref callback
    (where a raised exception would only be printed, "Exception ignored … Traceback", and the
    process would go on), or inside a write (its temporary file removed, the file unchanged)."""
    script = (
        "import os, signal, sys, weakref\nimport fileio\nfrom stop_signals import StopSignals\n"
        f"target = {str(tmp_path / 'kept.json')!r}\n"
        "with StopSignals(exit_at_once=True) as stop:\n"
        "    signal.raise_signal(signal.SIGTERM)\n"
        "    assert stop.requested\n"
        + "".join(f"    {line}\n" for line in during.strip().splitlines())
        + "    print('still running')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(pykan_mit.__file__).parent,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (143, "", AGAIN + "\n")
    if during is WRITING:
        assert [p.name for p in tmp_path.iterdir()] == ["kept.json"]
        assert json.loads((tmp_path / "kept.json").read_text()) == {"old": 1}


def test_in_process_the_second_signal_raises_even_from_a_weakref_callback(capfd):
    """Library use never ends the process: `SecondSignal` reaches the caller, also when the
    signal lands inside a weakref callback (re-raised at the next point it can propagate)."""

    class Thing:
        pass

    with pytest.raises(SecondSignal) as ended:
        with StopSignals() as stop:
            signal.raise_signal(signal.SIGTERM)
            assert stop.requested
            thing = Thing()
            ref = weakref.ref(thing, lambda r: signal.raise_signal(signal.SIGTERM))
            del thing
            time.sleep(1)
    assert ended.value.code == 143 and ref() is None
    assert capfd.readouterr().err == AGAIN + "\n"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_in_process_two_signals_raise_and_leave_the_process_and_its_handlers(tmp_path, capfd):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    hook = sys.unraisablehook
    run = tmp_path / "run"
    sender = threading.Thread(target=lambda: _signal_when_logged(run, signal.SIGHUP, twice=True))
    sender.start()
    with pytest.raises(SecondSignal) as ended:
        pykan_mit.main(["--dir", str(run), *settings(plots=True)])
    sender.join()
    err = capfd.readouterr().err
    assert ended.value.code == 129 and err.count("SIGHUP received again: stopped at once") == 1
    assert {s: signal.getsignal(s) for s in before} == before and sys.unraisablehook is hook
    assert_whole(run)


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


def _signal_when_logged(run: Path, signum: int, twice: bool = False) -> None:
    """Send ``signum`` to this process once training logged step 10; ``twice``: again once
    the run logged the first."""
    for text in ["train step 10/", "received: stopped"][: 1 + twice]:
        deadline = time.time() + 240
        while time.time() < deadline and text not in read(run / "run.log"):
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
            with pytest.raises(SecondSignal) as ended:
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
