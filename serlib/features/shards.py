"""The shard store of the feature cache: the files of one key folder, how they are checked, read and written.

A key folder (``serlib.features.keys`` names it) holds::

    <input>-<key id>/shard-*.npy   (channels, frames) float16, clips one after another in time
    <input>-<key id>/shard-*.json  the shard's index: its size, CRC-32 and shape, and
                                   [[content hash, frame offset, frames, row CRC-32], ...]
    <input>-<key id>/.lock         held by the extraction filling the folder
    <input>-<key id>/.last_used    touched by every extraction and load (``serlib cache list``)

Each clip's full frame sequence is stored (no padding); trimming/padding to ``features.frames`` happens
when it is read. A shard is written to a temporary name and renamed, then its index is renamed in: a shard
counts only once its index exists, so an interrupted extraction keeps every flushed shard and resumes there.

What is read is checked. Listing a folder (``read_shards``: every extraction and load) checks each shard
against its index: the file's size, its ``.npy`` header (float16, two dimensions, the size it implies), each
row's own CRC-32 (of its hash, offset and frames: an edited offset is caught) and that the rows tile the
array (in offset order, each starting where the one before ends, the last ending at its last frame); reading
(``ShardReader``, the one reader every loop over shards uses) also checks the CRC-32 of every byte it reads.
A shard that fails is named in a warning and dropped (index first, then data), so the next extraction
recomputes its clips. Shards written before row checksums (format 2) or before any checksum (an index that is
a bare list) are checked by what they hold, and by the tiling. Temporary files left by an interrupted write
(the dot-names serlib gives them, ending ``.tmp``; nothing else) are removed by the next extraction, under the
lock that every writer of them holds, and never count in ``cache_bytes``.

The folder housekeeping every side shares lives here too: the key folder's and the cache root's locks, the
cache's marker, ``.last_used``, and telling a read-only cache from another error.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import time
import uuid
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from serlib.common.io import write_json_atomic
from serlib.common.locking import file_lock
from serlib.features.encoders import trim_span

log = logging.getLogger(__name__)

SHARD_FORMAT = 3  # the shard index: 1 = a bare list of rows, 2 = an object with size and CRC-32, 3 = and a
# CRC-32 per row (formats 1 and 2 are still read)
CACHE_MARKER = ".serlib-feature-cache"  # in the cache root: serlib made it (``prune_cache`` needs it)
# The temporary names serlib's writers use in a cache (``ShardWriter``, ``write_json_atomic``): cleaning
# removes these and never another dot-file ending .tmp.
SERLIB_TEMPORARY = re.compile(
    r"\.(shard-[0-9]{14}-[0-9a-f]{8}\.npy|probe-[0-9a-f]{8}"
    r"|(shard-[0-9]{14}-[0-9a-f]{8}\.json|key\.json|content_hashes\.json)"
    r"\.[0-9]+\.[0-9a-f]{8})\.tmp"
)
SHARD_CLIPS = 64  # clips per shard file
SHARD_SECONDS = 30.0  # flush a partial shard at least this often (bounds work lost to a kill)
MEMO = "content_hashes.json"
LOCK = ".lock"
LAST_USED = ".last_used"


class BadShardError(ValueError):
    """A shard's bytes do not match its index."""


# --------------------------------------------------------------------------- the shard store


@dataclass(frozen=True)
class Shard:
    """One shard as its index describes it, after the header check."""

    npy: str  # the data file's name
    rows: tuple  # ((content hash, frame offset, frames), ...)
    channels: int
    nbytes: Optional[int]  # the data file's size (None: written before checksums)
    crc32: Optional[str]  # of every byte of the data file (None: written before checksums)


def read_shards(kdir: Path, drop: bool = True) -> tuple[dict[str, Shard], dict[str, str]]:
    """Every shard of a key folder that passes the quick check (index, size, header).

    Args:
        kdir: the key folder.
        drop: drop a failing shard (warning, its files removed: the next extraction recomputes its
            clips); False: only report it.

    Returns:
        ``{npy name: Shard}`` and ``{npy name: reason}`` for the shards that failed.
    """
    shards, bad = {}, {}
    for meta in sorted(kdir.glob("shard-*.json")):
        npy = meta.with_suffix(".npy").name
        try:
            shards[npy] = _check_header(kdir / npy, _read_shard_index(meta))
        except (OSError, ValueError, SyntaxError) as err:
            bad[npy] = str(err)
            if drop:
                drop_shard(kdir, npy, str(err))
    return shards, bad


