"""Typed run configuration, read from ``parameters/<run>.yaml``.

One dataclass per stage. Every field has a default and a one-line comment; its type hint holds
its allowed values (``Literal`` choices, ``Bound`` ranges, ``Items`` list rules), so a run stops
when the YAML is read, not minutes later. Every error is one line naming the file and the dotted
key (``data.min_duration_s``); an unknown key lists the known ones and the closest match; a key
given twice is an error. Relative paths in the YAML are relative to the YAML file's own folder.

The paper's systems S1-S5 and A1-A3 are the default ``systems``: a profile's ``systems.X``
merges into the default entry of X (a new name starts from ``SystemConfig``'s defaults),
``X: null`` removes X, and the profile-level ``model_defaults: {resattn: {...}, shallow: {...}}``
sets model fields for every system of that architecture whose own entry (its default entry
merged with the profile's) does not set them (the demo's ``width_scale``).
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import operator
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml

from serlib.common.facts import CORPORA, CORPUS_KEYS, RELEASE_SPEAKERS, SAMPLE_RATE


class ConfigError(ValueError):
    """A parameters file holds an unknown key, a wrong type or an impossible value."""


# --------------------------------------------------------------------------- value rules


@dataclass(frozen=True)
class Bound:
    """A numeric bound in an ``Annotated`` hint: ``Annotated[int, Bound(">=", 1)]``."""
    op: str  # >=, >, <=, <
    limit: float


@dataclass(frozen=True)
class Match:
    """A text rule in an ``Annotated`` hint: the whole string matches ``pattern``; ``rule`` says it in words."""
    pattern: str
    rule: str
    refused: tuple = ()  # strings the pattern allows that are still refused (".", "..")


@dataclass(frozen=True)
class Items:
    """Rules for a list in an ``Annotated`` hint: its length and whether its items are distinct."""
    min_len: int = 0
    max_len: Optional[int] = None
    distinct: bool = False


_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
PosInt = Annotated[int, Bound(">=", 1)]
NonNegInt = Annotated[int, Bound(">=", 0)]
SEED_MAX = 2**32 - 1  # NumPy's seeds are 32-bit: a larger one fails only when the run reaches it
Seed = Annotated[int, Bound(">=", 0), Bound("<=", SEED_MAX)]  # every seed (NumPy refuses negative ones)
MAX_FRAMES = 30_000  # the longest window: 10 minutes at 20 ms (the paper: 400); more only allocates and fails later
MAX_BATCH = 65_536  # the largest batch of any stage
MAX_EPOCHS = 100_000
Batch = Annotated[int, Bound(">=", 1), Bound("<=", MAX_BATCH)]
# A run's folder name: a plain name, never a path (reports/<name>/ must stay inside reports/).
RunName = Annotated[str, Match(r"[A-Za-z0-9._-]{1,100}", "a plain name (letters, digits, '.', '_', '-'; no "
                                "separator, not '.' or '..'; at most 100 characters)", (".", ".."))]
PosFloat = Annotated[float, Bound(">", 0)]
NonNegFloat = Annotated[float, Bound(">=", 0)]
Probability = Annotated[float, Bound(">=", 0), Bound("<=", 1)]
MinMax = Annotated[list[PosInt], Items(2, 2)]  # [min, max], min <= max (checked in _check_values)
BlockList = Annotated[list[Annotated[int, Bound(">=", 0), Bound("<=", 4)]], Items(1, distinct=True)]
Device = Literal["auto", "cpu", "cuda"]
Input = Literal["wav2vec2", "logmel", "wav2vec2_layers"]
# An SSL encoder's hidden layers (issue 12): 'last', a layer index (0 = the transformer's input), 'all', a list of
# indices, or 'best' (one system's single layer: the per-layer probe's choice on validation, analysis.layer_probe).
LayerList = Annotated[list[NonNegInt], Items(2, distinct=True)]
Layers = Union[Literal["last", "best", "all"], NonNegInt, LayerList]
Arch = Literal["resattn", "shallow"]


# --------------------------------------------------------------------------- sections


@dataclass
class RunConfig:
    name: Optional[RunName] = None  # run folder name: reports/<name>/ unless --out is given; null = the
                                    # parameters file's stem (parameters/x.yaml -> x)
    title: str = "serlib experiment report"  # title of the HTML report
    seed: Seed = 0  # global seed for Python, NumPy and torch
    notebooks: list[str] = field(default_factory=lambda: [
        "01_data", "02_features", "03_train", "04_ablation", "05_confusion", "06_listening"
    ])  # ordered notebooks the runner executes (those present in notebooks/)


@dataclass
class DemoCorpusConfig:
    root: str = "../data/demo-corpus"  # where `serlib demo-corpus` writes the synthetic corpus
    seed: Seed = 0  # same seed, same bytes
    scale: Literal["default", "smoke", "paper"] = "default"  # how many speakers and clips the demo corpus has


@dataclass
class DataConfig:
    crema_d: Optional[str] = None  # CREMA-D root (holds AudioWAV/ and VideoDemographics.csv); null = not used
    ravdess: Optional[str] = None  # RAVDESS root (holds Actor_01 .. Actor_24); null = not used
    emodb: Optional[str] = None  # EmoDB root (holds wav/ or the .wav files flat); null = not used
    demo: Optional[DemoCorpusConfig] = None  # set for a synthetic run: corpus generated if missing
    min_duration_s: NonNegFloat = 1.0  # MCULP drops clips shorter than this (paper 2.2)
    split: Annotated[list[NonNegFloat], Items(3, 3)] = field(
        default_factory=lambda: [0.8, 0.1, 0.1])  # train/val/test speaker fractions (paper 4.1: within each corpus)
    split_seed: Seed = 0  # seed of the speaker split
    split_file: Optional[str] = None  # speaker -> subset file to reuse a published split exactly
    folds: Optional[Annotated[int, Bound(">=", 2)]] = None  # speaker k-fold cross-validation instead of the split
                                                             # (null = the paper's single split); at most the
                                                             # speakers of the smallest corpus
    silence_floor_dbfs: Annotated[float, Bound("<=", 0.0)] = -60.0  # CHOSEN: a clip whose mono RMS is below this (dB re full scale) is near-silent
    drop_silent: bool = False  # false: near-silent clips (or stereo that cancels) are flagged in the audit and kept


@dataclass
class Wav2Vec2Config:
    model_id: str = "facebook/wav2vec2-base"  # hub id or local folder (HuBERT and WavLM work too)
    revision: str = "main"  # hub revision, part of the cache key
    weights: Literal["pretrained", "random"] = "pretrained"  # random: same architecture, seeded (offline demo, tests)
    layer: Union[Literal["last"], NonNegInt] = "last"  # 'last' (paper 2.3: the final hidden layer) or a layer index
    batch_size: Batch = 8  # most clips per forward pass
    batching: Literal["masked", "equal"] = "masked"  # masked: clips of any length share a pass, padding masked out
                              # exactly (outputs = one clip alone, to float rounding); equal: only equal sample counts
    max_batch_seconds: PosFloat = 160.0  # most padded audio per pass (bounds memory; sorted lengths pad little)
    mixed_precision: bool = True  # autocast on GPU (paper 3.4); CPU runs fp32
    config_overrides: dict = field(default_factory=dict)  # architecture overrides for random weights (tests)


@dataclass
class LogMelConfig:
    n_mels: PosInt = 64  # mel bands (paper 3.1: 64 x 400 log-Mel for S1)
    win_ms: PosFloat = 25.0  # analysis window
    hop_ms: PosFloat = 20.0  # hop = the wav2vec2 stride, so 400 frames = 8 s
    log_floor: PosFloat = 1e-6  # floor inside the log
    standardise: bool = True  # CHOSEN (paper: not stated): zero mean, unit variance per utterance, so the
                              # zero padding, crop and masks of the paper sit at the clip's mean level, not at 'loud'


@dataclass
class FeaturesConfig:
    frames: Annotated[int, Bound(">=", 1), Bound("<=", MAX_FRAMES)] = 400  # centre trim or zero-pad to this many
                                                                         # frames (paper 2.3: 768 x 400)
    sample_rate: Annotated[int, Bound(">=", 1000), Bound("<=", 192_000)] = 16000  # encoders' input rate (Hz)
    cache_dir: Optional[str] = None  # null = <run folder>/data/features; may be shared between runs
    device: Device = "auto"  # auto | cpu | cuda
    threads: Optional[PosInt] = None  # torch CPU threads for the encoder; null = torch's default (all cores)
    wav2vec2: Wav2Vec2Config = field(default_factory=Wav2Vec2Config)
    logmel: LogMelConfig = field(default_factory=LogMelConfig)


@dataclass
class AugmentConfig:
    noise_prob: Probability = 0.5  # CHOSEN (paper: not stated): probability of additive Gaussian noise
    noise_std: NonNegFloat = 0.05  # CHOSEN (paper: "small relative std"): std relative to each utterance's std
    crop_prob: Probability = 0.5  # paper 2.4: random crop to crop_frames, zero-pad back, with p = 0.5
    crop_frames: Annotated[int, Bound(">=", 1), Bound("<=", MAX_FRAMES)] = 380  # paper: 380 of 400 frames
    mask_prob: Probability = 0.25  # paper: temporal masking with p = 0.25
    mask_spans: MinMax = field(default_factory=lambda: [1, 2])  # paper: 1-2 contiguous spans
    mask_width: MinMax = field(default_factory=lambda: [5, 16])  # paper: 5-16 frames per span
    mask_channel_groups: PosInt = 4  # CHOSEN (paper: "randomly selected channel groups"): channels in this many groups
    mask_groups_max: PosInt = 2  # CHOSEN: up to this many groups (<= mask_channel_groups) are masked per span
    within_clip: bool = False  # crop, masks and noise inside each clip's real frames (paper: over the whole window)


@dataclass
class ModelConfig:
    arch: Arch = "resattn"  # resattn | shallow
    se: bool = True  # squeeze-and-excitation in every residual block
    se_reduction: PosInt = 16  # paper: r = 16
    blocks: Optional[BlockList] = None  # residual block indices kept (distinct, 0-4); null = all five
    width_scale: PosFloat = 1.0  # 1.0 = the paper's widths; demo may narrow the network
    mask_padding: bool = False  # pool, SE-squeeze and normalise over each clip's real frames (paper: the whole window)
    pooling: Literal["mean", "attentive"] = "mean"  # mean: the paper's global average pooling; attentive:
                                                     # attentive statistics pooling (weighted mean and std)
    conv: Literal["standard", "separable"] = "standard"  # separable: depthwise + pointwise convs inside the
                                                          # residual blocks (the k=9 stem stays standard)


@dataclass
class SelectConfig:
    enabled: bool = False  # run serlib.modelling.systems.select_lr_wd (val split only) and train with its choice
    system: str = "S5"  # with scope shared: the system the one grid is searched on (a key of 'systems')
    lrs: Annotated[list[PosFloat], Items(1)] = field(
        default_factory=lambda: [3e-4, 1e-3, 3e-3])  # CHOSEN learning-rate grid
    weight_decays: Annotated[list[NonNegFloat], Items(1)] = field(
        default_factory=lambda: [1e-4, 1e-2])  # CHOSEN weight-decay grid
    max_epochs: Annotated[int, Bound(">=", 1), Bound("<=", MAX_EPOCHS)] = 20  # CHOSEN: epochs per grid point (early stopping as in training)
    seed: Seed = 0  # seed of the selection runs
    scope: Literal["shared", "family", "system"] = "system"  # one grid per system (equal tuning budget), per
                                                             # architecture family (input x arch), or one shared
                                                             # grid searched on 'system' and used by every system


@dataclass
class TrainConfig:
    lr: PosFloat = 1e-3  # CHOSEN on validation (paper: not stated); select.enabled overrides it
    weight_decay: NonNegFloat = 1e-2  # CHOSEN on validation (paper: not stated); select.enabled overrides it
    batch_size: Batch = 64  # paper: 64
    max_epochs: Annotated[int, Bound(">=", 1), Bound("<=", MAX_EPOCHS)] = 80  # paper: at most 80
    early_stop_patience: NonNegInt = 30  # paper: 30 epochs without validation improvement
    plateau_patience: NonNegInt = 10  # paper: ReduceLROnPlateau patience 10 on validation accuracy
    plateau_factor: Annotated[float, Bound(">", 0), Bound("<", 1)] = 0.5  # paper: factor 0.5
    min_lr: NonNegFloat = 1e-6  # paper: "a small floor"
    grad_clip: NonNegFloat = 2.0  # paper: gradient-norm clipping at 2.0 (0 = off)
    seeds: Annotated[list[Seed], Items(1, distinct=True)] = field(
        default_factory=lambda: [0, 1, 2])  # each system trained once per seed
    device: Device = "auto"  # auto | cpu | cuda
    eval_batch_size: Batch = 256  # batch for validation/test passes (no effect on results)
    threads: Optional[PosInt] = None  # CPU threads for training; null = torch's default (no effect on GPU)
    trim_batches: bool = False  # masked systems: batches from length buckets, cut to their longest clip (speed)
    deterministic: bool = True  # deterministic kernels (a seed gives the same weights); false: cuDNN autotuning
    amp: bool = False  # bf16 autocast of the CNN's forward and loss (GPU fast path; weights stay fp32)
    select: SelectConfig = field(default_factory=SelectConfig)  # learning-rate / weight-decay selection


@dataclass
class SystemConfig:
    input: Input = "wav2vec2"  # wav2vec2 | logmel | wav2vec2_layers (a learned softmax-weighted sum of layers)
    layers: Optional[Layers] = None  # the encoder layer(s) read: wav2vec2 takes one (last, an index, or best: the
                                     # probe's validation choice), wav2vec2_layers several (all or a list);
                                     # null = features.wav2vec2.layer (wav2vec2) or all (wav2vec2_layers)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: bool = True  # Tri-Aug during training
    description: str = ""  # shown in Table 4 / Table 6
    within_clip: Optional[bool] = None  # this system's augment.within_clip (null = the augment section's)
    trim_batches: Optional[bool] = None  # this system's train.trim_batches (null = the train section's)


# The paper's systems (Tables 4 and 6), as a profile's YAML would write them: what an entry sets
# here is its own (``model_defaults`` does not override it). S4 == A1 and S3 == A2 as configured:
# trained once, reused. A3's blocks 1, 3, 5 (0-based 0, 2, 4) are CHOSEN (paper: "three blocks"):
# they keep the 384 -> 256 -> 64 taper.
PAPER_SYSTEMS: dict[str, dict] = {
    "S1": {"input": "logmel", "model": {"arch": "shallow"}, "augment": False,
           "description": "3-Conv CNN (baseline), log-Mel"},
    "S2": {"input": "wav2vec2", "model": {"arch": "shallow"}, "augment": False, "description": "3-Conv CNN, wav2vec2"},
    "S3": {"input": "wav2vec2", "model": {"arch": "resattn", "se": False}, "augment": True,
           "description": "ResAttn1D-CNN (-SE)"},
    "S4": {"input": "wav2vec2", "model": {"arch": "resattn", "se": True}, "augment": False,
           "description": "ResAttn1D-CNN (-Tri-Aug)"},
    "S5": {"input": "wav2vec2", "model": {"arch": "resattn", "se": True}, "augment": True,
           "description": "ResAttn1D-CNN (proposed)"},
    "A1": {"input": "wav2vec2", "model": {"arch": "resattn", "se": True}, "augment": False, "description": "-Aug"},
    "A2": {"input": "wav2vec2", "model": {"arch": "resattn", "se": False}, "augment": True, "description": "-SE"},
    "A3": {"input": "wav2vec2", "model": {"arch": "resattn", "se": True, "blocks": [0, 2, 4]}, "augment": True,
           "description": "-Depth (blocks 1, 3, 5)"},
}


def _paper_systems() -> dict[str, SystemConfig]:
    return {name: SystemConfig(**{**entry, "model": ModelConfig(**copy.deepcopy(entry["model"]))})
            for name, entry in PAPER_SYSTEMS.items()}


@dataclass
class AnalysisConfig:
    primary_system: str = "S5"  # system analysed in 05_confusion/06_listening (paper 5.4: the proposed S5)
    primary_seed: Optional[Seed] = None  # its seed (one of train.seeds); null = the first of train.seeds
    listening_clips: PosInt = 50  # paper 5.4: 50 misclassified test clips
    listening_seed: Seed = 0  # CHOSEN: seed of the reproducible draw of listening clips
    pitch_fmin: PosFloat = 65.0  # CHOSEN: pyin lowest pitch (Hz), covers male speech
    pitch_fmax: PosFloat = 500.0  # CHOSEN: pyin highest pitch (Hz, below 8 kHz), covers raised female speech
    pitch_frame_length: PosInt = 1024  # CHOSEN: pyin window in samples at 16 kHz (64 ms; >= 2 periods of fmin)
    pitch_hop_ms: PosFloat = 20.0  # CHOSEN: pyin and RMS hop (the wav2vec2 stride)
    loco_systems: Optional[list[str]] = None  # leave-one-corpus-out (train on two corpora, test on the third):
                                              # null = S1, S2 and the analysed system, those the profile has; [] = off
    bootstrap_resamples: Annotated[int, Bound(">=", 1), Bound("<=", 1_000_000)] = 1000  # CHOSEN: speaker-bootstrap resamples behind every interval
    bootstrap_seed: Seed = 0  # seed of the bootstrap draws
    alpha: Annotated[float, Bound(">", 0), Bound("<", 1)] = 0.05  # family-wise level of the paired tests (Holm)
    listening_tags: Annotated[list[str], Items(1, distinct=True)] = field(default_factory=lambda: [
        "hybrid_prosody", "ambiguous_arousal", "label_doubtful", "other"])  # the station's failure-mode tags
                                       # (paper 5.4 names the first two; the others CHOSEN); snake_case names
    layer_probe: Optional[Union[Literal["all"], LayerList]] = None  # a linear probe on every listed encoder
                                    # layer (mean and std over real frames; null = off); its layers are cached
    feature_baselines: bool = True  # rows beyond the paper: eGeMAPS v02 (openSMILE) and mean-pooled wav2vec2,
                                    # each with a logistic regression (C CHOSEN on val), beside S1 / S2


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    systems: dict[str, SystemConfig] = field(default_factory=_paper_systems)  # by name; default S1-S5, A1-A3
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)  # confusion analysis and listening
    source: Optional[str] = None  # the YAML file this was read from (set by load_config)


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
    cfg = _build(Config, raw, "", path, also_known=("model_defaults",))
    cfg.systems = _build_systems(systems, _model_defaults(model_defaults, path), path)
    cfg.source = str(path.resolve())
    if cfg.run.name is None:  # the file's own name, never another profile's run folder
        try:
            cfg.run.name = _coerce(typing.get_type_hints(RunConfig, include_extras=True)["name"], path.stem,
                                   "run.name", path)
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
    cfg = _build(Config, raw, "", Path(origin))
    cfg.systems = {str(name): _build(SystemConfig, entry, f"systems.{name}.", Path(origin))
                   for name, entry in systems.items()}
    cfg.source = source
    return cfg


def features_from_dict(raw: dict, origin: str | Path) -> FeaturesConfig:
    """A ``features`` section from plain data (a model bundle's), validated as a YAML one is."""
    return _build(FeaturesConfig, raw, "features.", Path(origin))


def model_from_dict(raw: dict, origin: str | Path) -> ModelConfig:
    """A system's ``model`` section from plain data (a checkpoint's), validated as a YAML one is."""
    return _build(ModelConfig, raw, "model.", Path(origin))


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
    return (f"{cfg.source or 'config'}: 'data.folds' = {k} is more folds than speakers ({named}{where}): every fold "
            f"must test speakers of every corpus; set data.folds to at most {min(small.values())}")


def primary_system(cfg: Config) -> tuple[str, int]:
    """The analysed system and seed: ``analysis.primary_system`` and ``analysis.primary_seed``
    (null = the first of ``train.seeds``)."""
    seed = cfg.analysis.primary_seed
    if seed is None:
        if not cfg.train.seeds:
            raise ConfigError(f"{cfg.source}: 'train.seeds' is empty; set it or 'analysis.primary_seed'")
        seed = cfg.train.seeds[0]
    return cfg.analysis.primary_system, seed


YAML_NODE_BUDGET = 100_000  # values a parameters file may expand to, aliases counted at every use
                            # (a profile holds a few hundred; nested aliases can reach billions)


def read_yaml(path: Path) -> Any:
    """The file's data; a key given twice in one mapping is an error (plain YAML keeps the last), and so is
    a file whose aliases expand past ``YAML_NODE_BUDGET`` values or refer to themselves."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read as a YAML text file ({err})") from err
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        size = _expanded_size(node, {}, set(), path)
        if size > YAML_NODE_BUDGET:
            raise ConfigError(f"{path}: its aliases (*name) expand to more than the {YAML_NODE_BUDGET:,} values a "
                              "parameters file may hold; write the values out or use fewer aliases")
        _reject_duplicate_keys(node, "", path, set())
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from err
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict, open_nodes: set, path: Path) -> int:
    """How many values ``node`` stands for with every alias written out (each node counted once per use,
    computed once per node: linear in the file, whatever the aliases expand to)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise ConfigError(f"{path}: an alias refers to a value that contains it (line {node.start_mark.line + 1}); "
                          "a parameters file holds no recursive values")
    open_nodes.add(id(node))
    children = ([v for pair in node.value for v in pair] if isinstance(node, yaml.MappingNode) else
                node.value if isinstance(node, yaml.SequenceNode) else [])
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, open_nodes, path)
        if total > YAML_NODE_BUDGET:
            break  # enough to refuse; the exact size does not matter
    open_nodes.discard(id(node))
    sizes[id(node)] = total
    return total


