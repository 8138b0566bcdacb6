"""Running a sweep: on this machine, one variant after another, or as Ray tasks on a cluster.

``run_sweep(sweep, executor)`` writes the variants' parameters files (``serlib.sweep.spec.materialise``),
reuses every variant that already finished with the same configuration, runs the others, and writes the sweep
report. A variant that fails is recorded with its error (``_sweep/state.json``) and the others go on.

- **local** (default): per variant, the tasks of ``serlib.sweep.tasks`` in this process: its features, then every
  system x seed trained (``pipeline.ensure_runs``) and its notebooks. The CPU or GPU is shared as a single
  ``serlib run`` shares it.
- **ray**: each task a Ray task that asks for its resources (``num_gpus`` 1 when the stage's device is cuda,
  or auto on a cluster with GPUs; ``num_cpus`` its ``threads``): one feature task per variant, chained after
  an earlier variant with the same feature keys (it then computes nothing), the learning-rate grids, one task
  per trained run (variant x system x seed x protocol), and the notebooks once the variant's runs are done.
  A task whose worker dies (lost node, SIGKILL) is retried once (``max_retries=1``); a retried run first removes
  what the killed attempt left (``serlib.sweep.runs``). Without ``address``, a local Ray instance is started
  with ``workers`` CPUs, a small object store and no dashboard, and shut down at the end.

Progress: one line per finished task (the variant, what finished, its seconds, and an estimate of the time
left: the mean task time so far x the tasks left / the tasks that run at once).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from serlib import pipeline
from serlib.common.config import Config, ConfigError, loco_systems, non_default
from serlib.common.io import write_json_atomic
from serlib.common.runfolder import RunFolder
from serlib.data.protocols import evaluation_protocols
from serlib.features.keys import inputs_for_run, key_name
from serlib.features.layers import plan_layers
from serlib.modelling.systems import selection_group
from serlib.sweep import tasks
from serlib.sweep.report import write_sweep_report
from serlib.sweep.runs import clear_half_written, clear_half_written_runs
from serlib.sweep.spec import Sweep, Variant, materialise, sweep_lock

log = logging.getLogger("serlib")

EXECUTORS = ("local", "ray")
LOCAL_OBJECT_STORE_BYTES = 200 * 2**20  # a local Ray instance: tasks pass paths and small dicts, never arrays
DONE = ("finished", "reused")


def run_sweep(
    sweep: Sweep,
    executor: str = "local",
    address: Optional[str] = None,
    workers: Optional[int] = None,
    ray_init: Optional[dict] = None,
) -> dict:
    """Run every variant not already finished, then write ``reports/<sweep>/report.html``.

    Args:
        sweep: the loaded sweep (``serlib.sweep.spec.load_sweep``).
        executor: "local" or "ray".
        address: a running Ray cluster's address (ray executor; None: a local Ray instance).
        workers: CPUs of the local Ray instance (default: this machine's).
        ray_init: more keyword arguments of ``ray.init`` (e.g. a ``runtime_env``).

    Returns:
        The sweep's state: {"variants": {name: {"status", "digest", "error", "seconds", ...}}, "report": path}.

    Raises:
        ConfigError: an unknown executor, a variant that would fail its preflight (every problem named,
            nothing written), Ray missing, or another sweep running in the folder.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    problems: dict[str, list[str]] = {}  # a problem of the base profile is every variant's: said once
    for v in sweep.variants:
        for problem in pipeline.preflight(v.cfg):
            problems.setdefault(problem, []).append(v.name)
    if problems:
        raise ConfigError(
            "; ".join(f"{p} (variant{'s' if len(n) > 1 else ''} {', '.join(n)})" for p, n in problems.items())
        )
    with sweep_lock(sweep):
        materialise(sweep)
        state = _load_state(sweep)
        todo = _todo(sweep, state)
        _save_state(sweep, state)
        if todo and executor == "local":
            _run_local(sweep, todo, state)
        elif todo:
            _run_ray(sweep, todo, state, address, workers, ray_init)
        state["report"] = str(write_sweep_report(sweep, state["variants"]))
        _save_state(sweep, state)
    failed = [n for n, s in state["variants"].items() if s["status"] == "failed"]
    log.info(
        "sweep %s: %d variant(s) done, %d failed%s; report: %s",
        sweep.name,
        len(sweep.variants) - len(failed),
        len(failed),
        f" ({', '.join(failed)})" if failed else "",
        state["report"],
    )
    return state


# --------------------------------------------------------------------------- state


def _load_state(sweep: Sweep) -> dict:
    try:
        state = json.loads(sweep.state_file.read_text())
    except (OSError, ValueError):
        state = {}
    return {
        "sweep": sweep.name,
        "source": str(sweep.source),
        "variants": {v.name: state.get("variants", {}).get(v.name, {}) for v in sweep.variants},
    }


def _save_state(sweep: Sweep, state: dict) -> None:
    write_json_atomic(sweep.state_file, state)


def _todo(sweep: Sweep, state: dict) -> list[Variant]:
    """The variants to run; one that finished with the same configuration and kept its report is reused."""
    todo = []
    for v in sweep.variants:
        entry = state["variants"][v.name]
        if entry.get("status") in DONE and entry.get("digest") == v.digest and (v.root / "report.html").is_file():
            state["variants"][v.name] = entry | {"status": "reused"}
            log.info("sweep %s: variant %s finished earlier with the same configuration: reused", sweep.name, v.name)
        else:
            state["variants"][v.name] = {"status": "pending", "digest": v.digest}
            todo.append(v)
    return todo


def _one_line(err: BaseException) -> str:
    """An error as one line: a Ray task's own exception (``cause``) rather than Ray's wrapper."""
    err = getattr(err, "cause", None) or err
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:600]


