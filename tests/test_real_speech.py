"""Real speech (issue 22): 60 clips of EmoDB as distributed (10 speakers x 6 emotions, their original names, 16 kHz
mono), read from ``$SERLIB_REAL_SPEECH`` or ``../shared/real-speech/emodb-sample`` beside the repository. Skipped when
absent, as the real-names tests are.

What synthetic audio cannot show: the reader and MCULP on real files, finite log-Mel and eGeMAPS features of real
recordings, a fit on them, ``serlib predict`` on real clips and the listening station's pitch track on real voices.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from serlib.analysis.listening import clip_pitch
from serlib.common.config import load_config
from serlib.common.facts import EMODB_SEX, EMOTION_CODES, EMOTION_TO_CLASS
from serlib.common.runfolder import RunFolder
from serlib.data.corpora import scan_corpus
from serlib.features.egemaps import N_FEATURES, egemaps_features, feature_columns
from serlib.features.layers import FeatureKey
from serlib.features.load import load_features
from serlib.modelling.models import build_system_model
from serlib.tools.cli import main

REPO = Path(__file__).resolve().parents[1]
PROBS = ["prob_negative", "prob_sad_fear", "prob_pos_neutral"]


def _sample_dir() -> Path | None:
    folder = Path(os.environ.get("SERLIB_REAL_SPEECH", REPO.parent / "shared" / "real-speech" / "emodb-sample"))
    return folder if folder.is_dir() and any(folder.glob("*.wav")) else None


@pytest.fixture(scope="module")
def sample() -> Path:
    folder = _sample_dir()
    if folder is None:
        pytest.skip("real EmoDB clips not found (set SERLIB_REAL_SPEECH or provide ../shared/real-speech/emodb-sample)")
    return folder


@pytest.fixture(scope="module")
def real_run(sample, tmp_path_factory):
    """A run on the sample: manifest, log-Mel features and the log-Mel baseline S1 fitted for one epoch."""
    tmp = tmp_path_factory.mktemp("real-speech")
    profile = {
        "run": {"name": "real-speech"},
        "data": {"emodb": str(sample)},
        "train": {"max_epochs": 1, "seeds": [0], "threads": 1},
        "systems": {s: None for s in ("S2", "S3", "S4", "S5", "A1", "A2", "A3")},
        "analysis": {"primary_system": "S1", "feature_baselines": False},
    }
    path = tmp / "real.yaml"
    path.write_text(yaml.safe_dump(profile))
    assert main(["-q", "train", str(path), "--out", str(tmp / "run")]) == 0  # as a user trains without the notebooks
    folder = RunFolder(tmp / "run")
    return load_config(path), folder, pd.read_csv(folder.results)


def _class_of(name: str) -> str | None:
    return EMOTION_TO_CLASS.get(EMOTION_CODES["EmoDB"][name[5]])  # <speaker 2><text 3><emotion 1><version 1>


def test_the_emodb_reader_reads_every_real_file_as_its_name_says(sample):
    rows, excluded = scan_corpus("EmoDB", sample, progress=False)
    files = sorted(p.name for p in sample.glob("*.wav"))
    assert excluded == [] and sorted(Path(r["path"]).name for r in rows) == files
    for row in rows:
        name = Path(row["path"]).name
        assert row["speaker"] == f"EmoDB:{name[:2]}" and row["sex"] == EMODB_SEX[name[:2]]
        assert row["emotion"] == EMOTION_CODES["EmoDB"][name[5]] and row["sentence"] == name[2:5]
        assert (row["sample_rate"], row["channels"]) == (16000, 1) and 1.0 < row["duration_s"] < 10.0


def test_mculp_keeps_the_six_shared_emotions_and_drops_boredom_on_real_files(sample, real_run):
    _, folder, _ = real_run
    files = sorted(p.name for p in sample.glob("*.wav"))
    manifest, excluded = pd.read_csv(folder.manifest), pd.read_csv(folder.excluded)
    kept = {f"EmoDB/{n[:-4]}": _class_of(n) for n in files if _class_of(n)}
    assert dict(zip(manifest["utt_id"], manifest["label"])) == kept  # every class from the file's emotion letter
    bored = sorted(f"{n[:-4]}" for n in files if n[5] == "L")
    assert sorted(Path(p).stem for p in excluded["path"]) == bored and set(excluded["reason"]) == {"boredom"}
    scanned = pd.read_csv(folder.scanned, keep_default_na=False)
    assert len(scanned) == len(files) and (scanned["audio_flag"] == "").all()  # real speech: none near-silent
    # the speaker split: every speaker in one subset, each subset holding both sexes' speakers where it can
    speakers = manifest.groupby("speaker")["split"].nunique()
    assert (speakers == 1).all() and manifest["speaker"].nunique() == 10


def test_log_mel_features_of_real_speech_are_finite_and_as_long_as_the_clips(real_run):
    cfg, folder, _ = real_run
    manifest = pd.read_csv(folder.manifest)
    features = load_features(cfg, folder, manifest, FeatureKey("logmel"))
    assert tuple(features.x.shape) == (len(manifest), cfg.features.logmel.n_mels, cfg.features.frames)
    assert torch.isfinite(features.x).all()
    hop = cfg.features.logmel.hop_ms / 1000
    expected = np.minimum(np.floor(manifest["duration_s"].to_numpy() / hop), cfg.features.frames)
    np.testing.assert_allclose(features.lengths.numpy(), expected, atol=2)  # real frames: the clip's length
    for i, length in enumerate(features.lengths.tolist()):  # real frames vary; the padding is zero
        assert features.x[i, :, :length].std() > 0.1 and not features.x[i, :, length:].any()


def test_egemaps_of_real_speech_are_88_finite_functionals(real_run):
    _, folder, _ = real_run
    manifest = pd.read_csv(folder.manifest)
    one_per_speaker = manifest.drop_duplicates("speaker")
    table = egemaps_features(folder, one_per_speaker)
    values = table[feature_columns(table)].to_numpy(dtype=float)
    assert values.shape == (10, N_FEATURES) and np.isfinite(values).all() and (table["error"] == "").all()
    loudness = table.filter(like="loudness_sma3_amean").iloc[:, 0]
    assert (loudness > 0).all()  # real speech has loudness; a silent or broken read would not


def test_a_one_epoch_s1_fit_on_real_speech(real_run):
    cfg, folder, runs = real_run
    row = runs.set_index("system").loc["S1"]
    assert row["status"] == "trained" and row["stopped_epoch"] == 1 and row["in_channels"] == 64
    history = pd.read_csv(folder.history("S1", 0))
    assert len(history) == 1 and np.isfinite(history[["train_loss", "val_loss"]].to_numpy()).all()
    state = torch.load(folder.checkpoint("S1", 0), map_location="cpu", weights_only=False)["state_dict"]
    start = build_system_model(cfg.systems["S1"], 64, torch.device("cpu"), 0).state_dict()
    assert any(not torch.equal(state[k], start[k]) for k in start if start[k].is_floating_point())  # it moved
    preds = pd.read_csv(folder.predictions("S1", 0, "test"))
    manifest = pd.read_csv(folder.manifest)
    assert sorted(preds["utt_id"]) == sorted(manifest.loc[manifest["split"] == "test", "utt_id"])
    np.testing.assert_allclose(preds[PROBS].sum(axis=1), 1.0, atol=1e-5)


def test_serlib_predict_scores_real_clips_and_gives_the_runs_test_clips_their_predictions(
    sample, real_run, tmp_path, capsys
):
    _, folder, _ = real_run
    out = tmp_path / "preds.csv"
    assert main(["predict", str(folder.root), str(sample), "--system", "S1", "--out", str(out)]) == 0
    assert "60 file(s) scored" in capsys.readouterr().err
    table = pd.read_csv(out, keep_default_na=False)
    assert sorted(Path(p).name for p in table["path"]) == sorted(p.name for p in sample.glob("*.wav"))
    assert (table["error"] == "").all()
    np.testing.assert_allclose(table[PROBS].astype(float).sum(axis=1), 1.0, atol=1e-5)
    saved = pd.read_csv(folder.predictions("S1", 0, "test"))
    saved["name"] = saved["utt_id"].str.split("/").str[-1] + ".wav"
    table["name"] = table["path"].map(lambda p: Path(p).name)
    both = saved.merge(table, on="name", suffixes=("_saved", ""))
    both = both[both["duration_s"].astype(float) <= 8.0]  # clips that fit the window are scored as in training
    assert len(both) >= 3
    np.testing.assert_allclose(
        both[PROBS].astype(float).to_numpy(), both[[f"{p}_saved" for p in PROBS]].to_numpy(), atol=1e-4
    )


def test_the_listening_stations_pitch_track_finds_real_voices(sample):
    from serlib.common.config import AnalysisConfig

    analysis = AnalysisConfig()  # the station's pyin settings (CHOSEN defaults: 65-500 Hz, 20 ms hop)
    medians = {"male": [], "female": []}
    for path in sorted(sample.glob("*.wav")):
        times, f0 = clip_pitch(str(path), analysis)
        voiced = f0[np.isfinite(f0)]
        assert len(voiced) >= 5, f"{path.name}: no voiced frames found"
        assert (voiced >= analysis.pitch_fmin - 1).all() and (voiced <= analysis.pitch_fmax + 1).all()
        assert times[-1] <= sf_duration(path) + 0.1
        medians[EMODB_SEX[path.name[:2]]].append(np.median(voiced))
    # the pitch of real voices: EmoDB's women speak higher than its men
    assert np.median(medians["female"]) > 1.3 * np.median(medians["male"])


def sf_duration(path: Path) -> float:
    import soundfile as sf

    return sf.info(str(path)).duration
