"""Confusion analysis of the primary system (paper 5.4).

Reads what training wrote (``<run>/models/<system>/seed<k>/predictions_test.csv``) and the
manifest, and computes Table 7 / Fig. 4 beside the paper's values, per-class recall, accuracy
per corpus and per sex, and the most confused pairs. The prosody descriptors live in
``serlib.analysis.prosody``. Display is the notebook's job
(``notebooks/05_confusion.ipynb``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from serlib.common.config import Config, primary_system
from serlib.common.facts import CLASSES
from serlib.common.runfolder import RunFolder
from serlib.data.stage import load_manifest
from serlib.data.protocols import evaluation_protocols

PREDICTION_COLUMNS = ("utt_id", "label", "pred", "prob_negative", "prob_sad_fear", "prob_pos_neutral", "correct")
PROB_COLUMNS = tuple(f"prob_{c}" for c in CLASSES)


# --------------------------------------------------------------------------- predictions


def load_predictions(cfg: Config, folder: RunFolder, split: str = "test", system: Optional[str] = None,
                     seed: Optional[int] = None) -> pd.DataFrame:
    """One system's predictions joined with the manifest (path, corpus, speaker, sex, ...).

    Args:
        cfg: run configuration (``analysis`` names the primary system and seed).
        folder: the run folder.
        split: ``test`` or ``val``.
        system: system name; None = ``analysis.primary_system``.
        seed: training seed; None = ``analysis.primary_seed`` or the first of ``train.seeds``.

    Returns:
        One row per clip: the prediction columns with ``label``/``pred`` as class names and
        ``correct`` as bool, plus the manifest columns. ``attrs`` holds system, seed and source.

    Raises:
        FileNotFoundError: no predictions for that system and seed (train it first).
        ValueError: a column is missing or a label is not a known class.
    """
    default_system, default_seed = primary_system(cfg)
    system = system or default_system
    seed = default_seed if seed is None else seed
    parts = []
    for protocol in evaluation_protocols(cfg):  # the paper's split, or every speaker fold (each clip once)
        path = folder.predictions(system, seed, split, protocol)
        if not path.is_file():
            raise FileNotFoundError(f"predictions not found: {path}; train {system} first "
                                    f"(serlib train {cfg.source} --system {system}) or set analysis.primary_system")
        part = pd.read_csv(path)
        _require_columns(part, PREDICTION_COLUMNS, path)
        parts.append(part.assign(protocol=protocol))
    preds = pd.concat(parts, ignore_index=True)
    preds["label"] = as_class_names(preds["label"], path, "label")
    preds["pred"] = as_class_names(preds["pred"], path, "pred")
    preds["correct"] = preds["label"] == preds["pred"]
    manifest = load_manifest(folder).drop(columns=["label"])
    merged = preds.merge(manifest, on="utt_id", how="left", validate="one_to_one")
    unknown = merged["path"].isna().sum()
    if unknown:
        raise ValueError(f"{path}: {unknown} utt_id(s) are not in {folder.manifest} "
                         f"(first: {merged.loc[merged['path'].isna(), 'utt_id'].iloc[0]}); re-run training")
    merged.attrs.update(system=system, seed=seed, split=split, source=str(path))
    return merged


def as_class_names(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Class names from names or label indices (0, 1, 2 in ``serlib.CLASSES`` order)."""
    if pd.api.types.is_numeric_dtype(values):
        bad = ~values.isin(range(len(CLASSES)))
        names = values.map(lambda v: CLASSES[int(v)] if v in range(len(CLASSES)) else None)
    else:
        names = values.astype(str)
        bad = ~names.isin(CLASSES)
    if bad.any():
        raise ValueError(f"{path}: column '{column}' holds {values[bad].iloc[0]!r}, not one of {CLASSES} or 0-2")
    return names


def _require_columns(df: pd.DataFrame, columns: tuple, path: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)}")


