"""The notes ``05_confusion`` and ``06_listening`` show beside their tables, built from a run's
predictions and the paper's values (so the notebooks only call and show), and the line every notebook
shows in place of a table whose systems the profile lacks (``missing_systems``).

``preds`` is always ``serlib.analysis.evaluation.primary_predictions``'s frame: one row per test clip,
``correct`` a bool, ``attrs`` naming the system, seed and source file.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from serlib.analysis.confusion import paper_implied_accuracy
from serlib.common import paper
from serlib.common.config import PROPOSED_SYSTEM, Config
from serlib.common.runfolder import RunFolder


def missing_systems(cfg: Config, what: str, all_of: Sequence[str] = (), any_of: Sequence[str] = ()) -> str:
    """The one line a notebook shows instead of ``what`` when the profile lacks the systems it needs ("" when it has
    every system of ``all_of`` and at least one of ``any_of``): a skipped table says why, never fails."""
    lacking = [name for name in all_of if name not in cfg.systems]
    if not lacking and (not any_of or any(name in cfg.systems for name in any_of)):
        return ""
    needs = [", ".join(all_of)] if all_of else []
    if any_of:
        needs.append(f"at least one of {', '.join(any_of)}" if len(any_of) > 1 else any_of[0])
    return (
        f"{what}: skipped, it needs {' and '.join(needs)}; this profile has {', '.join(cfg.systems)} "
        f"(analysed: {cfg.analysis.primary_system})."
    )


def paper_test_accuracy(system: str = PROPOSED_SYSTEM) -> float:
    """Table 5's test accuracy of ``system``."""
    return float(paper.TABLE5.set_index("system").loc[system, "test_acc"])


def out_of_fold(preds: pd.DataFrame) -> str:
    """ " (out of fold: ...)" when ``preds`` pools speaker folds, else ""."""
    folds = preds["protocol"].nunique() if "protocol" in preds else 1
    return (
        (
            f" (out of fold: pooled over {folds} speaker folds, each clip tested once, by the fold that held its "
            "speaker out)"
        )
        if folds > 1
        else ""
    )


def primary_note(preds: pd.DataFrame) -> str:
    """The analysed system, seed, clip count and test accuracy, beside the paper's S5."""
    return (
        f"Primary system {preds.attrs['system']}, seed {preds.attrs['seed']}: {len(preds)} test clips"
        f"{out_of_fold(preds)}, accuracy {preds['correct'].mean():.3f} (paper, S5: {paper_test_accuracy():.3f}). "
        f"Predictions: {preds.attrs['source']}"
    )


def paper_consistency_note() -> str:
    """The accuracy the paper's Table 7 implies with its Table 3 test counts, against its Table 5."""
    implied = paper_implied_accuracy(paper.TABLE7, paper.TABLE3.set_index("class")["test"])
    return (
        f"The paper's Table 7 with its test class counts (Table 3) implies a test accuracy of {implied:.3f}, "
        f"consistent with the {paper_test_accuracy():.3f} of Table 5. The paper's values "
        "are for the real corpora with pretrained wav2vec 2.0; a run on the synthetic demo corpus or with random "
        "encoder weights is not expected to reproduce them."
    )


def prosody_failures(prosody: pd.DataFrame) -> pd.DataFrame:
    """Clips the prosody analysis could not compute: ``utt_id``, ``path``, ``error`` (empty when none)."""
    return prosody.loc[prosody["error"] != "", ["utt_id", "path", "error"]]


def listening_note(cfg: Config, folder: RunFolder, preds: pd.DataFrame, clips: pd.DataFrame) -> str:
    """How many test clips are misclassified, how many were drawn for listening, and where tags are kept."""
    wrong = int((~preds["correct"]).sum())
    return (
        f"{preds.attrs['system']} (seed {preds.attrs['seed']}): {wrong} of {len(preds)} "
        f"test clips{out_of_fold(preds)} misclassified; {len(clips)} drawn with seed {cfg.analysis.listening_seed} "
        f"(paper: {paper.LISTENING_CLIPS}). The draw is one reproducible set, from the analysed seed only "
        f"(analysis.primary_seed), while Table 7 pools every seed. Annotations: {folder.annotations}"
    )
