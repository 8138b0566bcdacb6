"""The sections of a parameters file: one dataclass per stage, every field with a default and a one-line comment.

A field's type hint holds its allowed values (``Literal`` choices, ``Bound`` ranges, ``Items`` list rules:
``serlib.common.typedyaml``), so a run stops when the YAML is read, not minutes later. The paper's systems
S1-S5 and A1-A3 are the default ``systems`` (``PAPER_SYSTEMS``). Reading, merging and checking a profile is
``serlib.common.config``'s (which also names these classes: import them from there).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Annotated, Literal, Optional, Union

from serlib.common.typedyaml import Bound, Items, Match

PosInt = Annotated[int, Bound(">=", 1)]
NonNegInt = Annotated[int, Bound(">=", 0)]
SEED_MAX = 2**32 - 1  # NumPy's seeds are 32-bit: a larger one fails only when the run reaches it
Seed = Annotated[int, Bound(">=", 0), Bound("<=", SEED_MAX)]  # every seed (NumPy refuses negative ones)
MAX_FRAMES = 30_000  # the longest window: 10 minutes at 20 ms (the paper: 400); more only allocates and fails later
MAX_BATCH = 65_536  # the largest batch of any stage
MAX_EPOCHS = 100_000
# The paper's proposed network (Table 5's last step, Table 6's Full): the default of the settings that name one
# system. A profile without it names its own (analysis.primary_system, train.select.system; checked at load).
PROPOSED_SYSTEM = "S5"
Batch = Annotated[int, Bound(">=", 1), Bound("<=", MAX_BATCH)]
# A run's folder name: a plain name, never a path (reports/<name>/ must stay inside reports/).
RunName = Annotated[
    str,
    Match(
        r"[A-Za-z0-9._-]{1,100}",
        "a plain name (letters, digits, '.', '_', '-'; no separator, not '.' or '..'; at most 100 characters)",
        (".", ".."),
    ),
]
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
    notebooks: list[str] = field(
        default_factory=lambda: ["01_data", "02_features", "03_train", "04_ablation", "05_confusion", "06_listening"]
    )  # ordered notebooks the runner executes (those present in notebooks/)


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
        default_factory=lambda: [0.8, 0.1, 0.1]
    )  # train/val/test speaker fractions (paper 4.1: within each corpus)
    split_seed: Seed = 0  # seed of the speaker split
    split_file: Optional[str] = None  # speaker -> subset file to reuse a published split exactly
    folds: Optional[Annotated[int, Bound(">=", 2)]] = None  # speaker k-fold cross-validation instead of the split
    # (null = the paper's single split); at most the
    # speakers of the smallest corpus
    silence_floor_dbfs: Annotated[float, Bound("<=", 0.0)] = -60.0  # CHOSEN: a clip whose mono RMS is below this
    # (dB re full scale) is near-silent
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
    system: str = PROPOSED_SYSTEM  # with scope shared: the system the one grid is searched on (a key of 'systems')
    lrs: Annotated[list[PosFloat], Items(1)] = field(
        default_factory=lambda: [3e-4, 1e-3, 3e-3]
    )  # CHOSEN learning-rate grid
    weight_decays: Annotated[list[NonNegFloat], Items(1)] = field(
        default_factory=lambda: [1e-4, 1e-2]
    )  # CHOSEN weight-decay grid
    max_epochs: Annotated[int, Bound(">=", 1), Bound("<=", MAX_EPOCHS)] = 20  # CHOSEN: epochs per grid point (early
    # stopping as in training)
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
        default_factory=lambda: [0, 1, 2]
    )  # each system trained once per seed
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
    "S1": {
        "input": "logmel",
        "model": {"arch": "shallow"},
        "augment": False,
        "description": "3-Conv CNN (baseline), log-Mel",
    },
    "S2": {"input": "wav2vec2", "model": {"arch": "shallow"}, "augment": False, "description": "3-Conv CNN, wav2vec2"},
    "S3": {
        "input": "wav2vec2",
        "model": {"arch": "resattn", "se": False},
        "augment": True,
        "description": "ResAttn1D-CNN (-SE)",
    },
    "S4": {
        "input": "wav2vec2",
        "model": {"arch": "resattn", "se": True},
        "augment": False,
        "description": "ResAttn1D-CNN (-Tri-Aug)",
    },
    "S5": {
        "input": "wav2vec2",
        "model": {"arch": "resattn", "se": True},
        "augment": True,
        "description": "ResAttn1D-CNN (proposed)",
    },
    "A1": {"input": "wav2vec2", "model": {"arch": "resattn", "se": True}, "augment": False, "description": "-Aug"},
    "A2": {"input": "wav2vec2", "model": {"arch": "resattn", "se": False}, "augment": True, "description": "-SE"},
    "A3": {
        "input": "wav2vec2",
        "model": {"arch": "resattn", "se": True, "blocks": [0, 2, 4]},
        "augment": True,
        "description": "-Depth (blocks 1, 3, 5)",
    },
}


def _paper_systems() -> dict[str, SystemConfig]:
    return {
        name: SystemConfig(**{**entry, "model": ModelConfig(**copy.deepcopy(entry["model"]))})
        for name, entry in PAPER_SYSTEMS.items()
    }


@dataclass
class AnalysisConfig:
    primary_system: str = PROPOSED_SYSTEM  # system analysed in 05_confusion/06_listening (paper 5.4: the proposed S5)
    primary_seed: Optional[Seed] = None  # its seed (one of train.seeds); null = the first of train.seeds
    listening_clips: PosInt = 50  # paper 5.4: 50 misclassified test clips
    listening_seed: Seed = 0  # CHOSEN: seed of the reproducible draw of listening clips
    pitch_fmin: PosFloat = 65.0  # CHOSEN: pyin lowest pitch (Hz), covers male speech
    pitch_fmax: PosFloat = 500.0  # CHOSEN: pyin highest pitch (Hz, below 8 kHz), covers raised female speech
    pitch_frame_length: PosInt = 1024  # CHOSEN: pyin window in samples at 16 kHz (64 ms; >= 2 periods of fmin)
    pitch_hop_ms: PosFloat = 20.0  # CHOSEN: pyin and RMS hop (the wav2vec2 stride)
    loco_systems: Optional[list[str]] = None  # leave-one-corpus-out (train on two corpora, test on the third):
    # null = S1, S2 and the analysed system, those the profile has; [] = off
    sentence_systems: Optional[list[str]] = None  # trained once more (first seed) with sentences held out as well
    # as speakers (protocol unseen-sentences): null = the analysed system; [] = off
    bootstrap_resamples: Annotated[int, Bound(">=", 1), Bound("<=", 1_000_000)] = 1000  # CHOSEN: speaker-bootstrap
    # resamples behind every interval
    bootstrap_seed: Seed = 0  # seed of the bootstrap draws
    alpha: Annotated[float, Bound(">", 0), Bound("<=", 0.5)] = 0.05  # family-wise level of the paired tests (Holm);
    # above 0.5 a "significant" verdict would be likelier wrong than right
    listening_tags: Annotated[list[str], Items(1, distinct=True)] = field(
        default_factory=lambda: ["hybrid_prosody", "ambiguous_arousal", "label_doubtful", "other"]
    )  # the station's failure-mode tags
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
