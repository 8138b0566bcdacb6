"""serlib sweep: sweep files and their variants, whole and half-written runs, the local and Ray executors (the
same numbers either way, the feature cache filled once, a killed task retried, a failed variant isolated, a re-run
finishing only what is missing) and the sweep report."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from serlib.common.config import ConfigError, load_config
from serlib.common.runfolder import RunFolder
from serlib.features.shards import read_shards
from serlib.sweep import execute, tasks
from serlib.sweep.execute import run_sweep
from serlib.sweep.runs import clear_half_written, run_dirs, run_problem
from serlib.sweep.spec import MARKER, config_digest, load_sweep, materialise
from serlib.tools.sweepbench import expected_cost

REPO = Path(__file__).resolve().parents[1]
SMOKE_SWEEP = REPO / "parameters" / "sweeps" / "smoke.yaml"
VARIANTS = ["base", "noise-0.2", "frames-60"]
try:
    import ray  # noqa: F401  (the optional extra: the Ray tests run where it is installed, as in the CI)

    NO_RAY = ""
except ImportError:
    NO_RAY = "Ray is not installed (the optional extra: pip install 'serlib[ray]' or make setup EXTRAS=ray)"


def _sweep_file(folder: Path, text: str) -> Path:
    path = folder / "sweeps" / "x.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if "base:" in text else f"base: {REPO / 'parameters' / 'smoke.yaml'}\n" + text)
    return path


# --------------------------------------------------------------------------- sweep files


def test_a_grid_names_its_variants_and_the_unchanged_one_is_the_baseline(tmp_path):
    path = _sweep_file(
        tmp_path,
        "name: lr\nsystems: [S1, S5]\nseeds: [3]\ngrid:\n  train.lr: [3.0e-3, 1.0e-3]\n"
        "  features.wav2vec2.model_id: [facebook/wav2vec2-base]\n",
    )
    sweep = load_sweep(path, tmp_path / "out")
    assert [v.name for v in sweep.variants] == ["lr-0.001_model_id-wav2vec2-base", "lr-0.003_model_id-wav2vec2-base"]
    base, other = sweep.variants
    assert base.baseline and not other.baseline  # 1e-3 is the smoke profile's learning rate: nothing changed
    assert other.cfg.train.lr == 3e-3 and base.cfg.train.lr == 1e-3
    for v in sweep.variants:
        assert list(v.cfg.systems) == ["S1", "S5"] and v.cfg.train.seeds == [3]
        assert v.cfg.features.cache_dir == str(tmp_path / "out" / "_sweep" / "features")  # one shared cache
        assert v.root == tmp_path / "out" / v.name and v.cfg.run.name == v.name
    assert not (tmp_path / "out").exists()  # reading writes nothing


def test_a_base_variant_is_added_first_when_none_equals_the_base_profile(tmp_path):
    path = _sweep_file(tmp_path, "name: w\nvariants:\n  - {name: wide, set: {systems.S5.model.width_scale: 0.1}}\n")
    sweep = load_sweep(path, tmp_path / "out")
    assert [(v.name, v.baseline) for v in sweep.variants] == [("base", True), ("wide", False)]
    assert sweep.variant("wide").cfg.systems["S5"].model.width_scale == 0.1
    assert sweep.baseline.cfg.systems["S5"].model.width_scale == 0.05  # the smoke profile's model_defaults
    assert set(sweep.baseline.cfg.systems) == set(load_config(REPO / "parameters" / "smoke.yaml").systems)


@pytest.mark.parametrize(
    "text, words",
    [
        ("name: a\nvariantz: []\n", ["unknown key 'variantz'", "did you mean 'variants'"]),
        ("name: a\nvariants: [{name: v, set: {train.lrr: 1.0}}]\n", ["(variant v)", "unknown key 'train.lrr'"]),
        ("name: a\nvariants: [{name: ../v, set: {}}]\n", ["variant name '../v'", "plain folder name"]),
        ("name: ../a\nvariants: [{name: v, set: {}}]\n", ["'name' must be a plain folder name"]),
        ("name: a\nvariants: [{name: v, set: {}}, {name: v, set: {train.lr: 1.0}}]\n", ["v given twice"]),
        ("name: a\nsystems: [S9]\nvariants: [{name: v, set: {}}]\n", ["'systems' names S9"]),
        ("name: a\n", ["the sweep has no variant"]),
        (
            "name: a\nvariants: [{name: v, set: {model_defaults.resattn.width_scale: 0.1}}]\n",
            ["cannot be overridden", "systems.<name>.model.<field>"],
        ),
        ("name: a\nbaseline: w\nvariants: [{name: v, set: {}}]\n", ["'baseline' names 'w'"]),
        ("name: a\ngrid: {train.lr: 0.1}\n", ["'grid.train.lr' must be a non-empty list"]),
        (
            "name: a\nbase: ../nowhere.yaml\nvariants: [{name: v, set: {}}]\n",
            ["'base' = ../nowhere.yaml is not a file"],
        ),
        (
            "name: a\nvariants: [{name: v, set: {train.lr.x: 1}}]\n",
            ["'train.lr' holds a value", "set 'train.lr' itself"],
        ),
    ],
)
def test_sweep_file_errors_name_the_file_the_variant_and_the_key(tmp_path, text, words):
    path = _sweep_file(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_sweep(path, tmp_path / "out")
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    for word in words:
        assert word in message, message
    assert not (tmp_path / "out").exists()


def test_materialised_parameters_read_back_as_the_same_configuration(tmp_path):
    sweep = load_sweep(SMOKE_SWEEP, tmp_path / "out")
    digests = {v.name: config_digest(v.cfg) for v in sweep.variants}
    materialise(sweep)
    assert (sweep.state_dir / MARKER).is_file()
    for v in sweep.variants:
        assert v.cfg.source == str(v.params) and v.params.parent == sweep.state_dir / "variants"
        again = load_config(v.params)  # what the variant's notebooks read
        assert config_digest(again) == digests[v.name] and list(again.systems) == ["S1", "S5"]  # S2-A3 stay removed
    assert sweep.variant("frames-60").cfg.features.frames == 60


def test_preflight_problems_stop_the_sweep_before_anything_is_written(tmp_path):
    missing = tmp_path / "none"
    path = _sweep_file(tmp_path, f"name: a\nvariants: [{{name: v, set: {{data.demo: null, data.emodb: {missing}}}}}]\n")
    with pytest.raises(ConfigError, match=r"x.yaml: .data.emodb. = .* does not exist.*\(variant v\)"):
        run_sweep(load_sweep(path, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_the_encoders_sweep_is_prepared_and_stops_on_the_missing_corpora_before_writing(tmp_path):
    sweep = load_sweep(REPO / "parameters" / "sweeps" / "encoders.yaml", tmp_path / "out")
    assert [(v.name, v.baseline, v.cfg.features.wav2vec2.model_id) for v in sweep.variants] == [
        ("wav2vec2-base", True, "facebook/wav2vec2-base"),
        ("hubert-base", False, "facebook/hubert-base-ls960"),
        ("wavlm-base-plus", False, "microsoft/wavlm-base-plus"),
    ]
    for v in sweep.variants:
        assert list(v.cfg.systems) == ["S2", "S5"] and v.cfg.train.seeds == [0, 1, 2]
        assert v.cfg.features.wav2vec2.layer == "last" and v.cfg.analysis.loco_systems == []
        assert v.cfg.features.wav2vec2.weights == "pretrained" and v.cfg.train.select.enabled  # as paper.yaml
    with pytest.raises(ConfigError) as err:
        run_sweep(sweep)
    assert (
        "'data.crema_d' = " in str(err.value)
        and "(variants wav2vec2-base, hubert-base, wavlm-base-plus)" in str(err.value)
        and str(err.value).count("'data.crema_d'") == 1
    )  # a base profile's problem, said once
    assert not (tmp_path / "out").exists()


def test_the_command_line_refuses_what_does_not_fit_with_status_2(tmp_path, capsys):
    from serlib.tools.cli import main  # the command line: imported where it is tested

    assert main(["sweep", str(SMOKE_SWEEP), "--address", "head:6379", "--out", str(tmp_path / "a")]) == 2
    assert "add --executor ray" in capsys.readouterr().err
    assert main(["sweep", str(SMOKE_SWEEP), "--workers", "2", "--out", str(tmp_path / "b")]) == 2
    assert "--workers (>= 1) sizes a local Ray instance" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "none.yaml")]) == 2
    assert (
        "serlib sweep: error: " in (err := capsys.readouterr().err)
        and "none.yaml: no such file (the sweep file)" in err
    )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_ray_missing_is_a_config_error_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as it does without the extra
    with pytest.raises(ConfigError, match=r"pip install 'serlib\[ray\]'"):
        run_sweep(load_sweep(SMOKE_SWEEP, tmp_path / "out"), executor="ray")
    with pytest.raises(ConfigError, match="unknown executor"):
        run_sweep(load_sweep(SMOKE_SWEEP, tmp_path / "out"), executor="slurm")


def test_a_variant_gets_the_per_clip_analysis_caches_another_holds_never_over_its_own(tmp_path):
    base, other, new = (RunFolder(tmp_path / n) for n in ("base", "other", "new"))
    for folder in (base, other, new):
        folder.analysis.mkdir(parents=True)
    base.egemaps_cache.write_text("path,mtime_ns,size,opensmile\nbase\n")
    other.egemaps_cache.write_text("other\n")
    other.prosody_cache.write_text("prosody of other\n")
    new.prosody_cache.write_text("its own\n")
    assert tasks.share_analysis_caches(str(new.root), [str(base.root), str(other.root)]) == ["egemaps_cache"]
    assert new.egemaps_cache.read_text() == base.egemaps_cache.read_text()  # the first sibling holding one
    assert new.prosody_cache.read_text() == "its own\n"


# --------------------------------------------------------------------------- executors without running anything


def test_a_failed_variant_is_reported_and_the_others_go_on(tmp_path, monkeypatch):
    sweep = load_sweep(SMOKE_SWEEP, tmp_path / "out")
    ran = []

    def fake_variant(sweep, v):
        ran.append(v.name)
        if v.name == "noise-0.2":
            raise RuntimeError("the GPU fell off\nsecond line of the traceback")
        (v.root / "report.html").parent.mkdir(parents=True, exist_ok=True)
        (v.root / "report.html").write_text("<html>")
        return {"report": str(v.root / "report.html")}

    monkeypatch.setattr(execute, "_local_variant", fake_variant)
    monkeypatch.setattr(execute, "write_sweep_report", lambda sweep, statuses: sweep.report)
    state = run_sweep(sweep)
    assert ran == VARIANTS
    status = {n: e["status"] for n, e in state["variants"].items()}
    assert status == {"base": "finished", "noise-0.2": "failed", "frames-60": "finished"}
    assert state["variants"]["noise-0.2"]["error"] == "RuntimeError: the GPU fell off"
    assert json.loads(sweep.state_file.read_text())["variants"]["noise-0.2"]["status"] == "failed"
    ran.clear()
    state = run_sweep(load_sweep(SMOKE_SWEEP, tmp_path / "out"))  # again: only the failed one runs
    assert ran == ["noise-0.2"] and state["variants"]["base"]["status"] == "reused"


class _Ref:
    def __init__(self, value=None, error=None):
        self.value, self.error = value, error


class _FakeRay:
    """What the scheduler uses of Ray, run in order: each task "finishes" when waited for, first submitted first."""

    RESULTS = {
        "features": {"protocols": ["split"], "loco": [], "computed": {"wav2vec2": 0, "logmel": 0}},
        "select": {"lr": 1e-3, "weight_decay": 1e-2},
        "train": {"status": "trained"},
        "notebooks": {"report": "report.html"},
    }

    def __init__(self, fail=None):
        self.submitted, self.fail = [], fail or (lambda task_id: None)

    def remote(self, fn):
        fake = self

        class Remote:
            def options(self, **options):
                self.options_ = options
                return self

            def remote(self, kind, task_id, tasks_dir, *args):
                fake.submitted.append((task_id, self.options_))
                error = fake.fail(task_id)
                return _Ref(error=error) if error else _Ref(fake.RESULTS[kind] | {"seconds": 0.0, "attempt": 1})

        return Remote()

    def cluster_resources(self):
        return {"CPU": 2.0}

    def wait(self, refs, num_returns=1):
        return refs[:1], refs[1:]

    def get(self, ref):
        if ref.error:
            raise ref.error
        return ref.value


def _scheduled(tmp_path, fail=None):
    sweep = load_sweep(SMOKE_SWEEP, tmp_path / "out")
    sweep.state_dir.mkdir(parents=True)
    state = {"variants": {v.name: {"status": "pending"} for v in sweep.variants}}
    fake = _FakeRay(fail)
    execute._RayScheduler(sweep, sweep.variants, state, fake).run()
    return [task for task, _ in fake.submitted], dict(fake.submitted), state


def test_the_ray_scheduler_runs_each_task_after_what_it_reads(tmp_path):
    order, options, state = _scheduled(tmp_path)
    at = {task: i for i, task in enumerate(order)}
    assert all(s["status"] == "finished" for s in state["variants"].values())
    assert at["noise-0.2.features"] > at["base.features"] and at["frames-60.features"] > at["noise-0.2.features"]
    for v in VARIANTS:  # same feature keys: chained, the later ones find every clip cached
        for system in ("S1", "S5"):
            assert at[f"{v}.select.{system}.split"] > at[f"{v}.features"]
            assert at[f"{v}.train.{system}.seed0.split"] > at[f"{v}.select.{system}.split"]
            assert at[f"{v}.notebooks"] > at[f"{v}.train.{system}.seed0.split"]
    assert len(order) == 3 * (1 + 2 + 2 + 1)  # features, two lr grids, two runs, notebooks
    assert options["base.train.S5.seed0.split"] | {"name": None} == {
        "num_cpus": 1,
        "num_gpus": 0,
        "max_retries": 1,
        "retry_exceptions": False,
        "name": None,
    }


def test_the_ray_scheduler_isolates_a_variant_whose_run_fails(tmp_path, monkeypatch):
    cleared = []
    monkeypatch.setattr(execute, "clear_half_written", lambda root, run_dir: cleared.append(run_dir))
    failing = "noise-0.2.train.S5.seed0.split"
    order, _, state = _scheduled(tmp_path, lambda task: RuntimeError("worker lost twice") if task == failing else None)
    assert state["variants"]["noise-0.2"]["status"] == "failed"
    assert state["variants"]["noise-0.2"]["error"] == "RuntimeError: worker lost twice"
    assert "noise-0.2.notebooks" not in order and {"base.notebooks", "frames-60.notebooks"} <= set(order)
    assert state["variants"]["base"]["status"] == state["variants"]["frames-60"]["status"] == "finished"
    assert cleared == [tmp_path / "out" / "noise-0.2" / "models" / "S5" / "seed0"]  # nothing half-written stays


# --------------------------------------------------------------------------- sweeps that run


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The smoke sweep run here, one variant after another (shared by the tests below)."""
    sweep = load_sweep(SMOKE_SWEEP, tmp_path_factory.mktemp("sweep-local"))
    return sweep, run_sweep(sweep)


