"""serlib.bench: the `serlib bench --quick` command, its measuring pieces, and the rehearsal profile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from serlib.common.config import ModelConfig, load_config
from serlib.data import democorpus, lengths
from serlib.modelling.models import build_model
from serlib.tools import measure
from serlib.tools.cli import main

REPO = Path(__file__).resolve().parents[1]
KEYS = (
    "device",
    "torch",
    "cnn_params",
    "infer_ms_b1",
    "infer_utt_per_s",
    "infer_peak_mem_mb",
    "train_s_per_epoch",
    "train_s_per_epoch_on_the_fly",
    "extract_clips_per_s_logmel",
    "extract_clips_per_s_wav2vec2",
    "cached_vs_otf_ratio",
    "mem_params_fp32_mb",
    "mem_total_b1_half_mb",
)


@pytest.mark.slow
def test_bench_quick_writes_sane_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--device", "cpu", "--quick", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in KEYS:
        assert key in result, key
    assert result["device"] == "cpu" and result["torch"] == torch.__version__
    assert 8_600_000 <= result["cnn_params"] <= 8_750_000  # the network as the paper describes it: 8.67 M
    assert 3_650_000 <= result["cnn_params_separable"] <= 3_700_000  # the separable reading: 3.68 M
    assert 0 < result["infer_gflop_b1_separable"] < result["infer_gflop_b1"] and result["infer_ms_b1_separable"] > 0
    for key in KEYS[3:]:
        assert np.isfinite(result[key]) and result[key] > 0, (key, result[key])
    # An epoch is many training steps; recomputing wav2vec2 per batch can only add to it.
    assert result["train_s_per_epoch"] > 10 * result["infer_ms_b1"] / 1e3
    assert result["train_s_per_epoch_on_the_fly"] > result["train_s_per_epoch"]
    assert result["mem_params_fp32_mb"] == pytest.approx(result["cnn_params"] * 4 / 1e6)
    assert all(p["ratio"] > 0 for p in result["fast_paths"])
    assert result["infer_ms_b1_int8"] > 0 and result["infer_int8_weights_mb"] < 0.3 * result["mem_params_fp32_mb"]
    for name in ("logmel", "wav2vec2"):  # serlib's masked batches and the one-clip-per-call baseline, same run
        assert result[f"extract_clips_per_s_{name}_one_per_call"] > 0
        assert any(p["name"].startswith(f"{name} extraction: masked") for p in result["fast_paths"])
    assert result["paper"]["infer_ms_b1"] == 3.5 and result["paper"]["infer_peak_mem_mb"] == 15.0
    assert {row["metric"] for row in result["table"]} >= {
        "infer_ms_b1",
        "train_s_per_epoch",
        "cached_vs_otf_ratio",
        "mem_params_fp32_mb",
        "mem_activation_peak_b1_fp32_mb",
    }
    names = [p["name"] for p in result["fast_paths"]]
    assert any(n.startswith("training step: fast mode (train.deterministic: false") for n in names)  # both modes timed
    assert any(n.startswith("Tri-Aug drawn for every row") for n in names)
    assert "mem_workspace_b1_mb" not in result  # no allocator workspace on the CPU
    # one wav2vec2 layer at the paper's scale: 8952 clips of ~2.7 s, 768 float16 channels at 50 frames/s
    assert 1.7 < result["layer_cache_gb_paper"] < 2.0 and "8952 clips" in result["layer_cache_how"]
    assert result["layer_stack_batch_ms"] > 0 and result["layer_stack_epoch_s"] > result["layer_stack_batch_ms"] / 1e3
    assert result["train_pool"].startswith("features") and "float32" in result["train_pool"]
    printed = capsys.readouterr().out
    assert "infer_ms_b1" in printed and "Fast paths" in printed and "< 15 MB" in printed


def test_bench_cuda_without_gpu_is_a_clear_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["bench", "--device", "cuda", "--quick"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.parametrize("use_real_lists", [True, False])
def test_clip_lengths_follow_the_real_corpora(use_real_lists, tmp_path, monkeypatch):
    if use_real_lists and lengths.real_names_dir() is None:
        pytest.skip("shared/real-names is not present")
    if not use_real_lists:
        monkeypatch.setenv("SERLIB_REAL_NAMES", str(tmp_path))  # no lists there: stored quantiles
    drawn, source = lengths.draw_clip_lengths(4000, seed=0)
    assert ("lengths from real file lists" in source) == use_real_lists
    assert drawn.min() >= 1.2 and drawn.max() <= 9.0
    assert 2.4 < drawn.mean() < 3.0  # 83 % CREMA-D (~2.5 s), RAVDESS ~3.7 s, EmoDB ~2.8 s


def test_stored_quantiles_match_the_real_lists():
    folder = lengths.real_names_dir()
    if folder is None:
        pytest.skip("shared/real-names is not present")
    real = lengths.real_lengths(folder)
    assert {k: len(v) for k, v in real.items()} == {"RAVDESS": 1056, "EmoDB": 454}  # MCULP's kept clips
    for corpus, stored in lengths.LENGTH_QUANTILES_S.items():
        computed = np.quantile(real[corpus], np.linspace(0, 1, len(stored)))
        np.testing.assert_allclose(computed, stored, atol=1e-3)


def test_activation_tracker_counts_live_outputs():
    conv_a, conv_b = nn.Conv1d(4, 8, 1, bias=False), nn.Conv1d(8, 16, 1, bias=False)

    class TwoConvs(nn.Module):
        def forward(self, x):  # (1, 4, 10) -> (1, 8, 10) -> (1, 16, 10); both outputs alive at the end
            y = conv_a(x)
            return conv_b(y)

    peak = measure.activation_peak_bytes(TwoConvs(), torch.randn(1, 4, 10))
    assert peak == (8 * 10 + 16 * 10) * 4


def test_activation_peak_of_the_paper_network_is_megabytes():
    model = build_model(ModelConfig(), 768)
    peak = measure.activation_peak_bytes(model, torch.randn(1, 768, 400))
    one_block = 384 * 400 * 4  # one 384-channel activation at batch 1
    assert 2 * one_block <= peak <= 12 * one_block


def test_forward_gflop_of_a_single_conv():
    conv = nn.Sequential(nn.Conv1d(2, 3, 5, padding=2))
    assert measure.forward_gflop(conv, torch.randn(1, 2, 100)) == pytest.approx(2 * 2 * 5 * 3 * 100 / 1e9)


def test_memory_analysis_numbers():
    mem = measure.memory_analysis(8_669_519, 3_000_000, 768 * 400 * 4)
    assert mem["mem_params_fp32_mb"] == pytest.approx(34.68, abs=0.01)
    assert mem["mem_params_half_mb"] == pytest.approx(17.34, abs=0.01)
    assert mem["paper_3p9m_params_fp32_mb"] == pytest.approx(15.6)
    assert mem["mem_total_b1_half_mb"] == pytest.approx(17.34 + (3.0 + 1.2288) / 2, abs=0.01)
    assert "< 15 MB" in measure.memory_note(mem, 8_669_519)


def test_rehearsal_profile_loads_at_paper_scale():
    cfg = load_config(REPO / "parameters" / "rehearsal.yaml")
    assert cfg.data.demo is not None and cfg.features.wav2vec2.weights == "random"
    assert cfg.features.frames == 400 and cfg.features.wav2vec2.model_id == "facebook/wav2vec2-base"
    paper = {"S1", "S2", "S3", "S4", "S5", "A1", "A2", "A3"}
    assert paper <= set(cfg.systems) and all(s.startswith("S5-") for s in set(cfg.systems) - paper)  # + padding rows
    assert all(s.model.width_scale == 1.0 for s in cfg.systems.values())  # the paper's widths
    assert cfg.systems["A3"].model.blocks == [0, 2, 4] and not cfg.systems["S3"].model.se
    assert cfg.train.seeds == [0, 1, 2] and cfg.train.batch_size == 64 and cfg.train.max_epochs == 80


def test_rehearsal_corpus_scale():
    cfg = load_config(REPO / "parameters" / "rehearsal.yaml")
    assert "paper" in democorpus.SCALES and cfg.data.demo.scale == "paper"


@pytest.mark.parametrize("sync_metrics, amp", [(True, False), (False, False), (False, True)])
def test_train_step_variants_update_the_model(sync_metrics, amp):
    torch.manual_seed(0)
    model = build_model(ModelConfig(width_scale=0.125), 768)
    step = measure.BenchStep(model, torch.device("cpu"), sync_metrics=sync_metrics, amp=amp)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(4, 768, 40), torch.randint(0, 3, (4,))
    step(x, y)
    step(x, y)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    if not sync_metrics:  # loss sum and correct count accumulated on the device
        assert step.total[0] > 0 and 0 <= step.total[1] <= 8
