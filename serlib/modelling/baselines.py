"""Baselines that make a confound visible: a classifier on clip duration alone (issue 11).

Every clip is centre-trimmed or zero-padded to a fixed window, and the paper's networks average
over the whole window, padding included, so a model can read a clip's length from its features.
If length alone predicts the class, part of any system's accuracy may be length, not emotion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from serlib.common.facts import CLASSES
from serlib.modelling.metrics import classification_metrics

DURATION_C = (0.01, 0.1, 1.0, 10.0, 100.0)  # CHOSEN: inverse-regularisation grid, chosen on validation


def _duration_features(durations: pd.Series) -> np.ndarray:
    return np.log(durations.to_numpy(dtype=float))[:, None]  # (clips, 1): log seconds


def duration_baseline(
    manifest: pd.DataFrame, splits: pd.Series | None = None, grid: tuple[float, ...] = DURATION_C
) -> tuple[pd.DataFrame, dict]:
    """A multinomial logistic regression on log clip duration: trained on train, C chosen on val, scored on test.

    Args:
        manifest: one row per clip with utt_id, label (class name), duration_s and split.
        splits: a subset per manifest row replacing ``split`` (another protocol), or None.
        grid: the C values tried (the best validation accuracy wins; ties: the smaller C).

    Returns:
        (test predictions shaped like a system's: utt_id, label, pred, prob_<class>..., correct;
        {"C": the chosen C, "val_acc": its validation accuracy, "grid": {C: val_acc}}).
    """
    table = manifest if splits is None else manifest.assign(split=splits.to_numpy())
    parts = {s: table[table["split"] == s] for s in ("train", "val", "test")}
    for name, part in parts.items():
        if part.empty:
            raise ValueError(f"duration baseline: no '{name}' clips in the manifest")
    encode = {c: i for i, c in enumerate(CLASSES)}
    x = {s: _duration_features(p["duration_s"]) for s, p in parts.items()}
    y = {s: p["label"].map(encode).to_numpy(int) for s, p in parts.items()}
    return linear_baseline(x, y, parts["test"]["utt_id"].to_numpy(), grid, standardise=False)


def train_standardised(x: dict) -> dict:
    """Every split centred and scaled with the training split's mean and std (per feature; a constant feature
    keeps its scale): validation and test never inform the scaling.

    Args:
        x: split -> ``(clips, ...)`` array; statistics over the first axis of ``x["train"]``.
    """
    mean, std = x["train"].mean(axis=0), x["train"].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return {s: (v - mean) / std for s, v in x.items()}


LINEAR_C = (0.001, 0.01, 0.1, 1.0, 10.0)  # CHOSEN: the grid of the feature baselines, chosen on validation


def linear_baseline(
    x: dict, y: dict, test_ids, grid: tuple[float, ...] = LINEAR_C, standardise: bool = True
) -> tuple[pd.DataFrame, dict]:
    """A multinomial logistic regression: trained on train, C chosen on val, scored on test (never tuned there).

    Args:
        x: split -> ``(clips, features)`` array; ``y``: split -> ``(clips,)`` class indices.
        test_ids: the test clips' utt_ids, in ``x["test"]``'s order.
        grid: the C values tried (the best validation accuracy wins; ties: the smaller C).
        standardise: centre and scale each feature with the training split's mean and std.

    Returns:
        (test predictions shaped like a system's: utt_id, label, pred, prob_<class>..., correct;
        {"C": the chosen C, "val_acc" and "val_uar": its validation accuracy and UAR, "grid": {C: val_acc}}).
    """
    if standardise:
        x = train_standardised(x)
    scores, models = {}, {}
    for c in sorted(grid):
        model = LogisticRegression(C=c, max_iter=2000).fit(x["train"], y["train"])
        scores[c], models[c] = float((model.predict(x["val"]) == y["val"]).mean()), model
    best = max(sorted(grid), key=lambda c: (scores[c], -c))
    val_uar = classification_metrics(y["val"], models[best].predict(x["val"]))["uar"]
    probs = np.zeros((len(y["test"]), len(CLASSES)))
    probs[:, models[best].classes_] = models[best].predict_proba(x["test"])
    pred = probs.argmax(1)
    out = pd.DataFrame(
        {"utt_id": np.asarray(test_ids), "label": [CLASSES[i] for i in y["test"]], "pred": [CLASSES[i] for i in pred]}
    )
    for i, name in enumerate(CLASSES):
        out[f"prob_{name}"] = probs[:, i]
    out["correct"] = pred == y["test"]
    return out, {"C": best, "val_acc": scores[best], "val_uar": val_uar, "grid": scores}
