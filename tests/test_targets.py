import time

import numpy as np
import pytest
import scipy.special
import torch

from config import load_config
from errors import DataError
from targets import FUNCTIONS, compile_expression, compile_target, load_data_file, make_data


def random_points(n=200, n_inputs=2, low=0.1, high=0.9, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=(n, n_inputs))


def evaluate(text, points, n_inputs=2):
    return compile_expression(text, n_inputs)(torch.from_numpy(points)).numpy()


# ---------------------------------------------------------------------------------------------
# Expressions


def test_expression_matches_numpy_closed_form():
    x = random_points(low=-1, high=1)
    expected = np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)
    np.testing.assert_allclose(evaluate("exp(sin(pi*x1) + x2**2)", x), expected, rtol=1e-12)


REFERENCE = {
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "arcsin": np.arcsin,
    "arccos": np.arccos,
    "arctan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "exp": np.exp,
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "sign": np.sign,
    "erf": scipy.special.erf,
    "sigmoid": scipy.special.expit,
    "j0": scipy.special.j0,
}


def test_every_function_has_a_reference():
    assert set(REFERENCE) == set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_function_matches_its_numpy_or_scipy_reference(name):
    positive_only = name in ("log", "log2", "log10", "sqrt")
    x = random_points(low=0.1 if positive_only else -0.9, high=0.9)
    # torch's j0 is accurate to about 1e-7 absolute past x = 5 (a few oscillations are covered)
    x, atol = (10 * x, 1e-6) if name == "j0" else (x, 0)
    got = evaluate(f"{name}(x2)", x)
    np.testing.assert_allclose(got, REFERENCE[name](x[:, 1]), rtol=1e-10, atol=atol)


def test_operators_follow_python_precedence():
    x = random_points(low=-2, high=2)
    x1, x2 = x[:, 0], x[:, 1]
    expected = -(x1**2) + 2 * x2 / 3 - +x1 + 2**-1 * np.e - x1 * x2**3 / (1 + x2**2)
    got = evaluate("-x1**2 + 2*x2/3 - +x1 + 2**-1*e - x1*x2**3/(1 + x2**2)", x)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_constant_expression_returns_one_value_per_point():
    y = compile_expression("2*pi", 3)(torch.zeros(5, 3))
    assert y.shape == (5,)
    torch.testing.assert_close(y, torch.full((5,), 2 * np.pi))


def test_output_keeps_dtype_and_shape_of_input():
    f = compile_expression("x1 * exp(x2) + 1", 2)
    for dtype in (torch.float32, torch.float64):
        y = f(torch.rand(7, 2, dtype=dtype))
        assert y.dtype == dtype and y.shape == (7,)


def test_expression_is_differentiable():
    x = torch.rand(4, 2, dtype=torch.float64, requires_grad=True)
    compile_expression("x1**2 * sin(x2)", 2)(x).sum().backward()
    expected = torch.stack([2 * x[:, 0] * torch.sin(x[:, 1]), x[:, 0] ** 2 * torch.cos(x[:, 1])], 1)
    torch.testing.assert_close(x.grad, expected.detach())


def test_import_call_is_rejected_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(DataError, match="not allowed"):
        compile_expression(f"__import__('os').system('touch {marker}')", 2)
    with pytest.raises(DataError, match="unknown function '__import__'"):
        compile_expression("__import__('os')", 2)
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("x1.real", "attribute access 'x1.real' is not allowed"),
        ("sin.__globals__", "attribute access"),
        ("x1[0]", "subscript 'x1\\[0\\]' is not allowed"),
        ("(lambda: 1)()", "lambda"),
        ("[x1 for x1 in x2]", "comprehension"),
        ("sin(x=1)", "keyword argument"),
        ("sin(x1, x2)", "sin takes exactly one"),
        ("sin()", "sin takes exactly one"),
        ("'abc'", "is not a number"),
        ("x1 if x2 else 1", "conditional expression"),
        ("x1 < x2", "comparison"),
        ("x1 % 2", "operator '%'"),
        ("x1 // 2", "operator '//'"),
        ("True", "is not a number"),
        ("1j", "is not a number"),
        ("foo(x1)", "unknown function 'foo'"),
        ("sin + 1", "function 'sin' without an argument"),
        ("", "non-empty expression"),
    ],
)
def test_anything_outside_the_whitelist_is_rejected(text, message):
    with pytest.raises(DataError, match=message):
        compile_expression(text, 2)


def test_unknown_variable_names_the_inputs():
    with pytest.raises(DataError) as error:
        compile_expression("x1 + x3", 2)
    assert str(error.value) == "unknown variable 'x3' in target_function (inputs are x1..x2)"
    with pytest.raises(DataError, match=r"unknown variable 'x0'.*\(input is x1\)"):
        compile_expression("x0", 1)


def test_caret_hints_at_the_power_operator():
    with pytest.raises(DataError, match=r"'\^'.*use \*\* for powers"):
        compile_expression("x1^2", 2)


def test_syntax_error_says_where():
    with pytest.raises(
        DataError, match=r"syntax error at column 5 in target_function 'x1 \+\* x2'"
    ):
        compile_expression("x1 +* x2", 2)


def test_huge_constants_do_not_hang():
    start = time.perf_counter()
    y = compile_expression("9**9**9 + 10**10**10 * x1", 2)(torch.ones(3, 2))
    assert torch.isinf(y).all()
    with pytest.raises(DataError, match="too large"):
        compile_expression("1" * 400, 2)
    with pytest.raises(DataError, match="nested"):
        compile_expression("-" * 5000 + "x1", 2)
    assert time.perf_counter() - start < 2


