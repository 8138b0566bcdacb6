"""Show a table or figure in a notebook and save it in the run folder, in one call.

Captions keep the paper's numbering ("Table 2", "Fig. 4"); this project's own additions are
numbered apart ("Table S1", "Fig. S1"). In the notebooks, ranges of S-numbers per notebook, so notebooks can
grow independently: 01_data S1-S9, 02_features S10-S19, 03_train S20-S29, 04_ablation S30-S39,
05_confusion S40-S49, 06_listening S50-S59, bench/report S60-S69; these names stay the CSVs' and the anchors'.
The report numbers them again in reading order (``serlib.report.supplement``).
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from serlib.common.runfolder import RunFolder
from serlib.report.tables import table_html


def display_html(markup: str, metadata: Optional[dict] = None) -> None:
    """Show ``markup`` as the cell's HTML output; ``metadata`` goes into the output's metadata (the report's
    export reads it: ``serlib.report.listening.refreshed_html``)."""
    from IPython.display import HTML, display  # notebook helpers: IPython is present only in a kernel

    display(HTML(markup), metadata=metadata)


def _slug(label: str) -> str:
    return label.lower().replace(".", "").replace(" ", "_")


def show_table(
    df: pd.DataFrame,
    label: str,
    caption: str,
    folder: Optional[RunFolder] = None,
    name: Optional[str] = None,
    note: Optional[str] = None,
    index: bool = False,
    float_format: Optional[str] = None,
    metadata: Optional[dict] = None,
    secondary: Sequence[str] = (),
) -> None:
    """Display ``df`` under "<label>. <caption>" and save it as ``tables/<name>.csv``.

    Args:
        df: the table.
        label: "Table 2" for the paper's numbering, "Table S1" for this project's own.
        caption: one sentence saying what the table holds.
        folder: the run folder; None shows without saving.
        name: file stem (default from the label, e.g. ``table_2``).
        note: an optional paragraph under the table (e.g. how it differs from the paper).
        index: show the index.
        float_format: format of plain float cells (default: ``serlib.report.tables`` decides by meaning).
        metadata: the output's metadata (``display_html``).
        secondary: columns (CSV names) a reader can do without, left to the CSV first when the table is wider
            than the report shows (``serlib.report.tables.narrow``).
    Returns:
        None, so a cell that ends with the call does not show the table a second time.
    """
    if folder is not None:
        folder.tables.mkdir(parents=True, exist_ok=True)
        df.to_csv(folder.tables / table_file(label, name), index=index)
    csv = table_file(label, name) if folder is not None else None
    display_html(table_block(df, label, caption, note, float_format, index, csv=csv, secondary=secondary), metadata)


def table_file(label: str, name: Optional[str] = None) -> str:
    """The CSV a table is saved as under ``tables/``: ``<name>.csv``, by default from the label (``table_s50.csv``)."""
    return f"{name or _slug(label)}.csv"


def table_block(
    df: pd.DataFrame,
    label: str,
    caption: str,
    note: Optional[str] = None,
    float_format: Optional[str] = None,
    index: bool = False,
    csv: Optional[str] = None,
    secondary: Sequence[str] = (),
) -> str:
    """The HTML ``show_table`` shows: "<label>. <caption>", the table, and the note under it; ``csv`` (the file
    under ``tables/``) is named in a ``data-csv`` attribute, which the report's export turns into a link."""
    body = table_html(df, float_format, index=index, csv=csv, secondary=secondary)
    named = f' data-csv="{html.escape(csv, quote=True)}"' if csv else ""
    markup = f'<div class="serlib-table"{named}><p><b>{html.escape(label)}.</b> {html.escape(caption)}</p>{body}'
    if note:
        markup += f'<p class="serlib-note"><i>{html.escape(note)}</i></p>'
    return markup + "</div>"


FIGURE_DPI = 220  # 2x the 110 dpi the figures are laid out for: sharp on HiDPI screens


def show_figure(
    fig: plt.Figure, label: str, caption: str, folder: Optional[RunFolder] = None, name: Optional[str] = None
) -> None:
    """Display ``fig`` with "<label>. <caption>" and save it as ``figures/<name>.png``; closes it.

    Saved at ``FIGURE_DPI`` and shown at half its pixel size (sharp on HiDPI screens), with the caption as
    the image's alt text.
    """
    if folder is not None:
        folder.figures.mkdir(parents=True, exist_ok=True)
        path = folder.figures / f"{name or _slug(label)}.png"
    else:
        path = Path(tempfile.mkstemp(suffix=".png")[1])
    fig.savefig(path, dpi=FIGURE_DPI, bbox_inches="tight")
    plt.close(fig)
    data = path.read_bytes()
    width = int.from_bytes(data[16:20], "big") // 2  # the PNG header's width, shown at half
    alt = html.escape(f"{label}. {caption}", quote=True)
    display_html(
        f'<img class="serlib-figure" src="data:image/png;base64,{base64.b64encode(data).decode()}" '
        f'width="{width}" alt="{alt}">'
        f'<p class="serlib-caption"><b>{html.escape(label)}.</b> {html.escape(caption)}</p>'
    )


def show_note(text: str, kind: str = "note") -> None:
    """A highlighted paragraph: kind 'note', 'paper' (differs from the paper), 'warning' or 'verdict' (what the
    data say of the paper's claims: the report keeps it in the section's body)."""
    colours = {"note": "#eef5ff", "paper": "#fff6e0", "warning": "#ffe8e8", "verdict": "#eef8ea"}
    display_html(
        f'<div class="serlib-{kind}" style="background:{colours.get(kind, "#eee")};'
        f'padding:8px 12px;border-radius:4px;margin:6px 0">{html.escape(text)}</div>'
    )
