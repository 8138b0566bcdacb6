"""serlib.data.speakers: the speaker split's arithmetic (subset sizes, sex strata) and its draw."""

from __future__ import annotations

import pandas as pd
import pytest

from serlib.common.facts import SUBSETS
from serlib.data.speakers import allocate_strata, check_fractions, split_speakers, subset_counts


@pytest.mark.parametrize(
    "n, expected",
    [
        (91, [73, 9, 9]),
        (24, [19, 3, 2]),
        (10, [8, 1, 1]),
        (5, [3, 1, 1]),
        (3, [1, 1, 1]),
        (2, [2, 0, 0]),
        (1, [1, 0, 0]),
        (125, [100, 13, 12]),
    ],
)
def test_subset_counts(n, expected):
    assert subset_counts(n, (0.8, 0.1, 0.1)) == expected


@pytest.mark.parametrize(
    "totals, sizes",
    [
        ([73, 9, 9], {"male": 48, "female": 43}),
        ([19, 3, 2], {"male": 12, "female": 12}),
        ([8, 1, 1], {"male": 5, "female": 5}),
        ([3, 1, 1], {"male": 2, "female": 2, "unknown": 1}),
    ],
)
def test_strata_allocation_keeps_both_margins(totals, sizes):
    allocation = allocate_strata(totals, sizes)
    assert {s: sum(c) for s, c in allocation.items()} == sizes
    assert [sum(c[k] for c in allocation.values()) for k in range(3)] == totals
    for stratum, counts in allocation.items():  # each stratum within one speaker of proportional
        assert all(abs(c - sizes[stratum] * t / sum(totals)) < 1.0 + 1e-9 for c, t in zip(counts, totals))


def test_split_speakers_gives_each_sex_exactly_its_allocation_on_a_skewed_mix():
    # 16 male and 4 female speakers, 80/10/10: the stratified allocation is male 13/2/1, female 3/0/1
    # (checked by hand from the largest-remainder rule). A split that ignored sex would put 0, 1 or 2
    # women in test depending on the seed.
    speakers = pd.DataFrame(
        {
            "speaker": [f"CREMA-D:{1000 + i}" for i in range(20)],
            "corpus": "CREMA-D",
            "sex": ["male"] * 16 + ["female"] * 4,
        }
    )
    assert allocate_strata([16, 2, 2], {"male": 16, "female": 4}) == {"male": [13, 2, 1], "female": [3, 0, 1]}
    for seed in range(12):
        split = split_speakers(speakers, (0.8, 0.1, 0.1), seed=seed).merge(speakers, on="speaker")
        counts = (
            split.groupby(["sex", "split"]).size().unstack(fill_value=0).reindex(columns=list(SUBSETS), fill_value=0)
        )
        assert counts.loc["male"].tolist() == [13, 2, 1] and counts.loc["female"].tolist() == [3, 0, 1], seed


def test_seed_three_gives_the_same_split_as_ever():
    speakers = pd.DataFrame(
        {
            "speaker": [f"RAVDESS:{i:02d}" for i in range(1, 7)] + ["EmoDB:03", "EmoDB:08", "EmoDB:09"],
            "corpus": ["RAVDESS"] * 6 + ["EmoDB"] * 3,
            "sex": ["male", "female"] * 3 + ["male", "female", "female"],
        }
    )
    split = split_speakers(speakers, (0.5, 0.25, 0.25), seed=3)
    assert list(split["speaker"]) == list(speakers["speaker"])
    assert list(split["split"]) == ["train", "train", "val", "train", "test", "val", "test", "train", "val"]
    assert list(split.columns) == ["speaker", "split"]


@pytest.mark.parametrize(
    "n, fractions, expected",
    [
        (4, (0.5, 0.5, 0.0), [2, 2, 0]),
        (2, (0.0, 0.5, 0.5), [0, 1, 1]),
        (3, (0.34, 0.33, 0.33), [1, 1, 1]),
        (3, (0.1, 0.8, 0.1), [1, 1, 1]),  # the speakers given to the small subsets come from the largest
    ],
)
def test_subset_counts_give_a_zero_fraction_no_speaker(n, fractions, expected):
    assert subset_counts(n, fractions) == expected


def test_rotation_turns_which_stratum_is_served_first():
    assert allocate_strata([2, 1, 1], {"a": 2, "b": 2}) == {"a": [1, 1, 0], "b": [1, 0, 1]}
    assert allocate_strata([2, 1, 1], {"a": 2, "b": 2}, rotate=1) == {"b": [1, 1, 0], "a": [1, 0, 1]}
    assert allocate_strata([2, 1, 1], {"a": 2, "b": 2}, rotate=2) == {"a": [1, 1, 0], "b": [1, 0, 1]}


@pytest.mark.parametrize("fractions", [(0.8, 0.2), (0.9, 0.2, -0.1), (0.5, 0.3, 0.3)])
def test_fractions_must_be_three_non_negative_summing_to_one(fractions):
    with pytest.raises(ValueError) as err:
        check_fractions(fractions)
    assert str(err.value) == (
        "split fractions must be three non-negative numbers summing to 1 (train, val, test), "
        f"got {tuple(float(f) for f in fractions)}"
    )
    assert check_fractions([1, 0, 0]) == (1.0, 0.0, 0.0)


def test_the_default_seed_is_zero():
    speakers = pd.DataFrame({"speaker": [f"CREMA-D:{1000 + i}" for i in range(12)], "corpus": "CREMA-D", "sex": "male"})
    assert split_speakers(speakers, (0.5, 0.25, 0.25)).equals(split_speakers(speakers, (0.5, 0.25, 0.25), seed=0))
    assert not split_speakers(speakers, (0.5, 0.25, 0.25)).equals(split_speakers(speakers, (0.5, 0.25, 0.25), seed=1))


def test_no_speakers_give_an_empty_split_with_its_columns():
    split = split_speakers(pd.DataFrame(columns=["speaker", "corpus", "sex"]))
    assert split.empty and list(split.columns) == ["speaker", "split"]


def test_no_strata_and_empty_strata_allocate_nothing():
    assert allocate_strata([0, 0, 0], {}) == {}
    assert allocate_strata([0, 0, 0], {"male": 0}, rotate=1) == {"male": [0, 0, 0]}
    assert allocate_strata([2, 1, 0], {"female": 0, "male": 3}) == {"male": [2, 1, 0], "female": [0, 0, 0]}
