"""What ``serlib compare`` shows: two runs' systems side by side, in the report's units (values in percent,
differences in points with their intervals), after what differs between the runs' configurations, with a
warning when A and B are the same folder; as text for the terminal and as one offline HTML page in the
report's stylesheet."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from serlib.common.runfolder import RunFolder
from serlib.report.html_export import REPORT_CSS
from serlib.report.tables import format_frame, table_html

# compare_runs' columns as the report names them (the values of run_a / run_b are rates: accuracy, UAR, macro-F1)
SHOWN = {
    "run_a": "run A",
    "run_b": "run B",
    "only_a": "clips only in A",
    "only_b": "clips only in B",
}
# The report's page is the nbconvert lab template's; this one has no contents at the left and no lab stylesheet.
PAGE_CSS = "body.jp-Notebook { margin: 0 auto !important; font-family: system-ui, -apple-system, sans-serif; }"
READING = (
    "Each system scored on the test clips both runs scored; values in %, Δ = B - A in percentage points with its "
    "paired 95 % bootstrap interval over test speakers, then seeds (clips when a run has fewer than 5 test "
    "speakers); the sign-flip test over speakers (speaker p) with Holm's adjustment across the systems, and the "
    "exact McNemar test on the soft vote over seeds (clip-level, secondary)."
)


def same_folder(folder_a: RunFolder, folder_b: RunFolder) -> bool:
    """Whether A and B are one folder (their resolved paths: a link or ``..`` does not hide it)."""
    return Path(folder_a.root).resolve() == Path(folder_b.root).resolve()


def same_folder_warning(folder_a: RunFolder, folder_b: RunFolder) -> str:
    """One line when A and B are the same folder ("" otherwise)."""
    if not same_folder(folder_a, folder_b):
        return ""
    return (
        f"A and B are the same folder ({Path(folder_a.root).resolve()}): every difference below is 0 by "
        "construction; name two run folders."
    )


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out |= _flat(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: tree}


def _resolved(folder: RunFolder) -> dict[str, Any]:
    """A run's resolved configuration as dotted keys ({} without ``config.resolved.yaml``)."""
    path = folder.resolved_config
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text()) or {}
    return _flat(loaded.get("config", loaded))


def config_difference(folder_a: RunFolder, folder_b: RunFolder) -> pd.DataFrame:
    """The settings that differ between the two runs' ``config.resolved.yaml``: columns setting, run A, run B (a
    setting one run lacks shows "(not set)"); the run's name and title are left out."""
    a, b = _resolved(folder_a), _resolved(folder_b)
    rows = [
        {"setting": key, "run A": _text(a.get(key, "(not set)")), "run B": _text(b.get(key, "(not set)"))}
        for key in sorted(set(a) | set(b), key=lambda k: (list(a) + list(b)).index(k))
        if a.get(key, "(not set)") != b.get(key, "(not set)") and key not in ("run.name", "run.title")
    ]
    return pd.DataFrame(rows, columns=["setting", "run A", "run B"])


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _shown(table: pd.DataFrame) -> pd.DataFrame:
    """``compare_runs``' table with the report's names for its columns (the formatter reads rates and points)."""
    return table.rename(columns=SHOWN)


def _config_sentence(folder_a: RunFolder, folder_b: RunFolder, diff: pd.DataFrame) -> str:
    if not folder_a.resolved_config.is_file() or not folder_b.resolved_config.is_file():
        return "The configurations cannot be compared: a run folder has no config.resolved.yaml."
    if diff.empty:
        return "The two runs have the same configuration (apart from their names)."
    return f"What differs between the runs' configurations ({len(diff)} setting{'s' if len(diff) > 1 else ''}):"


def compare_text(table: pd.DataFrame, folder_a: RunFolder, folder_b: RunFolder) -> str:
    """The comparison for a terminal: the same-folder warning, the configuration difference, then the systems."""
    diff = config_difference(folder_a, folder_b)
    lines = [f"Run A: {folder_a.root}", f"Run B: {folder_b.root}"]
    warning = same_folder_warning(folder_a, folder_b)
    if warning:
        lines.insert(0, f"WARNING: {warning}")
    lines += ["", _config_sentence(folder_a, folder_b, diff)]
    if not diff.empty:
        lines.append(diff.to_string(index=False))
    headers, rows, _ = format_frame(_shown(table))
    shown = pd.DataFrame([[v.replace("\n", " ") for v in row] for row in rows], columns=headers)
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 40):
        lines += ["", READING, shown.to_string(index=False)]
    return "\n".join(lines)


def compare_html(table: pd.DataFrame, folder_a: RunFolder, folder_b: RunFolder) -> str:
    """A self-contained HTML page in the report's stylesheet: the warning, the configuration difference, then
    the systems side by side."""
    diff = config_difference(folder_a, folder_b)
    warning = same_folder_warning(folder_a, folder_b)
    banner = f'<div class="serlib-banner serlib-banner-warning"><b>Same folder.</b> {html.escape(warning)}</div>'
    config = f"<p>{html.escape(_config_sentence(folder_a, folder_b, diff))}</p>" + (
        f'<div class="serlib-table">{table_html(diff)}</div>' if not diff.empty else ""
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>serlib compare</title>"
        f"<style>{REPORT_CSS}{PAGE_CSS}</style></head><body class='jp-Notebook'><div class='jp-RenderedHTMLCommon'>"
        f"<h1 class='serlib-title'>serlib compare</h1>{banner if warning else ''}"
        f"<p><b>Run A:</b> {html.escape(str(folder_a.root))}<br><b>Run B:</b> {html.escape(str(folder_b.root))}</p>"
        f"<h2>Configuration</h2>{config}<h2>Systems</h2><p>{html.escape(READING)}</p>"
        f'<div class="serlib-table">{table_html(_shown(table))}</div></div></body></html>'
    )
