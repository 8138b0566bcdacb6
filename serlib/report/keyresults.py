"""The box the report opens on: what the run concluded, then the analysed system against the paper.

In order: one sentence on what the run is; a collapse warning when the analysed system's classifier collapsed
(a class's recall below ``COLLAPSE_RECALL`` or one class taking more than ``COLLAPSE_SHARE`` of the predictions,
both CHOSEN); the verdicts on the paper's claims ("k of n supported", each with its interval), read from
``serlib.analysis.evaluation.paired_table`` by column name; a short leaderboard (the analysed system, the best
system and the baselines, UAR with its interval); the analysed system's scores beside the paper's (greyed, with a
note, on a demo run), and its best and worst class. Everything is scored through ``serlib.analysis.evaluation``
as the report's tables score it, so the box says what the tables say; a run whose system has no predictions yet
has no box."""

from __future__ import annotations

import html
from typing import Optional

import pandas as pd

from serlib.analysis.confusion import per_class_recall
from serlib.analysis.evaluation import (
    TABLE5_CLAIMS,
    TABLE5_SYSTEMS,
    TABLE6_CLAIMS,
    baseline_predictions,
    paired_skip,
    paired_table,
    score,
    scores_table,
    system_predictions,
)
from serlib.analysis.stats import MIN_SPEAKERS
from serlib.common.config import PAPER_SYSTEMS, Config, configured_corpora, primary_system
from serlib.common.facts import CLASSES
from serlib.common.paper import TABLE5
from serlib.common.runfolder import RunFolder
from serlib.features.keys import inputs_for_run
from serlib.modelling.runbaselines import baseline_references
from serlib.report.tables import class_words

METRICS = (
    ("acc", "accuracy", "test_acc"),
    ("uar", "UAR", None),
    ("macro_f1", "macro-F1", "macro_f1"),
    ("uar_balanced", "corpus-balanced UAR", None),  # the mean of the per-corpus UARs (two or more corpora)
)
COLLAPSE_RECALL = 0.5 / len(CLASSES)  # CHOSEN: a class recalled at under half of chance (16.7 % of 3 classes)
COLLAPSE_SHARE = 0.6  # CHOSEN: one class taking more than 60 % of the predictions (the test set is near-balanced)
# The verdict tables of the report, in reading order: (claims, the table that holds them, its anchor).
CLAIM_TABLES = ((TABLE5_CLAIMS, "Table S26", "table-s26"), (TABLE6_CLAIMS, "Table S32", "table-s32"))


def results_anchor(system: str) -> Optional[str]:
    """The table the analysed system's scores are in: Table 5 for the paper's S1-S5, Table S27 for a system beyond
    the paper's; None for an ablation (A1-A3: Table 6 scores it against Full only)."""
    if system in TABLE5_SYSTEMS:
        return "table-5"
    return None if system in PAPER_SYSTEMS else "table-s27"


def run_sentence(cfg: Config) -> str:
    """What the run is, in one sentence: the data (synthetic demo or which real corpora), the features (the
    pretrained or a random wav2vec2, or log-Mel only) and the protocol (the split or speaker folds)."""
    synthetic = cfg.data.demo is not None
    uses_wav2vec2 = "wav2vec2" in inputs_for_run(cfg)
    random_weights = uses_wav2vec2 and cfg.features.wav2vec2.weights == "random"
    data = (
        "serlib's synthetic demo corpus (in the real corpora's layouts)"
        if synthetic
        else f"{' + '.join(configured_corpora(cfg))} (MCULP's three classes)"
    )
    encoder = (
        "log-Mel features only (no wav2vec2 encoder)"
        if not uses_wav2vec2
        else "a wav2vec2 encoder with random weights"
        if random_weights
        else "the pretrained wav2vec2-base encoder"
    )
    protocol = (
        f"{cfg.data.folds} speaker folds (every clip tested once)" if cfg.data.folds else "speaker-independent split"
    )
    purpose = (
        " It checks the pipeline; its numbers say nothing about emotion recognition."
        if synthetic or random_weights
        else ""
    )
    return f"This run trains on {data} with {encoder}, {protocol}.{purpose}"


def seeds_text(n: int) -> str:
    """ "1 seed" / "3 seeds pooled"."""
    return "1 seed" if n == 1 else f"{n} seeds pooled"


