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
"""
from __future__ import annotations

import copy
import math
import os
import statistics
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from tqdm.auto import tqdm

from . import paper
from .augment import TriAug
from .config import AugmentConfig, ConfigError, FeaturesConfig, ModelConfig, TrainConfig
from .encoders import build_encoder, fit_frames
from .models import build_model, count_params
from .train import set_seed

MB = 1e6  # decimal megabytes, as the paper's "< 15 MB" and the "35 MB" use them
FEATURE_SHAPE = (768, 400)  # wav2vec2-base channels x the paper's 400 frames
N_TRAIN, N_VAL = 6096, 762  # the paper's Table 2 split sizes
PAPER_BATCH = 64  # paper 4.2
SAMPLE_RATE = 16000

# ---------------------------------------------------------------- the real corpora's clip lengths
# Quantiles (0 %, 5 %, ..., 100 %) of clip length in seconds, computed on 2026-11-25 from
# shared/real-names/{ravdess,emodb}_files.tsv (frames / sample_rate), clips of the six shared
# emotions only (MCULP keeps 1056 RAVDESS and 454 EmoDB clips). Used when those lists are absent.
LENGTH_QUANTILES_S = {
    "RAVDESS": (3.07, 3.237, 3.32, 3.403, 3.47, 3.504, 3.537, 3.57, 3.604, 3.637, 3.67, 3.737, 3.737,
                3.804, 3.837, 3.904, 3.971, 4.071, 4.171, 4.371, 5.272),
    "EmoDB": (1.226, 1.552, 1.672, 1.8, 1.884, 2.013, 2.096, 2.222, 2.363, 2.45, 2.583, 2.673, 2.813,
              2.953, 3.122, 3.252, 3.49, 3.732, 3.943, 5.036, 8.978),
}
# CHOSEN: the shared lists give no CREMA-D lengths. Its clips are ~1.3-5 s (most 2-3 s); we draw a
# log-normal with median 2.5 s and sigma 0.2, clipped to [1.27, 5.01] s. Not measured on the corpus.
CREMA_D_LENGTH = {"median_s": 2.5, "sigma": 0.2, "min_s": 1.27, "max_s": 5.01}
MCULP_KEPT = {"CREMA-D": 7442, "RAVDESS": 1056, "EmoDB": 454}  # corpus mixture of the drawn clips
EMOTIONS_KEPT = {"RAVDESS": ("01", "03", "04", "05", "06", "07"), "EmoDB": tuple("WEAFTN")}


def real_names_dir() -> Optional[Path]:
    """``$SERLIB_REAL_NAMES`` or ``shared/real-names`` beside the repository, when it holds the lists."""
    folder = Path(os.environ.get("SERLIB_REAL_NAMES", Path(__file__).resolve().parents[2] / "shared" / "real-names"))
    return folder if (folder / "ravdess_files.tsv").is_file() and (folder / "emodb_files.tsv").is_file() else None


def _real_lengths(folder: Path) -> dict[str, np.ndarray]:
    """Seconds per kept clip of RAVDESS and EmoDB, read from the real file lists."""
    out = {}
    for corpus, name in (("RAVDESS", "ravdess_files.tsv"), ("EmoDB", "emodb_files.tsv")):
        table = pd.read_csv(folder / name, sep="\t")
        stem = table["file"].str.rsplit("/", n=1).str[-1]
        emotion = stem.str.split("-").str[2] if corpus == "RAVDESS" else stem.str[5]
        kept = table[emotion.isin(EMOTIONS_KEPT[corpus])]
        out[corpus] = (kept["frames"] / kept["sample_rate"]).to_numpy(dtype=float)
    return out


def draw_clip_lengths(n: int, seed: int = 0, folder: Optional[Path] = None) -> tuple[np.ndarray, str]:
    """Lengths (s) of ``n`` clips drawn with the real corpora's mixture and length distributions.

    Corpus of each clip ~ MCULP's kept counts (CREMA-D 83 %, RAVDESS 12 %, EmoDB 5 %); RAVDESS and
    EmoDB lengths are resampled from the real file lists (or, without them, from the stored
    quantiles by inverse-CDF interpolation); CREMA-D's from ``CREMA_D_LENGTH`` (CHOSEN).

    Returns:
        (n,) seconds and a sentence saying where the lengths came from.
    """
    rng = np.random.default_rng(seed)
    names = list(MCULP_KEPT)
    weights = np.array([MCULP_KEPT[c] for c in names], dtype=float)
    corpus = rng.choice(len(names), size=n, p=weights / weights.sum())
    folder = folder or real_names_dir()
    real = _real_lengths(folder) if folder is not None else None
    c = CREMA_D_LENGTH
    lengths = np.clip(c["median_s"] * rng.lognormal(0.0, c["sigma"], n), c["min_s"], c["max_s"])
    for index, name in enumerate(names[1:], start=1):
        chosen = corpus == index
        if real is not None:
            lengths[chosen] = rng.choice(real[name], size=int(chosen.sum()))
        else:
            grid = np.linspace(0.0, 1.0, len(LENGTH_QUANTILES_S[name]))
            lengths[chosen] = np.interp(rng.random(int(chosen.sum())), grid, LENGTH_QUANTILES_S[name])
    source = f"real file lists in {folder}" if real is not None else "stored quantiles of the real file lists"
    return lengths, (f"RAVDESS/EmoDB lengths from {source}; CREMA-D log-normal, median "
                     f"{c['median_s']} s, sigma {c['sigma']}, clipped to {c['min_s']}-{c['max_s']} s (CHOSEN)")


def synthetic_waves(lengths_s: np.ndarray, seed: int = 0) -> list[torch.Tensor]:
    """Noise waveforms (samples,) at 16 kHz of the given lengths (encoder cost depends on length only)."""
    gen = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(int(round(s * SAMPLE_RATE)), generator=gen) for s in lengths_s]


# ---------------------------------------------------------------- settings and timing


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
    half_precision_cpu: bool  # time bf16 inference on CPU too (slow without native bf16 kernels)


def settings_for(device: str, quick: bool) -> BenchSettings:
    """The measurement sizes for ``device`` ("cpu" | "cuda"), CI-sized when ``quick``."""
    if device == "cuda":
        if quick:
            return BenchSettings(device, quick, 3, 5, 512, 64, 5, N_TRAIN, 64, 64, 64, False)
        return BenchSettings(device, quick, 10, 30, 1024, 64, 30, N_TRAIN, 64, 256, 256, False)
    if quick:
        return BenchSettings(device, quick, 1, 3, 8, 4, 2, 16, 1, 24, 2, False)
    return BenchSettings(device, quick, 2, 10, 32, 16, 3, 128, 8, 200, 8, True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def time_pair(baseline: Callable[[], object], fast: Callable[[], object], device: torch.device,
              warmup: int, repeats: int) -> tuple[float, float]:
    """Median seconds of two variants timed in alternation (so drifting machine load hits both alike)."""
    for _ in range(warmup):
        baseline(), fast()
    pairs = [(time_calls(baseline, device, 0, 1)[0], time_calls(fast, device, 0, 1)[0]) for _ in range(repeats)]
    return _median([p[0] for p in pairs]), _median([p[1] for p in pairs])


def _median(times: list[float]) -> float:
    return float(statistics.median(times))


# ---------------------------------------------------------------- memory


class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of tensors created inside the mode and still referenced (activations only).

    Storages are counted once (in-place ops and views share them) and released when the last
    Python tensor on them is collected. Weights and inputs, created outside, are not counted;
    kernel workspaces are invisible here.
    """

    def __init__(self):
        super().__init__()
        self.refs: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self._track(value)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        key = tensor.untyped_storage().data_ptr()
        if key == 0:
            return
        if key not in self.refs:
            self.refs[key], self.sizes[key] = 0, tensor.untyped_storage().nbytes()
            self.current += self.sizes[key]
            self.peak = max(self.peak, self.current)
        self.refs[key] += 1
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.current -= self.sizes.pop(key)
            del self.refs[key]


