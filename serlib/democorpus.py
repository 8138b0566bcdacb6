"""A synthetic demo corpus in the three real layouts (``serlib demo-corpus OUT``).

Nothing can be downloaded for the demo run, so serlib writes a small corpus of its own, named and
laid out exactly like the real releases (``shared/corpora.md``), so that the same readers, MCULP
and notebooks run on it unchanged. Its numbers measure the pipeline, never real emotion.

Layout written under ``out/``::

    CREMA-D/AudioWAV/<Actor>_<Sentence>_<Emotion>_<Level>.wav   16 kHz mono, actors 1001..
    CREMA-D/VideoDemographics.csv                               ActorID,Age,Sex,Race,Ethnicity
    RAVDESS/Actor_NN/03-01-<Em>-<In>-<St>-<Re>-<Ac>.wav         48 kHz, odd actors male
    EmoDB/wav/<Sp><Text><E><V>.wav                              16 kHz, the real 10 speaker ids
    .serlib-demo.json                                           completion marker, written last

Sizes (``SCALES``): ``default`` has 20 CREMA-D actors (each: 3 sentences x 6 emotions at level XX,
plus sentence IEO in neutral and two emotions at a random LO/MD/HI level), 10 RAVDESS actors
(2 statements x every emotion and intensity, calm and surprised included) and the 10 EmoDB
speakers (2 texts x 7 emotions, boredom included): 866 audio files, 761 of them kept by MCULP
(about 250 per class), 1.3-4.4 s (RAVDESS 3-5 s with its leading silence). ``smoke`` has 5
speakers per corpus: 191 files, 161 kept, for tests.

``paper`` (the paper-scale rehearsal, issue 6) has every file name of the real releases and their
lengths: CREMA-D's 7442 names (91 actors x 12 sentences x 6 emotions, IEO at LO/MD/HI, the rest
at XX, less the 20 the release lacks), the 1440 RAVDESS speech files (calm and surprised
included, the 5 real stereo files stereo) and EmoDB's 535, 9417 in all, 125 speakers; MCULP keeps
8952 of them (negative 3099, sad_fear 3057, pos_neutral 2796), as of the real corpora. RAVDESS and
EmoDB clips have their real frame counts; CREMA-D's lengths (not in the shared lists) are drawn
per clip from ``serlib.bench.CREMA_D_LENGTH`` (log-normal, median 2.5 s, 1.27-5.01 s, CHOSEN). The
syllable timeline is fitted to each length (``_fitted_timeline``). The names, sexes, sample
rates, channels and frame counts come from ``serlib/data/real_layout.json.gz`` (packaged, built
from ``shared/real-names``), so the same seed gives the same corpus with or without ``shared/``.
No bad files at this scale: no misnamed, empty, truncated, too-short or song file.

Sound. Each clip is speech-like, made by a NumPy/SciPy source-filter model at 16 kHz
(RAVDESS is then resampled to 48 kHz). A Rosenberg glottal pulse train, whose F0 contour has
declination, a pitch accent on stressed syllables, a final rise or fall, tremor and
cycle-to-cycle jitter, gets per-cycle shimmer, subharmonic creak and pulsed aspiration noise; a
one-pole low-pass sets the spectral tilt. It passes through a cascade of four formant
resonators per vowel (one vowel per syllable, cross-faded), and noise bursts shaped like
fricatives (/s/, /sh/, /f/) and plosives sit between syllables. Each sentence code has a fixed
syllable count, vowel sequence, consonants and stress pattern, shared by all speakers.

Speakers differ in F0 (about 115 Hz male, 210 Hz female, +-12 %), vocal-tract length (formants
scaled by ~1.0 male, ~1.17 female, +-5 %), speaking rate, pitch range, open quotient, tilt,
breathiness, jitter, habitual creak, recording level, and in how strongly and in which way they
act: an expressiveness factor and a per-speaker random reweighting of every emotion's cues.

Emotions differ in prosody and voice quality, as in acted speech (``EMOTIONS``, relative to
neutral): anger high F0, wide range, fast, loud, tense (small open quotient, flat tilt), falling
accents; disgust low F0, slow, creaky; fear high F0, fast, narrow range, jittery, breathy, with
tremor; happiness high F0, wide range, rising ends, bright; sadness low F0, narrow range, slow,
soft, breathy; neutral moderate and flat; and the dropped labels calm (soft, low), surprised
(very high F0, wide range, strong rise) and boredom (low, monotonous, slow, creaky). The cues
scale with the acted intensity (CREMA-D LO/MD/HI, RAVDESS strong) and every clip draws its own
random deviation, so classes overlap: the three-class task is learnable, not trivial, and a
classifier must generalise across speakers. Measured on the default corpus (seed 0): a logistic
regression on utterance means and standard deviations of 20 MFCCs, log-F0 (YIN) and RMS, with
5-fold cross-validation grouped by speaker, gets 73 % on the three classes (chance 33 %;
anger 54 %, sadness 81 % recall), 71 % on the six emotions; 75 % with a random, speaker-
dependent split.

Bad files that the readers and MCULP must catch, at the default and smoke scales (the marker's
``excluded`` lists them with the reason code ``serlib.mculp`` gives, beside the calm/surprised/
boredom drops):
``CREMA-D/AudioWAV/1002_<S>_ANG_XX.wav`` is empty (0 bytes); ``EmoDB/wav/03<T>Wb.wav`` is
truncated (its header declares all the audio, 40 % of it is missing, cut mid-sample; soundfile
alone would read it as a shorter clip); ``CREMA-D/AudioWAV/1003_DFA_XX.wav`` fits
no naming convention; ``CREMA-D/AudioWAV/1004_<S>_HAP_XX.wav`` is a valid 0.6 s clip that the
< 1 s filter drops; ``RAVDESS/Actor_02/03-02-03-01-01-01-02.wav`` is a song file (vocal channel
02). Two tolerated quirks are kept: ``1005_<S>_SAD_X.wav`` (level ``X``, as in an older CREMA-D
release) and exactly one stereo RAVDESS file (downmixed by the readers).

The marker ``.serlib-demo.json`` holds seed, scale, version, the file and speaker counts, the
designed kept counts per corpus and class, and the excluded files. ``.serlib-demo.partial`` is
written first and removed last, so an interrupted generation (partial marker, no marker) is
removed and redone; folders that hold neither are not serlib's and are never deleted.

Same seed, same bytes: every clip draws from its own generator seeded by (seed, file name),
WAV files are written by a fixed 44-byte-header writer, and nothing depends on time or order.
Generation: default about 11 s, smoke about 3 s of CPU on one core (NumPy/SciPy, no extra package).
"""
from __future__ import annotations

