"""Integrity of saved models: a model file is either exactly what training wrote, or refused.

On save, `checksum` hashes the architecture (as sorted JSON: it decides the function as much as
the weights do, e.g. the base activation or the input range) and the state tensors (SHA-256 over
each tensor's name, dtype, shape and bytes, in sorted name order); the checksum goes into the
model file and into the "model" block of the config beside it. On load, `check` first
validates the content independently of the checksum, then compares the checksum:

- the architecture: layer dims and multiplication arities that `nodes.parse_levels` accepts, one
  grid size per layer, a spline degree, a dtype of float32 / float64;
- exactly the tensors of that architecture, each of the recorded dtype and of the shape it
  implies: layer l fed by ``in`` nodes and feeding ``out`` subnodes (multiplication nodes count
  their factors) holds ``knots (in, M)`` with ``M = G + 2k + 1``, ``coef (in, M-k-1, out)``,
  ``base_weight``, ``spline_scale`` and ``mask (out, in)``;
- every value finite, masks 0 or 1;
- knots non-decreasing along each input, its k outer knots on each side strictly increasing
  (the layer extends its grid beyond the base interval by single knots, see `knots.extend`),
  no knot repeated more than k+1 times, and a base interval of positive length;
- the checksum (files of the previous format, ``pykan_mit-model-1``, have none and are checked
  on their content alone), and the config's copy of it when the config has one.

Each refusal is a `UserError` naming the file, the tensor and what is wrong with it.
"""

import hashlib
import json
from pathlib import Path

import torch

from errors import UserError
from nodes import parse_levels

FORMAT = "pykan_mit-model-2"
LEGACY_FORMATS = ("pykan_mit-model-1",)  # no checksum: loaded after the content checks
TENSORS = ("knots", "coef", "base_weight", "spline_scale", "mask")
DTYPES = ("float32", "float64")
CHECKSUM_KEY = "sha256"


def checksum(state: dict, architecture: dict | None = None) -> str:
    """SHA-256 of the architecture (as sorted JSON, when given) and the tensors in ``state``
    (name → tensor), in sorted name order."""
    digest = hashlib.sha256()
    if architecture is not None:
        digest.update(json.dumps(architecture, sort_keys=True).encode("utf-8") + b"\0")
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        header = f"{name}\0{str(tensor.dtype).removeprefix('torch.')}\0{list(tensor.shape)}\0"
        digest.update(header.encode("utf-8"))
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _fail(path: Path, what: str):
    raise UserError(f"{path}: refused: {what}")


