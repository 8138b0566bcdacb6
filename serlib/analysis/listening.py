"""The listening station for misclassified test clips (paper 5.4: "listening tests on 50 misclassified
clips"), and its static form for the HTML report.

``ListeningStation`` is an ipywidgets UI (audio, log-Mel with the pyin pitch contour, true and
predicted class with probabilities, failure-mode tags, notes, previous/next, filters by true and
predicted class). Every change is written at once to ``<run>/listening/annotations.csv`` (atomic
replace); a new station on the same run folder resumes from that file. Its methods (``select``,
``next``, ``previous``, ``set_tags``, ``set_note``, ``set_filter``) drive the same widgets a
listener clicks, so tests exercise the real wiring.

Live kernel or not: the widget needs a live front end (JupyterLab, VS Code). Under papermill/nbclient
the kernel receives ``allow_stdin=False`` on every execute request, a live notebook front end sends
True; ``is_live_frontend()`` reads that flag, and ``SERLIB_STATIC=1`` in the environment forces the
static form. The static table (embedded playable audio) and the annotation summary are ALWAYS shown,
so the report carries them and a listener sees the clips' overview too.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from serlib.analysis.confusion import PROB_COLUMNS
from serlib.analysis.prosody import hop_length, pitch_contour
from serlib.common.audio import load_audio, wav_bytes
from serlib.common.config import AnalysisConfig, Config
from serlib.common.facts import CLASSES, SAMPLE_RATE
from serlib.common.io import write_csv_atomic
from serlib.common.runfolder import RunFolder

TAGS = ("hybrid_prosody", "ambiguous_arousal", "label_doubtful", "other")
TAG_LABELS = {"hybrid_prosody": "hybrid prosody", "ambiguous_arousal": "ambiguous arousal",
              "label_doubtful": "label doubtful", "other": "other"}
ANNOTATION_COLUMNS = ("utt_id", "label", "pred", *TAGS, "note", "annotated_utc")
ALL = "all"


# --------------------------------------------------------------------------- clips and annotations


def select_misclassified(preds: pd.DataFrame, n: int = 50, seed: int = 0) -> pd.DataFrame:
    """Draw ``n`` misclassified clips reproducibly (all of them when fewer).

    The draw depends only on the set of misclassified utt_ids and the seed, not on row order.

    Args:
        preds: predictions joined with the manifest (``serlib.analysis.confusion.load_predictions``).
        n: how many clips (paper 5.4: 50).
        seed: seed of the draw.

    Returns:
        The drawn rows sorted by (true class, predicted class, utt_id), index 0..n-1.
    """
    if n < 1:
        raise ValueError(f"n (analysis.listening_clips) must be at least 1, got {n}")
    wrong = preds[~preds["correct"]].sort_values("utt_id").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    chosen = wrong.iloc[np.sort(rng.permutation(len(wrong))[: min(n, len(wrong))])]
    order = {c: i for i, c in enumerate(CLASSES)}
    return (chosen.assign(_t=chosen["label"].map(order), _p=chosen["pred"].map(order))
            .sort_values(["_t", "_p", "utt_id"]).drop(columns=["_t", "_p"]).reset_index(drop=True))


class AnnotationStore:
    """Annotations by utt_id, mirrored to a CSV on every change (temporary file + ``os.replace``)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: dict[str, dict] = {}
        if self.path.is_file():
            table = pd.read_csv(self.path, dtype={"note": str}, keep_default_na=False)
            missing = [c for c in ANNOTATION_COLUMNS if c not in table.columns]
            if missing:
                raise ValueError(f"{self.path}: missing column(s) {', '.join(missing)}; move the file away to start afresh")
            self.records = {r["utt_id"]: _clean_record(r) for r in table.to_dict("records")}

    def get(self, utt_id: str) -> Optional[dict]:
        return self.records.get(utt_id)

    def update(self, clip: pd.Series, tags: Sequence[str], note: str) -> dict:
        """Store the tags and note of one clip and rewrite the CSV."""
        record = {"utt_id": clip["utt_id"], "label": clip["label"], "pred": clip["pred"],
                  **{t: int(t in tags) for t in TAGS}, "note": note,
                  "annotated_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        self.records[clip["utt_id"]] = record
        write_csv_atomic(self.frame(), self.path)
        return record

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.records.values()), columns=list(ANNOTATION_COLUMNS))


def _clean_record(record: dict) -> dict:
    for tag in TAGS:
        record[tag] = int(record[tag] or 0)
    record["note"] = str(record["note"])
    return record


