"""Target expressions: the text a config gives as ``target_function``, compiled safely.

A target expression is text in the inputs `x1..xn` ("exp(sin(pi*x1) + x2**2)"). It is parsed with
`ast` and walked against a whitelist (numbers, unary + -, binary + - * / **, the inputs, `pi`, `e`
and calls of the functions in `FUNCTIONS` by bare name), then turned into a tree of torch
operations. User text is never evaluated as Python. Every constant becomes a tensor of the input's
dtype, so `9**9**9` is `inf` rather than a Python big-int computation.

Problems raise `DataError` with one line saying what is wrong and where.
"""

import ast
import math
import re
from collections.abc import Callable

import torch

from errors import DataError

# Functions an expression may call, by bare name, each with one argument.
FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "asin": torch.asin,
    "acos": torch.acos,
    "atan": torch.atan,
    "arcsin": torch.asin,
    "arccos": torch.acos,
    "arctan": torch.atan,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "tanh": torch.tanh,
    "exp": torch.exp,
    "log": torch.log,
    "log2": torch.log2,
    "log10": torch.log10,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "sign": torch.sign,
    "erf": torch.special.erf,
    "sigmoid": torch.sigmoid,
    "j0": torch.special.bessel_j0,
}
CONSTANTS = {"pi": math.pi, "e": math.e}

_BINARY_OPS = {
    ast.Add: torch.add,
    ast.Sub: torch.sub,
    ast.Mult: torch.mul,
    ast.Div: torch.div,
    ast.Pow: torch.pow,
}
# Left-associative operators of one precedence level, compiled as one flat chain.
_SAME_LEVEL = {ast.Add: (ast.Add, ast.Sub), ast.Sub: (ast.Add, ast.Sub)}
_SAME_LEVEL |= {ast.Mult: (ast.Mult, ast.Div), ast.Div: (ast.Mult, ast.Div)}
# Friendly names for the syntax that is refused, to say what was found.
_REFUSED_OPS = {ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.BitOr: "|", ast.BitAnd: "&"}
_REFUSED_OPS |= {ast.LShift: "<<", ast.RShift: ">>", ast.Invert: "~", ast.Not: "not"}
_REFUSED_NODES = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "comprehension",
    ast.Compare: "comparison",
    ast.BoolOp: "boolean operator",
    ast.IfExp: "conditional expression",
    ast.NamedExpr: "assignment",
    ast.JoinedStr: "string",
    ast.List: "list",
    ast.Tuple: "tuple",
    ast.Dict: "dict",
    ast.Set: "set",
}
_MAX_DEPTH = 100  # nesting levels; keeps compiling and evaluating far from the recursion limit
_INPUT_NAME = re.compile(r"x([1-9][0-9]*)")

# A compiled node: maps the inputs (N, n) to a tensor that broadcasts to (N,).
_Node = Callable[[torch.Tensor], torch.Tensor]


class Expression:
    """A compiled target expression: `expr(x)` maps x (N, n_inputs) to (N,), same dtype/device."""

    def __init__(self, text: str, n_inputs: int, root: _Node):
        self.text = text
        self.n_inputs = n_inputs
        self._root = root

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"expected x of shape (N, {self.n_inputs}), got {tuple(x.shape)}")
        return torch.broadcast_to(self._root(x), (x.shape[0],)).clone()

    def __repr__(self) -> str:
        return f"Expression({self.text!r}, n_inputs={self.n_inputs})"


