"""Variable names: the symbols a data file's header gives its columns.

A CSV header names the inputs and outputs; the log, metrics, formulas, plots and prediction use
those names. `variable_names` turns header cells into names that are symbols in a formula: a
Python identifier (other characters become ``_``), not a keyword, not a function or constant a
formula is written with (``exp``, ``pi``, ``E``, ...: those get a trailing ``_``), and unique
(``_2``, ``_3`` ...). Without a header the names are x1..xn and y1..ym.
"""

import keyword
import re
from collections.abc import Sequence

# Words a formula's text uses for functions and constants (sympy's parser reads them so).
RESERVED = frozenset(
    "E I S N O Q oo zoo nan pi e exp log ln sqrt sin cos tan cot sec csc asin acos atan arcsin "
    "arccos arctan sinh cosh tanh asinh acosh atanh abs Abs sign gamma erf besselj sigmoid "
    "Heaviside Max Min re im beta zeta lambda".split()
)


def default_names(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{i + 1}" for i in range(n)]


def symbol_name(cell: str, fallback: str) -> str:
    """One header cell as a formula symbol (``fallback`` when nothing usable is left)."""
    name = re.sub(r"\W", "_", cell.strip(), flags=re.ASCII).strip("_") or fallback
    if name[0].isdigit():
        name = "_" + name
    if keyword.iskeyword(name) or name in RESERVED:
        name += "_"
    return name


def variable_names(
    header: Sequence[str] | None, n_in: int, n_out: int
) -> tuple[list[str], list[str]]:
    """(input names, output names) for a file with ``header`` (None: x1..xn, y1..ym)."""
    defaults = default_names(n_in, "x") + default_names(n_out, "y")
    if header is None:
        return defaults[:n_in], defaults[n_in:]
    names: list[str] = []
    for cell, fallback in zip(header, defaults, strict=True):
        name = symbol_name(cell, fallback)
        base, k = name, 1
        while name in names:
            k += 1
            name = f"{base}_{k}"
        names.append(name)
    return names[:n_in], names[n_in:]
