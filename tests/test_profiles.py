"""The profile matrix (issue 22): the smoke corpus through all six notebooks in the shapes users' profiles take.

Each profile is a variation of ``parameters/smoke.yaml``: speaker folds, only log-Mel systems in a YAML kept
outside the project, one corpus, two corpora with leave-one-corpus-out, and folds with the layer probe and S6.
Each test asserts that the report holds the tables the profile can have and names, in one line each, those it
skips.

Time: every profile reads the session smoke run's feature cache (``features.cache_dir``) and starts from its
eGeMAPS and prosody caches, trains two epochs without the selection grid, and resamples the bootstrap 200 times;
the notebooks' own start-up is most of what a profile costs.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from serlib.common.config import ConfigError, load_config
from serlib.common.runfolder import RunFolder, default_run_root
from serlib.report.runner import run_report
from serlib.tools.cli import main

REPO = Path(__file__).resolve().parents[1]
SMOKE_CORPUS = REPO / "data" / "smoke-corpus"  # parameters/smoke.yaml's corpus (the session smoke run makes it)
PAPER = ("S1", "S2", "S3", "S4", "S5", "A1", "A2", "A3")
TINY = {
    "train": {"max_epochs": 2, "early_stop_patience": 2, "plateau_patience": 1, "select": {"enabled": False}},
    "analysis": {
        "bootstrap_resamples": 200,
        "listening_clips": 4,
        "layer_probe": None,
        "loco_systems": [],
        "feature_baselines": False,
    },
}


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _profile(smoke_run: RunFolder, name: str, keep: tuple, extra: dict) -> dict:
    """smoke.yaml, tiny, reading the smoke run's feature cache, with only the systems ``keep`` (and ``extra``'s)."""
    base = yaml.safe_load((REPO / "parameters" / "smoke.yaml").read_text())
    base = _merge(base, TINY)
    base["run"]["name"] = name
    base["data"]["demo"]["root"] = str(SMOKE_CORPUS)
    base["features"]["cache_dir"] = str(smoke_run.data / "features")
    base["systems"] = {s: None for s in PAPER if s not in keep}
    return _merge(base, extra)


def _one_corpus(*names: str) -> dict:
    return {"data": {"demo": None, **{key: str(SMOKE_CORPUS / folder) for key, folder in names}}}


LOGMEL_RESATTN = {
    "input": "logmel",
    "model": {"arch": "resattn", "mask_padding": True},
    "description": "ResAttn1D-CNN on log-Mel, masked",
}

# name -> (systems kept, profile changes, tables it must hold, lines naming what it skips). The shapes:
# (a) folds; (b) only log-Mel systems, without S5 or A1-A3, and (e) a YAML outside the project, in one run
# ("logmel-outside": where the YAML lives is independent of what it trains, and each run of six notebooks costs
# about a minute); (c) one corpus; (d) two corpora with leave-one-corpus-out; (f) folds with the probe and S6.
MATRIX = {
    "folds": (
        ("S1", "S2", "S5", "A1"),
        {"data": {"folds": 3}, "analysis": {"feature_baselines": True}},
        [
            "table_s4_folds",
            "table_4",
            "table_5",
            "table_s26_paired",
            "table_s27_beyond",
            "table_s29_fold_curves",
            "table_8",
            "table_s25",
            "table_6",
            "table_s32_paired",
            "table_7",
            "table_s40",
            "table_s48_calibration",
            "table_s50",
        ],
        ["Table S33: skipped, analysis.loco_systems is []", "analysis.layer_probe is off in this profile"],
    ),
    "logmel-outside": (
        ("S1",),
        {"systems": {"R1": LOGMEL_RESATTN}, "analysis": {"primary_system": "R1", "feature_baselines": True}},
        [
            "table_4",
            "table_5",
            "table_s27_beyond",
            "fig_2_resattn",
            "table_s22",
            "table_8",
            "table_s25",
            "table_7",
            "table_s50",
        ],
        [
            "Table S26: skipped",
            "Table 6, Fig. S30 and Tables S31, S32: skipped, it needs S5 and at "
            "least one of A1, A2, A3; this profile has S1, R1",
        ],
    ),
    "one-corpus": (
        ("S1", "S5"),
        _one_corpus(("crema_d", "CREMA-D")),
        ["table_4", "table_5", "table_8", "table_7", "table_s41"],
        [
            "Table S26: skipped",
            "Table S33: skipped, leave-one-corpus-out trains on some corpora and tests "
            "on another; this profile reads only CREMA-D",
            "Table 6, Fig. S30 and Tables S31, S32: skipped",
        ],
    ),
    "two-corpora-loco": (
        ("S1", "S5"),
        _merge(_one_corpus(("crema_d", "CREMA-D"), ("ravdess", "RAVDESS")), {"analysis": {"loco_systems": ["S1"]}}),
        ["table_5", "table_s33_loco", "table_7"],
        ["Table 6, Fig. S30 and Tables S31, S32: skipped"],
    ),
    "folds-probe-s6": (
        ("S5",),
        {
            "data": {"folds": 2},
            "analysis": {"layer_probe": "all"},
            "systems": {"S6": {"input": "wav2vec2_layers", "layers": "all"}, "S5-best": {"layers": "best"}},
        },
        [
            "table_s12",
            "table_s14_probe_folds",
            "fig_s13",
            "fig_s27",
            "table_5",
            "table_s27_beyond",
            "table_s29_fold_curves",
            "table_7",
            "table_s50",
        ],
        [
            "Table S26: skipped",
            "Table 6, Fig. S30 and Tables S31, S32: skipped",
            "Fig. 1 is skipped: it draws Tri-Aug on a clip's log-Mel features",
        ],
    ),
}


@pytest.fixture(scope="module")
def analysis_caches(smoke_run, tmp_path_factory) -> Path:
    """The eGeMAPS and prosody caches (keyed by each clip's file and the settings), shared by the matrix: they
    start as the smoke run's and grow with each profile (a folds profile analyses every clip's prosody once)."""
    folder = tmp_path_factory.mktemp("matrix-caches")
    for cache in (smoke_run.egemaps_cache, smoke_run.prosody_cache):
        if cache.is_file():
            shutil.copy(cache, folder / cache.name)
    return folder


def _run(smoke_run: RunFolder, caches: Path, tmp_path: Path, name: str) -> RunFolder:
    keep, extra, _, _ = MATRIX[name]
    profile = _profile(smoke_run, f"matrix-{name}", keep, extra)
    outside = name == "logmel-outside"  # a YAML outside any project: `serlib run` with no --out, as a user would
    path = tmp_path / ("exp/mine.yaml" if outside else f"parameters/{name}.yaml")
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    folder = RunFolder(default_run_root(load_config(path)) if outside else tmp_path / "run")
    _copy_caches(caches, folder.analysis)
    if outside:
        assert main(["-q", "run", str(path)]) == 0
    else:
        run_report(load_config(path), out=folder.root, verbose=False)
    _copy_caches(folder.analysis, caches)
    return folder


def _copy_caches(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in ("egemaps.csv", "prosody.csv"):
        if (source / name).is_file():
            shutil.copy(source / name, target / name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MATRIX))
def test_every_notebook_runs_for_the_profile(smoke_run, analysis_caches, tmp_path, name):
    _, _, tables, skipped = MATRIX[name]
    folder = _run(smoke_run, analysis_caches, tmp_path, name)
    assert folder.report.is_file()
    made = {p.stem for p in folder.tables.glob("*.csv")} | {p.stem for p in folder.figures.glob("*.png")}
    assert not [t for t in tables if t not in made], f"{name}: missing {sorted(set(tables) - made)}"
    report = folder.report.read_text()
    for line in skipped:
        assert line in report, f"{name}: the report does not say {line!r}"
    assert "Traceback" not in report and "FAILED" not in report
    _check_profile(name, folder)


def _check_profile(name: str, folder: RunFolder) -> None:
    manifest = pd.read_csv(folder.manifest)
    if name in ("folds", "folds-probe-s6"):
        k = MATRIX[name][1]["data"]["folds"]
        # out-of-fold: every clip is tested once (Table S40 counts the analysed system's test clips)
        assert pd.read_csv(folder.tables / "table_s40.csv")["clips"].sum() == len(manifest)
        table5 = pd.read_csv(folder.tables / "table_5.csv")
        assert {"acc_folds", "acc_folds_sd", "uar_folds"} <= set(table5.columns)
        assert (table5["n_clips"] == len(manifest)).all() and (table5["n_folds"] == k).all()
        curves = pd.read_csv(folder.tables / "table_s29_fold_curves.csv")
        assert sorted(set(curves["fold"])) == list(range(1, k + 1))
    if name == "folds":
        from serlib.inference.bundle import export_bundle

        bundle = export_bundle(folder.root, folder.root / "bundle", system="S5")  # a fold's model travels
        assert bundle["metrics"]["protocol"] == "fold1" and bundle["metrics"]["test"]["n_clips"] == len(manifest)
        assert "One fold's model" in (folder.root / "bundle" / "README.md").read_text()
        table6 = pd.read_csv(folder.tables / "table_6.csv")
        assert list(table6["variant"]) == ["Full", "A1"] and "test_acc_folds" in table6
        folds = pd.read_csv(folder.tables / "table_s4_folds.csv")
        assert folds["test speakers"].sum() == manifest["speaker"].nunique()
    if name == "folds-probe-s6":
        probe = pd.read_csv(folder.tables / "table_s14_probe_folds.csv")
        assert list(probe["fold"]) == [1, 2] and probe["test clips"].sum() == len(manifest)
    if name == "logmel-outside":
        summary = yaml.safe_load(folder.features_summary.read_text())
        assert list(summary["inputs"]) == ["logmel"]  # nothing of wav2vec2 is extracted or read
        assert set(pd.read_csv(folder.tables / "table_5.csv")["system"]) == {"S1"}
        report = folder.report.read_text()
        assert "none: no system of this run reads wav2vec2" in report and "Random encoder weights" not in report
        key = report[report.index('id="key-results"') :][:3000]  # the analysed system's row comes from Table S27
        assert "<b>R1</b>" in key and "log-Mel features only" in key and 'href="#table-s27"' in key
        # `serlib run exp/mine.yaml` wrote exp/reports/<run.name>/, beside the YAML (README, "Your own parameters file")
        assert (folder.root.parents[1] / "mine.yaml").is_file() and folder.root.parent.name == "reports"
        assert folder.root.name == "matrix-logmel-outside" and (folder.notebooks / "06_listening.ipynb").is_file()
    if name == "one-corpus":
        assert set(manifest["corpus"]) == {"CREMA-D"}
    if name == "two-corpora-loco":
        loco = pd.read_csv(folder.tables / "table_s33_loco.csv")
        assert sorted(loco["held_out"]) == ["CREMA-D", "RAVDESS"] and set(loco["system"]) == {"S1"}
        assert (loco["trained_on"] == loco["held_out"].map({"CREMA-D": "RAVDESS", "RAVDESS": "CREMA-D"})).all()


# --------------------------------------------------------------------------- bad combinations, at load


def _write(tmp_path: Path, profile: dict) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


@pytest.mark.parametrize(
    "profile, message",
    [
        (
            {"data": {"emodb": "."}, "analysis": {"loco_systems": ["S1"]}},
            "'analysis.loco_systems' must be null or [] with one corpus",
        ),
        (
            {"data": {"emodb": ".", "folds": 11}},
            "'data.folds' = 11 is more folds than speakers (EmoDB has 10 in the public release)",
        ),
    ],
)
def test_a_bad_combination_is_one_line_at_load(tmp_path, profile, message):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, profile))
    assert message in str(err.value) and "\n" not in str(err.value) and str(tmp_path / "bad.yaml") in str(err.value)


def test_more_folds_than_the_demo_corpus_has_speakers_stops_serlib_run_before_anything(tmp_path, capsys):
    path = _write(
        tmp_path,
        {
            "run": {"name": "bad"},
            "data": {"demo": {"root": str(tmp_path / "corpus"), "scale": "smoke"}, "folds": 6},
            "systems": {s: None for s in PAPER[1:]},
            "analysis": {"primary_system": "S1"},
        },
    )
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'data.folds' = 6 is more folds than speakers" in err
    assert "CREMA-D has 5" in err and "set data.folds to at most 5" in err
    assert not (tmp_path / "reports").exists() and not (tmp_path / "corpus").exists()


def test_more_folds_than_a_corpus_copy_holds_is_one_line_when_the_folds_are_made(tmp_path):
    # A real root with fewer speakers than its release (a partial copy): found when the manifest is read.
    from serlib import pipeline

    cfg = load_config(_write(tmp_path, {"data": {"emodb": str(SMOKE_CORPUS / "EmoDB"), "folds": 6}}))
    folder = RunFolder(tmp_path / "run").ensure()
    if not SMOKE_CORPUS.is_dir():
        pipeline.ensure_corpus(load_config(REPO / "parameters" / "smoke.yaml"))
    with pytest.raises(
        ConfigError,
        match=r"'data\.folds' = 6 is more folds than speakers \(EmoDB has 5 in .*"
        r"manifest\.csv\)",
    ):
        pipeline.ensure_manifest(cfg, folder)


@pytest.mark.parametrize(
    "select, read",
    [
        ({"enabled": False, "scope": "shared"}, False),
        ({"enabled": True, "scope": "system"}, False),
        ({"enabled": True, "scope": "family"}, False),
        ({"enabled": True, "scope": "shared"}, True),
    ],
)
def test_select_system_is_checked_only_where_it_is_read(tmp_path, select, read):
    # train.select.system names the system of the one shared grid; a profile without S5 need not set it otherwise
    profile = {"systems": {"S5": None}, "analysis": {"primary_system": "S4"}, "train": {"select": select}}
    if read:
        with pytest.raises(ConfigError, match=r"'train\.select\.system' must be one of the systems"):
            load_config(_write(tmp_path, profile))
    else:
        assert load_config(_write(tmp_path, profile)).train.select.system == "S5"
