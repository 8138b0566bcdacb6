"""Issue 25: a bundle that runs anywhere. model.onnx (audio in, probabilities out) for every input and layer
selection, its int8 form, the torch-free predict.py, the model card, and `serlib bench --bundle`."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pandas as pd
import pytest
import soundfile as sf
import torch
from conftest import SMOKE
from sklearn.metrics import recall_score

from serlib.common.audio import resample
from serlib.common.config import FeaturesConfig, ModelConfig, load_config
from serlib.common.facts import CLASSES
from serlib.features.encoders import LogMelEncoder, Wav2Vec2Encoder, fit_frames
from serlib.inference import audiograph, standalone
from serlib.inference.bundle import export_bundle
from serlib.inference.bundleformat import INSTALL_LINE
from serlib.inference.predict import Predictor
from serlib.modelling.models import build_classifier
from serlib.tools import bundlebench
from serlib.tools.cli import main

PROBS = [f"prob_{c}" for c in CLASSES]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Stereo 44.1 kHz (fits the 2 s window), 48 kHz (several windows), 16 kHz FLAC of 7 s, 22.05 kHz short,
    a clip shorter than one frame, and a broken file."""
    root = tmp_path_factory.mktemp("bundle-clips")
    rng = np.random.default_rng(1)
    t = np.arange(int(44100 * 1.5)) / 44100
    sf.write(
        root / "a-stereo44k.wav",
        np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], 1).astype("float32"),
        44100,
    )
    sf.write(root / "b-48k.wav", (0.1 * rng.standard_normal(48000 * 5)).astype("float32"), 48000)
    sf.write(root / "c-long.flac", (0.1 * rng.standard_normal(16000 * 7)).astype("float32"), 16000)
    sf.write(root / "d-22k.wav", (0.1 * rng.standard_normal(22050 // 3)).astype("float32"), 22050)
    sf.write(root / "e-tiny.wav", (0.1 * rng.standard_normal(300)).astype("float32"), 16000)
    (root / "f-broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    return root


@pytest.fixture(scope="module")
def onnx_bundle(smoke_run, tmp_path_factory):
    """S5 of the smoke run exported with --onnx."""
    out = tmp_path_factory.mktemp("onnx-bundle") / "s5"
    export_bundle(smoke_run.root, out, system="S5", onnx=True)
    return out


# --------------------------------------------------------------------------- predict.py without torch


NO_TORCH = textwrap.dedent('''
    import sys
    class _Blocked:
        """predict.py must run where these packages are not installed."""
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchaudio", "transformers", "serlib", "pandas", "scipy"):
                raise ImportError(f"{name} is not installed here (test: predict.py runs without it)")
            return None
    sys.meta_path.insert(0, _Blocked())
''')


def _no_torch_env(tmp_path) -> dict:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(NO_TORCH)
    return {"PYTHONPATH": str(shim), "PYTHONNOUSERSITE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}


def _predict_py(bundle, args, env, cwd) -> pd.DataFrame:
    done = subprocess.run(
        [sys.executable, str(bundle / "predict.py"), *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr
    return pd.read_csv(io.StringIO(done.stdout))


def test_predict_py_runs_without_torch_and_gives_serlib_predicts_rows(onnx_bundle, clips, tmp_path):
    env = _no_torch_env(tmp_path)
    for blocked in ("torch", "serlib"):  # the shim works: neither can be imported in that process
        done = subprocess.run(
            [sys.executable, "-c", f"import {blocked}"], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode != 0 and "is not installed here" in done.stderr
    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(onnx_bundle, moved)
    ours = _predict_py(moved, [clips], env, tmp_path)
    assert list(ours.columns) == Predictor.columns() == standalone.COLUMNS
    assert [p.rsplit("/", 1)[-1] for p in ours["path"]] == [
        "a-stereo44k.wav",
        "b-48k.wav",
        "c-long.flac",
        "d-22k.wav",
        "e-tiny.wav",
        "f-broken.wav",
    ]
    theirs = Predictor.from_bundle(moved, device="cpu").predict(ours["path"].tolist(), progress=False)
    failed = ours["error"].notna().to_numpy()
    assert failed.tolist() == [False] * 4 + [True] * 2 and (theirs["error"] != "").tolist() == failed.tolist()
    assert "shorter than one frame" in ours.at[4, "error"]
    assert list(ours["pred"][~failed]) == list(theirs["pred"][~failed])
    np.testing.assert_allclose(
        ours.loc[~failed, PROBS].to_numpy(float), theirs.loc[~failed, PROBS].to_numpy(float), atol=1e-5
    )
    assert ours["windows"][~failed].tolist() == theirs["windows"][~failed].tolist() and ours.at[2, "windows"] > 2
    np.testing.assert_allclose(ours["duration_s"][~failed], theirs["duration_s"][~failed], atol=1e-4)
    assert (ours["model_id"] == theirs["model_id"]).all() and (ours["weights"] == "random").all()
    # the int8 graph: the same rows, probabilities near fp32's (how near is measured in parity.json)
    int8 = _predict_py(moved, ["--int8", clips], env, tmp_path)
    assert np.abs(int8.loc[~failed, PROBS].to_numpy(float) - ours.loc[~failed, PROBS].to_numpy(float)).max() < 0.02
    # --long centre: the whole clip through the graph, which keeps its centre window, as `--long centre` does
    long = clips / "c-long.flac"
    centre = _predict_py(moved, ["--long", "centre", long], env, tmp_path)
    expected = Predictor.from_bundle(moved, device="cpu").predict([long], long="centre", progress=False)
    np.testing.assert_allclose(centre[PROBS].to_numpy(float), expected[PROBS].to_numpy(float), atol=1e-5)
    assert int(centre.at[0, "windows"]) == 1
    done = subprocess.run(
        [sys.executable, str(moved / "predict.py"), "--hop", "-1", str(long)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--hop must be" in done.stderr and not done.stdout


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 8000, 12345, 16001])
def test_the_numpy_resampler_is_serlibs(rate):
    wave = (0.3 * np.random.default_rng(rate).standard_normal(rate * 2 + 7)).astype(np.float32)
    ours, theirs = standalone.resample(wave, rate, 16000), resample(wave, rate, 16000)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


# --------------------------------------------------------------------------- the graph


@pytest.mark.parametrize("system", ["S1", "S5-best", "S6"])  # log-Mel, one chosen layer, a learned sum of layers
def test_model_onnx_matches_torch_on_the_test_clips(smoke_run, tmp_path, system):
    done = export_bundle(smoke_run.root, tmp_path / "b", system=system, onnx=True, parity_clips=12)
    fp32, int8 = done["parity"][audiograph.MODEL_FILE], done["parity"][audiograph.MODEL_INT8_FILE]
    assert fp32["clips"] == int8["clips"] == 12 and fp32["failed"] == 0 and fp32["multi_window_clips"] > 0
    assert fp32["max_abs_prob_diff"] < 1e-4 and fp32["class_agreement"] == 1.0
    assert int8["max_abs_prob_diff"] < 0.02
    graph = onnx.load(str(tmp_path / "b" / audiograph.MODEL_FILE))
    assert graph.opset_import[0].version == audiograph.OPSET == 17
    dims = [d.dim_param for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert [i.name for i in graph.graph.input] == ["audio"] and dims == ["batch", "samples"]  # dynamic length
    ops = {n.op_type for n in onnx.load(str(tmp_path / "b" / audiograph.MODEL_INT8_FILE)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & ops  # the int8 form is quantised


def _tiny_encoder(tmp_path, model_type: str, overrides: dict, layers):
    from transformers import AutoConfig, AutoModel

    small = dict(
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=[16] * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.for_model(model_type, **small, **overrides)).save_pretrained(tmp_path / "m")
    w = load_config(SMOKE).features.wav2vec2
    w.weights, w.config_overrides, w.model_id = "pretrained", {}, str(tmp_path / "m")
    return Wav2Vec2Encoder(w, layers=layers)


@pytest.mark.parametrize(
    "model_type,overrides,layers",
    [
        ("hubert", {}, None),
        ("wavlm", {}, [0, 1, 2]),
        ("wav2vec2", {"feat_extract_norm": "layer", "do_stable_layer_norm": True}, [1]),
    ],
)  # the large-lv60 layout
def test_other_encoders_export_with_their_layers(tmp_path, model_type, overrides, layers):
    encoder = _tiny_encoder(tmp_path, model_type, overrides, layers)
    head = build_classifier(ModelConfig(width_scale=0.05), 32, 3 if layers and len(layers) > 1 else None).eval()
    graph = audiograph.AudioToProbs(audiograph.front_for(encoder), head, 100, bool(layers) and len(layers) > 1)
    path = audiograph.export_audio_onnx(graph, tmp_path / "g.onnx", 20000)
    session = standalone.ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for samples in (3000, 32080, 60000):  # shorter than the window, the window, longer (centre window)
        audio = torch.randn(2, samples, generator=torch.Generator().manual_seed(samples)) * 0.1
        with torch.no_grad():
            expected = graph(audio).numpy()
        np.testing.assert_allclose(session.run(None, {"audio": audio.numpy()})[0], expected, atol=1e-5)
    # the graph in torch is the predictor's path: the encoder's frames, float16 (as cached), fit_frames, the head;
    # a head whose logits move with every feature value and with the frame count shows each step
    stacked = bool(layers) and len(layers) > 1
    sensitive = audiograph.AudioToProbs(audiograph.front_for(encoder), _Sensitive(), 100, stacked)
    for samples in (3000, 60000):
        audio = torch.randn(1, samples, generator=torch.Generator().manual_seed(1)) * 0.1
        feats = [
            torch.from_numpy(h.numpy().astype(np.float16).astype(np.float32)) for h in encoder.forward_layers(audio)
        ]  # (1, C, T) each, rounded as the cache stores them
        x = torch.stack(feats, 1) if stacked else feats[0]
        fitted, kept = fit_frames(x[0].flatten(0, -2).T, 100)
        with torch.no_grad():
            direct = torch.softmax(_Sensitive()(fitted.reshape(*x.shape[1:-1], 100)[None], torch.tensor([kept])), 1)
            np.testing.assert_allclose(sensitive(audio).numpy(), direct.numpy(), atol=1e-6)


class _Sensitive(torch.nn.Module):
    """Logits from the first and last feature values of the window and the real frame count."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return torch.stack([flat[:, :64].sum(1), flat[:, -64:].sum(1), lengths.float() / 10], 1) / 10  # unsaturated


@pytest.mark.parametrize("samples", [400, 16000, 50000])
def test_the_log_mel_front_is_the_encoder(samples):
    encoder = LogMelEncoder(FeaturesConfig().logmel)
    front = audiograph.LogMelFront(encoder)
    noise = torch.randn(2, samples, generator=torch.Generator().manual_seed(samples)) * 0.1
    tone = 0.3 * torch.sin(torch.arange(samples) * 0.05)[None]  # near-empty bands: the log magnifies rounding
    for audio, tolerance in ((noise, 1e-4), (tone, 3e-4)):
        expected = torch.stack([encoder(a[None])[0] for a in audio])  # each clip alone, through torch.stft
        torch.testing.assert_close(front(audio)[0], expected, atol=tolerance, rtol=0)


@pytest.mark.parametrize("time", [1, 37, 100, 163, 164])
def test_the_window_fit_is_fit_frames(time):
    x = torch.randn(2, 3, time)
    fitted, kept = audiograph.fit_window(x, 100)
    for row in range(2):
        expected, expected_kept = fit_frames(x[row].T, 100)
        torch.testing.assert_close(fitted[row], expected, rtol=0, atol=0)
        assert int(kept[row]) == expected_kept


# --------------------------------------------------------------------------- the card and the bench


def test_the_card_says_how_to_install_how_well_it_did_and_how_it_differs(smoke_run, onnx_bundle):
    card = (onnx_bundle / "README.md").read_text()
    assert INSTALL_LINE in card and "python predict.py clip.wav" in card and "--int8" in card
    seeds = int(card.split(" pooled;")[0].rsplit("; ", 1)[1].split()[0])  # "...; 2 seeds pooled; ..."
    assert f"; {seeds} seed{'' if seeds == 1 else 's'} pooled;" in card and "seed(s)" not in card  # a count in words
    saved = pd.read_csv(smoke_run.predictions("S5", 0, "test"))
    recall = recall_score(saved["label"], saved["pred"], labels=list(CLASSES), average=None, zero_division=0)
    for name, value in zip(CLASSES, recall):
        assert f"| `{name}` | {int((saved['label'] == name).sum())} | {100 * value:.1f} % |" in card
    for true in CLASSES:
        counts = [int(((saved["label"] == true) & (saved["pred"] == p)).sum()) for p in CLASSES]
        row = next(line for line in card.splitlines() if line.startswith(f"| `{true}` | {counts[0]} ("))
        assert [int(cell.split(" (")[0]) for cell in row.strip("|").split("|")[1:]] == counts
    meta = json.loads((onnx_bundle / "bundle.json").read_text())
    assert meta["window_frames"] == 100 and f"{meta['window_samples']:,} samples" in card and "## The window" in card
    assert "CC BY-NC-SA 4.0" in card and "Open Database License" in card and "## Licences" in card
    parity = json.loads((onnx_bundle / "parity.json").read_text())
    for name in (audiograph.MODEL_FILE, audiograph.MODEL_INT8_FILE, "head.onnx"):
        p = parity[name]
        assert f"| `{name}` | {p['bytes'] / 1e6:.1f} MB |" in card and f"{p['max_abs_prob_diff']:.2e}" in card


def test_bench_gives_the_bundles_latency_per_second_of_audio(onnx_bundle, smoke_run, tmp_path, capsys):
    result = bundlebench.bundle_latency(onnx_bundle, rounds=1, torch_baseline=False)
    table = bundlebench.latency_table(result)
    assert set(table["form"]) == {"onnxruntime fp32 (model.onnx)", "onnxruntime int8 (model-int8.onnx)"}
    assert sorted(set(table["clip_s"])) == bundlebench.clip_seconds(
        json.loads((onnx_bundle / "bundle.json").read_text())
    )
    assert (table["ms"] > 0).all()
    np.testing.assert_allclose(table["ms_per_audio_s"], table["ms"] / table["clip_s"])
    assert (table.loc[table["clip_s"] == bundlebench.LONG_CLIP_S, "windows"] > 1).all()
    assert main(["bench", "--bundle", str(onnx_bundle), "--quick", "--json", str(tmp_path / "b.json")]) == 0
    printed = capsys.readouterr().out
    assert "ms per audio second" in printed and "torch (serlib predict)" in printed
    assert len(json.loads((tmp_path / "b.json").read_text())["table"]) == 12  # 3 forms x 4 clip lengths
    export_bundle(smoke_run.root, tmp_path / "plain", system="S1")  # no --onnx: nothing to time
    assert main(["bench", "--bundle", str(tmp_path / "plain")]) == 2
    err = capsys.readouterr().err
    assert "--onnx" in err and len(err.strip().splitlines()) == 1
    assert main(["export", str(smoke_run.root), "--onnx", "--parity-clips", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "--parity-clips" in capsys.readouterr().err and not (tmp_path / "x").exists()
