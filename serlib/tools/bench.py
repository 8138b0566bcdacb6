"""Speed and memory of the pipeline (``serlib bench``), beside the paper's deployment claims.

What is measured, on one device (``cpu`` or ``cuda``), with random weights (the cost of random
and pretrained weights is the same, so the benchmark runs offline):

- inference of the full ResAttn1D-CNN (S5) on one 768 x 400 utterance and on batches;
- memory: the allocator peak (GPU) or the resident-set increase (CPU) of batch-1 inference,
  the activation peak measured as live tensor bytes, and what the weights take in fp32/fp16/int8;
- one training epoch of S5 on 6096 x 768 x 400 cached features at batch 64 with Tri-Aug, and the
  same epoch with wav2vec2-base embeddings recomputed per batch from audio, as the paper did;
- feature extraction (log-Mel, wav2vec2-base) on clips whose lengths follow the real corpora;
- fast paths, each as a ratio measured in the same run (``FastPath`` rows).

Every figure is a median over repetitions after warm-up; each row of ``bench_table`` says how
it was measured and whether it was extrapolated. ``run_bench`` returns a flat dict (the JSON).

The primitives (memory, GFLOP, the model, training step and clip encoding that are timed) and the
paper's sizes live in ``serlib.tools.measure``, timing in ``serlib.common.timing``, clip lengths in
``serlib.data.lengths``, the tables and the printed report in ``serlib.tools.benchtable``; this module
owns the command: the measurement sizes, the timing benchmarks, the fast paths and ``run_bench``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from serlib.common.config import ConfigError, FeaturesConfig
from serlib.common.facts import SAMPLE_RATE
from serlib.common.runtime import deterministic_algorithms, set_seed, training_mode
from serlib.common.timing import median, sync, time_calls
from serlib.data.lengths import draw_clip_lengths
from serlib.features.encoders import build_encoder, fit_frames
from serlib.features.extract import plan_batches
from serlib.features.layers import PAPER_LAYERS, paper_layer_cache_bytes
from serlib.features.stream import LayerStack
from serlib.inference import onnxform
from serlib.inference.quantise import quantize_int8, weight_bytes
from serlib.modelling.models import count_params
from serlib.modelling.placement import Placement, gather, plan_placement, stream_threads
from serlib.tools.benchpaths import (
    BenchSettings,
    FastPath,
    fast_fold,
    fast_gather,
    fast_half_cpu,
    fast_modes,
    fast_train_gpu,
    fast_triaug,
    fast_triaug_sync_free,
    settings_for,
)
from serlib.tools.benchtable import bench_table, format_report, paper_claims
from serlib.tools.measure import (
    FEATURE_SHAPE,
    MB,
    N_TRAIN,
    N_VAL,
    PAPER_BATCH,
    BenchStep,
    activation_peak_bytes,
    encode_clip,
    encode_padded,
    forward_gflop,
    memory_analysis,
    memory_note,
    rss_peak_delta,
    s5_model,
    synthetic_waves,
)

# ---------------------------------------------------------------- settings


def bench_inference(model: nn.Module, device: torch.device, s: BenchSettings) -> dict:
    """Batch-1 latency, batched throughput and batch-1 memory of ``model`` in eval mode."""
    model.eval()
    x1 = torch.randn(1, *FEATURE_SHAPE, device=device)  # (1, 768, 400)
    with torch.inference_mode():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            t1 = time_calls(lambda: model(x1), device, s.warmup, s.repeats)
            peak_mb = torch.cuda.max_memory_allocated(device) / MB
            how = (
                "torch.cuda.max_memory_allocated over batch-1 calls: weights + input + activations + cuBLAS/cuDNN "
                "workspace (split in the mem_* rows)"
            )
        else:
            held: dict = {}
            peak_mb = (
                rss_peak_delta(lambda: held.setdefault("t", time_calls(lambda: model(x1), device, s.warmup, s.repeats)))
                / MB
            )
            t1 = held["t"]
            how = (
                "resident-set increase over batch-1 calls (warm-up included), /proc/self/statm sampled "
                "every 1 ms; weights and input were resident before; may under-count reused heap"
            )
        xb = torch.randn(s.infer_batch, *FEATURE_SHAPE, device=device)  # (batch, 768, 400), after the memory figure
        tb = time_calls(lambda: model(xb), device, 1, max(2, s.repeats // 3))
    return {
        "infer_ms_b1": median(t1) * 1e3,
        "infer_ms_b1_min": min(t1) * 1e3,
        "infer_utt_per_s": s.infer_batch / median(tb),
        "infer_batch": s.infer_batch,
        "infer_peak_mem_mb": peak_mb,
        "infer_peak_mem_how": how,
        "infer_b1_repeats": len(t1),
        "infer_batched_repeats": len(tb),
    }


def bench_int8(model: nn.Module, s: BenchSettings) -> dict:
    """Batch-1 latency of the network quantised to int8 (``serlib.inference.deploy``; CPU only).

    Calibrated on random features (the weights are random too), so this is a cost figure; the
    accuracy effect of int8 on a trained checkpoint is Table S25 of the report.
    """
    cpu = torch.device("cpu")
    gen = torch.Generator().manual_seed(2)
    quantized = quantize_int8(model, torch.randn(4 if s.quick else 16, *FEATURE_SHAPE, generator=gen))
    x1 = torch.randn(1, *FEATURE_SHAPE, generator=gen)
    with torch.inference_mode(), deterministic_algorithms(False):  # int8 inference: no determinism warning per call
        times = time_calls(lambda: quantized(x1), cpu, s.warmup, s.repeats)
        xs = torch.randn(8, *FEATURE_SHAPE, generator=gen)
        diff = (torch.softmax(quantized(xs), 1) - torch.softmax(model.eval()(xs), 1)).abs().max().item()
    return {
        "infer_ms_b1_int8": median(times) * 1e3,
        "infer_int8_weights_mb": weight_bytes(quantized) / MB,
        "infer_int8_max_prob_diff": diff,
    }


def bench_onnx(model: nn.Module, s: BenchSettings) -> dict:
    """Batch-1 latency of the network exported to ONNX under onnxruntime (CPU), fp32 and static int8.

    Random weights and random calibration features: a cost figure (Table S25 of the report gives the
    accuracy effect on a trained checkpoint).
    """
    gen = torch.Generator().manual_seed(3)
    x1 = torch.randn(1, *FEATURE_SHAPE, generator=gen)
    full = torch.full((1,), FEATURE_SHAPE[1])
    out = {}
    with tempfile.TemporaryDirectory(prefix="serlib-bench-onnx-") as tmp:
        calibration = torch.randn(4 if s.quick else 16, *FEATURE_SHAPE, generator=gen)
        fp32, int8 = onnxform.export_fp32_and_int8(
            model.cpu().eval(), *FEATURE_SHAPE, tmp, calibration, torch.full((len(calibration),), FEATURE_SHAPE[1])
        )
        for key, path in (("infer_ms_b1_onnx", fp32), ("infer_ms_b1_onnx_int8", int8)):
            out[key] = (
                onnxform.batch1_seconds(onnxform.session(path), x1.numpy(), full.numpy(), s.warmup, s.repeats) * 1e3
            )
        out["infer_onnx_int8_mb"] = int8.stat().st_size / MB
    return out


# ---------------------------------------------------------------- training


def _resident_pool(s: BenchSettings, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, Placement]:
    """Random features (pool, 768, 400) and labels (pool,), placed as training places them
    (``serlib.modelling.placement``: on a GPU float16, resident when they fit its free memory, else pinned host)."""
    plan = plan_placement(s.resident_pool * FEATURE_SHAPE[0] * FEATURE_SHAPE[1], device)
    where = torch.device(device) if plan.where == "device" else torch.device("cpu")
    gen = torch.Generator(device=where).manual_seed(1)  # drawn where it lives: never crosses the bus
    pool = torch.randn(s.resident_pool, *FEATURE_SHAPE, generator=gen, device=where, dtype=plan.torch_dtype)
    if plan.pinned and torch.cuda.is_available():
        pool = pool.pin_memory()
    return pool, torch.randint(0, 3, (s.resident_pool,), generator=gen, device=where).to(device), plan


def bench_training(
    s: BenchSettings, device: torch.device, pool: torch.Tensor, labels: torch.Tensor, val_s: float
) -> tuple[dict, BenchStep]:
    """Seconds per S5 epoch on cached, resident features (6096 utterances, batch 64, Tri-Aug on)."""
    step = BenchStep(s5_model(device), device)

    def one() -> None:
        index = torch.randint(0, len(pool), (s.train_batch,), device=device)
        step(gather(pool, index, device), labels[index])  # the gather (and cast) is part of the step

    with training_mode(True):  # train.deterministic, as fit runs by default
        times = time_calls(one, device, s.warmup, s.train_steps)
    step64 = median(times) * PAPER_BATCH / s.train_batch
    train_only = N_TRAIN / PAPER_BATCH * step64
    return {
        "train_step_s_b64": step64,
        "train_s_per_epoch_train_only": train_only,
        "val_pass_s": val_s,
        "train_s_per_epoch": train_only + val_s,
        "train_timed_batch": s.train_batch,
        "train_timed_steps": len(times),
    }, step


# ---------------------------------------------------------------- extraction and on-the-fly embedding


def _features_config(device: torch.device) -> FeaturesConfig:
    features = FeaturesConfig(device=device.type)
    features.wav2vec2.weights = "random"  # same architecture and cost as pretrained wav2vec2-base
    return features


def bench_extraction(
    encoder: nn.Module, waves: list[torch.Tensor], device: torch.device, repeats: int, batch: int = 1
) -> float:
    """Clips per second of ``encoder`` over ``waves`` as ``serlib.features.extract`` runs it.

    ``batch`` 1: one clip per call. Otherwise the clips are sorted by length and cut into masked,
    zero-padded batches of at most ``batch`` clips and the default ``max_batch_seconds``
    (``serlib.features.extract.plan_batches``); each clip's frames go to the host, as into the cache.
    """
    limit = int(FeaturesConfig().wav2vec2.max_batch_seconds * SAMPLE_RATE)
    groups = [
        [waves[i] for i, _, _ in b]
        for b in plan_batches([(i, "", len(w)) for i, w in enumerate(waves)], batch, limit, mix=True)
    ]

    def run_all() -> None:
        for group in groups:
            for clip in encode_padded(encoder, group, device):
                clip.cpu()  # features end on the host (the cache)

    encode_clip(encoder, torch.randn(SAMPLE_RATE) * 0.1, device)  # warm-up on a 1 s clip
    return len(waves) / median(time_calls(run_all, device, 0, repeats))


def bench_on_the_fly(
    encoder: nn.Module,
    step: BenchStep,
    s: BenchSettings,
    device: torch.device,
    train_step64: float,
    val_s: float,
    seed: int,
    encode_batch: int = 1,
) -> dict:
    """The paper's epoch: every batch's embeddings recomputed from audio before the training step.

    Each timed batch draws ``otf_batch`` clips with the real length distribution, encodes them in
    masked, zero-padded calls of ``encode_batch`` clips (exact: as one clip at a time; the caller
    passes the faster of 1 and ``w2v_batch`` as measured, so the baseline is not slowed on purpose),
    fits them to 400 frames, stacks them and runs the training step. The
    encoding part scales with the clip count (to 64, and to the 762 validation clips, assumed
    re-embedded every epoch too); the training part is the cached step at batch 64. Audio decoding
    is not included (the waves are in memory), so this is a lower bound of the paper's cost.
    """
    lengths, _ = draw_clip_lengths(s.otf_batch, seed=seed + 1)
    waves = synthetic_waves(lengths, seed=seed + 1)
    targets = torch.randint(0, 3, (s.otf_batch,), device=device)
    enc_times = []
    for _ in range(1 if device.type == "cpu" else 3):
        sync(device)
        start = time.perf_counter()
        clips = [
            c
            for i in range(0, len(waves), encode_batch)
            for c in encode_padded(encoder, waves[i : i + encode_batch], device)
        ]
        batch = torch.stack([fit_frames(c.T, 400)[0] for c in clips])  # (batch, 768, 400)
        sync(device)
        enc_times.append(time.perf_counter() - start)
        step(batch, targets)
    per_clip = median(enc_times) / s.otf_batch
    otf_epoch = N_TRAIN / PAPER_BATCH * (per_clip * PAPER_BATCH + train_step64) + N_VAL * per_clip + val_s
    return {
        "train_s_per_epoch_on_the_fly": otf_epoch,
        "otf_encode_s_per_clip": per_clip,
        "otf_timed_batch": s.otf_batch,
        "otf_timed_batches": len(enc_times),
        "otf_encode_batch": encode_batch,
    }


# ---------------------------------------------------------------- fast paths


LOGMEL_BATCH = 64  # serlib.features.extract's log-Mel batch


def _extraction_pair(
    encoder: nn.Module, waves: list[torch.Tensor], device: torch.device, repeats: int, batch: int, result: dict
) -> FastPath:
    """``extract_clips_per_s_<name>`` (masked batches, serlib's path) and the one-clip-per-call rate."""
    one = bench_extraction(encoder, waves, device, repeats)
    batched = bench_extraction(encoder, waves, device, repeats, batch=batch)
    result[f"extract_clips_per_s_{encoder.name}"] = batched
    result[f"extract_clips_per_s_{encoder.name}_one_per_call"] = one
    result[f"extract_batch_{encoder.name}"] = batch
    return FastPath(
        f"{encoder.name} extraction: masked mixed-length batches of <= {batch} vs one clip per call",
        len(waves) / one,
        len(waves) / batched,
        f"{len(waves)} clips with the real length distribution, sorted by length, one after the "
        f"other in one run; outputs equal to one-clip-alone to float rounding (tested)",
    )


# ---------------------------------------------------------------- the whole benchmark


def bench_layer_stream(s: BenchSettings, seed: int = 0) -> dict:
    """How long ``LayerStack`` takes to copy one training batch of every layer out of memory-mapped shards
    (what S6, ``input: wav2vec2_layers``, reads per step), on files written to a temporary folder."""
    layers = PAPER_LAYERS if not s.quick else 3
    clips, batch = (128, PAPER_BATCH) if not s.quick else (16, 8)
    rng = np.random.default_rng(seed)
    frames = rng.integers(150, 500, clips)
    with tempfile.TemporaryDirectory(prefix="serlib-bench-") as tmp:
        arrays, rows = [], []
        for layer in range(layers):
            path = Path(tmp) / f"layer{layer}.npy"
            np.save(
                path, rng.standard_normal((FEATURE_SHAPE[0], int(frames.sum())), dtype=np.float32).astype(np.float16)
            )
            offsets = np.concatenate([[0], np.cumsum(frames)[:-1]])
            arrays.append({"shard": np.load(path, mmap_mode="r")})
            rows.append([("shard", int(o), int(f)) for o, f in zip(offsets, frames)])
        stack = LayerStack(arrays, rows, FEATURE_SHAPE[1], FEATURE_SHAPE[0], list(range(layers)))
        order = [torch.from_numpy(rng.permutation(clips)[:batch]) for _ in range(s.warmup + s.repeats)]
        seconds = {}
        for threads in sorted({1, stream_threads(torch.device(s.device))}):
            stack.threads, times = threads, []
            for i, index in enumerate(order):
                start = time.perf_counter()
                stack.gather(index)
                if i >= s.warmup:
                    times.append(time.perf_counter() - start)
            seconds[threads] = median(times) * PAPER_BATCH / batch * PAPER_LAYERS / layers
    used = max(seconds)
    return {
        "layer_stack_batch_ms": seconds[used] * 1e3,
        "layer_stack_epoch_s": seconds[used] * math.ceil(N_TRAIN / PAPER_BATCH),
        "layer_stack_how": f"{layers} layers x {batch} clips of 768 x 150-500 frames, float16 memory maps in the "
        f"page cache, {used} copying thread(s) (as training on {s.device} uses; 1 thread: "
        f"{seconds[1] * 1e3:.0f} ms), median of {s.repeats}; scaled to {PAPER_LAYERS} layers x "
        f"{PAPER_BATCH}",
    }


def _device(name: str) -> torch.device:
    if name not in ("cpu", "cuda"):
        raise ValueError(f"bench: --device must be cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("bench: --device cuda but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


def run_bench(device: str = "cpu", quick: bool = False, seed: int = 0, progress: bool = True) -> dict:
    """Run every measurement and return the flat result (see the module docstring for the keys).

    Args:
        device: "cpu" or "cuda".
        quick: CI mode (``settings_for``): seconds on two cores, coarser figures.
        seed: seeds the drawn clip lengths, the waves and the random features.
        progress: a tqdm bar over the stages.
    """
    dev, s = _device(device), settings_for(device, quick)
    set_seed(seed)  # the determinism flags serlib.modelling.train runs under
    started = time.perf_counter()
    bar = tqdm(total=6, desc="bench", disable=not progress)
    stages: dict[str, float] = {}
    tick = lambda name: stages.__setitem__(name, time.perf_counter() - started - sum(stages.values()))  # noqa: E731
    result = {
        "device": device,
        "device_name": _device_name(dev),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": quick,
        "settings": asdict(s),
    }
    model = s5_model(dev)
    result["cnn_params"] = count_params(model)
    result.update(bench_inference(model, dev, s))
    x1 = torch.randn(1, *FEATURE_SHAPE, device=dev)
    mem = memory_analysis(result["cnn_params"], activation_peak_bytes(model, x1), x1.numel() * 4)
    result.update(mem, memory_note=memory_note(mem, result["cnn_params"]))
    if dev.type == "cuda":  # what the allocator peak holds beyond weights, input and activations
        result["mem_workspace_b1_mb"] = max(
            0.0,
            result["infer_peak_mem_mb"]
            - mem["mem_params_fp32_mb"]
            - mem["mem_input_b1_fp32_mb"]
            - mem["mem_activation_peak_b1_fp32_mb"],
        )
    result["infer_gflop_b1"] = forward_gflop(model, x1)
    result["infer_gflop_per_s_b1"] = result["infer_gflop_b1"] / (result["infer_ms_b1"] / 1e3)
    separable = s5_model(dev, conv="separable").eval()  # the reading that lands near the paper's 3.9 M
    with torch.inference_mode():
        result["infer_ms_b1_separable"] = median(time_calls(lambda: separable(x1), dev, s.warmup, s.repeats)) * 1e3
    result["cnn_params_separable"] = count_params(separable)
    result["infer_gflop_b1_separable"] = forward_gflop(separable, x1)
    if dev.type == "cpu":
        result.update(bench_int8(model, s))
        result.update(bench_onnx(model, s))
    tick("inference_memory")
    bar.update()
    pool, labels, plan = _resident_pool(s, dev)
    result["train_pool"] = plan.describe()
    val_s = N_VAL / result["infer_utt_per_s"]
    train, step = bench_training(s, dev, pool, labels, val_s)
    result.update(train)
    tick("training")
    bar.update()
    lengths, source = draw_clip_lengths(max(s.logmel_clips, s.w2v_clips), seed=seed)
    waves = synthetic_waves(lengths, seed=seed)
    result["clip_lengths_source"] = source
    result["clip_lengths_mean_s"] = float(lengths.mean())
    features = _features_config(dev)
    logmel = build_encoder(features, "logmel", dev)
    extraction = [_extraction_pair(logmel, waves[: s.logmel_clips], dev, s.repeats, LOGMEL_BATCH, result)]
    tick("logmel")
    bar.update()
    wav2vec2 = build_encoder(features, "wav2vec2", dev)
    extraction.append(
        _extraction_pair(wav2vec2, waves[: s.w2v_clips], dev, 1 if dev.type == "cpu" else 3, s.w2v_batch, result)
    )
    tick("wav2vec2_build_and_extraction")
    bar.update()
    one = result["extract_clips_per_s_wav2vec2_one_per_call"]  # batch 1: what one user clip costs
    result["encoder_ms_per_audio_s"] = 1e3 / (one * result["clip_lengths_mean_s"])
    result["clip_ms_b1_encoder_and_head"] = 1e3 / one + result["infer_ms_b1"]
    faster = result["extract_clips_per_s_wav2vec2"] > result["extract_clips_per_s_wav2vec2_one_per_call"]
    result.update(
        bench_on_the_fly(wav2vec2, step, s, dev, result["train_step_s_b64"], val_s, seed, s.w2v_batch if faster else 1)
    )
    result["cached_vs_otf_ratio"] = result["train_s_per_epoch_on_the_fly"] / result["train_s_per_epoch"]
    layer_bytes, layer_clips, layer_mean_s = paper_layer_cache_bytes()
    result["layer_cache_gb_paper"] = layer_bytes / 1e9
    result["layer_cache_how"] = (
        f"{layer_clips} clips of {layer_mean_s:.2f} s mean (the paper-scale plan's lengths) x "
        f"their wav2vec2-base frames x 768 channels x 2 bytes (float16); all "
        f"{PAPER_LAYERS} layers: {PAPER_LAYERS * layer_bytes / 1e9:.0f} GB"
    )
    result.update(bench_layer_stream(s, seed))
    tick("on_the_fly")
    bar.update()
    paths = [
        fast_modes(dev, pool, labels, s),
        fast_triaug(dev, pool, PAPER_BATCH if dev.type == "cuda" else (8 if quick else 32), s),
        fast_triaug_sync_free(dev, pool, PAPER_BATCH if dev.type == "cuda" else (8 if quick else 32), s),
        fast_gather(dev, pool, PAPER_BATCH, s),
        fast_fold(model, dev, s),
        *extraction,
    ]
    if dev.type == "cuda":
        paths += fast_train_gpu(dev, pool, labels, s)
    elif s.half_precision_cpu:
        paths.append(fast_half_cpu(model, s))
    paths.append(
        FastPath(
            "epoch: cached features vs wav2vec2 recomputed per batch (target >= 20x)",
            result["train_s_per_epoch_on_the_fly"],
            result["train_s_per_epoch"],
            "the two epoch rows above, same run",
        )
    )
    result["fast_paths"] = [
        {"name": p.name, "baseline_s": p.baseline_s, "fast_s": p.fast_s, "ratio": p.ratio, "how": p.how} for p in paths
    ]
    result["not_measured"] = NOT_MEASURED
    result["paper"] = paper_claims()
    tick("fast_paths")
    result["stage_seconds"] = stages
    result["bench_seconds"] = time.perf_counter() - started
    bar.update()
    bar.close()
    return result


NOT_MEASURED = [
    "channels-last: a 4-D (NCHW) memory format; these are 1-D convs over (batch, channels, frames), nothing to gain",
    "torch.compile and CUDA graphs: GPU matters, not timed by this benchmark (compile time ~1 min per shape)",
    "audio decoding and resampling (the cache reads each file once; not part of the per-epoch cost)",
]


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical cores)"
    except OSError:
        pass
    return f"CPU ({os.cpu_count()} logical cores)"


# ---------------------------------------------------------------- the command


def main_bench(device: str = "cpu", json_path: Optional[str] = None, quick: bool = False) -> int:
    """``serlib bench``: run, print the table and write the JSON (when ``json_path`` is given)."""
    result = run_bench(device, quick)
    print(format_report(result))
    result["table"] = bench_table(result).to_dict(orient="records")
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"serlib bench: wrote {path}")
    return 0
