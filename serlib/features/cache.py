"""The feature cache: computed once per clip, keyed by its content and by what computes it (paper 2.3, 3.4).

The paper recomputes wav2vec2 embeddings every epoch; serlib computes them once per clip and
trains from the cache (``serlib.features.extract`` fills it and loads from it).

Cache layout (``features.cache_dir``, default ``<run>/data/features``; shareable between runs)::

    <cache>/.serlib-feature-cache        the marker: serlib made this cache (prune works only where it is)
    <cache>/content_hashes.json          path -> (size, mtime_ns, inode, ctime_ns, content hash) memo
    <cache>/<input>-<key id>/key.json    what determines the features + the encoder description
    <cache>/<input>-<key id>/shard-*.npy (channels, frames) float16, clips one after another in time
    <cache>/<input>-<key id>/shard-*.json the shard's index: its size, CRC-32 and shape, and
                                         [[content hash, frame offset, frames, row CRC-32], ...]
    <cache>/<input>-<key id>/.lock       held by the extraction filling the folder
    <cache>/<input>-<key id>/.last_used  touched by every extraction and load (``serlib cache list``)

An entry is keyed by the clip's content hash inside a folder keyed by everything else that
determines it (encoder id + revision, weights mode, seed, layer, overrides, sample rate, log-Mel
settings). Each encoder layer is its own folder (``serlib.features.layers``: the last layer is
``layer: last`` whether it is asked for as "last" or by its index), so a run can add layers without
touching the ones it has. Each clip's full frame sequence is stored (no padding); trimming/padding to
``features.frames`` happens at load time, so changing ``frames`` recomputes nothing. A shard is
written to a temporary name and renamed, then its index is renamed in: a shard counts only once
its index exists, so an interrupted extraction keeps every flushed shard and resumes from there.

What is read is checked. Listing a folder (every extraction and load) checks each shard against its
index: the file's size, its ``.npy`` header (float16, two dimensions, the size it implies), each row's
own CRC-32 (of its hash, offset and frames: an edited offset is caught) and that the rows tile the
array (in offset order, each starting where the one before ends, the last ending at its last frame);
loading also checks the CRC-32 of every byte it reads. A shard that
fails is named in a warning and dropped (index first, then data), so the next extraction recomputes
its clips; a corrupt index or ``content_hashes.json`` is named and treated as missing. Shards
written before row checksums (format 2) or before any checksum (an index that is a bare list) are checked
by what they hold, and by the tiling. Temporary files left by an interrupted write (the dot-names serlib
gives them, ending ``.tmp``; nothing else) are removed by the next extraction, under the lock that every
writer of them holds, and never count in ``cache_bytes``.

The content-hash memo trusts a file's hash while its size, modification time, inode and status-change
time (``ctime``: set by the system on every write and by no user tool) are unchanged; an entry written
before inode and ctime were recorded is hashed again once.

Two extractions on one key folder do not both compute: the second waits for the first's lock
(saying so) and then finds the clips cached. A cache this process cannot write is used read-only:
when every clip is cached, extraction and loading write nothing there (memo, ``key.json`` and
``.last_used`` updates are skipped); a clip that would need computing is a ``CacheNotWritableError``.

``list_cache`` and ``prune_cache`` back ``serlib cache list|prune``.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
import uuid
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from serlib.common.config import Config, ConfigError, load_config, non_default
from serlib.common.runtime import device_choice
from serlib.common.io import write_json_atomic
from serlib.common.locking import file_lock
from serlib.common.runfolder import RunFolder, default_run_root, features_cache_dir
from serlib.features.encoders import INPUTS, RANDOM_WEIGHTS_SEED, encoder_description, trim_span
from serlib.features.layers import SSL_INPUTS, at_layer, cached_layers, layer_value

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the stored layout or the computation changes
SHARD_FORMAT = 3  # the shard index: 1 = a bare list of rows, 2 = an object with size and CRC-32, 3 = and a
                  # CRC-32 per row (formats 1 and 2 are still read)
CACHE_MARKER = ".serlib-feature-cache"  # in the cache root: serlib made it (``prune_cache`` needs it)
# The temporary names serlib's writers use in a cache (``ShardWriter``, ``write_json_atomic``): cleaning
# removes these and never another dot-file ending .tmp.
SERLIB_TEMPORARY = re.compile(r"\.(shard-[0-9]{14}-[0-9a-f]{8}\.npy|probe-[0-9a-f]{8}"
                              r"|(shard-[0-9]{14}-[0-9a-f]{8}\.json|key\.json|content_hashes\.json)\.[0-9]+\.[0-9a-f]{8})\.tmp")
SHARD_CLIPS = 64  # clips per shard file
SHARD_SECONDS = 30.0  # flush a partial shard at least this often (bounds work lost to a kill)
MEMO = "content_hashes.json"
LOCK = ".lock"
LAST_USED = ".last_used"
KEY_FOLDER = re.compile(rf"({'|'.join(INPUTS)})-[0-9a-f]{{16}}")


class CacheNotWritableError(PermissionError):
    """Clips need computing but the cache folder cannot be written."""


class BadShardError(ValueError):
    """A shard's bytes do not match its index."""


