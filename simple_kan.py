"""SimpleKAN: a stack of AdaptiveKANLayers, its regularisation, pruning, and save/load.

``SimpleKAN([2, 5, 1])`` maps (N, 2) → (N, 1); ``SimpleKAN([2, [0, 1], 1])`` computes its hidden
node as the product of two subnodes (KAN 2.0 multiplication nodes, nodes.py). Each layer keeps
its own knot vectors, so after refinement or range updates the grids differ per layer;
`save_model` / `load_model` rebuild every shape from the saved tensors alone.
"""

import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

import fileio
import model_integrity
import pruning
import run_folder
from adaptive_kan_layer import AdaptiveKANLayer
from errors import UserError
from nodes import combine, parse_levels
from run_folder import CONFIG_FILE, MODEL_FILE
from runtime import resolve_device

__all__ = ["SimpleKAN", "load_model", "MODEL_FILE", "CONFIG_FILE"]

FORMAT = model_integrity.FORMAT


class SimpleKAN(nn.Module):
    def __init__(
        self,
        layer_dims: list,
        grid_size: int = 10,
        spline_degree: int = 3,
        grid_range=(-1.0, 1.0),
        base_activation: str = "silu",
        noise_scale: float = 0.1,
        dtype: torch.dtype | None = None,
        device=None,
        mult_arity=2,
        input_names: list[str] | None = None,
    ):
        """``layer_dims``: widths ``[n_in, ..., n_out]``, each hidden one an integer or a KAN 2.0
        pair ``[n_add, n_mult]`` with ``mult_arity`` (an integer, or one list of arities per
        level; see nodes.py). ``grid_range``: the first layer's input range, one (lo, hi) pair or
        one per input; hidden layers start on [-1, 1] and follow their data through
        `update_grid_range`. The model remembers it as ``input_range`` (the range it is trained
        on: saved with the model, used by prediction warnings and plots), and the names of its
        inputs as ``input_names`` (default x1..xn)."""
        super().__init__()
        self.levels = parse_levels(layer_dims, mult_arity)
        self.layer_dims = [level.width() for level in self.levels]
        self.mult_arity = [list(level.arities) for level in self.levels]
        n_in = self.levels[0].n_nodes
        pairs = torch.as_tensor(grid_range, dtype=torch.float64).reshape(-1, 2)
        self.input_range = pairs.expand(n_in, 2).tolist()
        self.input_names = list(input_names or [f"x{i + 1}" for i in range(n_in)])
        if len(self.input_names) != n_in:
            raise ValueError(f"{len(self.input_names)} input names for {n_in} inputs")
        self.spline_degree = spline_degree
        self.base_activation = base_activation
        self.layers = nn.ModuleList(
            AdaptiveKANLayer(
                source.n_nodes,
                target.n_sub,
                grid_size,
                spline_degree,
                grid_range if i == 0 else (-1.0, 1.0),
                base_activation,
                noise_scale,
                dtype,
                device,
            )
            for i, (source, target) in enumerate(zip(self.levels[:-1], self.levels[1:]))
        )

        fk = {"dtype": self.layers[0].knots.dtype, "device": self.layers[0].knots.device}
        n_out = self.levels[-1].n_nodes
        for name, size, value in (("in_shift", n_in, 0.0), ("in_scale", n_in, 1.0)) + (
            ("out_shift", n_out, 0.0),
            ("out_scale", n_out, 1.0),
        ):  # the data's units (units.py): identity until `set_units`; kept in the architecture
            self.register_buffer(name, torch.full((size,), value, **fk), persistent=False)
        self.has_units = False

    # ------------------------------------------------------------------ units
    def set_units(self, units) -> None:
        """Take in a `units.Units` map: the network, trained in standardised coordinates, then
        maps the data's inputs to the data's outputs."""
        for name in ("in_shift", "in_scale", "out_shift", "out_scale"):
            getattr(self, name).copy_(torch.as_tensor(getattr(units, name), dtype=torch.float64))
        self.has_units = True

    def units(self) -> dict | None:
        """The units map as plain lists (None: identity)."""
        if not self.has_units:
            return None
        return {
            n: getattr(self, n).tolist() for n in ("in_shift", "in_scale", "out_shift", "out_scale")
        }

    def net_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Data inputs → the network's (standardised) coordinates."""
        return (x - self.in_shift) / self.in_scale if self.has_units else x

    def _data_outputs(self, h: torch.Tensor) -> torch.Tensor:
        return h * self.out_scale + self.out_shift if self.has_units else h

    # ------------------------------------------------------------------ evaluation
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.net_inputs(x)
        for layer, level in zip(self.layers, self.levels[1:]):
            x = combine(level, layer(x))
        return self._data_outputs(x)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The same function through each layer's dense reference path (for tests)."""
        x = self.net_inputs(x)
        for layer, level in zip(self.layers, self.levels[1:]):
            x = combine(level, layer.forward_reference(x))
        return self._data_outputs(x)

    def layer_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The nodes entering each layer, ``[(N, nodes_0), (N, nodes_1), ...]`` (one per layer),
        in the network's coordinates."""
        inputs = []
        x = self.net_inputs(x)
        for layer, level in zip(self.layers, self.levels[1:]):
            inputs.append(x)
            x = combine(level, layer(x))
        return inputs

    @property
    def node_counts(self) -> list[int]:
        """Nodes per level (addition and multiplication nodes)."""
        return [level.n_nodes for level in self.levels]

    @property
    def grid_sizes(self) -> list[int]:
        return [layer.grid_size for layer in self.layers]

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ regularisation
    def forward_regularized(
        self, x: torch.Tensor, l1_weight: float, entropy_weight: float, batch_mean=None
    ):
        """``(y, reg)``: the output and the paper's sparsity penalty (section 2.5.1) in one pass,

        reg = l1_weight * sum_l |Phi_l|_1 + entropy_weight * sum_l S(Phi_l), where
        |phi|_1 = mean_s |phi(x_s)| over the batch, |Phi_l|_1 = sum of its edges' |phi|_1 and
        S(Phi_l) = -sum p log p with p = |phi|_1 / |Phi_l|_1 (entropy of the edge shares).
        phi is the layer's ``edge_activations`` (local basis evaluation, cost independent of
        the grid size). ``batch_mean(a)``: the mean over the batch (default ``a.mean(dim=0)``;
        over several processes the global batch's, distributed.global_batch_mean).
        """
        reg = x.new_zeros(())
        x = self.net_inputs(x)
        for layer, level in zip(self.layers, self.levels[1:]):
            phi = layer.edge_activations(x)  # (N, out, in)
            x = combine(level, phi.sum(dim=2))
            l1 = phi.abs().mean(dim=0) if batch_mean is None else batch_mean(phi.abs())
            total = l1.sum()
            p = l1 / (total + 1e-12)
            entropy = -(p * torch.log(p + 1e-12)).sum()
            reg = reg + l1_weight * total + entropy_weight * entropy
        return self._data_outputs(x), reg

    def roughness(self) -> torch.Tensor:
        """The P-spline roughness of the network (Eilers & Marx 1996): per layer, the mean over
        its unmasked edges and coefficients of the squared (degree + 1)-th differences of the
        spline coefficients, summed over the layers. It is 0 for a spline that is one
        polynomial of the degree on uniform knots, so as a penalty it leaves a fit that data
        determine nearly alone and pins the coefficients that few or no training points
        constrain (where test values lie beyond the training range) to the smooth
        continuation."""
        total = self.layers[0].coef.new_zeros(())
        for layer in self.layers:
            n = layer.degree + 1
            if layer.coef.shape[1] <= n or not layer.coef.requires_grad:
                continue
            d = torch.diff(layer.coef, n=n, dim=1)  # (in, nb - n, out)
            weight = layer.mask.T[:, None, :]  # (in, 1, out)
            count = weight.sum() * d.shape[1]
            total = total + (d.square() * weight).sum() / count.clamp(min=1.0)
        return total

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
        x = self.net_inputs(x)
        for index, (layer, level) in enumerate(zip(self.layers, self.levels[1:])):
            span = x
            if index > 0 and margin > 0:
                lo, hi = x.min(dim=0).values, x.max(dim=0).values
                pad = margin * (hi - lo)
                span = torch.cat([x, (lo - pad)[None], (hi + pad)[None]])
            if grid_eps < 1.0 or not _spans_exactly(layer, span):
                layer.update_grid_range(span, grid_eps)
                moved = True
            x = combine(level, layer(x))
        return moved

    def refine(
        self,
        x: torch.Tensor,
        k: int | None = None,
        grid_size: int | None = None,
        placement: str = "error",
        y: torch.Tensor | None = None,
        carry: list | None = None,
        loss=None,
    ) -> list:
        """Refine every layer in place (see `AdaptiveKANLayer.refine`); the output is preserved
        exactly when new knots are inserted. With targets ``y`` and placement "error", knots go
        where the gradient of the mean squared error w.r.t. each layer's output (its subnodes,
        before any product: the residual is carried back through multiplication nodes) is
        concentrated. ``carry``: per layer, tensors shaped like its ``coef`` to put through the
        same insertion (returned per layer, None where a layer was re-gridded by least squares).
        ``loss(output, y)`` replaces the mean squared error (e.g. the cross-entropy of
        classification, whose gradient w.r.t. the logits is the residual softmax - one-hot).
        """
        out_grads = [None] * len(self.layers)
        with torch.no_grad():
            inputs = self.layer_inputs(x)
        if placement == "error" and y is not None:
            with torch.enable_grad():
                outs, h = [], self.net_inputs(x)
                for layer, level in zip(self.layers, self.levels[1:]):
                    out = layer(h)
                    outs.append(out)
                    h = combine(level, out)
                h = self._data_outputs(h)
                value = ((h - y) ** 2).mean() if loss is None else loss(h, y)
                out_grads = torch.autograd.grad(value, outs)
        carry = carry or [()] * len(self.layers)
        return [
            layer.refine(inp, k=k, grid_size=grid_size, placement=placement, out_grad=g, carry=c)
            for layer, inp, g, c in zip(self.layers, inputs, out_grads, carry)
        ]

    # ------------------------------------------------------------------ importance and pruning
    @torch.no_grad()
    def edge_scores(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Attribution of every edge and node from the samples x (KAN 2.0's scores, see
        pruning.py). Returns (edge scores per layer, each (out, in); node scores per level)."""
        phis, subs = [], []
        x = self.net_inputs(x)
        for layer, level in zip(self.layers, self.levels[1:]):
            phi = layer.edge_activations(x)
            phis.append(phi)
            subs.append(phi.sum(dim=2))
            x = combine(level, subs[-1])
        return pruning.attribution(phis, subs, self.levels)

    def input_importance(self, x: torch.Tensor) -> dict[str, float]:
        """Each input's attribution score, by name."""
        scores = self.edge_scores(x)[1][0].tolist()
        return dict(zip(self.input_names, scores))

    @torch.no_grad()
    def prune(self, x: torch.Tensor, threshold: float = 0.01, prune_inputs: bool = False):
        """Remove edges and hidden nodes whose attribution (`edge_scores`) is below threshold,
        and with ``prune_inputs`` the inputs too (the smaller model then takes only the inputs
        it kept). A multiplication node goes or stays with its subnodes (pruning.plan).

        Returns ``(smaller_model, report)``: a new SimpleKAN whose widths shrank to the
        surviving nodes (weights, knots and masks copied), and a dict with the dims before and
        after, the number of edges, the inputs that no longer feed anything and those dropped.
        """
        edges, nodes = self.edge_scores(x)
        masks = [layer.mask for layer in self.layers]
        kept = pruning.plan(edges, nodes, masks, self.levels, threshold, prune_inputs)
        inputs = [i for i, keep in enumerate(kept.keep_nodes[0].tolist()) if keep]
        small = SimpleKAN(
            [level.width() for level in kept.levels],
            grid_size=1,
            spline_degree=self.spline_degree,
            base_activation=self.base_activation,
            dtype=self.layers[0].knots.dtype,
            device=self.layers[0].knots.device,
            mult_arity=[list(level.arities) for level in kept.levels],
            input_names=[self.input_names[i] for i in inputs],
        )
        small.input_range = [list(self.input_range[i]) for i in inputs]
        if self.has_units:
            small.set_units(_kept_units(self, inputs))
        for index, (old, new) in enumerate(zip(self.layers, small.layers)):
            rows = torch.tensor(kept.kept_subnodes(index + 1), device=old.knots.device)
            cols = kept.keep_nodes[index]
            state = {
                "knots": old.knots[cols],
                "coef": old.coef[cols][:, :, rows],
                "base_weight": old.base_weight[rows][:, cols],
                "spline_scale": old.spline_scale[rows][:, cols],
                "mask": (old.mask * kept.keep_edges[index])[rows][:, cols],
            }
            new.load_state_dict({key: v.clone() for key, v in state.items()})
            if old.linear:
                new.freeze_spline()
        first = kept.keep_edges[0]
        names = self.input_names
        report = {
            "dims_before": list(self.layer_dims),
            "dims_after": list(small.layer_dims),
            "edges_before": int(sum(int(layer.mask.sum()) for layer in self.layers)),
            "edges_after": int(sum(int(layer.mask.sum()) for layer in small.layers)),
            "unused_inputs": [
                n for i, n in enumerate(names) if i in inputs and not first[:, i].any()
            ],
            "dropped_inputs": [n for i, n in enumerate(names) if i not in inputs],
        }
        return small, report

    # ------------------------------------------------------------------ save / load
    def architecture(self) -> dict:
        """What rebuilds the model's shapes (saved beside its tensors and in the config)."""
        return {
            "layer_dims": list(self.layer_dims),
            "mult_arity": [list(a) for a in self.mult_arity],
            "grid_sizes": self.grid_sizes,
            "spline_degree": self.spline_degree,
            "base_activation": self.base_activation,
            "dtype": str(self.layers[0].knots.dtype).removeprefix("torch."),
            "input_range": [[float(a), float(b)] for a, b in self.input_range],
            "input_names": list(self.input_names),
            **({"units": self.units()} if self.has_units else {}),
        }

    def checkpoint(self) -> dict:
        """The model as plain tensors, strings and numbers (loadable with weights_only), with
        the checksum of its tensors (model_integrity.py)."""
        state = {key: v.detach().cpu() for key, v in self.state_dict().items()}
        arch = self.architecture()
        return {
            "format": FORMAT,
            "architecture": arch,
            "state_dict": state,
            model_integrity.CHECKSUM_KEY: model_integrity.checksum(state, arch),
        }

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
            mult_arity=arch.get("mult_arity", 2),
            input_names=arch.get("input_names"),
        )
        model.load_state_dict(state)
        if isinstance(arch.get("units"), dict):
            model.set_units(SimpleNamespace(**arch["units"]))
        return model


