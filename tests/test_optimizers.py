"""optimizers.py: Adam's state across a refinement, LBFGS at any scale of the loss."""

import pytest
import torch

import optimizers
from simple_kan import SimpleKAN


def test_moments_follow_the_knot_insertion(small_cfg):
    cfg = small_cfg()
    torch.manual_seed(0)
    model = SimpleKAN([2, 3, 1], grid_size=5)
    opt = optimizers.Optimizer(cfg, model.parameters())
    x = torch.rand(50, 2) * 2 - 1
    for _ in range(3):
        opt.step(lambda xb, _: (model(xb).pow(2).mean(), None), x, None)
    moments = optimizers.adam_moments(opt, model)
    carried = model.refine(x, k=2, placement="density", carry=[m[1:] for m in moments])
    new_opt = optimizers.Optimizer(cfg, model.parameters(), old=opt)
    optimizers.restore_adam_moments(new_opt, model, moments, carried)
    for layer in model.layers:
        state = new_opt.torch.state[layer.coef]
        assert state["exp_avg"].shape == layer.coef.shape
        assert float(state["step"]) == 3.0
        assert bool((state["exp_avg_sq"] >= 0).all())


def quadratic(scale):
    """An ill-conditioned least-squares objective of 30 parameters, times ``scale``."""
    torch.manual_seed(0)
    a = torch.logspace(0, 1, 30, dtype=torch.float64)
    b = torch.randn(30, dtype=torch.float64)
    p = torch.nn.Parameter(torch.zeros(30, dtype=torch.float64))
    return p, lambda xb, yb: (scale * ((a * p - b) ** 2).mean(), None)


@pytest.mark.parametrize("scale", [1.0, 1e-12])
def test_lbfgs_converges_the_same_whatever_the_scale_of_the_loss(scale):
    """torch's LBFGS stores a curvature pair only when y·s > 1e-10; at a loss of 1e-12 none
    would pass and it would crawl like gradient descent. Our step normalises the objective."""
    p, loss_fn = quadratic(scale)
    cfg = {"optimizer": "lbfgs", "learning_rate": 1.0, "lbfgs_max_iter": 20}
    opt = optimizers.Optimizer(cfg, [p])
    with torch.no_grad():
        start = float(loss_fn(None, None)[0])
    for _ in range(3):
        opt.step(loss_fn, None, None)
    with torch.no_grad():
        assert float(loss_fn(None, None)[0]) < 1e-8 * start
