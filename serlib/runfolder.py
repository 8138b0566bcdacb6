"""One run folder holds everything a run made (conventions: outputs and provenance).

Layout of ``reports/<run name>/``::

    report.html            the exported report
    config.resolved.yaml   the configuration as run, with versions and git revision
    notebooks/             executed notebooks (papermill)
    data/                  manifest.csv, excluded.csv, mculp_audit.csv, split.csv, features/
    models/                one folder per trained system and seed
    tables/  figures/      every table (CSV) and figure (PNG) the notebooks show
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .config import Config


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
    def excluded(self) -> Path:
        return self.data / "excluded.csv"

    @property
    def audit(self) -> Path:
        return self.data / "mculp_audit.csv"

    @property
    def split_file(self) -> Path:
        return self.data / "split.csv"

    @property
    def models(self) -> Path:
        return self.root / "models"

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

    def ensure(self) -> "RunFolder":
        for p in (self.root, self.data, self.models, self.tables, self.figures, self.notebooks):
            p.mkdir(parents=True, exist_ok=True)
        return self


def project_root(cfg: Config) -> Path:
    """The project a parameters file belongs to: the parent of its ``parameters/`` folder.

    Falls back to the current directory for a YAML kept elsewhere.
    """
    if cfg.source:
        folder = Path(cfg.source).parent
        if folder.name == "parameters":
            return folder.parent
    return Path.cwd()


def run_folder(cfg: Config, out: Optional[str | Path] = None) -> RunFolder:
    """The run folder: ``out`` if given, else ``<project>/reports/<run.name>``; created if missing."""
    root = Path(out).expanduser().resolve() if out else project_root(cfg) / "reports" / cfg.run.name
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
    from .config import load_config

    cfg = load_config(params_path)
    return cfg, run_folder(cfg, run_dir or None)
