"""The key-results box: verdicts read from the evaluation API, the leaderboard, the collapse warning."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from test_evaluation import _run

from serlib.analysis import evaluation
from serlib.common.config import Config, SystemConfig, TrainConfig
from serlib.common.facts import CLASSES
from serlib.report import keyresults
from serlib.report.tables import class_words

ACCURACY = {"S1": 0.35, "S2": 0.95, "S3": 0.5, "S4": 0.5, "S5": 0.55}


@pytest.fixture(scope="module")
def five_systems(tmp_path_factory):
    """S1-S5 at the accuracies of ``ACCURACY``: S2 beats S1 by far, the rest are near one another."""
    tmp = tmp_path_factory.mktemp("key")
    _, folder = _run(tmp, ACCURACY)
    cfg = Config(systems={name: SystemConfig() for name in ACCURACY}, train=TrainConfig(seeds=[0, 1]))
    cfg.analysis.bootstrap_resamples = 200
    return cfg, folder


def test_the_box_states_k_of_n_claims_each_with_its_interval(five_systems):
    cfg, folder = five_systems
    box = keyresults.key_results_html(cfg, folder)
    paired = evaluation.paired_table(cfg, folder, evaluation.TABLE5_CLAIMS)  # the ablations are not in this run
    k = int((paired["verdict"] == "supported").sum())
    assert f"The paper's claims: {k} of {len(paired)} distinct claims supported by this run" in box
    s2 = paired[paired["claim"].str.contains("S2 vs S1")].iloc[0]
    assert s2["verdict"] == "supported"  # 95 % against 35 %: the one claim this run supports
    line = re.search(r"<li class='serlib-yes'>(.*?)</li>", box).group(1)
    assert s2["claim"] in line
    assert f"{s2['delta_pp']:+.1f} points [{s2['delta_lo_pp']:+.1f}, {s2['delta_hi_pp']:+.1f}]" in line
    assert box.count("<li class='serlib-no'>") == len(paired) - k
    # conclusions first: the verdicts come before the analysed system's own scores
    assert box.index("The paper's claims") < box.index("Leaderboard") < box.index("The analysed system")


def test_a_claim_in_two_tables_is_one_line_and_counted_once():
    def row(comparison, same_as, claim, table, verdict="not supported: no gain", delta=-5.0):
        return dict(
            comparison=comparison,
            same_as=same_as,
            claim=claim,
            table=table,
            anchor=table.lower(),
            verdict=verdict,
            metric="accuracy",
            speaker_delta_pp=delta - 1,
            p_holm=0.01 if verdict == "supported" else 0.5,
            unit="clip" if comparison == "S5 vs A3" else "speaker",
            delta_pp=delta,
            delta_lo_pp=delta - 9,
            delta_hi_pp=delta + 9,
        )

    table = pd.DataFrame(
        [
            row("S2 vs S1", "", "features (S2 vs S1)", "S3.4", "supported", 20.0),
            row("S5 vs S4", "S5 vs A1", "Tri-Aug helps (S5 vs S4)", "S3.4"),
            row("S5 vs A1", "S5 vs S4", "Tri-Aug helps (Full vs A1 -Aug)", "S4.2"),
            row("S5 vs A3", "", "depth helps (Full vs A3)", "S4.2"),
        ]
    )
    box = keyresults.verdicts_html(table)
    assert "1 of 3 distinct claims supported" in box
    assert box.count("<li") == 3 and box.count("serlib-yes") == 1
    tri = re.search(r"<li class='serlib-no'><b>[^<]*</b>: Tri-Aug helps \(S5 vs S4\)(.*?)</li>", box).group(1)
    assert "the same test as Tri-Aug helps (Full vs A1 -Aug) (<a href='#s4.2'>S4.2</a>)" in tri
    assert "the verdict's test: mean per speaker -6.0 points, p 0.5 after Holm" in tri and "over clips" not in tri
    assert "[-14.0, +4.0] (interval over clips: fewer than 5 test speakers)" in box  # S5 vs A3's clip fallback


def test_a_balanced_uar_drawn_otherwise_than_the_other_intervals_says_how():
    row = pd.Series(
        {
            "acc": 0.5,
            "acc_lo": 0.4,
            "acc_hi": 0.6,
            "uar_balanced": 0.5,
            "uar_balanced_lo": 0.4,
            "uar_balanced_hi": 0.6,
            "unit": "speaker",
            "uar_balanced_unit": "speaker; clip in EmoDB",
            "n_seeds": 1,
            "n_clips": 60,
            "n_speakers": 12,
        }
    )
    cfg = Config(systems={"S5": SystemConfig()})
    box = keyresults._system_html(cfg, "S5", row, "table-5", False)
    assert "corpus-balanced UAR (interval: speaker; clip in EmoDB, within each corpus)" in box
    same = keyresults._system_html(
        cfg, "S5", pd.Series({**row.to_dict(), "uar_balanced_unit": "speaker"}), "table-5", False
    )
    assert "<th>corpus-balanced UAR</th>" in same


def test_a_test_set_too_small_for_any_verdict_says_so():
    from itertools import product

    # the demo's 4 test speakers: the exact sign-flip p can be no smaller than 2/16, by enumeration too
    d = [0.1, 0.2, 0.05, 0.3]
    hits = sum(abs(sum(s * x for s, x in zip(signs, d))) >= sum(d) - 1e-12 for signs in product([1, -1], repeat=4))
    assert hits / 2**4 == 0.125
    note = keyresults.reach_note(4, 5, 0.05)
    assert "smallest possible p is 0.125" in note and "0.625 after Holm over 5" in note
    assert "no claim can be supported" in note and "(8 test speakers would be the fewest that could)" in note
    assert 5 * 2.0 ** (1 - 8) < 0.05 <= 5 * 2.0 ** (1 - 7)  # 8 is the fewest: the note's arithmetic
    assert keyresults.reach_note(12, 5, 0.05) == ""  # the paper's 12 test speakers can reach alpha
    assert keyresults.reach_note(5, 1, 0.07) == ""  # one claim, 5 speakers: 2/32 = 0.0625 < 0.07
    assert "smallest possible p is 0.0625" in keyresults.reach_note(5, 1, 0.05)  # ... but not below 0.05


def test_the_leaderboard_names_the_analysed_and_the_best_system_with_uar_intervals(five_systems):
    cfg, folder = five_systems
    board = keyresults.leaderboard(cfg, folder, "S5")
    assert list(board["system"]) == ["S5", "S2"] and list(board["role"]) == ["analysed", "best"]
    s2 = evaluation.scores_table(cfg, folder, ["S2"]).iloc[0]
    assert board.iloc[1]["uar"] == pytest.approx(s2["uar"])
    box = keyresults.key_results_html(cfg, folder)
    assert f"<b>{100 * s2['uar']:.1f} %</b></td><td class='num'>[{100 * s2['uar_lo']:.1f}, " in box
    assert (
        "highest test UAR of the trained networks (read off test, not chosen)" in box
        and "1 seed" not in box
        and "2 seeds pooled" in box
    )


def test_the_paper_column_is_greyed_with_a_note_on_a_demo_run(five_systems):
    cfg, folder = five_systems
    assert "serlib-greyed" not in keyresults.key_results_html(cfg, folder)  # the paper profile: the paper in full
    box = keyresults._system_html(cfg, "S5", evaluation.scores_table(cfg, folder, ["S5"]).iloc[0], "table-5", True)
    assert box.count("serlib-greyed") == 1 + len(keyresults.METRICS)  # the header and each metric
    assert "cannot be compared with the paper's" in box


def _preds(labels: list, preds: list) -> pd.DataFrame:
    return pd.DataFrame({"label": labels, "pred": preds, "correct": [a == b for a, b in zip(labels, preds)]})


def test_a_collapse_is_named_by_recall_and_by_share_of_predictions():
    labels = [c for c in CLASSES for _ in range(10)]  # 10 clips per class
    balanced = _preds(labels, labels)
    assert keyresults.collapse_warning(balanced) == ""
    # everything predicted as the first class but one clip of each other class
    one_class = _preds(labels, [CLASSES[0]] * 10 + [CLASSES[1]] + [CLASSES[0]] * 9 + [CLASSES[2]] + [CLASSES[0]] * 9)
    text = keyresults.collapse_warning(one_class)
    assert f"{class_words(CLASSES[1])} is recalled at 10.0 %" in text
    assert f"{class_words(CLASSES[2])} is recalled at 10.0 %" in text and "sad_fear" not in text
    assert f"{CLASSES[0]} takes 93.3 % of the predictions" in text and "CHOSEN" in text
    # a class at 20 % recall (above the threshold, 16.7 %) and no class above 60 % of the predictions: no warning
    mild = _preds(labels, labels[:10] + [CLASSES[1]] * 2 + [CLASSES[0]] * 8 + labels[20:])
    assert keyresults.collapse_warning(mild) == ""


def test_the_opened_by_hand_hint_names_the_parameters_file_from_the_project_folder(tmp_path):
    from serlib.common.config import load_config
    from serlib.common.runfolder import RunFolder, rerun_hint

    (tmp_path / "parameters").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "parameters" / "mine.yaml").write_text("run: {name: mine}\n")
    cfg = load_config(tmp_path / "notebooks" / ".." / "parameters" / "mine.yaml")  # as a notebook opens it
    hint = rerun_hint(cfg, RunFolder(tmp_path / "reports" / "mine"))
    assert f"`serlib run parameters/mine.yaml --only <notebook>`, run in {tmp_path.resolve()}," in hint
    assert "../parameters" not in hint
    from serlib.report.runner import _stale_html

    folder = RunFolder(tmp_path / "reports" / "mine").ensure()
    assert _stale_html(folder, cfg) == ""
    folder.stale_marker.write_text("a notebook was run by hand\n")
    assert "<code>serlib run parameters/mine.yaml --only NOTEBOOK</code>, run in the project" in _stale_html(
        folder, cfg
    )
