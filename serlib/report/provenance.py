"""Provenance of a run: what identifies it (parameters, corpora, encoder and weights mode, seeds,
git revision, package versions, device) and the seconds each stage took.

``run_identity`` is what the report opens with; notebooks can show it too
(``serlib.report.html_export.show_identity``).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Optional

import torch
import yaml

from serlib.common.config import Config, config_to_dict
from serlib.common.io import RunFileError, read_json, write_json_atomic, write_text_atomic
from serlib.common.runfolder import RunFolder, project_root
from serlib.features.keys import inputs_for_run

PACKAGES = ("torch", "torchaudio", "transformers", "librosa", "numpy", "pandas", "scikit-learn")


def run_identity(cfg: Config, folder: Optional[RunFolder] = None) -> dict:
    """What identifies a run: parameters, corpora, encoder, seeds, code, packages, device, timings.

    Args:
        cfg: the run configuration.
        folder: the run folder (for its path and the timings of executed notebooks).

    Returns:
        Plain data (YAML/JSON-serialisable); ``encoder.random_weights`` is True when the run reads
        wav2vec 2.0 features and its weights are random; ``encoder.inputs`` names the inputs it reads.
    """
    w2v = cfg.features.wav2vec2
    return {
        "title": cfg.run.title,
        "parameters_file": cfg.source,
        "run_folder": str(folder.root) if folder else None,
        "corpora": corpus_sources(cfg),
        "encoder": {
            "model_id": w2v.model_id,
            "revision": w2v.revision,
            "weights": w2v.weights,
            "random_weights": w2v.weights == "random" and "wav2vec2" in inputs_for_run(cfg),
            "layer": w2v.layer,
            "config_overrides": dict(w2v.config_overrides),
            "inputs": inputs_for_run(cfg),
        },
        "seeds": {
            "run": cfg.run.seed,
            "split": cfg.data.split_seed,
            "train": list(cfg.train.seeds),
            "demo_corpus": cfg.data.demo.seed if cfg.data.demo else None,
        },
        "git": git_revision(project_root(cfg)),
        "packages": package_versions(),
        "device": device_description(cfg),
        "timings": load_timings(folder) if folder else {},
        "created": now_utc(),
    }


def corpus_sources(cfg: Config) -> dict:
    """Where the utterances come from: the synthetic demo corpus or the three real roots."""
    d = cfg.data
    if d.demo is not None:
        return {"kind": "synthetic demo corpus", "root": d.demo.root, "seed": d.demo.seed, "scale": d.demo.scale}
    roots = {"CREMA-D": d.crema_d, "RAVDESS": d.ravdess, "EmoDB": d.emodb}
    return {"kind": "real corpora", **{k: v or "not used" for k, v in roots.items()}}


def git_revision(root: Path) -> dict:
    """The commit of ``root`` and whether its tree has uncommitted changes (None outside git)."""

    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    revision = git("rev-parse", "HEAD")
    if not revision:
        return {"revision": None, "dirty": None, "changed_files": None}
    changed = [line for line in (git("status", "--porcelain") or "").splitlines() if line.strip()]
    return {"revision": revision, "dirty": bool(changed), "changed_files": len(changed)}


def git_text(git: dict) -> str:
    """A ``git_revision`` in words: the commit, and whether the tree had uncommitted changes."""
    if not git["revision"]:
        return "unknown (not a git checkout)"
    if not git["dirty"]:
        return git["revision"] + " (clean)"
    return f"{git['revision']} + dirty: {git['changed_files']} files modified or untracked"


def package_versions() -> dict:
    """Python and the versions of the packages that determine a run's numbers."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_description(cfg: Config) -> str:
    """The device the run's stages use ('auto' resolved), with the GPU name and the CPU count."""
    cuda = torch.cuda.is_available()
    wanted = {cfg.features.device, cfg.train.device}
    gpu = f"cuda ({torch.cuda.get_device_name(0)})" if cuda else None
    if wanted == {"cpu"} or not cuda:
        used = "cpu" + (" (CUDA not available)" if "cuda" in wanted else "")
    else:
        used = gpu if "cpu" not in wanted else f"features {cfg.features.device}, train {cfg.train.device}; {gpu}"
    return f"{used}; {os.cpu_count()} CPU cores; {platform.platform(terse=True)}"


def write_resolved_config(cfg: Config, folder: RunFolder) -> Path:
    """``<run>/config.resolved.yaml``: the configuration as run plus the identity (no timings yet)."""
    identity = run_identity(cfg, None)
    identity.pop("timings")
    identity["run_folder"] = str(folder.root)
    return write_text_atomic(
        folder.resolved_config, yaml.safe_dump({"config": config_to_dict(cfg), "identity": identity}, sort_keys=False)
    )


def load_timings(folder: RunFolder) -> dict:
    """Seconds and status per notebook from ``<run>/timings.json`` (empty before the first run)."""
    if not folder.timings.is_file():
        return {}
    timings = read_json(folder.timings, f"delete it: `serlib run PARAMS --out {folder.root}` writes it again")
    if not isinstance(timings, dict):
        raise RunFileError(f"{folder.timings}: damaged: not a JSON object; delete it: `serlib run` writes it again")
    return timings


def save_timings(folder: RunFolder, timings: dict) -> None:
    write_json_atomic(folder.timings, timings)


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
