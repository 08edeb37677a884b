import numpy as np
import pytest
import scipy.special
import torch

from errors import DataError
from targets import FUNCTIONS, compile_expression, compile_target


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


def test_huge_constants_are_inf_or_refused_not_computed():
    y = compile_expression("9**9**9 + 10**10**10 * x1", 2)(torch.ones(3, 2))
    assert torch.isinf(y).all()
    with pytest.raises(DataError, match="too large"):
        compile_expression("1" * 400, 2)
    with pytest.raises(DataError, match="nested"):
        compile_expression("-" * 5000 + "x1", 2)


def test_compile_target_stacks_one_column_per_output():
    x = torch.from_numpy(random_points())
    y = compile_target(["x1*x2", "x1 - x2"], 2)(x)
    assert y.shape == (len(x), 2)
    torch.testing.assert_close(y[:, 1], x[:, 0] - x[:, 1])
    assert compile_target("x1", 2)(x).shape == (len(x), 1)
    with pytest.raises(DataError, match=r"in target_function\[1\]"):
        compile_target(["x1", "x9"], 2)
