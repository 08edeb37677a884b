"""SimpleKAN: gradients, function-preserving refinement, the paper's regularisation, pruning,
and save/load (which never runs code from the run folder)."""

import json
import math
import os
import pickle

import pytest
import torch
from torch.func import functional_call

from errors import UserError
from simple_kan import CONFIG_FILE, MODEL_FILE, SimpleKAN, load_model

F64 = torch.float64


def make_model(dims, G=5, k=3, seed=0, dtype=F64, scale=0.5):
    """A model with noise added to every parameter (no special initial values left)."""
    torch.manual_seed(seed)
    model = SimpleKAN(dims, grid_size=G, spline_degree=k, dtype=dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


def inputs(n, d, seed=1, spread=1.3, dtype=F64):
    """(n, d) samples in [-spread, spread]: some beyond the first layer's grid [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=gen, dtype=dtype) * 2 - 1) * spread


def max_change(after, before):
    after, before = after.detach(), before.detach()
    return float((after - before).abs().max()) / max(1.0, float(before.abs().max()))


# ---------------------------------------------------------------------- gradients
@pytest.mark.parametrize("contraction", ["fused", "dense", "gather"])
def test_gradcheck_wrt_inputs_and_parameters(contraction):
    if contraction == "fused":
        pytest.importorskip("cpu_kernels")
    model = make_model([2, 2, 1], G=3, seed=2)
    for layer in model.layers:
        layer.contraction = contraction
    x = inputs(5, 2, seed=2).requires_grad_(True)
    assert torch.autograd.gradcheck(model, (x,), eps=1e-6, atol=1e-7)
    names = [name for name, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())

    def as_function_of_parameters(*values):
        return functional_call(model, dict(zip(names, values)), (x.detach(),))

    assert torch.autograd.gradcheck(as_function_of_parameters, params, eps=1e-6, atol=1e-7)


def test_fast_path_matches_the_dense_reference_through_the_stack():
    model = make_model([3, 4, 2], seed=3)
    model.refine(inputs(100, 3, seed=3), k=2, placement="density")
    x = inputs(50, 3, seed=4)
    y, y_ref = model(x), model.forward_reference(x)
    assert max_change(y, y_ref) < 1e-10


# ---------------------------------------------------------------------- refinement
@pytest.mark.parametrize("placement", [None, "error", "density", "uniform"])
def test_refine_by_k_preserves_the_output(placement):
    model = make_model([2, 3, 2], seed=5)
    x = inputs(200, 2, seed=5)
    before = model(x)
    kwargs = {} if placement is None else {"placement": placement}  # None: the default
    model.refine(x, k=3, **kwargs)
    assert model.grid_sizes == [8, 8]
    assert max_change(model(x), before) < 1e-9


@pytest.mark.parametrize("placement", [None, "uniform"])
def test_refine_to_double_grid_size_preserves_the_output(placement):
    G = 5
    model = make_model([2, 3, 2], G=G, seed=7)
    x = inputs(200, 2, seed=7)
    before = model(x)
    kwargs = {} if placement is None else {"placement": placement}  # None: the default
    model.refine(x, grid_size=2 * G, **kwargs)
    assert model.grid_sizes == [2 * G, 2 * G]
    assert max_change(model(x), before) < 1e-9
    if placement == "uniform":
        for layer in model.layers:
            widths = torch.diff(layer.interior_knots(), dim=1)
            torch.testing.assert_close(widths, torch.full_like(widths, 0.2), rtol=0, atol=1e-14)


def test_error_placement_with_targets_preserves_the_output():
    model = make_model([2, 3, 1], seed=8)
    x = inputs(200, 2, seed=8)
    y = torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:] ** 2)
    before = model(x)
    model.refine(x, k=2, y=y)
    assert model.grid_sizes == [7, 7]
    assert max_change(model(x), before) < 1e-9


def test_error_placement_with_targets_refines_every_layer_where_the_residual_is():
    """Targets that differ from the model only for x1 in [0.5, 0.8]: the gradient of the loss
    w.r.t. the first layer's outputs lives on those samples, so the first layer's new knots for
    x1 go into the intervals holding them."""
    model = make_model([2, 3, 1], G=6, seed=20)
    gen = torch.Generator().manual_seed(20)
    x = torch.rand(400, 2, generator=gen, dtype=F64) * 2 - 1
    region = (x[:, 0] >= 0.5) & (x[:, 0] <= 0.8)
    with torch.no_grad():
        y = model(x) + region[:, None].to(F64)
    g = model.layers[0].interior_knots()[0].clone()
    model.refine(x, k=2, y=y)
    touched = [(a, b) for a, b in zip(g[:-1].tolist(), g[1:].tolist()) if a <= 0.8 and b >= 0.5]
    lo, hi = min(a for a, _ in touched), max(b for _, b in touched)
    new = [u for u in model.layers[0].interior_knots()[0].tolist() if u not in g.tolist()]
    assert len(new) == 2 and all(lo < u < hi for u in new), (new, lo, hi)


def test_update_grid_range_puts_every_layer_on_its_own_inputs():
    model = make_model([2, 3, 1], seed=9)
    x = inputs(300, 2, seed=9, spread=0.6)
    model.update_grid_range(x)
    for layer, h in zip(model.layers, model.layer_inputs(x)):
        torch.testing.assert_close(layer.grid_range()[:, 0], h.min(0).values, atol=1e-10, rtol=0)
        torch.testing.assert_close(layer.grid_range()[:, 1], h.max(0).values, atol=1e-10, rtol=0)


# ---------------------------------------------------------------------- regularisation
def test_forward_regularized_returns_the_output_and_the_papers_penalty():
    model = make_model([2, 3, 2], seed=10)
    x = inputs(64, 2, seed=10)
    l1_weight, entropy_weight = 0.3, 0.07
    y, reg = model.forward_regularized(x, l1_weight, entropy_weight)
    assert max_change(y, model(x)) < 1e-12
    want, h = 0.0, x
    with torch.no_grad():
        for layer in model.layers:
            phi = layer.edge_activations(h)  # (N, out, in)
            norms = phi.abs().mean(dim=0)  # |phi|_1 of every edge
            total = norms.sum()
            shares = norms / total
            want += l1_weight * total.item()
            want -= entropy_weight * (shares * torch.log(shares)).sum().item()
            h = phi.sum(dim=2)
    assert abs(reg.item() - want) < 1e-9 * abs(want)
    grads = torch.autograd.grad(reg, list(model.parameters()), allow_unused=True)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


# ---------------------------------------------------------------------- pruning
def kill_outgoing(layer, inputs_):
    """Zero every edge leaving the given inputs of a layer (its node feeds nothing)."""
    with torch.no_grad():
        layer.coef[inputs_] = 0.0
        layer.base_weight[:, inputs_] = 0.0


def test_prune_removes_dead_hidden_nodes_and_keeps_the_output():
    model = make_model([2, 4, 3, 1], seed=11)
    x = inputs(200, 2, seed=11)
    model.refine(x, k=2)  # per-layer knots that the pruned copy must carry over
    kill_outgoing(model.layers[1], [1, 3])  # hidden nodes 1 and 3 of level 1 feed nothing
    kill_outgoing(model.layers[2], [0])  # hidden node 0 of level 2 neither
    before = model(x)
    small, report = model.prune(x, threshold=1e-6)
    assert small.layer_dims == [2, 2, 2, 1]
    assert report["dims_before"] == [2, 4, 3, 1] and report["dims_after"] == [2, 2, 2, 1]
    assert [tuple(layer.coef.shape) for layer in small.layers] == [
        (2, 10, 2),
        (2, 10, 2),
        (2, 10, 1),
    ]
    assert report["unused_inputs"] == []
    assert max_change(small(x), before) < 1e-12
    torch.testing.assert_close(small.layers[1].knots, model.layers[1].knots[[0, 2]], rtol=0, atol=0)


def test_prune_masks_a_dead_edge_and_reports_an_unused_input():
    model = make_model([3, 2, 1], seed=12)
    kill_outgoing(model.layers[0], [2])  # input x3 feeds nothing
    with torch.no_grad():  # and the single edge x1 -> hidden 1 is dead
        model.layers[0].coef[0, :, 1] = 0.0
        model.layers[0].base_weight[1, 0] = 0.0
    x = inputs(200, 3, seed=12)
    before = model(x)
    small, report = model.prune(x, threshold=1e-6)
    assert small.layer_dims == [3, 2, 1]
    assert report["unused_inputs"] == ["x3"]
    assert report["edges_before"] == 8 and report["edges_after"] == 5
    assert torch.equal(small.layers[0].mask, torch.tensor([[1.0, 1, 0], [0, 1, 0]], dtype=F64))
    assert max_change(small(x), before) < 1e-12


def test_prune_keeps_one_node_when_a_whole_level_is_dead():
    model = make_model([2, 3, 1], seed=13)
    kill_outgoing(model.layers[1], [0, 1, 2])
    x = inputs(50, 2, seed=13)
    small, _ = model.prune(x)
    assert small.layer_dims == [2, 1, 1]
    assert max_change(small(x), model(x)) < 1e-12


# ---------------------------------------------------------------------- save and load
def save(model, run_dir, **config):
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save_model(run_dir, {"project_name": "test", **config})
    return run_dir


def test_save_and_load_round_trip_after_refinement_and_pruning(tmp_path):
    model = make_model([2, 4, 3, 1], seed=14)
    x = inputs(200, 2, seed=14)
    model.update_grid_range(x)
    model.layers[1].refine(model.layer_inputs(x)[1], k=2)
    model.layers[2].refine(model.layer_inputs(x)[2], k=4, placement="density")
    assert model.grid_sizes == [5, 7, 9]
    for name, m in (("refined", model), ("pruned", None)):
        if m is None:
            kill_outgoing(model.layers[1], [2])
            m, _ = model.prune(x, threshold=1e-6)
            assert m.layer_dims == [2, 3, 3, 1]
        run_dir = save(m, tmp_path / name, seed=3)
        for path in (run_dir, run_dir / MODEL_FILE) if name == "refined" else (str(run_dir),):
            loaded, config = load_model(path)
            assert not loaded.training
            assert loaded.layer_dims == m.layer_dims and loaded.grid_sizes == m.grid_sizes
            assert torch.equal(loaded(x), m(x))
            assert config["seed"] == 3 and config["model"]["grid_sizes"] == m.grid_sizes
            assert config["model"]["layer_dims"] == m.layer_dims
        ckpt = torch.load(run_dir / MODEL_FILE, weights_only=True)
        assert isinstance(ckpt, dict)


def test_float32_model_round_trips_as_float32(tmp_path):
    model = make_model([2, 3, 1], seed=15, dtype=torch.float32)
    run_dir = save(model, tmp_path / "run")
    loaded, _ = load_model(run_dir)
    assert loaded.layers[0].coef.dtype == torch.float32
    x = inputs(20, 2, dtype=torch.float32)
    assert torch.equal(loaded(x), model(x))


class Payload:
    """Unpickling this runs a shell command that leaves a file behind."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def torch_save_payload(path, marker):
    torch.save(Payload(marker), path, pickle_protocol=2)


def pickle_dump_payload(path, marker):
    with open(path, "wb") as f:
        pickle.dump({"format": "pykan_mit-model-1", "state_dict": Payload(marker)}, f)


def truncate(path, _marker):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garble(path, _marker):
    path.write_bytes(b"not a model at all\n" * 50)


def wrong_format(path, _marker):
    torch.save({"format": "something-else", "state_dict": {}}, path)


def drop_a_tensor(path, _marker):
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"].pop(next(iter(ckpt["state_dict"])))
    torch.save(ckpt, path)


@pytest.mark.parametrize(
    "spoil",
    [torch_save_payload, pickle_dump_payload, truncate, garble, wrong_format, drop_a_tensor],
)
def test_load_model_refuses_a_bad_model_file_in_one_line(tmp_path, spoil):
    run_dir = save(make_model([2, 2, 1], G=3, seed=16), tmp_path / "run")
    marker = tmp_path / "pwned"
    spoil(run_dir / MODEL_FILE, marker)
    if spoil in (torch_save_payload, pickle_dump_payload):  # the payload is really in there
        assert b"system" in (run_dir / MODEL_FILE).read_bytes()
    for path in (run_dir, run_dir / MODEL_FILE):
        with pytest.raises(UserError) as info:
            load_model(path)
        assert "\n" not in str(info.value) and str(info.value).strip()
    assert not marker.exists()


def remove_model(run_dir):
    (run_dir / MODEL_FILE).unlink()


def remove_config(run_dir):
    (run_dir / CONFIG_FILE).unlink()


def corrupt_config(run_dir):
    (run_dir / CONFIG_FILE).write_text('{"project_name": "test", ')


def list_config(run_dir):
    (run_dir / CONFIG_FILE).write_text(json.dumps([1, 2, 3]))


def binary_config(run_dir):
    (run_dir / CONFIG_FILE).write_bytes(b"\xff\xfe\x00garbage")


@pytest.mark.parametrize(
    "spoil", [remove_model, remove_config, corrupt_config, list_config, binary_config]
)
def test_load_model_refuses_an_incomplete_run_folder_in_one_line(tmp_path, spoil):
    run_dir = save(make_model([2, 2, 1], G=3, seed=17), tmp_path / "run")
    spoil(run_dir)
    with pytest.raises(UserError) as info:
        load_model(run_dir)
    assert "\n" not in str(info.value) and str(info.value).strip()


def test_load_model_refuses_a_missing_folder_in_one_line(tmp_path):
    with pytest.raises(UserError) as info:
        load_model(tmp_path / "no_such_run")
    assert "\n" not in str(info.value) and "no_such_run" in str(info.value)


# ---------------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_forward_backward_and_refine_on_cuda():
    model = make_model([2, 4, 1], seed=18)
    x = inputs(300, 2, seed=18)
    twin = make_model([2, 4, 1], seed=18).cuda()
    xc = x.cuda()
    assert max_change(twin(xc).cpu(), model(x)) < 1e-12
    for contraction in ("dense", "gather"):
        for m in (model, twin):
            for layer in m.layers:
                layer.contraction = contraction
        model.zero_grad()
        twin.zero_grad()
        model(x).square().sum().backward()
        twin(xc).square().sum().backward()
        for p, q in zip(model.parameters(), twin.parameters()):
            assert q.grad.is_cuda and max_change(q.grad.cpu(), p.grad) < 1e-10
    before = twin(xc)
    twin.refine(xc, grid_size=10, placement="uniform")
    twin.refine(xc, k=3)
    assert twin.layers[0].knots.is_cuda and twin.grid_sizes == [13, 13]
    assert max_change(twin(xc), before) < 1e-9
    model.refine(x, grid_size=10, placement="uniform")
    model.refine(x, k=3)
    assert max_change(twin(xc).cpu(), model(x)) < 1e-10


def test_grid_range_updates_pad_hidden_layers_and_leave_a_settled_first_layer_alone():
    """The toys' grid-range updates run every 5 steps: a layer whose inputs did not move keeps
    its knots (no refit onto the same knots; the first layer sees the fixed data), and hidden
    layers reach 5% beyond the values their training inputs produce."""
    torch.manual_seed(0)
    model = SimpleKAN([2, 3, 1], grid_size=5, dtype=torch.float64)
    x = torch.rand(200, 2, dtype=torch.float64) * 1.6 - 0.8
    margin = 0.05
    assert model.update_grid_range(x, margin=margin)
    first = model.layers[0].knots.clone()
    with torch.no_grad():
        before = model(x)
    assert not model.update_grid_range(x, margin=margin)  # settled: nothing to move
    assert torch.equal(model.layers[0].knots, first)
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, atol=1e-9, rtol=0)
    for layer, h in zip(model.layers, model.layer_inputs(x)):
        lo, hi = h.min(dim=0).values, h.max(dim=0).values
        pad = 0.0 if layer is model.layers[0] else margin * (hi - lo)
        torch.testing.assert_close(layer.grid_range()[:, 0], lo - pad, atol=1e-9, rtol=0)
        torch.testing.assert_close(layer.grid_range()[:, 1], hi + pad, atol=1e-9, rtol=0)
