"""What else the models could be learning (issue 24): the corpus a clip comes from, and the sentence it speaks.

- **Corpus identity**: a probe (``serlib.modelling.baselines.corpus_probe``, trained by
  ``serlib.pipeline.ensure_baselines``) predicts each test clip's corpus from the same features the baselines read;
  its balanced accuracy, with an interval from a bootstrap stratified by corpus, says how easily the features tell
  the corpora apart.
  The corpora differ in class balance, so a model that knows the corpus knows part of the label.
- **Sentences**: every corpus repeats a fixed set of sentences across speakers; under the paper's split the test
  speakers say sentences the training speakers said. The ``unseen-sentences`` protocol
  (``serlib.data.protocols``) holds out sentences as well as speakers; here the analysed system trained under it is
  compared with the same system trained under the paper's split, on the SAME clips (the test speakers' held-out
  sentences).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from serlib.analysis import stats
from serlib.analysis.evaluation import METRIC_NAMES
from serlib.analysis.predictions import join_manifest, system_predictions
from serlib.common.config import Config, sentence_systems
from serlib.common.facts import CLASSES
from serlib.common.runfolder import RunFolder
from serlib.data.protocols import SENTENCE_PROTOCOL, evaluation_protocols, held_out_sentences, protocol_subsets
from serlib.data.stage import load_manifest
from serlib.modelling.runbaselines import (
    EGEMAPS,
    baselines_changes,
    corpus_probe_features,
    corpus_probe_file,
)

FEATURE_NAMES = {EGEMAPS: "eGeMAPS v02 functionals"}  # else: the wav2vec2 mean over real frames


def corpus_identity_skip(cfg: Config) -> str:
    """Why the corpus-identity probe is not in this report ("" when it is)."""
    if corpus_probe_features(cfg) is None:
        return (
            "Corpus identity: skipped, it needs two or more corpora and a feature baseline "
            "(analysis.feature_baselines with S1 or S2)."
        )
    return ""


def corpus_identity_table(cfg: Config, folder: RunFolder) -> pd.DataFrame:
    """How easily the features tell the corpus: the probe's test accuracy beside its reference, the majority
    corpus's share of the test clips (what always guessing that corpus scores), and its balanced accuracy (the mean
    recall over corpora, the corpus-level UAR) beside its reference 1 / k (k corpora), each with a 95 % interval
    from a bootstrap STRATIFIED by corpus (``corpus_bootstrap``), so that every resample holds every corpus.

    Returns:
        One row: features, accuracy (+ _lo, _hi), majority_share, balanced_acc (+ _lo, _hi), balanced_acc_chance
        (1 / k), corpora, unit (``corpus_bootstrap``'s), n_speakers, n_clips, and one recall column per corpus
        (``recall_<corpus>``).

    Raises:
        FileNotFoundError: the probe's predictions are missing or were made by other inputs.
    """
    changes = baselines_changes(cfg, folder)
    if changes:
        raise FileNotFoundError(
            f"the corpus probe's predictions are not this run's: {'; '.join(changes)}; write them with "
            "serlib.pipeline.ensure_baselines(cfg, folder)"
        )
    preds = pd.concat([pd.read_csv(corpus_probe_file(folder, p)) for p in evaluation_protocols(cfg)])
    preds = join_manifest(preds.rename(columns={"corpus": "true_corpus"}), folder, str(folder.root), "")
    names = sorted(set(preds["true_corpus"]) | set(preds["pred_corpus"]))
    y = preds["true_corpus"].map(names.index).to_numpy(int)
    pred = preds["pred_corpus"].map(names.index).to_numpy(int)
    a = cfg.analysis
    boot = corpus_bootstrap(y, pred, preds["speaker"], names, a.bootstrap_resamples, a.bootstrap_seed)
    recall = {f"recall_{c}": float((pred[y == i] == i).mean()) for i, c in enumerate(names) if (y == i).any()}
    present = len(set(preds["true_corpus"]))
    return pd.DataFrame(
        [
            {
                "features": FEATURE_NAMES.get(corpus_probe_features(cfg), "wav2vec2 mean over real frames"),
                "accuracy": boot["accuracy"],
                "accuracy_lo": boot["accuracy_lo"],
                "accuracy_hi": boot["accuracy_hi"],
                "majority_share": float(np.bincount(y).max() / len(y)),
                "balanced_acc": boot["uar"],
                "balanced_acc_lo": boot["uar_lo"],
                "balanced_acc_hi": boot["uar_hi"],
                "balanced_acc_chance": 1 / present,
                "corpora": present,
                "unit": boot["unit"],
                "n_speakers": int(preds["speaker"].astype(str).nunique()),
                "n_clips": len(y),
                **recall,
            }
        ]
    )


def corpus_prior_score(cfg: Config, folder: RunFolder) -> dict:
    """How much of the emotion label the corpus alone gives away: every test clip is given the class most frequent
    among its corpus's TRAINING clips (per protocol: under folds, each fold's training speakers), and that guess is
    scored as the systems are (UAR, with the speaker interval of ``stats.speaker_bootstrap``).

    Returns:
        {"uar", "uar_lo", "uar_hi", "unit", "guess" ({corpus: class} of the first protocol)}; {} with one corpus.
    """
    manifest = load_manifest(folder)
    if manifest["corpus"].nunique() < 2:
        return {}
    parts, guesses = [], {}
    for protocol in evaluation_protocols(cfg):
        subset = protocol_subsets(folder, protocol, manifest)
        train, test = manifest[subset == "train"], manifest[subset == "test"]
        guess = train.groupby("corpus")["label"].agg(lambda labels: labels.value_counts().idxmax()).to_dict()
        guesses = guesses or guess
        parts.append(test.assign(pred=test["corpus"].map(guess)).dropna(subset=["pred"]))
    scored = pd.concat(parts, ignore_index=True)
    y, pred = (scored[c].map(CLASSES.index).to_numpy(int) for c in ("label", "pred"))
    a = cfg.analysis
    table = stats.speaker_bootstrap(y, pred, scored["speaker"], a.bootstrap_resamples, a.bootstrap_seed)
    uar = table.set_index("metric").loc["uar"]
    return {"uar": uar["value"], "uar_lo": uar["lo"], "uar_hi": uar["hi"], "unit": uar["unit"], "guess": guesses}


def corpus_prior_note(prior: dict) -> str:
    """``corpus_prior_score`` in a sentence ("" when there is one corpus)."""
    if not prior:
        return ""
    guess = ", ".join(f"{corpus}: {label}" for corpus, label in sorted(prior["guess"].items()))
    over = (
        "test speakers" if prior["unit"] == "speaker" else f"test clips (fewer than {stats.MIN_SPEAKERS} test speakers)"
    )
    return (
        f"Knowing only the corpus (each test clip given its corpus's most frequent training class: {guess}) scores "
        f"UAR {100 * prior['uar']:.1f} % [{100 * prior['uar_lo']:.1f}, {100 * prior['uar_hi']:.1f}] (95 % "
        f"interval over {over}), against {100 / len(CLASSES):.1f} % for a constant guess: what a model that "
        "recognised the corpus and nothing else could reach."
    )


def corpus_bootstrap(
    y_corpus: np.ndarray,
    pred_corpus: np.ndarray,
    speakers: Sequence[str],
    names: Sequence[str],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Accuracy and balanced accuracy of a corpus classifier with percentile intervals from a bootstrap stratified by
    the true corpus: within each corpus its speakers are drawn with replacement (its clips where it has fewer than
    ``stats.MIN_SPEAKERS`` test speakers, as ``stats.balanced_uar`` does), so no resample loses a corpus (a plain
    speaker bootstrap over 12 test speakers leaves a one-speaker corpus out of (11/12)^12 = 35 % of its resamples,
    and balanced accuracy then averages over fewer corpora).

    Args:
        y_corpus, pred_corpus: ``(clips,)`` true and predicted corpus indices into ``names``.
        speakers: ``(clips,)`` speaker of each clip.

    Returns:
        {"accuracy", "accuracy_lo", "accuracy_hi", "uar", "uar_lo", "uar_hi", "unit"}: unit "speaker" when every
        corpus resamples speakers, "clip" when none does, else "speaker; clip in <corpora> (< 5 test speakers)".
    """
    y_corpus, speakers = np.asarray(y_corpus, dtype=int), np.asarray(speakers).astype(str)
    counts, weights, clip_level = [], [], []
    for k in np.unique(y_corpus):
        chosen = y_corpus == k
        part, drawn, unit = stats.stratum_draws(
            y_corpus[chosen], pred_corpus[chosen], speakers[chosen], len(names), n_resamples, seed + 7919 * int(k)
        )
        counts.append(part)  # (groups of this corpus, 1, corpora, corpora)
        weights.append(drawn)
        if unit == "clip":
            clip_level.append(names[k])
    counts_all = np.concatenate(counts)  # (groups, 1, corpora, corpora)
    resampled = stats._resampled(counts_all, np.concatenate(weights, axis=1), seed, 1)
    point = stats._seed_mean(counts_all.sum(axis=0))
    tail = 100 * (1 - level) / 2
    out = {}
    for metric in ("accuracy", "uar"):
        lo, hi = np.nanpercentile(resampled[metric], [tail, 100 - tail])
        out.update({metric: float(point[metric]), f"{metric}_lo": float(lo), f"{metric}_hi": float(hi)})
    if not clip_level:
        out["unit"] = "speaker"
    elif len(clip_level) == len(counts):
        out["unit"] = "clip"
    else:
        out["unit"] = f"speaker; clip in {', '.join(clip_level)} (< {stats.MIN_SPEAKERS} test speakers)"
    return out


