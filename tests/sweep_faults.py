"""Fault injection for the Ray sweep test (not a test module): Ray runs ``kill_once_at_checkpoint`` in every
worker it starts (``runtime_env={"worker_process_setup_hook": ...}``). The worker that trains the run named by
``SERLIB_TEST_KILL_RUN`` kills itself with SIGKILL when that run starts writing its checkpoint into its staging folder
(``.seed<k>.new-*``, its history, predictions and metrics already there: a half-written run), once:
``SERLIB_TEST_KILL_MARKER`` records the kill."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import torch


def kill_once_at_checkpoint() -> None:
    marker, run = Path(os.environ["SERLIB_TEST_KILL_MARKER"]), os.environ["SERLIB_TEST_KILL_RUN"]
    save = torch.save

    def save_or_die(obj, f, *args, **kwargs):
        parent, name = run.rsplit("/", 1)
        staged = re.search(re.escape(parent) + r"/\." + re.escape(name) + r"\.new-[0-9a-f]+/checkpoint\.pt$", str(f))
        if staged and not marker.exists():
            marker.write_text(f"killed pid {os.getpid()} while it wrote {f}\n")
            os.kill(os.getpid(), signal.SIGKILL)
        return save(obj, f, *args, **kwargs)

    torch.save = save_or_die
