"""What the report's results rest on (issue 11): every system's test predictions over its seeds and
protocols, their scores with speaker-bootstrap intervals, paired tests of the paper's comparisons
with a Holm correction, the leave-one-corpus-out rows, the baselines beside the systems, calibration,
the pooled confusion matrix and the scores per group (corpus, sex).

One reader (``read_predictions``) loads every prediction file the report scores: a system's
(``models/.../predictions_test.csv``, over its seeds and protocols), the analysed system's one seed
(``primary_predictions``), another run's (``run_predictions``) and the baselines' (``baseline_predictions``,
trained by ``serlib.pipeline.ensure_baselines``: scoring here never trains). The manifest adds each clip's
speaker, corpus, sex, duration and path. Under ``data.folds`` the test predictions of the k folds are pooled,
so every clip (and speaker) is scored once per seed and the intervals use all folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from serlib.analysis import stats
from serlib.common import paper
from serlib.common.config import PAPER_SYSTEMS, Config, configured_corpora, loco_systems, primary_system
from serlib.common.facts import CLASSES, CORPORA
from serlib.common.runfolder import RunFolder
from serlib.data.protocols import evaluation_protocols
from serlib.data.stage import load_manifest
from serlib.modelling.runbaselines import DESCRIPTIONS, baseline_file, baseline_references, baselines_changes
from serlib.modelling.systems import load_results

PROB_COLUMNS = [f"prob_{c}" for c in CLASSES]
PREDICTION_COLUMNS = ("utt_id", "label", "pred", *PROB_COLUMNS, "correct")  # what every predictions file holds
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


# --------------------------------------------------------------------------- predictions


def read_predictions(folder: RunFolder, files: Sequence[tuple[Path, dict]], fix: str) -> pd.DataFrame:
    """The one reader of prediction files: their rows, each with the columns given beside its file, joined with
    the manifest.

    Args:
        folder: the run folder (its manifest).
        files: ``(predictions file, {column: value added to its rows})``, e.g. its protocol and seed.
        fix: what to do when a file is missing (the end of the error).

    Returns:
        The files' rows (``PREDICTION_COLUMNS``, ``label`` and ``pred`` as class names, ``correct`` a bool) and the
        added columns, then each clip's manifest columns (speaker, corpus, sex, duration_s, path, ...).
        ``attrs["source"]`` names the last file read.

    Raises:
        FileNotFoundError: a file is missing (naming it and ``fix``).
        ValueError: a file lacks a column or holds a label that is not a class; a clip is not in the manifest.
    """
    parts = []
    for path, columns in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such predictions; {fix}")
        part = pd.read_csv(path)
        missing = [c for c in PREDICTION_COLUMNS if c not in part.columns]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(PREDICTION_COLUMNS)}"
            )
        part["label"] = as_class_names(part["label"], path, "label")
        part["pred"] = as_class_names(part["pred"], path, "pred")
        parts.append(part.assign(**columns))
    preds = pd.concat(parts, ignore_index=True)
    preds["correct"] = preds["label"] == preds["pred"]
    return join_manifest(preds, folder, str(files[-1][0]), fix)


def join_manifest(preds: pd.DataFrame, folder: RunFolder, source: str, fix: str) -> pd.DataFrame:
    """Predictions (one row per clip and seed) with each clip's manifest columns; ``attrs["source"]`` = ``source``.

    Raises:
        ValueError: a clip is not in the manifest (naming ``source`` and ``fix``).
    """
    manifest = load_manifest(folder).drop(columns=["label"])
    merged = preds.merge(manifest, on="utt_id", how="left", validate="many_to_one", indicator=True)
    unknown = merged.loc[merged["_merge"] == "left_only", "utt_id"]
    if len(unknown):
        raise ValueError(
            f"{source}: {unknown.nunique()} utt_id(s) are not in {folder.manifest} (first: {unknown.iloc[0]}); {fix}"
        )
    merged = merged.drop(columns="_merge")
    merged.attrs["source"] = source
    return merged


def as_class_names(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Class names from names or label indices (0, 1, 2 in ``serlib.CLASSES`` order)."""
    if pd.api.types.is_numeric_dtype(values):
        bad = ~values.isin(range(len(CLASSES)))
        names = values.map(lambda v: CLASSES[int(v)] if v in range(len(CLASSES)) else None)
    else:
        names = values.astype(str)
        bad = ~names.isin(CLASSES)
    if bad.any():
        raise ValueError(f"{path}: column '{column}' holds {values[bad].iloc[0]!r}, not one of {CLASSES} or 0-2")
    return names