def _kept_units(model: SimpleKAN, inputs: list[int]):
    """The units map of a pruned model that kept the inputs ``inputs``."""
    return SimpleNamespace(
        in_shift=model.in_shift[inputs],
        in_scale=model.in_scale[inputs],
        out_shift=model.out_shift,
        out_scale=model.out_scale,
    )


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
    in the run folder (``src_backup/`` included) is ever imported or executed. A file whose
    content or checksum is not what training wrote is refused (`model_integrity.check`). A
    replacement of the model cut short after its config was written (`run_folder.STAGED_MODEL_FILE`
    holds the model that config names) loads the new pair; cut short before, the old pair.
    """
    model_file, config_file = run_folder.model_paths(path)
    staged = run_folder.staged_model(model_file)
    if not model_file.is_file() and staged is None:
        raise UserError(f"no model file in {path}: expected {MODEL_FILE}")
    if not config_file.is_file():
        raise UserError(f"no config file beside the model: expected {config_file}")
    config = fileio.read_json_object(config_file, "JSON config")
    device = resolve_device(device)
    model_file, ckpt = _current_model(model_file, staged, config)
    model_integrity.check(model_file, ckpt, config)
    try:
        model = SimpleKAN.from_checkpoint(ckpt)
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{model_file}: damaged model file ({first[:200]})") from None
    return model.to(device).eval(), config


def _read_checkpoint(model_file: Path):
    try:
        with warnings.catch_warnings():  # torch warns on odd pickle headers: we say it in one line
            warnings.simplefilter("ignore")
            return torch.load(model_file, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to unpickle safely: corrupt, or carrying code
        raise _load_error(model_file, exc) from None


def _current_model(model_file: Path, staged: Path | None, config: dict) -> tuple[Path, object]:
    """(file, checkpoint) of the model that belongs to ``config``: the model file, or the
    staged one when the config names its checksum (see `run_folder.write_model_files`)."""
    ckpt = _read_checkpoint(model_file) if model_file.is_file() else None
    if staged is None or _named_by(ckpt, config):
        return model_file, ckpt
    replacement = _read_checkpoint(staged)  # whole: written atomically like every file
    if _named_by(replacement, config) or ckpt is None:
        return staged, replacement
    return model_file, ckpt


def _named_by(ckpt, config: dict) -> bool:
    """Whether the config's "model" block names the checksum of ``ckpt``."""
    block = config.get("model")
    named = block.get(model_integrity.CHECKSUM_KEY) if isinstance(block, dict) else None
    recorded = ckpt.get(model_integrity.CHECKSUM_KEY) if isinstance(ckpt, dict) else None
    return named is not None and named == recorded
