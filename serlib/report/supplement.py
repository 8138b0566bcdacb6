"""The report's paper body and its supplement.

Each section (one executed notebook) shows the paper's tables and figures, its notes and the verdicts; this
run's own tables and figures ("Table S..", "Fig. S..") move into a collapsed "Supplement to section N" at the
end of the section, together with the notes that follow them and the headings left with nothing else to head.
The S-numbers are then given again in reading order per section (S3.1, S3.2, ... for tables and for figures),
in captions and in every reference to them; a caption's anchor keeps the notebook's number, as its CSV does
(``tables/<name>.csv``, linked from the caption).
"""

from __future__ import annotations

import html
import re
from typing import Iterator, Optional

import nbformat

CAPTION = re.compile(
    r"<p(?P<attrs>[^>]*)>\s*<b>(?P<label>(?:Table|Fig\.|Figure) S?\d+[a-z]?)\.</b>(?P<caption>.*?)</p>", re.S
)
_S_LABEL = re.compile(r"^(Table|Fig\.|Figure) (S\d+[a-z]?)$")
# "Table S3", "Tables S31, S32", "Fig. S30 and S31", "Tables S1-S9": the S-numbers after a Table/Fig. word
_S_REFS = re.compile(r"\b(Tables?|Figs?\.|Figures?)((?:(?:\s+|,\s*|\s+and\s+|\s+or\s+|\s*[-–]\s*)S\d+[a-z]?\b)+)")
_S_NUMBER = re.compile(r"S\d+[a-z]?")
_CSV_CAPTION = re.compile(r'(<div class="serlib-table[^"]*" data-csv="(?P<csv>[^"/\\]+)">\s*<p[^>]*>.*?)</p>', re.S)
_CSV_REF = re.compile(r'<span class="serlib-csv-ref" data-csv="(?P<csv>[^"/\\]+)">CSV</span>')
_KEEP = ("serlib-log", "serlib-verdict", "serlib-banner")  # stay in the body wherever they are

SCHEME = (
    "How the tables and figures are numbered: Table 1-8 and Fig. 1-4 are the paper's, under its numbers. This "
    "run's own tables and figures are numbered by section in reading order (Table S3.2: the second table of section "
    "3's supplement; Fig. S3.1: its first figure) and sit in the collapsed "
    "“Supplement to section N” at the end of each section (open it to read them; a link from the contents "
    "opens it). Each table's caption links to its CSV in <code>tables/</code>."
)


def output_html(out: dict) -> str:
    """The HTML of a display output ("" for another kind of output)."""
    value = (out.get("data") or {}).get("text/html", "")
    return "".join(value) if isinstance(value, list) else str(value)


def first_label(markup: str) -> Optional[str]:
    """The label of the first caption in ``markup`` ("Table S3", "Fig. 2"), or None."""
    match = CAPTION.search(markup)
    return match.group("label") if match else None


def is_supplementary(markup: str) -> bool:
    """Whether ``markup`` is one of this run's own tables or figures (its first caption is an S-label)."""
    label = first_label(markup)
    return bool(label and _S_LABEL.match(label))


def _split_outputs(outputs: list) -> tuple[list, list[str]]:
    """A code cell's outputs kept in the body, and the HTML of those that move to the supplement: the S-tables
    and S-figures and the caption-free notes that follow one of them in the same cell."""
    kept, moved, following = [], [], False
    for out in outputs:
        markup = output_html(out)
        if markup and is_supplementary(markup):
            moved.append(markup)
            following = True
        elif following and markup and first_label(markup) is None and not any(k in markup for k in _KEEP):
            moved.append(markup)
        else:
            following = following and not first_label(markup)
            kept.append(out)
    return kept, moved


def _blocks(cells: list) -> Iterator[list]:
    """The cells in blocks, each starting at a markdown cell (the first may start with code)."""
    block: list = []
    for cell in cells:
        if cell.cell_type == "markdown" and block:
            yield block
            block = []
        block.append(cell)
    if block:
        yield block


def _shows_something(cell) -> bool:
    """A code cell whose outputs show more than a collapsed log."""
    return cell.cell_type == "code" and any("serlib-log" not in output_html(o) for o in cell.get("outputs", []))


def _markdown_html(source: str) -> str:
    from nbconvert.filters.markdown_mistune import markdown2html_mistune  # nbconvert: only the export needs it

    markup = re.sub(r'<a class="anchor-link"[^>]*>.*?</a>', "", markdown2html_mistune(source))
    return re.sub(r"<(/?)h[1-3]\b", r"<\1h4", markup)


