"""Result tables of the training and ablation notebooks (Tables 4, 6, 8), each beside the paper's (Table 5, with
its intervals, is ``serlib.analysis.evaluation.table5_scores``).

Inputs are the rows ``serlib.modelling.systems.train_systems`` returns (one per system x seed); the paper's
values come from ``serlib.common.paper``. Accuracies are fractions; deltas are percentage points.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from serlib.common import paper
from serlib.common.config import PROPOSED_SYSTEM, Config
from serlib.common.words import count_phrase
from serlib.modelling.models import paper_width_params
from serlib.modelling.systems import summarise

INPUT_NAMES = {"wav2vec2": "wav2vec2", "logmel": "log-Mel", "wav2vec2_layers": "wav2vec2 layers (learned sum)"}


def table4(cfg: Config, results: pd.DataFrame, systems: Sequence[str] = ("S1", "S2", "S3", "S4", "S5")) -> pd.DataFrame:
    """Table 4: systems, input, parameters as trained, at the paper's widths, and as the paper states."""
    first = results.drop_duplicates("system").set_index("system")
    stated = paper.TABLE4.set_index("system")["params_m"]
    rows = []
    for name in systems:
        if name not in first.index:
            continue
        system, row = cfg.systems[name], first.loc[name]
        rows.append(
            {
                "system": name,
                "architecture": system.description,
                "input": f"{row['in_channels']} x {row['frames']} {INPUT_NAMES[system.input]}",
                "tri_aug": bool(system.augment),
                "params_m_trained": row["params"] / 1e6,
                "params_m_paper_widths": paper_width_params(system.model, system.input) / 1e6,
                "paper_params_m": stated.get(name, float("nan")),
            }
        )
    return pd.DataFrame(rows)


ABLATIONS = ("A1", "A2", "A3")  # the paper's ablations of Full (S5), Table 6


def ablation_systems(cfg: Config, full: str = PROPOSED_SYSTEM) -> list[str]:
    """Table 6's systems in this profile: Full and the ablations it has ([] without Full or without any ablation)."""
    variants = [name for name in ABLATIONS if name in cfg.systems]
    return [full, *variants] if full in cfg.systems and variants else []


def table6(cfg: Config, results: pd.DataFrame, scores: pd.DataFrame, full: str = PROPOSED_SYSTEM) -> pd.DataFrame:
    """Table 6: ablations against Full (= ``full``), deltas in points, beside the paper's values.

    Args:
        cfg: the run configuration.
        results: the runs (``train_systems`` rows): validation accuracy, the mean over seeds (and folds).
        scores: ``serlib.analysis.evaluation.scores_table`` of Full and the ablations: the test accuracy, UAR and
            macro-F1 with their speaker intervals from the pooled predictions (with speaker folds, the per-fold
            mean and sd beside them): the numbers Table 5 shows for the same systems.
    """
    val = summarise(results).set_index("system")["val_acc"]
    scores = scores.set_index("system")
    base = scores.loc[full]
    paper6 = paper.TABLE6.set_index(paper.TABLE6["variant"].str.split(" ").str[0])
    rows = []
    for name in scores.index:
        system, row = cfg.systems[name], scores.loc[name]
        label = "Full" if name == full else name
        blocks = len(system.model.blocks) if system.model.blocks is not None else 5
        folds = (
            {"test_acc_folds": row["acc_folds"], "test_acc_folds_sd": row["acc_folds_sd"]} if "acc_folds" in row else {}
        )
        rows.append(
            {
                "variant": label,
                "description": system.description,
                "tri_aug": bool(system.augment),
                "se": bool(system.model.se),
                "blocks": blocks,
                "val_acc": val[name],
                "delta_val_pp": 100 * (val[name] - val[full]),
                "test_acc": row["acc"],
                "test_acc_lo": row["acc_lo"],
                "test_acc_hi": row["acc_hi"],
                **folds,
                "delta_test_pp": 100 * (row["acc"] - base["acc"]),
                **_scores_beside(row, ("uar", "macro_f1")),
                "seeds": int(row["n_seeds"]),
                "unit": row["unit"],  # of the intervals: speaker, or clip below 5 test speakers
                "paper_val_acc": paper6.loc[label, "val_acc"],
                "paper_delta_val_pp": paper6.loc[label, "delta_val_pp"],
                "paper_test_acc": paper6.loc[label, "test_acc"],
                "paper_delta_test_pp": paper6.loc[label, "delta_test_pp"],
                "paper_macro_f1": paper6.loc[label, "macro_f1"],
            }
        )
    return pd.DataFrame(rows)


def _scores_beside(row: pd.Series, stems: tuple[str, ...]) -> dict:
    """A scores-table row's values of ``stems`` with their intervals (and per-fold mean and sd under folds)."""
    out = {}
    for stem in stems:
        out |= {stem: row[stem], f"{stem}_lo": row[f"{stem}_lo"], f"{stem}_hi": row[f"{stem}_hi"]}
        if f"{stem}_folds" in row:
            out |= {f"{stem}_folds": row[f"{stem}_folds"], f"{stem}_folds_sd": row[f"{stem}_folds_sd"]}
    return out


def table8(cfg: Config, scores: pd.DataFrame) -> pd.DataFrame:
    """Table 8: the paper's literature rows and its own claim, plus this run's analysed system.

    Args:
        cfg: the run configuration.
        scores: ``serlib.analysis.evaluation.scores_table`` of the analysed system (``analysis.primary_system``):
            its pooled test accuracy, UAR and macro-F1 with their intervals (with speaker folds, the per-fold mean
            and sd beside them), as Table 5 scores it.
    """
    row = scores.iloc[0]
    system = cfg.systems[row["system"]]
    protocol = f"Speaker-independent, {cfg.data.folds} speaker folds" if cfg.data.folds else "Speaker-independent"
    ours = {
        "study": f"this run ({cfg.run.name}, {row['system']}, {count_phrase(int(row['n_seeds']), 'seed')})",
        "dataset_task": "MCULP corpora of this run, 3-class",
        "model_feature": f"{system.description or row['system']}, {INPUT_NAMES[system.input]}",
        "protocol": protocol,
        "reported_acc": row["acc"],
        "reported_acc_lo": row["acc_lo"],
        "reported_acc_hi": row["acc_hi"],
        **_scores_beside(row, ("uar", "macro_f1")),
    }
    if "acc_folds" in row:
        ours |= {"reported_acc_folds": row["acc_folds"], "reported_acc_folds_sd": row["acc_folds_sd"]}
    return pd.concat([paper.TABLE8, pd.DataFrame([ours])], ignore_index=True)


def table8_note(cfg: Config) -> str:
    """The note under Table 8: the rows are not comparable; with speaker folds, what this run's value is."""
    text = (
        "Datasets, classes and protocols differ between rows: the literature rows are not comparable with each other "
        "or with this run; they are reproduced as the paper lists them."
    )
    if cfg.data.folds:
        text += (
            f" This run's accuracy pools {cfg.data.folds} speaker folds (every clip tested once); 'per fold' is the "
            "mean +- sd of the folds' own accuracies."
        )
    return text
