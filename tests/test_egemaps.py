"""The feature baselines beyond the paper: eGeMAPS v02 from openSMILE, and a logistic regression with C
chosen on validation (also on mean-pooled wav2vec2)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from serlib.common.runfolder import RunFolder
from serlib.features import egemaps
from serlib.modelling.baselines import linear_baseline

pytest.importorskip("opensmile")


def _tone(path, seconds=1.2, freq=180.0, rate=22050):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.1 * np.sin(2 * np.pi * 2 * t)) * t) * (0.6 + 0.4 * np.sin(3 * t))
    sf.write(path, wave.astype(np.float32), rate)
    return str(path)


def test_a_clip_has_the_88_documented_functionals_and_a_bad_clip_is_a_row(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.root.mkdir()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio" * 50)
    clips = pd.DataFrame(
        {"utt_id": ["a", "bad", "gone"], "path": [_tone(tmp_path / "a.wav"), str(broken), str(tmp_path / "gone.wav")]}
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = egemaps.egemaps_features(folder, clips)
    assert len(egemaps.feature_columns(table)) == egemaps.N_FEATURES == 88
    good = table.set_index("utt_id").loc["a", egemaps.feature_columns(table)].to_numpy(dtype=float)
    assert np.isfinite(good).all() and "F0semitoneFrom27.5Hz_sma3nz_amean" in table.columns
    errors = table.set_index("utt_id")["error"]
    assert errors["a"] == "" and errors["bad"] and "FileNotFoundError" in errors["gone"]
    assert any("eGeMAPS: skipped bad" in str(w.message) for w in caught)
    again = egemaps.egemaps_features(folder, clips)  # read back from <run>/analysis/egemaps.csv
    assert again.attrs["computed"] == 0
    np.testing.assert_allclose(
        again.set_index("utt_id").loc["a", egemaps.feature_columns(again)].to_numpy(dtype=float), good, rtol=1e-6
    )


def test_the_linear_baseline_learns_and_chooses_c_on_validation_only():
    rng = np.random.default_rng(0)

    def part(n):
        y = np.arange(n) % 3
        x = rng.normal(size=(n, 20)) * 5.0
        x[:, 0] = rng.normal(size=n) + 4.0 * y  # one informative feature among 19 of noise on a larger scale
        return x, y

    (xt, yt), (xv, yv), (xs, ys) = part(300), part(90), part(90)
    preds, info = linear_baseline(
        {"train": xt, "val": xv, "test": xs}, {"train": yt, "val": yv, "test": ys}, [f"c{i}" for i in range(90)]
    )
    assert preds["correct"].mean() > 0.8 and set(info["grid"]) == {0.001, 0.01, 0.1, 1.0, 10.0}
    assert info["val_acc"] == max(info["grid"].values())
    flipped = {"train": yt, "val": (yv + 1) % 3, "test": ys}  # validation labels decide C, test never does
    _, other = linear_baseline({"train": xt, "val": xv, "test": xs}, flipped, [f"c{i}" for i in range(90)])
    assert other["grid"] != info["grid"]
    assert np.allclose(preds[["prob_negative", "prob_sad_fear", "prob_pos_neutral"]].sum(axis=1), 1.0)