def system_predictions(
    cfg: Config,
    folder: RunFolder,
    system: str,
    protocols: Optional[Sequence[str]] = None,
    seeds: Optional[Sequence[int]] = None,
    split: str = "test",
) -> pd.DataFrame:
    """One system's predictions over seeds and protocols, joined with the manifest (``read_predictions``).

    Args:
        cfg: the run configuration.
        folder: the run folder.
        system: the system's name.
        protocols: default: the protocols behind the main results (the split, or every fold).
        seeds: default: ``train.seeds``.
        split: ``test`` or ``val``.

    Returns:
        protocol, seed, utt_id, label, pred, prob_*, correct (bool), and the manifest's columns (speaker, corpus,
        sex, duration_s, path, ...).

    Raises:
        FileNotFoundError: a run has no predictions (train it first), naming the file.
    """
    protocols = list(protocols or evaluation_protocols(cfg))
    seeds = list(cfg.train.seeds if seeds is None else seeds)
    files = [
        (folder.predictions(system, seed, split, protocol), {"protocol": protocol, "seed": seed})
        for protocol in protocols
        for seed in seeds
    ]
    return read_predictions(
        folder,
        files,
        f"train {system} first (`serlib train {cfg.source} --system {system}`) or set analysis.primary_system",
    )


def primary_predictions(
    cfg: Config, folder: RunFolder, split: str = "test", system: Optional[str] = None, seed: Optional[int] = None
) -> pd.DataFrame:
    """One seed of one system (default: the analysed ones, ``analysis.primary_system`` and ``primary_seed``) over
    the main protocols: ``system_predictions`` of that seed, with ``attrs`` naming system, seed, split and source."""
    default_system, default_seed = primary_system(cfg)
    system = system or default_system
    seed = default_seed if seed is None else seed
    preds = system_predictions(cfg, folder, system, seeds=[seed], split=split)
    preds.attrs.update(system=system, seed=seed, split=split)
    return preds


def baseline_predictions(cfg: Config, folder: RunFolder, name: str) -> pd.DataFrame:
    """A baseline's test predictions under the main protocols (``serlib.modelling.runbaselines``), as
    ``system_predictions`` gives a system's (one seed, 0).

    Raises:
        FileNotFoundError: they were not written, or were written from other inputs (a one-line list of what
            differs); ``serlib.pipeline.ensure_baselines(cfg, folder)`` writes them (notebook 03 does).
    """
    changes = baselines_changes(cfg, folder)
    if changes:
        raise FileNotFoundError(
            f"the baselines' predictions are not this run's: {'; '.join(changes)}; write them "
            "with serlib.pipeline.ensure_baselines(cfg, folder)"
        )
    files = [
        (baseline_file(folder, name, protocol), {"protocol": protocol, "seed": 0})
        for protocol in evaluation_protocols(cfg)
    ]
    return read_predictions(folder, files, "write them with serlib.pipeline.ensure_baselines(cfg, folder)")


def run_predictions(folder: RunFolder, system: str) -> pd.DataFrame:
    """A system's test predictions in a run folder, over every seed and main protocol that ``results.csv``
    lists (no configuration needed), joined with that run's manifest."""
    results = load_results(folder)
    rows = results[(results["system"] == system) & ~results["protocol"].str.startswith("loco-")]
    if rows.empty:
        raise FileNotFoundError(f"{folder.results}: no trained {system} in {folder.root}")
    files = [
        (folder.predictions(system, int(r.seed), "test", r.protocol), {"seed": int(r.seed), "protocol": r.protocol})
        for r in rows.itertuples()
    ]
    return read_predictions(folder, files, f"train {system} again in {folder.root}")