def collapse_warning(preds: pd.DataFrame) -> str:
    """One sentence when a classifier collapsed ("" otherwise): the classes recalled below ``COLLAPSE_RECALL``
    and a class taking more than ``COLLAPSE_SHARE`` of the predictions (``preds``: one row per clip and seed with
    ``label`` and ``pred``)."""
    recall = per_class_recall(preds).dropna(subset=["recall"])
    low = recall[recall["recall"] < COLLAPSE_RECALL]
    share = preds["pred"].value_counts(normalize=True)
    parts = [f"{class_words(c)} is recalled at {100 * r:.1f} %" for c, r in zip(low["class"], low["recall"])]
    if len(share) and share.iloc[0] > COLLAPSE_SHARE:
        parts.append(f"{class_words(share.index[0])} takes {100 * share.iloc[0]:.1f} % of the predictions")
    if not parts:
        return ""
    return (
        f"The classifier collapsed: {'; '.join(parts)} (CHOSEN thresholds: a recall below "
        f"{100 * COLLAPSE_RECALL:.1f} %, half of chance, or one class above {100 * COLLAPSE_SHARE:.0f} % of the "
        "predictions). Its accuracy says more about the class balance than about what it recognises."
    )


def verdicts(cfg: Config, folder: RunFolder) -> pd.DataFrame:
    """The verdict tables of the report (``CLAIM_TABLES``) through ``evaluation.paired_table``, one row per claim
    this profile can test, with the table it is in (``table``, ``anchor``); empty when it can test none."""
    parts = []
    for claims, label, anchor in CLAIM_TABLES:
        if paired_skip(cfg, claims, label):
            continue
        table = paired_table(cfg, folder, claims)
        if len(table):
            parts.append(table.assign(table=label, anchor=anchor))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def reach_note(n_speakers: int, family_size: int, alpha: float) -> str:
    """One sentence when this test set cannot support any claim whatever the models do ("" otherwise).

    The exact sign-flip test over ``n_speakers`` speakers cannot give a two-sided p below 2 / 2^n (every speaker's
    difference of one sign: that pattern and its mirror), and Holm multiplies the smallest p of ``family_size``
    claims by ``family_size``: when that product is not below ``alpha`` no claim can be supported."""
    if n_speakers < 1 or family_size < 1:
        return ""
    smallest = 2.0 ** (1 - n_speakers)
    if family_size * smallest < alpha:
        return ""
    needed = n_speakers
    while family_size * 2.0 ** (1 - needed) >= alpha:
        needed += 1
    return (
        f"With {n_speakers} test speakers the speaker test's smallest possible p is {smallest:.3g} (2 of the "
        f"{2**n_speakers} sign patterns), {min(1.0, family_size * smallest):.3g} after Holm over {family_size} "
        f"claim(s): at alpha {alpha:g} no claim can be supported on this test set, whatever the models do "
        f"({needed} test speakers would be the fewest that could)."
    )


def _unit_words(row: dict) -> str:
    """ " (interval over clips)" when the paired interval fell back to clips (fewer than ``MIN_SPEAKERS``)."""
    return f" (interval over clips: fewer than {MIN_SPEAKERS} test speakers)" if row.get("unit") == "clip" else ""


def verdicts_html(table: pd.DataFrame, note: str = "") -> str:
    """ "k of n of the paper's distinct claims supported", then one line per distinct claim: verdict, difference and
    interval; a claim that is another table's copy of the same test (Full vs A1 = S5 vs S4) joins its line."""
    if table.empty:
        return "<p>None of the paper's claims can be tested: this profile lacks the systems they compare.</p>"
    lines: dict[frozenset, list[str]] = {}
    supported: dict[frozenset, bool] = {}
    for row in table.to_dict("records"):
        test = frozenset([row["comparison"], *filter(None, str(row.get("same_as") or "").split(", "))])
        where = f"<a href='#{row['anchor']}'>{html.escape(row['table'])}</a>"
        if test in lines:
            lines[test].append(f"the same test as {html.escape(str(row['claim']))} ({where})")
            continue
        ok = str(row["verdict"]).startswith("supported")
        supported[test] = ok
        metric = str(row.get("metric", "accuracy"))
        lines[test] = [
            f"<li class='{'serlib-yes' if ok else 'serlib-no'}'><b>{html.escape(str(row['verdict']))}</b>: "
            f"{html.escape(str(row['claim']))}; {metric} {row['delta_pp']:+.1f} points "
            f"[{row['delta_lo_pp']:+.1f}, {row['delta_hi_pp']:+.1f}]{_unit_words(row)}; the verdict's test: mean "
            f"per speaker {row['speaker_delta_pp']:+.1f} points, p {row['p_holm']:.3g} after Holm ({where})"
        ]
    items = "".join(parts[0] + "".join(f"; {p}" for p in parts[1:]) + "</li>" for parts in lines.values())
    k, n = sum(supported.values()), len(lines)
    return (
        f"<h3>The paper's claims: {k} of {n} distinct claims supported by this run</h3>"
        + (f"<p class='serlib-note'>{html.escape(note)}</p>" if note else "")
        + f"<ul class='serlib-verdicts'>{items}</ul>"
    )