class _Progress:
    """One line per finished task: what finished, in how long, and about how long is left."""

    def __init__(self, total: int, slots: int = 1):
        self.total, self.slots, self.done, self.seconds = total, max(1, slots), 0, []

    def finished(self, variant: str, what: str, seconds: float, note: str = "") -> None:
        self.done += 1
        self.seconds.append(seconds)
        left = max(self.total - self.done, 0)
        eta = sum(self.seconds) / len(self.seconds) * left / min(self.slots, max(left, 1))
        log.info(
            "[%d/%d] %s: %s in %s%s; %s",
            self.done,
            max(self.total, self.done),
            variant,
            what,
            _duration(seconds),
            note,
            f"about {_duration(eta)} left" if left else "nothing left",
        )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


# --------------------------------------------------------------------------- local


def _run_local(sweep: Sweep, todo: list[Variant], state: dict) -> None:
    progress = _Progress(len(todo))
    for v in todo:
        start = time.time()
        entry = state["variants"][v.name]
        try:
            entry |= _local_variant(sweep, v) | {"status": "finished", "error": ""}
        except Exception as err:  # one failed variant is reported and the others go on
            entry |= {"status": "failed", "error": _one_line(err)}
            log.error("sweep %s: variant %s FAILED: %s", sweep.name, v.name, entry["error"])
        entry["seconds"] = round(time.time() - start, 1)
        _save_state(sweep, state)
        progress.finished(v.name, "finished" if entry["status"] == "finished" else "FAILED", entry["seconds"])


def _local_variant(sweep: Sweep, v: Variant) -> dict:
    """One variant in this process: what an interrupted run left removed, features, every run, notebooks."""
    clear_half_written_runs(sweep.root, RunFolder(v.root))
    prepared = tasks.prepare_variant(str(v.params), str(v.root))
    done = tasks.run_notebooks(str(v.params), str(v.root), str(sweep.notebooks_dir), _siblings(sweep, v))
    return {"report": done["report"], "features_computed": prepared["computed"]}


# --------------------------------------------------------------------------- Ray


