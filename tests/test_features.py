"""Tests of serlib.encoders and serlib.features: audio in, encoders, frames, the cache, the notebook."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from serlib.common.audio import load_audio, resampled_length
from serlib.common.config import Config, FeaturesConfig, load_config
from serlib.common.runfolder import RunFolder
from serlib.features import cache, encoders, extract, keys, shards
from serlib.features.encoders import LogMelEncoder, Wav2Vec2Encoder, WeightsUnavailableError, fit_frames
from serlib.features.layers import FeatureKey, plan_layers
from serlib.features.load import FeaturesMissingError, load_features

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "parameters" / "smoke.yaml"
CLASSES = ("negative", "sad_fear", "pos_neutral")


# --------------------------------------------------------------------------- helpers


def tone(seconds: float, rate: int = 16000, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A tone plus a little noise, float32 ``(samples,)``."""
    t = np.arange(int(round(seconds * rate))) / rate
    noise = np.random.default_rng(seed).normal(0, 0.02, t.shape)
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def smoke_cfg(tmp_path: Path, **features_overrides):
    """The smoke profile with its cache in the test's run folder, reading the encoder's last layer only
    (without its layer probe and layer systems: tests/test_encoder_layers.py asks for more layers itself)."""
    cfg = load_config(SMOKE)
    cfg.features.cache_dir = None
    cfg.features.device = "cpu"
    cfg.analysis.layer_probe = None
    cfg.systems = {name: s for name, s in cfg.systems.items() if s.layers is None and s.input != "wav2vec2_layers"}
    for key, value in features_overrides.items():
        setattr(cfg.features, key, value)
    return cfg


def write_manifest(folder: RunFolder, clips: dict[str, np.ndarray], rate: int = 16000) -> pd.DataFrame:
    """Write one wav per clip and ``data/manifest.csv`` with the contract's columns."""
    rows = []
    for i, (stem, wave) in enumerate(clips.items()):
        path = folder.root / "audio" / f"{stem}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        if wave is not None:
            sf.write(path, wave, rate)
        rows.append(
            {
                "utt_id": f"EmoDB/{stem}",
                "path": str(path),
                "corpus": "EmoDB",
                "speaker": f"EmoDB:{i % 3}",
                "sex": "female",
                "emotion_code": "W",
                "emotion": "anger",
                "sentence": "a01",
                "duration_s": 0.0 if wave is None else len(wave) / rate,
                "sample_rate": rate,
                "channels": 1,
                "label": CLASSES[i % 3],
                "split": ("train", "val", "test")[i % 3],
            }
        )
    manifest = pd.DataFrame(rows)
    folder.data.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(folder.manifest, index=False)
    return manifest


def feature(cfg: Config, input: str) -> FeatureKey:
    """The cache folder of ``input`` at the configured layer."""
    return plan_layers(cfg).key(input)


def load(cfg: Config, run: RunFolder, manifest: pd.DataFrame, input: str, **kwargs):
    """``load_features`` of ``input`` at the configured layer."""
    return load_features(cfg, run, manifest, feature(cfg, input), **kwargs)


@pytest.fixture
def run(tmp_path) -> RunFolder:
    return RunFolder(tmp_path / "run").ensure()


@pytest.fixture(scope="module")
def tiny_w2v():
    """The smoke profile's tiny wav2vec2 (random weights)."""
    return Wav2Vec2Encoder(load_config(SMOKE).features.wav2vec2)


# --------------------------------------------------------------------------- audio in


def test_load_audio_resamples_48k_to_16k(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(1.0, 48000, freq=440.0), 48000)
    wave = load_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.shape == (16000,)
    assert resampled_length(48000, 48000, 16000) == 16000
    peak_hz = np.argmax(np.abs(np.fft.rfft(wave))) * 16000 / len(wave)
    assert abs(peak_hz - 440.0) < 2.0