import gzip
import json
import shutil
import struct
import time
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
from scipy import signal
from tqdm import tqdm

from . import CLASSES

VERSION = 1  # bump when the corpus design changes: a marker of another version is regenerated
MARKER = ".serlib-demo.json"  # written last: its presence means a complete generation
PARTIAL = ".serlib-demo.partial"  # written first: the folders are ours, safe to redo
SR = 16000  # synthesis rate; RAVDESS is resampled to 48 kHz
VOICE_PAD = 0.05  # s of silence synthesised before the first syllable
CORPUS_DIRS = ("CREMA-D", "RAVDESS", "EmoDB")
REAL_LAYOUT = Path(__file__).resolve().parent / "data" / "real_layout.json.gz"  # the real releases' names


@dataclass(frozen=True)
class Scale:
    """How many speakers and clips a demo corpus holds."""

    crema_actors: int  # actors 1001.. ; each speaks crema_sentences x 6 emotions + IEO clips
    crema_sentences: int  # sentences (besides IEO) each actor speaks in all six emotions, level XX
    ravdess_actors: int  # Actor_01.. ; every emotion x intensity x statement
    ravdess_statements: int  # 1 or 2
    emodb_speakers: tuple[str, ...]  # real EmoDB speaker ids
    emodb_texts: int  # texts per speaker and emotion
    real_layout: bool = False  # paper scale: every real file name and length (REAL_LAYOUT), no bad files


SCALES = {
    "default": Scale(20, 3, 10, 2, ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16"), 2),
    "smoke": Scale(5, 2, 5, 1, ("03", "08", "09", "10", "13"), 1),
    "paper": Scale(91, 11, 24, 2, ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16"), 10,
                   real_layout=True),
}

# Cue offsets from neutral at full expressiveness. f0: semitones; range, rate: ratios;
# level: dB; oq: open quotient; tilt: one-pole coefficient; breath: aspiration ratio;
# jitter: relative F0 std; creak: subharmonic depth; tremor: semitones; final: end rise (st).
CUES = ("f0", "range", "rate", "level", "oq", "tilt", "breath", "jitter", "creak", "tremor", "final")
EMOTIONS = {  # f0  range  rate level   oq   tilt breath jitter creak tremor final
    "neutral":   (0.0, 1.00, 1.00, 0.0, 0.00, 0.00, 0.00, 0.000, 0.00, 0.0, 0.0),
    "anger":     (4.0, 1.60, 1.12, 7.0, -.15, -.25, -.03, 0.005, 0.00, 0.0, -3.0),
    "disgust":   (-2.0, 0.90, 0.80, -1.0, -.05, 0.05, 0.02, 0.015, 0.55, 0.0, -2.0),
    "fear":      (5.0, 0.60, 1.18, 2.0, 0.10, 0.10, 0.25, 0.030, 0.00, 0.8, 1.5),
    "happiness": (4.0, 1.70, 1.08, 4.0, -.08, -.15, 0.00, 0.004, 0.00, 0.0, 5.0),
    "sadness":   (-1.5, 0.50, 0.78, -6.0, 0.12, 0.20, 0.25, 0.008, 0.15, 0.2, -2.0),
    "calm":      (-1.0, 0.70, 0.88, -3.0, 0.05, 0.08, 0.08, 0.000, 0.00, 0.0, -1.0),
    "surprised": (6.0, 2.00, 1.00, 4.0, -.05, -.10, 0.05, 0.000, 0.00, 0.0, 7.0),
    "boredom":   (-2.5, 0.40, 0.78, -3.0, 0.05, 0.10, 0.05, 0.000, 0.30, 0.0, -2.0),
}
_LOG_CUES = (1, 2)  # range and rate combine as log ratios
UTT_NOISE = np.array([1.2, 0.22, 0.08, 2.5, 0.05, 0.06, 0.04, 0.003, 0.06, 0.15, 2.0])  # per-clip std
STYLE_NOISE = 0.5  # per-speaker relative reweighting of each emotion's cues
CLASS_OF = {"anger": "negative", "disgust": "negative", "sadness": "sad_fear", "fear": "sad_fear",
            "happiness": "pos_neutral", "neutral": "pos_neutral"}  # calm, surprised, boredom: dropped

CREMA_EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral",
                  "SAD": "sadness"}
CREMA_SENTENCES = {"IEO": 5, "TIE": 8, "IOM": 8, "IWW": 8, "TAI": 7, "MTI": 9, "IWL": 9, "ITH": 10,
                   "DFA": 6, "ITS": 7, "TSI": 5, "WSI": 9}  # code -> syllables of the real sentence
CREMA_LEVELS = {"LO": 0.6, "MD": 1.0, "HI": 1.4, "XX": 1.0, "X": 1.0}  # level -> cue intensity
RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happiness", "04": "sadness", "05": "anger",
                    "06": "fear", "07": "disgust", "08": "surprised"}
RAVDESS_SYLLABLES = 7  # "Kids are talking by the door" / "Dogs are sitting by the door"
EMODB_SPEAKERS = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male", "12": "male",
                  "13": "female", "14": "female", "15": "male", "16": "female"}
EMODB_EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness",
                  "T": "sadness", "N": "neutral"}
