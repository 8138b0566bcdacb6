"""The data tables of the report (notebook ``01_data``), each measured from the run's data and
set beside the paper's values: Table 1 (corpora), the MCULP audit, Table 2 (split), Table 3
(class counts per subset), and the checks that say where the paper's figures differ from what
its own protocol gives.

Inputs are the scan of the corpora (``serlib.data.corpora.scan_corpora``: every readable, well-named
file, before MCULP), the manifest (kept utterances with their split) and ``excluded.csv``.
"""

from __future__ import annotations

from typing import Optional

import pandas as pd

from serlib.common import paper
from serlib.common.facts import CLASSES, CORPORA, RELEASE_DROPPED, RELEASE_KEPT_CLASSES, SUBSETS
from serlib.data.corpora import EXCLUSION_REASONS
from serlib.data.mculp import FLAG_REASONS, REASONS

LANGUAGE = {"CREMA-D": "English (US)", "RAVDESS": "English (NA)", "EmoDB": "German"}  # as the corpora document
SCAN_REASONS_NOT_IN_TABLE1 = ("duplicate", "song", "video_only", "audio_video")  # not speech files of the release


# --------------------------------------------------------------------------- Table 1


def _speakers_text(group: pd.DataFrame) -> str:
    speakers = group.drop_duplicates("speaker")
    male, female = (speakers["sex"] == "male").sum(), (speakers["sex"] == "female").sum()
    unknown = len(speakers) - male - female
    return f"{len(speakers)} ({male} / {female}" + (f" / {unknown} unknown)" if unknown else ")")


def _paper_row(corpus: str) -> Optional[pd.Series]:
    rows = paper.TABLE1[paper.TABLE1["corpus"] == corpus]
    return rows.iloc[0] if len(rows) else None