def _run_ray(
    sweep: Sweep,
    todo: list[Variant],
    state: dict,
    address: Optional[str],
    workers: Optional[int],
    ray_init: Optional[dict],
) -> None:
    try:
        import ray  # the optional extra: pip install 'serlib[ray]'
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'serlib[ray]' (or make setup EXTRAS=ray)") from None
    started = not ray.is_initialized()
    if started and address:
        ray.init(address=address, log_to_driver=False, **(ray_init or {}))
    elif started:
        ray.init(
            num_cpus=workers or os.cpu_count(),
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            include_dashboard=False,
            log_to_driver=False,
            **(ray_init or {}),
        )
    try:
        _RayScheduler(sweep, todo, state, ray).run()
    finally:
        if started:
            ray.shutdown()


@dataclass
class _Job:
    variant: Variant
    kind: str  # features | select | train | notebooks
    label: str  # what it does, in words (progress lines)
    args: tuple
    resources: dict
    run: Optional[tuple] = None  # (system, seed, protocol) of a train job
    group: Optional[tuple] = None  # (protocol, selection group) of a select or train job

    @property
    def task_id(self) -> str:
        """``<variant>.<kind>[.<system>.seed<k>.<protocol> | .<group>.<protocol>]``: its record's name."""
        parts = [self.variant.name, self.kind]
        if self.run:
            parts += [self.run[0], f"seed{self.run[1]}", self.run[2]]
        elif self.group:
            parts += [self.group[1], self.group[0]]
        return re.sub(r"[^A-Za-z0-9._-]+", "-", ".".join(map(str, parts)))


@dataclass
class _VariantRun:
    start: float
    open: int = 0  # its select and train jobs not finished yet
    failed: bool = False
    waiting: dict = field(default_factory=dict)  # (protocol, group) -> train jobs waiting for that grid
    tasks: int = 0
    retried: int = 0


