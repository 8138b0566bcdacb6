"""Which hidden layers of an SSL encoder a run reads and caches (issue 12).

A layer is named as the cache key names it: ``"last"`` (the encoder's final hidden layer, what the
paper reads) or an index ``0 <= k < N`` (0 = the transformer's input, k = after its k-th layer; N
= ``num_hidden_layers``). The index N is stored as ``"last"``: the same features, one cache folder.
Each layer has its own key folder (``serlib.features.cache``), so a run that asks for more layers
keeps the ones it has and an extraction computes only the clips a requested layer lacks, every
missing layer of a clip coming from the same encoder pass (``serlib.features.extract``).

A run caches the union of what its systems read (``systems.X.layers``; null: ``features.wav2vec2.layer``)
and what ``analysis.layer_probe`` probes. The paper's profile reads the last layer only, and
resolving it needs no encoder configuration; any other layer is checked against the encoder's
``num_hidden_layers`` (one line naming the key when it does not exist).

A run's layers are resolved once, into a ``LayerPlan`` (``plan_layers(cfg)``): the configured layer, the
layers its extraction caches, each system's layers and the probe's, each resolved when first asked for and
kept. Every key, load, open and pooled-statistics function of the cache takes an explicit
``FeatureKey(input, layer)`` (``LayerPlan.key``), so each signature says which layer it reads.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import NamedTuple, Optional, Union

from serlib.common.config import Config, ConfigError, Wav2Vec2Config
from serlib.common.facts import EMOTION_TO_CLASS, SAMPLE_RATE
from serlib.data.democorpus import plan_clips
from serlib.features.encoders import architecture

Layer = Union[str, int]  # "last" or an index below num_hidden_layers
SSL_INPUTS = ("wav2vec2", "wav2vec2_layers")  # the system inputs an SSL encoder's cache serves
PAPER_LAYERS = 13  # wav2vec2-base's hidden states: the transformer's input and its 12 layers
BEST = "best"  # a system's ``layers: best``: the per-layer probe's choice on the protocol's validation split


class FeatureKey(NamedTuple):
    """One folder of the feature cache: an input and, for wav2vec2, one encoder layer as the cache names it.

    Build wav2vec2 keys with ``LayerPlan.key`` (it stores index N as "last", as the cache does)."""

    input: str  # "wav2vec2" or "logmel"
    layer: Optional[Layer] = None  # wav2vec2: "last" or an index below N; log-Mel: None

    def __str__(self) -> str:
        return self.input if self.layer is None else f"{self.input} layer {self.layer}"


def layer_count(w: Wav2Vec2Config) -> int:
    """The encoder's ``num_hidden_layers`` (its layers are 0..N)."""
    return _count(json.dumps(dataclasses.asdict(w), sort_keys=True, default=str))


@functools.lru_cache(maxsize=16)
def _count(w_json: str) -> int:
    config, _ = architecture(Wav2Vec2Config(**json.loads(w_json)))
    return int(config.num_hidden_layers)


def layer_value(w: Wav2Vec2Config, layer: Layer, key: str = "layers") -> Layer:
    """``layer`` as the cache names it ("last" or an index below N); ConfigError naming ``key`` if it does not exist."""
    if layer == "last":
        return "last"
    count = layer_count(w)
    if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer <= count:
        raise ConfigError(
            f"'{key}' asks for layer {layer!r} but '{w.model_id}' has layers 0..{count} "
            f"({count} = last); pick from those"
        )
    return "last" if layer == count else layer


def layer_index(w: Wav2Vec2Config, layer: Layer) -> int:
    """The index of ``layer`` (``"last"`` is N)."""
    return layer_count(w) if layer == "last" else int(layer)


def expand(w: Wav2Vec2Config, spec, key: str) -> list[Layer]:
    """Cache names of the layers ``spec`` asks for (``all``, a list, one layer), lowest first, "last" at the end."""
    if spec == "all":
        values = list(range(layer_count(w))) + ["last"]
    elif isinstance(spec, list):
        values = [layer_value(w, layer, key) for layer in spec]
    else:
        values = [layer_value(w, spec, key)]
    return _ordered(values)


def label(w: Wav2Vec2Config, layer: Layer) -> str:
    """How tables and figures name a layer: "layer 4 (last)", "layer 2"."""
    return f"layer {layer_index(w, layer)}{' (last)' if layer == 'last' else ''}"


def _ordered(values) -> list[Layer]:
    """Layers lowest first, "last" at the end."""
    return sorted(set(values), key=lambda v: (v == "last", v if isinstance(v, int) else 0))


