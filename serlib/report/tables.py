"""One table formatter for every table of the report (``show_table`` calls it; the CSVs stay raw).

What a reader gets, column by column:
- headers in words (``HEADERS``, else the snake_case name read token by token), never an underscore,
  with the unit in the header: "(%)", "(points)", "(ms)";
- rates (accuracy, UAR, F1, recall, agreement, probabilities: every value within [0, 1]) as percent with
  one decimal; an estimate with ``<name>_lo`` / ``<name>_hi`` columns becomes one cell "61.8 [50.0, 72.4]",
  and a mean with a ``<name>_sd`` column one cell "61.8 ± 4.2" (e.g. the per-fold values of a pooled score);
- deltas in points with a sign and one decimal; p-values to three decimals, "< 0.001" below;
- integers (and floats that hold whole numbers, e.g. epochs) with thousands separators;
- booleans as ✓ / –; other numbers to three significant digits (or the caller's ``float_format``);
- text left-aligned, numbers right-aligned; absolute paths shown relative to the project (or shortened).
"""

from __future__ import annotations

import ast
import html
import math
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from serlib.common.words import count_phrase as count_phrase  # re-exported: the notebooks' captions

# Exact names (the tables' CSV columns) and how a reader should see them.
HEADERS = {
    "val_acc": "val. accuracy",
    "acc": "accuracy",
    "test_acc": "test accuracy",
    "uar": "UAR",
    "uar_balanced": "corpus-balanced UAR",
    "test_uar": "test UAR",
    "val_uar": "val. UAR",
    "macro_f1": "macro-F1",
    "test_macro_f1": "test macro-F1",
    "val_macro_f1": "val. macro-F1",
    "n_speakers": "test speakers",
    "n_clips": "test clips",
    "n_seeds": "seeds",
    "paper_val_acc": "paper val. accuracy",
    "paper_test_acc": "paper test accuracy",
    "paper_macro_f1": "paper macro-F1",
    "tri_aug": "Tri-Aug",
    "se": "SE",
    "params_m_trained": "parameters trained (M)",
    "params_m_paper_widths": "parameters at the paper's widths (M)",
    "paper_params_m": "paper parameters (M)",
    "delta_val_pp": "Δ val. (points)",
    "delta_test_pp": "Δ test (points)",
    "paper_delta_val_pp": "paper Δ val. (points)",
    "paper_delta_test_pp": "paper Δ test (points)",
    "delta_pp": "Δ (points)",
    "delta_uar_pp": "Δ UAR (points)",
    "mcnemar_b": "McNemar b",
    "mcnemar_c": "McNemar c",
    "p": "p",
    "p_holm": "p (Holm)",
    "p_uar": "p UAR (speaker test)",
    "mcnemar_p": "McNemar p (clip-level)",
    "speaker_p": "p (speaker test)",
    "speaker_delta_pp": "mean Δ per speaker (points)",
    "speaker_delta_uar_pp": "mean Δ UAR per speaker (points)",
    "same_as": "same test as",
    "odds_ratio": "odds ratio",
    "p_gee": "p (GEE, speaker clusters)",
    "balanced_acc": "balanced accuracy",
    "seen": "main model (test sentences seen in training)",
    "unseen": "sentence-held-out model (test sentences unseen)",
    "majority_share": "majority corpus share (accuracy's reference)",
    "balanced_acc_chance": "1/k (balanced accuracy's reference)",
    "p_permutation_holm": "permutation p (Holm)",
    "permutation_verdict": "permutation verdict",
    "p_unadjusted": "p (sign-flip, unadjusted)",
    "same_speakers": "speakers, same clips",
    "ece_change": "ΔECE (scaled - as trained)",
    "temperature": "temperature (mean over runs)",
    "ece": "ECE",
    "nll": "NLL",
    "family_size": "claims in family",
    "p_adjusted": "p (BH)",
    "mannwhitney_p": "Mann-Whitney p",
    "cohen_d": "Cohen's d",
    "ms_per_utt_b1": "batch-1 latency (ms)",
    "ms_per_audio_s": "ms per audio second",
    "weights_mb": "weights (MB)",
    "agree_with_fp32": "agrees with fp32",
    "max_prob_diff": "largest probability change",
    "seconds_per_epoch": "seconds per epoch",
    "best_epoch": "best epoch",
    "stopped_epoch": "stopped at epoch",
    "dataset_task": "dataset / task",
    "model_feature": "model / feature",
    "reported_acc": "reported accuracy",
    "output_shape": "output shape",
    "held_out": "held-out corpus",
    "trained_on": "trained on",
    "within_uar": "within-corpus UAR, same clips",
    "within_n_clips": "within-corpus clips",
    "same_clips": "same clips",
    "all_clips": "all of the corpus",
    "loco_uar_same": "LOCO UAR, same clips",
    "same_unit": "unit (same clips)",
    "classes_present": "classes present",
    "f0_mean_hz": "F0 mean (Hz)",
    "f0_range_st": "F0 range (st)",
    "f0_slope_st_s": "F0 slope (st/s)",
    "voiced_frac": "voiced share",
    "rms_mean_db": "RMS mean (dB)",
    "rms_slope_db_s": "RMS slope (dB/s)",
    "rms_std_db": "RMS std (dB)",
    "onset_rate_hz": "onset rate (Hz)",
    "duration_s": "duration (s)",
    "n_correct": "correct clips",
    "n_misclassified": "misclassified clips",
    "mean_z_correct": "mean z, correct",
    "mean_z_misclassified": "mean z, misclassified",
    "computed_now": "computed now",
    "from_cache": "from cache",
    "audio_s": "audio (s)",
    "analysis_s": "analysis (s)",
    "utt_id": "clip",
    "prob_negative": "p(negative)",
    "prob_sad_fear": "p(sad_fear)",
    "prob_pos_neutral": "p(pos_neutral)",
    "lo": "from",
    "hi": "to",
    "test_lengths": "test lengths",
    "acc_folds": "accuracy per fold",
    "uar_folds": "UAR per fold",
    "macro_f1_folds": "macro-F1 per fold",
    "test_acc_folds": "test accuracy per fold",
    "delta_folds_pp": "Δ per fold (points)",
    "delta_uar_folds_pp": "Δ UAR per fold (points)",
    "reported_acc_folds": "accuracy per fold",
    "n_folds": "folds",
    "params": "parameters",
    "lr": "learning rate",
    "weight_decay": "weight decay",
    "n_params": "parameters",
    "pred": "predicted",
    "step s": "extraction time (s)",
    "clips/s": "clips per second",
    "cache MiB": "cache (MiB)",
    "load s (all clips)": "load time, all clips (s)",
    "tensor": "tensor shape",
    "true frames mean": "true frames, mean",
    "true frames min": "true frames, fewest",
    "true frames max": "true frames, most",
    "full window %": "clips filling the window (%)",
    "padding %": "padding (%)",
    "value std": "value sd",
    "C (CHOSEN on val)": "regularisation C (chosen on val.)",
    "chosen on val": "chosen on val.",
    "cache_mb": "cache (MB)",
    "s_per_clip": "seconds per clip",
    "s_per_audio_s": "seconds per audio second",
}
TOKENS = {
    "acc": "accuracy",
    "val": "val.",
    "uar": "UAR",
    "uar_balanced": "corpus-balanced UAR",
    "f1": "F1",
    "pp": "(points)",
    "ms": "(ms)",
    "mb": "(MB)",
    "mib": "(MiB)",
    "hz": "(Hz)",
    "db": "(dB)",
    "s": "(s)",
    "n": "number of",
    "b1": "batch 1",
    "utt": "clip",
    "params": "parameters",
    "fp32": "fp32",
    "pct": "(%)",
    "se": "SE",
}
P_VALUE = re.compile(r"^(p|p_.+|.+_p)$")
RATE_WORDS = (
    "acc",
    "accuracy",
    "uar",
    "f1",
    "recall",
    "precision",
    "agree",
    "rate",
    "share",
    "confidence",
    "prob",
    "negative",
    "sad",
    "pos",
)  # the class columns of a confusion matrix hold recall
UNIT_IN_HEADER = re.compile(r"\((%|points|ms|MB|MiB|s|Hz|dB|M)\)|%")


