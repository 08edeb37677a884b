"""cpu_kernels.py through the fused layer path: wide layers, threads, crowded knots, and
results that do not depend on the number of threads."""

import pytest
import torch
from layer_cases import F64, assert_paths_agree, make_layer, output_and_gradients, sample_inputs

import knots
import layer_kernels

cpu_kernels = pytest.importorskip("cpu_kernels")
DEGREES = [1, 2, 3, 4, 5]


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("grid", ["uniform", "random"])
@pytest.mark.parametrize("k", DEGREES)
def test_fused_kernel_on_wide_layers_matches_dense_reference(k, grid, threads, monkeypatch):
    """Wide layers (the kernels vectorise over the outputs), on one thread and split over
    threads, with a sample count that fills neither the row blocks nor the row ranges evenly."""
    monkeypatch.setattr(cpu_kernels, "SERIAL_WORK", 10**9 if threads == "serial" else 0)
    monkeypatch.setattr(cpu_kernels, "SERIAL_TABLE", 10**9 if threads == "serial" else 0)
    monkeypatch.setattr(cpu_kernels, "THREADS", 3)  # uneven row ranges, one input per thread
    layer = make_layer(3, 11, 7, k, 40 + k, grid)
    layer.contraction = "fused"
    assert_paths_agree(layer, sample_inputs(layer, 77, 40 + k, knots=k > 1), 40 + k)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_fused_kernel_results_do_not_depend_on_the_thread_count(dtype, monkeypatch):
    """Bit for bit: the forward splits rows (each row summed by one thread), the backward splits
    inputs (each gradient entry summed by one thread in sample order)."""
    layer = make_layer(5, 9, 8, 3, 12, "random", dtype=dtype)
    layer.contraction = "fused"
    x = sample_inputs(layer, 301, 12).to(dtype)
    gy = torch.randn(x.shape[0], 9, generator=torch.Generator().manual_seed(12), dtype=dtype)
    results = []
    for threads in (1, 3):
        monkeypatch.setattr(cpu_kernels, "THREADS", threads)
        monkeypatch.setattr(cpu_kernels, "SERIAL_WORK", 0)
        monkeypatch.setattr(cpu_kernels, "SERIAL_TABLE", 0)
        results.append(output_and_gradients(layer, layer.forward, x, gy))
    for one, three in zip(*results):
        assert torch.equal(one, three)


def test_torch_thread_count_neither_changes_results_nor_stays_changed():
    """In a user's own loop torch keeps its own thread count: the layer runs torch's part
    single-threaded beside the kernels' threads (bit-identical for any count) and leaves the
    count as it found it, also when the call fails."""
    layer = make_layer(6, 10, 7, 3, 12, "random", dtype=F64)
    layer.contraction = "fused"
    x = sample_inputs(layer, 257, 12).to(F64)
    gy = torch.randn(x.shape[0], 10, generator=torch.Generator().manual_seed(3), dtype=F64)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(output_and_gradients(layer, layer.forward, x, gy))
            assert torch.get_num_threads() == threads
        with pytest.raises(RuntimeError), layer_kernels.torch_serial():
            assert torch.get_num_threads() == 1
            raise RuntimeError("a failing kernel call")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        for one, same in zip(results[0], other, strict=True):
            assert torch.equal(one, same)


@pytest.mark.parametrize("crowd", [30, 90], ids=["counted-spans", "span-table"])
def test_fused_kernel_on_knots_crowded_into_one_bucket(crowd):
    """Non-uniform knots where many spans share one bucket of the span table (as repeated
    error-driven refinement near one point produces) and empty buckets elsewhere: on a grid
    of few spans (found by counting knots) and of many (found through the table)."""
    layer = make_layer(2, 9, 6, 3, 5)
    crowded = torch.cat(
        [torch.linspace(-1, 0.3, 4), 0.3 + torch.logspace(-6, -1, crowd), torch.ones(1)]
    )
    layer.set_grid(
        knots.extend(crowded.double().expand(2, -1).contiguous(), 3),
        layer.coef.new_zeros(2, crowd + 7, 9).normal_(),
    )
    assert (layer.grid_size > cpu_kernels.COUNT_SPANS) == (crowd == 90)
    layer.contraction = "fused"
    x = torch.cat(
        [
            sample_inputs(layer, 100, 5),
            0.3 + torch.logspace(-7, -1, 60, dtype=F64)[:, None].expand(60, 2),
        ]
    )
    # spans down to 1e-6 wide scale the slopes' rounding by 1/h: a looser tolerance for them
    assert_paths_agree(layer, x, 5, tol=1e-8)
