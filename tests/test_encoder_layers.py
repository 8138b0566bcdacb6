"""Tests of issue 12's encoder layers: the per-layer cache, streaming several layers, the learned layer
sum (S6), the per-layer probe and the layer rules of the configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from test_features import smoke_cfg, tone, write_manifest

from serlib.common.config import ConfigError, load_config
from serlib.common.runfolder import RunFolder
from serlib.features import extract, keys, layers, shards
from serlib.features.encoders import Wav2Vec2Encoder, _normalizes
from serlib.features.layers import FeatureKey
from serlib.features.load import FeaturesMissingError, load_features
from serlib.features.stream import open_layers, pooled_stats
from serlib.modelling import probe
from serlib.modelling.augment import TriAug
from serlib.modelling.models import LayerSum, build_classifier
from serlib.modelling.placement import gather
from serlib.modelling.train import TrainStep, make_optimizer

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "parameters" / "smoke.yaml"


@pytest.fixture
def run(tmp_path) -> RunFolder:
    return RunFolder(tmp_path / "run").ensure()


def w2v(layer) -> FeatureKey:
    """The cache folder of one wav2vec2 layer (as the cache names it)."""
    return FeatureKey("wav2vec2", layer)


def clips(n: int = 6) -> dict:
    return {f"c{i}": tone(0.6 + 0.25 * i, freq=180.0 + 40 * i, seed=i) for i in range(n)}


def counting(monkeypatch) -> list:
    """Count the clips every wav2vec2 forward pass encodes."""
    seen = []
    original = Wav2Vec2Encoder.forward_layers

    def forward_layers(self, wave, lengths=None):
        seen.append(len(wave))
        return original(self, wave, lengths)

    monkeypatch.setattr(Wav2Vec2Encoder, "forward_layers", forward_layers)
    return seen


# --------------------------------------------------------------------------- the cache


def test_asking_for_all_layers_after_last_encodes_each_clip_once_more_and_never_again(run, monkeypatch):
    cfg = smoke_cfg(run.root)  # without the smoke profile's layer probe and layer systems: the last layer only
    assert layers.cached_layers(cfg) == ["last"]
    manifest = write_manifest(run, clips())
    seen = counting(monkeypatch)
    extract.extract(cfg, run, manifest, "wav2vec2")
    assert sum(seen) == len(manifest)  # the last layer: each clip once
    before = shards.read_index(keys.key_folder(cfg, run, w2v("last")))

    cfg.analysis.layer_probe = "all"  # layers 0, 1 and last of the smoke encoder
    assert layers.cached_layers(cfg) == [0, 1, "last"]
    seen.clear()
    stats = extract.extract(cfg, run, manifest, "wav2vec2")
    assert sum(seen) == len(manifest)  # once more: layers 0 and 1 from the same pass
    assert {row["layer"]: row["computed"] for row in stats["layers"]} == {0: 6, 1: 6, "last": 0}
    assert shards.read_index(keys.key_folder(cfg, run, w2v("last"))) == before  # last was kept, not rewritten

    seen.clear()
    stats = extract.extract(cfg, run, manifest, "wav2vec2")
    assert sum(seen) == 0 and stats["computed"] == 0  # and never again
    assert all(row["clips"] == 6 and row["cache_bytes"] > 0 for row in stats["layers"])


def test_cached_layer_k_equals_the_encoders_hidden_states_k(run):
    cfg = smoke_cfg(run.root)
    cfg.analysis.layer_probe = "all"
    wave = tone(1.1, seed=3)
    manifest = write_manifest(run, {"one": wave})
    extract.extract(cfg, run, manifest, "wav2vec2")
    encoder = Wav2Vec2Encoder(cfg.features.wav2vec2, layers=["last"])
    x = torch.from_numpy(wave)[None]
    if _normalizes(cfg.features.wav2vec2):
        x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
    with torch.inference_mode():
        hidden = encoder.model(x, output_hidden_states=True).hidden_states  # (1, frames, channels) per layer
    assert len(hidden) == 3
    for layer in (0, 1, "last"):
        k = layers.layer_index(cfg.features.wav2vec2, layer)
        stored = load_features(cfg, run, manifest, w2v(layer))
        frames = int(stored.lengths[0])
        expected = hidden[k][0, :frames].T.numpy()
        np.testing.assert_allclose(
            stored.x[0, :, :frames].numpy(), expected.astype(np.float16).astype(np.float32), atol=2e-3, rtol=1e-3
        )  # fp16 rounding
    assert not np.allclose(hidden[0].numpy(), hidden[2].numpy())  # the layers differ: the test can tell them apart


def test_layer_n_is_stored_as_last_and_a_missing_layer_names_the_key(run):
    cfg = smoke_cfg(run.root)
    w = cfg.features.wav2vec2
    assert layers.layer_value(w, 2) == "last" and layers.layer_value(w, 1) == 1
    plan = layers.plan_layers(cfg)
    assert keys.key_folder(cfg, run, plan.key("wav2vec2", 2)) == keys.key_folder(cfg, run, plan.key("wav2vec2"))
    cfg.systems["S5"].layers = 7
    with pytest.raises(ConfigError, match=r"'systems\.S5\.layers' asks for layer 7 .* layers 0\.\.2"):
        layers.cached_layers(cfg)


def test_a_layer_stack_streams_what_load_features_loads(run):
    cfg = smoke_cfg(run.root)
    cfg.analysis.layer_probe = "all"
    cfg.features.frames = 40  # some clips trimmed, some padded
    manifest = write_manifest(run, clips())
    extract.extract(cfg, run, manifest, "wav2vec2")
    stack, ids, missing = open_layers(cfg, run, manifest, [w2v(0), w2v("last")])
    assert stack.shape == (6, 2, 32, 40) and ids == list(manifest["utt_id"]) and not missing
    for position, layer in enumerate([0, "last"]):
        alone = load_features(cfg, run, manifest, w2v(layer))
        index = torch.tensor([4, 0, 2])
        batch = gather(stack, index, torch.device("cpu"))  # float32 from the float16 maps
        assert torch.equal(batch[:, position], alone.x[index])
        assert torch.equal(stack.lengths, alone.lengths)
        trimmed = gather(stack, index, torch.device("cpu"), frames=17)
        assert torch.equal(trimmed[:, position], alone.x[index, :, :17])
    index = torch.tensor([5, 1, 3, 0])
    one = stack.gather(index)
    stack.threads = 3  # as on a GPU machine: the batch's clips copied by several threads
    assert torch.equal(stack.gather(index), one) and torch.equal(stack.subset(index).gather(range(4)), one)
    assert stack.subset(index).threads == 3
    ids_pooled, pooled = pooled_stats(cfg, run, manifest, w2v(0))
    alone = load_features(cfg, run, manifest, w2v(0))
    first = alone.x[1, :, : int(alone.lengths[1])]
    np.testing.assert_allclose(pooled[1], torch.cat([first.mean(1), first.std(1, unbiased=False)]).numpy(), atol=1e-5)


def test_a_damaged_layer_shard_is_named_when_the_stack_opens(run):
    cfg = smoke_cfg(run.root)
    cfg.analysis.layer_probe = "all"
    manifest = write_manifest(run, clips(3))
    extract.extract(cfg, run, manifest, "wav2vec2")
    kdir = keys.key_folder(cfg, run, w2v(1))
    shard = sorted(kdir.glob("shard-*.npy"))[0]
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte: same size, same header
    shard.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="damaged"), pytest.raises(FeaturesMissingError):
        open_layers(cfg, run, manifest, [w2v(0), w2v(1)])
    extract.extract(cfg, run, manifest, "wav2vec2")  # recomputes the dropped shard's clips
    shard = sorted(kdir.glob("shard-*.npy"))[0]
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF
    shard.write_bytes(bytes(data))
    with (
        pytest.warns(UserWarning, match="damaged"),
        pytest.raises(FeaturesMissingError, match=r"recompute its \d+ clip\(s\): `serlib features"),
    ):
        pooled_stats(cfg, run, manifest, w2v(1))  # the probe's reader: the same rule
    assert not list(kdir.glob(shard.name))


# --------------------------------------------------------------------------- the learned layer sum


def test_a_one_hot_layer_sum_is_that_layer():
    x = torch.randn(3, 4, 5, 7)
    mix = LayerSum(4)
    with torch.no_grad():
        mix.logits.copy_(torch.tensor([-1e4, -1e4, 1e4, -1e4]))
    assert torch.equal(mix(x), x[:, 2])
    with torch.no_grad():
        mix.logits.zero_()
    torch.testing.assert_close(mix(x), x.mean(1))


@pytest.mark.parametrize("sync_free", [False, True])
def test_the_layer_weights_train_through_tri_aug(sync_free):
    torch.manual_seed(0)
    cfg = load_config(SMOKE)
    model = build_classifier(cfg.systems["S5"].model, 16, layers=3)
    step = TrainStep(
        model,
        make_optimizer(model, 1e-2, 0.0),
        TriAug(noise_prob=1.0, crop_prob=1.0, mask_prob=1.0, sync_free=sync_free),
        grad_clip=2.0,
    )
    x, y = torch.randn(8, 3, 16, 50), torch.arange(8) % 3
    before, gathered = model.mix.logits.detach().clone(), x.clone()
    loss, _ = step(x, y, inplace=True)
    assert torch.isfinite(loss) and not torch.equal(model.mix.logits.detach(), before)
    assert torch.equal(x, gathered)  # Tri-Aug augments the sum, never the gathered layers (even with inplace)


# --------------------------------------------------------------------------- the probe


def test_the_probe_picks_the_one_layer_that_carries_the_label(run, monkeypatch):
    """Layer 1's features hold the class; layers 0 and last are noise. Written straight into the cache."""
    cfg = smoke_cfg(run.root)
    cfg.analysis.layer_probe = "all"
    rng = np.random.default_rng(0)
    manifest = write_manifest(run, {f"c{i}": tone(0.3, seed=i) for i in range(90)})
    manifest["label"] = [
        ("negative", "sad_fear", "pos_neutral")[(i // 3) % 3] for i in range(90)
    ]  # every class in every split
    manifest.to_csv(run.manifest, index=False)
    hashes, _ = keys.content_hashes(manifest["path"].tolist(), keys.key_folder(cfg, run, w2v("last")).parent)
    label_index = manifest["label"].map({"negative": 0, "sad_fear": 1, "pos_neutral": 2}).to_numpy()
    for layer in (0, 1, "last"):
        writer = shards.ShardWriter(keys.key_folder(cfg, run, w2v(layer)))
        for digest, k in zip(hashes, label_index):
            clip = rng.normal(0, 1, (32, 20)).astype(np.float32)
            if layer == 1:
                clip[k] += 2.0  # channel k is raised for class k
            writer.add(digest, clip)
        writer.flush()
    table = probe.layer_probe(cfg, run)
    assert list(table["layer"]) == ["0", "1", "last"]
    assert table.loc[table["chosen"], "layer"].item() == "1"
    assert table.set_index("layer").loc["1", "val_uar"] > 0.9 > table.set_index("layer").loc["0", "val_uar"]
    assert probe.best_layer(cfg, run) == 1
    assert len(probe.probe_predictions(run, 1)) == (manifest["split"] == "test").sum()

    def read_again(*args):
        raise AssertionError("the layer-sum baseline read a layer's cache the probe had already pooled")

    monkeypatch.setattr(probe, "pooled_stats", read_again)
    predictions, info = probe.layer_sum_linear(cfg, run)
    assert max(info["weights"], key=info["weights"].get) == "1"  # the learned sum leans on the informative layer
    assert predictions["correct"].mean() > 0.9


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "system, message",
    [
        ({"input": "logmel", "layers": 2}, "null for input: logmel"),
        ({"input": "wav2vec2", "layers": "all"}, "one layer for input: wav2vec2"),
        ({"input": "wav2vec2", "layers": "best"}, "unless analysis.layer_probe is set"),
        ({"input": "wav2vec2_layers", "layers": 3}, "all or a list of at least two layers"),
        ({"input": "wav2vec2_layers", "layers": [1, 1]}, "systems.X.layers"),
    ],
)
def test_layer_rules_are_checked_when_the_profile_is_read(tmp_path, system, message):
    import yaml

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"systems": {"X": system}}))
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(path)


