"""The paper body and its supplement: which outputs move, the S-numbers in reading order, the CSV links."""

from __future__ import annotations

import nbformat

from serlib.report import supplement


def _out(markup: str):
    return nbformat.v4.new_output("display_data", data={"text/html": markup})


def _code(*markups: str):
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [_out(m) for m in markups]
    return cell


def _table(label: str, csv: str = "") -> str:
    named = f' data-csv="{csv}"' if csv else ""
    return f'<div class="serlib-table"{named}><p><b>{label}.</b> A caption.</p><table></table></div>'


NOTE = '<div class="serlib-note">A note on the table above.</div>'
VERDICT = '<div class="serlib-verdict">The data support none of the claims.</div>'
LOG = '<details class="serlib-log"><summary>log</summary></details>'


def test_own_tables_move_with_their_notes_and_empty_headings_while_the_paper_and_the_verdicts_stay():
    cells = [
        nbformat.v4.new_markdown_cell("# 3. Training\nIntro."),
        _code(LOG, _table("Table S24")),  # the title's block: its heading stays
        nbformat.v4.new_markdown_cell("## Training settings"),
        _code(_table("Table S20"), NOTE),  # everything this block shows moves, its heading with it
        nbformat.v4.new_markdown_cell("## Table 5"),
        _code(_table("Table 5"), NOTE, _table("Table S26"), VERDICT, NOTE),
    ]
    body, parts = supplement.split_section(cells)
    shown = [o["data"]["text/html"] for c in body if c.cell_type == "code" for o in c.outputs]
    assert shown == [LOG, _table("Table 5"), NOTE, VERDICT]  # the paper's table, its note, the verdict
    assert [c.source for c in body if c.cell_type == "markdown"] == ["# 3. Training\nIntro.", "## Table 5"]
    assert parts[0] == _table("Table S24") and "Training settings</h4>" in parts[1]
    assert parts[2:] == [_table("Table S20"), NOTE, _table("Table S26"), NOTE]
    box = supplement.supplement_html(parts, "3", "supplement-03_train")
    assert box.startswith(
        '<details class="serlib-supplement" id="supplement-03_train"><summary>Supplement to section 3'
    )
    assert "3 tables" in box and "<details open" not in box  # collapsed


def test_own_labels_are_numbered_in_reading_order_everywhere_they_are_named():
    cells = [_code(_table("Table 1"), _table("Table S24")), _code(_table("Table S20"), _table("Fig. S40"))]
    order = supplement.reading_order(cells, "3")
    assert order == {"Table S24": "Table S3.1", "Table S20": "Table S3.2", "Fig. S40": "Fig. S3.1"}
    text = "See Table S20, Tables S24, S20 and Fig. S40; Table 5 and Table S99 stay."
    assert supplement.renumber(text, order) == (
        "See Table S3.2, Tables S3.1, S3.2 and Fig. S3.1; Table 5 and Table S99 stay."
    )
    supplement.renumber_cells(cells, order)
    assert "<b>Table S3.2.</b>" in cells[1].outputs[0]["data"]["text/html"]


def test_a_caption_links_to_its_csv_when_the_file_is_there(tmp_path):
    (tmp_path / "table_s26_paired.csv").write_text("a\n1\n")
    linked = supplement.link_csv(_table("Table S26", "table_s26_paired.csv"), tmp_path)
    assert '<b>Table S26.</b> A caption. <a class="serlib-csv" href="tables/table_s26_paired.csv">CSV</a></p>' in linked
    assert supplement.link_csv(_table("Table S9", "table_s9.csv"), tmp_path) == _table("Table S9", "table_s9.csv")


def test_a_section_numbered_label_links_whole_and_an_old_one_is_not_taken_for_it():
    from serlib.report.references import link_references

    markup = "<p>See Table S3.2; Table S26: skipped.</p>"
    assert link_references(markup, {"Table S3.2": "table-s26"}) == (
        '<p>See <a href="#table-s26">Table S3.2</a>; Table S26: skipped.</p>'
    )
