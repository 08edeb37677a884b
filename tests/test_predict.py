import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import config
import predict
from errors import UserError
from simple_kan import MODEL_FILE, SimpleKAN

ROOT = Path(__file__).resolve().parent.parent
# What a training run backs up into src_backup/: importing any of them from there leaves a marker.
BACKED_UP_MODULES = ("simple_kan", "adaptive_kan_layer", "spline", "config", "errors", "fileio")


def make_run(run_dir, layer_dims=(2, 3, 1), dtype=torch.float32, input_range=None):
    """A run folder as training leaves it, with a src_backup/ whose modules betray an import."""
    torch.manual_seed(0)
    dims = list(layer_dims)
    given = dict(config.DEFAULTS, layer_dims=dims, target_function=["x1"] * dims[-1])
    cfg = config.validate_config(given, "test")
    grid_range = input_range or [[-1, 1]] * dims[0]
    model = SimpleKAN(dims, grid_size=4, noise_scale=0.5, dtype=dtype, grid_range=grid_range)
    run_dir.mkdir(parents=True)
    model.save_model(run_dir, cfg)
    backup = run_dir / "src_backup"
    backup.mkdir()
    marker = run_dir / "imported_from_src_backup"
    for name in BACKED_UP_MODULES:
        (backup / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    return run_dir


def loaded_output(run_dir, point):
    """What a user of load_model gets for one point."""
    model, _ = predict.load_model(run_dir)
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        return model(torch.tensor([point], dtype=dtype))[0].tolist()


def run_cli(argv, capsys):
    """``(exit code, stdout, stderr)`` of the command line run in this process; warnings count
    as stderr lines, as they would in a real process."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = predict.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    shown = [warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught]
    return rc, out, err + "".join(shown)


def printed_values(out):
    return [float(line.split(" = ")[1]) for line in out.splitlines()]


def assert_one_error_line(rc, err, *fragments):
    """Exit code 2 and one line on stderr, ``error: …`` holding every fragment."""
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def assert_cli_error(argv, capsys, *fragments):
    rc, out, err = run_cli(argv, capsys)
    assert_one_error_line(rc, err, *fragments)
    assert out == ""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "run")


@pytest.fixture(scope="module")
def cli_run(run_dir):
    """One real `python predict.py` process, started elsewhere with a relative run folder."""
    return subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), run_dir.name, "0.1", "-0.7"],
        cwd=run_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


# ------------------------------------------------------------------------------ predictions


def test_cli_prints_exactly_the_output_load_model_users_compute(run_dir, cli_run):
    assert cli_run.returncode == 0, cli_run.stderr
    assert cli_run.stdout.startswith("f(0.1, -0.7) = ")
    assert printed_values(cli_run.stdout) == loaded_output(run_dir, [0.1, -0.7])
    assert cli_run.stderr == ""


def test_prediction_never_imports_code_from_src_backup(run_dir, cli_run):
    assert cli_run.returncode == 0
    assert (run_dir / "src_backup" / "simple_kan.py").exists()
    assert not (run_dir / "imported_from_src_backup").exists()


def test_every_output_gets_its_own_line(tmp_path, capsys):
    run = make_run(tmp_path / "run", layer_dims=(2, 3, 2), dtype=torch.float64)
    rc, out, err = run_cli([run, 0.3, 0.2], capsys)
    assert rc == 0, err
    lines = out.splitlines()
    assert [line.split(" = ")[0] for line in lines] == ["f1(0.3, 0.2)", "f2(0.3, 0.2)"]
    assert printed_values(out) == loaded_output(run, [0.3, 0.2])


def test_negative_coordinates_are_numbers_not_options(run_dir, capsys):
    rc, out, err = run_cli([run_dir, "-0.5", "-1e-1", "--device", "cpu"], capsys)
    assert rc == 0, err
    assert out.startswith("f(-0.5, -0.1) = ")
    assert printed_values(out) == loaded_output(run_dir, [-0.5, -0.1])


def test_predict_accepts_one_point_or_many(run_dir):
    points = np.array([[0.1, -0.7], [0.5, 0.5], [-1.0, 1.0]])
    many = predict.predict(run_dir, points)
    assert many.shape == (3, 1)
    # one point alone and the same point in a batch: equal to float32 rounding (BLAS may take
    # another kernel, and another summation order, for another number of rows)
    np.testing.assert_allclose(predict.predict(run_dir, points[1]), many[1:2], rtol=1e-6)
    assert predict.predict(run_dir, points[:1]).tolist() == [loaded_output(run_dir, [0.1, -0.7])]


def test_predict_refuses_points_of_the_wrong_width(run_dir):
    with pytest.raises(UserError, match=r"shape \(N, 2\)"):
        predict.predict(run_dir, [[0.1, 0.2, 0.3]])


def test_the_training_range_travels_with_the_model(tmp_path, capsys):
    run = make_run(tmp_path / "run", input_range=[[0, 1], [-2, 2]])
    model, config = predict.load_model(run)
    assert model.input_range == [[0.0, 1.0], [-2.0, 2.0]]
    assert config["model"]["input_range"] == [[0.0, 1.0], [-2.0, 2.0]]
    rc, _, err = run_cli([run, 0.5, -1.5], capsys)
    assert rc == 0 and err == ""
    rc, _, err = run_cli([run, 1.5, -1.5], capsys)
    assert rc == 0 and "x1 [0, 1]" in err


# ------------------------------------------------------------------------------ CSV mode


@pytest.mark.parametrize("header", ["", "a,b\n"])
def test_csv_rows_agree_with_predict_with_or_without_header(run_dir, tmp_path, capsys, header):
    (tmp_path / "in.csv").write_text(header + "0.1,-0.7\n\n0.5, 0.25\n-1,1\n")
    rc, out, err = run_cli([run_dir, "--csv", tmp_path / "in.csv"], capsys)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "x1,x2,y1"
    table = np.array([[float(c) for c in line.split(",")] for line in lines[1:]])
    points = np.array([[0.1, -0.7], [0.5, 0.25], [-1.0, 1.0]])
    assert table[:, :2].tolist() == points.tolist()
    assert table[:, 2:].tolist() == predict.predict(run_dir, points).tolist()


def test_csv_out_writes_the_table_to_the_file(run_dir, tmp_path, capsys):
    (tmp_path / "in.csv").write_text("0.1,0.2\n0.3,0.4\n")
    out_file = tmp_path / "pred.csv"
    rc, out, err = run_cli([run_dir, "--csv", tmp_path / "in.csv", "--out", out_file], capsys)
    assert rc == 0, err
    assert out == ""
    lines = out_file.read_text().splitlines()
    assert lines[0] == "x1,x2,y1" and len(lines) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "pred.csv"]


# ------------------------------------------------------------------------------ warnings


def test_points_outside_the_training_range_warn_once_and_are_still_predicted(run_dir, capsys):
    rc, out, err = run_cli([run_dir, "1.5", "0.2"], capsys)
    assert rc == 0
    assert printed_values(out) == loaded_output(run_dir, [1.5, 0.2])
    assert err.count("\n") == 1
    assert err.startswith("warning: point(s) outside the training range of x1 [-1, 1]: ")


def test_csv_points_outside_the_range_warn_once_naming_the_first_line(run_dir, tmp_path, capsys):
    (tmp_path / "in.csv").write_text("x1,x2\n0,0\n2,0\n0,-3\n")
    rc, out, err = run_cli([run_dir, "--csv", tmp_path / "in.csv"], capsys)
    assert rc == 0 and len(out.splitlines()) == 4
    assert err.count("\n") == 1
    assert "x1 [-1, 1], x2 [-1, 1]: 2 of 3 points, first" in err
    assert "in.csv line 3" in err


# ------------------------------------------------------------------------------ errors


def test_hostile_model_file_is_refused_without_running_its_code(run_dir, tmp_path):
    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "pykan_mit_config.json").write_text((run_dir / "pykan_mit_config.json").read_text())
    torch.save({"format": "pykan_mit-model-1", "architecture": Hostile()}, evil / MODEL_FILE)
    result = subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), str(evil), "0.1", "0.2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_error_line(result.returncode, result.stderr, "pykan_mit_model.pth")
    assert result.stdout == ""
    assert not (tmp_path / "pwned").exists()


def test_wrong_number_of_coordinates_says_how_many_the_model_takes(run_dir, capsys):
    assert_cli_error([run_dir, "0.1"], capsys, "takes 2", "got 1")
    assert_cli_error([run_dir, 1, 2, 3], capsys, "takes 2", "got 3")


@pytest.mark.parametrize("text", ["abc", "nan", "1,5"])
def test_a_coordinate_that_is_not_a_number_is_quoted(run_dir, capsys, text):
    assert_cli_error([run_dir, "0.1", text], capsys, "x2", f"'{text}'")


def test_missing_run_folder(tmp_path, capsys):
    rc, _, err = run_cli([tmp_path / "nowhere", 1, 2], capsys)
    assert_one_error_line(rc, err, "nowhere")


@pytest.mark.parametrize("missing", ["pykan_mit_model.pth", "pykan_mit_config.json"])
def test_missing_model_or_config_file(tmp_path, capsys, missing):
    run = make_run(tmp_path / "run")
    (run / missing).unlink()
    rc, _, err = run_cli([run, 1, 2], capsys)
    assert_one_error_line(rc, err, missing)


@pytest.mark.parametrize("damaged", ["pykan_mit_model.pth", "pykan_mit_config.json"])
def test_corrupt_model_or_config_file(tmp_path, capsys, damaged):
    run = make_run(tmp_path / "run")
    (run / damaged).write_bytes(b"\x80garbage{")
    rc, _, err = run_cli([run, 1, 2], capsys)
    assert_one_error_line(rc, err, damaged)


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("0.1,0.2\n0.3\n", ["in.csv line 2", "1 column", "takes 2 inputs"]),
        ("x1,x2\n0.1,0.2\n0.3,oops\n", ["in.csv line 3, column 2", "'oops'"]),
        ("a,b,c,d\n0.1,0.2,0.3,0.4\n", ["in.csv line 1", "4 columns", "takes 2 inputs"]),
        ("0.1,0.2,0.3,0.4\n", ["in.csv line 1", "4 columns", "takes 2 inputs"]),
        ("x1,x2\n\n", ["in.csv", "no data rows"]),
    ],
)
def test_bad_csv_names_file_line_and_column(run_dir, tmp_path, capsys, text, fragments):
    (tmp_path / "in.csv").write_text(text)
    rc, out, err = run_cli([run_dir, "--csv", tmp_path / "in.csv"], capsys)
    assert_one_error_line(rc, err, *fragments)
    assert out == ""


def test_unreadable_csv(run_dir, tmp_path, capsys):
    rc, _, err = run_cli([run_dir, "--csv", tmp_path / "absent.csv"], capsys)
    assert_one_error_line(rc, err, "absent.csv", "cannot read")
    (tmp_path / "latin1.csv").write_bytes(b"0.1,\xe9\n")
    rc, _, err = run_cli([run_dir, "--csv", tmp_path / "latin1.csv"], capsys)
    assert_one_error_line(rc, err, "latin1.csv", "UTF-8")


def test_out_into_a_missing_directory_writes_nothing(run_dir, tmp_path, capsys):
    (tmp_path / "in.csv").write_text("0.1,0.2\n")
    out_file = tmp_path / "missing" / "pred.csv"
    rc, _, err = run_cli([run_dir, "--csv", tmp_path / "in.csv", "--out", out_file], capsys)
    assert_one_error_line(rc, err, "--out", "does not exist")
    assert not out_file.parent.exists()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--device", "gpu", "run", "1"], "invalid choice: 'gpu'"),
        ([], "missing the run folder"),
        (["run", "--out", "x.csv"], "--out needs --csv"),
        (["run", "0.1", "--csv", "in.csv"], "not both"),
        (["run", "--bogus", "1"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_command_lines_are_one_error_line(capsys, argv, fragment):
    assert_cli_error(argv, capsys, fragment)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_user_error(run_dir, capsys):
    assert_cli_error([run_dir, "--device", "cuda", 1, 2], capsys, "CUDA")


# ------------------------------------------------------------------------------ scripts


def test_run_predict_script_predicts_relative_to_the_callers_directory(run_dir, tmp_path):
    (tmp_path / "in.csv").write_text("0.1,-0.7\n")
    relative_run = os.path.relpath(run_dir, tmp_path)
    result = subprocess.run(
        [str(ROOT / "run_predict.sh"), relative_run, "--csv", "in.csv", "--out", "pred.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "pred.csv").read_text().splitlines()
    assert lines[0] == "x1,x2,y1"
    assert float(lines[1].split(",")[2]) == loaded_output(run_dir, [0.1, -0.7])[0]


# ------------------------------------------------------------------------------ names


@pytest.fixture(scope="module")
def named_run(tmp_path_factory):
    """A run whose model was trained on a CSV with header mass,speed,energy."""
    torch.manual_seed(1)
    cfg = config.validate_config(dict(config.DEFAULTS, target_function="x1"), "test")
    model = SimpleKAN(
        [2, 3, 1], grid_size=4, noise_scale=0.5, dtype=torch.float64, input_names=["mass", "speed"]
    )
    run_dir = tmp_path_factory.mktemp("named") / "run"
    run_dir.mkdir()
    model.save_model(run_dir, cfg)
    return run_dir


POINTS = [[0.1, -0.7], [0.5, 0.25], [-1.0, 1.0]]  # (mass, speed)


def csv_text(header: list[str], columns: dict[str, list[float]]) -> str:
    rows = zip(*(columns[name] for name in header))
    return ",".join(header) + "\n" + "".join(",".join(map(repr, row)) + "\n" for row in rows)


@pytest.mark.parametrize(
    "header",
    [
        ["mass", "speed"],
        ["speed", "mass"],
        ["energy", "speed", "note", "mass"],
        [" speed", "mass "],
    ],
)
def test_csv_with_a_header_is_read_by_name_in_any_order_with_extra_columns(
    named_run, tmp_path, capsys, header
):
    mass, speed = np.array(POINTS).T.tolist()
    columns = {"mass": mass, "speed": speed, " speed": speed, "energy": [9.0] * 3}
    columns["note"] = [-5.0] * 3
    columns["mass "] = mass
    (tmp_path / "in.csv").write_text(csv_text(header, columns))
    rc, out, err = run_cli([named_run, "--csv", tmp_path / "in.csv"], capsys)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "mass,speed,y1"
    table = np.array([[float(c) for c in line.split(",")] for line in lines[1:]])
    assert table[:, :2].tolist() == POINTS
    assert table[:, 2:].tolist() == predict.predict(named_run, POINTS).tolist()


def test_a_header_missing_an_input_name_is_one_error_line_naming_it(named_run, tmp_path, capsys):
    (tmp_path / "in.csv").write_text("mass,velocity\n0.1,0.2\n")
    assert_cli_error(
        [named_run, "--csv", tmp_path / "in.csv"],
        capsys,
        "in.csv",
        "no column 'speed'",
        "mass, velocity",
    )


def test_a_file_without_header_is_read_by_position_for_a_named_model(named_run, tmp_path, capsys):
    (tmp_path / "in.csv").write_text("0.1,-0.7\n0.5,0.25\n-1.0,1.0\n")
    rc, out, err = run_cli([named_run, "--csv", tmp_path / "in.csv"], capsys)
    assert rc == 0, err
    values = [float(line.split(",")[2]) for line in out.splitlines()[1:]]
    assert values == predict.predict(named_run, POINTS)[:, 0].tolist()


def test_a_header_of_other_names_is_read_by_position_for_a_model_without_names(
    run_dir, tmp_path, capsys
):
    (tmp_path / "in.csv").write_text("x2,x1,y\n0.1,-0.7,3\n")  # by name: x1 = -0.7
    rc, out, _ = run_cli([run_dir, "--csv", tmp_path / "in.csv"], capsys)
    assert rc == 0 and out.splitlines()[1].startswith("-0.7,0.1,")
    (tmp_path / "in.csv").write_text("a,b,y\n0.1,-0.7,3\n")  # no names: by position
    rc, out, _ = run_cli([run_dir, "--csv", tmp_path / "in.csv"], capsys)
    assert rc == 0 and out.splitlines()[1].startswith("0.1,-0.7,")
