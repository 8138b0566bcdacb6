"""Temperature scaling and the ECE's speaker interval, against hand cases and independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax
from test_evaluation import _run

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


def _by_hand(probs, y, units, seeds, unit_weights, seed_weights, n_bins=10):
    """ECE of every resample done by brute force: each row repeated (its unit's draws) x (its seed's draws)."""
    names, unit_index = np.unique(units, return_inverse=True)
    seed_names, seed_index = np.unique(seeds, return_inverse=True)
    values = []
    for wu, ws in zip(unit_weights, seed_weights):
        times = (wu[unit_index] * ws[seed_index]).astype(int)
        rows = np.repeat(np.arange(len(y)), times)
        values.append(stats.expected_calibration_error(probs[rows], y[rows], n_bins))
    return np.array(values)


def _seeded_rows(n_speakers, clips_per_speaker=20, n_seeds=3):
    """``n_seeds`` runs on the same clips: rows (clip x seed), each seed's probabilities drawn afresh."""
    clips = np.tile(np.arange(n_speakers * clips_per_speaker), n_seeds)
    probs, y = _tempered(n=len(clips), seed=7)
    y = np.tile(y[: n_speakers * clips_per_speaker], n_seeds)  # a clip's label is the same under every seed
    speakers = np.array([f"s{c // clips_per_speaker}" for c in clips])
    seeds = np.repeat(np.arange(n_seeds), n_speakers * clips_per_speaker)
    return probs, y, speakers, clips.astype(str), seeds


def test_ece_interval_draws_speakers_then_seeds():
    probs, y, speakers, clips, seeds = _seeded_rows(n_speakers=6)
    out = calibrate.ece_interval(probs, y, speakers, 10, 150, 3, clips=clips, seeds=seeds)
    assert out["unit"] == "speaker" and out["n_seeds"] == 3 and out["note"] == ""
    assert out["ece"] == pytest.approx(stats.expected_calibration_error(probs, y, 10))  # every seed's rows pooled
    hand = _by_hand(probs, y, speakers, seeds, stats.resample_weights(6, 150, 3), stats._seed_weights(150, 3, 3, 1))
    assert (out["lo"], out["hi"]) == pytest.approx(tuple(np.percentile(hand, [2.5, 97.5])))


def test_ece_interval_falls_back_to_clips_below_five_speakers_keeping_a_clips_seeds_together():
    probs, y, speakers, clips, seeds = _seeded_rows(n_speakers=3)
    out = calibrate.ece_interval(probs, y, speakers, 10, 150, 3, clips=clips, seeds=seeds)
    assert out["unit"] == "clip" and "speaker interval n/a" in out["note"] and out["n_speakers"] == 3
    n_clips = len(set(clips))
    hand = _by_hand(probs, y, clips, seeds, stats.resample_weights(n_clips, 150, 3), stats._seed_weights(150, 3, 3, 1))
    assert (out["lo"], out["hi"]) == pytest.approx(tuple(np.percentile(hand, [2.5, 97.5])))


def test_the_change_in_ece_has_a_paired_interval():
    probs, y, speakers, clips, seeds = _seeded_rows(n_speakers=6)
    after = calibrate.apply_temperature(probs, 2.0)
    out = calibrate.ece_change_interval(probs, after, y, speakers, 10, 150, 3, clips=clips, seeds=seeds)
    before_ece = stats.expected_calibration_error(probs, y, 10)
    after_ece = stats.expected_calibration_error(after, y, 10)
    assert out["delta"] == pytest.approx(after_ece - before_ece) and after_ece < before_ece  # after - before
    draws = stats.resample_weights(6, 150, 3), stats._seed_weights(150, 3, 3, 1)
    paired = _by_hand(after, y, speakers, seeds, *draws) - _by_hand(probs, y, speakers, seeds, *draws)
    assert (out["lo"], out["hi"]) == pytest.approx(tuple(np.percentile(paired, [2.5, 97.5])))
    assert out["unit"] == "speaker"


@pytest.mark.parametrize("n_speakers, unit", [(8, "speaker"), (4, "clip")])
def test_the_temperature_table_carries_its_unit_and_its_caption_follows(tmp_path, n_speakers, unit):
    cfg, folder = _run(tmp_path, {"S5": 0.5})
    manifest = pd.read_csv(folder.manifest)
    manifest["speaker"] = manifest["speaker"].map(lambda s: f"spk{int(s[3:]) % n_speakers}")
    manifest.to_csv(folder.manifest, index=False)
    for seed in (0, 1):
        pd.read_csv(folder.predictions("S5", seed)).to_csv(folder.predictions("S5", seed, "val"), index=False)
    table = calibrate.temperature_table(cfg, folder, "S5")
    assert (table["unit"] == unit).all() and (table["n_speakers"] == n_speakers).all()
    scaled = table.set_index("probabilities").loc["temperature-scaled"]
    assert scaled["ece_change"] == pytest.approx(
        scaled["ece"] - table.set_index("probabilities").at["as trained", "ece"]
    )
    assert scaled["ece_change_lo"] <= scaled["ece_change"] <= scaled["ece_change_hi"] < 0
    assert np.isnan(table.set_index("probabilities").at["as trained", "ece_change"])
    caption = calibrate.temperature_caption(table, "S5", 300)
    assert ("over test CLIPS" in caption) == (unit == "clip") and "then over the 2 seeds" in caption
    assert ("test speakers (a speaker's clips" in caption) == (unit == "speaker") and "PAIRED" in caption
