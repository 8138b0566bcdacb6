"""The box the report opens on: the analysed system against the paper, with intervals, its best and
worst class, and one sentence on what the run is. Read from the run folder's tables (Table 5, Table
S40), so it says exactly what the report's tables say; absent tables leave the box out."""
from __future__ import annotations

import html
from typing import Optional

import pandas as pd

from serlib.common.config import Config, primary_system
from serlib.common.paper import TABLE5
from serlib.common.runfolder import RunFolder

METRICS = (("acc", "accuracy", "test_acc"), ("uar", "UAR", None), ("macro_f1", "macro-F1", "macro_f1"))


def _read(path) -> Optional[pd.DataFrame]:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return None


def run_sentence(cfg: Config) -> str:
    """What the run is, in one sentence (synthetic demo or real corpora; random or pretrained encoder)."""
    synthetic = cfg.data.demo is not None
    random_weights = cfg.features.wav2vec2.weights == "random"
    data = ("serlib's synthetic demo corpus (in the real corpora's layouts)" if synthetic
            else "CREMA-D, RAVDESS and EmoDB merged by MCULP")
    encoder = "a wav2vec2 encoder with random weights" if random_weights else "the pretrained wav2vec2-base encoder"
    purpose = (" It checks the pipeline; its numbers say nothing about emotion recognition."
               if synthetic or random_weights else "")
    return f"This run trains on {data} with {encoder}, speaker-independent split.{purpose}"


def key_results_html(cfg: Config, folder: RunFolder) -> str:
    """The key-results box as HTML ("" when Table 5 has not been written yet)."""
    table5 = _read(folder.tables / "table_5.csv")
    system, _ = primary_system(cfg)
    if table5 is None or system not in set(table5["system"]):
        return ""
    row = table5.set_index("system").loc[system]
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
        cells.append(f"<tr><th>{name}</th><td class='num'><b>{value}</b></td><td class='num'>{interval}</td>"
                     f"<td class='num'>{stated}</td></tr>")
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
            "<a href='#table-5'>Table 5</a>):</p>"
            "<table class='serlib-key-table'><tr><th></th><th>this run</th><th>95 % interval</th><th>paper</th></tr>"
            f"{''.join(cells)}</table>{classes}</section>")