CLASS_WORDS = {"sad_fear": "sad/fear", "pos_neutral": "pos/neutral"}  # class names read as words in headers
FLOAT_COLUMNS = {"max_prob_diff"}  # probabilities' differences down to 1e-7 (ONNX parity): digits, not percent
RATE_COLUMNS = {"base", "better", "within_uar", "run A", "run B", "seen", "unseen"}  # a metric's value in [0, 1]


_DICT = re.compile(r"\{'[^{}]*\}")


def _plain_value(value) -> str:
    if isinstance(value, list) and value and all(v == value[0] for v in value):
        return f"{len(value)} × {value[0]}"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _plain_dict(match: re.Match) -> str:
    """A Python dict's repr in a text cell as words: "{'hidden_size': 32}" -> "hidden size 32"."""
    try:
        mapping = ast.literal_eval(match.group(0))
    except (ValueError, SyntaxError):
        return match.group(0)
    if not isinstance(mapping, dict):
        return match.group(0)
    return ", ".join(f"{str(k).replace('_', ' ')} {_plain_value(v)}" for k, v in mapping.items())


def text_cell(text: str) -> str:
    """A text cell as a reader reads it: paths relative, a column name in the cell (a descriptor's, in a table
    about descriptors) in words, no Python dict, class names in words."""
    if "_" in text and text in HEADERS:
        return HEADERS[text]
    return class_words(_DICT.sub(_plain_dict, display_path(text)))


