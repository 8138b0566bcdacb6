"""The report's table formatter, one kind of column at a time."""

import re

import numpy as np
import pandas as pd

from serlib.report import tables


def _frame(df):
    headers, rows, align = tables.format_frame(df)
    return headers, rows, align


def test_rates_become_percent_and_intervals_one_cell():
    df = pd.DataFrame(
        {
            "system": ["S1", "S5"],
            "acc": [0.6184, 0.5],
            "acc_lo": [0.5, 0.4],
            "acc_hi": [0.7237, 0.61],
            "uar": [0.61, np.nan],
        }
    )
    headers, rows, align = _frame(df)
    assert headers == ["system", "accuracy (%), 95 % interval", "UAR (%)"]
    assert rows[0] == ["S1", "61.8\n[50.0, 72.4]", "61.0"] and rows[1][2] == "n/a"  # not a blank
    assert align == ["text", "num", "num"]
    html = tables.table_html(df)
    assert '<span class="ci">[50.0, 72.4]</span>' in html and "acc_lo" not in html


def test_deltas_are_signed_points_and_p_values_have_a_floor():
    df = pd.DataFrame(
        {
            "delta_pp": [2.94, -0.5],
            "delta_lo_pp": [-1.0, -3.0],
            "delta_hi_pp": [6.0, 2.0],
            "delta_acc": [0.021, -0.004],
            "p": [0.0004, 0.0312],
            "p_holm": [0.002, 1.0],
        }
    )
    headers, rows, _ = _frame(df)
    assert headers == ["Δ (points), 95 % interval", "delta accuracy (points)", "p", "p (Holm)"]
    assert rows[0] == ["+2.9\n[-1.0, +6.0]", "+2.1", "< 0.001", "0.002"]
    assert rows[1][1] == "-0.4" and rows[1][2] == "0.031"


def test_integers_booleans_and_plain_numbers():
    df = pd.DataFrame(
        {
            "params": [8_670_000, 426_653],
            "epochs": [7.0, 12.0],
            "tri_aug": [True, False],
            "seconds_per_epoch": [0.6941, 123.456],
            "max_prob_diff": [3.58e-7, 0.078],
        }
    )
    headers, rows, align = _frame(df)
    assert headers == ["parameters", "epochs", "Tri-Aug", "seconds per epoch", "largest probability change"]
    assert rows[0] == ["8,670,000", "7", "✓", "0.694", "3.6e-07"]
    assert rows[1] == ["426,653", "12", "–", "123", "0.078"]
    assert align == ["num"] * 5


def test_headers_never_hold_an_underscore_and_class_names_read_as_words():
    for name in ("prob_sad_fear", "n_misclassified_clips", "weird__name_", "sad_fear (paper)", "f0_slope_st_s"):
        assert "_" not in tables.header(name), name
    assert tables.header("prob_sad_fear") == "p(sad/fear)"
    assert tables.header("val_acc") == "val. accuracy"


def test_paths_are_shown_relative_to_the_project_or_shortened(tmp_path):
    root = tables._project_root()
    df = pd.DataFrame(
        {
            "path": [
                f"{root}/data/demo-corpus/CREMA-D/AudioWAV/1001_DFA_ANG_XX.wav",
                "/home/someone/corpora/emodb/wav/03a01Fa.wav",
                "relative/a.wav",
            ]
        }
    )
    _, rows, align = _frame(df)
    assert rows[0] == ["data/demo-corpus/CREMA-D/AudioWAV/1001_DFA_ANG_XX.wav"]
    assert rows[1] == ["…/wav/03a01Fa.wav"] and rows[2] == ["relative/a.wav"] and align == ["text"]


def test_a_very_wide_table_is_turned_a_quarter():
    df = pd.DataFrame({f"col{i}": [i, i + 1] for i in range(tables.TRANSPOSE_COLUMNS + 2)})
    df.insert(0, "system", ["S1", "S5"])
    html = tables.table_html(df)
    assert "serlib-transposed" in html and html.count("<tr>") == 1 + tables.TRANSPOSE_COLUMNS + 2
    narrow = tables.table_html(df.iloc[:, :5])
    assert "serlib-transposed" not in narrow and "serlib-footnote" not in narrow


def test_a_mean_with_its_sd_is_one_cell_in_the_unit_of_the_mean():
    df = pd.DataFrame(
        {
            "uar": [0.5],
            "uar_lo": [0.4],
            "uar_hi": [0.6],
            "uar_folds": [0.512],
            "uar_folds_sd": [0.0421],
            "delta_folds_pp": [-0.103],
            "delta_folds_pp_sd": [3.93],
            "epochs": [12.0],
            "epochs_sd": [2.5],
        }
    )
    headers, rows, _ = _frame(df)
    assert headers == [
        "UAR (%), 95 % interval",
        "UAR per fold (%), mean ± sd",
        "Δ per fold (points), mean ± sd",
        "epochs, mean ± sd",
    ]
    assert rows[0] == ["50.0\n[40.0, 60.0]", "51.2 ± 4.2", "-0.1 ± 3.9", "12 ± 2.50"]
    assert "uar_folds_sd" not in tables.table_html(df)


