"""Result tables of the training and ablation notebooks (Tables 4, 5, 6, 8), each beside the paper's.

Inputs are the rows ``serlib.modelling.systems.train_systems`` returns (one per system x seed); the paper's
values come from ``serlib.paper``. Accuracies are fractions; deltas are percentage points.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from serlib.common import paper
from serlib.common.config import Config
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
        rows.append({"system": name, "architecture": system.description,
                     "input": f"{row['in_channels']} x {row['frames']} {INPUT_NAMES[system.input]}",
                     "tri_aug": bool(system.augment), "params_m_trained": row["params"] / 1e6,
                     "params_m_paper_widths": paper_width_params(system.model, system.input) / 1e6,
                     "paper_params_m": stated.get(name, float("nan"))})
    return pd.DataFrame(rows)


def table5(results: pd.DataFrame, systems: Sequence[str] = ("S1", "S2", "S3", "S4", "S5")) -> pd.DataFrame:
    """Table 5: validation and test accuracy and test macro-F1 (mean, and std over seeds), beside the paper's."""
    table = summarise(results[results["system"].isin(systems)])
    ours = table.rename(columns={"test_macro_f1": "macro_f1", "test_macro_f1_std": "macro_f1_std"})
    theirs = paper.TABLE5.rename(columns=lambda c: c if c == "system" else f"paper_{c}")
    merged = ours.merge(theirs, on="system", how="left")
    if (merged["seeds"] <= 1).all():
        merged = merged.drop(columns=[c for c in merged.columns if c.endswith("_std")])
    return merged


def table6(cfg: Config, results: pd.DataFrame, full: str = "S5",
           variants: Sequence[str] = ("A1", "A2", "A3")) -> pd.DataFrame:
    """Table 6: ablations against Full (= ``full``), deltas in points, beside the paper's values."""
    mean = summarise(results).set_index("system")
    base = mean.loc[full]
    paper6 = paper.TABLE6.set_index(paper.TABLE6["variant"].str.split(" ").str[0])
    rows = []
    for name in (full, *variants):
        system, row = cfg.systems[name], mean.loc[name]
        label = "Full" if name == full else name
        blocks = len(system.model.blocks) if system.model.blocks is not None else 5
        rows.append({"variant": label, "description": system.description, "tri_aug": bool(system.augment),
                     "se": bool(system.model.se), "blocks": blocks, "val_acc": row["val_acc"],
                     "delta_val_pp": 100 * (row["val_acc"] - base["val_acc"]), "test_acc": row["test_acc"],
                     "delta_test_pp": 100 * (row["test_acc"] - base["test_acc"]), "macro_f1": row["test_macro_f1"],
                     "seeds": int(row["seeds"]),
                     "paper_val_acc": paper6.loc[label, "val_acc"],
                     "paper_delta_val_pp": paper6.loc[label, "delta_val_pp"],
                     "paper_test_acc": paper6.loc[label, "test_acc"],
                     "paper_delta_test_pp": paper6.loc[label, "delta_test_pp"],
                     "paper_macro_f1": paper6.loc[label, "macro_f1"]})
    return pd.DataFrame(rows)


def table8(cfg: Config, results: pd.DataFrame, system: str = "S5") -> pd.DataFrame:
    """Table 8: the paper's literature rows and its own claim, plus this run's test accuracy."""
    mean = summarise(results).set_index("system").loc[system]
    row = {"study": f"this run ({cfg.run.name}, {system}, {int(mean['seeds'])} seed(s))",
           "dataset_task": "MCULP corpora of this run, 3-class", "model_feature": "ResAttn1D-CNN, W2V2",
           "protocol": "Speaker-independent", "reported_acc": mean["test_acc"]}
    return pd.concat([paper.TABLE8, pd.DataFrame([row])], ignore_index=True)
