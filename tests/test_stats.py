"""The statistics behind every interval and test of the report, against hand-computed cases and
independent implementations (scikit-learn, statsmodels)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from serlib.analysis import stats
from serlib.modelling.metrics import classification_metrics


def _toy(n_speakers=8, clips=10, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n_speakers * clips)
    skill = np.repeat(rng.uniform(0.3, 0.95, n_speakers), clips)  # speakers differ: clips are not independent
    pred = np.where(rng.random(len(y)) < skill, y, (y + 1 + rng.integers(0, 2, len(y))) % 3)
    speakers = np.repeat([f"spk{i}" for i in range(n_speakers)], clips)
    return y, pred, speakers


def test_metrics_from_counts_match_sklearn():
    y, pred, _ = _toy()
    counts = np.zeros((3, 3))
    np.add.at(counts, (y, pred), 1)
    got = stats.metrics_from_counts(counts)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert got["uar"] == pytest.approx(recall_score(y, pred, average="macro"))
    assert got["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))


def test_uar_is_macro_recall_where_macro_and_micro_differ():
    y = [0] * 8 + [1, 2]  # imbalanced: accuracy (micro) rewards the majority class
    pred = [0] * 8 + [0, 0]
    m = classification_metrics(y, pred)
    assert m["accuracy"] == pytest.approx(0.8) and m["uar"] == pytest.approx(1 / 3)


def test_speaker_interval_differs_from_the_clip_interval():
    # Five speakers: two always right, three always wrong. Clip-level resampling treats the 50 clips as
    # independent and gives a narrow interval; speaker resampling sees only five independent units.
    y = np.zeros(50, int)
    pred = np.r_[np.zeros(20, int), np.ones(30, int)]
    speakers = np.repeat(["a", "b", "c", "d", "e"], 10)
    by_speaker = stats.speaker_bootstrap(y, pred, speakers, n_resamples=2000, seed=1).set_index("metric")
    by_clip = stats.speaker_bootstrap(y, pred, np.arange(50).astype(str), n_resamples=2000, seed=1).set_index("metric")
    assert by_speaker.at["accuracy", "value"] == pytest.approx(0.4) == by_clip.at["accuracy", "value"]
    # speaker unit: accuracy is (speakers right among 5 drawn) / 5: its 2.5 % quantile is 0 or 0.2
    assert by_speaker.at["accuracy", "lo"] <= 0.2 and by_speaker.at["accuracy", "hi"] >= 0.8
    width = lambda t: t.at["accuracy", "hi"] - t.at["accuracy", "lo"]  # noqa: E731
    assert width(by_speaker) > 2 * width(by_clip)
    assert by_speaker.at["accuracy", "unit"] == "speaker"


def test_speaker_bootstrap_is_reproducible_and_covers_the_point():
    y, pred, speakers = _toy()
    a = stats.speaker_bootstrap(y, pred, speakers, n_resamples=500, seed=3)
    b = stats.speaker_bootstrap(y, pred, speakers, n_resamples=500, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert (a["lo"] <= a["value"]).all() and (a["value"] <= a["hi"]).all()
    assert not a.equals(stats.speaker_bootstrap(y, pred, speakers, n_resamples=500, seed=4))


def test_fewer_than_five_speakers_gives_a_labelled_clip_interval():
    y, pred, speakers = _toy(n_speakers=4)
    table = stats.speaker_bootstrap(y, pred, speakers, n_resamples=200)
    assert set(table["unit"]) == {"clip"} and table["note"].str.contains("n/a: 4 test speaker").all()


def test_seeds_are_averaged():
    y, pred, speakers = _toy()
    flipped = np.where(np.arange(len(y)) % 2 == 0, pred, (pred + 1) % 3)
    both = stats.speaker_bootstrap(y, np.stack([pred, flipped]), speakers, n_resamples=100).set_index("metric")
    one = accuracy_score(y, pred)
    two = accuracy_score(y, flipped)
    assert both.at["accuracy", "value"] == pytest.approx((one + two) / 2) and both.at["accuracy", "n_seeds"] == 2


def test_paired_bootstrap_of_identical_systems_is_exactly_zero():
    y, pred, speakers = _toy()
    table = stats.paired_bootstrap(y, pred, pred, speakers, n_resamples=300)
    assert (table["delta"] == 0).all() and (table["lo"] == 0).all() and (table["hi"] == 0).all()


def test_paired_bootstrap_sees_a_consistent_improvement():
    y, pred, speakers = _toy()
    better = pred.copy()
    better[::3] = y[::3]  # b fixes a third of the clips, on every speaker
    row = stats.paired_bootstrap(y, pred, better, speakers, n_resamples=1000).set_index("metric").loc["accuracy"]
    assert row["delta"] == pytest.approx(accuracy_score(y, better) - accuracy_score(y, pred))
    assert row["lo"] > 0 and row["share_le_0"] == 0


@pytest.mark.parametrize(
    "a,b",
    [
        ([1, 1, 0, 0, 1, 0, 1, 1], [1, 0, 0, 1, 1, 1, 1, 1]),
        ([1] * 30 + [0] * 10, [1] * 20 + [0] * 10 + [1] * 10),
        ([1, 0, 1], [1, 0, 1]),
    ],
)
def test_mcnemar_matches_statsmodels(a, b):
    a, b = np.array(a, bool), np.array(b, bool)
    got = stats.mcnemar_exact(a, b)
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    assert got["b"] == table[0][1] and got["c"] == table[1][0]
    assert got["p"] == pytest.approx(mcnemar(table, exact=True).pvalue)


@pytest.mark.parametrize("pvalues", [[0.01, 0.04, 0.03, 0.2], [0.001, 0.5, 0.049, 0.02, 0.9], [0.3]])
def test_holm_and_bh_match_statsmodels(pvalues):
    for ours, method in ((stats.holm, "holm"), (stats.benjamini_hochberg, "fdr_bh")):
        adjusted, reject = ours(pvalues, 0.05)
        want_reject, want_adjusted, _, _ = multipletests(pvalues, 0.05, method=method)
        np.testing.assert_allclose(adjusted, want_adjusted)
        assert list(reject) == list(want_reject)


def test_expected_calibration_error_by_hand():
    # Two bins used (of 10): confidence 0.9 on 4 clips (3 right: accuracy 0.75) and 0.6 on 2 clips (both right).
    probs = np.array([[0.9, 0.05, 0.05]] * 4 + [[0.6, 0.3, 0.1]] * 2)
    y = [0, 0, 0, 1, 0, 0]
    table = stats.reliability_table(probs, y, n_bins=10)
    assert table["clips"].sum() == 6 and table.loc[table["clips"] > 0, "bin"].tolist() == [5, 8]
    assert stats.expected_calibration_error(probs, y, n_bins=10) == pytest.approx((4 * 0.15 + 2 * 0.4) / 6)


def test_zscore_within_speaker():
    df = pd.DataFrame({"speaker": ["a", "a", "a", "b", "b", "c"], "f0": [100.0, 110, 120, 200, 220, 300]})
    z = stats.zscore_within(df, "speaker", ["f0"])["f0"]
    np.testing.assert_allclose(z[:5], [-1, 0, 1, -1 / np.sqrt(2), 1 / np.sqrt(2)])
    assert np.isnan(z[5])  # one clip: nothing to standardise against


def test_compare_predictions_aligns_on_shared_clips():
    y, pred, speakers = _toy()
    names = np.array(["negative", "sad_fear", "pos_neutral"])
    a = pd.DataFrame(
        {"utt_id": [f"u{i}" for i in range(len(y))], "label": names[y], "pred": names[pred], "speaker": speakers}
    )
    better = pred.copy()
    better[::2] = y[::2]
    b = a.assign(pred=names[better]).iloc[5:]  # b lacks the first five clips
    table, info = stats.compare_predictions(a, b, n_resamples=200)
    assert info["clips"] == len(y) - 5 and info["only_a"] == 5 and info["only_b"] == 0
    acc = table.set_index("metric").loc["accuracy"]
    assert acc["a"] == pytest.approx(accuracy_score(y[5:], pred[5:]))
    assert acc["b"] == pytest.approx(accuracy_score(y[5:], better[5:])) and acc["mcnemar_p"] < 0.05


# --------------------------------------------------------------------------- speaker sign-flip test


def test_signflip_by_hand():
    # Three speakers whose accuracy differences (b - a) are 1, 0.5 and 0: the mean is 0.5. Of the 8 sign patterns,
    # +-(1 + 0.5 + 0) / 3 = +-0.5 twice each (the 0 takes either sign) and +-(1 - 0.5) / 3 = +-0.167 twice each:
    # 4 patterns reach |0.5|, so p = 4 / 8.
    y = np.array([0, 1, 0, 1, 2, 2])
    a = np.array([1, 0, 0, 0, 2, 0])  # speaker s1: 0/2, s2: 1/2, s3: 1/2
    b = np.array([0, 1, 0, 1, 2, 0])  # speaker s1: 2/2, s2: 2/2, s3: 1/2
    speakers = ["s1", "s1", "s2", "s2", "s3", "s3"]
    out = stats.speaker_signflip_test(y, a, b, speakers, metric="accuracy")
    assert out["mean_speaker_delta"] == pytest.approx(0.5)
    assert out["p"] == pytest.approx(0.5) and out["exact"] and out["n_patterns"] == 8 and out["n_speakers"] == 3


def _per_speaker_uar(y, pred, speakers):
    """UAR within each speaker by scikit-learn, over the classes that speaker's clips hold (seed mean)."""
    pred = np.atleast_2d(pred)
    out = []
    for s in sorted(set(speakers)):
        rows = np.asarray(speakers) == s
        present = np.unique(y[rows])
        out.append(
            np.mean([recall_score(y[rows], p[rows], labels=present, average="macro", zero_division=0) for p in pred])
        )
    return np.array(out)


