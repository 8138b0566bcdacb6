"""Typed parameters: every profile loads; unknown keys, wrong types and bad values name the key at
load time; the paper's systems are the default; fields at their default stay out of cache and run keys."""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from serlib import pipeline
from serlib.common.config import (
    Config,
    ConfigError,
    FeaturesConfig,
    LogMelConfig,
    ModelConfig,
    SystemConfig,
    TrainConfig,
    Wav2Vec2Config,
    _check_layers,
    config_to_dict,
    folds_problem,
    load_config,
)
from serlib.common.runfolder import run_folder
from serlib.features import keys
from serlib.features.layers import plan_layers
from serlib.modelling.inputs import SplitData
from serlib.modelling.systems import run_key
from serlib.tools.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("profile", sorted(p.stem for p in (ROOT / "parameters").glob("*.yaml")))
def test_every_profile_loads(profile):
    cfg = load_config(ROOT / "parameters" / f"{profile}.yaml")
    assert isinstance(cfg, Config) and cfg.run.name
    assert cfg.source == str((ROOT / "parameters" / f"{profile}.yaml").resolve())
    assert config_to_dict(cfg)["run"]["name"] == cfg.run.name


def test_paper_profile_holds_the_papers_values():
    cfg = load_config(ROOT / "parameters" / "paper.yaml")
    assert cfg.features.frames == 400 and cfg.features.logmel.n_mels == 64
    assert cfg.features.wav2vec2.weights == "pretrained" and cfg.features.wav2vec2.layer == "last"
    assert cfg.data.min_duration_s == 1.0 and cfg.data.split == [0.8, 0.1, 0.1]
    t = cfg.train
    assert (t.batch_size, t.max_epochs, t.early_stop_patience, t.plateau_patience, t.plateau_factor, t.grad_clip) == (
        64,
        80,
        30,
        10,
        0.5,
        2.0,
    )
    assert len(t.seeds) == 3
    assert set(cfg.systems) == {"S1", "S2", "S3", "S4", "S5", "A1", "A2", "A3"}


