"""A run's baselines (issues 11, 12, 24): trained here, so that scoring never trains.

The duration-only classifier and its nonlinear form on length and padding (beside S1), eGeMAPS + linear (beside
S1), the wav2vec2 mean + linear (beside S2) and the layer-sum linear baseline (beside S2), each trained on train,
tuned on validation and scored on test under every main protocol (the paper's split, or each speaker fold).
``write_baselines`` writes their test predictions, in the format of a system's, to
``<run>/models/_baselines/<protocol>/<name>_test.csv``; with two or more corpora also a probe of corpus identity on
the wav2vec2 mean (or eGeMAPS) features (``corpus-identity_test.csv``); and, last, ``baselines.json``: what made
them (the manifest, the folds, the features, the probed layers) and each one's chosen hyper-parameter. A second
call with the same inputs reuses them; ``baselines_changes`` says what differs (``serlib.analysis.evaluation``
refuses predictions made by other settings).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Optional

import pandas as pd
import torch

from serlib.common.config import Config, configured_corpora
from serlib.common.facts import CLASSES
from serlib.common.io import read_json, write_csv_atomic, write_json_atomic
from serlib.common.runfolder import RunFolder
from serlib.data.protocols import MAIN_PROTOCOL, evaluation_protocols, protocol_subsets
from serlib.data.stage import load_manifest
from serlib.features.egemaps import egemaps_features, feature_columns
from serlib.features.layers import plan_layers, probe_layers
from serlib.modelling import probe
from serlib.modelling.baselines import corpus_probe, duration_baseline, duration_nonlinear_baseline, linear_baseline
from serlib.modelling.inputs import load_split_data
from serlib.modelling.models import frame_mask, masked_mean

log = logging.getLogger(__name__)

DURATION = "duration only"  # the baselines' row names in the report (Table S27)
DURATION_NL = "duration + padding, trees"
EGEMAPS = "eGeMAPS + linear"
W2V_LINEAR = "wav2vec2 mean + linear"
LAYER_SUM = "wav2vec2 layer-sum mean + linear"  # the SUPERB downstream with a learned layer sum
DESCRIPTIONS = {
    DURATION: "a classifier on clip length alone",
    DURATION_NL: "gradient-boosted trees (depth chosen on val) on clip length, the share of the window it fills and "
    "its padding fraction: any nonlinear use of length",
    EGEMAPS: "eGeMAPS v02 functionals (88, openSMILE), standardised, logistic regression (C chosen on val)",
    W2V_LINEAR: "wav2vec2 (the run's layer) mean over real frames, standardised, logistic regression "
    "(C chosen on val): the SUPERB-style linear downstream",
    LAYER_SUM: "every probed wav2vec2 layer mean-pooled, a learned softmax layer sum and a linear head trained "
    "together (weight decay chosen on val): SUPERB's downstream with its weighted sum",
}
FILE_STEMS = {
    DURATION: "duration",
    DURATION_NL: "duration-trees",
    EGEMAPS: "egemaps",
    W2V_LINEAR: "wav2vec2-linear",
    LAYER_SUM: "layer-sum",
}
CORPUS_PROBE_STEM = "corpus-identity"  # the corpus-identity probe's predictions (not a baseline of the classes)
BASELINES_FORMAT = 2  # bump when what a baseline computes changes: the written predictions are then remade
SUBSETS = ("train", "val", "test")


def baseline_references(cfg: Config) -> dict[str, str]:
    """The baselines this profile has, each with the system it is compared with (S1 or S2)."""
    references = {}
    if "S1" in cfg.systems:
        references[DURATION] = "S1"
        references[DURATION_NL] = "S1"
    if cfg.analysis.feature_baselines:
        if "S1" in cfg.systems:
            references[EGEMAPS] = "S1"
        if "S2" in cfg.systems and cfg.systems["S2"].input == "wav2vec2":
            references[W2V_LINEAR] = "S2"
            if len(probe_layers(cfg)) > 1:
                references[LAYER_SUM] = "S2"
    return references


def corpus_probe_features(cfg: Config) -> Optional[str]:
    """The baseline whose features the corpus-identity probe reads (the wav2vec2 mean, else eGeMAPS), or None: one
    corpus, or no feature baseline."""
    references = baseline_references(cfg)
    if len(configured_corpora(cfg)) < 2:
        return None
    return W2V_LINEAR if W2V_LINEAR in references else EGEMAPS if EGEMAPS in references else None


def corpus_probe_file(folder: RunFolder, protocol: str) -> Path:
    """Where the corpus-identity probe's test predictions under ``protocol`` are written."""
    return baselines_dir(folder) / protocol / f"{CORPUS_PROBE_STEM}_test.csv"


