"""Confusion analysis of the primary system (paper 5.4).

Reads the predictions through ``serlib.analysis.evaluation`` (its one loader and its pooled confusion
matrix) and computes Table 7 beside the paper's values, per-class recall and the most confused
pairs. The prosody descriptors live in ``serlib.analysis.prosody``; the figures (Fig. 4) in
``serlib.report.confusionplots``. Display is the notebook's job (``notebooks/05_confusion.ipynb``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from serlib.analysis.evaluation import pooled_confusion
from serlib.common.facts import CLASSES


def table7_beside_paper(conf: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Table 7 layout: one row per true class, each predicted class as 'this run' and 'paper'."""
    rows = []
    for true in CLASSES:
        row = {"true \\ predicted": true}
        for pred in CLASSES:
            row[pred] = conf.loc[true, pred]
            row[f"{pred} (paper)"] = paper.loc[true, pred]
        rows.append(row)
    return pd.DataFrame(rows)


def paper_implied_accuracy(paper_conf: pd.DataFrame, class_counts: pd.Series) -> float:
    """Accuracy implied by a row-normalised matrix and the true-class counts (consistency check)."""
    counts = class_counts.reindex(CLASSES).astype(float)
    return float((np.diag(paper_conf.loc[CLASSES, CLASSES].to_numpy()) * counts).sum() / counts.sum())


def runs_per_clip(preds: pd.DataFrame) -> float:
    """How many predictions each clip has in ``preds``: its seeds (1 for one run's predictions; every clip of a
    pooled table is tested once per seed, under folds by the fold that held its speaker out)."""
    if "utt_id" not in preds or preds.empty:
        return 1.0
    return len(preds) / preds["utt_id"].nunique()


def _whole(value: float):
    """A count as an int where it is whole (one run's), else to 2 decimals (a mean over seeds)."""
    return int(value) if value.is_integer() else round(value, 2)


def per_class_recall(preds: pd.DataFrame, paper_conf: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Recall per true class from every prediction in ``preds`` (one run's, or every seed's pooled: the mean of the
    seeds' recalls, Table 7's diagonal), with its test clips counted once, beside the paper's (Table 7 diagonal)."""
    conf = pooled_confusion(preds)
    counts = pooled_confusion(preds, normalize=False).sum(axis=1) / runs_per_clip(preds)
    table = pd.DataFrame({"class": CLASSES, "clips": counts.round().astype(int).to_numpy(), "recall": np.diag(conf)})
    if paper_conf is not None:
        table["recall (paper)"] = np.diag(paper_conf.loc[CLASSES, CLASSES].to_numpy())
    return table


def confused_pairs(preds: pd.DataFrame, paper_conf: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Off-diagonal (true, predicted) pairs, most frequent first, as clips (the mean over seeds where ``preds``
    pools several) and row rates."""
    counts = pooled_confusion(preds, normalize=False) / runs_per_clip(preds)
    rates = pooled_confusion(preds)
    rows = [
        {
            "true": t,
            "predicted": p,
            "clips": _whole(float(counts.loc[t, p])),
            "rate": rates.loc[t, p],
            **({"rate (paper)": paper_conf.loc[t, p]} if paper_conf is not None else {}),
        }
        for t in CLASSES
        for p in CLASSES
        if t != p
    ]
    table = pd.DataFrame(rows).sort_values(["rate", "clips"], ascending=False, na_position="last")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)