def test_the_paper_profile_caches_the_last_layer_only_and_the_layer_sum_reads_all():
    cfg = load_config(REPO / "parameters" / "paper.yaml")
    assert layers.cached_layers(cfg) == ["last"]  # resolved without loading the encoder's configuration
    smoke = layers.plan_layers(load_config(SMOKE))
    assert smoke.system_layers("S6") == [0, 1, "last"]
    assert smoke.system_layers("S5-best", best=1) == [1]
    assert dataclasses.replace(load_config(SMOKE).systems["S6"]).input == "wav2vec2_layers"


def test_the_layer_plan_resolves_each_layer_once_and_only_when_asked(monkeypatch):
    counted = []
    real = layers.layer_count
    monkeypatch.setattr(layers, "layer_count", lambda w: counted.append(1) or real(w))
    plan = layers.plan_layers(load_config(SMOKE))
    assert not counted  # nothing resolved yet
    first = (plan.cached, plan.probe, plan.system_layers("S6"))
    calls = len(counted)
    assert calls and (plan.cached, plan.probe, plan.system_layers("S6")) == first and len(counted) == calls
    assert plan.keys("wav2vec2") == [FeatureKey("wav2vec2", layer) for layer in (0, 1, "last")]
    assert plan.key("wav2vec2", 2) == plan.key("wav2vec2") == FeatureKey("wav2vec2", "last")  # index N is "last"
    assert plan.keys("logmel") == [FeatureKey("logmel")] and plan.system_layers("S1") is None


