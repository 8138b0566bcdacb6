"""Runtime settings of a process: seeds, the device and CPU threads."""

from __future__ import annotations

import logging
import os
import random
from contextlib import contextmanager
from typing import Optional

import numpy as np
import torch

from serlib.common.config import ConfigError

# Deterministic cuBLAS needs this before cuBLAS starts; set when serlib's runtime is first imported,
# which is before any CUDA call serlib makes (a caller that used CUDA earlier must set it itself).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA). Kernel determinism is ``training_mode``'s, not this."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


@contextmanager
def training_mode(deterministic: bool = True):
    """Run a block (training) with deterministic kernels, or with cuDNN autotuning instead; restored after.

    ``deterministic`` (``train.deterministic``, default true): cuDNN deterministic, no autotuning,
    ``torch.use_deterministic_algorithms(True, warn_only=True)``: a seed gives the same weights.
    Off: ``cudnn.benchmark`` picks the fastest kernels (results then vary within float noise).
    Scoped to the block, so extraction and the bench's inference timing keep the process defaults.
    """
    before = (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = deterministic, not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[:2]
        torch.use_deterministic_algorithms(before[2], warn_only=before[3])


def device_choice(name: str = "auto") -> tuple[str, str]:
    """``(device, why)`` for a device setting, without raising: what ``auto`` picks and the reason."""
    built = torch.version.cuda
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        why = f"{torch.cuda.get_device_name(index)}, compute capability {major}.{minor}, torch built for CUDA {built}"
        return ("cuda" if name in ("auto", "cuda") else name), why
    if built:
        why = (
            f"torch is built for CUDA {built} but sees no usable GPU (no device, or a driver too old "
            "for this build: check nvidia-smi)"
        )
    else:
        why = "this torch build has no CUDA (CPU wheel)"
    return ("cpu" if name == "auto" else name), why


_ANNOUNCED: set = set()


def resolve_device(name: str = "auto", key: str = "features.device") -> torch.device:
    """``auto`` = CUDA when there is one, else CPU (said once per process, with the reason);
    ``cuda`` without a GPU is an error naming ``key`` and the reason."""
    chosen, why = device_choice(name)
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key} is 'cuda' but {why}; use 'auto' or 'cpu'")
    if name == "auto" and (key, chosen) not in _ANNOUNCED:
        _ANNOUNCED.add((key, chosen))
        # The GPU found is news; its absence on a CPU machine is not (shown with -v: `serlib doctor` explains it).
        level = logging.INFO if chosen == "cuda" else logging.DEBUG
        logging.getLogger("serlib").log(level, "serlib: %s: auto -> %s (%s)", key, chosen, why)
    return torch.device(chosen)


@contextmanager
def cpu_threads(count: Optional[int]):
    """Run a block with ``count`` torch CPU threads (None: unchanged).

    Small ops (decoding, resampling, log-Mel, copies) ran ~50x slower with 2 OpenMP threads than
    with 1 on 2 cores shared with other processes: the threads spin waiting for each other.
    """
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def deterministic_algorithms(enabled: bool):
    """Run a block with ``torch.use_deterministic_algorithms(enabled)`` (warn-only kept), restored after.

    Inference of the int8 forms calls ``quantized_resize_cpu_``, which has no deterministic
    implementation: under training's determinism flags every call printed the same C++ warning
    (209 lines in one demo log). CPU inference gives the same result either way.
    """
    before, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)
