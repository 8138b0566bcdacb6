"""The ``serlib`` command line. Each sub-command calls one stage of the library or the pipeline."""

from __future__ import annotations

import argparse
import errno
import sys
import traceback
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="serlib", description=__doc__)
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("-v", "--verbose", action="store_true", help="every progress event too")
    sub = p.add_subparsers(dest="command", required=True)

    # The options the commands that run a profile's stages share (run, features, train).
    profile = argparse.ArgumentParser(add_help=False)
    profile.add_argument("params", help="parameters YAML, e.g. parameters/demo.yaml")
    profile.add_argument("--out", help="run folder (default reports/<run name>/)")
    profile.add_argument("--no-rebuild", action="store_true", help="refuse a stale manifest instead of rebuilding it")
    # The options that choose one trained model in a run folder (predict, export).
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--system", help="system of a run folder (default: the analysed one, e.g. S5)")
    model.add_argument("--seed", type=int, help="seed of a run folder (default: the analysed one)")

    m = sub.add_parser("mculp", help="read the corpora, apply MCULP, split by speaker; write manifest.csv")
    m.add_argument("--crema-d", help="CREMA-D root (holds AudioWAV/)")
    m.add_argument("--ravdess", help="RAVDESS root (holds Actor_01 .. Actor_24)")
    m.add_argument("--emodb", help="EmoDB root (holds wav/ or the files flat)")
    m.add_argument("--out", required=True, help="folder for manifest.csv, excluded.csv, mculp_audit.csv, split.csv")
    m.add_argument("--seed", type=int, default=0, help="seed of the speaker split (default 0)")
    m.add_argument("--split-file", help="speaker -> subset CSV to reuse a published split")
    m.add_argument("--min-duration", type=float, default=1.0, help="drop clips shorter than this (s)")
    m.set_defaults(func=_mculp)

    d = sub.add_parser("demo-corpus", help="generate the synthetic demo corpus in the three real layouts")
    d.add_argument("out", help="folder to write CREMA-D/, RAVDESS/, EmoDB/ into")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--scale", choices=["default", "smoke", "paper"], default="default")
    d.set_defaults(func=_demo_corpus)

    r = sub.add_parser("run", parents=[profile], help="execute the notebooks with papermill and export report.html")
    r.add_argument("--only", nargs="*", help="execute only these notebooks (e.g. 01_data)")
    r.set_defaults(func=_run)

    e = sub.add_parser("report", help="export report.html again from the executed notebooks (runs nothing)")
    e.add_argument("target", help="a run folder (e.g. reports/demo) or its parameters YAML")
    e.add_argument("--out", help="run folder, with a parameters YAML (default reports/<run name>/)")
    e.set_defaults(func=_report)

    w = sub.add_parser("sweep", help="run the variants of a sweep file (a run folder each) and one comparison report")
    w.add_argument("sweep", help="the sweep file, e.g. parameters/sweeps/smoke.yaml")
    w.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: one variant after another here (default); ray: tasks on a Ray cluster",
    )
    w.add_argument("--address", help="a running Ray cluster's address (default: a local Ray instance)")
    w.add_argument("--workers", type=int, help="CPUs of the local Ray instance (default: this machine's)")
    w.add_argument("--out", help="the sweep folder (default reports/<sweep name>/ of the base profile's project)")
    w.set_defaults(func=_sweep)

    k = sub.add_parser("cache", help="what the feature cache holds; remove what no profile uses")
    k.set_defaults(func=_cache)
    cache_sub = k.add_subparsers(dest="cache_command", required=True)
    kl = cache_sub.add_parser("list", help="one row per key folder: input, settings, clips, MB, last used")
    kl.add_argument("target", nargs="?", default="parameters/demo.yaml", help="a parameters YAML or a cache folder")
    kl.add_argument("--verify", action="store_true", help="check every shard's checksum too")
    kp = cache_sub.add_parser("prune", help="remove key folders none of the given profiles uses (dry run by default)")
    kp.add_argument("params", nargs="+", help="the parameters YAMLs whose features to keep")
    kp.add_argument("--cache", help="the cache folder (default: the first profile's)")
    kp.add_argument("--delete", action="store_true", help="really remove them (default: only say what would go)")

    f = sub.add_parser(
        "features", parents=[profile], help="fill the feature cache for the run's manifest (built first if missing)"
    )
    f.set_defaults(func=_features)

    t = sub.add_parser(
        "train", parents=[profile], help="train systems (all, or --system NAME); manifest and features first"
    )
    t.add_argument("--system", action="append", help="system name, e.g. S5 (repeatable)")
    t.set_defaults(func=_train)

    c = sub.add_parser("compare", help="the same systems in two run folders: metrics, intervals, paired tests")
    c.add_argument("run_a", help="run folder A (e.g. reports/demo)")
    c.add_argument("run_b", help="run folder B (e.g. a copy of the demo with another encoder)")
    c.add_argument("--system", action="append", help="system name (repeatable; default: every system both ran)")
    c.add_argument("--html", help="also write the comparison as an HTML page here")
    c.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    c.set_defaults(func=_compare)

    q = sub.add_parser(
        "predict", parents=[model], help="score audio files or folders with a trained system (a run folder or a bundle)"
    )
    q.add_argument("model", help="a run folder (e.g. reports/demo) or a bundle folder from `serlib export`")
    q.add_argument("audio", nargs="+", help="files, folders (searched recursively) or .txt lists of paths")
    q.add_argument(
        "--out",
        help="write the rows here: .csv or .jsonl, the same columns (default: CSV on stdout); "
        "what made them goes to OUT.meta.json",
    )
    q.add_argument(
        "--per-window", action="store_true", help="one row per window (start and end time) instead of per file"
    )
    q.add_argument("--hop", type=float, help="seconds between windows of a clip longer than the window (default: half)")
    q.add_argument(
        "--long",
        choices=["windows", "centre"],
        default="windows",
        help="a long clip: mean over windows (default) or its central window, as training scored it",
    )
    q.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: the run's features.device")
    q.add_argument("--batch-size", type=int, default=16, help="windows per forward pass (default 16)")
    q.set_defaults(func=_predict)

    x = sub.add_parser(
        "export", parents=[model], help="a trained system as a bundle folder: checkpoint, config, class map, card"
    )
    x.add_argument("run", help="the run folder (e.g. reports/demo)")
    x.add_argument("--out", required=True, help="the bundle folder to write (replaced if it is a bundle)")
    x.add_argument(
        "--onnx",
        action="store_true",
        help="also model.onnx (audio in, probabilities out), its int8 form, predict.py and the head, with "
        "their parity against torch on the test clips",
    )
    x.add_argument(
        "--parity-clips",
        type=int,
        default=200,
        help="the most test clips the audio graphs' parity scores (default 200; 0: all)",
    )
    x.set_defaults(func=_export)

    b = sub.add_parser("bench", help="speed and memory: inference, training epoch, extraction, fast paths")
    b.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    b.add_argument("--json", help="write the results as JSON to this file")
    b.add_argument("--quick", action="store_true", help="CI mode: fewer repetitions and smaller batches")
    b.add_argument(
        "--bundle",
        help="instead: a bundle's audio-to-label latency (serlib export --onnx), fp32 and int8 "
        "onnxruntime beside torch",
    )
    b.set_defaults(func=_bench)

    d = sub.add_parser("doctor", help="self-check of this machine: device, encoder, determinism, memory, speed")
    d.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    d.add_argument("--json", help="write every check and its figures as JSON to this file")
    d.set_defaults(func=_doctor)
    return p


