"""Fault injection for the Ray sweep test (not a test module): Ray runs ``kill_once_at_checkpoint`` in every
worker it starts (``runtime_env={"worker_process_setup_hook": ...}``). The worker that trains the run named by
``SERLIB_TEST_KILL_RUN`` kills itself with SIGKILL when that run starts writing its checkpoint (its history,
predictions and metrics already on disk: a half-written run), once: ``SERLIB_TEST_KILL_MARKER`` records the kill."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import torch


def kill_once_at_checkpoint() -> None:
    marker, run = Path(os.environ["SERLIB_TEST_KILL_MARKER"]), os.environ["SERLIB_TEST_KILL_RUN"]
    save = torch.save

    def save_or_die(obj, f, *args, **kwargs):
        if str(f).endswith(f"{run}/checkpoint.pt") and not marker.exists():
            marker.write_text(f"killed pid {os.getpid()} while it wrote {f}\n")
            os.kill(os.getpid(), signal.SIGKILL)
        return save(obj, f, *args, **kwargs)

    torch.save = save_or_die
