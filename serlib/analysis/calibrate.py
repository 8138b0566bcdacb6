"""Calibration beyond the reliability table (issue 24): temperature scaling fitted on validation predictions, and
the expected calibration error (ECE) with a speaker-bootstrap interval.

Temperature scaling (Guo et al. 2017) divides a run's logits by one number T > 0 chosen to minimise the negative
log-likelihood of that run's VALIDATION predictions; the test predictions are then rescaled with it. It keeps every
prediction (the argmax) and so every accuracy; only the confidences move. The saved probabilities stand in for the
logits (log p differs from the logits by a per-clip constant, which the softmax removes).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from serlib.analysis.predictions import PROB_COLUMNS, system_predictions
from serlib.analysis.stats import reliability_table, resample_weights
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


def ece_interval(
    probs: np.ndarray,
    y_true: Sequence[int],
    speakers: Sequence[str],
    n_bins: int = 15,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Top-label ECE (``stats.expected_calibration_error``'s bins) and its percentile interval from a bootstrap over
    speakers (a speaker's clips stay together, all its rows: every seed's).

    Returns:
        {"ece", "lo", "hi", "n_speakers"}.
    """
    probs = np.asarray(probs, dtype=float)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == np.asarray(y_true)
    table = reliability_table(probs, y_true, n_bins)
    edges = np.r_[table["lo"].to_numpy(), 1.0]
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    names, group = np.unique(np.asarray(speakers).astype(str), return_inverse=True)
    sums = np.zeros((len(names), n_bins, 3))  # per speaker and bin: rows, summed confidence, correct rows
    np.add.at(sums, (group, index, 0), 1.0)
    np.add.at(sums, (group, index, 1), confidence)
    np.add.at(sums, (group, index, 2), correct.astype(float))

    def ece_of(totals: np.ndarray) -> np.ndarray:  # (..., bins, 3) -> (...,)
        return np.abs(totals[..., 2] - totals[..., 1]).sum(axis=-1) / totals[..., 0].sum(axis=-1)

    resampled = ece_of(np.einsum("rg,gbk->rbk", resample_weights(len(names), n_resamples, seed), sums))
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(resampled, [tail, 100 - tail])
    return {"ece": float(ece_of(sums.sum(axis=0))), "lo": float(lo), "hi": float(hi), "n_speakers": len(names)}


def temperature_table(cfg: Config, folder: RunFolder, system: str, n_bins: int = 10) -> pd.DataFrame:
    """A system's test ECE as trained and after temperature scaling, each with its speaker interval.

    Each run (seed, and fold under ``data.folds``) gets its own T, fitted on its own validation predictions and
    applied to its test predictions; the ECE pools every seed's test rows (equal weight), as Table S48 does.

    Returns:
        Two rows, "as trained" and "temperature-scaled": probabilities, ece, ece_lo, ece_hi, nll (test), accuracy
        (unchanged by T), temperature (the runs' mean; 1 as trained), temperature_min/max, clips, seeds, unit.
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
    rows = []
    for name, probs, ts in (
        ("as trained", test[PROB_COLUMNS].to_numpy(), [1.0]),
        ("temperature-scaled", pd.concat(scaled).loc[test.index].to_numpy(), temperatures),
    ):
        a = cfg.analysis
        ece = ece_interval(probs, labels, test["speaker"], n_bins, a.bootstrap_resamples, a.bootstrap_seed)
        rows.append(
            {
                "probabilities": name,
                "ece": ece["ece"],
                "ece_lo": ece["lo"],
                "ece_hi": ece["hi"],
                "nll": nll(probs, labels),
                "accuracy": float((probs.argmax(axis=1) == labels).mean()),
                "temperature": float(np.mean(ts)),
                "temperature_min": float(np.min(ts)),
                "temperature_max": float(np.max(ts)),
                "clips": int(test["utt_id"].nunique()),
                "seeds": int(test["seed"].nunique()),
                "unit": "speaker",
            }
        )
    return pd.DataFrame(rows)
