"""Advisory file locks on a sidecar file, for files that several processes update (annotations, the
feature cache).

``file_lock(path)`` holds an exclusive ``fcntl.flock`` on ``path`` (created if missing, never
deleted: removing a lock file while another process waits on it would let two holders in). The
lock belongs to the open file, so two threads or two objects of one process exclude each other
too, and the kernel releases it when its holder dies: a killed process never leaves a stale lock.

Platforms without ``fcntl`` (Windows): no lock is taken and a warning says so once. What relies on
the lock stays safe for one writer at a time; two writers in the same instant may lose an update
(annotations: each save still re-reads and merges, so only an edit made in the same instant as
another station's save can be lost; the feature cache: both extractions compute, results correct).

A folder the process cannot write (a read-only, shared cache) gets no lock either: nobody
without write access can change what the lock protects, so readers go ahead without it.
"""

from __future__ import annotations

import errno
import os
import socket
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

_warned_no_fcntl = False


def lock_holder(path: Path) -> str:
    """What the current holder wrote into the lock file ("pid 123 on host since ..."), or ""."""
    try:
        return Path(path).read_text(errors="replace").strip()
    except OSError:
        return ""


@contextmanager
def file_lock(path: str | Path, on_wait: Optional[Callable[[str], None]] = None) -> Iterator[bool]:
    """Hold an exclusive lock on the sidecar file ``path`` for the ``with`` block.

    Args:
        path: the lock file (created if missing; its parent folder must exist).
        on_wait: called once with the holder's description when the lock is busy, before waiting.

    Yields:
        True when the lock is held; False when none could be taken (no ``fcntl``, or a folder
        this process cannot write).
    """
    path = Path(path)
    if fcntl is None:
        _warn_no_fcntl()
        yield False
        return
    fd = _open_lock_file(path)
    if fd is None:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(lock_holder(path) or "another process")
            fcntl.flock(fd, fcntl.LOCK_EX)
        _write_holder(fd)
        yield True
    finally:
        os.close(fd)  # closing the last descriptor of the open file releases the lock


def _open_lock_file(path: Path) -> Optional[int]:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
    try:  # an existing lock file in a read-only folder can still be locked
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


def _write_holder(fd: int) -> None:
    text = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
    except OSError:  # opened read-only: the holder's name is a courtesy, not needed
        pass


def _warn_no_fcntl() -> None:
    global _warned_no_fcntl
    if not _warned_no_fcntl:
        _warned_no_fcntl = True
        warnings.warn(
            "this platform has no fcntl: files shared between processes (annotations, the feature "
            "cache) are not locked; run one listening station or extraction per folder at a time",
            stacklevel=3,
        )
