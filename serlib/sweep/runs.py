"""Is a trained run whole? And removing the half-written one a killed task left.

A trained run (``serlib.modelling.systems.train_run``) is the folder ``models/[_<protocol>/]<system>/seed<k>/``
holding ``RUN_FILES``, ``config.json`` written last. A task killed while it trained (a lost worker, SIGKILL)
leaves some of them, or a file cut short. ``run_problem`` says what is wrong with a run folder by reading each
file back (JSON parsed, CSVs read, the checkpoint loaded with ``weights_only=True``), so a retried task or a
re-run sweep starts that run from nothing instead of trusting a part of it.

``clear_half_written`` removes such a folder, and only below a sweep folder that carries serlib's marker
(``serlib.sweep.spec.MARKER``): the folder is renamed aside in one step, then deleted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Optional

import pandas as pd
import torch

from serlib.common.runfolder import RunFolder
from serlib.sweep.spec import MARKER

log = logging.getLogger("serlib")

# What a trained run folder holds today (systems.train_run): config.json, written last, says it finished.
RUN_FILES = (
    "history.csv",
    "predictions_val.csv",
    "predictions_test.csv",
    "metrics.json",
    "checkpoint.pt",
    "config.json",
)


def run_problem(run_dir: Path) -> Optional[str]:
    """What keeps ``run_dir`` from being a whole trained run (None: nothing; it is whole)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return "no run folder"
    for name in RUN_FILES:
        path = run_dir / name
        if not path.is_file() or path.stat().st_size == 0:
            return f"{name} is missing or empty"
    try:
        if "key" not in json.loads((run_dir / "config.json").read_text()):
            return "config.json names no run key"
        if "test" not in json.loads((run_dir / "metrics.json").read_text()):
            return "metrics.json holds no test metrics"
        for name in ("predictions_val.csv", "predictions_test.csv"):
            table = pd.read_csv(run_dir / name)
            if not {"utt_id", "label", "pred"} <= set(table.columns) or table.empty:
                return f"{name} holds no predictions"
        pd.read_csv(run_dir / "history.csv")
        checkpoint = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            return "checkpoint.pt holds no state_dict"
    except (OSError, ValueError, RuntimeError, EOFError, KeyError, TypeError) as err:
        return f"a file cannot be read back ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return None


def run_dirs(folder: RunFolder) -> list[Path]:
    """Every trained-run folder (``seed<k>``) under ``models/``, of every protocol (the lr grids left out)."""
    if not folder.models.is_dir():
        return []
    return sorted(
        p
        for p in folder.models.rglob("seed*")
        if p.is_dir() and p.name[4:].isdigit() and folder.selection not in p.parents
    )


def sweep_root_of(run_root: Path) -> Path:
    """The sweep folder a variant's run folder lies in (its parent)."""
    return Path(run_root).resolve().parent


def clear_half_written(sweep_root: Path, run_dir: Path) -> Optional[str]:
    """Remove ``run_dir`` when it holds a part of a run (``run_problem``) and lies below ``sweep_root``, a folder
    with serlib's sweep marker. Returns what was wrong with it when it was removed, else None."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return None
    problem = run_problem(run_dir)
    if problem is None:
        return None
    sweep_root = Path(sweep_root).resolve()
    if not (sweep_root / "_sweep" / MARKER).is_file() or sweep_root not in run_dir.resolve().parents:
        raise RuntimeError(
            f"{run_dir} holds a half-written run ({problem}) outside a serlib sweep folder; "
            "remove it yourself (serlib deletes only what its marker shows it wrote)"
        )
    aside = run_dir.with_name(f".{run_dir.name}.half-written.{uuid.uuid4().hex[:8]}")
    os.rename(run_dir, aside)  # one step: the run is whole or out of sight
    shutil.rmtree(aside, ignore_errors=True)
    log.warning("removed the half-written run %s (%s): a killed task left it; it is trained again", run_dir, problem)
    return problem


def clear_half_written_runs(sweep_root: Path, folder: RunFolder) -> list[Path]:
    """``clear_half_written`` over every trained-run folder of a variant's run; returns those removed."""
    return [d for d in run_dirs(folder) if clear_half_written(sweep_root, d)]
