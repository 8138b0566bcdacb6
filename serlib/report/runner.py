"""The runner: execute a run's notebooks with papermill, then export ONE self-contained HTML report.

``run_report(cfg)`` executes the ordered notebooks (``run.notebooks`` that exist in ``notebooks/``)
into ``<run>/notebooks/``, writes ``<run>/config.resolved.yaml`` first, and exports
``<run>/report.html``: the run's identity, its configuration, a table of contents, then every
executed notebook as a section with code hidden. The HTML needs no network: nbconvert's remote
scripts (require.js, MathJax, mermaid, the widget manager) are left out, images and audio are
embedded, and tables are plain HTML.

A failing notebook stops the run: the partial executed notebook stays, the report is still
exported with what ran and a failure banner, then :class:`NotebookError` names the notebook and
the failing cell.
"""

from __future__ import annotations

import copy
import html
import logging
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import nbformat

from serlib.common.config import Config, ConfigError
from serlib.common.io import write_text_atomic
from serlib.common.progress import last_event, log_to_stdout
from serlib.common.runfolder import RunFolder, params_from_project, project_root, run_folder
from serlib.report.html_export import (
    banners_html,
    config_html,
    failure_html,
    identity_html,
    render_html,
    reused_html,
    toc_html,
    top_link_html,
)
from serlib.report.keyresults import key_results_html
from serlib.report.listening import refreshed_html
from serlib.report.provenance import (
    git_revision,
    git_text,
    load_timings,
    now_utc,
    run_identity,
    save_timings,
    write_resolved_config,
)
from serlib.report.references import anchor_captions, as_text, label_key, link_cells
from serlib.report.supplement import (
    SCHEME,
    link_csv,
    reading_order,
    renumber,
    renumber_cells,
    split_section,
    supplement_cell,
)

log = logging.getLogger("serlib")

KERNEL = "python3"
SKIP_TAGS = {"parameters", "injected-parameters", "papermill-error-cell-tag"}


class NotebookError(RuntimeError):
    """A notebook failed during ``run_report``; the partial executed notebook stays in the run folder.

    Attributes:
        notebook: notebook name (e.g. ``01_data``).
        cell_index: 0-based index of the failing cell in ``notebooks/<name>.ipynb`` (None if unknown).
        first_line: first source line of the failing cell.
        partial: the partial executed notebook.
        report: the exported report (with a failure banner).
    """

    def __init__(
        self,
        notebook: str,
        cell_index: Optional[int],
        first_line: str,
        detail: str,
        partial: Path,
        report: Optional[Path] = None,
    ):
        self.notebook, self.cell_index, self.first_line = notebook, cell_index, first_line
        self.detail, self.partial, self.report = detail, partial, report
        where = (
            f"cell {cell_index} (0-based, of notebooks/{notebook}.ipynb)"
            if cell_index is not None
            else "an unknown cell"
        )
        super().__init__(
            f"notebook {notebook} failed at {where} (`{first_line}`): {detail}; "
            f"partial executed notebook: {partial}" + (f"; report with what ran: {report}" if report else "")
        )


@dataclass
class _Failure:
    notebook: str
    cell_index: Optional[int]
    first_line: str
    detail: str
    cell_id: Optional[str]


# --------------------------------------------------------------------------- the runner


