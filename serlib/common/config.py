"""Typed run configuration, read from ``parameters/<run>.yaml``: the one place a profile is read and checked.

The sections are ``serlib.common.sections`` (one dataclass per stage; every field has a default and a
one-line comment, its type hint holds its allowed values); the typed reading is
``serlib.common.typedyaml``. Every error is one line naming the file and the dotted key
(``data.min_duration_s``); an unknown key lists the known ones and the closest match; a key given
twice is an error. Relative paths in the YAML are relative to the YAML file's own folder. Callers
import every configuration name from here (``__all__``), wherever it is defined.

The paper's systems S1-S5 and A1-A3 are the default ``systems``: a profile's ``systems.X``
merges into the default entry of X (a new name starts from ``SystemConfig``'s defaults),
``X: null`` removes X, and the profile-level ``model_defaults: {resattn: {...}, shallow: {...}}``
sets model fields for every system of that architecture whose own entry (its default entry
merged with the profile's) does not set them (the demo's ``width_scale``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import typing
from pathlib import Path
from typing import Any, Optional

from serlib.common.facts import CORPORA, CORPUS_KEYS, RELEASE_SPEAKERS, SAMPLE_RATE
from serlib.common.sections import (
    MAX_BATCH,
    MAX_EPOCHS,
    MAX_FRAMES,
    PAPER_SYSTEMS,
    PROPOSED_SYSTEM,
    SEED_MAX,
    AnalysisConfig,
    Arch,
    AugmentConfig,
    Batch,
    BlockList,
    Config,
    DataConfig,
    DemoCorpusConfig,
    Device,
    FeaturesConfig,
    Input,
    LayerList,
    Layers,
    LogMelConfig,
    MinMax,
    ModelConfig,
    NonNegFloat,
    NonNegInt,
    PosFloat,
    PosInt,
    Probability,
    RunConfig,
    RunName,
    Seed,
    SelectConfig,
    SystemConfig,
    TrainConfig,
    Wav2Vec2Config,
)
from serlib.common.typedyaml import (
    Bound,
    ConfigError,
    Items,
    Match,
    build_dataclass,
    coerce_value,
    deep_merge,
    load_typed_yaml,
    read_yaml,
    unknown_key_error,
)

__all__ = [
    "MAX_BATCH",
    "MAX_EPOCHS",
    "MAX_FRAMES",
    "PAPER_SYSTEMS",
    "PROPOSED_SYSTEM",
    "SEED_MAX",
    "AnalysisConfig",
    "Arch",
    "AugmentConfig",
    "Batch",
    "BlockList",
    "Bound",
    "Config",
    "ConfigError",
    "DataConfig",
    "DemoCorpusConfig",
    "Device",
    "FeaturesConfig",
    "Input",
    "Items",
    "LayerList",
    "Layers",
    "LogMelConfig",
    "Match",
    "MinMax",
    "ModelConfig",
    "NonNegFloat",
    "NonNegInt",
    "PosFloat",
    "PosInt",
    "Probability",
    "RunConfig",
    "RunName",
    "Seed",
    "SelectConfig",
    "SystemConfig",
    "TrainConfig",
    "Wav2Vec2Config",
    "config_from_dict",
    "config_to_dict",
    "configured_corpora",
    "features_from_dict",
    "folds_problem",
    "load_config",
    "load_typed_yaml",
    "loco_systems",
    "model_from_dict",
    "sentence_systems",
    "non_default",
    "primary_system",
    "read_yaml",
    "with_overrides",
]


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path) -> Config:
    """Read and validate a parameters file.

    Args:
        path: a YAML file such as ``parameters/demo.yaml``.

    Returns:
        The typed configuration, the default systems merged with the file's, relative paths
        resolved against the file's folder.

    Raises:
        ConfigError: missing file, duplicate or unknown key, wrong type, or an impossible value;
            one line that names the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"parameters file not found: {path} (pass a YAML such as parameters/demo.yaml)")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (run, data, ...)")
    raw.pop("source", None)
    model_defaults, systems = raw.pop("model_defaults", None), raw.pop("systems", None)
    cfg = build_dataclass(Config, raw, "", path, also_known=("model_defaults",))
    cfg.systems = _build_systems(systems, _model_defaults(model_defaults, path), path)
    cfg.source = str(path.resolve())
    if cfg.run.name is None:  # the file's own name, never another profile's run folder
        try:
            cfg.run.name = coerce_value(
                typing.get_type_hints(RunConfig, include_extras=True)["name"], path.stem, "run.name", path
            )
        except ConfigError as err:
            raise ConfigError(f"{err} (taken from the file's name, as 'run.name' is not set: set it)") from None
    _resolve_paths(cfg, path.resolve().parent)
    _check_values(cfg, path)
    return cfg


