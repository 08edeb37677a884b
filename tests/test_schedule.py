"""schedule.py: when grids are refined and to which size."""

import torch

import schedule


def test_plateau_detector_fires_only_when_a_window_brings_too_little():
    detector = schedule.PlateauDetector(patience=10, threshold=0.01)
    falling = torch.linspace(1.0, 0.5, 40)
    assert not detector.plateaued(falling)
    flat = torch.cat([torch.linspace(1.0, 0.5, 20), torch.full((20,), 0.499)])
    assert detector.plateaued(flat)
    assert not detector.plateaued(flat[:15])  # fewer than 2 * patience steps: never


def test_grid_schedule_skips_sizes_not_above_the_current_one_and_caps(small_cfg):
    cfg = small_cfg(grid_schedule=[3, 5, 10, 20], max_grid_size=15)
    assert schedule.next_grid_size(cfg, 3) == 5
    assert schedule.next_grid_size(cfg, 5) == 10
    assert schedule.next_grid_size(cfg, 10) == 15
    assert schedule.next_grid_size(cfg, 15) is None
    cfg = small_cfg(adaptive_k=4, max_grid_size=12)
    assert schedule.next_grid_size(cfg, 10) == 12


def test_fixed_strategy_refines_every_interval_but_never_at_the_start(small_cfg):
    trigger = schedule.RefinementTrigger(
        small_cfg(update_strategy="fixed", fixed_update_interval=30), True, 10
    )
    flat = torch.ones(100)
    assert [s for s in range(100) if trigger.due(s, flat)] == [30, 60, 90]


def test_adaptive_strategy_reads_the_losses_only_at_check_steps(small_cfg):
    cfg = small_cfg(update_strategy="adaptive", adaptive_patience=10, adaptive_threshold=0.01)
    trigger = schedule.RefinementTrigger(cfg, True, 10)
    flat = torch.ones(40)
    assert trigger.due(40, flat)
    assert not trigger.due(41, flat)  # between checks the rule is not evaluated


def test_a_disabled_trigger_or_strategy_none_never_refines(small_cfg):
    flat = torch.ones(100)
    for cfg, enabled in (
        (small_cfg(update_strategy="fixed", fixed_update_interval=10), False),
        (small_cfg(update_strategy="none"), True),
    ):
        trigger = schedule.RefinementTrigger(cfg, enabled, 10)
        assert not any(trigger.due(s, flat) for s in range(100))
