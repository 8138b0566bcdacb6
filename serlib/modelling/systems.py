"""Running the configured systems (paper 3.3-3.4, 4.2) with the engine of ``serlib.modelling.train``.

This module owns everything between a run folder and ``serlib.modelling.train.fit``:
- ``train_run(...)``: one system x seed, with every output written to ``<run>/models/<system>/seed<k>/``
  (``run_key`` identifies a run, ``RunFolder.run_dir`` places it, ``result_row`` reads it back).
- ``select_lr_wd(cfg, folder)``: the learning-rate / weight-decay grid, scored on validation only.
- ``train_systems(cfg, folder, systems=None)``: all systems x seeds, reusing unchanged runs;
  ``load_results`` / ``load_history`` / ``load_selection`` / ``summarise`` read its outputs.

The data a system trains on is ``serlib.modelling.inputs`` (its features, split by a protocol of
``serlib.data.protocols``); the network and the augmentation come from ``serlib.modelling.models`` and
``serlib.modelling.augment``. It reads the manifest and the feature cache and builds neither
(``serlib.pipeline`` makes sure they exist before training starts).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from serlib.common.config import Config, ConfigError, SystemConfig, config_to_dict, non_default
from serlib.common.digest import json_digest
from serlib.common.facts import CLASSES
from serlib.common.io import read_json, write_csv_atomic, write_json_atomic
from serlib.common.progress import Progress
from serlib.common.runfolder import RunFolder
from serlib.common.runtime import resolve_device
from serlib.data.protocols import MAIN_PROTOCOL
from serlib.features.layers import plan_layers
from serlib.modelling.augment import system_augment
from serlib.modelling.inputs import SplitData, load_split_data, system_data, system_features
from serlib.modelling.metrics import classification_metrics
from serlib.modelling.models import build_system_model, count_params
from serlib.modelling.train import HISTORY_COLUMNS, TrainSettings, fit, predict_proba

log = logging.getLogger("serlib")


# --------------------------------------------------------------------------- one run


def run_key(system: SystemConfig, cfg: Config, lr: float, weight_decay: float, data: SplitData, seed: int) -> str:
    """Hash of everything that determines a trained run (the system's name and description excluded).

    Settings at their default value do not enter the key (``non_default``), so a field added to the
    configuration later never invalidates runs trained before it existed.
    """
    system_dict = non_default(system)
    system_dict.pop("description", None)
    train_dict = non_default(cfg.train)
    for key in ("seeds", "device", "eval_batch_size", "threads", "select", "lr", "weight_decay", "trim_batches"):
        train_dict.pop(key, None)
    payload = {
        "system": system_dict,
        "train": train_dict,
        "lr": lr,
        "weight_decay": weight_decay,
        "augment": non_default(cfg.augment) if system.augment else None,
        "features": data.fingerprint,
        "seed": seed,
    }
    if trims_batches(cfg, system):  # trimming changes the batches of a masked system only
        payload["trim"] = True
    return json_digest(payload)


def _is_complete(folder: RunFolder, name: str, seed: int, key: str, protocol: str = MAIN_PROTOCOL) -> bool:
    return folder.run_complete(name, seed, protocol, key)


def _staging(out: Path) -> Path:
    """A new, empty sibling of the run folder ``out`` to write a run into (``replace_run_dir`` puts it in place);
    what an interrupted write left beside ``out`` is removed first."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for left in out.parent.glob(f".{out.name}.*-????????"):  # .seed0.new-<hex> / .seed0.old-<hex>: serlib's own
        shutil.rmtree(left, ignore_errors=True)
    work = out.with_name(f".{out.name}.new-{uuid.uuid4().hex[:8]}")
    work.mkdir()
    return work


def replace_run_dir(work: Path, out: Path) -> None:
    """Put the run written in ``work`` at ``out`` as one unit: the old run renamed aside, the new one renamed
    in, the old one removed. A reader sees the old run whole or the new one whole; a crash between the two
    renames leaves no run there (``RunFolder.run_complete`` is False: it is trained again)."""
    aside = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    if out.exists():
        os.rename(out, aside)
    os.rename(work, out)
    shutil.rmtree(aside, ignore_errors=True)


def _predictions(
    model: nn.Module, data: SplitData, split: str, batch_size: int, trim: bool = False
) -> tuple[pd.DataFrame, dict]:
    probs = predict_proba(model, data.x[split], batch_size, data.split_lengths(split), trim).cpu().numpy()  # (n, 3)
    truth, pred = data.y[split].cpu().numpy(), probs.argmax(1)
    table = pd.DataFrame(
        {"utt_id": data.utt_ids[split], "label": [CLASSES[i] for i in truth], "pred": [CLASSES[i] for i in pred]}
    )
    for i, name in enumerate(CLASSES):
        table[f"prob_{name}"] = probs[:, i]
    table["correct"] = truth == pred
    return table, classification_metrics(truth, pred)


def trims_batches(cfg: Config, system: SystemConfig) -> bool:
    """``train.trim_batches`` (or the system's own ``trim_batches``) applies to systems with
    ``model.mask_padding`` only: cutting the padding of an unmasked network would change what it
    computes (its pooling averages the whole window)."""
    wanted = cfg.train.trim_batches if system.trim_batches is None else system.trim_batches
    return bool(wanted and system.model.mask_padding)


def train_run(
    cfg: Config,
    folder: RunFolder,
    name: str,
    system: SystemConfig,
    data: SplitData,
    seed: int,
    lr: float,
    weight_decay: float,
    key: str,
    progress: bool = True,
) -> dict:
    """Train one system with one seed and write every output of the training contract.

    Returns:
        The row ``train_systems`` reports for this run (see ``result_row``).
    """
    protocol = data.protocol
    out = folder.run_dir(name, seed, protocol)
    work = _staging(out)  # every file of the run is written here, then renamed into place as one unit
    try:
        _train_into(cfg, folder, name, system, data, seed, lr, weight_decay, key, progress, out, work)
        replace_run_dir(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return result_row(folder, name, system, seed, "trained", protocol)


def _train_into(
    cfg: Config,
    folder: RunFolder,
    name: str,
    system: SystemConfig,
    data: SplitData,
    seed: int,
    lr: float,
    weight_decay: float,
    key: str,
    progress: bool,
    out: Path,
    work: Path,
) -> None:
    """``train_run``'s work: fit, then every output into ``work`` (``config.json`` last)."""
    protocol = data.protocol

    def staged(path: Path) -> Path:  # a run file's name, in the staging folder
        return work / path.name

    model = build_system_model(system, data.channels, data.device, seed, data.stacked)
    trim = trims_batches(cfg, system)
    out.mkdir(parents=True, exist_ok=True)  # the live history is where a watcher looks while it trains
    live = folder.live_history(name, seed, protocol)
    live.unlink(missing_ok=True)  # this training run's epochs, appended as they finish
    where = f"{name} seed {seed}" + ("" if protocol == MAIN_PROTOCOL else f" ({protocol})")
    settings = TrainSettings.from_config(
        cfg.train,
        lr,
        weight_decay,
        seed=seed,
        trim=trim,
        progress=progress,
        desc=where,
        name=name if protocol == MAIN_PROTOCOL else f"{name} ({protocol})",
    )
    result = fit(model, data, settings, system_augment(cfg.augment, system), epoch_progress(folder, where, live))
    result.history.to_csv(staged(folder.history(name, seed, protocol)), index=False)
    metrics = {
        "best_epoch": result.best_epoch,
        "stopped_epoch": result.stopped_epoch,
        "params": count_params(model),
        "seconds_per_epoch": result.seconds_per_epoch,
        "lr": lr,
        "weight_decay": weight_decay,
        "device": str(data.device),
        "placement": data.placement.as_dict() if data.placement is not None else None,
        "deterministic": cfg.train.deterministic,
        "amp": cfg.train.amp,
        "in_channels": data.channels,
        "frames": data.frames,
        "threads": torch.get_num_threads(),
        "layers": data.layers,
        "n_train": len(data.y["train"]),
        "n_val": len(data.y["val"]),
        "n_test": len(data.y["test"]),
    }
    for split in ("val", "test"):  # test is scored once, at the best-validation checkpoint
        table, metrics[split] = _predictions(model, data, split, cfg.train.eval_batch_size, trim)
        table.to_csv(staged(folder.predictions(name, seed, split, protocol)), index=False)
    staged(folder.metrics(name, seed, protocol)).write_text(json.dumps(metrics, indent=2))
    torch.save(
        {
            "state_dict": result.best_state,
            "model": dataclasses.asdict(system.model),
            "in_channels": data.channels,
            "frames": data.frames,
            "input": system.input,
            "layers": data.layers,
            "best_epoch": result.best_epoch,
            "key": key,
            "features": dataclasses.asdict(cfg.features),
        },
        staged(folder.checkpoint(name, seed, protocol)),
    )
    config = {
        "key": key,
        "system": name,
        "seed": seed,
        "protocol": protocol,
        "lr": lr,
        "weight_decay": weight_decay,
        "features": data.fingerprint,
        "system_config": dataclasses.asdict(system),
        "run_config": config_to_dict(cfg),
    }
    if live.is_file():
        os.replace(live, staged(live))  # the epochs go with the run they belong to
    staged(folder.run_config(name, seed, protocol)).write_text(json.dumps(config, indent=2, default=str))  # last


def epoch_progress(folder: RunFolder, what: str, live: Optional[Path] = None):
    """An ``on_epoch`` for ``fit``: each epoch appended to ``live`` (CSV) and to the run's progress events."""
    events = Progress(folder.progress, "train", min_interval=0.0)

    def on_epoch(row: dict, max_epochs: int) -> None:
        events(
            f"{what}: epoch {row['epoch']}/{max_epochs}, val acc {row['val_acc']:.3f}, {row['seconds']:.1f} s per epoch"
        )
        if live is not None:
            new = not live.is_file()
            with open(live, "a", encoding="utf-8") as fh:  # one line per epoch, as it finishes
                if new:
                    fh.write(",".join(HISTORY_COLUMNS) + "\n")
                fh.write(
                    ",".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]) for c in HISTORY_COLUMNS)
                    + "\n"
                )

    return on_epoch


