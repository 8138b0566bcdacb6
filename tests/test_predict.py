"""serlib predict / export (issue 13) on the session's smoke run: files, folders, lists and arrays,
windows of long clips, bad files as rows, the run's own test clips, the bundle round trip, ONNX parity."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from serlib.inference import onnxform
from serlib.inference.audiofiles import gather_audio
from serlib.inference.bundle import export_bundle
from serlib.inference.bundleformat import BUNDLE_FILE, BundleError
from serlib.inference.predict import Predictor
from serlib.tools.cli import main

PROBS = ["prob_negative", "prob_sad_fear", "prob_pos_neutral"]


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory):
    """A stereo 44.1 kHz file, a 20 s file (in a sub-folder), a 0.5 s file and a broken one."""
    root = tmp_path_factory.mktemp("user-audio")
    rng = np.random.default_rng(0)
    t = np.arange(int(44100 * 1.5)) / 44100
    sf.write(
        root / "stereo44k.wav",
        np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 310 * t)], 1).astype("float32"),
        44100,
    )
    (root / "sub").mkdir()
    sf.write(root / "sub" / "long20s.flac", (0.1 * rng.standard_normal(16000 * 20)).astype("float32"), 16000)
    sf.write(root / "short.wav", (0.1 * rng.standard_normal(8000)).astype("float32"), 16000)
    (root / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    (root / "notes.txt.bak").write_text("not audio")  # not an audio suffix: never listed
    return root


@pytest.fixture(scope="module")
def predictor(smoke_run):
    return Predictor.from_run(smoke_run.root, system="S5", device="cpu")


def _run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_folder_is_scored_file_by_file_and_a_broken_file_is_a_row(smoke_run, audio_folder, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    code, _, err = _run_cli(
        ["predict", str(smoke_run.root), "--system", "S5", str(audio_folder), "--out", str(out)], capsys
    )
    assert code == 1  # one file failed, the others were scored
    table = pd.read_csv(out, keep_default_na=False)
    assert [p.split("/")[-1] for p in table["path"]] == ["broken.wav", "short.wav", "stereo44k.wav", "long20s.flac"]
    rows = table.set_index(table["path"].str.split("/").str[-1])
    assert "broken.wav" in str(rows.at["broken.wav", "path"]) and rows.at["broken.wav", "error"] != ""
    scored = rows.drop(index="broken.wav")
    assert (scored["error"] == "").all()
    probs = scored[PROBS].astype(float).to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert list(scored["pred"]) == [PROBS[i][5:] for i in probs.argmax(1)]
    assert float(rows.at["stereo44k.wav", "duration_s"]) == pytest.approx(1.5, abs=1e-3)  # resampled, not cut
    assert float(rows.at["short.wav", "duration_s"]) == pytest.approx(0.5, abs=1e-3)
    assert int(rows.at["short.wav", "windows"]) == 1 and int(rows.at["stereo44k.wav", "windows"]) == 1
    assert "3 file(s) scored, 1 failed" in err and str(out) in err


def test_a_long_clip_is_scored_in_windows_whose_times_cover_it(predictor, audio_folder):
    window, rate = predictor.window_samples, predictor.features.sample_rate
    table = predictor.predict([audio_folder / "sub" / "long20s.flac"], per_window=True, progress=False)
    starts = np.round(table["start_s"].to_numpy() * rate).astype(int)
    ends = np.round(table["end_s"].to_numpy() * rate).astype(int)
    assert starts[0] == 0 and ends[-1] == 20 * rate  # the last window ends at the clip's end
    assert (ends - starts == window).all()
    assert (np.diff(starts)[:-1] == window // 2).all()  # the default hop: half a window
    assert list(table["window"]) == list(range(len(table)))
    whole = predictor.predict([audio_folder / "sub" / "long20s.flac"], progress=False)
    assert int(whole.at[0, "windows"]) == len(table)
    np.testing.assert_allclose(whole[PROBS].to_numpy()[0], table[PROBS].to_numpy().mean(0), atol=1e-6)
    hop = predictor.predict([audio_folder / "sub" / "long20s.flac"], per_window=True, hop_s=1.0, progress=False)
    assert np.diff(np.round(hop["start_s"].to_numpy() * rate))[0] == rate


def test_the_api_and_the_cli_give_the_same_probabilities(smoke_run, predictor, audio_folder, tmp_path, capsys):
    out = tmp_path / "preds.jsonl"
    code, _, _ = _run_cli(
        [
            "predict",
            str(smoke_run.root),
            "--system",
            "S5",
            str(audio_folder / "stereo44k.wav"),
            str(audio_folder / "short.wav"),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0
    meta = json.loads((tmp_path / "preds.jsonl.meta.json").read_text())["metadata"]  # the sidecar
    assert meta["model_id"] == predictor.model_id and "RANDOM weights" in meta["encoder"]
    cli = pd.read_json(out, lines=True)  # rows only: no metadata object among them
    api = predictor.predict([audio_folder / "stereo44k.wav", audio_folder / "short.wav"], progress=False)
    assert list(cli.columns) == list(api.columns) and len(cli) == 2
    np.testing.assert_allclose(
        cli[PROBS].to_numpy(), api[PROBS].to_numpy(), rtol=0, atol=1e-9
    )  # JSON rounds the last digit
    assert api.attrs["metadata"]["system"] == "S5"


def test_csv_and_jsonl_read_back_to_the_same_rows_with_the_weights_and_a_sidecar(
    smoke_run, audio_folder, tmp_path, capsys
):
    """Issue 25: pandas reads either file to the same frame (rows only; the metadata is in OUT.meta.json),
    and every row says whether the encoder's weights were pretrained or random."""
    frames = {}
    for suffix in (".csv", ".jsonl"):
        out = tmp_path / f"preds{suffix}"
        code, _, err = _run_cli(
            ["predict", str(smoke_run.root), "--system", "S5", str(audio_folder), "--out", str(out)], capsys
        )
        assert code == 1 and f"preds{suffix}.meta.json" in err  # broken.wav failed; the others were scored
        frames[suffix] = pd.read_csv(out) if suffix == ".csv" else pd.read_json(out, lines=True)
        sidecar = json.loads((tmp_path / f"preds{suffix}.meta.json").read_text())
        assert sidecar["rows_file"] == out.name and sidecar["rows"] == 4
        assert sidecar["columns"] == list(frames[suffix].columns)
        assert sidecar["metadata"]["weights"] == "random" and sidecar["metadata"]["system"] == "S5"
    pd.testing.assert_frame_equal(frames[".csv"], frames[".jsonl"])
    table = frames[".csv"]
    assert list(table.columns) == Predictor.columns()
    assert (table["weights"] == "random").all()  # the smoke encoder's random weights, on every row
    assert table["path"].str.endswith("broken.wav").sum() == 1
    assert table["error"].notna().sum() == 1 and table["pred"].notna().sum() == 3
    code, _, _ = _run_cli(
        [
            "predict",
            str(smoke_run.root),
            "--system",
            "S1",
            str(audio_folder / "short.wav"),
            "--out",
            str(tmp_path / "s1.csv"),
        ],
        capsys,
    )
    assert code == 0 and pd.read_csv(tmp_path / "s1.csv")["weights"].tolist() == ["n/a (log-Mel)"]