def corpus_identity_caption(table: pd.DataFrame, n_resamples: int) -> str:
    """Table S35's caption, its interval described by the table's unit."""
    row = table.iloc[0]
    unit = str(row["unit"])
    if unit == "speaker":
        over = "over test speakers, drawn within each corpus"
    elif unit == "clip":
        over = (
            f"over test CLIPS, drawn within each corpus ({row['n_speakers']} test speakers: each corpus has fewer "
            f"than {stats.MIN_SPEAKERS}, so a speaker interval is n/a; a clip interval is too narrow for new speakers)"
        )
    else:
        over = f"drawn within each corpus, over its test speakers, or its clips where it has too few ({unit})"
    return (
        "Corpus identity predicted from the features (a standardised logistic regression, C chosen on validation, "
        f"scored on the {row['n_clips']:,} test clips of {row['n_speakers']} test speakers): accuracy beside its "
        "reference, the majority corpus's share of the test clips (always guessing that corpus), and balanced "
        f"accuracy (mean recall over corpora) beside its reference 1/k ({row['corpora']} corpora), with 95 % "
        f"percentile bootstrap intervals {over} ({n_resamples} resamples); then the recall of each corpus."
    )


def sentence_skip(cfg: Config) -> str:
    """Why the sentence-disjoint comparison is not in this report ("" when it is)."""
    if not sentence_systems(cfg):
        return "Unseen sentences: skipped, analysis.sentence_systems is [] in this profile."
    return ""


