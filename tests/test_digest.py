"""serlib.common.digest: one helper for every settings digest, with the values serlib has always written.

The expected values below were computed by the code before the helper existed (each module hashed its own
``json.dumps``); a change here renames every cache folder and retrains every run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from serlib.common.config import load_config
from serlib.common.digest import bytes_digest, json_digest
from serlib.data.mculp import settings_key
from serlib.features import layers
from serlib.features.keys import key_name
from serlib.features.layers import plan_layers

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("payload", [{"b": 1, "a": [1.5, None, "x"]}, [["f", 3, 4]], {"nested": {"z": 1, "y": 2}}])
def test_the_digest_is_the_hash_of_sorted_json(payload):
    text = json.dumps(payload, sort_keys=True).encode()
    assert json_digest(payload) == hashlib.sha256(text).hexdigest()[:16]
    assert json_digest(payload, 8) == hashlib.sha256(text).hexdigest()[:8]
    assert json_digest(payload, algorithm="sha1") == hashlib.sha1(text).hexdigest()[:16]


def test_values_that_are_not_json_enter_as_text():
    assert json_digest({"path": ROOT}) == json_digest({"path": str(ROOT)})


def test_bytes_digest_is_blake2b_of_16_bytes():
    assert bytes_digest(b"serlib") == hashlib.blake2b(b"serlib", digest_size=16).hexdigest()


def test_the_cache_folders_and_the_manifest_key_keep_their_names(monkeypatch):
    monkeypatch.setattr(layers, "layer_count", lambda w: 12)  # wav2vec2-base's, without reading its configuration
    cfg = load_config(ROOT / "parameters" / "paper.yaml")
    plan = plan_layers(cfg)
    assert key_name(cfg, plan.key("logmel")) == "logmel-6077b6feeba3a4ea"
    assert key_name(cfg, plan.key("wav2vec2")) == "wav2vec2-576db2280592c146"
    cfg.analysis.layer_probe = [0, 5, 12]  # 12 of wav2vec2-base's 12 is the last layer: the same folder
    plan = plan_layers(cfg)
    assert [key_name(cfg, feature) for feature in plan.keys("wav2vec2")] == [
        "wav2vec2-ad8b93c9bc4f5feb",
        "wav2vec2-306dc52cfb3cdaec",
        "wav2vec2-576db2280592c146",
    ]
    assert settings_key({"format": 2, "a": [1, 2.5, None], "p": "x"}) == "21f7a572ef011cb0"
