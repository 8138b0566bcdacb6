"""The run key (``serlib.modelling.systems.run_key``): every setting that changes a trained run changes its key,
and nothing else does (a changed key retrains; a missed setting reuses a run trained otherwise)."""

import copy
import dataclasses

import pytest

from serlib.common.config import Config
from serlib.common.sections import AugmentConfig, ModelConfig, SystemConfig, TrainConfig
from serlib.modelling.inputs import SplitData
from serlib.modelling.systems import run_key, trims_batches

# Each field -> a different valid value, for the fields that change what training computes.
TRAIN_CHANGES = {
    "batch_size": 32,
    "max_epochs": 7,
    "early_stop_patience": 3,
    "plateau_patience": 2,
    "plateau_factor": 0.25,
    "min_lr": 1e-5,
    "grad_clip": 0.0,
    "deterministic": False,
    "amp": True,
}
# Fields that do not change the trained weights, or enter the key another way (lr and weight decay are
# arguments; trim_batches through trims_batches).
TRAIN_OUTSIDE = {
    "lr": 0.5,
    "weight_decay": 0.5,
    "seeds": [7],
    "device": "cpu",
    "eval_batch_size": 8,
    "threads": 3,
    "trim_batches": True,
}
MODEL_CHANGES = {
    "arch": "shallow",
    "se": False,
    "se_reduction": 8,
    "blocks": [0, 1],
    "width_scale": 0.5,
    "mask_padding": True,
    "pooling": "attentive",
    "conv": "separable",
}
AUGMENT_CHANGES = {
    "noise_prob": 0.1,
    "noise_std": 0.2,
    "crop_prob": 0.9,
    "crop_frames": 100,
    "mask_prob": 0.5,
    "mask_spans": [2, 3],
    "mask_width": [1, 2],
    "mask_channel_groups": 8,
    "mask_groups_max": 1,
    "within_clip": True,
}
SYSTEM_CHANGES = {"input": "logmel", "layers": 3, "augment": False, "within_clip": True, "trim_batches": False}


def _data(fingerprint="fp"):
    return SplitData(input="wav2vec2", x={}, y={}, utt_ids={}, fingerprint=fingerprint)


def _key(cfg, system_name="S5", lr=1e-3, wd=1e-2, data=None, seed=0):
    return run_key(cfg.systems[system_name], cfg, lr, wd, data or _data(), seed)


def test_the_tables_name_every_field():
    # a field added to a section must be classified here: part of the key, or shown not to change a run
    assert set(TRAIN_CHANGES) | set(TRAIN_OUTSIDE) | {"select"} == {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(MODEL_CHANGES) == {f.name for f in dataclasses.fields(ModelConfig)}
    assert set(AUGMENT_CHANGES) == {f.name for f in dataclasses.fields(AugmentConfig)}


@pytest.mark.parametrize("field,value", sorted(TRAIN_CHANGES.items()))
def test_a_training_setting_changes_every_key(field, value):
    cfg = Config()
    before = _key(cfg)
    setattr(cfg.train, field, value)
    assert _key(cfg) != before


@pytest.mark.parametrize("field,value", sorted(TRAIN_OUTSIDE.items()))
def test_settings_that_do_not_change_the_weights_keep_the_key(field, value):
    cfg = Config()  # S5 is unmasked: trim_batches does not apply to it
    before = _key(cfg)
    setattr(cfg.train, field, value)
    assert _key(cfg) == before


def test_selection_settings_keep_the_key_the_chosen_values_change_it():
    cfg = Config()
    before = _key(cfg)
    cfg.train.select.enabled, cfg.train.select.lrs, cfg.train.select.seed = True, [0.1], 5
    assert _key(cfg) == before  # the selection's result arrives as lr and weight_decay
    assert _key(cfg, lr=2e-3) != before and _key(cfg, wd=0.0) != before


@pytest.mark.parametrize("field,value", sorted(MODEL_CHANGES.items()))
def test_a_model_setting_changes_the_key(field, value):
    cfg = Config()
    before = _key(cfg)
    setattr(cfg.systems["S5"].model, field, value)
    assert _key(cfg) != before


@pytest.mark.parametrize("field,value", sorted(SYSTEM_CHANGES.items()))
def test_a_system_setting_changes_the_key(field, value):
    cfg = Config()
    before = _key(cfg)
    setattr(cfg.systems["S5"], field, value)
    assert _key(cfg) != before


@pytest.mark.parametrize("field,value", sorted(AUGMENT_CHANGES.items()))
def test_an_augment_setting_changes_the_key_of_augmented_systems_only(field, value):
    cfg = Config()
    augmented, plain = _key(cfg, "S5"), _key(cfg, "S4")
    setattr(cfg.augment, field, value)
    assert _key(cfg, "S5") != augmented
    assert _key(cfg, "S4") == plain  # S4 trains without Tri-Aug


def test_the_description_and_name_do_not_enter_the_key():
    cfg = Config()
    before = _key(cfg)
    cfg.systems["S5"].description = "renamed"
    cfg.systems["copy"] = copy.deepcopy(cfg.systems["S5"])
    assert _key(cfg) == before == _key(cfg, "copy")


def test_seed_features_and_hyperparameters_each_change_the_key():
    cfg = Config()
    keys = {
        _key(cfg),
        _key(cfg, seed=1),
        _key(cfg, data=_data("other features")),
        _key(cfg, lr=3e-3),
        _key(cfg, wd=1e-4),
    }
    assert len(keys) == 5
    assert _key(cfg, seed=1) == _key(cfg, seed=1)  # a key is a function of its inputs


def test_trimming_enters_the_key_of_masked_systems_only():
    cfg = Config()
    cfg.systems["S5"].model.mask_padding = True
    masked, plain = _key(cfg, "S5"), _key(cfg, "S4")
    cfg.train.trim_batches = True
    assert trims_batches(cfg, cfg.systems["S5"]) and not trims_batches(cfg, cfg.systems["S4"])
    trimmed = _key(cfg, "S5")
    assert trimmed != masked and _key(cfg, "S4") == plain
    cfg.systems["S5"].trim_batches = False  # the system's own setting wins over train.trim_batches
    assert not trims_batches(cfg, cfg.systems["S5"]) and _key(cfg, "S5") != trimmed
    cfg.train.trim_batches = False
    cfg.systems["S5"].trim_batches = True
    assert trims_batches(cfg, cfg.systems["S5"])


def test_a_system_without_a_description_has_a_key():
    cfg = Config()
    cfg.systems["bare"] = SystemConfig()  # every field at its default, description included: S5's settings
    assert run_key(cfg.systems["bare"], cfg, 1e-3, 1e-2, _data(), 0) == _key(cfg)


def test_a_trimmed_masked_run_keeps_the_key_it_was_trained_under():
    # pinned like tests/test_config.py's paper keys: a changed key retrains every trimmed run
    cfg = Config()
    cfg.systems["S5"].model.mask_padding = True
    assert _key(cfg) == "d8fb62e62ea93e09"
    cfg.train.trim_batches = True
    assert _key(cfg) == "eb7cfa5abef73449"
