"""Typed parameters: every profile loads; unknown keys, wrong types and bad values name the key."""
from pathlib import Path

import pytest

from serlib import pipeline
from serlib.tools.cli import main as cli_main
from serlib.common.config import Config, ConfigError, config_to_dict, load_config
from serlib.common.runfolder import run_folder

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
    assert (t.batch_size, t.max_epochs, t.early_stop_patience, t.plateau_patience, t.plateau_factor,
            t.grad_clip) == (64, 80, 30, 10, 0.5, 2.0)
    assert len(t.seeds) == 3
    assert set(cfg.systems) == {"S1", "S2", "S3", "S4", "S5", "A1", "A2", "A3"}


def _write(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, key", [
    ("run: {nme: x}\n", "'run.nme'"),
    ("colour: red\n", "'colour'"),
    ("features: {wav2vec2: {layr: 3}}\n", "'features.wav2vec2.layr'"),
    ("systems: {S9: {inptu: logmel}}\n", "'systems.S9.inptu'"),
])
def test_unknown_keys_are_named(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        load_config(_write(tmp_path, text))
    assert "p.yaml" in str(err.value)


@pytest.mark.parametrize("text, key", [
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
    ("features: {wav2vec2: {max_batch_seconds: 0}}\n", "features.wav2vec2.batch_size"),
    ("data: {split: [0.5, 0.1, 0.1]}\n", "data.split"),
    ("systems: {S1: {input: mfcc}}\n", "systems.S1.input"),
])
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
