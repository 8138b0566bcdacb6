"""Listening to misclassified test clips (paper 5.4: "listening tests on 50 misclassified clips"): which
clips are drawn, what listeners said about them (tags by confusion pair, agreement between annotators), and
each clip's audio and pyin pitch contour, computed once per process.

The annotations themselves are ``serlib.analysis.annotations``; the listening station (an ipywidgets UI), the
static table with playable audio and the clip figure are presentation, in ``serlib.report.listening``.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np
import pandas as pd

from serlib.analysis.annotations import TAGS, file_tags, tag_label
from serlib.analysis.evaluation import PROB_COLUMNS
from serlib.analysis.prosody import hop_length, pitch_contour
from serlib.common.audio import load_audio
from serlib.common.config import AnalysisConfig
from serlib.common.facts import CLASSES, SAMPLE_RATE

# --------------------------------------------------------------------------- clips


def select_misclassified(preds: pd.DataFrame, n: int = 50, seed: int = 0) -> pd.DataFrame:
    """Draw ``n`` misclassified clips reproducibly (all of them when fewer).

    The draw depends only on the set of misclassified utt_ids and the seed, not on row order.

    Args:
        preds: predictions joined with the manifest (``serlib.analysis.evaluation.primary_predictions``).
        n: how many clips (paper 5.4: 50).
        seed: seed of the draw.

    Returns:
        The drawn rows sorted by (true class, predicted class, utt_id), index 0..n-1.
    """
    if n < 1:
        raise ValueError(f"n (analysis.listening_clips) must be at least 1, got {n}")
    wrong = preds[~preds["correct"]].sort_values("utt_id").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    chosen = wrong.iloc[np.sort(rng.permutation(len(wrong))[: min(n, len(wrong))])]
    order = {c: i for i, c in enumerate(CLASSES)}
    return (
        chosen.assign(_t=chosen["label"].map(order), _p=chosen["pred"].map(order))
        .sort_values(["_t", "_p", "utt_id"])
        .drop(columns=["_t", "_p"])
        .reset_index(drop=True)
    )


def with_scores(clips: pd.DataFrame) -> pd.DataFrame:
    """``confidence`` (the top class probability) and ``margin`` (top minus second) of each clip."""
    probs = np.sort(clips[list(PROB_COLUMNS)].to_numpy(dtype=float), axis=1) if len(clips) else np.zeros((0, 3))
    return clips.assign(
        confidence=probs[:, -1] if len(clips) else [], margin=(probs[:, -1] - probs[:, -2]) if len(clips) else []
    )


# --------------------------------------------------------------------------- what listeners said


def tag_summary(clips: pd.DataFrame, annotations: pd.DataFrame) -> pd.DataFrame:
    """Tags by confusion pair: clips drawn, clips annotated, and how often each tag was given.

    Args:
        clips: the listening clips (``select_misclassified``).
        annotations: ``AnnotationStore.frame()`` (may be empty; one row per clip and annotator).

    Returns:
        One row per (true, predicted) pair among the clips, plus a 'total' row. A clip counts as
        annotated once whoever annotated it; a tag counts once per annotator who gave it.
    """
    notes = annotations[annotations["utt_id"].isin(clips["utt_id"])]
    tags = file_tags(list(annotations.columns)) if len(annotations.columns) else TAGS
    marks = [*tags, "reviewed"]
    per_clip = notes.groupby("utt_id")[marks].sum().assign(annotated=1)  # tags summed over annotators
    merged = clips[["utt_id", "label", "pred"]].merge(per_clip, left_on="utt_id", right_index=True, how="left")
    merged[["annotated", *marks]] = merged[["annotated", *marks]].fillna(0).astype(int)
    merged["clips"] = 1
    columns = ["clips", "annotated", *marks]
    table = merged.groupby(["label", "pred"], sort=False)[columns].sum().reset_index()
    total = {"label": "total", "pred": "", **merged[columns].sum().to_dict()}
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    return table.rename(
        columns={
            "label": "true",
            "pred": "predicted",
            "reviewed": "reviewed: no failure",
            **{t: tag_label(t) for t in tags},
        }
    )


def agreement_table(annotations: pd.DataFrame) -> pd.DataFrame:
    """Per pair of named annotators and per tag (and "reviewed"): clips both annotated, share of equal
    decisions and Cohen's kappa (NaN when both never vary). Empty with fewer than two annotators."""
    if annotations.empty:
        return pd.DataFrame()
    named = annotations[annotations["annotator"] != ""]
    people = sorted(named["annotator"].unique())
    rows = []
    for i, a in enumerate(people):
        for b in people[i + 1 :]:
            both = named[named["annotator"] == a].merge(
                named[named["annotator"] == b], on="utt_id", suffixes=("_a", "_b")
            )
            if both.empty:
                continue
            for tag in (*file_tags(list(annotations.columns)), "reviewed"):
                x, y = both[f"{tag}_a"].astype(int).to_numpy(), both[f"{tag}_b"].astype(int).to_numpy()
                observed = float((x == y).mean())
                expected = float(x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean()))
                kappa = (observed - expected) / (1 - expected) if expected < 1 else float("nan")
                rows.append(
                    {
                        "annotators": f"{a} / {b}",
                        "tag": tag_label(tag),
                        "clips": len(both),
                        "agreement": observed,
                        "cohen_kappa": kappa,
                    }
                )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- audio and pitch


@lru_cache(maxsize=64)
def clip_audio(path: str) -> np.ndarray:
    """A clip as the project's loader gives it: ``(samples,)`` float32 mono at 16 kHz (the last 64 kept)."""
    return load_audio(path, SAMPLE_RATE)  # (samples,)


_PITCH: dict = {}  # (path, pyin settings) -> (times, f0): a clip's contour is computed once per process
_PITCH_LOCK = threading.Lock()


def clip_pitch(path: str, analysis: AnalysisConfig) -> tuple[np.ndarray, np.ndarray]:
    """The pyin contour of a clip, cached per clip and settings (the station's Next/Previous and its
    look-ahead thread share it)."""
    key = (str(path), analysis.pitch_fmin, analysis.pitch_fmax, analysis.pitch_frame_length, hop_length(analysis))
    with _PITCH_LOCK:
        if key in _PITCH:
            return _PITCH[key]
    contour = pitch_contour(clip_audio(str(path)), analysis)
    with _PITCH_LOCK:
        _PITCH[key] = contour
    return contour


def pitch_warm() -> bool:
    """Whether this process has computed a pitch contour yet (the first one compiles pyin: seconds)."""
    with _PITCH_LOCK:
        return bool(_PITCH)