def class_words(text: str) -> str:
    """Class names as a reader reads them: "sad_fear" -> "sad/fear" (the CSVs keep the names)."""
    for cls, words in CLASS_WORDS.items():
        text = text.replace(cls, words)
    return text


def header(name: str) -> str:
    """A column name in words (no underscore)."""
    if name in HEADERS:
        text = HEADERS[name]
    elif "_" not in name:
        text = name
    else:
        for cls, words in CLASS_WORDS.items():
            name = name.replace(cls, words)
        text = " ".join(TOKENS.get(t, t) for t in name.split("_") if t)
    for cls, words in CLASS_WORDS.items():
        text = text.replace(cls, words)
    return text.replace("_", " ")


def _finite(series: pd.Series) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce")
    return values[np.isfinite(values)] if len(values) else values


def _is_bool(series: pd.Series) -> bool:
    if series.dtype == bool:
        return True
    values = set(series.dropna().map(lambda v: v if isinstance(v, (bool, np.bool_)) else str(v)))
    return bool(values) and values <= {True, False, "True", "False"}


def column_kind(name: str, series: pd.Series) -> str:
    """ "bool", "int", "rate", "delta", "p", "float" or "text" for one column."""
    if _is_bool(series):
        return "bool"
    if not pd.api.types.is_numeric_dtype(series):
        return "text"
    values = _finite(series)
    lower = name.lower()
    if name in FLOAT_COLUMNS:
        return "float"
    if name in RATE_COLUMNS and (values.empty or values.between(0, 1).all()):
        return "rate"
    if P_VALUE.match(lower) and (values.empty or values.between(0, 1).all()):
        return "p"
    if "delta" in lower:
        return "delta"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    rate_named = any(w in lower.replace("-", "_").split("_") or lower.startswith(w) for w in RATE_WORDS)
    if not values.empty and rate_named and values.between(0, 1).all() and "%" not in name:
        return "rate"
    if not values.empty and (values == values.round()).all() and values.abs().max() < 1e15:
        return "int"
    return "float"


def _number(value: float, float_format: Optional[str]) -> str:
    if float_format:
        return float_format.format(value)
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 1e-3:
        return f"{value:.3g}"
    return f"{value:.1e}"


