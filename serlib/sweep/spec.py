"""A sweep file: one base profile, the variants that change it, and where each variant's run folder lives.

A sweep file (YAML; relative paths are relative to the file)::

    name: encoders                    # reports/<name>/ in the base profile's project (a plain name)
    base: ../paper.yaml               # the profile every variant starts from
    systems: [S2, S5]                 # the systems each variant trains (null: the base profile's)
    seeds: [0, 1, 2]                  # train.seeds of each variant (null: the base profile's)
    set: {analysis.loco_systems: []}  # dotted-key overrides of every variant, the baseline included
    grid:                             # one variant per combination of these values, named from them
      train.lr: [1.0e-3, 3.0e-3]
    variants:                         # named variants, each with its overrides
      - name: hubert-base
        set: {features.wav2vec2.model_id: facebook/hubert-base-ls960}
    baseline: null                    # the variant the others are compared with (null: see below)

Overrides use the dotted keys of the profiles (``serlib.common.config.with_overrides``): ``train.lr``,
``features.frames``, ``systems.S5.model.width_scale``. The baseline is ``baseline`` when named, else the
first variant whose configuration equals the base profile's (after ``set``, ``systems`` and ``seeds``),
else a variant named ``base`` that changes nothing, added first.

The layout of ``reports/<sweep>/``::

    report.html              the sweep report (``serlib.sweep.report``)
    <variant>/               a normal run folder, with its own report.html, one per variant
    _sweep/                  what the sweep itself writes:
        .serlib-sweep        marker: serlib made this folder (``serlib.sweep.runs`` deletes only below one)
        state.json           each variant's status, configuration digest, error and seconds
        variants/<name>.yaml each variant's resolved parameters (what its notebooks read)
        tasks/<id>.json      each task's attempts, process and host
        tables/ figures/     the sweep report's tables (CSV) and figure (PNG)
        features/            the shared feature cache, unless the profile names one (features.cache_dir)

Nothing is written until ``materialise``: ``load_sweep`` checks every variant first.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import yaml

from serlib.common.config import (
    PAPER_SYSTEMS,
    Config,
    ConfigError,
    Items,
    NonNegInt,
    config_to_dict,
    load_config,
    load_typed_yaml,
    with_overrides,
)
from serlib.common.digest import json_digest
from serlib.common.io import write_text_atomic
from serlib.common.locking import file_lock
from serlib.common.runfolder import project_root
from serlib.report.runner import default_notebooks_dir

PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a folder name: no separators, no '..', not hidden
BASE_NAME = "base"  # the baseline added when no variant equals the base profile
MARKER = ".serlib-sweep"


@dataclass
class SweepFile:
    name: str = ""  # reports/<name>/: a plain name (letters, digits, '.', '_', '-')
    base: str = ""  # the base profile, relative to the sweep file
    systems: Optional[Annotated[list[str], Items(1, distinct=True)]] = None  # the systems each variant trains
    seeds: Optional[Annotated[list[NonNegInt], Items(1, distinct=True)]] = None  # train.seeds of each variant
    set: dict = field(default_factory=dict)  # dotted key -> value for every variant, the baseline included
    grid: dict = field(default_factory=dict)  # dotted key -> list of values: one variant per combination
    variants: list = field(default_factory=list)  # [{name: ..., set: {dotted key: value}}, ...]
    baseline: Optional[str] = None  # the variant the others are compared with (null: the one equal to the base)


@dataclass
class Variant:
    """One variant: its overrides, its configuration and where its run lives."""

    name: str
    overrides: dict  # its own dotted-key overrides (the sweep's ``set`` not included)
    cfg: Config  # the resolved configuration (``source``: its parameters file once materialised)
    root: Path  # its run folder: reports/<sweep>/<name>/
    params: Path  # its parameters file: reports/<sweep>/_sweep/variants/<name>.yaml
    baseline: bool = False

    @property
    def digest(self) -> str:
        """What identifies the variant's configuration (a changed one is never reused as finished)."""
        return config_digest(self.cfg)


@dataclass
class Sweep:
    """A loaded sweep: its variants in order (the baseline first) and its folders."""

    name: str
    source: Path  # the sweep file
    base: Path  # the base profile
    root: Path  # reports/<name>/
    variants: list[Variant]
    systems: Optional[list[str]]  # as the sweep file names them (None: each variant's own)
    notebooks_dir: Path  # the notebooks every variant executes
    shared: dict = field(default_factory=dict)  # the sweep's ``set`` (and ``seeds``): every variant's overrides
    text: str = ""  # the sweep file as written (shown in the report)

    @property
    def state_dir(self) -> Path:
        return self.root / "_sweep"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def tasks_dir(self) -> Path:
        return self.state_dir / "tasks"

    @property
    def tables(self) -> Path:
        return self.state_dir / "tables"

    @property
    def figures(self) -> Path:
        return self.state_dir / "figures"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def baseline(self) -> Variant:
        return next(v for v in self.variants if v.baseline)

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)