def baselines_dir(folder: RunFolder) -> Path:
    return folder.models / "_baselines"


def baseline_file(folder: RunFolder, name: str, protocol: str) -> Path:
    """Where the test predictions of baseline ``name`` under ``protocol`` are written."""
    return baselines_dir(folder) / protocol / f"{FILE_STEMS[name]}_test.csv"


def baselines_record(folder: RunFolder) -> Path:
    """``baselines.json``: what made the written predictions (written after them)."""
    return baselines_dir(folder) / "baselines.json"


def _file_digest(path: Path) -> Optional[str]:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def made_by(cfg: Config, folder: RunFolder) -> dict:
    """What the baselines' predictions depend on, as plain data (compared key by key with ``baselines.json``)."""
    return {
        "format": BASELINES_FORMAT,
        "baselines": list(baseline_references(cfg)),
        "protocols": evaluation_protocols(cfg),
        "manifest": _file_digest(folder.manifest),
        "folds": _file_digest(folder.folds) if cfg.data.folds else None,
        "features": dataclasses.asdict(cfg.features),
        "probed_layers": [str(layer) for layer in probe_layers(cfg)],
        "corpus_probe": corpus_probe_features(cfg),
    }


def baselines_changes(cfg: Config, folder: RunFolder) -> list[str]:
    """Why the written baseline predictions are not those of ``cfg`` ([] when they are): each differing input."""
    record = baselines_record(folder)
    if not record.is_file():
        return [f"{record} is missing"]
    saved = read_json(record, "run serlib.pipeline.ensure_baselines again")
    saved = saved.get("made_by", {}) if isinstance(saved, dict) else {}
    current = made_by(cfg, folder)
    changed = [key for key in current if saved.get(key) != current[key]]
    files = [baseline_file(folder, n, p) for n in current["baselines"] for p in current["protocols"]]
    if current["corpus_probe"]:
        files += [corpus_probe_file(folder, p) for p in current["protocols"]]
    missing = [str(path) for path in files if not path.is_file()]
    return ([f"{', '.join(changed)} changed since {record} was written"] if changed else []) + [
        f"{path} is missing" for path in missing
    ]


def write_baselines(cfg: Config, folder: RunFolder) -> dict:
    """Train every baseline of ``baseline_references`` under every main protocol and write its test predictions
    (reused, with nothing trained, when ``baselines.json`` says they were made from the same inputs).

    Returns:
        ``baselines.json``'s content: ``made_by`` and, per baseline and protocol, its chosen hyper-parameter.
    """
    changes = baselines_changes(cfg, folder)
    if not changes:
        return read_json(baselines_record(folder))
    if baselines_record(folder).is_file():
        log.info("training the baselines again: %s", "; ".join(changes))
    manifest = load_manifest(folder)
    chosen: dict = {}
    for name in baseline_references(cfg):
        for protocol in evaluation_protocols(cfg):
            preds, info = _train(cfg, folder, manifest, name, protocol)
            write_csv_atomic(preds, baseline_file(folder, name, protocol))
            chosen.setdefault(name, {})[protocol] = info
    features = corpus_probe_features(cfg)
    for protocol in evaluation_protocols(cfg) if features else []:
        x, _, ids = _arrays(cfg, folder, manifest, features, protocol)
        corpus = manifest.set_index("utt_id")["corpus"]
        preds, info = corpus_probe(x, {k: corpus.loc[v].to_numpy(str) for k, v in ids.items()}, ids["test"])
        write_csv_atomic(preds, corpus_probe_file(folder, protocol))
        chosen.setdefault(CORPUS_PROBE_STEM, {})[protocol] = info
    record = {"made_by": made_by(cfg, folder), "chosen": chosen}
    write_json_atomic(baselines_record(folder), record)
    return record


