"""Audio of the clips and utterance prosody descriptors (paper 5.4/6.3).

Owns the pyin pitch contour, librosa prosody descriptors (pyin pitch, RMS energy contour, onset
rate) of 16 kHz clips (``serlib.common.audio.load_audio``) cached in ``<run>/analysis/prosody.csv``,
their timing, and their comparison between correct and misclassified clips (tables; the box plots
are ``serlib.report.confusionplots``). The confusion tables themselves live in
``serlib.analysis.confusion``; display is the notebook's job (``notebooks/05_confusion.ipynb``).
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu
from tqdm.auto import tqdm

from serlib.analysis.stats import benjamini_hochberg, holm, zscore_within
from serlib.common.audio import load_audio
from serlib.common.config import AnalysisConfig, Config
from serlib.common.facts import CLASSES, SAMPLE_RATE
from serlib.common.io import write_csv_atomic
from serlib.common.pool import check_workers, process_map
from serlib.common.progress import Progress
from serlib.common.runfolder import RunFolder

PROSODY_COLUMNS = (
    "f0_mean_hz",
    "f0_range_st",
    "f0_slope_st_s",
    "voiced_frac",
    "rms_mean_db",
    "rms_slope_db_s",
    "rms_std_db",
    "onset_rate_hz",
    "duration_s",
)
PROSODY_LABELS = {
    "f0_mean_hz": "pitch mean (Hz)",
    "f0_range_st": "pitch range p5-p95 (semitones)",
    "f0_slope_st_s": "pitch slope (semitones/s)",
    "voiced_frac": "voiced fraction",
    "rms_mean_db": "energy mean (dB)",
    "rms_slope_db_s": "energy slope (dB/s)",
    "rms_std_db": "energy std (dB)",
    "onset_rate_hz": "onset rate (1/s, speaking-rate proxy)",
    "duration_s": "duration (s)",
}
_CACHE_KEY = ("path", "mtime_ns", "size", "settings")
POOL_MIN_CLIPS = 8  # fewer uncached clips than this are analysed in this process (a pool's start costs seconds)
CHUNKSIZE = 1  # clips per task sent to a worker process (a clip takes ~0.4 s: balance over IPC)


# --------------------------------------------------------------------------- prosody


def pitch_settings(analysis: AnalysisConfig) -> str:
    """The pyin/RMS settings as one string: part of the prosody cache key."""
    return (
        f"fmin={analysis.pitch_fmin:g};fmax={analysis.pitch_fmax:g};frame={analysis.pitch_frame_length};"
        f"hop_ms={analysis.pitch_hop_ms:g};sr={SAMPLE_RATE}"
    )


def hop_length(analysis: AnalysisConfig) -> int:
    """pyin/RMS hop in samples at 16 kHz."""
    return max(1, round(analysis.pitch_hop_ms * SAMPLE_RATE / 1000))


def pitch_contour(audio: np.ndarray, analysis: AnalysisConfig) -> tuple[np.ndarray, np.ndarray]:
    """pyin pitch track of a 16 kHz clip.

    Args:
        audio: (samples,) float32 mono at 16 kHz.
        analysis: the pyin settings.

    Returns:
        times (frames,) in seconds and f0 (frames,) in Hz, NaN where unvoiced.
    """
    import librosa  # numba-compiled; seconds to import, and a pool worker imports it only when it analyses

    hop = hop_length(analysis)
    f0, _, _ = librosa.pyin(
        audio,
        fmin=analysis.pitch_fmin,
        fmax=analysis.pitch_fmax,
        sr=SAMPLE_RATE,
        frame_length=analysis.pitch_frame_length,
        hop_length=hop,
    )
    times = librosa.times_like(f0, sr=SAMPLE_RATE, hop_length=hop)
    return times, f0


def prosody_descriptors(audio: np.ndarray, analysis: AnalysisConfig) -> dict:
    """Utterance prosody descriptors of one 16 kHz clip (paper 5.4/6.3: pitch slope, energy contour,
    speaking rate).

    Pitch (pyin): mean (Hz), range p5-p95 and linear slope in semitones, voiced fraction.
    Energy (RMS in dB, frames above -60 dB re max): mean, linear slope, std. Speaking-rate proxy:
    onsets per second (librosa onset detection).

    Args:
        audio: (samples,) float32 mono at 16 kHz.
        analysis: pyin/RMS settings.

    Returns:
        A dict with the ``PROSODY_COLUMNS`` keys (NaN where undefined, e.g. no voiced frame).
    """
    import librosa  # numba-compiled: seconds to import, paid only where clips are analysed

    if audio.size < analysis.pitch_frame_length:
        raise ValueError(f"clip shorter than one pyin frame ({audio.size} < {analysis.pitch_frame_length} samples)")
    hop = hop_length(analysis)
    times, f0 = pitch_contour(audio, analysis)  # (frames,), (frames,)
    rms = librosa.feature.rms(y=audio, frame_length=analysis.pitch_frame_length, hop_length=hop)[0]  # (frames,)
    rms_db = librosa.amplitude_to_db(rms, ref=np.max, top_db=None)
    duration = audio.size / SAMPLE_RATE
    onsets = librosa.onset.onset_detect(y=audio, sr=SAMPLE_RATE, hop_length=hop, units="time")
    return {
        **_pitch_stats(times, f0),
        **_energy_stats(times[: rms_db.size], rms_db, rms),
        "onset_rate_hz": len(onsets) / duration,
        "duration_s": duration,
    }


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(x, y, 1)[0]) if x.size >= 2 and np.ptp(x) > 0 else float("nan")


def _pitch_stats(times: np.ndarray, f0: np.ndarray) -> dict:
    voiced = np.isfinite(f0)
    if voiced.sum() == 0:
        return {"f0_mean_hz": np.nan, "f0_range_st": np.nan, "f0_slope_st_s": np.nan, "voiced_frac": 0.0}
    semitones = 12 * np.log2(f0[voiced] / 100.0)  # relative to 100 Hz
    low, high = np.percentile(semitones, [5, 95])
    return {
        "f0_mean_hz": float(np.mean(f0[voiced])),
        "f0_range_st": float(high - low),
        "f0_slope_st_s": _slope(times[voiced], semitones),
        "voiced_frac": float(voiced.mean()),
    }


def _energy_stats(times: np.ndarray, rms_db: np.ndarray, rms: np.ndarray) -> dict:
    active = rms_db > -60.0  # ignore digital silence and fades
    if rms.max() <= 0 or active.sum() == 0:
        return {"rms_mean_db": np.nan, "rms_slope_db_s": np.nan, "rms_std_db": np.nan}
    absolute_db = 20 * np.log10(np.maximum(rms[active], 1e-10))  # dBFS, comparable across clips
    return {
        "rms_mean_db": float(absolute_db.mean()),
        "rms_slope_db_s": _slope(times[active], absolute_db),
        "rms_std_db": float(absolute_db.std()),
    }


def compute_prosody(
    cfg: Config, folder: RunFolder, clips: pd.DataFrame, progress: bool = True, workers: Optional[int] = None
) -> pd.DataFrame:
    """Prosody descriptors for ``clips`` (columns ``utt_id``, ``path``), cached in the run folder.

    The cache ``<run>/analysis/prosody.csv`` is keyed by clip path, mtime, size and the pyin/RMS
    settings: a second call reuses it, a changed file or setting recomputes. A clip that cannot be
    read or analysed is reported (warning, ``error`` column) and gets NaN descriptors.

    Uncached clips are analysed by ``workers`` processes (a ``spawn`` pool whose workers load the
    pyin this process compiled and cached first); fewer than ``POOL_MIN_CLIPS`` of them, or one
    worker, are analysed in this process. The descriptors do not depend on it.

    Args:
        cfg: run configuration (``analysis`` holds the pyin settings).
        folder: the run folder.
        clips: one row per clip with ``utt_id`` and ``path``.
        progress: show a tqdm progress bar.
        workers: processes for the uncached clips (default 1). More than one saved ~3 s on the demo,
            but a fresh machine's CI crashed once (numba segfault in pyin) after two cold workers
            had compiled and cached pyin at the same time; the pool now compiles in this process
            first, and stays opt-in.

    Returns:
        One row per clip: utt_id, path, the ``PROSODY_COLUMNS``, ``seconds`` (analysis time of that
        clip when it was computed), ``error`` and ``cached`` (True when read from the cache).
    """
    settings = pitch_settings(cfg.analysis)
    cache_path = folder.prosody_cache
    cache = _read_cache(cache_path)
    workers = check_workers(1 if workers is None else workers, "prosody")
    rows, todo = [], []  # todo: (index in rows, utt_id, path, cache key) of the clips to analyse
    for clip in clips[["utt_id", "path"]].itertuples(index=False):
        key = _file_key(clip.path, settings)
        hit = cache.get(key)
        if hit is not None:
            rows.append({**hit, "utt_id": clip.utt_id, "cached": True})
        else:
            rows.append(None)
            todo.append((len(rows) - 1, clip.utt_id, str(clip.path), key))
    fresh = []
    with tqdm(total=len(clips), desc="prosody (pyin)", disable=not progress) as bar:
        bar.update(len(clips) - len(todo))
        results = _analyse_paths(
            [path for _, _, path, _ in todo], cfg.analysis, workers, bar, Progress(folder.progress, "prosody", 5.0)
        )
        for (index, utt_id, path, key), result in zip(todo, results):
            if result["error"]:  # one bad clip never stops the analysis
                warnings.warn(f"prosody: skipped {utt_id} ({path}): {result['error']}", stacklevel=2)
            row = {**dict(zip(_CACHE_KEY, key)), "utt_id": utt_id, **result}
            fresh.append(row)
            rows[index] = {**row, "cached": False}
    if fresh:
        _write_cache(cache_path, cache, fresh)
    return _prosody_frame(rows)


def _analyse_paths(
    paths: list[str], analysis: AnalysisConfig, workers: int, bar, events: Optional[Progress] = None
) -> list[dict]:
    """``_analyse_path`` of every path, in order: through ``workers`` processes (``serlib.pool``)
    when there are at least ``POOL_MIN_CLIPS``, else in this process."""
    results = []
    if workers > 1 and len(paths) >= POOL_MIN_CLIPS:
        warm_up_pitch(analysis)  # compile and cache pyin here, once: workers then only read numba's cache
    for result in process_map(
        _analyse_path,
        paths,
        extra=(analysis,),
        workers=workers,
        chunksize=CHUNKSIZE,
        min_items=POOL_MIN_CLIPS,
        initializer=_start_worker,
        initargs=(analysis, 1),
        serial_initializer=lambda: _start_worker(analysis),
        what="prosody",
    ):
        results.append(result)
        bar.update()
        if events is not None:
            events(f"prosody (pyin): {len(results):,}/{len(paths):,} clips", force=len(results) == len(paths))
    return results


def warm_up_pitch(analysis: AnalysisConfig) -> float:
    """Run pyin once on a short tone so numba's compilation is not charged to the first clip.

    Returns:
        The seconds it took (mostly compilation on a cold process).
    """
    start = time.perf_counter()
    tone = 0.3 * np.sin(2 * np.pi * 150.0 * np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE)  # (samples,)
    pitch_contour(tone.astype(np.float32), analysis)
    return time.perf_counter() - start


def _start_worker(analysis: AnalysisConfig, threads: Optional[int] = None) -> None:
    """A process's start: import the clip loader (torch) and compile pyin before its first clip, so
    that neither is charged to a clip's ``seconds``; ``threads`` caps the threads of torch, BLAS and
    OpenMP in this process: a pool worker uses one, as two workers with two threads each on two
    cores made every clip about 1.5 times slower (measured)."""
    warm_up_pitch(analysis)
    if threads:
        # threadpoolctl (a scikit-learn dependency) caps the libraries a worker has loaded by now
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(threads)
        threadpool_limits(limits=threads)  # the libraries loaded by now (numpy's OpenBLAS, torch's OpenMP)


def _analyse_path(path: str, analysis: AnalysisConfig) -> dict:
    """Descriptors, ``seconds`` and ``error`` of one clip; a failure gives NaNs and its message
    (the caller warns: this may run in a worker process)."""
    start = time.perf_counter()
    try:
        values, error = prosody_descriptors(load_audio(path, SAMPLE_RATE), analysis), ""
    except Exception as err:  # one bad clip never stops the analysis
        values, error = {c: np.nan for c in PROSODY_COLUMNS}, f"{type(err).__name__}: {err}"
    return {**values, "seconds": time.perf_counter() - start, "error": error}


def _file_key(path: str, settings: str) -> tuple:
    try:
        stat = os.stat(path)
        return str(path), int(stat.st_mtime_ns), int(stat.st_size), settings
    except OSError:
        return str(path), -1, -1, settings


def _read_cache(path: Path) -> dict:
    if not path.is_file():
        return {}
    table = pd.read_csv(path, keep_default_na=True).fillna({"error": ""})
    return {tuple(r[k] for k in _CACHE_KEY): r for r in table.to_dict("records") if r["mtime_ns"] >= 0}


def _write_cache(path: Path, cache: dict, fresh: list[dict]) -> None:
    records = {**cache, **{tuple(r[k] for k in _CACHE_KEY): r for r in fresh if r["mtime_ns"] >= 0}}
    columns = list(_CACHE_KEY) + ["utt_id", *PROSODY_COLUMNS, "seconds", "error"]
    write_csv_atomic(pd.DataFrame(list(records.values()), columns=columns), path)


def _prosody_frame(rows: list[dict]) -> pd.DataFrame:
    columns = ["utt_id", "path", *PROSODY_COLUMNS, "seconds", "error", "cached"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["error"] = frame["error"].fillna("").astype(str)
    return frame


def prosody_timing(prosody: pd.DataFrame) -> pd.DataFrame:
    """Analysis time of the prosody step: per clip and per second of audio (from the cache's times)."""
    ok = prosody[prosody["error"] == ""]
    audio_s = ok["duration_s"].sum()
    return pd.DataFrame(
        [
            {
                "clips": len(prosody),
                "computed_now": int((~prosody["cached"]).sum()),
                "from_cache": int(prosody["cached"].sum()),
                "failed": int((prosody["error"] != "").sum()),
                "audio_s": float(audio_s),
                "analysis_s": float(ok["seconds"].sum()),
                "s_per_clip": float(ok["seconds"].mean()) if len(ok) else np.nan,
                "s_per_audio_s": float(ok["seconds"].sum() / audio_s) if audio_s > 0 else np.nan,
            }
        ]
    )


def prosody_by_outcome(preds: pd.DataFrame, prosody: pd.DataFrame) -> pd.DataFrame:
    """Mean descriptors per true class and outcome (correct / misclassified)."""
    merged = with_outcome(preds, prosody)
    table = merged.groupby(["label", "outcome"], sort=False)[list(PROSODY_COLUMNS)].mean()
    table.insert(0, "clips", merged.groupby(["label", "outcome"], sort=False).size())
    order = [(c, o) for c in CLASSES for o in ("correct", "misclassified") if (c, o) in table.index]
    return table.loc[order].reset_index().rename(columns={"label": "true class"})


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg}  # multiple-test corrections across the table's tests
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg (false discovery rate)"}


