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


def test_long_data_generation_reports_progress_and_gives_the_same_points(
    monkeypatch, progress_recorder
):
    cfg = resolved(dataset_size=2500, test_size=100)
    plain = datasets.make_data(cfg, "cpu", torch.float32)
    monkeypatch.setattr(datasets, "EVAL_CHUNK", 1000)
    bar = progress_recorder
    chunked = datasets.make_data(cfg, "cpu", torch.float32, progress=bar)
    assert torch.equal(plain.y_train, chunked.y_train)
    assert bar.calls[0] == ("start", 2500, "training points", None)
    assert [c for c in bar.calls if c[0] == "update"] == [
        ("update", 1000),
        ("update", 2000),
        ("update", 2500),
    ]
    assert bar.calls[-1] == ("close",)


def _gpu(monkeypatch, free: int, total: int = 80 * 10**9) -> list:
    """A CUDA device with ``free`` bytes free, as torch.cuda reports it (no GPU here)."""
    asked = []

    def mem_get_info(device=None):
        asked.append(torch.device(device))
        return free, total

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    return asked


def test_on_cuda_the_device_part_is_compared_with_the_free_device_memory(monkeypatch):
    cfg = resolved(dataset_size=10**6, batch_size=None)
    need = memory_estimate.estimate(cfg)
    on_device = need.total - need.parts[memory_estimate.PROCESS]
    host = (10**12, "MemAvailable")
    asked = _gpu(monkeypatch, on_device + 10**6)
    memory_estimate.check(cfg, available=host, device=torch.device("cuda"))  # just fits
    assert asked == [torch.device("cuda")]
    _gpu(monkeypatch, on_device - 10**6)
    with pytest.raises(ConfigError) as refused:
        memory_estimate.check(cfg, available=host, device="cuda:0")
    line = str(refused.value)
    assert line.startswith("not enough memory on cuda:0: this configuration needs about ")
    assert f"{memory_estimate.human(on_device)} on cuda:0" in line
    assert "(free on cuda:0, torch.cuda.mem_get_info); lower " in line and "\n" not in line


def test_on_cuda_the_host_holds_only_the_process_and_the_data(monkeypatch):
    cfg = resolved(dataset_size=10**6, batch_size=None)
    need = memory_estimate.estimate(cfg)
    host = need.parts[memory_estimate.PROCESS] + need.parts["data"]
    assert host < need.total
    _gpu(monkeypatch, 10**12)
    memory_estimate.check(cfg, available=(host + 10**6, "MemAvailable"), device="cuda")
    with pytest.raises(ConfigError, match="^not enough memory: .* is available \\(MemAvailable\\)"):
        memory_estimate.check(cfg, available=(host - 10**6, "MemAvailable"), device="cuda")
    with pytest.raises(ConfigError):  # on the CPU the whole estimate is the host's
        memory_estimate.check(cfg, available=(host + 10**6, "MemAvailable"))


def test_a_device_that_cannot_say_its_free_memory_is_not_checked(monkeypatch):
    def broken(device=None):
        raise RuntimeError("no CUDA driver")

    monkeypatch.setattr(torch.cuda, "mem_get_info", broken)
    assert memory_estimate.device_memory("cuda") == (0, "")
    assert memory_estimate.device_memory("meta") == (0, "")  # no torch.meta module
    cfg = resolved(layer_dims=[2, 100000, 100000, 1])
    memory_estimate.check(cfg, available=(0, ""), device="cuda")


def test_the_command_line_refuses_what_does_not_fit_on_the_gpu_in_one_line(
    tmp_path, monkeypatch, capsys
):
    _gpu(monkeypatch, 10 * 10**6)
    run = tmp_path / "run"
    code = pykan_mit.main(["--dir", str(run), "--set", 'device="cuda"'])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: not enough memory on cuda: ") and "10 MB is available" in err
    assert not run.exists()