def _brute_force_p(deltas):
    observed = abs(deltas.mean())
    means = [abs(np.dot(signs, deltas) / len(deltas)) for signs in itertools.product([-1, 1], repeat=len(deltas))]
    return np.mean(np.array(means) >= observed - 1e-12)


def test_signflip_matches_brute_force_enumeration_with_seeds():
    rng = np.random.default_rng(3)
    speakers = np.repeat([f"spk{i}" for i in range(7)], 9)
    y = rng.integers(0, 3, len(speakers))
    a = np.where(rng.random((2, len(y))) < 0.5, y, rng.integers(0, 3, (2, len(y))))  # two seeds
    b = np.where(rng.random((2, len(y))) < 0.7, y, rng.integers(0, 3, (2, len(y))))
    deltas = _per_speaker_uar(y, b, speakers) - _per_speaker_uar(y, a, speakers)
    out = stats.speaker_signflip_test(y, a, b, speakers, metric="uar")
    assert out["mean_speaker_delta"] == pytest.approx(deltas.mean())
    assert out["p"] == pytest.approx(_brute_force_p(deltas)) and out["exact"] and out["n_patterns"] == 2**7


def test_signflip_beyond_the_exact_limit_draws_seeded_patterns_near_the_exact_p():
    rng = np.random.default_rng(5)
    speakers = np.repeat([f"spk{i:02d}" for i in range(18)], 4)
    y = rng.integers(0, 3, len(speakers))
    a = np.where(rng.random(len(y)) < 0.5, y, (y + 1) % 3)
    b = np.where(rng.random(len(y)) < 0.6, y, (y + 1) % 3)
    exact = stats.speaker_signflip_test(y, a, b, speakers, metric="accuracy", max_exact_speakers=18)
    drawn = stats.speaker_signflip_test(y, a, b, speakers, metric="accuracy", n_resamples=20000, seed=1)
    assert exact["exact"] and not drawn["exact"] and drawn["n_patterns"] == 20000
    deltas = np.zeros(18)  # accuracy per speaker, by hand
    for i, s in enumerate(sorted(set(speakers))):
        rows = speakers == s
        deltas[i] = (b[rows] == y[rows]).mean() - (a[rows] == y[rows]).mean()
    assert exact["p"] == pytest.approx(_brute_force_p(deltas))
    assert abs(drawn["p"] - exact["p"]) < 0.02  # 20,000 draws: standard error below 0.004
    again = stats.speaker_signflip_test(y, a, b, speakers, metric="accuracy", n_resamples=20000, seed=1)
    assert again["p"] == drawn["p"]


