"""One content digest for every key serlib derives from settings: hex digits of a hash of JSON data.

Run keys, learning-rate grid keys, probe keys, feature-cache folder names and the manifest's key are each
``json.dumps(payload, sort_keys=True, default=str)`` hashed. The values are the ones serlib has always written,
so existing caches, manifests and trained runs keep their keys: sha256 for the run, grid and probe keys, sha1
for the feature cache's folders and the manifest's key (folders and files already carry those names).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def json_digest(payload: Any, length: int = 16, algorithm: str = "sha256") -> str:
    """The first ``length`` hex digits of ``algorithm`` over ``payload`` as sorted JSON (non-JSON values as text).

    Args:
        payload: plain data (dicts, lists, numbers, text); other objects enter as ``str(value)``.
        length: hex digits kept (16 for keys; 8 for a suffix).
        algorithm: a ``hashlib`` name ("sha256", or "sha1" where a stored name was made with it).
    """
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.new(algorithm, text.encode()).hexdigest()[:length]


def bytes_digest(data: bytes) -> str:
    """32 hex digits of BLAKE2b over ``data`` (a file's or a table's bytes)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()