def _write(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, key",
    [
        ("run: {nme: x}\n", "'run.nme'"),
        ("colour: red\n", "'colour'"),
        ("features: {wav2vec2: {layr: 3}}\n", "'features.wav2vec2.layr'"),
        ("systems: {S9: {inptu: logmel}}\n", "'systems.S9.inptu'"),
    ],
)
def test_unknown_keys_are_named(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        load_config(_write(tmp_path, text))
    assert "p.yaml" in str(err.value)


@pytest.mark.parametrize(
    "text, key",
    [
        ("run: {seed: one}\n", "run.seed"),
        ("data: {min_duration_s: fast}\n", "data.min_duration_s"),
        ("train: {seeds: 3}\n", "train.seeds"),
        ("train: {max_epochs: 8.5}\n", "train.max_epochs"),
        ("augment: {noise_prob: true}\n", "augment.noise_prob"),
        ("features: {wav2vec2: {mixed_precision: 'yes'}}\n", "features.wav2vec2.mixed_precision"),
        ("features: {device: tpu}\n", "features.device"),
        ("features: {wav2vec2: {weights: finetuned}}\n", "features.wav2vec2.weights"),
        ("features: {wav2vec2: {layer: first}}\n", "features.wav2vec2.layer"),
        ("features: {wav2vec2: {batching: padded}}\n", "features.wav2vec2.batching"),
        ("features: {wav2vec2: {max_batch_seconds: 0}}\n", "features.wav2vec2.max_batch_seconds"),
        ("data: {split: [0.5, 0.1, 0.1]}\n", "data.split"),
        ("systems: {S1: {input: mfcc}}\n", "systems.S1.input"),
    ],
)
def test_wrong_types_and_values_are_named(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(_write(tmp_path, text))


def test_integer_layer_and_relative_paths(tmp_path):
    cfg = load_config(_write(tmp_path, "data: {emodb: corpora/EmoDB}\nfeatures: {wav2vec2: {layer: 6}}\n"))
    assert cfg.features.wav2vec2.layer == 6
    assert cfg.data.emodb == str(tmp_path / "corpora" / "EmoDB")  # relative to the YAML's folder


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")


def test_default_run_folder_is_under_the_projects_reports(tmp_path):
    (tmp_path / "parameters").mkdir()
    path = tmp_path / "parameters" / "x.yaml"
    path.write_text("run: {name: trial}\n")
    folder = run_folder(load_config(path))
    assert folder.root == tmp_path / "reports" / "trial" and folder.data.is_dir()


def test_paper_profile_without_corpora_names_the_missing_root(tmp_path, capsys):
    # A paper run whose corpus root does not exist stops with the key to set.
    (tmp_path / "parameters").mkdir()
    path = tmp_path / "parameters" / "real.yaml"
    path.write_text("run: {name: real, notebooks: [01_data]}\ndata: {crema_d: ../nowhere/CREMA-D}\n")
    with pytest.raises(ConfigError, match=r"data\.crema_d"):
        pipeline.ensure_manifest(load_config(path), run_folder(load_config(path)))


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    code = cli_main(["features", str(_write(tmp_path, "train: {lr: fast}\n"))])
    assert code == 2
    assert "train.lr" in capsys.readouterr().err


# --------------------------------------------------------------------------- ranges checked at load

KNOWN_SYSTEMS = "S1, S2, S3, S4, S5, A1, A2, A3"


@pytest.mark.parametrize(
    "text, key, rule",
    [
        ("features: {frames: -5}", "features.frames", "an integer >= 1"),
        ("features: {frames: 0}", "features.frames", "an integer >= 1"),
        ("features: {sample_rate: 0}", "features.sample_rate", "an integer >= 1"),
        ("features: {threads: 0}", "features.threads", "an integer >= 1 or null"),
        ("features: {logmel: {n_mels: 0}}", "features.logmel.n_mels", "an integer >= 1"),
        ("features: {logmel: {hop_ms: 0}}", "features.logmel.hop_ms", "> 0"),
        ("features: {wav2vec2: {batch_size: 0}}", "features.wav2vec2.batch_size", "an integer >= 1"),
        ("features: {wav2vec2: {layer: -1}}", "features.wav2vec2.layer", "'last' or an integer >= 0"),
        ("data: {min_duration_s: -1}", "data.min_duration_s", ">= 0"),
        ("data: {split: [0.5, 0.5]}", "data.split", "a list of 3"),
        ("data: {demo: {scale: huge}}", "data.demo.scale", "one of default, smoke, paper"),
        ("augment: {noise_prob: 1.5}", "augment.noise_prob", ">= 0 and <= 1"),
        ("augment: {noise_std: -0.1}", "augment.noise_std", ">= 0"),
        ("augment: {crop_frames: 0}", "augment.crop_frames", "an integer >= 1"),
        ("augment: {mask_width: [16, 5]}", "augment.mask_width", "1 <= min <= max"),
        ("augment: {mask_spans: [0, 2]}", "augment.mask_spans[0]", "an integer >= 1"),
        ("augment: {mask_groups_max: 5}", "augment.mask_groups_max", "at most 'augment.mask_channel_groups' (4)"),
        ("train: {batch_size: 0}", "train.batch_size", "an integer >= 1"),
        ("train: {eval_batch_size: 0}", "train.eval_batch_size", "an integer >= 1"),
        ("train: {lr: -1}", "train.lr", "> 0"),
        ("train: {lr: .nan}", "train.lr", "a finite number"),
        ("train: {weight_decay: -1.0e-2}", "train.weight_decay", ">= 0"),
        ("train: {max_epochs: 0}", "train.max_epochs", "an integer >= 1"),
        ("train: {early_stop_patience: -1}", "train.early_stop_patience", "an integer >= 0"),
        ("train: {plateau_factor: 1.0}", "train.plateau_factor", "> 0 and < 1"),
        ("train: {grad_clip: -2.0}", "train.grad_clip", ">= 0"),
        ("train: {threads: 0}", "train.threads", "an integer >= 1 or null"),
        ("train: {seeds: []}", "train.seeds", "a non-empty list"),
        ("train: {seeds: [0, 0]}", "train.seeds", "distinct"),
        ("train: {seeds: [-1]}", "train.seeds[0]", "an integer >= 0"),
        ("train: {select: {system: S9, enabled: true, scope: shared}}", "train.select.system", KNOWN_SYSTEMS),
        ("train: {select: {lrs: []}}", "train.select.lrs", "a non-empty list"),
        ("train: {select: {weight_decays: []}}", "train.select.weight_decays", "a non-empty list"),
        ("train: {select: {max_epochs: 0}}", "train.select.max_epochs", "an integer >= 1"),
        ("systems: {S5: {input: mfcc}}", "systems.S5.input", "one of wav2vec2, logmel"),
        ("systems: {S5: {model: {arch: resnet}}}", "systems.S5.model.arch", "one of resattn, shallow"),
        ("systems: {S5: {model: {se_reduction: 0}}}", "systems.S5.model.se_reduction", "an integer >= 1"),
        ("systems: {S5: {model: {width_scale: 0}}}", "systems.S5.model.width_scale", "> 0"),
        ("systems: {A3: {model: {blocks: [0, 0]}}}", "systems.A3.model.blocks", "distinct"),
        ("systems: {A3: {model: {blocks: []}}}", "systems.A3.model.blocks", "a non-empty list"),
        ("systems: {A3: {model: {blocks: [0, 5]}}}", "systems.A3.model.blocks[1]", ">= 0 and <= 4"),
        ("model_defaults: {resattn: {width_scale: -1}}", "model_defaults.resattn.width_scale", "> 0"),
        ("analysis: {primary_system: S9}", "analysis.primary_system", KNOWN_SYSTEMS),
        ("analysis: {primary_seed: 7}", "analysis.primary_seed", "one of train.seeds (0, 1, 2)"),
        ("analysis: {listening_clips: 0}", "analysis.listening_clips", "an integer >= 1"),
        ("analysis: {pitch_fmin: 600}", "analysis.pitch_fmax", "above 'analysis.pitch_fmin' (600) and below 8000 Hz"),
        ("analysis: {pitch_fmax: 9000}", "analysis.pitch_fmax", "below 8000 Hz"),
        ("analysis: {pitch_frame_length: 256}", "analysis.pitch_frame_length", "at least 493 samples"),
        ("analysis: {pitch_hop_ms: 0}", "analysis.pitch_hop_ms", "> 0"),
        ("analysis: {alpha: 0.0}", "analysis.alpha", "> 0 and <= 0.5"),
        ("analysis: {alpha: 0.51}", "analysis.alpha", "> 0 and <= 0.5"),
        ("analysis: {alpha: -0.05}", "analysis.alpha", "> 0 and <= 0.5"),
    ],
)
def test_impossible_values_fail_at_load_naming_key_and_rule(tmp_path, text, key, rule):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text + "\n"))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'p.yaml'}: '{key}' must be ") and "\n" not in message
    assert rule in message and ", got " in message


