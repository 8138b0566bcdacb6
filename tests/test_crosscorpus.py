"""Leave-one-corpus-out's test on the same clips: the speaker sign-flip p, unadjusted and n/a below
``stats.MIN_SPEAKERS`` speakers (hand-built run folders: no training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_evaluation import CLIPS, _run, _write_loco

from serlib.analysis import crosscorpus, stats
from serlib.analysis.predictions import system_predictions
from serlib.common.facts import CLASSES
from serlib.report.tables import format_frame


def test_the_loco_p_is_unadjusted_and_na_below_five_speakers(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.8}, seeds=(0,))
    cfg.analysis.loco_systems = ["S1"]
    manifest = pd.read_csv(folder.manifest)
    manifest["corpus"] = np.where(manifest["speaker"].isin(["spk6", "spk7"]), "RAVDESS", "CREMA-D")  # 6 and 2
    manifest.to_csv(folder.manifest, index=False)
    main = pd.read_csv(folder.predictions("S1", 0))
    _write_loco(folder, manifest, main, np.random.default_rng(2))
    table = crosscorpus.loco_table(cfg, folder)
    assert "p" not in table  # the column says what it is: unadjusted over the table's rows
    rows = table.set_index("held_out")
    assert rows.at["CREMA-D", "same_speakers"] == 6 and rows.at["RAVDESS", "same_speakers"] == 2
    within = system_predictions(cfg, folder, "S1").query("corpus == 'CREMA-D'").sort_values("utt_id")
    loco = system_predictions(cfg, folder, "S1", ["loco-CREMA-D"], [0]).sort_values("utt_id")
    index = lambda s: s.map(CLASSES.index).to_numpy()  # noqa: E731
    test = stats.speaker_signflip_test(
        index(within["label"]), index(within["pred"]), index(loco["pred"]), within["speaker"], "uar"
    )
    assert len(within) == 6 * CLIPS and rows.at["CREMA-D", "p_unadjusted"] == pytest.approx(test["p"])
    assert np.isnan(rows.at["RAVDESS", "p_unadjusted"])  # 2 speakers: 4 sign patterns, p >= 0.5 whatever happens
    headers, cells, _ = format_frame(table)
    column = headers.index("p (sign-flip, unadjusted)")
    assert cells[list(table["held_out"]).index("RAVDESS")][column] == "n/a"
