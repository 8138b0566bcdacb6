"""The ``serlib`` command line. Each sub-command calls one stage of the library or the pipeline.

Usage errors (an unknown command, option, system or notebook; a missing file or folder) are answered before
torch is imported: the parser and the ``check`` of each command (``set_defaults(check=...)``) import only
torch-free modules, and each handler imports what it runs.
"""

from __future__ import annotations

import argparse
import re
import sys
import traceback
from pathlib import Path

from serlib import __version__
from serlib.tools.usage import (
    check_bench,
    check_cache,
    check_compare,
    check_export,
    check_predict,
    check_profile,
    check_report,
    expected,
    missing_path,
    one_line,
    split_names,
    suggestion,
)

DESCRIPTION = """\
serlib: lightweight speech-emotion recognition as a reproducible experiment report.
Each command runs one stage of the library, or the whole pipeline."""
EPILOG = """\
The options -q/--quiet and -v/--verbose may come before or after the command.
'serlib COMMAND --help' lists a command's options.

examples:
  serlib demo-corpus data/demo --scale smoke
  serlib run parameters/demo.yaml
  serlib run --only 01_data parameters/demo.yaml
  serlib predict reports/demo clips/ --out predictions.csv
  serlib compare reports/demo reports/demo-large --html compare.html
"""


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" on a mistyped command, choice or option."""

    def error(self, message: str):
        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        hint = suggestion(match.group(1), re.findall(r"'([^']*)'", match.group(2))) if match else ""
        if hint:  # the suggestion first, before a long list of choices
            message = message.replace("(choose from ", f"({hint.strip()[1:-1]} choose from ", 1)
        super().error(message)

    def parse_args(self, args=None, namespace=None):
        """As argparse's, with an unrecognised argument reported by the command's own parser (its usage line and
        its options to suggest from)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self._command_parser(parsed)
            command.error(f"unrecognized arguments: {' '.join(extras)}" + _extras_hint(command, extras, parsed))
        return parsed

    def _command_parser(self, parsed: argparse.Namespace) -> "Parser":
        parser = self
        while getattr(parser, "commands", None) is not None and getattr(parsed, parser.commands.dest, None):
            parser = parser.commands.choices[getattr(parsed, parser.commands.dest)]
        return parser


def _extras_hint(parser: argparse.ArgumentParser, extras: list[str], parsed: argparse.Namespace) -> str:
    """What an unrecognised argument probably meant: a close option, or --only given several notebooks."""
    options = [o for o in parser._option_string_actions if o.startswith("--")]
    for extra in extras:
        if extra.startswith("-"):
            hint = suggestion(extra.split("=")[0], options)
            if hint:
                return hint
    if getattr(parsed, "only", None):
        return " (--only takes one value: name several as --only 01_data,02_features)"
    return ""


def _parser() -> Parser:
    p = Parser(
        prog="serlib", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("-v", "--verbose", action="store_true", help="every progress event too (and the device chosen)")
    p.add_argument("--version", action="version", version=f"serlib {__version__}")
    sub = p.commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # The global options again, accepted after the command too (SUPPRESS: absent there, the top level's value stays).
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only warnings and errors")
    after.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="every progress event")
    # The options the commands that run a profile's stages share (run, features, train).
    profile = argparse.ArgumentParser(add_help=False)
    profile.add_argument("params", help="parameters YAML, e.g. parameters/demo.yaml")
    profile.add_argument("--out", help="run folder (default reports/<run name>/)")
    profile.add_argument("--no-rebuild", action="store_true", help="refuse a stale manifest instead of rebuilding it")
    # The options that choose one trained model in a run folder (predict, export).
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--system", help="system of a run folder (default: the analysed one, e.g. S5)")
    model.add_argument("--seed", type=int, help="seed of a run folder (default: the analysed one)")

    def command(name: str, parents=(), **kwargs) -> Parser:
        return sub.add_parser(name, parents=[after, *parents], **kwargs)

    m = command("mculp", help="read the corpora, apply MCULP, split by speaker; write manifest.csv")
    m.add_argument("--crema-d", help="CREMA-D root (holds AudioWAV/)")
    m.add_argument("--ravdess", help="RAVDESS root (holds Actor_01 .. Actor_24)")
    m.add_argument("--emodb", help="EmoDB root (holds wav/ or the files flat)")
    m.add_argument("--out", required=True, help="folder for manifest.csv, excluded.csv, mculp_audit.csv, split.csv")
    m.add_argument("--seed", type=int, default=0, help="seed of the speaker split (default 0)")
    m.add_argument("--split-file", help="speaker -> subset CSV to reuse a published split")
    m.add_argument("--min-duration", type=float, default=1.0, help="drop clips shorter than this (s)")
    m.set_defaults(func=_mculp)

    d = command("demo-corpus", help="generate the synthetic demo corpus in the three real layouts")
    d.add_argument("out", help="folder to write CREMA-D/, RAVDESS/, EmoDB/ into")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--scale", choices=["default", "smoke", "paper"], default="default")
    d.set_defaults(func=_demo_corpus)

    r = command("run", parents=[profile], help="execute the notebooks with papermill and export report.html")
    r.add_argument(
        "--only",
        action="extend",
        type=split_names,
        metavar="NOTEBOOK[,NOTEBOOK]",
        help="execute only these notebooks: --only 01_data or --only 01_data,02_features (repeatable)",
    )
    r.set_defaults(func=_run, check=check_profile)

    e = command("report", help="export report.html again from the executed notebooks (runs nothing)")
    e.add_argument("target", help="a run folder (e.g. reports/demo) or its parameters YAML")
    e.add_argument("--out", help="run folder, with a parameters YAML (default reports/<run name>/)")
    e.set_defaults(func=_report, check=check_report)

    w = command("sweep", help="run the variants of a sweep file (a run folder each) and one comparison report")
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
    w.set_defaults(func=_sweep, check=lambda args: missing_path(args.sweep, "the sweep file", "file"))

    k = command("cache", help="what the feature cache holds; remove what no profile uses")
    k.set_defaults(func=_cache, check=check_cache)
    cache_sub = k.commands = k.add_subparsers(dest="cache_command", required=True, metavar="{list,prune}")
    kl = cache_sub.add_parser(
        "list", parents=[after], help="one row per key folder: input, settings, clips, MB, last used"
    )
    kl.add_argument("target", nargs="?", default="parameters/demo.yaml", help="a parameters YAML or a cache folder")
    kl.add_argument("--verify", action="store_true", help="check every shard's checksum too")
    kp = cache_sub.add_parser(
        "prune", parents=[after], help="remove key folders none of the given profiles uses (dry run by default)"
    )
    kp.add_argument("params", nargs="+", help="the parameters YAMLs whose features to keep")
    kp.add_argument("--cache", help="the cache folder (default: the first profile's)")
    kp.add_argument("--delete", action="store_true", help="really remove them (default: only say what would go)")

    f = command(
        "features", parents=[profile], help="fill the feature cache for the run's manifest (built first if missing)"
    )
    f.set_defaults(func=_features, check=check_profile)

    t = command("train", parents=[profile], help="train systems (all, or --system NAME); manifest and features first")
    t.add_argument("--system", action="append", help="system name, e.g. S5 (repeatable)")
    t.set_defaults(func=_train, check=check_profile)

    c = command("compare", help="the same systems in two run folders: metrics, intervals, paired tests")
    c.add_argument("run_a", help="run folder A (e.g. reports/demo)")
    c.add_argument("run_b", help="run folder B (e.g. a copy of the demo with another encoder)")
    c.add_argument("--system", action="append", help="system name (repeatable; default: every system both ran)")
    c.add_argument("--html", help="also write the comparison as an HTML page here")
    c.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    c.set_defaults(func=_compare, check=check_compare)

    q = command(
        "predict", parents=[model], help="score audio files or folders with a trained system (a run folder or a bundle)"
    )
    q.add_argument("model", help="a run folder (e.g. reports/demo) or a bundle folder from 'serlib export'")
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
    q.set_defaults(func=_predict, check=check_predict)

    x = command(
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
    x.set_defaults(func=_export, check=check_export)

    b = command("bench", help="speed and memory: inference, training epoch, extraction, fast paths")
    b.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    b.add_argument("--json", help="write the results as JSON to this file")
    b.add_argument("--quick", action="store_true", help="CI mode: fewer repetitions and smaller batches")
    b.add_argument(
        "--bundle",
        help="instead: a bundle's audio-to-label latency ('serlib export --onnx'), fp32 and int8 "
        "onnxruntime beside torch",
    )
    b.add_argument(
        "--cli",
        action="store_true",
        help="instead: how long the command line takes to answer usage errors (target under 2 s), each in a "
        "fresh process, and whether it imported torch",
    )
    b.set_defaults(func=_bench, check=check_bench)

    d = command("doctor", help="self-check of this machine: device, encoder, determinism, memory, speed")
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
        problem = args.check(args) if hasattr(args, "check") else None  # torch-free: before any work
        if problem:
            print(f"serlib {args.command}: error: {problem}", file=sys.stderr)
            return 2
        return args.func(args)
    except Exception as err:  # a clear one-line message for expected errors; traceback otherwise
        if expected(err):
            if args.verbose:
                traceback.print_exc()
            print(f"serlib {args.command}: error: {one_line(err)}", file=sys.stderr)
            return 2
        raise


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
    if args.cli:
        from serlib.tools.clibench import main_cli_bench

        return main_cli_bench(json_path=args.json, quick=args.quick)
    if args.bundle:
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
    if target.is_dir():  # a run folder (check_report): the configuration it ran with (its config.resolved.yaml)
        folder = RunFolder(target)
        cfg = read_run_config(folder)
    else:
        cfg = load_config(target)
        folder = run_folder(cfg, args.out)
    print(f"report: {reexport_report(cfg, folder)}")
    return 0


def _compare(args: argparse.Namespace) -> int:

    from serlib.analysis.runcompare import compare_runs
    from serlib.common.io import write_text_atomic
    from serlib.common.runfolder import RunFolder
    from serlib.report.compare import compare_html, compare_text, same_folder_warning

    folders = []
    for name in (args.run_a, args.run_b):
        folder = RunFolder(Path(name).expanduser().resolve())
        if not folder.results.is_file():
            raise FileNotFoundError(f"{folder.root} is not a trained run folder (no models/results.csv)")
        folders.append(folder)
    if same_folder_warning(*folders):
        print(f"serlib compare: warning: {same_folder_warning(*folders)}", file=sys.stderr)
    try:
        table = compare_runs(*folders, systems=args.system, n_resamples=args.resamples)
    except ValueError as err:  # runs that cannot be compared (no shared system or clip): the user's input
        print(f"serlib compare: error: {err}", file=sys.stderr)
        return 2
    print(compare_text(table, *folders))
    if args.html:
        path = write_text_atomic(Path(args.html), compare_html(table, *folders))
        print(f"serlib compare: wrote {path}", file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace) -> int:
    """``serlib predict`` (its options, model and inputs checked by ``check_predict``)."""
    from serlib.inference.bundleformat import BUNDLE_FILE
    from serlib.inference.predict import Predictor, summary_line, write_predictions

    out = Path(args.out).expanduser() if args.out else None
    model = Path(args.model).expanduser()
    if (model / BUNDLE_FILE).is_file():
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