def result_row(
    folder: RunFolder, name: str, system: SystemConfig, seed: int, status: str, protocol: str = MAIN_PROTOCOL
) -> dict:
    """One row of the results table, read back from a run's ``metrics.json``."""
    path = folder.run_dir(name, seed, protocol)
    metrics = read_json(folder.metrics(name, seed, protocol), f"train it again (serlib train PARAMS --system {name})")
    model = system.model
    return {
        "protocol": protocol,
        "system": name,
        "seed": seed,
        "input": system.input,
        "arch": model.arch,
        "se": model.se if model.arch == "resattn" else False,
        "blocks": (len(model.blocks) if model.blocks is not None else 5) if model.arch == "resattn" else 3,
        "augment": system.augment,
        "width_scale": model.width_scale,
        "in_channels": metrics["in_channels"],
        "frames": metrics["frames"],
        "params": metrics["params"],
        "val_acc": metrics["val"]["accuracy"],
        "val_uar": metrics["val"]["macro_recall"],
        "val_macro_f1": metrics["val"]["macro_f1"],
        "test_acc": metrics["test"]["accuracy"],
        "test_uar": metrics["test"]["macro_recall"],
        "test_macro_precision": metrics["test"]["macro_precision"],
        "test_macro_recall": metrics["test"]["macro_recall"],
        "test_macro_f1": metrics["test"]["macro_f1"],
        "best_epoch": metrics["best_epoch"],
        "stopped_epoch": metrics["stopped_epoch"],
        "seconds_per_epoch": metrics["seconds_per_epoch"],
        "lr": metrics["lr"],
        "weight_decay": metrics["weight_decay"],
        "threads": metrics.get("threads"),
        "device": metrics.get("device"),
        "status": status,
        "path": str(path),
    }


