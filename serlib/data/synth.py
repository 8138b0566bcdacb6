"""The demo corpus's sound: a source-filter voice, speakers and emotion cues (``serlib.synth``).

``serlib.democorpus`` plans the corpus (names, layouts, speakers' corpus and sex, bad files) and
writes the files and markers; this module owns what a clip sounds like: each speaker's voice
(``_make_speaker``), a clip's acoustic settings (``clip_cues``) and its waveform (``synthesize``:
sentence plan, syllable timeline, F0 track, glottal source, formants, consonant noise and each
corpus's recording channel). Every function draws only from the generator it is given, so the
same (seed, file name) gives the same samples.

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
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import signal

from serlib.common.facts import SAMPLE_RATE

SR = SAMPLE_RATE  # synthesis rate (the encoders' rate); RAVDESS is resampled to 48 kHz
VOICE_PAD = 0.05  # s of silence synthesised before the first syllable

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

# Male vowel formants (Hz), scaled by each speaker's vocal-tract factor.
VOWELS = {"a": (730, 1090, 2440, 3400), "e": (530, 1840, 2480, 3500), "i": (300, 2250, 3000, 3650),
          "o": (570, 840, 2410, 3400), "u": (320, 900, 2240, 3350), "@": (500, 1500, 2500, 3450)}
ONSETS = ("s", "sh", "f", "stop", "stop", "voiced", "voiced", "none")  # consonant kinds, drawn per syllable


# What to synthesise: planned by serlib.democorpus, read by clip_cues and synthesize.
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


# --------------------------------------------------------------------------- speakers


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
