"""Where a run's features live while it trains: sized against the device's free memory.

The feature cache stores float16, so features held in float16 and cast to float32 per batch give the
training step exactly the values a float32 copy would (tested): on a GPU they are kept in float16,
half the memory. They stay on the GPU when they fit in ``fraction`` of its free memory (the rest is
left to the network's activations, cuDNN / cuBLAS workspaces and the allocator); otherwise they stay
in pinned host memory and each batch is copied to the GPU without blocking. On the CPU nothing moves:
float32 host tensors, as always.

``plan_placement`` decides, ``Placement.describe`` says what was decided and why (logged by the
training stage and recorded in each run's ``metrics.json``), and ``to_training_layout`` applies it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Optional

import torch

# Share of the GPU's free memory the resident features may take (CHOSEN, not measured: no GPU has run
# serlib yet). S5 at batch 64 x 768 x 400 needs about 1.5 GB of activations in fp32.
RESIDENT_FRACTION = 0.6


@dataclass(frozen=True)
class Placement:
    """The decision: ``where`` ("device" or "host"), the stored dtype, pinned or not, and the figures."""

    where: str  # "device": resident on the training device; "host": CPU memory, copied per batch
    dtype: str  # "float16" | "float32"
    pinned: bool
    device: str  # the training device
    feature_bytes: int  # bytes of the run's features in the chosen dtype
    free_bytes: Optional[int]  # the device's free memory when planned (None: a CPU)
    reason: str

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def describe(self) -> str:
        size = f"{self.feature_bytes / 1e9:.2f} GB"
        return f"features {size} {self.dtype} on {self.where} ({self.device}): {self.reason}"

    def as_dict(self) -> dict:
        return asdict(self)


def plan_placement(
    elements: int, device: torch.device, free_bytes: Optional[int] = None, fraction: float = RESIDENT_FRACTION
) -> Placement:
    """Decide where ``elements`` feature values (every split together) live for training on ``device``.

    Args:
        elements: total count of feature values (sum of ``x.numel()`` over the splits).
        device: the training device.
        free_bytes: the device's free memory (None: ``torch.cuda.mem_get_info`` on a CUDA device); tests
            inject a figure to exercise both branches without a GPU.
        fraction: the share of free memory the features may take.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return Placement(
            "device",
            "float32",
            False,
            str(device),
            elements * 4,
            None,
            "CPU training: float32 in host memory (nothing to copy)",
        )
    if free_bytes is None:
        free_bytes = int(torch.cuda.mem_get_info(device)[0])
    need = elements * 2  # float16, as the cache stores them
    budget = int(free_bytes * fraction)
    if need <= budget:
        return Placement(
            "device",
            "float16",
            False,
            str(device),
            need,
            free_bytes,
            f"fit in {fraction:.0%} of {free_bytes / 1e9:.1f} GB free; cast to float32 per batch",
        )
    return Placement(
        "host",
        "float16",
        True,
        str(device),
        need,
        free_bytes,
        f"more than {fraction:.0%} of {free_bytes / 1e9:.1f} GB free: pinned host memory, "
        "each batch copied without blocking",
    )


STREAM_THREADS_MAX = 8  # CHOSEN (not measured on a GPU): threads copying a streamed batch out of the maps


def stream_threads(device: torch.device) -> int:
    """Threads that copy each streamed batch (``LayerStack``): on a GPU the host's cores (up to 8), which have
    nothing else to do; on the CPU 1, as the cores are training's."""
    return min(STREAM_THREADS_MAX, os.cpu_count() or 1) if torch.device(device).type == "cuda" else 1


def streamed(feature_bytes: int, device: torch.device) -> Placement:
    """The placement of several layers (``LayerStack``): never in memory, each batch read from the cache's maps."""
    threads = stream_threads(device)
    return Placement(
        "stream",
        "float16",
        torch.device(device).type == "cuda",
        str(device),
        feature_bytes,
        None,
        "several encoder layers: each batch read from the memory-mapped cache (never all in memory) "
        f"by {threads} thread(s)",
    )


def to_training_layout(x: torch.Tensor, placement: Placement) -> torch.Tensor:
    """``x`` (a CPU tensor of one split) stored as ``placement`` says."""
    out = x.to(placement.torch_dtype)
    if placement.where == "host":
        return out.pin_memory() if placement.pinned and torch.cuda.is_available() else out
    return out.to(placement.device, non_blocking=False)


def gather(x: torch.Tensor, index: torch.Tensor, device: torch.device, frames: Optional[int] = None) -> torch.Tensor:
    """The batch ``x[index, :, :frames]`` on ``device`` in float32: a fresh tensor (safe to change in place).

    ``x`` may be float16 (cast here, after the copy: half the bytes move) and may sit on the host while
    ``device`` is a GPU (the copy does not block when ``x`` is pinned). ``index`` may sit anywhere. ``x`` may
    also be a ``serlib.features.stream.LayerStack`` (several layers, memory-mapped): it copies the batch out.
    """
    if isinstance(x, torch.Tensor):
        source = x if frames is None or frames >= x.shape[2] else x[:, :, :frames]
        batch, pin = torch.index_select(source, 0, index.to(x.device)), x.is_pinned()
    else:  # a LayerStack: (batch, layers, channels, frames) float16 copied out of the maps
        batch, pin = x.gather(index.cpu(), frames), torch.cuda.is_available()
    if batch.device != torch.device(device):
        batch = batch.pin_memory() if pin else batch
        batch = batch.to(device, non_blocking=True)
    return batch if batch.dtype == torch.float32 else batch.float()