def tag_summary(clips: pd.DataFrame, annotations: pd.DataFrame) -> pd.DataFrame:
    """Tags by confusion pair: clips drawn, clips annotated, and how often each tag was given.

    Args:
        clips: the listening clips (``select_misclassified``).
        annotations: ``AnnotationStore.frame()`` (may be empty).

    Returns:
        One row per (true, predicted) pair among the clips, plus a 'total' row.
    """
    notes = annotations[annotations["utt_id"].isin(clips["utt_id"])]
    merged = clips[["utt_id", "label", "pred"]].merge(notes[["utt_id", *TAGS]], on="utt_id", how="left")
    merged["annotated"] = merged[list(TAGS)].notna().any(axis=1).astype(int)
    merged[list(TAGS)] = merged[list(TAGS)].fillna(0).astype(int)
    merged["clips"] = 1
    columns = ["clips", "annotated", *TAGS]
    table = merged.groupby(["label", "pred"], sort=False)[columns].sum().reset_index()
    total = {"label": "total", "pred": "", **merged[columns].sum().to_dict()}
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    return table.rename(columns={"label": "true", "pred": "predicted", **TAG_LABELS})


# --------------------------------------------------------------------------- audio and plots


@lru_cache(maxsize=64)
def _clip_audio(path: str) -> np.ndarray:
    return load_audio(path, SAMPLE_RATE)  # (samples,)


def clip_data_uri(path: str | Path) -> str:
    """A clip as a ``data:audio/wav;base64,...`` URI: 16 kHz mono 16-bit PCM."""
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(_clip_audio(str(path)))).decode("ascii")


def plot_clip(audio: np.ndarray, analysis: AnalysisConfig, title: str = "", ax=None) -> plt.Figure:
    """Log-Mel spectrogram of a 16 kHz clip with its pyin pitch contour on top.

    Args:
        audio: (samples,) float32 mono at 16 kHz.
        analysis: pyin settings.
        title: axes title.
        ax: axes to draw into (a new figure when None).
    """
    # librosa (numba) costs seconds to import; only the live station draws clips
    import librosa
    import librosa.display

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.0))
    hop = hop_length(analysis)
    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=1024, hop_length=hop, n_mels=64)
    librosa.display.specshow(librosa.power_to_db(mel, ref=np.max), sr=SAMPLE_RATE, hop_length=hop,
                             x_axis="time", y_axis="mel", fmax=SAMPLE_RATE // 2, ax=ax, cmap="magma")
    times, f0 = pitch_contour(audio, analysis)  # (frames,), (frames,)
    ax.plot(times, f0, color="#00e5ff", linewidth=2.0, label="pyin f0")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=9)
    return ax.figure


# --------------------------------------------------------------------------- the station


