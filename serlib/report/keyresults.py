"""The box the report opens on: the analysed system against the paper, with intervals, its best and
worst class, and one sentence on what the run is. Read from the run folder's tables (Table 5, Table
S40), so it says exactly what the report's tables say; absent tables leave the box out."""
from __future__ import annotations

import html
from typing import Optional

import pandas as pd

from serlib.common.config import Config, configured_corpora, primary_system
from serlib.common.paper import TABLE5
from serlib.common.runfolder import RunFolder
from serlib.features.keys import inputs_for_run

METRICS = (("acc", "accuracy", "test_acc"), ("uar", "UAR", None), ("macro_f1", "macro-F1", "macro_f1"))


def _read(path) -> Optional[pd.DataFrame]:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return None


def run_sentence(cfg: Config) -> str:
    """What the run is, in one sentence: the data (synthetic demo or which real corpora), the features (the
    pretrained or a random wav2vec2, or log-Mel only) and the protocol (the split or speaker folds)."""
    synthetic = cfg.data.demo is not None
    uses_wav2vec2 = "wav2vec2" in inputs_for_run(cfg)
    random_weights = uses_wav2vec2 and cfg.features.wav2vec2.weights == "random"
    data = ("serlib's synthetic demo corpus (in the real corpora's layouts)" if synthetic
            else f"{' + '.join(configured_corpora(cfg))} (MCULP's three classes)")
    encoder = ("log-Mel features only (no wav2vec2 encoder)" if not uses_wav2vec2 else
               "a wav2vec2 encoder with random weights" if random_weights else "the pretrained wav2vec2-base encoder")
    protocol = (f"{cfg.data.folds} speaker folds (every clip tested once)" if cfg.data.folds
                else "speaker-independent split")
    purpose = (" It checks the pipeline; its numbers say nothing about emotion recognition."
               if synthetic or random_weights else "")
    return f"This run trains on {data} with {encoder}, {protocol}.{purpose}"


def key_results_html(cfg: Config, folder: RunFolder) -> str:
    """The key-results box as HTML ("" when Table 5 has not been written yet)."""
    system, _ = primary_system(cfg)
    table, anchor = None, "table-5"
    for name, anchor in (("table_5", "table-5"), ("table_s27_beyond", "table-s27")):  # a system beyond the paper's
        table = _read(folder.tables / f"{name}.csv")
        if table is not None and system in set(table["system"]):
            break
    else:
        return ""
    row = table.set_index("system").loc[system]
    paper = TABLE5.set_index("system").loc[system] if system in set(TABLE5["system"]) else None
    unit = str(row.get("unit", "clip"))
    cells = []
    for key, name, paper_key in METRICS:
        if key not in row:
            continue
        value = f"{100 * row[key]:.1f} %"
        interval = (f"[{100 * row[key + '_lo']:.1f}, {100 * row[key + '_hi']:.1f}]"
                    if pd.notna(row.get(key + "_lo")) and pd.notna(row.get(key + "_hi")) else "n/a")
        stated = (f"{100 * paper[paper_key]:.1f} %" if paper is not None and paper_key else "not reported")
        folds = (f"<td class='num'>{100 * row[key + '_folds']:.1f} ± {100 * row[key + '_folds_sd']:.1f}</td>"
                 if key + "_folds" in row else "")
        cells.append(f"<tr><th>{name}</th><td class='num'><b>{value}</b></td><td class='num'>{interval}</td>"
                     f"{folds}<td class='num'>{stated}</td></tr>")
    seeds = int(row.get("n_seeds", 1)) if pd.notna(row.get("n_seeds", 1)) else 1
    unit_text = ("95 % intervals from a bootstrap over test speakers" if unit == "speaker"
                 else "95 % intervals from a bootstrap over test clips (fewer than 5 test speakers)")
    classes = ""
    per_class = _read(folder.tables / "table_s40.csv")
    if per_class is not None and {"class", "recall"} <= set(per_class.columns) and len(per_class):
        best, worst = per_class.loc[per_class["recall"].idxmax()], per_class.loc[per_class["recall"].idxmin()]
        classes = (f"<p>Best class: <b>{html.escape(str(best['class']))}</b> (recall {100 * best['recall']:.1f} %); "
                   f"worst: <b>{html.escape(str(worst['class']))}</b> (recall {100 * worst['recall']:.1f} %) "
                   f"(<a href='#table-s40'>Table S40</a>).</p>")
    description = cfg.systems[system].description if system in cfg.systems else ""
    return ("<section class='serlib-key' id='key-results'><h2>Key results</h2>"
            f"<p>{html.escape(run_sentence(cfg))}</p>"
            f"<p><b>{html.escape(system)}</b> {html.escape(description)}, on {int(row.get('n_clips', 0)):,} test clips "
            f"of {int(row.get('n_speakers', 0))} unseen speakers, {seeds} seed(s) pooled ({unit_text}; "
            f"<a href='#{anchor}'>Table {anchor[len('table-'):].upper()}</a>):</p>"
            "<table class='serlib-key-table'><tr><th></th><th>this run</th><th>95 % interval</th>"
            f"{'<th>per fold, mean ± sd</th>' if 'acc_folds' in row else ''}<th>paper</th></tr>"
            f"{''.join(cells)}</table>{classes}</section>")
