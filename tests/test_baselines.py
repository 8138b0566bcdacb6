"""The duration-only baseline learns length where length carries the label, and nothing where it does not."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, recall_score

from serlib.common.facts import CLASSES
from serlib.modelling.baselines import (
    DURATION_C,
    LINEAR_C,
    corpus_probe,
    duration_baseline,
    duration_nonlinear_baseline,
    length_features,
    linear_baseline,
    train_standardised,
)


def _manifest(confounded: bool, n=600, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, n)
    duration = np.exp(rng.normal(0.9 + (0.35 * label if confounded else 0), 0.12, n))  # seconds
    split = np.array(["train", "val", "test"])[rng.choice(3, n, p=[0.6, 0.2, 0.2])]
    return pd.DataFrame(
        {
            "utt_id": [f"u{i}" for i in range(n)],
            "label": np.array(CLASSES)[label],
            "duration_s": duration,
            "split": split,
        }
    )


def test_learns_a_length_confounded_task():
    preds, info = duration_baseline(_manifest(True))
    assert preds["correct"].mean() > 0.8 and info["C"] in info["grid"]
    assert np.allclose(preds.filter(like="prob_").sum(1), 1)


def test_stays_near_chance_when_length_says_nothing():
    preds, _ = duration_baseline(_manifest(False))
    assert preds["correct"].mean() < 0.45


def test_length_features_and_the_nonlinear_duration_baseline_read_the_padding():
    import numpy as np
    import pandas as pd

    from serlib.common.facts import CLASSES
    from serlib.modelling.baselines import duration_nonlinear_baseline, length_features

    features = length_features(pd.Series([2.0, 8.0, 10.0]), window_s=8.0)
    np.testing.assert_allclose(features[:, 0], np.log([2.0, 8.0, 10.0]))
    np.testing.assert_allclose(features[:, 2], [0.75, 0.0, 0.0])  # padding fraction: a longer clip is trimmed
    np.testing.assert_allclose(features[:, 1] + features[:, 2], 1.0)
    # a class that is neither the shortest nor the longest: no monotone rule on length finds it, trees do
    rng = np.random.default_rng(0)
    n = 600
    label = rng.integers(0, 3, n)
    seconds = np.choose(label, [rng.uniform(1, 2, n), rng.uniform(2, 3, n), rng.uniform(3, 4, n)])
    seconds = np.where(label == 1, rng.uniform(5, 6, n), seconds)  # the middle class is the longest
    manifest = pd.DataFrame(
        {
            "utt_id": [f"u{i}" for i in range(n)],
            "label": np.array(CLASSES)[label],
            "duration_s": seconds,
            "split": np.array(["train", "val", "test"])[np.arange(n) % 3],
        }
    )
    preds, info = duration_nonlinear_baseline(manifest, window_s=8.0)
    assert preds["correct"].mean() > 0.95 and info["depth"] in (1, 2, 3) and len(preds) == n // 3


def test_standardisation_uses_the_training_rows_only():
    # training columns: mean 2, std 0.5; mean 10, std 2; constant 5 (std 0: kept at scale 1)
    train = np.array([[1.5, 8.0, 5.0], [2.5, 12.0, 5.0]])
    x = {"train": train, "val": np.array([[100.0, 0.0, 7.0]]), "test": np.array([[-50.0, 20.0, 4.0]])}
    out = train_standardised(x)
    assert out["train"].tolist() == [[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0]]
    # validation and test are scaled with the training statistics; their own values do not move them
    assert out["val"].tolist() == [[196.0, -5.0, 2.0]] and out["test"].tolist() == [[-104.0, 5.0, -1.0]]


def _by_hand(manifest, grid=DURATION_C):
    """The duration baseline computed independently: sklearn on log seconds, C by validation accuracy."""
    encode = {c: i for i, c in enumerate(CLASSES)}
    part = {s: manifest[manifest["split"] == s] for s in ("train", "val", "test")}
    x = {s: np.log(p[["duration_s"]].to_numpy()) for s, p in part.items()}
    y = {s: p["label"].map(encode).to_numpy() for s, p in part.items()}
    fits = {c: LogisticRegression(C=c, max_iter=2000).fit(x["train"], y["train"]) for c in grid}
    val = {c: (m.predict(x["val"]) == y["val"]).mean() for c, m in fits.items()}
    best = max(sorted(grid), key=lambda c: (val[c], -c))
    return part["test"]["utt_id"].tolist(), fits[best].predict_proba(x["test"]), best


def test_matches_a_logistic_regression_on_unscaled_log_durations_fitted_by_hand():
    manifest = _manifest(True, n=300, seed=3)
    preds, info = duration_baseline(manifest)
    ids, probs, best = _by_hand(manifest)
    assert preds["utt_id"].tolist() == ids and info["C"] == best and sorted(info["grid"]) == sorted(DURATION_C)
    assert np.allclose(preds[[f"prob_{c}" for c in CLASSES]].to_numpy(), probs, atol=1e-6)
    assert preds["label"].tolist() == manifest.loc[manifest["split"] == "test", "label"].tolist()


def test_another_protocols_subsets_replace_the_split():
    manifest = _manifest(True, n=300, seed=4)
    rng = np.random.default_rng(0)
    splits = pd.Series(np.array(["train", "val", "test"])[rng.choice(3, len(manifest), p=[0.5, 0.25, 0.25])])
    preds, info = duration_baseline(manifest, splits)
    ids, probs, best = _by_hand(manifest.assign(split=splits.to_numpy()))
    assert preds["utt_id"].tolist() == ids and info["C"] == best
    assert np.allclose(preds[[f"prob_{c}" for c in CLASSES]].to_numpy(), probs, atol=1e-6)


def test_a_missing_subset_is_named():
    manifest = _manifest(True, n=60)
    with pytest.raises(ValueError) as err:
        duration_baseline(manifest[manifest["split"] != "val"])
    assert str(err.value) == "duration baseline: no 'val' clips in the manifest"


def _features(seed=0, n=240, classes=(0, 1, 2)):
    rng = np.random.default_rng(seed)
    y = {s: rng.choice(classes, n) for s in ("train", "val", "test")}
    x = {s: rng.normal(0, 1, (n, 4)) * [1, 10, 0.1, 3] + 5 + 0.8 * v[:, None] for s, v in y.items()}
    return x, y


def test_linear_baseline_standardises_on_train_and_chooses_c_on_validation_only():
    x, y = _features()
    preds, info = linear_baseline(x, y, [f"t{i}" for i in range(240)], grid=(10.0, 0.001, 0.1))
    scaled = train_standardised(x)
    fits = {c: LogisticRegression(C=c, max_iter=2000).fit(scaled["train"], y["train"]) for c in (0.001, 0.1, 10.0)}
    val = {c: float((m.predict(scaled["val"]) == y["val"]).mean()) for c, m in fits.items()}
    best = max(sorted(val), key=lambda c: (val[c], -c))
    assert info["C"] == best and info["grid"] == val and info["val_acc"] == val[best]
    assert info["val_uar"] == pytest.approx(recall_score(y["val"], fits[best].predict(scaled["val"]), average="macro"))
    assert np.allclose(preds[[f"prob_{c}" for c in CLASSES]].to_numpy(), fits[best].predict_proba(scaled["test"]))
    assert preds["utt_id"].tolist() == [f"t{i}" for i in range(240)]
    assert (preds["correct"] == (preds["pred"] == preds["label"])).all()
    assert preds["label"].tolist() == [CLASSES[i] for i in y["test"]]


def test_validation_ties_go_to_the_smaller_c():
    x, y = _features(seed=1)
    x = {s: v[:, :1] * 0 + 1.0 for s, v in x.items()}  # nothing to learn: every C predicts the same on validation
    _, info = linear_baseline(x, y, list(range(240)), grid=(1.0, 0.01, 100.0))
    assert len(set(info["grid"].values())) == 1 and info["C"] == 0.01


def test_a_class_absent_from_training_gets_probability_zero():
    x, y = _features(seed=2, classes=(0, 2))
    preds, _ = linear_baseline(x, y, list(range(240)))
    assert (preds["prob_sad_fear"] == 0).all() and np.allclose(preds.filter(like="prob_").sum(1), 1)
    assert set(preds["pred"]) <= {"negative", "pos_neutral"}


def test_linear_baseline_unstandardised_converges_on_features_of_very_different_scales():
    # raw features spanning four orders of magnitude: lbfgs needs more than its default 100 iterations here
    rng = np.random.default_rng(5)
    y = {s: rng.choice(3, 240) for s in ("train", "val", "test")}
    x = {s: rng.normal(0, 1, (240, 4)) * [1, 100, 0.01, 30] + 5 + 0.8 * v[:, None] for s, v in y.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        preds, info = linear_baseline(x, y, list(range(240)), grid=(1.0,), standardise=False)
    by_hand = LogisticRegression(C=1.0, max_iter=2000).fit(x["train"], y["train"])
    assert np.allclose(preds[[f"prob_{c}" for c in CLASSES]].to_numpy(), by_hand.predict_proba(x["test"]))


def _corpus_features(seed=0):
    """Three corpora told apart by a feature with a large mean and a tiny spread, beside a large-scale noise feature
    and one constant in training: only per-feature standardisation on the training rows makes the first usable."""
    rng = np.random.default_rng(seed)
    names = np.array(["crema", "iemocap", "ravdess"])
    x, corpora = {}, {}
    for split, n, share in (("train", 90, [0.6, 0.25, 0.15]), ("val", 45, [0.5, 0.3, 0.2]), ("test", 30, [1 / 3] * 3)):
        k = rng.choice(3, n, p=share)
        constant = np.full(n, 5.0) if split == "train" else rng.normal(5, 1, n)
        x[split] = np.stack([100 + 0.001 * (k + rng.normal(0, 0.2, n)), 1000 * rng.normal(0, 1, n), constant], 1)
        corpora[split] = names[k]
    return x, corpora


def test_corpus_probe_standardises_on_train_and_chooses_c_by_balanced_validation_accuracy():
    x, corpora = _corpus_features()
    ids = [f"t{i}" for i in range(30)]
    preds, info = corpus_probe(x, corpora, ids, grid=(10.0, 0.001, 1.0, 0.01, 0.1))
    scaled = train_standardised(x)
    fits = {c: LogisticRegression(C=c, max_iter=2000).fit(scaled["train"], corpora["train"]) for c in LINEAR_C}
    val = {c: balanced_accuracy_score(corpora["val"], m.predict(scaled["val"])) for c, m in fits.items()}
    best = max(sorted(val), key=lambda c: (val[c], -c))  # ties: the smaller C
    # the strongest regularisation predicts the majority corpus; several larger C tie, the smallest of them wins
    assert val[0.001] < val[best] and best > 0.001 and list(val.values()).count(val[best]) > 1
    assert set(info) == {"C", "val_balanced_acc"} and info["C"] == best
    assert info["val_balanced_acc"] == pytest.approx(val[best])
    assert list(preds.columns) == ["utt_id", "corpus", "pred_corpus"] and preds["utt_id"].tolist() == ids
    assert preds["corpus"].tolist() == corpora["test"].tolist()
    assert preds["pred_corpus"].tolist() == fits[best].predict(scaled["test"]).tolist()


def test_corpus_probe_balanced_accuracy_weights_each_corpus_equally():
    x, corpora = _corpus_features(seed=1)
    x = {s: v[:, 1:2] for s, v in x.items()}  # the noise feature only: every C predicts the majority corpus
    _, info = corpus_probe(x, corpora, list(range(30)), grid=(0.001,))
    # validation is half crema: plain accuracy would be about 0.5, the mean of per-corpus recalls is 1/3
    assert info == {"C": 0.001, "val_balanced_acc": pytest.approx(1 / 3)}


def test_corpus_probe_fits_converge_on_wide_correlated_features():
    # wav2vec2-like: many correlated dimensions; lbfgs needs more than its default 100 iterations at C = 10
    rng = np.random.default_rng(0)
    basis = rng.normal(0, 1, (20, 768)) * rng.uniform(0.1, 10, 768)
    x = {
        s: rng.normal(0, 1, (n, 20)) @ basis + 0.1 * rng.normal(0, 1, (n, 768))
        for s, n in (("train", 300), ("val", 60), ("test", 30))
    }
    corpora = {s: np.array(["crema", "iemocap", "ravdess"])[rng.choice(3, len(v))] for s, v in x.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        preds, info = corpus_probe(x, corpora, list(range(30)), grid=(10.0,))
    scaled = train_standardised(x)
    by_hand = LogisticRegression(C=10.0, max_iter=2000).fit(scaled["train"], corpora["train"])
    assert preds["pred_corpus"].tolist() == by_hand.predict(scaled["test"]).tolist()


def _nonlinear_manifest(n=120, seed=0):
    """Clips all shorter than the 8 s window, so log seconds, fill and padding split them alike: ties between
    features that the trees' seeded feature order breaks. The first two thirds (train and val in the tests) sit in
    four length clusters, the last third (test) spreads evenly, some of it between the thresholds the tied features
    would put between two clusters (a geometric mean for log seconds, an arithmetic one for the fill)."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 4, n)
    label = np.where(rng.random(n) < 0.7, cluster % 3, rng.integers(0, 3, n))
    seconds = np.array([1.0, 2.0, 4.0, 6.0])[cluster] + rng.uniform(0, 0.05, n)
    seconds[2 * n // 3 :] = rng.uniform(1, 6.5, n - 2 * n // 3)
    return pd.DataFrame(
        {
            "utt_id": [f"u{i}" for i in range(n)],
            "label": np.array(CLASSES)[label],
            "duration_s": seconds,
            "split": "test",
        }
    )


def test_nonlinear_baseline_matches_seeded_trees_fitted_by_hand_on_the_given_splits():
    manifest = _nonlinear_manifest()
    splits = pd.Series(np.repeat(["train", "val", "test"], len(manifest) // 3))  # 'split' says all test
    preds, info = duration_nonlinear_baseline(manifest, window_s=8.0, splits=splits, depths=(2, 1))
    part = {s: manifest[splits.to_numpy() == s] for s in ("train", "val", "test")}
    x = {s: length_features(p["duration_s"], 8.0) for s, p in part.items()}
    y = {s: p["label"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy() for s, p in part.items()}
    fits = {
        d: GradientBoostingClassifier(n_estimators=100, max_depth=d, learning_rate=0.1, random_state=0).fit(
            x["train"], y["train"]
        )
        for d in (1, 2)
    }
    val = {d: float((m.predict(x["val"]) == y["val"]).mean()) for d, m in fits.items()}
    best = max(sorted(val), key=lambda d: (val[d], -d))
    assert set(info) == {"depth", "val_acc", "grid"} and info["grid"] == val
    assert info["depth"] == best and info["val_acc"] == val[best]
    assert preds["utt_id"].tolist() == part["test"]["utt_id"].tolist()
    probs = preds[[f"prob_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs, fits[best].predict_proba(x["test"]), rtol=0, atol=1e-12)
    again, _ = duration_nonlinear_baseline(manifest, window_s=8.0, splits=splits, depths=(2, 1))
    assert again.equals(preds)  # seeded: the same trees every run


def test_nonlinear_baseline_validation_ties_go_to_the_shallower_depth():
    manifest = _nonlinear_manifest(n=60, seed=1).assign(duration_s=2.0)  # one length: every depth predicts alike
    manifest["split"] = np.array(["train", "val", "test"])[np.arange(60) % 3]
    _, info = duration_nonlinear_baseline(manifest, window_s=8.0, depths=(3, 1, 2))
    assert len(set(info["grid"].values())) == 1 and info["depth"] == 1


def test_nonlinear_baseline_names_the_missing_subset():
    manifest = _nonlinear_manifest(n=30)
    manifest["split"] = np.array(["train", "val"])[np.arange(30) % 2]
    with pytest.raises(ValueError) as err:
        duration_nonlinear_baseline(manifest, window_s=8.0)
    assert str(err.value) == "nonlinear duration baseline: no 'test' clips in the manifest"
