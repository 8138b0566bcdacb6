"""Usage errors of the ``serlib`` command, answered before torch is imported.

Each command's ``check`` (``set_defaults(check=...)`` in ``serlib.tools.cli``) looks at its arguments with
torch-free modules only: a missing or mistyped file or folder (with the nearest name), an unknown system (from the
profile, or the systems trained in the run folder), nothing to score. ``one_line`` turns an error the user can act
on into one line; ``expected`` says whether an error is one of those (looking only at modules already loaded).
"""

from __future__ import annotations

import argparse
import difflib
import errno
import itertools
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from serlib.common.config import load_config
from serlib.common.runfolder import RunFolder
from serlib.inference.audiofiles import check_hop, gather_audio
from serlib.inference.bundleformat import BUNDLE_FILE


def suggestion(word: str, known: Sequence[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest of ``known`` to ``word``, '' when none is close."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# The errors a user can act on, each by its module and class. An error of a module that was never imported cannot
# have been raised, so only the modules already loaded are looked at: a usage error stays free of torch.
# OSError covers a full disk, a permission, a missing file, a folder where a file was named (and the cache's
# CacheNotWritableError); RunFileError a damaged run file (config, timings, checkpoint).
EXPECTED_ERRORS = (
    ("serlib.common.config", "ConfigError"),
    ("serlib.data.corpora", "CorpusError"),
    ("serlib.report.runner", "NotebookError"),
    ("serlib.modelling.train", "NonFiniteLossError"),
    ("serlib.common.io", "RunFileError"),
    ("serlib.inference.bundleformat", "BundleError"),
    ("serlib.tools.doctor", "DoctorError"),
)


def expected(err: BaseException) -> bool:
    if isinstance(err, OSError):
        return True
    loaded = (getattr(sys.modules.get(module), name, None) for module, name in EXPECTED_ERRORS)
    return any(cls is not None and isinstance(err, cls) for cls in loaded)


OS_HINTS = {
    errno.ENOSPC: "free some disk space and run it again",
    errno.EACCES: "check the folder's permissions",
    errno.EPERM: "check the folder's permissions",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.EISDIR: "name a file, not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


def one_line(err: BaseException) -> str:
    """An error as one line: an ``OSError`` as ``file: reason (what to do)``, others as their message."""
    if isinstance(err, OSError) and err.strerror:
        where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
        hint = OS_HINTS.get(err.errno)
        return f"{where + ': ' if where else ''}{err.strerror}" + (f" ({hint})" if hint else "")
    return " ".join(str(err).split()) or type(err).__name__


# --------------------------------------------------------------------------- checks before any work
# Each returns the problem as one line (None: none) and imports only torch-free modules, so that a usage error
# is answered in a second, not after torch has loaded.


def split_names(text: str) -> list[str]:
    """``--only 01_data,02_features``: the comma-separated names."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name a notebook, e.g. --only 01_data")
    return names


def missing_path(path: str, what: str, kind: str = "any") -> Optional[str]:
    """Why ``path`` cannot serve as ``what`` (``kind``: file, folder or any), with the closest name beside it."""
    target = Path(path).expanduser()
    if (kind == "file" and target.is_file()) or (kind == "folder" and target.is_dir()) or kind == "any":
        if target.exists():
            return None
    if target.exists():
        return f"{path}: {what} must be a {kind}, not a {'folder' if target.is_dir() else 'file'}"
    return f"{path}: no such {'file or folder' if kind == 'any' else kind} ({what})" + _near(target)


def _near(target: Path) -> str:
    """`` (did you mean 'reports/demo'?)``: the entry beside a missing ``target`` closest to its name."""
    try:
        with os.scandir(target.parent) as entries:
            names = [entry.name for entry in itertools.islice(entries, 5000)]
    except OSError:
        return ""
    close = difflib.get_close_matches(target.name, names, n=1, cutoff=0.6)
    return f" (did you mean '{target.parent / close[0]}'?)" if close else ""


def _checkpoints(root: Path) -> list[Path]:
    """Every checkpoint in a run folder, under any protocol (``RunFolder.run_dir``)."""
    return [*root.glob("models/*/seed*/checkpoint.pt"), *root.glob("models/_*/*/seed*/checkpoint.pt")]


def _trained_systems(root: Path) -> list[str]:
    """The systems with a checkpoint in a run folder, under any protocol (``RunFolder.run_dir``)."""
    return sorted({path.parent.parent.name for path in _checkpoints(root)} - {""})


def _trained_seeds(root: Path, system: Optional[str]) -> list[int]:
    """The seeds with a checkpoint in a run folder (of ``system``; None: of any system)."""
    seeds = set()
    for path in _checkpoints(root):
        name = path.parent.name.removeprefix("seed")
        if name.isdigit() and (system is None or path.parent.parent.name == system):
            seeds.add(int(name))
    return sorted(seeds)


def check_profile(args: argparse.Namespace) -> Optional[str]:
    """run, features, train: the YAML loads (ConfigError otherwise); the systems and notebooks named exist."""

    problem = missing_path(args.params, "the parameters YAML", "file")
    if problem:
        return problem
    cfg = load_config(args.params)
    unknown = [name for name in getattr(args, "system", None) or [] if name not in cfg.systems]
    if unknown:
        return f"unknown system(s) {', '.join(unknown)}; {cfg.source} defines {', '.join(cfg.systems)}" + suggestion(
            unknown[0], list(cfg.systems)
        )
    unknown = [name for name in getattr(args, "only", None) or [] if Path(name).stem not in cfg.run.notebooks]
    if unknown:
        return f"--only {','.join(unknown)}: not among run.notebooks ({', '.join(cfg.run.notebooks)})" + suggestion(
            Path(unknown[0]).stem, cfg.run.notebooks
        )
    return None


def _check_run_folder(path: str, system: Optional[str], seed: Optional[int] = None) -> Optional[str]:
    """A folder ``serlib run`` / ``train`` wrote, in which ``system`` (None: the analysed one) was trained, with
    ``seed`` (None: the analysed one) if given: answered before torch loads."""
    if not Path(path).expanduser().is_dir():
        return f"{path} is not a run folder (no such folder)" + _near(Path(path).expanduser())

    folder = RunFolder(Path(path).expanduser().resolve())
    if not folder.resolved_config.is_file():
        return (
            f"{folder.root} is not a run folder (no {folder.resolved_config.name}); pass the folder "
            "'serlib run' or 'serlib train' wrote"
        )
    trained = _trained_systems(folder.root)
    if system and trained and system not in trained:
        return f"{system} was not trained in {folder.root} (trained: {', '.join(trained)})" + suggestion(
            system, trained
        )
    seeds = _trained_seeds(folder.root, system)
    if seed is not None and trained and seed not in seeds:
        which = f"{system} " if system else ""
        listed = ", ".join(map(str, seeds)) or "none"
        return f"--seed {seed}: no {which}checkpoint with that seed in {folder.root} (trained seeds: {listed})"
    return None


def check_predict(args: argparse.Namespace) -> Optional[str]:
    """The options, the model (a run folder or a bundle) and that some input can be scored, before a model loads."""

    if not 1 <= args.batch_size <= 4096:
        return f"--batch-size must be between 1 and 4096, got {args.batch_size}"
    if args.hop is not None:
        try:
            check_hop(args.hop)
        except ValueError as err:
            return str(err)
    out = Path(args.out).expanduser() if args.out else None
    if out is not None:  # checked before any audio is scored: a bad --out never costs the work
        if out.suffix.lower() not in (".csv", ".jsonl"):
            return f"--out {args.out}: name a .csv or .jsonl file"
        if out.is_dir():
            return f"--out {args.out} is a folder; name a .csv or .jsonl file"
        if out.parent.exists() and not out.parent.is_dir():
            return f"--out {args.out}: {out.parent} is a file, not a folder"
    if (Path(args.model).expanduser() / BUNDLE_FILE).is_file():
        if args.system or args.seed is not None:
            return "--system / --seed choose within a run folder; a bundle holds one model"
    else:
        problem = _check_run_folder(args.model, args.system, args.seed)
        if problem:
            return problem
    return _nothing_to_score(gather_audio(args.audio))


def _nothing_to_score(entries: list[tuple[str, Optional[str]]]) -> Optional[str]:
    """When no input can be scored (each missing or unreadable by soundfile, the loader's reader), why: a usage
    error before a model loads. One readable file is enough to go on (the others become rows with their reason)."""
    import soundfile  # the loader's reader (no torch): its header check is what scoring would hit first

    reasons = []
    for path, error in entries:
        if error is None:
            try:
                soundfile.info(path)
                return None
            except Exception as err:  # noqa: BLE001 -- soundfile raises several types for a file it cannot read
                error = f"unreadable audio ({' '.join(str(err).split()) or type(err).__name__})"
        reasons.append(f"{path}: {error}")
    if not reasons:
        return "no audio file named: pass files, folders or .txt lists of paths"
    shown = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
    return f"nothing to score: {shown}" + (_near(Path(entries[0][0])) if len(entries) == 1 else "")


def check_export(args: argparse.Namespace) -> Optional[str]:
    return _check_run_folder(args.run, args.system, args.seed)


def check_compare(args: argparse.Namespace) -> Optional[str]:
    for name in (args.run_a, args.run_b):
        problem = missing_path(name, "a run folder", "folder")
        if problem:
            return problem

    folders = [RunFolder(Path(name).expanduser().resolve()) for name in (args.run_a, args.run_b)]
    for folder in folders:
        if not folder.results.is_file():
            return f"{folder.root} is not a trained run folder (no models/results.csv)"
    both = sorted(set(_trained_systems(folders[0].root)) & set(_trained_systems(folders[1].root)))
    unknown = [name for name in args.system or [] if both and name not in both]
    if unknown:
        return f"unknown system(s) {', '.join(unknown)}: both runs trained {', '.join(both)}" + suggestion(
            unknown[0], both
        )
    return None


def check_report(args: argparse.Namespace) -> Optional[str]:

    problem = missing_path(args.target, "a run folder or its parameters YAML")
    if problem:
        return problem
    target = Path(args.target).expanduser().resolve()
    if target.is_dir() and not RunFolder(target).resolved_config.is_file():
        return f"{target} is not a run folder (no config.resolved.yaml); pass its parameters YAML"
    return None


def check_cache(args: argparse.Namespace) -> Optional[str]:
    if args.cache_command == "list":
        return missing_path(args.target, "a parameters YAML or a cache folder")
    for params in args.params:
        problem = missing_path(params, "a parameters YAML", "file")
        if problem:
            return problem
    return missing_path(args.cache, "the cache folder", "folder") if args.cache else None


def check_bench(args: argparse.Namespace) -> Optional[str]:
    if args.bundle:
        if args.device != "cpu":
            return "--bundle times onnxruntime on the CPU; leave out --device"
        return missing_path(args.bundle, "a bundle folder", "folder")
    if args.cli and args.device != "cpu":
        return "--cli times the command line's usage errors; leave out --device"
    return None


# Each command imports only what it runs (`serlib --help` and `serlib demo-corpus` skip torch).
