"""serlib.tools.benchtable: the bench's figures beside the paper's claims and the issue's targets."""

from __future__ import annotations

from serlib.tools import benchtable


def test_bench_table_compares_with_targets():
    result = {
        "device": "cpu",
        "settings": {
            "warmup": 1,
            "repeats": 3,
            "logmel_clips": 24,
            "w2v_clips": 2,
            "resident_pool": 16,
            "w2v_batch": 2,
        },
        "extract_batch_logmel": 64,
        "extract_batch_wav2vec2": 2,
        "extract_clips_per_s_logmel_one_per_call": 90.0,
        "extract_clips_per_s_wav2vec2_one_per_call": 0.1,
        "cnn_params": 8_669_519,
        "infer_ms_b1": 80.0,
        "infer_ms_b1_min": 75.0,
        "infer_gflop_b1": 6.9,
        "infer_gflop_per_s_b1": 86.0,
        "infer_utt_per_s": 15.0,
        "infer_batch": 8,
        "infer_b1_repeats": 3,
        "infer_batched_repeats": 2,
        "infer_peak_mem_mb": 50.0,
        "infer_peak_mem_how": "rss",
        "mem_activation_peak_b1_fp32_mb": 3.0,
        "mem_total_b1_half_mb": 19.5,
        "train_s_per_epoch": 6000.0,
        "train_timed_batch": 4,
        "train_timed_steps": 2,
        "train_s_per_epoch_on_the_fly": 27000.0,
        "otf_timed_batches": 1,
        "otf_timed_batch": 1,
        "otf_encode_batch": 1,
        "cached_vs_otf_ratio": 4.5,
        "extract_clips_per_s_logmel": 250.0,
        "extract_clips_per_s_wav2vec2": 0.2,
    }
    table = benchtable.bench_table(result).set_index("metric")
    assert table.loc["infer_ms_b1", "target"] == "<= 20: NOT met"
    assert "infer_ms_b1_int8" not in table.index  # not measured: no row
    assert table.loc["extract_clips_per_s_logmel", "target"] == ">= 200: met"
    assert "scaled x16" in table.loc["train_s_per_epoch", "how"]
    assert "3.5" in table.loc["infer_ms_b1", "paper"]
    assert "masked batches of <= 64" in table.loc["extract_clips_per_s_logmel", "how"]
    assert "one per call: 90" in table.loc["extract_clips_per_s_logmel", "how"]
