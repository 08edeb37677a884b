"""Where the arithmetic runs: device names, dtypes, and the CPU thread policy."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from errors import UserError
from layer_kernels import fused_cpu_kernels

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")


def resolve_device(name) -> torch.device:
    """ "auto" → CUDA when available, else the CPU; CUDA on a machine without it is a user error."""
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}': CUDA is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"device '{name}': not a device (use auto, cpu or cuda)") from None


def torch_dtype(name: str) -> torch.dtype:
    """ "float32" / "float64" → the torch dtype."""
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {name!r}")
    return getattr(torch, name)


@contextmanager
def kernel_threads(device: torch.device) -> Iterator[None]:
    """While inside: torch single-threaded when the fused CPU kernels do the work on ``device``.

    The kernels run on their own thread pool; torch's pool would spin between its small
    operations and compete with them. What was changed is restored on exit.
    """
    if torch.device(device).type != "cpu" or not fused_cpu_kernels():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
