"""serlib.tools.tablediff: two runs' tables compared, times and absolute folders aside."""

from __future__ import annotations

import pandas as pd

from serlib.tools import tablediff


def _tables(root, changes=None):
    """A run folder with two tables; ``changes``: (table, column, row) -> value written instead."""
    (root / "tables").mkdir(parents=True)
    t5 = pd.DataFrame({"system": ["S1", "S5"], "acc": [0.5, 2 / 3], "n_clips": [76, 76]})
    s10 = pd.DataFrame(
        {
            "input": ["logmel"],
            "clips": [761],
            "step s": [1.464],
            "path": ["/work/main/data/demo-corpus/EmoDB/wav/03a01Fa.wav"],
        }
    )
    for (table, column, row), value in (changes or {}).items():
        {"table_5": t5, "table_s10": s10}[table].loc[row, column] = value
    t5.to_csv(root / "tables" / "table_5.csv", index=False)
    s10.to_csv(root / "tables" / "table_s10.csv", index=False)
    return root


def test_the_same_numbers_in_other_times_and_folders_are_the_same_tables(tmp_path, capsys):
    a = _tables(tmp_path / "a")
    b = _tables(
        tmp_path / "b",
        {
            ("table_s10", "step s", 0): 9.9,  # a time: not compared
            ("table_s10", "path", 0): "/tmp/x/data/demo-corpus/EmoDB/wav/03a01Fa.wav",
        },
    )
    assert tablediff.compare_tables(a, b) == {"table_5.csv": [], "table_s10.csv": []}
    assert tablediff.main([str(a), str(b)]) == 0 and "2 of 2 tables the same" in capsys.readouterr().out


def test_a_changed_number_a_changed_file_name_or_a_missing_table_is_reported(tmp_path, capsys):
    a = _tables(tmp_path / "a")
    b = _tables(
        tmp_path / "b",
        {
            ("table_5", "acc", 1): 2 / 3 + 1e-12,
            ("table_s10", "path", 0): "/work/main/data/demo-corpus/EmoDB/wav/03a01Wa.wav",
        },
    )
    (b / "tables" / "table_s99.csv").write_text("x\n1\n")
    result = tablediff.compare_tables(a, b)
    assert result["table_5.csv"] == [f"row 1, column 'acc': {2 / 3!r} vs {2 / 3 + 1e-12!r}"]
    assert "column 'path'" in result["table_s10.csv"][0] and result["table_s99.csv"][0].startswith("only in")
    assert tablediff.compare_tables(a, b, rtol=1e-9)["table_5.csv"] == []  # within a relative tolerance
    assert tablediff.main([str(a), str(b)]) == 1
    assert "0 of 3 tables the same; differ: table_5.csv, table_s10.csv, table_s99.csv" in capsys.readouterr().out