@pytest.mark.slow
def test_the_local_sweep_finishes_and_fills_the_feature_cache_once(local_sweep):
    sweep, state = local_sweep
    assert [state["variants"][v]["status"] for v in VARIANTS] == ["finished"] * 3
    computed = {v: state["variants"][v]["features_computed"] for v in VARIANTS}
    clips = len(pd.read_csv(RunFolder(sweep.baseline.root).manifest))
    assert computed["base"] == {"wav2vec2": clips, "logmel": clips}
    assert computed["noise-0.2"] == computed["frames-60"] == {"wav2vec2": 0, "logmel": 0}
    keys = sorted(p for p in (sweep.state_dir / "features").iterdir() if p.is_dir())
    assert [k.name.split("-")[0] for k in keys] == ["logmel", "wav2vec2"]  # one key folder per input, shared
    for key in keys:  # every clip stored once: no variant computed it again
        rows = [row[0] for shard in read_shards(key)[0].values() for row in shard.rows]
        assert len(rows) == len(set(rows)) == clips
    for v in sweep.variants:
        assert (v.root / "report.html").is_file() and all(run_problem(d) is None for d in run_dirs(RunFolder(v.root)))


@pytest.mark.slow
def test_the_sweep_report_holds_the_table_the_figure_and_the_links(local_sweep):
    sweep, _ = local_sweep
    page = sweep.report.read_text()
    for text in (
        "Table S61",
        "Table S62",
        "Fig. S61",
        "data:image/png;base64",
        "Table S63",
        'href="noise-0.2/report.html"',
        'href="frames-60/report.html"',
        "features.frames = 60 (baseline: 100)",
        "augment.noise_std = 0.2 (baseline: 0.05)",
    ):
        assert text in page, text
    scores = pd.read_csv(sweep.tables / "table_s61_scores.csv")
    assert [tuple(r) for r in scores[["variant", "system"]].itertuples(index=False)] == [
        (v, s) for v in VARIANTS for s in ("S1", "S5")
    ]
    assert ((scores["uar_lo"] <= scores["uar"]) & (scores["uar"] <= scores["uar_hi"])).all()
    paired = pd.read_csv(sweep.tables / "table_s62_paired.csv")
    assert len(paired) == 4 and set(paired["variant"]) == {"noise-0.2", "frames-60"}
    uar = scores.set_index(["variant", "system"])["uar"]
    for row in paired.itertuples():  # the same clips in every variant: the paired delta is the difference of Table S61
        assert row.delta_uar_pp == pytest.approx(100 * (uar[(row.variant, row.system)] - uar[("base", row.system)]))
        assert 0 < row.p <= row.p_holm <= 1
    assert (sweep.figures / "fig_s61_uar.png").stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.skipif(bool(NO_RAY), reason=NO_RAY or "Ray is installed")
