"""datasets.py: the training, test and validation sets a config describes."""

import pytest
import torch

from config import load_config
from datasets import make_data
from errors import DataError


def small_config(*overrides):
    return load_config(None, ["dataset_size=64", "test_size=16", *overrides])


def test_make_data_has_the_configured_shapes_dtype_and_target():
    data = make_data(small_config(), "cpu", torch.float32)
    assert data.x_train.shape == (64, 2) and data.y_train.shape == (64, 1)
    assert data.x_test.shape == (16, 2) and data.y_test.shape == (16, 1)
    assert data.x_val is None and data.y_val is None
    assert all(t.dtype == torch.float32 for t in (data.x_train, data.y_test, data.input_range))
    torch.testing.assert_close(data.input_range, torch.tensor([[-1.0, 1.0], [-1.0, 1.0]]))
    assert ((data.x_train >= -1) & (data.x_train <= 1)).all()
    torch.testing.assert_close(data.target(data.x_test), data.y_test)
    assert "exp(sin(pi*x1) + x2**2)" in data.description


def test_make_data_is_reproducible_with_the_same_seed_and_differs_with_another():
    first = make_data(small_config(), "cpu", torch.float64)
    again = make_data(small_config(), "cpu", torch.float64)
    other = make_data(small_config("seed=1"), "cpu", torch.float64)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.x_test, again.x_test)
    assert not torch.equal(first.x_train, other.x_train)
    assert not torch.equal(first.x_train[:16], first.x_test)


def test_test_set_does_not_depend_on_dataset_size():
    small = make_data(small_config(), "cpu", torch.float64)
    large = make_data(small_config("dataset_size=200"), "cpu", torch.float64)
    assert torch.equal(small.x_test, large.x_test)


def test_make_data_samples_each_input_in_its_own_range():
    data = make_data(small_config("input_range=[[0,1],[10,20]]"), "cpu", torch.float64)
    assert data.x_train[:, 0].min() >= 0 and data.x_train[:, 0].max() <= 1
    assert data.x_train[:, 1].min() >= 10 and data.x_train[:, 1].max() <= 20


def test_several_outputs_give_one_column_each():
    cfg = small_config("layer_dims=[2,3,2]", 'target_function=["x1*x2", "x1+x2"]')
    data = make_data(cfg, "cpu", torch.float64)
    assert data.y_train.shape == (64, 2)
    torch.testing.assert_close(data.y_train[:, 1], data.x_train.sum(dim=1))


def test_early_stopping_holds_out_validation_points():
    cfg = small_config("early_stopping_patience=10", "validation_fraction=0.25")
    data = make_data(cfg, "cpu", torch.float64)
    assert data.x_val.shape == (16, 2) and data.y_val.shape == (16, 1)
    assert data.x_train.shape == (48, 2)


def test_non_finite_target_values_are_reported_with_an_example():
    with pytest.raises(DataError, match=r"not finite .* at \d+ of 64 training points, e.g. at x1="):
        make_data(small_config("target_function=log(x1)"), "cpu", torch.float64)


def test_make_data_from_a_file_shuffles_and_holds_out_the_test_rows(write_file):
    rows = "\n".join(f"{i},{-i},{2 * i}" for i in range(30))
    path = write_file("a,b,y\n" + rows + "\n")
    cfg = small_config(f"data_file={path}", "test_size=10", "early_stopping_patience=5")
    data = make_data(cfg, "cpu", torch.float64)
    assert data.target is None
    assert (len(data.x_test), len(data.x_val), len(data.x_train)) == (10, 2, 18)
    everything = torch.cat([data.x_train, data.x_val, data.x_test])[:, 0]
    assert sorted(everything.tolist()) == list(range(30))
    assert everything.tolist() != list(range(30))
    torch.testing.assert_close(data.y_train[:, 0], 2 * data.x_train[:, 0])
    lo, hi = data.x_train.min(dim=0).values, data.x_train.max(dim=0).values
    torch.testing.assert_close(data.input_range, torch.stack([lo, hi], dim=1))


def test_data_file_with_too_few_rows_for_the_test_set_is_rejected(write_file):
    path = write_file("1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match="2 rows, but test_size 16 needs at least 17"):
        make_data(small_config(f"data_file={path}"), "cpu", torch.float32)