def test_load_audio_downmixes_stereo(tmp_path):
    left, right = tone(0.5, freq=300.0), tone(0.5, freq=500.0, seed=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize("rate,samples", [(44100, 44100), (22050, 12345), (48000, 150000), (8000, 8001)])
def test_resampled_length_matches_torchaudio(tmp_path, rate, samples):
    path = tmp_path / "x.wav"
    sf.write(path, np.zeros(samples, np.float32), rate)
    assert len(load_audio(path)) == resampled_length(samples, rate, 16000)


def test_load_audio_rejects_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(ValueError, match="no audio samples"):
        load_audio(path)


# --------------------------------------------------------------------------- frames


@pytest.mark.parametrize("time,frames,kept,first", [(10, 6, 6, 2), (11, 6, 6, 2), (4, 6, 4, 0), (6, 6, 6, 0)])
def test_fit_frames_centre_trims_and_pads_at_the_end(time, frames, kept, first):
    clip = torch.arange(time, dtype=torch.float32)[:, None].repeat(1, 3)  # (time, channels): value = index
    out, length = fit_frames(clip, frames)
    assert out.shape == (3, frames) and length == kept
    assert out[0, :kept].tolist() == list(range(first, first + kept))
    assert out[:, kept:].abs().sum() == 0


def test_logmel_frames_align_with_wav2vec2(tiny_w2v):
    logmel = LogMelEncoder(load_config(SMOKE).features.logmel)
    for samples in (400, 719, 720, 16000, 40123, 128080):
        assert logmel.frames_for(samples) == tiny_w2v.frames_for(samples)
    assert tiny_w2v.frames_for(128080) == 400  # 400 frames = 8 s (+ one 25 ms window)
    x = torch.from_numpy(tone(1.0))[None]
    assert logmel(x).shape == (1, 64, logmel.frames_for(16000))


def test_shapes_768_and_64_by_400(run, tmp_path):
    """Paper shapes: a base-width (768) wav2vec2 and 64-band log-Mel, trimmed / padded to 400 frames."""
    cfg = smoke_cfg(tmp_path, frames=400)
    cfg.features.wav2vec2.config_overrides = {"num_hidden_layers": 1, "conv_dim": [32] * 7}  # base width, cheap
    manifest = write_manifest(run, {"long": tone(9.0), "short": tone(1.5, seed=1)})
    for input, channels in (("wav2vec2", 768), ("logmel", 64)):
        extract.extract(cfg, run, manifest, input)
        fs = load(cfg, run, manifest, input)
        assert fs.x.shape == (2, channels, 400) and fs.x.dtype == torch.float32
        assert fs.lengths.tolist() == [400, 74]  # 9 s trimmed; 1.5 s = floor((24000 - 400) / 320) + 1
        assert fs.x[1, :, 74:].abs().sum() == 0 and fs.x[1, :, :74].abs().sum() > 0
        assert fs.utt_ids == ["EmoDB/long", "EmoDB/short"] and fs.labels.tolist() == [0, 1]


def test_default_config_is_the_wav2vec2_base_architecture():
    """The offline fallback: transformers' Wav2Vec2Config() equals facebook/wav2vec2-base's config.json."""
    from transformers import Wav2Vec2Config

    c = Wav2Vec2Config()
    base = {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "conv_dim": (512,) * 7,
        "conv_stride": (5, 2, 2, 2, 2, 2, 2),
        "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
        "conv_bias": False,
        "feat_extract_norm": "group",
        "do_stable_layer_norm": False,
        "num_conv_pos_embeddings": 128,
        "num_conv_pos_embedding_groups": 16,
        "hidden_act": "gelu",
        "feat_extract_activation": "gelu",
        "layer_norm_eps": 1e-5,
    }
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in ((k, getattr(c, k)) for k in base)} == base
    w = load_config(SMOKE).features.wav2vec2
    w.config_overrides = {}
    assert "defaults" in encoders.architecture(w)[1] or "cache" in encoders.architecture(w)[1]


# --------------------------------------------------------------------------- encoders


def test_random_weights_are_deterministic(tiny_w2v):
    state = torch.random.get_rng_state()
    again = Wav2Vec2Encoder(load_config(SMOKE).features.wav2vec2)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    x = torch.from_numpy(tone(1.2))[None]
    assert torch.equal(tiny_w2v(x), again(x))
    assert tiny_w2v.normalize  # wav2vec2-base's feature extractor: zero mean, unit variance


