"""Shared pytest fixtures. Keep this file small: helpers that one module needs stay in that module."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def write_wav(
    path: Path, frames: int, sample_rate: int = 16000, channels: int = 1, data_bytes: int | None = None
) -> Path:
    """A 16-bit PCM WAV whose header declares ``frames``; the audio is near-silence, written sparse.

    The first 8 samples are a faint marker drawn from the file name (at most 128 / 32768 of full
    scale, the clip's RMS far below -60 dBFS) and the rest is zeros, so two files are never the same
    audio (as two real recordings never are) and MCULP's content-duplicate check sees them apart.
    ``data_bytes`` (default: all the declared audio) lets a test write a truncated file.
    """
    size = frames * channels * 2
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + size,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        sample_rate,
        sample_rate * channels * 2,
        channels * 2,
        16,
        b"data",
        size,
    )
    held = size if data_bytes is None else data_bytes
    seed = hashlib.blake2b(path.name.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    marker = struct.pack("<8h", *(b - 128 for b in seed))[: min(16, held)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(header + marker)
        f.truncate(len(header) + held)  # sparse: no disk cost
    return path


def real_names_dir() -> Path | None:
    """``$SERLIB_REAL_NAMES`` or ``../shared/real-names`` beside the repository, if present."""
    folder = Path(os.environ.get("SERLIB_REAL_NAMES", REPO.parent / "shared" / "real-names"))
    return folder if (folder / "cremad_files.txt").is_file() else None


def _tsv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def build_real_tree(names: Path, out: Path) -> dict[str, Path]:
    """The three corpora under ``out`` with every real file name (header-only, sparse WAVs).

    CREMA-D lengths are not in the lists: each file gets 1.5-5 s from a hash of its name.
    """
    crema = out / "CREMA-D"
    for name in (names / "cremad_files.txt").read_text().split():
        seconds = 1.5 + (zlib.crc32(name.encode()) % 3500) / 1000
        write_wav(crema / "AudioWAV" / name, int(seconds * 16000))
    shutil.copy(names / "VideoDemographics.csv", crema / "VideoDemographics.csv")
    for corpus, listing, sub in (("RAVDESS", "ravdess_files.tsv", ""), ("EmoDB", "emodb_files.tsv", "wav")):
        for row in _tsv(names / listing):
            write_wav(
                out / corpus / sub / row["file"], int(row["frames"]), int(row["sample_rate"]), int(row["channels"])
            )
    return {"CREMA-D": crema, "RAVDESS": out / "RAVDESS", "EmoDB": out / "EmoDB"}


@pytest.fixture(scope="session")
def real_tree(tmp_path_factory) -> dict[str, Path]:
    """Corpus roots holding every real file name; the tests using it skip without the lists."""
    names = real_names_dir()
    if names is None:
        pytest.skip("real file-name lists not found (set SERLIB_REAL_NAMES or provide ../shared/real-names)")
    return build_real_tree(names, tmp_path_factory.mktemp("real-names-tree"))


# A small tree in the three real layouts with one file per exclusion reason: path -> reason.
SMALL_TREE_BAD = {
    "CREMA-D/AudioWAV/1001_ITS_ANG_XX.wav": "empty",
    "CREMA-D/AudioWAV/1001_ITS_DIS_XX.wav": "truncated",
    "CREMA-D/AudioWAV/1001_ITS_FEA_XX.wav": "unreadable",
    "CREMA-D/AudioWAV/1001_DFA_ANG.wav": "misnamed",
    "CREMA-D/AudioWAV/1003_TIE_HAP_XX.wav": "too_short",
    "RAVDESS/Actor_01/03-02-03-01-01-01-01.wav": "song",
    "RAVDESS/Actor_01/02-01-03-01-01-01-01.mp4": "video_only",
    "RAVDESS/Actor_01/01-01-03-01-01-01-01.wav": "audio_video",
    "RAVDESS/Actor_01/03-01-02-01-01-01-01.wav": "calm",
    "RAVDESS/Actor_01/03-01-08-01-01-01-01.wav": "surprised",
    "EmoDB/wav/03a01La.wav": "boredom",
}


def build_small_tree(out: Path) -> dict[str, Path]:
    """CREMA-D (6 actors), RAVDESS (4), EmoDB (4) with the bad files of ``SMALL_TREE_BAD``,
    CREMA-D's level-X quirk (``1002_ITH_SAD_X.wav``, kept) and one stereo RAVDESS file."""
    crema = out / "CREMA-D"
    for actor in range(1001, 1007):
        for sentence in ("DFA", "IEO"):
            for emotion in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"):
                write_wav(crema / "AudioWAV" / f"{actor}_{sentence}_{emotion}_XX.wav", 32000)
    (crema / "VideoDemographics.csv").write_text(
        '"ActorID","Age","Sex","Race","Ethnicity"\n'
        + "".join(f'{a},30,"{"Male" if a % 2 else "Female"}","Caucasian","Not Hispanic"\n' for a in range(1001, 1007))
    )
    write_wav(crema / "AudioWAV/1002_ITH_SAD_X.wav", 32000)
    for actor in range(1, 5):
        for emotion in range(1, 9):
            for statement in (1, 2):
                name = f"03-01-{emotion:02d}-01-{statement:02d}-01-{actor:02d}.wav"
                write_wav(out / "RAVDESS" / f"Actor_{actor:02d}" / name, 150000, 48000, 2 if actor == 4 else 1)
    for speaker in ("03", "08", "09", "10"):
        for text in ("a01", "a02"):
            for emotion in "WEAFTN":
                write_wav(out / "EmoDB/wav" / f"{speaker}{text}{emotion}a.wav", 40000)
    for rel, reason in SMALL_TREE_BAD.items():
        _write_bad(out / rel, reason)
    return {"CREMA-D": crema, "RAVDESS": out / "RAVDESS", "EmoDB": out / "EmoDB"}


def _write_bad(path: Path, reason: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if reason == "empty":
        path.write_bytes(b"")
    elif reason == "truncated":
        write_wav(path, 32000, data_bytes=1000)
    elif reason == "unreadable":
        path.write_bytes(b"this is not audio\n" * 50)
    elif reason == "too_short":
        write_wav(path, 8000)  # 0.5 s
    else:
        write_wav(path, 150000, 48000 if "RAVDESS" in str(path) else 16000)


@pytest.fixture
def small_tree(tmp_path) -> dict[str, Path]:
    """Corpus roots of ``build_small_tree`` in a fresh temporary folder."""
    return build_small_tree(tmp_path / "corpora")


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine run faster on one torch thread; restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def execute_smoke_notebook(name: str, run_dir: Path, out: Path | None = None) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with papermill on the smoke profile into ``run_dir``.

    Returns:
        The executed notebook (``out``, default ``<run_dir>/<name>.ipynb``).
    """
    import papermill

    out = out or Path(run_dir) / f"{name}.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / f"{name}.ipynb"),
        str(out),
        parameters={"params_path": str(REPO / "parameters" / "smoke.yaml"), "run_dir": str(run_dir)},
        kernel_name="python3",
        cwd=str(REPO / "notebooks"),
        progress_bar=False,
    )
    return out


SMOKE = REPO / "parameters" / "smoke.yaml"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke profile's whole run, built once per pytest session: corpus, manifest, features, every
    system trained, every notebook executed and report.html. Tests read it; ``smoke_copy`` gives a
    private copy to a test that changes it."""
    from serlib.common.config import load_config
    from serlib.common.runfolder import RunFolder
    from serlib.report.runner import run_report

    out = tmp_path_factory.mktemp("smoke-run")
    run_report(load_config(SMOKE), out=out, verbose=False)
    return RunFolder(out)


@pytest.fixture
def smoke_copy(smoke_run, tmp_path):
    """A private copy of the session's smoke run (``tmp_path / "run"``)."""
    from serlib.common.runfolder import RunFolder

    shutil.copytree(smoke_run.root, tmp_path / "run")
    return RunFolder(tmp_path / "run")