class LayerPlan:
    """A run's encoder layers, each resolved once (when first asked for) and kept.

    ``configured``: ``features.wav2vec2.layer`` as the cache names it; ``probe``: the layers
    ``analysis.layer_probe`` probes (empty when it is off); ``cached``: every layer the run's systems and probe
    read, the folders its extraction fills; ``system_layers(name)``: the layers one system reads.
    """

    def __init__(self, cfg: Config):
        self.encoder = cfg.features.wav2vec2
        self.source = cfg.source
        self._systems = dict(cfg.systems)
        self._probe_spec = cfg.analysis.layer_probe
        self._by_system: dict[str, Optional[list[Layer]]] = {}

    @functools.cached_property
    def configured(self) -> Layer:
        return layer_value(self.encoder, self.encoder.layer, "features.wav2vec2.layer")

    @functools.cached_property
    def probe(self) -> tuple[Layer, ...]:
        spec = self._probe_spec
        return () if spec is None else tuple(expand(self.encoder, spec, "analysis.layer_probe"))

    @functools.cached_property
    def cached(self) -> tuple[Layer, ...]:
        values: set = set(self.probe)
        for name, system in self._systems.items():
            if system.input in SSL_INPUTS and system.layers != BEST:
                values.update(self.system_layers(name))
        return tuple(_ordered(values or {self.configured}))

    def system_layers(self, name: str, best: Optional[Layer] = None) -> Optional[list[Layer]]:
        """The layers system ``name`` reads (None: log-Mel). ``layers: best`` needs ``best`` (the probe's choice)."""
        system, key = self._systems[name], f"systems.{name}.layers"
        if system.input not in SSL_INPUTS:
            return None
        if system.layers == BEST:
            if best is None:
                raise ValueError(
                    f"{key}: best is the per-layer probe's choice on validation; run the probe first "
                    "(serlib.modelling.probe.layer_probe)"
                )
            return [best]
        if name not in self._by_system:
            if system.layers is None:
                self._by_system[name] = (
                    [self.configured] if system.input == "wav2vec2" else expand(self.encoder, "all", key)
                )
            else:
                self._by_system[name] = expand(self.encoder, system.layers, key)
        return list(self._by_system[name])

    def uses_best(self, name: str) -> bool:
        """Whether system ``name`` reads the probe's choice (``layers: best``)."""
        return self._systems[name].layers == BEST

    def key(self, input: str, layer: Optional[Layer] = None) -> FeatureKey:
        """The cache folder of ``input`` at ``layer`` (wav2vec2; None: the configured layer; index N is "last")."""
        if input != "wav2vec2":
            return FeatureKey(input)
        if layer is None:
            return FeatureKey(input, self.configured)
        return FeatureKey(input, layer_value(self.encoder, layer))

    def keys(self, input: str) -> list[FeatureKey]:
        """The cache folders an extraction of ``input`` fills: one per cached layer for wav2vec2, one for log-Mel."""
        return [FeatureKey(input, layer) for layer in self.cached] if input == "wav2vec2" else [FeatureKey(input)]

    def input_keys(self, input: str, layers: Optional[list[Layer]]) -> list[FeatureKey]:
        """The folders a system of ``input`` reading ``layers`` (``system_layers``) loads."""
        cached = "logmel" if input == "logmel" else "wav2vec2"
        return [self.key(cached, layer) for layer in layers] if layers else [self.key(cached)]


def plan_layers(cfg: Config) -> LayerPlan:
    """The run's ``LayerPlan`` (nothing is resolved until asked: a log-Mel-only run never reads the encoder's
    configuration)."""
    return LayerPlan(cfg)


def probe_layers(cfg: Config) -> list[Layer]:
    """The layers ``analysis.layer_probe`` probes (none when it is off): ``plan_layers(cfg).probe``."""
    return list(plan_layers(cfg).probe)


def cached_layers(cfg: Config) -> list[Layer]:
    """Every layer the run's systems and probe read, lowest first: ``plan_layers(cfg).cached``."""
    return list(plan_layers(cfg).cached)


def paper_layer_cache_bytes() -> tuple[int, int, float]:
    """Bytes one wav2vec2-base layer's cache takes at the paper's scale, computed from the clip lengths of the
    paper-scale plan (``serlib.data.democorpus``: the real RAVDESS and EmoDB lengths, CREMA-D's drawn; the clips
    MCULP keeps) and the cache's layout: every clip's full frame sequence x 768 channels x 2 bytes (float16; the
    shard headers and indexes add under 0.1 %, as the demo's folders measure). Returns (bytes, clips, mean s)."""
    base, _ = architecture(Wav2Vec2Config())  # wav2vec2-base: its conv stack and width
    kept = [c for c in plan_clips(0, "paper") if c.emotion in EMOTION_TO_CLASS and c.frames / c.sample_rate >= 1.0]
    samples = [round(c.frames * SAMPLE_RATE / c.sample_rate) for c in kept]
    frames = 0
    for n in samples:
        for kernel, stride in zip(base.conv_kernel, base.conv_stride):
            n = max(0, (n - kernel) // stride + 1)
        frames += n
    return frames * base.hidden_size * 2, len(kept), sum(samples) / SAMPLE_RATE / len(kept)
