"""Calibration beyond the reliability table (issue 24): temperature scaling fitted on validation predictions, and
the expected calibration error (ECE) with a bootstrap interval (speakers, or clips below ``stats.MIN_SPEAKERS``
speakers; then seeds), and the change in ECE with a paired interval.

Temperature scaling (Guo et al. 2017) divides a run's logits by one number T > 0 chosen to minimise the negative
log-likelihood of that run's VALIDATION predictions; the test predictions are then rescaled with it. It keeps every
prediction (the argmax) and so every accuracy; only the confidences move. The saved probabilities stand in for the
logits (log p differs from the logits by a per-clip constant, which the softmax removes).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from serlib.analysis import stats
from serlib.analysis.predictions import PROB_COLUMNS, system_predictions
from serlib.analysis.stats import reliability_table
from serlib.common.config import Config
from serlib.common.facts import CLASSES
from serlib.common.runfolder import RunFolder

TEMPERATURE_RANGE = (0.05, 20.0)  # the search interval of T: beyond it a run's confidences are degenerate


def _log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=float), 1e-12, 1.0))  # (clips, classes)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``(clips, classes)`` probabilities rescaled: softmax(log p / T)."""
    scaled = _log_probs(probs) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    out = np.exp(scaled)
    return out / out.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, y_true: Sequence[int]) -> float:
    """Mean negative log-likelihood of the true classes."""
    return float(-_log_probs(probs)[np.arange(len(y_true)), np.asarray(y_true, dtype=int)].mean())


def fit_temperature(probs: np.ndarray, y_true: Sequence[int]) -> float:
    """The T in ``TEMPERATURE_RANGE`` that minimises the NLL of ``apply_temperature(probs, T)`` (bounded search on
    log T).

    Raises:
        ValueError: no clip to fit on.
    """
    if len(y_true) == 0:
        raise ValueError("fit_temperature: no validation clip to fit the temperature on")
    lo, hi = np.log(TEMPERATURE_RANGE)
    found = minimize_scalar(
        lambda log_t: nll(apply_temperature(probs, np.exp(log_t)), y_true),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(found.x))


def _ece_of(totals: np.ndarray) -> np.ndarray:
    """ECE from per-bin sums ``(..., bins, 3)`` (rows, summed confidence, correct rows) -> ``(...,)``."""
    return np.abs(totals[..., 2] - totals[..., 1]).sum(axis=-1) / totals[..., 0].sum(axis=-1)


def _resampled_ece(
    prob_sets: Sequence[np.ndarray],
    y_true: Sequence[int],
    speakers: Sequence[str],
    clips: Optional[Sequence[str]],
    seeds: Optional[Sequence],
    n_bins: int,
    n_resamples: int,
    seed: int,
) -> tuple[list[float], list[np.ndarray], str, str]:
    """The ECE of each probability set and of every resample, all sets on the SAME resamples (paired).

    The resampling unit is the speaker, or the clip (all of a clip's rows, every seed's) with fewer than
    ``stats.MIN_SPEAKERS`` speakers (``stats._unit``); the units are drawn with replacement
    (``stats.resample_weights``), then the seeds (``stats._seed_weights``: the hierarchical bootstrap of the
    scores), and a resample's ECE pools its rows with those multiplicities, as the point estimate pools every seed.

    Returns:
        (point ECE per set, ``(resamples,)`` ECE per set, unit, the unit's note).
    """
    unit, note = stats._unit(speakers)
    clips = np.arange(len(y_true)) if clips is None else clips
    groups = np.asarray(speakers if unit == "speaker" else clips).astype(str)
    group_names, group = np.unique(groups, return_inverse=True)
    seed_names, seed_index = np.unique(
        np.zeros(len(groups)) if seeds is None else np.asarray(seeds), return_inverse=True
    )
    unit_weights = stats.resample_weights(len(group_names), n_resamples, seed)  # (resamples, groups)
    seed_weights = stats._seed_weights(n_resamples, len(seed_names), seed, 1)  # (resamples, seeds)
    points, resampled = [], []
    for probs in prob_sets:
        probs = np.asarray(probs, dtype=float)
        confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == np.asarray(y_true)
        edges = np.r_[reliability_table(probs, y_true, n_bins)["lo"].to_numpy(), 1.0]
        index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
        sums = np.zeros((len(group_names), len(seed_names), n_bins, 3))  # per unit, seed and bin: rows, conf, correct
        np.add.at(sums, (group, seed_index, index, 0), 1.0)
        np.add.at(sums, (group, seed_index, index, 1), confidence)
        np.add.at(sums, (group, seed_index, index, 2), correct.astype(float))
        totals = np.einsum("rs,rsbk->rbk", seed_weights, np.einsum("rg,gsbk->rsbk", unit_weights, sums))
        points.append(float(_ece_of(sums.sum(axis=(0, 1)))))
        resampled.append(_ece_of(totals))
    return points, resampled, unit, note