def _alone_and_batched(encoder, waves: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each clip encoded alone, and the same clips zero-padded into one masked batch (sliced back)."""
    lengths = torch.tensor([len(w) for w in waves])
    padded = torch.zeros(len(waves), int(lengths.max()))
    for row, wave in zip(padded, waves):
        row[: len(wave)] = wave
    out = encoder(padded, lengths)
    return (
        [encoder(w[None])[0] for w in waves],
        [out[i, :, : encoder.frames_for(len(w))] for i, w in enumerate(waves)],
    )


def test_batched_equals_one_at_a_time(tiny_w2v):
    clips = torch.stack([torch.from_numpy(tone(1.0, freq=f, seed=i)) for i, f in enumerate((150, 260, 370))])
    batched = tiny_w2v(clips)  # (3, channels, frames), equal lengths: no mask needed
    alone = torch.cat([tiny_w2v(clip[None]) for clip in clips])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("encoder_name", ["wav2vec2", "logmel"])
def test_mixed_lengths_share_a_batch_exactly(tiny_w2v, encoder_name):
    encoder = tiny_w2v if encoder_name == "wav2vec2" else LogMelEncoder(FeaturesConfig().logmel)
    assert encoder.mixes_lengths
    waves = [torch.from_numpy(tone(s, freq=120 + 60 * i, seed=i)) for i, s in enumerate((1.0, 2.37, 0.61, 1.8))]
    alone, batched = _alone_and_batched(encoder, waves)
    for a, b in zip(alone, batched):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    # The mask is what makes it exact: the same padded clip without lengths differs.
    short = waves[2]
    naive = encoder(torch.cat([short, torch.zeros(16000)])[None])[..., : encoder.frames_for(len(short))]
    assert (naive - alone[2]).abs().max() > 1e-3


@pytest.mark.parametrize(
    "model_type,overrides",
    [
        ("wav2vec2", {"feat_extract_norm": "layer", "do_stable_layer_norm": True}),  # the large-lv60 layout
        ("hubert", {}),
        ("wavlm", {}),
    ],
)
def test_other_encoders_mix_lengths_exactly(tmp_path, model_type, overrides):
    from transformers import AutoConfig, AutoModel

    small = dict(
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=[16] * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.for_model(model_type, **small, **overrides)).save_pretrained(tmp_path / "m")
    w = load_config(SMOKE).features.wav2vec2
    w.weights, w.config_overrides, w.model_id = "pretrained", {}, str(tmp_path / "m")
    encoder = Wav2Vec2Encoder(w)
    assert encoder.mixes_lengths
    waves = [torch.from_numpy(tone(s, seed=i)) for i, s in enumerate((0.9, 1.7, 1.25))]
    for a, b in zip(*_alone_and_batched(encoder, waves)):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_equal_batching_refuses_mixed_lengths():
    w = load_config(SMOKE).features.wav2vec2
    w.batching = "equal"
    encoder = Wav2Vec2Encoder(w)
    assert not encoder.mixes_lengths and encoder.norm is None
    with pytest.raises(ValueError, match="equal-length"):
        encoder(torch.zeros(2, 16000), torch.tensor([16000, 12000]))


def test_batches_sort_and_cut_by_count_samples_and_mode():
    jobs = [(f"d{i}", f"p{i}", n) for i, n in enumerate([300, 100, 100, 200, 250, 100, 900])]
    sizes = lambda batches: [[j[2] for j in b] for b in batches]  # noqa: E731
    assert sizes(extract.plan_batches(jobs, 3, 10_000, mix=True)) == [[100, 100, 100], [200, 250, 300], [900]]
    # 160 s-style budget: padded to the longest clip, a batch holds at most max_samples samples
    assert sizes(extract.plan_batches(jobs, 8, 800, mix=True)) == [[100, 100, 100, 200], [250, 300], [900]]
    assert sizes(extract.plan_batches(jobs, 8, 10_000, mix=False)) == [[100, 100, 100], [200], [250], [300], [900]]


def test_extraction_batch_size_does_not_change_features(run, tmp_path):
    clips = {f"c{i}": tone(1.0 if i < 4 else 1.3 + 0.11 * i, freq=120 + 40 * i, seed=i) for i in range(6)}
    manifest = write_manifest(run, clips)
    loaded, meta = [], []
    for batch_size, batching in ((1, "masked"), (4, "equal"), (4, "masked")):
        cfg = smoke_cfg(tmp_path, cache_dir=str(tmp_path / f"cache{batch_size}{batching}"))
        cfg.features.wav2vec2.batch_size, cfg.features.wav2vec2.batching = batch_size, batching
        extract.extract(cfg, run, manifest, "wav2vec2")
        loaded.append(load(cfg, run, manifest, "wav2vec2"))
        meta.append(json.loads((keys.key_folder(cfg, run, feature(cfg, "wav2vec2")) / "key.json").read_text()))
    for other in loaded[1:]:
        torch.testing.assert_close(other.x, loaded[0].x, atol=2e-3, rtol=2e-3)  # fp16 storage
    assert [m["last_compute"]["mean_batch"] for m in meta] == [1.0, 2.0, 3.0]  # equal: 4 + 1 + 1; masked: 4 + 2
    assert meta[1]["last_compute"]["batching"] == "equal"


def test_layer_index_drops_later_layers_exactly(tiny_w2v):
    w = copy.deepcopy(load_config(SMOKE).features.wav2vec2)
    w.layer = 1
    first = Wav2Vec2Encoder(w)
    assert len(first.model.encoder.layers) == 1
    x = torch.from_numpy(tone(1.0))[None]
    x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
    with torch.inference_mode():
        full = tiny_w2v.model(x, output_hidden_states=True).hidden_states[1].transpose(1, 2)
    torch.testing.assert_close(first(torch.from_numpy(tone(1.0))[None]), full, atol=1e-5, rtol=1e-5)


def test_missing_pretrained_weights_error_names_the_ways(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    w = load_config(SMOKE).features.wav2vec2
    w.weights, w.config_overrides, w.model_id = "pretrained", {}, "facebook/wav2vec2-base"
    with pytest.raises(WeightsUnavailableError) as err:
        Wav2Vec2Encoder(w)
    message = str(err.value)
    for needed in (
        "facebook/wav2vec2-base",
        "connected machine",
        "HF_HOME",
        "HF_HUB_CACHE",
        "local folder",
        "weights: random",
    ):
        assert needed in message


def test_pretrained_from_a_local_folder(tiny_w2v, tmp_path):
    tiny_w2v.model.save_pretrained(tmp_path / "model")
    w = load_config(SMOKE).features.wav2vec2
    w.weights, w.config_overrides, w.model_id = "pretrained", {}, str(tmp_path / "model")
    loaded = Wav2Vec2Encoder(w)
    x = torch.from_numpy(tone(1.0))[None]
    torch.testing.assert_close(loaded(x), tiny_w2v(x))
    assert "PRETRAINED" in encoders.encoder_description(FeaturesConfig(wav2vec2=w))


def test_description_says_random_weights():
    cfg = load_config(SMOKE)
    text = encoders.encoder_description(cfg)
    assert "RANDOM weights" in text and "NOT pretrained" in text and "facebook/wav2vec2-base" in text
    assert "64 bands" in encoders.encoder_description(cfg, "logmel")


# --------------------------------------------------------------------------- the cache


def test_random_weights_key_records_the_transformers_version(tmp_path):
    """cache_key reads the version from the package metadata (no transformers import); it must be
    the string transformers itself reports, or every existing cache key would change."""
    import transformers

    cfg = smoke_cfg(tmp_path)
    assert cfg.features.wav2vec2.weights == "random"
    assert keys.cache_key(cfg, feature(cfg, "wav2vec2"))["transformers"] == transformers.__version__


def test_cache_hit_miss_and_invalidation(run, tmp_path):
    cfg = smoke_cfg(tmp_path)
    write_manifest(run, {f"c{i}": tone(1.0 + 0.1 * i, seed=i) for i in range(4)})
    first = extract.extract_for_run(cfg, run)
    assert [first["inputs"][i]["computed"] for i in ("wav2vec2", "logmel")] == [4, 4]
    assert (run.data / "features_summary.json").is_file() and first["inputs"]["wav2vec2"]["clips_per_s"] > 0
    assert "RANDOM" in first["inputs"]["wav2vec2"]["encoder"] and first["inputs"]["wav2vec2"]["weights"] == "random"
    second = extract.extract_for_run(cfg, run)  # hit: nothing recomputed
    assert [second["inputs"][i]["cached"] for i in ("wav2vec2", "logmel")] == [4, 4]
    assert [second["inputs"][i]["computed"] for i in ("wav2vec2", "logmel")] == [0, 0]
    before = load(cfg, run, pd.read_csv(run.manifest), "logmel")
    cfg.features.logmel.n_mels = 40  # a changed parameter recomputes only its input
    third = extract.extract_for_run(cfg, run)
    assert third["inputs"]["logmel"]["computed"] == 4 and third["inputs"]["wav2vec2"]["computed"] == 0
    sf.write(run.root / "audio" / "c2.wav", tone(1.2, seed=99), 16000)  # changed content: that clip only
    fourth = extract.extract_for_run(cfg, run)
    assert [fourth["inputs"][i]["computed"] for i in ("wav2vec2", "logmel")] == [1, 1]
    cfg.features.logmel.n_mels, cfg.features.frames = 64, 50  # frames is applied at load time
    manifest = pd.read_csv(run.manifest)
    assert extract.extract_for_run(cfg, run)["inputs"]["logmel"]["computed"] == 1  # only the changed clip
    after = load(cfg, run, manifest, "logmel")
    assert after.x.shape == (4, 64, 50)
    torch.testing.assert_close(after.x[0], before.x[0, :, :50])  # 1.0 s = 49 frames: untouched by trimming


def test_resume_after_interruption(run, tmp_path, monkeypatch):
    cfg = smoke_cfg(tmp_path)
    cfg.features.wav2vec2.batch_size = 2
    clips = {f"c{i}": tone(1.0 if i < 4 else 1.5, seed=i) for i in range(6)}  # batches: 2 + 2 + 2
    manifest = write_manifest(run, clips)
    real_forward, calls = Wav2Vec2Encoder.forward, []

    def interrupted(self, wave, lengths=None):
        calls.append(wave.shape[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_forward(self, wave, lengths)

    monkeypatch.setattr(Wav2Vec2Encoder, "forward", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract.extract(cfg, run, manifest, "wav2vec2")
    monkeypatch.setattr(Wav2Vec2Encoder, "forward", real_forward)
    kdir = keys.key_folder(cfg, run, feature(cfg, "wav2vec2"))
    assert len(shards.read_index(kdir)) == 2  # the first batch was flushed on the way out
    assert not list(kdir.glob(".*.tmp"))
    resumed = extract.extract(cfg, run, manifest, "wav2vec2")
    assert resumed["computed"] == 4 and resumed["cached"] == 2
    fresh_cfg = smoke_cfg(tmp_path, cache_dir=str(tmp_path / "fresh"))
    extract.extract(fresh_cfg, run, manifest, "wav2vec2")
    fresh = load(fresh_cfg, run, manifest, "wav2vec2")
    torch.testing.assert_close(
        load(cfg, run, manifest, "wav2vec2").x, fresh.x, atol=2e-3, rtol=2e-3
    )  # batches of 2 vs of 6: fp16 storage may round apart


def test_bad_clips_are_reported_and_dropped(run, tmp_path):
    cfg = smoke_cfg(tmp_path)
    manifest = write_manifest(run, {"good": tone(1.0), "gone": None, "broken": tone(1.0, seed=2)})
    Path(manifest.loc[2, "path"]).write_bytes(b"not audio at all" * 100)
    with pytest.warns(UserWarning, match="EmoDB/gone"):
        summary = extract.extract_for_run(cfg, run, inputs=["logmel"])
    failed = summary["inputs"]["logmel"]["failed"]
    assert set(failed) == {"EmoDB/gone", "EmoDB/broken"}
    assert "FileNotFoundError" in failed["EmoDB/gone"] and failed["EmoDB/broken"]
    with pytest.warns(UserWarning, match="left out"):
        fs = load(cfg, run, manifest, "logmel")
    assert fs.utt_ids == ["EmoDB/good"] and fs.missing == ["EmoDB/gone", "EmoDB/broken"]
    assert fs.x.shape[0] == 1 and fs.labels.tolist() == [0]


def test_loading_never_extracts_and_names_the_fix(run, tmp_path):
    # Loading reads the cache only: a clip never extracted is an error naming the command that fills it.
    cfg = smoke_cfg(tmp_path)
    manifest = write_manifest(run, {"a": tone(1.0), "b": tone(1.1, seed=1)})
    with pytest.raises(FeaturesMissingError, match=r"2 clip\(s\).*serlib features"):
        load(cfg, run, manifest, "logmel")
    assert not shards.read_index(keys.key_folder(cfg, run, feature(cfg, "logmel")))  # nothing was computed on the way
    extract.extract(cfg, run, manifest, "logmel")
    assert load(cfg, run, manifest, "logmel").x.shape[0] == 2


def test_cli_features_fills_the_cache(run, tmp_path):
    # The manifest comes from the configured corpus (a hand-written one would be stale: no meta, rebuilt).
    import yaml

    from serlib.tools.cli import main

    for name, wave in (("03a01Wa.wav", tone(1.0)), ("08a01Fa.wav", tone(1.1, seed=1))):
        (tmp_path / "EmoDB").mkdir(exist_ok=True)
        sf.write(tmp_path / "EmoDB" / name, wave, 16000)
    params = yaml.safe_load(SMOKE.read_text()) | {"data": {"emodb": str(tmp_path / "EmoDB")}}
    (tmp_path / "two-clips.yaml").write_text(yaml.safe_dump(params))
    assert main(["features", str(tmp_path / "two-clips.yaml"), "--out", str(run.root)]) == 0
    summary = json.loads((run.data / "features_summary.json").read_text())
    assert summary["clips"] == 2 and set(summary["inputs"]) == {"wav2vec2", "logmel"}
    assert all(s["computed"] == 2 and s["cache_bytes"] > 0 for s in summary["inputs"].values())


def test_non_finite_features_are_not_stored_and_are_a_failed_row(run, tmp_path):
    cfg = smoke_cfg(tmp_path)
    poisoned = tone(1.0, seed=3)
    poisoned[100:110] = 1e30  # finite float WAV samples whose power overflows float32: the encoder's output is inf/NaN
    manifest = write_manifest(run, {"good": tone(1.0), "nan": poisoned})
    sf.write(run.root / "audio" / "nan.wav", poisoned, 16000, subtype="FLOAT")  # 16-bit PCM cannot hold NaN
    with pytest.warns(UserWarning, match="non-finite features"):
        summary = extract.extract_for_run(cfg, run, inputs=["logmel"])
    stats = summary["inputs"]["logmel"]
    assert stats["computed"] == 1 and list(stats["failed"]) == ["EmoDB/nan"]
    failed = pd.read_csv(run.features_failed)
    assert failed["utt_id"].tolist() == ["EmoDB/nan"]
    # 64 bands x 49 frames: per-utterance standardisation spreads the inf over every value as NaN
    assert failed["reason"].item() == (
        f"{run.root / 'audio' / 'nan.wav'}: non-finite features: 3136 of 3136 values are NaN or inf"
    )
    with pytest.warns(UserWarning, match="left out"):
        fs = load(cfg, run, manifest, "logmel")
    assert fs.utt_ids == ["EmoDB/good"] and torch.isfinite(fs.x).all()


# --------------------------------------------------------------------------- a cache that checks what it reads


@pytest.fixture
def two_shards(run, tmp_path, monkeypatch):
    """Four log-Mel clips cached in two shards of two; returns (cfg, manifest, kdir, features as loaded)."""
    monkeypatch.setattr(shards, "SHARD_CLIPS", 2)
    cfg = smoke_cfg(tmp_path)
    manifest = write_manifest(run, {f"c{i}": tone(1.0 + 0.1 * i, seed=i) for i in range(4)})
    assert extract.extract(cfg, run, manifest, "logmel")["computed"] == 4
    kdir = keys.key_folder(cfg, run, feature(cfg, "logmel"))
    assert len(list(kdir.glob("shard-*.npy"))) == 2
    return cfg, manifest, kdir, load(cfg, run, manifest, "logmel").x


def first_shard(kdir: Path) -> Path:
    return sorted(kdir.glob("shard-*.npy"))[0]


def truncate(npy: Path) -> None:
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])


def bad_header(npy: Path) -> None:
    npy.write_bytes(b"NOT AN NPY" + npy.read_bytes()[10:])


def index_not_json(npy: Path) -> None:
    npy.with_suffix(".json").write_text('{"format": 2, "clips": [["ab')


def index_beyond_array(npy: Path) -> None:
    meta = json.loads(npy.with_suffix(".json").read_text())
    meta["clips"][-1][2] += 1000
    npy.with_suffix(".json").write_text(json.dumps(meta))


def npy_missing(npy: Path) -> None:
    npy.unlink()


@pytest.mark.parametrize(
    "damage,reason",
    [
        (truncate, r"bytes where its index records .* \(cut short\?\)"),
        (bad_header, "header cannot be read"),
        (index_not_json, "not valid JSON"),
        (index_beyond_array, "does not match its CRC-32"),
        (npy_missing, "missing"),
    ],
)
def test_a_damaged_shard_is_named_dropped_and_recomputed(run, two_shards, damage, reason):
    cfg, manifest, kdir, before = two_shards
    npy = first_shard(kdir)
    damage(npy)
    with pytest.warns(UserWarning, match=rf"shard {re.escape(str(npy))} is damaged: .*{reason}.*recomputes"):
        stats = extract.extract(cfg, run, manifest, "logmel")
    assert (stats["computed"], stats["cached"]) == (2, 2)
    assert not npy.exists() and not npy.with_suffix(".json").exists()
    torch.testing.assert_close(load(cfg, run, manifest, "logmel").x, before)


@pytest.mark.parametrize(
    "form, reason",
    [
        ("row CRC kept", "does not match its CRC-32"),  # the row's own checksum no longer matches
        ("row CRC recomputed", "puts clip .* at frame 1 where the clip before it ends at 0"),  # the rows no longer tile
        ("format 2 (no row CRC)", "puts clip .* at frame 1 where the clip before it ends at 0"),  # an older index
    ],
)
def test_12_an_edited_offset_is_caught_and_the_shard_recomputed(run, two_shards, form, reason):
    """Issue 21 (12): one digit changed in an offset would shift a clip's features silently."""
    cfg, manifest, kdir, before = two_shards
    npy = first_shard(kdir)
    meta = json.loads(npy.with_suffix(".json").read_text())
    meta["clips"][0][1] += 1  # the first clip now starts one frame late: still inside the array
    if form == "row CRC recomputed":
        meta["clips"][0][3] = shards.row_crc(*meta["clips"][0][:3])
    if form.startswith("format 2"):
        meta = meta | {"format": 2, "clips": [row[:3] for row in meta["clips"]]}
    npy.with_suffix(".json").write_text(json.dumps(meta))
    assert cache.list_cache(kdir.parent, verify=True).set_index("key").at[kdir.name, "bad_shards"] == 1
    with pytest.warns(UserWarning, match=rf"shard {re.escape(str(npy))} is damaged: .*{reason}"):
        stats = extract.extract(cfg, run, manifest, "logmel")
    assert (stats["computed"], stats["cached"]) == (2, 2)
    torch.testing.assert_close(load(cfg, run, manifest, "logmel").x, before)


def test_flipped_bits_fail_the_checksum_when_loaded(run, two_shards):
    cfg, manifest, kdir, before = two_shards
    npy = first_shard(kdir)
    data = bytearray(npy.read_bytes())
    data[-3] ^= 0x40  # same size, same header: only the checksum can tell
    npy.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=rf"shard {re.escape(str(npy))} is damaged: its CRC-32"):
        with pytest.raises(FeaturesMissingError, match=r"1 damaged shard.*dropped.*2 clip\(s\).*serlib features"):
            load(cfg, run, manifest, "logmel")
    assert not npy.exists()
    assert extract.extract(cfg, run, manifest, "logmel")["computed"] == 2
    torch.testing.assert_close(load(cfg, run, manifest, "logmel").x, before)


