"""The sweep report, ``reports/<sweep>/report.html``: every variant side by side, in the run report's look.

- Table S61: variants x systems, test accuracy and UAR with their speaker-bootstrap intervals, pooled over
  seeds (and folds) from each variant's saved predictions (``serlib.analysis.evaluation.scores_table``).
- Table S62: each variant against the baseline, per system, on the test clips both scored: UAR of each, the
  difference in points with its paired speaker-bootstrap interval, the speaker-level sign-flip permutation test
  (``serlib.analysis.stats.speaker_signflip_test``) and Holm's adjustment over every comparison of the sweep
  (one family), with a reading that checks the direction as well as the p-value.
- Fig. S61: UAR by variant with intervals, one marker per system, the baseline's value dashed.
- Table S63: each variant's overrides in words, its status, its time and a link to its own report.

Tables are saved as CSV and the figure as PNG under ``_sweep/``.
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path
from typing import Any, Optional

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd

from serlib.analysis import evaluation, stats
from serlib.common.config import config_to_dict
from serlib.common.facts import CLASSES
from serlib.common.io import write_csv_atomic, write_text_atomic
from serlib.common.runfolder import RunFolder
from serlib.report.display import FIGURE_DPI
from serlib.report.html_export import banners_html, render_html
from serlib.report.provenance import run_identity
from serlib.report.tables import table_html
from serlib.sweep.spec import Sweep, Variant

log = logging.getLogger("serlib")

DONE = ("finished", "reused")
SIGNFLIP_RESAMPLES = 10000  # random sign patterns beyond 16 test speakers (exact below)


# --------------------------------------------------------------------------- tables


def _done(sweep: Sweep, statuses: dict) -> list[Variant]:
    return [v for v in sweep.variants if statuses.get(v.name, {}).get("status") in DONE]


def _systems(sweep: Sweep, v: Variant) -> list[str]:
    return [s for s in (sweep.systems or list(v.cfg.systems)) if s in v.cfg.systems]


def sweep_scores(sweep: Sweep, statuses: dict) -> pd.DataFrame:
    """One row per finished variant x system: test accuracy and UAR with their intervals (seed means).

    Columns: variant, system, acc, acc_lo, acc_hi, uar, uar_lo, uar_hi, unit, n_speakers, n_clips, n_seeds.
    """
    parts = []
    for v in _done(sweep, statuses):
        table = evaluation.scores_table(v.cfg, RunFolder(v.root), _systems(sweep, v))
        parts.append(table.drop(columns=["macro_f1", "macro_f1_lo", "macro_f1_hi"]).assign(variant=v.name))
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True)
    return table[["variant", *[c for c in table.columns if c != "variant"]]]


def aligned_predictions(a: pd.DataFrame, b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two systems' test predictions (``evaluation.system_predictions``) on the clips both scored.

    Returns:
        (labels (clips,), predictions of a (seeds_a, clips), of b (seeds_b, clips), speakers (clips,)).

    Raises:
        ValueError: no clip in common, or the two give a clip different labels.
    """
    encode = {c: i for i, c in enumerate(CLASSES)}
    wide_a = a.pivot_table(index="utt_id", columns="seed", values="pred", aggfunc="first").dropna()
    wide_b = b.pivot_table(index="utt_id", columns="seed", values="pred", aggfunc="first").dropna()
    common = wide_a.index.intersection(wide_b.index)
    if len(common) == 0:
        raise ValueError("the two variants scored no test clip in common")
    meta_a = a.drop_duplicates("utt_id").set_index("utt_id").loc[common]
    meta_b = b.drop_duplicates("utt_id").set_index("utt_id").loc[common]
    if not (meta_a["label"] == meta_b["label"]).all():
        raise ValueError("the two variants give the same clips different labels (different manifests)")
    labels = meta_a["label"].map(encode).to_numpy(int)
    pred = lambda wide: wide.loc[common].apply(lambda col: col.map(encode)).to_numpy(int).T  # noqa: E731
    return labels, pred(wide_a), pred(wide_b), meta_a["speaker"].astype(str).to_numpy()


