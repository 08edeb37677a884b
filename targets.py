"""What the network learns: target expressions, data files and the data sets built from them.

A target expression is text in the inputs `x1..xn` ("exp(sin(pi*x1) + x2**2)"). It is parsed with
`ast` and walked against a whitelist (numbers, unary + -, binary + - * / **, the inputs, `pi`, `e`
and calls of the functions in `FUNCTIONS` by bare name), then turned into a tree of torch
operations. User text is never evaluated as Python. Every constant becomes a tensor of the input's
dtype, so `9**9**9` is `inf` rather than a Python big-int computation.

A data file is a CSV (comma separated, inputs first and the last `n_out` columns targets, one
optional header row) or an `.npz` with arrays `x` (N, n_in) and `y` (N, n_out).

Problems with either raise `DataError` with one line saying what is wrong and where.
"""

import ast
import csv
import math
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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


# ---------------------------------------------------------------------------------------------
# Data files


def _columns_hint(n_in: int, n_out: int) -> str:
    return f"{n_in} input{'s' * (n_in != 1)} + {n_out} output{'s' * (n_out != 1)} from layer_dims"


def load_data_file(path: str, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Read a data file into x (N, n_in) and y (N, n_out), both float64 and finite.

    CSV: comma separated, one row per point, inputs first and the last n_out columns targets.
    Blank lines and lines starting with '#' are skipped; the first row is a header when none of
    its cells is a number. Any other suffix than `.npz` is read as CSV.
    NPZ: arrays `x` (N, n_in) and `y` (N, n_out); 1-D is accepted for a width of 1.
    """
    file = Path(path)
    if not file.exists():
        raise DataError(f"data file '{path}' not found")
    if not file.is_file():
        raise DataError(f"data file '{path}' is not a file")
    if file.suffix.lower() == ".npz":
        return _load_npz(file, path, n_in, n_out)
    return _load_csv(file, path, n_in, n_out)


def _load_npz(file: Path, path: str, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        archive = None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: not an .npz archive (write one with numpy.savez(path, x=x, y=y))")
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
                raise DataError(f"{path}: cannot read array '{key}' ({error})") from None
    arrays_found = ", ".join(sorted(arrays)) or "none"
    result = []
    for key, width in (("x", n_in), ("y", n_out)):
        if key not in arrays:
            raise DataError(f"{path}: missing array '{key}' (found: {arrays_found})")
        array = arrays[key]
        if array.dtype.kind not in "biuf":
            raise DataError(f"{path}: array '{key}' has dtype {array.dtype}, expected numbers")
        if array.ndim == 1 and width == 1:
            array = array[:, None]
        if array.ndim != 2 or array.shape[1] != width:
            raise DataError(
                f"{path}: array '{key}' has shape {array.shape}, expected (N, {width}) "
                f"({_columns_hint(n_in, n_out)})"
            )
        array = array.astype(np.float64)
        bad = np.argwhere(~np.isfinite(array))
        if len(bad):
            row, column = bad[0]
            raise DataError(
                f"{path}: {key}[{row}, {column}] is {array[row, column]} "
                f"({len(bad)} non-finite value{'s' * (len(bad) != 1)} in '{key}')"
            )
        result.append(array)
    x, y = result
    if len(x) != len(y):
        raise DataError(f"{path}: 'x' has {len(x)} rows but 'y' has {len(y)}")
    if len(x) == 0:
        raise DataError(f"{path}: no data rows")
    return x, y


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _load_csv(file: Path, path: str, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    expected = n_in + n_out
    rows: list[list[float]] = []
    lines: list[int] = []  # the file line of each row, for messages
    first_row = True
    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for cells in reader:
                line = reader.line_num
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                if cells[0].lstrip().startswith("#"):
                    continue
                if len(cells) != expected:
                    hint = _columns_hint(n_in, n_out)
                    if len(cells) == 1 and re.search(r"[;\t ]", cells[0].strip()):
                        hint += "; values must be separated by commas"
                    raise DataError(
                        f"{path} line {line}: {len(cells)} column{'s' * (len(cells) != 1)}, "
                        f"expected {expected} ({hint})"
                    )
                header = first_row and not any(is_number(cell) for cell in cells)
                first_row = False
                if not header:
                    rows.append(_parse_row(cells, path, line))
                    lines.append(line)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file (expected CSV or .npz)") from None
    except (OSError, csv.Error) as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    if not rows:
        raise DataError(f"{path}: no data rows")
    data = np.array(rows, dtype=np.float64)
    bad = np.argwhere(~np.isfinite(data))
    if len(bad):
        row, column = bad[0]
        raise DataError(
            f"{path} line {lines[row]}, column {column + 1}: {data[row, column]} is not finite"
        )
    return data[:, :n_in], data[:, n_in:]


def _parse_row(cells: list[str], path: str, line: int) -> list[float]:
    try:
        return [float(cell) for cell in cells]
    except ValueError:
        column = next(i for i, cell in enumerate(cells) if not is_number(cell))
        raise DataError(
            f"{path} line {line}, column {column + 1}: {cells[column].strip()!r} is not a number"
        ) from None


# ---------------------------------------------------------------------------------------------
# Data sets


@dataclass
class Data:
    """Training, test and (with early stopping) validation sets, as tensors on one device/dtype.

    x_* are (N, n_in), y_* are (N, n_out). `input_range` (n_in, 2) holds [lo, hi] per input: the
    sampling range for a target expression, the observed min/max of x_train for a data file.
    `target` maps x (N, n_in) to y (N, n_out) for a target expression and is None for a data file.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_val: torch.Tensor | None
    y_val: torch.Tensor | None
    input_range: torch.Tensor
    target: Callable[[torch.Tensor], torch.Tensor] | None
    description: str


def make_data(cfg: dict, device: torch.device | str, dtype: torch.dtype) -> Data:
    """Build the data sets a config describes; the same seed gives the same sets on every run.

    `cfg` is a resolved config (`config.load_config`); `device` a concrete device ("auto" resolved).
    From target_function: dataset_size training and test_size test points drawn uniformly in
    input_range, from independent generators seeded by cfg["seed"] (so the test set does not
    change with dataset_size), sampled and evaluated in float64 on the CPU, then cast.
    From data_file: dataset_size is ignored; the rows are shuffled with the seed, the first
    test_size become the test set and the rest the training set, which must keep at least one row.
    With early_stopping_patience set, the last validation_fraction of the training points (at
    least one, leaving at least one) become the validation set.
    """
    n_in, n_out = cfg["layer_dims"][0], cfg["layer_dims"][-1]
    train_generator, test_generator, shuffle_generator = _generators(cfg["seed"])
    early_stopping = cfg["early_stopping_patience"] is not None
    if cfg["data_file"] is not None:
        path, test_size = cfg["data_file"], cfg["test_size"]
        x_all, y_all = (torch.from_numpy(a) for a in load_data_file(path, n_in, n_out))
        needed = test_size + 1 + early_stopping
        if len(x_all) < needed:
            raise DataError(
                f"{path}: {len(x_all)} rows, but test_size {test_size} needs at least {needed} "
                f"(the test rows plus at least one training{' and one validation' * early_stopping}"
                " row); lower test_size"
            )
        if not (torch.isfinite(x_all.to(dtype)).all() and torch.isfinite(y_all.to(dtype)).all()):
            raise DataError(f"{path}: values too large for {dtype} (use dtype float64)")
        order = torch.randperm(len(x_all), generator=shuffle_generator)
        x_all, y_all = x_all[order], y_all[order]
        x_test, y_test = x_all[:test_size], y_all[:test_size]
        x_train, y_train = x_all[test_size:], y_all[test_size:]
        target = None
    else:
        ranges = torch.tensor(cfg["input_range"], dtype=torch.float64).expand(n_in, 2)
        target = compile_target(cfg["target_function"], n_in)
        x_train = _sample(train_generator, cfg["dataset_size"], ranges)
        x_test = _sample(test_generator, cfg["test_size"], ranges)
        y_train = _evaluate(target, x_train, dtype, "training")
        y_test = _evaluate(target, x_test, dtype, "test")
    x_val = y_val = None
    if early_stopping:
        if len(x_train) < 2:
            raise DataError(
                f"early stopping needs at least 2 training points to hold out validation points, "
                f"got {len(x_train)}"
            )
        n_val = min(max(1, round(cfg["validation_fraction"] * len(x_train))), len(x_train) - 1)
        x_val, y_val = x_train[-n_val:], y_train[-n_val:]
        x_train, y_train = x_train[:-n_val], y_train[:-n_val]
    if target is None:
        ranges = _observed_ranges(x_train)
        description = f"{cfg['data_file']}"
    else:
        ranges = ranges.contiguous()
        description = f"{_describe_target(cfg['target_function'])} on {_describe_ranges(ranges)}"
    sizes = f"{len(x_train)} train" + (f", {len(x_val)} validation" if x_val is not None else "")
    description += f" ({sizes}, {len(x_test)} test points)"

    def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else tensor.to(device=device, dtype=dtype)

    return Data(
        x_train=move(x_train),
        y_train=move(y_train),
        x_test=move(x_test),
        y_test=move(y_test),
        x_val=move(x_val),
        y_val=move(y_val),
        input_range=move(ranges),
        target=target,
        description=description,
    )


def _generators(seed: int) -> list[torch.Generator]:
    """Three independent CPU generators (train, test, shuffle) derived from one seed."""
    states = np.random.SeedSequence(seed).generate_state(3, dtype=np.uint64)
    return [torch.Generator().manual_seed(int(state)) for state in states]


def _sample(generator: torch.Generator, n: int, ranges: torch.Tensor) -> torch.Tensor:
    """n points uniform in the box `ranges` (n_in, 2) → (n, n_in), float64."""
    u = torch.rand((n, len(ranges)), generator=generator, dtype=torch.float64)
    return ranges[:, 0] + (ranges[:, 1] - ranges[:, 0]) * u


def _evaluate(target: Callable, x: torch.Tensor, dtype: torch.dtype, which: str) -> torch.Tensor:
    """target(x) in float64, checked finite once cast to `dtype` → (N, n_out), float64."""
    y = target(x)
    finite = torch.isfinite(y.to(dtype)).all(dim=1)
    if not finite.all():
        first = int(torch.nonzero(~finite)[0])
        point = ", ".join(f"x{j + 1}={v:.6g}" for j, v in enumerate(x[first].tolist()))
        raise DataError(
            f"target_function is not finite in {str(dtype).removeprefix('torch.')} at "
            f"{int((~finite).sum())} of {len(x)} "
            f"{which} points, e.g. at {point}; change the expression or input_range"
        )
    return y


def _observed_ranges(x: torch.Tensor) -> torch.Tensor:
    """[min, max] per input column → (n_in, 2); a constant column gets a range of width 1."""
    lo, hi = x.min(dim=0).values, x.max(dim=0).values
    flat = lo == hi
    lo, hi = torch.where(flat, lo - 0.5, lo), torch.where(flat, hi + 0.5, hi)
    return torch.stack([lo, hi], dim=1)


def _describe_target(target_function: str | list[str]) -> str:
    if isinstance(target_function, str):
        return target_function
    return "[" + ", ".join(target_function) + "]"


def _describe_ranges(ranges: torch.Tensor) -> str:
    pairs = [f"[{lo:g}, {hi:g}]" for lo, hi in ranges.tolist()]
    if len(set(pairs)) == 1:
        names = "x1" if len(pairs) == 1 else f"x1..x{len(pairs)}"
        return f"{names} in {pairs[0]}"
    return ", ".join(f"x{i + 1} in {pair}" for i, pair in enumerate(pairs))