def test_a_log_mel_run_never_reads_the_encoders_configuration(tmp_path):
    cfg = load_config(SMOKE)
    cfg.systems = {"S1": cfg.systems["S1"]}
    cfg.analysis.layer_probe = None
    cfg.features.wav2vec2.model_id = str(tmp_path / "no-such-encoder")
    cfg.features.wav2vec2.layer = 5  # only the encoder's configuration could say whether layer 5 exists
    plan = layers.plan_layers(cfg)
    assert plan.system_layers("S1") is None and keys.key_name(cfg, plan.key("logmel")).startswith("logmel-")
    with pytest.raises(ValueError, match="names its layer"):  # a wav2vec2 folder is always named with its layer
        keys.cache_key(cfg, FeatureKey("wav2vec2"))


def test_a_layer_the_encoder_lacks_is_found_before_the_run_starts():
    from serlib import pipeline

    cfg = load_config(SMOKE)
    cfg.systems["S5"].layers = 9
    problems = pipeline.preflight(cfg)
    assert any("'systems.S5.layers' asks for layer 9 but" in p and "layers 0..2" in p for p in problems)


@pytest.mark.parametrize("family", ["hubert", "wavlm"])
def test_every_layer_of_hubert_and_wavlm_is_cached_as_its_hidden_state(run, tmp_path, family):
    """Another SSL encoder from a local folder (config.json only; random weights): its layers cache the same way."""
    import transformers

    config_class = {"hubert": transformers.HubertConfig, "wavlm": transformers.WavLMConfig}[family]
    folder = tmp_path / family
    config_class(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=[32] * 7,
        num_conv_pos_embeddings=16,
    ).save_pretrained(folder)
    cfg = smoke_cfg(run.root)
    cfg.features.wav2vec2 = dataclasses.replace(cfg.features.wav2vec2, model_id=str(folder), config_overrides={})
    cfg.analysis.layer_probe = "all"
    wave = tone(0.9, seed=5)
    manifest = write_manifest(run, {"one": wave})
    extract.extract(cfg, run, manifest, "wav2vec2")
    encoder = Wav2Vec2Encoder(cfg.features.wav2vec2, layers=["last"])
    assert type(encoder.model).__name__.lower().startswith(family)
    x = torch.from_numpy(wave)[None]
    x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)  # do_normalize, as wav2vec2-base's extractor
    with torch.inference_mode():
        hidden = encoder.model(x, output_hidden_states=True).hidden_states
    for layer in (0, 1, "last"):
        stored = load_features(cfg, run, manifest, w2v(layer))
        frames = int(stored.lengths[0])
        expected = hidden[layers.layer_index(cfg.features.wav2vec2, layer)][0, :frames].T.numpy()
        np.testing.assert_allclose(stored.x[0, :, :frames].numpy(), expected, atol=3e-3, rtol=2e-3)  # fp16
