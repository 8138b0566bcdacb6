"""The install path and the repository's hygiene: the CPU wheel index switch reaches pip, the lock file
pins the tested set, tracked notebooks hold no outputs, and clean-reports keeps what people wrote."""

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import nbformat
import pytest

from serlib.tools import nbstrip

ROOT = Path(__file__).resolve().parents[1]


def _make(*args, cwd=ROOT):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    return subprocess.run(["make", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_torch_index_switch_reaches_pips_command_line():
    cpu = _make("-n", "-B", "setup", "TORCH_INDEX=https://download.pytorch.org/whl/cpu").stdout
    line = next(line for line in cpu.splitlines() if "torch==2.11.0" in line)
    assert "pip install" in line and "--index-url https://download.pytorch.org/whl/cpu" in line
    default = _make("-n", "-B", "setup").stdout
    assert "--index-url" not in default  # PyPI, then the pinned set (less the optional extras' packages)
    assert "requirements.lock > .venv/requirements.base.txt" in default and "-r .venv/requirements.base.txt" in default


def test_an_optional_extra_is_installed_only_when_named():
    # Ray (serlib sweep --executor ray) is pinned in the lock but a plain `make setup` leaves it out; EXTRAS=ray
    # installs it at the lock's version, and so does `make test` (the CI's command), so the Ray tests run there.
    plain = _make("-n", "-B", "setup").stdout
    assert "grep -v -i -E '^(ray)==' requirements.lock" in plain and "[ray]" not in plain
    with_ray = _make("-n", "-B", "setup", "EXTRAS=ray").stdout
    assert "pip install -q -e '.[ray]' -c requirements.lock" in with_ray
    test = _make("-n", "-B", "test").stdout
    assert (
        "pip install -q -e '.[ray]' -c requirements.lock" in test and "make test" in (ROOT / ".ci" / "run").read_text()
    )
    assert "[ray]" not in _make("-n", "-B", "report").stdout
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["ray"] == ["ray==2.60.0"]
    assert "ray==2.60.0" in (ROOT / "requirements.lock").read_text().splitlines()


def test_the_lock_pins_every_dependency_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            lock[name.lower().replace("_", "-")] = version
    for requirement in wanted:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")
        assert name in lock, f"{name} (pyproject.toml) is missing from requirements.lock: run `make lock`"
    assert lock["torch"] == "2.11.0" and lock["torchaudio"] == "2.11.0"
    assert not [n for n in lock if n.startswith(("nvidia-", "cuda-")) or n == "triton"]  # torch brings its own


def test_tracked_notebooks_hold_no_outputs_and_the_filter_keeps_them_so():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert all(
            not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"
        ), path
        assert nb.metadata["kernelspec"] == {
            "display_name": "Python 3 (serlib)",
            "language": "python",
            "name": "python3",
        }
        text = path.read_text()
        assert nbformat.writes(nbstrip.strip(nbformat.reads(text, as_version=4))) + "\n" == text, path  # idempotent
    run = nbformat.read(ROOT / "notebooks" / "06_listening.ipynb", as_version=4)
    run.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="3.2 MB of audio")]
    run.cells[1].execution_count = 4
    run.metadata["widgets"] = {"state": {}}
    stripped = nbstrip.strip(run)
    assert stripped.cells[1].outputs == [] and stripped.cells[1].execution_count is None
    assert "widgets" not in stripped.metadata
    assert "filter=serlib-nbstrip" in (ROOT / ".gitattributes").read_text()


def test_clean_reports_keeps_the_annotations(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    run = tmp_path / "reports" / "demo"
    (run / "listening").mkdir(parents=True)
    (run / "models" / "S5").mkdir(parents=True)
    (run / "listening" / "annotations.csv").write_text("utt_id\n")
    (run / "listening" / "annotations.csv.bak").write_text("utt_id\n")
    (run / "listening" / "state.json").write_text("{}")
    (run / "report.html").write_text("<html>")
    done = _make("clean-reports", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in run.rglob("*")) == [
        "annotations.csv",
        "annotations.csv.bak",
        "listening",
        "state.json",
    ]


def test_licence_and_citation_are_there():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    citation = (ROOT / "CITATION.cff").read_text()
    assert "cff-version" in citation and "serlib" in citation and "references" in citation


_ANYWHERE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache")


def _ignored(directory: str, names: list[str]) -> set[str]:
    """What the wheel's source copy leaves out: the checkout's run outputs (data/, reports/, build/, dist/ at its top
    level only: serlib/data is a package) and caches anywhere."""
    top = {"data", "reports", "build", "dist"} if Path(directory).resolve() == ROOT.resolve() else set()
    return set(_ANYWHERE(directory, names)) | (top & set(names))


def test_a_built_wheel_holds_the_notebooks_and_an_installed_serlib_finds_them(tmp_path):
    # serlib/notebooks links to notebooks/ (one copy in git); the wheel must carry them as package data so that
    # `serlib run` of a YAML kept anywhere finds notebooks in a pip-installed serlib.
    import os
    import sys
    import zipfile

    assert (ROOT / "serlib" / "notebooks").resolve() == (ROOT / "notebooks").resolve()
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=_ignored,
    )
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode and any(
        s in done.stdout + done.stderr
        for s in ("NewConnectionError", "Could not find a version", "No matching distribution", "Temporary failure")
    ):
        pytest.skip("pip could not fetch the build backend (setuptools, wheel): no package index reachable")
    assert done.returncode == 0, done.stdout + done.stderr
    wheel = next((tmp_path / "dist").glob("serlib-*.whl"))
    shipped = sorted(n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("serlib/notebooks/"))
    assert shipped == [f"serlib/notebooks/{p.name}" for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "from serlib.report.runner import PACKAGE_NOTEBOOKS as p; "
            "print(p); print(sorted(x.name for x in p.glob('*.ipynb')))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not this checkout
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
    )
    assert found.returncode == 0, found.stderr
    where, names = found.stdout.splitlines()
    assert Path(where) == tmp_path / "site" / "serlib" / "notebooks"  # the installed copy, not this checkout's
    assert names == str([p.name for p in sorted((ROOT / "notebooks").glob("*.ipynb"))])
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):  # the same bytes as the repository's
        assert (tmp_path / "site" / "serlib" / "notebooks" / path.name).read_bytes() == path.read_bytes()
