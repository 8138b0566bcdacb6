"""serlib.democorpus: determinism, the real layouts and names, audio formats, the bad files that
MCULP must catch, redo of interrupted generations, and a learnable but not trivial task."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import soundfile as sf

from serlib.common import pool
from serlib.common.audio import wav_bytes
from serlib.common.facts import CLASSES, EMOTION_TO_CLASS
from serlib.data import democorpus
from serlib.data.corpora import parse_crema_d_name, parse_emodb_name, parse_ravdess_name
from serlib.data.democorpus import (
    PARTIAL,
    SCALES,
    _summary,
    _write_clip,
    crema_d_names,
    generate_demo_corpus,
    plan_clips,
    read_marker,
)
from serlib.data.mculp import normalise_emotion, run_mculp
from serlib.data.synth import VOICE_PAD, _sentence_plan, _timeline
from serlib.tools.cli import main as cli_main

NAME_RULES = {  # corpus -> regex of a well-formed relative path (the real conventions)
    "CREMA-D": r"CREMA-D/AudioWAV/(10\d\d)_(IEO|TIE|IOM|IWW|TAI|MTI|IWL|ITH|DFA|ITS|TSI|WSI)_"
    r"(ANG|DIS|FEA|HAP|NEU|SAD)_(LO|MD|HI|XX|X)\.wav",
    "RAVDESS": r"RAVDESS/Actor_(\d\d)/03-0([12])-0([1-8])-0([12])-0([12])-0([12])-(\d\d)\.wav",
    "EmoDB": r"EmoDB/wav/(03|08|09|10|11|12|13|14|15|16)(a01|a02|a04|a05|a07|b01|b02|b03|b09|b10)"
    r"([WLEAFTN])([a-z])\.wav",
}
DESIGNED_BAD = {"empty", "truncated", "misnamed", "too_short", "song"}  # each appears in every scale


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _mculp(root: Path, out: Path):
    return run_mculp(crema_d=root / "CREMA-D", ravdess=root / "RAVDESS", emodb=root / "EmoDB", out=out)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    """The smoke corpus (seed 0, written by two processes), its generation wall time, and MCULP run over it."""
    root = tmp_path_factory.mktemp("demo") / "smoke"
    generate_demo_corpus(root, seed=0, scale="smoke", workers=2)
    return {
        "root": root,
        "hashes": _hashes(root),
        "marker": read_marker(root),
        "mculp": _mculp(root, tmp_path_factory.mktemp("mculp")),
    }


# --------------------------------------------------------------------------- determinism and redo


def test_one_process_writes_the_same_bytes_as_two(smoke, tmp_path):
    root = tmp_path / "serial"
    generate_demo_corpus(root, seed=0, scale="smoke", workers=1)
    assert _hashes(root) == smoke["hashes"]


def test_pool_that_cannot_start_falls_back_to_serial(smoke, tmp_path, monkeypatch):
    def no_pool(*args, **kwargs):
        raise OSError("no processes here")

    monkeypatch.setattr(pool, "ProcessPoolExecutor", no_pool)
    clips = plan_clips(0, "smoke")[:5]
    with pytest.warns(UserWarning, match="no processes here"):
        democorpus._write_clips(tmp_path, clips, 0, workers=2, verbose=False)
    assert {c.relpath: _hashes(tmp_path)[c.relpath] for c in clips} == {
        c.relpath: smoke["hashes"][c.relpath] for c in clips
    }


def test_interrupted_generation_is_redone_to_the_same_bytes(smoke, tmp_path):
    root = tmp_path / "again"
    (root / "CREMA-D" / "AudioWAV").mkdir(parents=True)
    (root / PARTIAL).write_text("interrupted\n")  # what a killed generation leaves behind
    (root / "CREMA-D" / "AudioWAV" / "1001_DFA_ANG_XX.wav").write_bytes(b"RIFF half a file")
    (root / "CREMA-D" / "AudioWAV" / "leftover.wav").write_bytes(b"")
    generate_demo_corpus(root, seed=0, scale="smoke")
    assert _hashes(root) == smoke["hashes"]
    assert not (root / PARTIAL).exists()


def test_other_seed_replaces_the_corpus_and_differs(smoke, tmp_path):
    root = tmp_path / "seed1"
    shutil.copytree(smoke["root"], root)
    generate_demo_corpus(root, seed=1, scale="smoke")
    assert read_marker(root)["seed"] == 1
    other = _hashes(root)
    common = [p for p in other if p.endswith(".wav") and p in smoke["hashes"]]
    same = [p for p in common if other[p] == smoke["hashes"][p]]
    assert len(common) > 50
    assert all((root / p).stat().st_size == 0 for p in same)  # only the empty file can repeat


def test_complete_corpus_is_reused(smoke):
    before = {p: p.stat().st_mtime_ns for p in smoke["root"].rglob("*.wav")}
    assert cli_main(["demo-corpus", str(smoke["root"]), "--seed", "0", "--scale", "smoke"]) == 0
    assert {p: p.stat().st_mtime_ns for p in smoke["root"].rglob("*.wav")} == before


def test_refuses_folders_it_did_not_write(tmp_path):
    (tmp_path / "RAVDESS" / "Actor_01").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="RAVDESS"):
        generate_demo_corpus(tmp_path, scale="smoke")
    assert (tmp_path / "RAVDESS" / "Actor_01").is_dir()


def test_unknown_scale_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        generate_demo_corpus(tmp_path, scale="huge")


# --------------------------------------------------------------------------- layout, names, formats


def test_names_follow_the_real_conventions(smoke):
    wavs = [p for p in smoke["hashes"] if p.endswith(".wav")]
    misnamed = [p for p in wavs if not any(re.fullmatch(rule, p) for rule in NAME_RULES.values())]
    assert misnamed == ["CREMA-D/AudioWAV/1003_DFA_XX.wav"]
    for p in wavs:
        m = re.fullmatch(NAME_RULES["RAVDESS"], p)
        if m:
            assert m.group(1) == m.group(7)  # Actor_NN folder holds actor NN's files
            assert not (m.group(3) == "1" and m.group(4) == "2")  # neutral has no strong intensity
    ravdess_emotions = {re.fullmatch(NAME_RULES["RAVDESS"], p).group(3) for p in wavs if p.startswith("RAVDESS")}
    emodb_letters = {re.fullmatch(NAME_RULES["EmoDB"], p).group(3) for p in wavs if p.startswith("EmoDB")}
    assert ravdess_emotions == set("12345678") and emodb_letters == set("WLEAFTN")
    assert any(p.endswith("_LO.wav") or p.endswith("_MD.wav") or p.endswith("_HI.wav") for p in wavs)


def test_demographics_table(smoke):
    with open(smoke["root"] / "CREMA-D" / "VideoDemographics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["ActorID", "Age", "Sex", "Race", "Ethnicity"]
    assert [r["ActorID"] for r in rows] == [str(1001 + i) for i in range(SCALES["smoke"].crema_actors)]
    assert {r["Sex"] for r in rows} == {"Male", "Female"}
    manifest = smoke["mculp"].manifest
    crema_sex = manifest[manifest.corpus == "CREMA-D"].groupby("speaker").sex.first()
    assert crema_sex.to_dict() == {f"CREMA-D:{r['ActorID']}": r["Sex"].lower() for r in rows}


def test_sample_rates_channels_and_durations(smoke):
    manifest = smoke["mculp"].manifest
    rates = manifest.groupby("corpus").sample_rate.unique().map(list).to_dict()
    assert rates == {"CREMA-D": [16000], "RAVDESS": [48000], "EmoDB": [16000]}
    stereo = manifest[manifest.channels == 2]
    assert len(stereo) == 1 and stereo.corpus.iloc[0] == "RAVDESS" and (manifest.channels <= 2).all()
    spans = manifest.groupby("corpus").duration_s.agg(["min", "max"])
    assert spans.loc["CREMA-D", "min"] >= 1.25 and spans.loc["CREMA-D", "max"] <= 4.5
    assert spans.loc["RAVDESS", "min"] >= 2.9 and spans.loc["RAVDESS", "max"] <= 5.0
    assert spans.loc["EmoDB", "min"] >= 1.25 and spans.loc["EmoDB", "max"] <= 5.5
    info = sf.info(str(smoke["root"] / manifest.path.iloc[0]))
    assert info.subtype == "PCM_16"


def test_wav_bytes_round_trip():
    frames = np.linspace(-1, 1, 200).reshape(100, 2)  # (samples, channels)
    data, rate = sf.read(io.BytesIO(wav_bytes(frames, 48000)), dtype="float64")
    assert rate == 48000 and data.shape == (100, 2)
    np.testing.assert_allclose(data, frames, atol=1e-4)  # 16-bit quantisation


# --------------------------------------------------------------------------- what MCULP sees


def test_mculp_excludes_the_bad_files_with_their_reasons(smoke):
    root, result = smoke["root"], smoke["mculp"]
    excluded = {str(Path(p).relative_to(root)): r for p, r in zip(result.excluded.path, result.excluded.reason)}
    assert excluded == smoke["marker"]["excluded"]
    assert DESIGNED_BAD <= set(excluded.values())
    assert {"calm", "surprised", "boredom"} <= set(excluded.values())
    quirk = result.manifest[result.manifest.utt_id.str.fullmatch(r"CREMA-D/10\d\d_[A-Z]{3}_SAD_X")]
    assert len(quirk) == 1  # the level-X quirk is tolerated and kept


def test_kept_counts_are_as_designed(smoke):
    manifest = smoke["mculp"].manifest
    counts = manifest.groupby(["corpus", "label"]).size()
    designed = smoke["marker"]["kept"]
    assert {(c, k): int(counts.get((c, k), 0)) for c in designed for k in CLASSES} == {
        (c, k): n for c, per_class in designed.items() for k, n in per_class.items()
    }
    assert manifest.groupby("corpus").speaker.nunique().to_dict() == {"CREMA-D": 5, "RAVDESS": 5, "EmoDB": 5}
    per_class = manifest.label.value_counts()
    assert per_class.min() >= 0.8 * per_class.max()  # near-balanced, as MCULP intends


@pytest.mark.parametrize("scale, low, high", [("smoke", 140, 180), ("default", 700, 900)])
def test_planned_sizes(scale, low, high):
    clips = plan_clips(0, scale)
    speakers = {(c.speaker.corpus, c.speaker.speaker_id) for c in clips}
    per_corpus = {corpus: sum(1 for s in speakers if s[0] == corpus) for corpus in ("CREMA-D", "RAVDESS", "EmoDB")}
    kept = [
        c
        for c in clips
        if not c.damage
        and c.timing != "short"
        and "/03-02-" not in c.relpath
        and c.emotion not in ("calm", "surprised", "boredom")
    ]
    assert low <= len(kept) <= high
    assert min(per_corpus.values()) >= (10 if scale == "default" else 5)


# --------------------------------------------------------------------------- learnable, not trivial


def _utterance_features(path: str, mel: np.ndarray) -> np.ndarray:
    """MFCC and log-energy means and standard deviations of one clip: (42,)."""
    audio, rate = sf.read(path, always_2d=True)
    audio = audio.mean(axis=1)[:: rate // 16000]  # downmix; 48 kHz -> 16 kHz (nothing above 8 kHz)
    frames = np.lib.stride_tricks.sliding_window_view(audio, 512)[::256] * np.hanning(512)  # (frames, 512)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, 257)
    mfcc = scipy.fft.dct(np.log(power @ mel.T + 1e-10), axis=1, norm="ortho")[:, :20]  # (frames, 20)
    energy = np.log(power.sum(axis=1) + 1e-10)  # (frames,)
    return np.concatenate([mfcc.mean(0), mfcc.std(0), [energy.mean(), energy.std()]])


def test_task_is_learnable_across_speakers_but_not_trivial(smoke):
    import librosa
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    manifest = smoke["mculp"].manifest
    mel = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40)  # (40, 257)
    x = np.stack([_utterance_features(p, mel) for p in manifest.path])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    pred = cross_val_predict(model, x, manifest.label, groups=manifest.speaker, cv=GroupKFold(5))
    accuracy = float(np.mean(pred == manifest.label))
    assert 0.45 < accuracy < 0.95, f"speaker-independent accuracy {accuracy:.2f} (chance 0.33)"


# --------------------------------------------------------------------------- paper scale (planned, not written)

REAL_NAMES = Path(__file__).resolve().parents[2] / "shared" / "real-names"  # CI: ../shared beside the clone
PAPER_FILES = {"CREMA-D": 7442, "RAVDESS": 1440, "EmoDB": 535}
PARSERS = {"CREMA-D": parse_crema_d_name, "RAVDESS": parse_ravdess_name, "EmoDB": parse_emodb_name}


def _real_list(name: str) -> list[str]:
    """Lines of a file of shared/real-names (skips the test when the lists are absent)."""
    if not (REAL_NAMES / name).is_file():
        pytest.skip(f"{REAL_NAMES / name} is absent (only the packaged layout is checked)")
    return (REAL_NAMES / name).read_text().splitlines()


@pytest.fixture(scope="module")
def paper_plan() -> dict:
    """The paper scale's plan (seed 0) by corpus: nothing is written."""
    clips = plan_clips(0, "paper")
    return {corpus: [c for c in clips if c.relpath.startswith(corpus + "/")] for corpus in PAPER_FILES}


