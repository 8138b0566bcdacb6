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
per clip from ``serlib.tools.bench.CREMA_D_LENGTH`` (log-normal, median 2.5 s, 1.27-5.01 s, CHOSEN). The
syllable timeline is fitted to each length (``serlib.data.synth._fitted_timeline``). The names, sexes, sample
rates, channels and frame counts come from ``serlib/data/real_layout.json.gz`` (packaged, built
from ``shared/real-names``), so the same seed gives the same corpus with or without ``shared/``.
No bad files at this scale: no misnamed, empty, truncated, too-short or song file.

Sound. Each clip is speech-like, made at 16 kHz by the source-filter model of ``serlib.synth``
(RAVDESS is then resampled to 48 kHz); speakers differ in voice and in how they act the
emotions (``serlib.synth`` describes the model and the cues). This module owns the rest: the
scales, the plan (names, layouts, speakers, lengths, bad files), the WAV files and the markers.

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
WAV files are written by a fixed 44-byte-header writer, and nothing depends on time, order or
process. Generation: default about 11 s, smoke about 3 s of CPU on one core (NumPy/SciPy, no
extra package); the clips are written by ``workers`` processes (default ``min(2, cpu count)``,
a ``spawn`` pool), about 8 s of wall time for the default scale on two cores.
"""
from __future__ import annotations

import gzip
import json
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
from scipy import signal
from tqdm import tqdm

from serlib.common.audio import wav_bytes
from serlib.common.facts import CLASSES, CORPORA, EMODB_SEX, EMOTION_CODES, EMOTION_TO_CLASS
from serlib.common.facts import SAMPLE_RATE as SR
from serlib.common.pool import check_workers, process_map
from serlib.data.lengths import CREMA_D_LENGTH
from serlib.data.synth import Clip, Speaker, _make_speaker, _rng, synthesize

VERSION = 1  # bump when the corpus design changes: a marker of another version is regenerated
MARKER = ".serlib-demo.json"  # written last: its presence means a complete generation
PARTIAL = ".serlib-demo.partial"  # written first: the folders are ours, safe to redo
REAL_LAYOUT = Path(__file__).resolve().parent / "real_layout.json.gz"  # the real releases' names (package data)
CHUNKSIZE = 16  # clips per task sent to a worker process


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

CREMA_EMOTIONS = EMOTION_CODES["CREMA-D"]  # code -> emotion, as the reader maps them (serlib.common.facts)
CREMA_SENTENCES = {"IEO": 5, "TIE": 8, "IOM": 8, "IWW": 8, "TAI": 7, "MTI": 9, "IWL": 9, "ITH": 10,
                   "DFA": 6, "ITS": 7, "TSI": 5, "WSI": 9}  # code -> syllables of the real sentence
CREMA_LEVELS = {"LO": 0.6, "MD": 1.0, "HI": 1.4, "XX": 1.0, "X": 1.0}  # level -> cue intensity
RAVDESS_EMOTIONS = EMOTION_CODES["RAVDESS"]
RAVDESS_SYLLABLES = 7  # "Kids are talking by the door" / "Dogs are sitting by the door"
EMODB_EMOTIONS = EMOTION_CODES["EmoDB"]
EMODB_TEXTS = {"a01": 10, "a02": 9, "a04": 10, "a05": 14, "a07": 9, "b01": 13, "b02": 14, "b03": 14,
               "b09": 14, "b10": 13}  # long German sentences capped at 14 syllables (clips <= ~4 s)


# --------------------------------------------------------------------------- public


def generate_demo_corpus(out: Path, seed: int = 0, scale: str = "default", verbose: bool = False,
                         workers: Optional[int] = None) -> Path:
    """Write the synthetic demo corpus (see the module docstring), unless it is already complete.

    Args:
        out: folder to hold CREMA-D/, RAVDESS/, EmoDB/ and the marker ``.serlib-demo.json``.
        seed: same seed, same bytes.
        scale: ``default`` (~760 kept clips), ``smoke`` (~160, for tests) or ``paper`` (the real
            releases' 9417 names and lengths, 8952 kept; about 3 minutes).
        verbose: print a summary and show a progress bar.
        workers: processes that write the clips; None = ``min(2, os.cpu_count())``; 1 writes them
            in this process. The bytes do not depend on it (each clip has its own generator).

    Returns:
        ``out``. A complete corpus of the same seed, scale and version is reused as is; an
        interrupted or different one (marker missing or different) is removed and redone.

    Raises:
        ValueError: unknown scale, negative seed or workers < 1.
        FileExistsError: ``out`` holds corpus folders that this function did not write.
    """
    if scale not in SCALES:
        raise ValueError(f"demo corpus: unknown scale {scale!r}; use one of {sorted(SCALES)}")
    if int(seed) < 0:
        raise ValueError(f"demo corpus: seed must be >= 0, got {seed}")
    workers = check_workers(workers, "demo corpus")
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
    _write_clips(out, clips, seed, workers, verbose)
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
        spk = _make_speaker(seed, "EmoDB", sp, EMODB_SEX[sp])
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
    """A CREMA-D clip's length in samples (16 kHz): the CHOSEN log-normal of ``serlib.data.lengths`` (no real
    lengths known)."""
    c = CREMA_D_LENGTH
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
        clips.append(Clip(f"EmoDB/wav/{file}", speaker("EmoDB", sp, EMODB_SEX[sp]), EMODB_EMOTIONS[letter],
                          1.0, text, EMODB_TEXTS[text], "emodb", rate, channels, frames=frames))
    return clips


def _summary(clips: list[Clip], misnamed: bool = True) -> dict:
    """File counts, the bad files with the reason they must be excluded, and the designed kept counts."""
    bad = {"CREMA-D/AudioWAV/1003_DFA_XX.wav": "misnamed"} if misnamed else {}
    kept: dict = {c: {k: 0 for k in CLASSES} for c in CORPORA}
    for clip in clips:
        corpus = clip.relpath.split("/")[0]
        if clip.damage:
            bad[clip.relpath] = clip.damage
        elif "/03-02-" in clip.relpath:
            bad[clip.relpath] = "song"
        elif clip.timing == "short":
            bad[clip.relpath] = "too_short"
        elif clip.emotion not in EMOTION_TO_CLASS:
            bad[clip.relpath] = clip.emotion
        else:
            kept[corpus][EMOTION_TO_CLASS[clip.emotion]] += 1
    files = {c: sum(cl.relpath.startswith(c + "/") for cl in clips) + (misnamed and c == "CREMA-D")
             for c in CORPORA}
    speakers = {c: len({cl.speaker.speaker_id for cl in clips if cl.speaker.corpus == c}) for c in CORPORA}
    return {"files": files, "speakers": speakers, "kept": kept,
            "kept_total": sum(sum(v.values()) for v in kept.values()), "excluded": bad}


# --------------------------------------------------------------------------- writing


def _clear_previous(out: Path, marker: Optional[dict]) -> None:
    """Remove an interrupted or different demo corpus; refuse to touch folders serlib did not write."""
    present = [d for d in CORPORA if (out / d).exists()]
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


def _write_clips(out: Path, clips: list[Clip], seed: int, workers: int, verbose: bool) -> None:
    """Write every clip, through ``workers`` processes when more than one (``serlib.pool``);
    rewriting a clip after a broken pool gives the same bytes."""
    with tqdm(total=len(clips), desc="demo corpus", unit="clip", disable=not verbose) as bar:
        for _ in process_map(_write_clip, clips, extra=(out, seed), workers=workers, chunksize=CHUNKSIZE,
                             what="demo corpus"):
            bar.update()


def _write_clip(clip: Clip, out: Path, seed: int) -> None:
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