def sweep_paired(sweep: Sweep, statuses: dict) -> pd.DataFrame:
    """Each finished variant against the baseline, per system, in UAR on the test clips both scored.

    Columns: variant, system, baseline_uar, uar, delta_uar_pp, delta_uar_lo_pp, delta_uar_hi_pp (paired bootstrap),
    unit (of that interval: "clip" below 5 test speakers), mean_speaker_delta_pp (the sign-flip statistic), p
    (sign-flip over speakers, exact up to 16), p_holm (over every row), reading, clips, speakers.
    """
    base = sweep.baseline
    if statuses.get(base.name, {}).get("status") not in DONE:
        return pd.DataFrame()
    analysis = base.cfg.analysis
    rows = []
    for v in [v for v in _done(sweep, statuses) if not v.baseline]:
        for system in [s for s in _systems(sweep, v) if s in base.cfg.systems]:
            a = evaluation.system_predictions(base.cfg, RunFolder(base.root), system)
            b = evaluation.system_predictions(v.cfg, RunFolder(v.root), system)
            labels, pred_a, pred_b, speakers = aligned_predictions(a, b)
            boot = (
                stats.paired_bootstrap(
                    labels, pred_a, pred_b, speakers, analysis.bootstrap_resamples, analysis.bootstrap_seed
                )
                .set_index("metric")
                .loc["uar"]
            )
            test = stats.speaker_signflip_test(
                labels,
                pred_a,
                pred_b,
                speakers,
                metric="uar",
                n_resamples=SIGNFLIP_RESAMPLES,
                seed=analysis.bootstrap_seed,
            )
            rows.append(
                {
                    "variant": v.name,
                    "system": system,
                    "baseline_uar": boot["a"],
                    "uar": boot["b"],
                    "delta_uar_pp": 100 * boot["delta"],
                    "delta_uar_lo_pp": 100 * boot["lo"],
                    "delta_uar_hi_pp": 100 * boot["hi"],
                    "unit": boot["unit"],
                    "mean_speaker_delta_pp": 100 * test["mean_speaker_delta"],
                    "p": test["p"],
                    "clips": len(labels),
                    "speakers": test["n_speakers"],
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["p_holm"], significant = stats.holm(table["p"].to_numpy(), analysis.alpha)
    table["reading"] = [
        ("higher than the baseline" if d > 0 else "lower than the baseline") if s else "no difference shown"
        for d, s in zip(table["mean_speaker_delta_pp"], significant)
    ]
    order = [
        "variant",
        "system",
        "baseline_uar",
        "uar",
        "delta_uar_pp",
        "delta_uar_lo_pp",
        "delta_uar_hi_pp",
        "unit",
        "mean_speaker_delta_pp",
        "p",
        "p_holm",
        "reading",
        "clips",
        "speakers",
    ]
    return table[order]


def overrides_in_words(sweep: Sweep, v: Variant) -> str:
    """A variant's overrides as the reader should see them: key = value (the baseline's value)."""
    if v.baseline:
        shared = "; ".join(f"{k} = {_value(x)}" for k, x in sweep.shared.items())
        return "the baseline: the base profile" + (
            f" with the sweep's settings for every variant ({shared})" if shared else ""
        )
    base = config_to_dict(sweep.baseline.cfg)
    parts = []
    for key, value in v.overrides.items():
        node: Any = base
        for part in str(key).split("."):
            node = node.get(part) if isinstance(node, dict) else None
        parts.append(f"{key} = {_value(value)} (baseline: {_value(node) if node is not None else 'not set'})")
    return "; ".join(parts) or "no override (the same configuration as the baseline)"


def _value(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


# --------------------------------------------------------------------------- figure


def plot_sweep_uar(scores: pd.DataFrame, baseline: str, ax: Optional[plt.Axes] = None) -> plt.Figure:
    """Fig. S61: test UAR (%) by variant with its interval, one marker per system; the baseline's value dashed.

    Args:
        scores: ``sweep_scores``'s table.
        baseline: the baseline variant's name.
        ax: axes to draw into (default: a new figure).
    """
    variants = list(dict.fromkeys(scores["variant"]))
    systems = list(dict.fromkeys(scores["system"]))
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(variants) + 2.5), 3.6))
    width = 0.6 / max(len(systems), 1)
    for j, system in enumerate(systems):
        rows = scores[scores["system"] == system].set_index("variant").reindex(variants)
        x = np.arange(len(variants)) + (j - (len(systems) - 1) / 2) * width
        uar = 100 * rows["uar"].to_numpy(float)
        err = np.vstack([uar - 100 * rows["uar_lo"].to_numpy(float), 100 * rows["uar_hi"].to_numpy(float) - uar])
        line = ax.errorbar(x, uar, yerr=err, fmt="o", capsize=3, label=system)
        if baseline in rows.index and np.isfinite(rows.at[baseline, "uar"]):
            ax.axhline(100 * rows.at[baseline, "uar"], ls="--", lw=0.8, color=line[0].get_color(), alpha=0.7)
    ax.set_xticks(np.arange(len(variants)))
    ax.set_xticklabels([f"{v}\n(baseline)" if v == baseline else v for v in variants], rotation=20, ha="right")
    ax.set_ylabel("test UAR (%)")
    ax.axhline(100 / len(CLASSES), color="grey", lw=0.8, ls=":")  # chance
    ax.legend(title="system", fontsize="small", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return ax.figure


def _figure_html(fig: plt.Figure, label: str, caption: str, path: Path) -> str:
    """Save ``fig`` as ``path`` (PNG) and return it as the run report shows a figure; closes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=FIGURE_DPI, bbox_inches="tight")
    plt.close(fig)
    data = path.read_bytes()
    width = int.from_bytes(data[16:20], "big") // 2  # the PNG header's width, shown at half (sharp on HiDPI)
    alt = html.escape(f"{label}. {caption}", quote=True)
    return (
        f'<img class="serlib-figure" src="data:image/png;base64,{base64.b64encode(data).decode()}" width="{width}"'
        f' alt="{alt}"><p class="serlib-caption" id="{label.lower().replace(".", "").replace(" ", "-")}">'
        f"<b>{html.escape(label)}.</b> {html.escape(caption)}</p>"
    )


# --------------------------------------------------------------------------- the page


def _table_block(df: pd.DataFrame, label: str, caption: str, note: str = "") -> str:
    anchor = label.lower().replace(" ", "-")
    markup = (
        f'<div class="serlib-table"><p id="{anchor}"><b>{html.escape(label)}.</b> {html.escape(caption)}</p>'
        f"{table_html(df)}"
    )
    return markup + (f'<p class="serlib-note"><i>{html.escape(note)}</i></p>' if note else "") + "</div>"


def _variants_block(sweep: Sweep, statuses: dict) -> str:
    rows = []
    for v in sweep.variants:
        entry = statuses.get(v.name, {})
        status = entry.get("status", "not run")
        link = (
            f'<a href="{html.escape(v.name)}/report.html">{html.escape(v.name)}/report.html</a>'
            if (v.root / "report.html").is_file()
            else ""
        )
        detail = html.escape(entry.get("error", "")) if status == "failed" else ""
        retried = f", {entry['retried']} task(s) retried" if entry.get("retried") else ""
        seconds = f"{entry['seconds']:,.0f} s" if entry.get("seconds") is not None else ""
        rows.append(
            f'<tr><td class="text">{html.escape(v.name)}{" (baseline)" if v.baseline else ""}</td>'
            f'<td class="text">{html.escape(overrides_in_words(sweep, v))}</td>'
            f'<td class="text">{html.escape(status)}{html.escape(retried)}{"<br>" + detail if detail else ""}'
            f'</td><td class="num">{seconds}</td><td class="text">{link}</td></tr>'
        )
    return (
        '<div class="serlib-table"><p id="table-s63"><b>Table S63.</b> The variants: what each changes from the '
        "baseline (the dotted keys of the profiles), whether it finished in this invocation, was reused from an "
        'earlier one or failed, its wall time, and its own report.</p><table class="serlib-table"><thead><tr>'
        '<th class="text">variant</th><th class="text">overrides</th><th class="text">status</th>'
        '<th class="num">time</th><th class="text">report</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table></div>"
    )


def _cell(markup: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": markup})]
    return cell


def write_sweep_report(sweep: Sweep, statuses: dict) -> Path:
    """Write the sweep's tables (CSV), figure (PNG) and ``reports/<sweep>/report.html``.

    Args:
        sweep: the sweep (its variants' configurations read from their parameters files).
        statuses: variant name -> {"status", "error", "seconds", ...} (``_sweep/state.json``).
    """
    scores, paired = sweep_scores(sweep, statuses), sweep_paired(sweep, statuses)
    sweep.tables.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(scores, sweep.tables / "table_s61_scores.csv")
    write_csv_atomic(paired, sweep.tables / "table_s62_paired.csv")
    base = sweep.baseline
    parts = [f'<h1 class="serlib-title" id="top">Sweep {html.escape(sweep.name)}</h1>']
    identity = run_identity(base.cfg, RunFolder(base.root))
    parts.append(banners_html(identity))
    failed = [v for v in sweep.variants if statuses.get(v.name, {}).get("status") == "failed"]
    for v in failed:
        parts.append(
            f'<div class="serlib-banner serlib-banner-error"><b>Variant {html.escape(v.name)} FAILED</b>: '
            f"{html.escape(statuses[v.name].get('error', ''))}. The other variants went on; "
            "<code>serlib sweep</code> again runs only what is missing.</div>"
        )
    systems = ", ".join(sweep.systems) if sweep.systems else "each variant's own"
    parts.append(
        f"<p>{len(sweep.variants)} variants of <code>{html.escape(sweep.base.name)}</code> (sweep file "
        f"<code>{html.escape(sweep.source.name)}</code>), systems {html.escape(systems)}, seeds "
        f"{html.escape(', '.join(map(str, base.cfg.train.seeds)))}. Each variant is a full run with its own "
        f"report (Table S63); the baseline is <b>{html.escape(base.name)}</b>.</p>"
    )
    if scores.empty:
        parts.append(
            '<div class="serlib-banner serlib-banner-warning">No variant has finished: nothing to compare yet.</div>'
        )
    else:
        parts.append(
            _table_block(
                scores,
                "Table S61",
                "Test accuracy and UAR of every variant and system, pooled over "
                "seeds (and folds), with 95 % intervals from a bootstrap over test speakers ("
                f"{base.cfg.analysis.bootstrap_resamples} resamples; a speaker's clips stay "
                "together; the statistic is the mean over seeds).",
                note=_interval_note(scores),
            )
        )
        if not paired.empty:
            alpha = base.cfg.analysis.alpha
            parts.append(
                _table_block(
                    paired,
                    "Table S62",
                    "Each variant against the baseline, per system, on the test "
                    "clips both scored: UAR of each, the difference in points with its paired 95 % "
                    "interval (speaker bootstrap; clips where the unit says so), the mean of the "
                    "per-speaker differences, the two-sided sign-flip permutation test over speakers "
                    f"(exact up to 16 speakers, {SIGNFLIP_RESAMPLES:,} seeded patterns beyond) and "
                    "Holm's adjustment over every comparison of this sweep (one family, level "
                    f"{alpha:g}).",
                    note="A reading says higher or lower only where the adjusted p is below the "
                    "level; its direction is that of the per-speaker differences.",
                )
            )
        fig = plot_sweep_uar(scores, base.name)
        parts.append(
            _figure_html(
                fig,
                "Fig. S61",
                "Test UAR by variant with its 95 % speaker-bootstrap interval, one "
                "marker per system; dashed: the baseline's value of each system; dotted: chance.",
                sweep.figures / "fig_s61_uar.png",
            )
        )
    parts.append(_variants_block(sweep, statuses))
    parts.append(
        '<details class="serlib-config"><summary id="sweep-file">Sweep file</summary>'
        f"<pre>{html.escape(sweep.text)}</pre></details>"
    )
    merged = nbformat.v4.new_notebook(cells=[_cell("".join(parts))])
    merged.metadata["title"] = f"serlib sweep {sweep.name}"
    merged.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    merged.metadata["language_info"] = {"name": "python"}
    return write_text_atomic(sweep.report, render_html(merged))


def _interval_note(scores: pd.DataFrame) -> str:
    if set(scores["unit"]) <= {"speaker"}:
        return ""
    return (
        f"Rows with fewer than {stats.MIN_SPEAKERS} test speakers have a clip-level interval (labelled 'clip' in "
        "the unit column): too narrow for new speakers."
    )
