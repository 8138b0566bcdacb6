"""Temperature scaling and the ECE's speaker interval, against hand cases and independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from serlib.analysis import calibrate, stats


def _tempered(n=6000, t_true=2.0, seed=0):
    """Logits whose labels are drawn from softmax(logits / t_true): the saved softmax(logits) is overconfident by
    exactly t_true."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 3))
    truth = softmax(logits / t_true, axis=1)
    y = (rng.random(n)[:, None] > truth.cumsum(axis=1)).sum(axis=1)
    return softmax(logits, axis=1), y


def test_apply_temperature_is_a_softmax_of_the_scaled_logits():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    probs = softmax(logits, axis=1)
    np.testing.assert_allclose(calibrate.apply_temperature(probs, 2.0), softmax(logits / 2, axis=1), rtol=1e-9)
    np.testing.assert_allclose(calibrate.apply_temperature(probs, 1.0), probs, rtol=1e-9)
    assert (calibrate.apply_temperature(probs, 3.0).argmax(axis=1) == probs.argmax(axis=1)).all()


def test_fit_temperature_recovers_the_overconfidence_and_minimises_the_nll():
    probs, y = _tempered()
    t = calibrate.fit_temperature(probs, y)
    assert t == pytest.approx(2.0, rel=0.1)
    grid = np.linspace(0.5, 4, 200)
    by_grid = grid[np.argmin([calibrate.nll(calibrate.apply_temperature(probs, g), y) for g in grid])]
    assert t == pytest.approx(by_grid, abs=0.02)  # the bounded search finds the grid's minimum
    before = stats.expected_calibration_error(probs, y, 10)
    after = stats.expected_calibration_error(calibrate.apply_temperature(probs, t), y, 10)
    assert after < before / 3
    with pytest.raises(ValueError, match="no validation clip"):
        calibrate.fit_temperature(probs[:0], y[:0])


def test_ece_interval_matches_the_ece_and_a_brute_force_speaker_bootstrap():
    probs, y = _tempered(n=600)
    speakers = np.repeat([f"s{i}" for i in range(10)], 60)
    out = calibrate.ece_interval(probs, y, speakers, n_bins=10, n_resamples=200, seed=4)
    assert out["ece"] == pytest.approx(stats.expected_calibration_error(probs, y, 10))
    weights = stats.resample_weights(10, 200, 4)  # the same draws, done by hand: repeat each drawn speaker's rows
    values = []
    for w in weights:
        rows = np.concatenate([np.repeat(np.where(speakers == f"s{g}")[0], int(k)) for g, k in enumerate(w)])
        values.append(stats.expected_calibration_error(probs[rows], y[rows], 10))
    lo, hi = np.percentile(values, [2.5, 97.5])
    assert (out["lo"], out["hi"]) == pytest.approx((lo, hi))
    assert out["lo"] < out["ece"] < out["hi"] and out["n_speakers"] == 10
