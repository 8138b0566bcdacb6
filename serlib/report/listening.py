"""The listening clips in the report: the static table with playable audio (Table S50), the failure-mode tags by
confusion pair (Table S51), the clip figure the station draws, and whether a live front end can show the station
(``serlib.report.station``).

Live kernel or not: the station needs a live front end (JupyterLab, VS Code). Under papermill/nbclient
the kernel receives ``allow_stdin=False`` on every execute request, a live notebook front end sends
True; ``is_live_frontend()`` reads that flag, and ``SERLIB_STATIC=1`` in the environment forces the
static form. The static table (embedded playable audio) and the annotation summary are ALWAYS shown,
so the report carries them and a listener sees the clips' overview too.

The clips, the tag summary and the agreement are ``serlib.analysis.listening``; the annotations file and its
store are ``serlib.analysis.annotations``. ``show_listening_table`` and ``show_tag_summary`` mark their output
(``LISTENING``), and the report's export asks ``refreshed_html`` for those outputs as the annotations stand
then (``serlib.report.runner``).
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from serlib.analysis.annotations import TAGS, AnnotationStore, file_tags, tag_label
from serlib.analysis.evaluation import PROB_COLUMNS
from serlib.analysis.listening import clip_audio, tag_summary
from serlib.analysis.prosody import hop_length, pitch_contour
from serlib.common.audio import wav_bytes
from serlib.common.config import AnalysisConfig
from serlib.common.facts import CLASSES, SAMPLE_RATE
from serlib.common.runfolder import RunFolder
from serlib.report.display import display_html, show_table, table_block, table_file

# --------------------------------------------------------------------------- the clip figure


def plot_clip(
    audio: np.ndarray,
    analysis: AnalysisConfig,
    title: str = "",
    ax=None,
    pitch: Optional[tuple[np.ndarray, np.ndarray]] = None,
) -> plt.Figure:
    """Log-Mel spectrogram of a 16 kHz clip (time in seconds) with its pyin pitch contour in Hz on an axis of
    its own (right), so the contour is not squeezed into the mel scale.

    Args:
        audio: (samples,) float32 mono at 16 kHz.
        analysis: pyin settings.
        title: axes title.
        ax: axes to draw into (a new figure when None).
        pitch: ``(times, f0)`` already computed (``clip_pitch``); None computes it.
    """
    # librosa (numba) costs seconds to import; only the live station draws clips
    import librosa
    import librosa.display

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.2))
    hop = hop_length(analysis)
    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=1024, hop_length=hop, n_mels=64)
    librosa.display.specshow(
        librosa.power_to_db(mel, ref=np.max),
        sr=SAMPLE_RATE,
        hop_length=hop,
        x_axis="s",
        y_axis="mel",
        fmax=SAMPLE_RATE // 2,
        ax=ax,
        cmap="magma",
    )
    ax.set_xlabel("time (s)")
    times, f0 = pitch if pitch is not None else pitch_contour(audio, analysis)  # (frames,), (frames,)
    hz = ax.twinx()
    hz.plot(times, f0, color="#00e5ff", linewidth=2.0, label="pyin f0")
    hz.set_ylim(analysis.pitch_fmin, analysis.pitch_fmax)
    hz.set_ylabel("f0 (Hz)")
    hz.legend(loc="upper right", fontsize=9)
    ax.set_title(title, fontsize=9)
    return ax.figure


def is_live_frontend() -> bool:
    """True in a kernel driven by a live notebook front end; False under papermill/nbclient or
    outside a kernel, and when the environment sets ``SERLIB_STATIC=1``."""
    if os.environ.get("SERLIB_STATIC", "") not in ("", "0"):
        return False
    try:
        from IPython import get_ipython  # present only where a kernel runs
    except ImportError:
        return False
    kernel = getattr(get_ipython(), "kernel", None)
    return bool(kernel is not None and getattr(kernel, "_allow_stdin", False))


# --------------------------------------------------------------------------- the static table


def clip_data_uri(path: str | Path) -> str:
    """A clip as a ``data:audio/wav;base64,...`` URI: 16 kHz mono 16-bit PCM."""
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(clip_audio(str(path)))).decode("ascii")


def static_table_html(
    clips: pd.DataFrame, annotations: Optional[pd.DataFrame] = None, label: str = "Table S50", caption: str = ""
) -> str:
    """The listening clips as an HTML table with embedded, playable audio (16 kHz mono 16-bit WAV).

    A clip that cannot be read gets a note in its audio cell instead of a player.

    Args:
        clips: the listening clips (``select_misclassified``).
        annotations: ``AnnotationStore.frame()``: tags and notes shown per clip, each listener's
            note prefixed with their id when several annotated a clip (None = none).
        label: caption label (the report lists it in its contents).
        caption: caption text.
    """
    notes = {} if annotations is None else _notes_by_clip(annotations)
    left = "<th style='text-align:left'>"
    head = (
        f"<tr><th>#</th>{left}clip</th>{left}true &rarr; predicted</th><th>probabilities</th>"
        f"<th>audio</th>{left}tags</th>{left}note</th></tr>"
    )
    rows = [_static_row(i, clip, notes.get(clip["utt_id"])) for i, clip in clips.iterrows()]
    return (
        f'<div class="serlib-table serlib-listening" data-csv="{html.escape(table_file(label), quote=True)}">'
        f"<p><b>{html.escape(label)}.</b> {html.escape(caption)}</p>"
        f'<table class="serlib-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def _notes_by_clip(annotations: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """``{utt_id: (tags given by anyone, the notes)}``; notes name their annotator when there are several."""
    notes = {}
    for utt_id, rows in annotations.groupby("utt_id", sort=False):
        tags = ", ".join(tag_label(t) for t in file_tags(list(annotations.columns)) if rows[t].astype(int).any())
        named = len(rows) > 1 or (rows["annotator"] != "").any()
        texts = [f"{a or 'unnamed'}: {n}" if named else n for a, n in zip(rows["annotator"], rows["note"]) if n]
        notes[utt_id] = (tags, " / ".join(texts))
    return notes


def _static_row(i: int, clip: pd.Series, note: Optional[tuple[str, str]]) -> str:
    try:
        audio = f'<audio controls preload="metadata" style="width:230px" src="{clip_data_uri(clip["path"])}"></audio>'
    except Exception as err:  # one unreadable clip leaves a note, not a broken report
        audio = f"<i>unreadable: {html.escape(f'{type(err).__name__}: {err}')}</i>"
    tags, text = note or ("", "")
    probs = "<br>".join(f"{c}&nbsp;{clip[p]:.2f}" for c, p in zip(CLASSES, PROB_COLUMNS))
    who = f"{clip.get('speaker', '')}, {clip.get('sex', '')}"
    left = "text-align:left"
    return (
        f"<tr><td>{i + 1}</td><td style='{left}'>{html.escape(clip['utt_id'])}"
        f"<br><small>{html.escape(who)}</small></td>"
        f"<td style='{left}'>{clip['label']} &rarr;<br><b>{clip['pred']}</b></td><td><small>{probs}</small></td>"
        f"<td>{audio}</td><td style='{left}'>{html.escape(tags)}</td>"
        f"<td style='{left}'>{html.escape(text)}</td></tr>"
    )


LISTENING = "serlib-listening"  # the output metadata that marks Tables S50 and S51 for ``refreshed_html``


def show_listening_table(
    clips: pd.DataFrame, folder: RunFolder, label: str = "Table S50", caption: str = "", collapsed: bool = False
) -> pd.DataFrame:
    """Display the static listening table and save its rows (no audio) as ``tables/<label>.csv``.

    ``collapsed``: folded under a one-line summary (in JupyterLab, so the station above stays in view;
    the exported report shows it open). The output is marked (``LISTENING``) so that the report's export shows
    the table with the annotations saved since (``refreshed_html``).
    """
    annotations = AnnotationStore(folder.annotations).frame()
    markup = static_table_html(clips, annotations, label, caption)
    if collapsed:
        markup = (
            f"<details><summary>{html.escape(label)}: the {len(clips)} clips as a static table with audio "
            f"(open)</summary>{markup}</details>"
        )
    display_html(
        markup, {LISTENING: {"table": "clips", "label": label, "caption": caption, "clips": table_file(label)}}
    )
    columns = ["utt_id", "corpus", "speaker", "sex", "label", "pred", *PROB_COLUMNS, "path"]
    folder.tables.mkdir(parents=True, exist_ok=True)
    table = clips[[c for c in columns if c in clips.columns]]
    table.to_csv(folder.tables / table_file(label), index=False)
    return table


def show_tag_summary(
    clips: pd.DataFrame,
    folder: RunFolder,
    tags: Sequence[str] = TAGS,
    label: str = "Table S51",
    caption: str = "",
    note: Optional[str] = None,
    clips_label: str = "Table S50",
) -> None:
    """Display the failure-mode tags by confusion pair of ``clips`` (``tag_summary`` of the run's annotations,
    the profile's ``tags`` first) and save it as ``tables/<label>.csv``; marked (``LISTENING``) so that the
    report's export counts the annotations saved since, from the clips ``show_listening_table`` saved under
    ``clips_label``."""
    spec = {
        "table": "summary",
        "label": label,
        "caption": caption,
        "note": note,
        "tags": list(tags),
        "clips": table_file(clips_label),
    }
    show_table(_summary(clips, folder, tags), label, caption, folder, note=note, metadata={LISTENING: spec})


def _summary(clips: pd.DataFrame, folder: RunFolder, tags: Sequence[str]) -> pd.DataFrame:
    return tag_summary(clips, AnnotationStore(folder.annotations, tags=tuple(tags)).frame())


def refreshed_html(metadata: Optional[dict], folder: RunFolder) -> Optional[str]:
    """A listening output (Table S50 or S51, as its ``LISTENING`` metadata names it) drawn again from the annotations
    as they stand now: a re-export shows what listeners saved since the notebook ran. None: not a listening
    output, or its clip list cannot be read."""
    spec = (metadata or {}).get(LISTENING)
    if not isinstance(spec, dict) or spec.get("table") not in ("clips", "summary"):
        return None
    try:
        clips = pd.read_csv(folder.tables / spec["clips"], dtype={"utt_id": str, "speaker": str})
    except (OSError, ValueError, KeyError):
        return None
    if spec["table"] == "clips":
        return static_table_html(
            clips, AnnotationStore(folder.annotations).frame(), spec.get("label", ""), spec.get("caption", "")
        )
    summary = _summary(clips, folder, spec.get("tags") or TAGS)
    label = spec.get("label", "")
    return table_block(summary, label, spec.get("caption", ""), spec.get("note"), csv=table_file(label))