def test_paper_plan_has_the_real_file_counts_and_speakers(paper_plan):
    assert {corpus: len(clips) for corpus, clips in paper_plan.items()} == PAPER_FILES
    for corpus, clips in paper_plan.items():
        assert all(re.fullmatch(NAME_RULES[corpus], c.relpath) for c in clips), corpus
        assert not any(c.damage or c.timing == "short" for c in clips)  # no bad files at paper scale
        assert len({c.relpath for c in clips}) == len(clips)
    speakers = {corpus: len({c.speaker.speaker_id for c in clips}) for corpus, clips in paper_plan.items()}
    assert speakers == {"CREMA-D": 91, "RAVDESS": 24, "EmoDB": 10}
    levels = Counter(c.relpath[:-4].rsplit("_", 1)[1] for c in paper_plan["CREMA-D"])
    assert levels == {"XX": 6077, "LO": 455, "MD": 455, "HI": 455}  # shared/corpora.md
    sexes = {c.speaker.speaker_id: c.speaker.sex for c in paper_plan["CREMA-D"]}
    assert Counter(sexes.values()) == {"male": 48, "female": 43}
    assert sum(c.channels == 2 for c in paper_plan["RAVDESS"]) == 5  # the real stereo files
    assert {c.sample_rate for c in paper_plan["RAVDESS"]} == {48000}


