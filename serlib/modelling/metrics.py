"""Classification metrics (paper 4.2): accuracy, macro P/R/F1, row-normalised confusion.

The one definition of every score the report shows (``metrics_from_counts``; ``serlib.analysis.stats`` and every
table score with it): UAR (unweighted average recall) is the mean of the per-class recalls over the classes that
occur among the true labels of the clips scored; a class with no clip there has no recall and is left out (it does
not count as a recall of 0). Macro-F1 is averaged over the same classes. On the whole test set every class occurs
and this is scikit-learn's macro recall; it matters for a subset (one speaker, one corpus, a resample).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from serlib.common.facts import CLASSES

METRICS = ("accuracy", "uar", "macro_f1")  # UAR: unweighted average recall (the mean of the per-class recalls)


def metrics_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, UAR and macro-F1 of confusion counts ``(..., true, predicted)``.

    Recall and F1 are averaged over the classes present among the true labels (a class a resample
    happens to lack does not count as a recall of 0).
    """
    counts = np.asarray(counts, dtype=float)
    tp = np.diagonal(counts, axis1=-2, axis2=-1)  # (..., classes)
    true = counts.sum(axis=-1)
    pred = counts.sum(axis=-2)
    total = true.sum(axis=-1)
    present = true > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = tp.sum(axis=-1) / total
        recall = np.where(present, tp / np.where(present, true, 1), np.nan)
        f1 = np.where(present, 2 * tp / np.maximum(true + pred, 1), np.nan)
        uar = np.nanmean(recall, axis=-1)
        macro_f1 = np.nanmean(f1, axis=-1)
    return {"accuracy": accuracy, "uar": uar, "macro_f1": macro_f1}


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int = len(CLASSES)) -> dict:
    """Accuracy, macro precision/recall/F1 and the row-normalised confusion matrix.

    Args:
        y_true: true label indices (0..n_classes-1, ``serlib.CLASSES`` order).
        y_pred: predicted label indices, same length.
        n_classes: number of classes (3).

    Returns:
        dict with accuracy, macro_precision, macro_recall (= uar, unweighted average recall), macro_f1 (floats,
        averaged over the classes present in ``y_true``, as ``metrics_from_counts``), confusion (rows =
        true class, normalised to sum 1; a class absent from ``y_true`` gives a zero row),
        per_class_recall (dict class -> recall) and n (utterances).
    """
    # sklearn is imported here, not at module top: it costs ~2 s in notebooks that only import this module
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D and the same length, got {y_true.shape} and {y_pred.shape}")
    if len(y_true) == 0:
        raise ValueError("no utterances to score (empty split?)")
    labels = list(range(n_classes))
    present = sorted(set(y_true.tolist()))  # precision, like recall and F1, over the classes that occur
    precision, _, _, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=present, average="macro", zero_division=0
    )
    counts = confusion_matrix(y_true, y_pred, labels=labels).astype(float)
    scores = metrics_from_counts(counts)
    rows = counts.sum(axis=1, keepdims=True)
    confusion = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    names = CLASSES if n_classes == len(CLASSES) else tuple(str(i) for i in labels)
    return {
        "accuracy": float(scores["accuracy"]),
        "macro_precision": float(precision),
        "macro_recall": float(scores["uar"]),
        "uar": float(scores["uar"]),  # unweighted average recall: the field's name for macro recall
        "macro_f1": float(scores["macro_f1"]),
        "confusion": confusion.round(6).tolist(),
        "per_class_recall": {name: float(confusion[i, i]) for i, name in enumerate(names)},
        "n": int(len(y_true)),
    }
