"""eGeMAPS v02 functionals (88 per clip; Eyben et al., 2016) from openSMILE: the field's standard
hand-crafted baseline beside the paper's log-Mel S1 (issue 12).

``opensmile`` (PyPI) ships the openSMILE binary and runs offline. Clips are read by the project's one
audio loader (16 kHz mono), so every corpus layout and sample rate is handled alike. The values are
cached in ``<run>/analysis/egemaps.csv``, keyed by the file's path, size and modification time and the
openSMILE version: a second call reads them back, a changed file is recomputed. A clip that cannot be
read or gives non-finite values is reported (``error`` column, a warning) and left out of the baseline;
it never stops the run.
"""

from __future__ import annotations

import os
import time
import warnings
from importlib.metadata import version

import numpy as np
import pandas as pd

from serlib.common.audio import load_audio
from serlib.common.facts import SAMPLE_RATE
from serlib.common.io import write_csv_atomic
from serlib.common.progress import Progress
from serlib.common.runfolder import RunFolder

KEY = ("path", "mtime_ns", "size", "opensmile")
N_FEATURES = 88


def _smile():
    # opensmile loads its binary and a config set: only the baseline needs it
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals
    )


def clip_functionals(smile, path: str) -> np.ndarray:
    """The 88 eGeMAPS v02 functionals of one clip (ValueError when they are not all finite)."""
    values = smile.process_signal(load_audio(path, SAMPLE_RATE), SAMPLE_RATE).to_numpy(dtype=float)[0]
    if values.shape != (N_FEATURES,) or not np.isfinite(values).all():
        raise ValueError(f"{int((~np.isfinite(values)).sum())} of {values.size} eGeMAPS values are not finite")
    return values


def egemaps_features(folder: RunFolder, clips: pd.DataFrame) -> pd.DataFrame:
    """One row per clip of ``clips`` (utt_id, path): ``utt_id``, the 88 functionals, ``error`` ("" when fine)."""
    tool = version("opensmile")
    cache_path = folder.egemaps_cache
    cached = {}
    if cache_path.is_file():
        table = pd.read_csv(cache_path, keep_default_na=True).fillna({"error": ""})
        cached = {tuple(r[k] for k in KEY): r for r in table.to_dict("records")}
    smile, names, fresh, rows = None, None, [], []
    events = Progress(folder.progress, "egemaps", 5.0)
    started = time.perf_counter()
    for i, clip in enumerate(clips[["utt_id", "path"]].itertuples(index=False)):
        try:
            stat = os.stat(clip.path)
            key = (str(clip.path), int(stat.st_mtime_ns), int(stat.st_size), tool)
        except OSError as err:
            rows.append({"utt_id": clip.utt_id, "error": f"{type(err).__name__}: {err}"})
            continue
        if key in cached:
            rows.append({**cached[key], "utt_id": clip.utt_id})
            continue
        if smile is None:
            smile = _smile()
            names = list(smile.feature_names)
        record = dict(zip(KEY, key))
        try:
            record.update(zip(names, clip_functionals(smile, str(clip.path))), error="")
        except Exception as err:  # noqa: BLE001 -- one bad clip never stops the baseline
            record["error"] = f"{type(err).__name__}: {err}"
            warnings.warn(f"eGeMAPS: skipped {clip.utt_id} ({clip.path}): {record['error']}", stacklevel=2)
        fresh.append(record)
        rows.append({**record, "utt_id": clip.utt_id})
        events(f"eGeMAPS: {i + 1:,}/{len(clips):,} clips")
    if fresh:
        merged = {**cached, **{tuple(r[k] for k in KEY): r for r in fresh}}
        write_csv_atomic(pd.DataFrame(list(merged.values())), cache_path)
    frame = pd.DataFrame(rows)
    frame["error"] = frame["error"].fillna("").astype(str)
    frame.attrs["seconds"] = time.perf_counter() - started
    frame.attrs["computed"] = len(fresh)
    features = [c for c in frame.columns if c not in (*KEY, "utt_id", "error")]
    return frame[["utt_id", *features, "error"]]


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The functional columns of an ``egemaps_features`` frame."""
    return [c for c in frame.columns if c not in ("utt_id", "error")]