def read_index(kdir: Path) -> dict[str, tuple[str, int, int]]:
    """``{content hash: (shard .npy name, frame offset, frames)}`` over every completed, sound shard."""
    return shard_index(read_shards(kdir)[0])


def shard_index(shards: dict[str, Shard]) -> dict[str, tuple[str, int, int]]:
    """``read_index`` of shards already read."""
    return {digest: (npy, offset, frames) for npy, shard in shards.items() for digest, offset, frames in shard.rows}


def _read_shard_index(meta: Path) -> dict:
    try:
        data = json.loads(meta.read_bytes())
    except ValueError as err:
        raise ValueError(f"its index {meta.name} is not valid JSON ({err})") from None
    described = isinstance(data, dict)
    rows = data.get("clips") if described else data
    width = 4 if described and data.get("format", 2) >= 3 else 3  # format 3: each row with its own CRC-32
    if not isinstance(rows, list) or not all(
        isinstance(r, list)
        and len(r) == width
        and isinstance(r[0], str)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in r[1:3])
        and (width == 3 or isinstance(r[3], str))
        for r in rows
    ):
        shape = "[[content hash, offset, frames" + (", row CRC-32" if width == 4 else "") + "], ...]"
        raise ValueError(f"its index {meta.name} does not hold {shape}")
    for i, row in enumerate(rows if width == 4 else []):
        if row[3] != row_crc(*row[:3]):
            raise ValueError(
                f"its index {meta.name} row {i + 1} ({row[0][:12]}..., offset {row[1]}, {row[2]} frames) "
                f"does not match its CRC-32 {row[3]} (edited or damaged)"
            )
    index = {
        "rows": tuple(tuple(r[:3]) for r in rows),
        "bytes": data.get("bytes") if described else None,
        "crc32": data.get("crc32") if described else None,
    }
    if described and not (isinstance(index["bytes"], int) and isinstance(index["crc32"], str)):
        raise ValueError(f"its index {meta.name} lacks the shard's size or CRC-32")
    return index


def row_crc(digest: str, offset: int, frames: int) -> str:
    """The CRC-32 of one index row (its content hash, frame offset and frames), as 8 hex digits."""
    return f"{zlib.crc32(f'{digest}:{offset}:{frames}'.encode()):08x}"


def _check_tiling(rows: tuple, total: int) -> None:
    """The rows, in offset order, cover frames 0..total once each: clips lie one after another, as written."""
    end = 0
    for digest, offset, frames in sorted(rows, key=lambda r: r[1]):
        if offset != end:
            raise ValueError(
                f"its index puts clip {digest[:12]}... at frame {offset} where the clip before it ends "
                f"at {end} (an edited or damaged offset)"
            )
        end = offset + frames
    if end != total:
        raise ValueError(f"its index covers {end} of its {total} frames (an edited or damaged row)")


def _read_npy_header(fh) -> tuple[tuple, bool, np.dtype, int]:
    """(shape, Fortran order, dtype, header bytes) of an open ``.npy``; ValueError when unreadable."""
    version = np.lib.format.read_magic(fh)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f".npy format {version} is not one the cache writes")
    shape, fortran, dtype = readers[version](fh)
    return shape, fortran, dtype, fh.tell()


def _check_header(path: Path, index: dict) -> Shard:
    """The quick check: size, header, and the index's rows inside the array."""
    if not path.is_file():
        raise ValueError("its .npy file is missing")
    size = path.stat().st_size
    if index["bytes"] is not None and size != index["bytes"]:
        raise ValueError(f"{size} bytes where its index records {index['bytes']} (cut short?)")
    with open(path, "rb") as fh:
        try:
            shape, _, dtype, header = _read_npy_header(fh)
        except ValueError as err:
            raise ValueError(f"its .npy header cannot be read ({err})") from None
    if dtype != np.float16 or len(shape) != 2:
        raise ValueError(f"its header holds {dtype} {shape}, not float16 (channels, frames)")
    needed = header + shape[0] * shape[1] * 2
    if size != needed:
        raise ValueError(f"{size} bytes where its header needs {needed} (cut short?)")
    _check_tiling(index["rows"], shape[1])
    return Shard(path.name, index["rows"], int(shape[0]), index["bytes"], index["crc32"])