def test_signflip_of_identical_systems_is_one():
    y = np.array([0, 1, 2, 0, 1, 2])
    pred = np.array([0, 2, 2, 1, 1, 2])
    out = stats.speaker_signflip_test(y, pred, pred, ["a", "a", "b", "b", "c", "c"])
    assert out["p"] == 1.0 and out["mean_speaker_delta"] == 0.0


def test_group_metrics_score_each_group_alone_and_average_the_seeds():
    y, pred, speakers = _toy(n_speakers=9)
    groups = np.where(
        np.isin(speakers, ["spk0", "spk1", "spk2"]),
        "fold1",
        np.where(np.isin(speakers, ["spk3", "spk4", "spk5"]), "fold2", "fold3"),
    )
    other = np.where(np.arange(len(y)) % 4 == 0, (pred + 1) % 3, pred)  # a second seed
    table = stats.group_metrics(y, np.stack([pred, other]), groups).set_index("group")
    for fold in ("fold1", "fold2", "fold3"):
        part = groups == fold
        for metric, score in (
            ("accuracy", accuracy_score),
            ("uar", lambda a, b: recall_score(a, b, average="macro")),
            ("macro_f1", lambda a, b: f1_score(a, b, average="macro")),
        ):
            expected = np.mean([score(y[part], p[part]) for p in (pred, other)])
            assert table.at[fold, metric] == pytest.approx(expected), (fold, metric)
        assert table.at[fold, "n_clips"] == part.sum()


# --------------------------------------------------------------------------- the verdict test


def _simulated_pair(rng, gains, n_speakers=12, clips=64):
    """Two systems on ``n_speakers`` x ``clips`` clips: per speaker a base accuracy, and b gaining ``gains[s]``
    (points / 100) over a on that speaker (a and b err independently given the speaker)."""
    base = rng.uniform(0.45, 0.75, n_speakers)
    y = rng.integers(0, 3, n_speakers * clips)
    p_a = np.repeat(np.clip(base - gains / 2, 0, 1), clips)
    p_b = np.repeat(np.clip(base + gains / 2, 0, 1), clips)
    pred_a = np.where(rng.random(len(y)) < p_a, y, (y + 1) % 3)
    pred_b = np.where(rng.random(len(y)) < p_b, y, (y + 1) % 3)
    return y, pred_a, pred_b, np.repeat([f"s{i}" for i in range(n_speakers)], clips)


def _rejection_rates(gain_mean, gain_sd, runs=300, seed=11):
    rng = np.random.default_rng(seed)
    speaker_hits = clip_hits = 0
    for _ in range(runs):
        y, a, b, speakers = _simulated_pair(rng, rng.normal(gain_mean, gain_sd, 12))
        speaker_hits += stats.speaker_signflip_test(y, a, b, speakers, metric="accuracy")["p"] < 0.05
        clip_hits += stats.mcnemar_exact(a == y, b == y)["p"] < 0.05
    return speaker_hits / runs, clip_hits / runs


def test_the_verdict_test_holds_its_level_where_mcnemar_does_not():
    # no mean gain, but a gain that varies by speaker (sd 12 points): the clips of a speaker move together
    speaker_rate, clip_rate = _rejection_rates(0.0, 0.12)
    assert speaker_rate <= 0.07
    assert clip_rate > 0.12  # the clip-level test treats ~768 dependent clips as independent


def test_the_verdict_test_detects_a_consistent_gain():
    speaker_rate, _ = _rejection_rates(0.08, 0.0)
    assert speaker_rate >= 0.6


@pytest.mark.parametrize(
    "p,delta,verdict",
    [
        (0.01, 0.03, "supported"),
        (0.01, -0.03, "contradicted: significantly worse"),
        (0.05, 0.03, "not supported: within noise"),  # adjusted p must be below alpha, not equal
        (0.20, -0.01, "not supported: no gain"),
        (0.20, 0.0, "not supported: no gain"),
    ],
)
def test_a_verdict_needs_the_adjusted_p_and_the_claimed_direction(p, delta, verdict):
    assert stats.claim_verdict(p, delta, 0.05) == verdict