def _reject_duplicate_keys(node: yaml.Node, prefix: str, path: Path, seen: set) -> None:
    if id(node) in seen:  # an alias: its mapping was checked where it was defined
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = f"{prefix}{key_node.value}", key_node.start_mark.line + 1
            if key in lines:
                raise ConfigError(f"{path}: duplicate key '{key}' on lines {lines[key]} and {line}; keep one")
            lines[key] = line
            _reject_duplicate_keys(value_node, f"{key}.", path, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _reject_duplicate_keys(item, f"{prefix.rstrip('.')}[{i}].", path, seen)


def _unknown_key(key: str, prefix: str, known: typing.Iterable[str], path: Path) -> ConfigError:
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
    return ConfigError(f"{path}: unknown key '{prefix}{key}'{hint}; known keys here: {', '.join(known)}")


def _build(cls: type, raw: Any, prefix: str, path: Path, also_known: tuple = ()) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: '{prefix.rstrip('.') or '<top>'}' must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    for key in raw:
        if key not in names:
            raise _unknown_key(str(key), prefix, [*names, *also_known], path)
    return cls(**{name: _coerce(hints[name], value, f"{prefix}{name}", path) for name, value in raw.items()})


def _coerce(tp: Any, value: Any, key: str, path: Path) -> Any:
    """``value`` checked against the type hint ``tp`` (rules included), or a ConfigError naming ``key``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        try:
            value = _coerce(args[0], value, key, path)
        except ConfigError as err:
            if getattr(err, "key", None) == key:  # the value itself, not one of its items: say every rule
                raise _bad(tp, value, key, path) from None
            raise
        if not all(_obeys(rule, value) for rule in tp.__metadata__):
            raise _bad(tp, value, key, path)
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return _coerce(option, value, key, path)
            except ConfigError as err:
                if len(options) == 1 and getattr(err, "key", None) != key:
                    raise
        raise _bad(tp, value, key, path)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict) and value is not None:
            raise _bad(tp, value, key, path)
        return _build(tp, value, f"{key}.", path)
    if not _is_kind(tp, value):
        raise _bad(tp, value, key, path)
    if origin is list and args:
        return [_coerce(args[0], v, f"{key}[{i}]", path) for i, v in enumerate(value)]
    if origin is dict and args:
        return {str(k): _coerce(args[1], v, f"{key}.{k}", path) for k, v in value.items()}
    return float(value) if tp is float else value


def _bad(tp: Any, value: Any, key: str, path: Path) -> ConfigError:
    rule = _describe(tp)
    hint = ""
    if "number" in rule and isinstance(value, str):
        try:
            float(value)
            hint = " (YAML reads a number without a dot as text: write 1.0e-3, not 1e-3)"
        except ValueError:
            pass
    err = ConfigError(f"{path}: '{key}' must be {rule}, got {value!r}{hint}")
    err.key = key  # lets an enclosing Optional or Annotated hint restate the rule in full
    return err


def _is_kind(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(tp))
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin) if isinstance(origin, type) else True


def _obeys(rule: Any, value: Any) -> bool:
    if isinstance(rule, Bound):
        return _COMPARE[rule.op](value, rule.limit)
    if isinstance(rule, Match):
        return re.fullmatch(rule.pattern, value) is not None and value not in rule.refused
    if isinstance(rule, Items):
        if len(value) < rule.min_len or (rule.max_len is not None and len(value) > rule.max_len):
            return False
        return not rule.distinct or len(set(value)) == len(value)
    return True


def _describe(tp: Any) -> str:
    """What a type hint allows, in words: 'an integer >= 1', 'one of auto, cpu, cuda'."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        bounds = [f"{r.op} {r.limit:g}" for r in tp.__metadata__ if isinstance(r, Bound)]
        items = [r for r in tp.__metadata__ if isinstance(r, Items)]
        matches = [r.rule for r in tp.__metadata__ if isinstance(r, Match)]
        if matches:
            return " and ".join(matches)
        if items:
            return _describe_list(items[0], typing.get_args(args[0]))
        return " ".join([_describe(args[0]), " and ".join(bounds)]).strip()
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return f"'{args[0]}'" if len(args) == 1 else f"one of {', '.join(map(str, args))}"
    names = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string",
             list: "a list", dict: "a mapping", type(None): "null"}
    return names.get(origin or tp, "a mapping" if dataclasses.is_dataclass(tp) else str(tp))


