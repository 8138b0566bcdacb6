"""A bundle's audio-to-label latency (``serlib bench --bundle DIR``): what a user of ``predict.py`` waits.

Each figure is the time from an audio file on disk to its label: reading it (soundfile), the windows,
the ONNX graph (encoder and head) under onnxruntime on the CPU, the mean over windows, as the bundle's
``predict.py`` does it (``serlib.inference.standalone``), for ``model.onnx`` (fp32) and
``model-int8.onnx`` (dynamic int8); and the same clip through ``serlib predict``'s torch path
(``Predictor.from_bundle``) as the baseline measured in the same run. Clips are seeded noise with a
tone at 16 kHz (the cost does not depend on the content), of 1 s, the real corpora's mean clip length,
one window, and 20 s (several windows). The forms are timed in alternation, one call each per round, so
drifting load on a shared machine hits them alike; each figure is the median over the rounds after one
warm-up round.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import onnxruntime as ort
import pandas as pd
import soundfile as sf

from serlib.common.timing import median
from serlib.data.lengths import draw_clip_lengths
from serlib.inference import standalone
from serlib.inference.bundleformat import BUNDLE_FILE, BundleError
from serlib.inference.predict import Predictor

LONG_CLIP_S = 20.0  # a clip of several windows


def clip_seconds(meta: dict) -> list[float]:
    """The clip lengths timed: 1 s, the real corpora's mean clip, one window, ``LONG_CLIP_S``."""
    lengths, _ = draw_clip_lengths(4000, seed=0)
    return sorted({1.0, round(float(lengths.mean()), 2), float(meta["window_seconds"]), LONG_CLIP_S})


def _write_clip(folder: Path, seconds: float, rate: int) -> Path:
    rng = np.random.default_rng(round(seconds * 1000))
    t = np.arange(round(seconds * rate)) / rate
    wave = 0.05 * rng.standard_normal(len(t)) + 0.2 * np.sin(2 * np.pi * 180 * t)
    path = folder / f"clip-{seconds:g}s.wav"
    sf.write(path, wave.astype(np.float32), rate)
    return path


def bundle_latency(bundle: str | Path, rounds: int = 5, torch_baseline: bool = True) -> dict:
    """Audio-to-label latency of a bundle's ONNX forms (and its torch path), per clip and per second of audio.

    Args:
        bundle: a folder ``serlib export --onnx`` wrote.
        rounds: timed rounds (the median is reported), after one warm-up round.
        torch_baseline: also time ``serlib predict``'s torch path on the same files.

    Returns:
        ``{"bundle", "model_id", "threads", "rows": [{form, clip_s, windows, ms, ms_per_audio_s}], ...}``.

    Raises:
        BundleError: not a bundle, or one exported without ``--onnx``.
    """
    root = Path(bundle).expanduser().resolve()
    if not (root / BUNDLE_FILE).is_file():
        raise BundleError(
            f"{root} is not a serlib model bundle (no {BUNDLE_FILE}); make one with "
            "`serlib export RUN --onnx --out DIR`"
        )
    meta = json.loads((root / BUNDLE_FILE).read_text())
    if not meta.get("model_onnx"):
        raise BundleError(
            f"{root / BUNDLE_FILE}: no model.onnx in this bundle; export it with --onnx "
            "(`serlib export RUN --onnx --out DIR`)"
        )
    forms = {
        "onnxruntime fp32 (model.onnx)": _onnx_scorer(root, False),
        "onnxruntime int8 (model-int8.onnx)": _onnx_scorer(root, True),
    }
    if torch_baseline:
        forms["torch (serlib predict)"] = _torch_scorer(root)
    with tempfile.TemporaryDirectory(prefix="serlib-bundle-bench-") as tmp:
        clips = {s: _write_clip(Path(tmp), s, meta["sample_rate"]) for s in clip_seconds(meta)}
        times: dict[tuple[str, float], list[float]] = {}
        windows: dict[float, int] = {}
        for round_ in range(rounds + 1):  # round 0 warms up
            for seconds, path in clips.items():
                for form, scorer in forms.items():
                    started = time.perf_counter()
                    windows[seconds] = scorer(path)
                    if round_:
                        times.setdefault((form, seconds), []).append(time.perf_counter() - started)
    rows = [
        {
            "form": form,
            "clip_s": seconds,
            "windows": windows[seconds],
            "ms": median(t) * 1e3,
            "ms_per_audio_s": median(t) * 1e3 / seconds,
        }
        for (form, seconds), t in times.items()
    ]
    return {
        "bundle": str(root),
        "model_id": meta["model_id"],
        "encoder": meta.get("encoder", ""),
        "window_seconds": meta["window_seconds"],
        "rounds": rounds,
        "threads": _threads(),
        "onnxruntime": ort.__version__,
        "rows": rows,
    }


def _onnx_scorer(root: Path, int8: bool):
    meta, session = standalone.load(root, int8)

    def score(path: Path) -> int:
        row = next(standalone.rows(meta, session, [path]))
        if row["error"]:
            raise RuntimeError(f"{path}: {row['error']}")
        return int(row["windows"])

    return score


def _torch_scorer(root: Path):
    predictor = Predictor.from_bundle(root, device="cpu")

    def score(path: Path) -> int:
        table = predictor.predict([path], progress=False)
        return int(table.at[0, "windows"])

    return score


def _threads() -> str:
    return f"onnxruntime and torch defaults on {os.cpu_count()} logical cores"


def latency_table(result: dict) -> pd.DataFrame:
    """One row per form and clip length; ``x fp32``: the form's time over fp32's on the same clip."""
    table = pd.DataFrame(result["rows"])
    fp32 = table[table["form"].str.contains("fp32")].set_index("clip_s")["ms"]
    table["x_fp32"] = table["ms"] / table["clip_s"].map(fp32)
    return table.sort_values(["clip_s", "form"]).reset_index(drop=True)


def format_latency(result: dict) -> str:
    """The printed figures."""
    table = latency_table(result)
    shown = table.rename(
        columns={
            "clip_s": "clip (s)",
            "ms": "ms per clip",
            "ms_per_audio_s": "ms per audio second",
            "x_fp32": "time / fp32",
        }
    )
    head = (
        f"serlib bench --bundle {result['bundle']}: {result['model_id']}, window {result['window_seconds']:g} s, "
        f"onnxruntime {result['onnxruntime']} ({result['threads']}); audio file to label, median of "
        f"{result['rounds']} rounds"
    )
    return "\n".join([head, shown.to_string(index=False, float_format=lambda v: f"{v:.3g}")])


def main_bundle_bench(bundle: str, json_path: Optional[str] = None, quick: bool = False) -> int:
    """``serlib bench --bundle DIR``: time, print, and write the JSON (when ``json_path`` is given)."""
    result = bundle_latency(bundle, rounds=2 if quick else 5)
    print(format_latency(result))
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(result | {"table": latency_table(result).to_dict(orient="records")}, indent=2) + "\n"
        )
        print(f"serlib bench: wrote {path}")
    return 0