def test_ray_gives_the_same_numbers_and_retries_a_killed_task(local_sweep, tmp_path):
    local, _ = local_sweep
    marker = tmp_path / "killed.txt"
    env = {
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
        "SERLIB_TEST_KILL_MARKER": str(marker),
        "SERLIB_TEST_KILL_RUN": "noise-0.2/models/S5/seed0",
    }
    sweep = load_sweep(SMOKE_SWEEP, tmp_path / "ray")
    state = run_sweep(
        sweep,
        executor="ray",
        workers=2,
        ray_init={
            "runtime_env": {"env_vars": env, "worker_process_setup_hook": "sweep_faults.kill_once_at_checkpoint"}
        },
    )
    assert "killed pid" in marker.read_text()  # the worker training noise-0.2's S5 was SIGKILLed mid-write
    record = json.loads((sweep.tasks_dir / "noise-0.2.train.S5.seed0.split.json").read_text())
    assert record["attempt"] == 2 and record["status"] == "done"
    # the killed attempt left its staging folder and no run; the retry removed it and trained the run whole
    assert "the staging folder a killed attempt left (.seed0.new-" in record["result"]["cleared"]
    assert not list((sweep.variant("noise-0.2").root / "models").rglob(".seed*"))
    assert state["variants"]["noise-0.2"]["retried"] == 1
    assert [state["variants"][v]["status"] for v in VARIANTS] == ["finished"] * 3
    assert state["variants"]["base"]["features_computed"]["wav2vec2"] > 0
    assert state["variants"]["noise-0.2"]["features_computed"] == {"wav2vec2": 0, "logmel": 0}
    pd.testing.assert_frame_equal(
        pd.read_csv(sweep.tables / "table_s61_scores.csv"), pd.read_csv(local.tables / "table_s61_scores.csv")
    )
    pd.testing.assert_frame_equal(
        pd.read_csv(sweep.tables / "table_s62_paired.csv"), pd.read_csv(local.tables / "table_s62_paired.csv")
    )
    for v in VARIANTS:
        folder = RunFolder(sweep.variant(v).root)
        assert [d.name for d in folder.models.rglob(".*half-written*")] == []
        for run in run_dirs(folder):
            assert run_problem(run) is None
            theirs = RunFolder(local.variant(v).root).models / run.relative_to(folder.models)
            assert (run / "predictions_test.csv").read_text() == (theirs / "predictions_test.csv").read_text()