def load_shard(kdir: Path, shard: Shard) -> np.ndarray:
    """The shard's ``(channels, total frames)`` float16 array, its size and CRC-32 checked.

    Raises:
        BadShardError: the bytes do not match the index (the message says how).
    """
    path = kdir / shard.npy
    with open(path, "rb") as fh:
        data = bytearray(os.fstat(fh.fileno()).st_size)  # writable: torch.from_numpy warns on read-only buffers
        del data[fh.readinto(data) :]
    if shard.nbytes is not None and len(data) != shard.nbytes:
        raise BadShardError(f"{len(data)} bytes where its index records {shard.nbytes}")
    if shard.crc32 is not None and f"{zlib.crc32(data):08x}" != shard.crc32:
        raise BadShardError(f"its CRC-32 is {zlib.crc32(data):08x} where its index records {shard.crc32}")
    try:
        shape, fortran, dtype, header = _read_npy_header(io.BytesIO(memoryview(data)[: 1 << 16]))
        flat = np.frombuffer(data, dtype=dtype, offset=header)
        return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)  # older shards may be Fortran
    except ValueError as err:
        raise BadShardError(f"its .npy cannot be read ({err})") from None


def drop_shard(kdir: Path, npy: str, reason: str) -> None:
    """Warn that a shard is bad and remove it (index first: it stops counting), when the cache allows."""
    try:
        for name in (Path(npy).with_suffix(".json").name, npy):
            (kdir / name).unlink(missing_ok=True)
        fate = "dropped; the next extraction recomputes its clips"
    except OSError as err:
        fate = f"ignored (cannot remove it: {err.strerror or err})"
    warnings.warn(f"feature cache: shard {kdir / npy} is damaged: {reason}; {fate}", UserWarning, stacklevel=3)


class ShardReader:
    """The one reader of a key folder's shards: ``load_features``, ``open_layers`` and ``pooled_stats`` all read
    through it.

    Opening lists the folder (``read_shards``: size, header, index and tiling checked; a failing shard is
    dropped). ``clips`` reads the wanted clips one shard in memory at a time, every byte checked against the
    shard's CRC-32; ``verify`` checks every shard's CRC-32 once (before memory-mapping them: ``memory_maps``).
    A shard that fails either check is dropped, named in a warning, and recorded in ``failed``.
    """

    def __init__(self, kdir: Path):
        self.kdir = kdir
        self.shards, _ = read_shards(kdir)  # damaged shards dropped with a warning
        self.index = shard_index(self.shards)  # content hash -> (npy, frame offset, frames)
        self.failed: dict[str, str] = {}  # npy -> why, for shards dropped while reading
        self.failed_clips = 0  # clips those shards held

    def channels(self) -> Optional[int]:
        """The stored channels (None: the folder holds no shard)."""
        return next((s.channels for s in self.shards.values()), None)

    def clips(self, wanted: Iterable[tuple[object, str]], frames: int) -> Iterator[tuple[object, np.ndarray]]:
        """``(tag, clip)`` for every ``(tag, content hash)`` wanted, shard by shard.

        Args:
            wanted: ``(tag, content hash)`` pairs (a hash may appear under several tags); each hash must be in
                ``index``.
            frames: the window: each clip is its centred ``frames``-long span (all of it when shorter).

        Yields:
            The tag and the clip's ``(channels, kept frames)`` float16 view into the shard in memory. The clips of
            a shard that fails its CRC-32 are not yielded: the shard is dropped and listed in ``failed``.
        """
        by_shard: dict[str, list] = {}
        for tag, digest in wanted:
            npy, offset, count = self.index[digest]
            by_shard.setdefault(npy, []).append((tag, offset, count))
        for npy, rows in by_shard.items():  # one shard in memory at a time
            try:
                array = load_shard(self.kdir, self.shards[npy])  # (channels, total frames) float16, CRC-32 checked
            except (BadShardError, OSError) as err:
                self._drop(npy, str(err))
                continue
            for tag, offset, count in rows:
                start, kept = trim_span(count, frames)
                yield tag, array[:, offset + start : offset + start + kept]

    def verify(self) -> None:
        """Check the CRC-32 of every shard now (a sequential read, nothing kept); drop those that fail."""
        for npy, shard in list(self.shards.items()):
            try:
                load_shard(self.kdir, shard)
            except (BadShardError, OSError) as err:
                self._drop(npy, str(err))

    def memory_maps(self) -> dict[str, np.ndarray]:
        """Every sound shard as a read-only ``numpy`` memory map (``verify`` first: maps are read unchecked)."""
        return {npy: np.load(self.kdir / npy, mmap_mode="r") for npy in self.shards}

    def _drop(self, npy: str, reason: str) -> None:
        drop_shard(self.kdir, npy, reason)
        self.failed_clips += len(self.shards[npy].rows)
        self.failed[npy] = reason
        del self.shards[npy]
        self.index = shard_index(self.shards)