def held_out_note(folder: RunFolder) -> str:
    """Which sentences ``unseen-sentences`` holds out, per corpus, in words."""
    manifest = load_manifest(folder)
    parts = []
    for corpus, held in held_out_sentences(manifest).items():
        total = manifest.loc[manifest["corpus"] == corpus, "sentence"].nunique()
        parts.append(f"{corpus}: {', '.join(held) or 'none'} ({len(held)} of {total})")
    return "Sentences held out (test-only) under unseen-sentences: " + "; ".join(parts) + "."


def sentence_table(cfg: Config, folder: RunFolder) -> pd.DataFrame:
    """Each system of ``analysis.sentence_systems`` trained with the sentences it is tested on held out, against the
    same system trained under the main protocol (first seed), on the same clips: the test speakers' clips of the
    held-out sentences.

    Returns:
        One row per system and metric: system, metric, seen (main protocol: its training speakers said these
        sentences), unseen (sentences held out), delta_pp (unseen - seen) with its paired speaker-bootstrap
        interval, p (the sign-flip test over speakers), unit, n_speakers, clips.
    """
    seed = cfg.train.seeds[:1]
    rows = []
    for name in sentence_systems(cfg):
        unseen = system_predictions(cfg, folder, name, [SENTENCE_PROTOCOL], seed)
        seen = system_predictions(cfg, folder, name, None, seed)
        a = cfg.analysis
        table, info = stats.compare_predictions(seen, unseen, a.bootstrap_resamples, a.bootstrap_seed)
        for r in table.itertuples():
            rows.append(
                {
                    "system": name,
                    "metric": METRIC_NAMES[r.metric],
                    "seen": r.a,
                    "unseen": r.b,
                    "delta_pp": 100 * r.delta,
                    "delta_lo_pp": 100 * r.lo,
                    "delta_hi_pp": 100 * r.hi,
                    "p": r.speaker_p,
                    "unit": r.unit,
                    "n_speakers": int(r.n_speakers),
                    "clips": info["clips"],
                }
            )
    return pd.DataFrame(rows)


