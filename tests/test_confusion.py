"""Tests of serlib.analysis.confusion (and the one prediction loader it reads through), serlib.analysis.prosody,
the confusion figures, and notebooks/05_confusion.

The run folder is fabricated (wav files, a manifest and predictions of S5 in the training
contract's format), so these tests need no training; the notebook test reads the session's smoke run
(tests/conftest.py). ``make_fabricated_run`` is shared with
tests/test_listening.py and tests/test_browser.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from serlib.analysis import confusion as cf
from serlib.analysis import evaluation
from serlib.analysis import prosody as pr
from serlib.analysis.prosody import POOL_MIN_CLIPS
from serlib.common.config import load_config
from serlib.common.facts import CLASSES
from serlib.common.paper import TABLE3, TABLE5, TABLE7
from serlib.common.runfolder import RunFolder
from serlib.report import confusionplots

PROJECT = Path(__file__).resolve().parents[1]
SMOKE = PROJECT / "parameters" / "smoke.yaml"
CORPORA = ("CREMA-D", "RAVDESS", "EmoDB")
CLASS_PITCH = {"negative": 190.0, "sad_fear": 140.0, "pos_neutral": 230.0}  # Hz, a synthetic class cue


def synthetic_voice(f0: float, seconds: float, rng: np.random.Generator, rate: int = 22050) -> np.ndarray:
    """A voiced tone with a gliding pitch, syllable-like amplitude bursts and a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))  # (samples,)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t), 0, None) ** 2
    audio = 0.3 * voice * syllables + 0.005 * rng.standard_normal(t.size)
    return audio.astype(np.float32)


def make_fabricated_run(
    run_dir: Path, per_class: int = 6, seconds: float = 1.2, seed: int = 0, system: str = "S5", train_seed: int = 0
) -> RunFolder:
    """Write wavs, ``data/manifest.csv`` and ``models/<system>/seed<k>/predictions_test.csv``.

    Predictions are drawn at random around the true class (about 60 % correct), so every
    confusion pair can occur. Test clips are ``per_class`` per class; a few train clips are added.
    """
    rng = np.random.default_rng(seed)
    folder = RunFolder(Path(run_dir)).ensure()
    audio_dir = folder.root / "fabricated_audio"
    audio_dir.mkdir(exist_ok=True)
    rows = []
    for split, count in (("test", per_class), ("train", 1)):
        for label in CLASSES:
            for k in range(count):
                rows.append(_fabricated_clip(audio_dir, split, label, k, len(rows), seconds, rng))
    manifest = pd.DataFrame(rows)
    manifest.to_csv(folder.manifest, index=False)
    _fabricated_predictions(manifest[manifest["split"] == "test"], rng).to_csv(
        _prediction_file(folder, system, train_seed), index=False
    )
    return folder


def _fabricated_clip(
    audio_dir: Path, split: str, label: str, k: int, index: int, seconds: float, rng: np.random.Generator
) -> dict:
    corpus = CORPORA[index % 3]
    speaker = f"{corpus}:{index % 4:02d}"
    path = audio_dir / f"{split}_{label}_{k:02d}.wav"
    sf.write(path, synthetic_voice(CLASS_PITCH[label] * rng.uniform(0.85, 1.15), seconds, rng), 22050)
    return {
        "utt_id": f"{corpus}/{split}_{label}_{k:02d}",
        "path": str(path),
        "corpus": corpus,
        "speaker": speaker,
        "sex": ("male", "female")[index % 2],
        "emotion_code": "XX",
        "emotion": "neutral",
        "sentence": "s1",
        "duration_s": seconds,
        "sample_rate": 22050,
        "channels": 1,
        "label": label,
        "split": split,
    }