def prosody_separation(
    preds: pd.DataFrame, prosody: pd.DataFrame, within_speaker: bool = True, correction: str = "bh", alpha: float = 0.05
) -> pd.DataFrame:
    """Per class and descriptor: misclassified minus correct, as Cohen's d and a Mann-Whitney p.

    A positive d means the misclassified clips of that class have the larger value.

    Args:
        preds: predictions with utt_id, label, correct and ``speaker``.
        prosody: ``compute_prosody`` output.
        within_speaker: z-score each descriptor within speaker first (over all that speaker's test
            clips), so pitch in Hz or level in dBFS compare a clip with its own speaker, not a male
            with a female voice or one recording setup with another.
        correction: "bh" or "holm", applied across every test of the table (``p_adjusted``).
        alpha: level of the ``significant`` flag.
    """
    merged = with_outcome(preds, prosody)
    if within_speaker:
        merged = zscore_within(merged, "speaker", PROSODY_COLUMNS)
    rows = []
    for label in CLASSES:
        group = merged[merged["label"] == label]
        for column in PROSODY_COLUMNS:
            right = group.loc[group["outcome"] == "correct", column].dropna()
            wrong = group.loc[group["outcome"] == "misclassified", column].dropna()
            enough = len(right) >= 2 and len(wrong) >= 2
            rows.append(
                {
                    "true class": label,
                    "descriptor": column,
                    "n_correct": len(right),
                    "n_misclassified": len(wrong),
                    "mean_correct": right.mean(),
                    "mean_misclassified": wrong.mean(),
                    "cohen_d": _cohen_d(wrong, right) if enough else np.nan,
                    "mannwhitney_p": mannwhitneyu(wrong, right).pvalue if enough else np.nan,
                }
            )
    table = pd.DataFrame(rows)
    tested = table["mannwhitney_p"].notna()
    table["p_adjusted"], table["significant"] = np.nan, False
    if tested.any():
        adjusted, reject = CORRECTIONS[correction](table.loc[tested, "mannwhitney_p"].to_numpy(), alpha)
        table.loc[tested, "p_adjusted"], table.loc[tested, "significant"] = adjusted, reject
    if within_speaker:
        table = table.rename(columns={"mean_correct": "mean_z_correct", "mean_misclassified": "mean_z_misclassified"})
    return table


def _cohen_d(a: pd.Series, b: pd.Series) -> float:
    pooled = np.sqrt(((len(a) - 1) * a.var() + (len(b) - 1) * b.var()) / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else np.nan


def with_outcome(preds: pd.DataFrame, prosody: pd.DataFrame) -> pd.DataFrame:
    """The clips of ``preds`` with their prosody descriptors and ``outcome`` (correct / misclassified)."""
    keep = ["utt_id", "label", "pred", "correct"] + (["speaker"] if "speaker" in preds else [])
    merged = preds[keep].merge(prosody[prosody["error"] == ""][["utt_id", *PROSODY_COLUMNS]], on="utt_id", how="inner")
    merged["outcome"] = np.where(merged["correct"], "correct", "misclassified")
    return merged
