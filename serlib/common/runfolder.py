"""One run folder holds everything a run made (conventions: outputs and provenance).

Layout of ``reports/<run name>/``::

    report.html            the exported report
    config.resolved.yaml   the configuration as run, with versions and git revision
    notebooks/             executed notebooks (papermill)
    data/                  scanned.csv, manifest.csv, manifest.meta.json, excluded.csv, mculp_audit.csv, split.csv,
                           folds.csv (data.folds), features_summary.json, features_failed.csv, features/ (the
                           default cache)
    models/                results.csv, _select/, <system>/seed<k>/ (checkpoint, history, metrics,
                           predictions per split, config)
    analysis/              prosody.csv (the prosody cache)
    listening/             annotations.csv (written by people: never recomputed)
    tables/  figures/      every table (CSV) and figure (PNG) the notebooks show
    timings.json           seconds per notebook

Every path of a run is built here and nowhere else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from serlib.common.config import Config, ConfigError, config_from_dict, load_config, read_yaml
from serlib.common.io import RunFileError, read_json
from serlib.common.progress import log_to_stdout

# What a run writes at its top level and can make again (``make clean-reports`` removes these and nothing
# else: the annotations in listening/, and any file a person put in the folder, stay). The Makefile keeps
# its own copy of the list; a test checks that the two agree.
RECOMPUTABLE = (
    "report.html",
    "report.stale",
    "config.resolved.yaml",
    "timings.json",
    "progress.jsonl",
    "notebooks",
    "data",
    "models",
    "analysis",
    "tables",
    "figures",
)
# The project's own folders, which no run folder may be at, above or inside (a run folder holds a
# ``notebooks/`` of its own: at the project's root it would overwrite the source notebooks).
PROTECTED = ("notebooks", "parameters", "serlib")
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout (or site-packages) serlib runs from


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def manifest(self) -> Path:
        return self.data / "manifest.csv"

    @property
    def manifest_meta(self) -> Path:
        """The settings, key and table digests of the data set (``serlib.data.mculp``), written with it."""
        return self.data / "manifest.meta.json"

    @property
    def manifest_backup(self) -> Path:
        """A manifest with no meta (hand-made, or an older serlib's), kept when the pipeline rebuilds it."""
        return self.data / "manifest.csv.bak"

    @property
    def excluded(self) -> Path:
        return self.data / "excluded.csv"

    @property
    def audit(self) -> Path:
        return self.data / "mculp_audit.csv"

    @property
    def split_file(self) -> Path:
        return self.data / "split.csv"

    @property
    def scanned(self) -> Path:
        """Every readable, well-named file of the corpora before MCULP (the scan Table 1 reads)."""
        return self.data / "scanned.csv"

    @property
    def features_summary(self) -> Path:
        return self.data / "features_summary.json"

    @property
    def features_failed(self) -> Path:
        return self.data / "features_failed.csv"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def results(self) -> Path:
        """One row per trained system x seed."""
        return self.models / "results.csv"

    @property
    def selection(self) -> Path:
        """The learning-rate / weight-decay grid's folder."""
        return self.models / "_select"

    def run_dir(self, system: str, seed: int, protocol: str = "split") -> Path:
        """One trained run: ``models/<system>/seed<seed>`` for the paper's split, and
        ``models/_<protocol>/<system>/seed<seed>`` for another evaluation protocol (a speaker fold,
        a held-out corpus)."""
        base = self.models if protocol == "split" else self.models / f"_{protocol}"
        return base / system / f"seed{seed}"

    def predictions(self, system: str, seed: int, split: str = "test", protocol: str = "split") -> Path:
        """``<run dir>/predictions_<split>.csv``."""
        return self.run_dir(system, seed, protocol) / f"predictions_{split}.csv"

    def checkpoint(self, system: str, seed: int, protocol: str = "split") -> Path:
        return self.run_dir(system, seed, protocol) / "checkpoint.pt"

    def history(self, system: str, seed: int, protocol: str = "split") -> Path:
        return self.run_dir(system, seed, protocol) / "history.csv"

    def metrics(self, system: str, seed: int, protocol: str = "split") -> Path:
        return self.run_dir(system, seed, protocol) / "metrics.json"

    def run_config(self, system: str, seed: int, protocol: str = "split") -> Path:
        """The run's key and settings, written last: a run counts as complete once it exists."""
        return self.run_dir(system, seed, protocol) / "config.json"

    @property
    def folds(self) -> Path:
        """The speaker k-fold assignment (``data.folds``): fold, speaker, split."""
        return self.data / "folds.csv"

    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    @property
    def prosody_cache(self) -> Path:
        return self.analysis / "prosody.csv"

    @property
    def egemaps_cache(self) -> Path:
        """eGeMAPS v02 functionals per clip (``serlib.features.egemaps``), keyed by file and openSMILE version."""
        return self.analysis / "egemaps.csv"

    @property
    def listening(self) -> Path:
        return self.root / "listening"

    @property
    def annotations(self) -> Path:
        return self.listening / "annotations.csv"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def resolved_config(self) -> Path:
        return self.root / "config.resolved.yaml"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"

    @property
    def stale_marker(self) -> Path:
        """Present when something changed the run folder after ``report.html`` was exported (a notebook
        run by hand): the report says so until ``serlib report`` exports it again."""
        return self.root / "report.stale"

    @property
    def progress(self) -> Path:
        """What the running stage is doing (``serlib.common.progress``): one JSON line per event, live."""
        return self.root / "progress.jsonl"

    def run_complete(self, system: str, seed: int, protocol: str = "split", key: Optional[str] = None) -> bool:
        """Whether ``models/<system>/seed<seed>`` holds a whole trained run (``serlib train`` reuses it then).

        A run's files are written in a temporary folder renamed into place as one unit
        (``serlib.modelling.systems.train_run``); ``config.json`` is written last. Complete: ``config.json``
        reads as JSON and names a key (``key`` itself when given), and the checkpoint, history, metrics and
        validation and test predictions are all present.
        """
        try:
            saved = json.loads(self.run_config(system, seed, protocol).read_bytes())
        except (OSError, ValueError):
            return False
        if not isinstance(saved, dict) or not saved.get("key") or (key is not None and saved["key"] != key):
            return False
        needed = (
            self.checkpoint(system, seed, protocol),
            self.history(system, seed, protocol),
            self.metrics(system, seed, protocol),
            self.predictions(system, seed, "val", protocol),
            self.predictions(system, seed, "test", protocol),
        )
        return all(p.is_file() for p in needed)

    def live_history(self, system: str, seed: int, protocol: str = "split") -> Path:
        """A training run's epochs as they finish (CSV, appended); ``history.csv`` is written whole at the end."""
        return self.run_dir(system, seed, protocol) / "history.live.csv"

    def ensure(self) -> "RunFolder":
        for p in (self.root, self.data, self.models, self.tables, self.figures, self.notebooks):
            p.mkdir(parents=True, exist_ok=True)
        return self


def project_root(cfg: Config) -> Path:
    """The project a parameters file belongs to: the parent of its ``parameters/`` folder.

    A YAML kept elsewhere is its own project: its folder (so ``serlib run`` from any directory and the
    notebooks, which run in ``notebooks/``, choose the same run folder). A config without a file: the
    current directory.
    """
    if cfg.source:
        folder = Path(cfg.source).resolve().parent
        return folder.parent if folder.name == "parameters" else folder
    return Path.cwd()


def default_run_root(cfg: Config) -> Path:
    """``<project>/reports/<run.name>``: a run's folder unless ``--out`` names another (not created)."""
    if not cfg.run.name:
        raise ConfigError(f"{cfg.source or 'the configuration'}: 'run.name' is empty; set it (a plain name)")
    return project_root(cfg) / "reports" / cfg.run.name


def out_folder(out: str | Path, cfg: Optional[Config] = None) -> Path:
    """``--out`` as an absolute folder, refused at, above or inside the project's ``notebooks/``,
    ``parameters/`` or ``serlib/`` (those of serlib's own checkout, and of the parameters file's project).

    Raises:
        ConfigError: one line naming the folder it would overwrite.
    """
    root = Path(out).expanduser().resolve()
    projects = {SOURCE_ROOT} | ({project_root(cfg)} if cfg is not None and cfg.source else set())
    for project in sorted(projects):
        for name in PROTECTED:
            guarded = (project / name).resolve()
            if not guarded.is_dir():
                continue
            where = (
                "the project's"
                if root == guarded
                else "above the project's"
                if guarded.is_relative_to(root)
                else "inside the project's"
                if root.is_relative_to(guarded)
                else None
            )
            if where:
                raise ConfigError(
                    f"--out {out}: {root} is {where} {name}/ ({guarded}); a run writes notebooks/, "
                    f"data/ and models/ into its folder and would overwrite the project's files there: "
                    f"choose another folder (default reports/<run name>/)"
                )
    return root


def run_folder(cfg: Config, out: Optional[str | Path] = None) -> RunFolder:
    """The run folder: ``out`` if given (``out_folder``), else ``default_run_root``; created if missing."""
    root = out_folder(out, cfg) if out else default_run_root(cfg)
    return RunFolder(root).ensure()


def read_run_config(folder: RunFolder) -> Config:
    """The configuration a run folder was made with: its ``config.resolved.yaml`` (``serlib run``), else the
    one a trained model recorded (``models/<system>/seed<N>/config.json``: a folder ``serlib train`` made).

    Raises:
        FileNotFoundError: neither is there (not a run folder).
        RunFileError, ConfigError: the file is damaged (one line naming it).
    """
    path = folder.resolved_config
    if path.is_file():
        raw = read_yaml(path)
        if not isinstance(raw, dict) or not isinstance(raw.get("config"), dict):
            raise RunFileError(
                f"{path}: damaged: no 'config' mapping; run `serlib run PARAMS --out {folder.root}` again to rewrite it"
            )
        return config_from_dict(raw["config"], path)
    for trained in sorted(folder.models.glob("*/seed*/config.json")):
        saved = read_json(trained, "train the system again (serlib train PARAMS --system NAME)")
        if isinstance(saved, dict) and isinstance(saved.get("run_config"), dict):
            return config_from_dict(saved["run_config"], trained)
    raise FileNotFoundError(
        f"{folder.root} is not a run folder (no config.resolved.yaml and no trained model in "
        "models/); pass the folder `serlib run` or `serlib train` wrote"
    )


def features_cache_dir(cfg: Config, folder: RunFolder) -> Path:
    """Where cached features live: ``features.cache_dir`` or ``<run>/data/features``."""
    return Path(cfg.features.cache_dir) if cfg.features.cache_dir else folder.data / "features"


def open_run(params_path: str | Path, run_dir: Optional[str | Path] = None) -> tuple[Config, RunFolder]:
    """What every notebook's second cell calls: the typed config and its run folder.

    Args:
        params_path: the parameters YAML (the notebook's ``params_path`` parameter).
        run_dir: the run folder (papermill injects it); empty or None = the default folder.
    """
    cfg = load_config(params_path)
    log_to_stdout(unless_configured=True)  # a notebook: serlib's lines go into the cell's output (a log in the report)
    folder = run_folder(cfg, run_dir or None)
    if not run_dir:  # opened by hand (papermill always passes run_dir): what runs here changes the run's files
        if mark_stale(folder, "a notebook was run by hand"):
            print(rerun_hint(cfg, folder))
    return cfg, folder


def params_from_project(cfg: Config) -> str:
    """The parameters file as ``serlib run`` takes it in the project's folder (``project_root``): relative to it
    (``parameters/demo.yaml``, not the notebooks' ``../parameters/demo.yaml``), else absolute."""
    if not cfg.source:
        return "PARAMS.yaml"
    source, root = Path(cfg.source).resolve(), project_root(cfg)
    return str(source.relative_to(root) if root in source.parents else source)


def rerun_hint(cfg: Config, folder: RunFolder) -> str:
    """What a notebook opened by hand says: where it writes, and the command, run from the project's folder (the
    parameters file's path relative to it, not to ``notebooks/``), that executes it into the report."""
    root = project_root(cfg)
    shown = params_from_project(cfg)
    return (
        f"Opened by hand: this notebook writes into {folder.root}; its report.html no longer shows everything "
        f"there. `serlib run {shown} --only <notebook>`, run in {root}, executes it into the report."
    )


def mark_stale(folder: RunFolder, why: str) -> bool:
    """Note that ``report.html`` no longer shows everything the run folder holds (``serlib run`` clears it;
    a re-export by ``serlib report`` shows it as a banner). True when a report exists to be stale."""
    if not folder.report.is_file():
        return False
    try:
        folder.stale_marker.write_text(why + "\n")
    except OSError:
        return False
    return True
