"""Uncertainty and significance for the report (issue 11): speaker-level bootstrap intervals, paired
bootstrap of differences, the exact McNemar test, a speaker-level sign-flip permutation test, Holm /
Benjamini-Hochberg corrections, calibration (expected calibration error, reliability table) and z-scores
within speaker.

The bootstrap resamples test *speakers* with replacement, so the clips of one speaker stay together:
a speaker's clips are not independent draws (same voice, same recording), and an interval that
treats them as such is too narrow. With fewer than ``MIN_SPEAKERS`` test speakers a speaker
interval means little; it is then n/a and a clip-level interval, labelled as such, is given instead.

Everything works on confusion counts: each speaker's (seeds x true x predicted) counts are summed
with the multiplicities a resample draws, so 1000 resamples of a few thousand clips take milliseconds.
Several seeds of one system are scored together: the statistic of a resample is the mean over seeds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from serlib.common.facts import CLASSES
from serlib.modelling.metrics import METRICS, metrics_from_counts  # noqa: F401  (the one definition, re-exported)

MIN_SPEAKERS = 5  # fewer test speakers than this: the speaker interval is n/a, a clip-level one is given


# --------------------------------------------------------------------------- metrics from confusion counts


def _as_seeds(y_pred) -> np.ndarray:
    pred = np.asarray(y_pred)
    return pred[None, :] if pred.ndim == 1 else pred  # (seeds, clips)


def _group_counts(y_true, y_pred, groups, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group: (seeds, true, predicted) counts -> ``(groups, seeds, n, n)`` and the group names."""
    y_true = np.asarray(y_true, dtype=int)
    pred = _as_seeds(y_pred).astype(int)
    if pred.shape[1] != len(y_true) or len(groups) != len(y_true):
        raise ValueError(f"y_true ({len(y_true)}), y_pred {pred.shape} and groups ({len(groups)}) do not align")
    names, index = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    counts = np.zeros((len(names), pred.shape[0], n_classes, n_classes))
    for seed in range(pred.shape[0]):
        np.add.at(counts[:, seed], (index, y_true, pred[seed]), 1)
    return counts, names


def resample_weights(n_groups: int, n_resamples: int, seed: int) -> np.ndarray:
    """``(resamples, groups)`` multiplicities of groups drawn with replacement."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(n_resamples, n_groups))
    weights = np.zeros((n_resamples, n_groups))
    np.add.at(weights, (np.arange(n_resamples)[:, None], draws), 1)
    return weights


def _seed_mean(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of ``(..., seeds, n, n)`` counts, averaged over seeds."""
    return {k: np.nanmean(v, axis=-1) for k, v in metrics_from_counts(counts).items()}


def _seed_weights(n_resamples: int, n_seeds: int, seed: int, stream: int) -> np.ndarray:
    """``(resamples, seeds)`` multiplicities of seeds drawn with replacement (the second level of the hierarchical
    bootstrap: speakers, then seeds); all ones with one seed. ``stream`` keeps the draws of two systems apart."""
    if n_seeds == 1:
        return np.ones((n_resamples, 1))
    draws = np.random.default_rng([seed, stream]).integers(0, n_seeds, size=(n_resamples, n_seeds))
    weights = np.zeros((n_resamples, n_seeds))
    np.add.at(weights, (np.arange(n_resamples)[:, None], draws), 1)
    return weights