def activation_peak_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Peak live activation bytes of one eval forward of ``model`` on ``x`` (LiveTensorBytes)."""
    model.eval()
    with torch.inference_mode(), LiveTensorBytes() as tracker:
        model(x)
    return tracker.peak


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_peak_delta(fn: Callable[[], object], interval_s: float = 0.001) -> int:
    """Peak resident-set bytes above the level before ``fn`` runs (``/proc/self/statm`` sampled every 1 ms)."""
    base, peak, done = _rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    return max(0, max(peak[0], _rss_bytes()) - base)


def memory_analysis(params: int, activation_fp32_bytes: int, input_fp32_bytes: int) -> dict:
    """Bytes of weights and batch-1 activations per precision, and the paper's 3.9 M network beside them.

    Half-precision activations are the same tensors at 2 bytes per element (analytic from the
    fp32 measurement); int8 is weights only (activation formats of int8 deployment vary).
    """
    paper_params = paper.DEPLOYMENT["cnn_params_m"] * 1e6
    out = {"mem_params_fp32_mb": params * 4 / MB, "mem_params_half_mb": params * 2 / MB,
           "mem_params_int8_mb": params / MB, "mem_activation_peak_b1_fp32_mb": activation_fp32_bytes / MB,
           "mem_activation_peak_b1_half_mb": activation_fp32_bytes / 2 / MB,
           "mem_input_b1_fp32_mb": input_fp32_bytes / MB,
           "paper_3p9m_params_fp32_mb": paper_params * 4 / MB, "paper_3p9m_params_half_mb": paper_params * 2 / MB}
    out["mem_total_b1_fp32_mb"] = out["mem_params_fp32_mb"] + (activation_fp32_bytes + input_fp32_bytes) / MB
    out["mem_total_b1_half_mb"] = out["mem_params_half_mb"] + (activation_fp32_bytes + input_fp32_bytes) / 2 / MB
    return out


def memory_note(mem: dict, params: int) -> str:
    """What the paper's "< 15 MB" can and cannot mean for this network, in numbers."""
    limit = paper.DEPLOYMENT["gpu_mem_mb"]
    return (
        f"The paper's '< {limit:g} MB GPU memory' cannot be process memory (a CUDA context alone takes "
        f"hundreds of MB) and cannot be fp32 weights of the network as described: {params / 1e6:.2f} M "
        f"parameters are {mem['mem_params_fp32_mb']:.1f} MB in fp32 and {mem['mem_params_half_mb']:.1f} MB in "
        f"fp16/bf16, so even half precision exceeds {limit:g} MB; only int8 weights "
        f"({mem['mem_params_int8_mb']:.1f} MB) fit. For the 3.9 M parameters the paper states, fp32 weights are "
        f"{mem['paper_3p9m_params_fp32_mb']:.1f} MB (just above {limit:g} MB) and fp16 weights "
        f"{mem['paper_3p9m_params_half_mb']:.1f} MB, so '< {limit:g} MB' fits an allocator count of a 3.9 M "
        f"network in half precision (weights + batch-1 activations), or of activations alone. serlib at "
        f"batch 1: activations peak at {mem['mem_activation_peak_b1_fp32_mb']:.2f} MB fp32 / "
        f"{mem['mem_activation_peak_b1_half_mb']:.2f} MB half (+ input {mem['mem_input_b1_fp32_mb']:.2f} MB fp32); "
        f"weights + input + activations = {mem['mem_total_b1_fp32_mb']:.1f} MB fp32, "
        f"{mem['mem_total_b1_half_mb']:.1f} MB fp16/bf16.")