# --------------------------------------------------------------------------- learning-rate selection


def selection_group(cfg: Config, name: str) -> tuple[str, str]:
    """(group, system the grid is searched on) of a system under ``train.select.scope``.

    ``system``: every system gets its own grid (an equal tuning budget); ``family``: one grid per
    input x architecture, searched on the analysed system when it belongs to the family, else on its
    first member; ``shared``: one grid, searched on ``train.select.system`` and used by every system.
    """
    sel = cfg.train.select
    if sel.scope == "shared":
        return "shared", sel.system
    if sel.scope == "system":
        return name, name
    system = cfg.systems[name]
    family = f"{system.input}-{system.model.arch}"
    members = [n for n, s in cfg.systems.items() if f"{s.input}-{s.model.arch}" == family]
    return family, cfg.analysis.primary_system if cfg.analysis.primary_system in members else members[0]


def _selection_dir(folder: RunFolder, group: str, protocol: str) -> Path:
    if group == "shared" and protocol == MAIN_PROTOCOL:
        return folder.selection  # where a shared grid has always lived
    return folder.selection / protocol / group


def select_lr_wd(
    cfg: Config,
    folder: RunFolder,
    data: Optional[SplitData] = None,
    progress: bool = True,
    system_name: Optional[str] = None,
    group: str = "shared",
) -> dict:
    """Choose the learning rate and weight decay on the validation split (never test).

    Trains ``system_name`` (default ``train.select.system``) once per grid point of ``select.lrs`` x
    ``select.weight_decays`` for at most ``select.max_epochs`` epochs and keeps the point with the
    best validation accuracy (ties: lower validation loss). Cached in ``<run>/models/_select/`` (a
    shared grid) or ``_select/<protocol>/<group>/``, keyed by everything that determines it.

    Returns:
        {"lr", "weight_decay", "system", "group", "protocol", "grid": DataFrame (lr, weight_decay,
        best_val_acc, best_val_loss, best_epoch, chosen)}.
    """
    sel = cfg.train.select
    system_name = system_name or sel.system
    if system_name not in cfg.systems:  # load_config checks this; a Config built in code may not hold it
        raise ConfigError(
            f"{cfg.source}: 'train.select.system' must be one of the systems "
            f"({', '.join(cfg.systems)}), got {system_name!r}"
        )
    system = cfg.systems[system_name]
    device = resolve_device(cfg.train.device, key="train.device")
    data = data or system_data(cfg, folder, system_name, device)
    out = _selection_dir(folder, group, data.protocol)
    key = run_key(system, cfg, -1.0, -1.0, data, sel.seed) + json_digest(non_default(sel) | {"on": system_name}, 8)
    saved = _read_selection(out / "selection.json")
    if saved.get("key") == key:
        return {**saved, "grid": pd.read_csv(out / "selection.csv")}
    rows = []
    for lr in sel.lrs:
        for wd in sel.weight_decays:
            model = build_system_model(system, data.channels, device, sel.seed, data.stacked)
            settings = TrainSettings.from_config(
                cfg.train,
                lr,
                wd,
                sel.max_epochs,
                seed=sel.seed,
                trim=trims_batches(cfg, system),
                progress=progress,
                desc=f"select {system_name} lr={lr:g} wd={wd:g}",
                name=f"{system_name} (selection lr={lr:g} wd={wd:g})",
            )
            result = fit(
                model,
                data,
                settings,
                system_augment(cfg.augment, system),
                epoch_progress(folder, f"selection {system_name} lr={lr:g} wd={wd:g}"),
            )
            best_loss = float(result.history["val_loss"].iloc[result.best_epoch - 1])
            rows.append(
                {
                    "lr": lr,
                    "weight_decay": wd,
                    "best_val_acc": result.best_val_acc,
                    "best_val_loss": best_loss,
                    "best_epoch": result.best_epoch,
                }
            )
    grid = pd.DataFrame(rows)
    best = grid.sort_values(["best_val_acc", "best_val_loss"], ascending=[False, True]).index[0]
    grid["chosen"] = grid.index == best
    out.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(grid, out / "selection.csv")
    chosen = {
        "lr": float(grid.loc[best, "lr"]),
        "weight_decay": float(grid.loc[best, "weight_decay"]),
        "system": system_name,
        "group": group,
        "protocol": data.protocol,
        "key": key,
    }
    write_json_atomic(out / "selection.json", chosen)
    return {**chosen, "grid": grid}