def test_shards_written_before_checksums_stay_readable(run, two_shards):
    cfg, manifest, kdir, before = two_shards
    for npy in kdir.glob("shard-*.npy"):  # the old layout: a bare list of rows, Fortran-order arrays
        meta = npy.with_suffix(".json")
        meta.write_text(json.dumps([row[:3] for row in json.loads(meta.read_text())["clips"]]))
        np.save(npy, np.asfortranarray(np.load(npy)))
    assert extract.extract(cfg, run, manifest, "logmel")["computed"] == 0
    torch.testing.assert_close(load(cfg, run, manifest, "logmel").x, before)


def test_a_corrupt_hash_memo_is_named_and_rebuilt(run, two_shards):
    cfg, manifest, kdir, before = two_shards
    memo = kdir.parent / "content_hashes.json"
    memo.write_text('{"/a.wav": [1, 2, "')
    with pytest.warns(UserWarning, match=rf"{re.escape(str(memo))} cannot be read.*treated as missing"):
        stats = extract.extract(cfg, run, manifest, "logmel")
    assert (stats["computed"], stats["cached"]) == (0, 4)
    assert len(json.loads(memo.read_text())) == 4


def test_temporary_files_are_cleaned_and_never_counted(run, two_shards):
    cfg, manifest, kdir, _ = two_shards
    size = shards.cache_bytes(kdir)
    left = [
        kdir / ".shard-20240101000000-deadbeef.npy.tmp",
        kdir / ".key.json.123.abcd1234.tmp",
        kdir.parent / ".content_hashes.json.123.abcd1234.tmp",
    ]
    for tmp in left:
        tmp.write_bytes(b"\0" * 100_000)  # a full disk's leftovers
    assert shards.cache_bytes(kdir) == size
    stats = extract.extract(cfg, run, manifest, "logmel")
    assert not any(tmp.exists() for tmp in left) and stats["cache_bytes"] == size


