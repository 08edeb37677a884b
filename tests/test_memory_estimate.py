"""The memory check refuses configurations that cannot fit, before any work."""

import time

import pytest
import torch

import config
import datasets
import memory_estimate
import pykan_mit
from errors import ConfigError
from simple_kan import SimpleKAN


def resolved(**keys) -> dict:
    return config.validate_config(dict(config.DEFAULTS, **keys), "test")


def test_the_40_gb_network_is_refused_in_under_a_second_with_the_estimate(tmp_path, capsys):
    run = tmp_path / "run"
    started = time.perf_counter()
    code = pykan_mit.main(["--dir", str(run), "--set", "layer_dims=[2,100000,100000,1]"])
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 2 and elapsed < 1.0, (code, elapsed)
    assert err.count("\n") == 1 and err.startswith("error: not enough memory")
    need = memory_estimate.estimate(resolved(layer_dims=[2, 100000, 100000, 1])).total
    assert memory_estimate.human(need) in err and "is available" in err
    assert "lower layer_dims" in err
    assert need > 40e9
    assert not run.exists()


@pytest.mark.parametrize("dims", [[2, 5, 1], [3, [2, 2], 4, 1], [2, [0, 3], 1]])
def test_the_parameter_count_is_the_models(dims):
    cfg = resolved(layer_dims=dims, grid_size=7, update_strategy="none", mult_arity=2)
    assert memory_estimate.parameter_count(cfg) == SimpleKAN(dims, grid_size=7).num_parameters


def test_the_grid_bound_follows_refinement():
    assert memory_estimate.largest_grid(resolved(update_strategy="none", grid_size=7)) == 7
    assert memory_estimate.largest_grid(resolved(grid_schedule=[5, 20, 500])) == 100
    fixed = resolved(update_strategy="fixed", fixed_update_interval=1000, num_steps=3000)
    assert memory_estimate.largest_grid(fixed) == 10 + 3 * 5


def test_a_machine_with_little_memory_refuses_naming_the_key():
    cfg = resolved(dataset_size=10**8)
    with pytest.raises(ConfigError) as refused:
        memory_estimate.check(cfg, available=(2 * 10**9, "MemAvailable"))
    message = str(refused.value)
    assert "2 GB is available (MemAvailable)" in message
    assert "lower dataset_size" in message
    memory_estimate.check(resolved(), available=(2 * 10**9, "MemAvailable"))  # the demo fits


def test_more_data_or_float64_needs_more():
    small = memory_estimate.estimate(resolved()).total
    assert memory_estimate.estimate(resolved(dataset_size=10**6)).total > small
    assert memory_estimate.estimate(resolved(dtype="float64")).total > small


def test_available_memory_is_read_from_the_machine():
    free, source = memory_estimate.available_memory()
    assert free > memory_estimate.resident_memory() > 0
    assert source in ("MemAvailable", "the cgroup memory limit")


class Recorder:
    def __init__(self):
        self.calls = []

    def start(self, total, label):
        self.calls.append(("start", total, label))

    def update(self, done, train_rmse=None):
        self.calls.append(("update", done))

    def close(self):
        self.calls.append(("close",))


def test_long_data_generation_reports_progress_and_gives_the_same_points(monkeypatch):
    cfg = resolved(dataset_size=2500, test_size=100)
    plain = datasets.make_data(cfg, "cpu", torch.float32)
    monkeypatch.setattr(datasets, "EVAL_CHUNK", 1000)
    bar = Recorder()
    chunked = datasets.make_data(cfg, "cpu", torch.float32, progress=bar)
    assert torch.equal(plain.y_train, chunked.y_train)
    assert bar.calls[0] == ("start", 2500, "training points")
    assert [c for c in bar.calls if c[0] == "update"] == [
        ("update", 1000),
        ("update", 2000),
        ("update", 2500),
    ]
    assert bar.calls[-1] == ("close",)
