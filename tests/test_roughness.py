"""The roughness penalty (``smoothness_weight``, SimpleKAN.roughness): the squared (degree + 1)-th
differences of the spline coefficients, zero for one polynomial, and what it does where no
training point constrains a spline."""

import numpy as np
import torch

import config
import training
from datasets import Data
from simple_kan import SimpleKAN


def test_roughness_is_the_mean_squared_fourth_difference_of_the_unmasked_edges():
    model = SimpleKAN([2, 3, 1], grid_size=6, dtype=torch.float64)
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.normal_()
        model.layers[0].mask[1, 0] = 0.0  # edge 1 -> 2 masked
    expected = 0.0
    for layer in model.layers:
        c = layer.coef.detach().numpy()  # (in, nb, out)
        d = np.diff(c, n=4, axis=1)
        kept = [d[i, :, j] for j in range(c.shape[2]) for i in range(c.shape[0])
                if layer.mask[j, i] > 0]  # fmt: skip
        expected += np.mean(np.square(kept))
    np.testing.assert_allclose(float(model.roughness().detach()), expected, rtol=1e-12)


def test_roughness_is_zero_for_a_spline_that_is_one_cubic():
    model = SimpleKAN([1, 1], grid_size=8, dtype=torch.float64)
    layer = model.layers[0]
    # coefficients of x^3 on uniform knots are a cubic sequence in their index
    j = torch.arange(layer.coef.shape[1], dtype=torch.float64)
    with torch.no_grad():
        layer.coef.copy_((0.3 * j**3 - j + 2.0)[None, :, None])
    assert float(model.roughness().detach()) < 1e-20


def _data(x_train, f):
    x_test = torch.linspace(-1, 1, 201, dtype=torch.float64)[:, None]
    rng = torch.tensor([[-1.0, 1.0]], dtype=torch.float64)
    return Data(x_train, f(x_train), x_test, f(x_test), None, None, rng, None, "t", ["x"], ["y"])


def test_the_penalty_makes_a_spline_continue_smoothly_where_no_training_point_is():
    """Training rows in [-1, 0.3] only, the grid over [-1, 1]: without the penalty the
    coefficients beyond the data keep their random start; with it they continue the fit."""
    f = lambda x: torch.sin(2 * x)  # noqa: E731
    x = torch.linspace(-1, 0.3, 300, dtype=torch.float64)[:, None]
    data = _data(x, f)
    beyond = torch.linspace(0.35, 0.6, 26, dtype=torch.float64)[:, None]
    errors = {}
    for weight in (0.0, 1e-3):
        cfg = {**config.DEFAULTS, "layer_dims": [1, 1], "grid_size": 20, "dtype": "float64",
               "optimizer": "lbfgs", "learning_rate": 1.0, "num_steps": 60,
               "update_strategy": "none", "grid_range_update_every": None,
               "smoothness_weight": weight}  # fmt: skip
        torch.manual_seed(0)
        model = SimpleKAN([1, 1], grid_size=20, dtype=torch.float64, grid_range=[-1.0, 1.0])
        with torch.no_grad():
            model.layers[0].coef.normal_(0, 0.3)
        training.train(cfg, model, data, log=lambda _: None)
        with torch.no_grad():
            fit = float((model(x) - f(x)).abs().max())
            errors[weight] = float((model(beyond) - f(beyond)).abs().max())
        assert fit < 1e-3, (weight, fit)  # inside the data both fit
    assert errors[1e-3] < 0.06 and errors[1e-3] < 0.1 * errors[0.0], errors
