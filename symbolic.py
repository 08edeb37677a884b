"""Symbolic formulas from a trained KAN (Liu et al. 2024, section 2.5: symbolification).

Every surviving edge phi_ji is replaced by ``c * f(a * x + b) + d`` (or the composed form
``c * f(a * x^p + b) + d``) with f from `symbolic_library.LIBRARY`, and the edges compose into one
closed-form expression per output. `symbolify` runs the whole pipeline:

1. sample every unmasked edge on the data reaching its layer and fit each library function
   (`symbolic_fit.fit_candidates`, where the conventions of one fit are stated);
2. choose one function per edge (`select_fit`) and snap its constants to nice values (`snap`);
3. fine-tune all constants together on the real targets (`SymbolicKAN`, `finetune`);
4. compose, round constants lying within a tolerance of simple numbers, simplify (`compose`).
Steps 3 and 4 run first on the simplest acceptable function of every edge, which is kept when
the formula fits the targets as well as the network does (`fits_as_well`, see `symbolify`).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import sympy
import torch
from torch import nn

from arrays import rmse, to_numpy
from edge_fits import edge_fits
from formula_snap import SNAP_SLACK, refine_formula
from names import default_names
from nodes import Level, combine, parse_levels
from symbolic_fit import Fit
from symbolic_library import LIBRARY, free_parameters, library_entry, library_names

# A formula fits as well as a reference (the network, or its symbolic network) when its RMSE is
# at most FIT_REL times the reference's plus FIT_ABS times the spread of the targets.
FIT_REL = 1.1
FIT_ABS = 1e-6

# Composition (`compose`): constants within `tolerance` of p/q or p/q * pi (q <= 12) are
# replaced by that number; larger expressions than this are not rewritten.
ROUND_DENOMINATOR = 12
ROUND_TOLERANCE = 1e-6  # compose: constants this close (relative) to p/q or p/q * pi become exact
SIMPLIFY_MAX_OPS = 400


# ---------------------------------------------------------------------------------------------
# Formulas


def _check_layer_fits(layer_fits, levels: Sequence[Level]) -> None:
    if len(layer_fits) != len(levels) - 1:
        raise ValueError(
            f"expected {len(levels) - 1} layers of fits for dims {_widths(levels)}, "
            f"got {len(layer_fits)}"
        )
    for index, fits in enumerate(layer_fits):
        for j, i in fits:
            if not (0 <= j < levels[index + 1].n_sub and 0 <= i < levels[index].n_nodes):
                raise ValueError(f"edge {(j, i)} outside layer {index} of dims {_widths(levels)}")
        for fit in fits.values():
            library_entry(fit.name)


def _widths(levels: Sequence[Level]) -> list:
    return [level.width() for level in levels]


def input_symbols(names: Sequence[str]) -> list[sympy.Symbol]:
    """The formula's symbols for inputs of these names (real)."""
    return [sympy.Symbol(name, real=True) for name in names]


def _input_symbols(n: int, names: Sequence[str] | None = None) -> list[sympy.Symbol]:
    return input_symbols(names if names is not None else default_names(n, "x"))


def _product_nodes(level: Level, sub: list[sympy.Expr]) -> list[sympy.Expr]:
    """Subnode expressions → node expressions (multiplication nodes multiply their block)."""
    return sub[: level.n_add] + [sympy.Mul(*(sub[s] for s in b)) for b in level.blocks()]


def _nice_constant(v: float, tol: float) -> sympy.Expr | None:
    """p/q or p/q * pi (q <= ROUND_DENOMINATOR) within tol * max(1, |v|) of v, else None."""
    if not math.isfinite(v):
        return None
    for base in (sympy.Integer(1), sympy.pi):
        frac = Fraction(v / float(base)).limit_denominator(ROUND_DENOMINATOR)
        if abs(float(frac) * float(base) - v) <= tol * max(1.0, abs(v)):
            return sympy.Rational(frac.numerator, frac.denominator) * base
    return None