def test_paper_plan_names_are_the_real_ones(paper_plan):
    crema = sorted(_real_list("cremad_files.txt"))
    assert [c.relpath.split("/")[-1] for c in paper_plan["CREMA-D"]] == crema
    assert crema_d_names() == crema  # the rule (grid less 20 missing) gives every real name
    for corpus, name in (("RAVDESS", "ravdess_files.tsv"), ("EmoDB", "emodb_files.tsv")):
        rows = [line.split("\t") for line in _real_list(name)[1:]]
        planned = [
            (c.relpath.split("/", 1)[1].removeprefix("wav/"), c.sample_rate, c.channels, c.frames)
            for c in paper_plan[corpus]
        ]
        assert planned == [(f, int(rate), int(ch), int(fr)) for f, rate, ch, fr in rows], corpus
    demographics = list(csv.DictReader(io.StringIO("\n".join(_real_list("VideoDemographics.csv")))))
    sexes = {c.speaker.speaker_id: c.speaker.sex for c in paper_plan["CREMA-D"]}
    assert sexes == {r["ActorID"]: r["Sex"].lower() for r in demographics}


def test_paper_plan_mculp_keeps_the_real_counts(paper_plan):
    kept, speakers = Counter(), set()
    for corpus, clips in paper_plan.items():
        for clip in clips:
            fields = PARSERS[corpus](Path(clip.relpath).stem)  # serlib.corpora's readers of the names
            emotion = normalise_emotion(fields["emotion_code"], corpus)
            if emotion in EMOTION_TO_CLASS and clip.frames / clip.sample_rate >= 1.0:  # MCULP's mapping
                kept[corpus, EMOTION_TO_CLASS[emotion]] += 1
                speakers.add((corpus, fields["speaker_id"]))
    per_class = {label: sum(n for (_, k), n in kept.items() if k == label) for label in CLASSES}
    assert per_class == {"negative": 3099, "sad_fear": 3057, "pos_neutral": 2796}
    per_corpus = {corpus: sum(n for (c, _), n in kept.items() if c == corpus) for corpus in PAPER_FILES}
    assert per_corpus == {"CREMA-D": 7442, "RAVDESS": 1056, "EmoDB": 454}
    assert len(speakers) == 125
    summary = _summary([c for clips in paper_plan.values() for c in clips], misnamed=False)
    assert summary["kept_total"] == 8952 and summary["files"] == PAPER_FILES
    assert set(summary["excluded"].values()) == {"calm", "surprised", "boredom"}  # dropped labels only


