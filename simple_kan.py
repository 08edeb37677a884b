"""SimpleKAN: a stack of AdaptiveKANLayers, its regularisation, pruning, and save/load.

``SimpleKAN([2, 5, 1])`` maps (N, 2) → (N, 1). Each layer keeps its own knot vectors, so after
refinement or range updates the grids differ per layer; `save_model` / `load_model` rebuild every
shape from the saved tensors alone.
"""

import re
import warnings
from pathlib import Path

import torch
from torch import nn

import fileio
import run_folder
from adaptive_kan_layer import AdaptiveKANLayer
from errors import UserError
from run_folder import CONFIG_FILE, MODEL_FILE
from runtime import resolve_device

__all__ = ["SimpleKAN", "load_model", "MODEL_FILE", "CONFIG_FILE"]

FORMAT = "pykan_mit-model-1"


class SimpleKAN(nn.Module):
    def __init__(
        self,
        layer_dims: list[int],
        grid_size: int = 10,
        spline_degree: int = 3,
        grid_range=(-1.0, 1.0),
        base_activation: str = "silu",
        noise_scale: float = 0.1,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        """``grid_range``: the first layer's input range, one (lo, hi) pair or one per input;
        hidden layers start on [-1, 1] and follow their data through `update_grid_range`. The
        model remembers it as ``input_range`` (the range it is trained on: saved with the model,
        used by prediction warnings and plots)."""
        super().__init__()
        if len(layer_dims) < 2 or any(int(d) < 1 for d in layer_dims):
            raise ValueError(f"layer_dims must be >= 2 positive widths, got {layer_dims}")
        self.layer_dims = [int(d) for d in layer_dims]
        pairs = torch.as_tensor(grid_range, dtype=torch.float64).reshape(-1, 2)
        self.input_range = pairs.expand(self.layer_dims[0], 2).tolist()
        self.spline_degree = spline_degree
        self.base_activation = base_activation
        self.layers = nn.ModuleList(
            AdaptiveKANLayer(
                d_in,
                d_out,
                grid_size,
                spline_degree,
                grid_range if i == 0 else (-1.0, 1.0),
                base_activation,
                noise_scale,
                dtype,
                device,
            )
            for i, (d_in, d_out) in enumerate(zip(self.layer_dims[:-1], self.layer_dims[1:]))
        )

    # ------------------------------------------------------------------ evaluation
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The same function through each layer's dense reference path (for tests)."""
        for layer in self.layers:
            x = layer.forward_reference(x)
        return x

    def layer_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The tensor entering each layer, ``[(N, d_0), (N, d_1), ...]`` (one per layer)."""
        inputs = []
        for layer in self.layers:
            inputs.append(x)
            x = layer(x)
        return inputs

    @property
    def grid_sizes(self) -> list[int]:
        return [layer.grid_size for layer in self.layers]

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ regularisation
    def forward_regularized(self, x: torch.Tensor, l1_weight: float, entropy_weight: float):
        """``(y, reg)``: the output and the paper's sparsity penalty (section 2.5.1) in one pass,

        reg = l1_weight * sum_l |Phi_l|_1 + entropy_weight * sum_l S(Phi_l), where
        |phi|_1 = mean_s |phi(x_s)| over the batch, |Phi_l|_1 = sum of its edges' |phi|_1 and
        S(Phi_l) = -sum p log p with p = |phi|_1 / |Phi_l|_1 (entropy of the edge shares).
        phi is the layer's ``edge_activations`` (local basis evaluation, cost independent of
        the grid size).
        """
        reg = x.new_zeros(())
        for layer in self.layers:
            phi = layer.edge_activations(x)  # (N, out, in)
            x = phi.sum(dim=2)
            l1 = phi.abs().mean(dim=0)  # (out, in)
            total = l1.sum()
            p = l1 / (total + 1e-12)
            entropy = -(p * torch.log(p + 1e-12)).sum()
            reg = reg + l1_weight * total + entropy_weight * entropy
        return x, reg

    # ------------------------------------------------------------------ grids
    @torch.no_grad()
    def update_grid_range(
        self, x: torch.Tensor, grid_eps: float = 1.0, margin: float = 0.0
    ) -> bool:
        """Move every layer's grid to the range of the values reaching it (layer by layer, so
        each layer sees the inputs produced by the already updated layers before it).

        ``margin``: hidden layers' grids reach this fraction of their inputs' range beyond it
        on each side. Unseen inputs give hidden values a little outside the range the training
        samples reach, and there a spline only continues linearly (e.g. x1*x2 through
        (x1+x2)^2 - (x1-x2)^2: the corners of the square are rare). The padded ends enter the
        layer's refit as two more samples, valued by the current spline. The first layer sees
        the data themselves.
        A uniform update (``grid_eps`` 1) of a layer whose inputs already span exactly its base
        interval would refit its splines onto the very same knots, adding only rounding: that
        layer is left alone (the first layer on a fixed data set, after the first update).
        Returns whether any grid moved.
        """
        moved = False
        for index, layer in enumerate(self.layers):
            span = x
            if index > 0 and margin > 0:
                lo, hi = x.min(dim=0).values, x.max(dim=0).values
                pad = margin * (hi - lo)
                span = torch.cat([x, (lo - pad)[None], (hi + pad)[None]])
            if grid_eps < 1.0 or not _spans_exactly(layer, span):
                layer.update_grid_range(span, grid_eps)
                moved = True
            x = layer(x)
        return moved

    def refine(
        self,
        x: torch.Tensor,
        k: int | None = None,
        grid_size: int | None = None,
        placement: str = "error",
        y: torch.Tensor | None = None,
        carry: list | None = None,
    ) -> list:
        """Refine every layer in place (see `AdaptiveKANLayer.refine`); the output is preserved
        exactly when new knots are inserted. With targets ``y`` and placement "error", knots go
        where the gradient of the mean squared error w.r.t. each layer's output is concentrated.
        ``carry``: per layer, tensors shaped like its ``coef`` to put through the same insertion
        (returned per layer, None where a layer was re-gridded by least squares).
        """
        out_grads = [None] * len(self.layers)
        with torch.no_grad():
            inputs = self.layer_inputs(x)
        if placement == "error" and y is not None:
            with torch.enable_grad():
                outs, h = [], x
                for layer in self.layers:
                    h = layer(h)
                    outs.append(h)
                loss = ((h - y) ** 2).mean()
                out_grads = torch.autograd.grad(loss, outs)
        carry = carry or [()] * len(self.layers)
        return [
            layer.refine(inp, k=k, grid_size=grid_size, placement=placement, out_grad=g, carry=c)
            for layer, inp, g, c in zip(self.layers, inputs, out_grads, carry)
        ]

    # ------------------------------------------------------------------ importance and pruning
    @torch.no_grad()
    def edge_scores(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Attribution of every edge and node, from the samples x.

        Each edge's raw importance is its mean absolute variation on the data,
        ``E_ji = mean_s |phi_ji(x_s) - mean_s phi_ji|`` (departing from the paper's |phi|_1: an
        edge that only adds a constant carries no information, and a surviving spline absorbs
        the constant when fine-tuning). Scores flow back from the outputs (each output = 1):
        ``A_ji = S_j * E_ji / sum_i' E_ji'`` and ``S_i = sum_j A_ji``, so a hidden node that
        feeds nothing important scores low even when its own activations are large.
        Returns (edge scores per layer, each (out, in); node scores per level, each (d_l,)).
        """
        raw = []
        for layer in self.layers:
            phi = layer.edge_activations(x)
            raw.append((phi - phi.mean(dim=0)).abs().mean(dim=0))  # (out, in)
            x = phi.sum(dim=2)
        node = [None] * (len(self.layers) + 1)
        node[-1] = torch.ones(self.layer_dims[-1], dtype=x.dtype, device=x.device)
        edges = [None] * len(self.layers)
        for index in range(len(self.layers) - 1, -1, -1):
            E = raw[index]
            edges[index] = (
                node[index + 1][:, None] * E / E.sum(dim=1, keepdim=True).clamp_min(1e-30)
            )
            node[index] = edges[index].sum(dim=0)
        return edges, node

    @torch.no_grad()
    def prune(self, x: torch.Tensor, threshold: float = 0.01):
        """Remove edges and hidden nodes whose attribution (`edge_scores`) is below threshold.

        Returns ``(smaller_model, report)``: a new SimpleKAN whose hidden widths shrank to the
        surviving nodes (weights, knots and masks copied), and a dict with the dims before and
        after, the number of edges removed and the inputs that no longer feed anything.
        """
        edges, nodes = self.edge_scores(x)
        keep_edge = [(e >= threshold) & (layer.mask > 0) for e, layer in zip(edges, self.layers)]
        keep_node = [torch.ones(d, dtype=torch.bool, device=x.device) for d in self.layer_dims]
        for level in range(1, len(self.layer_dims) - 1):
            keep_node[level] = nodes[level] >= threshold
        changed = True
        while changed:  # a hidden node needs a live edge in and out; a live edge needs live ends
            changed = False
            for index, ke in enumerate(keep_edge):
                ke &= keep_node[index + 1][:, None] & keep_node[index][None, :]
            for level in range(1, len(self.layer_dims) - 1):
                alive = keep_edge[level - 1].any(dim=1) & keep_edge[level].any(dim=0)
                new = keep_node[level] & alive
                if not torch.equal(new, keep_node[level]):
                    keep_node[level], changed = new, True
        for level in range(1, len(self.layer_dims) - 1):  # a level never vanishes entirely
            if not keep_node[level].any():
                keep_node[level][int(torch.argmax(nodes[level]))] = True
        dims = [int(k.sum()) for k in keep_node]
        small = SimpleKAN(
            dims,
            grid_size=1,
            spline_degree=self.spline_degree,
            base_activation=self.base_activation,
            dtype=self.layers[0].knots.dtype,
            device=self.layers[0].knots.device,
        )
        small.input_range = [list(pair) for pair in self.input_range]
        for index, (old, new) in enumerate(zip(self.layers, small.layers)):
            rows, cols = keep_node[index + 1], keep_node[index]
            state = {
                "knots": old.knots[cols],
                "coef": old.coef[cols][:, :, rows],
                "base_weight": old.base_weight[rows][:, cols],
                "spline_scale": old.spline_scale[rows][:, cols],
                "mask": (old.mask * keep_edge[index])[rows][:, cols],
            }
            new.load_state_dict({key: v.clone() for key, v in state.items()})
        unused = [i for i in range(self.layer_dims[0]) if not bool(keep_edge[0][:, i].any())]
        report = {
            "dims_before": list(self.layer_dims),
            "dims_after": dims,
            "edges_before": int(sum(int(layer.mask.sum()) for layer in self.layers)),
            "edges_after": int(sum(int(layer.mask.sum()) for layer in small.layers)),
            "unused_inputs": [f"x{i + 1}" for i in unused],
        }
        return small, report

    # ------------------------------------------------------------------ save / load
    def architecture(self) -> dict:
        """What rebuilds the model's shapes (saved beside its tensors and in the config)."""
        return {
            "layer_dims": list(self.layer_dims),
            "grid_sizes": self.grid_sizes,
            "spline_degree": self.spline_degree,
            "base_activation": self.base_activation,
            "dtype": str(self.layers[0].knots.dtype).removeprefix("torch."),
            "input_range": [[float(a), float(b)] for a, b in self.input_range],
        }

    def checkpoint(self) -> dict:
        """The model as plain tensors, strings and numbers (loadable with weights_only)."""
        state = {key: v.detach().cpu() for key, v in self.state_dict().items()}
        return {"format": FORMAT, "architecture": self.architecture(), "state_dict": state}

    def save_model(self, run_dir, config: dict) -> None:
        """Write the model file and the config beside it into ``run_dir`` (see run_folder)."""
        run_folder.write_model_files(run_dir, self.checkpoint(), config, self.architecture())

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "SimpleKAN":
        arch, state = ckpt["architecture"], ckpt["state_dict"]
        model = cls(
            arch["layer_dims"],
            grid_size=1,
            spline_degree=int(arch["spline_degree"]),
            grid_range=arch["input_range"],
            base_activation=arch["base_activation"],
            dtype=getattr(torch, arch["dtype"]),
        )
        model.load_state_dict(state)
        return model