def _read_selection(path: Path) -> dict:
    """A grid's saved choice, {} when there is none or it is damaged (the grid is then searched again)."""
    try:
        saved = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def load_selection(folder: RunFolder) -> Optional[pd.DataFrame]:
    """Every learning-rate / weight-decay grid of a run (columns protocol, group, system, lr, ...), or None."""
    grids = []
    for path in sorted(folder.selection.rglob("selection.json")) if folder.selection.is_dir() else []:
        meta = read_json(path, "delete it: the grid is searched again at the next `serlib train`")
        grid = pd.read_csv(path.with_name("selection.csv"))
        grid.insert(0, "searched_on", meta.get("system", ""))
        grid.insert(0, "group", meta.get("group", "shared"))
        grid.insert(0, "protocol", meta.get("protocol", MAIN_PROTOCOL))
        grids.append(grid)
    return pd.concat(grids, ignore_index=True) if grids else None


# --------------------------------------------------------------------------- all systems


def system_names(cfg: Config, systems: Optional[Sequence[str]]) -> list[str]:
    """The systems to train: those named (each a key of ``cfg.systems``, else ConfigError), or all."""
    names = list(systems) if systems else list(cfg.systems)
    unknown = [n for n in names if n not in cfg.systems]
    if unknown:  # a --system the profile does not define
        raise ConfigError(f"unknown system(s) {', '.join(unknown)}; {cfg.source} defines {', '.join(cfg.systems)}")
    return names


