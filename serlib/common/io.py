"""Atomic writes: a reader never sees half a file (temporary name in the same folder + ``os.replace``)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # a type only: the run folder's paths, read by the command line's checks, stay free of pandas
    import pandas as pd


class RunFileError(ValueError):
    """A file serlib wrote (a run's config, timings, checkpoint, a bundle's metadata) that cannot be read back."""


def read_json(path: str | Path, fix: str = "") -> Any:
    """The JSON in ``path``; a file that is not JSON is a ``RunFileError`` naming it (and ``fix``).

    Raises:
        FileNotFoundError: no such file (other ``OSError``s pass through).
        RunFileError: the bytes are not UTF-8 JSON.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        return json.loads(raw)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        reason = " ".join(str(err).split())
        raise RunFileError(f"{path}: damaged, not JSON ({reason})" + (f"; {fix}" if fix else "")) from None


def _temporary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any, indent: int = 1) -> Path:
    """Write ``data`` as JSON (``default=str`` for paths and the like) atomically."""
    return write_text_atomic(path, json.dumps(data, indent=indent, default=str))


def write_csv_atomic(df: pd.DataFrame, path: str | Path, index: bool = False) -> Path:
    """Write a CSV atomically."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        df.to_csv(tmp, index=index)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_files_atomic(files: Sequence[tuple[str | Path, bytes]]) -> list[Path]:
    """Write several files as a set: every one to a temporary name first (synced to disk), then each
    renamed into place in the given order, so put the most depended-on file last.

    A failure while writing (a full disk) leaves every old file as it was. A failure between two
    renames leaves the files before it new and the rest old: a reader that needs the set to agree
    checks a record written with it (``serlib.data.mculp`` keeps each table's digest in
    ``manifest.meta.json``). Temporary files are removed either way.

    Returns:
        The paths, in order.
    """
    paths = [Path(path) for path, _ in files]
    temporaries: list[Path] = []
    try:
        for path, (_, data) in zip(paths, files):
            temporaries.append(_temporary(path))
            with open(temporaries[-1], "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in zip(temporaries, paths):
            os.replace(tmp, path)
    finally:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)
    return paths
