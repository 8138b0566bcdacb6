"""Frozen encoders: the wav2vec2 and log-Mel encoders, frame fitting.

Both encoders map a batch of 16 kHz waveforms ``(batch, samples)``, zero-padded at the end, and
their true sample counts ``lengths`` to frames ``(batch, channels, frames)`` at the same 20 ms
stride, so frame ``t`` of either covers the same 400 samples (25 ms) of audio and 400 frames are
8 s (paper 2.3). Clip ``i``'s first ``encoder.frames_for(lengths[i])`` frames equal what the clip
gives alone (``mixes_lengths``; tests/test_features.py checks it): padding never reaches a
statistic. ``serlib.features.extract`` caches what they compute; nothing here touches the disk
except the weights (audio comes in through ``serlib.common.audio.load_audio``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
import torchaudio
from torch import nn

from serlib.common.config import Config, ConfigError, FeaturesConfig, LogMelConfig, Wav2Vec2Config
from serlib.common.runtime import resolve_device

BASE_MODEL_ID = "facebook/wav2vec2-base"  # transformers' Wav2Vec2Config() is exactly this architecture
RANDOM_WEIGHTS_SEED = 0  # fixed: random weights are the same on every machine and every run
INPUTS = ("wav2vec2", "logmel")  # the feature inputs a system can read


class WeightsUnavailableError(FileNotFoundError):
    """Pretrained encoder weights (or the architecture's config) cannot be found offline."""


# --------------------------------------------------------------------------- frames


def fit_frames(frames_tc: torch.Tensor, frames: int) -> tuple[torch.Tensor, int]:
    """Centre-trim or zero-pad (at the end) one clip's frames to ``frames``.

    Args:
        frames_tc: shape ``(time, channels)``.
        frames: the fixed length (paper: 400).

    Returns:
        ``(channels, frames)`` and the true frame count kept (``<= frames``); padding is at the
        end, so ``arange(frames) < length`` masks it.
    """
    start, kept = trim_span(frames_tc.shape[0], frames)
    out = frames_tc.new_zeros((frames, frames_tc.shape[1]))
    out[:kept] = frames_tc[start : start + kept]
    return out.T, kept


def trim_span(time: int, frames: int) -> tuple[int, int]:
    """``(start, kept)``: the centred ``frames``-long span of ``time`` frames (all of them if shorter)."""
    return (max(0, (time - frames) // 2), min(time, frames))


# --------------------------------------------------------------------------- log-Mel


class LogMelEncoder(nn.Module):
    """64-band log-Mel at a 25 ms window and 20 ms hop (paper 3.1), frames aligned with wav2vec2.

    ``center=False``: frame ``t`` covers samples ``[320 t, 320 t + 400)``, the same span as
    wav2vec2-base's frame ``t``, so both give ``floor((samples - 400) / 320) + 1`` frames.
    """

    name = "logmel"

    def __init__(self, cfg: LogMelConfig, sample_rate: int = 16000):
        super().__init__()
        self.win = round(cfg.win_ms * sample_rate / 1000)
        self.hop = round(cfg.hop_ms * sample_rate / 1000)
        self.floor = cfg.log_floor
        self.standardise = cfg.standardise
        self.channels = cfg.n_mels
        self.min_samples = self.win
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=self.win,
            win_length=self.win,
            hop_length=self.hop,
            n_mels=cfg.n_mels,
            center=False,
            power=2.0,
        )

    def frames_for(self, samples: int) -> int:
        return max(0, (samples - self.win) // self.hop + 1)

    mixes_lengths = True  # frames are per-window; the standardisation is masked to each clip's frames

    @torch.inference_mode()
    def forward(self, wave: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(batch, samples)`` (+ true ``lengths``) -> ``(batch, n_mels, frames)`` float32."""
        logmel = torch.log(self.mel(wave.float()) + self.floor)  # (batch, n_mels, frames)
        if not self.standardise:
            return logmel
        if lengths is None or bool((lengths == wave.shape[1]).all()):
            mean = logmel.mean(dim=(1, 2), keepdim=True)
            std = logmel.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
            return (logmel - mean) / std
        frames = torch.div(lengths - self.win, self.hop, rounding_mode="floor") + 1  # (batch,)
        mask = (torch.arange(logmel.shape[2], device=logmel.device) < frames[:, None])[:, None, :]  # (b, 1, t)
        count = (frames * logmel.shape[1]).view(-1, 1, 1).to(logmel.dtype)
        mean = (logmel * mask).sum(dim=(1, 2), keepdim=True) / count
        var = (((logmel - mean) * mask) ** 2).sum(dim=(1, 2), keepdim=True) / (count - 1).clamp_min(1)
        return (logmel - mean) / var.sqrt().clamp_min(1e-5) * mask


# --------------------------------------------------------------------------- wav2vec2


def _hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _fetch(loader, model_id: str, revision: str, **kwargs):
    """``loader.from_pretrained``: the local cache or folder first, the hub only if that fails.

    Trying the cache first keeps offline runs fast (a blocked hub costs ~30 s of retries).
    """
    try:
        return loader.from_pretrained(model_id, revision=revision, local_files_only=True, **kwargs)
    except (OSError, ValueError) as err:
        if _hf_offline() or Path(model_id).is_dir():
            raise
        first = err
    try:
        return loader.from_pretrained(model_id, revision=revision, **kwargs)
    except (OSError, ValueError) as err:
        raise err from first


def _check_overrides(config, overrides: dict) -> None:
    unknown = sorted(k for k in overrides if not hasattr(config, k))
    if unknown:
        raise ConfigError(
            f"features.wav2vec2.config_overrides: unknown key(s) {', '.join(unknown)} for "
            f"{type(config).__name__} (see transformers' docs for its fields)"
        )


def architecture(w: Wav2Vec2Config) -> tuple[object, str]:
    """The encoder's transformers config (overrides applied) and where it came from.

    Offline, ``facebook/wav2vec2-base`` falls back to ``transformers.Wav2Vec2Config()``, whose
    defaults are that architecture (12 layers, 768 wide, 7 conv layers of 512, group norm).
    """
    # transformers takes ~2 s to import: loaded only where an SSL encoder is built or described
    from transformers import AutoConfig
    from transformers import Wav2Vec2Config as HFWav2Vec2Config

    try:
        config = AutoConfig.from_pretrained(w.model_id, revision=w.revision, local_files_only=True)
        source = "local folder" if Path(w.model_id).is_dir() else "Hugging Face cache"
    except (OSError, ValueError) as err:
        if w.model_id != BASE_MODEL_ID:
            if _hf_offline() or Path(w.model_id).is_dir():
                raise _unavailable(w, err) from err
            try:
                config = AutoConfig.from_pretrained(w.model_id, revision=w.revision)
            except (OSError, ValueError) as err2:
                raise _unavailable(w, err2) from err2
            source = "Hugging Face hub"
        else:
            config, source = HFWav2Vec2Config(), "transformers' Wav2Vec2Config defaults (= wav2vec2-base)"
    _check_overrides(config, w.config_overrides)
    for key, value in w.config_overrides.items():
        setattr(config, key, tuple(value) if isinstance(value, list) else value)
    return config, source


def weights_problem(features: FeaturesConfig) -> Optional[str]:
    """Why the configured pretrained encoder cannot be loaded here, found before any run starts (None: no
    problem seen). Random weights need nothing; a local folder must hold config.json; a hub id must be in
    the local Hugging Face cache when the hub is off (HF_HUB_OFFLINE), else it will be downloaded."""
    w = features.wav2vec2
    if w.weights == "random":
        return None
    if Path(w.model_id).is_absolute() or w.model_id.startswith((".", "~")):
        if not (Path(w.model_id).expanduser() / "config.json").is_file():
            return (
                f"features.wav2vec2.model_id = {w.model_id} holds no config.json: point it at a folder that "
                "save_pretrained wrote (config.json and the weights)"
            )
        return None
    from huggingface_hub import try_to_load_from_cache  # transformers' hub client: only pretrained runs need it

    cached = try_to_load_from_cache(w.model_id, "config.json", revision=w.revision)
    if isinstance(cached, str) or not _hf_offline():
        return None
    return str(_unavailable(w, FileNotFoundError(f"{w.model_id}/config.json not in the cache")))


def _unavailable(w: Wav2Vec2Config, cause: Exception) -> WeightsUnavailableError:
    home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    hub = os.environ.get("HF_HUB_CACHE", f"{home}/hub")
    return WeightsUnavailableError(
        f"encoder '{w.model_id}' (revision '{w.revision}', weights: {w.weights}) is not available here: "
        f"it is not in the Hugging Face cache ({hub}) and the hub cannot be reached"
        f"{' (HF_HUB_OFFLINE is set)' if _hf_offline() else ''}. Provide it one of these ways: "
        f"(1) run once on a connected machine, which stores it in the cache, and copy that cache here; "
        f"(2) point HF_HOME or HF_HUB_CACHE at a cache that holds '{w.model_id}'; "
        f"(3) set features.wav2vec2.model_id to a local folder holding config.json and the weights "
        f"(what save_pretrained writes). For an offline demo, features.wav2vec2.weights: random builds "
        f"the same architecture with seeded random weights. Cause: {type(cause).__name__}: {cause}"
    )


def _normalizes(w: Wav2Vec2Config) -> bool:
    """Whether the encoder's feature-extractor config asks for zero-mean unit-variance input."""
    from transformers import AutoFeatureExtractor, Wav2Vec2FeatureExtractor  # ~2 s import: SSL encoders only

    try:
        extractor = AutoFeatureExtractor.from_pretrained(w.model_id, revision=w.revision, local_files_only=True)
    except (OSError, ValueError):
        extractor = Wav2Vec2FeatureExtractor()  # wav2vec2-base's preprocessor: do_normalize=True
    return bool(getattr(extractor, "do_normalize", False))


def _build_model(w: Wav2Vec2Config) -> nn.Module:
    from transformers import AutoModel  # ~2 s import: SSL encoders only

    if w.weights == "random":
        config, _ = architecture(w)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            return AutoModel.from_config(config)
    try:
        return _fetch(AutoModel, w.model_id, w.revision, **w.config_overrides)
    except (OSError, ValueError) as err:
        raise _unavailable(w, err) from err


class LengthAwareGroupNorm(nn.GroupNorm):
    """wav2vec2-base's first-conv norm (one group per channel) with statistics over a clip's own frames.

    Set ``valid`` (``(batch,)`` true frame counts) before a padded forward pass: each clip's
    mean and variance then span its first ``valid[i]`` frames only, as if it ran alone. With
    ``valid`` None it is ``nn.GroupNorm``. The state-dict keys and values are the original's.
    """

    valid: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.valid is None:
            return super().forward(x)
        out = None  # one preallocated output; each clip's normalised frames are written into it as computed
        for i, frames in enumerate(self.valid.tolist()):
            clip = super().forward(x[i : i + 1, :, :frames])  # the very op each runs alone
            if out is None:  # fp32 under autocast, as GroupNorm's own output; padded frames stay 0
                out = x.new_zeros(x.shape, dtype=clip.dtype)
            out[i, :, :frames] = clip[0]
            del clip
        return out


def _length_aware(model: nn.Module) -> Optional[LengthAwareGroupNorm]:
    """Make ``model``'s feature encoder exact under padding; the norm to feed lengths, or None if unsupported.

    Only the first conv layer's group norm mixes time steps in the conv feature encoder; its
    later convs have no padding and no norm (or a per-frame layer norm), so a valid output frame
    sees valid samples only. The transformer then takes the attention mask (padded frames are
    zeroed before the positional conv and masked out of attention).
    """
    layers = getattr(getattr(model, "feature_extractor", None), "conv_layers", None)
    if layers is None or not hasattr(model.config, "feat_extract_norm"):
        return None
    if model.config.feat_extract_norm == "layer":
        return None  # per-frame LayerNorm everywhere: padding is already exact
    norm = getattr(layers[0], "layer_norm", None)
    if not isinstance(norm, nn.GroupNorm) or norm.num_groups != norm.num_channels or not norm.affine:
        return None
    aware = LengthAwareGroupNorm(norm.num_groups, norm.num_channels, norm.eps, affine=True)
    aware.load_state_dict(norm.state_dict())
    layers[0].layer_norm = aware.to(norm.weight.device)
    return aware


class Wav2Vec2Encoder(nn.Module):
    """A frozen transformers speech encoder (wav2vec2, HuBERT, WavLM) returning one hidden layer, or
    several from one pass (``layers``; ``forward_layers``): ``hidden_states[k]``, k = 0 the transformer's input.

    The waveform is normalised per clip (over its true samples) as the model's feature-extractor
    config says. ``batching: masked`` lets clips of different lengths share a forward pass: the
    first conv's group norm counts each clip's own frames (``LengthAwareGroupNorm``) and the
    transformer gets the attention mask, so every clip's frames equal its one-clip-alone frames
    to float rounding. ``batching: equal`` (or an encoder this cannot make exact) keeps the old
    rule: only clips of equal sample count share a pass.
    """

    name = "wav2vec2"

    def __init__(self, w: Wav2Vec2Config, device: torch.device = torch.device("cpu"), layers: Optional[list] = None):
        super().__init__()
        self.model = _build_model(w).eval().requires_grad_(False)
        config = self.model.config
        count = config.num_hidden_layers
        wanted = [w.layer] if layers is None else list(layers)  # "last" or indices (serlib.features.layers)
        self.layers = [count if layer == "last" else int(layer) for layer in wanted]
        bad = [layer for layer in self.layers if not 0 <= layer <= count]
        if bad or not self.layers:
            raise ConfigError(
                f"features.wav2vec2.layer = {bad[0] if bad else wanted} but '{w.model_id}' has layers 0..{count}"
            )
        self.layer = self.layers[0]
        top = max(self.layers)
        if top < count and not config.do_stable_layer_norm:
            # Layers after the deepest requested one never reach the outputs: drop them to save compute.
            self.model.encoder.layers = self.model.encoder.layers[:top]
            count = top
        self.use_last = self.layers == [count]  # last_hidden_state is hidden_states[count]: no other state kept
        self.normalize = _normalizes(w)
        self.channels = config.hidden_size
        self.kernels, self.strides = list(config.conv_kernel), list(config.conv_stride)
        self.min_samples = self._receptive_field()
        self.autocast = w.mixed_precision and device.type == "cuda"
        self.norm = _length_aware(self.model) if w.batching == "masked" else None
        self.mixes_lengths = w.batching == "masked" and (
            self.norm is not None or getattr(config, "feat_extract_norm", None) == "layer"
        )
        self.to(device)

    def _receptive_field(self) -> int:
        span = 1
        for kernel, stride in zip(reversed(self.kernels), reversed(self.strides)):
            span = (span - 1) * stride + kernel
        return span

    def frames_for(self, samples: int) -> int:
        for kernel, stride in zip(self.kernels, self.strides):
            samples = max(0, (samples - kernel) // stride + 1)
        return samples

    def forward(self, wave: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(batch, samples)`` waveforms, zero-padded at the end to the longest of their ``lengths``
        (None: all full) -> ``(batch, hidden, frames)`` float32 of the first requested layer; clip ``i``
        owns ``frames_for(lengths[i])``."""
        return self.forward_layers(wave, lengths)[0]

    @torch.inference_mode()
    def forward_layers(self, wave: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> list[torch.Tensor]:
        """``forward`` for every requested layer (``self.layers``) from one pass.

        Returns a list of ``(batch, hidden, frames)``."""
        return self.hidden_layers(wave, lengths)

    def hidden_layers(self, wave: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> list[torch.Tensor]:
        """``forward_layers`` outside inference mode (what ONNX export traces: ``serlib.inference.audiograph``)."""
        wave = wave.float()
        if lengths is None or bool((lengths == wave.shape[1]).all()):
            mask = None
            if self.normalize:  # as Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
                wave = (wave - wave.mean(-1, keepdim=True)) / torch.sqrt(
                    wave.var(-1, keepdim=True, unbiased=False) + 1e-7
                )
        else:
            if not self.mixes_lengths:
                raise ValueError(
                    "this encoder runs equal-length batches only (features.wav2vec2.batching: equal, "
                    "or an architecture whose padding serlib cannot make exact)"
                )
            mask = torch.arange(wave.shape[1], device=wave.device) < lengths[:, None]  # (batch, samples)
            if self.normalize:  # the same statistics over each clip's own samples; padding stays 0
                count = lengths[:, None].to(wave.dtype)
                mean = (wave * mask).sum(-1, keepdim=True) / count
                var = (((wave - mean) * mask) ** 2).sum(-1, keepdim=True) / count
                wave = (wave - mean) / torch.sqrt(var + 1e-7)
            wave = wave * mask
        if self.norm is not None and mask is not None:
            first = self.kernels[0], self.strides[0]
            self.norm.valid = torch.div(lengths - first[0], first[1], rounding_mode="floor") + 1
        try:
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.autocast):
                out = self.model(
                    wave, attention_mask=None if mask is None else mask.long(), output_hidden_states=not self.use_last
                )
        finally:
            if self.norm is not None:
                self.norm.valid = None
        hidden = [out.last_hidden_state] if self.use_last else [out.hidden_states[k] for k in self.layers]
        return [h.float().transpose(1, 2) for h in hidden]  # (batch, frames, hidden) -> (batch, hidden, frames)


# --------------------------------------------------------------------------- building and naming


def build_encoder(
    features: FeaturesConfig, input: str, device: Optional[torch.device] = None, layers: Optional[list] = None
) -> nn.Module:
    """The encoder for ``input`` ("wav2vec2" or "logmel") on ``device`` (default: features.device);
    ``layers``: the wav2vec2 layers it returns (``forward_layers``; default ``features.wav2vec2.layer``)."""
    device = device or resolve_device(features.device)
    if input == "wav2vec2":
        return Wav2Vec2Encoder(features.wav2vec2, device, layers)
    if input == "logmel":
        return LogMelEncoder(features.logmel, features.sample_rate).to(device)
    raise ConfigError(f"unknown feature input {input!r}; expected one of {', '.join(INPUTS)}")


def encoder_description(cfg: Config | FeaturesConfig, input: str = "wav2vec2", layer=None) -> str:
    """One line saying exactly what computed the features, weights first (for tables and titles).

    Args:
        cfg: the run configuration (or its ``features`` section).
        input: "wav2vec2" or "logmel".
        layer: the wav2vec2 layer described ("last" or an index; None: ``features.wav2vec2.layer``).
    """
    features = cfg.features if isinstance(cfg, Config) else cfg
    if input == "logmel":
        m = features.logmel
        return (
            f"log-Mel: {m.n_mels} bands, {m.win_ms:g} ms window, {m.hop_ms:g} ms hop, "
            f"log(power + {m.log_floor:g}){', standardised per utterance' if m.standardise else ''}, "
            f"torchaudio, {features.sample_rate} Hz"
        )
    w = features.wav2vec2
    layer = w.layer if layer is None else layer
    text = f"{w.model_id} @ {w.revision}, {'last layer' if layer == 'last' else f'hidden layer {layer}'}, "
    if w.weights == "pretrained":
        return text + "PRETRAINED weights" + (f", overrides {w.config_overrides}" if w.config_overrides else "")
    try:
        _, source = architecture(w)
    except (OSError, ConfigError) as err:
        source = f"config not resolvable: {err.__class__.__name__}"
    text += f"RANDOM weights (seed {RANDOM_WEIGHTS_SEED}; NOT pretrained; architecture from {source}"
    return text + (f"; overrides {w.config_overrides})" if w.config_overrides else ")")
