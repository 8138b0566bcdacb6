"""Cross-references in the report: each table's and figure's caption given an anchor, and every "Table N" /
"Fig. N" in the text (HTML outputs and markdown cells) linked to its caption, never inside links, caption labels,
code, headings or table headers."""

from __future__ import annotations

import html
import re
from typing import Any

from serlib.report.supplement import CAPTION

_REF = re.compile(r"(?<![\w\[#-])(Table|Fig\.|Figure) (S?\d+(?:\.\d+)?[a-z]?)\b")
_SKIP_TAGS = {"a", "b", "code", "pre", "script", "style", "h1", "h2", "h3", "h4", "summary", "th", "textarea"}


def label_key(kind: str, number: str) -> str:
    return f"{'Fig.' if kind.startswith('Fig') else 'Table'} {number}"


def link_references(markup: str, targets: dict) -> str:
    """ "Table 5" / "Fig. 3" in the text of ``markup`` linked to their captions (``targets``: label -> anchor);
    not inside links, bold caption labels, code, headings or table headers."""
    out, skip = [], []
    for part in re.split(r"(<[^>]+>)", markup):
        if part.startswith("<"):
            tag = re.match(r"</?\s*([a-zA-Z0-9]+)", part)
            name = tag.group(1).lower() if tag else ""
            if name in _SKIP_TAGS and not part.endswith("/>"):
                if part.startswith("</"):
                    if name in skip:
                        skip.remove(name)
                else:
                    skip.append(name)
            out.append(part)
            continue
        if skip or not part.strip():
            out.append(part)
            continue
        out.append(_link(part, targets, '<a href="#{anchor}">{text}</a>'))
    return "".join(out)


def _link(text: str, targets: dict, form: str) -> str:
    """Every "Table N" / "Fig. N" of ``text`` with a caption in ``targets``, written as ``form``
    (``{anchor}``, ``{text}``): an HTML link or a markdown one."""

    def one(match: re.Match) -> str:
        anchor = targets.get(label_key(*match.groups()))
        return form.format(anchor=anchor, text=match.group(0)) if anchor else match.group(0)

    return _REF.sub(one, text)


def link_markdown(source: str, targets: dict) -> str:
    return "".join(
        line if line.lstrip().startswith("#") or "`" in line else _link(line, targets, "[{text}](#{anchor})")
        for line in source.splitlines(keepends=True)
    )


def link_cells(cells: list, targets: dict) -> None:
    for cell in cells:
        if cell.cell_type == "markdown":
            cell.source = link_markdown(cell.source, targets)
            continue
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            if "text/html" in data:
                data["text/html"] = link_references(as_text(data["text/html"]), targets)


def as_text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def anchor_captions(markup: str, anchors: set, captions: list) -> str:
    def add_id(match: re.Match) -> str:
        if "id=" in match.group("attrs"):
            return match.group(0)
        base = re.sub(r"[^a-z0-9]+", "-", match.group("label").lower()).strip("-")
        anchor, k = base, 2
        while anchor in anchors:
            anchor, k = f"{base}-{k}", k + 1
        anchors.add(anchor)
        caption = re.sub(r"<[^>]+>", "", match.group("caption")).strip()
        captions.append((anchor, html.unescape(f"{match.group('label')}. {caption}")))
        return f'<p id="{anchor}"{match.group("attrs")}><b>{match.group("label")}.</b>{match.group("caption")}</p>'

    return CAPTION.sub(add_id, markup)