def test_the_bootstrap_over_seeds_widens_the_interval_by_the_seed_spread():
    # every speaker alike; seed 0 right on every clip, seed 1 wrong on every clip: only the seeds vary
    y = np.zeros(60, int)
    preds = np.stack([np.zeros(60, int), np.ones(60, int)])
    speakers = np.repeat([f"s{i}" for i in range(6)], 10)
    row = stats.speaker_bootstrap(y, preds, speakers, n_resamples=400, seed=2).set_index("metric").loc["accuracy"]
    assert row["value"] == pytest.approx(0.5)
    assert row["lo"] == 0.0 and row["hi"] == 1.0  # draws of (0, 0) and (1, 1) seeds: a quarter each
    one = stats.speaker_bootstrap(y, preds[:1], speakers, n_resamples=400, seed=2).set_index("metric")
    assert one.at["accuracy", "lo"] == one.at["accuracy", "hi"] == 1.0  # one seed: nothing to draw


def test_compare_predictions_decides_by_speakers_and_votes_softly():
    y, pred, speakers = _toy(n_speakers=6, clips=6)
    names = np.array(["negative", "sad_fear", "pos_neutral"])
    ids = [f"u{i}" for i in range(len(y))]
    rows = []
    for s, p in enumerate([pred, (pred + 1) % 3]):  # seed 1 always wrong where seed 0 is right
        probs = np.full((len(y), 3), 0.2)
        probs[np.arange(len(y)), p] = 0.6 if s == 0 else 0.45  # seed 0 is the more confident
        rows.append(
            pd.DataFrame({"utt_id": ids, "label": names[y], "pred": names[p], "speaker": speakers, "seed": s}).assign(
                **{f"prob_{c}": probs[:, i] for i, c in enumerate(names)}
            )
        )
    a = pd.concat(rows, ignore_index=True)
    np.testing.assert_array_equal(stats.soft_vote(a, ids), pred)  # the mean probability follows seed 0
    table, _ = stats.compare_predictions(a, a.assign(seed=a["seed"] + 5), n_resamples=100)
    assert (table["speaker_p"] == 1.0).all() and (table["speaker_delta"] == 0).all()
    assert (table["mcnemar_p"] == 1).all()
    with pytest.raises(ValueError, match="soft vote needs the probabilities"):
        stats.soft_vote(a.drop(columns=[f"prob_{c}" for c in names]), ids)
    better = pd.DataFrame({"utt_id": ids, "label": names[y], "pred": names[y], "speaker": speakers})
    single = a[a["seed"] == 0].drop(columns=[f"prob_{c}" for c in names])
    table, _ = stats.compare_predictions(single, better, n_resamples=100)
    acc = table.set_index("metric").loc["accuracy"]
    by_speaker = pd.Series(pred == y).groupby(speakers).mean()
    assert acc["speaker_delta"] == pytest.approx((1 - by_speaker).mean())
    assert acc["speaker_p"] == pytest.approx(2 / 2**6)  # every speaker gains: only the all-+ and all-- patterns


def test_corpus_balanced_uar_is_the_mean_of_the_corpora_uars():
    y, pred, speakers = _toy(n_speakers=10, clips=12)
    corpora = np.where(np.arange(len(y)) < 100, "big", "small")  # 100 clips against 20
    out = stats.balanced_uar(y, pred, speakers, corpora, n_resamples=300, seed=1)
    big, small = corpora == "big", corpora == "small"
    by_hand = {
        "big": recall_score(y[big], pred[big], average="macro"),
        "small": recall_score(y[small], pred[small], labels=sorted(set(y[small])), average="macro"),
    }
    assert out["per_corpus"] == pytest.approx(by_hand)
    assert out["value"] == pytest.approx((by_hand["big"] + by_hand["small"]) / 2)
    assert out["value"] != pytest.approx(recall_score(y, pred, average="macro"))  # not the pooled UAR
    assert out["lo"] < out["value"] < out["hi"] and out["n_corpora"] == 2
    # "small" has 2 speakers (< 5): its clips are drawn, and the unit says so for that corpus alone
    assert len(set(speakers[small])) == 2 and len(set(speakers[big])) >= stats.MIN_SPEAKERS
    assert out["unit"] == "speaker; clip in small"
    halves = np.where(np.isin(speakers, [f"spk{i}" for i in range(5)]), "a", "b")  # 5 speakers each
    assert stats.balanced_uar(y, pred, speakers, halves, n_resamples=50)["unit"] == "speaker"
    few = stats.balanced_uar(y[:48], pred[:48], speakers[:48], corpora[:48], n_resamples=50)  # 4 speakers
    assert few["unit"] == "clip"
    three = np.select([np.isin(speakers, ["spk0", "spk1"]), np.isin(speakers, ["spk2", "spk3"])], ["c1", "c2"], "c3")
    assert stats.balanced_uar(y, pred, speakers, three, n_resamples=50)["unit"] == "speaker; clip in c1, c2"


def test_the_paired_bootstrap_draws_each_systems_seeds_apart():
    y, pred, speakers = _toy()
    seeds = np.stack([pred, np.where(np.arange(len(y)) % 2 == 0, y, (y + 1) % 3)])  # two seeds that differ
    row = stats.paired_bootstrap(y, seeds, seeds, speakers, n_resamples=500, seed=3).set_index("metric")
    assert row.at["accuracy", "delta"] == 0  # the same system twice
    assert row.at["accuracy", "lo"] < 0 < row.at["accuracy", "hi"]  # but its seeds are drawn apart for each side
    single = stats.paired_bootstrap(y, seeds[:1], seeds[:1], speakers, n_resamples=500, seed=3).set_index("metric")
    assert single.at["accuracy", "lo"] == single.at["accuracy", "hi"] == 0  # one seed: speakers only, they cancel


