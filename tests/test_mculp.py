"""serlib.mculp: labels, drops and their audit, the speaker split, split files, config and CLI."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import SMALL_TREE_BAD, build_small_tree
from serlib.common.facts import CLASSES
from serlib.tools.cli import main as cli_main
from serlib.common.config import ConfigError, load_config
from serlib import pipeline
from serlib.common.facts import SUBSETS
from serlib.data import democorpus
from serlib.data.mculp import (DROP_REASONS, MANIFEST_COLUMNS, SplitFileError, _allocate_strata,
                          normalise_emotion, read_manifest,
                          run_mculp, speaker_table, split_from_file, split_speakers, subset_counts,
                          write_split_file)
from serlib.common.runfolder import RunFolder
from serlib.data.stage import corpus_roots, load_manifest

MCULP_REASONS = {path: reason for path, reason in SMALL_TREE_BAD.items() if reason in DROP_REASONS}


def _run(roots, out, **kwargs):
    return run_mculp(crema_d=roots["CREMA-D"], ravdess=roots["RAVDESS"], emodb=roots["EmoDB"], out=out, **kwargs)


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize("value, corpus, expected", [
    ("ANG", "CREMA-D", "anger"), ("HAP", "CREMA-D", "happiness"), ("05", "RAVDESS", "anger"),
    ("06", "RAVDESS", "fear"), ("02", "RAVDESS", "calm"), ("08", "RAVDESS", "surprised"), ("W", "EmoDB", "anger"),
    ("A", "EmoDB", "fear"), ("L", "EmoDB", "boredom"), ("T", "EmoDB", "sadness"), ("Angry", None, "anger"),
    ("Ärger", None, "anger"), ("fearful", None, "fear"), (" Happy ", None, "happiness"), ("Trauer", None, "sadness"),
    ("disgusted", None, "disgust"), ("Langeweile", None, "boredom"), ("contempt", None, None),
])
def test_normalise_emotion(value, corpus, expected):
    assert normalise_emotion(value, corpus) == expected


# --------------------------------------------------------------------------- split arithmetic


@pytest.mark.parametrize("n, expected", [
    (91, [73, 9, 9]), (24, [19, 3, 2]), (10, [8, 1, 1]), (5, [3, 1, 1]), (3, [1, 1, 1]), (2, [2, 0, 0]),
    (1, [1, 0, 0]), (125, [100, 13, 12]),
])
def test_subset_counts(n, expected):
    assert subset_counts(n, (0.8, 0.1, 0.1)) == expected


@pytest.mark.parametrize("totals, sizes", [
    ([73, 9, 9], {"male": 48, "female": 43}), ([19, 3, 2], {"male": 12, "female": 12}),
    ([8, 1, 1], {"male": 5, "female": 5}), ([3, 1, 1], {"male": 2, "female": 2, "unknown": 1}),
])
def test_strata_allocation_keeps_both_margins(totals, sizes):
    allocation = _allocate_strata(totals, sizes)
    assert {s: sum(c) for s, c in allocation.items()} == sizes
    assert [sum(c[k] for c in allocation.values()) for k in range(3)] == totals
    for stratum, counts in allocation.items():  # each stratum within one speaker of proportional
        assert all(abs(c - sizes[stratum] * t / sum(totals)) < 1.0 + 1e-9 for c, t in zip(counts, totals))


# --------------------------------------------------------------------------- every real file name


@pytest.fixture(scope="module")
def real_result(real_tree, tmp_path_factory):
    return _run(real_tree, tmp_path_factory.mktemp("mculp-real"))


def test_real_names_give_the_protocols_counts(real_result):
    m = real_result.manifest
    assert len(m) == 8952 and m["speaker"].nunique() == 125
    assert m["label"].value_counts().to_dict() == {"negative": 3099, "sad_fear": 3057, "pos_neutral": 2796}
    assert m["corpus"].value_counts().to_dict() == {"CREMA-D": 7442, "RAVDESS": 1056, "EmoDB": 454}
    assert real_result.excluded["reason"].value_counts().to_dict() == {"calm": 192, "surprised": 192,
                                                                       "boredom": 81}


def test_real_split_is_speaker_disjoint_and_proportional(real_result):
    m = real_result.manifest
    assert (m.groupby("speaker")["split"].nunique() == 1).all()
    speakers = m.drop_duplicates("speaker")
    for corpus, group in speakers.groupby("corpus"):
        counts = group["split"].value_counts().reindex(SUBSETS, fill_value=0).tolist()
        assert counts == subset_counts(len(group), (0.8, 0.1, 0.1)), corpus
        for sex, by_sex in group.groupby("sex"):  # sex-stratified: within one speaker of proportional
            share = by_sex["split"].value_counts().reindex(SUBSETS, fill_value=0)
            assert all(abs(share[s] - len(by_sex) * c / len(group)) < 1 for s, c in zip(SUBSETS, counts)), sex
    percent = m["split"].value_counts(normalize=True) * 100
    assert abs(percent["train"] - 80) < 2 and abs(percent["val"] - 10) < 2 and abs(percent["test"] - 10) < 2
    assert set(m["label"]) == set(CLASSES) and all(set(g["label"]) == set(CLASSES) for _, g in m.groupby("split"))


def test_real_split_is_deterministic_and_round_trips(real_result, tmp_path):
    speakers = speaker_table(real_result.manifest)
    first, again = split_speakers(speakers, seed=0), split_speakers(speakers, seed=0)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, real_result.split)
    assert not split_speakers(speakers, seed=1).equals(first)
    path = write_split_file(first, tmp_path / "split.csv")
    pd.testing.assert_frame_equal(split_from_file(speakers, path), first)


def test_real_manifest_file_is_the_contract(real_result):
    manifest = read_manifest(real_result.out / "manifest.csv")
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    pd.testing.assert_frame_equal(manifest, real_result.manifest, check_dtype=False)
    assert manifest["utt_id"].is_unique and manifest["utt_id"].iloc[0] == "CREMA-D/1001_DFA_ANG_XX"
    assert set(manifest.loc[manifest["corpus"] == "RAVDESS", "emotion_code"]) == {"01", "03", "04", "05", "06", "07"}


# --------------------------------------------------------------------------- drops, audit, outputs


@pytest.fixture
def small_result(small_tree, tmp_path):
    return _run(small_tree, tmp_path / "out")


@pytest.mark.parametrize("rel, reason", sorted(MCULP_REASONS.items()))
def test_every_mculp_drop_is_in_excluded_csv(small_result, small_tree, rel, reason):
    excluded = pd.read_csv(small_result.out / "excluded.csv")
    path = str(small_tree["CREMA-D"].parent / rel)
    assert excluded.loc[excluded["path"] == path, "reason"].tolist() == [reason]
    assert path not in set(small_result.manifest["path"])


def test_audit_counts_add_up(small_result):
    audit = pd.read_csv(small_result.out / "mculp_audit.csv")
    assert list(audit.columns) == ["corpus", "reason", "kept", "dropped", "detail"]
    kept = audit[audit["reason"] == "kept"].set_index("corpus")["kept"]
    assert kept.to_dict() == small_result.manifest["corpus"].value_counts().to_dict()
    assert audit["dropped"].sum() == len(small_result.excluded) == len(SMALL_TREE_BAD) + 2 * 7  # 8 calm, 8 surprised
    reasons = set(zip(audit["corpus"], audit["reason"]))
    assert {(rel.split("/")[0], reason) for rel, reason in SMALL_TREE_BAD.items()} <= reasons
    assert "level X read as XX (older release): 1" in kept_detail(audit, "CREMA-D")


def kept_detail(audit: pd.DataFrame, corpus: str) -> str:
    return audit.loc[(audit["corpus"] == corpus) & (audit["reason"] == "kept"), "detail"].item()


def test_small_manifest(small_result):
    m = small_result.manifest
    assert list(m.columns) == list(MANIFEST_COLUMNS)
    assert set(m["label"]) == set(CLASSES) and set(m["split"]) == set(SUBSETS)
    assert set(m["emotion"]) == {"anger", "disgust", "fear", "happiness", "sadness", "neutral"}
    assert "CREMA-D/1002_ITH_SAD_X" in set(m["utt_id"])
    assert m.groupby("corpus")["speaker"].nunique().to_dict() == {"CREMA-D": 6, "RAVDESS": 4, "EmoDB": 4}
    for name in ("manifest.csv", "excluded.csv", "mculp_audit.csv", "split.csv"):
        assert (small_result.out / name).is_file()


@pytest.mark.parametrize("min_duration_s, short_kept", [(1.0, False), (0.4, True)])
def test_min_duration(small_tree, tmp_path, min_duration_s, short_kept):
    result = _run(small_tree, tmp_path, min_duration_s=min_duration_s)
    assert ("CREMA-D/1003_TIE_HAP_XX" in set(result.manifest["utt_id"])) == short_kept


def test_only_some_corpora(small_tree, tmp_path):
    result = run_mculp(emodb=small_tree["EmoDB"], out=tmp_path)
    assert set(result.manifest["corpus"]) == {"EmoDB"} and len(result.manifest) == 48


def test_verbose_prints_a_summary(small_tree, tmp_path, capsys):
    _run(small_tree, tmp_path, verbose=True)
    out = capsys.readouterr().out
    assert "MCULP: kept" in out and "speakers per subset" in out and "pos_neutral" in out


# --------------------------------------------------------------------------- split files


def test_split_file_is_reused_exactly(small_tree, small_result, tmp_path):
    published = small_result.split.copy()
    published["split"] = published["split"].iloc[::-1].to_numpy()  # a split no seed would give
    path = write_split_file(published, tmp_path / "published.csv")
    result = _run(small_tree, tmp_path / "again", seed=123, split_file=path)
    pd.testing.assert_frame_equal(result.split, published)
    assert dict(zip(result.manifest["speaker"], result.manifest["split"])) == dict(
        zip(published["speaker"], published["split"]))


def test_split_file_missing_a_speaker_is_an_error(small_tree, small_result, tmp_path):
    path = write_split_file(small_result.split[small_result.split["speaker"] != "EmoDB:09"], tmp_path / "s.csv")
    with pytest.raises(SplitFileError, match=f"{path}: speaker\\(s\\) EmoDB:09 of the data are not in"):
        _run(small_tree, tmp_path / "again", split_file=path)


@pytest.mark.parametrize("text, message", [
    ("who,subset\nEmoDB:03,train\n", "needs columns speaker,split"),
    ("speaker,split\nEmoDB:03,training\n", "split must be train, val or test"),
    ("speaker,split\nEmoDB:03,train\nEmoDB:03,test\n", "listed with different subsets"),
])
def test_bad_split_files(small_tree, tmp_path, text, message):
    path = tmp_path / "split.csv"
    path.write_text(text)
    with pytest.raises(SplitFileError, match=message):
        run_mculp(emodb=small_tree["EmoDB"], out=tmp_path / "out", split_file=path)


def test_missing_split_file(small_tree, tmp_path):
    with pytest.raises(SplitFileError, match="split file not found"):
        run_mculp(emodb=small_tree["EmoDB"], out=tmp_path, split_file=tmp_path / "nope.csv")


# --------------------------------------------------------------------------- command line


def test_cli_mculp(small_tree, tmp_path):
    out = tmp_path / "cli"
    code = cli_main(["mculp", "--crema-d", str(small_tree["CREMA-D"]), "--ravdess", str(small_tree["RAVDESS"]),
                     "--out", str(out), "--seed", "3"])
    assert code == 0
    manifest = read_manifest(out / "manifest.csv")
    assert set(manifest["corpus"]) == {"CREMA-D", "RAVDESS"} and (out / "split.csv").is_file()


def test_cli_missing_folder_names_it(tmp_path, capsys):
    code = cli_main(["mculp", "--ravdess", str(tmp_path / "absent"), "--out", str(tmp_path / "out")])
    assert code == 2 and f"folder not found: {tmp_path / 'absent'}" in capsys.readouterr().err


def test_cli_needs_a_corpus(tmp_path, capsys):
    assert cli_main(["mculp", "--out", str(tmp_path)]) == 2
    assert "at least one" in capsys.readouterr().err


# --------------------------------------------------------------------------- config and run folder


def _config(tmp_path, data: str):
    path = tmp_path / "params.yaml"
    path.write_text(f"run: {{name: t}}\ndata:\n{data}")
    return load_config(path)


def test_configured_root_that_does_not_exist(tmp_path):
    cfg = _config(tmp_path, "  crema_d: missing-folder\n")
    with pytest.raises(ConfigError, match=f"'data.crema_d' = {tmp_path / 'missing-folder'} does not exist"):
        corpus_roots(cfg)


def test_no_corpus_configured(tmp_path):
    with pytest.raises(ConfigError, match="no corpus configured"):
        corpus_roots(_config(tmp_path, "  split_seed: 0\n"))


def test_demo_roots_default_and_explicit_roots_win(tmp_path):
    (tmp_path / "mine").mkdir()
    cfg = _config(tmp_path, "  emodb: mine\n  demo: {root: corpora, scale: smoke}\n")
    assert corpus_roots(cfg) == {"CREMA-D": tmp_path / "corpora/CREMA-D", "RAVDESS": tmp_path / "corpora/RAVDESS",
                                 "EmoDB": tmp_path / "mine"}


def test_ensure_manifest_asks_the_generator_for_the_configured_demo_corpus(tmp_path, monkeypatch):
    # The generator decides reuse itself (its marker holds seed, scale and design version).
    calls = []

    def fake_generate(root, seed=0, scale="default", verbose=False):
        calls.append((root, seed, scale))
        build_small_tree(root)
        (root / democorpus.MARKER).write_text(json.dumps({"seed": seed, "scale": scale}))
        return root

    monkeypatch.setattr("serlib.pipeline.generate_demo_corpus", fake_generate)
    cfg = _config(tmp_path, "  demo: {root: demo/corpora, seed: 3, scale: smoke}\n  split_seed: 5\n")
    folder = RunFolder(tmp_path / "run").ensure()
    manifest = pipeline.ensure_manifest(cfg, folder)
    assert calls == [(tmp_path / "demo/corpora", 3, "smoke")]
    assert len(manifest) == 73 + 48 + 48 and folder.manifest.is_file() and folder.split_file.is_file()
    pd.testing.assert_frame_equal(load_manifest(folder), manifest)
