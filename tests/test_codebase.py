"""The shape of the code: small modules and functions, one owner for the run folder's file
names, no module reaching into another's private attributes."""

import ast
import re
from pathlib import Path

import pytest

import run_folder

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for p in ROOT.glob("*.py"))
MAX_MODULE_LINES = 650
MAX_FUNCTION_LINES = 80
KERNEL_MODULES = ("cpu_kernels.py",)  # numba kernels: one loop nest per function, by design


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_module_is_short(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name}: {lines} lines"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_function_fits_on_a_screen(path):
    if path.name in KERNEL_MODULES:
        return
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(parsed(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.name}: {', '.join(long)}"


def run_folder_names() -> dict[str, re.Pattern]:
    """Every file-name constant of run_folder, as a pattern matching it as a whole word
    (``{n}`` placeholders match anything)."""
    names = [
        v
        for k, v in vars(run_folder).items()
        if k.endswith(("_FILE", "_DIR")) and isinstance(v, str)
    ]
    return {
        name: re.compile(r"(?<![\w.])" + re.escape(name).replace(r"\{n\}", r"\S*") + r"(?![\w.])")
        for name in names
    }


def docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes of a module, its classes and functions."""
    owners = [tree] + [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    return {
        id(owner.body[0].value)
        for owner in owners
        if owner.body
        and isinstance(owner.body[0], ast.Expr)
        and isinstance(owner.body[0].value, ast.Constant)
    }


def test_the_file_name_constants_cover_the_layout():
    names = set(run_folder_names())
    assert {"run.log", "pykan_mit_model.pth", "metrics.json", "layer_{n}_activations.pdf"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_run_folder_file_name_outside_run_folder(path):
    """Docstrings may name the files; code spells them through run_folder's constants."""
    if path.name == "run_folder.py":
        return
    tree = parsed(path)
    skip = docstrings(tree)
    literals = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]
    found = [
        (text, name)
        for text in literals
        for name, pattern in run_folder_names().items()
        if pattern.search(text)
    ]
    assert not found, f"{path.name} spells run-folder names: {found}"


# The standard library's documented functions whose names begin with an underscore.
DOCUMENTED_UNDERSCORE = {("os", "_exit")}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_private_attribute_of_another_object(path):
    """``obj._name`` only on self/cls (and super() when overriding a torch hook)."""
    bad = []
    for node in ast.walk(parsed(path)):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") and node.attr.endswith("__"):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and getattr(owner.func, "id", "") == "super":
            continue
        if isinstance(owner, ast.Name) and (owner.id, node.attr) in DOCUMENTED_UNDERSCORE:
            continue
        bad.append(f"line {node.lineno}: .{node.attr}")
    assert not bad, f"{path.name}: {', '.join(bad)}"


def project_imports(path: Path) -> set[str]:
    """The project modules ``path`` imports (anywhere in it, function-level imports included)."""
    names = {p.stem for p in SOURCES}
    found = set()
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return (found & names) - {path.stem}


def test_imports_go_one_way():
    """The import graph of the project's modules has no cycle (the README's module table lists
    them bottom up)."""
    graph = {p.stem: project_imports(p) for p in SOURCES}
    done, active = set(), []

    def visit(name):
        if name in active:
            raise AssertionError("import cycle: " + " -> ".join([*active, name]))
        if name in done:
            return
        active.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        active.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
