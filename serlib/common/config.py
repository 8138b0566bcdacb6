"""Typed run configuration, read from ``parameters/<run>.yaml``.

One dataclass per stage. Every field has a default and a one-line comment. Loading
rejects unknown keys and wrong types with an error that names the key (``data.min_duration_s``)
and the file. Relative paths in the YAML are relative to the YAML file's own folder.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml


class ConfigError(ValueError):
    """A parameters file holds an unknown key, a wrong type or an impossible value."""


# --------------------------------------------------------------------------- sections


@dataclass
class RunConfig:
    name: str = "demo"  # run folder name: reports/<name>/ unless --out is given
    title: str = "serlib experiment report"  # title of the HTML report
    seed: int = 0  # global seed for Python, NumPy and torch
    notebooks: list[str] = field(default_factory=lambda: [
        "01_data", "02_features", "03_train", "04_ablation", "05_confusion", "06_listening"
    ])  # ordered notebooks the runner executes (those present in notebooks/)


@dataclass
class DemoCorpusConfig:
    root: str = "../data/demo-corpus"  # where `serlib demo-corpus` writes the synthetic corpus
    seed: int = 0  # same seed, same bytes
    scale: str = "default"  # default | smoke | paper: how many speakers and clips the demo corpus has


@dataclass
class DataConfig:
    crema_d: Optional[str] = None  # CREMA-D root (holds AudioWAV/ and VideoDemographics.csv); null = not used
    ravdess: Optional[str] = None  # RAVDESS root (holds Actor_01 .. Actor_24); null = not used
    emodb: Optional[str] = None  # EmoDB root (holds wav/ or the .wav files flat); null = not used
    demo: Optional[DemoCorpusConfig] = None  # set for a synthetic run: corpus generated if missing
    min_duration_s: float = 1.0  # MCULP drops clips shorter than this (paper 2.2)
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train/val/test speaker fractions
    split_seed: int = 0  # seed of the speaker split
    split_file: Optional[str] = None  # speaker -> subset file to reuse a published split exactly


@dataclass
class Wav2Vec2Config:
    model_id: str = "facebook/wav2vec2-base"  # hub id or local folder (HuBERT and WavLM work too)
    revision: str = "main"  # hub revision, part of the cache key
    weights: str = "pretrained"  # pretrained | random (same architecture, seeded; offline demo and tests)
    layer: Union[str, int] = "last"  # 'last' (the paper) or a hidden-layer index
    batch_size: int = 8  # most clips per forward pass
    batching: str = "masked"  # masked: clips of any length share a pass, padding masked out exactly (outputs =
                              # one clip alone, to float rounding); equal: only equal sample counts share a pass
    max_batch_seconds: float = 160.0  # most padded audio per pass (bounds memory; sorted lengths pad little)
    mixed_precision: bool = True  # autocast on GPU (the paper's setting); CPU runs fp32
    config_overrides: dict = field(default_factory=dict)  # architecture overrides for random weights (tests)


@dataclass
class LogMelConfig:
    n_mels: int = 64  # mel bands (paper: 64 x 400)
    win_ms: float = 25.0  # analysis window
    hop_ms: float = 20.0  # hop = the wav2vec2 stride, so 400 frames = 8 s
    log_floor: float = 1e-6  # floor inside the log
    standardise: bool = True  # CHOSEN (paper: not stated): zero mean, unit variance per utterance, so the
                              # zero padding, crop and masks of the paper sit at the clip's mean level, not at 'loud'


@dataclass
class FeaturesConfig:
    frames: int = 400  # centre trim or zero-pad to this many frames (paper: 400)
    sample_rate: int = 16000  # encoders' input rate
    cache_dir: Optional[str] = None  # null = <run folder>/data/features; may be shared between runs
    device: str = "auto"  # auto | cpu | cuda
    threads: Optional[int] = None  # torch CPU threads for the encoder; null = torch's default (all cores)
    wav2vec2: Wav2Vec2Config = field(default_factory=Wav2Vec2Config)
    logmel: LogMelConfig = field(default_factory=LogMelConfig)


@dataclass
class AugmentConfig:
    noise_prob: float = 0.5  # CHOSEN (paper: not stated): probability of additive Gaussian noise
    noise_std: float = 0.05  # CHOSEN (paper: "small relative std"): std relative to each utterance's feature std
    crop_prob: float = 0.5  # paper: random crop to crop_frames, zero-pad back, with p = 0.5
    crop_frames: int = 380  # paper: 380 of 400 frames
    mask_prob: float = 0.25  # paper: temporal masking with p = 0.25
    mask_spans: list[int] = field(default_factory=lambda: [1, 2])  # paper: 1-2 contiguous spans
    mask_width: list[int] = field(default_factory=lambda: [5, 16])  # paper: 5-16 frames per span
    mask_channel_groups: int = 4  # CHOSEN (paper: "randomly selected channel groups"): channels split in this many groups
    mask_groups_max: int = 2  # CHOSEN: up to this many groups are masked per span
    within_clip: bool = False  # crop, masks and noise inside each clip's real frames (paper: over the whole window)


@dataclass
class ModelConfig:
    arch: str = "resattn"  # resattn | shallow
    se: bool = True  # squeeze-and-excitation in every residual block
    se_reduction: int = 16  # paper: r = 16
    blocks: Optional[list[int]] = None  # residual block indices kept (0-4); null = all five
    width_scale: float = 1.0  # 1.0 = the paper's widths; demo may narrow the network
    mask_padding: bool = False  # pool, SE-squeeze and normalise over each clip's real frames (paper: the whole window)
    pooling: str = "mean"  # temporal pooling before the head: mean (the paper's global average pooling)


@dataclass
class SelectConfig:
    enabled: bool = False  # run serlib.modelling.systems.select_lr_wd (val split only) and train with its choice
    system: str = "S5"  # the system the grid is searched on
    lrs: list[float] = field(default_factory=lambda: [3e-4, 1e-3, 3e-3])  # CHOSEN learning-rate grid
    weight_decays: list[float] = field(default_factory=lambda: [1e-4, 1e-2])  # CHOSEN weight-decay grid
    max_epochs: int = 20  # CHOSEN: epochs per grid point (early stopping as in training)
    seed: int = 0  # seed of the selection runs


@dataclass
class TrainConfig:
    lr: float = 1e-3  # CHOSEN on validation (paper: not stated); select.enabled overrides it
    weight_decay: float = 1e-2  # CHOSEN on validation (paper: not stated); select.enabled overrides it
    batch_size: int = 64  # paper: 64
    max_epochs: int = 80  # paper: at most 80
    early_stop_patience: int = 30  # paper: 30 epochs without validation improvement
    plateau_patience: int = 10  # paper: ReduceLROnPlateau patience 10
    plateau_factor: float = 0.5  # paper: factor 0.5
    min_lr: float = 1e-6  # paper: "a small floor"
    grad_clip: float = 2.0  # paper: gradient-norm clipping at 2.0
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # each system trained once per seed
    device: str = "auto"  # auto | cpu | cuda
    eval_batch_size: int = 256  # batch for validation/test passes (no effect on results)
    threads: Optional[int] = None  # CPU threads for training; null = torch's default (no effect on GPU)
    trim_batches: bool = False  # masked systems: batches from length buckets, cut to their longest clip (speed)
    select: SelectConfig = field(default_factory=SelectConfig)  # learning-rate / weight-decay selection


@dataclass
class SystemConfig:
    input: str = "wav2vec2"  # wav2vec2 | logmel
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: bool = True  # Tri-Aug during training
    description: str = ""  # shown in Table 4 / Table 6


@dataclass
class AnalysisConfig:
    primary_system: str = "S5"  # system analysed in 05_confusion/06_listening (paper 5.4: the proposed S5)
    primary_seed: Optional[int] = None  # its seed; null = the first of train.seeds
    listening_clips: int = 50  # paper 5.4: 50 misclassified test clips
    listening_seed: int = 0  # CHOSEN: seed of the reproducible draw of listening clips
    pitch_fmin: float = 65.0  # CHOSEN: pyin lowest pitch (Hz), covers male speech
    pitch_fmax: float = 500.0  # CHOSEN: pyin highest pitch (Hz), covers raised female speech
    pitch_frame_length: int = 1024  # CHOSEN: pyin window in samples at 16 kHz (64 ms)
    pitch_hop_ms: float = 20.0  # CHOSEN: pyin and RMS hop (the wav2vec2 stride)


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    systems: dict[str, SystemConfig] = field(default_factory=dict)  # S1-S5, A1-A3 by name
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)  # confusion analysis and listening
    source: Optional[str] = None  # the YAML file this was read from (set by load_config)


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path) -> Config:
    """Read and validate a parameters file.

    Args:
        path: a YAML file such as ``parameters/demo.yaml``.

    Returns:
        The typed configuration, relative paths resolved against the file's folder.

    Raises:
        ConfigError: missing file, unknown key, wrong type, or an impossible value; the
            message names the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"parameters file not found: {path} (pass a YAML such as parameters/demo.yaml)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (run, data, ...)")
    raw.pop("source", None)
    cfg = _build(Config, raw, "", path)
    cfg.source = str(path.resolve())
    _resolve_paths(cfg, path.resolve().parent)
    _check_values(cfg, path)
    return cfg


