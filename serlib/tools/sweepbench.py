"""``python -m serlib.tools.sweepbench``: one sweep run on this machine and on a local Ray instance, timed; and
(``--estimate BENCH.json``) what a sweep is expected to cost at the paper's scale, from ``serlib bench`` figures.

Each executor runs the sweep cold, in its own fresh folder with its own feature cache; the demo corpus is
generated before either clock starts. The Ray figure includes starting and stopping the local instance. The
two runs' Table S61 are compared: the numbers must be the same. Not a test (figures depend on the machine and
on what else runs on it): the README quotes them with the machine, its cores and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import pandas as pd

from serlib import pipeline
from serlib.common.config import Config, loco_systems
from serlib.common.io import write_json_atomic
from serlib.common.progress import log_to_stdout
from serlib.data.protocols import evaluation_protocols
from serlib.features.keys import inputs_for_run
from serlib.features.layers import paper_layer_cache_bytes
from serlib.modelling.systems import selection_group
from serlib.sweep.execute import EXECUTORS, distinct_systems, feature_identity, run_sweep
from serlib.sweep.spec import Sweep, load_sweep
from serlib.sweep.tasks import LOCO_NOTEBOOK

DEFAULT_SWEEP = Path(__file__).resolve().parents[2] / "parameters" / "sweeps" / "smoke-bench.yaml"


def bench_sweep(sweep_file: Path, out: Path, workers: int, order: list[str]) -> dict:
    """Run ``sweep_file`` once per executor in ``order`` (cold, each in ``out/<executor>``) and time each.

    Returns:
        machine, load averages, seconds per executor and per variant, the Ray over local ratio, and whether
        the two runs' scores (Table S61) are equal.
    """
    first = load_sweep(sweep_file, out / order[0])
    pipeline.ensure_corpus(first.baseline.cfg)  # before the clocks: both runs read the same corpus
    result = {
        "sweep": str(sweep_file),
        "variants": [v.name for v in first.variants],
        "workers": workers,
        "machine": f"{_cpu_name()}, {os.cpu_count()} logical cores",
        "python": sys.version.split()[0],
        "runs": {},
    }
    for executor in order:
        sweep = load_sweep(sweep_file, out / executor)
        load = os.getloadavg()
        start = time.perf_counter()
        state = run_sweep(sweep, executor=executor, workers=workers if executor == "ray" else None)
        seconds = time.perf_counter() - start
        result["runs"][executor] = {
            "seconds": round(seconds, 1),
            "load_before": [round(x, 2) for x in load],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "variants": {n: {"status": e["status"], "seconds": e.get("seconds")} for n, e in state["variants"].items()},
            "scores": str(sweep.tables / "table_s61_scores.csv"),
        }
    if {"local", "ray"} <= set(order):
        local, ray = (pd.read_csv(result["runs"][e]["scores"]) for e in ("local", "ray"))
        result["same_numbers"] = bool(local.equals(ray))
        result["ray_over_local"] = round(result["runs"]["ray"]["seconds"] / result["runs"]["local"]["seconds"], 3)
    return result


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


PAPER_CORPORA = 3  # CREMA-D, RAVDESS, EmoDB: one leave-one-corpus-out protocol each


def epoch_budget(cfg: Config) -> dict:
    """The most epochs one variant trains: every lr grid (points x ``select.max_epochs``) and every run (systems x
    seeds x protocols x ``train.max_epochs``), early stopping aside; leave-one-corpus-out counted for the paper's
    three corpora when the variant runs it."""
    protocols = len(evaluation_protocols(cfg))
    loco = PAPER_CORPORA if LOCO_NOTEBOOK in cfg.run.notebooks and loco_systems(cfg) else 0
    runs = len(distinct_systems(cfg)) * len(cfg.train.seeds) * protocols + len(loco_systems(cfg)) * loco
    select = cfg.train.select
    grids = 0
    if select.enabled:
        grids = (
            len({selection_group(cfg, n)[0] for n in cfg.systems}) * protocols
            + len({selection_group(cfg, n)[0] for n in loco_systems(cfg)}) * loco
        )
    grid_epochs = grids * len(select.lrs) * len(select.weight_decays) * select.max_epochs
    return {"runs": runs, "run_epochs": runs * cfg.train.max_epochs, "grids": grids, "grid_epochs": grid_epochs}


def expected_cost(sweep: Sweep, bench: dict) -> dict:
    """What ``sweep`` is expected to cost at the paper's scale on the device ``bench`` measured.

    Extraction: each distinct feature key set once (``feature_identity``), the paper-scale clips (the real
    corpora's count, ``paper_layer_cache_bytes``) at the bench's wav2vec2 (and log-Mel) clips per second; every
    SSL encoder is taken at wav2vec2-base's cost (HuBERT-base and WavLM-base+ share its size: 12 layers of 768).
    Training: the epoch budget (``epoch_budget``) at the bench's S5 seconds per epoch (the paper's 6096 training
    clips, batch 64), S2 and the other systems at S5's cost: an upper bound, before early stopping. Not counted:
    the notebooks' analyses (eGeMAPS, prosody, listening, deployment), which ``serlib bench`` does not time.
    """
    layer_bytes, clips, _ = paper_layer_cache_bytes()
    extraction = disk = 0.0
    counted = set()
    for v in sweep.variants:
        identity = feature_identity(v.cfg)
        if identity in counted:
            continue
        counted.add(identity)
        for input in inputs_for_run(v.cfg):
            rate = bench[f"extract_clips_per_s_{input}"]
            extraction += clips / rate
            disk += layer_bytes if input == "wav2vec2" else 0
    budgets = {v.name: epoch_budget(v.cfg) for v in sweep.variants}
    epochs = sum(b["run_epochs"] + b["grid_epochs"] for b in budgets.values())
    training = epochs * bench["train_s_per_epoch"]
    return {
        "device": bench.get("device_name", bench.get("device")),
        "quick_bench": bench.get("quick"),
        "clips": clips,
        "feature_sets": len(counted),
        "extraction_s": extraction,
        "epochs_at_most": epochs,
        "train_s_per_epoch": bench["train_s_per_epoch"],
        "training_s_at_most": training,
        "total_s_at_most": extraction + training,
        "wav2vec2_cache_gb": disk / 1e9,
        "per_variant": budgets,
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serlib.tools.sweepbench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sweep", default=str(DEFAULT_SWEEP), help="the sweep file (default: the four-variant smoke one)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="CPUs of the local Ray instance")
    parser.add_argument("--order", default="local,ray", help="executors in the order they run (default local,ray)")
    parser.add_argument("--out", help="folder for the runs (default: a temporary folder)")
    parser.add_argument("--json", help="write the figures as JSON here")
    parser.add_argument(
        "--estimate",
        metavar="BENCH_JSON",
        help="instead of running: the sweep's expected cost from `serlib bench --json` figures",
    )
    args = parser.parse_args(argv)
    if args.estimate:
        cost = expected_cost(load_sweep(args.sweep, args.out), json.loads(Path(args.estimate).read_text()))
        print(
            f"sweepbench: {args.sweep} on {cost['device']}: extraction {cost['extraction_s'] / 3600:.2f} h "
            f"({cost['feature_sets']} feature set(s) x {cost['clips']} clips), training at most "
            f"{cost['epochs_at_most']} epochs x {cost['train_s_per_epoch']:.2f} s = "
            f"{cost['training_s_at_most'] / 3600:.2f} h, "
            f"wav2vec2 cache {cost['wav2vec2_cache_gb']:.2f} GB"
        )
        if args.json:
            write_json_atomic(Path(args.json), cost)
        return 0
    order = args.order.split(",")
    if not set(order) <= set(EXECUTORS):
        parser.error(f"--order: executors are {', '.join(EXECUTORS)}")
    log_to_stdout()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="serlib-sweepbench-"))
    result = bench_sweep(Path(args.sweep), out, args.workers, order)
    for executor, run in result["runs"].items():
        print(
            f"sweepbench: {executor}: {run['seconds']:.1f} s for {len(run['variants'])} variants "
            f"(load {run['load_before'][0]:.2f} before, {run['load_after'][0]:.2f} after)"
        )
    if "ray_over_local" in result:
        print(f"sweepbench: ray / local = {result['ray_over_local']:.2f}; same numbers: {result['same_numbers']}")
    if args.json:
        write_json_atomic(Path(args.json), result)
        print(f"sweepbench: wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