# --------------------------------------------------------------------------- keys and hashes


# Fields of the features sections that do not determine a clip's stored features. The others enter
# the key: today's by name (existing caches stay valid), a field added later only when set off its
# default (``non_default``), so adding one invalidates nothing and changing it recomputes.
NOT_IN_KEY = {"features": ("frames", "cache_dir", "device", "threads", "wav2vec2", "logmel"),
              "wav2vec2": ("batch_size", "batching", "max_batch_seconds", "mixed_precision"), "logmel": ()}


def _added(section, named: dict, name: str) -> dict:
    skip = set(named) | set(NOT_IN_KEY[name])
    return {k: v for k, v in non_default(section).items() if k not in skip}


def inputs_for_run(cfg: Config) -> list[str]:
    """The cached inputs the run's systems (and its layer probe) read; both when no system is configured.
    A system reading several wav2vec2 layers (``wav2vec2_layers``) reads the wav2vec2 cache."""
    used = {"wav2vec2" if s.input in SSL_INPUTS else s.input for s in cfg.systems.values()}
    if cfg.analysis.layer_probe is not None:
        used.add("wav2vec2")
    return [i for i in INPUTS if i in used] if used else list(INPUTS)


def encoder_compute(cfg: Config) -> str:
    """The wav2vec2 encoder's compute dtype for this config: "float16-autocast" when
    ``mixed_precision`` is on and ``features.device`` resolves to a GPU (as ``serlib.features.encoders``
    runs it), else "float32"."""
    device, _ = device_choice(cfg.features.device)
    return "float16-autocast" if cfg.features.wav2vec2.mixed_precision and device == "cuda" else "float32"


def cache_key(cfg: Config, input: str) -> dict:
    """Everything that determines a clip's stored features for ``input`` (besides its content)."""
    f = cfg.features
    key = {"format": CACHE_FORMAT, "input": input, "sample_rate": f.sample_rate}
    key |= _added(f, key, "features")
    if input == "logmel":
        m = f.logmel
        named = {"n_mels": m.n_mels, "win_ms": m.win_ms, "hop_ms": m.hop_ms, "log_floor": m.log_floor,
                 "standardise": m.standardise}
        return key | named | _added(m, named, "logmel")
    if input != "wav2vec2":
        raise ConfigError(f"unknown feature input {input!r}; expected one of {', '.join(INPUTS)}")
    w = f.wav2vec2
    named = {"model_id": w.model_id, "revision": w.revision, "weights": w.weights,
             "layer": layer_value(w, w.layer, "features.wav2vec2.layer"),  # index N is stored as "last"
             "config_overrides": w.config_overrides}
    key |= named | _added(w, named, "wav2vec2")
    compute = encoder_compute(cfg)
    if compute != "float32":  # fp16 autocast on a GPU stores other values than fp32: another key (fp32 keys unchanged)
        key["compute"] = compute
    if Path(w.model_id).is_dir():  # a local folder: its files' sizes and times stand for its content
        files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                       for p in Path(w.model_id).iterdir() if p.is_file())
        key["model_files"] = hashlib.sha1(json.dumps(files).encode()).hexdigest()[:16]
    if w.weights == "random":  # random initialisation can change with the library versions
        from importlib.metadata import version  # the installed version without importing transformers (~2 s)

        key |= {"seed": RANDOM_WEIGHTS_SEED, "torch": torch.__version__.split("+")[0],
                "transformers": version("transformers")}
    return key


