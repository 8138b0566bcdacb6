"""What the report's results rest on (issues 11, 24): every system's test predictions over its seeds and
protocols, their scores with speaker-bootstrap intervals, the paper's claims tested at the speaker level with
one Holm family, the baselines beside the systems, calibration, the pooled confusion matrix and the scores per
group (corpus, sex).

The predictions are read by ``serlib.analysis.predictions`` (re-exported here). Every table scores them with
``score`` (one metric definition, ``serlib.modelling.metrics.metrics_from_counts``), so one system shows the same
numbers in every table. Under ``data.folds`` the test predictions of the k folds are pooled, so every clip (and
speaker) is scored once per seed and the intervals use all folds. Leave-one-corpus-out is in
``serlib.analysis.crosscorpus``, two runs in ``serlib.analysis.runcompare``, the confounds in
``serlib.analysis.confounds``, temperature scaling in ``serlib.analysis.calibrate``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from serlib.analysis import stats
from serlib.analysis.calibrate import temperature_table  # noqa: F401  (re-exported beside calibration)
from serlib.analysis.predictions import (  # noqa: F401  (re-exported: callers read predictions through evaluation)
    PREDICTION_COLUMNS,
    PROB_COLUMNS,
    as_class_names,
    baseline_predictions,
    join_manifest,
    primary_predictions,
    read_predictions,
    run_predictions,
    system_predictions,
    wide,
)
from serlib.common import paper
from serlib.common.config import PAPER_SYSTEMS, Config, primary_system
from serlib.common.facts import CLASSES
from serlib.common.runfolder import RunFolder
from serlib.data.protocols import evaluation_protocols
from serlib.modelling.runbaselines import DESCRIPTIONS, baseline_references
from serlib.modelling.systems import load_results

METRIC_NAMES = {"accuracy": "accuracy", "uar": "UAR", "macro_f1": "macro-F1"}


@dataclass(frozen=True)
class Comparison:
    """One comparison the paper makes: does ``better`` beat ``base``?"""

    base: str
    better: str
    claim: str


TABLE5_CLAIMS = (  # the steps of the paper's Table 5 (section 5.2)
    Comparison("S1", "S2", "wav2vec2 features beat log-Mel (S2 vs S1)"),
    Comparison("S2", "S3", "the residual CNN beats the shallow CNN (S3 vs S2)"),
    Comparison("S3", "S5", "squeeze-and-excitation helps (S5 vs S3)"),
    Comparison("S4", "S5", "Tri-Aug helps (S5 vs S4)"),
)
TABLE6_CLAIMS = (  # the paper's ablations (Table 6): removing each component hurts
    Comparison("A1", "S5", "Tri-Aug helps (Full vs A1 -Aug)"),
    Comparison("A2", "S5", "squeeze-and-excitation helps (Full vs A2 -SE)"),
    Comparison("A3", "S5", "depth helps (Full vs A3 -Depth)"),
)


# --------------------------------------------------------------------------- scores


def score(preds: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Accuracy, UAR and macro-F1 of one system's predictions with speaker-bootstrap intervals (seed mean).

    With two or more corpora, ``attrs["uar_balanced"]`` holds the corpus-balanced UAR (``stats.balanced_uar``).

    The value is the pooled one (every clip once per seed). Where ``preds`` pools speaker folds, each metric
    also gets the mean and standard deviation of the per-fold values (``fold_mean``, ``fold_sd``, ``n_folds``).
    """
    labels, pred, speakers, ids = wide(preds)
    a = cfg.analysis
    table = stats.speaker_bootstrap(labels, pred, speakers, n_resamples=a.bootstrap_resamples, seed=a.bootstrap_seed)
    corpora = preds.drop_duplicates("utt_id").set_index("utt_id").loc[ids, "corpus"].to_numpy(str)
    if len(set(corpora)) > 1:
        balanced = stats.balanced_uar(labels, pred, speakers, corpora, a.bootstrap_resamples, a.bootstrap_seed)
        table.attrs["uar_balanced"] = balanced
    folds = fold_values(preds)
    if folds is not None:
        table["fold_mean"] = table["metric"].map(folds[list(stats.METRICS)].mean())
        table["fold_sd"] = table["metric"].map(folds[list(stats.METRICS)].std(ddof=1))
        table["n_folds"] = len(folds)
    return table