EMODB_TEXTS = {"a01": 10, "a02": 9, "a04": 10, "a05": 14, "a07": 9, "b01": 13, "b02": 14, "b03": 14,
               "b09": 14, "b10": 13}  # long German sentences capped at 14 syllables (clips <= ~4 s)

# Male vowel formants (Hz), scaled by each speaker's vocal-tract factor.
VOWELS = {"a": (730, 1090, 2440, 3400), "e": (530, 1840, 2480, 3500), "i": (300, 2250, 3000, 3650),
          "o": (570, 840, 2410, 3400), "u": (320, 900, 2240, 3350), "@": (500, 1500, 2500, 3450)}
ONSETS = ("s", "sh", "f", "stop", "stop", "voiced", "voiced", "none")  # consonant kinds, drawn per syllable


@dataclass(frozen=True)
class Speaker:
    corpus: str
    speaker_id: str
    sex: str  # male | female
    base: dict  # f0_hz, vtl, range_st, rate, level, oq, tilt, breath, jitter, creak, expressiveness
    style: dict = field(repr=False)  # emotion -> (len(CUES),) cue offsets for this speaker


@dataclass(frozen=True)
class Clip:
    relpath: str  # under out/, e.g. "CREMA-D/AudioWAV/1001_DFA_ANG_XX.wav"
    speaker: Speaker
    emotion: str  # key of EMOTIONS
    intensity: float  # cue scale of the acted intensity
    text: str  # sentence code (CREMA-D code, RAVDESS statement, EmoDB text)
    syllables: int
    timing: str  # crema | ravdess | emodb | short
    sample_rate: int = SR
    channels: int = 1
    damage: str = ""  # "" | empty | truncated
    frames: int = 0  # exact length in samples at sample_rate (paper scale); 0: from the syllable timeline


# --------------------------------------------------------------------------- public


def generate_demo_corpus(out: Path, seed: int = 0, scale: str = "default", verbose: bool = False) -> Path:
    """Write the synthetic demo corpus (see the module docstring), unless it is already complete.

    Args:
        out: folder to hold CREMA-D/, RAVDESS/, EmoDB/ and the marker ``.serlib-demo.json``.
        seed: same seed, same bytes.
        scale: ``default`` (~760 kept clips), ``smoke`` (~160, for tests) or ``paper`` (the real
            releases' 9417 names and lengths, 8952 kept; about 3 minutes).
        verbose: print a summary and show a progress bar.

    Returns:
        ``out``. A complete corpus of the same seed, scale and version is reused as is; an
        interrupted or different one (marker missing or different) is removed and redone.

    Raises:
        ValueError: unknown scale or negative seed.
        FileExistsError: ``out`` holds corpus folders that this function did not write.
    """
    if scale not in SCALES:
        raise ValueError(f"demo corpus: unknown scale {scale!r}; use one of {sorted(SCALES)}")
    if int(seed) < 0:
        raise ValueError(f"demo corpus: seed must be >= 0, got {seed}")
    out = Path(out)
    wanted = {"seed": int(seed), "scale": scale, "version": VERSION}
    marker = read_marker(out)
    if marker is not None and all(marker.get(k) == v for k, v in wanted.items()):
        if verbose:
            print(f"demo corpus: {out} is complete (seed {seed}, scale {scale}); reused")
        return out
    _clear_previous(out, marker)
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    (out / PARTIAL).write_text("generation in progress or interrupted\n")
    clips = plan_clips(seed, scale)
    _write_demographics(out, clips, seed)
    for clip in tqdm(clips, desc="demo corpus", unit="clip", disable=not verbose):
        _write_clip(out, clip, seed)
    bad_files = not SCALES[scale].real_layout
    if bad_files:
        _write_misnamed(out, seed)
    summary = {**wanted, **_summary(clips, misnamed=bad_files)}
    (out / MARKER).write_text(json.dumps(summary, indent=2) + "\n")
    (out / PARTIAL).unlink()
    if verbose:
        counts = ", ".join(f"{corpus} {n}" for corpus, n in summary["files"].items())
        print(f"demo corpus: {sum(summary['files'].values())} files ({counts}), {summary['kept_total']} kept "
              f"by MCULP, in {time.perf_counter() - started:.1f} s -> {out}")
    return out


