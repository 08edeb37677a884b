"""run_folder.py: unique folders, the log, and every write landing whole under its name."""

import json

import numpy as np
import pytest
import torch

import fileio
import run_folder
from errors import UserError
from run_folder import RunFolder


def test_default_run_folders_are_unique(tmp_path):
    folders = [RunFolder.create(base=tmp_path, echo=None) for _ in range(3)]
    assert len({f.path.name for f in folders}) == 3
    assert all(f.path.parent == tmp_path for f in folders)


def test_an_explicit_folder_must_be_new_or_empty(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert RunFolder.create(str(empty), echo=None).path == empty
    (empty / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="already exists and is not an empty folder"):
        RunFolder.create(str(empty))
    assert RunFolder.create(str(tmp_path / "a" / "b"), echo=None).path.is_dir()


def test_log_lines_go_to_the_echo_writer_and_to_the_log_file(tmp_path):
    shown = []
    run = RunFolder(tmp_path, echo=shown.append)
    run.log("first")
    run.log("second")
    run.close()
    assert shown == ["first", "second"]
    assert (tmp_path / run_folder.LOG_FILE).read_text() == "first\nsecond\n"
    quiet = RunFolder(tmp_path, echo=None)
    quiet.log("third")
    quiet.close()
    assert (tmp_path / run_folder.LOG_FILE).read_text().endswith("second\nthird\n")


def test_every_document_is_written_under_its_name(tmp_path):
    run = RunFolder(tmp_path, echo=None)
    run.write_config({"seed": 1}, {"layer_dims": [2, 1]})
    run.write_metrics({"test_rmse": 0.5})
    run.write_history({"step": [1]})
    run.write_symbolic({"ok": False})
    run.write_formulas(["x1 + x2"], ["x_{1} + x_{2}"])
    run.write_samples({"x_train": np.zeros((2, 1))})
    config = run_folder.read_document(tmp_path, run_folder.CONFIG_FILE)
    assert config == {"seed": 1, "model": {"layer_dims": [2, 1]}}
    assert run_folder.read_document(tmp_path, run_folder.METRICS_FILE) == {"test_rmse": 0.5}
    assert run_folder.read_document(tmp_path, "absent.json") is None
    assert (tmp_path / run_folder.FORMULA_TEXT_FILE).read_text() == "x1 + x2\n"
    assert (tmp_path / run_folder.FORMULA_LATEX_FILE).read_text() == "$$x_{1} + x_{2}$$\n"
    assert json.loads((tmp_path / run_folder.SYMBOLIC_FILE).read_text()) == {"ok": False}
    with np.load(tmp_path / run_folder.SAMPLES_FILE) as samples:
        assert samples["x_train"].shape == (2, 1)


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    run = RunFolder(tmp_path, echo=None)
    run.write_metrics({"test_rmse": 0.5})

    def broken_dump(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.json, "dumps", broken_dump)
    with pytest.raises(OSError):
        run.write_metrics({"test_rmse": 0.25})
    assert run_folder.read_document(tmp_path, run_folder.METRICS_FILE) == {"test_rmse": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == [run_folder.METRICS_FILE]


def test_model_paths_accept_the_folder_or_the_model_file(tmp_path):
    model_file = tmp_path / run_folder.MODEL_FILE
    model_file.write_bytes(b"")
    expected = (model_file, tmp_path / run_folder.CONFIG_FILE)
    assert run_folder.model_paths(tmp_path) == expected
    assert run_folder.model_paths(model_file) == expected
    with pytest.raises(UserError, match="not found"):
        run_folder.model_paths(tmp_path / "nowhere")


def test_the_backup_holds_the_code_and_the_config_given(tmp_path):
    config = tmp_path / "mine.input"
    config.write_text("{}")
    run = RunFolder(tmp_path / "run", echo=None)
    run.path.mkdir()
    run.backup_sources(str(config))
    backup = run.path / run_folder.BACKUP_DIR
    assert (backup / "run_folder.py").is_file() and (backup / "pykan_mit.input").is_file()
    assert (backup / "config_used_mine.input").read_text() == "{}"


def _model(seed: int):
    from simple_kan import SimpleKAN

    torch.manual_seed(seed)
    return SimpleKAN([2, 3, 1], grid_size=4)


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("stop", ["model", "config", "rename", None])
@pytest.mark.parametrize("first", [False, True], ids=["replacing", "first write"])
def test_the_model_and_config_pair_loads_whenever_writing_stops(tmp_path, monkeypatch, stop, first):
    """A crash at any step of replacing the pair leaves the old pair or the new one, each
    loading as itself (never a model with another model's config)."""
    from simple_kan import load_model

    old, new = _model(0), _model(1)
    assert not _same(old, new)
    if not first:
        old.save_model(tmp_path, {"seed": 0})
    step = {"model": "save_tensors", "config": "write_json", "rename": "rename"}.get(stop)
    if step is not None:

        def crash(*args, **kwargs):
            raise KeyboardInterrupt  # what a kill at this point leaves: the steps before

        monkeypatch.setattr(fileio, step, crash)
    try:
        new.save_model(tmp_path, {"seed": 1})
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert not [n for n in names if n.startswith(".")], names
    if first and stop in ("model", "config"):  # nothing names a model yet: none to load
        with pytest.raises(UserError):
            load_model(tmp_path)
        return
    loaded, config = load_model(tmp_path)
    expected = old if stop in ("model", "config") else new
    assert _same(loaded, expected) and config["seed"] == (0 if expected is old else 1)
    assert (run_folder.STAGED_MODEL_FILE in names) == (stop in ("config", "rename"))
