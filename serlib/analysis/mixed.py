"""A model-based sensitivity check beside the permutation verdicts (issue 24): correct ~ system with the speaker
as the cluster, for the steps of Table 5.

A generalised estimating equation (statsmodels GEE, binomial, logit link) on every test clip and seed of the two
systems: ``correct ~ 1 + better`` where ``better`` is 1 for the claimed-better system, clustered by speaker with an
independence working correlation and the robust (sandwich) covariance, so the clips of one speaker (and its seeds)
count as one cluster, as ``(1 | speaker)`` would. Under the independence working correlation the coefficient is the
pooled log odds ratio (better against base); only its standard error comes from the speakers. Deterministic and
quick, unlike a Bayesian mixed GLM; a check of the verdicts, not a verdict of its own.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from serlib.analysis.evaluation import TABLE5_CLAIMS, claims_table
from serlib.analysis.predictions import system_predictions
from serlib.analysis.stats import MIN_SPEAKERS
from serlib.common.config import Config
from serlib.common.runfolder import RunFolder


def gee_system_effect(correct_a: Sequence[bool], correct_b: Sequence[bool], speakers_a, speakers_b) -> dict:
    """The log odds ratio of a clip being correct under system b against system a, with speaker clusters.

    Args:
        correct_a, correct_b: ``(rows,)`` whether each of a's (b's) clip-and-seed rows is correct.
        speakers_a, speakers_b: the speaker of each row.

    Returns:
        {"log_odds", "se" (robust, speaker clusters), "lo", "hi" (95 %), "odds_ratio", "p" (two-sided Wald),
        "n_clusters", "n_rows"}; se, lo, hi and p are NaN with fewer than ``MIN_SPEAKERS`` speakers (a robust error
        from so few clusters means nothing).
    """
    import statsmodels.api as sm  # heavy import, used by this check only

    y = np.r_[np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)]
    better = np.r_[np.zeros(len(correct_a)), np.ones(len(correct_b))]
    groups = pd.factorize(np.r_[np.asarray(speakers_a, dtype=str), np.asarray(speakers_b, dtype=str)])[0]
    model = sm.GEE(
        y,
        sm.add_constant(better),
        groups=groups,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Independence(),
    )
    with np.errstate(invalid="ignore"):  # two identical systems: a zero (or rounding-negative) robust variance
        fit = model.fit()
        coef, se = float(fit.params[1]), float(fit.bse[1])
    clusters = int(len(set(groups)))
    if not np.isfinite(se):  # the robust variance is 0 up to rounding (identical systems)
        se = 0.0
    if clusters < MIN_SPEAKERS:  # a sandwich over a handful of clusters is far too small: no error at all
        se = float("nan")
    p = float(2 * norm.sf(abs(coef / se))) if se > 0 else 1.0 if se == 0 else float("nan")
    return {
        "log_odds": coef,
        "se": se,
        "lo": coef - 1.959964 * se,
        "hi": coef + 1.959964 * se,
        "odds_ratio": float(np.exp(coef)),
        "p": p,
        "n_clusters": clusters,
        "n_rows": len(y),
    }


def mixed_effects_table(cfg: Config, folder: RunFolder) -> pd.DataFrame:
    """Table 5's steps as ``correct ~ system`` with speaker clusters (``gee_system_effect``), beside the speaker
    permutation verdict of the same comparison (``claims_table``'s p_holm and verdict).

    Returns:
        One row per step the profile has: comparison, odds_ratio with its 95 % interval (odds_ratio_lo, _hi), p_gee
        (unadjusted), speakers, rows (clips x seeds x 2), p_holm and verdict (the permutation test's).
    """
    family = claims_table(cfg, folder)
    verdicts = {} if family.empty else family.set_index("comparison")[["p_holm", "verdict"]].to_dict("index")
    for row in family.itertuples():
        for name in filter(None, row.same_as.split(", ")):
            verdicts[name] = verdicts[row.comparison]
    rows = []
    for comp in TABLE5_CLAIMS:
        if comp.base not in cfg.systems or comp.better not in cfg.systems:
            continue
        a, b = (system_predictions(cfg, folder, s) for s in (comp.base, comp.better))
        common = set(a["utt_id"]) & set(b["utt_id"])
        a, b = a[a["utt_id"].isin(common)], b[b["utt_id"].isin(common)]
        effect = gee_system_effect(a["correct"], b["correct"], a["speaker"], b["speaker"])
        name = f"{comp.better} vs {comp.base}"
        rows.append(
            {
                "comparison": name,
                "odds_ratio": effect["odds_ratio"],
                "odds_ratio_lo": float(np.exp(effect["lo"])),
                "odds_ratio_hi": float(np.exp(effect["hi"])),
                "p_gee": effect["p"],
                "speakers": effect["n_clusters"],
                "rows": effect["n_rows"],
                **verdicts.get(name, {}),
            }
        )
    return pd.DataFrame(rows)