def leaderboard(cfg: Config, folder: RunFolder, analysed: str) -> pd.DataFrame:
    """Test UAR with its 95 % interval of the analysed system, the best trained system and the baselines.

    Columns: system, role (analysed, best, baseline), uar, uar_lo, uar_hi; the best is the highest UAR among the
    configured systems that have test predictions."""
    rows = []
    for name in cfg.systems:
        try:
            rows.append(scores_table(cfg, folder, [name]).iloc[0][["system", "uar", "uar_lo", "uar_hi"]].to_dict())
        except (FileNotFoundError, ValueError):  # not trained in this run folder
            continue
    systems = pd.DataFrame(rows)
    if systems.empty:
        return systems
    best = systems.loc[systems["uar"].idxmax(), "system"]
    board = systems[systems["system"] == analysed].assign(role="analysed")
    if best != analysed:
        board = pd.concat([board, systems[systems["system"] == best].assign(role="best")])
    for name in baseline_references(cfg):
        try:
            uar = score(baseline_predictions(cfg, folder, name), cfg).set_index("metric").loc["uar"]
        except (FileNotFoundError, ValueError):
            continue
        row = {"system": name, "uar": uar["value"], "uar_lo": uar["lo"], "uar_hi": uar["hi"], "role": "baseline"}
        board = pd.concat([board, pd.DataFrame([row])])
    return board.reset_index(drop=True)


def _interval(lo, hi) -> str:
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]" if pd.notna(lo) and pd.notna(hi) else "n/a"


def leaderboard_html(board: pd.DataFrame) -> str:
    """The leaderboard as a small table ("" when empty)."""
    if board.empty:
        return ""
    roles = {
        "analysed": "analysed system",
        "best": "highest test UAR of the trained networks (read off test, not chosen)",
        "baseline": "baseline",
    }
    rows = "".join(
        f"<tr><th>{html.escape(str(r['system']))}</th><td>{roles[r['role']]}</td>"
        f"<td class='num'><b>{100 * r['uar']:.1f} %</b></td><td class='num'>{_interval(r['uar_lo'], r['uar_hi'])}</td>"
        "</tr>"
        for r in board.to_dict("records")
    )
    return (
        "<h3>Leaderboard: test UAR</h3><table class='serlib-key-table serlib-leaderboard'>"
        f"<tr><th>system</th><th>role</th><th>UAR</th><th>95 % interval</th></tr>{rows}</table>"
    )


def key_results_html(cfg: Config, folder: RunFolder) -> str:
    """The key-results box as HTML ("" when the analysed system has no test predictions yet)."""
    system, _ = primary_system(cfg)
    anchor = results_anchor(system)
    if anchor is None:
        return ""
    try:
        row = scores_table(cfg, folder, [system]).set_index("system").loc[system]
        preds = system_predictions(cfg, folder, system)  # every seed (and fold): as Tables 5 and 7
        per_class = per_class_recall(preds)
    except (FileNotFoundError, ValueError):  # not trained yet, or predictions of another manifest: the notebooks say
        return ""
    try:
        claims = verdicts(cfg, folder)
    except (FileNotFoundError, ValueError):  # a compared system not trained yet: no verdict to state
        claims = pd.DataFrame()
    demo = cfg.data.demo is not None
    collapse = collapse_warning(preds)
    return (
        "<section class='serlib-key' id='key-results'><h2>Key results</h2>"
        f"<p>{html.escape(run_sentence(cfg))}</p>"
        + (
            f"<div class='serlib-banner serlib-banner-warning'><b>Collapse.</b> {html.escape(collapse)}</div>"
            if collapse
            else ""
        )
        + verdicts_html(claims, _reach(cfg, row, claims))
        + leaderboard_html(leaderboard(cfg, folder, system))
        + _system_html(cfg, system, row, anchor, demo)
        + _classes_html(per_class)
        + "</section>"
    )


