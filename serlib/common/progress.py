"""Live progress of a run: what the running stage is doing, written where the runner can read it.

Stages (extraction, training) call a ``Progress`` with a one-line description of where they are; it
appends a JSON line to ``<run>/progress.jsonl`` (at most one line per ``min_interval`` seconds unless
forced) and logs it at DEBUG level. ``serlib run`` reads the last line for its heartbeat
(``serlib.report.runner``). Appending never raises: progress is a courtesy, not a result.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Optional

log = logging.getLogger("serlib")


class Progress:
    """Append progress events of one stage to ``path`` (None: log only)."""

    def __init__(self, path: Optional[Path], stage: str, min_interval: float = 2.0):
        self.path, self.stage, self.min_interval = (Path(path) if path else None), stage, min_interval
        self.last = 0.0

    def __call__(self, text: str, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last < self.min_interval:
            return
        self.last = now
        log.debug("%s: %s", self.stage, text)
        if self.path is None:
            return
        try:
            with open(self.path, "a", encoding="utf-8") as fh:  # one short write per line: readers see whole lines
                fh.write(json.dumps({"time": now, "stage": self.stage, "text": text}) + "\n")
        except OSError:
            pass


def last_event(path: Path, since: float = 0.0) -> Optional[dict]:
    """The last whole event of ``path`` written at or after ``since`` (None: none, or no file)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4096))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        return event if event.get("time", 0) >= since else None
    return None


class StdoutHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stdout`` is at the time of each line (pytest and Jupyter
    replace it; a handler bound to the stream it was created with would write to a stale one)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the property always reads sys.stdout
        pass


def log_to_stdout(level: Optional[int] = None, unless_configured: bool = False) -> logging.Logger:
    """The ``serlib`` logger printing its lines on stdout (one ``StdoutHandler``, added once).

    Args:
        level: set the logger to it; None leaves a set level, else INFO.
        unless_configured: leave a logger that already has any handler alone (a notebook or a Python
            caller whose own logging, or the CLI's, is in place).
    """
    log = logging.getLogger("serlib")
    if unless_configured and log.handlers:
        return log
    if not any(isinstance(h, StdoutHandler) for h in log.handlers):
        log.addHandler(StdoutHandler())
    if level is not None:
        log.setLevel(level)
    elif log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    return log