def _spans_exactly(layer: AdaptiveKANLayer, x: torch.Tensor) -> bool:
    """Whether the inputs ``x (N, in)`` span the layer's base interval, up to rounding."""
    seen = torch.stack([x.min(dim=0).values, x.max(dim=0).values], dim=1)  # (in, 2)
    grid = layer.grid_range()
    tol = 16 * torch.finfo(grid.dtype).eps * (grid[:, 1] - grid[:, 0]).abs()[:, None]
    return bool(((seen - grid).abs() <= tol).all())


def _load_error(model_file: Path, exc: Exception) -> UserError:
    text = str(exc)
    if "Weights only load failed" in text:  # the safe unpickler met something not a tensor
        found = re.search(r"GLOBAL (\S+)", text)
        what = f"GLOBAL {found.group(1)}" if found else "unsupported objects"
        return UserError(
            f"{model_file}: refused: the file holds code or objects other than tensors "
            f"({what}); nothing from it was run"
        )
    return UserError(f"{model_file}: corrupt or not a model file ({type(exc).__name__})")


def load_model(path, device="cpu") -> tuple[SimpleKAN, dict]:
    """``(model, config)`` from a run folder (or the path of its .pth file), in eval mode.

    Tensors are loaded with ``weights_only=True``: a file carrying code is refused, and nothing
    in the run folder (``src_backup/`` included) is ever imported or executed.
    """
    model_file, config_file = run_folder.model_paths(path)
    if not model_file.is_file():
        raise UserError(f"no model file in {path}: expected {MODEL_FILE}")
    if not config_file.is_file():
        raise UserError(f"no config file beside the model: expected {config_file}")
    config = fileio.read_json_object(config_file, "JSON config")
    device = resolve_device(device)
    try:
        with warnings.catch_warnings():  # torch warns on odd pickle headers: we say it in one line
            warnings.simplefilter("ignore")
            ckpt = torch.load(model_file, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to unpickle safely: corrupt, or carrying code
        raise _load_error(model_file, exc) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{model_file}: not a pykan_mit model file (unknown format)")
    try:
        model = SimpleKAN.from_checkpoint(ckpt)
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{model_file}: damaged model file ({first[:200]})") from None
    return model.to(device).eval(), config
