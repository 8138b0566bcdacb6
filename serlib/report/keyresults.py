"""The box the report opens on: the analysed system against the paper, with intervals, its best and
worst class, and one sentence on what the run is. Scored through ``serlib.analysis.evaluation`` (its
``scores_table`` and the analysed seed's predictions), as Table 5 (or Table S27) and Table S40 score
them, so it says exactly what the report's tables say; a run whose system has no predictions yet has
no box."""

from __future__ import annotations

import html
from typing import Optional

import pandas as pd

from serlib.analysis.confusion import per_class_recall
from serlib.analysis.evaluation import TABLE5_SYSTEMS, primary_predictions, scores_table
from serlib.common.config import PAPER_SYSTEMS, Config, configured_corpora, primary_system
from serlib.common.paper import TABLE5
from serlib.common.runfolder import RunFolder
from serlib.features.keys import inputs_for_run

METRICS = (
    ("acc", "accuracy", "test_acc"),
    ("uar", "UAR", None),
    ("macro_f1", "macro-F1", "macro_f1"),
    ("uar_balanced", "corpus-balanced UAR", None),  # the mean of the per-corpus UARs (two or more corpora)
)


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


def key_results_html(cfg: Config, folder: RunFolder) -> str:
    """The key-results box as HTML ("" when the analysed system has no test predictions yet)."""
    system, seed = primary_system(cfg)
    anchor = results_anchor(system)
    if anchor is None:
        return ""
    try:
        row = scores_table(cfg, folder, [system]).set_index("system").loc[system]
        per_class = per_class_recall(primary_predictions(cfg, folder, "test", system, seed))
    except (FileNotFoundError, ValueError):  # not trained yet, or predictions of another manifest: the notebooks say
        return ""
    paper = TABLE5.set_index("system").loc[system] if system in set(TABLE5["system"]) else None
    unit = str(row.get("unit", "clip"))
    cells = []
    for key, name, paper_key in METRICS:
        if key not in row:
            continue
        value = f"{100 * row[key]:.1f} %"
        interval = (
            f"[{100 * row[key + '_lo']:.1f}, {100 * row[key + '_hi']:.1f}]"
            if pd.notna(row.get(key + "_lo")) and pd.notna(row.get(key + "_hi"))
            else "n/a"
        )
        stated = f"{100 * paper[paper_key]:.1f} %" if paper is not None and paper_key else "not reported"
        folds = (
            f"<td class='num'>{100 * row[key + '_folds']:.1f} ± {100 * row[key + '_folds_sd']:.1f}</td>"
            if key + "_folds" in row
            else "<td class='num'>n/a</td>"
            if "acc_folds" in row
            else ""
        )
        cells.append(
            f"<tr><th>{name}</th><td class='num'><b>{value}</b></td><td class='num'>{interval}</td>"
            f"{folds}<td class='num'>{stated}</td></tr>"
        )
    seeds = int(row.get("n_seeds", 1)) if pd.notna(row.get("n_seeds", 1)) else 1
    unit_text = (
        "95 % intervals from a bootstrap over test speakers"
        if unit == "speaker"
        else "95 % intervals from a bootstrap over test clips (fewer than 5 test speakers)"
    )
    classes = ""
    per_class = per_class[per_class["recall"].notna()]
    if len(per_class):
        best, worst = per_class.loc[per_class["recall"].idxmax()], per_class.loc[per_class["recall"].idxmin()]
        classes = (
            f"<p>Best class: <b>{html.escape(str(best['class']))}</b> (recall {100 * best['recall']:.1f} %); "
            f"worst: <b>{html.escape(str(worst['class']))}</b> (recall {100 * worst['recall']:.1f} %) "
            f"(<a href='#table-s40'>Table S40</a>).</p>"
        )
    description = cfg.systems[system].description if system in cfg.systems else ""
    return (
        "<section class='serlib-key' id='key-results'><h2>Key results</h2>"
        f"<p>{html.escape(run_sentence(cfg))}</p>"
        f"<p><b>{html.escape(system)}</b> {html.escape(description)}, on {int(row.get('n_clips', 0)):,} test clips "
        f"of {int(row.get('n_speakers', 0))} unseen speakers, {seeds} seed(s) pooled ({unit_text}; "
        f"<a href='#{anchor}'>Table {anchor[len('table-') :].upper()}</a>):</p>"
        "<table class='serlib-key-table'><tr><th></th><th>this run</th><th>95 % interval</th>"
        f"{'<th>per fold, mean ± sd</th>' if 'acc_folds' in row else ''}<th>paper</th></tr>"
        f"{''.join(cells)}</table>{classes}</section>"
    )
