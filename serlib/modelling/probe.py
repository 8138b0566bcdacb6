"""The per-layer linear probe and the layer-sum linear baseline (issue 12; SUPERB, Pepino et al. 2021).

Which layer of the encoder carries the emotion? For every layer ``analysis.layer_probe`` lists, each
clip becomes its mean and standard deviation over its real frames in the window (``pooled_stats``), and
a logistic regression is trained on train, its C chosen on validation, and scored on test. The layer
with the best validation UAR (ties: the better validation accuracy, then the lower layer) is the
probe's choice: the layer a system with ``layers: best`` reads. Test never chooses anything.

``layer_sum_linear`` is the SUPERB downstream with a learned layer sum: softmax weights over the
layers' mean-pooled vectors (mean pooling is linear, so this is the mean of the weighted sum of the
frame sequences) and a linear head, trained jointly on train, weight decay chosen on validation.

Results live in ``<run>/models/_probe/<protocol>/`` (``probe.csv``, ``probe.json``, one test-prediction
file per layer, each layer's pooled vectors), keyed by the layers' cache folders, the window, the clips and their
split: a probe that ran is read back, not recomputed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from serlib.common.config import Config
from serlib.common.digest import json_digest
from serlib.common.facts import CLASSES, SUBSETS
from serlib.common.io import write_bytes_atomic, write_csv_atomic, write_json_atomic
from serlib.common.runfolder import RunFolder, features_cache_dir
from serlib.data.protocols import MAIN_PROTOCOL, protocol_subsets
from serlib.data.stage import load_manifest
from serlib.features.keys import content_hashes, key_name
from serlib.features.layers import Layer, LayerPlan, label, layer_index, plan_layers
from serlib.features.stream import pooled_stats
from serlib.modelling.baselines import LINEAR_C, linear_baseline, train_standardised
from serlib.modelling.metrics import classification_metrics

PROBE_FORMAT = 1  # bump when what the probe computes changes
PROBE_COLUMNS = ["layer", "index", "name", "C", "val_acc", "val_uar", "test_acc", "test_uar", "chosen"]
SUM_WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)  # CHOSEN: the layer-sum baseline's grid, chosen on validation
SUM_STEPS = 300  # CHOSEN: full-batch Adam steps of the layer-sum baseline (its validation loss is flat by then)


def probe_dir(folder: RunFolder, protocol: str) -> Path:
    return folder.models / "_probe" / protocol


def _subsets(folder: RunFolder, protocol: str) -> pd.DataFrame:
    """The manifest with its ``split`` column under ``protocol`` (``serlib.data.protocols``)."""
    manifest = load_manifest(folder)
    return manifest.assign(split=protocol_subsets(folder, protocol, manifest).to_numpy())


def _key(cfg: Config, folder: RunFolder, plan: LayerPlan, manifest: pd.DataFrame, layers: list, what: str) -> str:
    hashes, _ = content_hashes(manifest["path"].astype(str).tolist(), features_cache_dir(cfg, folder))
    payload = {
        "format": PROBE_FORMAT,
        "what": what,
        "frames": cfg.features.frames,
        "grid": list(LINEAR_C),
        "layers": [key_name(cfg, plan.key("wav2vec2", layer)) for layer in layers],
        "clips": [list(manifest["utt_id"]), list(manifest["label"]), list(manifest["split"]), hashes],
    }
    return json_digest(payload)


def _pooled(
    cfg: Config, folder: RunFolder, plan: LayerPlan, manifest: pd.DataFrame, layer: Layer, out: Path
) -> tuple[list[str], np.ndarray]:
    """``pooled_stats`` of one layer, kept in ``out`` (keyed like the probe): the probe and the layer-sum
    baseline read each layer's cache once between them."""
    key = _key(cfg, folder, plan, manifest, [layer], "pooled")
    path = out / f"pooled-{layer}-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            return saved["ids"].tolist(), saved["x"]
    ids, x = pooled_stats(cfg, folder, manifest, plan.key("wav2vec2", layer))
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.asarray(ids, dtype=str), x=x)
    for stale in out.glob(f"pooled-{layer}-*.npz"):  # another key: other clips or another cache
        stale.unlink(missing_ok=True)
    write_bytes_atomic(path, buffer.getvalue())
    return ids, x