@pytest.mark.slow
def test_half_written_runs_are_found_and_removed_only_inside_a_sweep(local_sweep, tmp_path):
    sweep, _ = local_sweep
    whole = RunFolder(sweep.variant("base").root).run_dir("S5", 0)
    root = tmp_path / "sweep"
    (root / "_sweep").mkdir(parents=True)
    (root / "_sweep" / MARKER).write_text("")
    runs = {}
    for case in ("whole", "no-config", "cut-checkpoint", "bad-predictions"):
        runs[case] = root / "v" / "models" / "S5" / f"seed{len(runs)}"
        shutil.copytree(whole, runs[case])
    (runs["no-config"] / "config.json").unlink()
    checkpoint = runs["cut-checkpoint"] / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    (runs["bad-predictions"] / "predictions_test.csv").write_text("utt_id,lab")
    assert run_problem(runs["whole"]) is None
    assert run_problem(runs["no-config"]) == "config.json is missing or empty"
    assert run_problem(runs["cut-checkpoint"]).startswith("a file cannot be read back")
    assert run_problem(runs["bad-predictions"]) == "predictions_test.csv holds no predictions"
    outside = tmp_path / "elsewhere" / "seed0"
    shutil.copytree(runs["no-config"], outside)
    with pytest.raises(RuntimeError, match="outside a serlib sweep folder"):
        clear_half_written(tmp_path, outside)
    assert outside.is_dir()
    assert clear_half_written(root, runs["whole"]) is None and runs["whole"].is_dir()
    for case in ("no-config", "cut-checkpoint", "bad-predictions"):
        assert clear_half_written(root, runs[case]) and not runs[case].exists()
    assert sorted(p.name for p in (root / "v" / "models" / "S5").iterdir()) == ["seed0"]  # nothing set aside left


