"""serlib.data.mculp: labels, drops and their audit, the split it writes, split files, config and CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import SMALL_TREE_BAD, build_small_tree, write_wav

from serlib import pipeline
from serlib.analysis.datatables import mculp_audit
from serlib.common.config import ConfigError, load_config
from serlib.common.facts import CLASSES, SUBSETS
from serlib.common.runfolder import RunFolder
from serlib.data import democorpus
from serlib.data.mculp import (
    DROP_REASONS,
    MANIFEST_COLUMNS,
    normalise_emotion,
    read_manifest,
    run_mculp,
    settings_key,
    table_digest,
)
from serlib.data.speakers import (
    SplitFileError,
    speaker_table,
    split_from_file,
    split_speakers,
    subset_counts,
    write_split_file,
)
from serlib.data.stage import corpus_roots, load_manifest
from serlib.tools.cli import main as cli_main

MCULP_REASONS = {path: reason for path, reason in SMALL_TREE_BAD.items() if reason in DROP_REASONS}


def _run(roots, out, **kwargs):
    return run_mculp(crema_d=roots["CREMA-D"], ravdess=roots["RAVDESS"], emodb=roots["EmoDB"], out=out, **kwargs)


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    "value, corpus, expected",
    [
        ("ANG", "CREMA-D", "anger"),
        ("HAP", "CREMA-D", "happiness"),
        ("05", "RAVDESS", "anger"),
        ("06", "RAVDESS", "fear"),
        ("02", "RAVDESS", "calm"),
        ("08", "RAVDESS", "surprised"),
        ("W", "EmoDB", "anger"),
        ("A", "EmoDB", "fear"),
        ("L", "EmoDB", "boredom"),
        ("T", "EmoDB", "sadness"),
        ("Angry", None, "anger"),
        ("Ärger", None, "anger"),
        ("fearful", None, "fear"),
        (" Happy ", None, "happiness"),
        ("Trauer", None, "sadness"),
        ("disgusted", None, "disgust"),
        ("Langeweile", None, "boredom"),
        ("contempt", None, None),
    ],
)
def test_normalise_emotion(value, corpus, expected):
    assert normalise_emotion(value, corpus) == expected


# --------------------------------------------------------------------------- every real file name


@pytest.fixture(scope="module")
def real_result(real_tree, tmp_path_factory):
    return _run(real_tree, tmp_path_factory.mktemp("mculp-real"))


def test_real_names_give_the_protocols_counts(real_result):
    m = real_result.manifest
    assert len(m) == 8952 and m["speaker"].nunique() == 125
    assert m["label"].value_counts().to_dict() == {"negative": 3099, "sad_fear": 3057, "pos_neutral": 2796}
    assert m["corpus"].value_counts().to_dict() == {"CREMA-D": 7442, "RAVDESS": 1056, "EmoDB": 454}
    assert real_result.excluded["reason"].value_counts().to_dict() == {"calm": 192, "surprised": 192, "boredom": 81}


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
    assert list(audit.columns) == ["corpus", "reason", "kept", "dropped", "flagged", "detail"]
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
        zip(published["speaker"], published["split"])
    )


def test_split_file_missing_a_speaker_is_an_error(small_tree, small_result, tmp_path):
    path = write_split_file(small_result.split[small_result.split["speaker"] != "EmoDB:09"], tmp_path / "s.csv")
    with pytest.raises(SplitFileError, match=f"{path}: speaker\\(s\\) EmoDB:09 of the data are not in"):
        _run(small_tree, tmp_path / "again", split_file=path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("who,subset\nEmoDB:03,train\n", "needs columns speaker,split"),
        ("speaker,split\nEmoDB:03,training\n", "split must be train, val or test"),
        ("speaker,split\nEmoDB:03,train\nEmoDB:03,test\n", "listed with different subsets"),
    ],
)
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
    code = cli_main(
        [
            "mculp",
            "--crema-d",
            str(small_tree["CREMA-D"]),
            "--ravdess",
            str(small_tree["RAVDESS"]),
            "--out",
            str(out),
            "--seed",
            "3",
        ]
    )
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
    assert corpus_roots(cfg) == {
        "CREMA-D": tmp_path / "corpora/CREMA-D",
        "RAVDESS": tmp_path / "corpora/RAVDESS",
        "EmoDB": tmp_path / "mine",
    }


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


# --------------------------------------------------------------------------- audio checks (issue 15)


def tone_wav(path, seconds=1.5, rate=16000, stereo=None, subtype="PCM_16", poison=None):
    """A tone at -13.5 dBFS (its pitch from the file name, so no two files are the same audio);
    ``stereo`` "cancel" writes R = -L; ``poison`` a value put in 3 samples."""
    t = np.arange(int(seconds * rate)) / rate
    freq = 200 + zlib.crc32(path.name.encode()) % 400
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    if poison is not None:
        wave[[10, 500, 1000]] = poison
    data = np.stack([wave, -wave], axis=1) if stereo == "cancel" else wave
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype=subtype)
    return path


def _excluded_row(result, path) -> dict:
    rows = result.excluded[result.excluded["path"] == str(path)]
    assert len(rows) == 1, (path, result.excluded.tail())
    return rows.iloc[0].to_dict()


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf])
def test_non_finite_audio_is_excluded(small_tree, tmp_path, poison):
    path = tone_wav(small_tree["EmoDB"] / "wav" / "03a01Wa.wav", subtype="FLOAT", poison=poison)
    result = _run(small_tree, tmp_path / "out")
    row = _excluded_row(result, path)
    assert row["reason"] == "non_finite" and row["detail"] == "3 of 24000 decoded samples are NaN or infinite"
    assert str(path) not in set(result.manifest["path"])
    written = pd.read_csv(result.out / "excluded.csv")
    assert written.loc[written["path"] == str(path), "reason"].tolist() == ["non_finite"]
    audit = pd.read_csv(result.out / "mculp_audit.csv")
    assert audit.loc[(audit["corpus"] == "EmoDB") & (audit["reason"] == "non_finite"), "dropped"].tolist() == [1]


def test_audio_that_cannot_be_decoded_is_excluded(small_tree, tmp_path):
    # A FLAC stream cut at 60 %, named .wav: its header reads (the scan keeps it), its audio does not decode.
    broken = small_tree["EmoDB"] / "wav" / "09a02Ta.wav"
    flac = tmp_path / "take.flac"
    wave, rate = sf.read(tone_wav(tmp_path / "take.wav"))
    sf.write(flac, wave, rate, format="FLAC")
    broken.write_bytes(flac.read_bytes()[: flac.stat().st_size * 6 // 10])
    result = _run(small_tree, tmp_path / "out")
    row = _excluded_row(result, broken)
    assert (row["reason"], row["detail"]) == ("undecodable", "LibsndfileError: Error : flac decoder lost sync.")
    assert str(broken) in set(result.scanned["path"]) and str(broken) not in set(result.manifest["path"])


def _silence_tree(tmp_path):
    """EmoDB, flat: 4 speakers with loud tones, one digitally silent clip, one stereo clip that cancels."""
    root = tmp_path / "EmoDB"
    for speaker in ("03", "08", "09", "10"):
        for emotion in "WTN":
            tone_wav(root / f"{speaker}a01{emotion}a.wav")
    sf.write(root / "03a02Wa.wav", np.zeros(24000, dtype=np.float32), 16000)
    tone_wav(root / "08a02Wa.wav", stereo="cancel")
    return root


def test_near_silent_and_cancelling_clips_are_flagged_and_kept_by_default(tmp_path):
    root = _silence_tree(tmp_path)
    result = run_mculp(emodb=root, out=tmp_path / "out")
    assert len(result.manifest) == 14
    scanned = pd.read_csv(result.out / "scanned.csv", keep_default_na=False).set_index("path")
    assert scanned.loc[str(root / "03a02Wa.wav"), "audio_flag"] == "near_silent"
    assert scanned.loc[str(root / "03a02Wa.wav"), "rms_dbfs"] == -np.inf
    assert scanned.loc[str(root / "08a02Wa.wav"), "audio_flag"] == "channels_cancel"
    assert scanned.loc[str(root / "08a02Wa.wav"), "channel_rms_dbfs"] == pytest.approx(-13.5, abs=0.1)
    assert (
        scanned.loc[str(root / "09a01Wa.wav"), ["audio_flag", "rms_dbfs"]] == ["", pytest.approx(-13.5, abs=0.1)]
    ).all()
    audit = pd.read_csv(result.out / "mculp_audit.csv").set_index("reason")
    assert audit.loc["near_silent", ["kept", "dropped", "flagged"]].tolist() == [0, 0, 1]
    assert audit.loc["channels_cancel", "flagged"] == 1 and audit.loc["near_silent", "detail"].endswith(
        "(floor -60 dBFS)"
    )
    assert audit.loc["kept", "kept"] == 14 and audit["dropped"].sum() == len(result.excluded) == 0


def test_table_s1_shows_flagged_clips_outside_the_totals(tmp_path):
    result = run_mculp(emodb=_silence_tree(tmp_path), out=tmp_path / "out")
    table = mculp_audit(pd.read_csv(result.out / "mculp_audit.csv")).set_index("reason")
    assert table.loc["near_silent (flagged, kept)", "EmoDB"] == 1
    assert table.loc["channels_cancel (flagged, kept)", "EmoDB"] == 1
    assert table.loc["kept", "total"] == table.loc["all files", "total"] == 14  # flagged clips are among the kept
    assert "flagged, kept" in table.loc["near_silent (flagged, kept)", "meaning"]


def test_near_silent_clips_are_dropped_when_configured(tmp_path):
    root = _silence_tree(tmp_path)
    result = run_mculp(emodb=root, out=tmp_path / "out", drop_silent=True)
    assert len(result.manifest) == 12
    silent = _excluded_row(result, root / "03a02Wa.wav")
    assert silent["reason"] == "near_silent" and silent["detail"] == (
        "mono RMS -inf dBFS (digital silence) < floor -60 dBFS"
    )
    cancel = _excluded_row(result, root / "08a02Wa.wav")
    assert cancel["reason"] == "channels_cancel" and "the channels cancel" in cancel["detail"]
    # 16-bit rounding leaves a residue of the cancelled channels far below the floor
    assert re.fullmatch(
        r"loudest channel -13.5 dBFS, mono downmix -9\d\.\d dBFS < floor -60 dBFS: the channels "
        "cancel",
        cancel["detail"],
    ), cancel["detail"]


def test_the_silence_floor_is_configurable_and_checked(tmp_path):
    root = _silence_tree(tmp_path)
    result = run_mculp(emodb=root, out=tmp_path / "out", silence_floor_dbfs=-10.0)  # every tone is below -10
    assert (result.scanned["audio_flag"] == "near_silent").all() and len(result.manifest) == 14
    with pytest.raises(ValueError, match="silence_floor_dbfs must be a finite level at or below 0 dBFS"):
        run_mculp(emodb=root, out=tmp_path / "out", silence_floor_dbfs=6.0)


def test_identical_audio_is_found_by_content(small_tree, tmp_path):
    wav = small_tree["EmoDB"] / "wav"
    shutil.copy(wav / "03a01Wa.wav", wav / "03a02Wb.wav")  # same emotion, same speaker: one kept
    shutil.copy(wav / "08a01Fa.wav", wav / "08a01Tb.wav")  # same audio, happiness and sadness: conflict
    shutil.copy(wav / "09a01Wa.wav", wav / "10a01Wb.wav")  # same audio, two speakers: conflict
    (wav / "03a01Wc.wav").symlink_to(wav / "03a01Wa.wav")  # a link is the same content
    result = _run(small_tree, tmp_path / "out")
    kept = set(result.manifest["path"])
    assert str(wav / "03a01Wa.wav") in kept
    for name in ("03a02Wb.wav", "03a01Wc.wav"):
        row = _excluded_row(result, wav / name)
        assert row["reason"] == "duplicate_audio"
        assert row["detail"] == f"identical audio to {wav / '03a01Wa.wav'} (same emotion and speaker), which is kept"
    for name, other in (
        ("08a01Fa.wav", "08a01Tb.wav"),
        ("08a01Tb.wav", "08a01Fa.wav"),
        ("09a01Wa.wav", "10a01Wb.wav"),
        ("10a01Wb.wav", "09a01Wa.wav"),
    ):
        row = _excluded_row(result, wav / name)
        assert row["reason"] == "duplicate_conflict" and f"identical audio to {wav / other}" in row["detail"], row
        assert str(wav / name) not in kept
    assert "(sadness, EmoDB:08)" in _excluded_row(result, wav / "08a01Fa.wav")["detail"]
    scanned = result.scanned.set_index("path")
    assert (
        scanned.loc[str(wav / "03a01Wc.wav"), "content_hash"] == scanned.loc[str(wav / "03a01Wa.wav"), "content_hash"]
    )
    audit = pd.read_csv(result.out / "mculp_audit.csv").set_index(["corpus", "reason"])
    conflict = audit.loc[("EmoDB", "duplicate_conflict")]
    assert conflict["dropped"] == 4 and "08a01Fa.wav, 08a01Tb.wav, 09a01Wa.wav, 10a01Wb.wav" in conflict["detail"]
    assert audit.loc[("EmoDB", "duplicate_audio"), "dropped"] == 2


def test_the_scan_and_mculp_write_names_that_are_not_utf8(small_tree, tmp_path):
    raw = os.path.join(os.fsencode(small_tree["EmoDB"] / "wav"), b"03a01W\xffa.wav")
    write_wav(Path(os.fsdecode(raw)), 16000)
    result = _run(small_tree, tmp_path / "out")
    excluded = pd.read_csv(result.out / "excluded.csv", encoding="utf-8")  # valid UTF-8
    assert excluded["path"].str.endswith("03a01W\\xffa.wav").sum() == 1


# --------------------------------------------------------------------------- the set, written atomically


def _set_files(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_the_set_is_written_with_its_meta(small_tree, tmp_path):
    result = _run(small_tree, tmp_path / "out", seed=4)
    meta = json.loads((result.out / "manifest.meta.json").read_text())
    assert set(meta["tables"]) == {"scanned.csv", "excluded.csv", "mculp_audit.csv", "split.csv", "manifest.csv"}
    assert meta["settings"]["split_seed"] == 4 and meta["settings"]["min_duration_s"] == 1.0
    assert meta["settings"]["emodb"] == str(small_tree["EmoDB"]) and meta["settings"]["corpus_files"]["emodb"]
    assert meta["key"] == settings_key(meta["settings"])
    for name, digest in meta["tables"].items():
        assert table_digest((result.out / name).read_bytes()) == digest


def test_a_failure_between_renames_leaves_the_old_manifest_and_no_temporary_file(small_tree, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _run(small_tree, out, seed=0)
    before = _set_files(out)
    real_replace, renamed = os.replace, []

    def failing_replace(src, dst):
        if len(renamed) == 2:
            raise OSError(28, "No space left on device (simulated)")
        renamed.append(Path(dst).name)
        real_replace(src, dst)

    with monkeypatch.context() as patch, pytest.raises(OSError, match="simulated"):
        patch.setattr(os, "replace", failing_replace)
        _run(small_tree, out, seed=1)
    after = _set_files(out)
    assert renamed == ["scanned.csv", "excluded.csv"]  # the tables first, the manifest last
    assert sorted(after) == sorted(before)  # no temporary file left
    for name in ("mculp_audit.csv", "split.csv", "manifest.meta.json", "manifest.csv"):
        assert after[name] == before[name], name
    assert len(read_manifest(out / "manifest.csv")) == 169  # the old manifest, whole and readable


def test_a_failure_while_writing_changes_nothing(small_tree, tmp_path, monkeypatch):
    import serlib.common.io as common_io

    out = tmp_path / "out"
    _run(small_tree, out, seed=0)
    before = _set_files(out)
    opened = []

    def full_disk(path, mode="r", *args, **kwargs):
        opened.append(path)
        if len(opened) == 4:
            raise OSError(28, "No space left on device (simulated)")
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(common_io, "open", full_disk, raising=False)
    with pytest.raises(OSError, match="simulated"):
        _run(small_tree, out, seed=1)
    assert _set_files(out) == before  # every old file as it was, no temporary left


def test_the_manifest_is_the_last_file_renamed(small_tree, tmp_path, monkeypatch):
    real_replace, renamed = os.replace, []
    monkeypatch.setattr(os, "replace", lambda src, dst: (renamed.append(Path(dst).name), real_replace(src, dst)))
    _run(small_tree, tmp_path / "out")
    assert renamed == [
        "scanned.csv",
        "excluded.csv",
        "mculp_audit.csv",
        "split.csv",
        "manifest.meta.json",
        "manifest.csv",
    ]


# --------------------------------------------------------------------------- behaviour the protocol must keep

from serlib.data.mculp import apply_mculp  # noqa: E402


def test_a_clip_of_exactly_min_duration_is_kept():
    utterances = pd.DataFrame(
        {
            "utt_id": ["a", "b", "c"],
            "path": ["a", "b", "c"],
            "corpus": "CREMA-D",
            "emotion_code": "ANG",
            "duration_s": [1.0, 0.999, 1.001],
        }
    )
    kept, dropped = apply_mculp(utterances, min_duration_s=1.0)
    assert list(kept["utt_id"]) == ["a", "c"]  # the rule is "shorter than": exactly 1.0 s stays
    assert list(dropped["utt_id" if "utt_id" in dropped else "path"]) == ["b"]
