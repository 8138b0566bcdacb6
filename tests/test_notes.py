"""serlib.analysis.notes: the sentences 05_confusion and 06_listening show, on hand-made predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serlib.analysis import notes
from serlib.common import paper
from serlib.common.config import Config
from serlib.common.runfolder import RunFolder


def _preds(correct: list[bool]) -> pd.DataFrame:
    preds = pd.DataFrame({"utt_id": [f"u{i}" for i in range(len(correct))], "correct": correct})
    preds.attrs.update(system="S5", seed=2, source="models/S5/seed2/predictions_test.csv")
    return preds


def test_primary_note_states_the_accuracy_beside_the_papers():
    note = notes.primary_note(_preds([True, False, False, True, True]))
    assert note == (
        "Primary system S5, seed 2: 5 test clips, accuracy 0.600 (paper, S5: 0.629). "
        "Predictions: models/S5/seed2/predictions_test.csv"
    )


def test_paper_consistency_note_recomputes_the_implied_accuracy():
    # By hand: the diagonal of Table 7 weighted by Table 3's test counts.
    diagonal = np.diag(paper.TABLE7.to_numpy())
    counts = paper.TABLE3.set_index("class").loc[list(paper.TABLE7.index), "test"].to_numpy()
    implied = (diagonal * counts).sum() / counts.sum()
    assert implied == pytest.approx((0.584 * 255 + 0.720 * 271 + 0.572 * 236) / 762)
    assert (
        f"implies a test accuracy of {implied:.3f}, consistent with the 0.629 of Table 5"
        in notes.paper_consistency_note()
    )


def test_prosody_failures_keep_only_clips_with_an_error():
    prosody = pd.DataFrame(
        {
            "utt_id": ["a", "b", "c"],
            "path": ["a.wav", "b.wav", "c.wav"],
            "error": ["", "bad", ""],
            "pitch_mean": [1.0, np.nan, 2.0],
        }
    )
    failed = notes.prosody_failures(prosody)
    assert failed.to_dict("list") == {"utt_id": ["b"], "path": ["b.wav"], "error": ["bad"]}
    assert notes.prosody_failures(prosody.iloc[[0, 2]]).empty


def test_listening_note_counts_the_misclassified(tmp_path):
    cfg = Config()
    cfg.analysis.listening_seed = 4
    note = notes.listening_note(
        cfg, RunFolder(tmp_path), _preds([True, False, False, True, False]), pd.DataFrame({"utt_id": ["u1", "u2"]})
    )
    assert note.startswith(
        f"S5 (seed 2): 3 of 5 test clips misclassified; 2 drawn with seed 4 (paper: {paper.LISTENING_CLIPS})."
    )
    assert note.endswith(str(RunFolder(tmp_path).annotations))
