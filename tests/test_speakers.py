"""serlib.data.speakers: the speaker split's arithmetic (subset sizes, sex strata) and its draw."""

from __future__ import annotations

import pandas as pd
import pytest

from serlib.common.facts import SUBSETS
from serlib.data.speakers import allocate_strata, split_speakers, subset_counts


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