@pytest.mark.parametrize("alpha", [0.5, 0.05, 1.0e-4])
def test_alpha_is_accepted_up_to_one_half(tmp_path, alpha):
    assert load_config(_write(tmp_path, f"analysis: {{alpha: {alpha!r}}}\n")).analysis.alpha == alpha


def test_removing_the_analysed_system_names_the_keys_to_change(tmp_path):
    # A profile without S5 must say so at load, not fail after training (issue 15).
    with pytest.raises(
        ConfigError,
        match=r"'analysis\.primary_system' must be one of the systems \(S1, S2, S3, S4, "
        r"A1, A2, A3\), got 'S5'",
    ):
        load_config(_write(tmp_path, "systems: {S5: null}\n"))
    cfg = load_config(
        _write(tmp_path, "systems: {S5: null}\ntrain: {select: {system: S4}}\nanalysis: {primary_system: S4}\n")
    )
    assert "S5" not in cfg.systems and cfg.analysis.primary_system == "S4"


@pytest.mark.parametrize(
    "text, message",
    [
        ("train:\n  lr: 1.0e-3\n  seeds: [0]\n  lr: 3.0e-3\n", "duplicate key 'train.lr' on lines 2 and 4"),
        ("train: {lr: 1.0e-3}\ntrain: {seeds: [0]}\n", "duplicate key 'train' on lines 1 and 2"),
        ("systems:\n  S5: {augment: false}\n  S5: {augment: true}\n", "duplicate key 'systems.S5' on lines 2 and 3"),
    ],
)
def test_a_duplicate_key_is_an_error_naming_key_and_lines(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(_write(tmp_path, text))


def test_the_same_name_in_two_sections_is_not_a_duplicate(tmp_path):
    cfg = load_config(_write(tmp_path, "train: {max_epochs: 3, select: {max_epochs: 1}}\n"))
    assert (cfg.train.max_epochs, cfg.train.select.max_epochs) == (3, 1)


@pytest.mark.parametrize(
    "text, suggestion",
    [
        ("train: {lrr: 0.1}\n", "(did you mean 'train.lr'?)"),
        ("system: {S5: {augment: false}}\n", "(did you mean 'systems'?)"),
        ("systems: {S5: {model: {widht_scale: 0.5}}}\n", "(did you mean 'systems.S5.model.width_scale'?)"),
        ("model_defaults: {resatn: {width_scale: 0.5}}\n", "(did you mean 'model_defaults.resattn'?)"),
    ],
)
def test_unknown_keys_suggest_the_closest_known_one(tmp_path, text, suggestion):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text))
    assert suggestion in str(err.value) and "known keys here: " in str(err.value)


def test_an_unknown_key_without_a_close_match_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, "run: {colour: red}\n"))
    assert "did you mean" not in str(err.value)
    assert str(err.value).endswith("unknown key 'run.colour'; known keys here: name, notebooks, seed, title")


@pytest.mark.parametrize(
    "text, key, rule",
    [
        ("features: {frames: 1.5}", "features.frames", "an integer >= 1"),
        ("features: {threads: two}", "features.threads", "an integer >= 1 or null"),
        ("train: {lr: fast}", "train.lr", "a finite number > 0"),
        ("train: {seeds: 3}", "train.seeds", "a non-empty list"),
        ("train: 3", "train", "a mapping"),
        ("data: {demo: 3}", "data.demo", "a mapping or null"),
        ("run: {seed: true}", "run.seed", "an integer"),
        ("augment: {noise_prob: true}", "augment.noise_prob", "a finite number"),
        ("systems: {A3: {model: {blocks: 3}}}", "systems.A3.model.blocks", "a non-empty list"),
    ],
)
def test_wrong_types_name_the_key_and_the_type(tmp_path, text, key, rule):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text + "\n"))
    assert f"'{key}' must be {rule}" in str(err.value)


