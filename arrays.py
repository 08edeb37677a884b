"""Tensors and arrays: the one conversion each way, and the one error measure (RMSE)."""

import math

import numpy as np
import torch


def to_numpy(values) -> np.ndarray:
    """A float64 numpy array of a tensor (any device, detached from the graph) or array-like."""
    if torch.is_tensor(values):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def as_tensor_like(values, reference: torch.Tensor) -> torch.Tensor:
    """``values`` (a tensor or array-like) as a tensor of ``reference``'s dtype and device."""
    tensor = values if torch.is_tensor(values) else torch.as_tensor(np.asarray(values))
    return tensor.to(dtype=reference.dtype, device=reference.device)


def rmse(prediction, target) -> float:
    """Root mean squared error over all entries. Two tensors are reduced where they are (one
    host sync at the end); anything else is compared as float64 arrays."""
    if torch.is_tensor(prediction) and torch.is_tensor(target):
        return math.sqrt(float(torch.mean((prediction - target) ** 2)))
    return float(np.sqrt(np.mean((to_numpy(prediction) - to_numpy(target)) ** 2)))
