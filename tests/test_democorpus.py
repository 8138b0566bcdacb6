"""serlib.democorpus: determinism, the real layouts and names, audio formats, the bad files that
MCULP must catch, redo of interrupted generations, and a learnable but not trivial task."""
from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import soundfile as sf

from serlib import CLASSES
from serlib.cli import main as cli_main
from serlib.democorpus import PARTIAL, SCALES, generate_demo_corpus, plan_clips, read_marker, wav_bytes
from serlib.mculp import run_mculp

NAME_RULES = {  # corpus -> regex of a well-formed relative path (the real conventions)
    "CREMA-D": r"CREMA-D/AudioWAV/(10\d\d)_(IEO|TIE|IOM|IWW|TAI|MTI|IWL|ITH|DFA|ITS|TSI|WSI)_"
               r"(ANG|DIS|FEA|HAP|NEU|SAD)_(LO|MD|HI|XX|X)\.wav",
    "RAVDESS": r"RAVDESS/Actor_(\d\d)/03-0([12])-0([1-8])-0([12])-0([12])-0([12])-(\d\d)\.wav",
    "EmoDB": r"EmoDB/wav/(03|08|09|10|11|12|13|14|15|16)(a01|a02|a04|a05|a07|b01|b02|b03|b09|b10)"
             r"([WLEAFTN])([a-z])\.wav",
}
DESIGNED_BAD = {"empty", "truncated", "misnamed", "too_short", "song"}  # each appears in every scale


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _mculp(root: Path, out: Path):
    return run_mculp(crema_d=root / "CREMA-D", ravdess=root / "RAVDESS", emodb=root / "EmoDB", out=out)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    """The smoke corpus (seed 0), its generation CPU time, and MCULP run over it."""
    root = tmp_path_factory.mktemp("demo") / "smoke"
    started = time.process_time()
    generate_demo_corpus(root, seed=0, scale="smoke")
    cpu_s = time.process_time() - started
    return {"root": root, "cpu_s": cpu_s, "hashes": _hashes(root), "marker": read_marker(root),
            "mculp": _mculp(root, tmp_path_factory.mktemp("mculp"))}


# --------------------------------------------------------------------------- determinism and redo


def test_smoke_generation_is_fast(smoke):
    assert smoke["cpu_s"] < 30, f"smoke corpus took {smoke['cpu_s']:.1f} s of CPU"


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
    assert {(c, k): int(counts.get((c, k), 0)) for c in designed for k in CLASSES} == \
           {(c, k): n for c, per_class in designed.items() for k, n in per_class.items()}
    assert manifest.groupby("corpus").speaker.nunique().to_dict() == {"CREMA-D": 5, "RAVDESS": 5, "EmoDB": 5}
    per_class = manifest.label.value_counts()
    assert per_class.min() >= 0.8 * per_class.max()  # near-balanced, as MCULP intends


@pytest.mark.parametrize("scale, low, high", [("smoke", 140, 180), ("default", 700, 900)])
def test_planned_sizes(scale, low, high):
    clips = plan_clips(0, scale)
    speakers = {(c.speaker.corpus, c.speaker.speaker_id) for c in clips}
    per_corpus = {corpus: sum(1 for s in speakers if s[0] == corpus) for corpus in ("CREMA-D", "RAVDESS", "EmoDB")}
    kept = [c for c in clips if not c.damage and c.timing != "short" and "/03-02-" not in c.relpath
            and c.emotion not in ("calm", "surprised", "boredom")]
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