def _copy_run(source: Path, target: Path, name: str, same_as: str) -> None:
    work = _staging(target)
    try:
        shutil.copytree(source, work, dirs_exist_ok=True)
        config = json.loads((work / "config.json").read_text())
        config.update({"system": name, "same_as": same_as})
        (work / "config.json").write_text(json.dumps(config, indent=2, default=str))
        replace_run_dir(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def train_systems(
    cfg: Config,
    folder: RunFolder,
    systems: Optional[Sequence[str]] = None,
    progress: bool = True,
    protocol: str = MAIN_PROTOCOL,
) -> pd.DataFrame:
    """Train every system (or those named) over ``cfg.train.seeds`` under ``protocol``; reuse unchanged runs.

    A run is reused when its folder holds a complete run with the same key (``run_key``); two
    systems with identical settings (S4 and A1, S3 and A2 in the paper's tables) are trained once
    and the second gets a copy. With ``train.select.enabled`` the learning rate and weight decay
    come from ``select_lr_wd`` (per ``train.select.scope``), else from ``train.lr`` / ``train.weight_decay``.

    Returns:
        One row per system x seed (``result_row``), also merged into ``<run>/models/results.csv``.
    """
    names = system_names(cfg, systems)
    threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        return _train_all(cfg, folder, names, progress, protocol)
    finally:
        torch.set_num_threads(threads)


def _hyperparameters(cfg: Config, folder: RunFolder, name: str, data_for, progress: bool) -> tuple[float, float]:
    """(lr, weight decay) of one system: the configured values, or its group's grid choice."""
    if not cfg.train.select.enabled:
        return cfg.train.lr, cfg.train.weight_decay
    group, searched_on = selection_group(cfg, name)
    chosen = select_lr_wd(cfg, folder, data_for(searched_on), progress, searched_on, group)
    return chosen["lr"], chosen["weight_decay"]


def _train_all(cfg: Config, folder: RunFolder, names: list[str], progress: bool, protocol: str) -> pd.DataFrame:
    device = resolve_device(cfg.train.device, key="train.device")
    plan = plan_layers(cfg)  # the run's layers, resolved once for every system
    data_by_source: dict[tuple, SplitData] = {}  # systems reading the same features share one load

    def data_for(name: str) -> SplitData:
        source = tuple(system_features(cfg, folder, name, protocol, plan))
        if source not in data_by_source:
            data_by_source[source] = load_split_data(cfg, folder, source, device, protocol)
        return data_by_source[source]

    rows, done_by_key = [], {}
    jobs = [(name, seed) for name in names for seed in cfg.train.seeds]
    for name, seed in tqdm(
        jobs, desc="systems" if protocol == MAIN_PROTOCOL else f"systems ({protocol})", disable=not progress
    ):
        system = cfg.systems[name]
        lr, weight_decay = _hyperparameters(cfg, folder, name, data_for, progress)
        data = data_for(name)
        key = run_key(system, cfg, lr, weight_decay, data, seed)
        path = folder.run_dir(name, seed, protocol)
        if _is_complete(folder, name, seed, key, protocol):
            rows.append(result_row(folder, name, system, seed, "reused", protocol))
        elif key in done_by_key:
            _copy_run(done_by_key[key], path, name, done_by_key[key].parent.name)
            rows.append(result_row(folder, name, system, seed, f"same as {done_by_key[key].parent.name}", protocol))
        else:
            rows.append(train_run(cfg, folder, name, system, data, seed, lr, weight_decay, key, progress))
        done_by_key.setdefault(key, path)
    results = pd.DataFrame(rows)
    _merge_results(folder, results)
    return results


def _merge_results(folder: RunFolder, results: pd.DataFrame) -> None:
    """Update ``models/results.csv`` with these rows (rows of other systems are kept)."""
    path = folder.results
    if path.is_file():
        old = pd.read_csv(path)
        if "protocol" not in old:  # written before protocols existed: the paper's split
            old.insert(0, "protocol", MAIN_PROTOCOL)
        index = ["protocol", "system", "seed"]
        keep = ~old.set_index(index).index.isin(results.set_index(index).index)
        results = pd.concat([old[keep], results], ignore_index=True)
    write_csv_atomic(results, path)


def load_results(folder: RunFolder, protocols: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """The results table ``train_systems`` wrote (``<run>/models/results.csv``), optionally for some protocols."""
    path = folder.results
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training results yet; run `serlib train PARAMS.yaml` first")
    results = pd.read_csv(path)
    if "protocol" not in results:
        results.insert(0, "protocol", MAIN_PROTOCOL)
    return results if protocols is None else results[results["protocol"].isin(list(protocols))].reset_index(drop=True)


def load_history(folder: RunFolder, system: str, seed: int, protocol: str = MAIN_PROTOCOL) -> pd.DataFrame:
    """Per-epoch history of one run (HISTORY_COLUMNS)."""
    return pd.read_csv(folder.history(system, seed, protocol))


def summarise(results: pd.DataFrame, columns: Sequence[str] = ("val_acc", "test_acc", "test_macro_f1")) -> pd.DataFrame:
    """Mean and standard deviation over seeds per system (std is NaN with one seed).

    Returns:
        One row per system (first-appearance order) with ``<col>``, ``<col>_std`` and ``seeds``.
    """
    grouped = results.groupby("system", sort=False)
    table = grouped[list(columns)].mean()
    spread = grouped[list(columns)].std(ddof=1).add_suffix("_std")
    table = table.join(spread).join(grouped["seed"].count().rename("seeds"))
    return table.reset_index()
