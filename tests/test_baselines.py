"""The duration-only baseline learns length where length carries the label, and nothing where it does not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serlib.common.facts import CLASSES
from serlib.modelling.baselines import duration_baseline


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