def test_two_extractions_on_one_folder_compute_once(run, tmp_path, monkeypatch):
    import threading

    cfg = smoke_cfg(tmp_path)
    manifest = write_manifest(run, {f"c{i}": tone(1.0, seed=i) for i in range(3)})
    computing, waiting, calls = threading.Event(), threading.Event(), []
    real_forward = LogMelEncoder.forward

    def slow_forward(self, wave, lengths=None):
        calls.append(len(wave))
        computing.set()
        assert waiting.wait(60), "the second extraction never waited"
        return real_forward(self, wave, lengths)

    def report_wait(kdir, holder):
        assert f"pid {os.getpid()}" in holder  # the holder names itself in the lock file
        waiting.set()

    monkeypatch.setattr(LogMelEncoder, "forward", slow_forward)
    monkeypatch.setattr(shards, "_report_wait", report_wait)
    results = {}

    def run_extraction(name):
        results[name] = extract.extract(cfg, run, manifest, "logmel")

    first = threading.Thread(target=run_extraction, args=("first",))
    first.start()
    assert computing.wait(60)
    second = threading.Thread(target=run_extraction, args=("second",))
    second.start()
    first.join(120)
    second.join(120)
    assert sum(calls) == 3  # every clip encoded once
    assert (results["first"]["computed"], results["second"]["computed"], results["second"]["cached"]) == (3, 0, 3)


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)``: from then on, every write under ``folder`` fails as it does for a user
    without write permission (the tests run as root, for whom chmod changes nothing)."""
    import builtins
    import errno
    import io as io_module

    roots: list[str] = []

    def guarded(path) -> bool:
        return isinstance(path, (str, os.PathLike)) and any(
            os.path.abspath(os.fspath(path)).startswith(r) for r in roots
        )

    def deny(path):
        raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))

    real_open, real_os_open = builtins.open, os.open

    def fake_open(file, mode="r", *args, **kwargs):
        if guarded(file) and any(c in mode for c in "wax+"):
            deny(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if guarded(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            deny(path)
        return real_os_open(path, flags, *args, **kwargs)

    def refuse(real):
        def call(path, *args, **kwargs):
            if guarded(path):
                deny(path)
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io_module, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    for name in ("replace", "rename", "unlink", "remove", "mkdir", "rmdir", "utime"):
        monkeypatch.setattr(os, name, refuse(getattr(os, name)))
    return lambda folder: roots.append(os.path.abspath(folder))


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_a_read_only_cache_serves_a_fully_cached_run(run, tmp_path, read_only):
    cfg = smoke_cfg(tmp_path, cache_dir=str(tmp_path / "shared-cache"))
    manifest = write_manifest(run, {f"c{i}": tone(1.0, seed=i) for i in range(3)})
    extract.extract(cfg, run, manifest, "logmel")
    before = load(cfg, run, manifest, "logmel").x
    for path in manifest["path"]:  # copied to another machine: new times, same content (the memo goes stale)
        os.utime(path, (1e9, 1e9))
    shared = tmp_path / "shared-cache"
    snapshot = tree(shared)
    read_only(shared)
    stats = extract.extract(cfg, run, manifest, "logmel")
    assert (stats["computed"], stats["cached"]) == (0, 3)
    torch.testing.assert_close(load(cfg, run, manifest, "logmel").x, before)
    assert tree(shared) == snapshot  # nothing written, nothing removed
    more = write_manifest(run, {**{f"c{i}": tone(1.0, seed=i) for i in range(3)}, "new": tone(1.0, seed=9)})
    with pytest.raises(cache.CacheNotWritableError, match=r"cannot be written.*1 clip\(s\) are not cached"):
        extract.extract(cfg, run, more, "logmel")
    assert tree(shared) == snapshot


def params_file(folder: Path, name: str, n_mels: int, cache_dir: Path) -> Path:
    """The smoke profile with another log-Mel size and a shared cache, as a parameters file."""
    import yaml

    raw = yaml.safe_load(SMOKE.read_text())
    raw["features"] |= {"cache_dir": str(cache_dir), "logmel": {"n_mels": n_mels}}
    raw["data"]["demo"]["root"] = str(REPO / "data" / "smoke-corpus")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(yaml.safe_dump(raw))
    return folder / name


def test_cache_list_and_prune(run, tmp_path):
    shared = tmp_path / "cache"
    keep, old = (params_file(tmp_path / "parameters", f"{n}.yaml", m, shared) for n, m in (("keep", 64), ("old", 40)))
    manifest = write_manifest(run, {f"c{i}": tone(1.0, seed=i) for i in range(3)})
    for params in (keep, old):
        extract.extract(load_config(params), run, manifest, "logmel")
    kept, unused = (keys.key_name(load_config(p), FeatureKey("logmel")) for p in (keep, old))
    assert cache.cache_root(keep) == shared and cache.cache_root(shared) == shared
    listing = cache.list_cache(shared).set_index("key")
    assert list(listing.index) == sorted([kept, unused]) and (listing["clips"] == 3).all()
    assert (listing["mb"] > 0).all() and (listing["bad_shards"] == 0).all() and (listing["last_used"] != "").all()
    assert "n_mels=40" in listing.at[unused, "settings"] and (listing["input"] == "logmel").all()
    npy = first_shard(shared / unused)
    data = bytearray(npy.read_bytes())
    data[-1] ^= 1
    npy.write_bytes(bytes(data))
    assert cache.list_cache(shared, verify=True).set_index("key").at[unused, "bad_shards"] == 1
    assert npy.exists()  # listing changes nothing

    dry = cache.prune_cache(shared, [keep]).set_index("key")
    assert dry.at[unused, "action"] == "would remove" and dry.at[kept, "action"] == "kept"
    assert dry.at[kept, "used_by"] == "keep.yaml" and (shared / unused).is_dir()
    with shards.key_lock(shared / unused):  # an extraction at work: its folder stays
        assert cache.prune_cache(shared, [keep], delete=True).set_index("key").at[unused, "action"] == "skipped: in use"
    assert (shared / unused).is_dir()
    assert cache.prune_cache(shared, [keep], delete=True).set_index("key").at[unused, "action"] == "removed"
    assert list(cache.list_cache(shared)["key"]) == [kept] and not list(shared.glob(".*.deleting"))
    assert load(load_config(keep), run, manifest, "logmel").x.shape[0] == 3


# --------------------------------------------------------------------------- the notebook


@pytest.mark.slow
def test_features_notebook_on_smoke(smoke_run):
    run_dir = smoke_run.root
    summary = pd.read_csv(run_dir / "tables" / "table_s10.csv")
    assert set(summary["input"]) == {"wav2vec2", "logmel"} and (summary["clips"] > 0).all()
    assert summary["weights"].str.contains("random").any()
    stats = pd.read_csv(run_dir / "tables" / "table_s11.csv")
    assert len(stats) >= 2
    for name in ("fig_s10", "fig_s11", "fig_s12", "fig_s13"):
        assert (run_dir / "figures" / f"{name}.png").stat().st_size > 5000
    text = (smoke_run.notebooks / "02_features.ipynb").read_text()
    assert "RANDOM encoder weights" in text
    probe = pd.read_csv(run_dir / "tables" / "table_s12.csv")  # the per-layer probe: layers 0, 1, 2 (last)
    assert list(probe["layer"]) == ["layer 0", "layer 1", "layer 2 (last)"]
    assert (probe["chosen on val"] == "✓").sum() == 1 and (probe["cache_mb"] > 0).all()
    assert ((probe["uar_lo"] <= probe["uar"]) & (probe["uar"] <= probe["uar_hi"])).all()
    assert set(probe["unit"]) == {"clip"}  # the smoke run's few test speakers: the caption says clips, not speakers
    assert "bootstrap over test CLIPS" in text and "speaker-bootstrap" not in text
    assert "Validation chose layer" in text and "1.84 GB" in text  # the paper-scale cost, computed


# --------------------------------------------------------------------------- behaviour the cache must keep


@pytest.mark.parametrize("change", ["layer", "sample_rate"])
def test_changing_the_layer_or_the_sample_rate_changes_the_key_and_recomputes(run, tmp_path, change):
    cfg = smoke_cfg(tmp_path)
    manifest = write_manifest(run, {"a": tone(1.0), "b": tone(1.2, seed=1)})
    input = "wav2vec2" if change == "layer" else "logmel"
    assert extract.extract(cfg, run, manifest, input)["computed"] == 2
    assert extract.extract(cfg, run, manifest, input)["computed"] == 0  # unchanged: from the cache
    before = keys.key_folder(cfg, run, feature(cfg, input))
    if change == "layer":
        cfg.features.wav2vec2.layer = 1
    else:
        cfg.features.sample_rate = 8000
    assert keys.key_folder(cfg, run, feature(cfg, input)) != before
    assert extract.extract(cfg, run, manifest, input)["computed"] == 2


def test_a_clip_that_would_overflow_the_padded_budget_starts_a_new_batch():
    jobs = [("a", "", 100), ("b", "", 100), ("c", "", 150), ("d", "", 150)]
    sizes = lambda batches: [[j[2] for j in b] for b in batches]  # noqa: E731
    # padded to its longest clip, [100, 100, 150] would hold 3 x 150 = 450 > 400 samples: c starts a batch
    assert sizes(extract.plan_batches(jobs, 8, 400, mix=True)) == [[100, 100], [150, 150]]
    assert sizes(extract.plan_batches(jobs, 8, 450, mix=True)) == [[100, 100, 150], [150]]  # exactly at the budget
    assert sizes(extract.plan_batches(jobs, 8, 600, mix=True)) == [[100, 100, 150, 150]]


def test_loading_ahead_in_a_thread_gives_the_same_features_and_failures(run, tmp_path, monkeypatch):
    clips = {f"c{i}": tone(1.0 + 0.2 * i, freq=150 + 30 * i, seed=i) for i in range(5)}
    clips["broken"] = tone(1.0, seed=9)
    manifest = write_manifest(run, clips)
    Path(manifest.loc[5, "path"]).write_bytes(b"not audio" * 100)
    loaded, failed = [], []
    for devices in ((), ("cpu",)):  # serial, then the GPU's prefetch path run on the CPU
        monkeypatch.setattr(extract, "PREFETCH_DEVICES", devices)
        cfg = smoke_cfg(tmp_path, cache_dir=str(tmp_path / f"cache{len(devices)}"))
        cfg.features.wav2vec2.batch_size = 2
        with pytest.warns(UserWarning, match="broken"):
            summary = extract.extract_for_run(cfg, run, inputs=["wav2vec2"])
        failed.append(sorted(summary["inputs"]["wav2vec2"]["failed"]))
        with pytest.warns(UserWarning, match="left out"):
            loaded.append(load(cfg, run, manifest, "wav2vec2"))
    assert failed[0] == failed[1] == [next(u for u in manifest["utt_id"] if u.endswith("broken"))]
    assert torch.equal(loaded[0].x, loaded[1].x) and loaded[0].utt_ids == loaded[1].utt_ids


def test_the_gpu_batch_bound_follows_free_memory():
    cfg = Config()
    upper = int(cfg.features.wav2vec2.max_batch_seconds * 16000)
    roomy, why = extract.gpu_batch_samples(cfg, torch.device("cuda"), upper, free_bytes=int(80e9))
    assert roomy == upper and "max_batch_seconds" in why
    tight, why = extract.gpu_batch_samples(cfg, torch.device("cuda"), upper, free_bytes=int(2e9))
    assert tight == int(2e9 * extract.GPU_BATCH_FRACTION / (512 / 5 * 10))  # ~61 s of padded audio
    assert tight < upper and "2.0 GB free" in why
