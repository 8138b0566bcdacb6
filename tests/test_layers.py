"""The layout of serlib: layered subpackages imported only downward, no cycle, no hidden upward import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "serlib"
CLI = PACKAGE / "tools" / "cli.py"  # the dispatch imports what each sub-command runs (`serlib --help` stays fast)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _local_imports(tree: ast.AST):
    """(import node, enclosing function) for every import inside a function body."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    yield inner, node


def _is_serlib(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "serlib"
    return any(alias.name.split(".")[0] == "serlib" for alias in node.names)


def test_the_layers_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff_lint_and_format_pass(command):
    # pyproject.toml [tool.ruff]: line length 120, pycodestyle, pyflakes and import order; the code in ruff's format.
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.is_file():
        pytest.skip("ruff is not installed in this environment (pip install -e '.[test]')")
    done = subprocess.run([str(ruff), *command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


@pytest.mark.parametrize(
    "layer, imported, contract",
    [
        ("data", "serlib.modelling import train", "layers"),  # an upward import between the lower layers
        ("analysis", "serlib.inference import predict", "inference-and-report-above-analysis"),
        ("modelling", "serlib.report import plots", "inference-and-report-above-analysis"),
        ("pipeline_helpers", "serlib.inference import bundle", "layers"),
    ],
)  # pipeline and inference side by side
def test_an_upward_import_breaks_the_contract(tmp_path, layer, imported, contract):
    # The contracts can fail: a copy of the package with one import that reaches up (or across).
    copy = tmp_path / "serlib"
    subprocess.run(["cp", "-r", str(PACKAGE), str(copy)], check=True)
    if layer == "pipeline_helpers":  # pipeline is one module: the import goes into it
        module = "serlib.pipeline"
        with open(copy / "pipeline.py", "a") as f:
            f.write(f"from {imported}  # noqa: F401,E402\n")
    else:
        module = f"serlib.{layer}.upward"
        (copy / layer / "upward.py").write_text(f"from {imported}  # noqa: F401\n")
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--contract", contract],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode != 0 and module in done.stdout


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_local_import_of_serlib_outside_the_cli(path):
    if path == CLI:
        return
    tree = ast.parse(path.read_text())
    local = [f"line {node.lineno} in {func.name}()" for node, func in _local_imports(tree) if _is_serlib(node)]
    assert not local, (
        f"{path.relative_to(ROOT)}: serlib imported inside a function ({', '.join(local)}); "
        "import it at the top, or move the shared piece down a layer"
    )


def _reason_for(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line, or on the line above its block of consecutive imports."""
    if "#" in lines[lineno - 1]:
        return True
    above = lineno - 2
    while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
        if "#" in lines[above]:
            return True
        above -= 1
    return above >= 0 and lines[above].strip().startswith("#")


@pytest.mark.parametrize("path", [p for p in _modules() if p != CLI], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_function_local_import_says_why(path):
    # Lazy imports are for heavy or optional third-party packages, each with a one-line reason. (The CLI's
    # dispatch imports each sub-command's stage where it runs it; its comment says so once.)
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    silent = [
        f"line {node.lineno} in {func.name}()"
        for node, func in _local_imports(tree)
        if not _reason_for(lines, node.lineno)
    ]
    assert not silent, f"{path.relative_to(ROOT)}: function-local import without a reason: {', '.join(silent)}"


def test_python_dash_m_serlib_is_the_command_line():
    done = subprocess.run([sys.executable, "-m", "serlib", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: serlib" in done.stdout
    for command in ("mculp", "demo-corpus", "run", "features", "train", "bench"):
        assert command in done.stdout