def fold_values(preds: pd.DataFrame) -> Optional[pd.DataFrame]:
    """Each speaker fold's accuracy, UAR and macro-F1 (mean over seeds) of predictions pooled over folds
    (``stats.group_metrics``, one row per fold), or None when they come from one protocol."""
    if "protocol" not in preds or preds["protocol"].nunique() < 2:
        return None
    labels, pred, _, ids = wide(preds)
    protocol = preds.drop_duplicates("utt_id").set_index("utt_id").loc[ids, "protocol"].to_numpy(str)
    return stats.group_metrics(labels, pred, protocol)


def scores_table(
    cfg: Config, folder: RunFolder, systems: Sequence[str], protocols: Optional[Sequence[str]] = None
) -> pd.DataFrame:
    """One row per system: test accuracy, UAR and macro-F1 with their 95 % intervals, and what they rest on.

    Columns: system, acc, acc_lo, acc_hi, uar, uar_lo, uar_hi, macro_f1, macro_f1_lo, macro_f1_hi, unit,
    n_speakers, n_clips, n_seeds (the intervals of a seed mean, unit as ``stats.speaker_bootstrap``).
    """
    rows = []
    for name in systems:
        table = score(system_predictions(cfg, folder, name, protocols), cfg).set_index("metric")
        rows.append(score_row(name, table))
    return pd.DataFrame(rows)


SHORT = {"accuracy": "acc", "uar": "uar", "macro_f1": "macro_f1"}  # a metric's column stem in the score tables


def score_row(name: str, table: pd.DataFrame) -> dict:
    """One row of a scores table from ``score``'s table (indexed by metric): value and interval per metric, and
    with speaker folds the per-fold mean and sd beside the pooled value (``<stem>_folds``, ``<stem>_folds_sd``)."""
    row = {"system": name}
    for metric, short in SHORT.items():
        row |= {
            short: table.at[metric, "value"],
            f"{short}_lo": table.at[metric, "lo"],
            f"{short}_hi": table.at[metric, "hi"],
        }
        if "fold_mean" in table:
            row |= {f"{short}_folds": table.at[metric, "fold_mean"], f"{short}_folds_sd": table.at[metric, "fold_sd"]}
    balanced = table.attrs.get("uar_balanced")
    if balanced:
        row |= {
            "uar_balanced": balanced["value"],
            "uar_balanced_lo": balanced["lo"],
            "uar_balanced_hi": balanced["hi"],
            "uar_balanced_unit": balanced["unit"],  # per corpus: speakers, or clips below 5 test speakers there
        }
    first = table.iloc[0]
    return row | {
        "unit": first["unit"],
        "n_speakers": int(first["n_speakers"]),
        "n_clips": int(first["n_clips"]),
        "n_seeds": int(first["n_seeds"]),
        **({"n_folds": int(first["n_folds"])} if "n_folds" in first else {}),
    }


def fold_note(cfg: Config) -> str:
    """What a scores table's values are under ``data.folds`` ("" with the paper's single split)."""
    if not cfg.data.folds:
        return ""
    return (
        f"Pooled over {cfg.data.folds} speaker folds: every clip is tested once, by the fold that held its speaker "
        "out, and the value and its interval are those of the pooled predictions; 'per fold' is the mean +- sd "
        "of the folds' own values."
    )


def interval_caption(cfg: Config, table: pd.DataFrame) -> str:
    """What the intervals of a scores table are, in words, for its caption."""
    units = set(table["unit"])
    n = cfg.analysis.bootstrap_resamples
    if units == {"speaker"}:
        return (
            f"95 % intervals: percentile bootstrap over test speakers ({n} resamples; a speaker's clips stay "
            "together; the statistic is the mean over seeds)"
        )
    return (
        f"95 % intervals: percentile bootstrap over test CLIPS ({n} resamples): with fewer than "
        f"{stats.MIN_SPEAKERS} test speakers a speaker interval is n/a, and a clip interval is too narrow for new "
        "speakers"
    )


# --------------------------------------------------------------------------- paired comparisons


PAPER_CLAIMS = TABLE5_CLAIMS + TABLE6_CLAIMS  # every comparison the paper makes; copies among them are one claim