def config_to_dict(cfg: Config) -> dict:
    """The configuration as plain data (for the resolved-config file and the report)."""
    return dataclasses.asdict(cfg)


def config_from_dict(raw: dict, origin: str | Path) -> Config:
    """The configuration ``config_to_dict`` wrote (a run's ``config.json``, a bundle), validated again.

    Args:
        raw: the plain data (paths in it are already absolute).
        origin: the file it was read from, named in errors.
    """
    raw = copy.deepcopy(raw)
    source, systems = raw.pop("source", None), raw.pop("systems", None) or {}
    cfg = build_dataclass(Config, raw, "", Path(origin))
    cfg.systems = {
        str(name): build_dataclass(SystemConfig, entry, f"systems.{name}.", Path(origin))
        for name, entry in systems.items()
    }
    cfg.source = source
    return cfg


def features_from_dict(raw: dict, origin: str | Path) -> FeaturesConfig:
    """A ``features`` section from plain data (a model bundle's), validated as a YAML one is."""
    return build_dataclass(FeaturesConfig, raw, "features.", Path(origin))


def model_from_dict(raw: dict, origin: str | Path) -> ModelConfig:
    """A system's ``model`` section from plain data (a checkpoint's), validated as a YAML one is."""
    return build_dataclass(ModelConfig, raw, "model.", Path(origin))


def non_default(section: Any) -> dict:
    """The fields of a configuration section that differ from their defaults, as plain data.

    Nested sections are compared field by field (a section at its defaults is left out). Cache and
    run keys are built from this, so adding a field with a default never changes an existing key.
    """
    out = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        if dataclasses.is_dataclass(value) and dataclasses.is_dataclass(default):
            nested = non_default(value)
            if nested:
                out[f.name] = nested
        elif value != default:
            out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return out


def loco_systems(cfg: Config) -> list[str]:
    """The systems of the leave-one-corpus-out rows (``analysis.loco_systems``; null: S1, S2 and the analysed one)."""
    chosen = cfg.analysis.loco_systems
    if chosen is None:
        chosen = [s for s in ("S1", "S2", cfg.analysis.primary_system) if s in cfg.systems]
    return list(dict.fromkeys(chosen))


def sentence_systems(cfg: Config) -> list[str]:
    """The systems trained with sentences held out (``analysis.sentence_systems``; null: the analysed one)."""
    chosen = cfg.analysis.sentence_systems
    if chosen is None:
        chosen = [cfg.analysis.primary_system] if cfg.analysis.primary_system in cfg.systems else []
    return list(dict.fromkeys(chosen))


def configured_corpora(cfg: Config) -> list[str]:
    """The corpora a profile reads (``CORPORA`` order): all three with ``data.demo`` (the synthetic corpus holds
    each, and a real root set beside it replaces that one), else those whose ``data.<key>`` root is set."""
    return [c for c in CORPORA if cfg.data.demo is not None or getattr(cfg.data, CORPUS_KEYS[c]) is not None]


