"""Audio in and out: the project's one loader (any rate and channel count -> mono float32) and
its one WAV writer (canonical 16-bit PCM, identical bytes for identical input)."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from serlib.common.facts import SAMPLE_RATE


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a sound file as mono float32 at ``sample_rate``.

    Args:
        path: any file soundfile reads (wav, flac, ogg).
        sample_rate: the rate to resample to (torchaudio's windowed-sinc resampler).

    Returns:
        The waveform, shape ``(samples,)``, float32, channels averaged.

    Raises:
        ValueError: the file holds no samples. soundfile's own errors pass through.
    """
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
    if data.shape[0] == 0:
        raise ValueError(f"{path}: the file holds no audio samples")
    mono = data.mean(axis=1)  # (samples,)
    if rate != sample_rate:
        mono = torchaudio.functional.resample(torch.from_numpy(mono), rate, sample_rate).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)


def probe_samples(path: str | Path, sample_rate: int = SAMPLE_RATE) -> int:
    """Sample count ``load_audio`` will return, from the header alone (no decoding)."""
    info = sf.info(str(path))
    return resampled_length(info.frames, info.samplerate, sample_rate)


def resampled_length(samples: int, rate: int, sample_rate: int) -> int:
    """How many samples ``load_audio`` returns for a file of ``samples`` at ``rate`` (torchaudio's rule)."""
    if rate == sample_rate:
        return samples
    g = np.gcd(rate, sample_rate)
    orig, new = rate // g, sample_rate // g
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
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(body), b"WAVE", b"fmt ", 16, 1, channels,
                         sample_rate, sample_rate * 2 * channels, 2 * channels, 16, b"data", len(body))
    return header + body
