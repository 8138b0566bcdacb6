"""Are two runs' tables the same? Every ``tables/*.csv`` of run A against run B: the same files, the same
columns, the same values (issue 23: a restructuring must not change the demo report's numbers).

    python tests/compare_demo_tables.py /work/baseline/demo /tmp/new-demo [--rtol 0]

Exit status 0 when every table matches, 1 otherwise (each difference printed, one line per table and column).
Columns that hold what a run measures of itself rather than what it computes are excepted (``EXCEPTED``:
wall times and throughputs, absolute paths, dates); each is listed in the output when it differs, so nothing is
skipped silently. Numbers are compared exactly unless ``--rtol`` is given.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# Column names (regular expressions, matched whole and case-blind) whose values are times, paths or dates.
EXCEPTED = [
    r".*seconds.*",
    r".*\bs per .*",
    r".*per s\b.*",
    r".*clips/s.*",
    r".*wall.*",
    r".*\btime\b.*",
    r".*ms\b.*",
    r".*\bpath\b.*",
    r".*folder.*",
    r".*cache_dir.*",
    r".*\bwhen\b.*",
    r".*\bdate\b.*",
    r".*last_used.*",
]


def excepted(column: str) -> bool:
    return any(re.fullmatch(pattern, str(column), flags=re.IGNORECASE) for pattern in EXCEPTED)


def compare(a: Path, b: Path, rtol: float = 0.0) -> tuple[list[str], list[str]]:
    """(differences, excepted columns that differ) between the tables of run folders ``a`` and ``b``."""
    names_a = {p.name for p in (a / "tables").glob("*.csv")}
    names_b = {p.name for p in (b / "tables").glob("*.csv")}
    problems = [f"only in {a}: {name}" for name in sorted(names_a - names_b)]
    problems += [f"only in {b}: {name}" for name in sorted(names_b - names_a)]
    skipped = []
    for name in sorted(names_a & names_b):
        left = pd.read_csv(a / "tables" / name, dtype=str, keep_default_na=False)
        right = pd.read_csv(b / "tables" / name, dtype=str, keep_default_na=False)
        if list(left.columns) != list(right.columns):
            problems.append(f"{name}: columns differ: {list(left.columns)} vs {list(right.columns)}")
            continue
        if len(left) != len(right):
            problems.append(f"{name}: {len(left)} rows vs {len(right)}")
            continue
        for column in left.columns:
            rows = [i for i, (x, y) in enumerate(zip(left[column], right[column])) if not _same(x, y, rtol)]
            if not rows:
                continue
            first = rows[0]
            line = (
                f"{name}: column {column!r} differs in {len(rows)} of {len(left)} rows (first: row {first + 1}, "
                f"{left[column].iloc[first]!r} vs {right[column].iloc[first]!r})"
            )
            (skipped if excepted(column) else problems).append(line)
    return problems, skipped


def _same(x: str, y: str, rtol: float) -> bool:
    if x == y:
        return True
    try:
        fx, fy = float(x), float(y)
    except ValueError:
        return False
    return bool(np.isclose(fx, fy, rtol=rtol, atol=0.0) or (np.isnan(fx) and np.isnan(fy)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="a run folder (holding tables/)")
    parser.add_argument("b", type=Path, help="another run folder")
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance for numbers (default: exact)")
    args = parser.parse_args(argv)
    problems, skipped = compare(args.a, args.b, args.rtol)
    count = len(list((args.a / "tables").glob("*.csv")))
    for line in skipped:
        print(f"excepted (time, path or date): {line}")
    for line in problems:
        print(f"DIFFERS: {line}")
    print(
        f"{count} tables in {args.a}: "
        + ("all equal" if not problems else f"{len(problems)} difference(s)")
        + (f"; {len(skipped)} excepted column(s) differ" if skipped else "")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
