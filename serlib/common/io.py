"""Atomic writes: a reader never sees half a file (temporary name in the same folder + ``os.replace``)."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pandas as pd


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