def test_an_array_scores_as_its_file(predictor, audio_folder):
    data, rate = sf.read(audio_folder / "stereo44k.wav", dtype="float32", always_2d=True)  # (samples, 2) at 44.1 kHz
    from_file = predictor.predict(audio_folder / "stereo44k.wav", progress=False)
    from_array = predictor.predict([data], sample_rate=rate, progress=False)
    np.testing.assert_allclose(from_array[PROBS].to_numpy(), from_file[PROBS].to_numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="sample_rate"):
        predictor.predict([data])


@pytest.mark.parametrize("system", ["S5", "S1", "S5-best", "S6"])
def test_the_runs_own_test_clips_get_their_saved_predictions_back(smoke_run, system):
    saved = pd.read_csv(smoke_run.predictions(system, 0, "test"))
    manifest = pd.read_csv(smoke_run.manifest, dtype=str)[["utt_id", "path"]]
    clips = saved.merge(manifest, on="utt_id", validate="one_to_one")
    again = Predictor.from_run(smoke_run.root, system=system, device="cpu").predict(
        clips["path"].tolist(), long="centre", progress=False
    )
    np.testing.assert_allclose(again[PROBS].to_numpy(), clips[PROBS].to_numpy(), atol=1e-4)
    assert list(again["pred"]) == list(clips["pred"])


def test_gather_audio_reads_folders_lists_and_names_what_is_missing(audio_folder, tmp_path):
    listing = tmp_path / "clips.txt"
    shutil.copy(audio_folder / "short.wav", tmp_path / "short.wav")
    listing.write_text("# my clips\nshort.wav\n\nmissing.wav\n")
    found = gather_audio([listing, audio_folder / "sub", tmp_path / "nowhere.wav"])
    assert found[0] == (str(tmp_path / "short.wav"), None)
    assert found[1][0] == str(tmp_path / "missing.wav") and "not found" in found[1][1]
    assert found[2] == (str(audio_folder / "sub" / "long20s.flac"), None)
    assert found[3][1] == "not found"


def test_usage_errors_exit_2_with_one_line(smoke_run, audio_folder, tmp_path, capsys):
    code, _, err = _run_cli(
        ["predict", str(smoke_run.root), str(audio_folder), "--out", str(tmp_path / "x.xlsx")], capsys
    )
    assert code == 2 and "x.xlsx" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run_cli(["predict", str(tmp_path / "no-run"), str(audio_folder)], capsys)
    assert code == 2 and "not a run folder" in err
    code, _, err = _run_cli(["predict", str(smoke_run.root), "--system", "S99", str(audio_folder)], capsys)
    assert code == 2 and "S99" in err and "trained:" in err


