"""What else the models could be learning (issue 24): the corpus a clip comes from, and the sentence it speaks.

- **Corpus identity**: a probe (``serlib.modelling.baselines.corpus_probe``, trained by
  ``serlib.pipeline.ensure_baselines``) predicts each test clip's corpus from the same features the baselines read;
  its balanced accuracy, with a speaker-bootstrap interval, says how easily the features tell the corpora apart.
  The corpora differ in class balance, so a model that knows the corpus knows part of the label.
- **Sentences**: every corpus repeats a fixed set of sentences across speakers; under the paper's split the test
  speakers say sentences the training speakers said. The ``unseen-sentences`` protocol
  (``serlib.data.protocols``) holds out sentences as well as speakers; here the analysed system trained under it is
  compared with the same system trained under the paper's split, on the SAME clips (the test speakers' held-out
  sentences).
"""

from __future__ import annotations

import pandas as pd

from serlib.analysis import stats
from serlib.analysis.evaluation import METRIC_NAMES
from serlib.analysis.predictions import join_manifest, system_predictions
from serlib.common.config import Config, sentence_systems
from serlib.common.runfolder import RunFolder
from serlib.data.protocols import SENTENCE_PROTOCOL, evaluation_protocols, held_out_sentences
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
    """How easily the features tell the corpus: the probe's test accuracy and balanced accuracy (the mean recall
    over corpora, the corpus-level UAR), each with a 95 % speaker-bootstrap interval, beside chance.

    Returns:
        One row: features, accuracy (+ _lo, _hi), balanced_acc (+ _lo, _hi), chance (1 / corpora), corpora, unit,
        n_speakers, n_clips, and one recall column per corpus (``recall_<corpus>``).

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
    table = stats.speaker_bootstrap(
        y, pred, preds["speaker"], a.bootstrap_resamples, a.bootstrap_seed, n_classes=len(names)
    )
    table = table.set_index("metric")
    recall = {f"recall_{c}": float((pred[y == i] == i).mean()) for i, c in enumerate(names) if (y == i).any()}
    present = len(set(preds["true_corpus"]))
    return pd.DataFrame(
        [
            {
                "features": FEATURE_NAMES.get(corpus_probe_features(cfg), "wav2vec2 mean over real frames"),
                "accuracy": table.at["accuracy", "value"],
                "accuracy_lo": table.at["accuracy", "lo"],
                "accuracy_hi": table.at["accuracy", "hi"],
                "balanced_acc": table.at["uar", "value"],
                "balanced_acc_lo": table.at["uar", "lo"],
                "balanced_acc_hi": table.at["uar", "hi"],
                "chance": 1 / present,
                "corpora": present,
                "unit": table.at["accuracy", "unit"],
                "n_speakers": int(table.at["accuracy", "n_speakers"]),
                "n_clips": int(table.at["accuracy", "n_clips"]),
                **recall,
            }
        ]
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
    """A reading of ``sentence_table`` in one or two sentences."""
    if table.empty:
        return ""
    parts = [
        f"{r.system}: UAR {100 * r.seen:.1f} % when training speakers said these sentences, {100 * r.unseen:.1f} % "
        f"when no training clip did ({r.delta_pp:+.1f} points, 95 % CI {r.delta_lo_pp:+.1f} to {r.delta_hi_pp:+.1f}, "
        f"p = {r.p:.3g})"
        for r in table[table["metric"] == "UAR"].itertuples()
    ]
    return (
        "; ".join(parts) + ". A fall means part of the score rests on having heard the sentence in training; the "
        "unseen-sentences model also trains on fewer clips (the held-out sentences of the training speakers are "
        "unused), so part of a fall may be the smaller training set."
    )