def folds_problem(cfg: Config, speakers: dict[str, int], where: str = "") -> Optional[str]:
    """Why ``data.folds`` cannot split these corpora (None when it can): a corpus with fewer speakers than folds
    would leave folds that test none of its speakers.

    Args:
        cfg: the run configuration.
        speakers: corpus -> its speakers (the release's, the demo scale's, or the manifest's).
        where: what the counts come from, for the message (e.g. "in data/manifest.csv").
    """
    k = cfg.data.folds
    small = {corpus: n for corpus, n in speakers.items() if k and 0 < n < k}
    if not small:
        return None
    named = ", ".join(f"{corpus} has {n}" for corpus, n in small.items())
    return (
        f"{cfg.source or 'config'}: 'data.folds' = {k} is more folds than speakers ({named}{where}): every fold "
        f"must test speakers of every corpus; set data.folds to at most {min(small.values())}"
    )


def primary_system(cfg: Config) -> tuple[str, int]:
    """The analysed system and seed: ``analysis.primary_system`` and ``analysis.primary_seed``
    (null = the first of ``train.seeds``)."""
    seed = cfg.analysis.primary_seed
    if seed is None:
        if not cfg.train.seeds:
            raise ConfigError(f"{cfg.source}: 'train.seeds' is empty; set it or 'analysis.primary_seed'")
        seed = cfg.train.seeds[0]
    return cfg.analysis.primary_system, seed


# --------------------------------------------------------------------------- systems


def _model_defaults(raw: Any, path: Path) -> dict[str, dict]:
    """``model_defaults``: {arch: model fields}, checked as a ``model`` section would be."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: 'model_defaults' must be a mapping of architecture -> model fields, got {raw!r}")
    archs = typing.get_args(Arch)
    for arch, fields in raw.items():
        if arch not in archs:
            raise unknown_key_error(str(arch), "model_defaults.", archs, path)
        if isinstance(fields, dict) and "arch" in fields:
            raise ConfigError(
                f"{path}: 'model_defaults.{arch}.arch' cannot be set: the section names the "
                f"architecture; set 'arch' in a system's model"
            )
        build_dataclass(ModelConfig, fields, f"model_defaults.{arch}.", path)
    return {arch: dict(fields or {}) for arch, fields in raw.items()}


def _build_systems(raw: Any, model_defaults: dict[str, dict], path: Path) -> dict[str, SystemConfig]:
    """The paper's systems merged with the profile's ``systems`` (new names after, in file order)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: 'systems' must be a mapping of name -> system, got {raw!r}")
    entries = copy.deepcopy(PAPER_SYSTEMS)
    for name, entry in raw.items():
        name = str(name)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):  # models/<name>/ is its folder
            raise ConfigError(
                f"{path}: system name {name!r} must be a plain name (letters, digits, '.', '_', '-', "
                "starting with a letter or digit): it names the system's folder in models/"
            )
        if entry is None:
            if name not in entries:
                raise ConfigError(
                    f"{path}: 'systems.{name}: null' removes a system, but {name} is not one of the "
                    f"default systems ({', '.join(PAPER_SYSTEMS)}); delete the line"
                )
            del entries[name]
        elif not isinstance(entry, dict):
            raise ConfigError(
                f"{path}: 'systems.{name}' must be a mapping (input, model, augment, description) or "
                f"null to remove it, got {entry!r}"
            )
        else:
            entries[name] = deep_merge(entries.get(name, {}), entry)
    systems = {}
    for name, entry in entries.items():
        model = entry.get("model")
        if isinstance(model, dict) or model is None:
            arch = (model or {}).get("arch", ModelConfig.arch)
            entry = {**entry, "model": {**model_defaults.get(arch, {}), **(model or {})}}
        systems[name] = build_dataclass(SystemConfig, entry, f"systems.{name}.", path)
    return systems


# --------------------------------------------------------------------------- paths and cross-field checks


