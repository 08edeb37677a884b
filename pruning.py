"""Attribution scores and the pruning plan: pure functions of edge activations and node structure.

Attribution, as KAN 2.0 defines it (Liu et al., arXiv 2408.10205, section 4.1): every output
node scores 1; a multiplication node's score is copied to each of its subnodes (an addition node
is its own subnode); an edge scores the standard deviation of its output times the score of the
subnode it feeds, divided by the standard deviation of that subnode; a node scores the sum of
its outgoing edges' scores. Scores flow back from the outputs, so a hidden node that feeds
nothing important scores low even when its own activations are large.

The plan (`plan`) keeps the edges and hidden nodes scoring at least the threshold, so that every
kept hidden node has a live edge in and out, and a multiplication node is kept or removed as a
unit with its subnodes: a kept one keeps at least one incoming edge per subnode (its strongest),
since a subnode without edges is 0 and would zero the whole product.
"""

from dataclasses import dataclass

import torch

from nodes import Level

TINY_STD = 1e-12  # relative: a subnode whose spread is below this (of its scale) is constant


def attribution(
    phis: list[torch.Tensor], subs: list[torch.Tensor], levels: list[Level]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``phis[l] (N, out, in)``: the edge activations of layer l on the samples; ``subs[l]
    (N, out)``: their sums, the subnodes of level l+1. Returns (edge scores per layer, each
    (out, in); node scores per level, each (n_nodes,)). A constant subnode passes no score on."""
    dtype, device = phis[-1].dtype, phis[-1].device
    nodes: list[torch.Tensor] = [torch.ones(0)] * len(levels)
    nodes[-1] = torch.ones(levels[-1].n_nodes, dtype=dtype, device=device)
    edges: list[torch.Tensor] = [torch.ones(0)] * len(phis)
    for index in range(len(phis) - 1, -1, -1):
        level = levels[index + 1]
        owner = torch.tensor(level.node_of_subnode(), device=device)
        sub_score = nodes[index + 1][owner]  # (out,)
        std_phi = phis[index].std(dim=0, correction=0)  # (out, in)
        std_sub = subs[index].std(dim=0, correction=0)  # (out,)
        scale = subs[index].abs().amax(dim=0)
        alive = std_sub > TINY_STD * torch.clamp(scale, min=1.0)
        ratio = torch.where(alive, sub_score / torch.where(alive, std_sub, 1.0), 0.0)
        edges[index] = std_phi * ratio[:, None]
        nodes[index] = edges[index].sum(dim=0)
    return edges, nodes


@dataclass
class Plan:
    """What pruning keeps: nodes per level (n_nodes,), edges per layer (out, in) over the
    old shapes, and the smaller network's levels."""

    keep_nodes: list[torch.Tensor]
    keep_edges: list[torch.Tensor]
    levels: list[Level]
    old_levels: list[Level]

    def kept_subnodes(self, level: int) -> list[int]:
        """The old subnodes of ``level`` that stay (those of kept nodes), in order."""
        owner = self.old_levels[level].node_of_subnode()
        return [s for s, node in enumerate(owner) if bool(self.keep_nodes[level][node])]


def plan(
    edge_scores: list[torch.Tensor],
    node_scores: list[torch.Tensor],
    masks: list[torch.Tensor],
    levels: list[Level],
    threshold: float,
    prune_inputs: bool = False,
) -> Plan:
    """Keep edges and hidden nodes scoring >= threshold (inputs too with ``prune_inputs``; the
    outputs always), consistently (see the module docstring); a level never vanishes: its best
    node stays."""
    last = len(levels) - 1
    keep_nodes = [node_scores[i] >= threshold for i in range(len(levels))]
    keep_nodes[last] = torch.ones_like(keep_nodes[last])
    if not prune_inputs:
        keep_nodes[0] = torch.ones_like(keep_nodes[0])
    keep_edges = [(e >= threshold) & (m > 0) for e, m in zip(edge_scores, masks)]
    changed = True
    while changed:
        changed = False
        for index in range(len(keep_edges)):
            _restrict_edges(keep_edges, keep_nodes, levels, index, edge_scores, masks)
        for level in range(0 if prune_inputs else 1, last):
            alive = _alive(keep_edges, keep_nodes, levels, level)
            if not torch.equal(alive, keep_nodes[level]):
                keep_nodes[level], changed = alive, True
    for level in range(last):  # a level never vanishes entirely
        if not keep_nodes[level].any():
            keep_nodes[level][int(torch.argmax(node_scores[level]))] = True
    new_levels = [_kept_level(lv, keep) for lv, keep in zip(levels, keep_nodes)]
    return Plan(keep_nodes, keep_edges, new_levels, list(levels))


def _restrict_edges(keep_edges, keep_nodes, levels, index, edge_scores, masks) -> None:
    """Edges of layer ``index`` need a kept source node and a kept target node; each subnode of
    a kept multiplication node keeps its strongest edge from a kept source."""
    level = levels[index + 1]
    owner = torch.tensor(level.node_of_subnode(), device=keep_edges[index].device)
    target = keep_nodes[index + 1][owner]  # (out,)
    source = keep_nodes[index]  # (in,)
    keep = keep_edges[index] & target[:, None] & source[None, :]
    for block in level.blocks():
        for s in block:
            if not bool(target[s]) or bool(keep[s].any()):
                continue
            candidates = (masks[index][s] > 0) & source
            if bool(candidates.any()):
                scores = torch.where(candidates, edge_scores[index][s], -torch.inf)
                keep[s, int(torch.argmax(scores))] = True
    keep_edges[index] = keep


def _alive(keep_edges, keep_nodes, levels, level: int) -> torch.Tensor:
    """Nodes of ``level`` that stay: kept, with a live outgoing edge, and (hidden levels) every
    subnode fed by a live edge."""
    alive = keep_nodes[level] & keep_edges[level].any(dim=0)
    if level == 0:
        return alive
    fed = keep_edges[level - 1].any(dim=1)  # (n_sub,)
    owner = levels[level].node_of_subnode()
    for node in range(levels[level].n_nodes):
        subs = [s for s, o in enumerate(owner) if o == node]
        if not all(bool(fed[s]) for s in subs):
            alive[node] = False
    return alive


def _kept_level(level: Level, keep: torch.Tensor) -> Level:
    kept = keep.tolist()
    n_add = sum(kept[: level.n_add])
    arities = tuple(a for a, k in zip(level.arities, kept[level.n_add :]) if k)
    return Level(n_add, arities)