def table1(scanned: pd.DataFrame) -> pd.DataFrame:
    """Table 1: per corpus, measured on every readable speech file before MCULP, beside the paper.

    Args:
        scanned: the corpus scan (columns corpus, speaker, sex, duration_s, sample_rate, ...).

    Returns:
        One row per corpus: utterances, speakers (M / F), language, sample rate, durations, with
        the paper's utterances and speakers beside them.
    """
    rows = []
    for corpus in [c for c in CORPORA if c in set(scanned["corpus"])]:
        group = scanned[scanned["corpus"] == corpus]
        ref = _paper_row(corpus)
        rates = ", ".join(str(int(r)) for r in sorted(group["sample_rate"].unique()))
        rows.append(
            {
                "corpus": corpus,
                "utterances": len(group),
                "utterances (paper)": int(ref["utterances"]) if ref is not None else None,
                "speakers (M / F)": _speakers_text(group),
                "speakers (M / F) (paper)": f"{ref['speakers']} ({ref['male']} / {ref['female']})"
                if ref is not None
                else "",
                "language": LANGUAGE[corpus],
                "sample rate (Hz)": rates,
                "duration min (s)": group["duration_s"].min(),
                "duration mean (s)": group["duration_s"].mean(),
                "duration max (s)": group["duration_s"].max(),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- MCULP audit


def mculp_audit(audit: pd.DataFrame) -> pd.DataFrame:
    """Files kept and dropped, by reason (rows) and corpus (columns), from ``mculp_audit.csv``.

    Args:
        audit: columns corpus, reason, kept, dropped (one row per corpus and reason).

    Returns:
        Rows "kept", then each reason with its stage (scan or MCULP) and meaning, then "all files";
        columns: the corpora and "total".
    """
    flagged = audit["flagged"] if "flagged" in audit else pd.Series(0, index=audit.index)
    is_flag = flagged > 0  # kept clips flagged (near-silent): shown, counted inside "kept", not in "all files"
    audit = audit.assign(
        files=audit["kept"] + audit["dropped"] + flagged,
        reason=audit["reason"].where(~is_flag, audit["reason"] + _FLAGGED),
    )
    table = audit.pivot_table(index="reason", columns="corpus", values="files", aggfunc="sum", fill_value=0)
    flags = [f + _FLAGGED for f in FLAG_REASONS if f + _FLAGGED in table.index]
    reasons = (
        ["kept"]
        + [r for r in REASONS if r in table.index]
        + sorted(set(table.index) - set(REASONS) - set(flags) - {"kept"})
        + flags
    )
    table = table.reindex(index=reasons, columns=[c for c in CORPORA if c in table.columns], fill_value=0)
    table["total"] = table.sum(axis=1)
    table.loc["all files"] = table.drop(index=flags).sum(axis=0)
    table = table.astype(int).rename_axis(None, axis=1).reset_index()
    table.insert(
        1,
        "stage",
        [
            "MCULP" if r == "kept" else "scan" if r in EXCLUSION_REASONS else "" if r == "all files" else "MCULP"
            for r in table["reason"]
        ],
    )
    table["meaning"] = [
        FLAG_REASONS[r[: -len(_FLAGGED)]]
        if r in flags
        else REASONS.get(r, "mapped to the six shared emotions, long enough" if r == "kept" else "")
        for r in table["reason"]
    ]
    return table


_FLAGGED = " (flagged, kept)"  # the suffix of a flag row's reason in the MCULP audit table


def kept_classes(manifest: pd.DataFrame) -> pd.DataFrame:
    """Kept utterances per class and corpus after MCULP, beside the paper's section 2.2 counts."""
    table = manifest.groupby(["label", "corpus"]).size().unstack(fill_value=0).reindex(list(CLASSES), fill_value=0)
    table = table[[c for c in CORPORA if c in table.columns]]
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    paper_counts = {**paper.MCULP_CLASS_COUNTS, "total": paper.MCULP_TOTAL}
    table["total (paper)"] = [paper_counts[k] for k in table.index]
    table["protocol on the full release"] = [
        {**RELEASE_KEPT_CLASSES, "total": sum(RELEASE_KEPT_CLASSES.values())}[k] for k in table.index
    ]
    return table.rename_axis("class").reset_index()


# --------------------------------------------------------------------------- Tables 2 and 3


def table2(manifest: pd.DataFrame) -> pd.DataFrame:
    """Table 2: speakers, utterances and share of utterances per subset, beside the paper."""
    total = len(manifest)
    rows = []
    for subset in SUBSETS:
        part = manifest[manifest["split"] == subset]
        ref = paper.TABLE2[paper.TABLE2["subset"] == subset].iloc[0]
        rows.append(
            {
                "subset": subset,
                "speakers": part["speaker"].nunique(),
                "speakers (paper)": int(ref["speakers"]),
                "utterances": len(part),
                "utterances (paper)": int(ref["utterances"]),
                "% utterances": 100.0 * len(part) / total if total else 0.0,
                "% (paper)": float(ref["percent"]),
            }
        )
    rows.append(
        {
            "subset": "total",
            "speakers": manifest["speaker"].nunique(),
            "speakers (paper)": int(paper.TABLE2["speakers"].sum()),
            "utterances": total,
            "utterances (paper)": int(paper.TABLE2["utterances"].sum()),
            "% utterances": 100.0,
            "% (paper)": float(paper.TABLE2["percent"].sum()),
        }
    )
    return pd.DataFrame(rows)


def split_by_corpus(manifest: pd.DataFrame) -> pd.DataFrame:
    """Speakers and utterances per corpus and subset: the split is made within each corpus."""
    rows = []
    for corpus in [c for c in CORPORA if c in set(manifest["corpus"])]:
        part = manifest[manifest["corpus"] == corpus]
        row = {"corpus": corpus}
        for subset in SUBSETS:
            sub = part[part["split"] == subset]
            row[f"{subset} speakers"] = sub["speaker"].nunique()
            row[f"{subset} utterances"] = len(sub)
        row["% speakers in train"] = 100.0 * row["train speakers"] / max(part["speaker"].nunique(), 1)
        rows.append(row)
    return pd.DataFrame(rows)


def fold_table(manifest: pd.DataFrame, folds: pd.DataFrame) -> pd.DataFrame:
    """Table S4 (``data.folds``): per speaker fold, the speakers and utterances of each subset, and the test
    speakers of each corpus (every speaker is tested in exactly one fold).

    Args:
        manifest: the run's manifest.
        folds: ``data/folds.csv`` (fold, speaker, split).
    """
    clips = manifest.groupby("speaker").size()
    corpus = manifest.drop_duplicates("speaker").set_index("speaker")["corpus"]
    rows = []
    for fold, part in folds.groupby("fold"):
        row = {"fold": int(fold)}
        for subset in SUBSETS:
            speakers = part.loc[part["split"] == subset, "speaker"]
            row[f"{subset} speakers"] = len(speakers)
            row[f"{subset} utterances"] = int(clips.reindex(speakers).fillna(0).sum())
        tested = part.loc[part["split"] == "test", "speaker"].map(corpus).value_counts()
        row["test speakers per corpus"] = ", ".join(f"{c} {tested[c]}" for c in CORPORA if c in tested)
        rows.append(row)
    return pd.DataFrame(rows)


def table3(manifest: pd.DataFrame) -> pd.DataFrame:
    """Table 3: class counts per subset, each beside the paper's count."""
    counts = manifest.groupby(["label", "split"]).size().unstack(fill_value=0)
    counts = counts.reindex(index=list(CLASSES), columns=list(SUBSETS), fill_value=0)
    ref = paper.TABLE3.set_index("class")
    table = pd.DataFrame({"class": list(CLASSES)})
    for subset in SUBSETS:
        table[subset] = counts[subset].to_numpy()
        table[f"{subset} (paper)"] = ref.loc[list(CLASSES), subset].to_numpy()
    return table


def speaker_overlap(manifest: pd.DataFrame) -> int:
    """How many speakers appear in more than one subset (0 for a speaker-independent split)."""
    return int((manifest.groupby("speaker")["split"].nunique() > 1).sum())


# --------------------------------------------------------------------------- where the paper differs


def paper_vs_protocol_notes(
    manifest: pd.DataFrame, scanned: pd.DataFrame, min_duration_s: float = 1.0
) -> dict[str, str]:
    """Notes, computed from the data and the paper's tables, on where the paper's figures differ.

    Args:
        manifest: the kept utterances with their split.
        scanned: every readable speech file before MCULP.
        min_duration_s: the run's MCULP duration filter.

    Returns:
        key ("mculp", "split", "table3") -> one paragraph.
    """
    return {
        "mculp": _mculp_note(manifest, scanned, min_duration_s),
        "split": _split_note(manifest),
        "table3": _table3_note(manifest),
    }


def _protocol_total_from_table1() -> tuple[int, str]:
    parts, total = [], 0
    for _, ref in paper.TABLE1.iterrows():
        kept = int(ref["utterances"]) - sum(RELEASE_DROPPED.get(ref["corpus"], {}).values())
        total += kept
        dropped = ", ".join(f"{n} {e}" for e, n in RELEASE_DROPPED.get(ref["corpus"], {}).items())
        parts.append(f"{ref['corpus']} {kept}" + (f" (of {ref['utterances']}, less {dropped})" if dropped else ""))
    return total, "; ".join(parts)


def _mculp_note(manifest: pd.DataFrame, scanned: pd.DataFrame, min_duration_s: float) -> str:
    expected, parts = _protocol_total_from_table1()
    counts = manifest["label"].value_counts()
    measured = " / ".join(str(int(counts.get(c, 0))) for c in CLASSES)
    ref = " / ".join(str(paper.MCULP_CLASS_COUNTS[c]) for c in CLASSES)
    short = int((scanned["duration_s"] < min_duration_s).sum())
    return (
        f"The paper states {paper.MCULP_TOTAL:,} utterances after MCULP ({ref} for "
        f"{' / '.join(CLASSES)}). Its protocol (keep the six shared emotions, drop clips under 1 s) "
        f"applied to the corpora of its own Table 1 keeps {expected:,}: {parts}; no clip of the "
        f"released corpora is under 1 s, so the paper's count is {expected - paper.MCULP_TOTAL:,} short "
        f"of what its protocol yields. This run keeps {len(manifest):,} of {len(scanned):,} scanned files "
        f"({measured}); clips under {min_duration_s:g} s among them: {short}."
    )


def _split_note(manifest: pd.DataFrame) -> str:
    ref = paper.TABLE2.set_index("subset")
    paper_sum = int(ref["utterances"].sum())
    sizes = manifest["split"].value_counts()
    speakers = manifest.groupby("split")["speaker"].nunique()
    return (
        f"The paper's Table 2 splits {int(ref['speakers'].sum())} speakers {int(ref.loc['train', 'speakers'])}/"
        f"{int(ref.loc['val', 'speakers'])}/{int(ref.loc['test', 'speakers'])} and gives exactly "
        f"{ref.loc['train', 'utterances']}/{ref.loc['val', 'utterances']}/{ref.loc['test', 'utterances']} "
        f"utterances: their sum is {paper_sum:,}, not the {paper.MCULP_TOTAL:,} it states, and val and test "
        f"hold the same count although they hold {int(ref.loc['val', 'speakers'])} and "
        f"{int(ref.loc['test', 'speakers'])} different speakers. Assigning whole speakers cannot hit exact "
        f"utterance shares: this run's speaker split gives {int(speakers.get('train', 0))}/"
        f"{int(speakers.get('val', 0))}/{int(speakers.get('test', 0))} speakers and "
        f"{int(sizes.get('train', 0))}/{int(sizes.get('val', 0))}/{int(sizes.get('test', 0))} utterances, "
        f"with {speaker_overlap(manifest)} speakers in more than one subset."
    )


def _table3_note(manifest: pd.DataFrame) -> str:
    ref = paper.TABLE3.set_index("class")
    totals = {c: int(ref.loc[c, ["train", "val", "test"]].sum()) for c in CLASSES}
    mismatch = [
        f"{c} {totals[c]} vs {paper.MCULP_CLASS_COUNTS[c]}" for c in CLASSES if totals[c] != paper.MCULP_CLASS_COUNTS[c]
    ]
    counts = (
        manifest.groupby(["split", "label"]).size().unstack(fill_value=0).reindex(columns=list(CLASSES), fill_value=0)
    )
    same = "val" in counts.index and "test" in counts.index and (counts.loc["val"] == counts.loc["test"]).all()
    text = (
        "The paper's Table 3 gives identical class counts for val and test "
        f"({' / '.join(str(ref.loc[c, 'val']) for c in CLASSES)}), which two disjoint sets of speakers, "
        "each with its own number of clips per emotion, do not produce; "
    )
    text += ("its rows sum to " + "; ".join(mismatch) + " stated in section 2.2. ") if mismatch else ""
    text += (
        f"In this run val and test {'are' if same else 'are not'} identical: val "
        + " / ".join(str(int(counts.loc["val", c])) if "val" in counts.index else "0" for c in CLASSES)
        + ", test "
        + " / ".join(str(int(counts.loc["test", c])) if "test" in counts.index else "0" for c in CLASSES)
        + "."
    )
    return text
