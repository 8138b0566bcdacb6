"""Issue 21, case by case: nothing serlib loads runs code, nothing it writes escapes its folder, nothing a
person made is deleted, and every expected failure is one line (exit 2).

Each test names its case (1-13, and "one line" for the tracebacks list). They use tiny WAVs and folders
written here and the session's smoke run; none trains a new run except the interrupted-retrain test (one
smoke system, two epochs). Symbols that main lacks are imported inside the tests that need them.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from serlib.common.config import ConfigError, load_config
from serlib.inference.audiofiles import gather_audio
from serlib.inference.bundleformat import BUNDLE_FILE, BundleError
from serlib.inference.predict import Predictor
from serlib.tools.cli import main

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "parameters" / "smoke.yaml"


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    """The stderr of a failed command: exactly one line, no traceback; returns it."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def tone(path: Path, seconds: float = 0.5, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype("float32"), rate)
    return path


def wav_with_rate(path: Path, rate: int, frames: int) -> Path:
    """A 16-bit PCM WAV whose header states ``rate`` (soundfile refuses to write odd rates itself)."""
    size = frames * 2
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + size, b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16, b"data", size
    )
    samples = (1000 * np.sin(np.arange(frames) / 7)).astype("<i2").tobytes()
    path.write_bytes(header + samples)
    return path


@pytest.fixture(scope="module")
def s1_bundle(smoke_run, tmp_path_factory):
    """The smoke run's S1 exported once; tests copy it before changing it."""
    from serlib.inference.bundle import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "s1"
    export_bundle(smoke_run.root, out, system="S1")
    return out


@pytest.fixture
def bundle_copy(s1_bundle, tmp_path):
    shutil.copytree(s1_bundle, tmp_path / "bundle")
    return tmp_path / "bundle"


# --------------------------------------------------------------------------- 1. loading never runs code


