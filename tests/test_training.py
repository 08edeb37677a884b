"""The training loop's pieces: plateau rule, grid schedule, sampler, optimizer state."""

import torch

import config
import targets
import training
from simple_kan import SimpleKAN


def small_cfg(**keys):
    cfg = dict(config.DEFAULTS, layer_dims=[2, 3, 1], grid_size=5, dataset_size=300)
    cfg.update(test_size=100, num_steps=60, learning_rate=0.01, log_interval=1000)
    cfg.update(keys)
    return config.validate_config(cfg, "test")


def test_plateau_detector_fires_only_when_a_window_brings_too_little():
    detector = training.PlateauDetector(patience=10, threshold=0.01)
    falling = torch.linspace(1.0, 0.5, 40)
    assert not detector.plateaued(falling)
    flat = torch.cat([torch.linspace(1.0, 0.5, 20), torch.full((20,), 0.499)])
    assert detector.plateaued(flat)
    assert not detector.plateaued(flat[:15])  # fewer than 2 * patience steps: never


def test_grid_schedule_skips_sizes_not_above_the_current_one_and_caps():
    cfg = small_cfg(grid_schedule=[3, 5, 10, 20], max_grid_size=15)
    assert training.next_grid_size(cfg, 3) == 5
    assert training.next_grid_size(cfg, 5) == 10
    assert training.next_grid_size(cfg, 10) == 15
    assert training.next_grid_size(cfg, 15) is None
    cfg = small_cfg(adaptive_k=4, max_grid_size=12)
    assert training.next_grid_size(cfg, 10) == 12


def test_batch_sampler_covers_every_point_once_per_epoch():
    sampler = training.BatchSampler(10, 4, seed=0, device="cpu")
    seen = torch.cat([sampler.next() for _ in range(2)])
    assert len(set(seen.tolist())) == 8
    assert training.BatchSampler(10, None, 0, "cpu").next() is None


def test_adam_state_survives_refinement_and_the_loss_does_not_jump():
    cfg = small_cfg(update_strategy="fixed", fixed_update_interval=30, adaptive_k=4)
    data = targets.make_data(cfg, "cpu", torch.float32)
    torch.manual_seed(0)
    model = SimpleKAN(cfg["layer_dims"], grid_size=5, grid_range=data.input_range)
    result = training.train(cfg, model, data, log=lambda _: None)
    assert [e["step"] for e in result.events if e["kind"] == "refine"] == [30]
    before, after = result.history["train_rmse"][29], result.history["train_rmse"][30]
    assert after < 1.2 * before
    assert model.grid_sizes == [9, 9]


def test_moments_follow_the_knot_insertion():
    cfg = small_cfg()
    torch.manual_seed(0)
    model = SimpleKAN([2, 3, 1], grid_size=5)
    opt = training.make_optimizer(cfg, model.parameters())
    x = torch.rand(50, 2) * 2 - 1
    for _ in range(3):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    moments = training._adam_moments(opt, model)
    carried = model.refine(x, k=2, placement="density", carry=[m[1:] for m in moments])
    new_opt = training.make_optimizer(cfg, model.parameters(), old=opt)
    training._restore_adam_moments(new_opt, model, moments, carried)
    for layer in model.layers:
        state = new_opt.state[layer.coef]
        assert state["exp_avg"].shape == layer.coef.shape
        assert float(state["step"]) == 3.0
        assert bool((state["exp_avg_sq"] >= 0).all())


def test_full_batch_training_ends_at_the_lowest_checked_training_loss():
    """Adam with a large step oscillates; the returned model is the best state seen at the
    checks (every CHECK_EVERY steps), never a worse last step."""
    cfg = small_cfg(learning_rate=0.5, num_steps=83, update_strategy="none")
    data = targets.make_data(cfg, "cpu", torch.float64)
    torch.manual_seed(0)
    model = SimpleKAN(
        cfg["layer_dims"], grid_size=5, grid_range=data.input_range, dtype=torch.float64
    )
    result = training.train(cfg, model, data, log=lambda _: None)
    checked = result.history["train_rmse"][training.CHECK_EVERY :: training.CHECK_EVERY]
    with torch.no_grad():
        final = float(torch.sqrt(torch.mean((model(data.x_train) - data.y_train) ** 2)))
    assert final <= min(checked) * (1 + 1e-9)


def test_error_driven_knots_beat_uniform_knots_on_a_localised_feature():
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
        data = targets.make_data(cfg, "cpu", torch.float64)
        torch.manual_seed(0)
        model = SimpleKAN([1, 1], grid_size=5, grid_range=data.input_range, dtype=torch.float64)
        training.train(cfg, model, data, log=lambda _: None)
        assert model.grid_sizes == [20]
        with torch.no_grad():
            rmse[placement] = float(torch.sqrt(torch.mean((model(data.x_test) - data.y_test) ** 2)))
    assert rmse["error"] <= 0.5 * rmse["uniform"], rmse