def test_a_number_yaml_reads_as_text_says_how_to_write_it(tmp_path):
    with pytest.raises(ConfigError, match=r"'train\.lr' must be a finite number > 0, got '3e-3' \(YAML reads"):
        load_config(_write(tmp_path, "train: {lr: 3e-3}\n"))


def test_cli_names_an_unknown_system_before_any_work(tmp_path, capsys):
    params = tmp_path / "parameters"
    params.mkdir()
    path = params / "t.yaml"
    path.write_text("run: {name: t}\ndata: {demo: {root: ../corpus, scale: smoke}}\n")
    assert cli_main(["train", str(path), "--system", "S9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown system(s) S9" in err and KNOWN_SYSTEMS in err and "\n" not in err
    assert not (tmp_path / "corpus").exists()  # failed before generating the corpus or any features


# --------------------------------------------------------------------------- default systems

# What Tables 4 and 6 compare: (input, arch, SE, Tri-Aug, blocks).
PAPER_SETTINGS = {
    "S1": ("logmel", "shallow", True, False, None),
    "S2": ("wav2vec2", "shallow", True, False, None),
    "S3": ("wav2vec2", "resattn", False, True, None),
    "S4": ("wav2vec2", "resattn", True, False, None),
    "S5": ("wav2vec2", "resattn", True, True, None),
    "A1": ("wav2vec2", "resattn", True, False, None),
    "A2": ("wav2vec2", "resattn", False, True, None),
    "A3": ("wav2vec2", "resattn", True, True, [0, 2, 4]),
}


def _settings(system: SystemConfig) -> tuple:
    return system.input, system.model.arch, system.model.se, system.augment, system.model.blocks


def test_a_profile_without_systems_gets_the_papers_eight(tmp_path):
    cfg = load_config(_write(tmp_path, "run: {name: t}\n"))
    assert {name: _settings(s) for name, s in cfg.systems.items()} == PAPER_SETTINGS
    assert list(cfg.systems) == list(PAPER_SETTINGS)
    assert all(s.model.width_scale == 1.0 and s.model.se_reduction == 16 for s in cfg.systems.values())
    assert cfg.systems["A3"].description == "-Depth (blocks 1, 3, 5)"
    assert Config().systems == cfg.systems  # the dataclass default is the same eight


def test_a_profile_entry_merges_into_the_default_and_null_removes(tmp_path):
    cfg = load_config(
        _write(
            tmp_path,
            "systems:\n  S3: {model: {se_reduction: 8}}\n  S6: {input: logmel, description: new}\n  S1: null\n",
        )
    )
    assert list(cfg.systems) == ["S2", "S3", "S4", "S5", "A1", "A2", "A3", "S6"]  # defaults first, then new names
    s3 = cfg.systems["S3"]
    assert s3.model.se_reduction == 8 and _settings(s3) == PAPER_SETTINGS["S3"]  # the rest of S3 kept
    assert s3.description == "ResAttn1D-CNN (-SE)"
    assert cfg.systems["S6"] == SystemConfig(input="logmel", description="new")  # a new name: SystemConfig's defaults
    assert {n: _settings(s) for n, s in cfg.systems.items() if n not in ("S3", "S6")} == {
        n: v for n, v in PAPER_SETTINGS.items() if n not in ("S1", "S3")
    }


def test_a_null_for_a_system_that_is_not_a_default_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"'systems\.S55: null' removes a system, but S55 is not one of"):
        load_config(_write(tmp_path, "systems: {S55: null}\n"))


def test_model_defaults_fill_what_a_systems_entry_does_not_set(tmp_path):
    cfg = load_config(
        _write(
            tmp_path,
            "model_defaults:\n  resattn: {width_scale: 0.125, se: true}\n"
            "  shallow: {width_scale: 0.5}\n"
            "systems:\n  S5: {model: {width_scale: 0.25}}\n  S6: {}\n"
            "  A1: {model: {arch: shallow}}\n",
        )
    )
    widths = {name: s.model.width_scale for name, s in cfg.systems.items()}
    assert widths == {
        "S1": 0.5,
        "S2": 0.5,
        "S3": 0.125,
        "S4": 0.125,
        "S5": 0.25,  # the profile's own entry wins
        "A1": 0.5,
        "A2": 0.125,
        "A3": 0.125,
        "S6": 0.125,
    }  # A1 now shallow; S6 resattn by default
    # The default entries of S3 and A2 set se: false (what they ablate): model_defaults does not override it.
    assert not cfg.systems["S3"].model.se and not cfg.systems["A2"].model.se and cfg.systems["S5"].model.se


def test_model_defaults_cannot_set_the_architecture(tmp_path):
    with pytest.raises(ConfigError, match=r"'model_defaults\.resattn\.arch' cannot be set"):
        load_config(_write(tmp_path, "model_defaults: {resattn: {arch: shallow}}\n"))


# The 8-system block every profile repeated before the systems became the default ({w}: the width).
OLD_SYSTEMS_BLOCK = """systems:
  S1: {{input: logmel, model: {{arch: shallow}}, augment: false, description: "3-Conv CNN (baseline), log-Mel"}}
  S2: {{input: wav2vec2, model: {{arch: shallow}}, augment: false, description: "3-Conv CNN, wav2vec2"}}
  S3: {{input: wav2vec2, model: {{arch: resattn, se: false{w}}}, augment: true, description: "ResAttn1D-CNN (-SE)"}}
  S4: {{input: wav2vec2, model: {{arch: resattn, se: true{w}}}, augment: false,
       description: "ResAttn1D-CNN (-Tri-Aug)"}}
  S5: {{input: wav2vec2, model: {{arch: resattn, se: true{w}}}, augment: true, description: "ResAttn1D-CNN (proposed)"}}
  A1: {{input: wav2vec2, model: {{arch: resattn, se: true{w}}}, augment: false, description: "-Aug"}}
  A2: {{input: wav2vec2, model: {{arch: resattn, se: false{w}}}, augment: true, description: "-SE"}}
  A3: {{input: wav2vec2, model: {{arch: resattn, se: true, blocks: [0, 2, 4]{w}}}, augment: true,
       description: "-Depth (blocks 1, 3, 5)"}}
"""


@pytest.mark.parametrize(
    "old_width, trimmed",
    [
        ("", ""),  # the paper and rehearsal profiles: no systems section at all
        (", width_scale: 0.125", "model_defaults: {resattn: {width_scale: 0.125}}\n"),  # the demo profile
    ],
)
def test_an_old_full_systems_block_loads_as_its_trimmed_form(tmp_path, old_width, trimmed):
    head = "run: {name: t}\ntrain: {seeds: [0]}\n"
    (tmp_path / "old.yaml").write_text(head + OLD_SYSTEMS_BLOCK.format(w=old_width))
    (tmp_path / "new.yaml").write_text(head + trimmed)
    old, new = (config_to_dict(load_config(tmp_path / f"{name}.yaml")) for name in ("old", "new"))
    assert old.pop("source") != new.pop("source")
    assert old == new and list(old["systems"]) == list(new["systems"])


def test_the_demo_narrows_only_the_resattn_systems():
    cfg = load_config(ROOT / "parameters" / "demo.yaml")
    paper = {n: s for n, s in cfg.systems.items() if n in PAPER_SETTINGS}  # the demo adds S5-... padding rows
    assert {n: s.model.width_scale for n, s in paper.items()} == {
        "S1": 1.0,
        "S2": 1.0,
        "S3": 0.125,
        "S4": 0.125,
        "S5": 0.125,
        "A1": 0.125,
        "A2": 0.125,
        "A3": 0.125,
    }
    assert {name: _settings(s) for name, s in paper.items()} == PAPER_SETTINGS
    assert all(s.model.width_scale == 0.125 for n, s in cfg.systems.items() if n.startswith("S5-"))


# --------------------------------------------------------------------------- keys that stay valid


@dataclass
class _LogMelPlus(LogMelConfig):
    pre_emphasis: float = 0.0  # a field added after caches were built


@dataclass
class _Wav2Vec2Plus(Wav2Vec2Config):
    dither: float = 0.0  # a field added after caches were built


@dataclass
class _FeaturesPlus(FeaturesConfig):
    resample_quality: str = "default"  # a field added after caches were built


@dataclass
class _TrainPlus(TrainConfig):
    label_smoothing: float = 0.0  # a field added after runs were trained


@dataclass
class _ModelPlus(ModelConfig):
    head_dropout: float = 0.0  # a field added after runs were trained


def _extended(section, cls, **changes):
    """``section`` as an instance of its subclass ``cls`` (one more field), with ``changes``."""
    return cls(**{f.name: getattr(section, f.name) for f in dataclasses.fields(section)}, **changes)


def cache_key(cfg, input: str) -> dict:
    """The cache key of ``input`` at the configured layer."""
    return keys.cache_key(cfg, plan_layers(cfg).key(input))


def test_todays_feature_cache_keys_are_unchanged():
    # The keys the existing caches were written under: a change here orphans every cache.
    cfg = load_config(ROOT / "parameters" / "paper.yaml")
    assert cache_key(cfg, "logmel") == {
        "format": 1,
        "input": "logmel",
        "sample_rate": 16000,
        "n_mels": 64,
        "win_ms": 25.0,
        "hop_ms": 20.0,
        "log_floor": 1e-6,
        "standardise": True,
    }
    assert cache_key(cfg, "wav2vec2") == {
        "format": 1,
        "input": "wav2vec2",
        "sample_rate": 16000,
        "model_id": "facebook/wav2vec2-base",
        "revision": "main",
        "weights": "pretrained",
        "layer": "last",
        "config_overrides": {},
    }


@pytest.mark.parametrize(
    "input, where, cls, field, value",
    [
        ("logmel", ("logmel",), _LogMelPlus, "pre_emphasis", 0.97),
        ("wav2vec2", ("wav2vec2",), _Wav2Vec2Plus, "dither", 1e-4),
        ("logmel", (), _FeaturesPlus, "resample_quality", "best"),
        ("wav2vec2", (), _FeaturesPlus, "resample_quality", "best"),
    ],
)
def test_a_new_feature_field_keeps_the_cache_key_until_it_is_changed(input, where, cls, field, value):
    cfg = load_config(ROOT / "parameters" / "smoke.yaml")
    before = cache_key(cfg, input)

    def put(section):
        if where:
            setattr(cfg.features, where[0], section)
        else:
            cfg.features = section

    current = getattr(cfg.features, where[0]) if where else cfg.features
    put(_extended(current, cls))
    assert cache_key(cfg, input) == before  # at its default: existing caches stay valid
    put(_extended(current, cls, **{field: value}))
    assert cache_key(cfg, input) == before | {field: value}  # changed: a new key, recomputed


@pytest.mark.parametrize(
    "section, field, value",
    [
        ("frames", None, 100),
        ("threads", None, 1),
        ("device", None, "cpu"),
        ("wav2vec2", "batch_size", 2),
        ("wav2vec2", "batching", "equal"),
        ("wav2vec2", "max_batch_seconds", 10.0),
    ],
)
def test_settings_that_do_not_determine_features_stay_out_of_the_cache_key(section, field, value):
    cfg = load_config(ROOT / "parameters" / "paper.yaml")
    before = {input: cache_key(cfg, input) for input in ("logmel", "wav2vec2")}
    if field is None:
        setattr(cfg.features, section, value)
    else:
        setattr(getattr(cfg.features, section), field, value)
    assert {input: cache_key(cfg, input) for input in ("logmel", "wav2vec2")} == before


def _run_keys(cfg):
    data = SplitData(input="wav2vec2", x={}, y={}, utt_ids={}, fingerprint="fp")
    return {name: run_key(s, cfg, 1e-3, 1e-2, data, 0) for name, s in cfg.systems.items()}


def test_todays_run_keys_are_unchanged():
    # The keys trained runs carry (computed before the systems became the default): a change retrains all.
    assert _run_keys(load_config(ROOT / "parameters" / "paper.yaml")) == {
        "S1": "239a0db712d4736d",
        "S2": "d168b6337f77cef1",
        "S3": "4ec0fcb523ceffee",
        "S4": "e5f10616f2d6aaa1",
        "S5": "ee84f45bb9c305e4",
        "A1": "e5f10616f2d6aaa1",
        "A2": "4ec0fcb523ceffee",
        "A3": "a94da518badf2c92",
    }


def test_a_new_train_or_model_field_keeps_run_keys_until_it_is_changed():
    cfg = load_config(ROOT / "parameters" / "paper.yaml")
    before = _run_keys(cfg)
    cfg.train = _extended(cfg.train, _TrainPlus)
    for system in cfg.systems.values():
        system.model = _extended(system.model, _ModelPlus)
    assert _run_keys(cfg) == before
    cfg.systems["S5"].model.head_dropout = 0.1
    changed = _run_keys(cfg)
    assert changed["S5"] != before["S5"] and {n: k for n, k in changed.items() if n != "S5"} == {
        n: k for n, k in before.items() if n != "S5"
    }
    cfg.train.label_smoothing = 0.1
    assert all(_run_keys(cfg)[n] not in (before[n], changed[n]) for n in before)


def _layer_problem(input, layers, probe=None):
    seen = []
    _check_layers("X", SystemConfig(input=input, layers=layers), probe, lambda *args: seen.append(args))
    return seen


@pytest.mark.parametrize(
    "input, layers, probe, rule",
    [
        ("logmel", 2, None, "null for input: logmel (log-Mel has no layers)"),
        ("logmel", "last", None, "null for input: logmel (log-Mel has no layers)"),
        (
            "wav2vec2",
            "all",
            None,
            "one layer for input: wav2vec2 (last, an index or best); input: wav2vec2_layers reads several",
        ),
        (
            "wav2vec2",
            [1, 2],
            "all",
            "one layer for input: wav2vec2 (last, an index or best); input: wav2vec2_layers reads several",
        ),
        (
            "wav2vec2",
            "best",
            None,
            "a layer other than best unless analysis.layer_probe is set (best is the probe's choice)",
        ),
        ("wav2vec2_layers", 3, None, "all or a list of at least two layers for input: wav2vec2_layers"),
        ("wav2vec2_layers", "last", None, "all or a list of at least two layers for input: wav2vec2_layers"),
    ],
)
def test_a_systems_layers_must_fit_its_input(input, layers, probe, rule):
    assert _layer_problem(input, layers, probe) == [("systems.X.layers", rule, layers)]


@pytest.mark.parametrize(
    "input, layers, probe",
    [
        ("logmel", None, None),
        ("wav2vec2", None, None),
        ("wav2vec2", "last", None),
        ("wav2vec2", 3, None),
        ("wav2vec2", "best", "all"),
        ("wav2vec2_layers", None, None),
        ("wav2vec2_layers", "all", None),
        ("wav2vec2_layers", [0, 4], None),
    ],
)
def test_layers_that_fit_the_input_pass(input, layers, probe):
    assert _layer_problem(input, layers, probe) == []


def test_folds_problem_names_the_corpora_with_fewer_speakers_than_folds():
    cfg = Config()
    assert folds_problem(cfg, {"EmoDB": 1}) is None  # no folds: nothing to check
    cfg.data.folds = 5
    assert folds_problem(cfg, {"CREMA-D": 91, "EmoDB": 5, "RAVDESS": 0}) is None  # 5 = k is enough; 0: absent
    assert folds_problem(cfg, {"CREMA-D": 91, "EmoDB": 4, "RAVDESS": 3}, " in x.csv") == (
        "config: 'data.folds' = 5 is more folds than speakers (EmoDB has 4, RAVDESS has 3 in x.csv): every fold "
        "must test speakers of every corpus; set data.folds to at most 3"
    )
    cfg.source = "p.yaml"
    assert folds_problem(cfg, {"EmoDB": 1}) == (
        "p.yaml: 'data.folds' = 5 is more folds than speakers (EmoDB has 1): every fold must test speakers of "
        "every corpus; set data.folds to at most 1"
    )


@pytest.mark.parametrize(
    "text, key",
    [
        ("train: {batch_size: true}", "train.batch_size"),  # YAML booleans are not integers
        ("train: {lr: true}", "train.lr"),  # nor numbers
        ("train: {lr: .inf}", "train.lr"),
        ("train: {deterministic: 1}", "train.deterministic"),  # nor is 1 a boolean
        ("run: {name: '..'}", "run.name"),  # a name the pattern allows but a path would climb
        ("run: {name: 'a/b'}", "run.name"),
        ("systems: {S5: {input: 1}}", "systems.S5.input"),
        ("systems: {S5: {layers: true}}", "systems.S5.layers"),
        ("systems: {S5: {layers: 1.0}}", "systems.S5.layers"),
        ("systems: {S5: {layers: [1]}}", "systems.S5.layers"),  # a list of layers holds at least two
        ("systems: {S5: {model: [1]}}", "systems.S5.model"),
        ("train: {select: {lrs: [0.1, -1.0]}}", "train.select.lrs[1]"),
        ("augment: {mask_spans: [1, 2, 3]}", "augment.mask_spans"),
        ("train: {plateau_factor: 0}", "train.plateau_factor"),
        ("analysis: {bootstrap_resamples: 1000001}", "analysis.bootstrap_resamples"),
    ],
)
def test_values_of_the_wrong_kind_name_their_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text + "\n"))
    assert str(err.value).startswith(f"{tmp_path / 'p.yaml'}: '{key}' must be ")