class _RayScheduler:
    """Submits each variant's tasks as their inputs become ready and records what finishes."""

    def __init__(self, sweep: Sweep, todo: list[Variant], state: dict, ray: Any):
        self.sweep, self.state, self.ray = sweep, state, ray
        self.remote = ray.remote(tasks.run_task)
        self.cluster = ray.cluster_resources()
        self.pending: dict = {}  # ObjectRef -> _Job
        self.runs: dict[str, _VariantRun] = {}
        self.chains: dict[str, list[Variant]] = {}  # feature identity -> variants whose features wait their turn
        for v in todo:
            self.chains.setdefault(feature_identity(v.cfg), []).append(v)
        train = _resources(todo[0].cfg.train.device, todo[0].cfg.train.threads, self.cluster)
        slots = min(
            self.cluster.get("CPU", 1) // train["num_cpus"],
            self.cluster.get("GPU", 0) // train["num_gpus"] if train["num_gpus"] else float("inf"),
        )
        self.progress = _Progress(sum(_planned(v.cfg) for v in todo), int(slots))

    def run(self) -> None:
        for chain in self.chains.values():
            self._features(chain[0])
        while self.pending:
            ready, _ = self.ray.wait(list(self.pending), num_returns=1)
            job = self.pending.pop(ready[0])
            try:
                result, error = self.ray.get(ready[0]), None
            except Exception as err:  # the task's error, or its worker lost twice: recorded, the sweep goes on
                result, error = None, _one_line(err)
            self._finished(job, result, error)

    # ------------------------------------------------------------------ submitting

    def _submit(self, job: _Job) -> None:
        ref = self.remote.options(**job.resources, max_retries=1, retry_exceptions=False, name=job.task_id).remote(
            job.kind, job.task_id, str(self.sweep.tasks_dir), *job.args
        )
        self.pending[ref] = job

    def _features(self, v: Variant) -> None:
        self.runs[v.name] = _VariantRun(time.time())
        self._submit(
            _Job(
                v,
                "features",
                "features",
                (str(v.params), str(v.root)),
                _resources(v.cfg.features.device, v.cfg.features.threads, self.cluster),
            )
        )

    def _plan_runs(self, v: Variant, prepared: dict) -> None:
        """After the variant's features: its learning-rate grids, then its trained runs (or its notebooks)."""
        cfg, run = v.cfg, self.runs[v.name]
        resources = _resources(cfg.train.device, cfg.train.threads, self.cluster)
        jobs = [
            _Job(
                v,
                "train",
                f"{system} seed {seed} ({protocol})",
                (str(v.params), str(v.root), system, seed, protocol),
                resources,
                (system, seed, protocol),
            )
            for system, seed, protocol in run_jobs(cfg, prepared["protocols"], prepared["loco"])
        ]
        grids = _all_grids(cfg, prepared) if cfg.train.select.enabled else {}
        for job in jobs if grids else []:
            job.group = (job.run[2], selection_group(cfg, job.run[0])[0])
        self.progress.total += len(jobs) + len(grids) - _planned_runs(cfg) - _planned_grids(cfg)
        run.open = len(jobs) + len(grids)
        for (protocol, group), searched_on in grids.items():
            run.waiting[(protocol, group)] = [j for j in jobs if j.group == (protocol, group)]
            self._submit(
                _Job(
                    v,
                    "select",
                    f"lr grid {group} ({protocol})",
                    (str(v.params), str(v.root), searched_on, group, protocol),
                    resources,
                    group=(protocol, group),
                )
            )
        for job in jobs if not grids else []:
            self._submit(job)
        if run.open == 0:
            self._notebooks(v)

    def _notebooks(self, v: Variant) -> None:
        self._submit(
            _Job(
                v,
                "notebooks",
                "notebooks",
                (str(v.params), str(v.root), str(self.sweep.notebooks_dir), _siblings(self.sweep, v)),
                _resources(v.cfg.train.device, v.cfg.train.threads, self.cluster),
            )
        )

    # ------------------------------------------------------------------ finishing

    def _finished(self, job: _Job, result: Optional[dict], error: Optional[str]) -> None:
        v, run = job.variant, self.runs[job.variant.name]
        run.tasks += 1
        attempt = (result or {}).get("attempt") or _attempts(self.sweep, job)
        if attempt > 1:
            run.retried += 1
        seconds = (result or {}).get("seconds", 0.0)
        note = f" (attempt {attempt}: an earlier one was killed)" if attempt > 1 else ""
        if (result or {}).get("cleared"):
            note += f" (removed the half-written run it left: {result['cleared']})"
        self.progress.finished(v.name, f"{job.label} {'done' if error is None else 'FAILED: ' + error}", seconds, note)
        if job.kind == "features":
            self._next_in_chain(v)
        if error is not None:
            if job.kind == "train":
                self._clear(v, job.run)
            self._fail(v, error)
            return
        if run.failed:
            return
        if job.kind == "features":
            self.state["variants"][v.name]["features_computed"] = result["computed"]
            self._plan_runs(v, result)
        elif job.kind == "select":
            run.open -= 1
            for waiting in run.waiting.pop(job.group, []):
                self._submit(waiting)
        elif job.kind == "train":
            run.open -= 1
        elif job.kind == "notebooks":
            self._record(v, {"status": "finished", "error": "", "report": result["report"]})
            return
        if job.kind in ("select", "train") and run.open == 0:
            self._notebooks(v)

    def _next_in_chain(self, v: Variant) -> None:
        chain = self.chains[feature_identity(v.cfg)]
        chain.remove(v)
        if chain:
            self._features(chain[0])

    def _clear(self, v: Variant, run: tuple) -> None:
        system, seed, protocol = run
        try:
            clear_half_written(self.sweep.root, RunFolder(v.root).run_dir(system, seed, protocol))
        except (OSError, RuntimeError) as err:
            log.warning("could not remove the half-written run of %s %s seed %s: %s", v.name, system, seed, err)

    def _fail(self, v: Variant, error: str) -> None:
        run = self.runs[v.name]
        if run.failed:
            return
        run.failed = True
        dropped = sum(len(jobs) for jobs in run.waiting.values())
        run.waiting.clear()
        self.progress.total -= dropped
        self._record(v, {"status": "failed", "error": error})
        log.error("sweep %s: variant %s FAILED: %s (the other variants go on)", self.sweep.name, v.name, error)

    def _record(self, v: Variant, fields: dict) -> None:
        run = self.runs[v.name]
        self.state["variants"][v.name] |= fields | {
            "seconds": round(time.time() - run.start, 1),
            "tasks": run.tasks,
            "retried": run.retried,
        }
        _save_state(self.sweep, self.state)