def _architecture(path: Path, arch) -> tuple[list, int, str]:
    """(levels, spline degree, dtype name) of a saved architecture, or a refusal."""
    if not isinstance(arch, dict):
        _fail(path, "no architecture block")
    try:
        levels = parse_levels(arch["layer_dims"], arch.get("mult_arity", 2))
    except KeyError:
        _fail(path, "the architecture has no layer_dims")
    except (ValueError, TypeError) as exc:
        _fail(path, f"architecture layer_dims / mult_arity invalid ({str(exc)[:160]})")
    k, dtype = arch.get("spline_degree"), arch.get("dtype")
    if type(k) is not int or not 1 <= k <= 10:
        _fail(path, f"architecture spline_degree {k!r} is not an integer in 1..10")
    if dtype not in DTYPES:
        _fail(path, f"architecture dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    sizes = arch.get("grid_sizes")
    n_layers = len(levels) - 1
    if (
        not isinstance(sizes, list)
        or len(sizes) != n_layers
        or not all(type(g) is int and g >= 1 for g in sizes)
    ):
        _fail(path, f"architecture grid_sizes {sizes!r} is not {n_layers} positive integer(s)")
    return levels, k, dtype


def expected_shapes(levels, grid_sizes: list[int], k: int) -> dict[str, tuple[int, ...]]:
    """Every state tensor's name → the shape the architecture implies."""
    shapes = {}
    for index, (source, target, grid) in enumerate(zip(levels[:-1], levels[1:], grid_sizes)):
        n_in, n_out, m = source.n_nodes, target.n_sub, grid + 2 * k + 1
        shapes[f"layers.{index}.knots"] = (n_in, m)
        shapes[f"layers.{index}.coef"] = (n_in, m - k - 1, n_out)
        for name in ("base_weight", "spline_scale", "mask"):
            shapes[f"layers.{index}.{name}"] = (n_out, n_in)
    return shapes


def _check_knots(path: Path, name: str, knots: torch.Tensor, k: int) -> None:
    gaps = knots[:, 1:] - knots[:, :-1]  # (in, M-1)
    bad = (gaps < 0).any(dim=1)
    if bad.any():
        _fail(path, f"tensor {name}: knots of input {int(bad.nonzero()[0])} decrease")
    outer = torch.cat([gaps[:, :k], gaps[:, -k:]], dim=1)
    bad = (outer <= 0).any(dim=1)
    if bad.any():
        row = int(bad.nonzero()[0])
        _fail(path, f"tensor {name}: the {k} outer knots of input {row} repeat (must increase)")
    n = knots.shape[1] - k - 1
    bad = knots[:, n] <= knots[:, k]
    if bad.any():
        _fail(path, f"tensor {name}: empty base interval for input {int(bad.nonzero()[0])}")
    run = gaps == 0
    for _ in range(k):  # run[:, i]: knots i .. i+k+1 all equal (multiplicity > k+1)
        run = run[:, :-1] & run[:, 1:]
    if run.numel() and run.any():
        row = int(run.any(dim=1).nonzero()[0])
        _fail(path, f"tensor {name}: a knot of input {row} repeats more than {k + 1} times")


def _check_tensor(path: Path, name: str, tensor, shape, dtype: str, k: int) -> None:
    if not isinstance(tensor, torch.Tensor):
        _fail(path, f"{name} is not a tensor")
    found = str(tensor.dtype).removeprefix("torch.")
    if found != dtype:
        _fail(path, f"tensor {name} has dtype {found}, the architecture records {dtype}")
    if tuple(tensor.shape) != shape:
        _fail(
            path,
            f"tensor {name} has shape {list(tensor.shape)}, the architecture implies {list(shape)}",
        )
    if not torch.isfinite(tensor).all():
        count = int((~torch.isfinite(tensor)).sum())
        _fail(path, f"tensor {name} holds {count} non-finite value(s) (NaN or inf)")
    if name.endswith(".mask") and not ((tensor == 0) | (tensor == 1)).all():
        _fail(path, f"tensor {name}: mask values other than 0 and 1")
    if name.endswith(".knots"):
        _check_knots(path, name, tensor, k)


def check(path, ckpt, config: dict | None = None) -> None:
    """Refuse (`UserError`) a loaded model file ``ckpt`` (read from ``path``) unless its content
    is consistent and its checksum, and the config's copy of it, match (see the module doc)."""
    path = Path(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (FORMAT, *LEGACY_FORMATS):
        _fail(path, "not a pykan_mit model file (unknown format)")
    levels, k, dtype = _architecture(path, ckpt.get("architecture"))
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        _fail(path, "no state_dict of tensors")
    shapes = expected_shapes(levels, ckpt["architecture"]["grid_sizes"], k)
    missing = [name for name in shapes if name not in state]
    extra = [name for name in state if name not in shapes]
    if missing or extra:
        what = f"missing tensor {missing[0]}" if missing else f"unexpected tensor {extra[0]!r}"
        _fail(path, f"{what} for the architecture {ckpt['architecture']['layer_dims']}")
    for name, shape in shapes.items():
        _check_tensor(path, name, state[name], shape, dtype, k)
    if ckpt["format"] in LEGACY_FORMATS:
        return
    recorded = ckpt.get(CHECKSUM_KEY)
    if not isinstance(recorded, str):
        _fail(path, f"no {CHECKSUM_KEY} checksum recorded")
    if checksum(state, ckpt["architecture"]) != recorded:
        _fail(path, "checksum mismatch: the model is not the one training wrote")
    block = (config or {}).get("model")
    beside = block.get(CHECKSUM_KEY) if isinstance(block, dict) else None
    if beside is not None and beside != recorded:
        _fail(path, "its checksum differs from the one in the config beside it (another model)")
