"""What the report says about the encoder's layers (issue 12): the per-layer probe with intervals (Table S12,
Fig. S13), the cache each layer takes, and the layer weights the learned layer sum (S6) ends with (Fig. S27).

The probe itself runs in ``serlib.modelling.probe`` (trained on train, C and the layer chosen on validation);
here its test predictions get the speaker-bootstrap intervals every score of the report carries.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
import torch

from serlib.analysis.evaluation import join_manifest, score
from serlib.common.config import Config
from serlib.common.runfolder import RunFolder
from serlib.data.protocols import evaluation_protocols, protocol_subsets
from serlib.data.stage import load_manifest
from serlib.features.layers import PAPER_LAYERS, label, layer_index, paper_layer_cache_bytes, plan_layers, probe_layers
from serlib.features.stream import layer_bytes
from serlib.modelling import probe
from serlib.modelling.train import read_checkpoint


def probe_table(cfg: Config, folder: RunFolder) -> Optional[pd.DataFrame]:
    """Table S12: one row per probed layer (None when ``analysis.layer_probe`` is off).

    Columns: layer (its name), C (CHOSEN on val), val. UAR, test accuracy / UAR / macro-F1 with 95 %
    intervals (over the main protocols' test clips; unit: speaker, or clip below 5 test speakers), chosen (the
    probe's validation choice), and the MB the layer's cache takes on disk.
    """
    layers = probe_layers(cfg)
    if not layers:
        return None
    protocols = evaluation_protocols(cfg)
    tables = {p: probe.layer_probe(cfg, folder, p) for p in protocols}
    sizes = layer_bytes(cfg, folder, [plan_layers(cfg).key("wav2vec2", layer) for layer in layers])
    rows = []
    for layer in layers:
        preds = pd.concat(
            [probe.probe_predictions(folder, layer, p).assign(protocol=p, seed=0) for p in protocols], ignore_index=True
        )
        scores = score(
            join_manifest(preds, folder, f"the layer probe's {layer} predictions", "run the probe again"), cfg
        ).set_index("metric")
        picked = [t.set_index("layer").loc[str(layer)] for t in tables.values()]
        rows.append(
            {
                "layer": label(cfg.features.wav2vec2, layer),
                "C (CHOSEN on val)": picked[0]["C"] if len(picked) == 1 else "per fold",
                "val_uar": float(np.mean([p["val_uar"] for p in picked])),
                **{
                    f"{m}{s}": scores.at[metric, col]
                    for metric, m in (("accuracy", "acc"), ("uar", "uar"), ("macro_f1", "macro_f1"))
                    for s, col in (("", "value"), ("_lo", "lo"), ("_hi", "hi"))
                },
                **(
                    {"uar_folds": scores.at["uar", "fold_mean"], "uar_folds_sd": scores.at["uar", "fold_sd"]}
                    if "fold_mean" in scores
                    else {}
                ),
                "unit": scores.at["accuracy", "unit"],  # of the intervals: speaker, or clip below 5 test speakers
                "chosen on val": "✓"
                if all(bool(p["chosen"]) for p in picked)
                else ("in some folds" if any(bool(p["chosen"]) for p in picked) else ""),
                "cache_mb": sizes[layer] / 1e6,
                "index": layer_index(cfg.features.wav2vec2, layer),
            }
        )
    return pd.DataFrame(rows)


def probe_folds(cfg: Config, folder: RunFolder) -> Optional[pd.DataFrame]:
    """Table S14: under ``data.folds``, the layer each fold's probe chose on that fold's validation speakers, with
    its C, validation UAR and the fold's test UAR (None with the paper's single split or without the probe).
    Systems with ``layers: best`` read, in each fold, the layer chosen there."""
    if not cfg.data.folds or not probe_layers(cfg):
        return None
    manifest = load_manifest(folder)
    rows = []
    for protocol in evaluation_protocols(cfg):
        table = probe.layer_probe(cfg, folder, protocol)
        chosen = table[table["chosen"]].iloc[0]
        rows.append(
            {
                "fold": int(protocol[len("fold") :]),
                "chosen layer": chosen["name"],
                "C (CHOSEN on val)": chosen["C"],
                "val_uar": chosen["val_uar"],
                "test_uar": chosen["test_uar"],
                "test clips": int((protocol_subsets(folder, protocol, manifest) == "test").sum()),
            }
        )
    return pd.DataFrame(rows)


def probe_note(cfg: Config, table: pd.DataFrame) -> str:
    """A reading of Table S12: the chosen layer, the best test layer, and how the last layer compares."""
    chosen = table[table["chosen on val"] == "✓"]
    best = table.loc[table["uar"].idxmax()]
    last = table.iloc[-1]
    parts = []
    if len(chosen):
        row = chosen.iloc[0]
        parts.append(
            f"Validation chose {row['layer']}{' in every fold' if cfg.data.folds else ''} (val. UAR "
            f"{100 * row['val_uar']:.1f} %, test UAR {100 * row['uar']:.1f} % [{100 * row['uar_lo']:.1f}, "
            f"{100 * row['uar_hi']:.1f}])"
        )
    elif cfg.data.folds:
        some = table[table["chosen on val"] != ""]["layer"].tolist()
        parts.append(f"The folds' validation speakers chose different layers ({', '.join(some)}; Table S14)")
    parts.append(
        f"the best test UAR is {best['layer']}'s {100 * best['uar']:.1f} % (named for reading only: "
        "test chooses nothing)"
    )
    overlap = last["uar_hi"] >= best["uar_lo"]
    parts.append(
        f"the last layer, the paper's input, scores {100 * last['uar']:.1f} % "
        f"[{100 * last['uar_lo']:.1f}, {100 * last['uar_hi']:.1f}]"
        + (", its interval overlapping the best layer's" if overlap and best.name != last.name else "")
    )
    text = "; ".join(parts) + "."
    if cfg.features.wav2vec2.weights == "random":
        text += (
            " The encoder has RANDOM weights here: its layers are random transforms of one another, so "
            "this curve shows the machinery, not where a pretrained wav2vec2 keeps emotion (Pepino et al. "
            "2021 found the middle layers best for wav2vec2-base)."
        )
    return text


def layer_cost_note(cfg: Config, table: pd.DataFrame, clips: int) -> str:
    """The disk the layers take here, and what one layer takes at the paper's scale (computed)."""
    paper_bytes, paper_clips, mean_s = paper_layer_cache_bytes()
    return (
        f"Each layer's cache takes {table['cache_mb'].mean():.1f} MB here ({clips:,} clips; every clip's full "
        f"frame sequence in float16, whatever the window); all {len(table)} take {table['cache_mb'].sum():.0f} MB. "
        f"At the paper's scale ({paper_clips:,} clips of {mean_s:.2f} s mean, 768 channels) one layer takes "
        f"{paper_bytes / 1e9:.2f} GB and all {PAPER_LAYERS} of wav2vec2-base {PAPER_LAYERS * paper_bytes / 1e9:.0f} "
        "GB (computed from the clip lengths: frames x 768 x 2 bytes)."
    )


