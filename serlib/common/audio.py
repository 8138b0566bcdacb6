"""Audio in and out: the project's one loader (any rate and channel count -> mono float32) and
its one WAV writer (canonical 16-bit PCM, identical bytes for identical input)."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from serlib.common.facts import SAMPLE_RATE

MIN_RATE, MAX_RATE = 1_000, 768_000  # header sample rates read as audio (Hz); others are an error
MAX_RATIO_TERM = 1_000  # the resampling ratio is a fraction whose terms are at most this (see ``resample_ratio``)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a sound file as mono float32 at ``sample_rate``.

    Args:
        path: any file soundfile reads (wav, flac, ogg).
        sample_rate: the rate to resample to (``resample``: torchaudio's windowed-sinc resampler).

    Returns:
        The waveform, shape ``(samples,)``, float32, channels averaged.

    Raises:
        ValueError: the file holds no samples, NaN or infinite samples, or its header states a sample
            rate outside ``MIN_RATE``-``MAX_RATE``. soundfile's own errors pass through.
    """
    check_rate(sf.info(str(path)).samplerate, path)  # before decoding: a rate decides the resampler's memory
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
    if data.shape[0] == 0:
        raise ValueError(f"{path}: the file holds no audio samples")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: the file holds NaN or infinite samples")
    mono = data.mean(axis=1)  # (samples,)
    return np.ascontiguousarray(resample(mono, rate, sample_rate), dtype=np.float32)


def check_rate(rate: int, path: str | Path = "audio") -> None:
    """A header's sample rate is one audio has (``MIN_RATE``-``MAX_RATE`` Hz), else ValueError naming it."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(
            f"{path}: its header states a sample rate of {rate} Hz, outside the {MIN_RATE}-{MAX_RATE} Hz "
            "that audio is recorded at (a damaged header?)"
        )


def resample_ratio(rate: int, sample_rate: int) -> tuple[int, int]:
    """``(orig, new)``: the smallest whole numbers with ``new / orig`` = ``sample_rate / rate``, each at most
    ``MAX_RATIO_TERM``; a ratio that needs larger terms (16001 Hz to 16000) takes the nearest that does not.

    torchaudio's resampler builds a filter bank of ``new`` phases of about ``orig`` taps, so its memory grows
    with the terms of the reduced ratio: 16001 -> 16000 Hz would take gigabytes for a 0.1 s clip. Every
    common rate (8, 11.025, 22.05, 44.1, 48, 96 kHz ...) to 16 kHz reduces to terms of at most 441, so their
    result is exact as before. An odd rate is read as the nearest rate such terms allow: off by less than
    0.1 % (under two cents of pitch; 16001 Hz is read as 16000 Hz, 0.006 % off, and 12345 Hz is exact to 1e-6).
    """
    exact = Fraction(sample_rate, rate)
    if max(exact.numerator, exact.denominator) <= MAX_RATIO_TERM:
        return exact.denominator, exact.numerator
    if exact >= 1:  # upsampling: bound the larger term (new) through the inverse ratio
        inverse = Fraction(rate, sample_rate).limit_denominator(MAX_RATIO_TERM)
        return max(inverse.numerator, 1), inverse.denominator
    near = exact.limit_denominator(MAX_RATIO_TERM)
    return near.denominator, max(near.numerator, 1)


def resample(wave: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """``wave`` ``(samples,)`` float32 from ``rate`` to ``sample_rate`` (memory bounded: ``resample_ratio``)."""
    if rate == sample_rate:
        return wave
    check_rate(rate)
    orig, new = resample_ratio(rate, sample_rate)
    if orig == new:
        return wave
    return torchaudio.functional.resample(torch.from_numpy(np.ascontiguousarray(wave)), orig, new).numpy()


def probe_samples(path: str | Path, sample_rate: int = SAMPLE_RATE) -> int:
    """Sample count ``load_audio`` will return, from the header alone (no decoding)."""
    info = sf.info(str(path))
    check_rate(info.samplerate, path)
    return resampled_length(info.frames, info.samplerate, sample_rate)


def resampled_length(samples: int, rate: int, sample_rate: int) -> int:
    """How many samples ``load_audio`` returns for a file of ``samples`` at ``rate`` (torchaudio's rule)."""
    if rate == sample_rate:
        return samples
    orig, new = resample_ratio(rate, sample_rate)
    return -(-new * samples // orig)  # ceil(new * samples / orig)


def wav_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A canonical 16-bit PCM WAV file (44-byte header), identical for identical input.

    Args:
        audio: ``(samples,)`` mono or ``(samples, channels)``, float in [-1, 1]; values outside are clipped.
        sample_rate: in Hz.
    """
    frames = np.asarray(audio)
    if frames.ndim == 1:
        frames = frames[:, None]  # (samples, 1)
    pcm = np.round(np.clip(frames, -1, 1) * 32767).astype("<i2")  # (samples, channels)
    channels = pcm.shape[1]
    body = pcm.tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(body),
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        sample_rate,
        sample_rate * 2 * channels,
        2 * channels,
        16,
        b"data",
        len(body),
    )
    return header + body
