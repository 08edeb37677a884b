"""--resume: a run stopped at a checkpoint and continued ends bit for bit where the same run
without the stop ends; a missing, damaged or incompatible checkpoint is one line, nothing
written."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import fileio
import pykan_mit
import resume
import run_folder
from model_integrity import checksum
from simple_kan import load_model

ROOT = Path(__file__).resolve().parent.parent
SMALL = {
    "layer_dims": [2, 3, 1],
    "grid_size": 5,
    "dataset_size": 200,
    "test_size": 100,
    "learning_rate": 0.01,
    "dtype": "float64",
    "device": "cpu",
    "plots": False,
    "progress_bar": False,
    "log_interval": 100,
}
CASES = {  # (keys, stop step, total steps)
    "adam": ({}, 500, 1000),
    "refinement": (
        {
            "update_strategy": "fixed",
            "fixed_update_interval": 150,
            "grid_schedule": [5, 7, 9],
            "grid_range_update_every": 40,
            "grid_range_update_until": 300,
        },
        200,
        400,
    ),
    "batches": ({"batch_size": 64}, 205, 400),  # mid-epoch, and not at a check
    "lbfgs": ({"optimizer": "lbfgs", "learning_rate": 1.0, "lbfgs_max_iter": 5}, 30, 60),
}


def sets(**keys) -> list[str]:
    out = []
    for key, value in {**SMALL, **keys}.items():
        out += ["--set", f"{key}={json.dumps(value)}"]
    return out


def train(run: Path, capsys, *args) -> None:
    assert pykan_mit.main(["--dir", str(run), *args]) == 0, capsys.readouterr().err


def assert_same_end(full: Path, resumed: Path, stop: int) -> None:
    """Equal metrics, history (all of it, so from the stop on too) and model tensors."""
    a = json.loads((full / run_folder.METRICS_FILE).read_text())
    b = json.loads((resumed / run_folder.METRICS_FILE).read_text())
    for key in ("train_rmse", "test_rmse", "steps", "grid_sizes", "refinements", "stopped"):
        assert a[key] == b[key], key
    ha = json.loads((full / run_folder.HISTORY_FILE).read_text())
    hb = json.loads((resumed / run_folder.HISTORY_FILE).read_text())
    assert ha["train_rmse"][stop:] == hb["train_rmse"][stop:]
    assert ha == hb
    sa, sb = load_model(full)[0].state_dict(), load_model(resumed)[0].state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("case", list(CASES))
def test_a_resumed_run_ends_bit_identical_to_the_uninterrupted_one(case, tmp_path, capsys):
    keys, stop, total = CASES[case]
    train(tmp_path / "full", capsys, *sets(**keys, num_steps=total))
    part = tmp_path / "part"
    train(part, capsys, *sets(**keys, num_steps=stop))
    first = json.loads((part / run_folder.HISTORY_FILE).read_text())
    assert len(first["step"]) == stop
    code = pykan_mit.main(["--resume", str(part), "--set", f"num_steps={total}"])
    assert code == 0, capsys.readouterr().err
    assert_same_end(tmp_path / "full", part, stop)
    log = (part / run_folder.LOG_FILE).read_text()
    assert f"resumed from {part} after step {stop}" in log
    if case == "refinement":  # grid changes before and after the stop
        steps = [e["step"] for e in first["events"] if e["kind"] == "refine"]
        assert steps == [150]
        metrics = json.loads((part / run_folder.METRICS_FILE).read_text())
        assert [e["step"] for e in metrics["refinements"]] == [150, 300]


def test_resuming_a_finished_run_without_more_steps_ends_as_it_did(tmp_path, capsys):
    """205 steps (not a multiple of the check interval: the end-of-run check that the
    checkpoint leaves out for a longer run is made again) resumed with no change."""
    train(tmp_path / "full", capsys, *sets(num_steps=205))
    part = tmp_path / "part"
    train(part, capsys, *sets(num_steps=205))
    (part / run_folder.MODEL_FILE).unlink()
    assert pykan_mit.main(["--resume", str(part)]) == 0, capsys.readouterr().err
    assert_same_end(tmp_path / "full", part, 205)


def test_resuming_without_the_saved_state_would_differ(tmp_path, capsys, monkeypatch):
    """The comparison above can fail: a resume that forgets the optimizer's moments (a fresh
    Adam) ends elsewhere."""
    keys, stop, total = CASES["adam"]
    train(tmp_path / "full", capsys, *sets(num_steps=total))
    part = tmp_path / "part"
    train(part, capsys, *sets(num_steps=stop))
    monkeypatch.setattr("optimizers.Optimizer.load", lambda self, state: None)
    assert pykan_mit.main(["--resume", str(part), "--set", f"num_steps={total}"]) == 0
    with pytest.raises(AssertionError):
        assert_same_end(tmp_path / "full", part, stop)


def test_resume_into_a_new_folder_leaves_the_old_one_as_it_was(tmp_path, capsys):
    train(tmp_path / "full", capsys, *sets(num_steps=300))
    part, new = tmp_path / "part", tmp_path / "new"
    train(part, capsys, *sets(num_steps=150))
    before = snapshot(part)
    code = pykan_mit.main(["--resume", str(part), "--dir", str(new), "--set", "num_steps=300"])
    assert code == 0, capsys.readouterr().err
    assert snapshot(part) == before
    assert_same_end(tmp_path / "full", new, 150)


def test_a_checkpoint_is_tensors_only_with_the_model_part_checked(tmp_path, capsys):
    part = tmp_path / "part"
    train(part, capsys, *sets(num_steps=40, checkpoint_interval=20))
    path = part / run_folder.RESUME_FILE
    tensors = torch.load(path, weights_only=True)
    assert all(isinstance(k, str) and torch.is_tensor(v) for k, v in tensors.items())
    document = json.loads(bytes(tensors["json"].tolist()))
    assert document["step"] == 40 and document["model"]["sha256"]
    # A model whose knots decrease, under a recomputed outer checksum: model_integrity refuses.
    del tensors["sha256"]
    tensors["model/layers.0.knots"] = tensors["model/layers.0.knots"].flip(1)
    tensors["sha256"] = torch.frombuffer(bytearray(checksum(tensors).encode()), dtype=torch.uint8)
    torch.save(tensors, path)
    (part / run_folder.RESUME_SUM_FILE).write_text(fileio.file_sha256(path))
    code = pykan_mit.main(["--resume", str(part)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "layers.0.knots" in err[0] and "decrease" in err[0]


def start_training(run: Path, **keys) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "pykan_mit.py"), "--dir", str(run), *sets(**keys)]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, MPLBACKEND="Agg"),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # Ctrl-C back
    )


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_run_stopped_by_a_signal_resumes_to_the_same_end(signum, code, tmp_path, capsys):
    total = 500
    part = tmp_path / "part"
    proc = start_training(part, num_steps=1000000, log_interval=10)
    deadline = time.time() + 240  # the first run after set-up compiles the CPU kernels
    log = part / run_folder.LOG_FILE
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and "train step 20/" in log.read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    stop = json.loads((part / run_folder.METRICS_FILE).read_text())["steps"]
    assert 20 <= stop < total
    train(tmp_path / "full", capsys, *sets(num_steps=total, log_interval=10))
    assert pykan_mit.main(["--resume", str(part), "--set", f"num_steps={total}"]) == 0
    assert_same_end(tmp_path / "full", part, stop)


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """A finished 30-step run whose checkpoint the refusals below start from."""
    run = tmp_path_factory.mktemp("stopped") / "run"
    assert pykan_mit.main(["--dir", str(run), *sets(num_steps=30)]) == 0
    return run


def damage(run: Path, how: str) -> None:
    path = run / run_folder.RESUME_FILE
    data = bytearray(path.read_bytes())
    if how == "missing":
        path.unlink()
    elif how == "no sum":
        (run / run_folder.RESUME_SUM_FILE).unlink()
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how.startswith("flip"):  # a byte in a zip header, in the middle, near the end
        at = {"flip_start": 40, "flip_middle": len(data) // 2, "flip_end": len(data) - 200}[how]
        data[at] ^= 0x10
        path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "how, args, words",
    [
        ("no folder", [], ["no such run folder"]),
        ("missing", [], ["no checkpoint", run_folder.RESUME_FILE]),
        ("truncated", [], ["damaged checkpoint"]),
        ("no sum", [], ["damaged checkpoint", run_folder.RESUME_SUM_FILE]),
        ("flip_start", [], ["damaged checkpoint"]),
        ("flip_middle", [], ["damaged checkpoint"]),
        ("flip_end", [], ["damaged checkpoint"]),
        ("", ["--set", "layer_dims=[2,5,1]"], ["layer_dims cannot change"]),
        ("", ["--set", "seed=3"], ["seed cannot change"]),
        ("", ["--set", "num_steps=10"], ["num_steps 10 is below the checkpoint's step 30"]),
        ("", ["--set", "num_stepz=10"], ["unknown key 'num_stepz'"]),
        ("", ["--config", "pykan_mit.input"], ["leave out --config"]),
        ("", ["--dir", "{stopped}"], ["already exists"]),
    ],
)
def test_a_resume_that_cannot_be_is_one_line_and_writes_nothing(
    how, args, words, stopped, tmp_path, capsys
):
    run = tmp_path / "copy"
    run.mkdir()
    for name, content in snapshot(stopped).items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(content)
    damage(run, how)
    target = tmp_path / "nothing" if how == "no folder" else run
    before = snapshot(run)
    args = [a.replace("{stopped}", str(stopped)) for a in args]
    code = pykan_mit.main(["--resume", str(target), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and all(w in err[0] for w in words), err[0]
    assert snapshot(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]


def test_the_data_must_be_those_the_run_trained_on(stopped, tmp_path, capsys, monkeypatch):
    point = resume.read(stopped)
    point.data_sha256 = "0" * 64
    monkeypatch.setattr(resume, "read", lambda folder: point)
    before = snapshot(stopped)
    code = pykan_mit.main(["--resume", str(stopped)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "training data differ" in err[0]
    assert snapshot(stopped) == before