def run_report(
    cfg: Config,
    out: Optional[str | Path] = None,
    only: Optional[list[str]] = None,
    notebooks_dir: Optional[str | Path] = None,
    verbose: bool = True,
) -> Path:
    """Execute the run's notebooks with papermill and export ``<run>/report.html``.

    Args:
        cfg: the run configuration (loaded from a YAML: notebooks read the same file).
        out: the run folder (default ``reports/<run.name>/``).
        only: execute only these notebooks; executed notebooks of earlier runs already in the run
            folder still appear in the report, marked as reused.
        notebooks_dir: where the source notebooks live (default the project's ``notebooks/``).
        verbose: print progress per notebook with its seconds.

    Returns:
        The path of the exported report.

    Raises:
        ConfigError: the config has no source file, or ``only`` names an unknown notebook.
        NotebookError: a notebook failed (after the partial report was exported).
    """
    if not cfg.source:
        raise ConfigError(
            "run_report needs a config loaded from a YAML file (load_config): "
            "the notebooks read the same parameters file"
        )
    folder = run_folder(cfg, out)
    source_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir(cfg)
    names = select_notebooks(cfg, source_dir, only)
    write_resolved_config(cfg, folder)
    _echo_to_stdout(verbose)
    folder.progress.unlink(missing_ok=True)  # this invocation's events only
    folder.stale_marker.unlink(missing_ok=True)  # the notebooks are executed into the report again
    timings = load_timings(folder) if only else {}  # a full run starts its timings afresh
    code = git_text(git_revision(project_root(cfg)))  # the code each notebook ran with (the report may be later)
    executed, failure = [], None
    for i, name in enumerate(names, 1):
        log.info("[%d/%d] %s ...", i, len(names), name)
        start = time.perf_counter()
        failure = _execute(cfg, folder, source_dir, name)
        seconds = time.perf_counter() - start
        timings[name] = {
            "seconds": round(seconds, 2),
            "status": "failed" if failure else "ok",
            "finished": now_utc(),
            "git": code,
        }
        executed.append(name)
        log.info("[%d/%d] %s %s in %.1f s", i, len(names), name, "FAILED" if failure else "done", seconds)
        if failure:
            break
    save_timings(folder, timings)
    shown = _notebooks_to_show(cfg, folder, source_dir, executed, failure, only=bool(only))
    report = export_report(
        cfg,
        folder,
        shown,
        failure=failure,
        not_run=names[len(executed) :],
        reused=[n for n in shown if n not in executed],
    )
    log.info("report: %s", report)
    if failure:
        raise NotebookError(
            failure.notebook,
            failure.cell_index,
            failure.first_line,
            failure.detail,
            folder.notebooks / f"{failure.notebook}.ipynb",
            report,
        )
    return report


def _echo_to_stdout(verbose: bool) -> None:
    """Without a configured ``serlib`` logger (``serlib.tools.cli`` sets one up), print its INFO lines when
    ``verbose`` (a Python caller of ``run_report`` sees the progress as before)."""
    if verbose:
        log_to_stdout(unless_configured=True)


# The notebooks that come with serlib: ``serlib/notebooks`` is a link to the repository's ``notebooks/`` in a
# checkout (one copy in git) and a folder of package data in an installed wheel (pyproject.toml copies them there).
PACKAGE_NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def default_notebooks_dir(cfg: Config) -> Path:
    """The project's ``notebooks/`` (beside the ``parameters/`` folder the YAML is in), else serlib's own
    (``PACKAGE_NOTEBOOKS``): a YAML kept anywhere runs with the notebooks of the serlib that runs it."""
    candidate = project_root(cfg) / "notebooks"
    return candidate if candidate.is_dir() else PACKAGE_NOTEBOOKS


def select_notebooks(cfg: Config, source_dir: Path, only: Optional[list[str]] = None) -> list[str]:
    """The notebooks to execute, in ``run.notebooks`` order: those present in ``source_dir``.

    Raises:
        ConfigError: ``only`` names a notebook that ``run.notebooks`` does not list or that is missing.
    """
    present = [n for n in cfg.run.notebooks if (source_dir / f"{n}.ipynb").is_file()]
    if not only:
        if not present:
            raise ConfigError(f"none of run.notebooks ({', '.join(cfg.run.notebooks)}) exists in {source_dir}")
        return present
    wanted = [Path(n).stem for n in only]
    missing = [n for n in wanted if n not in present]
    if missing:
        raise ConfigError(
            f"--only {' '.join(missing)}: not among the notebooks present in {source_dir} "
            f"and listed in run.notebooks ({', '.join(present) or 'none'})"
        )
    return [n for n in present if n in wanted]