def test_the_bundle_travels_and_predicts_as_the_run(smoke_run, predictor, audio_folder, tmp_path, capsys):
    code, out, _ = _run_cli(
        ["export", str(smoke_run.root), "--system", "S5", "--onnx", "--out", str(tmp_path / "bundle")], capsys
    )
    assert code == 0 and "ONNX parity" in out
    moved = tmp_path / "elsewhere" / "my-model"
    moved.parent.mkdir()
    shutil.move(tmp_path / "bundle", moved)
    assert sorted(p.name for p in moved.iterdir()) == [
        ".serlib-bundle",
        "README.md",
        BUNDLE_FILE,
        "checkpoint.pt",
        "head.onnx",
        "metrics.json",
        "model-int8.onnx",
        "model.onnx",
        "parity.json",
        "predict.py",
    ]
    loaded = Predictor.from_bundle(moved, device="cpu")
    files = [audio_folder / "stereo44k.wav", audio_folder / "sub" / "long20s.flac"]
    np.testing.assert_array_equal(
        loaded.predict(files, progress=False)[PROBS].to_numpy(),
        predictor.predict(files, progress=False)[PROBS].to_numpy(),
    )
    assert loaded.model_id == predictor.model_id
    parity = json.loads((moved / "parity.json").read_text())["head.onnx"]
    assert parity["max_abs_prob_diff"] < 1e-4 and parity["class_agreement"] == 1.0
    assert parity["clips"] == len(pd.read_csv(smoke_run.predictions("S5", 0, "test")))
    metrics = json.loads((moved / "metrics.json").read_text())
    assert 0 <= metrics["test"]["uar_lo"] <= metrics["test"]["uar"] <= metrics["test"]["uar_hi"] <= 1
    card = (moved / "README.md").read_text()
    for needed in (
        "Demo model",
        "random weights",
        "sad_fear",
        "sadness, fear",
        "CC BY-NC-SA 4.0",
        "Open Database License",
        "UAR",
        "head.onnx",
    ):
        assert needed in card, needed
    code, _, err = _run_cli(["predict", str(moved), str(audio_folder / "short.wav")], capsys)
    assert code == 0 and "1 file(s) scored" in err


def test_a_bundle_of_another_format_says_what_to_do(smoke_run, tmp_path):
    export_bundle(smoke_run.root, tmp_path / "b", system="S1")
    meta = json.loads((tmp_path / "b" / BUNDLE_FILE).read_text())
    (tmp_path / "b" / BUNDLE_FILE).write_text(json.dumps(meta | {"format_version": 99}))
    with pytest.raises(BundleError, match="format 99.*export the bundle again"):
        Predictor.from_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match="not a serlib model bundle"):
        Predictor.from_bundle(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a serlib bundle"):
        export_bundle(smoke_run.root, tmp_path / "other", system="S1")
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


def test_onnx_parity_on_a_masked_head(smoke_run, tmp_path):
    """A masked network keeps its lengths input in the graph and agrees with torch on padded clips."""
    import torch

    from serlib.common.config import ModelConfig
    from serlib.modelling.models import build_model
    from serlib.modelling.train import predict_proba

    torch.manual_seed(0)
    model = build_model(ModelConfig(width_scale=0.05, mask_padding=True), 32).eval()
    path = onnxform.export_onnx(model, 32, 100, tmp_path / "masked.onnx")
    sess = onnxform.session(path)
    assert [i.name for i in sess.get_inputs()] == [onnxform.INPUT, onnxform.LENGTHS]
    x, lengths = torch.randn(6, 32, 80), torch.tensor([80, 10, 33, 79, 1, 50])  # another frame count than exported
    x = x * (torch.arange(80) < lengths[:, None])[:, None, :]
    reference = predict_proba(model, x, lengths=lengths).numpy()
    got = onnxform.onnx_proba(sess, x, lengths)
    assert onnxform.parity(reference, got)["max_abs_prob_diff"] < 1e-4


def test_onnx_parity_of_a_learned_layer_sum(smoke_run, tmp_path):
    """S6's head takes (batch, layers, channels, frames) in the exported graph and agrees with torch."""
    import torch

    from serlib.modelling.train import load_checkpoint, predict_proba

    model = load_checkpoint(smoke_run.checkpoint("S6", 0))
    path = onnxform.export_onnx(model, 32, 100, tmp_path / "s6.onnx")
    torch.manual_seed(0)
    x, lengths = torch.randn(4, 3, 32, 100), torch.tensor([100, 20, 64, 99])
    reference = predict_proba(model, x, lengths=lengths).numpy()
    got = onnxform.onnx_proba(onnxform.session(path), x, lengths)
    assert onnxform.parity(reference, got)["max_abs_prob_diff"] < 1e-4
