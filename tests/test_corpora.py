"""serlib.corpora: file-name parsers, header reading, exclusions and folder errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SMALL_TREE_BAD, write_wav

from serlib.data.corpora import (
    EXCLUSION_REASONS,
    UTTERANCE_COLUMNS,
    CorpusError,
    CorpusWarning,
    FileExcluded,
    audio_header,
    corpus_fingerprint,
    parse_crema_d_name,
    parse_emodb_name,
    parse_ravdess_name,
    scan_corpora,
    scan_corpus,
)

SCAN_REASONS = {path: reason for path, reason in SMALL_TREE_BAD.items() if reason in EXCLUSION_REASONS}


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "stem, speaker, code, sentence, note",
    [
        ("1001_DFA_ANG_XX", "1001", "ANG", "DFA", ""),
        ("1091_WSI_NEU_LO", "1091", "NEU", "WSI", ""),
        ("1040_ITH_SAD_X", "1040", "SAD", "ITH", "level X read as XX (older release)"),
    ],
)
def test_crema_d_names(stem, speaker, code, sentence, note):
    fields = parse_crema_d_name(stem)
    assert (fields["speaker_id"], fields["emotion_code"], fields["sentence"], fields["note"]) == (
        speaker,
        code,
        sentence,
        note,
    )


@pytest.mark.parametrize(
    "stem",
    ["1001_DFA_ANG", "1001_DFA_SUR_XX", "1001_DFA_ANG_ZZ", "01_DFA_ANG_XX", "1001-DFA-ANG-XX", "._1001_DFA_ANG_XX"],
)
def test_crema_d_misnamed(stem):
    with pytest.raises(FileExcluded) as err:
        parse_crema_d_name(stem)
    assert err.value.reason == "misnamed"


@pytest.mark.parametrize(
    "stem, suffix, sex, code",
    [
        ("03-01-05-01-01-01-01", ".wav", "male", "05"),
        ("03-01-01-01-02-02-24", ".wav", "female", "01"),
    ],
)
def test_ravdess_names(stem, suffix, sex, code):
    fields = parse_ravdess_name(stem, suffix)
    assert (fields["sex"], fields["emotion_code"], fields["speaker_id"]) == (sex, code, stem[-2:])


@pytest.mark.parametrize(
    "stem, suffix, reason",
    [
        ("03-02-05-01-01-01-01", ".wav", "song"),
        ("02-01-05-01-01-01-01", ".mp4", "video_only"),
        ("01-01-05-01-01-01-01", ".mp4", "audio_video"),
        ("01-01-05-01-01-01-01", ".wav", "audio_video"),
        ("03-01-09-01-01-01-01", ".wav", "misnamed"),
        ("03-01-05-03-01-01-01", ".wav", "misnamed"),
        ("03-01-05-01-01-01", ".wav", "misnamed"),
        ("03-01-05-01-01-01-00", ".wav", "misnamed"),
    ],
)
def test_ravdess_exclusions(stem, suffix, reason):
    with pytest.raises(FileExcluded) as err:
        parse_ravdess_name(stem, suffix)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    "stem, sex, code, note",
    [
        ("03a01Wa", "male", "W", ""),
        ("16b10Lb", "female", "L", ""),
        ("17a01Wa", "unknown", "W", "speaker 17 is not one of EmoDB's ten: sex unknown"),
    ],
)
def test_emodb_names(stem, sex, code, note):
    fields = parse_emodb_name(stem)
    assert (fields["sex"], fields["emotion_code"], fields["note"]) == (sex, code, note)


@pytest.mark.parametrize("stem", ["03a01Xa", "3a01Wa", "03a01W", "03a01wa"])
def test_emodb_misnamed(stem):
    with pytest.raises(FileExcluded) as err:
        parse_emodb_name(stem)
    assert err.value.reason == "misnamed"


# --------------------------------------------------------------------------- headers


def test_header_of_a_real_soundfile_wav(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros((24000, 2), dtype=np.float32), 48000, subtype="PCM_24")
    assert audio_header(str(path)) == (48000, 2, 24000)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: write_wav(p, 0), "empty"),  # a header and no audio frame
        (lambda p: write_wav(p, 16000, data_bytes=100), "truncated"),
        (lambda p: p.write_bytes(b"RIFF\x10\x00"), "truncated"),
        (lambda p: p.write_bytes(b"RIFF" + bytes(4) + b"WAVEfmt "), "truncated"),
        (lambda p: p.write_bytes(b"not audio at all" * 20), "unreadable"),
    ],
)
def test_header_exclusions(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(FileExcluded) as err:
        audio_header(str(path))
    assert err.value.reason == reason and err.value.detail


# --------------------------------------------------------------------------- scanning a small tree


@pytest.fixture
def scanned(small_tree):
    utterances, excluded = scan_corpora(small_tree, progress=False)
    return small_tree, utterances, excluded


@pytest.mark.parametrize("rel, reason", sorted(SCAN_REASONS.items()))
def test_every_scan_exclusion_is_reported(scanned, rel, reason):
    roots, utterances, excluded = scanned
    path = str(roots["CREMA-D"].parent / rel)
    row = excluded[excluded["path"] == path]
    assert list(row["reason"]) == [reason] and path not in set(utterances["path"])


def test_small_tree_table(scanned):
    _, utterances, excluded = scanned
    assert list(utterances.columns) == list(UTTERANCE_COLUMNS)
    assert utterances["utt_id"].is_unique and utterances["path"].str.startswith("/").all()
    counts = utterances["corpus"].value_counts().to_dict()
    # CREMA-D 72 + X quirk + too-short clip; RAVDESS 4 actors x 8 emotions x 2 statements; EmoDB 48 + boredom
    assert counts == {"CREMA-D": 74, "RAVDESS": 64, "EmoDB": 49}
    quirk = utterances[utterances["utt_id"] == "CREMA-D/1002_ITH_SAD_X"].iloc[0]
    assert quirk["note"].startswith("level X") and quirk["emotion"] == "sadness" and quirk["sex"] == "female"
    stereo = utterances[utterances["speaker"] == "RAVDESS:04"]
    assert set(stereo["channels"]) == {2} and set(stereo["sample_rate"]) == {48000}
    assert utterances.loc[utterances["utt_id"] == "RAVDESS/03-01-02-01-01-01-01", "emotion"].item() == "calm"
    assert len(excluded) == len(SCAN_REASONS)


def test_missing_demographics_warns_and_keeps_sex_unknown(small_tree):
    (small_tree["CREMA-D"] / "VideoDemographics.csv").unlink()
    with pytest.warns(CorpusWarning, match="VideoDemographics.csv"):
        rows, _ = scan_corpus("CREMA-D", small_tree["CREMA-D"], progress=False)
    assert {r["sex"] for r in rows} == {"unknown"}
    assert all("no VideoDemographics.csv" in r["note"] for r in rows)


@pytest.mark.parametrize("layout", ["wav", "flat", "both"])
def test_emodb_layouts(small_tree, layout):
    root = small_tree["EmoDB"]
    if layout in ("flat", "both"):
        for path in sorted((root / "wav").iterdir()):
            shutil.copy(path, root / path.name)
    if layout == "flat":
        shutil.rmtree(root / "wav")
    rows, excluded = scan_corpus("EmoDB", root, progress=False)
    assert len(rows) == 49
    assert all(("flat layout" in r["note"]) == (layout == "flat") for r in rows)
    assert all("/wav/" in r["path"] for r in rows) or layout == "flat"
    duplicates = [e for e in excluded if e["reason"] == "duplicate"]
    assert len(duplicates) == (49 if layout == "both" else 0)  # the flat copies lose to wav/


def test_level_x_beside_its_xx_twin_is_a_duplicate(small_tree):
    write_wav(small_tree["CREMA-D"] / "AudioWAV/1002_ITH_SAD_XX.wav", 32000)
    rows, excluded = scan_corpus("CREMA-D", small_tree["CREMA-D"], progress=False)
    dup = [e for e in excluded if e["reason"] == "duplicate"]
    assert [e["path"].rsplit("/", 1)[1] for e in dup] == ["1002_ITH_SAD_X.wav"]
    assert "CREMA-D/1002_ITH_SAD_XX" in {r["utt_id"] for r in rows}


# --------------------------------------------------------------------------- folder errors


@pytest.mark.parametrize("corpus", ["CREMA-D", "RAVDESS", "EmoDB"])
def test_missing_folder_is_an_error_naming_it(tmp_path, corpus):
    missing = tmp_path / "nowhere"
    with pytest.raises(CorpusError, match=f"{corpus}: folder not found: {missing}"):
        scan_corpora({corpus: missing}, progress=False)


@pytest.mark.parametrize(
    "corpus, expected",
    [
        ("CREMA-D", "expected AudioWAV/ under"),
        ("RAVDESS", "expected Actor_01 .. Actor_24 under"),
        ("EmoDB", "no .wav file under"),
    ],
)
def test_empty_folder_is_an_error_naming_it(tmp_path, corpus, expected):
    (tmp_path / "notes.txt").write_text("not a corpus")
    with pytest.raises(CorpusError, match=expected) as err:
        scan_corpus(corpus, tmp_path, progress=False)
    assert str(tmp_path) in str(err.value)


@pytest.mark.filterwarnings("ignore::serlib.data.corpora.CorpusWarning")
@pytest.mark.parametrize(
    "corpus, rel",
    [
        ("CREMA-D", "AudioWAV/hello.wav"),
        ("RAVDESS", "Actor_01/03-02-01-01-01-01-01.wav"),  # song only: nothing usable
        ("EmoDB", "wav/readme.wav"),
    ],
)
def test_folder_without_usable_file_is_an_error(tmp_path, corpus, rel):
    write_wav(tmp_path / rel, 32000)
    with pytest.raises(CorpusError, match="no usable file under") as err:
        scan_corpus(corpus, tmp_path, progress=False)
    assert str(tmp_path) in str(err.value) and "excluded" in str(err.value)


def test_no_corpus_given():
    with pytest.raises(CorpusError, match="at least one"):
        scan_corpora({"CREMA-D": None, "RAVDESS": None, "EmoDB": None})


# --------------------------------------------------------------------------- every real file name


def test_real_names_are_all_read(real_tree):
    utterances, excluded = scan_corpora(real_tree, progress=False)  # its speed is serlib bench's business
    assert excluded.empty
    per_corpus = utterances.groupby("corpus").agg(files=("utt_id", "size"), speakers=("speaker", "nunique"))
    assert per_corpus.to_dict("index") == {
        "CREMA-D": {"files": 7442, "speakers": 91},
        "RAVDESS": {"files": 1440, "speakers": 24},
        "EmoDB": {"files": 535, "speakers": 10},
    }
    sexes = utterances.drop_duplicates("speaker").groupby(["corpus", "sex"]).size().to_dict()
    assert sexes == {
        ("CREMA-D", "male"): 48,
        ("CREMA-D", "female"): 43,
        ("RAVDESS", "male"): 12,
        ("RAVDESS", "female"): 12,
        ("EmoDB", "male"): 5,
        ("EmoDB", "female"): 5,
    }
    ravdess = utterances[utterances["corpus"] == "RAVDESS"]
    assert set(ravdess["sample_rate"]) == {48000} and (ravdess["channels"] == 2).sum() == 5
    assert ravdess["duration_s"].between(2.9, 5.4).all()
    emodb = utterances[utterances["corpus"] == "EmoDB"]
    assert emodb["emotion_code"].value_counts().to_dict() == {
        "W": 127,
        "L": 81,
        "N": 79,
        "F": 71,
        "A": 69,
        "T": 62,
        "E": 46,
    }


# --------------------------------------------------------------------------- every bad file is a row (issue 15)


def _row(excluded, path) -> dict:
    rows = [e for e in excluded if e["path"] == str(path)]
    assert len(rows) == 1, (path, excluded)
    return rows[0]


def test_symlinks_are_followed_and_loops_are_rows(small_tree):
    audio = small_tree["CREMA-D"] / "AudioWAV"
    (audio / "1001_TIE_ANG_XX.wav").symlink_to("1001_TIE_ANG_XX.wav")  # a loop onto itself
    (audio / "1001_TIE_DIS_XX.wav").symlink_to("1001_TIE_FEA_XX.wav")  # a two-link loop
    (audio / "1001_TIE_FEA_XX.wav").symlink_to("1001_TIE_DIS_XX.wav")
    (audio / "1001_TIE_HAP_XX.wav").symlink_to("nowhere.wav")  # points nowhere
    (audio / "1001_TIE_NEU_XX.wav").symlink_to(audio / "1001_DFA_NEU_XX.wav")  # a good link: followed
    rows, excluded = scan_corpus("CREMA-D", small_tree["CREMA-D"], progress=False)
    for name, reason, detail in (
        ("1001_TIE_ANG_XX.wav", "symlink_loop", "symbolic link loop"),
        ("1001_TIE_DIS_XX.wav", "symlink_loop", "-> 1001_TIE_FEA_XX.wav"),
        ("1001_TIE_FEA_XX.wav", "symlink_loop", "not followed"),
        ("1001_TIE_HAP_XX.wav", "broken_link", "-> nowhere.wav"),
    ):
        row = _row(excluded, audio / name)
        assert row["reason"] == reason and detail in row["detail"], row
    linked = [r for r in rows if r["utt_id"] == "CREMA-D/1001_TIE_NEU_XX"]
    assert len(linked) == 1 and linked[0]["path"] == str(audio / "1001_TIE_NEU_XX.wav")
    assert len(rows) == 74 + 1  # every other file still read


def test_a_looping_actor_folder_is_a_row(small_tree):
    root = small_tree["RAVDESS"]
    (root / "Actor_05").symlink_to("Actor_05")
    rows, excluded = scan_corpus("RAVDESS", root, progress=False)
    row = _row(excluded, root / "Actor_05")
    assert row["reason"] == "symlink_loop" and len(rows) == 64


@pytest.mark.parametrize("make, kind", [(os.mkfifo, "FIFO"), (os.mkdir, "folder")])
def test_a_fifo_or_folder_named_wav_is_a_row_and_never_opened(small_tree, make, kind):
    path = small_tree["EmoDB"] / "wav" / "03a01Wb.wav"
    make(path)  # opening a FIFO would block the scan forever
    rows, excluded = scan_corpus("EmoDB", small_tree["EmoDB"], progress=False)
    row = _row(excluded, path)
    assert row["reason"] == "not_a_file" and row["detail"] == f"a {kind} named like an audio file"
    assert len(rows) == 49


def test_a_file_that_cannot_be_opened_is_a_row(small_tree, monkeypatch):
    # Tests run as root, where chmod 000 does not stop a read: the open itself is made to fail, as it
    # does for another user (the chmod case below runs where it can).
    import serlib.data.corpora as corpora

    blocked = str(small_tree["CREMA-D"] / "AudioWAV" / "1002_DFA_ANG_XX.wav")

    def guarded_open(path, *args, **kwargs):
        if str(path) == blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(corpora, "open", guarded_open, raising=False)
    rows, excluded = scan_corpus("CREMA-D", small_tree["CREMA-D"], progress=False)
    row = _row(excluded, blocked)
    assert (row["reason"], row["detail"]) == ("unreadable", "cannot be opened: Permission denied")
    assert len(rows) == 73


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod-000 file; the monkeypatched test covers it")
def test_a_chmod_000_file_is_a_row(small_tree):
    path = small_tree["CREMA-D"] / "AudioWAV" / "1002_DFA_ANG_XX.wav"
    path.chmod(0)
    _, excluded = scan_corpus("CREMA-D", small_tree["CREMA-D"], progress=False)
    assert _row(excluded, path)["reason"] == "unreadable"


def test_a_folder_that_cannot_be_listed_is_a_row(small_tree, monkeypatch):
    blocked = small_tree["RAVDESS"] / "Actor_02"
    real_scandir = os.scandir

    def guarded_scandir(path="."):
        if str(path) == str(blocked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", guarded_scandir)
    rows, excluded = scan_corpus("RAVDESS", small_tree["RAVDESS"], progress=False)
    row = _row(excluded, blocked)
    assert row["reason"] == "unreadable" and "folder cannot be listed (Permission denied)" in row["detail"]
    assert len(rows) == 48  # the other three actors


def test_a_name_that_is_not_utf8_is_an_escaped_row(small_tree, tmp_path):
    folder = os.fsencode(small_tree["EmoDB"] / "wav")
    raw = os.path.join(folder, b"03a01W\xffa.wav")  # latin-1 / broken bytes in a name
    write_wav(Path(os.fsdecode(raw)), 16000)
    utterances, excluded = scan_corpora({"EmoDB": small_tree["EmoDB"]}, progress=False)
    shown = str(small_tree["EmoDB"] / "wav") + "/03a01W\\xffa.wav"  # the bytes as text: backslash x f f
    row = excluded[excluded["path"] == shown]
    assert list(row["reason"]) == ["misnamed"] and "not valid UTF-8" in row["detail"].item()
    excluded.to_csv(tmp_path / "excluded.csv", index=False)  # writes as UTF-8 without an error
    assert shown in (tmp_path / "excluded.csv").read_text(encoding="utf-8")


def test_a_root_whose_name_is_not_utf8_says_so(small_tree):
    bad = Path(os.fsdecode(os.fsencode(small_tree["EmoDB"].parent) + b"/Emo\xe9DB"))
    small_tree["EmoDB"].rename(bad)
    with pytest.raises(CorpusError, match=r"EmoDB: the folder name .*Emo\\xe9DB is not valid UTF-8.*ln -s"):
        scan_corpus("EmoDB", bad, progress=False)


def test_a_root_that_is_a_file_says_so(tmp_path):
    path = tmp_path / "EmoDB.zip"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(CorpusError, match=f"EmoDB: {path} is a file, not a folder; point --emodb"):
        scan_corpus("EmoDB", path, progress=False)


def test_a_root_that_loops_says_so(tmp_path):
    (tmp_path / "RAVDESS").symlink_to("RAVDESS")
    with pytest.raises(CorpusError, match="RAVDESS: .*RAVDESS: symbolic link loop"):
        scan_corpus("RAVDESS", tmp_path / "RAVDESS", progress=False)


DEMOGRAPHICS = '"ActorID","Age","Sex","Race","Ethnicity"\n' + "".join(
    f'{a},30,"{"Male" if a % 2 else "Female"}","Caucasian","Not Hispanic – «n/a» café"\n' for a in range(1001, 1007)
)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "utf-16"])
def test_demographics_in_any_common_encoding(small_tree, encoding):
    (small_tree["CREMA-D"] / "VideoDemographics.csv").write_bytes(DEMOGRAPHICS.encode(encoding))
    rows, _ = scan_corpus("CREMA-D", small_tree["CREMA-D"], progress=False)
    sexes = {r["speaker"]: r["sex"] for r in rows}
    assert sexes["CREMA-D:1001"] == "male" and sexes["CREMA-D:1002"] == "female"
    assert "unknown" not in sexes.values()


def test_demographics_in_no_known_encoding_names_the_file(small_tree):
    path = small_tree["CREMA-D"] / "VideoDemographics.csv"
    path.write_bytes(DEMOGRAPHICS.encode("utf-8")[:60] + b"\x81\x8d\x90")  # invalid in UTF-8 and in cp1252
    with pytest.raises(
        CorpusError,
        match=f"CREMA-D: {path} is not text in any encoding tried "
        r"\(utf-8-sig, cp1252\).*re-save it as CSV UTF-8",
    ):
        scan_corpus("CREMA-D", small_tree["CREMA-D"], progress=False)


def test_corpus_fingerprint_sees_an_added_or_changed_file(small_tree):
    root = small_tree["EmoDB"]
    before = corpus_fingerprint(root)
    assert before == corpus_fingerprint(root) and before["files"] == 50  # wav/ + 49 files
    write_wav(root / "wav" / "16a01Wa.wav", 16000)
    added = corpus_fingerprint(root)
    assert added["files"] == 51 and added["digest"] != before["digest"]
    write_wav(root / "wav" / "16a01Wa.wav", 17000)
    assert corpus_fingerprint(root)["digest"] != added["digest"]


@pytest.mark.parametrize(
    "code,emotion",
    [
        ("01", "neutral"),
        ("02", "calm"),
        ("03", "happiness"),
        ("04", "sadness"),
        ("05", "anger"),
        ("06", "fear"),
        ("07", "disgust"),
        ("08", "surprised"),
    ],
)
def test_every_ravdess_emotion_code_reads_as_its_emotion(tmp_path, code, emotion):
    # The reader's own mapping, through a scan of a real-layout file (documented codes of RAVDESS).
    write_wav(tmp_path / "RAVDESS" / "Actor_03" / f"03-01-{code}-01-01-01-03.wav", 48000, 48000)
    rows, excluded = scan_corpus("RAVDESS", tmp_path / "RAVDESS", progress=False)
    assert not excluded and rows[0]["emotion"] == emotion and rows[0]["emotion_code"] == code
    assert rows[0]["speaker"] == "RAVDESS:03" and rows[0]["sex"] == "male"
