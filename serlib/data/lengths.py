"""The clip lengths of the real corpora, and clips drawn with them (the paper-scale demo corpus, ``serlib bench``).

RAVDESS and EmoDB lengths come from the real file lists (``shared/real-names``) or, without them,
from quantiles stored here; CREMA-D's lengths are not in the lists and are drawn from a CHOSEN
log-normal (``CREMA_D_LENGTH``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from serlib.common.facts import EMOTION_CODES, EMOTION_TO_CLASS, RELEASE_KEPT

# Quantiles (0 %, 5 %, ..., 100 %) of clip length in seconds, computed on 2026-11-25 from
# shared/real-names/{ravdess,emodb}_files.tsv (frames / sample_rate), clips of the six shared
# emotions only (MCULP keeps 1056 RAVDESS and 454 EmoDB clips). Used when those lists are absent.
LENGTH_QUANTILES_S = {
    "RAVDESS": (3.07, 3.237, 3.32, 3.403, 3.47, 3.504, 3.537, 3.57, 3.604, 3.637, 3.67, 3.737, 3.737,
                3.804, 3.837, 3.904, 3.971, 4.071, 4.171, 4.371, 5.272),
    "EmoDB": (1.226, 1.552, 1.672, 1.8, 1.884, 2.013, 2.096, 2.222, 2.363, 2.45, 2.583, 2.673, 2.813,
              2.953, 3.122, 3.252, 3.49, 3.732, 3.943, 5.036, 8.978),
}
# CHOSEN: the shared lists give no CREMA-D lengths. Its clips are ~1.3-5 s (most 2-3 s); we draw a
# log-normal with median 2.5 s and sigma 0.2, clipped to [1.27, 5.01] s. Not measured on the corpus.
CREMA_D_LENGTH = {"median_s": 2.5, "sigma": 0.2, "min_s": 1.27, "max_s": 5.01}
MCULP_KEPT = RELEASE_KEPT  # corpus mixture of the drawn clips: what MCULP keeps of each release
EMOTIONS_KEPT = {c: tuple(code for code, e in EMOTION_CODES[c].items() if e in EMOTION_TO_CLASS)
                 for c in ("RAVDESS", "EmoDB")}  # codes of the six shared emotions


def real_names_dir() -> Optional[Path]:
    """``$SERLIB_REAL_NAMES`` or ``shared/real-names`` beside the repository, when it holds the lists."""
    folder = Path(os.environ.get("SERLIB_REAL_NAMES", Path(__file__).resolve().parents[3] / "shared" / "real-names"))
    return folder if (folder / "ravdess_files.tsv").is_file() and (folder / "emodb_files.tsv").is_file() else None


def real_lengths(folder: Path) -> dict[str, np.ndarray]:
    """Seconds per kept clip of RAVDESS and EmoDB, read from the real file lists."""
    out = {}
    for corpus, name in (("RAVDESS", "ravdess_files.tsv"), ("EmoDB", "emodb_files.tsv")):
        table = pd.read_csv(folder / name, sep="\t")
        stem = table["file"].str.rsplit("/", n=1).str[-1]
        emotion = stem.str.split("-").str[2] if corpus == "RAVDESS" else stem.str[5]
        kept = table[emotion.isin(EMOTIONS_KEPT[corpus])]
        out[corpus] = (kept["frames"] / kept["sample_rate"]).to_numpy(dtype=float)
    return out


def draw_clip_lengths(n: int, seed: int = 0, folder: Optional[Path] = None) -> tuple[np.ndarray, str]:
    """Lengths (s) of ``n`` clips drawn with the real corpora's mixture and length distributions.

    Corpus of each clip ~ MCULP's kept counts (CREMA-D 83 %, RAVDESS 12 %, EmoDB 5 %); RAVDESS and
    EmoDB lengths are resampled from the real file lists (or, without them, from the stored
    quantiles by inverse-CDF interpolation); CREMA-D's from ``CREMA_D_LENGTH`` (CHOSEN).

    Returns:
        (n,) seconds and a sentence saying where the lengths came from.
    """
    rng = np.random.default_rng(seed)
    names = list(MCULP_KEPT)
    weights = np.array([MCULP_KEPT[c] for c in names], dtype=float)
    corpus = rng.choice(len(names), size=n, p=weights / weights.sum())
    folder = folder or real_names_dir()
    real = real_lengths(folder) if folder is not None else None
    c = CREMA_D_LENGTH
    lengths = np.clip(c["median_s"] * rng.lognormal(0.0, c["sigma"], n), c["min_s"], c["max_s"])
    for index, name in enumerate(names[1:], start=1):
        chosen = corpus == index
        if real is not None:
            lengths[chosen] = rng.choice(real[name], size=int(chosen.sum()))
        else:
            grid = np.linspace(0.0, 1.0, len(LENGTH_QUANTILES_S[name]))
            lengths[chosen] = np.interp(rng.random(int(chosen.sum())), grid, LENGTH_QUANTILES_S[name])
    source = f"real file lists in {folder}" if real is not None else "stored quantiles of the real file lists"
    return lengths, (f"RAVDESS/EmoDB lengths from {source}; CREMA-D log-normal, median "
                     f"{c['median_s']} s, sigma {c['sigma']}, clipped to {c['min_s']}-{c['max_s']} s (CHOSEN)")