def read_marker(out: Path) -> Optional[dict]:
    """The completion marker of a demo corpus folder, or None when absent or unreadable."""
    try:
        return json.loads((Path(out) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def plan_clips(seed: int, scale: str) -> list[Clip]:
    """Every audio file of the corpus (bad ones included, misnamed excepted), in writing order.

    Writes nothing: the paper scale's 9417 clips are planned in well under a second.
    """
    s = SCALES[scale]
    if s.real_layout:
        return _paper_clips(seed)
    return _crema_clips(seed, s) + _ravdess_clips(seed, s) + _emodb_clips(seed, s)


# --------------------------------------------------------------------------- plan


def _rng(seed: int, *keys: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def _make_speaker(seed: int, corpus: str, speaker_id: str, sex: str) -> Speaker:
    rng = _rng(seed, "speaker", corpus, speaker_id)
    female = sex == "female"
    base = {
        "f0_hz": (210.0 if female else 115.0) * rng.lognormal(0, 0.12),
        "vtl": (1.17 if female else 1.0) * rng.lognormal(0, 0.05),
        "range_st": 2.5 * rng.lognormal(0, 0.25), "rate": 4.6 * rng.lognormal(0, 0.1),
        "level": rng.normal(0, 3.0), "oq": 0.55 + rng.normal(0, 0.05), "tilt": 0.55 + rng.normal(0, 0.08),
        "breath": 0.06 + 0.03 * female + abs(rng.normal(0, 0.04)), "jitter": 0.006 + abs(rng.normal(0, 0.002)),
        "creak": max(0.0, rng.normal(0, 0.12)), "expressiveness": float(np.clip(rng.lognormal(0, 0.35), 0.4, 1.8)),
    }
    style = {}
    for emotion, cues in EMOTIONS.items():
        delta = np.array(cues, dtype=float)
        delta[list(_LOG_CUES)] = np.log(delta[list(_LOG_CUES)])
        style[emotion] = delta * (1 + STYLE_NOISE * rng.standard_normal(len(CUES)))
    return Speaker(corpus, speaker_id, sex, base, style)


def _crema_clips(seed: int, s: Scale) -> list[Clip]:
    rng = _rng(seed, "crema-plan")
    sexes = rng.permutation(["male", "female"] * ((s.crema_actors + 1) // 2))[: s.crema_actors]
    codes = [c for c in CREMA_SENTENCES if c != "IEO"]
    clips = []
    for i, sex in enumerate(sexes):
        actor = str(1001 + i)
        spk = _make_speaker(seed, "CREMA-D", actor, str(sex))
        chosen = sorted(rng.choice(codes, s.crema_sentences, replace=False))
        unused = [c for c in codes if c not in chosen]

        def add(code: str, emo: str, level: str, timing: str = "crema", damage: str = "") -> None:
            clips.append(Clip(f"CREMA-D/AudioWAV/{actor}_{code}_{emo}_{level}.wav", spk, CREMA_EMOTIONS[emo],
                              CREMA_LEVELS[level], code, CREMA_SENTENCES[code], timing, damage=damage))

        for code in chosen:
            for emo in CREMA_EMOTIONS:
                add(code, emo, "XX")
        add("IEO", "NEU", "XX")
        for emo in sorted(rng.choice([e for e in CREMA_EMOTIONS if e != "NEU"], 2, replace=False)):
            add("IEO", emo, str(rng.choice(["LO", "MD", "HI"])))
        if actor == "1002":
            add(unused[0], "ANG", "XX", damage="empty")
        if actor == "1004":
            add(unused[0], "HAP", "XX", timing="short")
        if actor == "1005":
            add(unused[0], "SAD", "X")
    return clips


def _ravdess_clips(seed: int, s: Scale) -> list[Clip]:
    clips = []
    for a in range(1, s.ravdess_actors + 1):
        spk = _make_speaker(seed, "RAVDESS", f"{a:02d}", "male" if a % 2 else "female")
        for em, emotion in RAVDESS_EMOTIONS.items():
            for intensity in (("01",) if em == "01" else ("01", "02")):
                for st in range(1, s.ravdess_statements + 1):
                    name = f"03-01-{em}-{intensity}-{st:02d}-01-{a:02d}.wav"
                    stereo = a == 1 and em == "03" and intensity == "01" and st == 1
                    clips.append(Clip(f"RAVDESS/Actor_{a:02d}/{name}", spk, emotion, 1.4 if intensity == "02" else 1.0,
                                      f"{st:02d}", RAVDESS_SYLLABLES, "ravdess", 48000, 2 if stereo else 1))
        if a == 2:  # a song file: real audio, excluded by the reader (vocal channel 02)
            clips.append(Clip("RAVDESS/Actor_02/03-02-03-01-01-01-02.wav", spk, "happiness", 1.0, "01",
                              RAVDESS_SYLLABLES, "ravdess", 48000))
    return clips


def _emodb_clips(seed: int, s: Scale) -> list[Clip]:
    rng = _rng(seed, "emodb-plan")
    clips = []
    for sp in s.emodb_speakers:
        spk = _make_speaker(seed, "EmoDB", sp, EMODB_SPEAKERS[sp])
        for letter, emotion in EMODB_EMOTIONS.items():
            texts = sorted(rng.choice(list(EMODB_TEXTS), s.emodb_texts, replace=False))
            for text in texts:
                clips.append(Clip(f"EmoDB/wav/{sp}{text}{letter}a.wav", spk, emotion, 1.0, text,
                                  EMODB_TEXTS[text], "emodb"))
            if sp == "03" and letter == "W":
                unused = max((t for t in EMODB_TEXTS if t not in texts), key=EMODB_TEXTS.get)  # long: > 1 s left
                clips.append(Clip(f"EmoDB/wav/03{unused}Wb.wav", spk, emotion, 1.0, unused, EMODB_TEXTS[unused],
                                  "emodb", damage="truncated"))
    return clips


@lru_cache(maxsize=1)
def real_layout() -> dict:
    """The real releases' layout, packaged as ``serlib/data/real_layout.json.gz`` (no audio).

    Built from ``shared/real-names`` (cremad_files.txt, VideoDemographics.csv, ravdess_files.tsv,
    emodb_files.tsv), so that the paper scale needs no file outside the package and gives the same
    bytes everywhere. Keys: ``crema_d_sex`` (91 letters M/F, actors 1001..1091), ``crema_d_missing``
    (the 20 names of the full actor x sentence x emotion x level grid that the release lacks),
    ``ravdess`` and ``emodb``: rows [file, sample_rate, channels, frames] in the lists' order.
    """
    try:
        return json.loads(gzip.decompress(REAL_LAYOUT.read_bytes()))
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"demo corpus: cannot read {REAL_LAYOUT} ({err}); the paper scale needs this "
                                f"package data file: reinstall serlib (pyproject.toml package-data)") from err


def crema_d_names(layout: Optional[dict] = None) -> list[str]:
    """The 7442 CREMA-D file names, sorted: 91 actors x 12 sentences x 6 emotions (IEO in LO/MD/HI,
    its neutral and all other sentences in XX), less the 20 the release lacks."""
    layout = layout or real_layout()
    missing = set(layout["crema_d_missing"])
    names = []
    for actor in range(1001, 1001 + len(layout["crema_d_sex"])):
        for code in CREMA_SENTENCES:
            for emo in CREMA_EMOTIONS:
                levels = ("LO", "MD", "HI") if code == "IEO" and emo != "NEU" else ("XX",)
                names += [f"{actor}_{code}_{emo}_{level}.wav" for level in levels]
    return sorted(n for n in names if n not in missing)


def _crema_d_frames(seed: int, name: str) -> int:
    """A CREMA-D clip's length in samples (16 kHz): the bench's CHOSEN log-normal (no real lengths known)."""
    from .bench import CREMA_D_LENGTH as c  # lazy: serlib.bench imports torch

    seconds = c["median_s"] * _rng(seed, "length", name).lognormal(0.0, c["sigma"])
    return int(round(float(np.clip(seconds, c["min_s"], c["max_s"])) * SR))


def _paper_clips(seed: int) -> list[Clip]:
    """Every file of the three real releases, with the real lengths (CREMA-D's drawn): 9417 clips."""
    layout = real_layout()
    speakers: dict = {}

    def speaker(corpus: str, sid: str, sex: str) -> Speaker:
        if (corpus, sid) not in speakers:
            speakers[corpus, sid] = _make_speaker(seed, corpus, sid, sex)
        return speakers[corpus, sid]

    clips = []
    for name in crema_d_names(layout):
        actor, code, emo, level = name[:-4].split("_")
        sex = "male" if layout["crema_d_sex"][int(actor) - 1001] == "M" else "female"
        clips.append(Clip(f"CREMA-D/AudioWAV/{name}", speaker("CREMA-D", actor, sex), CREMA_EMOTIONS[emo],
                          CREMA_LEVELS[level], code, CREMA_SENTENCES[code], "crema",
                          frames=_crema_d_frames(seed, name)))
    for file, rate, channels, frames in layout["ravdess"]:
        _, _, em, intensity, st, _, actor = Path(file).stem.split("-")
        spk = speaker("RAVDESS", actor, "male" if int(actor) % 2 else "female")
        clips.append(Clip(f"RAVDESS/{file}", spk, RAVDESS_EMOTIONS[em], 1.4 if intensity == "02" else 1.0, st,
                          RAVDESS_SYLLABLES, "ravdess", rate, channels, frames=frames))
    for file, rate, channels, frames in layout["emodb"]:
        sp, text, letter = file[:2], file[2:5], file[5]
        clips.append(Clip(f"EmoDB/wav/{file}", speaker("EmoDB", sp, EMODB_SPEAKERS[sp]), EMODB_EMOTIONS[letter],
                          1.0, text, EMODB_TEXTS[text], "emodb", rate, channels, frames=frames))
    return clips


def _summary(clips: list[Clip], misnamed: bool = True) -> dict:
    """File counts, the bad files with the reason they must be excluded, and the designed kept counts."""
    bad = {"CREMA-D/AudioWAV/1003_DFA_XX.wav": "misnamed"} if misnamed else {}
    kept: dict = {c: {k: 0 for k in CLASSES} for c in CORPUS_DIRS}
    for clip in clips:
        corpus = clip.relpath.split("/")[0]
        if clip.damage:
            bad[clip.relpath] = clip.damage
        elif "/03-02-" in clip.relpath:
            bad[clip.relpath] = "song"
        elif clip.timing == "short":
            bad[clip.relpath] = "too_short"
        elif clip.emotion not in CLASS_OF:
            bad[clip.relpath] = clip.emotion
        else:
            kept[corpus][CLASS_OF[clip.emotion]] += 1
    files = {c: sum(cl.relpath.startswith(c + "/") for cl in clips) + (misnamed and c == "CREMA-D")
             for c in CORPUS_DIRS}
    speakers = {c: len({cl.speaker.speaker_id for cl in clips if cl.speaker.corpus == c}) for c in CORPUS_DIRS}
    return {"files": files, "speakers": speakers, "kept": kept,
            "kept_total": sum(sum(v.values()) for v in kept.values()), "excluded": bad}


# --------------------------------------------------------------------------- writing


def _clear_previous(out: Path, marker: Optional[dict]) -> None:
    """Remove an interrupted or different demo corpus; refuse to touch folders serlib did not write."""
    present = [d for d in CORPUS_DIRS if (out / d).exists()]
    if not present:
        return
    if marker is None and not (out / PARTIAL).exists():
        raise FileExistsError(f"demo corpus: {out} already holds {', '.join(present)} without a {MARKER} "
                              f"marker, so serlib did not write them; choose an empty folder or remove them")
    for d in present:
        shutil.rmtree(out / d)
    (out / MARKER).unlink(missing_ok=True)


def _write_demographics(out: Path, clips: list[Clip], seed: int) -> None:
    rng = _rng(seed, "demographics")  # cosmetic columns; the sex column comes from the plan
    actors = {c.speaker.speaker_id: c.speaker.sex for c in clips if c.speaker.corpus == "CREMA-D"}
    lines = ['"ActorID","Age","Sex","Race","Ethnicity"']
    for actor, sex in actors.items():
        race = rng.choice(["Caucasian", "African American", "Asian", "Unknown"], p=[0.6, 0.25, 0.1, 0.05])
        ethnicity = rng.choice(["Not Hispanic", "Hispanic"], p=[0.85, 0.15])
        lines.append(f'{actor},{rng.integers(20, 75)},"{sex.capitalize()}","{race}","{ethnicity}"')
    path = out / "CREMA-D" / "VideoDemographics.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _write_clip(out: Path, clip: Clip, seed: int) -> None:
    path = out / clip.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    if clip.damage == "empty":
        path.write_bytes(b"")
        return
    rng = _rng(seed, "clip", clip.relpath)
    audio = synthesize(clip, rng)  # (samples,) float at 16 kHz
    if clip.sample_rate != SR:
        audio = signal.resample_poly(audio, clip.sample_rate // SR, 1)
        if clip.frames:
            audio = audio[: clip.frames]  # the real frame count, not a multiple of 3
        audio = audio + 10 ** (-80 / 20) * rng.standard_normal(audio.size)  # a floor above 8 kHz too
    frames = audio[:, None]  # (samples, channels)
    if clip.channels == 2:
        frames = np.stack([audio, 0.9 * audio + 0.002 * rng.standard_normal(audio.size)], axis=1)
    data = wav_bytes(frames, clip.sample_rate)
    if clip.damage == "truncated":  # header keeps the full size; 40 % of the data (mid-sample) is gone
        data = data[: (44 + int(0.6 * (len(data) - 44))) | 1]
    path.write_bytes(data)


def _write_misnamed(out: Path, seed: int) -> None:
    clip_rng = _rng(seed, "misnamed")
    audio = 0.05 * clip_rng.standard_normal(SR * 2)
    (out / "CREMA-D/AudioWAV/1003_DFA_XX.wav").write_bytes(wav_bytes(audio[:, None], SR))


def wav_bytes(frames: np.ndarray, sample_rate: int) -> bytes:
    """A canonical 16-bit PCM WAV file (44-byte header), identical for identical input.

    Args:
        frames: (samples, channels) float in [-1, 1]; values outside are clipped.
        sample_rate: in Hz.
    """
    pcm = np.round(np.clip(frames, -1, 1) * 32767).astype("<i2")  # (samples, channels)
    channels = pcm.shape[1]
    body = pcm.tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(body), b"WAVE", b"fmt ", 16, 1, channels,
                         sample_rate, sample_rate * 2 * channels, 2 * channels, 16, b"data", len(body))
    return header + body


# --------------------------------------------------------------------------- synthesis


def clip_cues(clip: Clip, rng: np.random.Generator) -> dict:
    """The acoustic settings of one clip: speaker base + intensity x emotion style + clip noise."""
    b = clip.speaker.base
    delta = clip.speaker.style[clip.emotion] * b["expressiveness"] * clip.intensity
    v = dict(zip(CUES, delta + UTT_NOISE * rng.standard_normal(len(CUES))))
    return {
        "f0_hz": float(np.clip(b["f0_hz"] * 2 ** (v["f0"] / 12), 65, 420)),
        "range_st": b["range_st"] * np.exp(v["range"]),
        "rate": float(np.clip(b["rate"] * np.exp(v["rate"]), 2.8, 7.5)) * (1.1 if clip.timing == "emodb" else 1),
        "level": b["level"] + v["level"], "oq": float(np.clip(b["oq"] + v["oq"], 0.3, 0.85)),
        "tilt": float(np.clip(b["tilt"] + v["tilt"], 0.1, 0.92)),
        "breath": float(np.clip(b["breath"] + v["breath"], 0.0, 0.8)),
        "jitter": float(np.clip(b["jitter"] + v["jitter"], 0.0, 0.06)),
        "creak": float(np.clip(b["creak"] + v["creak"], 0.0, 1.0)),
        "tremor_st": max(0.0, v["tremor"]), "final_st": v["final"] - 1.0, "vtl": b["vtl"],
    }


def synthesize(clip: Clip, rng: np.random.Generator) -> np.ndarray:
    """One clip's waveform at 16 kHz.

    Returns:
        (samples,) float64 in (-1, 1).
    """
    p = clip_cues(clip, rng)
    plan = _sentence_plan(clip.text, clip.syllables)
    target_s = -(-clip.frames * SR // clip.sample_rate) / SR if clip.frames else 0.0  # ceil to 16 kHz
    syl = _timeline(plan, p, clip.timing, rng, target_s)
    plan = {k: v[: len(syl["c_start"])] for k, v in plan.items()}  # the short clip keeps 2 syllables
    n = int((syl["speech_end"] + 0.08) * SR)  # the voice is made only where speech is
    t = np.arange(n) / SR  # (samples,)
    f0 = _f0_track(t, syl, p, rng)  # (samples,)
    glottal, source = _glottal_source(f0, p, rng)
    voicing = _envelope(n, syl["v_start"], syl["v_end"], syl["amp"], 0.02, 0.04)
    murmur = 0.35 * syl["amp"] * (plan["onsets"] == "voiced")  # voiced consonants (m, n, l, w)
    voicing += _envelope(n, syl["c_start"], syl["v_start"], murmur, 0.01, 0.01)
    aspiration = np.diff(rng.standard_normal(n + 1)) * (0.3 + 0.7 * glottal)
    excitation = (source + 2.0 * p["breath"] * aspiration) * voicing
    excitation = signal.lfilter([1 - p["tilt"]], [1, -p["tilt"]], excitation)
    voiced = _formants(excitation, plan["vowels"], syl, p)
    speech = voiced / (np.sqrt(np.mean(voiced ** 2)) + 1e-9) + _consonants(n, plan, syl, p, rng)
    speech *= 0.05 * 10 ** (p["level"] / 20)
    offset, total = int(syl["lead"] * SR), int(syl["total"] * SR)
    if clip.frames:  # exactly the real length (float seconds could lose a sample)
        total = -(-clip.frames * SR // clip.sample_rate)
    recording = np.zeros(max(total, offset + n))
    recording[offset: offset + n] = speech
    return np.tanh(_channel(recording[:total], clip.relpath.split("/")[0], rng))


@lru_cache(maxsize=None)
def _sentence_plan_cached(text: str, syllables: int) -> tuple:
    rng = np.random.default_rng(zlib.crc32(f"sentence:{text}".encode()))
    vowels = rng.choice(list(VOWELS), syllables)
    onsets = rng.choice(ONSETS, syllables)
    stress = rng.random(syllables) < 0.4
    stress[rng.integers(syllables)] = True  # at least one accent
    return vowels, onsets, stress


def _sentence_plan(text: str, syllables: int) -> dict:
    """Vowels, onset consonants and stress of a sentence: the same for every speaker."""
    vowels, onsets, stress = _sentence_plan_cached(text, syllables)
    return {"vowels": vowels, "onsets": onsets, "stress": stress}


def _timeline(plan: dict, p: dict, timing: str, rng: np.random.Generator, target_s: float = 0.0) -> dict:
    """Syllable boundaries (s): consonant onset [c_start, v_start), vowel [v_start, v_end).

    Syllable times count from ``VOICE_PAD`` s before the first syllable; the recording has
    ``lead`` s more silence before that and lasts ``total`` s: derived from the syllables, or
    ``target_s`` when given (> 0; see ``_fitted_timeline``).
    """
    n = len(plan["vowels"])
    dur = (0.8 + 0.5 * plan["stress"]) / p["rate"] * rng.lognormal(0, 0.12, n) / 1.2
    cons = np.where(plan["onsets"] == "none", 0.0, np.clip(0.3 * dur, 0.03, 0.12))
    if timing == "short":
        dur = dur[:2]
        cons, n = cons[:2], 2
    pause = np.zeros(n)
    if n >= 9:  # a phrase break, longer in slow speech
        pause[n // 2] = (0.1 + 0.1 * rng.random()) * 4.6 / p["rate"]
    if target_s:
        return _fitted_timeline(plan, dur, cons, pause, timing, target_s, rng)
    lead = {"ravdess": rng.uniform(0.7, 1.1), "short": 0.08}.get(timing, rng.uniform(0.12, 0.3))
    c_start = VOICE_PAD + np.concatenate([[0.0], np.cumsum(dur + pause)[:-1]])
    speech_end = c_start[-1] + dur[-1]  # times count from VOICE_PAD before the first syllable
    trail = rng.uniform(0.12, 0.3)
    if timing == "ravdess":  # RAVDESS clips last 2.9-5.3 s: a long utterance gets less lead silence
        lead = min(lead, max(0.3, 5.0 - (speech_end - VOICE_PAD) - trail))
    total = lead + speech_end - VOICE_PAD + trail
    if timing == "ravdess":
        total = max(total, rng.uniform(3.0, 3.9))
    elif timing == "short":
        total = 0.6
    else:
        total = max(total, 1.3 + 0.2 * rng.random())
    amp = np.where(plan["stress"][:n], 1.0, 0.7) * rng.lognormal(0, 0.1, n)
    return {"c_start": c_start, "v_start": c_start + cons, "v_end": c_start + dur, "amp": amp,
            "speech_start": VOICE_PAD, "speech_end": speech_end, "lead": lead - VOICE_PAD, "total": total,
            "stress": plan["stress"][:n]}


def _fitted_timeline(plan: dict, dur: np.ndarray, cons: np.ndarray, pause: np.ndarray, timing: str,
                     target_s: float, rng: np.random.Generator) -> dict:
    """The syllable timeline fitted to a recording of exactly ``target_s`` s (paper scale's real lengths).

    Lead and trailing silence are drawn as in the free timeline (at most half the clip); the
    syllables then fill the rest at 0.8-1.25 x their natural duration (so the emotions' rate cues
    survive in part). A clip too short for the whole sentence drops final syllables (2 are always
    kept; then the 0.8 floor yields); one too long gets phrase breaks of up to 0.6 s after every
    third syllable, and what is still left goes to the silence at both ends. CHOSEN design.
    """
    lead = rng.uniform(0.7, 1.1) if timing == "ravdess" else rng.uniform(0.12, 0.3)  # includes VOICE_PAD
    trail = rng.uniform(0.12, 0.3)
    squeeze = min(1.0, 0.5 * target_s / (lead + trail))
    lead, trail = max(VOICE_PAD + 0.01, lead * squeeze), trail * squeeze
    avail = target_s - lead - trail
    ends = np.cumsum(dur + pause) - pause  # (n,) natural end of each syllable
    k = max(2, int(np.sum(0.8 * ends <= avail)))
    dur, cons, pause = dur[:k], cons[:k], pause[:k].copy()
    pause[-1] = 0.0
    factor = min(1.25, avail / ends[k - 1])
    dur, cons, pause = dur * factor, cons * factor, pause * factor
    extra = avail - factor * ends[k - 1]  # >= 0
    breaks = np.arange(2, k - 1, 3)  # a break after syllables 3, 6, 9, ...
    if extra > 0 and breaks.size:
        each = min(0.6, 0.5 * extra / breaks.size)
        pause[breaks] += each
        extra -= each * breaks.size
    share = rng.uniform(0.3, 0.7)
    lead, trail = lead + share * extra, trail + (1 - share) * extra
    c_start = VOICE_PAD + np.concatenate([[0.0], np.cumsum(dur + pause)[:-1]])
    speech_end = c_start[-1] + dur[-1]
    amp = np.where(plan["stress"][:k], 1.0, 0.7) * rng.lognormal(0, 0.1, k)
    return {"c_start": c_start, "v_start": c_start + cons, "v_end": c_start + dur, "amp": amp,
            "speech_start": VOICE_PAD, "speech_end": speech_end, "lead": lead - VOICE_PAD, "total": target_s,
            "stress": plan["stress"][:k]}


def _f0_track(t: np.ndarray, syl: dict, p: dict, rng: np.random.Generator) -> np.ndarray:
    """F0 in Hz per sample: declination, accents, final rise/fall, tremor, jitter, creaky drop."""
    tk = np.arange(0, t[-1] + 0.01, 0.005)  # (frames,) control points every 5 ms
    span = syl["speech_end"] - syl["speech_start"]
    pos = np.clip((tk - syl["speech_start"]) / span, 0, 1)
    centre = 0.5 * (syl["v_start"] + syl["v_end"])
    width = 0.35 * (syl["v_end"] - syl["v_start"]) + 0.01
    weight = np.where(syl["stress"], 1.0, 0.35) * rng.uniform(0.6, 1.2, len(centre))
    accents = (weight * np.exp(-0.5 * ((tk[:, None] - centre) / width) ** 2)).sum(axis=1)  # (frames,)
    final = np.clip((tk - syl["v_start"][-1]) / (syl["v_end"][-1] - syl["v_start"][-1]), 0, 1)
    st = (-1.5 * pos + p["range_st"] * accents + p["final_st"] * final
          + p["tremor_st"] * np.sin(2 * np.pi * 5.5 * tk + rng.uniform(0, 6.3))
          + 17.3 * p["jitter"] * rng.standard_normal(tk.size) - 4 * p["creak"] * (pos > 0.75))
    return p["f0_hz"] * 2 ** (np.interp(t, tk, st) / 12)


def _glottal_source(f0: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rosenberg flow pulses (for pulsed noise) and their derivative with shimmer and creak."""
    phase = np.cumsum(f0) / SR
    cycle = phase.astype(np.int64)
    frac = phase - cycle
    tp, tn = 0.65 * p["oq"], 0.35 * p["oq"]
    flow = np.where(frac < tp, 0.5 * (1 - np.cos(np.pi * frac / tp)),
                    np.where(frac < tp + tn, np.cos(0.5 * np.pi * np.minimum(frac - tp, tn) / tn), 0.0))
    gains = 1 + (0.04 + 2 * p["jitter"]) * rng.standard_normal(cycle[-1] + 1)
    gains *= np.where(np.arange(cycle[-1] + 1) % 2 == 1, 1 - 0.7 * p["creak"], 1.0)
    gains += 0.3 * p["creak"] * rng.standard_normal(gains.size)
    source = np.diff(flow, prepend=0.0) * gains[cycle]
    return flow, source / (np.sqrt(np.mean(source ** 2)) + 1e-9)


def _envelope(n: int, starts: np.ndarray, ends: np.ndarray, amps: np.ndarray, attack: float,
              release: float) -> np.ndarray:
    """Sum of raised-cosine-edged segments [start, end) with the given amplitudes: (n,)."""
    env = np.zeros(n)
    for s, e, a in zip(starts, ends, amps):
        i0, i1 = int(s * SR), min(int(e * SR), n)
        if i1 - i0 < 4 or a == 0:
            continue
        k = i1 - i0
        ramp_up = np.minimum(1.0, np.arange(k) / max(1, attack * SR))
        ramp_down = np.minimum(1.0, np.arange(k)[::-1] / max(1, release * SR))
        env[i0:i1] += a * (0.5 - 0.5 * np.cos(np.pi * np.minimum(ramp_up, ramp_down)))
    return env


@lru_cache(maxsize=4096)
def _formant_sos(vowel: str, vtl: float, widen: float) -> np.ndarray:
    """Cascade of four Klatt resonators (unit DC gain) as second-order sections: (4, 6)."""
    rows = []
    for f, bw in zip(VOWELS[vowel], (80.0 + widen, 100.0, 150.0, 250.0)):
        r, theta = np.exp(-np.pi * bw / SR), 2 * np.pi * min(f * vtl, 0.45 * SR) / SR
        a1, a2 = -2 * r * np.cos(theta), r * r
        rows.append([1 + a1 + a2, 0, 0, 1, a1, a2])
    return np.array(rows)


def _formants(x: np.ndarray, vowels: np.ndarray, syl: dict, p: dict) -> np.ndarray:
    """Filter each syllable through its vowel's resonators, cross-fading 10 ms at the boundaries."""
    n, fade = x.size, int(0.01 * SR)
    edges = [0] + [int(b * SR) for b in syl["c_start"][1:]] + [n]
    vtl, widen = round(p["vtl"], 3), round(100 * p["breath"])
    ramp = np.linspace(0.0, 1.0, fade)
    out = np.zeros_like(x)
    for k, vowel in enumerate(vowels):
        i0, i1 = max(0, edges[k] - fade // 2), min(n, edges[k + 1] + fade // 2)
        if i1 - i0 <= 2 * fade:
            continue
        weight = np.ones(i1 - i0)
        if k > 0:
            weight[:fade] = ramp
        if k < len(vowels) - 1:
            weight[-fade:] = ramp[::-1]
        out[i0:i1] += weight * signal.sosfilt(_formant_sos(str(vowel), vtl, widen), x[i0:i1])
    return out


@lru_cache(maxsize=None)
def _noise_sos(kind: str) -> np.ndarray:
    bands = {"s": ("bandpass", [3800, 7200]), "sh": ("bandpass", [1800, 4500]), "f": ("highpass", 1200),
             "stop": ("highpass", 500)}
    btype, freq = bands[kind]
    return signal.butter(4, freq, btype, fs=SR, output="sos")


def _consonants(n: int, plan: dict, syl: dict, p: dict, rng: np.random.Generator) -> np.ndarray:
    """Fricative noise over the onset, or a closure and a 15 ms burst for stops: (n,)."""
    noise = rng.standard_normal(n)
    onsets = plan["onsets"][: len(syl["c_start"])]
    force = 10 ** (p["level"] / 60)  # loud speech has strong consonants, slightly more than vowels
    out = np.zeros(n)
    for kind, gain in (("s", 0.35), ("sh", 0.3), ("f", 0.12)):
        mine = onsets == kind
        if mine.any():
            amps = np.full(mine.sum(), gain * force)
            env = _envelope(n, syl["c_start"][mine], syl["v_start"][mine], amps, 0.015, 0.01)
            out += env * signal.sosfilt(_noise_sos(kind), noise)
    stops = onsets == "stop"
    if stops.any():
        burst = syl["v_start"][stops] - 0.015
        env = _envelope(n, burst, burst + 0.015, np.full(stops.sum(), 0.6 * force), 0.001, 0.012)
        out += env * signal.sosfilt(_noise_sos("stop"), noise)
    return out


def _channel(x: np.ndarray, corpus: str, rng: np.random.Generator) -> np.ndarray:
    """Recording chain of each corpus: a band limit and a noise floor."""
    floor_db, sos = {"CREMA-D": (-58, _band("highpass", 70)), "RAVDESS": (-70, _band("highpass", 40)),
                     "EmoDB": (-55, _band("lowpass", 6500))}[corpus]
    return signal.sosfilt(sos, x) + 10 ** (floor_db / 20) * rng.standard_normal(x.size)


@lru_cache(maxsize=None)
def _band(btype: str, freq: float) -> np.ndarray:
    return signal.butter(2, freq, btype, fs=SR, output="sos")
