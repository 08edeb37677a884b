"""Damaged or edited model files are refused with one line, never predicted from."""

import random
import subprocess
from pathlib import Path

import pytest
import torch

import config
import model_integrity
import plots
import predict
from errors import UserError
from run_folder import CONFIG_FILE, MODEL_FILE
from simple_kan import SimpleKAN, load_model

ROOT = Path(__file__).resolve().parent.parent
POINT = ["0.1", "0.2"]


def save_run(run_dir: Path, layer_dims=(2, 3, 1), seed=0) -> Path:
    torch.manual_seed(seed)
    dims = list(layer_dims)
    cfg = config.validate_config(dict(config.DEFAULTS, layer_dims=dims), "test")
    model = SimpleKAN(dims, grid_size=4, noise_scale=0.5)
    model.layers[0].refine(torch.rand(50, 2) * 2 - 1, k=3, placement="density")
    run_dir.mkdir(parents=True)
    model.save_model(run_dir, cfg)
    return run_dir


def edit(run_dir: Path, change, rehash: bool = False) -> None:
    """Rewrite the model file with ``change(ckpt)`` applied (the recorded checksum kept unless
    ``rehash``), as someone editing the tensors with torch would."""
    path = run_dir / MODEL_FILE
    ckpt = torch.load(path, weights_only=True)
    change(ckpt)
    if rehash:
        ckpt["sha256"] = model_integrity.checksum(ckpt["state_dict"], ckpt["architecture"])
    torch.save(ckpt, path)


def state_edit(name: str, how):
    def change(ckpt):
        ckpt["state_dict"][name] = how(ckpt["state_dict"][name])

    return change


def nan_first(t):
    t = t.clone()
    t[0, 0] = float("nan")
    return t


def nudged(t):
    return t + 1e-3


TAMPERINGS = {
    "truncated": (state_edit("layers.0.coef", lambda t: t[:, :-1].clone()), True, "shape"),
    "reversed knots": (state_edit("layers.0.knots", lambda t: t.flip(1)), True, "decrease"),
    "NaN knots": (state_edit("layers.1.knots", nan_first), True, "non-finite"),
    "wrong dtype": (state_edit("layers.0.coef", lambda t: t.double()), True, "dtype float64"),
    "checksum mismatch": (state_edit("layers.1.coef", nudged), False, "checksum mismatch"),
}


@pytest.fixture
def run_dir(tmp_path):
    return save_run(tmp_path / "run")


def test_an_untouched_model_loads_and_its_checksum_is_in_the_config(run_dir):
    model, cfg = load_model(run_dir)
    expected = model_integrity.checksum(model.state_dict(), model.architecture())
    assert cfg["model"]["sha256"] == expected
    assert predict.main([str(run_dir), *POINT]) == 0