def test_a_verdict_needs_p_strictly_below_alpha_and_a_gain_strictly_above_zero():
    # the boundaries of claim_verdict: p equal to alpha is not significant; a zero mean difference is no gain,
    # neither supported nor contradicted; a small significant gain is supported, a significant loss contradicted
    assert stats.claim_verdict(0.049, 0.5, 0.05) == "supported"
    assert stats.claim_verdict(0.05, 0.5, 0.05) == "not supported: within noise"
    assert stats.claim_verdict(0.001, 0.0, 0.05) == "not supported: no gain"
    assert stats.claim_verdict(0.001, -0.5, 0.05) == "contradicted: significantly worse"
    assert stats.claim_verdict(0.2, -0.5, 0.05) == "not supported: no gain"


def test_holm_rejects_at_alpha_inclusive_with_alpha_five_percent_by_default():
    adjusted, rejected = stats.holm([0.05])
    assert adjusted.tolist() == [0.05] and rejected.tolist() == [True]  # as statsmodels: p <= alpha rejects
    assert multipletests([0.05], alpha=0.05, method="holm")[0].tolist() == [True]
    assert stats.holm([0.06])[1].tolist() == [False]  # the default alpha is 0.05
    assert stats.holm([0.02, 0.03], alpha=0.05)[1].tolist() == [True, True]


# --------------------------------------------------------------------------- the resamples, by brute force


def _scores(y, pred):
    """Accuracy, UAR and macro-F1 of one set of clips, by hand (recall and F1 over the classes present in y)."""
    present = np.unique(y)
    recall = [np.mean(pred[y == c] == c) for c in present]
    f1 = [2 * np.sum((y == c) & (pred == c)) / (np.sum(y == c) + np.sum(pred == c)) for c in present]
    return {"accuracy": np.mean(y == pred), "uar": np.mean(recall), "macro_f1": np.mean(f1)}


def _brute_resamples(y, preds, units, n_resamples, unit_seed, seed, stream=1):
    """Every resample's metrics, drawn as speaker_bootstrap documents: the units (sorted by name) by
    ``resample_weights(units, n_resamples, unit_seed)``, the clips of a unit repeated as often as it is drawn; then the
    seeds by ``default_rng([seed, stream])``, the statistic the mean of the drawn seeds' metrics (with repeats)."""
    preds = np.atleast_2d(preds)
    units = np.asarray(units).astype(str)
    names = sorted(set(units))
    weights = stats.resample_weights(len(names), n_resamples, unit_seed)
    seed_draws = np.random.default_rng([seed, stream]).integers(0, len(preds), size=(n_resamples, len(preds)))
    out = {m: np.zeros(n_resamples) for m in stats.METRICS}
    for r in range(n_resamples):
        rows = np.concatenate([np.repeat(np.flatnonzero(units == u), int(k)) for u, k in zip(names, weights[r])])
        drawn = seed_draws[r] if len(preds) > 1 else [0]
        for m in out:
            out[m][r] = np.mean([_scores(y[rows], preds[s][rows])[m] for s in drawn])
    return out


def _two_seeds(n_speakers, clips=6, seed=2):
    y, pred, speakers = _toy(n_speakers=n_speakers, clips=clips, seed=seed)
    other = np.where(np.arange(len(y)) % 3 == 0, (pred + 1) % 3, pred)
    return y, np.stack([pred, other]), speakers


@pytest.mark.parametrize("n_speakers", [7, 4])  # with 4 speakers each clip is a unit
def test_speaker_bootstrap_interval_is_the_documented_resampling_by_brute_force(n_speakers):
    y, preds, speakers = _two_seeds(n_speakers)
    table = stats.speaker_bootstrap(y, preds, speakers, n_resamples=120, seed=4, level=0.8).set_index("metric")
    units = speakers if n_speakers >= stats.MIN_SPEAKERS else np.arange(len(y))
    drawn = _brute_resamples(y, preds, units, 120, 4, 4)
    for m in stats.METRICS:
        assert [table.at[m, "lo"], table.at[m, "hi"]] == pytest.approx(np.percentile(drawn[m], [10, 90])), m
        assert table.at[m, "value"] == pytest.approx(np.mean([_scores(y, p)[m] for p in preds])), m


@pytest.mark.parametrize("n_speakers", [6, 3])
def test_paired_bootstrap_is_the_documented_resampling_by_brute_force(n_speakers):
    # b shares a's first seed: a resample that draws that seed twice on both sides has a difference of exactly 0
    y, preds_a, speakers = _two_seeds(n_speakers, seed=5)
    preds_b = np.stack([preds_a[0], np.where(np.arange(len(y)) % 2 == 0, y, preds_a[1])])
    table = stats.paired_bootstrap(y, preds_a, preds_b, speakers, n_resamples=150, seed=6, level=0.9)
    table = table.set_index("metric")
    units = speakers if n_speakers >= stats.MIN_SPEAKERS else np.arange(len(y))
    res_a = _brute_resamples(y, preds_a, units, 150, 6, 6, stream=1)
    res_b = _brute_resamples(y, preds_b, units, 150, 6, 6, stream=2)
    for m in stats.METRICS:
        delta = res_b[m] - res_a[m]
        assert [table.at[m, "lo"], table.at[m, "hi"]] == pytest.approx(np.percentile(delta, [5, 95])), m
        assert (delta == 0).any() and table.at[m, "share_le_0"] == pytest.approx(np.mean(delta <= 0)), m
        a, b = (np.mean([_scores(y, p)[m] for p in preds]) for preds in (preds_a, preds_b))
        assert table.at[m, "a"] == pytest.approx(a) and table.at[m, "b"] == pytest.approx(b)