def cell(value, kind: str, float_format: Optional[str] = None, delta_scale: float = 1.0) -> str:
    """One value as text for its column kind ("" for a missing value)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if kind == "bool":
        return "✓" if value in (True, "True") or value is np.True_ else "–"
    if kind == "text":
        return text_cell(str(value))
    value = float(value)
    if kind == "rate":
        return f"{100 * value:.1f}"
    if kind == "delta":
        return f"{value * delta_scale:+.1f}"
    if kind == "p":
        return "< 0.001" if value < 1e-3 else f"{value:.3f}"
    if kind == "int":
        return f"{int(round(value)):,}"
    return _number(value, float_format)


_ABSOLUTE = re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)+[\w.@+-]*")


def display_path(text: str, root: Optional[Path] = None) -> str:
    """``text`` with absolute paths shown relative to the project (``root``), or as ``…/<last two parts>``."""
    root = root or _project_root()

    def short(match: re.Match) -> str:
        path = Path(match.group(0))
        try:
            return str(path.relative_to(root))
        except ValueError:
            parts = path.parts[-2:]
            return "…/" + "/".join(parts) if len(path.parts) > 3 else match.group(0)

    return _ABSOLUTE.sub(short, text)


def _project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _merged_intervals(df: pd.DataFrame) -> list[tuple[str, Optional[str], Optional[str], Optional[str]]]:
    """Columns in order as ``(name, lo, hi, sd)``; an ``X_lo`` / ``X_hi`` pair and an ``X_sd`` column are folded
    into ``X``."""
    used, out = set(), []
    for name in df.columns:
        if name in used:
            continue
        lo, hi = None, None
        for lo_name in (f"{name}_lo", re.sub(r"_pp$", "_lo_pp", name) if name.endswith("_pp") else None):
            if lo_name and lo_name in df.columns and lo_name.replace("_lo", "_hi") in df.columns:
                lo, hi = lo_name, lo_name.replace("_lo", "_hi")
                break
        if lo:
            used.update((lo, hi))
        sd = f"{name}_sd" if f"{name}_sd" in df.columns else None
        if sd:
            used.add(sd)
        out.append((name, lo, hi, sd))
    return [c for c in out if c[0] not in used]


def format_frame(df: pd.DataFrame, float_format: Optional[str] = None) -> tuple[list[str], list[list[str]], list[str]]:
    """``(headers, rows of cell texts, alignment per column)``: the table as a reader sees it."""
    names, headers, columns, align = _format_columns(df, float_format)
    rows = [list(r) for r in zip(*columns)] if columns else []
    return headers, rows, align


def _format_columns(df: pd.DataFrame, float_format: Optional[str] = None) -> tuple[list, list, list, list]:
    """``(raw names, headers, cell texts per column, alignment per column)`` of ``format_frame``."""
    names, headers, columns, align = [], [], [], []
    for name, lo, hi, sd in _merged_intervals(df):
        series = df[name]
        kind = column_kind(str(name), series)
        scale = 1.0
        if kind == "delta" and not str(name).endswith("pp") and _finite(series).abs().le(1).all():
            scale = 100.0  # a difference of rates, as points
        text = [cell(v, kind, float_format, scale) for v in series]
        if lo:
            ends = [
                (cell(a, kind, float_format, scale), cell(b, kind, float_format, scale)) for a, b in zip(df[lo], df[hi])
            ]
            text = [
                f"{t}\n[{a}, {b}]" if t and a and b else (f"{t}\n[n/a]" if t else "") for t, (a, b) in zip(text, ends)
            ]  # the interval on its own line (table_html)
        if (
            sd
        ):  # a spread in the unit of its mean (a rate's in points of percent), without a sign; a count's is a number
            spread_kind = "float" if kind == "int" else kind
            spread = [cell(abs(s), spread_kind, float_format, scale).lstrip("+") for s in df[sd]]
            text = [f"{t} ± {s}" if t and s else t for t, s in zip(text, spread)]
        title = header(str(name))
        if kind == "rate" and not UNIT_IN_HEADER.search(title):
            title = title[: -len(" (paper)")] + ", paper (%)" if title.endswith(" (paper)") else title + " (%)"
        if kind == "delta" and "points" not in title:
            title += " (points)"
        if lo:
            title += ", 95 % interval"
        if sd:
            title += ", mean ± sd"
        if kind not in ("text", "bool"):  # a number that could not be computed says so, not a blank
            text = [t or MISSING for t in text]
        names.append(str(name))
        headers.append(title.replace("_", " "))
        columns.append(text)
        align.append("text" if kind == "text" else "num")
    return names, headers, columns, align


MISSING = "n/a"  # a numeric cell without a value (e.g. a mean over no clip)
MAX_COLUMNS = 9  # a wider table is narrowed (``narrow``): the paper's values, constants, descriptions


def _paper_partner(name: str, names: list[str]) -> Optional[str]:
    """The column a paper column stands beside: ``paper_X`` or ``X (paper)`` -> ``X`` (``test_acc`` -> ``acc``)."""
    if name.startswith("paper_"):
        subject = name[len("paper_") :]
    elif name.endswith(" (paper)"):
        subject = name[: -len(" (paper)")]
    else:
        return None
    for candidate in (subject, subject.removeprefix("test_")):
        if candidate in names and candidate != name:
            return candidate
    return None


# Columns a reader can do without when a table is too wide, dropped first (in this order) to the CSV: the verdict
# tables' secondary figures (the clip-level McNemar test, the UAR test, the family's size, the test's name).
SECONDARY = (
    "family_size",
    "same_as",
    "test",
    "mcnemar_b / mcnemar_c",
    "mcnemar_b",
    "mcnemar_c",
    "mcnemar_p",
    "clips",
    "delta_folds_pp",
    "delta_uar_folds_pp",
    "p_uar",
    "delta_uar_pp",
    "speaker_delta_pp",
    "significant",
    "unit",
    "metric",
)
# Never left to the CSV nor to the footnote of constants (nor the first column): what a reader of a wide table needs
# first; for the verdict tables the claim, the two systems' values, Δ with its interval, p with Holm's, the verdict.
KEEP = ("claim", "base", "better", "delta_pp", "p", "verdict")
ADJUSTED = {"p_holm": "Holm", "p_adjusted": "BH"}  # an adjusted p folded into its raw p's cell: "0.031 (Holm 0.062)"


def narrow(
    names: list[str],
    headers: list[str],
    columns: list[list[str]],
    align: list[str],
    limit: int = MAX_COLUMNS,
    secondary: Sequence[str] = (),
) -> tuple[list[str], list[list[str]], list[str], list[str]]:
    """A table wider than ``limit`` columns made narrower, step by step while it is too wide: the paper's value
    as a second line under this run's (``paper_X`` under ``X``); an adjusted p in its p's cell ("0.031 (Holm
    0.062)") and McNemar's b and c in one cell; columns with one value in every row (but ``KEEP``) as a footnote;
    a ``description`` as a second line under the first column; then columns left to the CSV, the ``SECONDARY``
    ones first, then from the right (never the first column nor ``KEEP``), named in a footnote
    ("Also in the CSV: ..."). ``secondary``: this table's own columns to leave to the CSV first (raw names).

    Returns:
        ``(headers, columns, align, footnotes)``; the footnote of the dropped columns comes last and starts
        with "Also in the CSV".
    """
    names, headers, columns, align = list(names), list(headers), [list(c) for c in columns], list(align)
    notes: list[str] = []

    def drop(i: int) -> None:
        for seq in (names, headers, columns, align):
            del seq[i]

    if len(names) > limit:
        for name in [n for n in names if _paper_partner(n, names)]:
            i, j = names.index(name), names.index(_paper_partner(name, names))
            columns[j] = [f"{t}\npaper {p}" if p not in ("", MISSING) else t for t, p in zip(columns[j], columns[i])]
            headers[j] += "; the paper's below"
            drop(i)
    for adjusted, word in ADJUSTED.items():
        if len(names) > limit and adjusted in names and "p" in names:
            i, j = names.index(adjusted), names.index("p")
            columns[j] = [f"{p} ({word} {a})" if a not in ("", MISSING) else p for p, a in zip(columns[j], columns[i])]
            headers[j] += f" ({word}-adjusted in brackets)"
            drop(i)
    if len(names) > limit and "mcnemar_b" in names and "mcnemar_c" in names:
        i, j = names.index("mcnemar_c"), names.index("mcnemar_b")
        columns[j] = [f"{b} / {c}" for b, c in zip(columns[j], columns[i])]
        headers[j], names[j] = "McNemar b / c", "mcnemar_b / mcnemar_c"
        drop(i)
    if len(names) > limit and len(columns[0]) > 1:
        for i in [k for k in range(len(names) - 1, 0, -1) if len(set(columns[k])) == 1 and names[k] not in KEEP]:
            if len(names) <= limit:
                break
            if columns[i][0]:
                notes.insert(0, f"{headers[i]}: {columns[i][0]}")
            drop(i)
    if len(names) > limit and "description" in names[1:]:
        i = names.index("description")
        columns[0] = [f"{a}\n{d}" if d else a for a, d in zip(columns[0], columns[i])]
        drop(i)
    first, right = [], []  # the headers left to the CSV: ``secondary`` and SECONDARY ones, then from the right
    while len(names) > limit:
        known = [n for n in (*secondary, *SECONDARY) if n in names[1:]]
        rest = [k for k in range(len(names) - 1, 0, -1) if names[k] not in KEEP]
        i = names.index(known[0]) if known else (rest[0] if rest else len(names) - 1)
        if known:
            first.append(headers[i])
        else:
            right.insert(0, headers[i])
        drop(i)
    dropped = first + right
    notes = ["In every row: " + "; ".join(notes) + "."] if notes else []
    return headers, columns, align, notes + (["Also in the CSV: " + "; ".join(dropped) + "."] if dropped else [])


def table_html(
    df: pd.DataFrame,
    float_format: Optional[str] = None,
    index: bool = False,
    csv: Optional[str] = None,
    secondary: Sequence[str] = (),
) -> str:
    """``df`` as the report's HTML table (``format_frame``, ``narrow``ed to ``MAX_COLUMNS``): a footnote names
    the columns left to the CSV, and its word "CSV" carries ``csv`` (the file under ``tables/``) for the report's
    export to link (``serlib.report.supplement.link_csv``); ``secondary`` as ``narrow``'s."""
    if index:
        df = df.reset_index()
    names, headers, columns, align = _format_columns(df, float_format)
    rows = [list(r) for r in zip(*columns)] if columns else []
    if len(headers) > TRANSPOSE_COLUMNS and len(rows) < MAX_COLUMNS and not {"claim", "verdict"} & set(names):
        return _transposed_html(headers, rows)  # wide, few rows: one row per field, all kept (claims stay rows)
    headers, columns, align, notes = narrow(names, headers, columns, align, secondary=secondary)
    rows = [list(r) for r in zip(*columns)] if columns else []
    head = "".join(f'<th class="{a}">{html.escape(h)}</th>' for h, a in zip(headers, align))
    body = "".join(
        "<tr>" + "".join(f'<td class="{a}">{_cell_html(v)}</td>' for v, a in zip(row, align)) + "</tr>" for row in rows
    )
    foot = "".join(f'<p class="serlib-footnote">{_footnote_html(n, csv)}</p>' for n in notes)
    return f'<table class="serlib-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{foot}'