def _pull_exp_constants(expr: sympy.Expr) -> sympy.Expr:
    """exp(C + u) → e^C exp(u) for a numeric term C (|C| <= 50, so e^C stays a float)."""

    def split(arg):
        const, rest = arg.as_independent(*arg.free_symbols, as_Add=True)
        if const.is_Float and abs(float(const)) <= 50 and rest != 0:
            return sympy.exp(const) * sympy.exp(rest)
        return sympy.exp(arg)

    return expr.replace(sympy.exp, split)


def _round_constants(expr: sympy.Expr, tol: float) -> sympy.Expr:
    """Replace the floats of expr that lie within tol of a nice number (`_nice_constant`)."""
    swaps = {}
    for f in expr.atoms(sympy.Float):
        nice = _nice_constant(float(f), tol)
        if nice is not None:
            swaps[f] = nice
    return expr.xreplace(swaps)


def compose(
    layer_fits: Sequence[dict[tuple[int, int], Fit]],
    layer_dims: Sequence,
    tolerance: float = 1e-6,
    simplify: bool = True,
    mult_arity=2,
    names: Sequence[str] | None = None,
) -> list[sympy.Expr]:
    """One sympy expression per output in the inputs' symbols (``names``, default x1..xn; real).

    ``layer_dims`` and ``mult_arity`` as for SimpleKAN (hidden widths n or [n_add, n_mult]).
    ``layer_fits[l][(j, i)]`` is the fit of the edge from node i of level l to subnode j of
    level l + 1; a missing edge is pruned and contributes 0; a subnode is the sum of its
    incoming edges, an addition node is its subnode, a multiplication node the product of its
    subnodes. With ``simplify``: after every layer, numeric terms are pulled out of
    exponentials and constants within ``tolerance`` (relative, at least absolute) of p/q or
    p/q * pi with q <= 12 become exact (tolerance 0: only exact matches); at the end each
    output takes its shortest form (`_shortest_form`; skipped above SIMPLIFY_MAX_OPS
    operations). Without: the plain composition.
    """
    levels = parse_levels(layer_dims, mult_arity)
    _check_layer_fits(layer_fits, levels)
    nodes: list[sympy.Expr] = list(_input_symbols(levels[0].n_nodes, names))
    for index, fits in enumerate(layer_fits):
        sub: list[sympy.Expr] = [sympy.Integer(0)] * levels[index + 1].n_sub
        for (j, i), fit in sorted(fits.items()):
            sub[j] = sub[j] + fit.expr(nodes[i])
        out = _product_nodes(levels[index + 1], sub)
        if simplify:
            out = [_round_constants(_pull_exp_constants(node), tolerance) for node in out]
        nodes = out
    if not simplify:
        return nodes
    return [_round_constants(_shortest_form(e), tolerance) for e in nodes]


def _shortest_form(expr: sympy.Expr) -> sympy.Expr:
    """The fewest-operations one of: expr, its expansion (powers and products of sums; not
    exponentials or logs), and either after powsimp. Cheap, unlike sympy.simplify (seconds)."""
    if sympy.count_ops(expr) > SIMPLIFY_MAX_OPS:
        return expr
    expanded = sympy.expand(expr, power_exp=False, log=False)
    forms = [expr, expanded, sympy.powsimp(expr), sympy.powsimp(expanded)]
    return min(forms, key=sympy.count_ops)  # the first of equally short ones


def formula_strings(exprs: Sequence[sympy.Expr]) -> tuple[list[str], list[str]]:
    """(plain text, LaTeX) per expression; the text parses back with sympy.sympify."""
    return [str(e) for e in exprs], [sympy.latex(e) for e in exprs]