def _resolve(base: Path, value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    p = Path(value).expanduser()
    return str((p if p.is_absolute() else base / p).resolve())


def _resolve_paths(cfg: Config, base: Path) -> None:
    d = cfg.data
    d.crema_d, d.ravdess, d.emodb = (_resolve(base, v) for v in (d.crema_d, d.ravdess, d.emodb))
    d.split_file = _resolve(base, d.split_file)
    if d.demo is not None:
        d.demo.root = _resolve(base, d.demo.root)
    cfg.features.cache_dir = _resolve(base, cfg.features.cache_dir)
    w = cfg.features.wav2vec2
    if w.model_id.startswith((".", "/", "~")):
        w.model_id = _resolve(base, w.model_id)


def _check_values(cfg: Config, path: Path) -> None:
    """The checks that relate two values (each value's own range is in its type hint)."""

    def fail(key: str, rule: str, value: Any) -> None:
        raise ConfigError(f"{path}: '{key}' must be {rule}, got {value!r}")

    if abs(sum(cfg.data.split) - 1.0) > 1e-6:
        fail("data.split", "three non-negative fractions summing to 1", cfg.data.split)
    a = cfg.augment
    for name in ("mask_spans", "mask_width"):
        low, high = getattr(a, name)
        if low > high:
            fail(f"augment.{name}", "[min, max] with 1 <= min <= max", [low, high])
    if a.mask_groups_max > a.mask_channel_groups:
        fail(
            "augment.mask_groups_max",
            f"at most 'augment.mask_channel_groups' ({a.mask_channel_groups})",
            a.mask_groups_max,
        )
    if not cfg.systems:
        raise ConfigError(f"{path}: 'systems' removes every system; keep at least one")
    known = f"one of the systems ({', '.join(cfg.systems)})"
    select = cfg.train.select
    if select.enabled and select.scope == "shared" and select.system not in cfg.systems:  # read only then
        fail("train.select.system", known, select.system)
    n = cfg.analysis
    if n.primary_system not in cfg.systems:
        fail("analysis.primary_system", known, n.primary_system)
    unknown = [name for name in (n.loco_systems or []) if name not in cfg.systems]
    if unknown:
        fail("analysis.loco_systems", f"a list of the systems ({', '.join(cfg.systems)})", unknown)
    unknown = [name for name in (n.sentence_systems or []) if name not in cfg.systems]
    if unknown:
        fail("analysis.sentence_systems", f"a list of the systems ({', '.join(cfg.systems)})", unknown)
    corpora = configured_corpora(cfg)
    if cfg.data.demo is None:  # the releases' speakers (a partial copy is checked against its manifest)
        problem = folds_problem(cfg, {c: RELEASE_SPEAKERS[c] for c in corpora}, " in the public release")
        if problem:
            raise ConfigError(problem)
    if n.loco_systems and len(corpora) < 2:
        fail(
            "analysis.loco_systems",
            "null or [] with one corpus (leave-one-corpus-out trains on the others; this "
            f"profile reads only {', '.join(corpora) or 'no corpus'})",
            n.loco_systems,
        )
    if n.primary_seed is not None and n.primary_seed not in cfg.train.seeds:
        fail(
            "analysis.primary_seed",
            f"null or one of train.seeds ({', '.join(map(str, cfg.train.seeds))})",
            n.primary_seed,
        )
    reserved = {"utt_id", "annotator", "label", "pred", "reviewed", "note", "annotated_utc"}
    bad_tags = [
        t for t in n.listening_tags if not re.fullmatch(r"[a-z][a-z0-9_]*", t) or t in reserved or t.endswith("_utc")
    ]
    if bad_tags:
        fail(
            "analysis.listening_tags",
            "snake_case tag names (a-z, 0-9, _) other than the annotation file's own "
            f"columns ({', '.join(sorted(reserved))})",
            bad_tags,
        )
    for name, system in cfg.systems.items():
        _check_layers(name, system, n.layer_probe, fail)
    if not n.pitch_fmin < n.pitch_fmax < SAMPLE_RATE / 2:
        fail(
            "analysis.pitch_fmax",
            f"above 'analysis.pitch_fmin' ({n.pitch_fmin:g}) and below {SAMPLE_RATE / 2:g} Hz",
            n.pitch_fmax,
        )
    shortest = math.ceil(2 * SAMPLE_RATE / n.pitch_fmin)
    if n.pitch_frame_length < shortest:
        fail(
            "analysis.pitch_frame_length",
            f"at least {shortest} samples (two periods of pitch_fmin {n.pitch_fmin:g} Hz at {SAMPLE_RATE} Hz)",
            n.pitch_frame_length,
        )


def _check_layers(name: str, system: SystemConfig, probe: Any, fail) -> None:
    """A system's ``layers`` against its ``input`` (which layers exist is checked when the encoder is known)."""
    key, layers = f"systems.{name}.layers", system.layers
    if system.input == "logmel":
        if layers is not None:
            fail(key, "null for input: logmel (log-Mel has no layers)", layers)
    elif system.input == "wav2vec2":
        if layers == "all" or isinstance(layers, list):
            fail(
                key,
                "one layer for input: wav2vec2 (last, an index or best); input: wav2vec2_layers reads several",
                layers,
            )
        if layers == "best" and probe is None:
            fail(key, "a layer other than best unless analysis.layer_probe is set (best is the probe's choice)", layers)
    elif layers is not None and layers != "all" and not isinstance(layers, list):
        fail(key, "all or a list of at least two layers for input: wav2vec2_layers", layers)


# --------------------------------------------------------------------------- for other files and for variants


def with_overrides(cfg: Config, overrides: dict[str, Any], origin: str, relative_to: str | Path) -> Config:
    """``cfg`` with dotted-key overrides (``train.lr``, ``features.wav2vec2.model_id``,
    ``systems.S5.model.width_scale``), checked as a profile is.

    A mapping merges into the section it names; ``systems.X: null`` removes system X; a new system name starts
    from ``SystemConfig``'s defaults (``model_defaults`` has already been applied to ``cfg`` and cannot be
    overridden: set ``systems.X.model.<field>`` instead). Relative paths among the overrides are relative to
    ``relative_to`` (the paths ``cfg`` holds are absolute already).

    Args:
        cfg: the configuration to start from (a loaded profile).
        overrides: dotted key -> value, applied in order.
        origin: what errors name as the file (e.g. "sweeps/x.yaml (variant lr)").
        relative_to: the folder relative override paths are relative to.

    Returns:
        A new configuration (``source`` None).

    Raises:
        ConfigError: an unknown key, a wrong type, an impossible value, or a key that sets inside a value.
    """
    tree = config_to_dict(cfg)
    tree.pop("source", None)
    for key, value in overrides.items():
        _set_dotted(tree, str(key), value, origin)
    systems = {name: entry for name, entry in (tree.pop("systems") or {}).items() if entry is not None}
    out = build_dataclass(Config, tree, "", Path(origin))
    out.systems = {
        name: build_dataclass(SystemConfig, entry, f"systems.{name}.", Path(origin)) for name, entry in systems.items()
    }
    _resolve_paths(out, Path(relative_to))
    _check_values(out, Path(origin))
    return out


def _set_dotted(tree: dict, key: str, value: Any, origin: str) -> None:
    parts = key.split(".")
    if parts[0] == "model_defaults":
        raise ConfigError(
            f"{origin}: '{key}' cannot be overridden (model_defaults is applied when the base profile "
            "is read); set 'systems.<name>.model.<field>' for each system instead"
        )
    if not all(parts):
        raise ConfigError(f"{origin}: '{key}' is not a dotted key such as 'train.lr'")
    node = tree
    for depth, part in enumerate(parts[:-1]):
        if node.get(part) is None:
            node[
                part
            ] = {}  # a new system, or a section that was null (data.demo); build_dataclass refuses unknown names
        if not isinstance(node[part], dict):
            raise ConfigError(
                f"{origin}: '{'.'.join(parts[: depth + 1])}' holds a value ({node[part]!r}), not a "
                f"section, so '{key}' cannot be set; set '{'.'.join(parts[: depth + 1])}' itself"
            )
        node = node[part]
    leaf = parts[-1]
    if isinstance(value, dict) and isinstance(node.get(leaf), dict):
        node[leaf] = deep_merge(node[leaf], value)
    else:
        node[leaf] = copy.deepcopy(value)