def system_identity(cfg: Config, folder: RunFolder, system: str, protocols: Optional[Sequence[str]] = None) -> tuple:
    """What makes two systems the same trained runs: the run keys (``config.json``) of its seeds and protocols, as
    the training step compares them (S4 = A1 and S3 = A2 in the paper: trained once); ``(system,)`` where a run has
    no saved key."""
    keys = []
    for protocol in protocols or evaluation_protocols(cfg):
        for seed in cfg.train.seeds:
            try:
                saved = json.loads(folder.run_config(system, seed, protocol).read_bytes())
            except (OSError, ValueError):
                return (system,)
            keys.append(saved.get("key") if isinstance(saved, dict) else None)
    return tuple(keys) if keys and all(keys) else (system,)


def claim_family(
    cfg: Config, folder: RunFolder, protocols: Optional[Sequence[str]] = None
) -> list[tuple[Comparison, ...]]:
    """The ONE family of the paper's distinct claims this profile can test: the comparisons of Tables 5 and 6
    whose systems it has, those that compare the same two trained systems (S5 vs S4 and Full vs A1) joined as one
    claim (the first named first)."""
    groups: dict[tuple, list[Comparison]] = {}
    for comp in PAPER_CLAIMS:
        if comp.base in cfg.systems and comp.better in cfg.systems:
            key = (
                system_identity(cfg, folder, comp.base, protocols),
                system_identity(cfg, folder, comp.better, protocols),
            )
            groups.setdefault(key, []).append(comp)
    return [tuple(group) for group in groups.values()]


