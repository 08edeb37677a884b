"""A full disk or an unwritable folder during a run: one line, exit != 0, earlier files whole."""

import errno
import json
import os
import subprocess

import pytest
from cli_runs import assert_whole, child_env, cli_args, script_command

import fileio
import pykan_mit
from errors import WriteError
from run_folder import LOG_FILE, STAGED_MODEL_FILE

SMALL = {
    "layer_dims": [2, 3, 1],
    "grid_size": 5,
    "num_steps": 40,
    "dataset_size": 200,
    "test_size": 100,
    "log_interval": 20,
    "checkpoint_interval": 20,
}


def argv(run, **keys) -> list[str]:
    return cli_args(run, {**SMALL, **keys})


def fail_at(monkeypatch, n: int, code: int = errno.ENOSPC) -> list[str]:
    """Make the n-th atomic write (1-based) fail after writing part of its file, as a full disk
    does; returns the list of paths written (or tried)."""
    original, seen = fileio.atomic_write, []

    def atomic_write(path, write):
        seen.append(str(path))
        if len(seen) != n:
            return original(path, write)

        def broken(tmp):
            with open(tmp, "w") as f:
                f.write("half")
            raise OSError(code, os.strerror(code))

        return original(path, broken)

    monkeypatch.setattr(fileio, "atomic_write", atomic_write)
    return seen


@pytest.fixture(scope="module")
def writes(tmp_path_factory) -> list[str]:
    """The files a successful run writes, in order."""
    run = tmp_path_factory.mktemp("ok") / "run"
    with pytest.MonkeyPatch.context() as mp:
        seen = fail_at(mp, 0)
        assert pykan_mit.main(argv(run)) == 0
    return [os.path.basename(p) for p in seen]


def test_a_run_writes_its_files_atomically(writes):
    assert writes[0] == "pykan_mit_config.json" and "mse_loss_plot.pdf" in writes
    assert writes.count(STAGED_MODEL_FILE) == 3  # two checkpoints and the final model


@pytest.mark.parametrize("which", ["first", "checkpoint", "final model", "metrics", "plot"])
def test_a_full_disk_at_any_write_ends_with_one_line(which, writes, tmp_path, monkeypatch, capsys):
    n = {
        "first": 1,
        "checkpoint": writes.index(STAGED_MODEL_FILE) + 1,
        "final model": len(writes) - writes[::-1].index(STAGED_MODEL_FILE),
        "metrics": writes.index("metrics.json") + 1,
        "plot": len(writes),
    }[which]
    run = tmp_path / "run"
    seen = fail_at(monkeypatch, n)
    code = pykan_mit.main(argv(run))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(seen) == n
    assert err[-1] == (
        f"error: cannot write {seen[-1]}: No space left on device; "
        "the files written before are intact"
    )
    assert not [line for line in err if "Traceback" in line]
    assert_whole(run)
    if n > 1:  # the log (started after the first write) holds the lines until the failure
        assert "run folder:" in (run / LOG_FILE).read_text()


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "metrics.json"
    fileio.write_json(path, {"kept": 1})

    def broken(tmp):
        with open(tmp, "w") as f:
            f.write("{half")
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    with pytest.raises(WriteError, match="File too large"):
        fileio.atomic_write(path, broken)
    assert json.loads(path.read_text()) == {"kept": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_an_unwritable_run_folder_is_one_line(tmp_path, monkeypatch, capsys):
    """A folder that refuses new files (permissions, a read-only mount): the temporary file of
    the first write cannot be created."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code = pykan_mit.main(argv(tmp_path / "run"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: cannot write ")
    assert "Permission denied" in err[-1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_really_refuses(tmp_path, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        code = pykan_mit.main(argv(parent / "run"))
    finally:
        parent.chmod(0o700)
    assert code == 2 and "cannot create" in capsys.readouterr().err


def test_a_file_size_limit_in_a_real_process_ends_with_one_line(writes, tmp_path):
    """The kernel refuses writes past RLIMIT_FSIZE (EFBIG), as a full disk refuses them. The
    same run trained in this process first (``writes``), so the CPU kernels' cache is complete
    and the limited process only reads it."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (10000, 10000))

    run = tmp_path / "run"
    done = subprocess.run(
        script_command(argv(run, checkpoint_interval=None)),
        preexec_fn=limit,
        capture_output=True,
        text=True,
        env=child_env(PYTHONDONTWRITEBYTECODE="1"),  # no cut .pyc
        timeout=240,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert lines[-1].startswith("error: cannot write ") and "File too large" in lines[-1]
    assert "Traceback" not in done.stderr
    assert_whole(run)