def test_bounds_are_inclusive_where_they_say_so_and_integers_become_floats(tmp_path):
    cfg = load_config(
        _write(
            tmp_path,
            "train: {lr: 1, weight_decay: 0, plateau_factor: 0.999, batch_size: 65536}\n"
            "augment: {noise_prob: 1, mask_spans: [2, 2]}\nanalysis: {bootstrap_resamples: 1000000}\n"
            "run: {name: a.b_c-1}\nsystems: {S5: {layers: 0}, A3: {model: {blocks: [4]}}}\n",
        )
    )
    assert cfg.train.lr == 1.0 and type(cfg.train.lr) is float and type(cfg.train.weight_decay) is float
    assert cfg.train.batch_size == 65536 and cfg.augment.noise_prob == 1.0 and cfg.augment.mask_spans == [2, 2]
    assert cfg.systems["S5"].layers == 0 and cfg.systems["A3"].model.blocks == [4] and cfg.run.name == "a.b_c-1"


_TAGS_RULE = (
    "snake_case tag names (a-z, 0-9, _) other than the annotation file's own columns "
    "(annotated_utc, annotator, label, note, pred, reviewed, utt_id)"
)
_PAPER_SYSTEMS = "S1, S2, S3, S4, S5, A1, A2, A3"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "data: {split: [0.5, 0.3, 0.3]}",
            "'data.split' must be three non-negative fractions summing to 1, got [0.5, 0.3, 0.3]",
        ),
        ("augment: {mask_spans: [3, 2]}", "'augment.mask_spans' must be [min, max] with 1 <= min <= max, got [3, 2]"),
        ("augment: {mask_width: [9, 8]}", "'augment.mask_width' must be [min, max] with 1 <= min <= max, got [9, 8]"),
        (
            "augment: {mask_groups_max: 5}",
            "'augment.mask_groups_max' must be at most 'augment.mask_channel_groups' (4), got 5",
        ),
        (
            "systems: {" + ", ".join(f"{s}: null" for s in _PAPER_SYSTEMS.split(", ")) + "}",
            "'systems' removes every system; keep at least one",
        ),
        (
            "train: {select: {enabled: true, scope: shared, system: S9}}",
            f"'train.select.system' must be one of the systems ({_PAPER_SYSTEMS}), got 'S9'",
        ),
        (
            "analysis: {loco_systems: [S1, S9, S8]}",
            f"'analysis.loco_systems' must be a list of the systems ({_PAPER_SYSTEMS}), got ['S9', 'S8']",
        ),
        (
            "analysis: {sentence_systems: [S5, S9, S8]}",
            f"'analysis.sentence_systems' must be a list of the systems ({_PAPER_SYSTEMS}), got ['S9', 'S8']",
        ),
        (
            "data: {emodb: '.', folds: 11}",
            "'data.folds' = 11 is more folds than speakers (EmoDB has 10 in the public release): every fold must "
            "test speakers of every corpus; set data.folds to at most 10",
        ),
        (
            "data: {emodb: '.'}\nanalysis: {loco_systems: [S1]}",
            "'analysis.loco_systems' must be null or [] with one corpus (leave-one-corpus-out trains on the others; "
            "this profile reads only EmoDB), got ['S1']",
        ),
        (
            "analysis: {loco_systems: [S1, S5]}",
            "'analysis.loco_systems' must be null or [] with one corpus (leave-one-corpus-out trains on the others; "
            "this profile reads only no corpus), got ['S1', 'S5']",
        ),
        ("analysis: {primary_seed: 7}", "'analysis.primary_seed' must be null or one of train.seeds (0, 1, 2), got 7"),
        (
            "systems: {S5: {layers: all}}",
            "'systems.S5.layers' must be one layer for input: wav2vec2 (last, an index or best); input: "
            "wav2vec2_layers reads several, got 'all'",
        ),
        ("analysis: {listening_tags: [ok_tag, Bad]}", f"'analysis.listening_tags' must be {_TAGS_RULE}, got ['Bad']"),
        ("analysis: {listening_tags: [seen_utc]}", f"'analysis.listening_tags' must be {_TAGS_RULE}, got ['seen_utc']"),
        (
            "analysis: {pitch_fmin: 100, pitch_fmax: 100}",
            "'analysis.pitch_fmax' must be above 'analysis.pitch_fmin' (100) and below 8000 Hz, got 100.0",
        ),
        (
            "analysis: {pitch_fmax: 8000}",
            "'analysis.pitch_fmax' must be above 'analysis.pitch_fmin' (65) and below 8000 Hz, got 8000.0",
        ),
        (
            "analysis: {pitch_frame_length: 492}",
            "'analysis.pitch_frame_length' must be at least 493 samples (two periods of pitch_fmin 65 Hz at "
            "16000 Hz), got 492",
        ),
    ],
)
def test_cross_checks_say_the_whole_rule_and_the_value(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text + "\n"))
    assert str(err.value) == f"{tmp_path / 'p.yaml'}: {message}"