# ---------------------------------------------------------------- inference


def s5_model(device: torch.device, seed: int = 0) -> nn.Module:
    """The full ResAttn1D-CNN (S5: SE on, five blocks, paper widths) with seeded random weights."""
    torch.manual_seed(seed)
    return build_model(ModelConfig(), FEATURE_SHAPE[0]).to(device)


def bench_inference(model: nn.Module, device: torch.device, s: BenchSettings) -> dict:
    """Batch-1 latency, batched throughput and batch-1 memory of ``model`` in eval mode."""
    model.eval()
    x1 = torch.randn(1, *FEATURE_SHAPE, device=device)  # (1, 768, 400)
    with torch.inference_mode():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            t1 = time_calls(lambda: model(x1), device, s.warmup, s.repeats)
            peak_mb = torch.cuda.max_memory_allocated(device) / MB
            how = "torch.cuda.max_memory_allocated over batch-1 calls: weights + input + activations"
        else:
            held: dict = {}
            peak_mb = rss_peak_delta(lambda: held.setdefault("t", time_calls(
                lambda: model(x1), device, s.warmup, s.repeats))) / MB
            t1 = held["t"]
            how = ("resident-set increase over batch-1 calls (warm-up included), /proc/self/statm sampled "
                   "every 1 ms; weights and input were resident before; may under-count reused heap")
        xb = torch.randn(s.infer_batch, *FEATURE_SHAPE, device=device)  # (batch, 768, 400), after the memory figure
        tb = time_calls(lambda: model(xb), device, 1, max(2, s.repeats // 3))
    return {"infer_ms_b1": _median(t1) * 1e3, "infer_ms_b1_min": min(t1) * 1e3,
            "infer_utt_per_s": s.infer_batch / _median(tb),
            "infer_batch": s.infer_batch, "infer_peak_mem_mb": peak_mb, "infer_peak_mem_how": how,
            "infer_b1_repeats": len(t1), "infer_batched_repeats": len(tb)}


def forward_gflop(model: nn.Module, x: torch.Tensor) -> float:
    """GFLOP (2 x multiply-adds) of the convolutions and linear layers in one forward on ``x``."""
    total = [0.0]

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv1d):
            per_output = module.in_channels // module.groups * module.kernel_size[0]
            total[0] += 2.0 * per_output * output.numel()
        elif isinstance(module, nn.Linear):
            total[0] += 2.0 * module.in_features * output.numel()

    shadow = copy.deepcopy(model).to("meta").eval()  # shapes only: no arithmetic is done
    for module in shadow.modules():
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            module.register_forward_hook(count)
    with torch.inference_mode():
        shadow(x.to("meta"))
    return total[0] / 1e9


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval copy of ``model`` with each BatchNorm1d folded into the Conv1d registered just before it."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    for parent in folded.modules():
        children = list(parent.named_children())
        for (name_a, a), (name_b, b) in zip(children, children[1:]):
            if isinstance(a, nn.Conv1d) and isinstance(b, nn.BatchNorm1d):
                setattr(parent, name_a, fuse_conv_bn_eval(a, b))
                setattr(parent, name_b, nn.Identity())
    return folded


# ---------------------------------------------------------------- training


class TrainStep:
    """One training step of ``serlib.train`` (Tri-Aug, forward, cross-entropy, backward, clip, AdamW).

    Args:
        model: the classifier (train mode is set on each call).
        device: where everything lives.
        sync_metrics: read loss and accuracy back with ``.item()`` every step, as ``serlib.train`` does.
        amp: bf16 autocast for forward and loss (a GPU fast path; weights stay fp32).
    """

    def __init__(self, model: nn.Module, device: torch.device, sync_metrics: bool = True, amp: bool = False):
        train = TrainConfig()
        self.model, self.device, self.sync_metrics, self.amp = model, device, sync_metrics, amp
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, betas=(0.9, 0.999),
                                           weight_decay=train.weight_decay)
        self.augment = TriAug.from_config(AugmentConfig()).train()
        self.grad_clip = train.grad_clip
        self.total = torch.zeros(2, device=device)  # loss sum, correct count (device-side accumulation)

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """``inputs`` (batch, 768, frames) on the device, ``targets`` (batch,) label indices."""
        self.model.train()
        inputs = self.augment(inputs)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.model(inputs)  # (batch, 3)
            loss = nn.functional.cross_entropy(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        correct = (logits.argmax(1) == targets).sum()
        if self.sync_metrics:
            loss.item(), correct.item()
        else:
            self.total += torch.stack([loss.detach().float() * len(targets), correct.float()])


def _resident_pool(s: BenchSettings, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features (pool, 768, 400) and labels (pool,) resident on ``device``."""
    gen = torch.Generator(device=device).manual_seed(1)  # drawn on the device: 7.5 GB never crosses the bus
    pool = torch.randn(s.resident_pool, *FEATURE_SHAPE, generator=gen, device=device)
    return pool, torch.randint(0, 3, (s.resident_pool,), generator=gen, device=device)


def bench_training(s: BenchSettings, device: torch.device, pool: torch.Tensor, labels: torch.Tensor,
                   val_s: float) -> tuple[dict, TrainStep]:
    """Seconds per S5 epoch on cached, resident features (6096 utterances, batch 64, Tri-Aug on)."""
    step = TrainStep(s5_model(device), device)

    def one() -> None:
        index = torch.randint(0, len(pool), (s.train_batch,), device=device)
        step(pool[index], labels[index])  # the gather from resident features is part of the step

    times = time_calls(one, device, s.warmup, s.train_steps)
    step64 = _median(times) * PAPER_BATCH / s.train_batch
    train_only = N_TRAIN / PAPER_BATCH * step64
    return {"train_step_s_b64": step64, "train_s_per_epoch_train_only": train_only, "val_pass_s": val_s,
            "train_s_per_epoch": train_only + val_s, "train_timed_batch": s.train_batch,
            "train_timed_steps": len(times)}, step


# ---------------------------------------------------------------- extraction and on-the-fly embedding


def _features_config(device: torch.device) -> FeaturesConfig:
    features = FeaturesConfig(device=device.type)
    features.wav2vec2.weights = "random"  # same architecture and cost as pretrained wav2vec2-base
    return features


def encode_clip(encoder: nn.Module, wave: torch.Tensor, device: torch.device, frames: int = 400) -> torch.Tensor:
    """One clip's features fitted to ``frames``: (samples,) -> (channels, frames) on ``device``."""
    out = encoder(wave.unsqueeze(0).to(device))  # (1, channels, time)
    fitted, _ = fit_frames(out[0].T, frames)  # (channels, frames), centre-trimmed or zero-padded
    return fitted


def bench_extraction(encoder: nn.Module, waves: list[torch.Tensor], device: torch.device, repeats: int) -> float:
    """Clips per second of ``encoder`` over ``waves``, one clip per call (lengths differ: no padding)."""
    def run_all() -> None:
        for wave in waves:
            encode_clip(encoder, wave, device).cpu()  # features end on the host (the cache)

    encode_clip(encoder, torch.randn(SAMPLE_RATE) * 0.1, device)  # warm-up on a 1 s clip
    return len(waves) / _median(time_calls(run_all, device, 0, repeats))


def bench_on_the_fly(encoder: nn.Module, step: TrainStep, s: BenchSettings, device: torch.device,
                     train_step64: float, val_s: float, seed: int) -> dict:
    """The paper's epoch: every batch's embeddings recomputed from audio before the training step.

    Each timed batch draws ``otf_batch`` clips with the real length distribution, encodes them one
    by one (no padding), fits them to 400 frames, stacks them and runs the training step. The
    encoding part scales with the clip count (to 64, and to the 762 validation clips, assumed
    re-embedded every epoch too); the training part is the cached step at batch 64. Audio decoding
    is not included (the waves are in memory), so this is a lower bound of the paper's cost.
    """
    lengths, _ = draw_clip_lengths(s.otf_batch, seed=seed + 1)
    waves = synthetic_waves(lengths, seed=seed + 1)
    targets = torch.randint(0, 3, (s.otf_batch,), device=device)
    enc_times = []
    for _ in range(1 if device.type == "cpu" else 3):
        _sync(device)
        start = time.perf_counter()
        batch = torch.stack([encode_clip(encoder, w, device) for w in waves])  # (batch, 768, 400)
        _sync(device)
        enc_times.append(time.perf_counter() - start)
        step(batch, targets)
    per_clip = _median(enc_times) / s.otf_batch
    otf_epoch = N_TRAIN / PAPER_BATCH * (per_clip * PAPER_BATCH + train_step64) + N_VAL * per_clip + val_s
    return {"train_s_per_epoch_on_the_fly": otf_epoch, "otf_encode_s_per_clip": per_clip,
            "otf_timed_batch": s.otf_batch, "otf_timed_batches": len(enc_times)}


# ---------------------------------------------------------------- fast paths


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


def _fast_triaug(device: torch.device, pool: torch.Tensor, batch: int, s: BenchSettings) -> FastPath:
    aug = TriAug.from_config(AugmentConfig()).train()
    x = pool[torch.arange(batch, device=device) % len(pool)]  # (batch, 768, 400)
    loop, vec = time_pair(lambda: torch.cat([aug(x[i:i + 1]) for i in range(batch)]), lambda: aug(x), device, 1,
                          s.repeats)
    return FastPath("Tri-Aug vectorised over the batch vs a per-utterance loop", loop, vec,
                    f"TriAug on {batch} x 768 x 400 on {device.type}, alternated, median of {s.repeats}")


def _fast_gather(device: torch.device, pool: torch.Tensor, batch: int, s: BenchSettings) -> FastPath:
    host = [u for u in pool[: min(len(pool), 256)].cpu()]  # per-utterance host tensors (a Dataset's items)
    index = torch.randint(0, len(host), (batch,))
    on_device = index.to(device)
    stack, gather = time_pair(lambda: torch.stack([host[i] for i in index.tolist()]).to(device),
                              lambda: pool[on_device], device, 1, s.repeats)
    return FastPath("batch from resident features (index) vs per-utterance stack + host-to-device copy",
                    stack, gather, f"{batch} x 768 x 400, alternated, median of {s.repeats}")


def _fast_fold(model: nn.Module, device: torch.device, s: BenchSettings) -> FastPath:
    folded = fold_batchnorm(model)
    x1 = torch.randn(1, *FEATURE_SHAPE, device=device)
    with torch.inference_mode():
        diff = (folded(x1) - model.eval()(x1)).abs().max().item()
        plain, fast = time_pair(lambda: model(x1), lambda: folded(x1), device, s.warmup, s.repeats)
    return FastPath("inference: BatchNorm folded into the convs vs as trained", plain, fast,
                    f"batch 1, alternated, median of {s.repeats}; max |logit difference| {diff:.1e}")


def _fast_half_cpu(model: nn.Module, s: BenchSettings) -> FastPath:
    cpu = torch.device("cpu")
    half = copy.deepcopy(model).eval().to(torch.bfloat16)
    x1 = torch.randn(1, *FEATURE_SHAPE)
    with torch.inference_mode():
        plain = _median(time_calls(lambda: model.eval()(x1), cpu, 1, 3))
        fast = _median(time_calls(lambda: half(x1.bfloat16()), cpu, 1, 1))
    return FastPath("inference: bf16 weights vs fp32 on this CPU (ratio < 1 = slower)", plain, fast,
                    "batch 1; bf16 median of 1 after 1 warm-up (no native bf16 kernels on most CPUs)")


def _fast_train_gpu(device: torch.device, pool: torch.Tensor, labels: torch.Tensor, s: BenchSettings) -> list:
    rows = []
    index = torch.randint(0, len(pool), (PAPER_BATCH,), device=device)
    variants = {"base": TrainStep(s5_model(device), device),
                "amp": TrainStep(s5_model(device), device, amp=True),
                "nosync": TrainStep(s5_model(device), device, sync_metrics=False)}
    times = {k: _median(time_calls(lambda st=st: st(pool[index], labels[index]), device, s.warmup, s.repeats))
             for k, st in variants.items()}
    flags = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled())
    try:  # serlib.train.set_seed forces deterministic kernels; what do they cost?
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
        torch.use_deterministic_algorithms(False)
        times["free"] = _median(time_calls(lambda: variants["base"](pool[index], labels[index]), device,
                                           s.warmup, s.repeats))
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[:2]
        torch.use_deterministic_algorithms(flags[2], warn_only=True)
    rows.append(FastPath("training step: cudnn.benchmark, no determinism vs serlib.train's deterministic "
                         "kernels", times["base"], times["free"],
                         f"batch 64, median of {s.repeats}; results then differ between runs beyond seeds"))
    rows.append(FastPath("training step: bf16 autocast vs fp32", times["base"], times["amp"],
                         f"batch 64, median of {s.repeats}; check accuracy before adopting"))
    rows.append(FastPath("training step: metrics kept on device vs .item() every step", times["base"],
                         times["nosync"], f"batch 64, median of {s.repeats}"))
    return rows


def _fast_batched(encoder: nn.Module, device: torch.device, s: BenchSettings, clips: int = 16) -> FastPath:
    waves = torch.randn(clips, int(2.5 * SAMPLE_RATE), device=device) * 0.1  # clips of one length
    single, batched = time_pair(lambda: [encoder(w[None]) for w in waves], lambda: encoder(waves), device, 1,
                                s.repeats)
    return FastPath(f"{encoder.name}: {clips} equal-length clips in one call vs one call each", single, batched,
                    "2.5 s clips; only equal lengths may share a call (no padding reaches the encoder); "
                    "RAVDESS has 104 distinct lengths in 1440 files, EmoDB 530 in 535")


# ---------------------------------------------------------------- the whole benchmark


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
    set_seed(seed)  # the determinism flags serlib.train runs under
    started = time.perf_counter()
    bar = tqdm(total=6, desc="bench", disable=not progress)
    stages: dict[str, float] = {}
    tick = lambda name: stages.__setitem__(name, time.perf_counter() - started - sum(stages.values()))  # noqa: E731
    result = {"device": device, "device_name": _device_name(dev), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "quick": quick, "settings": asdict(s)}
    model = s5_model(dev)
    result["cnn_params"] = count_params(model)
    result.update(bench_inference(model, dev, s))
    x1 = torch.randn(1, *FEATURE_SHAPE, device=dev)
    mem = memory_analysis(result["cnn_params"], activation_peak_bytes(model, x1), x1.numel() * 4)
    result.update(mem, memory_note=memory_note(mem, result["cnn_params"]))
    result["infer_gflop_b1"] = forward_gflop(model, x1)
    result["infer_gflop_per_s_b1"] = result["infer_gflop_b1"] / (result["infer_ms_b1"] / 1e3)
    tick("inference_memory")
    bar.update()
    pool, labels = _resident_pool(s, dev)
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
    result["extract_clips_per_s_logmel"] = bench_extraction(logmel, waves[: s.logmel_clips], dev, s.repeats)
    tick("logmel")
    bar.update()
    wav2vec2 = build_encoder(features, "wav2vec2", dev)
    result["extract_clips_per_s_wav2vec2"] = bench_extraction(
        wav2vec2, waves[: s.w2v_clips], dev, 1 if dev.type == "cpu" else 3)
    tick("wav2vec2_build_and_extraction")
    bar.update()
    result.update(bench_on_the_fly(wav2vec2, step, s, dev, result["train_step_s_b64"], val_s, seed))
    result["cached_vs_otf_ratio"] = result["train_s_per_epoch_on_the_fly"] / result["train_s_per_epoch"]
    tick("on_the_fly")
    bar.update()
    paths = [_fast_triaug(dev, pool, PAPER_BATCH if dev.type == "cuda" else (8 if quick else 32), s),
             _fast_gather(dev, pool, PAPER_BATCH, s), _fast_fold(model, dev, s), _fast_batched(logmel, dev, s)]
    if dev.type == "cuda":
        paths += _fast_train_gpu(dev, pool, labels, s) + [_fast_batched(wav2vec2, dev, s, clips=8)]
    elif s.half_precision_cpu:
        paths.append(_fast_half_cpu(model, s))
    paths.append(FastPath("epoch: cached features vs wav2vec2 recomputed per batch (target >= 20x)",
                          result["train_s_per_epoch_on_the_fly"], result["train_s_per_epoch"],
                          "the two epoch rows above, same run"))
    result["fast_paths"] = [{"name": p.name, "baseline_s": p.baseline_s, "fast_s": p.fast_s, "ratio": p.ratio,
                             "how": p.how} for p in paths]
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
    "wav2vec2 equal-length batching on CPU (GPU only: compute-bound on two cores); it applies to exact-length "
    "buckets only: 98.8 % of RAVDESS files share their length with another (104 distinct lengths), "
    "EmoDB's almost never do (530 distinct in 535), CREMA-D's are not in the shared lists",
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


# ---------------------------------------------------------------- table and command


TARGETS = {  # issue 6 targets per device: (comparison, value)
    "cpu": {"infer_ms_b1": ("<=", 20.0), "extract_clips_per_s_logmel": (">=", 200.0),
            "cached_vs_otf_ratio": (">=", 20.0)},
    "cuda": {"infer_ms_b1": ("<=", 3.5), "infer_utt_per_s": (">=", 20000.0), "train_s_per_epoch": ("<=", 0.75),
             "extract_clips_per_s_wav2vec2": (">=", 800.0), "cached_vs_otf_ratio": (">=", 20.0)},
}


def paper_claims() -> dict:
    """The paper's figures under the benchmark's keys (numbers; the epoch figure is derived)."""
    d = paper.DEPLOYMENT
    return {"cnn_params": d["cnn_params_m"] * 1e6, "infer_ms_b1": d["infer_ms"], "infer_peak_mem_mb": d["gpu_mem_mb"],
            "train_s_per_epoch_on_the_fly": d["train_hours"] * 3600 / paper.LEARNING_CURVE["early_stop_epoch"]}


def _paper_column() -> dict:
    d = paper.DEPLOYMENT
    per_epoch = d["train_hours"] * 3600 / paper.LEARNING_CURVE["early_stop_epoch"]
    return {"cnn_params": f"{d['cnn_params_m']:g} M",
            "infer_ms_b1": f"< {d['infer_ms']:g} ({d['infer_ms_rtx3060']:g} on an RTX 3060 laptop)",
            "infer_peak_mem_mb": f"< {d['gpu_mem_mb']:g} GPU ({d['gpu_mem_mb_rtx3060']:g} on an RTX 3060)",
            "train_s_per_epoch_on_the_fly": f"~{per_epoch:.0f} (derived: ~{d['train_hours']:g} h / "
                                            f"{paper.LEARNING_CURVE['early_stop_epoch']} epochs)"}


def _rows_how(r: dict) -> dict:
    s = r["settings"]

    def scaled(batch: int) -> str:
        return "measured" if batch == PAPER_BATCH else f"measured at batch {batch}, scaled x{PAPER_BATCH / batch:g}"

    return {
        "cnn_params": "count_params(ResAttn1DCNN()), the paper's widths and kernels",
        "infer_ms_b1": (f"1 x 768 x 400, eval, inference_mode; median of {r['infer_b1_repeats']} after "
                        f"{s['warmup']} warm-up"),
        "infer_gflop_b1": (f"2 x multiply-adds of convs and linear layers; {r['infer_gflop_per_s_b1']:.0f} GFLOP/s "
                           f"achieved at the batch-1 median (fastest call: {r['infer_ms_b1_min']:.1f} ms)"),
        "infer_utt_per_s": f"batch {r['infer_batch']}, median of {r['infer_batched_repeats']} after 1 warm-up",
        "infer_peak_mem_mb": r["infer_peak_mem_how"],
        "mem_activation_peak_b1_fp32_mb": "live activation bytes at peak (TorchDispatchMode tracker), batch 1",
        "mem_total_b1_half_mb": "fp16/bf16 weights + input + activations at 2 bytes/element (analytic)",
        "train_s_per_epoch": (f"{N_TRAIN}/{PAPER_BATCH} steps x median step ({scaled(r['train_timed_batch'])}; "
                              f"{r['train_timed_steps']} timed after {s['warmup']} warm-up; resident pool of "
                              f"{s['resident_pool']}) + validation pass of {N_VAL} at the batched rate"),
        "train_s_per_epoch_on_the_fly": (f"wav2vec2-base (random weights) per clip, measured on "
                                         f"{r['otf_timed_batches']} batch(es) of {r['otf_timed_batch']} clips, "
                                         f"scaled to {N_TRAIN}+{N_VAL} clips (val assumed re-embedded), + the cached epoch; "
                                         f"no audio decoding"),
        "cached_vs_otf_ratio": "on-the-fly epoch / cached epoch, same run",
        "extract_clips_per_s_logmel": f"{s['logmel_clips']} clips, one per call, median of {s['repeats']} passes",
        "extract_clips_per_s_wav2vec2": f"{s['w2v_clips']} clips, one per call (no padding), after 1 warm-up clip",
    }


UNITS = {"cnn_params": "", "infer_ms_b1": "ms", "infer_gflop_b1": "GFLOP", "infer_utt_per_s": "utt/s",
         "infer_peak_mem_mb": "MB",
         "mem_activation_peak_b1_fp32_mb": "MB", "mem_total_b1_half_mb": "MB", "train_s_per_epoch": "s",
         "train_s_per_epoch_on_the_fly": "s", "cached_vs_otf_ratio": "x", "extract_clips_per_s_logmel": "clips/s",
         "extract_clips_per_s_wav2vec2": "clips/s"}


def _meets(value: float, target: tuple[str, float]) -> str:
    ok = value <= target[1] if target[0] == "<=" else value >= target[1]
    return f"{target[0]} {target[1]:g}: {'met' if ok else 'NOT met'}"


def bench_table(result: dict) -> pd.DataFrame:
    """One row per figure: metric, value, unit, the paper's claim, the issue's target, how measured."""
    how, claims, targets = _rows_how(result), _paper_column(), TARGETS[result["device"]]
    rows = []
    for metric, unit in UNITS.items():
        value = result[metric]
        rows.append({"metric": metric, "value": f"{value:,.0f}" if metric == "cnn_params" else f"{value:.4g}",
                     "unit": unit, "paper": claims.get(metric, ""),
                     "target": _meets(value, targets[metric]) if metric in targets else "", "how": how[metric]})
    return pd.DataFrame(rows)


def fast_path_table(result: dict) -> pd.DataFrame:
    """The fast paths: baseline and fast seconds, their ratio and how each was measured."""
    return pd.DataFrame(result["fast_paths"])[["name", "baseline_s", "fast_s", "ratio", "how"]]


def format_report(result: dict) -> str:
    """The printed report: header, the figures, the fast paths, the memory note, what was not measured."""
    pd.set_option("display.max_colwidth", 120)
    pd.set_option("display.width", 250)
    head = (f"serlib bench on {result['device']} ({result['device_name']}, torch {result['torch']}, "
            f"{result['threads']} threads){' --quick' if result['quick'] else ''}: "
            f"{result['bench_seconds']:.0f} s")
    parts = [head, bench_table(result).to_string(index=False), "", "Fast paths (ratio = baseline / fast):",
             fast_path_table(result).to_string(index=False, float_format=lambda v: f"{v:.4g}"), "",
             "Memory: " + result["memory_note"], "", "Clip lengths: " + result["clip_lengths_source"],
             "Not measured: " + "; ".join(result["not_measured"])]
    return "\n".join(parts)


def main_bench(device: str = "cpu", json_path: Optional[str] = None, quick: bool = False) -> int:
    """``serlib bench``: run, print the table and write the JSON (when ``json_path`` is given)."""
    import json

    result = run_bench(device, quick)
    print(format_report(result))
    result["table"] = bench_table(result).to_dict(orient="records")
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"serlib bench: wrote {path}")
    return 0