def config_digest(cfg: Config) -> str:
    """Digest of a configuration without its source file."""
    tree = config_to_dict(cfg)
    tree.pop("source", None)
    return json_digest(tree)


# --------------------------------------------------------------------------- reading


def load_sweep(path: str | Path, out: Optional[str | Path] = None) -> Sweep:
    """Read a sweep file and check every variant's configuration (nothing is written).

    Args:
        path: the sweep file.
        out: the sweep folder (default ``<base profile's project>/reports/<name>/``).

    Raises:
        ConfigError: a bad sweep file or a variant whose configuration a profile could not hold; one line
            naming the file, the variant and the key.
    """
    path = Path(path).resolve()
    spec = load_typed_yaml(path, SweepFile)
    if not PLAIN_NAME.fullmatch(spec.name):
        raise ConfigError(
            f"{path}: 'name' must be a plain folder name (letters, digits, '.', '_', '-'), got {spec.name!r}"
        )
    if not spec.base:
        raise ConfigError(f"{path}: 'base' is missing; name the profile every variant starts from (e.g. ../smoke.yaml)")
    base = (path.parent / spec.base).resolve()
    if not base.is_file():
        raise ConfigError(
            f"{path}: 'base' = {spec.base} is not a file ({base}); name the profile every variant starts "
            "from, relative to the sweep file"
        )
    base_cfg = load_config(base)
    root = Path(out).expanduser().resolve() if out else project_root(base_cfg) / "reports" / spec.name
    named = _named_overrides(spec, path)
    shared = dict(spec.set) | ({"train.seeds": list(spec.seeds)} if spec.seeds else {})
    reference = _variant_config(base_cfg, shared, {}, spec, path, BASE_NAME, root)
    variants = []
    for name, overrides in named:
        cfg = _variant_config(base_cfg, shared, overrides, spec, path, name, root)
        variants.append(Variant(name, overrides, cfg, root / name, root / "_sweep" / "variants" / f"{name}.yaml"))
    _choose_baseline(variants, reference, spec, path, root)
    return Sweep(
        spec.name, path, base, root, variants, spec.systems, default_notebooks_dir(base_cfg), shared, path.read_text()
    )


def _named_overrides(spec: SweepFile, path: Path) -> list[tuple[str, dict]]:
    """(name, overrides) of every variant: the grid's combinations, then the listed variants."""
    out = []
    for key, values in spec.grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: 'grid.{key}' must be a non-empty list of values, got {values!r}")
    keys = list(spec.grid)
    for combo in itertools.product(*(spec.grid[k] for k in keys)) if keys else []:
        overrides = dict(zip(keys, combo))
        out.append(("_".join(f"{k.split('.')[-1]}-{_slug(v)}" for k, v in overrides.items()), overrides))
    for i, entry in enumerate(spec.variants):
        if not isinstance(entry, dict) or set(entry) - {"name", "set"} or "name" not in entry:
            raise ConfigError(
                f"{path}: 'variants[{i}]' must be a mapping with 'name' and 'set' (dotted key -> value), got {entry!r}"
            )
        if not isinstance(entry.get("set") or {}, dict):
            raise ConfigError(f"{path}: 'variants[{i}].set' must be a mapping of dotted key -> value")
        out.append((str(entry["name"]), dict(entry.get("set") or {})))
    if not out:
        raise ConfigError(
            f"{path}: the sweep has no variant; add 'grid' (key: [values]) or 'variants' "
            "([{name: ..., set: {key: value}}])"
        )
    names = [name for name, _ in out]
    for name in names:
        if not PLAIN_NAME.fullmatch(name) or name.lower() == "report.html":
            raise ConfigError(
                f"{path}: variant name {name!r} is not a plain folder name (letters, digits, '.', '_', "
                "'-', not starting with '.' or '_'); name it in 'variants'"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{path}: variant name(s) {', '.join(repeated)} given twice; name the variants apart")
    return out


def _slug(value: Any) -> str:
    """A value as part of a folder name: a hub id or path by its last part, numbers as written."""
    if isinstance(value, (list, tuple)):
        return "-".join(_slug(v) for v in value)
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, str):
        text = value.rstrip("/").rsplit("/", 1)[-1]
    else:
        text = str(value).lower() if isinstance(value, bool) or value is None else str(value)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