def evaluate_formula(exprs: Sequence[sympy.Expr], x, names: Sequence[str] | None = None):
    """Evaluate expressions in the inputs ``names`` (default x1..xn) at x (N, n) → (N,
    len(exprs)), float64, through numpy.

    Only for expressions built here or parsed from them (sympy.lambdify generates code).
    """
    x = to_numpy(x)
    if x.ndim != 2:
        raise ValueError(f"x must be (N, n_inputs), got shape {x.shape}")
    n = x.shape[1]
    names = list(names) if names is not None else default_names(n, "x")
    if len(names) != n:
        raise ValueError(f"{len(names)} input names for x with {n} columns")
    by_name = {s.name: s for e in exprs for s in e.free_symbols}
    unknown = sorted(set(by_name) - set(names))
    if unknown:
        raise ValueError(f"formula uses {unknown}, but the inputs are {names}")
    args = [by_name.get(name, sympy.Symbol(name)) for name in names]
    fn = sympy.lambdify(args, list(exprs), "numpy", dummify=True)
    with np.errstate(all="ignore"):
        values = fn(*x.T)
    out = [np.broadcast_to(np.asarray(v, dtype=np.float64), (x.shape[0],)) for v in values]
    return np.stack(out, axis=1) if out else np.zeros((x.shape[0], 0))


# ---------------------------------------------------------------------------------------------
# The symbolic network and its fine-tuning


class _SymbolicLayer(nn.Module):
    """Edges c * f(a x_i + b) + d, or the composed c * f(a (x_i + origin)^p + b) + d, summed
    into outputs j; params (E, 4) = (a, b, c, d)."""

    def __init__(self, in_dim: int, out_dim: int, fits: dict[tuple[int, int], Fit]):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        edges = sorted(fits)
        self.names = [fits[e].name for e in edges]
        self.inner = [fits[e].inner for e in edges]
        origins = [fits[e].origin for e in edges]
        self.register_buffer("origin", torch.tensor(origins, dtype=torch.float64))
        self.r2 = [fits[e].r2 for e in edges]
        values = [[fits[e].a, fits[e].b, fits[e].c, fits[e].d] for e in edges]
        self.params = nn.Parameter(torch.tensor(values, dtype=torch.float64).reshape(-1, 4))
        train = [free_parameters(name) for name in self.names]
        self.register_buffer("trainable", torch.tensor(train, dtype=torch.bool).reshape(-1, 4))
        self.register_buffer("dst", torch.tensor([j for j, _ in edges], dtype=torch.long))
        self.register_buffer("src", torch.tensor([i for _, i in edges], dtype=torch.long))
        self.groups: dict[tuple[str, int], list[int]] = {}  # (f, inner power) -> edges
        for k, key in enumerate(zip(self.names, self.inner, strict=True)):
            self.groups.setdefault(key, []).append(k)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        p = torch.where(self.trainable, self.params, self.params.detach())  # frozen: no gradient
        out = h.new_zeros(h.shape[0], self.out_dim)
        for (name, inner), members in self.groups.items():
            idx = torch.tensor(members, device=h.device)
            a, b, c, d = p[idx].T  # each (E_f,)
            u = h[:, self.src[idx]]  # (N, E_f)
            z = a * (u if inner == 1 else (u + self.origin[idx]) ** inner) + b
            out = out.index_add(1, self.dst[idx], c * LIBRARY[name].torch_fn(z) + d)
        return out

    def fits(self) -> dict[tuple[int, int], Fit]:
        edges = zip(self.dst.tolist(), self.src.tolist(), strict=True)
        return {
            (j, i): Fit(name, *(float(v) for v in row), r2, inner, origin)
            for (j, i), name, inner, origin, row, r2 in zip(
                edges,
                self.names,
                self.inner,
                self.origin.tolist(),
                self.params.tolist(),
                self.r2,
                strict=True,
            )
        }