def ece_interval(
    probs: np.ndarray,
    y_true: Sequence[int],
    speakers: Sequence[str],
    n_bins: int = 15,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    clips: Optional[Sequence[str]] = None,
    seeds: Optional[Sequence] = None,
) -> dict:
    """Top-label ECE (``stats.expected_calibration_error``'s bins) and its percentile bootstrap interval: over
    speakers (a speaker's rows stay together, every seed's), or over clips with fewer than ``stats.MIN_SPEAKERS``
    speakers (labelled: too narrow for new speakers); then over seeds where there are several (hierarchical).

    Args:
        probs: ``(rows, classes)`` probabilities, one row per clip and seed.
        y_true, speakers: ``(rows,)`` true label index and speaker of each row.
        clips: ``(rows,)`` the clip of each row (a clip's seeds stay together); None: every row its own clip.
        seeds: ``(rows,)`` the seed of each row; None: one seed.

    Returns:
        {"ece", "lo", "hi", "unit" ("speaker" or "clip"), "note" (why clip, else ""), "n_speakers", "n_seeds"}.
    """
    points, resampled, unit, note = _resampled_ece([probs], y_true, speakers, clips, seeds, n_bins, n_resamples, seed)
    lo, hi = _percentiles(resampled[0], level)
    return {"ece": points[0], "lo": lo, "hi": hi, **_counts(speakers, seeds), "unit": unit, "note": note}


def ece_change_interval(
    before: np.ndarray,
    after: np.ndarray,
    y_true: Sequence[int],
    speakers: Sequence[str],
    n_bins: int = 15,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    clips: Optional[Sequence[str]] = None,
    seeds: Optional[Sequence] = None,
) -> dict:
    """The change in ECE, after - before (e.g. temperature-scaled - as trained), on the same rows, with a PAIRED
    interval: both ECEs are computed on the same resamples (``ece_interval``'s units and seeds), so what the two share
    (which speakers were drawn) cancels.

    Returns:
        {"before", "after", "delta", "lo", "hi", "unit", "note", "n_speakers", "n_seeds"}.
    """
    (a, b), (res_a, res_b), unit, note = _resampled_ece(
        [before, after], y_true, speakers, clips, seeds, n_bins, n_resamples, seed
    )
    lo, hi = _percentiles(res_b - res_a, level)
    return {"before": a, "after": b, "delta": b - a, "lo": lo, "hi": hi, "unit": unit, "note": note} | _counts(
        speakers, seeds
    )


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def _counts(speakers: Sequence[str], seeds: Optional[Sequence]) -> dict:
    return {
        "n_speakers": len(set(map(str, speakers))),
        "n_seeds": 1 if seeds is None else len(set(np.asarray(seeds).tolist())),
    }