def _logging(quiet: bool, verbose: bool) -> None:
    """The ``serlib`` logger's lines on stdout: INFO by default, WARNING with -q, DEBUG with -v."""
    import logging

    from serlib.common.progress import log_to_stdout

    log_to_stdout(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO).propagate = False


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _logging(args.quiet, args.verbose)
    try:
        return args.func(args)
    except Exception as err:  # a clear one-line message for expected errors; traceback otherwise
        # Imported only on an error: `serlib --help` and `serlib demo-corpus` stay free of torch and nbformat.
        from serlib.common.config import ConfigError
        from serlib.common.io import RunFileError
        from serlib.data.corpora import CorpusError
        from serlib.inference.bundleformat import BundleError
        from serlib.modelling.train import NonFiniteLossError
        from serlib.report.runner import NotebookError
        from serlib.tools.doctor import DoctorError

        # OSError covers a full disk, a permission, a missing file, a folder where a file was named (and the
        # cache's CacheNotWritableError); RunFileError a damaged run file (config, timings, checkpoint).
        expected = (
            ConfigError,
            CorpusError,
            NotebookError,
            OSError,
            NonFiniteLossError,
            RunFileError,
            BundleError,
            DoctorError,
        )
        if isinstance(err, expected):
            if args.verbose:
                traceback.print_exc()
            print(f"serlib {args.command}: error: {one_line(err)}", file=sys.stderr)
            return 2
        raise


