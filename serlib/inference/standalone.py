"""Score audio with a serlib bundle's model.onnx; needs onnxruntime, numpy and soundfile only.

    pip install onnxruntime numpy soundfile
    python predict.py clip.wav more/ [--int8] [--long centre] [--hop SECONDS] > predictions.csv

A file is read as mono float32 and resampled to 16 kHz as serlib reads it (torchaudio's windowed-sinc
resampler, here in numpy). A clip that fits the window is one row of model.onnx; a longer one is cut into
windows --hop apart (default half a window; the last ends at the clip's end) and their probabilities
are averaged; --long centre feeds the whole clip (the graph keeps its centre window, as training did).
One CSV row per file, with the columns of `serlib predict`. (serlib ships this file as the bundle's
predict.py: serlib.inference.standalone.)
"""

import argparse
import csv
import json
import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf

SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
COLUMNS = [
    "path",
    "duration_s",
    "windows",
    "pred",
    "prob_negative",
    "prob_sad_fear",
    "prob_pos_neutral",
    "model_id",
    "weights",
    "error",
]


def ratio(rate, target, most=1000):
    """(orig, new), the reduced ratio with terms <= most (serlib.common.audio.resample_ratio)."""
    exact = Fraction(target, rate)
    if max(exact.numerator, exact.denominator) <= most:
        return exact.denominator, exact.numerator
    if exact >= 1:
        inverse = Fraction(rate, target).limit_denominator(most)
        return max(inverse.numerator, 1), inverse.denominator
    near = exact.limit_denominator(most)
    return near.denominator, max(near.numerator, 1)


def resample(wave, rate, target, zeros=6, rolloff=0.99):
    """torchaudio.functional.resample (sinc_interp_hann) in numpy: (samples,) float32 at target Hz."""
    orig, new = ratio(rate, target)
    if orig == new:
        return wave
    base = min(orig, new) * rolloff
    width = math.ceil(zeros * orig / base)
    f32 = np.float32  # in float32, step by step as torchaudio computes its kernel
    t = np.arange(0, -new, -1, dtype=f32)[:, None] / f32(new) + np.arange(-width, width + orig, dtype=f32) / f32(orig)
    t = np.clip(t * f32(base), -zeros, zeros).astype(f32)  # (new, 2 width + orig)
    hann = np.cos(t * f32(math.pi / zeros / 2)) ** 2
    t = t * f32(math.pi)
    kernel = np.where(t == 0, f32(1), np.sin(t) / np.where(t == 0, f32(1), t)) * (hann * f32(base / orig))
    padded = np.pad(wave, (width, width + orig))
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1])[::orig]  # (steps, taps)
    return (frames @ kernel.T).reshape(-1)[: math.ceil(new * len(wave) / orig)]


def read(path, target):
    """(samples,) float32 mono at target Hz; ValueError for what cannot be scored."""
    rate = sf.info(path).samplerate
    if not 1000 <= rate <= 768000:
        raise ValueError(f"its header states {rate} Hz, outside 1000-768000 Hz")
    data, rate = sf.read(path, dtype="float32", always_2d=True)  # (samples, channels)
    if data.size == 0 or not np.isfinite(data).all():
        raise ValueError("the file holds no audio samples, or NaN / infinite ones")
    return np.ascontiguousarray(resample(data.mean(axis=1), rate, target), dtype=np.float32)


def score(session, wave, meta, hop=None, centre=False, batch=16):
    """(probabilities (classes,), windows): one clip through model.onnx, windows averaged."""
    window = meta["window_samples"]
    if len(wave) < meta["min_samples"]:
        raise ValueError(f"{len(wave)} samples is shorter than one frame ({meta['min_samples']} samples)")
    step = max(1, round(hop * meta["sample_rate"])) if hop else max(1, window // 2)
    if centre or len(wave) <= window:
        parts = [wave]  # the graph scores its centre window
    else:
        starts = list(range(0, len(wave) - window + 1, step))
        if starts[-1] != len(wave) - window:
            starts.append(len(wave) - window)  # the last window ends at the clip's end
        parts = [wave[a : a + window] for a in starts]
    probs = np.concatenate(
        [session.run(None, {"audio": np.stack(parts[i : i + batch])})[0] for i in range(0, len(parts), batch)]
    )
    return probs.mean(axis=0), len(parts)


def files(items):
    for item in map(Path, items):
        yield from sorted(p for p in item.rglob("*") if p.suffix.lower() in SUFFIXES) if item.is_dir() else [item]


def load(bundle, int8=False):
    """(bundle.json as a dict, an onnxruntime session of its model.onnx or model-int8.onnx)."""
    meta = json.loads((Path(bundle) / "bundle.json").read_text())
    model = Path(bundle) / meta["model_int8_onnx" if int8 else "model_onnx"]
    return meta, ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])


def rows(meta, session, items, hop=None, centre=False):
    """One dict per file (the columns of COLUMNS); a file that cannot be scored is a row with its error."""
    for path in files(items):
        row = dict.fromkeys(COLUMNS, "") | {"path": str(path), "model_id": meta["model_id"], "weights": meta["weights"]}
        try:
            wave = read(str(path), meta["sample_rate"])
            row["duration_s"] = round(len(wave) / meta["sample_rate"], 4)
            probs, row["windows"] = score(session, wave, meta, hop, centre)
            row["pred"] = meta["classes"][int(np.argmax(probs))]
            row |= {f"prob_{c}": float(p) for c, p in zip(meta["classes"], probs)}
        except Exception as err:  # the others go on
            row["error"] = f"{type(err).__name__}: {err}"
        yield row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("audio", nargs="+", help="audio files or folders (searched for wav, flac, mp3, ogg)")
    parser.add_argument("--int8", action="store_true", help="the int8 model (smaller, faster, slightly different)")
    parser.add_argument(
        "--long", choices=["windows", "centre"], default="windows", help="a clip longer than the window"
    )
    parser.add_argument("--hop", type=float, help="seconds between windows (default: half a window)")
    args = parser.parse_args(argv)
    if args.hop is not None and not 0 < args.hop <= 3600:
        parser.error(f"--hop must be a number of seconds above 0 and at most 3600, got {args.hop}")
    writer = csv.DictWriter(sys.stdout, COLUMNS, lineterminator="\n")
    writer.writeheader()
    failed = 0
    meta, session = load(Path(__file__).resolve().parent, args.int8)
    for row in rows(meta, session, args.audio, args.hop, args.long == "centre"):
        writer.writerow(row)
        failed += bool(row["error"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
