"""The ``serlib`` command line. Each sub-command calls one stage of the library or the pipeline."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="serlib", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("mculp", help="read the corpora, apply MCULP, split by speaker; write manifest.csv")
    m.add_argument("--crema-d", help="CREMA-D root (holds AudioWAV/)")
    m.add_argument("--ravdess", help="RAVDESS root (holds Actor_01 .. Actor_24)")
    m.add_argument("--emodb", help="EmoDB root (holds wav/ or the files flat)")
    m.add_argument("--out", required=True, help="folder for manifest.csv, excluded.csv, mculp_audit.csv, split.csv")
    m.add_argument("--seed", type=int, default=0, help="seed of the speaker split (default 0)")
    m.add_argument("--split-file", help="speaker -> subset CSV to reuse a published split")
    m.add_argument("--min-duration", type=float, default=1.0, help="drop clips shorter than this (s)")

    d = sub.add_parser("demo-corpus", help="generate the synthetic demo corpus in the three real layouts")
    d.add_argument("out", help="folder to write CREMA-D/, RAVDESS/, EmoDB/ into")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--scale", choices=["default", "smoke", "paper"], default="default")

    r = sub.add_parser("run", help="execute the notebooks with papermill and export report.html")
    r.add_argument("params", help="parameters YAML, e.g. parameters/demo.yaml")
    r.add_argument("--out", help="run folder (default reports/<run name>/)")
    r.add_argument("--only", nargs="*", help="execute only these notebooks (e.g. 01_data)")

    f = sub.add_parser("features", help="fill the feature cache for the run's manifest (built first if missing)")
    f.add_argument("params")
    f.add_argument("--out", help="run folder (default reports/<run name>/)")

    t = sub.add_parser("train", help="train systems (all, or --system NAME); manifest and features first")
    t.add_argument("params")
    t.add_argument("--out", help="run folder (default reports/<run name>/)")
    t.add_argument("--system", action="append", help="system name, e.g. S5 (repeatable)")

    c = sub.add_parser("compare", help="the same systems in two run folders: metrics, intervals, paired tests")
    c.add_argument("run_a", help="run folder A (e.g. reports/demo)")
    c.add_argument("run_b", help="run folder B (e.g. a copy of the demo with another encoder)")
    c.add_argument("--system", action="append", help="system name (repeatable; default: every system both ran)")
    c.add_argument("--html", help="also write the comparison as an HTML page here")
    c.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")

    b = sub.add_parser("bench", help="speed and memory: inference, training epoch, extraction, fast paths")
    b.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    b.add_argument("--json", help="write the results as JSON to this file")
    b.add_argument("--quick", action="store_true", help="CI mode: fewer repetitions and smaller batches")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except Exception as err:  # a clear one-line message for expected errors; traceback otherwise
        # Imported only on an error: `serlib --help` and `serlib demo-corpus` stay free of torch and nbformat.
        from serlib.common.config import ConfigError
        from serlib.data.corpora import CorpusError
        from serlib.features.cache import CacheNotWritableError
        from serlib.modelling.train import NonFiniteLossError
        from serlib.report.runner import NotebookError

        expected = (ConfigError, CorpusError, NotebookError, FileNotFoundError, NonFiniteLossError,
                    CacheNotWritableError)
        if isinstance(err, expected):
            print(f"serlib {args.command}: error: {err}", file=sys.stderr)
            return 2
        raise


def _dispatch(args: argparse.Namespace) -> int:
    # Each branch imports only what it runs (`serlib --help` and `serlib demo-corpus` skip torch).
    if args.command == "mculp":
        from serlib.data.mculp import run_mculp

        run_mculp(crema_d=args.crema_d, ravdess=args.ravdess, emodb=args.emodb, out=Path(args.out),
                  seed=args.seed, split_file=args.split_file, min_duration_s=args.min_duration, verbose=True)
        return 0
    if args.command == "demo-corpus":
        from serlib.data.democorpus import generate_demo_corpus

        generate_demo_corpus(Path(args.out), seed=args.seed, scale=args.scale, verbose=True)
        return 0
    if args.command == "compare":
        return _compare(args)
    if args.command == "bench":
        from serlib.tools.bench import main_bench

        return main_bench(device=args.device, json_path=args.json, quick=args.quick)
    from serlib.common.config import load_config
    from serlib.common.runfolder import run_folder

    cfg = load_config(args.params)
    if args.command == "run":
        from serlib.report.runner import run_report

        run_report(cfg, out=args.out, only=args.only)
        return 0
    from serlib import pipeline

    folder = run_folder(cfg, args.out)
    if args.command == "features":
        pipeline.ensure_features(cfg, folder)
        return 0
    if args.command == "train":
        pipeline.ensure_runs(cfg, folder, systems=args.system)
        return 0
    raise AssertionError(args.command)


def _compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from serlib.analysis.evaluation import compare_runs
    from serlib.common.io import write_text_atomic
    from serlib.common.runfolder import RunFolder
    from serlib.report.compare import compare_html

    folders = []
    for name in (args.run_a, args.run_b):
        folder = RunFolder(Path(name).expanduser().resolve())
        if not folder.results.is_file():
            raise FileNotFoundError(f"{folder.root} is not a trained run folder (no models/results.csv)")
        folders.append(folder)
    try:
        table = compare_runs(*folders, systems=args.system, n_resamples=args.resamples)
    except ValueError as err:  # runs that cannot be compared (no shared system or clip): the user's input
        print(f"serlib compare: error: {err}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    if args.html:
        path = write_text_atomic(Path(args.html), compare_html(table, str(folders[0].root), str(folders[1].root)))
        print(f"serlib compare: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