def _variant_config(
    base_cfg: Config, shared: dict, overrides: dict, spec: SweepFile, path: Path, name: str, root: Path
) -> Config:
    """The base profile with the sweep's ``set``, the variant's overrides, its systems, its name and the cache."""
    origin = f"{path} (variant {name})"
    changes = shared | overrides
    changes |= {"run.name": name, "run.title": f"{base_cfg.run.title}: sweep {spec.name}, variant {name}"}
    if spec.systems is not None:  # removed in the same step: a system left out need not be valid without the rest
        defined = list(base_cfg.systems) + [str(k).split(".")[1] for k in changes if str(k).startswith("systems.")]
        unknown = [s for s in spec.systems if s not in defined]
        if unknown:
            raise ConfigError(
                f"{origin}: 'systems' names {', '.join(unknown)}, which the variant does not define "
                f"({', '.join(dict.fromkeys(defined))})"
            )
        changes |= {f"systems.{s}": None for s in dict.fromkeys(defined) if s not in spec.systems}
    cfg = with_overrides(base_cfg, changes, origin, path.parent)
    if cfg.features.cache_dir is None:  # one cache for every variant: a changed training value re-extracts nothing
        cfg = with_overrides(cfg, {"features.cache_dir": str(root / "_sweep" / "features")}, origin, path.parent)
    cfg.source = str(path)  # until materialise writes its own file: what a preflight problem names
    return cfg


def _comparable(cfg: Config) -> dict:
    tree = config_to_dict(cfg)
    for key in ("source", "run"):
        tree.pop(key, None)
    return json.loads(json.dumps(tree, default=str))


def _choose_baseline(variants: list[Variant], reference: Config, spec: SweepFile, path: Path, root: Path) -> None:
    if spec.baseline is not None:
        chosen = [v for v in variants if v.name == spec.baseline]
        if not chosen:
            raise ConfigError(
                f"{path}: 'baseline' names {spec.baseline!r}, which is not one of the variants "
                f"({', '.join(v.name for v in variants)})"
            )
        chosen[0].baseline = True
    else:
        same = [v for v in variants if _comparable(v.cfg) == _comparable(reference)]
        if same:
            same[0].baseline = True
        else:
            if any(v.name == BASE_NAME for v in variants):
                raise ConfigError(
                    f"{path}: a variant is named {BASE_NAME!r} but changes the base profile; name the "
                    "baseline with 'baseline: <variant>' or rename that variant"
                )
            variants.insert(
                0,
                Variant(
                    BASE_NAME,
                    {},
                    reference,
                    root / BASE_NAME,
                    root / "_sweep" / "variants" / f"{BASE_NAME}.yaml",
                    baseline=True,
                ),
            )
    variants.sort(key=lambda v: not v.baseline)  # the baseline first (a stable sort keeps the others' order)


# --------------------------------------------------------------------------- writing


def materialise(sweep: Sweep) -> None:
    """Create the sweep folder (with its marker) and write each variant's parameters file; each variant's
    ``cfg`` is then read back from its file (``source`` set), as its notebooks will read it.

    Raises:
        ConfigError: a variant's file does not read back as the same configuration (a bug, named).
    """
    sweep.state_dir.mkdir(parents=True, exist_ok=True)
    (sweep.state_dir / MARKER).write_text(f"written by serlib sweep from {sweep.source}\n")
    for v in sweep.variants:
        tree = config_to_dict(v.cfg)
        tree.pop("source", None)
        tree["systems"] |= {name: None for name in PAPER_SYSTEMS if name not in tree["systems"]}  # removed ones
        header = (
            f"# Written by `serlib sweep` from {sweep.source} (variant {v.name}): the base profile {sweep.base}\n"
            "# with the sweep's overrides, every value resolved. Edit the sweep file, not this file.\n"
        )
        write_text_atomic(v.params, header + yaml.safe_dump(tree, sort_keys=False))
        digest = v.digest
        v.cfg = load_config(v.params)
        if v.digest != digest:
            raise ConfigError(f"{v.params}: the variant's parameters do not read back as written (serlib bug)")


class SweepBusyError(ConfigError):
    """Another ``serlib sweep`` holds the sweep folder."""


def sweep_lock(sweep: Sweep):
    """The sweep folder's lock (a context manager): one ``serlib sweep`` at a time writes into it."""

    def busy(holder: str) -> None:
        raise SweepBusyError(
            f"{sweep.root}: another serlib sweep is running here ({holder}); wait for it to "
            "finish or give this one another folder (--out)"
        )

    sweep.state_dir.mkdir(parents=True, exist_ok=True)
    return file_lock(sweep.state_dir / ".lock", on_wait=busy)