def _siblings(sweep: Sweep, v: Variant) -> list[str]:
    """The other variants' run folders, the baseline first (whose analysis caches a variant may share)."""
    return [str(other.root) for other in sweep.variants if other is not v]


def _attempts(sweep: Sweep, job: _Job) -> int:
    """The attempts a failed task's record counts (its result carries them when it succeeded)."""
    try:
        return int(json.loads((sweep.tasks_dir / f"{job.task_id}.json").read_text()).get("attempt", 1))
    except (OSError, ValueError):
        return 1


def _resources(device: str, threads: Optional[int], cluster: dict) -> dict:
    """What a task asks Ray for: a GPU when its stage runs on cuda (or auto on a cluster with GPUs), and its
    threads as CPUs (at most the cluster's)."""
    gpus = cluster.get("GPU", 0)
    if device == "cuda" and not gpus:
        raise ConfigError(
            "a stage's device is 'cuda' but the Ray cluster has no GPU; use 'auto' or 'cpu', or add GPU nodes"
        )
    return {
        "num_cpus": max(1, min(threads or 1, int(cluster.get("CPU", 1)))),
        "num_gpus": 1 if device == "cuda" or (device == "auto" and gpus) else 0,
    }


def feature_identity(cfg: Config) -> str:
    """What a variant's feature task computes: its data settings, its cache and its feature key folders. Two
    variants with the same identity share one extraction (the second finds every clip cached)."""
    keys = []
    for input in inputs_for_run(cfg):
        keys += [key_name(cfg, feature) for feature in plan_layers(cfg).keys(input)]
    return json.dumps([cfg.features.cache_dir, non_default(cfg.data), sorted(keys)], sort_keys=True, default=str)


def distinct_systems(cfg: Config) -> list[str]:
    """The systems to train: the first of each group with identical settings (``train_systems`` copies a
    trained run to the others, S4 and A1 in the paper's tables)."""
    seen, out = set(), []
    for name, system in cfg.systems.items():
        settings = dataclasses.asdict(system)
        settings.pop("description", None)
        key = json.dumps(settings, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(name)
    return out


def run_jobs(cfg: Config, protocols: list[str], loco: list[str]) -> list[tuple[str, int, str]]:
    """(system, seed, protocol) of every trained run of a variant: its distinct systems x seeds x main protocols,
    and the leave-one-corpus-out systems with the first seed (as ``pipeline.ensure_loco`` trains them)."""
    jobs = [
        (name, seed, protocol) for protocol in protocols for name in distinct_systems(cfg) for seed in cfg.train.seeds
    ]
    return jobs + [(name, cfg.train.seeds[0], protocol) for protocol in loco for name in loco_systems(cfg)]


def _all_grids(cfg: Config, prepared: dict) -> dict:
    """(protocol, group) -> the system it is searched on, for every system (a copied duplicate's grid too: the
    notebooks ask for it before they copy its run)."""
    grids = {}
    for protocol in prepared["protocols"] + prepared["loco"]:
        names = list(cfg.systems) if protocol in prepared["protocols"] else loco_systems(cfg)
        for name in names:
            group, searched_on = selection_group(cfg, name)
            grids.setdefault((protocol, group), searched_on)
    return grids


def _planned_runs(cfg: Config) -> int:
    return len(run_jobs(cfg, evaluation_protocols(cfg), []))


def _planned_grids(cfg: Config) -> int:
    if not cfg.train.select.enabled:
        return 0
    return len(_all_grids(cfg, {"protocols": evaluation_protocols(cfg), "loco": []}))


def _planned(cfg: Config) -> int:
    """Tasks a variant is expected to take before its features tell its protocols: features, grids, runs,
    notebooks."""
    return 1 + _planned_grids(cfg) + _planned_runs(cfg) + 1