OS_HINTS = {
    errno.ENOSPC: "free some disk space and run it again",
    errno.EACCES: "check the folder's permissions",
    errno.EPERM: "check the folder's permissions",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.EISDIR: "name a file, not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


def one_line(err: BaseException) -> str:
    """An error as one line: an ``OSError`` as ``file: reason (what to do)``, others as their message."""
    if isinstance(err, OSError) and err.strerror:
        where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
        hint = OS_HINTS.get(err.errno)
        return f"{where + ': ' if where else ''}{err.strerror}" + (f" ({hint})" if hint else "")
    return " ".join(str(err).split()) or type(err).__name__


# Each command imports only what it runs (`serlib --help` and `serlib demo-corpus` skip torch).


def _mculp(args: argparse.Namespace) -> int:
    from serlib.data.mculp import run_mculp

    run_mculp(
        crema_d=args.crema_d,
        ravdess=args.ravdess,
        emodb=args.emodb,
        out=Path(args.out),
        seed=args.seed,
        split_file=args.split_file,
        min_duration_s=args.min_duration,
        verbose=True,
    )
    return 0


def _demo_corpus(args: argparse.Namespace) -> int:
    from serlib.data.democorpus import generate_demo_corpus

    generate_demo_corpus(Path(args.out), seed=args.seed, scale=args.scale, verbose=True)
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.bundle:
        if args.device != "cpu":
            print("serlib bench: error: --bundle times onnxruntime on the CPU; leave out --device", file=sys.stderr)
            return 2
        from serlib.tools.bundlebench import main_bundle_bench

        return main_bundle_bench(args.bundle, json_path=args.json, quick=args.quick)
    from serlib.tools.bench import main_bench

    return main_bench(device=args.device, json_path=args.json, quick=args.quick)


def _doctor(args: argparse.Namespace) -> int:
    from serlib.tools.doctor import main_doctor

    return main_doctor(device=args.device, json_path=args.json)


def _run(args: argparse.Namespace) -> int:
    """``serlib run``: the notebooks executed and the report exported (after the profile's checks)."""
    from serlib.report.runner import run_report

    cfg, _ = _checked_profile(args)
    if cfg is None:
        return 2
    run_report(cfg, out=args.out, only=args.only)
    return 0


def _features(args: argparse.Namespace) -> int:
    """``serlib features``: the manifest and the feature cache."""
    from serlib import pipeline

    cfg, folder = _profile_folder(args)
    if cfg is None:
        return 2
    pipeline.ensure_features(cfg, folder, rebuild_stale=not args.no_rebuild)
    return 0


def _train(args: argparse.Namespace) -> int:
    """``serlib train``: the manifest, the features, then the systems trained."""
    from serlib import pipeline

    cfg, folder = _profile_folder(args)
    if cfg is None:
        return 2
    pipeline.ensure_runs(cfg, folder, systems=args.system, rebuild_stale=not args.no_rebuild)
    return 0


def _checked_profile(args: argparse.Namespace):
    """The profile of ``args.params`` and its run folder's root, after every check that can fail before anything
    runs (the preflight, a stale manifest under --no-rebuild); ``(None, None)`` after printing why not."""
    from serlib import pipeline
    from serlib.common.config import load_config
    from serlib.common.runfolder import RunFolder, default_run_root, out_folder
    from serlib.data.stage import manifest_changes

    cfg = load_config(args.params)
    root = out_folder(args.out, cfg) if args.out else default_run_root(cfg)  # refused before anything runs
    problems = pipeline.preflight(cfg, getattr(args, "system", None))
    if problems:  # before anything runs or is written: every problem at once, nothing left on disk
        for problem in problems:
            print(f"serlib {args.command}: error: {problem}", file=sys.stderr)
        return None, None
    if args.no_rebuild and RunFolder(root).manifest.is_file():
        changes = manifest_changes(cfg, RunFolder(root))
        if changes:
            print(
                f"serlib {args.command}: error: {RunFolder(root).manifest} is stale: {'; '.join(changes)}; "
                "run without --no-rebuild to rebuild it",
                file=sys.stderr,
            )
            return None, None
    return cfg, root


def _profile_folder(args: argparse.Namespace):
    """``_checked_profile``, then the run folder with its ``config.resolved.yaml`` written."""
    from serlib.common.runfolder import run_folder
    from serlib.report.provenance import write_resolved_config

    cfg, _ = _checked_profile(args)
    if cfg is None:
        return None, None
    folder = run_folder(cfg, args.out)
    write_resolved_config(cfg, folder)  # what `serlib predict` / `export` rebuild the run's encoder and systems from
    return cfg, folder


def _cache(args: argparse.Namespace) -> int:
    import pandas as pd

    from serlib.features import cache

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 80):
        if args.cache_command == "list":
            table = cache.list_cache(cache.cache_root(args.target), verify=args.verify)
            print(table.to_string(index=False) if len(table) else "the cache holds no features yet")
            return 0
        table = cache.prune_cache(cache.cache_root(args.cache or args.params[0]), args.params, delete=args.delete)
        print(table.to_string(index=False) if len(table) else "the cache holds no features")
    gone = table[table["action"].isin(["would remove", "removed"])] if len(table) else table
    verb = "removed" if args.delete else "would remove (add --delete to remove them)"
    print(
        f"serlib cache prune: {verb} {len(gone)} key folder(s), {gone['mb'].sum() if len(gone) else 0:.1f} MB",
        file=sys.stderr,
    )
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from serlib.sweep.execute import run_sweep
    from serlib.sweep.spec import load_sweep

    if args.address and args.executor != "ray":
        print("serlib sweep: error: --address names a Ray cluster; add --executor ray", file=sys.stderr)
        return 2
    if args.workers is not None and (args.workers < 1 or args.executor != "ray" or args.address):
        print(
            "serlib sweep: error: --workers (>= 1) sizes a local Ray instance: use it with --executor ray and "
            "no --address",
            file=sys.stderr,
        )
        return 2
    state = run_sweep(load_sweep(args.sweep, args.out), args.executor, args.address, args.workers)
    failed = [name for name, entry in state["variants"].items() if entry["status"] == "failed"]
    print(f"serlib sweep: report {state['report']}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _report(args: argparse.Namespace) -> int:
    from serlib.common.config import load_config
    from serlib.common.runfolder import RunFolder, read_run_config, run_folder
    from serlib.report.runner import reexport_report

    target = Path(args.target).expanduser().resolve()
    if target.is_dir():  # a run folder: the configuration it ran with (its own config.resolved.yaml)
        folder = RunFolder(target)
        if not folder.resolved_config.is_file():
            raise FileNotFoundError(f"{target} is not a run folder (no config.resolved.yaml); pass its parameters YAML")
        cfg = read_run_config(folder)
    else:
        cfg = load_config(target)
        folder = run_folder(cfg, args.out)
    print(f"report: {reexport_report(cfg, folder)}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from serlib.analysis.runcompare import compare_runs
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


def _predict(args: argparse.Namespace) -> int:
    from serlib.inference.bundleformat import BUNDLE_FILE
    from serlib.inference.predict import Predictor, check_hop, summary_line, write_predictions

    def usage(message: str) -> int:
        print(f"serlib predict: error: {message}", file=sys.stderr)
        return 2

    if not 1 <= args.batch_size <= 4096:
        return usage(f"--batch-size must be between 1 and 4096, got {args.batch_size}")
    if args.hop is not None:
        try:
            check_hop(args.hop)
        except ValueError as err:
            return usage(str(err))
    out = Path(args.out).expanduser() if args.out else None
    if out is not None:  # checked before any audio is scored: a bad --out never costs the work
        if out.suffix.lower() not in (".csv", ".jsonl"):
            return usage(f"--out {args.out}: name a .csv or .jsonl file")
        if out.is_dir():
            return usage(f"--out {args.out} is a folder; name a .csv or .jsonl file")
        if out.parent.exists() and not out.parent.is_dir():
            return usage(f"--out {args.out}: {out.parent} is a file, not a folder")
    model = Path(args.model).expanduser()
    if (model / BUNDLE_FILE).is_file():
        if args.system or args.seed is not None:
            return usage("--system / --seed choose within a run folder; a bundle holds one model")
        predictor = Predictor.from_bundle(model, device=args.device)
    else:
        predictor = Predictor.from_run(model, system=args.system, seed=args.seed, device=args.device)
    table = predictor.predict(
        args.audio, per_window=args.per_window, hop_s=args.hop, long=args.long, batch_size=args.batch_size
    )
    if out is not None:
        path, sidecar = write_predictions(table, out)
        where = f"; wrote {path} (metadata: {sidecar.name})"
    else:
        sys.stdout.write(table.to_csv(index=False))
        where = ""
    failed = int((table["error"] != "").sum())
    print(
        f"serlib predict: {predictor.model_id} ({predictor.metadata['encoder'].split(',')[0]}, "
        f"{predictor.metadata['weights']} weights): {summary_line(table)}{where}",
        file=sys.stderr,
    )
    return 1 if failed else 0


def _export(args: argparse.Namespace) -> int:
    from serlib.inference.bundle import export_bundle

    if args.parity_clips < 0:
        print(f"serlib export: error: --parity-clips must be 0 (all) or more, got {args.parity_clips}", file=sys.stderr)
        return 2
    done = export_bundle(
        args.run, args.out, system=args.system, seed=args.seed, onnx=args.onnx, parity_clips=args.parity_clips or None
    )
    print(f"serlib export: wrote {done['bundle']} ({', '.join(done['files'])})")
    for name, p in (done["parity"] or {}).items():
        print(
            f"serlib export: {name} ({p['bytes'] / 1e6:.1f} MB): ONNX parity on {p['clips']} test clips: "
            f"max |p_onnx - p_torch| {p['max_abs_prob_diff']:.2e}, class agreement {100 * p['class_agreement']:.1f} %"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
