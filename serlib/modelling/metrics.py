"""Classification metrics (paper 4.2) with scikit-learn: accuracy, macro P/R/F1, row-normalised confusion."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from serlib.common.facts import CLASSES


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int = len(CLASSES)) -> dict:
    """Accuracy, macro precision/recall/F1 and the row-normalised confusion matrix.

    Args:
        y_true: true label indices (0..n_classes-1, ``serlib.CLASSES`` order).
        y_pred: predicted label indices, same length.
        n_classes: number of classes (3).

    Returns:
        dict with accuracy, macro_precision, macro_recall (= uar, unweighted average recall), macro_f1 (floats),
        confusion (rows =
        true class, normalised to sum 1; a class absent from ``y_true`` gives a zero row),
        per_class_recall (dict class -> recall) and n (utterances).
    """
    # sklearn is imported here, not at module top: it costs ~2 s in notebooks that only import this module
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D and the same length, got {y_true.shape} and {y_pred.shape}")
    if len(y_true) == 0:
        raise ValueError("no utterances to score (empty split?)")
    labels = list(range(n_classes))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    counts = confusion_matrix(y_true, y_pred, labels=labels).astype(float)
    rows = counts.sum(axis=1, keepdims=True)
    confusion = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    names = CLASSES if n_classes == len(CLASSES) else tuple(str(i) for i in labels)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "uar": float(recall),  # unweighted average recall: the field's name for macro recall
        "macro_f1": float(f1),
        "confusion": confusion.round(6).tolist(),
        "per_class_recall": {name: float(confusion[i, i]) for i, name in enumerate(names)},
        "n": int(len(y_true)),
    }