def _resampled(counts: np.ndarray, weights: np.ndarray, seed: int, stream: int) -> dict[str, np.ndarray]:
    """Each metric of every resample ``(resamples,)``: speakers drawn by ``weights`` ``(resamples, groups)``, then
    the system's seeds drawn with replacement, the statistic the mean over the drawn seeds."""
    per_seed = metrics_from_counts(np.einsum("rg,gsij->rsij", weights, counts))  # each (resamples, seeds)
    seed_weights = _seed_weights(len(weights), counts.shape[1], seed, stream)
    out = {}
    for metric, values in per_seed.items():
        used = np.where(np.isnan(values), 0.0, seed_weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[metric] = np.nansum(values * used, axis=-1) / used.sum(axis=-1)
    return out


def _unit(speakers) -> tuple[str, str]:
    n = len(set(map(str, speakers)))
    if n >= MIN_SPEAKERS:
        return "speaker", ""
    return "clip", (
        f"speaker interval n/a: {n} test speaker(s) (< {MIN_SPEAKERS}); the interval resamples clips "
        "and is too narrow for new speakers"
    )


def group_metrics(y_true: Sequence[int], y_pred, groups: Sequence[str], n_classes: int = len(CLASSES)) -> pd.DataFrame:
    """Accuracy, UAR and macro-F1 of each group's clips (e.g. each speaker fold's test clips), the mean over seeds.

    Args:
        y_true: ``(clips,)`` true label indices.
        y_pred: ``(clips,)`` or ``(seeds, clips)`` predicted indices.
        groups: ``(clips,)`` the group of each clip.

    Returns:
        One row per group (sorted by name): group, accuracy, uar, macro_f1, n_clips.
    """
    counts, names = _group_counts(y_true, y_pred, groups, n_classes)  # (groups, seeds, n, n)
    values = _seed_mean(counts)
    clips = counts[:, 0].sum(axis=(1, 2)).astype(int)
    return pd.DataFrame({"group": names, **{m: values[m] for m in METRICS}, "n_clips": clips})


# --------------------------------------------------------------------------- intervals


def speaker_bootstrap(
    y_true: Sequence[int],
    y_pred,
    speakers: Sequence[str],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    n_classes: int = len(CLASSES),
) -> pd.DataFrame:
    """Point estimates and percentile intervals of accuracy, UAR and macro-F1.

    Args:
        y_true: ``(clips,)`` true label indices.
        y_pred: ``(clips,)`` or ``(seeds, clips)`` predicted indices (several seeds of one system: every
            statistic is the mean over seeds, and the bootstrap is hierarchical: speakers are drawn with
            replacement, then seeds, so the interval carries the seed-to-seed variance too).
        speakers: ``(clips,)`` speaker of each clip: the unit that is resampled.
        n_resamples: bootstrap resamples.
        seed: seed of the draws (same seed, same interval): the speakers in sorted order (or the clips, named by
            their position as text and sorted so: '0', '1', '10', ...) are drawn by
            ``resample_weights(n, n_resamples, seed)``, each resample's seeds by
            ``np.random.default_rng([seed, 1]).integers(0, n_seeds, (n_resamples, n_seeds))`` (stream 1), so an
            interval can be reproduced outside serlib.
        level: coverage of the interval.
        n_classes: classes.

    Returns:
        One row per metric: metric, value, lo, hi, unit ("speaker", or "clip" with fewer than
        ``MIN_SPEAKERS`` speakers), n_speakers, n_clips, n_seeds, n_resamples, level, note.
    """
    unit, note = _unit(speakers)
    groups = speakers if unit == "speaker" else np.arange(len(y_true)).astype(str)
    counts, names = _group_counts(y_true, y_pred, groups, n_classes)  # (groups, seeds, n, n)
    point = _seed_mean(counts.sum(axis=0))
    weights = resample_weights(len(names), n_resamples, seed)
    resampled = _resampled(counts, weights, seed, 1)
    tail = 100 * (1 - level) / 2
    rows = []
    for metric in METRICS:
        lo, hi = np.nanpercentile(resampled[metric], [tail, 100 - tail])
        rows.append(
            {
                "metric": metric,
                "value": float(point[metric]),
                "lo": float(lo),
                "hi": float(hi),
                "unit": unit,
                "n_speakers": len(set(map(str, speakers))),
                "n_clips": len(y_true),
                "n_seeds": _as_seeds(y_pred).shape[0],
                "n_resamples": n_resamples,
                "level": level,
                "note": note,
            }
        )
    return pd.DataFrame(rows)


def stratum_draws(
    y_true: Sequence[int], y_pred, speakers: Sequence[str], n_classes: int, n_resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """One stratum (e.g. one corpus) of a stratified bootstrap: its speakers as the unit, or its clips where it has
    fewer than ``MIN_SPEAKERS`` speakers (``_unit``), their counts and their draws.

    Returns:
        (``(groups, seeds, n, n)`` counts, ``(resamples, groups)`` weights from ``resample_weights(groups,
        n_resamples, seed)``, unit "speaker" or "clip"), for ``_resampled`` (directly, or concatenated over strata).
    """
    unit, _ = _unit(speakers)
    groups = np.asarray(speakers) if unit == "speaker" else np.arange(len(y_true)).astype(str)
    counts, group_names = _group_counts(y_true, y_pred, groups, n_classes)
    return counts, resample_weights(len(group_names), n_resamples, seed), unit


def balanced_uar(
    y_true: Sequence[int],
    y_pred,
    speakers: Sequence[str],
    corpora: Sequence[str],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    n_classes: int = len(CLASSES),
) -> dict:
    """The corpus-balanced UAR: the mean over corpora of each corpus's UAR (seed means), so a corpus with most of
    the clips (CREMA-D) does not outweigh the others, with a percentile interval from a bootstrap stratified by
    corpus (within each corpus its speakers are drawn with replacement, or its clips where it has fewer than
    ``MIN_SPEAKERS`` speakers; then the seeds, as ``speaker_bootstrap``). Corpus k (in sorted order) draws its
    speakers with ``resample_weights(n, n_resamples, seed + 7919 * k)``, the seeds with stream 1 in every corpus.

    Returns:
        {"value", "lo", "hi", "per_corpus" ({corpus: UAR}), "n_corpora", "unit"}: ``unit`` is "speaker" when every
        corpus's speakers were drawn, "clip" when every corpus's clips were, else "speaker; clip in <corpora>".
    """
    corpora = np.asarray(corpora).astype(str)
    names = np.unique(corpora)
    values, resampled, by_clip = {}, [], []
    for k, corpus in enumerate(names):
        chosen = corpora == corpus
        pred = _as_seeds(y_pred)[:, chosen]
        counts, weights, unit = stratum_draws(
            np.asarray(y_true)[chosen], pred, np.asarray(speakers)[chosen], n_classes, n_resamples, seed + 7919 * k
        )
        if unit == "clip":
            by_clip.append(str(corpus))
        values[str(corpus)] = float(_seed_mean(counts.sum(axis=0))["uar"])
        resampled.append(_resampled(counts, weights, seed, 1)["uar"])  # the same seed draws in every corpus
    tail = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(np.mean(resampled, axis=0), [tail, 100 - tail])
    return {
        "value": float(np.mean(list(values.values()))),
        "lo": float(lo),
        "hi": float(hi),
        "per_corpus": values,
        "n_corpora": len(names),
        "unit": "clip"
        if len(by_clip) == len(names)
        else (f"speaker; clip in {', '.join(by_clip)}" if by_clip else "speaker"),
    }


def paired_bootstrap(
    y_true: Sequence[int],
    pred_a,
    pred_b,
    speakers: Sequence[str],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    n_classes: int = len(CLASSES),
) -> pd.DataFrame:
    """The difference b - a of each metric on the same clips, with a paired speaker-bootstrap interval.

    Both systems are scored on the same resampled speakers, so what the two share (hard speakers,
    easy ones) cancels; with several seeds each system's seeds are then drawn with replacement (independently:
    seed k of one system has nothing in common with seed k of the other). ``pred_a`` / ``pred_b``: ``(clips,)``
    or ``(seeds, clips)``. The draws are ``speaker_bootstrap``'s: a's seeds from stream 1 (so a's resamples are
    those of its own ``speaker_bootstrap``), b's from stream 2 (``np.random.default_rng([seed, 2])``).

    Returns:
        One row per metric: metric, a, b, delta, lo, hi, share_le_0 (resamples with delta <= 0), unit,
        n_speakers, n_clips, n_resamples, level, note.
    """
    unit, note = _unit(speakers)
    groups = speakers if unit == "speaker" else np.arange(len(y_true)).astype(str)
    counts_a, names = _group_counts(y_true, pred_a, groups, n_classes)
    counts_b, _ = _group_counts(y_true, pred_b, groups, n_classes)
    point_a, point_b = _seed_mean(counts_a.sum(axis=0)), _seed_mean(counts_b.sum(axis=0))
    weights = resample_weights(len(names), n_resamples, seed)
    res_a = _resampled(counts_a, weights, seed, 1)
    res_b = _resampled(counts_b, weights, seed, 2)
    tail = 100 * (1 - level) / 2
    rows = []
    for metric in METRICS:
        delta = res_b[metric] - res_a[metric]
        lo, hi = np.nanpercentile(delta, [tail, 100 - tail])
        rows.append(
            {
                "metric": metric,
                "a": float(point_a[metric]),
                "b": float(point_b[metric]),
                "delta": float(point_b[metric] - point_a[metric]),
                "lo": float(lo),
                "hi": float(hi),
                "share_le_0": float(np.mean(delta[~np.isnan(delta)] <= 0)),
                "unit": unit,
                "n_speakers": len(set(map(str, speakers))),
                "n_clips": len(y_true),
                "n_resamples": n_resamples,
                "level": level,
                "note": note,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- tests and corrections


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict:
    """Exact (binomial) McNemar test of two classifiers on the same clips, two-sided.

    Returns:
        {"b": clips only a gets right, "c": clips only b gets right, "p": the two-sided p-value}
        (p = 1 when the two never disagree).
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"mcnemar_exact: {a.shape} and {b.shape} differ; score the same clips")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if only_a + only_b == 0 else float(binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue)
    return {"b": only_a, "c": only_b, "p": min(1.0, p)}


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down adjustment: (adjusted p-values, rejected at ``alpha``), in the input order."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out, out <= alpha


def benjamini_hochberg(pvalues: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg step-up adjustment (false discovery rate): (adjusted p, rejected), input order."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = adjusted
    return out, out <= alpha


def speaker_signflip_test(
    y_true: Sequence[int],
    pred_a,
    pred_b,
    speakers: Sequence[str],
    metric: str = "uar",
    n_resamples: int = 10000,
    seed: int = 0,
    max_exact_speakers: int = 16,
    n_classes: int = len(CLASSES),
) -> dict:
    """Paired test of b against a with the speaker as the unit: a sign-flip permutation test over speakers.

    Each speaker's difference d_s = metric(b) - metric(a) is computed on that speaker's clips alone (seed means);
    under the null hypothesis that the two systems are exchangeable, each d_s is as likely to have either
    sign. The statistic is the mean of d_s over speakers; the two-sided p-value is the share of sign patterns
    whose mean is at least as far from 0 as the observed one. With at most ``max_exact_speakers`` speakers
    every one of the 2^n patterns is enumerated (exact); beyond, ``n_resamples`` patterns are drawn (seeded)
    and p = (1 + hits) / (1 + n_resamples), the observed pattern counted once.

    Args:
        y_true: ``(clips,)`` true label indices.
        pred_a, pred_b: ``(clips,)`` or ``(seeds, clips)`` predicted indices of the two systems on these clips.
        speakers: ``(clips,)`` speaker of each clip.
        metric: ``accuracy``, ``uar`` or ``macro_f1`` (within a speaker, over the classes that speaker has).
        n_resamples: random sign patterns beyond ``max_exact_speakers`` speakers.
        seed: seed of those draws.
        max_exact_speakers: enumerate every pattern up to this many speakers (16: 65,536 patterns).
        n_classes: classes.

    Returns:
        {"metric", "mean_speaker_delta" (the statistic), "p", "n_speakers", "exact" (bool), "n_patterns"}.
    """
    if metric not in METRICS:
        raise ValueError(f"speaker_signflip_test: metric {metric!r} is not one of {', '.join(METRICS)}")
    counts_a, _ = _group_counts(y_true, pred_a, speakers, n_classes)  # (speakers, seeds, n, n)
    counts_b, _ = _group_counts(y_true, pred_b, speakers, n_classes)
    deltas = _seed_mean(counts_b)[metric] - _seed_mean(counts_a)[metric]  # (speakers,)
    n = len(deltas)
    observed = float(deltas.mean())
    if n <= max_exact_speakers:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)  # (2^n, n): every pattern once
        extreme = np.abs(signs @ deltas / n) >= abs(observed) - 1e-12  # rounding must not drop the observed one
        p = float(extreme.mean())
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_resamples, n))
        hits = int((np.abs(signs @ deltas / n) >= abs(observed) - 1e-12).sum())
        p = (1 + hits) / (1 + n_resamples)
    return {
        "metric": metric,
        "mean_speaker_delta": observed,
        "p": min(1.0, p),
        "n_speakers": n,
        "exact": n <= max_exact_speakers,
        "n_patterns": 2**n if n <= max_exact_speakers else n_resamples,
    }


# --------------------------------------------------------------------------- calibration


def reliability_table(probs: np.ndarray, y_true: Sequence[int], n_bins: int = 15) -> pd.DataFrame:
    """Top-label confidence in equal-width bins: per bin, clips, mean confidence and accuracy.

    Args:
        probs: ``(clips, classes)`` predicted probabilities.
        y_true: ``(clips,)`` true label indices.
        n_bins: bins over (0, 1]; a confidence falls in the bin whose upper edge it does not exceed.
    """
    probs = np.asarray(probs, dtype=float)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        chosen = index == b
        rows.append(
            {
                "bin": b,
                "lo": edges[b],
                "hi": edges[b + 1],
                "clips": int(chosen.sum()),
                "confidence": float(confidence[chosen].mean()) if chosen.any() else np.nan,
                "accuracy": float(correct[chosen].mean()) if chosen.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def expected_calibration_error(probs: np.ndarray, y_true: Sequence[int], n_bins: int = 15) -> float:
    """Top-label ECE: the clip-weighted mean over bins of |accuracy - mean confidence|."""
    table = reliability_table(probs, y_true, n_bins)
    used = table[table["clips"] > 0]
    return float((used["clips"] * (used["accuracy"] - used["confidence"]).abs()).sum() / used["clips"].sum())


# --------------------------------------------------------------------------- within-speaker normalisation


def zscore_within(df: pd.DataFrame, group_column: str, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` z-scored within each group (e.g. speaker): (x - group mean) / group std (ddof 1).

    NaN values are ignored in the statistics and stay NaN. A group with fewer than two values, or
    with zero spread, gives NaN: there is nothing to standardise against. Other columns are kept.
    """
    out = df.copy()
    grouped = df.groupby(group_column)[list(columns)]
    mean, std = grouped.transform("mean"), grouped.transform("std")
    out[list(columns)] = (df[list(columns)] - mean) / std.where(std > 0)
    return out


# --------------------------------------------------------------------------- two systems


def compare_predictions(
    preds_a: pd.DataFrame,
    preds_b: pd.DataFrame,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    n_signflips: int = 10000,
) -> tuple[pd.DataFrame, dict]:
    """Two systems' test predictions (columns utt_id, label, pred, speaker; several seeds allowed with a
    ``seed`` column; ``prob_<class>`` columns for the soft vote) scored on the clips both have.

    Per metric: a, b, delta and its paired (hierarchical) speaker-bootstrap interval; the speaker-level test that
    decides a verdict (``speaker_signflip_test`` on the per-speaker seed-mean differences of that metric:
    ``speaker_delta`` its statistic, ``speaker_p`` its two-sided p); and, secondary and clip-level, the exact
    McNemar test (``mcnemar_p``) on the soft vote over seeds (the class of the highest mean probability; with one
    seed and no probabilities, its predictions).

    Returns:
        (the paired table, {"clips": clips both scored, "only_a", "only_b", "mcnemar_b", "mcnemar_c"}).

    Raises:
        ValueError: no shared clip, different labels, or several seeds without ``prob_*`` columns (no soft vote).
    """

    def arrays(preds: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        preds = preds.assign(seed=preds["seed"] if "seed" in preds else 0)
        wide = preds.pivot_table(index="utt_id", columns="seed", values="pred", aggfunc="first").dropna()
        return preds.drop_duplicates("utt_id").set_index("utt_id"), wide

    preds_a, preds_b = _as_indices(preds_a), _as_indices(preds_b)
    meta_a, wide_a = arrays(preds_a)
    meta_b, wide_b = arrays(preds_b)
    common = wide_a.index.intersection(wide_b.index)
    if len(common) == 0:
        raise ValueError("the two prediction tables share no utt_id: they were not scored on the same clips")
    labels = meta_a.loc[common, "label"].to_numpy(int)
    if not np.array_equal(labels, meta_b.loc[common, "label"].to_numpy(int)):
        raise ValueError("the two prediction tables give different labels to the same clips")
    a, b = wide_a.loc[common].to_numpy(int).T, wide_b.loc[common].to_numpy(int).T  # (seeds, clips)
    speakers = meta_a.loc[common, "speaker"].astype(str).to_numpy()
    table = paired_bootstrap(labels, a, b, speakers, n_resamples, seed, level)
    tests = [speaker_signflip_test(labels, a, b, speakers, m, n_signflips, seed) for m in table["metric"]]
    table["speaker_delta"] = [t["mean_speaker_delta"] for t in tests]
    table["speaker_p"] = [t["p"] for t in tests]
    table["speaker_exact"] = [t["exact"] for t in tests]
    test = mcnemar_exact(soft_vote(preds_a, common) == labels, soft_vote(preds_b, common) == labels)
    table["mcnemar_p"] = test["p"]
    return table, {
        "clips": len(common),
        "only_a": len(wide_a.index.difference(common)),
        "only_b": len(wide_b.index.difference(common)),
        "mcnemar_b": test["b"],
        "mcnemar_c": test["c"],
    }


def soft_vote(preds: pd.DataFrame, utt_ids: Sequence[str]) -> np.ndarray:
    """The class index of each clip's highest mean probability over seeds (``prob_<class>`` columns), in the order
    of ``utt_ids``; with one seed and no probabilities, its predictions.

    Raises:
        ValueError: several seeds and no probabilities (a majority vote would need a tie rule; the soft vote none).
    """
    columns = [f"prob_{c}" for c in CLASSES]
    if all(c in preds for c in columns):
        mean = preds.groupby("utt_id")[columns].mean().loc[list(utt_ids)]
        return mean.to_numpy().argmax(axis=1)
    if "seed" in preds and preds["seed"].nunique() > 1:
        raise ValueError(f"several seeds and no {', '.join(columns)} columns: the soft vote needs the probabilities")
    return _as_indices(preds).drop_duplicates("utt_id").set_index("utt_id").loc[list(utt_ids), "pred"].to_numpy(int)


def claim_verdict(p_adjusted: float, speaker_delta: float, alpha: float) -> str:
    """A paper's claim "b beats a" in words: supported only when the adjusted speaker-level p is below ``alpha``
    AND the speakers' mean difference goes the claimed way (b - a > 0)."""
    if p_adjusted < alpha and speaker_delta > 0:
        return "supported"
    if p_adjusted < alpha and speaker_delta < 0:
        return "contradicted: significantly worse"
    return "not supported: within noise" if speaker_delta > 0 else "not supported: no gain"


def _as_indices(preds: pd.DataFrame) -> pd.DataFrame:
    """``label`` / ``pred`` as class indices (they may be class names)."""
    out = preds.copy()
    for column in ("label", "pred"):
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].map({c: i for i, c in enumerate(CLASSES)})
        if out[column].isna().any():
            raise ValueError(f"column {column!r} holds a value that is not one of {CLASSES}")
    return out
