"""runtime.py: device names, dtypes and the scoped thread policy."""

import pytest
import torch

import runtime
from errors import UserError
from layer_kernels import fused_cpu_kernels


def test_auto_resolves_to_a_device_that_exists():
    device = runtime.resolve_device("auto")
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert runtime.resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_user_error():
    with pytest.raises(UserError, match="CUDA is not available"):
        runtime.resolve_device("cuda")


def test_a_bad_device_name_is_a_user_error():
    with pytest.raises(UserError, match="not a device"):
        runtime.resolve_device("tpu")


def test_dtype_names():
    assert runtime.torch_dtype("float64") is torch.float64
    with pytest.raises(ValueError):
        runtime.torch_dtype("float16")


def test_the_thread_policy_is_scoped_and_restores_what_it_changed():
    before = torch.get_num_threads()
    with runtime.kernel_threads(torch.device("cpu")):
        inside = torch.get_num_threads()
    assert torch.get_num_threads() == before
    assert inside == (1 if fused_cpu_kernels() else before)
    with pytest.raises(RuntimeError), runtime.kernel_threads(torch.device("cpu")):
        raise RuntimeError("a failing run")
    assert torch.get_num_threads() == before