def test_paper_plan_lengths_follow_the_real_corpora(paper_plan):
    from serlib.data.lengths import CREMA_D_LENGTH, LENGTH_QUANTILES_S

    for corpus in ("RAVDESS", "EmoDB"):  # the real frame counts: the bench's stored quantiles agree
        kept = [c for c in paper_plan[corpus] if c.emotion in EMOTION_TO_CLASS]
        seconds = np.array([c.frames / c.sample_rate for c in kept])
        quantiles = np.quantile(seconds, np.linspace(0, 1, 21))
        np.testing.assert_allclose(quantiles, LENGTH_QUANTILES_S[corpus], atol=0.01)
    crema = np.array([c.frames / c.sample_rate for c in paper_plan["CREMA-D"]])
    assert CREMA_D_LENGTH["min_s"] - 1e-4 <= crema.min() and crema.max() <= CREMA_D_LENGTH["max_s"] + 1e-4
    assert abs(np.median(crema) - CREMA_D_LENGTH["median_s"]) < 0.03
    assert abs(np.std(np.log(crema)) - CREMA_D_LENGTH["sigma"]) < 0.01
    assert plan_clips(0, "paper")[5].frames == paper_plan["CREMA-D"][5].frames  # same seed, same lengths
    assert [c.frames for c in plan_clips(1, "paper")[:50]] != [c.frames for c in paper_plan["CREMA-D"][:50]]