def split_section(cells: list) -> tuple[list, list[str]]:
    """A section's cells (code hidden) as its body and its supplement's HTML parts, in reading order.

    A markdown cell (not the section's title) goes with its block into the supplement when everything its block
    showed moved there."""
    body: list = []
    supplement: list[str] = []
    for block in _blocks(cells):
        moved: list[str] = []
        for cell in block:
            if cell.cell_type == "code":
                cell.outputs, parts = _split_outputs(cell.get("outputs", []))
                moved += parts
        head = block[0]
        titled = head.cell_type == "markdown" and any(line.startswith("# ") for line in head.source.splitlines())
        if moved and head.cell_type == "markdown" and not titled and not any(map(_shows_something, block)):
            supplement.append(_markdown_html(head.source))
            block = block[1:]
        body += block
        supplement += moved
    return body, supplement


def supplement_html(parts: list[str], number: str, anchor: str) -> str:
    """The collapsed "Supplement to section N" holding ``parts`` ("" when there are none)."""
    labels = [first_label(p) or "" for p in parts]
    tables = sum(label.startswith("Table") for label in labels)
    figures = sum(label.startswith("Fig") for label in labels)
    counts = ", ".join(
        f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((tables, "table"), (figures, "figure")) if n
    )
    if not parts:
        return ""
    return (
        f'<details class="serlib-supplement" id="{anchor}"><summary>Supplement to section {html.escape(number)}'
        f"{': ' + counts if counts else ''} (this run's own; click to open)</summary>{''.join(parts)}</details>"
    )


def supplement_cell(parts: list[str], number: str, anchor: str) -> Optional[nbformat.NotebookNode]:
    """A code cell (no source) showing ``supplement_html``; None without parts."""
    if not parts:
        return None
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": supplement_html(parts, number, anchor)})]
    return cell


def reading_order(cells: list, section: str) -> dict[str, str]:
    """Old S-label -> new S-label of one section's ``cells`` ("Table S24" -> "Table S3.1" in section 3), in the
    order the captions appear (tables and figures counted apart). The section's number in the label keeps the new
    labels apart from the notebooks' ("Table S26" in a note on a skipped table still means that one)."""
    mapping: dict[str, str] = {}
    counters = {"Table": 0, "Fig.": 0}
    for cell in cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            for match in CAPTION.finditer(output_html(out)):
                found = _S_LABEL.match(match.group("label"))
                if not found or match.group("label") in mapping:
                    continue
                kind = "Fig." if found.group(1).startswith("Fig") else "Table"
                counters[kind] += 1
                mapping[match.group("label")] = f"{found.group(1)} S{section}.{counters[kind]}"
    return mapping


def renumber(text: str, mapping: dict[str, str]) -> str:
    """Every S-label of ``text`` (captions and references, "Tables S31, S32" included) as ``mapping`` gives it;
    labels not in the mapping stay as they are."""

    def refs(match: re.Match) -> str:
        kind = "Fig." if match.group(1).startswith("Fig") else "Table"

        def number(n: re.Match) -> str:
            new = mapping.get(f"{kind} {n.group(0)}") or mapping.get(f"Figure {n.group(0)}")
            return new.split(" ", 1)[1] if new else n.group(0)

        return match.group(1) + _S_NUMBER.sub(number, match.group(2))

    return _S_REFS.sub(refs, text)


def renumber_cells(cells: list, mapping: dict[str, str]) -> None:
    """``renumber`` over every markdown source and HTML output of ``cells`` (in place)."""
    for cell in cells:
        if cell.cell_type == "markdown":
            cell.source = renumber(cell.source, mapping)
            continue
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            if "text/html" in data:
                data["text/html"] = renumber(output_html(out), mapping)


def link_csv(markup: str, tables_dir) -> str:
    """Each table caption of ``markup`` that names its CSV (``data-csv``, written by ``show_table``) ends with a
    relative link to ``tables/<file>`` when that file is in ``tables_dir``; so does the word CSV of a footnote that
    names the columns left to the CSV ("Also in the CSV: ...", ``serlib.report.tables.table_html``)."""

    def add(match: re.Match) -> str:
        name = match.group("csv")
        if not (tables_dir / name).is_file():
            return match.group(0)
        return f'{match.group(1)} <a class="serlib-csv" href="tables/{html.escape(name, quote=True)}">CSV</a></p>'

    def footnote(match: re.Match) -> str:
        name = match.group("csv")
        if not (tables_dir / name).is_file():
            return "CSV"
        return f'<a class="serlib-csv" href="tables/{html.escape(name, quote=True)}">CSV</a>'

    return _CSV_REF.sub(footnote, _CSV_CAPTION.sub(add, markup))