class ShardWriter:
    """Collects computed clips and writes them as atomic shards (``.npy`` then its ``.json`` index)."""

    def __init__(self, kdir: Path):
        self.kdir, self.clips, self.rows, self.last_flush = kdir, [], [], time.monotonic()
        self.added = 0  # clips added so far
        kdir.mkdir(parents=True, exist_ok=True)
        mark_cache(kdir.parent)
        probe = kdir / f".probe-{uuid.uuid4().hex[:8]}.tmp"  # a read-only cache fails here, before any work
        probe.touch()
        probe.unlink()

    def add(self, digest: str, clip: np.ndarray) -> None:
        """``clip``: ``(channels, frames)``; stored as float16."""
        self.clips.append(clip.astype(np.float16))
        self.rows.append(digest)
        self.added += 1
        if len(self.clips) >= SHARD_CLIPS or time.monotonic() - self.last_flush > SHARD_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.clips:
            return
        name = f"shard-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        offsets = np.cumsum([0] + [c.shape[1] for c in self.clips])
        buffer = io.BytesIO()  # channel-major: loading copies rows without a transpose
        np.save(buffer, np.ascontiguousarray(np.concatenate(self.clips, axis=1)))  # (channels, total frames)
        data = buffer.getbuffer()
        tmp = self.kdir / f".{name}.npy.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.kdir / f"{name}.npy")
        finally:
            _unlink_quietly(tmp)
        rows = [
            [d, int(o), int(c.shape[1]), row_crc(d, int(o), int(c.shape[1]))]
            for d, o, c in zip(self.rows, offsets, self.clips)
        ]
        write_json_atomic(
            self.kdir / f"{name}.json",
            {"format": SHARD_FORMAT, "bytes": len(data), "crc32": f"{zlib.crc32(data):08x}", "clips": rows},
        )
        self.clips, self.rows = [], []


# --------------------------------------------------------------------------- housekeeping


def key_lock(kdir: Path):
    """The key folder's lock (a context manager): held by an extraction from its index read to its end."""
    return file_lock(kdir / LOCK, on_wait=lambda holder: _report_wait(kdir, holder))


def _report_wait(kdir: Path, holder: str) -> None:
    log.warning(
        "feature cache %s is being filled by %s; waiting for it to finish (what it computes is "
        "reused, not computed again)",
        kdir,
        holder,
    )


def root_lock(cache_root: Path):
    """The cache root's lock (a context manager): held while the memo is written."""
    return file_lock(cache_root / f".{MEMO}.lock")


def mark_cache(cache_root: Path) -> None:
    """Write the cache's marker (``CACHE_MARKER``) if it is missing; a cache serlib cannot write stays unmarked."""
    marker = cache_root / CACHE_MARKER
    if not marker.is_file():
        try:
            marker.write_text("serlib's feature cache: `serlib cache list|prune` work on this folder\n")
        except OSError:
            pass


def clean_temporary(folder: Path) -> int:
    """Remove the temporary files that serlib's interrupted writes left in ``folder`` (``SERLIB_TEMPORARY``
    names: another program's dot-files ending ``.tmp`` stay).

    Call it only under the lock every writer of those files holds. Returns how many were removed.
    """
    removed = 0
    for tmp in folder.glob(".*.tmp"):
        if not SERLIB_TEMPORARY.fullmatch(tmp.name):
            continue
        try:
            tmp.unlink()
            removed += 1
        except OSError:  # gone meanwhile, or a read-only cache
            pass
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted write in %s", removed, folder)
    return removed


def cache_bytes(path: Path) -> int:
    """Bytes on disk under ``path``, without hidden files (temporary files, locks)."""
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in _visible_files(path))


def _visible_files(path: Path) -> Iterator[Path]:
    for p in path.rglob("*"):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts):
            yield p


def touch_last_used(kdir: Path) -> None:
    """Mark the key folder as used now (``serlib cache list``); skipped in a read-only cache."""
    try:
        (kdir / LAST_USED).touch()
    except OSError:
        pass


def make_folder(folder: Path) -> bool:
    """Create ``folder`` if missing; False when it cannot be (a read-only cache without it)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return True
    except OSError:
        return folder.is_dir()


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def is_read_only_error(err: OSError) -> bool:
    """An error that says the folder cannot be written (not a full disk or a bad path)."""
    return isinstance(err, PermissionError) or err.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
