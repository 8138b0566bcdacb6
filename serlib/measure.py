"""Measurement primitives of ``serlib bench``: clip lengths, timing, memory, GFLOP and the timed workloads.

Owns the clip lengths of the real corpora (``draw_clip_lengths``, the stored ``LENGTH_QUANTILES_S``
and the CHOSEN ``CREMA_D_LENGTH``) and the noise waves drawn at those lengths; synchronised timing
(``time_calls``, ``time_pair``); memory (live activation bytes, resident-set peaks, bytes per
precision and the note on the paper's "< 15 MB"); GFLOP counting and BatchNorm folding; and the
workloads the benchmarks time (the S5 model, one training step, one clip's encoding).
``serlib.bench`` runs them and reports; nothing here imports it.
"""
from __future__ import annotations

import copy
import os
import statistics
import threading
import time
import weakref
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from . import paper
from .augment import TriAug
from .config import AugmentConfig, ModelConfig, TrainConfig
from .encoders import fit_frames
from .models import build_model

MB = 1e6  # decimal megabytes, as the paper's "< 15 MB" and the "35 MB" use them
FEATURE_SHAPE = (768, 400)  # wav2vec2-base channels x the paper's 400 frames
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


# ---------------------------------------------------------------- timing


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


# ---------------------------------------------------------------- workloads, GFLOP and folding


def s5_model(device: torch.device, seed: int = 0) -> nn.Module:
    """The full ResAttn1D-CNN (S5: SE on, five blocks, paper widths) with seeded random weights."""
    torch.manual_seed(seed)
    return build_model(ModelConfig(), FEATURE_SHAPE[0]).to(device)


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


def encode_clip(encoder: nn.Module, wave: torch.Tensor, device: torch.device, frames: int = 400) -> torch.Tensor:
    """One clip's features fitted to ``frames``: (samples,) -> (channels, frames) on ``device``."""
    out = encoder(wave.unsqueeze(0).to(device))  # (1, channels, time)
    fitted, _ = fit_frames(out[0].T, frames)  # (channels, frames), centre-trimmed or zero-padded
    return fitted


def encode_padded(encoder: nn.Module, waves: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Clips of any lengths in one masked, zero-padded call, as ``serlib.features`` batches them.

    Returns each clip's own frames, ``(channels, frames_i)`` on ``device`` (padding sliced off).
    """
    lengths = torch.tensor([len(w) for w in waves], device=device)
    padded = torch.zeros(len(waves), int(lengths.max()), device=device)  # (clips, samples)
    for row, wave in zip(padded, waves):
        row[:len(wave)] = wave.to(device)
    out = encoder(padded, lengths)  # (clips, channels, time)
    return [out[i, :, :encoder.frames_for(n)] for i, n in enumerate(lengths.tolist())]
