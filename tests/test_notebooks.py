"""The notebooks are thin: every code cell imports, calls serlib and shows what it returned.

Computation lives in ``serlib`` (where tests reach it); a notebook cell holds imports, assignments of
what a call returned, ``show_table`` / ``show_figure`` / ``show_note`` with their captions, and at most an
``if`` choosing what to show. These tests read the notebooks as files (nothing is executed): the
smoke-run tests of each notebook (test_features, test_train, ...) check what they write.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
COMPUTING_PACKAGES = {"numpy", "torch", "sklearn", "scipy"}  # their use in a notebook is computation
STATEMENTS = (ast.Import, ast.ImportFrom, ast.Assign, ast.Expr, ast.If)  # what a thin cell is made of
FORBIDDEN = {
    ast.FunctionDef: "a def",
    ast.AsyncFunctionDef: "a def",
    ast.ClassDef: "a class",
    ast.Lambda: "a lambda",
    ast.For: "a loop",
    ast.While: "a loop",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.BinOp: "arithmetic",
    ast.AugAssign: "arithmetic",
    ast.BoolOp: "a boolean expression",
    ast.IfExp: "a conditional expression",
}


def _notebook(path: Path) -> dict:
    return json.loads(path.read_text())


def _code_cells(path: Path) -> list[tuple[int, dict, ast.Module]]:
    cells = _notebook(path)["cells"]
    return [
        (i, cell, ast.parse("".join(cell["source"]), filename=f"{path.name} cell {i}"))
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "code"
    ]


def _is_parameters(cell: dict) -> bool:
    return "parameters" in cell.get("metadata", {}).get("tags", [])


def _problems(tree: ast.Module) -> list[str]:
    """What makes a cell more than imports, calls and displays (empty when it is thin)."""
    problems = [
        f"line {node.lineno}: {type(node).__name__} statement"
        for node in tree.body
        if not isinstance(node, STATEMENTS) and type(node) not in FORBIDDEN
    ]
    conditions = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If) for inner in ast.walk(node.test)}
    for node in ast.walk(tree):
        if type(node) in FORBIDDEN:
            problems.append(f"line {node.lineno}: {FORBIDDEN[type(node)]}")
        elif isinstance(node, ast.Compare) and id(node) not in conditions:
            problems.append(f"line {node.lineno}: a comparison outside an if (filtering is computation)")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Invert, ast.UAdd)):
            problems.append(f"line {node.lineno}: arithmetic")
        elif isinstance(node, ast.If):
            problems += [
                f"line {inner.lineno}: {type(inner).__name__} inside an if"
                for inner in node.body + node.orelse
                if not isinstance(inner, STATEMENTS) and type(inner) not in FORBIDDEN
            ]
    return problems


def _imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add((node.module or "").split(".")[0])
    return names


def test_there_are_notebooks():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells_only_import_call_and_show(path):
    problems = [
        f"cell {i}, {problem}"
        for i, cell, tree in _code_cells(path)
        if not _is_parameters(cell)
        for problem in _problems(tree)
    ]
    assert not problems, f"{path.name} computes inline (move it into serlib): " + "; ".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_computing_package_is_imported(path):
    used = {f"cell {i}: {name}" for i, _, tree in _code_cells(path) for name in _imported(tree) & COMPUTING_PACKAGES}
    assert not used, f"{path.name} imports {sorted(used)}; the computation belongs in serlib"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_holds_only_literal_assignments(path):
    tagged = [(i, tree) for i, cell, tree in _code_cells(path) if _is_parameters(cell)]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters' (papermill needs one)"
    i, tree = tagged[0]
    for node in tree.body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), (
            f"{path.name} cell {i} line {node.lineno}: only `name = literal` belongs in the parameters cell"
        )
        ast.literal_eval(node.value)  # a derived value would not follow an injected parameter (papermill)
    assert {node.targets[0].id for node in tree.body} == {"params_path", "run_dir"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_clean(path):
    # Outputs are made by a run (into the run folder), never committed; the JSON layout keeps diffs small.
    nb = _notebook(path)
    for cell in nb["cells"]:
        assert cell.get("id"), f"{path.name}: a cell without an id"
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name} {cell['id']}: outputs"
    assert path.read_text() == json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def test_the_checks_catch_inline_computation():
    # The rules can fail: each of these cells computes.
    for source in (
        "def f(x):\n    return x",
        "rows = [r for r in range(3)]",
        "for x in y:\n    show(x)",
        "share = 100 * a / b",
        "chosen = runs[runs['system'] == 'S5']",
        "n = (~preds['ok']).sum()",
        "label = 'one' if n == 1 else 'many'",
        "x = a or b",
        "with f():\n    pass",
    ):
        assert _problems(ast.parse(source)), source
    for source in (
        "from serlib import pipeline",
        "runs = pipeline.ensure_runs(cfg, folder)",
        "show_table(t, 'Table 4', f'{n} systems', folder)",
        "if note:\n    show_note(note)",
        "if 'logmel' in loaded:\n    show_figure(fig, 'Fig. S11', 'c', folder)",
    ):
        assert not _problems(ast.parse(source)), source
