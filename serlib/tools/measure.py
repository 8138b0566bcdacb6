"""Measurement primitives of ``serlib bench``: memory, GFLOP and the timed workloads.

Memory (live activation bytes, resident-set peaks, bytes per precision and the note on the
paper's "< 15 MB"); GFLOP counting; the workloads the benchmarks time (the S5 model, the
engine's training step, one clip's encoding) and the noise waves drawn at the real corpora's
clip lengths (``serlib.data.lengths``). Timing is ``serlib.common.timing``. ``serlib.tools.bench``
runs them and reports; nothing here imports it.
"""

from __future__ import annotations

import copy
import os
import threading
import time
import weakref
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from serlib.common import paper
from serlib.common.config import AugmentConfig, ModelConfig, TrainConfig
from serlib.common.facts import SAMPLE_RATE
from serlib.features.encoders import fit_frames
from serlib.modelling.augment import TriAug
from serlib.modelling.models import build_model
from serlib.modelling.train import TrainStep, make_optimizer

MB = 1e6  # decimal megabytes, as the paper's "< 15 MB" and the "35 MB" use them
FEATURE_SHAPE = (paper.PAPER_INPUT_CHANNELS["wav2vec2"], paper.PAPER_FRAMES)  # 768 x 400
N_TRAIN, N_VAL = 6096, 762  # the paper's Table 2 split sizes
PAPER_BATCH = 64  # paper 4.2


def synthetic_waves(lengths_s: np.ndarray, seed: int = 0) -> list[torch.Tensor]:
    """Noise waveforms (samples,) at 16 kHz of the given lengths (encoder cost depends on length only)."""
    gen = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(int(round(s * SAMPLE_RATE)), generator=gen) for s in lengths_s]


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
    out = {
        "mem_params_fp32_mb": params * 4 / MB,
        "mem_params_half_mb": params * 2 / MB,
        "mem_params_int8_mb": params / MB,
        "mem_activation_peak_b1_fp32_mb": activation_fp32_bytes / MB,
        "mem_activation_peak_b1_half_mb": activation_fp32_bytes / 2 / MB,
        "mem_input_b1_fp32_mb": input_fp32_bytes / MB,
        "paper_3p9m_params_fp32_mb": paper_params * 4 / MB,
        "paper_3p9m_params_half_mb": paper_params * 2 / MB,
    }
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
        f"{mem['mem_total_b1_half_mb']:.1f} MB fp16/bf16."
    )


# ---------------------------------------------------------------- workloads, GFLOP and folding


def s5_model(device: torch.device, seed: int = 0, conv: str = "standard") -> nn.Module:
    """The full ResAttn1D-CNN (S5: SE on, five blocks, paper widths) with seeded random weights;
    ``conv="separable"``: depthwise-separable convs inside the blocks (``model.conv``)."""
    torch.manual_seed(seed)
    return build_model(ModelConfig(conv=conv), FEATURE_SHAPE[0]).to(device)


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


class BenchStep:
    """``serlib.modelling.train.TrainStep`` as the benchmark times it: S5 with the paper's optimizer,
    default Tri-Aug and clipping, reading the metrics back every step (as the engine does) or
    accumulating them on the device.

    Args:
        model: the classifier.
        device: where everything lives.
        sync_metrics: read loss and accuracy back with ``.item()`` every step, as ``fit`` does.
        amp: bf16 autocast for forward and loss (a GPU fast path; weights stay fp32).
    """

    def __init__(self, model: nn.Module, device: torch.device, sync_metrics: bool = True, amp: bool = False):
        train = TrainConfig()
        self.model, self.device, self.sync_metrics = model, device, sync_metrics
        self.step = TrainStep(
            model,
            make_optimizer(model, train.lr, train.weight_decay),
            TriAug.from_config(AugmentConfig()),
            train.grad_clip,
            amp,
        )
        self.total = torch.zeros(2, device=device)  # loss sum, correct count (device-side accumulation)

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """``inputs`` (batch, 768, frames) on the device, ``targets`` (batch,) label indices."""
        loss, correct = self.step(inputs, targets)
        if self.sync_metrics:
            loss.item(), correct.item()
        else:
            self.total += torch.stack([loss.float() * len(targets), correct.float()])


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
        row[: len(wave)] = wave.to(device)
    out = encoder(padded, lengths)  # (clips, channels, time)
    return [out[i, :, : encoder.frames_for(n)] for i, n in enumerate(lengths.tolist())]
