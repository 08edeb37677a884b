"""arrays.py: conversions and the RMSE, against numpy."""

import numpy as np
import torch

from arrays import as_tensor_like, rmse, to_numpy


def test_to_numpy_gives_a_detached_float64_copy():
    t = torch.tensor([1.5, 2.5], dtype=torch.float32, requires_grad=True)
    a = to_numpy(t * 2)
    assert a.dtype == np.float64 and a.tolist() == [3.0, 5.0]
    assert to_numpy([1, 2]).dtype == np.float64


def test_as_tensor_like_takes_the_reference_dtype_and_device():
    ref = torch.zeros(1, dtype=torch.float64)
    assert as_tensor_like(np.array([1, 2], dtype=np.int32), ref).dtype == torch.float64
    assert as_tensor_like(torch.ones(2, dtype=torch.float32), ref).dtype == torch.float64


def test_rmse_of_tensors_and_of_arrays_is_numpys():
    gen = np.random.default_rng(0)
    a, b = gen.normal(size=(50, 3)), gen.normal(size=(50, 3))
    want = np.sqrt(np.mean((a - b) ** 2))
    assert rmse(torch.from_numpy(a), torch.from_numpy(b)) == want
    assert rmse(a, b) == want
    assert rmse(a, torch.from_numpy(b)) == want
