"""The tasks a sweep is made of, as plain functions: the local executor calls them in order, Ray runs each in a
worker (``serlib.sweep.execute``). Every argument is a plain value (paths as text) and every result a small dict,
so a task can run on any machine that sees the sweep folder.

- ``prepare_variant``: the variant's manifest and features (only what the shared cache lacks is computed), its
  speaker folds and the probe's layer choice; returns the protocols its runs use.
- ``select_group``: the learning-rate / weight-decay grid of one selection group under one protocol.
- ``train_one``: one trained run (variant x system x seed x protocol), after removing what a killed attempt left.
- ``run_notebooks``: every run of the variant made sure of (all reused after ``train_one``), then its notebooks with
  papermill and its report.html (the per-clip analysis caches another variant holds, eGeMAPS and prosody, shared).

``run_task`` wraps each one: it records the attempt (``_sweep/tasks/<id>.json``: attempt number, process, host,
start and end) and returns the task's result with its seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from serlib import pipeline
from serlib.common.config import load_config, loco_systems
from serlib.common.io import write_bytes_atomic, write_json_atomic
from serlib.common.runfolder import RunFolder
from serlib.common.runtime import resolve_device
from serlib.data.protocols import evaluation_protocols, loco_protocols
from serlib.data.stage import load_manifest
from serlib.modelling.inputs import system_data, system_layers_for
from serlib.modelling.systems import select_lr_wd, train_systems
from serlib.report.runner import run_report
from serlib.sweep.runs import clear_half_written, sweep_root_of

# The notebook that trains the leave-one-corpus-out runs (pipeline.ensure_loco): a sweep trains them as tasks
# only when a variant executes it.
LOCO_NOTEBOOK = "04_ablation"


def prepare_variant(params: str, root: str) -> dict:
    """Manifest and features of one variant, its speaker folds (``data.folds``) and, for systems reading
    ``layers: best``, the probe's choice under each protocol.

    Returns:
        {"protocols": the main protocols, "loco": the leave-one-corpus-out protocols to train (those of the
        corpora present, when the variant executes ``LOCO_NOTEBOOK``), "computed": clips computed per input}.
    """
    cfg, folder = load_config(params), RunFolder(Path(root)).ensure()
    summary = pipeline.ensure_features(cfg, folder)
    if cfg.data.folds:
        pipeline.ensure_folds(cfg, folder)
    protocols = evaluation_protocols(cfg)
    loco = loco_protocols(load_manifest(folder)) if LOCO_NOTEBOOK in cfg.run.notebooks and loco_systems(cfg) else []
    for protocol in protocols + loco:  # the probe is fitted once here, not by every run that needs its choice
        names = cfg.systems if protocol in protocols else loco_systems(cfg)
        for name in [n for n in names if cfg.systems[n].layers == "best"]:
            system_layers_for(cfg, folder, name, protocol)
    return {
        "protocols": protocols,
        "loco": loco,
        "computed": {i: int(s.get("computed", 0)) for i, s in summary["inputs"].items()},
    }


def select_group(params: str, root: str, system: str, group: str, protocol: str) -> dict:
    """The learning-rate / weight-decay grid of ``group``, searched on ``system`` under ``protocol``, as
    ``train_systems`` would search it (same threads, same data): the runs of the group then find it done."""
    cfg, folder = load_config(params), RunFolder(Path(root))
    threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        data = system_data(cfg, folder, system, resolve_device(cfg.train.device, key="train.device"), protocol)
        chosen = select_lr_wd(cfg, folder, data, progress=False, system_name=system, group=group)
    finally:
        torch.set_num_threads(threads)
    return {"lr": chosen["lr"], "weight_decay": chosen["weight_decay"]}


def train_one(params: str, root: str, system: str, seed: int, protocol: str) -> dict:
    """One trained run; what a killed earlier attempt left of it is removed first (``clear_half_written``)."""
    cfg, folder = load_config(params), RunFolder(Path(root))
    run_dir = folder.run_dir(system, seed, protocol)
    # A run is written in a staging folder swapped in whole (systems.train_run): a killed attempt leaves that folder
    # (removed when the run is trained again) and no run; a run folder that still fails the read-back is cleared.
    staged = sorted(p.name for p in run_dir.parent.glob(f".{run_dir.name}.new-*")) if run_dir.parent.is_dir() else []
    found = [
        clear_half_written(sweep_root_of(folder.root), run_dir),  # e.g. only the live history of an attempt
        f"the staging folder a killed attempt left ({', '.join(staged)})" if staged else None,
    ]
    cleared = "; ".join(part for part in found if part) or None
    one = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seeds=[seed]))
    row = train_systems(one, folder, systems=[system], progress=False, protocol=protocol).iloc[0]
    return {
        "status": str(row["status"]),
        "test_acc": float(row["test_acc"]),
        "test_uar": float(row["test_uar"]),
        "cleared": cleared,
    }


# The run folder's per-clip analysis caches whose rows are keyed by the clip's file and the settings that made them
# (serlib.features.egemaps, serlib.analysis.prosody): a row another variant computed is read back only where it holds.
ANALYSIS_CACHES = ("egemaps_cache", "prosody_cache")


def share_analysis_caches(root: str, siblings: Sequence[str]) -> list[str]:
    """Copy into the variant's run folder each per-clip analysis cache it lacks from the first other variant of
    the sweep that holds one (eGeMAPS of thousands of clips is not computed again for a changed training value).

    Returns:
        The caches copied (``ANALYSIS_CACHES`` names).
    """
    folder, copied = RunFolder(Path(root)), []
    for name in ANALYSIS_CACHES:
        target = getattr(folder, name)
        source = next(
            (getattr(RunFolder(Path(s)), name) for s in siblings if getattr(RunFolder(Path(s)), name).is_file()), None
        )
        if target.exists() or source is None:
            continue
        write_bytes_atomic(target, source.read_bytes())
        copied.append(name)
    return copied


def run_notebooks(params: str, root: str, notebooks_dir: str, siblings: Sequence[str] = ()) -> dict:
    """The variant's notebooks and its report.html (``serlib.report.runner.run_report``).

    First every system x seed of its main protocols is made sure of (``pipeline.ensure_runs``: in a Ray sweep each
    is reused, and ``models/results.csv``, which concurrent runs update, is written whole), and the analysis caches
    of the other variants (``siblings``: their run folders) are shared.
    """
    cfg, folder = load_config(params), RunFolder(Path(root))
    pipeline.ensure_runs(cfg, folder, progress=False)
    shared = share_analysis_caches(root, siblings)
    report = run_report(cfg, out=root, notebooks_dir=notebooks_dir, verbose=False)
    return {"report": str(report), "shared_caches": shared}


TASKS: dict[str, Callable[..., dict]] = {
    "features": prepare_variant,
    "select": select_group,
    "train": train_one,
    "notebooks": run_notebooks,
}


def run_task(kind: str, task_id: str, tasks_dir: str, *args) -> dict:
    """Run ``TASKS[kind](*args)``, recording this attempt in ``<tasks_dir>/<task_id>.json`` (an attempt that
    finds the record of an earlier one still "running" counts on from it: that one was killed).

    Returns:
        The task's result with ``seconds``, ``attempt``, ``pid`` and ``host``.
    """
    record = Path(tasks_dir) / f"{task_id}.json"
    try:
        earlier = json.loads(record.read_text())
        attempt = int(earlier["attempt"]) + 1 if earlier.get("status") == "running" else 1  # running: it was killed
    except (OSError, ValueError, KeyError, TypeError):
        attempt = 1
    start = time.time()
    where = {
        "task": task_id,
        "kind": kind,
        "attempt": attempt,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": start,
    }
    write_json_atomic(record, where | {"status": "running"})
    try:
        result = TASKS[kind](*args)
    except Exception as err:
        write_json_atomic(record, where | {"status": "failed", "error": f"{type(err).__name__}: {err}"[:600]})
        raise
    seconds = time.time() - start
    write_json_atomic(record, where | {"status": "done", "seconds": round(seconds, 2), "result": result})
    return result | {"seconds": seconds, "attempt": attempt, "pid": where["pid"], "host": where["host"]}