def _kernel_manager_class(socket_dir: str):
    """jupyter_client's KernelManager over IPC (Unix sockets in ``socket_dir``) instead of TCP.

    Over TCP every kernel logs "Kernel is running over TCP without encryption" (six identical lines per
    demo run); IPC sockets are local files only this user can open, so there is nothing to warn about.
    """
    # jupyter_client comes with papermill, imported only where a notebook is executed (~1 s)
    from jupyter_client.manager import KernelManager
    from traitlets import default

    class IPCKernelManager(KernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc"

        @default("ip")
        def _default_ip(self):
            return str(Path(socket_dir) / "kernel")

    return IPCKernelManager


HEARTBEAT_S = float(os.environ.get("SERLIB_HEARTBEAT_S", "30"))  # at most this long without a line from `serlib run`


class _Heartbeat:
    """While a notebook runs: a line every ``HEARTBEAT_S`` seconds with the run's latest progress event."""

    def __init__(self, folder: RunFolder, name: str, interval: Optional[float] = None):
        self.folder, self.name = folder, name
        self.interval = HEARTBEAT_S if interval is None else interval
        self.started = time.time()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            event = last_event(self.folder.progress, since=self.started)
            doing = event["text"] if event else "working (no progress event yet)"
            age = time.time() - event["time"] if event else 0
            if age > self.interval:
                doing += f" ({age:.0f} s ago; working on what follows it)"
            log.info("    %s %4.0f s: %s", self.name, time.time() - self.started, doing)


def _execute(cfg: Config, folder: RunFolder, source_dir: Path, name: str) -> Optional[_Failure]:
    """Run one notebook with papermill; a failure is returned (the partial notebook is on disk)."""
    import papermill as pm  # ~1 s to import; only executing a notebook needs it

    source, target = source_dir / f"{name}.ipynb", folder.notebooks / f"{name}.ipynb"
    params = {"params_path": str(Path(cfg.source).resolve()), "run_dir": str(folder.root)}
    try:
        with tempfile.TemporaryDirectory(prefix="serlib-kernel-") as sockets, _Heartbeat(folder, name):
            pm.execute_notebook(
                str(source),
                str(target),
                parameters=params,
                kernel_name=KERNEL,
                cwd=str(source_dir),
                progress_bar=False,
                log_output=False,
                kernel_manager_class=_kernel_manager_class(sockets),
            )
    except Exception as err:  # papermill's execution error, a dead kernel, a timeout: all stop the run
        return _locate_failure(name, source, target, err)
    return None


def _locate_failure(name: str, source: Path, target: Path, err: Exception) -> _Failure:
    """Find the failing cell in the partial notebook and map it to its index in the source notebook."""
    detail = f"{getattr(err, 'ename', type(err).__name__)}: {getattr(err, 'evalue', str(err))}".strip()
    if type(err).__name__ == "NoSuchKernel":
        detail += f" (install this environment's kernel: {sys.executable} -m ipykernel install --sys-prefix)"
    cell_id, first_line = None, ""
    if target.is_file():
        for cell in nbformat.read(target, as_version=4).cells:
            if SKIP_TAGS & set(cell.get("metadata", {}).get("tags", [])):
                continue
            failed = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
            if failed or cell.get("metadata", {}).get("papermill", {}).get("exception"):
                cell_id, first_line = cell.get("id"), _first_line(cell.source)
                break
    src_cells = nbformat.read(source, as_version=4).cells
    index = next((i for i, c in enumerate(src_cells) if cell_id and c.get("id") == cell_id), None)
    if index is None and first_line:
        index = next((i for i, c in enumerate(src_cells) if _first_line(c.source) == first_line), None)
    if not first_line and getattr(err, "source", None):
        first_line = _first_line(err.source)
    return _Failure(name, index, first_line, detail[:500], cell_id)


def _first_line(source: str) -> str:
    return next((line.strip() for line in source.splitlines() if line.strip()), "")


def _notebooks_to_show(
    cfg: Config,
    folder: RunFolder,
    source_dir: Path,
    executed: list[str],
    failure: Optional[_Failure],
    only: bool = False,
) -> list[str]:
    """Executed now, plus earlier executed notebooks of this run folder.

    A full run that fails shows what it executed (later sections of an earlier run would not match
    it); an ``--only`` run, failed or not, keeps every section an earlier invocation left.
    """
    if failure and not only:
        return [n for n in executed if (folder.notebooks / f"{n}.ipynb").is_file()]
    present = [n for n in cfg.run.notebooks if (folder.notebooks / f"{n}.ipynb").is_file()]
    return [n for n in present if n in executed or (source_dir / f"{n}.ipynb").is_file()]


# --------------------------------------------------------------------------- merging and export


def _html_cell(markup: str) -> nbformat.NotebookNode:
    """A code cell with no source whose only output is ``markup`` (code is hidden in the report)."""
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": markup})]
    return cell


def section_number(title: str, name: str) -> str:
    """A section's number: the one its title starts with ("3. Training ..."), else the notebook's ("03_train")."""
    number = re.match(r"\s*(\d+)[.)]?\s", title) or re.match(r"0*(\d+)", name)
    return number.group(1) if number else name


def _section_title(nb: nbformat.NotebookNode, name: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = next((line for line in cell.source.splitlines() if line.startswith("# ")), None)
            if heading:
                return heading[2:].strip()
    return name


def _clean_outputs(
    outputs: list, anchors: set, captions: list, paths: Optional[list] = None, folder: Optional[RunFolder] = None
) -> list:
    """Drop stderr and widget views; fold printed lines into one collapsed log; show machine paths
    relative (``paths``: ``(absolute prefix, shown as)``); give every Table/Fig caption an id for the contents;
    ask ``serlib.report.listening`` for its tables (S50, S51) as the annotations in ``folder`` stand now."""
    kept, log = [], []
    paths = paths or []
    for out in outputs:
        if out.get("output_type") == "stream":
            if out.get("name") == "stdout":
                log.append(_relative(as_text(out.get("text", "")), paths))
            continue
        data = out.get("data")
        if data is not None:
            if "application/vnd.jupyter.widget-view+json" in data:
                continue  # a widget (tqdm bar, listening station): its text fallback means nothing offline
            if not data or (set(data) == {"text/plain"} and "Widget" in str(data["text/plain"])):
                continue
            if "text/html" in data:  # a listening table drawn again from the annotations as they stand now
                markup = refreshed_html(out.get("metadata"), folder) if folder is not None else None
                data["text/html"] = anchor_captions(
                    _relative(markup or as_text(data["text/html"]), paths), anchors, captions
                )
            if "text/plain" in data:
                data["text/plain"] = _relative(as_text(data["text/plain"]), paths)
        kept.append(out)
    text = "".join(log).strip("\n")
    if text:  # printed progress and notes: there for the curious, not in the reader's way
        lines = text.count("\n") + 1
        kept.insert(
            0,
            nbformat.v4.new_output(
                "display_data",
                data={
                    "text/html": (
                        f'<details class="serlib-log"><summary>log ({lines} line{"s" if lines > 1 else ""})</summary>'
                        f"<pre>{html.escape(text)}</pre></details>"
                    )
                },
            ),
        )
    return kept


def _relative(text: str, paths: list) -> str:
    for prefix, shown in paths:
        text = text.replace(prefix, shown)
    return text


def machine_paths(cfg: Config, folder: RunFolder) -> list[tuple[str, str]]:
    """``(absolute prefix, shown as)`` pairs: the project, the run folder (when outside it) and home."""
    root = project_root(cfg).resolve()
    pairs = [(f"{root}/", ""), (str(root), ".")]
    run = folder.root.resolve()
    if root not in run.parents:
        pairs[:0] = [(f"{run}/", f"{run.name}/"), (str(run), run.name)]
    home = str(Path.home())
    if home not in ("/", ""):
        pairs += [(f"{home}/", "~/")]
    return pairs


def _section_cells(
    folder: RunFolder, name: str, failure: Optional[_Failure], reused: bool, anchors: set, paths: Optional[list] = None
) -> tuple[list, tuple[str, str, list]]:
    nb = nbformat.read(folder.notebooks / f"{name}.ipynb", as_version=4)
    captions: list = []
    anchor = f"nb-{name}"
    cells = [_html_cell(f'<div id="{anchor}" class="serlib-section-anchor"></div>')]
    if reused:
        cells.append(_html_cell(reused_html(load_timings(folder).get(name, {}))))
    for cell in nb.cells:
        if SKIP_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        cell = copy.deepcopy(cell)
        if failure and failure.notebook == name and failure.cell_id and cell.get("id") == failure.cell_id:
            cells.append(
                _html_cell(
                    '<div id="failure" class="serlib-banner serlib-banner-error">The run failed in the next cell.</div>'
                )
            )
        if cell.cell_type == "code":
            cell.outputs = _clean_outputs(cell.get("outputs", []), anchors, captions, paths, folder)
        elif cell.cell_type == "markdown":
            cell.source = _relative(cell.source, paths or [])
        cells.append(cell)
    title = _section_title(nb, name)
    body, parts = split_section(cells)
    supplement = supplement_cell(parts, section_number(title, name), f"supplement-{name}")
    cells = body + ([supplement] if supplement is not None else []) + [_html_cell(top_link_html())]
    for cell in cells:
        cell.setdefault("metadata", {})["serlib_section"] = name  # the section its S-labels are numbered in
    for cell in cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if "text/html" in (out.get("data") or {}):
                out["data"]["text/html"] = link_csv(as_text(out["data"]["text/html"]), folder.tables)
    return cells, (anchor, title, captions)


def export_report(
    cfg: Config,
    folder: RunFolder,
    notebooks: list[str],
    failure: Optional[_Failure] = None,
    not_run: Optional[list[str]] = None,
    reused: Optional[list[str]] = None,
) -> Path:
    """Merge the executed notebooks into one and export ``<run>/report.html`` (code hidden, offline).

    Args:
        cfg: the run configuration.
        folder: the run folder holding ``notebooks/<name>.ipynb``.
        notebooks: executed notebooks to show, in order.
        failure: the failure that stopped the run, shown as a banner.
        not_run: notebooks skipped because of the failure.
        reused: notebooks shown from an earlier invocation.

    Returns:
        The report's path.
    """
    anchors: set = set()
    body, sections = [], []
    paths = machine_paths(cfg, folder)
    for name in notebooks:
        cells, section = _section_cells(folder, name, failure, name in (reused or []), anchors, paths)
        body += cells
        sections.append(section)
    order: dict = {}  # this run's own tables and figures numbered as they are read: S3.1, S3.2, ... in section 3
    for (_, title, _), name in zip(sections, notebooks):
        order |= reading_order(
            [c for c in body if c.get("metadata", {}).get("serlib_section") == name], section_number(title, name)
        )
    renumber_cells(body, order)
    sections = [(a, t, [(anchor, renumber(c, order)) for anchor, c in caps]) for a, t, caps in sections]
    targets: dict = {}
    for _, _, captions in sections:
        for anchor, text in captions:
            label = re.match(r"(Table|Fig\.|Figure) (S?\d+(?:\.\d+)?[a-z]?)", text)
            if label:
                targets.setdefault(label_key(*label.groups()), anchor)  # "Table 5" -> the first "table-5"
    link_cells(body, targets)
    identity = run_identity(cfg, folder)
    key = renumber(key_results_html(cfg, folder), order)
    head = f'<h1 class="serlib-title" id="top">{html.escape(cfg.run.title)}</h1>'
    if failure:
        head += failure_html(failure, not_run or [])
    head += banners_html(identity) + _stale_html(folder, cfg) + key + toc_html(sections, key_results=bool(key))
    head += f'<p class="serlib-scheme">{SCHEME}</p>'
    head += _relative(identity_html(identity, banners=False, folder=folder) + config_html(cfg), paths)
    merged = nbformat.v4.new_notebook(cells=[_html_cell(head)] + body)
    merged.metadata["title"] = cfg.run.title
    merged.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    merged.metadata["language_info"] = {"name": "python"}
    write_text_atomic(folder.report, render_html(merged))
    return folder.report


def _stale_html(folder: RunFolder, cfg: Config) -> str:
    if not folder.stale_marker.is_file():
        return ""
    command = f"serlib run {params_from_project(cfg)} --only NOTEBOOK"
    return (
        '<div class="serlib-banner serlib-banner-warning"><b>Notebooks were run by hand</b> in this run folder '
        "after its last <code>serlib run</code>: its tables and figures may be newer than the sections below. "
        f"<code>{html.escape(command)}</code>, run in the project's folder, executes them into the report.</div>"
    )


def reexport_report(cfg: Config, folder: RunFolder) -> Path:
    """Export ``report.html`` again from the notebooks already executed in the run folder (nothing runs).

    Raises:
        FileNotFoundError: the run folder holds no executed notebook.
    """
    present = [n for n in cfg.run.notebooks if (folder.notebooks / f"{n}.ipynb").is_file()]
    if not present:
        raise FileNotFoundError(
            f"{folder.notebooks}: no executed notebook to export; run `serlib run {cfg.source or 'PARAMS.yaml'}` first"
        )
    return export_report(cfg, folder, present)