class _Evil:
    """Unpickling this creates a marker file: what a hostile checkpoint would do (run any code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_checkpoint(path: Path, marker: Path) -> Path:
    torch.save(
        {
            "state_dict": {},
            "model": {},
            "in_channels": 32,
            "frames": 100,
            "input": "wav2vec2",
            "key": "0" * 16,
            "payload": _Evil(marker),
        },
        path,
    )
    return path


def test_1_a_malicious_checkpoint_never_runs_and_is_one_line(tmp_path, capsys):
    from serlib.modelling.train import load_checkpoint

    marker = tmp_path / "pwned"
    path = evil_checkpoint(tmp_path / "checkpoint.pt", marker)
    with pytest.raises(Exception) as err:
        load_checkpoint(path)
    assert not marker.exists()  # the pickle's code never ran
    assert isinstance(err.value, ValueError) and len(str(err.value).splitlines()) == 1
    assert str(path) in str(err.value) and "never runs code" in str(err.value)


def test_1_predict_on_a_bundle_with_a_malicious_checkpoint_runs_nothing(bundle_copy, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil_checkpoint(bundle_copy / "checkpoint.pt", marker)
    code, _, err = run_cli(["predict", str(bundle_copy), str(tone(tmp_path / "x.wav"))], capsys)
    assert code == 2 and not marker.exists()
    assert "checkpoint.pt" in one_line_error(err)


def test_1_a_run_folders_checkpoints_load_as_data_only(smoke_copy, tmp_path):
    from serlib.analysis.layerstats import layer_weights

    marker = tmp_path / "pwned"
    evil_checkpoint(smoke_copy.checkpoint("S5", 0), marker)
    evil_checkpoint(smoke_copy.checkpoint("S6", 0), marker)
    with pytest.raises(ValueError, match="checkpoint.pt"):
        Predictor.from_run(smoke_copy.root, system="S5", device="cpu")
    with pytest.raises(ValueError, match="checkpoint.pt"):
        layer_weights(load_config(SMOKE), smoke_copy)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../outside.pt", "/etc/passwd", "sub/checkpoint.pt", "..", "link.pt"])
def test_1_bundle_json_names_files_inside_the_bundle_only(bundle_copy, tmp_path, name):
    shutil.copy(bundle_copy / "checkpoint.pt", tmp_path / "outside.pt")
    (bundle_copy / "link.pt").symlink_to(tmp_path / "outside.pt")  # a name inside that leads out
    (bundle_copy / "sub").mkdir()
    shutil.copy(bundle_copy / "checkpoint.pt", bundle_copy / "sub" / "checkpoint.pt")
    meta = json.loads((bundle_copy / BUNDLE_FILE).read_text())
    (bundle_copy / BUNDLE_FILE).write_text(json.dumps(meta | {"checkpoint": name}))
    with pytest.raises(BundleError, match="inside the bundle folder|leads out of the bundle folder"):
        Predictor.from_bundle(bundle_copy, device="cpu")


# --------------------------------------------------------------------------- 2 and 8. paths confined


@pytest.mark.parametrize("name", ["../../x", "/tmp/elsewhere", "..", ".", "a/b", "a\\b", ""])
def test_2_run_name_is_a_plain_name(tmp_path, name):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"run": {"name": name}}))
    with pytest.raises(ConfigError, match=r"'run\.name' must be a plain name"):
        load_config(path)


def test_2_a_run_named_dotdot_writes_nothing_and_exits_2(tmp_path, capsys):
    project = tmp_path / "project"
    (project / "parameters").mkdir(parents=True)
    (project / "notebooks").mkdir()
    shutil.copy(REPO / "notebooks" / "01_data.ipynb", project / "notebooks")  # the project's source notebook
    source = (project / "notebooks" / "01_data.ipynb").read_bytes()
    raw = yaml.safe_load(SMOKE.read_text())
    raw["run"]["name"] = ".."
    raw["data"]["demo"]["root"] = str(REPO / "data" / "smoke-corpus")
    (project / "parameters" / "p.yaml").write_text(yaml.safe_dump(raw))
    code, _, err = run_cli(["run", str(project / "parameters" / "p.yaml"), "--only", "01_data"], capsys)
    assert (project / "notebooks" / "01_data.ipynb").read_bytes() == source  # never overwritten
    assert sorted(p.name for p in project.iterdir()) == ["notebooks", "parameters"]  # no tables/, figures/...
    assert code == 2 and "run.name" in one_line_error(err)


def test_2_out_is_never_at_above_or_inside_the_projects_own_folders(tmp_path, capsys):
    project = tmp_path / "project"
    for name in ("parameters", "notebooks", "serlib"):
        (project / name).mkdir(parents=True)
    raw = yaml.safe_load(SMOKE.read_text())
    raw["data"]["demo"]["root"] = str(REPO / "data" / "smoke-corpus")
    params = project / "parameters" / "p.yaml"
    params.write_text(yaml.safe_dump(raw))
    code, _, err = run_cli(["features", str(params), "--out", str(project)], capsys)
    assert sorted(p.name for p in project.iterdir()) == ["notebooks", "parameters", "serlib"]  # nothing written
    assert code == 2 and "notebooks/" in one_line_error(err)
    from serlib.common.runfolder import out_folder

    cfg = load_config(params)
    for out in (project, project / "notebooks", tmp_path, project / "serlib" / "run", REPO, REPO / "parameters"):
        with pytest.raises(ConfigError, match="project's"):
            out_folder(out, cfg)
    assert out_folder(project / "reports" / "mine", cfg) == (project / "reports" / "mine").resolve()


def test_8_a_profile_without_run_name_takes_its_files_stem(tmp_path):
    from serlib.common.runfolder import default_run_root

    (tmp_path / "parameters").mkdir()
    path = tmp_path / "parameters" / "my-experiment.yaml"
    path.write_text("train: {seeds: [1]}\n")
    cfg = load_config(path)
    assert cfg.run.name == "my-experiment"
    assert default_run_root(cfg) == tmp_path / "reports" / "my-experiment"
    spaced = tmp_path / "my experiment.yaml"
    spaced.write_text("train: {seeds: [1]}\n")
    with pytest.raises(ConfigError, match=r"run\.name.*set it"):
        load_config(spaced)


# --------------------------------------------------------------------------- 3. bounded inputs


def _alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_3_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(7))  # 9^7 = 4.8 million values once expanded
    with pytest.raises(ConfigError, match="aliases"):
        load_config(path)
    path.write_text("run: &r {title: x, notebooks: [*r]}\n")  # an alias inside the value it names
    with pytest.raises(ConfigError, match="contains it"):
        load_config(path)
    path.write_text("base: &b {lr: 1.0e-3}\ntrain: *b\n")  # ordinary aliases still work (unknown key: 'base')
    with pytest.raises(ConfigError, match="unknown key 'base'"):
        load_config(path)


def test_3_resampling_memory_does_not_grow_with_an_odd_rate(tmp_path):
    from serlib.common import audio

    for rate in (16001, 44099, 12345, 767_999, 1001):  # each would need a filter bank of ~rate phases
        orig, new = audio.resample_ratio(rate, 16000)
        assert max(orig, new) <= audio.MAX_RATIO_TERM and abs(new / orig * rate / 16000 - 1) < 1e-3
    wave = audio.load_audio(wav_with_rate(tmp_path / "odd.wav", 16001, 1600))  # 0.1 s
    assert abs(len(wave) - 1600) <= 1 and np.isfinite(wave).all()
    assert len(wave) == audio.probe_samples(tmp_path / "odd.wav")
    for rate in (8000, 22050, 44100, 48000):  # common rates: exactly torchaudio's own result, as before
        sf.write(tmp_path / f"r{rate}.wav", np.sin(np.arange(rate // 10) / 5).astype("float32"), rate)
        direct = (
            __import__("torchaudio")
            .functional.resample(torch.from_numpy(sf.read(tmp_path / f"r{rate}.wav", dtype="float32")[0]), rate, 16000)
            .numpy()
        )
        np.testing.assert_array_equal(audio.load_audio(tmp_path / f"r{rate}.wav"), direct)


@pytest.mark.parametrize("rate", [10, 3_000_000])
def test_3_an_absurd_header_rate_is_an_error_row(smoke_run, tmp_path, rate):
    path = wav_with_rate(tmp_path / f"rate{rate}.wav", rate, 4000)
    table = Predictor.from_run(smoke_run.root, system="S1", device="cpu").predict([path], progress=False)
    assert "sample rate" in table.at[0, "error"] and str(rate) in table.at[0, "error"]


@pytest.mark.parametrize(
    "text, key",
    [
        ("features: {frames: 99999999999}\n", "features.frames"),
        ("train: {seeds: [0, 4294967296]}\n", r"train.seeds\[1\]"),
        ("run: {seed: 4294967296}\n", "run.seed"),
        ("data: {split_seed: 99999999999}\n", "data.split_seed"),
        ("train: {batch_size: 100000000}\n", "train.batch_size"),
        ("train: {eval_batch_size: 100000000}\n", "train.eval_batch_size"),
        ("features: {wav2vec2: {batch_size: 100000000}}\n", "features.wav2vec2.batch_size"),
        ("train: {max_epochs: 1000000000}\n", "train.max_epochs"),
        ("analysis: {bootstrap_resamples: 1000000000}\n", "analysis.bootstrap_resamples"),
    ],
)
def test_3_config_upper_bounds_are_checked_at_load(tmp_path, text, key):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(path)


def test_3_a_system_name_is_a_plain_name(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text('systems: {"../../x": {input: logmel}}\n')
    with pytest.raises(ConfigError, match="plain name"):
        load_config(path)


# --------------------------------------------------------------------------- 4 and 5. writes that cannot destroy


def test_4_export_never_deletes_a_folder_serlib_did_not_write(smoke_run, s1_bundle, tmp_path):
    from serlib.inference.bundle import export_bundle

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / BUNDLE_FILE).write_text("{}")  # looks like a bundle, but serlib did not write it
    (mine / "thesis.tex").write_text("my work")
    with pytest.raises(FileExistsError, match="not a serlib bundle"):
        export_bundle(smoke_run.root, mine, system="S1")
    assert (mine / "thesis.tex").read_text() == "my work"
    added = tmp_path / "added"
    shutil.copytree(s1_bundle, added)
    (added / "notes.txt").write_text("mine too")  # a serlib bundle a person added a file to
    with pytest.raises(FileExistsError, match="notes.txt"):
        export_bundle(smoke_run.root, added, system="S1")
    assert (added / "notes.txt").read_text() == "mine too"


def test_4_export_swaps_the_new_bundle_in_and_keeps_the_old_until_then(smoke_run, s1_bundle, tmp_path, monkeypatch):
    from serlib.inference import bundle

    out = tmp_path / "b"
    shutil.copytree(s1_bundle, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_rename = os.rename
    calls = []

    def crash_on_the_swap(src, dst, *args, **kwargs):  # a kill as the new bundle is moved in
        calls.append(Path(dst))
        if Path(dst) == out and len([c for c in calls if c == out]) == 1:
            raise OSError(errno.EIO, "simulated crash", str(dst))
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", crash_on_the_swap)
    with pytest.raises(OSError, match="simulated crash"):
        bundle.export_bundle(smoke_run.root, out, system="S1")
    monkeypatch.setattr(os, "rename", real_rename)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old bundle, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temporary folder left
    done = bundle.export_bundle(smoke_run.root, out, system="S5")  # a serlib bundle is replaced
    marker = json.loads((out / ".serlib-bundle").read_text())
    assert sorted(marker["files"]) == sorted(p.name for p in out.iterdir() if p.name != ".serlib-bundle")
    assert json.loads((out / BUNDLE_FILE).read_text())["system"] == "S5" and done["bundle"] == str(out)


def test_5_prune_works_only_in_a_cache_serlib_marked(tmp_path):
    from serlib.features import cache, shards

    folder = tmp_path / "not-a-cache"
    (folder / "wav2vec2-0123456789abcdef").mkdir(parents=True)
    (folder / ".draft.tmp").write_text("mine")
    (folder / ".photos.deleting").mkdir()
    with pytest.raises(ConfigError, match="not a serlib feature cache"):
        cache.prune_cache(folder, [SMOKE], delete=True)
    assert (folder / ".draft.tmp").exists() and (folder / ".photos.deleting").is_dir()
    assert (folder / "wav2vec2-0123456789abcdef").is_dir()
    marked = tmp_path / "cache"
    marked.mkdir()
    shards.mark_cache(marked)
    (marked / ".notes.tmp").write_text("mine")  # dot-files of other programs: not serlib's temporaries
    (marked / ".holiday.deleting").mkdir()
    (marked / ".content_hashes.json.123.abcd1234.tmp").write_text("left by a crash")
    cache.prune_cache(marked, [SMOKE], delete=True)
    assert (marked / ".notes.tmp").exists() and (marked / ".holiday.deleting").is_dir()
    assert not (marked / ".content_hashes.json.123.abcd1234.tmp").exists()


def test_5_make_clean_reports_removes_only_what_serlib_wrote(tmp_path):
    written = (
        "report.html",
        "report.stale",
        "config.resolved.yaml",
        "timings.json",
        "progress.jsonl",
        "notebooks",
        "data",
        "models",
        "analysis",
        "tables",
        "figures",
    )  # what a run writes at its top level
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    run = tmp_path / "reports" / "demo"
    run.mkdir(parents=True)
    for name in written:
        (run / name).mkdir(parents=True) if "." not in name else (run / name).write_text("x")
    (run / "models" / "S5").mkdir()
    (run / "listening").mkdir()
    (run / "listening" / "annotations.csv").write_text("utt_id\n")
    (run / "listening" / "my-summary.docx").write_text("mine")
    (run / "my-notes.txt").write_text("mine")
    done = subprocess.run(["make", "-s", "clean-reports"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == [
        "listening",
        "listening/annotations.csv",
        "listening/my-summary.docx",
        "my-notes.txt",
    ]
    from serlib.common.runfolder import RECOMPUTABLE

    make = (REPO / "Makefile").read_text()
    listed = make.split("clean-reports:", 1)[1].split("for name in", 1)[1].split(";", 1)[0].split()
    assert sorted(listed) == sorted(RECOMPUTABLE) == sorted(written)  # the Makefile's list is the run folder's


# --------------------------------------------------------------------------- 6. annotations survive a spreadsheet


def _annotations(path: Path) -> list[str]:
    from serlib.analysis import annotations as ls

    rows = []
    for i, note in enumerate(["", "flat, then rising", "café au lait", 'said "no"', "breathy"]):
        a = ls.Annotation(f"EmoDB/c{i:02d}", "ana", "negative", "sad_fear")
        when = ls._parse_time(f"2024-05-01T12:00:0{i}Z", "t")
        a.values |= {"hybrid_prosody": i % 2, "other": 1 - i % 2, "note": note}
        a.times |= {"hybrid_prosody": when, "other": when, "note": when if note else ls.NEVER}
        rows.append(a)
    path.write_text(ls.annotations_csv(rows), encoding="utf-8")
    return path.read_text().splitlines()


def _pandas_floats(path):
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for tag in ("hybrid_prosody", "ambiguous_arousal", "label_doubtful", "other", "reviewed"):
        df[tag] = df[tag].astype(float)
    df.to_csv(path)  # with pandas' index column


def _semicolons_bom(path):
    pd.read_csv(path, dtype=str, keep_default_na=False).to_csv(path, sep=";", index=False, encoding="utf-8-sig")


def _utf16_tabs(path):
    pd.read_csv(path, dtype=str, keep_default_na=False).to_csv(path, sep="\t", index=False, encoding="utf-16")


def _header_case(path):
    lines = path.read_text().splitlines()
    header = ",".join(" " + c.replace("_", " ").title() + " " for c in lines[0].split(","))
    path.write_text("\n".join([header, *lines[1:]]) + "\n")


def _true_yes(path):
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df["hybrid_prosody"] = df["hybrid_prosody"].map({"1": "True", "0": "False"})
    df["other"] = df["other"].map({"1": "yes", "0": "no"})
    df.to_csv(path, index=False)


def _latin1_note(path):
    path.write_bytes(path.read_bytes().replace("café".encode(), b"caf\xe9"))


def _spreadsheet_times(path):
    path.write_text(path.read_text().replace("T12:00:0", " 12:00:0").replace(".000000Z", ""))


@pytest.mark.parametrize(
    "resave", [_pandas_floats, _semicolons_bom, _utf16_tabs, _header_case, _true_yes, _latin1_note, _spreadsheet_times]
)
def test_6_annotations_resaved_by_a_spreadsheet_are_read_whole(tmp_path, resave):
    from serlib.analysis import annotations as ls

    path = tmp_path / "annotations.csv"
    _annotations(path)
    expected = ls.AnnotationStore(path, "ana").frame()
    resave(path)
    store = ls.AnnotationStore(path, "ana")
    got = store.frame()
    columns = ["utt_id", "annotator", "label", "pred", "hybrid_prosody", "other", "reviewed", "note", "note_utc"]
    pd.testing.assert_frame_equal(got[columns], expected[columns])
    store.update({"utt_id": "EmoDB/c09", "label": "negative", "pred": "sad_fear"}, {"other": 1})
    saved = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert set(saved["utt_id"]) == {f"EmoDB/c{i:02d}" for i in (0, 1, 2, 3, 4, 9)}  # nothing dropped
    assert saved.set_index("utt_id").at["EmoDB/c02", "note"] == "café au lait"


def test_6_a_file_without_a_readable_header_is_never_written_over(tmp_path):
    from serlib.analysis import annotations as ls

    path = tmp_path / "annotations.csv"
    path.write_text("clip;what I heard\nc01;angry but quiet\n")
    before = path.read_bytes()
    with pytest.warns(UserWarning, match="no header row"):
        store = ls.AnnotationStore(path, "ana")
    with pytest.raises(OSError, match="nothing was saved"):
        store.update({"utt_id": "EmoDB/c01", "label": "negative", "pred": "sad_fear"}, {"note": "x"})
    assert path.read_bytes() == before


def test_6_the_station_shows_a_failed_save_and_saves_the_edit_later(tmp_path, monkeypatch):
    from test_confusion import make_fabricated_run

    from serlib.analysis import annotations, evaluation
    from serlib.analysis import listening as ls
    from serlib.report.station import ListeningStation

    cfg = load_config(SMOKE)
    folder = make_fabricated_run(tmp_path / "run", per_class=4)
    clips = ls.select_misclassified(evaluation.primary_predictions(cfg, folder), n=3, seed=0)
    station = ListeningStation(cfg, folder, clips, plots=False)
    real = annotations.write_text_atomic

    def disk_full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(annotations, "write_text_atomic", disk_full)
    station.set_tags(["other"])
    assert "NOT saved" in station.status.value and "No space left on device" in station.status.value
    monkeypatch.setattr(annotations, "write_text_atomic", real)
    station.set_note("heard twice")
    row = pd.read_csv(folder.annotations, keep_default_na=False).iloc[0]
    assert (row["other"], row["note"]) == (1, "heard twice")  # the failed edit went with the next save
    assert "saved" in station.status.value and "NOT" not in station.status.value


# --------------------------------------------------------------------------- 7, 9, 13. predict tells the truth


@pytest.fixture
def hostile_folder(tmp_path):
    """Good clips, a non-UTF-8 name, NaN and inf audio, symbolic link loops, a broken link."""
    root = tmp_path / "clips"
    tone(root / "good.wav")
    tone(root / "sub" / "deeper.wav")
    shutil.copy(root / "good.wav", os.fsdecode(bytes(root / "caf") + b"\xe9.wav"))
    wave = 0.1 * np.ones(8000, dtype="float32")
    for name, value in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        bad = wave.copy()
        bad[100] = value
        sf.write(root / name, bad, 16000, subtype="FLOAT")
    (root / "self.wav").symlink_to(root / "self.wav")  # a link to itself
    (root / "sub" / "up").symlink_to(root)  # a folder link back to its ancestor
    (root / "gone.wav").symlink_to(root / "missing.wav")
    return root


def test_7_9_13_every_input_is_one_row_with_the_truth(smoke_run, hostile_folder, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    code, _, err = run_cli(
        ["predict", str(smoke_run.root), "--system", "S1", str(hostile_folder), "--out", str(out)], capsys
    )
    assert code == 1 and out.is_file()  # some rows failed; the others were written
    table = pd.read_csv(out, keep_default_na=False).set_index("path")
    root = str(hostile_folder)
    errors = {Path(p).name if not p.endswith("up") else "up": e for p, e in table["error"].items()}
    assert errors["good.wav"] == "" and errors["deeper.wav"] == ""
    assert "NaN or infinite" in errors["nan.wav"] and "NaN or infinite" in errors["inf.wav"]  # 9
    assert table.at[f"{root}/caf\\xe9.wav", "error"].startswith("the file name is not UTF-8")  # 7
    assert "link loop" in errors["self.wav"] and "link loop" in errors["up"]  # 13
    assert "does not exist" in errors["gone.wav"]
    assert len(table) == 8 and table.index.is_unique  # every input exactly once
    assert "2 file(s) scored, 6 failed" in err


def test_9_non_finite_arrays_are_an_error_row(smoke_run):
    predictor = Predictor.from_run(smoke_run.root, system="S1", device="cpu")
    table = predictor.predict([np.array([0.1, np.nan] * 4000, dtype="float32")], sample_rate=16000, progress=False)
    assert "NaN or infinite" in table.at[0, "error"] and table.at[0, "pred"] != table.at[0, "pred"]  # no class


def test_13_links_are_followed_once_and_loops_named(hostile_folder):
    found = dict(gather_audio([hostile_folder, hostile_folder / "good.wav"]))  # a file named twice: once
    assert found[str(hostile_folder / "good.wav")] is None and found[str(hostile_folder / "sub" / "deeper.wav")] is None
    assert "loop" in found[str(hostile_folder / "self.wav")]
    assert "loop" in found[str(hostile_folder / "sub" / "up")]
    assert len(found) == 8


def test_a_folder_in_a_list_is_expanded_like_a_folder_argument(tmp_path):
    tone(tmp_path / "clips" / "a" / "one.wav")
    tone(tmp_path / "clips" / "a" / "b" / "two.flac")
    tone(tmp_path / "clips" / "three.wav")
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{tmp_path / 'clips' / 'a'}\nclips/three.wav\nclips/nowhere\n")
    found = gather_audio([listing])
    assert found[:3] == [
        (str(tmp_path / "clips" / "a" / "b" / "two.flac"), None),
        (str(tmp_path / "clips" / "a" / "one.wav"), None),
        (str(tmp_path / "clips" / "three.wav"), None),
    ]
    assert found[3][0] == str(tmp_path / "clips" / "nowhere") and found[3][1] == f"not found (listed in {listing})"


# --------------------------------------------------------------------------- 10. model files agree


def test_10_a_checkpoint_and_a_config_from_two_trainings_are_refused(smoke_copy, tmp_path, capsys):
    path = smoke_copy.run_config("S5", 0)
    saved = json.loads(path.read_text())
    path.write_text(json.dumps(saved | {"key": "feedfacefeedface"}))  # a retrain killed between the two files
    with pytest.raises(ValueError, match="two trainings"):
        Predictor.from_run(smoke_copy.root, system="S5", device="cpu")
    code, _, err = run_cli(["predict", str(smoke_copy.root), "--system", "S5", str(tone(tmp_path / "x.wav"))], capsys)
    assert code == 2 and "two trainings" in one_line_error(err)


def test_10_an_edited_bundle_config_is_refused(bundle_copy):
    meta = json.loads((bundle_copy / BUNDLE_FILE).read_text())
    meta["features"]["wav2vec2"]["config_overrides"]["num_hidden_layers"] = 1
    (bundle_copy / BUNDLE_FILE).write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="num_hidden_layers|config_overrides"):
        Predictor.from_bundle(bundle_copy, device="cpu")


def test_10_an_encoder_of_another_width_than_the_weights_is_refused(bundle_copy):
    import dataclasses

    predictor = Predictor.from_bundle(bundle_copy, device="cpu")  # S1: log-Mel, 64 bands
    assert predictor.input == "logmel" and predictor.in_channels == 64
    predictor.features = dataclasses.replace(
        predictor.features, logmel=dataclasses.replace(predictor.features.logmel, n_mels=48)
    )  # an encoder that is not the one the weights learned from
    with pytest.raises(BundleError, match="gives 48 channels, but the classifier was trained on 64"):
        predictor.encoder


def test_10_a_run_is_written_as_one_unit(smoke_copy, monkeypatch, one_thread):
    """A retrain that fails while writing its files leaves the old run whole (and complete)."""
    from serlib.modelling import inputs, systems

    folder, cfg = smoke_copy, load_config(SMOKE)
    run_dir = folder.run_dir("S1", 0)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    data = inputs.system_data(cfg, folder, "S1", torch.device("cpu"))

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(systems.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        systems.train_run(cfg, folder, "S1", cfg.systems["S1"], data, 0, 1e-3, 1e-2, "feedfacefeedface", progress=False)
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != "history.live.csv"}
    assert after == {k: v for k, v in before.items() if k != "history.live.csv"}
    assert not list(run_dir.parent.glob(".seed0.*"))  # no staging folder left
    assert folder.run_complete("S1", 0, key=json.loads(before["config.json"])["key"])
    systems.train_run(cfg, folder, "S1", cfg.systems["S1"], data, 0, 1e-3, 1e-2, "feedfacefeedface", progress=False)
    assert folder.run_complete("S1", 0, key="feedfacefeedface") and not folder.run_complete("S1", 0, key="0" * 16)
    assert torch.load(folder.checkpoint("S1", 0), weights_only=True)["key"] == "feedfacefeedface"
    assert (run_dir / "history.live.csv").is_file()  # the epochs went with the run


# --------------------------------------------------------------------------- 11. the report reads the run's own config


def test_11_report_reads_the_runs_own_configuration(smoke_copy, tmp_path, capsys):
    resolved = yaml.safe_load(smoke_copy.resolved_config.read_text())
    other = tmp_path / "changed.yaml"
    other.write_text(yaml.safe_dump({"run": {"name": "smoke", "title": "A TITLE FROM ANOTHER FILE"}}))
    resolved["identity"]["parameters_file"] = str(other)
    smoke_copy.resolved_config.write_text(yaml.safe_dump(resolved, sort_keys=False))
    code, _, _ = run_cli(["report", str(smoke_copy.root)], capsys)
    assert code == 0
    html = smoke_copy.report.read_text()
    assert "A TITLE FROM ANOTHER FILE" not in html and resolved["config"]["run"]["title"] in html


# --------------------------------------------------------------------------- 12. caches that check themselves


def test_12_content_hash_memo_sees_audio_rewritten_with_the_same_size_and_mtime(tmp_path):
    from serlib.features import keys

    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"A" * 1000)
    first, _ = keys.content_hashes([str(clip)], tmp_path / "cache")
    st = clip.stat()
    clip.write_bytes(b"B" * 1000)  # same size
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    second, _ = keys.content_hashes([str(clip)], tmp_path / "cache")
    assert first != second and second[0] == keys._hash_file(str(clip))
    memo = tmp_path / "cache" / "content_hashes.json"  # an older memo entry: [size, mtime, hash], here stale
    memo.write_text(json.dumps({str(clip): [st.st_size, clip.stat().st_mtime_ns, "0" * 32]}))
    assert keys.content_hashes([str(clip)], tmp_path / "cache")[0] == second  # hashed again, not trusted


# --------------------------------------------------------------------------- one line for every expected failure


def test_one_line_disk_full_and_out_problems(smoke_run, s1_bundle, tmp_path, capsys, monkeypatch):
    from serlib.common import io

    clip = str(tone(tmp_path / "x.wav"))
    (tmp_path / "folder.csv").mkdir()
    code, _, err = run_cli(["predict", str(s1_bundle), clip, "--out", str(tmp_path / "folder.csv")], capsys)
    assert code == 2 and "is a folder" in one_line_error(err)
    code, _, err = run_cli(["predict", str(s1_bundle), clip, "--hop", "inf"], capsys)
    assert code == 2 and "--hop" in one_line_error(err)
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(["export", str(smoke_run.root), "--system", "S1", "--out", str(tmp_path / "afile")], capsys)
    assert code == 2 and "is a file" in one_line_error(err)

    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(io, "write_bytes_atomic", disk_full)  # every atomic write goes through it
    code, _, err = run_cli(["predict", str(s1_bundle), clip, "--out", str(tmp_path / "p.csv")], capsys)
    assert code == 2 and "No space left on device" in one_line_error(err) and "p.csv" in err
    code, _, err = run_cli(["-v", "predict", str(s1_bundle), clip, "--out", str(tmp_path / "p.csv")], capsys)
    assert code == 2 and "Traceback" in err  # -v shows where


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xffnot what it should be{[")


@pytest.mark.parametrize(
    "damaged", ["models/S5/seed0/checkpoint.pt", "config.resolved.yaml", "models/S5/seed0/config.json"]
)
def test_one_line_for_a_corrupt_run_file(smoke_copy, tmp_path, capsys, damaged):
    _garbage(smoke_copy.root / damaged)
    code, _, err = run_cli(["predict", str(smoke_copy.root), "--system", "S5", str(tone(tmp_path / "x.wav"))], capsys)
    assert code == 2 and Path(damaged).name in one_line_error(err)


def test_one_line_for_a_corrupt_bundle_json_and_timings(bundle_copy, smoke_copy, tmp_path, capsys):
    _garbage(bundle_copy / BUNDLE_FILE)
    code, _, err = run_cli(["predict", str(bundle_copy), str(tone(tmp_path / "x.wav"))], capsys)
    assert code == 2 and BUNDLE_FILE in one_line_error(err)
    _garbage(smoke_copy.timings)
    code, _, err = run_cli(["report", str(smoke_copy.root)], capsys)
    assert code == 2 and "timings.json" in one_line_error(err)


def test_predict_takes_a_folder_serlib_train_made(smoke_copy, tmp_path):
    smoke_copy.resolved_config.unlink()  # what `serlib train` leaves: models/ without config.resolved.yaml
    table = Predictor.from_run(smoke_copy.root, system="S1", device="cpu").predict(
        [tone(tmp_path / "x.wav")], progress=False
    )
    assert table.at[0, "error"] == "" and table.at[0, "model_id"].startswith("smoke:S1:seed0:")