def _split_arrays(ids: list[str], x: np.ndarray, manifest: pd.DataFrame) -> tuple[dict, dict, np.ndarray]:
    rows = manifest.set_index("utt_id").loc[ids]
    encode = {c: i for i, c in enumerate(CLASSES)}
    xs = {s: x[(rows["split"] == s).to_numpy()] for s in SUBSETS}
    ys = {s: rows.loc[rows["split"] == s, "label"].map(encode).to_numpy(int) for s in SUBSETS}
    for s in SUBSETS:
        if not len(ys[s]):
            raise ValueError(f"layer probe: no '{s}' clips with wav2vec2 features; check data.split")
    return xs, ys, rows.index[(rows["split"] == "test").to_numpy()].to_numpy()


def layer_probe(cfg: Config, folder: RunFolder, protocol: str = MAIN_PROTOCOL, progress=None) -> pd.DataFrame:
    """Probe every layer of ``analysis.layer_probe`` (read back when it already ran on these clips).

    Args:
        cfg: the run configuration.
        folder: the run folder (manifest, feature cache).
        protocol: the clips' subsets (``serlib.data.protocols.protocol_subsets``); names the results' folder.
        progress: called with a line per layer (``serlib.common.progress.Progress``), or None.

    Returns:
        ``PROBE_COLUMNS``, one row per layer: its cache name and index, the chosen C, validation accuracy and
        UAR, test accuracy and UAR, and whether it is the probe's choice.
    """
    plan = plan_layers(cfg)
    layers = list(plan.probe)
    if not layers:
        raise ValueError(f"{cfg.source}: analysis.layer_probe is not set; set it (all, or a list of layers)")
    manifest = _subsets(folder, protocol)
    out = probe_dir(folder, protocol)
    key = _key(cfg, folder, plan, manifest, layers, "probe")
    saved = _read(out / "probe.json")
    if saved.get("key") == key and (out / "probe.csv").is_file():
        return pd.read_csv(out / "probe.csv", dtype={"layer": str})
    w = cfg.features.wav2vec2
    rows, out_files = [], {}
    for number, layer in enumerate(layers, 1):
        ids, x = _pooled(cfg, folder, plan, manifest, layer, out)
        xs, ys, test_ids = _split_arrays(ids, x, manifest)
        preds, info = linear_baseline(xs, ys, test_ids)
        test = classification_metrics(ys["test"], preds["pred"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy())
        out_files[layer] = preds
        rows.append(
            {
                "layer": str(layer),
                "index": layer_index(w, layer),
                "name": label(w, layer),
                "C": info["C"],
                "val_acc": info["val_acc"],
                "val_uar": info["val_uar"],
                "test_acc": test["accuracy"],
                "test_uar": test["uar"],
            }
        )
        if progress is not None:
            progress(f"layer probe: {number}/{len(layers)} layers", force=number == len(layers))
    table = pd.DataFrame(rows)
    best = choose_layer(table)
    table["chosen"] = table.index == best
    out.mkdir(parents=True, exist_ok=True)
    for layer, preds in out_files.items():
        write_csv_atomic(preds, out / f"layer-{layer}_test.csv")
    write_csv_atomic(table[PROBE_COLUMNS], out / "probe.csv")
    write_json_atomic(out / "probe.json", {"key": key, "chosen": table.loc[best, "layer"], "protocol": protocol})
    return table[PROBE_COLUMNS]


def choose_layer(table: pd.DataFrame):
    """The row label of the probe's choice: the best validation UAR, ties broken by the better validation
    accuracy, then the lower layer index. Test scores never choose."""
    return table.sort_values(["val_uar", "val_acc", "index"], ascending=[False, False, True]).index[0]


def best_layer(cfg: Config, folder: RunFolder, protocol: str = MAIN_PROTOCOL) -> Layer:
    """The probe's choice on ``protocol``'s validation split ("last" or an index), probing first if needed."""
    table = layer_probe(cfg, folder, protocol)
    chosen = table.loc[table["chosen"], "layer"].iloc[0]
    return "last" if chosen == "last" else int(chosen)


def probe_predictions(folder: RunFolder, layer: Layer, protocol: str = MAIN_PROTOCOL) -> pd.DataFrame:
    """The test predictions of one layer's probe (utt_id, label, pred, prob_<class>..., correct)."""
    return pd.read_csv(probe_dir(folder, protocol) / f"layer-{layer}_test.csv")


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------- the layer-sum linear baseline


class _SumLinear(nn.Module):
    def __init__(self, layers: int, channels: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(layers))
        self.head = nn.Linear(channels, len(CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (clips, layers, channels)
        return self.head(torch.einsum("l,nlc->nc", torch.softmax(self.logits, 0), x))


def _fit_sum(x: torch.Tensor, y: torch.Tensor, weight_decay: float, seed: int = 0) -> _SumLinear:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _SumLinear(x.shape[1], x.shape[2])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(SUM_STEPS):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y) + weight_decay * model.head.weight.pow(2).sum()
        loss.backward()
        optimizer.step()
    return model.eval()


def layer_sum_linear(cfg: Config, folder: RunFolder, protocol: str = MAIN_PROTOCOL) -> tuple[pd.DataFrame, dict]:
    """Mean-pooled layers, a learned softmax layer sum and a linear head (SUPERB), weight decay chosen on val.

    Each layer's means are standardised with the training split's statistics (per layer and channel, as
    SUPERB's optional layer norm does) before the sum. Read back when it already ran on these clips.
    ``protocol``: the clips' subsets (``serlib.data.protocols.protocol_subsets``); names the results' folder.

    Returns:
        (test predictions shaped like a system's; {"weight_decay", "val_acc", "val_uar", "weights": {layer: w}}).
    """
    plan = plan_layers(cfg)
    layers = list(plan.probe)
    manifest = _subsets(folder, protocol)
    out = probe_dir(folder, protocol)
    key = _key(cfg, folder, plan, manifest, layers, f"layer-sum {SUM_STEPS} {list(SUM_WEIGHT_DECAYS)}")
    saved = _read(out / "layer_sum.json")
    if saved.get("key") == key and (out / "layer_sum_test.csv").is_file():
        return pd.read_csv(out / "layer_sum_test.csv"), saved["info"]
    stacked, ids = [], None
    for layer in layers:
        layer_ids, x = _pooled(cfg, folder, plan, manifest, layer, out)
        if ids is not None and layer_ids != ids:
            raise ValueError(
                f"layer-sum baseline: layer {layer} holds other clips than layer {layers[0]}; extract "
                "every probed layer again (serlib features)"
            )
        ids = layer_ids
        stacked.append(x[:, : x.shape[1] // 2])  # the means
    x = np.stack(stacked, 1)  # (clips, layers, channels)
    xs, ys, test_ids = _split_arrays(ids, x, manifest)
    tx = {s: torch.from_numpy(v.astype(np.float32)) for s, v in train_standardised(xs).items()}
    ty = {s: torch.from_numpy(v) for s, v in ys.items()}
    scores, models = {}, {}
    for wd in SUM_WEIGHT_DECAYS:
        models[wd] = _fit_sum(tx["train"], ty["train"], wd)
        with torch.no_grad():
            pred = models[wd](tx["val"]).argmax(1).numpy()
        val = classification_metrics(ys["val"], pred)
        scores[wd] = (val["accuracy"], val["uar"])
    best = max(SUM_WEIGHT_DECAYS, key=lambda wd: (scores[wd][0], wd))  # ties: the stronger regularisation
    with torch.no_grad():
        probs = torch.softmax(models[best](tx["test"]), 1).numpy()
        weights = torch.softmax(models[best].logits, 0).numpy()
    pred = probs.argmax(1)
    table = pd.DataFrame(
        {"utt_id": test_ids, "label": [CLASSES[i] for i in ys["test"]], "pred": [CLASSES[i] for i in pred]}
    )
    for i, name in enumerate(CLASSES):
        table[f"prob_{name}"] = probs[:, i]
    table["correct"] = pred == ys["test"]
    info = {
        "weight_decay": best,
        "val_acc": scores[best][0],
        "val_uar": scores[best][1],
        "weights": {str(layer): float(w) for layer, w in zip(layers, weights)},
    }
    out.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(table, out / "layer_sum_test.csv")
    write_json_atomic(out / "layer_sum.json", {"key": key, "info": info})
    return table, info
