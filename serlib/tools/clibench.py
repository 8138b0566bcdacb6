"""``serlib bench --cli``: how long the command line takes to answer a usage error, and whether it imported torch.

Each case (an unknown command, option, system or notebook; a missing folder; files it cannot read) runs in a
fresh Python process, as a user's command does: the time is the process's whole wall time (interpreter start,
imports, the answer). The target is under 2 s on a 2-core machine; torch alone takes 4-30 s to import there, so
a case that imports it cannot meet it. The fixtures (a profile, a run folder with one checkpoint's place, files
that are not audio) are made in a temporary folder; nothing is trained or read beyond their names.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from serlib.common.io import write_text_atomic

TARGET_S = 2.0  # the target for a usage error on a 2-core machine

# Runs the command line in this process's interpreter and says on stderr whether torch was imported.
DRIVER = """
import sys
from serlib.tools.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
sys.stderr.write("\\n@torch=%d\\n" % ("torch" in sys.modules))
sys.exit(code)
"""


@dataclass(frozen=True)
class Case:
    """One usage error: what it is, the arguments and a fragment its one-line answer must hold."""

    name: str
    argv: tuple[str, ...]
    expect: str


def make_fixtures(root: Path) -> dict[str, Path]:
    """A profile, a damaged YAML, a run folder (its resolved config and one checkpoint's place, empty) and two
    files that are not audio, under ``root``."""
    params = root / "parameters"
    params.mkdir(parents=True, exist_ok=True)
    profile = params / "demo.yaml"
    profile.write_text("run: {name: bench}\ndata: {demo: {root: ../corpus, scale: smoke}}\n")
    broken = params / "broken.yaml"
    broken.write_text("run: {name: [unclosed\n")
    run = root / "reports" / "demo"
    (run / "models" / "S5" / "seed0").mkdir(parents=True, exist_ok=True)
    (run / "models" / "S5" / "seed0" / "checkpoint.pt").write_bytes(b"")
    (run / "models" / "results.csv").write_text("system,seed\nS5,0\n")
    (run / "config.resolved.yaml").write_text(profile.read_text())
    clips = root / "clips"
    clips.mkdir(exist_ok=True)
    for name in ("one.wav", "two.wav"):
        (clips / name).write_bytes(b"not a wave file\n" * 8)
    return {"profile": profile, "broken": broken, "run": run, "clips": clips, "root": root}


def usage_error_cases(paths: dict[str, Path]) -> list[Case]:
    """The usage errors the issue timed (unknown system, missing folder, bad option, unreadable files) and their
    neighbours, on ``make_fixtures``' files."""
    profile, run, clips = str(paths["profile"]), str(paths["run"]), paths["clips"]
    mistyped_run = str(paths["run"].parent / "dmeo")
    return [
        Case("unknown command", ("trian", profile), "did you mean 'train'"),
        Case("unknown option", ("train", profile, "--sytem", "S5"), "did you mean '--system'"),
        Case("bad option value", ("predict", run, str(clips), "--hop", "-1"), "--hop"),
        Case("unknown system (train)", ("train", profile, "--system", "S55"), "unknown system(s) S55"),
        Case("unknown system (predict)", ("predict", run, str(clips), "--system", "S55"), "S55 was not trained"),
        Case("untrained seed (predict)", ("predict", run, str(clips), "--seed", "7"), "--seed 7: no checkpoint"),
        Case(
            "untrained seed (export)",
            ("export", run, "--system", "S5", "--seed", "1", "--out", str(paths["root"] / "bundle")),
            "(trained seeds: 0)",
        ),
        Case("unknown notebook (run --only)", ("run", "--only", "01_dta", profile), "did you mean '01_data'"),
        Case("missing run folder (compare)", ("compare", mistyped_run, run), "did you mean"),
        Case("missing run folder (predict)", ("predict", mistyped_run, str(clips)), "did you mean"),
        Case("missing parameters file", ("run", str(paths["profile"].with_name("dmeo.yaml"))), "no such file"),
        Case("damaged parameters file", ("features", str(paths["broken"])), "broken.yaml"),
        Case(
            "two unreadable audio files",
            ("predict", run, str(clips / "one.wav"), str(clips / "two.wav")),
            "nothing to score",
        ),
    ]


@dataclass
class Timed:
    case: Case
    seconds: list[float]
    code: Optional[int]
    torch: bool
    message: str

    @property
    def ok(self) -> bool:
        return self.code == 2 and not self.torch and self.case.expect in self.message


def time_case(case: Case, repeats: int, cwd: Path) -> Timed:
    """``case`` run ``repeats`` times, each in a fresh interpreter: wall seconds, exit code, torch imported."""
    seconds, done = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, *case.argv], capture_output=True, text=True, cwd=cwd, timeout=300
        )
        seconds.append(time.perf_counter() - start)
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("@torch=")]
    torch = "\n@torch=1" in done.stderr  # the driver's last word (anything printed at exit may follow it)
    message = next((line for line in reversed(lines) if "error:" in line), lines[0] if lines else "")
    return Timed(case, seconds, done.returncode, torch, message)


def cli_table(results: list[Timed]) -> str:
    """The figures as a plain-text table, one case a line."""
    width = max(len(r.case.name) for r in results)
    lines = [f"{'usage error':<{width}}  exit  median s  max s  torch  answer"]
    for r in results:
        lines.append(
            f"{r.case.name:<{width}}  {r.code!s:>4}  {statistics.median(r.seconds):8.2f}  {max(r.seconds):5.2f}  "
            f"{'yes' if r.torch else 'no':>5}  {r.message[:90]}"
        )
    return "\n".join(lines)


def main_cli_bench(json_path: Optional[str] = None, quick: bool = False) -> int:
    """Time every usage error, print the table and the verdict against ``TARGET_S``; 1 when a case imported torch,
    answered with another exit code or message, or missed the target."""
    repeats = 2 if quick else 5
    with tempfile.TemporaryDirectory(prefix="serlib-clibench-") as tmp:
        paths = make_fixtures(Path(tmp))
        results = [time_case(case, repeats, Path(tmp)) for case in usage_error_cases(paths)]
    print(f"serlib bench --cli: each usage error in a fresh process, {repeats} time(s), {sys.executable}")
    print(cli_table(results))
    slowest = max(results, key=lambda r: statistics.median(r.seconds))
    wrong = [r.case.name for r in results if not r.ok]
    slow = [r.case.name for r in results if statistics.median(r.seconds) >= TARGET_S]
    print(
        f"slowest: {slowest.case.name}, median {statistics.median(slowest.seconds):.2f} s; target < {TARGET_S:g} s: "
        + ("met by every case" if not slow else f"missed by {', '.join(slow)}")
        + ("" if not wrong else f"; wrong answer or torch imported: {', '.join(wrong)}")
    )
    if json_path:
        record = [
            {
                "case": r.case.name,
                "argv": [a.replace(str(paths["root"]), "TMP") for a in r.case.argv],
                "exit": r.code,
                "seconds": r.seconds,
                "median_s": statistics.median(r.seconds),
                "torch_imported": r.torch,
                "answer": r.message,
            }
            for r in results
        ]
        write_text_atomic(Path(json_path), json.dumps({"target_s": TARGET_S, "cases": record}, indent=1) + "\n")
    return 1 if wrong or slow else 0