@pytest.mark.parametrize("tag", ["utt_id", "annotator", "label", "pred", "reviewed", "note", "annotated_utc"])
def test_the_annotation_files_own_columns_are_not_tags(tmp_path, tag):
    with pytest.raises(ConfigError, match="listening_tags"):
        load_config(_write(tmp_path, f"analysis: {{listening_tags: [ok_tag, {tag}]}}\n"))


@pytest.mark.parametrize(
    "text",
    [
        "augment: {mask_groups_max: 4}",  # as many groups as there are: allowed
        "augment: {mask_spans: [2, 2], mask_width: [7, 7]}",
        "analysis: {primary_seed: 2, pitch_frame_length: 493, listening_tags: [a_1, hybrid_prosody]}",
        "analysis: {loco_systems: [S1, S5]}\ndata: {emodb: '.', ravdess: '.'}",
        "data: {emodb: '.', folds: 10}",
        "analysis: {pitch_fmax: 7999}",  # below the Nyquist frequency, 8000 Hz
    ],
)
def test_values_at_the_edge_of_a_cross_check_pass(tmp_path, text):
    assert isinstance(load_config(_write(tmp_path, text + "\n")), Config)


@pytest.mark.parametrize(
    "text, message",
    [
        ("train: {batch_size: 0}", "'train.batch_size' must be an integer >= 1 and <= 65536, got 0"),
        ("train: {threads: 0}", "'train.threads' must be an integer >= 1 or null, got 0"),
        ("systems: {S5: {model: [1]}}", "'systems.S5.model' must be a mapping, got [1]"),
        ("train: {deterministic: 1}", "'train.deterministic' must be true or false, got 1"),
        ("features: {wav2vec2: {layer: -1}}", "'features.wav2vec2.layer' must be 'last' or an integer >= 0, got -1"),
        (
            "systems: {S5: {layers: 1.5}}",
            "'systems.S5.layers' must be one of last, best, all or an integer >= 0 or a list (each an integer >= 0, "
            "distinct) or null, got 1.5",
        ),
    ],
)
def test_a_wrong_value_is_quoted_in_the_message(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text + "\n"))
    assert str(err.value) == f"{tmp_path / 'p.yaml'}: {message}"