def _wide(preds: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """(labels (clips,), predictions (seeds, clips), speakers (clips,), utt_ids) of one system's predictions."""
    pred = preds.pivot_table(index="utt_id", columns="seed", values="pred", aggfunc="first")
    if pred.isna().any().any():
        raise ValueError("the seeds of a system scored different clips; retrain")
    meta = preds.drop_duplicates("utt_id").set_index("utt_id").loc[pred.index]
    encode = {c: i for i, c in enumerate(CLASSES)}
    labels = meta["label"].map(encode).to_numpy(int)
    return (
        labels,
        pred.apply(lambda col: col.map(encode)).to_numpy(int).T,
        meta["speaker"].to_numpy(str),
        list(pred.index),
    )


# --------------------------------------------------------------------------- scores


def score(preds: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Accuracy, UAR and macro-F1 of one system's predictions with speaker-bootstrap intervals (seed mean).

    The value is the pooled one (every clip once per seed). Where ``preds`` pools speaker folds, each metric
    also gets the mean and standard deviation of the per-fold values (``fold_mean``, ``fold_sd``, ``n_folds``).
    """
    labels, pred, speakers, ids = _wide(preds)
    a = cfg.analysis
    table = stats.speaker_bootstrap(labels, pred, speakers, n_resamples=a.bootstrap_resamples, seed=a.bootstrap_seed)
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
    labels, pred, _, ids = _wide(preds)
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
        rows.append(_score_row(name, table))
    return pd.DataFrame(rows)


SHORT = {"accuracy": "acc", "uar": "uar", "macro_f1": "macro_f1"}  # a metric's column stem in the score tables


def _score_row(name: str, table: pd.DataFrame) -> dict:
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


def paired_table(
    cfg: Config,
    folder: RunFolder,
    comparisons: Sequence[Comparison],
    metric: str = "accuracy",
    protocols: Optional[Sequence[str]] = None,
) -> pd.DataFrame:
    """The paired tests of a family of comparisons on the same test clips.

    Per comparison: both systems' value, the difference with its paired speaker-bootstrap interval (seed
    means), the exact McNemar test on the majority vote over seeds, and Holm's adjustment across the
    family; ``verdict`` says in words whether the data support the claim.
    """
    rows = []
    for comp in comparisons:
        if comp.base not in cfg.systems or comp.better not in cfg.systems:
            continue
        a = system_predictions(cfg, folder, comp.base, protocols)
        b = system_predictions(cfg, folder, comp.better, protocols)
        table, info = stats.compare_predictions(a, b, cfg.analysis.bootstrap_resamples, cfg.analysis.bootstrap_seed)
        row = table.set_index("metric").loc[metric]
        rows.append(
            {
                "comparison": f"{comp.better} vs {comp.base}",
                "claim": comp.claim,
                "metric": METRIC_NAMES[metric],
                "base": row["a"],
                "better": row["b"],
                "delta_pp": 100 * row["delta"],
                "delta_lo_pp": 100 * row["lo"],
                "delta_hi_pp": 100 * row["hi"],
                **fold_deltas(a, b, metric),
                "unit": row["unit"],
                "mcnemar_b": info["mcnemar_b"],
                "mcnemar_c": info["mcnemar_c"],
                "p": row["mcnemar_p"],
                "clips": info["clips"],
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_holm"], out["significant"] = stats.holm(out["p"].to_numpy(), cfg.analysis.alpha)
    out["verdict"] = [_verdict(r) for r in out.itertuples()]
    return out


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


def _verdict(row) -> str:
    if row.significant and row.delta_pp > 0:
        return "supported"
    if row.significant:
        return "contradicted: significantly worse"
    return "not supported: within noise" if row.delta_pp > 0 else "not supported: no gain"


def verdict_text(table: pd.DataFrame, alpha: float) -> str:
    """One paragraph naming the paper's claims the data support and those they do not."""
    if table.empty:
        return "No comparison could be made (the systems are not in this run)."
    supported = table[table["verdict"] == "supported"]["claim"].tolist()
    others = table[table["verdict"] != "supported"]
    parts = [f"At a family-wise level of {alpha:g} (Holm, exact McNemar on the same test clips), "]
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


def loco_table(cfg: Config, folder: RunFolder) -> pd.DataFrame:
    """Leave-one-corpus-out: per held-out corpus and system, accuracy, UAR and macro-F1 with intervals,
    beside the same system's score on that corpus's clips within the paper's protocol."""
    manifest = load_manifest(folder)
    rows = []
    seed = cfg.train.seeds[:1]
    for corpus in [c for c in CORPORA if c in set(manifest["corpus"])]:
        protocol = f"loco-{corpus}"
        if not (manifest["corpus"] != corpus).any():
            continue
        for name in loco_systems(cfg):
            preds = system_predictions(cfg, folder, name, [protocol], seed)
            row = _score_row(name, score(preds, cfg).set_index("metric"))
            within = system_predictions(cfg, folder, name, None, seed)
            within = within[within["corpus"] == corpus]
            row_within = _score_row(name, score(within, cfg).set_index("metric")) if len(within) else {}
            rows.append(
                {
                    "held_out": corpus,
                    "trained_on": " + ".join(c for c in CORPORA if c in set(manifest["corpus"]) and c != corpus),
                    **row,
                    "within_uar": row_within.get("uar", np.nan),
                    "within_n_clips": row_within.get("n_clips", 0),
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the analysed system


def calibration(
    cfg: Config, folder: RunFolder, system: Optional[str] = None, n_bins: int = 10
) -> tuple[float, pd.DataFrame]:
    """Expected calibration error and the reliability table of a system's test predictions (all seeds pooled)."""
    preds = system_predictions(cfg, folder, system or primary_system(cfg)[0])
    labels = preds["label"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy(int)
    probs = preds[PROB_COLUMNS].to_numpy()
    return stats.expected_calibration_error(probs, labels, n_bins), stats.reliability_table(probs, labels, n_bins)


def pooled_confusion(preds: pd.DataFrame, normalize: bool = True) -> pd.DataFrame:
    """The confusion matrix summed over every seed (and fold) of ``preds``; rows true, columns predicted."""
    counts = pd.crosstab(preds["label"], preds["pred"]).reindex(
        index=list(CLASSES), columns=list(CLASSES), fill_value=0
    )
    counts.index.name, counts.columns.name = "true", "predicted"
    return counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0) if normalize else counts


def accuracy_by(preds: pd.DataFrame, column: str) -> pd.DataFrame:
    """Accuracy and UAR per value of ``column`` (corpus, sex) and overall: mean and spread over seeds."""
    rows = []
    groups = [(v, g) for v, g in preds.groupby(column, sort=True)] + [("all", preds)]
    for value, group in groups:
        per_seed = []
        for _, part in group.groupby("seed"):
            recall = part.groupby("label")["correct"].mean()
            per_seed.append((part["correct"].mean(), recall.mean()))
        acc, uar = np.array(per_seed).T
        rows.append(
            {
                column: value,
                "clips": int(group["utt_id"].nunique()),
                "seeds": len(per_seed),
                "accuracy": acc.mean(),
                "accuracy_std": acc.std(ddof=1) if len(acc) > 1 else np.nan,
                "uar": uar.mean(),
                "uar_std": uar.std(ddof=1) if len(uar) > 1 else np.nan,
                "classes_present": int(group["label"].nunique()),
            }
        )
    table = pd.DataFrame(rows)
    return table.dropna(axis=1, how="all")


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
        scores = _score_row(name, score(preds, cfg).set_index("metric"))
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
                "p": uar["mcnemar_p"],
            }
        )
    out = pd.DataFrame(rows)
    if len(out):
        out["p_holm"], out["significant"] = stats.holm(out["p"].to_numpy(), cfg.analysis.alpha)
    lone = [
        {**_score_row(name, score(preds, cfg).set_index("metric")), "description": cfg.systems[name].description}
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


def loco_skip(cfg: Config) -> str:
    """Why the leave-one-corpus-out table cannot be made for this profile ("" when it can)."""
    corpora = configured_corpora(cfg)
    if len(corpora) < 2:
        return (
            f"Table S33: skipped, leave-one-corpus-out trains on some corpora and tests on another; this profile "
            f"reads only {', '.join(corpora)}."
        )
    if not loco_systems(cfg):
        return "Table S33: skipped, analysis.loco_systems is [] in this profile."
    return ""


def loco_note(table: pd.DataFrame) -> str:
    """A short reading of the leave-one-corpus-out table: how far each held-out corpus falls below within-corpus."""
    if table.empty:
        return "Leave-one-corpus-out needs at least two corpora and analysis.loco_systems; none ran."
    parts = []
    for corpus, group in table.groupby("held_out", sort=False):
        drops = [f"{r.system} {100 * r.uar:.1f} % (within {100 * r.within_uar:.1f} %)" for r in group.itertuples()]
        parts.append(f"{corpus} held out: UAR " + ", ".join(drops))
    worst = table.loc[(table["within_uar"] - table["uar"]).idxmax()]
    return (
        "; ".join(parts) + f". The largest fall is {worst['system']} on {worst['held_out']} "
        f"({100 * (worst['within_uar'] - worst['uar']):.1f} points): what the systems learn from two corpora "
        "transfers to a third only as far as these rows show; chance is 33.3 %."
    )


# --------------------------------------------------------------------------- two runs


def compare_runs(
    folder_a: RunFolder,
    folder_b: RunFolder,
    systems: Optional[Sequence[str]] = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """The same systems in two runs (e.g. another encoder or parameter), scored on the clips both runs scored.

    One row per system and metric: run A's and run B's value, the difference B - A with its paired
    speaker-bootstrap interval (seed means), the exact McNemar p on the majority vote over seeds, the
    clips compared, and Holm's adjustment over the rows' McNemar tests (one per system).

    Raises:
        ValueError: no system is trained in both runs, or they share no test clip.
    """
    in_a = set(load_results(folder_a)["system"])
    in_b = set(load_results(folder_b)["system"])
    names = list(systems) if systems else [s for s in load_results(folder_a)["system"].drop_duplicates() if s in in_b]
    missing = [s for s in names if s not in in_a or s not in in_b]
    if missing or not names:
        raise ValueError(
            f"system(s) {', '.join(missing) or '(none)'} not trained in both runs "
            f"({folder_a.root}: {', '.join(sorted(in_a))}; {folder_b.root}: {', '.join(sorted(in_b))})"
        )
    rows = []
    for name in names:
        table, info = stats.compare_predictions(
            run_predictions(folder_a, name), run_predictions(folder_b, name), n_resamples, seed
        )
        for r in table.itertuples():
            rows.append(
                {
                    "system": name,
                    "metric": METRIC_NAMES[r.metric],
                    "run_a": r.a,
                    "run_b": r.b,
                    "delta_pp": 100 * r.delta,
                    "delta_lo_pp": 100 * r.lo,
                    "delta_hi_pp": 100 * r.hi,
                    "unit": r.unit,
                    "mcnemar_p": r.mcnemar_p,
                    "clips": info["clips"],
                    "only_a": info["only_a"],
                    "only_b": info["only_b"],
                }
            )
    out = pd.DataFrame(rows)
    first = out.drop_duplicates("system")
    adjusted, _ = stats.holm(first["mcnemar_p"].to_numpy())
    out["p_holm"] = out["system"].map(dict(zip(first["system"], adjusted)))
    return out