@pytest.mark.parametrize("kind", TAMPERINGS)
def test_each_tampering_is_refused_with_one_line_and_no_prediction(run_dir, kind, capsys):
    change, rehash, fragment = TAMPERINGS[kind]
    edit(run_dir, change, rehash)
    with pytest.raises(UserError, match=fragment):
        load_model(run_dir)
    assert predict.main([str(run_dir), *POINT]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and str(run_dir) in err
    assert fragment in err


def test_the_scripts_refuse_a_truncated_tensor_with_exit_2(run_dir):
    edit(run_dir, TAMPERINGS["truncated"][0], rehash=True)
    for command in (
        [str(ROOT / "run_predict.sh"), str(run_dir), *POINT],
        [str(ROOT / ".venv/bin/python"), str(ROOT / "plots.py"), str(run_dir)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and "layers.0.coef" in lines[-1]
        assert "Traceback" not in done.stderr


def test_plots_refuse_a_damaged_model_in_process(run_dir, capsys):
    edit(run_dir, TAMPERINGS["NaN knots"][0], rehash=True)
    assert plots.main([str(run_dir)]) == 2
    assert "non-finite" in capsys.readouterr().err


def tensor_bytes_offset(path: Path, tensor: torch.Tensor) -> int:
    data = path.read_bytes()
    offset = data.find(tensor.contiguous().numpy().tobytes())
    assert offset > 0
    return offset


def test_byte_flips_are_refused_or_change_nothing(run_dir):
    """A flipped byte anywhere either makes the file refused or leaves every tensor as saved
    (a flip in zip metadata that no reader uses); inside the tensor data it is always refused."""
    path = run_dir / MODEL_FILE
    original = path.read_bytes()
    reference = load_model(run_dir)[0].state_dict()
    coef_at = tensor_bytes_offset(path, reference["layers.0.coef"])
    rng = random.Random(19)
    positions = [coef_at + 5, coef_at + 40] + rng.sample(range(len(original)), 40)
    for position in positions:
        damaged = bytearray(original)
        damaged[position] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(damaged))
        try:
            state = load_model(run_dir)[0].state_dict()
        except UserError as error:
            assert str(run_dir) in str(error) and "\n" not in str(error)
            continue
        assert position not in (coef_at + 5, coef_at + 40)
        assert all(torch.equal(state[k], reference[k]) for k in reference), position


def test_multiplication_nodes_are_checked_by_their_subnodes(tmp_path):
    run_dir = save_run(tmp_path / "mult", layer_dims=(2, [1, 1], 1))
    model, _ = load_model(run_dir)
    assert model.layers[0].coef.shape[2] == 3  # 1 addition node + 2 factors
    edit(run_dir, state_edit("layers.0.coef", lambda t: t[:, :, :2].clone()), rehash=True)
    with pytest.raises(UserError, match=r"layers.0.coef has shape \[2, 10, 2\].*\[2, 10, 3\]"):
        load_model(run_dir)


def test_legacy_files_without_checksum_load_but_are_still_validated(run_dir):
    def legacy(ckpt):
        ckpt["format"] = "pykan_mit-model-1"
        del ckpt["sha256"]

    edit(run_dir, legacy)
    cfg_path = run_dir / CONFIG_FILE
    cfg_path.write_text(cfg_path.read_text().replace('"sha256"', '"old_sha256"'))
    assert predict.main([str(run_dir), *POINT]) == 0
    edit(run_dir, TAMPERINGS["NaN knots"][0])
    with pytest.raises(UserError, match="non-finite"):
        load_model(run_dir)


def test_a_model_file_beside_another_models_config_is_refused(tmp_path):
    first = save_run(tmp_path / "a", seed=1)
    second = save_run(tmp_path / "b", seed=2)
    (first / MODEL_FILE).write_bytes((second / MODEL_FILE).read_bytes())
    with pytest.raises(UserError, match="differs from the one in the config"):
        load_model(first)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda c: c["state_dict"].pop("layers.1.mask"), "missing tensor layers.1.mask"),
        (lambda c: c["architecture"].update(grid_sizes=[9, 4]), "layers.0.knots has shape"),
        (lambda c: c["architecture"].update(dtype="int8"), "dtype 'int8'"),
        (state_edit("layers.0.mask", lambda t: t * 2), "mask values"),
        (state_edit("layers.0.knots", lambda t: t * 0), "repeat"),
    ],
)
def test_other_inconsistencies_name_the_tensor(run_dir, change, fragment):
    edit(run_dir, change, rehash=True)
    with pytest.raises(UserError, match=fragment):
        load_model(run_dir)


def test_checksum_covers_names_dtypes_and_shapes():
    t = torch.arange(6, dtype=torch.float32)
    base = model_integrity.checksum({"a": t})
    assert base == model_integrity.checksum({"a": t.clone()})
    assert base != model_integrity.checksum({"b": t})
    assert base != model_integrity.checksum({"a": t.reshape(2, 3)})
    assert base != model_integrity.checksum({"a": t.view(torch.int32)})


def test_an_architecture_edit_is_a_checksum_mismatch(run_dir):
    def other_activation(ckpt):
        ckpt["architecture"]["base_activation"] = "tanh"  # a different function, same tensors

    edit(run_dir, other_activation)
    with pytest.raises(UserError, match="checksum mismatch"):
        load_model(run_dir)