class ListeningStation:
    """Listen to misclassified clips, tag failure modes and take notes, saved as you go.

    Args:
        cfg: run configuration (``analysis`` gives the pyin settings).
        folder: the run folder; annotations go to ``<run>/listening/annotations.csv``.
        clips: the clips to listen to (``select_misclassified``).
        plots: draw the log-Mel and pitch contour of each selected clip (off in fast tests).
    """

    def __init__(self, cfg: Config, folder: RunFolder, clips: pd.DataFrame, plots: bool = True):
        import ipywidgets as w  # the widget front end: only a station needs it

        self.cfg, self.folder, self.plots = cfg, folder, plots
        self.all_clips = clips.reset_index(drop=True)
        self.store = AnnotationStore(folder.annotations)
        self.clips = self.all_clips
        self.index = 0
        self._loading = False
        self._build_widgets(w)
        self.select(self.resume_index())

    # ---------------------------------------------------------------- driving (tests use these)

    @property
    def current(self) -> Optional[pd.Series]:
        """The selected clip, None when the filter leaves no clip."""
        return self.clips.iloc[self.index] if len(self.clips) else None

    def resume_index(self) -> int:
        """Position of the first clip without an annotation (the last clip when all are done)."""
        done = self.clips["utt_id"].map(lambda u: self.store.get(u) is not None)
        return int(np.argmin(done.to_numpy())) if not done.all() else max(len(self.clips) - 1, 0)

    def select(self, i: int) -> None:
        """Show clip ``i`` of the (filtered) list."""
        if len(self.clips) and not 0 <= i < len(self.clips):
            raise IndexError(f"clip {i} out of range: {len(self.clips)} clip(s) in the current filter")
        self.index = i if len(self.clips) else 0
        self._render()

    def next(self) -> None:
        self.select(min(self.index + 1, max(len(self.clips) - 1, 0)))

    def previous(self) -> None:
        self.select(max(self.index - 1, 0))

    def set_tags(self, tags: Sequence[str]) -> None:
        """Tick exactly these failure-mode tags on the current clip (saved at once)."""
        unknown = sorted(set(tags) - set(TAGS))
        if unknown:
            raise ValueError(f"unknown tag(s) {unknown}; known: {list(TAGS)}")
        for tag, box in self.tag_boxes.items():
            box.value = tag in tags

    def set_note(self, text: str) -> None:
        """Write the free note of the current clip (saved at once)."""
        self.note.value = text

    def set_filter(self, true: Optional[str] = None, pred: Optional[str] = None) -> None:
        """Keep only clips of this true and/or predicted class (None = any)."""
        self.true_filter.value = true or ALL
        self.pred_filter.value = pred or ALL

    def annotation(self, utt_id: Optional[str] = None) -> Optional[dict]:
        """The stored annotation of a clip (default the current one)."""
        clip = self.current
        return self.store.get(utt_id or (clip["utt_id"] if clip is not None else ""))

    def summary(self) -> pd.DataFrame:
        """Tags by confusion pair over all the station's clips."""
        return tag_summary(self.all_clips, self.store.frame())

    # ---------------------------------------------------------------- widgets

    def _build_widgets(self, w) -> None:
        options = [ALL, *CLASSES]
        self.true_filter = w.Dropdown(options=options, value=ALL, description="true")
        self.pred_filter = w.Dropdown(options=options, value=ALL, description="predicted")
        self.header = w.HTML()
        self.audio = w.Audio(format="wav", autoplay=False, loop=False)
        self.figure = w.Image(format="png", layout=w.Layout(max_width="820px"))  # log-Mel + pitch, PNG bytes
        self.tag_boxes = {t: w.Checkbox(value=False, description=TAG_LABELS[t], indent=False) for t in TAGS}
        self.note = w.Textarea(placeholder="notes on this clip", continuous_update=False,
                               layout=w.Layout(width="100%", height="70px"))
        self.prev_button = w.Button(description="Previous", icon="arrow-left")
        self.next_button = w.Button(description="Next", icon="arrow-right")
        self.status = w.HTML()
        self.summary_html = w.HTML()
        self._wire(w)
        self.widget = w.VBox([
            w.HBox([self.true_filter, self.pred_filter]), self.header, self.audio, self.figure,
            w.HBox(list(self.tag_boxes.values())), self.note,
            w.HBox([self.prev_button, self.next_button, self.status]), self.summary_html])

    def _wire(self, w) -> None:
        for box in self.tag_boxes.values():
            box.observe(self._on_edit, names="value")
        self.note.observe(self._on_edit, names="value")
        self.true_filter.observe(self._on_filter, names="value")
        self.pred_filter.observe(self._on_filter, names="value")
        self.prev_button.on_click(lambda _: self.previous())
        self.next_button.on_click(lambda _: self.next())

    def _on_filter(self, _change) -> None:
        keep = np.ones(len(self.all_clips), dtype=bool)
        if self.true_filter.value != ALL:
            keep &= (self.all_clips["label"] == self.true_filter.value).to_numpy()
        if self.pred_filter.value != ALL:
            keep &= (self.all_clips["pred"] == self.pred_filter.value).to_numpy()
        self.clips = self.all_clips[keep].reset_index(drop=True)
        self.select(0)

    def _on_edit(self, _change) -> None:
        clip = self.current
        if self._loading or clip is None:
            return
        tags = [t for t, box in self.tag_boxes.items() if box.value]
        self.store.update(clip, tags, self.note.value)
        self.status.value = f"<small>saved {html.escape(clip['utt_id'])} to {html.escape(str(self.store.path))}</small>"
        self._render_summary()

    def _render(self) -> None:
        clip = self.current
        self._loading = True  # restoring a clip's tags must not count as an edit
        try:
            record = self.store.get(clip["utt_id"]) if clip is not None else None
            for tag, box in self.tag_boxes.items():
                box.value = bool(record and record[tag])
            self.note.value = record["note"] if record else ""
        finally:
            self._loading = False
        self.header.value = self._header_html(clip)
        self.audio.value = wav_bytes(_clip_audio(str(clip["path"]))) if clip is not None else b""
        self.status.value = ""
        self._render_figure(clip)
        self._render_summary()

    def _header_html(self, clip: Optional[pd.Series]) -> str:
        if clip is None:
            return "<b>No clip matches this filter.</b>"
        probs = " ".join(f"<span style='margin-right:1em'>{c}: <b>{clip[p]:.2f}</b></span>"
                         for c, p in zip(CLASSES, PROB_COLUMNS))
        return (f"<div><b>Clip {self.index + 1} / {len(self.clips)}</b> &middot; {html.escape(clip['utt_id'])} "
                f"&middot; {html.escape(str(clip.get('speaker', '')))} ({html.escape(str(clip.get('sex', '')))})</div>"
                f"<div>true: <b>{clip['label']}</b> &rarr; predicted: <b style='color:#c62828'>{clip['pred']}</b></div>"
                f"<div>probabilities: {probs}</div>")

    def _render_figure(self, clip: Optional[pd.Series]) -> None:
        if clip is None or not self.plots:
            self.figure.value = b""
            return
        fig = plot_clip(_clip_audio(str(clip["path"])), self.cfg.analysis, title=clip["utt_id"])
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        self.figure.value = buffer.getvalue()

    def _render_summary(self) -> None:
        self.summary_html.value = ("<b>Tags by confusion pair</b>"
                                   + self.summary().to_html(index=False, border=0))

    def show(self) -> bool:
        """Display the widget in a live front end; returns whether it was displayed."""
        from IPython.display import display  # IPython is present only in a kernel

        if not is_live_frontend():
            return False
        display(self.widget)
        return True


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