def key_name(cfg: Config, input: str) -> str:
    """``<input>-<16 hex of the key>``: the key folder's name, the same in every cache."""
    digest = hashlib.sha1(json.dumps(cache_key(cfg, input), sort_keys=True, default=str).encode()).hexdigest()
    return f"{input}-{digest[:16]}"


def key_folder(cfg: Config, folder: RunFolder, input: str) -> Path:
    """``<cache>/<input>-<16 hex of the key>``."""
    return features_cache_dir(cfg, folder) / key_name(cfg, input)


def _hash_file(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_stamp(st: os.stat_result) -> list[int]:
    """What the memo compares before trusting a file's hash: size, mtime, inode and ctime (nanoseconds).

    ``ctime`` changes on every write and cannot be set back by a user (``touch -d`` and ``os.utime``
    set the mtime, and the system sets ctime to now): audio rewritten with the same size and mtime is
    hashed again.
    """
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def content_hashes(paths: list[str], cache_root: Path) -> tuple[list[Optional[str]], dict[str, str]]:
    """Content hash of each file (memoised by path and ``file_stamp``); unreadable files give None.

    A corrupt memo is named in a warning and rebuilt; a memo that cannot be written (a read-only
    cache) is left as it is.

    Returns:
        The hashes in ``paths`` order and ``{path: reason}`` for files that could not be read.
    """
    memo = _read_memo(cache_root / MEMO)
    hashes, errors, new = [], {}, {}
    for path in paths:
        try:
            stamp = file_stamp(os.stat(path))
            entry = memo.get(path)
            if not entry or entry[:-1] != stamp:  # an entry of the older [size, mtime, hash] form: hashed again
                memo[path] = new[path] = [*stamp, _hash_file(path)]
            hashes.append(memo[path][-1])
        except OSError as err:
            hashes.append(None)
            errors[path] = f"{type(err).__name__}: {err.strerror or err}"
    if new:
        _update_memo(cache_root, new)
    return hashes, errors


def _read_memo(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        memo = json.loads(path.read_bytes())
        if not isinstance(memo, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        warnings.warn(f"feature cache: {path} cannot be read ({err}); treated as missing: content hashes are "
                      f"recomputed and the file rewritten", UserWarning, stacklevel=3)
        return {}
    return {p: e for p, e in memo.items() if isinstance(e, list) and len(e) in (3, 5) and isinstance(e[-1], str)}


def _update_memo(cache_root: Path, new: dict) -> None:
    """Merge ``new`` entries into the memo under the cache root's lock (another extraction's stay)."""
    if not make_folder(cache_root):
        return
    mark_cache(cache_root)
    with root_lock(cache_root):
        memo = _read_memo(cache_root / MEMO) | new
        try:
            write_json_atomic(cache_root / MEMO, memo)
        except OSError as err:  # a read-only cache: the memo only saves re-hashing
            log.debug("content hashes not memoised in %s: %s", cache_root, err)


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
            isinstance(r, list) and len(r) == width and isinstance(r[0], str)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in r[1:3])
            and (width == 3 or isinstance(r[3], str)) for r in rows):
        shape = "[[content hash, offset, frames" + (", row CRC-32" if width == 4 else "") + "], ...]"
        raise ValueError(f"its index {meta.name} does not hold {shape}")
    for i, row in enumerate(rows if width == 4 else []):
        if row[3] != row_crc(*row[:3]):
            raise ValueError(f"its index {meta.name} row {i + 1} ({row[0][:12]}..., offset {row[1]}, {row[2]} frames) "
                             f"does not match its CRC-32 {row[3]} (edited or damaged)")
    index = {"rows": tuple(tuple(r[:3]) for r in rows), "bytes": data.get("bytes") if described else None,
             "crc32": data.get("crc32") if described else None}
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
            raise ValueError(f"its index puts clip {digest[:12]}... at frame {offset} where the clip before it ends "
                             f"at {end} (an edited or damaged offset)")
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
        del data[fh.readinto(data):]
    if shard.nbytes is not None and len(data) != shard.nbytes:
        raise BadShardError(f"{len(data)} bytes where its index records {shard.nbytes}")
    if shard.crc32 is not None and f"{zlib.crc32(data):08x}" != shard.crc32:
        raise BadShardError(f"its CRC-32 is {zlib.crc32(data):08x} where its index records {shard.crc32}")
    try:
        shape, fortran, dtype, header = _read_npy_header(io.BytesIO(memoryview(data)[:1 << 16]))
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
        rows = [[d, int(o), int(c.shape[1]), row_crc(d, int(o), int(c.shape[1]))]
                for d, o, c in zip(self.rows, offsets, self.clips)]
        write_json_atomic(self.kdir / f"{name}.json", {"format": SHARD_FORMAT, "bytes": len(data),
                                                        "crc32": f"{zlib.crc32(data):08x}", "clips": rows})
        self.clips, self.rows = [], []


# --------------------------------------------------------------------------- housekeeping


def key_lock(kdir: Path):
    """The key folder's lock (a context manager): held by an extraction from its index read to its end."""
    return file_lock(kdir / LOCK, on_wait=lambda holder: _report_wait(kdir, holder))


def _report_wait(kdir: Path, holder: str) -> None:
    log.warning("feature cache %s is being filled by %s; waiting for it to finish (what it computes is "
                "reused, not computed again)", kdir, holder)


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


def clean_cache_root(cache_root: Path) -> None:
    """Mark the cache, and remove what serlib's interrupted writes left at its top: memo temporaries,
    half-pruned key folders (only the names serlib gives them)."""
    if cache_root.is_dir():
        mark_cache(cache_root)
        with root_lock(cache_root):
            clean_temporary(cache_root)
        _clean_deleting(cache_root)


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


def write_key(kdir: Path, cfg: Config, input: str, stats: dict, device: torch.device) -> dict:
    """Create or update ``key.json``; remembers the last measured throughput.

    Nothing is written when nothing was computed and the file already says the same (a cache that
    is only read, perhaps read-only, stays untouched).
    """
    path = kdir / "key.json"
    try:
        meta = json.loads(path.read_bytes()) if path.is_file() else {}
        meta = meta if isinstance(meta, dict) else {}
    except ValueError:
        warnings.warn(f"feature cache: {path} is not valid JSON; rewritten", UserWarning, stacklevel=2)
        meta = {}
    described = {"key": json.loads(json.dumps(cache_key(cfg, input), default=str)),
                 "encoder": encoder_description(cfg, input)}
    if not stats.get("computed") and all(meta.get(k) == v for k, v in described.items()):
        return meta
    meta |= described
    if stats.get("computed"):
        meta["last_compute"] = {
            "clips": stats["computed"], "seconds": round(stats["compute_seconds"], 3),
            "clips_per_s": round(stats["computed"] / max(stats["compute_seconds"], 1e-9), 3),
            "device": str(device),
            "torch_threads": 1 if input == "logmel" else cfg.features.threads or torch.get_num_threads(),
            "mean_batch": round(stats["computed"] / max(stats["batches"], 1), 2),
            "batching": cfg.features.wav2vec2.batching if input == "wav2vec2" else "masked",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        write_json_atomic(path, meta)
    except OSError as err:
        if stats.get("computed"):
            raise
        log.debug("key.json not updated in %s: %s", kdir, err)  # read-only: it only describes the key
    return meta


# --------------------------------------------------------------------------- reading


def fill_from_cache(x: torch.Tensor, lengths: torch.Tensor, rows: list, kdir: Path, frames: int,
                    shards: Optional[dict[str, Shard]] = None) -> dict[str, str]:
    """Fill ``x`` ``(n, channels, frames)`` from the cache; ``rows`` = [(i, (npy, offset, count))].

    Same result as ``fit_frames`` per clip (centre trim, padding at the end), without temporaries.
    Each shard's bytes are checked against ``shards`` (``read_shards``; None: read unchecked).

    Returns:
        ``{npy name: reason}`` of the shards that failed their check (their rows are left unfilled).
    """
    by_shard: dict[str, list] = {}
    for i, (npy, offset, count) in rows:
        by_shard.setdefault(npy, []).append((i, offset, count))
    bad = {}
    for npy, clips in by_shard.items():  # one shard in memory at a time, converted once (fast path)
        try:
            array = load_shard(kdir, shards[npy]) if shards is not None else np.load(kdir / npy)
        except (BadShardError, OSError) as err:
            bad[npy] = str(err)
            continue
        shard = torch.from_numpy(array).to(x.dtype)  # (channels, total frames)
        for i, offset, count in clips:
            start, kept = trim_span(count, frames)
            x[i, :, :kept] = shard[:, offset + start:offset + start + kept]
            x[i, :, kept:] = 0
            lengths[i] = kept
    return bad


def stored_channels(kdir: Path, index: dict, cfg: Config, input: str,
                    shards: Optional[dict[str, Shard]] = None) -> int:
    if index:
        npy = next(iter(index.values()))[0]
        if shards is not None:
            return shards[npy].channels
        return int(np.load(kdir / npy, mmap_mode="r").shape[0])
    if input == "logmel":
        return cfg.features.logmel.n_mels
    return int(cfg.features.wav2vec2.config_overrides.get("hidden_size", 768))


# --------------------------------------------------------------------------- serlib cache list | prune


CACHE_COLUMNS = ["key", "input", "settings", "clips", "mb", "last_used", "bad_shards"]
_NOT_SETTINGS = ("format", "input", "model_files")  # in the key, but not what a reader compares


def cache_root(target: str | Path) -> Path:
    """The cache a ``serlib cache`` command works on: a folder as given, or a parameters file's
    cache (``features.cache_dir``, else ``<project>/reports/<run>/data/features``)."""
    target = Path(target)
    if target.is_dir():
        return target
    cfg = load_config(target)
    return features_cache_dir(cfg, RunFolder(default_run_root(cfg)))


def list_cache(root: str | Path, verify: bool = False) -> pd.DataFrame:
    """What the cache holds, one row per key folder (``serlib cache list``); changes nothing.

    Args:
        root: the cache folder (``cache_root``).
        verify: also read every shard and check its CRC-32 (reads the whole cache).

    Returns:
        ``CACHE_COLUMNS``: key (folder name), input, settings (the key's main settings), clips,
        mb (MiB on disk), last_used (local time of the last extraction or load), bad_shards
        (shards that fail the checks; they are dropped at the next extraction or load).
    """
    root = Path(root)
    folders = [k for k in sorted(root.iterdir()) if KEY_FOLDER.fullmatch(k.name)] if root.is_dir() else []
    return pd.DataFrame([_describe(k, verify) for k in folders], columns=CACHE_COLUMNS)


def _describe(kdir: Path, verify: bool) -> dict:
    shards, bad = read_shards(kdir, drop=False)
    if verify:
        for npy, shard in shards.items():
            try:
                load_shard(kdir, shard)
            except (BadShardError, OSError) as err:
                bad[npy] = str(err)
    try:
        key = json.loads((kdir / "key.json").read_bytes())["key"]
        settings = ", ".join(f"{k}={v}" for k, v in key.items() if k not in _NOT_SETTINGS and v not in (None, {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        settings = "(key.json missing or unreadable)"
    stamps = [p.stat().st_mtime for p in (kdir / LAST_USED, kdir / "key.json") if p.is_file()]
    return {"key": kdir.name, "input": kdir.name.split("-")[0], "settings": settings,
            "clips": len({d for npy, s in shards.items() if npy not in bad for d, _, _ in s.rows}),
            "mb": round(cache_bytes(kdir) / 2**20, 2),
            "last_used": time.strftime("%Y-%m-%d %H:%M", time.localtime(max(stamps))) if stamps else "",
            "bad_shards": len(bad)}


def prune_cache(root: str | Path, params_files: Sequence[str | Path], delete: bool = False) -> pd.DataFrame:
    """Key folders that none of ``params_files`` uses, removed only when ``delete`` is True.

    A parameters file uses the key folder of each input its systems read (``inputs_for_run``) with
    its feature settings, one per wav2vec2 layer it caches (``cached_layers``), in any cache. The default is a dry run: nothing changes and the table says
    what would go (``serlib cache prune PARAMS... [--cache DIR] [--delete]``). A folder whose
    extraction is running (its lock held) is skipped.

    Args:
        root: the cache folder.
        params_files: the parameters files whose features must stay (at least one).
        delete: remove the unused folders (False: only list them).

    Returns:
        ``list_cache``'s columns plus ``used_by`` (the parameters files using the folder, "" if
        none) and ``action``: "kept", "would remove", "removed" or "skipped: in use".
    """
    if not params_files:
        raise ConfigError("serlib cache prune: name the parameters files whose features must stay (at least one)")
    if not (Path(root) / CACHE_MARKER).is_file():
        raise ConfigError(f"{root} is not a serlib feature cache (no {CACHE_MARKER} marker), so prune changes nothing "
                          "there; name the cache folder (`serlib features PARAMS` marks the cache it fills or reads)")
    used: dict[str, list[str]] = {}
    for params in params_files:
        cfg = load_config(params)
        for input in inputs_for_run(cfg):
            for layer_cfg in ([at_layer(cfg, v) for v in cached_layers(cfg)] if input == "wav2vec2" else [cfg]):
                used.setdefault(key_name(layer_cfg, input), []).append(Path(params).name)
    table = list_cache(root)
    table["used_by"] = [", ".join(used.get(k, [])) for k in table["key"]]
    table["action"] = ["kept" if k in used else ("removed" if delete else "would remove") for k in table["key"]]
    if delete:
        clean_cache_root(Path(root))
        for i in table.index[table["action"] == "removed"]:
            if not _remove_key_folder(Path(root) / table.at[i, "key"]):
                table.at[i, "action"] = "skipped: in use"
    return table


class _Busy(Exception):
    pass


def _remove_key_folder(kdir: Path) -> bool:
    """Rename the folder aside and delete it, unless an extraction holds its lock."""
    def busy(_holder: str) -> None:
        raise _Busy

    aside = kdir.with_name(f".{kdir.name}.{uuid.uuid4().hex[:8]}.deleting")
    try:
        with file_lock(kdir / LOCK, on_wait=busy):
            os.rename(kdir, aside)  # one step: a crash leaves the folder whole or out of sight
    except _Busy:
        return False
    shutil.rmtree(aside, ignore_errors=True)
    return True


def _clean_deleting(root: Path) -> None:
    """Finish removals that a crash interrupted (key folders ``_remove_key_folder`` renamed aside, only)."""
    for aside in root.glob(".*.deleting"):
        name = aside.name[1:-len(".deleting")]
        if aside.is_dir() and not aside.is_symlink() and KEY_FOLDER.fullmatch(name[:-9]) and re.fullmatch(r"\.[0-9a-f]{8}", name[-9:]):
            shutil.rmtree(aside, ignore_errors=True)


def is_read_only_error(err: OSError) -> bool:
    """An error that says the folder cannot be written (not a full disk or a bad path)."""
    return isinstance(err, PermissionError) or err.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
