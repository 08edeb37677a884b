"""End-to-end behaviour of the training entry point (pykan_mit.py) on small configs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import predict
import pykan_mit
from simple_kan import load_model

ROOT = Path(__file__).resolve().parent.parent
SMALL = [
    "--set",
    "layer_dims=[2,3,1]",
    "--set",
    "grid_size=5",
    "--set",
    "num_steps=60",
    "--set",
    "dataset_size=200",
    "--set",
    "test_size=100",
    "--set",
    "learning_rate=0.01",
    "--set",
    "plots=false",
    "--set",
    "log_interval=20",
]
RUN_FILES = [
    "run.log",
    "pykan_mit_model.pth",
    "pykan_mit_config.json",
    "metrics.json",
    "history.json",
    "samples.npz",
]


def write_config(path: Path, **keys) -> str:
    path.write_text(json.dumps(keys))
    return str(path)


def run_main(args, capsys):
    code = pykan_mit.main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_user_error(code, err, *words):
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]


def test_small_run_leaves_a_complete_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, _ = run_main(["--dir", str(run), *SMALL], capsys)
    assert code == 0
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert (run / "src_backup" / "pykan_mit.py").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("train_rmse", "test_rmse", "num_parameters", "layer_dims", "grid_sizes", "steps"):
        assert key in metrics
    assert metrics["steps"] == 60
    assert np.isfinite(metrics["test_rmse"])
    history = json.loads((run / "history.json").read_text())
    assert len(history["train_rmse"]) == len(history["test_rmse"]) == 60
    log = (run / "run.log").read_text()
    assert "train step 60/60" in log and "train step 20/60" in log
    model, config = load_model(run)
    assert config["model"]["layer_dims"] == metrics["layer_dims"]
    torch.load(run / "pykan_mit_model.pth", weights_only=True)


def test_same_seed_gives_identical_metrics(tmp_path, capsys):
    results = []
    for name in ("a", "b"):
        code, *_ = run_main(["--dir", str(tmp_path / name), *SMALL], capsys)
        assert code == 0
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        metrics.pop("wall_time_s")
        results.append(metrics)
    assert results[0] == results[1]
    code, *_ = run_main(["--dir", str(tmp_path / "c"), *SMALL, "--set", "seed=1"], capsys)
    other = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert other["train_rmse"] != results[0]["train_rmse"]


def test_untuned_target_reaches_a_sensible_rmse(tmp_path, capsys):
    """A 2-input target nobody tuned for: the network must clearly beat predicting the mean."""
    args = [
        "--dir",
        str(tmp_path / "r"),
        "--set",
        "target_function=sin(2*x1)*cos(x2) + 0.5*x1*x2",
        "--set",
        "layer_dims=[2,5,1]",
        "--set",
        "num_steps=400",
        "--set",
        "dataset_size=1000",
        "--set",
        "learning_rate=0.01",
        "--set",
        "plots=false",
    ]
    code, *_ = run_main(args, capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    _, config = load_model(tmp_path / "r")
    samples = np.load(tmp_path / "r" / "samples.npz")
    spread = float(np.std(samples["y_test"]))
    assert metrics["test_rmse"] < 0.05 * spread, (metrics["test_rmse"], spread)


def test_refinements_are_recorded_and_preserve_training(tmp_path, capsys):
    args = [
        "--dir",
        str(tmp_path / "r"),
        *SMALL,
        "--set",
        "update_strategy=fixed",
        "--set",
        "fixed_update_interval=20",
        "--set",
        "adaptive_k=3",
    ]
    code, *_ = run_main(args, capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert [e["step"] for e in metrics["refinements"]] == [20, 40]  # after 20 and 40 steps
    assert metrics["grid_sizes"] == [11, 11]
    model, _ = load_model(tmp_path / "r")
    assert model.grid_sizes == [11, 11]


def test_grid_schedule_and_lbfgs(tmp_path, capsys):
    args = [
        "--dir",
        str(tmp_path / "r"),
        *SMALL,
        "--set",
        "optimizer=lbfgs",
        "--set",
        "learning_rate=1",
        "--set",
        "num_steps=30",
        "--set",
        "update_strategy=fixed",
        "--set",
        "fixed_update_interval=10",
        "--set",
        "grid_schedule=[5,8,12]",
        "--set",
        "knot_placement=uniform",
        "--set",
        "dtype=float64",
    ]
    code, *_ = run_main(args, capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert [e["grid_sizes"][0] for e in metrics["refinements"]] == [8, 12]
    assert metrics["test_rmse"] < 0.05


def test_data_file_run(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(300, 2))
    y = x[:, 0] ** 2 + 0.5 * x[:, 1]
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,y\n" + "\n".join(f"{a},{b},{c}" for (a, b), c in zip(x, y)))
    args = ["--dir", str(tmp_path / "r"), *SMALL, "--set", f"data_file={csv}"]
    args += ["--set", "target_function=null"]
    code, *_ = run_main(args, capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["training_points"] == 200 and metrics["test_points"] == 100
    # the file that trained the model also predicts: its inputs are read, its targets left
    out = tmp_path / "pred.csv"
    assert predict.main([str(tmp_path / "r"), "--csv", str(csv), "--out", str(out)]) == 0
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    np.testing.assert_array_equal(rows[:, :2], x)
    model, _ = load_model(tmp_path / "r")
    with torch.no_grad():
        expected = model(torch.from_numpy(x).float()).double().numpy()[:, 0]
    np.testing.assert_allclose(rows[:, 2], expected, rtol=1e-6)


def test_early_stopping_keeps_the_best_model(tmp_path, capsys):
    args = [
        "--dir",
        str(tmp_path / "r"),
        *SMALL,
        "--set",
        "early_stopping_patience=5",
        "--set",
        "learning_rate=0.5",
        "--set",
        "num_steps=300",
    ]
    code, *_ = run_main(args, capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    assert metrics["stopped"] == "early_stopping"
    assert metrics["val_rmse"] == pytest.approx(min(history["val_rmse"]), rel=1e-4)


def test_prune_makes_the_model_smaller(tmp_path, capsys):
    args = [
        "--dir",
        str(tmp_path / "r"),
        *SMALL,
        "--set",
        "layer_dims=[2,4,1]",
        "--set",
        "target_function=sin(pi*x1)",
        "--set",
        "num_steps=300",
        "--set",
        "use_regularization=true",
        "--set",
        "l1_weight=0.01",
        "--set",
        "entropy_weight=0.01",
        "--set",
        "prune=true",
        "--set",
        "prune_threshold=0.05",
        "--set",
        "prune_finetune_steps=30",
    ]
    code, *_ = run_main(args, capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["prune"]["dims_before"] == [2, 4, 1]
    assert sum(metrics["layer_dims"][1:-1]) < 4
    assert "x2" in metrics["prune"]["unused_inputs"]
    model, _ = load_model(tmp_path / "r")
    assert model.layer_dims == metrics["layer_dims"]
    assert metrics["steps"] == 330


def test_non_finite_loss_stops_and_keeps_last_good_model(tmp_path, capsys):
    x = np.linspace(-1, 1, 150)
    csv = tmp_path / "huge.csv"
    csv.write_text("\n".join(f"{a},{1e30 * a}" for a in x))
    args = ["--dir", str(tmp_path / "r"), *SMALL, "--set", "layer_dims=[1,2,1]"]
    args += ["--set", f"data_file={csv}", "--set", "target_function=null"]
    args += ["--set", "test_size=50"]
    code, _, err = run_main(args, capsys)
    assert code == 1
    assert "non-finite" in err and "Traceback" not in err
    model, _ = load_model(tmp_path / "r")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["stopped"] == "non_finite_loss"


# ---------------------------------------------------------------------------- user mistakes


def assert_nothing_written(tmp_path):
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "content, words",
    [
        ('{"num_step": 5}', ["num_step", "did you mean 'num_steps'"]),
        ('{"num_steps": 5,,}', ["line 1", "JSON"]),
        ('{"num_steps": -5}', ["num_steps", "-5"]),
        ('{"layer_dims": [1, 1]}', ["unknown variable 'x2'"]),
        ('{"target_function": "exp(sin(pi*x1) +"}', ["target_function"]),
        ("{\"target_function\": \"__import__('os').system('touch PWNED')\"}", ["not allowed"]),
        ('{"target_function": "x1 + x7"}', ["x7"]),
        ('{"optimizer": "sgd"}', ["optimizer", "adam"]),
    ],
)
def test_bad_config_is_one_line_and_writes_nothing(tmp_path, capsys, content, words):
    cfg = tmp_path / "bad.json"
    cfg.write_text(content)
    code, _, err = run_main(["--config", str(cfg), "--dir", str(tmp_path / "run")], capsys)
    assert_user_error(code, err, *words)
    assert_nothing_written(tmp_path)
    assert not Path("PWNED").exists() and not (tmp_path / "PWNED").exists()


def test_missing_config_file(tmp_path, capsys):
    code, _, err = run_main(["--config", str(tmp_path / "nope.json")], capsys)
    assert_user_error(code, err, "nope.json")


def test_bad_set_argument(tmp_path, capsys):
    code, _, err = run_main(["--set", "num_steps", "--dir", str(tmp_path / "run")], capsys)
    assert_user_error(code, err, "--set")
    assert_nothing_written(tmp_path)


def test_unknown_command_line_option(tmp_path, capsys):
    code, _, err = run_main(["--stepz", "5"], capsys)
    assert_user_error(code, err, "--stepz")


@pytest.mark.parametrize(
    "rows, words",
    [
        (["0.1,0.2,0.3", "0.4,nan,0.5"], ["line 2", "nan"]),
        (["0.1,0.2,0.3", "0.4,0.5"], ["line 2", "2 columns"]),
        (["0.1,0.2", "0.4,0.5"], ["2 columns, expected 3"]),
        (["0.1,abc,0.3"], ["'abc' is not a number"]),
    ],
)
def test_bad_data_file(tmp_path, capsys, rows, words):
    csv = tmp_path / "d.csv"
    csv.write_text("\n".join(rows * 1) + "\n")
    args = ["--dir", str(tmp_path / "run"), "--set", f"data_file={csv}"]
    args += ["--set", "target_function=null", "--set", "test_size=1"]
    code, _, err = run_main(args, capsys)
    assert_user_error(code, err, *words)
    assert_nothing_written(tmp_path)


def test_missing_data_file(tmp_path, capsys):
    args = ["--dir", str(tmp_path / "run"), "--set", f"data_file={tmp_path / 'none.csv'}"]
    code, _, err = run_main([*args, "--set", "target_function=null"], capsys)
    assert_user_error(code, err, "none.csv")
    assert_nothing_written(tmp_path)


def test_existing_run_folder_is_not_overwritten(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("precious")
    code, _, err = run_main(["--dir", str(run), *SMALL], capsys)
    assert_user_error(code, err, "already exists")
    assert (run / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in run.iterdir()) == ["keep.txt"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(tmp_path, capsys):
    code, _, err = run_main(["--dir", str(tmp_path / "run"), "--set", "device=cuda"], capsys)
    assert_user_error(code, err, "cuda")
    assert_nothing_written(tmp_path)


def test_ctrl_c_saves_a_complete_run_folder(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "pykan_mit.py"), "--dir", str(run), *SMALL]
    cmd += ["--set", "num_steps=1000000", "--set", "log_interval=10"]
    env = dict(os.environ, MPLBACKEND="Agg")
    # A suite started in the background inherits an ignored SIGINT: give the run Ctrl-C back.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # The first run after set-up compiles the CPU kernels, slowly on a loaded machine.
    deadline = time.time() + 240
    while time.time() < deadline and "train step 20/" not in _read(run / "run.log"):
        time.sleep(0.2)
    assert "train step 20/" in _read(run / "run.log"), "training never reached step 20"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stopped"] == "interrupted"
    assert 20 <= metrics["steps"] < 1000000
    load_model(run)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_init_from_starts_from_a_trained_model(tmp_path, capsys):
    """A zero-step run from a trained run's folder holds that model, bit for bit, and measures
    its test RMSE; the model trained further is the one given, not a fresh one."""
    first = tmp_path / "first"
    assert run_main(["--dir", str(first), *SMALL], capsys)[0] == 0
    again = ["--set", f"init_from={first}", "--set", "num_steps=0"]
    assert run_main(["--dir", str(tmp_path / "again"), *SMALL, *again], capsys)[0] == 0
    trained, _ = load_model(first)
    restarted, _ = load_model(tmp_path / "again")
    for (name, a), b in zip(trained.state_dict().items(), restarted.state_dict().values()):
        assert torch.equal(a, b), name
    metrics = [json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("first", "again")]
    assert metrics[1]["test_rmse"] == metrics[0]["test_rmse"]


@pytest.mark.parametrize(
    "source, keys, words",
    [
        ("missing", [], ["init_from: run folder or model file not found", "missing"]),
        ("first", ["--set", "layer_dims=[1,3,1]", "--set", "target_function=x1"], ["1 and 1"]),
    ],
)
def test_init_from_a_missing_or_mismatched_run_is_one_line(tmp_path, capsys, source, keys, words):
    if source == "first":
        assert run_main(["--dir", str(tmp_path / "first"), *SMALL], capsys)[0] == 0
    args = ["--dir", str(tmp_path / "run"), *SMALL, *keys]
    code, _, err = run_main([*args, "--set", f"init_from={tmp_path / source}"], capsys)
    assert_user_error(code, err, *words)
    assert not (tmp_path / "run").exists()