def config_to_dict(cfg: Config) -> dict:
    """The configuration as plain data (for the resolved-config file and the report)."""
    return dataclasses.asdict(cfg)


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


def _build(cls: type, raw: Any, prefix: str, path: Path) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: '{prefix.rstrip('.') or '<top>'}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        keys = ", ".join(f"'{prefix}{k}'" for k in unknown)
        raise ConfigError(f"{path}: unknown key {keys}; known keys here: {', '.join(sorted(names))}")
    kwargs = {name: _coerce(hints[name], value, f"{prefix}{name}", path) for name, value in raw.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str, path: Path) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key, path)
            except ConfigError as err:
                errors.append(err)
        raise errors[0] if len(errors) == 1 else ConfigError(
            f"{path}: '{key}' must be one of {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, f"{key}.", path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: '{key}' must be a list, got {value!r}")
        return [_coerce(args[0], v, f"{key}[{i}]", path) for i, v in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: '{key}' must be a mapping, got {value!r}")
        if args:
            return {str(k): _coerce(args[1], v, f"{key}.{k}", path) for k, v in value.items()}
        return value
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: '{key}' must be a mapping, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: '{key}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: '{key}' must be a string, got {value!r}")
        return value
    return value


def _type_name(tp: Any) -> str:
    return " | ".join(getattr(a, "__name__", str(a)) for a in typing.get_args(tp))


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


def _choice(value: Any, allowed: tuple, key: str, path: Path) -> None:
    if value not in allowed:
        raise ConfigError(f"{path}: '{key}' must be one of {', '.join(map(str, allowed))}; got {value!r}")


def _check_values(cfg: Config, path: Path) -> None:
    d = cfg.data
    if len(d.split) != 3 or abs(sum(d.split) - 1.0) > 1e-6 or min(d.split) < 0:
        raise ConfigError(f"{path}: 'data.split' must be three non-negative fractions summing to 1, got {d.split}")
    if d.demo is not None:
        _choice(d.demo.scale, ("default", "smoke", "paper"), "data.demo.scale", path)
    _choice(cfg.features.device, ("auto", "cpu", "cuda"), "features.device", path)
    _choice(cfg.train.device, ("auto", "cpu", "cuda"), "train.device", path)
    _choice(cfg.features.wav2vec2.weights, ("pretrained", "random"), "features.wav2vec2.weights", path)
    w = cfg.features.wav2vec2
    _choice(w.batching, ("masked", "equal"), "features.wav2vec2.batching", path)
    if w.batch_size < 1 or w.max_batch_seconds <= 0:
        raise ConfigError(f"{path}: 'features.wav2vec2.batch_size' must be >= 1 and 'max_batch_seconds' > 0; "
                          f"got {w.batch_size} and {w.max_batch_seconds}")
    layer = cfg.features.wav2vec2.layer
    if isinstance(layer, str) and layer != "last":
        raise ConfigError(f"{path}: 'features.wav2vec2.layer' must be 'last' or an integer, got {layer!r}")
    for name, system in cfg.systems.items():
        _choice(system.input, ("wav2vec2", "logmel"), f"systems.{name}.input", path)
        _choice(system.model.arch, ("resattn", "shallow"), f"systems.{name}.model.arch", path)


def primary_system(cfg: Config) -> tuple[str, int]:
    """The analysed system and seed: ``analysis.primary_system`` and ``analysis.primary_seed``
    (null = the first of ``train.seeds``)."""
    seed = cfg.analysis.primary_seed
    if seed is None:
        if not cfg.train.seeds:
            raise ConfigError(f"{cfg.source}: 'train.seeds' is empty; set it or 'analysis.primary_seed'")
        seed = cfg.train.seeds[0]
    return cfg.analysis.primary_system, seed