def static_table_html(clips: pd.DataFrame, annotations: Optional[pd.DataFrame] = None,
                      label: str = "Table S50", caption: str = "") -> str:
    """The listening clips as an HTML table with embedded, playable audio (16 kHz mono 16-bit WAV).

    A clip that cannot be read gets a note in its audio cell instead of a player.

    Args:
        clips: the listening clips (``select_misclassified``).
        annotations: ``AnnotationStore.frame()``: tags and notes shown per clip (None = none).
        label: caption label (the report lists it in its contents).
        caption: caption text.
    """
    notes = {} if annotations is None else {r["utt_id"]: r for r in annotations.to_dict("records")}
    left = "<th style='text-align:left'>"
    head = (f"<tr><th>#</th>{left}clip</th>{left}true &rarr; predicted</th><th>probabilities</th>"
            f"<th>audio</th>{left}tags</th>{left}note</th></tr>")
    rows = [_static_row(i, clip, notes.get(clip["utt_id"])) for i, clip in clips.iterrows()]
    return (f'<div class="serlib-table serlib-listening"><p><b>{html.escape(label)}.</b> {html.escape(caption)}</p>'
            f'<table class="serlib-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></div>')


def _static_row(i: int, clip: pd.Series, note: Optional[dict]) -> str:
    try:
        audio = (f'<audio controls preload="metadata" style="width:230px" '
                 f'src="{clip_data_uri(clip["path"])}"></audio>')
    except Exception as err:  # one unreadable clip leaves a note, not a broken report
        audio = f"<i>unreadable: {html.escape(f'{type(err).__name__}: {err}')}</i>"
    tags = ", ".join(TAG_LABELS[t] for t in TAGS if note and note[t]) if note else ""
    probs = "<br>".join(f"{c}&nbsp;{clip[p]:.2f}" for c, p in zip(CLASSES, PROB_COLUMNS))
    who = f"{clip.get('speaker', '')}, {clip.get('sex', '')}"
    left = "text-align:left"
    return (f"<tr><td>{i + 1}</td><td style='{left}'>{html.escape(clip['utt_id'])}<br><small>{html.escape(who)}</small></td>"
            f"<td style='{left}'>{clip['label']} &rarr;<br><b>{clip['pred']}</b></td><td><small>{probs}</small></td>"
            f"<td>{audio}</td><td style='{left}'>{html.escape(tags)}</td>"
            f"<td style='{left}'>{html.escape(note['note'] if note else '')}</td></tr>")


def show_listening_table(clips: pd.DataFrame, folder: RunFolder, label: str = "Table S50",
                         caption: str = "") -> pd.DataFrame:
    """Display the static listening table and save its rows (no audio) as ``tables/<label>.csv``."""
    from IPython.display import HTML, display  # a notebook helper: IPython is present only in a kernel

    annotations = AnnotationStore(folder.annotations).frame()
    display(HTML(static_table_html(clips, annotations, label, caption)))
    columns = ["utt_id", "corpus", "speaker", "sex", "label", "pred", *PROB_COLUMNS, "path"]
    folder.tables.mkdir(parents=True, exist_ok=True)
    table = clips[[c for c in columns if c in clips.columns]]
    table.to_csv(folder.tables / f"{label.lower().replace(' ', '_')}.csv", index=False)
    return table