def _quote(text: str, limit: int = 60) -> str:
    """repr of `text`, shortened to about `limit` characters for a one-line message."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _inputs_hint(n_inputs: int) -> str:
    return "input is x1" if n_inputs == 1 else f"inputs are x1..x{n_inputs}"


class _Compiler:
    """Walks a parsed expression against the whitelist and builds its torch evaluation tree."""

    def __init__(self, text: str, n_inputs: int, name: str):
        self.text = text
        self.n_inputs = n_inputs
        self.name = name

    def fail(self, problem: str, hint: str = "") -> DataError:
        return DataError(f"{problem} in {self.name}" + (f" ({hint})" if hint else ""))

    def quote(self, node: ast.AST) -> str:
        return _quote(ast.get_source_segment(self.text, node) or type(node).__name__)

    def compile(self, node: ast.AST, depth: int = 0) -> _Node:
        if depth > _MAX_DEPTH:
            raise self.fail(f"more than {_MAX_DEPTH} nested operations")
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name_(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
            operand = self.compile(node.operand, depth + 1)
            if isinstance(node.op, ast.UAdd):
                return operand
            return lambda x: torch.neg(operand(x))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
            return self.binary(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        raise self.refuse(node)

    def binary(self, node: ast.BinOp, depth: int) -> _Node:
        """A chain of operators of one precedence level (``a + b - c + ...``, ``a * b / c``) is
        one level of nesting, folded left to right in a loop: a sum of a hundred terms is as
        flat as it reads, not a hundred nested operations."""
        level = _SAME_LEVEL.get(type(node.op), (type(node.op),))
        terms = []
        while isinstance(node, ast.BinOp) and type(node.op) in level:
            terms.append((_BINARY_OPS[type(node.op)], self.compile(node.right, depth + 1)))
            node = node.left
        first = self.compile(node, depth + 1)
        terms.reverse()

        def fold(x: torch.Tensor) -> torch.Tensor:
            value = first(x)
            for op, term in terms:
                value = op(value, term(x))
            return value

        return fold

    def refuse(self, node: ast.AST) -> DataError:
        op = getattr(node, "op", None)
        if isinstance(op, ast.BitXor):
            return self.fail(f"power written with '^' in {self.quote(node)}", "use ** for powers")
        if type(op) in _REFUSED_OPS:
            symbol = _REFUSED_OPS[type(op)]
            return self.fail(f"operator '{symbol}' in {self.quote(node)} is not allowed")
        kind = _REFUSED_NODES.get(type(node), type(node).__name__)
        return self.fail(f"{kind} {self.quote(node)} is not allowed")

    def constant(self, node: ast.Constant) -> _Node:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"constant {self.quote(node)} is not a number")
        try:
            number = float(value)
        except OverflowError:
            raise self.fail(f"number {self.quote(node)} is too large") from None
        return lambda x: x.new_tensor(number)

    def name_(self, node: ast.Name) -> _Node:
        name = node.id
        match = _INPUT_NAME.fullmatch(name)
        if match and int(match.group(1)) <= self.n_inputs:
            column = int(match.group(1)) - 1
            return lambda x: x[:, column]
        if name in CONSTANTS:
            number = CONSTANTS[name]
            return lambda x: x.new_tensor(number)
        if name in FUNCTIONS:
            raise self.fail(f"function '{name}' without an argument", f"write {name}(...)")
        raise self.fail(f"unknown variable '{name}'", _inputs_hint(self.n_inputs))

    def call(self, node: ast.Call, depth: int) -> _Node:
        if not isinstance(node.func, ast.Name):
            raise self.refuse(node.func)
        name = node.func.id
        if name not in FUNCTIONS:
            raise self.fail(f"unknown function '{name}'", "known: " + ", ".join(FUNCTIONS))
        if node.keywords:
            raise self.fail(f"keyword argument in {self.quote(node)} is not allowed")
        if len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise self.fail(f"wrong arguments in {self.quote(node)}", f"{name} takes exactly one")
        function = FUNCTIONS[name]
        argument = self.compile(node.args[0], depth + 1)
        return lambda x: function(argument(x))


def compile_expression(text: str, n_inputs: int, name: str = "target_function") -> Expression:
    """Compile `text` in `x1..x{n_inputs}` into a callable mapping x (N, n_inputs) to (N,).

    `name` says where the text came from in error messages (a config key).
    """
    if not isinstance(text, str) or not text.strip():
        raise DataError(
            f"{name} must be a non-empty expression in x1..x{n_inputs}, got {text!r:.60}"
        )
    source = text.strip()
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        where = f" at column {error.offset}" if error.offset else ""
        raise DataError(f"syntax error{where} in {name} {_quote(source)} ({error.msg})") from None
    except (RecursionError, MemoryError):
        raise DataError(f"too deeply nested operations in {name}") from None
    return Expression(source, n_inputs, _Compiler(source, n_inputs, name).compile(tree.body))


def compile_target(
    target_function: str | list[str], n_inputs: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Compile a config's target_function (a string, or one per output): x (N, n) → (N, n_out)."""
    if isinstance(target_function, str):
        expressions = [compile_expression(target_function, n_inputs)]
    else:
        expressions = [
            compile_expression(text, n_inputs, f"target_function[{i}]")
            for i, text in enumerate(target_function)
        ]
    return lambda x: torch.stack([expression(x) for expression in expressions], dim=1)