def _describe_list(rule: Items, item_type: tuple) -> str:
    if rule.max_len is not None and rule.max_len == rule.min_len:
        size = f"a list of {rule.min_len}"
    else:
        size = "a non-empty list" if rule.min_len == 1 else "a list"
    each = f"each {_describe(item_type[0])}" if item_type else ""
    return f"{size} ({', '.join(filter(None, [each, 'distinct' if rule.distinct else '']))})"


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
            raise _unknown_key(str(arch), "model_defaults.", archs, path)
        if isinstance(fields, dict) and "arch" in fields:
            raise ConfigError(f"{path}: 'model_defaults.{arch}.arch' cannot be set: the section names the "
                              f"architecture; set 'arch' in a system's model")
        _build(ModelConfig, fields, f"model_defaults.{arch}.", path)
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
            raise ConfigError(f"{path}: system name {name!r} must be a plain name (letters, digits, '.', '_', '-', "
                              "starting with a letter or digit): it names the system's folder in models/")
        if entry is None:
            if name not in entries:
                raise ConfigError(f"{path}: 'systems.{name}: null' removes a system, but {name} is not one of the "
                                  f"default systems ({', '.join(PAPER_SYSTEMS)}); delete the line")
            del entries[name]
        elif not isinstance(entry, dict):
            raise ConfigError(f"{path}: 'systems.{name}' must be a mapping (input, model, augment, description) or "
                              f"null to remove it, got {entry!r}")
        else:
            entries[name] = _deep_merge(entries.get(name, {}), entry)
    systems = {}
    for name, entry in entries.items():
        model = entry.get("model")
        if isinstance(model, dict) or model is None:
            arch = (model or {}).get("arch", ModelConfig.arch)
            entry = {**entry, "model": {**model_defaults.get(arch, {}), **(model or {})}}
        systems[name] = _build(SystemConfig, entry, f"systems.{name}.", path)
    return systems