def test_text_cells_hold_words_not_code():
    assert tables.text_cell("rms_slope_db_s") == "RMS slope (dB/s)"  # a descriptor named in a cell
    assert tables.text_cell("overrides {'hidden_size': 32, 'conv_dim': [32, 32, 32]}") == (
        "overrides hidden size 32, conv dim 3 × 32"
    )
    assert tables.text_cell("negative → sad_fear") == "negative → sad/fear"
    assert tables.count_phrase(1, "seed") == "1 seed" and tables.count_phrase(1200, "clip") == "1,200 clips"


def test_a_wide_table_is_narrowed_to_nine_columns_and_a_narrow_one_is_left_alone():
    df = pd.DataFrame(
        {
            "system": ["S1", "S2"],
            "description": ["log-Mel CNN", "wav2vec2 CNN"],
            "acc": [0.5, 0.6],
            "uar": [0.4, 0.55],
            "macro_f1": [0.45, 0.5],
            "unit": ["speaker", "speaker"],
            "n_speakers": [8, 8],
            "n_clips": [30, 30],
            "n_seeds": [3, 3],
            "val_acc": [0.52, 0.61],
            "extra": [1.5, 2.5],
            "paper_test_acc": [0.36, 0.42],
            "paper_macro_f1": [0.35, 0.41],
        }
    )
    html_text = tables.table_html(df)
    headers = re.findall(r"<th[^>]*>(.*?)</th>", html_text)
    assert len(headers) <= tables.MAX_COLUMNS, headers
    assert '50.0<br><span class="ci">paper 36.0</span>' in html_text  # the paper's value under this run's
    assert "In every row: test clips: 30; seeds: 3." in html_text and "paper test accuracy" not in html_text
    narrow = tables.table_html(df[["system", "acc", "paper_test_acc"]])
    assert "paper test accuracy" in narrow and "paper 36.0" not in narrow  # at most 9 columns: as it was


def test_a_sixteen_column_table_is_shown_in_nine_with_every_dropped_column_named_under_it():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "comparison": ["S5 vs S4", "S4 vs S3", "S3 vs S1"],
            "claim": ["SE helps", "Tri-Aug helps", "wav2vec2 beats log-Mel"],
            "base": [0.4, 0.5, 0.45],
            "better": [0.45, 0.48, 0.5],
            "delta_pp": [5.0, -2.0, 5.0],
            "delta_lo_pp": [-1.0, -5.0, 1.0],
            "delta_hi_pp": [9.0, 1.0, 8.0],
            "speaker_delta_pp": [4.0, -2.1, 3.0],
            "p": [0.031, 0.5, 0.01],
            "p_holm": [0.062, 0.5, 0.03],
            "verdict": ["not supported", "not supported", "supported"],
            "delta_uar_pp": [3.0, 1.0, 2.0],
            "p_uar": [0.1, 0.2, 0.3],
            "mcnemar_b": [3, 4, 5],
            "mcnemar_c": [5, 3, 2],
            "mcnemar_p": [0.2, 0.3, 0.4],
            "extra_one": rng.random(3) * 50,
            "extra_two": rng.random(3) * 50,
        }
    )
    assert len(tables.format_frame(df)[0]) == 16  # the interval folded into its estimate: 16 columns
    html_text = tables.table_html(df, csv="table_s26.csv")
    headers = re.findall(r"<th class=[^>]*>(.*?)</th>", html_text)
    assert len(headers) <= tables.MAX_COLUMNS, headers
    assert headers[:2] == ["comparison", "claim"] and "verdict" in headers  # what a reader needs first
    assert "0.031 (Holm 0.062)" in html_text  # the adjusted p in its p's cell
    note = re.search(r'<p class="serlib-footnote">Also in the (.*?)</p>', html_text).group(1)
    assert note.startswith('<span class="serlib-csv-ref" data-csv="table_s26.csv">CSV</span>: ')
    shown = set(headers)
    for title in tables.format_frame(df)[0]:  # every column is on the page or named under it
        folded = title in ("p (Holm)", "McNemar b", "McNemar c")
        assert title in shown or title in note or folded, title
    assert "McNemar b / c" in note and "McNemar p (clip-level)" in note and "extra one" in headers
    more = pd.concat([df, df[["extra_one", "extra_two"]].add_suffix("_more") * 2], axis=1)  # 18: from the right too
    notes = tables.narrow(*tables._format_columns(more))[3]
    assert notes[-1].endswith("; extra one more; extra two more."), notes  # the secondary ones, then in table order
    own = tables.narrow(*tables._format_columns(df), secondary=("extra_one",))  # this table's own choice first
    assert "extra one" not in own[0] and own[3][-1].startswith("Also in the CSV: extra one; "), own[3]
    assert len(tables.narrow(*tables._format_columns(df.iloc[:, :11]))[0]) == 9  # 9 columns: left alone
    assert "Also in the" not in tables.table_html(df.iloc[:, :11])


def test_the_report_links_the_footnotes_csv(tmp_path):
    from serlib.report.supplement import link_csv

    (tmp_path / "table_s26.csv").write_text("a\n1\n")
    markup = '<p class="serlib-footnote">Also in the <span class="serlib-csv-ref" data-csv="table_s26.csv">CSV</span>'
    assert '<a class="serlib-csv" href="tables/table_s26.csv">CSV</a>' in link_csv(markup, tmp_path)
    assert link_csv(markup.replace("s26", "s99"), tmp_path).endswith("Also in the CSV")  # no file: plain word
