"""serlib.analysis.featurestats: the tables and figure data of 02_features, against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.decomposition import PCA

from serlib.analysis import featurestats as fstats
from serlib.common.config import Config
from serlib.common.runfolder import RunFolder
from serlib.features.load import FeatureSet

PAD = 50.0  # what a padded frame holds in these cases: padding counted as data would move every statistic


def feature_set(x, lengths, utt_ids=None, input="logmel") -> FeatureSet:
    x = torch.tensor(x, dtype=torch.float32)
    return FeatureSet(
        x=x,
        lengths=torch.tensor(lengths),
        utt_ids=utt_ids or [f"u{i}" for i in range(len(x))],
        labels=None,
        input=input,
        description="test",
    )


# Clip A: 2 true frames of 4 (then padding); clip B fills the window. x: (clips 2, channels 2, frames 4).
A = [[1, 3, PAD, PAD], [0, 2, PAD, PAD]]
B = [[2, 4, 6, 8], [1, 1, 4, 2]]
TRUE_VALUES = [1, 3, 0, 2, 2, 4, 6, 8, 1, 1, 4, 2]  # every value in a true frame, by hand


def test_value_statistics_count_true_frames_only():
    stats = fstats.value_statistics(torch.tensor([A, B], dtype=torch.float32), torch.tensor([2, 4]))
    assert stats["value mean"] == pytest.approx(34 / 12)
    assert stats["value std"] == pytest.approx(math.sqrt(156 / 12 - (34 / 12) ** 2))  # sum of squares 156
    assert stats["value std"] == pytest.approx(np.std(TRUE_VALUES))
    # Channel means per clip: A (2, 1), B (5, 2); across clips (3.5, 1.5); their std (ddof 1) is sqrt(2).
    assert stats["channel-mean spread"] == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize("padding", [0.0, PAD, float("nan"), float("inf")])
def test_whatever_the_padding_holds_never_enters_a_statistic(padding):
    a = [[1, 3, padding, padding], [0, 2, padding, padding]]
    x, lengths = torch.tensor([a, B], dtype=torch.float32), torch.tensor([2, 4])
    assert fstats.value_statistics(x, lengths)["value mean"] == pytest.approx(34 / 12)
    assert fstats.pooled_means(x, lengths).tolist() == [[2.0, 1.0], [5.0, 2.0]]


def test_true_frame_sums_and_an_empty_clip():
    sums, squares = fstats.true_frame_sums(torch.tensor([A, B], dtype=torch.float32), torch.tensor([2, 4]))
    assert sums.dtype == torch.float64 and sums.tolist() == [[4, 2], [20, 8]]
    assert squares.tolist() == [[10, 4], [120, 22]]
    empty = fstats.pooled_means(torch.full((1, 2, 4), PAD), torch.tensor([0]))
    assert empty.tolist() == [[0.0, 0.0]]


def test_table_s11_columns_and_values():
    table = fstats.feature_statistics({"logmel": feature_set([A, B], [2, 4])})
    assert list(table.columns) == [
        "input",
        "clips",
        "channels",
        "frames",
        "true frames mean",
        "true frames min",
        "true frames max",
        "full window %",
        "padding %",
        "value mean",
        "value std",
        "channel-mean spread",
    ]
    row = table.iloc[0]
    assert (row["clips"], row["channels"], row["frames"]) == (2, 2, 4)
    assert (row["true frames mean"], row["true frames min"], row["true frames max"]) == (3.0, 2, 4)
    assert row["full window %"] == pytest.approx(50.0)  # B fills the window, A does not
    assert row["padding %"] == pytest.approx(25.0)  # 2 of 8 frames
    assert row["value mean"] == pytest.approx(34 / 12)


def test_table_s10_columns_and_the_last_computation():
    stats = {
        "clips": 2,
        "failed": {"u9": "bad"},
        "computed": 0,
        "cached": 2,
        "seconds": 0.5,
        "clips_per_s": None,
        "last_compute": {"clips_per_s": 40.0, "device": "cuda", "torch_threads": 4, "mean_batch": 2.0},
        "cache_bytes": 3 * 2**20,
        "weights": "random",
        "encoder": "enc",
        "device": "cpu",
    }
    table = fstats.extraction_table(
        {"inputs": {"logmel": stats}}, {"logmel": feature_set([A, B], [2, 4])}, {"logmel": 0.25}
    )
    assert list(table.columns) == [
        "input",
        "clips",
        "failed",
        "computed now",
        "cached",
        "step s",
        "clips/s",
        "device",
        "threads",
        "mean batch",
        "cache MiB",
        "load s (all clips)",
        "tensor",
        "weights",
        "encoder",
    ]
    row = table.iloc[0]
    assert (row["failed"], row["computed now"], row["cached"]) == (1, 0, 2)
    assert (row["clips/s"], row["device"], row["threads"]) == (40.0, "cuda", 4)  # all cached: the last computation
    assert (row["cache MiB"], row["load s (all clips)"], row["tensor"]) == (3.0, 0.25, "2x2x4")
    assert fstats.audio_minutes({"audio_seconds": 90.0}) == 1.5 and fstats.audio_minutes({"audio_seconds": None}) == 0


def test_pca_2d_finds_known_axes():
    # Four points on two orthogonal directions (turned 30 degrees in the plane, a constant third coordinate):
    # variances 2 and 0.5 along them, so the explained shares are 0.8 and 0.2 and the points keep their
    # coordinates along the directions, up to sign.
    along = np.array([[2, 0], [-2, 0], [0, 1], [0, -1]], dtype=float)
    turn = np.array([[np.cos(np.pi / 6), np.sin(np.pi / 6)], [-np.sin(np.pi / 6), np.cos(np.pi / 6)]])
    values = np.column_stack([along @ turn, np.full(4, 7.0)])  # (4, 3)
    points, explained = fstats.pca_2d(values)
    assert explained == pytest.approx([0.8, 0.2])
    assert np.abs(points) == pytest.approx(np.abs(along))


def test_feature_pca_pools_true_frames_and_matches_sklearn():
    rng = np.random.default_rng(0)
    lengths = [3, 6, 2, 6, 5, 4]
    x = rng.normal(size=(6, 4, 6))
    padded = x.copy()
    for clip, n in zip(padded, lengths):
        clip[:, n:] = PAD
    manifest = pd.DataFrame(
        {
            "utt_id": [f"u{i}" for i in range(6)],
            "label": ["negative", "sad_fear"] * 3,
            "corpus": ["EmoDB"] * 3 + ["RAVDESS"] * 3,
        }
    )
    projection = fstats.feature_pca({"logmel": feature_set(padded.tolist(), lengths)}, manifest)["logmel"]
    # The same by hand: mean over true frames, columns standardised (population std), sklearn's PCA.
    pooled = np.stack([clip[:, :n].mean(1) for clip, n in zip(x, lengths)])  # (6, 4)
    pooled = (pooled - pooled.mean(0)) / pooled.std(0)
    expected = PCA(n_components=2).fit(pooled)
    assert projection.explained == pytest.approx(expected.explained_variance_ratio_, rel=1e-5)
    assert projection.points == pytest.approx(expected.transform(pooled), rel=1e-4, abs=1e-5)
    assert list(projection.labels) == list(manifest["label"]) and list(projection.corpora) == list(manifest["corpus"])


def test_class_examples_take_the_first_loaded_clip_of_each_class():
    features = feature_set([A, B, B], [2, 4, 4], utt_ids=["a", "b", "c"])
    manifest = pd.DataFrame({"utt_id": ["z", "c", "a", "b"], "label": ["negative", "negative", "sad_fear", "negative"]})
    examples = fstats.class_examples(manifest, features)  # "z" has no features; "c" comes first in the manifest
    assert [(e.label, e.utt_id, e.true_frames) for e in examples] == [
        ("negative", "c", 4),
        ("sad_fear", "a", 2),
        ("pos_neutral", None, 0),
    ]
    window = examples[1].values  # clip A: frames 2 and 3 are padding
    assert window.shape == (2, 4) and window.mask.tolist() == [[False, False, True, True]] * 2
    assert window.compressed().tolist() == [1, 3, 0, 2]


def test_clip_frames_from_durations():
    manifest = pd.DataFrame(
        {"utt_id": ["a", "b", "c"], "corpus": ["EmoDB", "RAVDESS", "EmoDB"], "duration_s": [1.0, 1.234, 9.0]}
    )
    loaded = {"wav2vec2": feature_set([A, B], [2, 4], utt_ids=["c", "a"])}  # the first input's clips, its order
    frames = fstats.clip_frames(manifest, loaded, hop_ms=20.0)
    assert frames.to_dict("list") == {"utt_id": ["c", "a"], "corpus": ["EmoDB", "EmoDB"], "frames": [450.0, 50.0]}
    assert fstats.clip_frames(manifest.iloc[[1]], {"x": feature_set([A], [2], ["b"])}, 20.0)["frames"].item() == 62


def test_encoder_notes_follow_the_configuration():
    cfg = Config()
    notes = fstats.encoder_notes(cfg, ["wav2vec2", "logmel"])
    assert notes["random"] == "" and notes["reduced"] == ""
    assert notes["encoders"].startswith("wav2vec2: ") and " | logmel: log-Mel: 64 bands" in notes["encoders"]
    cfg.features.wav2vec2.weights = "random"
    cfg.features.wav2vec2.config_overrides = {"num_hidden_layers": 1}
    notes = fstats.encoder_notes(cfg, ["wav2vec2"])
    assert notes["random"].startswith("RANDOM encoder weights")
    assert "{'num_hidden_layers': 1}" in notes["reduced"] and "768 wide" in notes["reduced"]


def test_failed_clips_note(tmp_path):
    folder = RunFolder(tmp_path)
    folder.data.mkdir(parents=True)
    pd.DataFrame(columns=["input", "utt_id", "reason"]).to_csv(folder.features_failed, index=False)
    assert fstats.failed_clips_note(folder) == ""
    rows = [{"input": "logmel", "utt_id": f"u{i}", "reason": f"broken {i}"} for i in range(7)]
    pd.DataFrame(rows).to_csv(folder.features_failed, index=False)
    note = fstats.failed_clips_note(folder)
    assert note.startswith("7 clip(s) could not be read") and "u4: broken 4" in note and "u5" not in note
