"""Baselines that make a confound visible: a classifier on clip duration alone (issue 11), a small nonlinear
model on length and padding, and a probe of corpus identity (issue 24).

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
    out = _predictions(models[best], x["test"], y["test"], test_ids)
    return out, {"C": best, "val_acc": scores[best], "val_uar": val_uar, "grid": scores}


DURATION_DEPTHS = (1, 2, 3)  # CHOSEN: tree depths of the nonlinear duration baseline, chosen on validation


def length_features(durations: pd.Series, window_s: float) -> np.ndarray:
    """``(clips, 3)``: log seconds, the share of the fixed window the clip fills, and the padding fraction (the
    share of the window that is zero padding: what a network averaging over the window reads)."""
    seconds = durations.to_numpy(dtype=float)
    filled = np.minimum(seconds / window_s, 1.0)
    return np.stack([np.log(seconds), filled, 1.0 - filled], axis=1)


def duration_nonlinear_baseline(
    manifest: pd.DataFrame, window_s: float, splits: pd.Series | None = None, depths: tuple[int, ...] = DURATION_DEPTHS
) -> tuple[pd.DataFrame, dict]:
    """A small gradient-boosted tree model (100 trees) on the clip's length and padding fraction
    (``length_features``): any nonlinear use of length a network could make; trained on train, depth chosen on val.

    Returns:
        (test predictions shaped like a system's, {"depth": the chosen depth, "val_acc", "grid": {depth: val_acc}}).
    """
    from sklearn.ensemble import GradientBoostingClassifier  # heavy import, used by this baseline only

    table = manifest if splits is None else manifest.assign(split=splits.to_numpy())
    parts = {s: table[table["split"] == s] for s in ("train", "val", "test")}
    for name, part in parts.items():
        if part.empty:
            raise ValueError(f"nonlinear duration baseline: no '{name}' clips in the manifest")
    encode = {c: i for i, c in enumerate(CLASSES)}
    x = {s: length_features(p["duration_s"], window_s) for s, p in parts.items()}
    y = {s: p["label"].map(encode).to_numpy(int) for s, p in parts.items()}
    scores, models = {}, {}
    for depth in sorted(depths):
        model = GradientBoostingClassifier(n_estimators=100, max_depth=depth, learning_rate=0.1, random_state=0)
        models[depth] = model.fit(x["train"], y["train"])
        scores[depth] = float((model.predict(x["val"]) == y["val"]).mean())
    best = max(sorted(depths), key=lambda d: (scores[d], -d))  # ties: the shallower
    return _predictions(models[best], x["test"], y["test"], parts["test"]["utt_id"]), {
        "depth": best,
        "val_acc": scores[best],
        "grid": scores,
    }


def _predictions(model, x_test: np.ndarray, y_test: np.ndarray, test_ids) -> pd.DataFrame:
    """Test predictions shaped like a system's from a fitted scikit-learn classifier of class indices."""
    probs = np.zeros((len(y_test), len(CLASSES)))
    probs[:, model.classes_] = model.predict_proba(x_test)
    pred = probs.argmax(1)
    out = pd.DataFrame(
        {"utt_id": np.asarray(test_ids), "label": [CLASSES[i] for i in y_test], "pred": [CLASSES[i] for i in pred]}
    )
    for i, name in enumerate(CLASSES):
        out[f"prob_{name}"] = probs[:, i]
    out["correct"] = pred == y_test
    return out


def corpus_probe(x: dict, corpora: dict, test_ids, grid: tuple[float, ...] = LINEAR_C) -> tuple[pd.DataFrame, dict]:
    """How easily the features tell the corpus: a standardised logistic regression predicting each clip's corpus,
    trained on train, C chosen on val (balanced accuracy), scored on test.

    Args:
        x: split -> ``(clips, features)``; ``corpora``: split -> ``(clips,)`` corpus names; ``test_ids``: utt_ids.

    Returns:
        (utt_id, corpus, pred_corpus per test clip; {"C", "val_balanced_acc"}).
    """
    mean, std = x["train"].mean(axis=0), x["train"].std(axis=0)
    x = {s: (v - mean) / np.where(std > 0, std, 1.0) for s, v in x.items()}

    def balanced(truth, pred) -> float:
        return float(np.mean([(pred[truth == c] == c).mean() for c in np.unique(truth)]))

    scores, models = {}, {}
    for c in sorted(grid):
        models[c] = LogisticRegression(C=c, max_iter=2000).fit(x["train"], corpora["train"])
        scores[c] = balanced(np.asarray(corpora["val"]), models[c].predict(x["val"]))
    best = max(sorted(grid), key=lambda c: (scores[c], -c))
    out = pd.DataFrame(
        {"utt_id": np.asarray(test_ids), "corpus": corpora["test"], "pred_corpus": models[best].predict(x["test"])}
    )
    return out, {"C": best, "val_balanced_acc": scores[best]}