def _train(
    cfg: Config, folder: RunFolder, manifest: pd.DataFrame, name: str, protocol: str
) -> tuple[pd.DataFrame, dict]:
    """One baseline under one protocol: (test predictions, {its chosen hyper-parameter})."""
    subsets = protocol_subsets(folder, protocol, manifest)
    if name == DURATION:
        preds, info = duration_baseline(manifest, None if protocol == MAIN_PROTOCOL else subsets)
        return preds, {"C": info["C"]}
    if name == DURATION_NL:
        window_s = cfg.features.frames * cfg.features.logmel.hop_ms / 1000
        preds, info = duration_nonlinear_baseline(manifest, window_s, subsets)
        return preds, {"depth": info["depth"]}
    if name == LAYER_SUM:
        preds, info = probe.layer_sum_linear(cfg, folder, protocol)
        return preds, {"weight_decay": info["weight_decay"]}
    x, y, ids = _arrays(cfg, folder, manifest, name, protocol)
    preds, info = linear_baseline(x, y, ids["test"])
    return preds, {"C": info["C"]}


def _arrays(cfg: Config, folder: RunFolder, manifest: pd.DataFrame, name: str, protocol: str) -> tuple:
    """(features, class indices, utt_ids) per subset of a feature baseline (``EGEMAPS`` or ``W2V_LINEAR``)."""
    if name == EGEMAPS:
        return _egemaps_arrays(folder, manifest, protocol_subsets(folder, protocol, manifest))
    return _wav2vec2_arrays(cfg, folder, protocol)


def _egemaps_arrays(folder: RunFolder, manifest: pd.DataFrame, subsets: pd.Series) -> tuple[dict, dict, object]:
    """eGeMAPS functionals ``(clips, 88)``, class indices and utt_ids per subset."""
    table = egemaps_features(folder, manifest)
    usable = table[table["error"] == ""].set_index("utt_id")[feature_columns(table)]
    rows = manifest.assign(split=subsets.to_numpy())
    rows = rows[rows["utt_id"].isin(usable.index)]
    parts = {s: rows[rows["split"] == s] for s in SUBSETS}
    encode = {c: i for i, c in enumerate(CLASSES)}
    x = {s: usable.loc[p["utt_id"]].to_numpy(dtype=float) for s, p in parts.items()}
    y = {s: p["label"].map(encode).to_numpy(int) for s, p in parts.items()}
    return x, y, {s: p["utt_id"].to_numpy() for s, p in parts.items()}


def _wav2vec2_arrays(cfg: Config, folder: RunFolder, protocol: str) -> tuple[dict, dict, object]:
    """The run's wav2vec2 features mean-pooled over each clip's real frames ``(clips, channels)`` per subset."""
    data = load_split_data(cfg, folder, [plan_layers(cfg).key("wav2vec2")], torch.device("cpu"), protocol)
    x = {s: masked_mean(data.x[s].float(), frame_mask(data.lengths[s], data.frames)).numpy() for s in SUBSETS}
    y = {s: data.y[s].numpy() for s in SUBSETS}
    return x, y, {s: list(data.utt_ids[s]) for s in SUBSETS}