def test_compile_target_stacks_one_column_per_output():
    x = torch.from_numpy(random_points())
    y = compile_target(["x1*x2", "x1 - x2"], 2)(x)
    assert y.shape == (len(x), 2)
    torch.testing.assert_close(y[:, 1], x[:, 0] - x[:, 1])
    assert compile_target("x1", 2)(x).shape == (len(x), 1)
    with pytest.raises(DataError, match=r"in target_function\[1\]"):
        compile_target(["x1", "x9"], 2)


# ---------------------------------------------------------------------------------------------
# Data files


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_csv_with_a_header_row_is_read(tmp_path):
    path = write(tmp_path, "x1,x2,y\n0.5,1,2\n\n-1,2e-3,4\n")
    x, y = load_data_file(path, 2, 1)
    np.testing.assert_array_equal(x, [[0.5, 1], [-1, 2e-3]])
    np.testing.assert_array_equal(y, [[2], [4]])
    assert x.dtype == y.dtype == np.float64


def test_csv_without_a_header_keeps_the_first_row(tmp_path):
    path = write(tmp_path, "# made by hand\n1,2,3,4\n5,6,7,8\n")
    x, y = load_data_file(path, 2, 2)
    np.testing.assert_array_equal(x, [[1, 2], [5, 6]])
    np.testing.assert_array_equal(y, [[3, 4], [7, 8]])


def test_csv_ragged_row_names_the_line(tmp_path):
    path = write(tmp_path, "a,b,c,d\n" + "1,2,3,4\n" * 5 + "1,2,3\n")
    with pytest.raises(DataError) as error:
        load_data_file(path, 3, 1)
    assert str(error.value).startswith(f"{path} line 7: 3 columns, expected 4")


def test_csv_non_numeric_cell_names_line_and_column(tmp_path):
    path = write(tmp_path, "x,y\n1,2\n3,4\n5,6\n7,abc\n")
    with pytest.raises(DataError) as error:
        load_data_file(path, 1, 1)
    assert str(error.value) == f"{path} line 5, column 2: 'abc' is not a number"


def test_csv_nan_or_inf_is_rejected(tmp_path):
    for bad in ("nan", "inf"):
        path = write(tmp_path, f"1,2\n3,{bad}\n")
        with pytest.raises(DataError, match=r"line 2, column 2: .* is not finite"):
            load_data_file(path, 1, 1)


def test_csv_column_count_must_match_layer_dims(tmp_path):
    path = write(tmp_path, "1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match=r"line 1: 3 columns, expected 4 \(3 inputs \+ 1 output"):
        load_data_file(path, 3, 1)
    path = write(tmp_path, "1;2;3\n")
    with pytest.raises(DataError, match="separated by commas"):
        load_data_file(path, 2, 1)


def test_empty_or_missing_data_file_is_rejected(tmp_path):
    with pytest.raises(DataError, match="no data rows"):
        load_data_file(write(tmp_path, "x,y\n\n"), 1, 1)
    with pytest.raises(DataError, match="not found"):
        load_data_file(str(tmp_path / "absent.csv"), 1, 1)


def test_npz_round_trip(tmp_path):
    x = np.random.default_rng(1).normal(size=(20, 3))
    y = x.sum(axis=1)
    path = tmp_path / "points.npz"
    np.savez(path, x=x, y=y)
    x_read, y_read = load_data_file(str(path), 3, 1)
    np.testing.assert_array_equal(x_read, x)
    np.testing.assert_array_equal(y_read, y[:, None])


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((4, 2))}, r"missing array 'y' \(found: x\)"),
        ({"x": np.zeros((4, 3)), "y": np.zeros(4)}, r"'x' has shape \(4, 3\), expected \(N, 2\)"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(3)}, "'x' has 4 rows but 'y' has 3"),
        ({"x": np.full((4, 2), np.nan), "y": np.zeros(4)}, r"x\[0, 0\] is nan"),
        ({"x": np.array([["a", "b"]]), "y": np.zeros(1)}, "expected numbers"),
    ],
)
def test_bad_npz_is_rejected(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_data_file(str(path), 2, 1)


def test_file_that_is_not_an_npz_archive_is_rejected(tmp_path):
    for content in (b"hello", b"PK\x03\x04broken"):
        path = tmp_path / "broken.npz"
        path.write_bytes(content)
        with pytest.raises(DataError, match="not an .npz archive"):
            load_data_file(str(path), 2, 1)
    np.savez(path, x=np.array([object()]), y=np.zeros(1))
    with pytest.raises(DataError, match="cannot read array 'x'"):
        load_data_file(str(path), 2, 1)


# ---------------------------------------------------------------------------------------------
# Data sets


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


def test_make_data_from_a_file_shuffles_and_holds_out_the_test_rows(tmp_path):
    rows = "\n".join(f"{i},{-i},{2 * i}" for i in range(30))
    path = write(tmp_path, "a,b,y\n" + rows + "\n")
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


def test_data_file_with_too_few_rows_for_the_test_set_is_rejected(tmp_path):
    path = write(tmp_path, "1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match="2 rows, but test_size 16 needs at least 17"):
        make_data(small_config(f"data_file={path}"), "cpu", torch.float32)