def claims_table(
    cfg: Config, folder: RunFolder, metric: str = "accuracy", protocols: Optional[Sequence[str]] = None
) -> pd.DataFrame:
    """The family of the paper's distinct claims, each tested once, with Holm's adjustment over the family.

    The verdict test is speaker-level: per test speaker, the seed-mean difference (better - base) in ``metric``
    on that speaker's clips; a sign-flip permutation test over speakers (``stats.speaker_signflip_test``: exact up
    to 16 speakers, seeded Monte Carlo beyond) gives the two-sided p; Holm adjusts over the distinct claims; a
    claim is supported only with the adjusted p < ``analysis.alpha`` AND a positive mean speaker difference. The
    exact McNemar test on the soft vote (mean of the seeds' probabilities) is a secondary, clip-level figure.

    Returns:
        One row per distinct claim: comparison, same_as (the other names of the same test), claim, metric, base,
        better (pooled values), delta_pp with its paired hierarchical speaker-bootstrap interval (delta_lo_pp,
        delta_hi_pp), per-fold deltas under folds, unit, speaker_delta_pp (the test's statistic), p (the speaker
        test's), test, p_holm, significant, verdict, delta_uar_pp and p_uar (the same speaker test in UAR,
        unadjusted, secondary), mcnemar_b, mcnemar_c, mcnemar_p (soft vote, clip-level, secondary), clips,
        family_size.
    """
    rows = []
    for group in claim_family(cfg, folder, protocols):
        comp = group[0]
        a = system_predictions(cfg, folder, comp.base, protocols)
        b = system_predictions(cfg, folder, comp.better, protocols)
        table, info = stats.compare_predictions(a, b, cfg.analysis.bootstrap_resamples, cfg.analysis.bootstrap_seed)
        row, uar = table.set_index("metric").loc[metric], table.set_index("metric").loc["uar"]
        rows.append(
            {
                "comparison": f"{comp.better} vs {comp.base}",
                "same_as": ", ".join(f"{c.better} vs {c.base}" for c in group[1:]),
                "claim": comp.claim,
                "metric": METRIC_NAMES[metric],
                "base": row["a"],
                "better": row["b"],
                "delta_pp": 100 * row["delta"],
                "delta_lo_pp": 100 * row["lo"],
                "delta_hi_pp": 100 * row["hi"],
                **fold_deltas(a, b, metric),
                "unit": row["unit"],
                "speaker_delta_pp": 100 * row["speaker_delta"],
                "p": row["speaker_p"],
                "test": "speaker sign-flip (exact)" if row["speaker_exact"] else "speaker sign-flip (Monte Carlo)",
                "delta_uar_pp": 100 * uar["delta"],
                "p_uar": uar["speaker_p"],
                "mcnemar_b": info["mcnemar_b"],
                "mcnemar_c": info["mcnemar_c"],
                "mcnemar_p": row["mcnemar_p"],
                "clips": info["clips"],
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    adjusted, _ = stats.holm(out["p"].to_numpy(), cfg.analysis.alpha)
    at = out.columns.get_loc("test") + 1
    out.insert(at, "p_holm", adjusted)
    out.insert(at + 1, "significant", adjusted < cfg.analysis.alpha)
    out.insert(
        at + 2,
        "verdict",
        [stats.claim_verdict(p, d, cfg.analysis.alpha) for p, d in zip(adjusted, out["speaker_delta_pp"])],
    )
    out["family_size"] = len(out)
    return out


def paired_table(
    cfg: Config,
    folder: RunFolder,
    comparisons: Sequence[Comparison],
    metric: str = "accuracy",
    protocols: Optional[Sequence[str]] = None,
) -> pd.DataFrame:
    """The rows of ``claims_table`` for some of the paper's comparisons (Table 5's steps, Table 6's ablations).

    Their p-values are adjusted over the ONE family of distinct claims (``claim_family``), not over these rows
    alone, so a comparison that is another's copy (Full vs A1 = S5 vs S4) shows the same test, adjusted p and
    verdict. Columns as ``claims_table``'s; ``comparison`` and ``claim`` are this table's own names.
    """
    family = claims_table(cfg, folder, metric, protocols)
    rows = []
    for comp in comparisons:
        name = f"{comp.better} vs {comp.base}"
        if family.empty:
            break
        found = family[(family["comparison"] == name) | family["same_as"].str.split(", ").apply(lambda n: name in n)]
        if len(found):
            row = found.iloc[0].to_dict()
            names = [row["comparison"], *filter(None, row["same_as"].split(", "))]
            others = ", ".join(n for n in names if n != name)  # the same test's other names, not this one
            rows.append(row | {"comparison": name, "same_as": others, "claim": comp.claim})
    return pd.DataFrame(rows, columns=family.columns if rows else None)


def family_note(table: pd.DataFrame) -> str:
    """The family a paired table's p-values are adjusted over, in words ("" when it is empty)."""
    if table.empty:
        return ""
    size = int(table["family_size"].iloc[0])
    return (
        f"Holm over one family of {size} distinct claim(s) of the paper (Tables S26 and S32 together; a comparison "
        "of the same two trained systems, such as Full vs A1 = S5 vs S4, is one claim; Table S34 lists the family)."
    )


def fold_deltas(a: pd.DataFrame, b: pd.DataFrame, metric: str, column: str = "delta_folds_pp") -> dict:
    """Under speaker folds, the mean and sd over folds of b - a in ``metric`` (points) on the clips both scored:
    ``{<column>, <column>_sd}``; {} with one protocol."""
    common = set(a["utt_id"]) & set(b["utt_id"])
    folds_a, folds_b = (fold_values(p[p["utt_id"].isin(common)]) for p in (a, b))
    if folds_a is None or folds_b is None:
        return {}
    delta = 100 * (folds_b.set_index("group")[metric] - folds_a.set_index("group")[metric])
    return {column: float(delta.mean()), f"{column}_sd": float(delta.std(ddof=1))}


def paired_skip(cfg: Config, comparisons: Sequence[Comparison], what: str) -> str:
    """Why ``paired_table`` of ``comparisons`` is empty for this profile ("" when one comparison has both systems)."""
    if any(c.base in cfg.systems and c.better in cfg.systems for c in comparisons):
        return ""
    pairs = ", ".join(f"{c.better} vs {c.base}" for c in comparisons)
    return f"{what}: skipped, it needs both systems of one of {pairs}; this profile has {', '.join(cfg.systems)}."


def verdict_text(table: pd.DataFrame, alpha: float) -> str:
    """One paragraph naming the paper's claims the data support and those they do not."""
    if table.empty:
        return "No comparison could be made (the systems are not in this run)."
    supported = table[table["verdict"] == "supported"]["claim"].tolist()
    others = table[table["verdict"] != "supported"]
    metric = table["metric"].iloc[0] if "metric" in table else "accuracy"
    parts = [
        f"At a family-wise level of {alpha:g} (Holm over the paper's distinct claims; a speaker-level sign-flip test "
        f"of the per-speaker difference in {metric}, seeds averaged; a claim needs adjusted p < {alpha:g} and a gain), "
    ]
    parts.append(
        ("the data support: " + "; ".join(supported) + ". ")
        if supported
        else "the data support none of the paper's claims here. "
    )
    if len(others):
        parts.append(
            "Not supported: "
            + "; ".join(
                f"{r.claim} ({r.verdict}, {r.delta_pp:+.1f} pp, 95 % CI {r.delta_lo_pp:+.1f} to {r.delta_hi_pp:+.1f})"
                for r in others.itertuples()
            )
            + "."
        )
    return "".join(parts)


# --------------------------------------------------------------------------- beyond the paper's protocol


# --------------------------------------------------------------------------- the analysed system


def calibration(
    cfg: Config, folder: RunFolder, system: Optional[str] = None, n_bins: int = 10
) -> tuple[float, pd.DataFrame]:
    """Expected calibration error and the reliability table of a system's test predictions, every seed's rows
    pooled with equal weight. The table's ``clips`` are clips, not clips x seeds: each bin's rows divided by the
    seeds (the mean over seeds of the clips a seed puts in the bin; they sum to the test clips)."""
    preds = system_predictions(cfg, folder, system or primary_system(cfg)[0])
    labels = preds["label"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy(int)
    probs = preds[PROB_COLUMNS].to_numpy()
    table = stats.reliability_table(probs, labels, n_bins)
    seeds = preds["seed"].nunique()
    table["clips"] = table["clips"] / seeds if seeds > 1 else table["clips"]
    return stats.expected_calibration_error(probs, labels, n_bins), table


def pooled_confusion(preds: pd.DataFrame, normalize: bool = True) -> pd.DataFrame:
    """The confusion matrix summed over every seed (and fold) of ``preds``; rows true, columns predicted."""
    counts = pd.crosstab(preds["label"], preds["pred"]).reindex(
        index=list(CLASSES), columns=list(CLASSES), fill_value=0
    )
    counts.index.name, counts.columns.name = "true", "predicted"
    return counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0) if normalize else counts


def accuracy_by(preds: pd.DataFrame, column: str, cfg: Optional[Config] = None) -> pd.DataFrame:
    """Accuracy, UAR and macro-F1 per value of ``column`` (corpus, sex) and overall ("all"), each scored as every
    table scores (``score``: the pooled predictions of every seed, seed means, speaker-bootstrap intervals), with
    the spread over seeds beside them.

    Columns: ``column``, clips, speakers, seeds, accuracy (+ _lo, _hi, _std over seeds), uar (likewise), macro_f1
    (+ _lo, _hi), under speaker folds accuracy_folds / uar_folds (+ _sd: the mean and sd of the folds' own values),
    unit (of the intervals), classes_present. The "all" row is the system's Table 5 row.
    """
    cfg = cfg or Config()
    rows = []
    groups = [(v, g) for v, g in preds.groupby(column, sort=True)] + [("all", preds)]
    for value, group in groups:
        table = score(group, cfg).set_index("metric")
        per_seed = group.groupby("seed").apply(_seed_scores, include_groups=False)
        rows.append(
            {
                column: value,
                "clips": int(group["utt_id"].nunique()),
                "speakers": int(group["speaker"].nunique()),
                "seeds": len(per_seed),
                **{
                    f"{name}{suffix}": table.at[metric, key]
                    for metric, name in (("accuracy", "accuracy"), ("uar", "uar"), ("macro_f1", "macro_f1"))
                    for suffix, key in (("", "value"), ("_lo", "lo"), ("_hi", "hi"))
                },
                # under speaker folds: each fold's own value, mean and sd, beside the pooled one
                **(
                    {
                        f"{name}_folds{part}": table.at[name, key]
                        for name in ("accuracy", "uar")
                        for part, key in (("", "fold_mean"), ("_sd", "fold_sd"))
                    }
                    if "fold_mean" in table
                    else {}
                ),
                "accuracy_std": per_seed["accuracy"].std(ddof=1) if len(per_seed) > 1 else np.nan,
                "uar_std": per_seed["uar"].std(ddof=1) if len(per_seed) > 1 else np.nan,
                "unit": table.at["accuracy", "unit"],
                "classes_present": int(group["label"].nunique()),
            }
        )
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def _seed_scores(part: pd.DataFrame) -> pd.Series:
    """One seed's accuracy and UAR (the one definition, ``stats.metrics_from_counts``)."""
    counts = pd.crosstab(part["label"], part["pred"]).reindex(index=list(CLASSES), columns=list(CLASSES), fill_value=0)
    values = stats.metrics_from_counts(counts.to_numpy())
    return pd.Series({"accuracy": float(values["accuracy"]), "uar": float(values["uar"])})


TABLE5_SYSTEMS = ("S1", "S2", "S3", "S4", "S5")  # the paper's Tables 4 and 5


def table5_scores(cfg: Config, folder: RunFolder, systems: Sequence[str] = TABLE5_SYSTEMS) -> pd.DataFrame:
    """Table 5 with intervals: validation accuracy (seed mean), test accuracy, UAR and macro-F1 with their
    intervals, beside the paper's values."""
    names = [s for s in systems if s in cfg.systems]
    scores = scores_table(cfg, folder, names)
    results = load_results(folder, evaluation_protocols(cfg))
    val = results.groupby("system")["val_acc"].mean()
    scores.insert(1, "val_acc", scores["system"].map(val))
    theirs = paper.TABLE5.rename(columns=lambda c: c if c == "system" else f"paper_{c}")
    return scores.merge(theirs, on="system", how="left")


def reference_of(cfg: Config, name: str) -> Optional[str]:
    """The system an added row is compared with: the name before its first '-' (S5-mask -> S5), else the
    analysed system, else (for the analysed system itself) the log-Mel baseline S1; None when none of them is
    another system of the profile."""
    for reference in (name.split("-")[0], primary_system(cfg)[0], "S1"):
        if reference in cfg.systems and reference != name:
            return reference
    return None


def beyond_table(cfg: Config, folder: RunFolder) -> pd.DataFrame:
    """Rows beyond the paper: every configured system that is not one of the paper's, and the duration-only
    baseline, each with its scores and intervals and a paired test against its reference (S5 for the S5
    variants, S1 for the duration baseline): the delta in UAR with its interval, McNemar, Holm across the rows."""
    rows = []
    names = [n for n in cfg.systems if n not in PAPER_SYSTEMS]
    pairs = [(n, reference_of(cfg, n), system_predictions(cfg, folder, n)) for n in names]
    alone = [(n, preds) for n, reference, preds in pairs if reference is None]  # nothing to compare with
    pairs = [pair for pair in pairs if pair[1] is not None]
    pairs += [
        (name, reference, baseline_predictions(cfg, folder, name))
        for name, reference in baseline_references(cfg).items()
    ]
    for name, reference, preds in pairs:
        scores = score_row(name, score(preds, cfg).set_index("metric"))
        reference_preds = system_predictions(cfg, folder, reference)
        table, info = stats.compare_predictions(
            reference_preds, preds, cfg.analysis.bootstrap_resamples, cfg.analysis.bootstrap_seed
        )
        uar = table.set_index("metric").loc["uar"]
        description = cfg.systems[name].description if name in cfg.systems else DESCRIPTIONS[name]
        folds = fold_deltas(reference_preds, preds, "uar", "delta_uar_folds_pp")
        rows.append(
            {
                **scores,
                "description": description,
                "vs": reference,
                "delta_uar_pp": 100 * uar["delta"],
                "delta_uar_lo_pp": 100 * uar["lo"],
                "delta_uar_hi_pp": 100 * uar["hi"],
                **folds,
                "speaker_delta_uar_pp": 100 * uar["speaker_delta"],
                "p": uar["speaker_p"],
                "mcnemar_p": uar["mcnemar_p"],
            }
        )
    out = pd.DataFrame(rows)
    if len(out):
        adjusted, _ = stats.holm(out["p"].to_numpy(), cfg.analysis.alpha)
        out["p_holm"], out["significant"] = adjusted, adjusted < cfg.analysis.alpha  # p < alpha, as a claim's
    lone = [
        {**score_row(name, score(preds, cfg).set_index("metric")), "description": cfg.systems[name].description}
        for name, preds in alone
    ]
    return pd.concat([out, pd.DataFrame(lone)], ignore_index=True) if lone else out


def epoch_cost(cfg: Config, results: pd.DataFrame) -> pd.DataFrame:
    """Measured seconds per epoch, epochs run and test UAR of the analysed system and its variants
    (``S5-...``), mean over seeds: what masking and trimming cost."""
    base = primary_system(cfg)[0]
    systems = [base, *[n for n in cfg.systems if n.startswith(f"{base}-")]]
    chosen = results[results["system"].isin(systems)]
    return (
        chosen.groupby("system", sort=False)
        .agg(
            seconds_per_epoch=("seconds_per_epoch", "mean"),
            epochs=("stopped_epoch", "mean"),
            test_uar=("test_uar", "mean"),
        )
        .reset_index()
    )