def _fabricated_predictions(test: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    logits = rng.normal(0, 1, (len(test), 3))  # (clips, classes)
    logits[np.arange(len(test)), test["label"].map(CLASSES.index).to_numpy()] += 1.2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    preds = pd.DataFrame(
        {
            "utt_id": test["utt_id"].to_numpy(),
            "label": test["label"].to_numpy(),
            "pred": [CLASSES[i] for i in probs.argmax(axis=1)],
        }
    )
    for i, name in enumerate(CLASSES):
        preds[f"prob_{name}"] = probs[:, i]
    preds["correct"] = preds["label"] == preds["pred"]
    return preds


def _prediction_file(folder: RunFolder, system: str, seed: int) -> Path:
    path = folder.predictions(system, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- fixtures


@pytest.fixture()
def run(tmp_path):
    cfg = load_config(SMOKE)
    folder = make_fabricated_run(tmp_path / "run")
    return cfg, folder


# --------------------------------------------------------------------------- tables


def test_predictions_join_manifest(run):
    cfg, folder = run
    preds = evaluation.primary_predictions(cfg, folder)
    assert len(preds) == 18 and set(preds["label"]) == set(CLASSES)
    assert {"path", "corpus", "sex", "speaker"} <= set(preds.columns)
    assert preds.attrs["system"] == "S5" and preds.attrs["seed"] == 0


@pytest.mark.parametrize("encoding", ["names", "indices"])
def test_confusion_rows_are_recalls(run, encoding):
    cfg, folder = run
    path = folder.predictions("S5", 0)
    raw = pd.read_csv(path)
    if encoding == "indices":
        raw["label"] = raw["label"].map(CLASSES.index)
        raw["pred"] = raw["pred"].map(CLASSES.index)
        raw.to_csv(path, index=False)
    preds = evaluation.primary_predictions(cfg, folder)
    conf = evaluation.pooled_confusion(preds)
    np.testing.assert_allclose(conf.sum(axis=1), 1.0)
    expected = preds.groupby("label")["correct"].mean().reindex(CLASSES).to_numpy()
    np.testing.assert_allclose(np.diag(conf.to_numpy()), expected)
    assert evaluation.pooled_confusion(preds, normalize=False).to_numpy().sum() == len(preds)


def test_tables_beside_paper(run):
    cfg, folder = run
    preds = evaluation.primary_predictions(cfg, folder)
    conf = evaluation.pooled_confusion(preds)
    table7 = cf.table7_beside_paper(conf, TABLE7)
    assert table7.loc[0, "negative (paper)"] == pytest.approx(0.584)
    assert table7.loc[2, "sad_fear"] == pytest.approx(conf.loc["pos_neutral", "sad_fear"])
    recall = cf.per_class_recall(preds, TABLE7)
    assert recall["clips"].sum() == len(preds)
    pairs = cf.confused_pairs(preds, TABLE7)
    assert len(pairs) == 6 and pairs["rate"].is_monotonic_decreasing
    assert pairs["clips"].sum() == (~preds["correct"]).sum()
    by_corpus = evaluation.accuracy_by(preds, "corpus")
    assert by_corpus.iloc[-1]["accuracy"] == pytest.approx(preds["correct"].mean())
    assert set(by_corpus["corpus"]) == set(CORPORA) | {"all"}


def test_pooled_seeds_count_each_clip_once_and_recall_is_the_mean_of_the_seeds(run):
    cfg, folder = run
    one = evaluation.primary_predictions(cfg, folder).assign(seed=0)
    other = one.assign(seed=1, pred=CLASSES[0])  # a second seed that calls everything negative
    other["correct"] = other["label"] == other["pred"]
    pooled = pd.concat([one, other], ignore_index=True)
    recall = cf.per_class_recall(pooled, TABLE7)
    assert list(recall["clips"]) == list(cf.per_class_recall(one)["clips"])  # each test clip once, not per seed
    assert recall["clips"].sum() == len(one) and cf.runs_per_clip(pooled) == 2
    np.testing.assert_allclose(recall["recall"], np.diag(evaluation.pooled_confusion(pooled)))  # Table 7's diagonal
    seeds = [cf.per_class_recall(p)["recall"].to_numpy() for p in (one, other)]
    np.testing.assert_allclose(recall["recall"], (seeds[0] + seeds[1]) / 2)  # the mean of the seeds' recalls
    assert recall.set_index("class").at[CLASSES[0], "recall"] == pytest.approx((seeds[0][0] + 1) / 2)
    pairs = cf.confused_pairs(pooled)
    errors = [(~p["correct"]).sum() for p in (one, other)]
    assert pairs["clips"].sum() == pytest.approx(sum(errors) / 2)  # the mean over seeds of the wrong clips


def test_paper_table7_consistent_with_table5():
    counts = TABLE3.set_index("class")["test"]
    implied = cf.paper_implied_accuracy(TABLE7, counts)
    assert implied == pytest.approx(TABLE5.set_index("system").loc["S5", "test_acc"], abs=0.001)


def test_missing_predictions_name_the_file(run):
    cfg, folder = run
    with pytest.raises(FileNotFoundError, match="predictions_test.csv"):
        evaluation.primary_predictions(cfg, folder, system="S9")


def test_bad_label_is_reported(run):
    cfg, folder = run
    path = folder.predictions("S5", 0)
    raw = pd.read_csv(path)
    raw.loc[0, "label"] = "angry"
    raw.to_csv(path, index=False)
    with pytest.raises(ValueError, match="'label' holds 'angry'"):
        evaluation.primary_predictions(cfg, folder)


# --------------------------------------------------------------------------- prosody


def test_prosody_descriptors_follow_the_signal():
    cfg = load_config(SMOKE)
    rng = np.random.default_rng(1)
    low = pr.prosody_descriptors(synthetic_voice(120.0, 1.5, rng, rate=16000), cfg.analysis)
    high = pr.prosody_descriptors(synthetic_voice(240.0, 1.5, rng, rate=16000), cfg.analysis)
    assert 100 < low["f0_mean_hz"] < 140 and 210 < high["f0_mean_hz"] < 270
    assert low["voiced_frac"] > 0.3 and low["onset_rate_hz"] > 0
    assert low["duration_s"] == pytest.approx(1.5, abs=0.01)


def test_prosody_cache_and_bad_clip(run, tmp_path):
    cfg, folder = run
    preds = evaluation.primary_predictions(cfg, folder)
    clips = preds[["utt_id", "path"]].head(4).copy()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not a wav file")
    clips.loc[len(clips)] = {"utt_id": "CREMA-D/broken", "path": str(broken)}
    with pytest.warns(UserWarning, match="CREMA-D/broken"):
        first = pr.compute_prosody(cfg, folder, clips, progress=False)
    assert not first["cached"].any() and (first["error"] != "").sum() == 1
    assert first.loc[:3, "f0_mean_hz"].notna().all()
    second = pr.compute_prosody(cfg, folder, clips, progress=False)
    assert second["cached"].all()
    pd.testing.assert_series_equal(first["f0_mean_hz"], second["f0_mean_hz"])
    Path(clips.loc[0, "path"]).write_bytes(Path(clips.loc[1, "path"]).read_bytes() + b"\0\0")  # changed file
    third = pr.compute_prosody(cfg, folder, clips, progress=False)
    assert third["cached"].tolist() == [False, True, True, True, True]
    timing = pr.prosody_timing(third)
    assert timing.loc[0, "failed"] == 1 and timing.loc[0, "s_per_clip"] > 0


def test_prosody_two_processes_give_the_serial_table(run, tmp_path):
    cfg, folder = run
    clips = evaluation.primary_predictions(cfg, folder)[["utt_id", "path"]].head(POOL_MIN_CLIPS).copy()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not a wav file")
    clips.loc[len(clips)] = {"utt_id": "CREMA-D/broken", "path": str(broken)}
    with pytest.warns(UserWarning, match="CREMA-D/broken"):
        serial = pr.compute_prosody(cfg, folder, clips, progress=False, workers=1)
    other = RunFolder(tmp_path / "other").ensure()  # an empty cache
    with pytest.warns(UserWarning, match="CREMA-D/broken"):
        pooled = pr.compute_prosody(cfg, other, clips, progress=False, workers=2)
    assert not pooled["cached"].any() and (pooled["error"] != "").sum() == 1
    assert pooled["f0_mean_hz"].notna().sum() == POOL_MIN_CLIPS
    pd.testing.assert_frame_equal(serial.drop(columns="seconds"), pooled.drop(columns="seconds"), check_exact=True)


def test_prosody_by_outcome_tables(run):
    cfg, folder = run
    preds = evaluation.primary_predictions(cfg, folder)
    prosody = pr.compute_prosody(cfg, folder, preds, progress=False)
    table = pr.prosody_by_outcome(preds, prosody)
    assert table["clips"].sum() == len(preds)
    assert set(table["outcome"]) <= {"correct", "misclassified"}
    separation = pr.prosody_separation(preds, prosody)
    assert len(separation) == 3 * len(pr.PROSODY_COLUMNS)
    fig = confusionplots.plot_prosody_by_outcome(preds, prosody)
    assert len(fig.axes) >= 6


# --------------------------------------------------------------------------- notebook


@pytest.mark.slow
def test_notebook_05_confusion(smoke_run):
    folder, run_dir = smoke_run, smoke_run.root  # tests/conftest.py: every notebook executed once
    preds = evaluation.primary_predictions(load_config(SMOKE), folder)
    tables = run_dir / "tables"
    table7 = pd.read_csv(tables / "table_7.csv")
    assert list(table7["true \\ predicted"]) == list(CLASSES)
    assert table7["negative (paper)"].tolist() == pytest.approx(TABLE7["negative"].tolist())
    run_rows = table7[list(CLASSES)].dropna()
    np.testing.assert_allclose(run_rows.sum(axis=1), 1.0)  # row-normalised
    recall = pd.read_csv(tables / "table_s40.csv")
    assert recall["clips"].sum() == len(preds)
    assert len(pd.read_csv(tables / "table_s41.csv")) == preds["corpus"].nunique() + 1  # corpora + all
    pairs = pd.read_csv(tables / "table_s43.csv")
    assert len(pairs) == 6 and pairs["clips"].sum() == (~preds["correct"]).sum()
    by_outcome = pd.read_csv(tables / "table_s44.csv")
    assert by_outcome["clips"].sum() == len(preds)
    timing = pd.read_csv(tables / "table_s46.csv")
    assert timing.loc[0, "clips"] == len(preds) and timing.loc[0, "s_per_clip"] > 0
    for name in ("table_s42", "table_s45"):
        assert (tables / f"{name}.csv").is_file(), name
    assert (run_dir / "figures" / "fig_4.png").stat().st_size > 10_000
    assert (run_dir / "figures" / "fig_s40.png").stat().st_size > 10_000
    assert len(pd.read_csv(run_dir / "analysis" / "prosody.csv")) == len(preds)
