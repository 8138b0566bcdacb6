"""Leave-one-corpus-out (issue 24): each corpus in turn held out whole, the systems trained on the others, and
the held-out corpus's clips scored beside the same clips' within-corpus score."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serlib.analysis.evaluation import score, score_row
from serlib.analysis.predictions import system_predictions
from serlib.common.config import Config, configured_corpora, loco_systems
from serlib.common.facts import CORPORA
from serlib.common.runfolder import RunFolder
from serlib.data.stage import load_manifest


def loco_table(cfg: Config, folder: RunFolder) -> pd.DataFrame:
    """Leave-one-corpus-out: per held-out corpus and system, accuracy, UAR and macro-F1 with intervals,
    beside the same system's score on that corpus's clips within the paper's protocol."""
    manifest = load_manifest(folder)
    rows = []
    seed = cfg.train.seeds[:1]
    for corpus in [c for c in CORPORA if c in set(manifest["corpus"])]:
        protocol = f"loco-{corpus}"
        if not (manifest["corpus"] != corpus).any():
            continue
        for name in loco_systems(cfg):
            preds = system_predictions(cfg, folder, name, [protocol], seed)
            row = score_row(name, score(preds, cfg).set_index("metric"))
            within = system_predictions(cfg, folder, name, None, seed)
            within = within[within["corpus"] == corpus]
            row_within = score_row(name, score(within, cfg).set_index("metric")) if len(within) else {}
            rows.append(
                {
                    "held_out": corpus,
                    "trained_on": " + ".join(c for c in CORPORA if c in set(manifest["corpus"]) and c != corpus),
                    **row,
                    "within_uar": row_within.get("uar", np.nan),
                    "within_n_clips": row_within.get("n_clips", 0),
                }
            )
    return pd.DataFrame(rows)


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
    """A short reading of the leave-one-corpus-out table: how far each held-out corpus falls below within-corpus."""
    if table.empty:
        return "Leave-one-corpus-out needs at least two corpora and analysis.loco_systems; none ran."
    parts = []
    for corpus, group in table.groupby("held_out", sort=False):
        drops = [f"{r.system} {100 * r.uar:.1f} % (within {100 * r.within_uar:.1f} %)" for r in group.itertuples()]
        parts.append(f"{corpus} held out: UAR " + ", ".join(drops))
    worst = table.loc[(table["within_uar"] - table["uar"]).idxmax()]
    return (
        "; ".join(parts) + f". The largest fall is {worst['system']} on {worst['held_out']} "
        f"({100 * (worst['within_uar'] - worst['uar']):.1f} points): what the systems learn from two corpora "
        "transfers to a third only as far as these rows show; chance is 33.3 %."
    )
