"""``python -m serlib.tools.nbstrip``: a notebook on stdin, without outputs, on stdout (a git clean filter).

``make lab`` registers it for ``notebooks/*.ipynb`` (``.gitattributes``), so a notebook run and autosaved in
JupyterLab (the listening notebook embeds megabytes of audio) never takes its outputs into git: outputs,
execution counts and widget state are dropped from what git stores; the working copy keeps them.
"""

from __future__ import annotations

import sys

import nbformat


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` without outputs, execution counts, widget state or papermill's execution metadata."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("papermill", None)
    return nb


def main() -> int:
    text = sys.stdin.read()
    if not text.strip():
        return 0
    sys.stdout.write(nbformat.writes(strip(nbformat.reads(text, as_version=4))) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