def _reach(cfg: Config, row: pd.Series, claims: pd.DataFrame) -> str:
    """``reach_note`` for the analysed system's test speakers and the family the verdicts were adjusted over."""
    if claims.empty or "family_size" not in claims:
        return ""
    return reach_note(int(row["n_speakers"]), int(claims["family_size"].iloc[0]), cfg.analysis.alpha)


def _system_html(cfg: Config, system: str, row: pd.Series, anchor: str, demo: bool) -> str:
    """The analysed system's accuracy, UAR and macro-F1 with intervals beside the paper's (greyed on a demo run)."""
    paper = TABLE5.set_index("system").loc[system] if system in set(TABLE5["system"]) else None
    cells = []
    for key, name, paper_key in METRICS:
        if key not in row:
            continue
        stated = f"{100 * paper[paper_key]:.1f} %" if paper is not None and paper_key else "not reported"
        folds = (
            f"<td class='num'>{100 * row[key + '_folds']:.1f} ± {100 * row[key + '_folds_sd']:.1f}</td>"
            if key + "_folds" in row
            else "<td class='num'>n/a</td>"
            if "acc_folds" in row
            else ""
        )
        if key == "uar_balanced" and str(row.get("uar_balanced_unit", "")) not in ("", "nan", str(row.get("unit"))):
            name = f"{name} (interval: {row['uar_balanced_unit']}, within each corpus)"
        cells.append(
            f"<tr><th>{html.escape(name)}</th><td class='num'><b>{100 * row[key]:.1f} %</b></td>"
            f"<td class='num'>{_interval(row.get(key + '_lo'), row.get(key + '_hi'))}</td>"
            f"{folds}<td class='num serlib-paper{' serlib-greyed' if demo else ''}'>{stated}</td></tr>"
        )
    seeds = int(row.get("n_seeds", 1)) if pd.notna(row.get("n_seeds", 1)) else 1
    unit_text = (
        "95 % intervals from a bootstrap over test speakers"
        if str(row.get("unit", "clip")) == "speaker"
        else f"95 % intervals from a bootstrap over test clips (fewer than {MIN_SPEAKERS} test speakers)"
    )
    description = cfg.systems[system].description if system in cfg.systems else ""
    note = (
        "<p class='serlib-note'>The paper column is greyed: this demo run's numbers measure the pipeline on "
        "synthetic speech and cannot be compared with the paper's.</p>"
        if demo
        else ""
    )
    return (
        f"<h3>The analysed system</h3><p><b>{html.escape(system)}</b> {html.escape(description)}, on "
        f"{int(row.get('n_clips', 0)):,} test clips of {int(row.get('n_speakers', 0))} unseen speakers, "
        f"{seeds_text(seeds)} ({unit_text}; <a href='#{anchor}'>Table {anchor[len('table-') :].upper()}</a>):</p>"
        "<table class='serlib-key-table'><tr><th></th><th>this run</th><th>95 % interval</th>"
        f"{'<th>per fold, mean ± sd</th>' if 'acc_folds' in row else ''}"
        f"<th class='serlib-paper{' serlib-greyed' if demo else ''}'>paper</th></tr>"
        f"{''.join(cells)}</table>{note}"
    )


def _classes_html(per_class: pd.DataFrame) -> str:
    per_class = per_class[per_class["recall"].notna()]
    if not len(per_class):
        return ""
    best, worst = per_class.loc[per_class["recall"].idxmax()], per_class.loc[per_class["recall"].idxmin()]
    return (
        f"<p>Best class: <b>{html.escape(class_words(str(best['class'])))}</b> (recall {100 * best['recall']:.1f} %); "
        f"worst: <b>{html.escape(class_words(str(worst['class'])))}</b> (recall {100 * worst['recall']:.1f} %) "
        f"(<a href='#table-s40'>Table S40</a>).</p>"
    )