def _footnote_html(note: str, csv: Optional[str]) -> str:
    """A footnote; in "Also in the CSV: ..." the word CSV names ``csv`` (``data-csv``) for the export to link."""
    text = html.escape(note)
    if csv and note.startswith(CSV_NOTE):
        ref = f'<span class="serlib-csv-ref" data-csv="{html.escape(csv, quote=True)}">CSV</span>'
        text = html.escape(CSV_NOTE).replace("CSV", ref) + text[len(html.escape(CSV_NOTE)) :]
    return text


CSV_NOTE = "Also in the CSV"
TRANSPOSE_COLUMNS = 18  # more columns than this (and fewer rows than columns): shown transposed


def _cell_html(text: str) -> str:
    """The first line as the value, each further line (an interval, the paper's value, a description) small."""
    value, *more = text.split("\n")
    return html.escape(value) + "".join(f'<br><span class="ci">{html.escape(line)}</span>' for line in more)


def _transposed_html(headers: list[str], rows: list[list[str]]) -> str:
    """The table turned a quarter: the first column's values head the columns, each field is a row."""
    head = '<th class="text"></th>' + "".join(f'<th class="num">{html.escape(r[0])}</th>' for r in rows)
    body = "".join(
        f'<tr><th class="text">{html.escape(h)}</th>'
        + "".join(f'<td class="num">{_cell_html(r[i])}</td>' for r in rows)
        + "</tr>"
        for i, h in enumerate(headers)
        if i > 0
    )
    return f'<table class="serlib-table serlib-transposed"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
