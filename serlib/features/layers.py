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
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Optional, Union

from serlib.common.config import Config, ConfigError, SystemConfig, Wav2Vec2Config
from serlib.common.facts import EMOTION_TO_CLASS, SAMPLE_RATE
from serlib.data.democorpus import plan_clips
from serlib.features.encoders import architecture

Layer = Union[str, int]  # "last" or an index below num_hidden_layers
SSL_INPUTS = ("wav2vec2", "wav2vec2_layers")  # the system inputs an SSL encoder's cache serves
PAPER_LAYERS = 13  # wav2vec2-base's hidden states: the transformer's input and its 12 layers


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
        raise ConfigError(f"'{key}' asks for layer {layer!r} but '{w.model_id}' has layers 0..{count} "
                          f"({count} = last); pick from those")
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
    return sorted(set(values), key=lambda v: (v == "last", v if isinstance(v, int) else 0))


def label(w: Wav2Vec2Config, layer: Layer) -> str:
    """How tables and figures name a layer: "layer 4 (last)", "layer 2"."""
    return f"layer {layer_index(w, layer)}{' (last)' if layer == 'last' else ''}"


def at_layer(cfg: Config, layer: Layer) -> Config:
    """``cfg`` reading ``layer`` (a copy; its cache key is that layer's folder)."""
    w = dataclasses.replace(cfg.features.wav2vec2, layer=layer)
    return dataclasses.replace(cfg, features=dataclasses.replace(cfg.features, wav2vec2=w))


def probe_layers(cfg: Config) -> list[Layer]:
    """The layers ``analysis.layer_probe`` probes (none when it is off)."""
    spec = cfg.analysis.layer_probe
    return [] if spec is None else expand(cfg.features.wav2vec2, spec, "analysis.layer_probe")


def system_layers(cfg: Config, name: str, best: Optional[Layer] = None) -> Optional[list[Layer]]:
    """The layers system ``name`` reads (None: log-Mel). ``layers: best`` needs ``best`` (the probe's choice)."""
    system: SystemConfig = cfg.systems[name]
    w, key = cfg.features.wav2vec2, f"systems.{name}.layers"
    if system.input not in SSL_INPUTS:
        return None
    if system.layers is None:
        return [layer_value(w, w.layer, "features.wav2vec2.layer")] if system.input == "wav2vec2" else expand(
            w, "all", key)
    if system.layers == "best":
        if best is None:
            raise ValueError(f"{key}: best is the per-layer probe's choice on validation; run the probe first "
                             "(serlib.modelling.probe.layer_probe)")
        return [best]
    return expand(w, system.layers, key)


def cached_layers(cfg: Config) -> list[Layer]:
    """Every layer the run's systems and probe read: the cache folders its extraction fills, lowest first."""
    values: set = set(probe_layers(cfg))
    for name, system in cfg.systems.items():
        if system.input in SSL_INPUTS and system.layers != "best":
            values.update(system_layers(cfg, name))
    if not values:
        values.add(layer_value(cfg.features.wav2vec2, cfg.features.wav2vec2.layer, "features.wav2vec2.layer"))
    return sorted(values, key=lambda v: (v == "last", v if isinstance(v, int) else 0))


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