def test_corpus_balanced_uar_interval_is_the_documented_stratified_resampling_by_brute_force():
    # corpus "a" has 6 speakers (drawn by speaker), corpus "b" 3 (drawn by clip); two seeds, drawn alike in both
    y, preds, speakers = _two_seeds(9, seed=7)
    corpora = np.where(np.isin(speakers, [f"spk{i}" for i in range(6)]), "a", "b")
    out = stats.balanced_uar(y, preds, speakers, corpora, n_resamples=100, seed=3, level=0.8)
    per_corpus, drawn = {}, []
    for k, corpus in enumerate(["a", "b"]):
        rows = corpora == corpus
        units = speakers[rows] if corpus == "a" else np.arange(rows.sum())
        drawn.append(_brute_resamples(y[rows], preds[:, rows], units, 100, 3 + 7919 * k, 3)["uar"])
        per_corpus[corpus] = np.mean([_scores(y[rows], p[rows])["uar"] for p in preds])
    assert out["per_corpus"] == pytest.approx(per_corpus)
    assert out["value"] == pytest.approx(np.mean(list(per_corpus.values())))
    assert [out["lo"], out["hi"]] == pytest.approx(np.percentile(np.mean(drawn, axis=0), [10, 90]))


def test_resample_weights_count_each_resamples_draws_with_replacement():
    weights = stats.resample_weights(5, 4000, seed=1)
    assert weights.shape == (4000, 5) and (weights.sum(axis=1) == 5).all()  # each resample draws 5 groups
    assert (weights == np.round(weights)).all() and weights.min() >= 0
    # a group is drawn Binomial(5, 1/5) times: once on average, never with probability 0.8^5
    assert weights.mean(axis=0) == pytest.approx(np.ones(5), abs=0.06)
    assert np.mean(weights == 0) == pytest.approx(0.8**5, abs=0.02)
    assert np.array_equal(weights, stats.resample_weights(5, 4000, seed=1))


def test_the_seeds_of_each_resample_are_counted_as_documented():
    # the second level of the bootstrap: (resamples, seeds) multiplicities of default_rng([seed, stream]).integers
    weights = stats._seed_weights(300, 4, seed=5, stream=2)
    draws = np.random.default_rng([5, 2]).integers(0, 4, size=(300, 4))
    assert np.array_equal(weights, np.stack([np.bincount(row, minlength=4) for row in draws]))
    assert (weights.sum(axis=1) == 4).all()  # each resample draws as many seeds as there are
    assert np.array_equal(stats._seed_weights(7, 1, seed=5, stream=2), np.ones((7, 1)))  # one seed: always it


# --------------------------------------------------------------------------- defaults, columns, messages


def test_the_defaults_the_report_relies_on():
    # 1000 resamples, seed 0, 95 %; exact sign flips up to 16 speakers, then 10,000 patterns; 15 calibration bins
    y, preds, speakers = _two_seeds(17, clips=4, seed=8)
    corpora = np.where(np.arange(len(y)) < 40, "a", "b")
    explicit = {"n_resamples": 1000, "seed": 0, "level": 0.95}
    pd.testing.assert_frame_equal(
        stats.speaker_bootstrap(y, preds, speakers), stats.speaker_bootstrap(y, preds, speakers, **explicit)
    )
    pd.testing.assert_frame_equal(
        stats.paired_bootstrap(y, preds, preds[::-1], speakers),
        stats.paired_bootstrap(y, preds, preds[::-1], speakers, **explicit),
    )
    assert stats.balanced_uar(y, preds, speakers, corpora) == stats.balanced_uar(
        y, preds, speakers, corpora, **explicit
    )
    flip = stats.speaker_signflip_test(y, preds[0], preds[1], speakers)
    assert flip == stats.speaker_signflip_test(y, preds[0], preds[1], speakers, n_resamples=10000, seed=0)
    assert not flip["exact"] and flip["n_patterns"] == 10000
    assert stats.speaker_signflip_test(y[:64], preds[0, :64], preds[1, :64], speakers[:64])["exact"]  # 16
    probs = np.random.default_rng(0).dirichlet([1, 1, 1], 50)
    assert len(stats.reliability_table(probs, y[:50])) == 15
    names = np.array(["negative", "sad_fear", "pos_neutral"])
    ids = [f"u{i}" for i in range(len(y))]
    a = pd.DataFrame({"utt_id": ids, "label": names[y], "pred": names[preds[0]], "speaker": speakers})
    b = a.assign(pred=names[preds[1]])
    table, _ = stats.compare_predictions(a, b)
    pd.testing.assert_frame_equal(table, stats.compare_predictions(a, b, n_signflips=10000, **explicit)[0])
    assert table["n_resamples"].eq(1000).all() and not table["speaker_exact"].any()
    assert stats.benjamini_hochberg([0.06])[1].tolist() == [False]  # the default alpha is 0.05


def test_the_interval_tables_carry_their_provenance():
    y, pred, speakers = _toy(n_speakers=6, clips=5)
    for table in (
        stats.speaker_bootstrap(y, pred, speakers, n_resamples=50, level=0.9),
        stats.paired_bootstrap(y, pred, (pred + 1) % 3, speakers, n_resamples=50, level=0.9),
    ):
        assert table["metric"].tolist() == list(stats.METRICS)
        for column, value in (("unit", "speaker"), ("note", ""), ("n_speakers", 6), ("n_clips", 30)):
            assert table[column].eq(value).all(), column
        assert table["n_resamples"].eq(50).all() and table["level"].eq(0.9).all()
    table = stats.paired_bootstrap(y[:20], pred[:20], pred[:20], speakers[:20], n_resamples=50)
    assert table["unit"].eq("clip").all() and table["n_speakers"].eq(4).all()
    note = (
        "speaker interval n/a: 4 test speaker(s) (< 5); the interval resamples clips and is too narrow for new speakers"
    )
    assert table["note"].eq(note).all()


