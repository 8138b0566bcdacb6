"""Are two runs' tables the same? ``python -m serlib.tools.tablediff RUN_A RUN_B`` compares every
``tables/*.csv`` of two run folders (or two table folders): the same files, the same columns and rows, the same
values, numbers compared exactly (``--rtol`` allows a relative tolerance).

What may differ between two runs of the same code and data, and is therefore not compared (``EXCEPTED``): the
columns that hold times measured while the run ran, and whether a run was trained now or reused. Absolute paths
(a cell that starts with ``/``) are compared by their file name, since the two runs may read their corpus from
different folders. It prints one line per table and exits 1 when any table differs.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import sys
from pathlib import Path
from typing import Optional

import pandas as pd

EXCEPTED = {  # (table file stem, pattern; column): why it may differ between two runs of the same code and data
    ("table_s10", "step s"): "seconds the feature extraction took",
    ("table_s10", "clips/s"): "extraction throughput (a time)",
    ("table_s10", "load s (all clips)"): "seconds the features took to load",
    ("table_s23", "*"): "measured wall time per epoch (every column but the system's name is a time)",
    ("table_s24*", "seconds_per_epoch"): "measured seconds per epoch",
    ("table_s25", "ms_per_utt_b1"): "measured latency",
    ("table_s25", "ms per *"): "measured latency",
    ("table_s25", "ms_per_audio_s"): "measured latency per second of audio",
    (
        "table_s10",
        "cache MiB",
    ): "bytes on disk: shards are flushed every SHARD_SECONDS, so their count (and index bytes) is a time",
    (
        "table_s12",
        "cache_mb",
    ): "bytes on disk: shards are flushed every SHARD_SECONDS, so their count (and index bytes) is a time",
    ("table_s28*", "seconds_per_epoch"): "measured seconds per epoch",
    ("table_s46", "seconds"): "seconds the prosody analysis took",
    ("table_s46", "s_per_clip"): "seconds per clip of the prosody analysis",
    ("table_s46", "clips_per_s"): "prosody throughput (a time)",
    ("table_s46", "analysis_s"): "seconds the whole prosody analysis took",
    ("table_s46", "s_per_audio_s"): "prosody seconds per second of audio (a time)",
}
KEYS = ("system", "input", "layer", "class", "corpus", "subset", "reason", "metric", "form", "variant")


def excepted(stem: str, column: str) -> Optional[str]:
    """Why ``column`` of table ``stem`` is not compared (None: it is)."""
    for (table, pattern), why in EXCEPTED.items():
        if (
            fnmatch.fnmatch(stem, table)
            and fnmatch.fnmatch(column, pattern)
            and not (pattern == "*" and column in KEYS)
        ):
            return why
    return None


def _same(a, b, rtol: float) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        if a.startswith("/") and b.startswith("/"):
            return Path(a).name == Path(b).name  # absolute paths: the same file in another folder
        return a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == b or math.isclose(a, b, rel_tol=rtol, abs_tol=0.0)
    return a == b


def compare_table(path_a: Path, path_b: Path, rtol: float = 0.0) -> list[str]:
    """The differences between two CSV tables ([] when they are the same, excepted columns aside)."""
    stem = path_a.stem
    a, b = pd.read_csv(path_a), pd.read_csv(path_b)
    if list(a.columns) != list(b.columns):
        return [f"columns differ: {list(a.columns)} vs {list(b.columns)}"]
    if len(a) != len(b):
        return [f"{len(a)} rows vs {len(b)}"]
    problems = []
    for column in a.columns:
        if excepted(stem, column):
            continue
        for row, (x, y) in enumerate(zip(a[column].tolist(), b[column].tolist())):
            if not _same(x, y, rtol):
                problems.append(f"row {row}, column {column!r}: {x!r} vs {y!r}")
    return problems


def compare_tables(folder_a: Path, folder_b: Path, rtol: float = 0.0) -> dict[str, list[str]]:
    """``{table file: its differences}`` for every CSV in either folder (``[]``: the same)."""
    folder_a, folder_b = _tables(folder_a), _tables(folder_b)
    names = sorted({p.name for p in folder_a.glob("*.csv")} | {p.name for p in folder_b.glob("*.csv")})
    out = {}
    for name in names:
        a, b = folder_a / name, folder_b / name
        if not a.is_file() or not b.is_file():
            out[name] = [f"only in {folder_a if a.is_file() else folder_b}"]
        else:
            out[name] = compare_table(a, b, rtol)
    return out


def _tables(folder: Path) -> Path:
    folder = Path(folder)
    return folder / "tables" if (folder / "tables").is_dir() else folder


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serlib.tools.tablediff", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", help="a run folder (or its tables/ folder)")
    parser.add_argument("run_b", help="another run folder (or its tables/ folder)")
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance of numbers (default 0: exact)")
    args = parser.parse_args(argv)
    result = compare_tables(Path(args.run_a), Path(args.run_b), args.rtol)
    if not result:
        print(f"no tables in {args.run_a} or {args.run_b}", file=sys.stderr)
        return 1
    for name, problems in result.items():
        print(
            f"{name}: {'same' if not problems else 'DIFFERS: ' + '; '.join(problems[:5])}"
            + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
        )
    differ = [name for name, problems in result.items() if problems]
    print(
        f"{len(result) - len(differ)} of {len(result)} tables the same"
        + (f"; differ: {', '.join(differ)}" if differ else "")
        + "; not compared: "
        + "; ".join(f"{t} {c!r} ({why})" for (t, c), why in EXCEPTED.items())
    )
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
