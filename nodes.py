"""The nodes of a KAN level: addition nodes and KAN 2.0 multiplication nodes.

A level's width is ``[n_add, n_mult]`` (a plain integer ``n`` is ``[n, 0]``; Liu et al., "KAN 2.0",
arXiv 2408.10205). The spline edges of the layer that feeds a level map the previous level's
nodes to ``n_add + sum(arities)`` *subnodes*, each a sum of edges. The first ``n_add`` subnodes are
the addition nodes themselves; multiplication node m is the product of its own consecutive block
of ``arities[m]`` subnodes. The input and output levels have no multiplication nodes.

`Level` describes one level; `parse_levels` reads ``layer_dims`` and ``mult_arity`` as a config
or `SimpleKAN(...)` gives them; `combine` maps subnode values to node values (differentiable: a
product's gradient is the product of the other factors, never a quotient, so a zero factor
gives no NaN).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Level:
    """One level's nodes: ``n_add`` addition nodes, then one multiplication node per arity."""

    n_add: int
    arities: tuple[int, ...] = ()

    @property
    def n_mult(self) -> int:
        return len(self.arities)

    @property
    def n_nodes(self) -> int:
        return self.n_add + self.n_mult

    @property
    def n_sub(self) -> int:
        """Subnodes: what the layer feeding this level outputs."""
        return self.n_add + sum(self.arities)

    def width(self) -> int | list[int]:
        """The width as written in ``layer_dims``: n, or [n_add, n_mult]."""
        return self.n_add if not self.arities else [self.n_add, self.n_mult]

    def blocks(self) -> list[range]:
        """The subnodes of each multiplication node, in order."""
        out, start = [], self.n_add
        for arity in self.arities:
            out.append(range(start, start + arity))
            start += arity
        return out

    def node_of_subnode(self) -> list[int]:
        """For every subnode, the node it belongs to."""
        owner = list(range(self.n_add))
        for m, block in enumerate(self.blocks()):
            owner += [self.n_add + m] * len(block)
        return owner


def parse_levels(layer_dims: Sequence, mult_arity=2) -> list[Level]:
    """Levels from KAN 2.0 widths: ``layer_dims`` entries are n or [n_add, n_mult];
    ``mult_arity`` an integer >= 2 for every multiplication node, or one list per level of the
    arities of its multiplication nodes. Raises ValueError with a one-line reason."""
    if len(layer_dims) < 2:
        raise ValueError(f"needs at least 2 widths [n_in, ..., n_out], got {list(layer_dims)}")
    pairs = [_width(w, i) for i, w in enumerate(layer_dims)]
    for i in (0, len(pairs) - 1):
        if pairs[i][1]:
            where = "input" if i == 0 else "output"
            raise ValueError(
                f"the {where} level cannot have multiplication nodes, got {layer_dims[i]}"
            )
        if pairs[i][0] < 1:
            raise ValueError(f"the {'input' if i == 0 else 'output'} level needs at least 1 node")
    arities = _arities(pairs, mult_arity)
    levels = [Level(n_add, tuple(a)) for (n_add, _), a in zip(pairs, arities)]
    for i, level in enumerate(levels):
        if level.n_nodes < 1:
            raise ValueError(f"level {i} has no nodes ({layer_dims[i]})")
    return levels


def _width(w, index: int) -> tuple[int, int]:
    if isinstance(w, int) and not isinstance(w, bool):
        return (w, 0) if w >= 0 else _bad_width(w, index)
    if (
        isinstance(w, list | tuple)
        and len(w) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in w)
    ):
        return int(w[0]), int(w[1])
    return _bad_width(w, index)


def _bad_width(w, index: int):
    raise ValueError(f"width {index} must be an integer n or a pair [n_add, n_mult], got {w!r}")


def _arities(pairs: list[tuple[int, int]], mult_arity) -> list[list[int]]:
    if isinstance(mult_arity, int) and not isinstance(mult_arity, bool):
        if mult_arity < 2:
            raise ValueError(f"mult_arity must be >= 2, got {mult_arity}")
        return [[mult_arity] * n_mult for _, n_mult in pairs]
    if not isinstance(mult_arity, list | tuple) or len(mult_arity) != len(pairs):
        raise ValueError(
            f"mult_arity must be an integer >= 2 or one list per level ({len(pairs)} lists), "
            f"got {mult_arity!r}"
        )
    out = []
    for i, ((_, n_mult), given) in enumerate(zip(pairs, mult_arity)):
        if isinstance(given, int) and not isinstance(given, bool):
            given = [given] * n_mult
        if not isinstance(given, list | tuple) or len(given) != n_mult:
            raise ValueError(
                f"mult_arity[{i}] must list the arities of the {n_mult} multiplication "
                f"node{'s' * (n_mult != 1)} of level {i}, got {given!r}"
            )
        if any(not isinstance(a, int) or isinstance(a, bool) or a < 2 for a in given):
            raise ValueError(f"mult_arity[{i}]: every arity must be an integer >= 2, got {given!r}")
        out.append([int(a) for a in given])
    return out


def combine(level: Level, sub: torch.Tensor) -> torch.Tensor:
    """Subnode values ``(..., n_sub)`` → node values ``(..., n_nodes)``: addition nodes pass
    through, each multiplication node multiplies its block (a chain of products, so every
    gradient is a product of the other factors)."""
    if not level.arities:
        return sub
    if len(set(level.arities)) == 1:  # one arity: the blocks tile the tail, no gather needed
        tail = sub[..., level.n_add :].unflatten(-1, (level.n_mult, level.arities[0]))
        product = tail[..., 0]
        for j in range(1, level.arities[0]):
            product = product * tail[..., j]
        return torch.cat([sub[..., : level.n_add], product], dim=-1) if level.n_add else product
    parts = [sub[..., : level.n_add]]
    for arity in sorted(set(level.arities)):
        starts = [b.start for b in level.blocks() if len(b) == arity]
        index = torch.tensor(starts, device=sub.device)
        product = sub[..., index]
        for j in range(1, arity):
            product = product * sub[..., index + j]
        parts.append(product)
    nodes = torch.cat(parts, dim=-1)
    order = _node_order(level)
    return nodes if order is None else nodes[..., torch.tensor(order, device=sub.device)]


def _node_order(level: Level) -> list[int] | None:
    """Where `combine`'s arity-grouped products go back to node order (None: already in it)."""
    grouped = [
        m for arity in sorted(set(level.arities)) for m, a in enumerate(level.arities) if a == arity
    ]
    if grouped == list(range(level.n_mult)):
        return None
    inverse = [0] * level.n_mult
    for position, m in enumerate(grouped):
        inverse[m] = position
    return list(range(level.n_add)) + [level.n_add + p for p in inverse]
