"""The training loop: sampler, refinement inside the loop, the state training ends in, and
the error-driven knots it places."""

import torch

import datasets
import training
from simple_kan import SimpleKAN


def test_batch_sampler_covers_every_point_once_per_epoch():
    sampler = training.BatchSampler(10, 4, seed=0, device="cpu")
    seen = torch.cat([sampler.next() for _ in range(2)])
    assert len(set(seen.tolist())) == 8
    assert training.BatchSampler(10, None, 0, "cpu").next() is None


def test_adam_state_survives_refinement_and_the_loss_does_not_jump(small_cfg):
    cfg = small_cfg(update_strategy="fixed", fixed_update_interval=30, adaptive_k=4)
    data = datasets.make_data(cfg, "cpu", torch.float32)
    torch.manual_seed(0)
    model = SimpleKAN(cfg["layer_dims"], grid_size=5, grid_range=data.input_range)
    result = training.train(cfg, model, data, log=lambda _: None)
    assert [e["step"] for e in result.events if e["kind"] == "refine"] == [30]
    before, after = result.history["train_rmse"][29], result.history["train_rmse"][30]
    assert after < 1.2 * before
    assert model.grid_sizes == [9, 9]


def test_full_batch_training_ends_at_the_lowest_checked_training_loss(small_cfg):
    """Adam with a large step oscillates; the returned model is the best state seen at the
    checks (every CHECK_EVERY steps), never a worse last step."""
    cfg = small_cfg(learning_rate=0.5, num_steps=83, update_strategy="none")
    data = datasets.make_data(cfg, "cpu", torch.float64)
    torch.manual_seed(0)
    model = SimpleKAN(
        cfg["layer_dims"], grid_size=5, grid_range=data.input_range, dtype=torch.float64
    )
    result = training.train(cfg, model, data, log=lambda _: None)
    checked = result.history["train_rmse"][training.CHECK_EVERY :: training.CHECK_EVERY]
    with torch.no_grad():
        final = float(torch.sqrt(torch.mean((model(data.x_train) - data.y_train) ** 2)))
    assert final <= min(checked) * (1 + 1e-9)


def test_error_driven_knots_beat_uniform_knots_on_a_localised_feature(small_cfg):
    """A steep step off-centre: with the same number of knots, placing them where the error is
    must at least halve the test RMSE of evenly spaced knots (grid extension 5 -> 10 -> 20)."""
    rmse = {}
    for placement in ("uniform", "error"):
        cfg = small_cfg(
            layer_dims=[1, 1],
            target_function="tanh(40*(x1-0.3))",
            dataset_size=1000,
            optimizer="lbfgs",
            learning_rate=1,
            num_steps=150,
            update_strategy="fixed",
            fixed_update_interval=50,
            grid_schedule=[5, 10, 20],
            knot_placement=placement,
        )
        data = datasets.make_data(cfg, "cpu", torch.float64)
        torch.manual_seed(0)
        model = SimpleKAN([1, 1], grid_size=5, grid_range=data.input_range, dtype=torch.float64)
        training.train(cfg, model, data, log=lambda _: None)
        assert model.grid_sizes == [20]
        with torch.no_grad():
            rmse[placement] = float(torch.sqrt(torch.mean((model(data.x_test) - data.y_test) ** 2)))
    assert rmse["error"] <= 0.5 * rmse["uniform"], rmse