@pytest.mark.slow
def test_a_rerun_finishes_only_what_is_missing(local_sweep):
    # Last: it changes the module's sweep. An interruption left frames-60 without its report and its S5 run
    # half-written; the other variants finished and are reused as they are.
    sweep, _ = local_sweep
    before = pd.read_csv(sweep.tables / "table_s61_scores.csv")
    frames = sweep.variant("frames-60")
    (frames.root / "report.html").unlink()
    checkpoint = RunFolder(frames.root).checkpoint("S5", 0)
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    base_report = sweep.variant("base").root / "report.html"
    stamp = base_report.stat().st_mtime_ns
    state = run_sweep(load_sweep(SMOKE_SWEEP, sweep.root))
    assert {n: e["status"] for n, e in state["variants"].items()} == {
        "base": "reused",
        "noise-0.2": "reused",
        "frames-60": "finished",
    }
    assert base_report.stat().st_mtime_ns == stamp  # nothing of a finished variant ran again
    assert run_problem(RunFolder(frames.root).run_dir("S5", 0)) is None and (frames.root / "report.html").is_file()
    pd.testing.assert_frame_equal(pd.read_csv(sweep.tables / "table_s61_scores.csv"), before)


def test_the_expected_cost_counts_clips_and_epochs_from_the_configuration(tmp_path):
    bench = {"device_name": "test", "train_s_per_epoch": 2.0, "extract_clips_per_s_wav2vec2": 100.0}
    cost = expected_cost(load_sweep(REPO / "parameters" / "sweeps" / "encoders.yaml", tmp_path / "out"), bench)
    # By hand, per variant: S2 and S5 x 3 seeds x 80 epochs = 480, and two lr grids (scope: system) of 3 lrs x 2
    # weight decays x 20 epochs = 240; three variants, three encoders (each its own feature set).
    assert cost["epochs_at_most"] == 3 * (480 + 240) and cost["training_s_at_most"] == 2.0 * 2160
    assert cost["feature_sets"] == 3 and cost["extraction_s"] == pytest.approx(3 * cost["clips"] / 100.0)
    assert cost["clips"] == 8952 and cost["wav2vec2_cache_gb"] == pytest.approx(3 * 1.8437, rel=1e-3)
