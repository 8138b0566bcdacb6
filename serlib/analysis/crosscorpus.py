"""Leave-one-corpus-out (issue 24): each corpus in turn held out whole, the systems trained on the others, and
the held-out corpus's clips scored beside the same clips' within-corpus score."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serlib.analysis import stats
from serlib.analysis.evaluation import score, score_row
from serlib.analysis.predictions import system_predictions
from serlib.common.config import Config, configured_corpora, loco_systems
from serlib.common.facts import CORPORA
from serlib.common.runfolder import RunFolder
from serlib.data.stage import load_manifest


def loco_table(cfg: Config, folder: RunFolder) -> pd.DataFrame:
    """Leave-one-corpus-out: per held-out corpus and system, accuracy, UAR and macro-F1 with intervals on every clip
    of the held-out corpus, and beside them the comparison on the SAME clips with the system trained within the
    main protocol: the clips of that corpus the main protocol tested (all of them under ``data.folds``, each by
    the fold that held its speaker out; with the paper's split only its test clips, so the all-clip LOCO score and
    the within score are not comparable, and the same-clip pair is what to read).

    Columns: held_out, trained_on, the scores-table columns of the LOCO predictions (all clips), same_clips (the
    clips both scored), all_clips (bool: the same clips are all of the corpus's), loco_uar_same and within_uar (UAR
    on the same clips), delta_uar_pp (LOCO - within) with its paired interval (delta_uar_lo_pp, delta_uar_hi_pp),
    p (the speaker sign-flip test in UAR), unit.
    """
    manifest = load_manifest(folder)
    present = set(manifest["corpus"])
    rows = []
    seed = cfg.train.seeds[:1]  # LOCO trains one seed (serlib.pipeline.ensure_loco): the within runs of that seed
    for corpus in [c for c in CORPORA if c in present]:
        if not (manifest["corpus"] != corpus).any():
            continue
        for name in loco_systems(cfg):
            preds = system_predictions(cfg, folder, name, [f"loco-{corpus}"], seed)
            within = system_predictions(cfg, folder, name, None, seed)
            within = within[within["corpus"] == corpus]
            rows.append(
                {
                    "held_out": corpus,
                    "trained_on": " + ".join(c for c in CORPORA if c in present and c != corpus),
                    **score_row(name, score(preds, cfg).set_index("metric")),
                    **_same_clips(cfg, within, preds),
                }
            )
    return pd.DataFrame(rows)


def _same_clips(cfg: Config, within: pd.DataFrame, loco: pd.DataFrame) -> dict:
    """LOCO against within-corpus on the clips both scored (empty values when they share none)."""
    if within.empty:
        return {"same_clips": 0, "all_clips": False, "loco_uar_same": np.nan, "within_uar": np.nan, "same_speakers": 0}
    a = cfg.analysis
    table, info = stats.compare_predictions(within, loco, a.bootstrap_resamples, a.bootstrap_seed)
    uar = table.set_index("metric").loc["uar"]
    return {
        "same_clips": info["clips"],
        "all_clips": info["only_b"] == 0,
        "loco_uar_same": uar["b"],
        "within_uar": uar["a"],
        "delta_uar_pp": 100 * uar["delta"],
        "delta_uar_lo_pp": 100 * uar["lo"],
        "delta_uar_hi_pp": 100 * uar["hi"],
        "p_unadjusted": uar["speaker_p"] if uar["n_speakers"] >= stats.MIN_SPEAKERS else np.nan,
        "same_speakers": int(uar["n_speakers"]),
        "same_unit": uar["unit"],
    }


def loco_skip(cfg: Config) -> str:
    """Why the leave-one-corpus-out table cannot be made for this profile ("" when it can)."""
    corpora = configured_corpora(cfg)
    if len(corpora) < 2:
        return (
            f"Table S33: skipped, leave-one-corpus-out trains on some corpora and tests on another; this profile "
            f"reads only {', '.join(corpora)}."
        )
    if not loco_systems(cfg):
        return "Table S33: skipped, analysis.loco_systems is [] in this profile."
    return ""


def loco_note(table: pd.DataFrame) -> str:
    """A short reading of the leave-one-corpus-out table: how far each held-out corpus falls below within-corpus,
    on the same clips."""
    if table.empty:
        return "Leave-one-corpus-out needs at least two corpora and analysis.loco_systems; none ran."
    parts = []
    for corpus, group in table.groupby("held_out", sort=False):
        drops = [
            f"{r.system} {100 * r.loco_uar_same:.1f} % against {100 * r.within_uar:.1f} % within "
            f"({r.same_clips:,} {'clips, all of them' if r.all_clips else 'clips: the main split tested only these'})"
            for r in group.itertuples()
        ]
        parts.append(f"{corpus} held out, UAR on the same clips: " + "; ".join(drops))
    fall = table["within_uar"] - table["loco_uar_same"]
    if fall.isna().all():
        return "; ".join(parts) + "."
    worst = table.loc[fall.idxmax()]
    return (
        "; ".join(parts) + f". The largest fall is {worst['system']} on {worst['held_out']} "
        f"({100 * (worst['within_uar'] - worst['loco_uar_same']):.1f} points on the same clips): what the systems "
        "learn from the other corpora transfers to a held-out one only as far as these rows show; chance is 33.3 %. "
        "The LOCO columns without 'same' score every clip of the held-out corpus; without speaker folds the main "
        "protocol tested only some of them, so those are not comparable with the within-corpus figure."
    )