def layer_weights(cfg: Config, folder: RunFolder) -> Optional[pd.DataFrame]:
    """Fig. S27's data: the softmax layer weights of every ``wav2vec2_layers`` system's checkpoint, per seed
    (columns system, seed, layer, name, index, weight), or None when no such system ran."""
    rows = []
    for name, system in cfg.systems.items():
        if system.input != "wav2vec2_layers":
            continue
        for protocol in evaluation_protocols(cfg):
            for seed in cfg.train.seeds:
                path = folder.checkpoint(name, seed, protocol)
                if not path.is_file():
                    continue
                state = read_checkpoint(path)  # data only: a checkpoint never runs code
                weights = torch.softmax(state["state_dict"]["mix.logits"], 0).tolist()
                for layer, weight in zip(state["layers"], weights):
                    rows.append(
                        {
                            "system": name,
                            "protocol": protocol,
                            "seed": seed,
                            "layer": str(layer),
                            "name": label(cfg.features.wav2vec2, layer),
                            "index": layer_index(cfg.features.wav2vec2, layer),
                            "weight": weight,
                        }
                    )
    return pd.DataFrame(rows) if rows else None


def layer_weights_note(weights: pd.DataFrame) -> str:
    """Which layer each layer-sum system leans on, against the uniform start."""
    parts = []
    for name, group in weights.groupby("system", sort=False):
        mean = group.groupby("name", sort=False)["weight"].mean()
        uniform = 1 / len(mean)
        parts.append(
            f"{name} gives {mean.idxmax()} the most weight ({100 * mean.max():.1f} % against the uniform "
            f"{100 * uniform:.1f} % it starts from; the least, {100 * mean.min():.1f} %, to {mean.idxmin()})"
        )
    return "; ".join(parts) + ". The weights are those of each seed's best-validation checkpoint."
