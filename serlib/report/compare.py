"""The page ``serlib compare`` writes: two runs' systems side by side, as one offline HTML file."""

from __future__ import annotations

import html

import pandas as pd

from serlib.report.html_export import REPORT_CSS


def compare_html(table: pd.DataFrame, run_a: str, run_b: str) -> str:
    """A self-contained HTML page holding the comparison table and how to read it."""
    body = table.to_html(index=False, border=0, classes="serlib-table", float_format=lambda v: f"{v:.3f}", na_rep="")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>serlib compare</title>"
        f"<style>{REPORT_CSS} body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; }}</style></head>"
        f"<body><h1>serlib compare</h1><p><b>Run A:</b> {html.escape(run_a)}<br><b>Run B:</b> {html.escape(run_b)}</p>"
        "<p>Each system scored on the test clips both runs scored; delta = B - A in percentage points with its "
        "paired 95 % bootstrap interval over test speakers, then seeds (clips when a run has fewer than 5 test "
        "speakers), the sign-flip test over speakers (speaker_p) with Holm's adjustment across the systems (its "
        "accuracy p), and the exact McNemar test on the soft vote over seeds (clip-level, secondary).</p>"
        f"<div class='serlib-table'>{body}</div></body></html>"
    )