def test_group_metrics_count_clips_as_integers():
    y, pred, speakers = _toy(n_speakers=3, clips=4)
    table = stats.group_metrics(y, pred, speakers)
    assert table["n_clips"].tolist() == [4, 4, 4] and pd.api.types.is_integer_dtype(table["n_clips"])


def test_labels_read_as_floats_score_as_class_indices():
    y, pred, speakers = _toy(n_speakers=6, clips=5)
    pd.testing.assert_frame_equal(
        stats.speaker_bootstrap(y.astype(float), pred, speakers, n_resamples=50),
        stats.speaker_bootstrap(y, pred, speakers, n_resamples=50),
    )


def test_misaligned_inputs_are_refused():
    y, pred, speakers = _toy(n_speakers=6, clips=5)
    with pytest.raises(ValueError, match=r"groups \(29\) do not align"):
        stats.speaker_bootstrap(y, pred, speakers[:-1])
    with pytest.raises(ValueError, match=r"y_pred \(1, 29\) and groups \(30\) do not align"):
        stats.group_metrics(y, pred[:-1], speakers)
    with pytest.raises(ValueError, match=r"\(3,\) and \(2,\) differ; score the same clips"):
        stats.mcnemar_exact([True, False, True], [True, False])
    with pytest.raises(ValueError, match="metric 'f1' is not one of accuracy, uar, macro_f1"):
        stats.speaker_signflip_test(y, pred, pred, speakers, metric="f1")


def test_mcnemar_reads_correctness_given_as_numbers():
    a, b = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # as read from a CSV
    assert stats.mcnemar_exact(a, b) == stats.mcnemar_exact(np.array(a, bool), np.array(b, bool))


def test_benjamini_hochberg_adjusts_single_precision_p_values_in_double():
    p = np.array([0.011, 0.023, 0.037, 0.041, 0.30], dtype=np.float32)
    np.testing.assert_array_equal(stats.benjamini_hochberg(p)[0], stats.benjamini_hochberg(p.astype(float))[0])
    np.testing.assert_array_equal(stats.holm(p)[0], stats.holm(p.astype(float))[0])


def test_a_significant_loss_needs_p_strictly_below_alpha_too():
    assert stats.claim_verdict(0.05, -0.03, 0.05) == "not supported: no gain"


# --------------------------------------------------------------------------- sign flips: ties and the Monte Carlo p


def _gains(n_speakers, gaining, clips=3):
    """a wrong on every clip; b right on every clip of the first ``gaining`` speakers, as a elsewhere."""
    y = np.zeros(n_speakers * clips, int)
    a = np.ones_like(y)
    b = np.where(np.arange(len(y)) < gaining * clips, 0, 1)
    return y, a, b, np.repeat([f"s{i:02d}" for i in range(n_speakers)], clips)


def test_signflip_counts_the_observed_pattern_once_beyond_the_exact_limit():
    # every one of 17 speakers gains: only the all-+ and all-- patterns (2 of 2^17) are as extreme, and none of 200
    # drawn patterns is one of them, so p = (1 + 0) / (1 + 200)
    y, a, b, speakers = _gains(17, 17)
    out = stats.speaker_signflip_test(y, a, b, speakers, metric="accuracy", n_resamples=200, seed=0)
    assert not out["exact"] and out["p"] == pytest.approx(1 / 201) and out["metric"] == "accuracy"


def test_signflip_speakers_without_a_difference_take_either_sign():
    # one speaker gains, 16 do not: every pattern's mean is +-1/17, as extreme as the observed one: p = 1
    y, a, b, speakers = _gains(17, 1)
    drawn = stats.speaker_signflip_test(y, a, b, speakers, metric="accuracy", n_resamples=200)
    assert not drawn["exact"] and drawn["p"] == 1.0 and drawn["mean_speaker_delta"] == pytest.approx(1 / 17)
    exact = stats.speaker_signflip_test(y, a, b, speakers, metric="accuracy", max_exact_speakers=17)
    assert exact["exact"] and exact["p"] == 1.0 and exact["n_patterns"] == 2**17


# --------------------------------------------------------------------------- two prediction tables


def _tables(n_speakers, clips=4, seed=9):
    y, pred, speakers = _toy(n_speakers=n_speakers, clips=clips, seed=seed)
    names = np.array(["negative", "sad_fear", "pos_neutral"])
    better = np.where(np.arange(len(y)) % 3 == 0, y, pred)
    a = pd.DataFrame({"utt_id": [f"u{i}" for i in range(len(y))], "label": y, "pred": pred, "speaker": speakers})
    return a, a.assign(pred=better), names


def test_compare_predictions_passes_its_settings_on():
    a, better, _ = _tables(17)
    # a gain blurred by noise: p is mid-range, so which 300 sign patterns the seed draws shows in it
    b = a.assign(pred=np.where(np.arange(len(a)) % 5 == 0, (a["pred"] + 1) % 3, better["pred"]))
    y, pa, pb, speakers = a["label"].to_numpy(), a["pred"].to_numpy(), b["pred"].to_numpy(), a["speaker"].to_numpy()
    table, _ = stats.compare_predictions(a, b, n_resamples=80, seed=3, level=0.8, n_signflips=300)
    paired = stats.paired_bootstrap(y, pa, pb, speakers, n_resamples=80, seed=3, level=0.8)
    pd.testing.assert_frame_equal(table[paired.columns], paired)
    for metric, row in table.set_index("metric").iterrows():
        flip = stats.speaker_signflip_test(y, pa, pb, speakers, metric, n_resamples=300, seed=3)
        assert row["speaker_p"] == flip["p"] and row["speaker_exact"] == flip["exact"] is False
    other_seed = stats.speaker_signflip_test(y, pa, pb, speakers, "accuracy", n_resamples=300, seed=0)
    assert table.set_index("metric").at["accuracy", "speaker_p"] != other_seed["p"]  # the seed shows in p
    small, _ = stats.compare_predictions(*_tables(6)[:2], n_resamples=50)
    assert small["speaker_exact"].tolist() == [True, True, True]