def sentence_note(table: pd.DataFrame) -> str:
    """A reading of ``sentence_table``: the UAR of each system under both models, what the interval is over, how
    small the sign-flip p can get with these speakers, and what a fall or a rise can and cannot mean."""
    if table.empty:
        return ""
    uar = table[table["metric"] == "UAR"]
    parts = [
        f"{r.system}: UAR {100 * r.seen:.1f} % from the main model (its training speakers said these sentences), "
        f"{100 * r.unseen:.1f} % from the model trained with them held out, so that no training clip said them "
        f"({r.delta_pp:+.1f} points, 95 % interval {r.delta_lo_pp:+.1f} to {r.delta_hi_pp:+.1f}, "
        f"sign-flip p = {r.p:.3f})"
        for r in uar.itertuples()
    ]
    n = int(uar["n_speakers"].min())
    if set(uar["unit"]) == {"speaker"}:
        unit = f"The interval is a paired bootstrap over the {n} test speakers (a speaker's clips stay together)."
    else:
        unit = (
            f"The interval is a paired bootstrap over test CLIPS: with {n} test speakers (fewer than "
            f"{stats.MIN_SPEAKERS}) a speaker interval is n/a, and a clip interval is too narrow for new speakers."
        )
    floor = ""
    if n <= 16:  # the exact test: the most extreme of its 2^n sign patterns (all speakers one way) gives 2/2^n
        floor = f" With {n} test speakers the sign-flip p cannot go below 2/2^{n} = {2 / 2**n:.3g}"
        floor += ", so it cannot be small here: a large p is no evidence of no effect." if 2 / 2**n >= 0.05 else "."
    return (
        "; ".join(parts)
        + f". {unit}{floor} The two numbers come from two different trained models (the main one and the "
        "sentence-held-out one), one seed each, scored on the same clips: the same clips control for how hard the "
        "clips are, but not for the seed, nor for the training set (the sentence-held-out model trains on fewer "
        "clips: the held-out sentences of the training speakers are unused), and the interval covers which "
        "test speakers (or clips) were drawn, not the seed-to-seed spread of training. A fall beyond the interval "
        "suggests part of the score rests on having heard the sentence in training (or on the main model's larger "
        "training set); "
        "a rise cannot come from the sentences (the held-out model never heard them) and shows how far two "
        "trainings differ by seed and training set alone. A rise or a fall within the interval is seed and training "
        "noise, not evidence either way."
    )
