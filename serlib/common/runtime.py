"""Runtime settings of a process: seeds, the device and CPU threads."""
from __future__ import annotations

import os
import random
from contextlib import contextmanager
from typing import Optional

import numpy as np
import torch

from serlib.common.config import ConfigError


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and, optionally, force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(name: str = "auto", key: str = "features.device") -> torch.device:
    """``auto`` = CUDA when there is one, else CPU; ``cuda`` without a GPU is an error naming ``key``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key} is 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device(name)


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
    before, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)

