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

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from serlib.common.config import Config, load_config
from serlib.common.progress import log_to_stdout


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
    return project_root(cfg) / "reports" / cfg.run.name


def run_folder(cfg: Config, out: Optional[str | Path] = None) -> RunFolder:
    """The run folder: ``out`` if given, else ``default_run_root``; created if missing."""
    root = Path(out).expanduser().resolve() if out else default_run_root(cfg)
    return RunFolder(root).ensure()


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
            print(f"Opened by hand: this notebook writes into {folder.root}; its report.html no longer shows "
                  f"everything there. `serlib run {params_path} --only <notebook>` executes it into the report.")
    return cfg, folder


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
