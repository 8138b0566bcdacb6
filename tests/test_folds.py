"""Speaker k-fold cross-validation: every speaker tested once, strata balanced, subsets disjoint."""

from __future__ import annotations

import pandas as pd
import pytest

from serlib.data.folds import fold_of_speakers, speaker_folds


def _speakers():
    rows = [
        {"speaker": f"CREMA-D:{1000 + i}", "corpus": "CREMA-D", "sex": "male" if i < 14 else "female"}
        for i in range(23)
    ]
    rows += [
        {"speaker": f"RAVDESS:{i:02d}", "corpus": "RAVDESS", "sex": "male" if i % 2 else "female"} for i in range(1, 11)
    ]
    rows += [{"speaker": f"EmoDB:{i:02d}", "corpus": "EmoDB", "sex": "male"} for i in range(3)]  # fewer than k
    return pd.DataFrame(rows)


def test_every_speaker_is_tested_exactly_once():
    speakers = _speakers()
    folds = speaker_folds(speakers, 5, seed=0)
    tested = folds[folds["split"] == "test"]
    assert sorted(tested["speaker"]) == sorted(speakers["speaker"])
    assert len(folds) == 5 * len(speakers) and folds.groupby("fold")["speaker"].nunique().eq(len(speakers)).all()


def test_test_folds_are_balanced_per_corpus_and_sex():
    speakers = _speakers()
    folds = speaker_folds(speakers, 5, seed=1).merge(speakers, on="speaker")
    test = folds[folds["split"] == "test"]
    for (corpus, sex), group in speakers.groupby(["corpus", "sex"]):
        counts = (
            test[(test["corpus"] == corpus) & (test["sex"] == sex)]
            .groupby("fold")
            .size()
            .reindex(range(1, 6), fill_value=0)
        )
        assert counts.max() - counts.min() <= 1, (corpus, sex, counts.tolist())
    per_corpus = test.groupby(["corpus", "fold"]).size().unstack(fill_value=0)
    assert (per_corpus.max(axis=1) - per_corpus.min(axis=1)).le(1).all()
    # a corpus with fewer speakers than folds: some folds test none of it, each of its speakers once
    assert test[test["corpus"] == "EmoDB"]["fold"].nunique() == 3


def test_validation_comes_from_training_speakers_of_each_corpus():
    speakers = _speakers()
    folds = speaker_folds(speakers, 5, seed=0, val_fraction=0.2).merge(speakers, on="speaker")
    for fold, part in folds.groupby("fold"):
        assert part["speaker"].is_unique  # one subset per speaker per fold
        for corpus, group in part.groupby("corpus"):
            rest = group[group["split"] != "test"]
            assert (rest["split"] == "val").sum() == max(1, round(0.2 * len(rest)))
    assert speaker_folds(speakers, 5, seed=0).equals(speaker_folds(speakers, 5, seed=0))
    assert not speaker_folds(speakers, 5, seed=0).equals(speaker_folds(speakers, 5, seed=2))


def test_fewer_than_two_folds_is_an_error():
    with pytest.raises(ValueError, match="at least 2"):
        speaker_folds(_speakers(), 1)


def test_a_lone_validation_speaker_is_not_of_the_same_sex_in_every_fold():
    # EmoDB: 5 women, 5 men, 5 folds: each fold tests one of each and validates on one of the other eight
    speakers = pd.DataFrame(
        {"speaker": [f"EmoDB:{i:02d}" for i in range(10)], "corpus": "EmoDB", "sex": ["male", "female"] * 5}
    )
    folds = speaker_folds(speakers, 5, seed=0).merge(speakers, on="speaker")
    test, val = folds[folds["split"] == "test"], folds[folds["split"] == "val"]
    assert (test.groupby("fold")["sex"].apply(sorted) == pd.Series([["female", "male"]] * 5, index=range(1, 6))).all()
    assert val.groupby("fold").size().eq(1).all()
    assert sorted(val["sex"].value_counts().to_dict().items()) == [("female", 2), ("male", 3)]  # in turn, not 0 / 5


def _small():
    return pd.DataFrame(
        {
            "speaker": [f"RAVDESS:{i:02d}" for i in range(1, 7)] + ["EmoDB:03", "EmoDB:08", "EmoDB:09"],
            "corpus": ["RAVDESS"] * 6 + ["EmoDB"] * 3,
            "sex": ["male", "female"] * 3 + ["male", "female", "female"],
        }
    )


def test_seed_zero_gives_the_same_two_folds_as_ever():
    # pinned: a change to the draw (its seed parts, the deal, the rotation) silently changes every fold run
    folds = speaker_folds(_small(), 2, seed=0, val_fraction=0.25)
    assert list(folds["fold"]) == [1] * 9 + [2] * 9
    assert list(folds["speaker"]) == list(_small()["speaker"]) * 2
    assert list(folds["split"]) == (
        ["train", "test", "val", "test", "test", "train", "test", "train", "test"]
        + ["test", "val", "test", "train", "train", "test", "train", "test", "val"]
    )
    # EmoDB, fold 1: one non-test speaker, so no validation speaker; fold 2: two, so one validates
    assert list(folds.columns) == ["fold", "speaker", "split"] and list(folds.index) == list(range(18))


def test_two_folds_are_allowed_and_the_validation_share_is_an_open_interval():
    assert set(speaker_folds(_small(), 2)["fold"]) == {1, 2}
    with pytest.raises(ValueError) as err:
        speaker_folds(_small(), 1)
    assert str(err.value) == "data.folds must be at least 2, got 1"
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError) as err:
            speaker_folds(_small(), 2, val_fraction=bad)
        assert str(err.value) == f"val_fraction must be in (0, 1), got {bad}"
    assert (speaker_folds(_small(), 2, val_fraction=0.99)["split"] == "val").any()


def test_the_defaults_are_seed_zero_and_a_tenth_validating():
    speakers = _speakers()
    assert speaker_folds(speakers, 3).equals(speaker_folds(speakers, 3, seed=0, val_fraction=0.1))
    assert fold_of_speakers(speakers, 3) == fold_of_speakers(speakers, 3, seed=0)
    assert fold_of_speakers(speakers, 3) != fold_of_speakers(speakers, 3, seed=1)
    assert not speaker_folds(speakers, 3).equals(speaker_folds(speakers, 3, val_fraction=0.3))


@pytest.mark.parametrize("seed", [0, 2, 7])
def test_each_speakers_test_fold_is_the_deal_of_the_same_seed(seed):
    speakers = _speakers()
    folds = speaker_folds(speakers, 4, seed=seed)
    tested = folds[folds["split"] == "test"].set_index("speaker")["fold"].to_dict()
    assert tested == fold_of_speakers(speakers, 4, seed=seed)


def test_seed_five_gives_the_same_three_folds_as_ever():
    # three folds and three strata (sex unknown too): pins the deal's direction, its offset and the rotation
    speakers = pd.DataFrame(
        {
            "speaker": [f"CREMA-D:{1001 + i}" for i in range(12)],
            "corpus": "CREMA-D",
            "sex": ["male", "female", "unknown"] * 4,
        }
    )
    folds = speaker_folds(speakers, 3, seed=5, val_fraction=0.3)
    assert folds["split"].tolist() == (
        ["train", "train", "train", "train", "test", "val", "test", "train", "train", "val", "test", "test"]
        + ["train", "train", "val", "test", "val", "train", "train", "test", "test", "test", "train", "train"]
        + ["test", "test", "test", "val", "train", "test", "train", "val", "train", "train", "train", "train"]
    )