def test_compare_predictions_refuses_tables_of_other_clips_or_other_labels():
    a, b, _ = _tables(6)
    with pytest.raises(ValueError, match="^the two prediction tables share no utt_id: they were not scored on"):
        stats.compare_predictions(a, b.assign(utt_id=b["utt_id"] + "x"))
    with pytest.raises(ValueError, match="^the two prediction tables give different labels to the same clips$"):
        stats.compare_predictions(a, b.assign(label=(b["label"] + 1) % 3))
    with pytest.raises(ValueError, match=r"^column 'pred' holds a value that is not one of \("):
        stats.compare_predictions(a, b.assign(pred="angry"))
    one, _ = stats.compare_predictions(a, b.iloc[:1], n_resamples=20)  # a single shared clip is scored
    assert one["n_clips"].eq(1).all()


def test_a_clip_listed_twice_counts_once_by_its_first_row():
    a, b, _ = _tables(6)
    first = a.iloc[:1].assign(pred=a["label"].iloc[0])  # right
    again = a.iloc[:1].assign(pred=(a["label"].iloc[0] + 2) % 3)  # wrong: the mean of the two is a third class
    doubled = pd.concat([first, again, a.iloc[1:]], ignore_index=True)
    table, info = stats.compare_predictions(doubled, b, n_resamples=20)
    want = np.mean(np.r_[True, (a["pred"] == a["label"]).to_numpy()[1:]])
    assert info["clips"] == len(a) and table.set_index("metric").at["accuracy", "a"] == pytest.approx(want)
    ids = a["utt_id"].tolist()
    np.testing.assert_array_equal(stats.soft_vote(doubled, ids), np.r_[first["pred"], a["pred"].iloc[1:]])


def test_soft_vote_gives_class_indices_and_names_the_missing_columns():
    a, _, _ = _tables(6)
    vote = stats.soft_vote(a.assign(pred=a["pred"].astype(float)), a["utt_id"])
    assert vote.dtype.kind == "i" and vote.tolist() == a["pred"].tolist()
    two = pd.concat([a.assign(seed=0), a.assign(seed=1)])
    with pytest.raises(ValueError, match="no prob_negative, prob_sad_fear, prob_pos_neutral columns"):
        stats.soft_vote(two, a["utt_id"])


# --------------------------------------------------------------------------- calibration and z-scores


def test_reliability_bins_reach_both_ends_and_an_edge_falls_in_the_lower_bin():
    probs = np.array([[0.4, 0.35, 0.25], [0.5, 0.25, 0.25], [0.99, 0.005, 0.005]])
    table = stats.reliability_table(probs, [0, 1, 0], n_bins=2)
    assert table["lo"].tolist() == [0.0, 0.5] and table["hi"].tolist() == [0.5, 1.0]
    assert table["clips"].tolist() == [2, 1]  # 0.4 and 0.5 (on the edge) in (0, 0.5], 0.99 in (0.5, 1]
    assert table["accuracy"].tolist() == [0.5, 1.0] and table["confidence"].tolist() == pytest.approx([0.45, 0.99])


def test_reliability_empty_bins_are_nan_without_a_warning():
    probs = np.array([[0.9, 0.05, 0.05]] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = stats.reliability_table(probs, [0, 0, 1], n_bins=15)
    empty = table[table["clips"] == 0]
    assert len(empty) == 14 and empty["confidence"].isna().all() and empty["accuracy"].isna().all()


def test_reliability_of_single_precision_probabilities_is_computed_in_double():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], 200).astype(np.float32)  # a network's softmax
    y = rng.integers(0, 3, 200)
    pd.testing.assert_frame_equal(
        stats.reliability_table(probs, y), stats.reliability_table(probs.astype(float), y), check_exact=True
    )


def test_expected_calibration_error_uses_the_bins_it_is_given():
    # confidence 0.87 (right) and 0.93 (wrong): one bin of 15, (0.867, 0.933]: |0.5 - 0.9| = 0.4; two bins of 10
    # (and of 16), each of one clip: (0.13 + 0.93) / 2
    probs = np.array([[0.87, 0.1, 0.03], [0.93, 0.05, 0.02]])
    assert stats.expected_calibration_error(probs, [0, 1]) == pytest.approx(0.4)
    assert stats.expected_calibration_error(probs, [0, 1], n_bins=10) == pytest.approx(0.53)
    assert stats.expected_calibration_error(probs, [0, 1], n_bins=16) == pytest.approx(0.53)


def test_zscore_within_a_group_without_spread_is_nan_and_a_small_spread_is_standardised():
    df = pd.DataFrame({"speaker": ["a"] * 3 + ["b"] * 3, "x": [0.1, 0.1, 0.1, 0.2, 0.4, 0.6]})
    z = stats.zscore_within(df, "speaker", ["x"])["x"]
    assert z[:3].isna().all()  # 0.1 * 3 / 3 is not 0.1 in floating point, but the spread is exactly 0
    np.testing.assert_allclose(z[3:], [-1, 0, 1], atol=1e-12)