class SymbolicKAN(nn.Module):
    """The network in which every surviving edge is ``c * f(a * x + b) + d`` (float64).

    Built from ``layer_dims``, ``layer_fits`` and ``mult_arity`` (as in `compose`); (a, b, c,
    d) of every edge are trainable except those fixed by the canonical form (`free_parameters`).
    A fit's r2 is carried along unchanged (it describes the original edge fit).
    """

    def __init__(
        self,
        layer_dims: Sequence,
        layer_fits: Sequence[dict[tuple[int, int], Fit]],
        mult_arity=2,
    ):
        super().__init__()
        self.levels = parse_levels(layer_dims, mult_arity)
        _check_layer_fits(layer_fits, self.levels)
        self.layer_dims = _widths(self.levels)
        self.layers = nn.ModuleList(
            _SymbolicLayer(source.n_nodes, target.n_sub, fits)
            for source, target, fits in zip(
                self.levels[:-1], self.levels[1:], layer_fits, strict=True
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, n_in) → (N, n_out), float64."""
        h = x.to(torch.float64)
        for layer, level in zip(self.layers, self.levels[1:]):
            h = combine(level, layer(h))
        return h

    def fits(self) -> list[dict[tuple[int, int], Fit]]:
        return [layer.fits() for layer in self.layers]


def finetune(
    symbolic_kan: SymbolicKAN, x: torch.Tensor, y: torch.Tensor, steps: int = 200
) -> float:
    """Fit the constants to (x, y) by LBFGS (strong Wolfe) on the MSE; returns the best MSE.

    ``steps``: LBFGS iterations, run in chunks of 10; after each chunk the best parameters so far
    are recorded, and the run ends at the first chunk without improvement. A chunk that ends
    with a non-finite loss or parameters (e.g. a log argument pushed below 0) is undone: the best
    parameters are restored and LBFGS restarts with a 4x smaller step (at most 3 times).
    The best parameters are in the model on return.
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64).reshape(x.shape[0], -1)
    params = [p for p in symbolic_kan.parameters() if p.numel() > 0]

    def mse() -> torch.Tensor:
        return ((symbolic_kan(x) - y) ** 2).mean()

    def lbfgs(lr: float) -> torch.optim.LBFGS:
        return torch.optim.LBFGS(
            params,
            lr=lr,
            max_iter=10,
            history_size=50,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = mse()
        loss.backward()
        return loss

    with torch.no_grad():
        best = float(mse())
    best_state = [p.detach().clone() for p in params]
    lr, failures = 1.0, 0
    optimizer = lbfgs(lr)
    for _ in range(math.ceil(steps / 10) if params and math.isfinite(best) else 0):
        optimizer.step(closure)
        with torch.no_grad():
            loss = float(mse())
        if not (math.isfinite(loss) and all(torch.isfinite(p).all() for p in params)):
            failures += 1
            if failures == 3:
                break
            with torch.no_grad():
                for p, saved in zip(params, best_state, strict=True):
                    p.copy_(saved)
            lr /= 4
            optimizer = lbfgs(lr)
            continue
        if not loss < best * (1 - 1e-9):
            break
        best, best_state = loss, [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, saved in zip(params, best_state, strict=True):
            p.copy_(saved)
    return best


# ---------------------------------------------------------------------------------------------
# The whole pipeline


def fits_as_well(rmse: float, reference: float, spread: float) -> bool:
    """Whether a formula of this RMSE fits as well as a reference RMSE (of the network, or of the
    symbolic network the formula was composed from): at most FIT_REL times the reference plus
    FIT_ABS times ``spread`` (max - min of the targets). A NaN RMSE does not."""
    return rmse <= FIT_REL * reference + FIT_ABS * spread


@dataclass
class SymbolicResult:
    """What `symbolify` found.

    formulas / latex / exprs: one per output (empty unless ok). layer_fits: per layer
    {(j, i): Fit}, fine-tuned when ok, else the edge fits (below-threshold edges: their best
    candidate). edge_r2: per layer {(j, i): R^2 of the edge fit to its spline}. unfit_edges:
    (layer, j, i) of the edges with no fit reaching the threshold. rmse: of the formulas on the
    (x, y) given (None unless ok). test_rmse: of the formulas on held-out data, set by the
    caller (None when not measured). alternatives: per layer {(j, i): other fits of that edge
    as good as its choice (`edge_fits.ALTERNATIVES`; not in the document), for formula_units.py.
    """

    formulas: list[str]
    latex: list[str]
    exprs: list[sympy.Expr]
    layer_fits: list[dict[tuple[int, int], Fit]]
    edge_r2: list[dict[tuple[int, int], float]]
    unfit_edges: list[tuple[int, int, int]] = field(default_factory=list)
    ok: bool = False
    rmse: float | None = None
    test_rmse: float | None = None
    alternatives: list[dict[tuple[int, int], list[Fit]]] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The symbolic.json document: "ok", "formulas", "latex", "edges" (by layer, then
        (out, in): {"layer", "out", "in", "function", "a", "b", "c", "d", "r2"} with r2 from
        edge_r2), "unfit_edges" ([layer, out, in] each) and, when ok and test_rmse is known,
        "formula_test_rmse"."""
        edges = [
            {"layer": layer, "out": j, "in": i, **fit.to_dict(), "r2": self.edge_r2[layer][(j, i)]}
            for layer, fits in enumerate(self.layer_fits)
            for (j, i), fit in sorted(fits.items())
        ]
        document = {
            "ok": self.ok,
            "formulas": list(self.formulas),
            "latex": list(self.latex),
            "edges": edges,
            "unfit_edges": [list(edge) for edge in self.unfit_edges],
        }
        if self.ok and self.test_rmse is not None:
            document["formula_test_rmse"] = self.test_rmse
        return document

    @classmethod
    def from_dict(cls, document: dict) -> "SymbolicResult":
        """The result a `to_dict` document describes, enough to plot and report it: formulas,
        latex, ok, unfit_edges, test_rmse, and layer_fits / edge_r2 with one layer per layer
        named in it (each fit's r2 is the edge's R^2). ``exprs`` is left empty and ``rmse``
        None: the formula text is not parsed here (`sympy.sympify` it when needed). A document
        that `to_dict` would not write is a ValueError."""
        if not isinstance(document, dict):
            raise ValueError(
                f"a symbolic result must be a JSON object, got {type(document).__name__}"
            )
        missing = [key for key in _DOCUMENT_KEYS if key not in document]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        ok = document["ok"]
        if not isinstance(ok, bool):
            raise ValueError(f"ok must be true or false, got {ok!r}")
        unfit = [_edge_index(edge, "unfit edge") for edge in _as_list(document, "unfit_edges")]
        edges = _as_list(document, "edges")
        placed = [(_edge_index(edge, "edge"), Fit.from_dict(edge)) for edge in edges]
        n_layers = 1 + max((layer for (layer, _, _), _ in placed), default=-1)
        n_layers = max([n_layers] + [layer + 1 for layer, _, _ in unfit])
        layer_fits: list[dict[tuple[int, int], Fit]] = [{} for _ in range(n_layers)]
        for (layer, j, i), fit in placed:
            if (j, i) in layer_fits[layer]:
                raise ValueError(f"edge ({j}, {i}) of layer {layer} is given twice")
            layer_fits[layer][(j, i)] = fit
        test_rmse = document.get("formula_test_rmse")
        if test_rmse is not None and not _is_number(test_rmse):
            raise ValueError(f"formula_test_rmse must be a number, got {test_rmse!r}")
        return cls(
            formulas=_strings(document, "formulas"),
            latex=_strings(document, "latex"),
            exprs=[],
            layer_fits=layer_fits,
            edge_r2=[{edge: fit.r2 for edge, fit in fits.items()} for fits in layer_fits],
            unfit_edges=unfit,
            ok=ok,
            test_rmse=None if test_rmse is None else float(test_rmse),
        )


_DOCUMENT_KEYS = ("ok", "formulas", "latex", "edges", "unfit_edges")


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_list(document: dict, key: str) -> list:
    value = document[key]
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list, got {value!r}")
    return value


def _strings(document: dict, key: str) -> list[str]:
    value = _as_list(document, key)
    if not all(isinstance(item, str) for item in value):
        raise ValueError(f"{key} must be a list of strings, got {value!r}")
    return list(value)


def _edge_index(edge, what: str) -> tuple[int, int, int]:
    """(layer, out, in) of an edge object or an [layer, out, in] list, each a non-negative int."""
    values = [edge.get(key) for key in ("layer", "out", "in")] if isinstance(edge, dict) else edge
    if not isinstance(values, list) or len(values) != 3:
        raise ValueError(f"{what} must name layer, out and in, got {edge!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise ValueError(f"{what}: layer, out and in must be integers >= 0, got {edge!r}")
    return tuple(values)


def _model_input(model, x) -> torch.Tensor:
    reference = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    if reference is None:
        return torch.as_tensor(x, dtype=torch.float64)
    return torch.as_tensor(x).to(dtype=reference.dtype, device=reference.device)


def symbolify(
    model,
    x,
    y,
    library: Sequence[str] | None = None,
    r2_threshold: float = 0.99,
    finetune_steps: int = 200,
    standardized: bool = False,
    origins: Sequence[float] | None = None,
) -> SymbolicResult:
    """Symbolic formulas for a trained KAN: fit every unmasked edge on the samples x, then
    (when every edge has a fit) fine-tune the symbolic network on (x, y), compose and simplify.

    ``model`` needs ``layer_dims``, ``layers`` (each with ``mask (out, in)`` and
    ``edge_activations(x_in) -> (N, out, in)``) and ``layer_inputs(x)``, as SimpleKAN has.
    x: (N, n_in), y: (N, n_out), arrays or tensors.

    Two choices of edge functions are tried. First the simplest one on every edge that reaches
    R^2 >= min(r2_threshold, edge_fits.SIMPLEST_R2) (``select_fit(..., relative=math.inf)``):
    a spline only approximates its function, and layers can trade curvature (x1 * x2 learnt as
    cos of sums of tan-like edges instead of squares of sums of linear ones), so a more flexible
    candidate can fit an edge better while the simple one is the law; the joint fine-tuning
    settles it.
    That formula is kept when it fits (x, y) as well as the network does (`fits_as_well`).
    Otherwise the per-edge choice of `select_fit` is fine-tuned too, and the one of the two
    with the smaller RMSE is returned. When the rounded formulas do not fit (x, y) as well as
    their fine-tuned symbolic network, the plain composition (no rounding, no simplification)
    is used instead.

    ``standardized``: the model's coordinates are standardised ones (units.py), in which
    constants mean nothing: no rounding or snapping here; `in_data_units` refits and snaps in
    the data's units. ``origins``: per input, where it is 0 in the data's units (``in_shift /
    in_scale``), so that composed edge forms take powers of the physical variables.
    """
    names = library_names(library)
    xt = _model_input(model, x)
    n_in, n_out = model.layer_dims[0], model.layer_dims[-1]
    if xt.ndim != 2 or xt.shape[1] != n_in:
        raise ValueError(f"x must be (N, {n_in}), got shape {tuple(xt.shape)}")
    if to_numpy(y).size != xt.shape[0] * n_out:
        raise ValueError(f"y must be (N, {n_out}) with N = {xt.shape[0]}, got {to_numpy(y).shape}")
    with torch.no_grad():
        inputs = model.layer_inputs(xt)
        activations = [
            layer.edge_activations(h) for layer, h in zip(model.layers, inputs, strict=True)
        ]
    chosen_fits, simplest_fits, alternatives, unfit = edge_fits(
        model, inputs, activations, names, r2_threshold, not standardized, origins
    )
    if unfit:
        edge_r2 = [{edge: fit.r2 for edge, fit in fits.items()} for fits in chosen_fits]
        return SymbolicResult([], [], [], chosen_fits, edge_r2, unfit, ok=False)

    x64 = torch.as_tensor(to_numpy(xt))
    y64 = torch.as_tensor(to_numpy(y)).reshape(x64.shape[0], -1)
    target = y64.numpy()
    network = to_numpy(activations[-1].sum(dim=2))  # the output level has no products
    spread = float(np.ptp(target))
    rounding = 0.0 if standardized else ROUND_TOLERANCE
    shape = Shape(model.layer_dims, getattr(model, "mult_arity", 2), _names(model, n_in), rounding)
    tries = [_formulas(shape, simplest_fits, x64, y64, finetune_steps, spread)]
    if simplest_fits != chosen_fits and not fits_as_well(
        tries[0][3], rmse(network, target), spread
    ):
        tries.append(_formulas(shape, chosen_fits, x64, y64, finetune_steps, spread))
    layer_fits, tuned, exprs, formula_rmse = min(tries, key=lambda result: result[3])
    if not standardized:
        exprs, formula_rmse = _refined(exprs, shape.names, x64.numpy(), target, formula_rmse)
    edge_r2 = [{edge: fit.r2 for edge, fit in fits.items()} for fits in layer_fits]
    formulas, latex = formula_strings(exprs)
    others = alternatives if standardized else []
    return SymbolicResult(
        formulas, latex, exprs, tuned, edge_r2, [], True, formula_rmse, alternatives=others
    )


def _refined(exprs, names, x, y, formula_rmse):
    """The formulas with constants refitted, snapped and simplified (formula_snap.py), when
    that does not make them fit (x, y) worse."""
    symbols = input_symbols(names)
    refined = [refine_formula(e, symbols, x, y[:, k]) for k, e in enumerate(exprs)]
    refined_rmse = rmse(evaluate_formula(refined, x, names), y)
    if refined_rmse <= SNAP_SLACK * formula_rmse + 1e-15:
        return refined, refined_rmse
    return exprs, formula_rmse


@dataclass(frozen=True)
class Shape:
    """What composes fits into formulas: the widths, the multiplication nodes' arities and the
    input names."""

    layer_dims: list
    mult_arity: object
    names: list[str]
    rounding: float = 0.0  # compose's tolerance for exact constants


def _names(model, n_in: int) -> list[str]:
    return list(getattr(model, "input_names", None) or default_names(n_in, "x"))


def _formulas(shape: Shape, layer_fits, x64, y64, finetune_steps, spread):
    """Fine-tune the symbolic network of ``layer_fits`` on (x64, y64) and compose it (rounded
    and simplified unless that costs accuracy, see `symbolify`); ``spread``: of y64.

    Returns (layer_fits, fine-tuned fits, expressions, RMSE of the expressions on (x64, y64)).
    """
    sym = SymbolicKAN(shape.layer_dims, layer_fits, shape.mult_arity)
    finetune(sym, x64, y64, finetune_steps)
    tuned = sym.fits()
    target = y64.numpy()
    with torch.no_grad():
        network_rmse = rmse(sym(x64).numpy(), target)

    def composed(simplify: bool):
        exprs = compose(
            tuned,
            shape.layer_dims,
            simplify=simplify,
            mult_arity=shape.mult_arity,
            names=shape.names,
            tolerance=shape.rounding,
        )
        return exprs, rmse(evaluate_formula(exprs, x64.numpy(), shape.names), target)

    exprs, formula_rmse = composed(True)
    if not fits_as_well(formula_rmse, network_rmse, spread):
        exprs, formula_rmse = composed(False)
    return layer_fits, tuned, exprs, formula_rmse
