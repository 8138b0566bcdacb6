"""Which audio a prediction scores: files, folders searched recursively, ``.txt`` / ``.lst`` lists of paths
(``serlib.inference.predict.Predictor.predict`` and ``serlib predict``), and the hop between its windows.

Free of torch, so that ``serlib predict`` answers a mistyped path or hop before a model loads.

Whatever cannot be scored (a missing path, a name that is not UTF-8, a link loop, an unreadable folder) is a row
with its reason, never left out.
"""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")  # what a folder is searched for (soundfile reads them)
LIST_SUFFIXES = (".txt", ".lst")  # a file listing paths, one per line


def printable(name: str) -> str:
    """A file name as UTF-8 text: bytes that are not UTF-8 (kept by Python as surrogates) as ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def gather_audio(items: Iterable[Union[str, Path]]) -> list[tuple[str, Optional[str]]]:
    """``(path, error)`` per audio file named by ``items``, each file once, in order; ``error`` None for a
    file to score.

    An item is a file, a folder (searched recursively for ``AUDIO_SUFFIXES``, sorted; linked folders are
    followed once), or a ``.txt`` / ``.lst`` list of paths (one per line; blank lines and ``#`` comments
    skipped; relative paths are relative to the list's folder; a listed folder is searched as a folder
    argument is). Whatever cannot be scored is a row with its reason, never left out: a path that does
    not exist, a name that is not UTF-8 (shown with ``\\x`` escapes), a symbolic link that loops or points
    nowhere, a folder that cannot be read.
    """
    out: list[tuple[str, Optional[str]]] = []
    seen: set[str] = set()

    def add(path: str, error: Optional[str]) -> None:
        shown = printable(path)
        if shown != path and error is None:
            error = "the file name is not UTF-8 text (shown with \\x escapes); rename the file"
        if shown not in seen:  # a file named twice (a folder and a list) is scored once
            seen.add(shown)
            out.append((shown, error))

    for item in items:
        path = Path(item).expanduser()
        if path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            _read_list(path, add)
        else:
            _gather_path(path, add, "")
    return out


def _read_list(listing: Path, add: Callable[[str, Optional[str]], None]) -> None:
    try:
        text = listing.read_bytes().decode("utf-8", "surrogateescape")  # names kept byte for byte
    except OSError as err:
        add(str(listing), f"cannot read the list ({type(err).__name__}: {err.strerror or err})")
        return
    for line in text.splitlines():
        line = line.strip().lstrip("\ufeff")
        if line and not line.startswith("#"):
            listed = Path(line).expanduser()
            _gather_path(listed if listed.is_absolute() else listing.parent / listed, add, f" (listed in {listing})")


def _gather_path(path: Path, add: Callable[[str, Optional[str]], None], where: str) -> None:
    """One named path: a folder searched, a file a row, anything else a row with its reason."""
    problem = _link_problem(path)
    if problem:
        add(str(path), problem + where)
    elif path.is_dir():
        found: list[tuple[tuple, str, Optional[str]]] = []
        _walk(path, found, {_identity(path)}, [path.resolve()])
        if not found:
            add(str(path), f"the folder holds no audio file ({', '.join(AUDIO_SUFFIXES)}){where}")
        for _, name, error in sorted(found):
            add(name, error)
    elif path.is_file():
        add(str(path), None)
    elif os.path.lexists(path):
        add(str(path), f"not a regular file{where}")
    else:
        add(str(path), f"not found{where}")


def _link_problem(path: Path) -> Optional[str]:
    """Why a symbolic link cannot be followed (a loop, a missing target), None when it can or is no link."""
    if not path.is_symlink():
        return None
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symbolic link loop: not followed"
        return f"a symbolic link to {os.readlink(path)}, which does not exist"
    return None


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _walk(folder: Path, found: list, searched: set, parents: list[Path]) -> None:
    """Collect ``(sort key, path, error)`` of the audio files under ``folder``, and of every entry that
    cannot be looked at (a link loop, an unreadable folder); a linked folder already searched is not
    searched again (its files are listed once), and one that contains its own link is a loop row."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        found.append(
            (folder.parts, str(folder), f"cannot read the folder ({type(err).__name__}: {err.strerror or err})")
        )
        return
    for entry in entries:
        path = Path(entry.path)
        problem = _link_problem(path)
        if problem:
            found.append((path.parts, str(path), problem))
            continue
        try:
            is_dir = entry.is_dir()
            is_file = not is_dir and entry.is_file()
        except OSError as err:
            found.append((path.parts, str(path), f"cannot be read ({type(err).__name__}: {err.strerror or err})"))
            continue
        if is_dir:
            identity = _identity(path)
            if identity in searched:
                if path.resolve() in parents:
                    found.append(
                        (
                            path.parts,
                            str(path),
                            f"a symbolic link loop (to {path.resolve()}, a folder that contains it): not followed",
                        )
                    )
                continue
            searched.add(identity)
            _walk(path, found, searched, parents + [path.resolve()])
        elif is_file and path.suffix.lower() in AUDIO_SUFFIXES:
            found.append((path.parts, str(path), None))


def check_hop(hop_s: float) -> None:
    """A hop between windows is a finite number of seconds above 0 (ValueError otherwise)."""
    if not (math.isfinite(hop_s) and 0 < hop_s <= 3600):
        raise ValueError(f"--hop must be a number of seconds above 0 and at most 3600, got {hop_s}")
