"""What ``serlib bench`` times and how (its settings, ``BenchSettings``), and the fast paths it measures beside
the plain ones: Tri-Aug without host syncs, the resident pool's gather, the training modes, BatchNorm folding,
half precision on the CPU and the GPU training step (``FastPath``: the name, the figure and what it stands for).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from serlib.common.config import AugmentConfig
from serlib.common.runtime import training_mode
from serlib.common.timing import median, time_calls, time_pair
from serlib.inference.quantise import fold_batchnorm
from serlib.modelling.augment import TriAug
from serlib.modelling.placement import gather
from serlib.tools.measure import (
    FEATURE_SHAPE,
    N_TRAIN,
    PAPER_BATCH,
    BenchStep,
    s5_model,
)

# ---------------------------------------------------------------- settings


@dataclass
class BenchSettings:
    """How much of each measurement to run (``settings_for`` picks them per device and mode)."""

    device: str  # cpu | cuda
    quick: bool  # CI mode: fewer repetitions and smaller batches
    warmup: int  # untimed calls before each timed series
    repeats: int  # timed repetitions (the median is reported)
    infer_batch: int  # batch of the batched-inference figure
    train_batch: int  # batch actually timed for training (scaled to 64 when smaller)
    train_steps: int  # timed training steps
    resident_pool: int  # utterances held resident for training (6096 on GPU)
    otf_batch: int  # clips per timed on-the-fly batch (encoding scaled to 64 when smaller)
    logmel_clips: int  # clips of the log-Mel extraction figure
    w2v_clips: int  # clips of the wav2vec2 extraction figure
    w2v_batch: int  # most clips per masked wav2vec2 batch (extraction and on-the-fly embedding)
    half_precision_cpu: bool  # time bf16 inference on CPU too (slow without native bf16 kernels)


def settings_for(device: str, quick: bool) -> BenchSettings:
    """The measurement sizes for ``device`` ("cpu" | "cuda"), CI-sized when ``quick``."""
    if device == "cuda":
        if quick:
            return BenchSettings(device, quick, 3, 5, 512, 64, 5, N_TRAIN, 64, 64, 128, 64, False)
        return BenchSettings(device, quick, 10, 30, 1024, 64, 30, N_TRAIN, 64, 256, 1024, 64, False)
    if quick:
        return BenchSettings(device, quick, 1, 3, 8, 4, 2, 16, 2, 24, 2, 2, False)
    return BenchSettings(device, quick, 2, 10, 32, 16, 3, 128, 8, 200, 16, 8, True)


# ---------------------------------------------------------------- inference


@dataclass
class FastPath:
    """One fast path: the baseline and the fast variant timed in the same run."""

    name: str
    baseline_s: float
    fast_s: float
    how: str

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.fast_s if self.fast_s > 0 else math.nan


def fast_triaug(device: torch.device, pool: torch.Tensor, batch: int, s: BenchSettings) -> FastPath:
    aug = TriAug.from_config(AugmentConfig()).train()
    x = gather(pool, torch.arange(batch) % len(pool), device)  # (batch, 768, 400)
    loop, vec = time_pair(
        lambda: torch.cat([aug(x[i : i + 1]) for i in range(batch)]), lambda: aug(x), device, 1, s.repeats
    )
    return FastPath(
        "Tri-Aug vectorised over the batch vs a per-utterance loop",
        loop,
        vec,
        f"TriAug on {batch} x 768 x 400 on {device.type}, alternated, median of {s.repeats}",
    )


def fast_triaug_sync_free(device: torch.device, pool: torch.Tensor, batch: int, s: BenchSettings) -> FastPath:
    gathering = TriAug.from_config(AugmentConfig()).train()
    gathering.sync_free = False
    dense = TriAug.from_config(AugmentConfig()).train()
    dense.sync_free = True
    x = gather(pool, torch.arange(batch) % len(pool), device)
    slow, fast = time_pair(lambda: gathering(x), lambda: dense(x), device, 1, s.repeats)
    return FastPath(
        "Tri-Aug drawn for every row and kept with torch.where (no host sync; the GPU default) vs "
        "gathering the chosen rows with nonzero (the CPU default)",
        slow,
        fast,
        f"{batch} x 768 x 400, alternated, median of {s.repeats}; on a CPU the gathering path does less work",
    )


def fast_gather(device: torch.device, pool: torch.Tensor, batch: int, s: BenchSettings) -> FastPath:
    host = [u for u in pool[: min(len(pool), 256)].cpu()]  # per-utterance host tensors (a Dataset's items)
    index = torch.randint(0, len(host), (batch,))
    on_device = index.to(device)
    stacked, gathered = time_pair(
        lambda: torch.stack([host[i] for i in index.tolist()]).to(device).float(),
        lambda: gather(pool, on_device, device),
        device,
        1,
        s.repeats,
    )
    return FastPath(
        "batch from the placed features (index, cast per batch) vs per-utterance stack + host-to-device copy",
        stacked,
        gathered,
        f"{batch} x 768 x 400, alternated, median of {s.repeats}",
    )


def fast_modes(device: torch.device, pool: torch.Tensor, labels: torch.Tensor, s: BenchSettings) -> FastPath:
    """One training step in ``train.deterministic`` (default) and in the fast mode (cuDNN autotuning)."""
    step = BenchStep(s5_model(device), device)
    index = torch.randint(0, len(pool), (s.train_batch,), device=device)

    def run(deterministic: bool) -> None:
        with training_mode(deterministic):
            step(gather(pool, index, device), labels[index])

    det, fast = time_pair(lambda: run(True), lambda: run(False), device, s.warmup, max(2, s.train_steps))
    return FastPath(
        "training step: fast mode (train.deterministic: false, cuDNN autotuning) vs deterministic",
        det,
        fast,
        f"batch {s.train_batch}, alternated, median of {max(2, s.train_steps)}; "
        "results differ within float noise between fast-mode runs",
    )


def fast_fold(model: nn.Module, device: torch.device, s: BenchSettings) -> FastPath:
    folded = fold_batchnorm(model)
    x1 = torch.randn(1, *FEATURE_SHAPE, device=device)
    with torch.inference_mode():
        diff = (folded(x1) - model.eval()(x1)).abs().max().item()
        plain, fast = time_pair(lambda: model(x1), lambda: folded(x1), device, s.warmup, s.repeats)
    return FastPath(
        "inference: BatchNorm folded into the convs vs as trained",
        plain,
        fast,
        f"batch 1, alternated, median of {s.repeats}; max |logit difference| {diff:.1e}",
    )


def fast_half_cpu(model: nn.Module, s: BenchSettings) -> FastPath:
    cpu = torch.device("cpu")
    half = copy.deepcopy(model).eval().to(torch.bfloat16)
    x1 = torch.randn(1, *FEATURE_SHAPE)
    with torch.inference_mode():
        plain = median(time_calls(lambda: model.eval()(x1), cpu, 1, 3))
        fast = median(time_calls(lambda: half(x1.bfloat16()), cpu, 1, 1))
    return FastPath(
        "inference: bf16 weights vs fp32 on this CPU (ratio < 1 = slower)",
        plain,
        fast,
        "batch 1; bf16 median of 1 after 1 warm-up (no native bf16 kernels on most CPUs)",
    )


def fast_train_gpu(device: torch.device, pool: torch.Tensor, labels: torch.Tensor, s: BenchSettings) -> list:
    rows = []
    index = torch.randint(0, len(pool), (PAPER_BATCH,), device=device)
    variants = {
        "base": BenchStep(s5_model(device), device),
        "amp": BenchStep(s5_model(device), device, amp=True),
        "nosync": BenchStep(s5_model(device), device, sync_metrics=False),
    }
    batch = lambda: gather(pool, index, device)  # noqa: E731
    run = 10  # steps per timed call: a synchronisation only at the end, so reading metrics per step shows its cost
    with training_mode(True):
        times = {
            k: median(
                time_calls(lambda st=st: [st(batch(), labels[index]) for _ in range(run)], device, s.warmup, s.repeats)
            )
            / run
            for k, st in variants.items()
        }
    with training_mode(False):
        times["fast_amp"] = (
            median(
                time_calls(
                    lambda: [variants["amp"](batch(), labels[index]) for _ in range(run)], device, s.warmup, s.repeats
                )
            )
            / run
        )
    rows.append(
        FastPath(
            "training step: bf16 autocast + fast mode (train.amp, train.deterministic: false) vs "
            "the deterministic fp32 default",
            times["base"],
            times["fast_amp"],
            f"batch 64, {run} steps per timed call, median of {s.repeats}; the paper-run target needs this mode",
        )
    )
    rows.append(
        FastPath(
            "training step: bf16 autocast vs fp32",
            times["base"],
            times["amp"],
            f"batch 64, median of {s.repeats}; check accuracy before adopting",
        )
    )
    rows.append(
        FastPath(
            "training step: metrics kept on device vs .item() every step",
            times["base"],
            times["nosync"],
            f"batch 64, {run} steps per timed call (one synchronisation at its end), median of {s.repeats}",
        )
    )
    return rows