@pytest.mark.parametrize("target_s", [1.23, 2.5, 3.2, 5.27, 8.98])
@pytest.mark.parametrize("timing, text, syllables", [("crema", "ITH", 10), ("emodb", "b03", 14), ("ravdess", "01", 7)])
def test_fitted_timeline_fills_the_target_length(target_s, timing, text, syllables):
    plan = _sentence_plan(text, syllables)
    p = {"rate": 4.6}
    syl = _timeline(plan, p, timing, np.random.default_rng(0), target_s)
    assert syl["total"] == target_s
    speech_end = syl["lead"] + syl["speech_end"]  # s from the start of the recording
    assert 0.1 * target_s < speech_end - syl["lead"] - VOICE_PAD <= target_s  # speech fits inside
    assert speech_end < target_s and syl["lead"] >= 0
    assert 2 <= len(syl["c_start"]) <= syllables
    assert np.all(np.diff(syl["c_start"]) > 0) and np.all(syl["v_end"] > syl["v_start"])


def test_paper_clips_are_written_at_their_exact_real_length(paper_plan, tmp_path):
    clips = [
        paper_plan["CREMA-D"][0],
        min(paper_plan["EmoDB"], key=lambda c: c.frames),
        next(c for c in paper_plan["RAVDESS"] if c.channels == 2),
    ]
    for clip in clips:
        _write_clip(clip, tmp_path, 0)
        audio, rate = sf.read(tmp_path / clip.relpath, always_2d=True)
        assert audio.shape == (clip.frames, clip.channels) and rate == clip.sample_rate
        frame = rate // 50  # 20 ms frames
        energy = np.sqrt(np.mean(audio[: audio.shape[0] // frame * frame, 0].reshape(-1, frame) ** 2, axis=1))
        voiced = energy > 0.1 * energy.max()
        assert 0.2 < voiced.mean() < 0.95, clip.relpath  # speech with silence around it
        assert not voiced[0] and not voiced[-1], clip.relpath  # the speech fits inside the clip