def _deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


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
        fail("augment.mask_groups_max", f"at most 'augment.mask_channel_groups' ({a.mask_channel_groups})",
             a.mask_groups_max)
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
    corpora = configured_corpora(cfg)
    if cfg.data.demo is None:  # the releases' speakers (a partial copy is checked against its manifest)
        problem = folds_problem(cfg, {c: RELEASE_SPEAKERS[c] for c in corpora}, " in the public release")
        if problem:
            raise ConfigError(problem)
    if n.loco_systems and len(corpora) < 2:
        fail("analysis.loco_systems", "null or [] with one corpus (leave-one-corpus-out trains on the others; this "
             f"profile reads only {', '.join(corpora) or 'no corpus'})", n.loco_systems)
    if n.primary_seed is not None and n.primary_seed not in cfg.train.seeds:
        fail("analysis.primary_seed", f"null or one of train.seeds ({', '.join(map(str, cfg.train.seeds))})",
             n.primary_seed)
    reserved = {"utt_id", "annotator", "label", "pred", "reviewed", "note", "annotated_utc"}
    bad_tags = [t for t in n.listening_tags if not re.fullmatch(r"[a-z][a-z0-9_]*", t) or t in reserved
                or t.endswith("_utc")]
    if bad_tags:
        fail("analysis.listening_tags", "snake_case tag names (a-z, 0-9, _) other than the annotation file's own "
             f"columns ({', '.join(sorted(reserved))})", bad_tags)
    for name, system in cfg.systems.items():
        _check_layers(name, system, n.layer_probe, fail)
    if not n.pitch_fmin < n.pitch_fmax < SAMPLE_RATE / 2:
        fail("analysis.pitch_fmax", f"above 'analysis.pitch_fmin' ({n.pitch_fmin:g}) and below "
             f"{SAMPLE_RATE / 2:g} Hz", n.pitch_fmax)
    shortest = math.ceil(2 * SAMPLE_RATE / n.pitch_fmin)
    if n.pitch_frame_length < shortest:
        fail("analysis.pitch_frame_length", f"at least {shortest} samples (two periods of pitch_fmin "
             f"{n.pitch_fmin:g} Hz at {SAMPLE_RATE} Hz)", n.pitch_frame_length)