# --------------------------------------------------------------------------- confusion tables


def confusion_table(preds: pd.DataFrame, normalize: bool = True) -> pd.DataFrame:
    """Confusion matrix, rows = true class, columns = predicted class (``CLASSES`` order).

    Args:
        preds: predictions with ``label`` and ``pred`` class names.
        normalize: divide each row by its true-class count (a class absent from test gives NaN).
    """
    counts = pd.crosstab(preds["label"], preds["pred"]).reindex(index=CLASSES, columns=CLASSES, fill_value=0)
    counts.index.name, counts.columns.name = "true", "predicted"
    if not normalize:
        return counts
    totals = counts.sum(axis=1).replace(0, np.nan)
    return counts.div(totals, axis=0)


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


def per_class_recall(preds: pd.DataFrame, paper_conf: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Recall per true class with its clip count, beside the paper's (Table 7 diagonal)."""
    conf = confusion_table(preds)
    counts = confusion_table(preds, normalize=False).sum(axis=1)
    table = pd.DataFrame({"class": CLASSES, "clips": counts.to_numpy(),
                          "recall": np.diag(conf.to_numpy())})
    if paper_conf is not None:
        table["recall (paper)"] = np.diag(paper_conf.loc[CLASSES, CLASSES].to_numpy())
    return table


def accuracy_by(preds: pd.DataFrame, column: str) -> pd.DataFrame:
    """Accuracy and macro recall per value of ``column`` (e.g. ``corpus``, ``sex``), plus 'all'."""
    rows = [_group_scores(column, value, group) for value, group in preds.groupby(column, sort=True)]
    rows.append(_group_scores(column, "all", preds))
    return pd.DataFrame(rows)


def _group_scores(column: str, value: str, group: pd.DataFrame) -> dict:
    recalls = group.groupby("label")["correct"].mean()
    return {column: value, "clips": len(group), "correct": int(group["correct"].sum()),
            "accuracy": float(group["correct"].mean()), "macro_recall": float(recalls.mean()),
            "classes_present": int(recalls.size)}


def confused_pairs(preds: pd.DataFrame, paper_conf: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Off-diagonal (true, predicted) pairs, most frequent first, as counts and row rates."""
    counts = confusion_table(preds, normalize=False)
    rates = confusion_table(preds)
    rows = [{"true": t, "predicted": p, "clips": int(counts.loc[t, p]), "rate": rates.loc[t, p],
             **({"rate (paper)": paper_conf.loc[t, p]} if paper_conf is not None else {})}
            for t in CLASSES for p in CLASSES if t != p]
    table = pd.DataFrame(rows).sort_values(["rate", "clips"], ascending=False, na_position="last")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def plot_confusion(conf: pd.DataFrame, ax=None, title: str = "", cmap: str = "Blues",
                   vmin: float = 0.0, vmax: float = 1.0, center: Optional[float] = None) -> plt.Figure:
    """One row-normalised confusion matrix as an annotated seaborn heatmap."""

    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.6))
    sns.heatmap(conf.astype(float), annot=True, fmt=".3f", cmap=cmap, vmin=vmin, vmax=vmax, center=center,
                square=True, cbar=True, ax=ax, linewidths=0.5, linecolor="white")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return ax.figure


def plot_confusion_beside_paper(conf: pd.DataFrame, paper_conf: pd.DataFrame, run_title: str) -> plt.Figure:
    """Fig. 4: this run's matrix, the paper's, and their difference, side by side."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    plot_confusion(conf, ax=axes[0], title=run_title)
    plot_confusion(paper_conf.loc[CLASSES, CLASSES], ax=axes[1], title="paper (Table 7)")
    plot_confusion(conf - paper_conf.loc[CLASSES, CLASSES], ax=axes[2], title="this run - paper",
                   cmap="RdBu_r", vmin=-0.5, vmax=0.5, center=0.0)
    fig.tight_layout()
    return fig
