"""Fixtures shared by the test modules (pytest finds them here; no test module imports another)."""

import pytest

import config


@pytest.fixture
def write_file(tmp_path):
    """``write_file(text, name="data.csv") -> str``: a text file in the test's tmp_path."""

    def write(text: str, name: str = "data.csv") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


@pytest.fixture
def small_cfg():
    """``small_cfg(**keys)``: a validated config for a [2, 3, 1] network on 300 points, 60 steps,
    with ``keys`` on top."""

    def make(**keys) -> dict:
        cfg = dict(config.DEFAULTS, layer_dims=[2, 3, 1], grid_size=5, dataset_size=300)
        cfg.update(test_size=100, num_steps=60, learning_rate=0.01, log_interval=1000)
        cfg.update(keys)
        return config.validate_config(cfg, "test")

    return make


class ProgressRecorder:
    """A `training.Progress` that records its calls: ("start", total, label, unit),
    ("update", done), ("close",)."""

    def __init__(self):
        self.calls = []

    def start(self, total, label, unit=None):
        self.calls.append(("start", total, label, unit))

    def update(self, done, train_rmse=None):
        self.calls.append(("update", done))

    def close(self):
        self.calls.append(("close",))


@pytest.fixture
def progress_recorder():
    """A fresh `ProgressRecorder`."""
    return ProgressRecorder()