def _check_layers(name: str, system: SystemConfig, probe: Any, fail) -> None:
    """A system's ``layers`` against its ``input`` (which layers exist is checked when the encoder is known)."""
    key, layers = f"systems.{name}.layers", system.layers
    if system.input == "logmel":
        if layers is not None:
            fail(key, "null for input: logmel (log-Mel has no layers)", layers)
    elif system.input == "wav2vec2":
        if layers == "all" or isinstance(layers, list):
            fail(key, "one layer for input: wav2vec2 (last, an index or best); input: wav2vec2_layers reads "
                 "several", layers)
        if layers == "best" and probe is None:
            fail(key, "a layer other than best unless analysis.layer_probe is set (best is the probe's choice)",
                 layers)
    elif layers is not None and layers != "all" and not isinstance(layers, list):
        fail(key, "all or a list of at least two layers for input: wav2vec2_layers", layers)


# --------------------------------------------------------------------------- for other files and for variants


def load_typed_yaml(path: str | Path, cls: type) -> Any:
    """A YAML file checked against the dataclass ``cls`` as a profile is (``serlib.sweep`` reads sweep files so):
    a key given twice, an unknown key (with the closest known one) or a wrong type is a ConfigError naming the
    file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"file not found: {path}")
    return _build(cls, read_yaml(path), "", path)


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
    out = _build(Config, tree, "", Path(origin))
    out.systems = {name: _build(SystemConfig, entry, f"systems.{name}.", Path(origin))
                   for name, entry in systems.items()}
    _resolve_paths(out, Path(relative_to))
    _check_values(out, Path(origin))
    return out


def _set_dotted(tree: dict, key: str, value: Any, origin: str) -> None:
    parts = key.split(".")
    if parts[0] == "model_defaults":
        raise ConfigError(f"{origin}: '{key}' cannot be overridden (model_defaults is applied when the base profile "
                          "is read); set 'systems.<name>.model.<field>' for each system instead")
    if not all(parts):
        raise ConfigError(f"{origin}: '{key}' is not a dotted key such as 'train.lr'")
    node = tree
    for depth, part in enumerate(parts[:-1]):
        if node.get(part) is None:
            node[part] = {}  # a new system, or a section that was null (data.demo); unknown names fail in _build
        if not isinstance(node[part], dict):
            raise ConfigError(f"{origin}: '{'.'.join(parts[:depth + 1])}' holds a value ({node[part]!r}), not a "
                              f"section, so '{key}' cannot be set; set '{'.'.join(parts[:depth + 1])}' itself")
        node = node[part]
    leaf = parts[-1]
    if isinstance(value, dict) and isinstance(node.get(leaf), dict):
        node[leaf] = _deep_merge(node[leaf], value)
    else:
        node[leaf] = copy.deepcopy(value)
