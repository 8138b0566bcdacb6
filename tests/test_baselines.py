"""The duration-only baseline learns length where length carries the label, and nothing where it does not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serlib.common.facts import CLASSES
from serlib.modelling.baselines import duration_baseline, train_standardised


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


def test_standardisation_uses_the_training_rows_only():
    # training columns: mean 2, std 0.5; mean 10, std 2; constant 5 (std 0: kept at scale 1)
    train = np.array([[1.5, 8.0, 5.0], [2.5, 12.0, 5.0]])
    x = {"train": train, "val": np.array([[100.0, 0.0, 7.0]]), "test": np.array([[-50.0, 20.0, 4.0]])}
    out = train_standardised(x)
    assert out["train"].tolist() == [[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0]]
    # validation and test are scaled with the training statistics; their own values do not move them
    assert out["val"].tolist() == [[196.0, -5.0, 2.0]] and out["test"].tolist() == [[-104.0, 5.0, -1.0]]