def temperature_table(cfg: Config, folder: RunFolder, system: str, n_bins: int = 10) -> pd.DataFrame:
    """A system's test ECE as trained and after temperature scaling, each with its interval (``ece_interval``), and
    the change (scaled - as trained) with its paired interval (``ece_change_interval``).

    Each run (seed, and fold under ``data.folds``) gets its own T, fitted on its own validation predictions and
    applied to its test predictions; the ECE pools every seed's test rows (equal weight), as Table S48 does.

    Returns:
        Two rows, "as trained" and "temperature-scaled": probabilities, ece, ece_lo, ece_hi, ece_change (+ _lo, _hi:
        on the scaled row only), nll (test), accuracy (unchanged by T), temperature (the runs' mean; 1 as trained),
        temperature_min/max, clips, seeds, n_speakers, unit (the intervals' resampling unit: "speaker", or "clip"
        with fewer than ``stats.MIN_SPEAKERS`` test speakers).
    """
    test = system_predictions(cfg, folder, system)
    val = system_predictions(cfg, folder, system, split="val")
    encode = {c: i for i, c in enumerate(CLASSES)}
    scaled, temperatures = [], []
    for (protocol, seed), part in test.groupby(["protocol", "seed"], sort=True):
        fit_on = val[(val["protocol"] == protocol) & (val["seed"] == seed)]
        t = fit_temperature(fit_on[PROB_COLUMNS].to_numpy(), fit_on["label"].map(encode).to_numpy(int))
        temperatures.append(t)
        scaled.append(pd.DataFrame(apply_temperature(part[PROB_COLUMNS].to_numpy(), t), index=part.index))
    labels = test["label"].map(encode).to_numpy(int)
    before, after = test[PROB_COLUMNS].to_numpy(), pd.concat(scaled).loc[test.index].to_numpy()
    a = cfg.analysis
    rows_of = dict(speakers=test["speaker"], clips=test["utt_id"], seeds=test["seed"])
    change = ece_change_interval(
        before, after, labels, n_bins=n_bins, n_resamples=a.bootstrap_resamples, seed=a.bootstrap_seed, **rows_of
    )
    rows = []
    for name, probs, ts in (("as trained", before, [1.0]), ("temperature-scaled", after, temperatures)):
        ece = ece_interval(
            probs, labels, n_bins=n_bins, n_resamples=a.bootstrap_resamples, seed=a.bootstrap_seed, **rows_of
        )
        is_scaled = name == "temperature-scaled"
        rows.append(
            {
                "probabilities": name,
                "ece": ece["ece"],
                "ece_lo": ece["lo"],
                "ece_hi": ece["hi"],
                "ece_change": change["delta"] if is_scaled else np.nan,
                "ece_change_lo": change["lo"] if is_scaled else np.nan,
                "ece_change_hi": change["hi"] if is_scaled else np.nan,
                "nll": nll(probs, labels),
                "accuracy": float((probs.argmax(axis=1) == labels).mean()),
                "temperature": float(np.mean(ts)),
                "temperature_min": float(np.min(ts)),
                "temperature_max": float(np.max(ts)),
                "clips": int(test["utt_id"].nunique()),
                "seeds": int(test["seed"].nunique()),
                "n_speakers": ece["n_speakers"],
                "unit": ece["unit"],
            }
        )
    return pd.DataFrame(rows)


def temperature_caption(table: pd.DataFrame, system: str, n_resamples: int) -> str:
    """Table S49's caption, its intervals described by the table's unit."""
    row = table.iloc[0]
    if row["unit"] == "speaker":
        over = f"over the {row['n_speakers']} test speakers (a speaker's clips stay together)"
    else:
        over = (
            f"over test CLIPS (a clip's seeds stay together): with {row['n_speakers']} test speakers (fewer than "
            f"{stats.MIN_SPEAKERS}) a speaker interval is n/a, and a clip interval is too narrow for new speakers"
        )
    seeds = f", then over the {row['seeds']} seeds (hierarchical)" if row["seeds"] > 1 else ""
    return (
        f"Calibration of {system} after temperature scaling: each run's temperature fitted on its own validation "
        "predictions (minimum NLL) and applied to its test predictions; ECE with its 95 % interval, the change in ECE "
        "(scaled - as trained) with a PAIRED 95 % interval (both ECEs on the same resamples), test NLL, and the "
        "accuracy (unchanged: the temperature keeps every prediction). Intervals: percentile bootstrap "
        f"{over}{seeds}, {n_resamples} resamples"
    )
