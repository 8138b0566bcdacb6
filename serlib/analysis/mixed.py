"""A model-based sensitivity check beside the permutation verdicts (issue 24): correct ~ system with the speaker
as the cluster, for the steps of Table 5.

A generalised estimating equation (statsmodels GEE, binomial, logit link) on every test clip and seed of the two
systems: ``correct ~ 1 + better`` where ``better`` is 1 for the claimed-better system, clustered by speaker with an
independence working correlation, so the clips of one speaker (and its seeds) count as one cluster, as
``(1 | speaker)`` would. A GEE estimates a POPULATION-AVERAGE (marginal) odds ratio: under the independence working
correlation the coefficient is the pooled log odds ratio (better against base), not the speaker-specific
(conditional) odds ratio a mixed GLM estimates, which is further from 1 when speakers differ; only its standard error
comes from the speakers. With few clusters (12 test speakers at the paper's scale) the plain sandwich error is too
small, so the error is Mancl and DeRouen's bias-reduced sandwich (statsmodels' ``fit(cov_type="bias_reduced")``)
and the interval and p use a t reference with G - 1 degrees of freedom (G speakers). Deterministic and quick, unlike
a Bayesian mixed GLM; a check of the verdicts, not a verdict of its own.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

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
        {"log_odds", "se" (bias-reduced sandwich, speaker clusters), "lo", "hi" (95 %, t with n_clusters - 1 df),
        "odds_ratio" (population-average), "p" (two-sided, the same t reference), "df", "n_clusters", "n_rows"}; se,
        lo, hi and p are NaN with fewer than ``MIN_SPEAKERS`` speakers (a robust error from so few clusters means
        nothing).
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
        fit = model.fit(cov_type="bias_reduced")  # Mancl-DeRouen: the plain sandwich is too small with few clusters
        coef, se = float(fit.params[1]), float(fit.bse[1])  # bse: the bias-reduced covariance
    clusters = int(len(set(groups)))
    if not np.isfinite(se):  # the robust variance is 0 up to rounding (identical systems)
        se = 0.0
    if clusters < MIN_SPEAKERS:  # a sandwich over a handful of clusters is far too small: no error at all
        se = float("nan")
    df = max(clusters - 1, 1)
    p = float(2 * student_t.sf(abs(coef / se), df)) if se > 0 else 1.0 if se == 0 else float("nan")
    half = float(student_t.ppf(0.975, df)) * se
    return {
        "log_odds": coef,
        "se": se,
        "lo": coef - half,
        "hi": coef + half,
        "odds_ratio": float(np.exp(coef)),
        "p": p,
        "df": df,
        "n_clusters": clusters,
        "n_rows": len(y),
    }


def mixed_effects_table(cfg: Config, folder: RunFolder) -> pd.DataFrame:
    """Table 5's steps as ``correct ~ system`` with speaker clusters (``gee_system_effect``), beside the speaker
    permutation verdict of the same comparison (``claims_table``'s p_holm and verdict, renamed so that nobody reads
    them as the GEE's).

    Returns:
        One row per step the profile has: comparison, odds_ratio (population-average) with its 95 % interval
        (odds_ratio_lo, _hi), p_gee (unadjusted), speakers, rows (clips x seeds x 2), p_permutation_holm and
        permutation_verdict (the speaker sign-flip test's Holm-adjusted p and verdict).
    """
    family = claims_table(cfg, folder)
    verdicts = {} if family.empty else family.set_index("comparison")[["p_holm", "verdict"]].to_dict("index")
    verdicts = {
        k: {"p_permutation_holm": v["p_holm"], "permutation_verdict": v["verdict"]} for k, v in verdicts.items()
    }
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
