"""The listening station for misclassified test clips (paper 5.4: "listening tests on 50 misclassified clips").

``ListeningStation`` is an ipywidgets UI (audio, log-Mel with the pyin pitch contour, true and
predicted class with probabilities, failure-mode tags, notes, previous/next, filters by true and
predicted class). Every change is saved at once to ``<run>/listening/annotations.csv``, one row per
clip and annotator, merged with what other stations saved (``serlib.analysis.annotations.AnnotationStore``:
lock, re-read, merge field by field by the time each was set, ``.bak``, atomic replace); a new station on the
same run folder resumes from that file. Its methods (``select``, ``next``, ``previous``, ``set_tags``,
``set_note``, ``set_filter``) drive the same widgets a listener clicks, so tests exercise the real wiring.

The widget needs a live front end (``serlib.report.listening.is_live_frontend``); the static table and the tag
summary, always shown, are ``serlib.report.listening``.
"""

from __future__ import annotations

import html
import io
import json
import threading
from pathlib import Path
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from serlib.analysis.annotations import AnnotationStore, AnnotationsUnreadableError, tag_label
from serlib.analysis.evaluation import PROB_COLUMNS
from serlib.analysis.listening import agreement_table, clip_audio, clip_pitch, pitch_warm, tag_summary, with_scores
from serlib.common.audio import wav_bytes
from serlib.common.config import Config
from serlib.common.facts import CLASSES
from serlib.common.io import write_text_atomic
from serlib.common.runfolder import RunFolder
from serlib.report.listening import is_live_frontend, plot_clip

ALL = "all"  # the filters' "any class"


# --------------------------------------------------------------------------- the station

ORDERS = {"draw": "as drawn", "confidence": "most confident first", "margin": "smallest margin first"}
KEYS = {
    "ArrowRight": "next",
    "n": "next",
    "ArrowLeft": "previous",
    "p": "previous",
    "r": "reviewed",
    **{str(i + 1): i for i in range(9)},
}  # a digit toggles that tag (the profile's order)
NOTE_DEBOUNCE_S = 1.0  # a note is saved this long after the last keystroke (and on leaving the clip)
# The station this kernel shows. Re-running the station's cell makes a new station while the old one lives on in
# the kernel, its key listener still attached: every key then acted twice. Showing a station closes the one shown
# before, so a notebook has one key listener.
_SHOWN: dict = {"station": None}


class ListeningStation:
    """Listen to misclassified clips, tag failure modes and take notes, saved as you go.

    Keyboard (with ``ipyevents``, while the pointer is over the station): → or n next, ← or p previous,
    1-9 toggle a tag, r "reviewed: no failure". Playing stays on the audio player's own control.

    Args:
        cfg: run configuration (``analysis`` gives the pyin settings).
        folder: the run folder; annotations go to ``<run>/listening/annotations.csv``, the last clip each
            listener viewed to ``<run>/listening/state.json``.
        clips: the clips to listen to (``select_misclassified``).
        plots: draw the log-Mel and pitch contour of each selected clip (off in fast tests).
        annotator: the listener's id, stored with each row ("" = unnamed); two listeners with
            different ids annotate the same clips side by side (the annotator box changes it).
    """

    def __init__(self, cfg: Config, folder: RunFolder, clips: pd.DataFrame, plots: bool = True, annotator: str = ""):
        import ipywidgets as w  # the widget front end: only a station needs it

        self.cfg, self.folder, self.plots = cfg, folder, plots
        self.all_clips = with_scores(clips.reset_index(drop=True))
        self.tags = tuple(cfg.analysis.listening_tags)  # the profile's failure-mode tags
        self.store = AnnotationStore(folder.annotations, annotator, self.tags)
        self.clips = self.all_clips
        self.index = 0
        self.closed = False  # close(): the widgets and the key listener are gone
        self._loading = False
        self._pending_note: Optional[str] = None
        self._timer: Optional[threading.Timer] = None
        self._build_widgets(w)
        self.select(self.resume_index())

    # ---------------------------------------------------------------- driving (tests use these)

    @property
    def current(self) -> Optional[pd.Series]:
        """The selected clip, None when the filter leaves no clip."""
        return self.clips.iloc[self.index] if len(self.clips) else None

    @property
    def state_path(self) -> Path:
        return self.folder.listening / "state.json"

    def resume_index(self) -> int:
        """Where this listener left off: the last clip viewed, else the first clip without an annotation
        (the last clip when all are done)."""
        last = self._state().get("last_viewed", {}).get(self.store.annotator)
        if last is not None and last in set(self.clips["utt_id"]):
            return int(np.flatnonzero(self.clips["utt_id"].to_numpy() == last)[0])
        done = self.clips["utt_id"].map(lambda u: self.store.get(u) is not None)
        return int(np.argmin(done.to_numpy())) if not done.all() else max(len(self.clips) - 1, 0)

    def select(self, i: int) -> None:
        """Show clip ``i`` of the (filtered) list (a note being typed is saved first)."""
        if len(self.clips) and not 0 <= i < len(self.clips):
            raise IndexError(f"clip {i} out of range: {len(self.clips)} clip(s) in the current filter")
        self.flush_note()
        self.index = i if len(self.clips) else 0
        self._render()
        if self.current is not None:
            self._remember(self.current["utt_id"])

    def next(self) -> None:
        self.select(min(self.index + 1, max(len(self.clips) - 1, 0)))

    def previous(self) -> None:
        self.select(max(self.index - 1, 0))

    def set_tags(self, tags: Sequence[str]) -> None:
        """Tick exactly these failure-mode tags on the current clip (saved at once)."""
        unknown = sorted(set(tags) - set(self.tags))
        if unknown:
            raise ValueError(f"unknown tag(s) {unknown}; known: {list(self.tags)}")
        for tag, box in self.tag_boxes.items():
            box.value = tag in tags

    def set_reviewed(self, value: bool = True) -> None:
        """Mark the current clip "reviewed: no failure" (heard, nothing to tag; saved at once)."""
        self.reviewed_box.value = bool(value)

    def set_note(self, text: str) -> None:
        """Write the free note of the current clip and save it at once (typing in the box saves it
        ``NOTE_DEBOUNCE_S`` after the last keystroke)."""
        self.note.value = text
        self.flush_note()

    def set_annotator(self, name: str) -> None:
        """Annotate as ``name`` from now on (the boxes then show that listener's annotation)."""
        self.annotator_box.value = name

    def set_filter(
        self,
        true: Optional[str] = None,
        pred: Optional[str] = None,
        unannotated: Optional[bool] = None,
        order: Optional[str] = None,
    ) -> None:
        """Keep only clips of this true and/or predicted class (None = any), only those this listener has
        not annotated yet, in this order (``ORDERS``: draw, confidence, margin)."""
        if order is not None and order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; known: {', '.join(ORDERS)}")
        self._loading_filters = True
        try:
            self.true_filter.value = true or ALL
            self.pred_filter.value = pred or ALL
            if unannotated is not None:
                self.unannotated_box.value = bool(unannotated)
            if order is not None:
                self.order_menu.value = order
        finally:
            self._loading_filters = False
        self._on_filter(None)

    def handle_key(self, key: str) -> Optional[str]:
        """Act on one key (``KEYS``); returns what it did (None: not a shortcut)."""
        action = KEYS.get(key)
        if action == "next":
            self.next()
        elif action == "previous":
            self.previous()
        elif action == "reviewed":
            self.set_reviewed(not self.reviewed_box.value)
        elif isinstance(action, int) and action < len(self.tags):
            box = self.tag_boxes[self.tags[action]]
            box.value = not box.value
            return self.tags[action]
        return action if action is None or isinstance(action, str) else None

    def flush_note(self) -> None:
        """Save a note still waiting for its debounce (called on leaving a clip and by the timer)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        text, self._pending_note = self._pending_note, None
        if text is not None:
            self._on_edit("note", text)

    def annotation(self, utt_id: Optional[str] = None) -> Optional[dict]:
        """The stored annotation of a clip (default the current one)."""
        clip = self.current
        return self.store.get(utt_id or (clip["utt_id"] if clip is not None else ""))

    def summary(self) -> pd.DataFrame:
        """Tags by confusion pair over all the station's clips."""
        return tag_summary(self.all_clips, self.store.frame())

    # ---------------------------------------------------------------- state

    def _state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def _remember(self, utt_id: str) -> None:
        state = self._state()
        state.setdefault("last_viewed", {})[self.store.annotator] = utt_id
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.state_path, json.dumps(state, indent=1))
        except OSError:
            pass  # a read-only run folder: listening still works, resuming does not

    # ---------------------------------------------------------------- widgets

    def _build_widgets(self, w) -> None:
        options = [ALL, *CLASSES]
        self._loading_filters = False
        self.true_filter = w.Dropdown(options=options, value=ALL, description="true")
        self.pred_filter = w.Dropdown(options=options, value=ALL, description="predicted")
        self.unannotated_box = w.Checkbox(value=False, description="unannotated only", indent=False)
        self.order_menu = w.Dropdown(options=[(v, k) for k, v in ORDERS.items()], value="draw", description="order")
        self.annotator_box = w.Text(
            value=self.store.annotator, description="annotator", placeholder="your name", continuous_update=False
        )
        self.loading = w.HTML()
        self.header = w.HTML()
        self.audio = w.Audio(format="wav", autoplay=False, loop=False)
        self.figure = w.Image(format="png", layout=w.Layout(max_width="820px"))  # log-Mel + pitch, PNG bytes
        self.tag_boxes = {
            t: w.Checkbox(value=False, description=f"{i + 1} {tag_label(t)}" if i < 9 else tag_label(t), indent=False)
            for i, t in enumerate(self.tags)
        }
        self.reviewed_box = w.Checkbox(value=False, description="r reviewed: no failure", indent=False)
        self.note = w.Textarea(
            placeholder="notes on this clip (saved as you type)",
            continuous_update=True,
            layout=w.Layout(width="100%", height="70px"),
        )
        self.prev_button = w.Button(description="Previous", icon="arrow-left", tooltip="← or p")
        self.next_button = w.Button(description="Next", icon="arrow-right", tooltip="→ or n")
        self.status = w.HTML()
        self.summary_html = w.HTML()
        self.agreement_html = w.HTML()
        self._wire(w)
        self.widget = w.VBox(
            [
                w.HBox([self.annotator_box, self.true_filter, self.pred_filter]),
                w.HBox([self.order_menu, self.unannotated_box]),
                self.loading,
                self.header,
                self.audio,
                self.figure,
                w.HBox([*self.tag_boxes.values(), self.reviewed_box]),
                self.note,
                w.HBox([self.prev_button, self.next_button, self.status]),
                w.HTML(
                    "<small>keys (pointer over the station): → / n next, ← / p previous, 1-9 tags, r reviewed</small>"
                ),
                self.summary_html,
                self.agreement_html,
            ]
        )
        self._keyboard()

    def _keyboard(self) -> None:
        try:
            # ipyevents sends the browser's key events to Python; only a live station needs it (buttons without)
            from ipyevents import Event
        except ImportError:
            self.keys = None
            return
        self.keys = Event(source=self.widget, watched_events=["keydown"], prevent_default_action=False)
        self.keys.on_dom_event(self._on_key_event)

    def _on_key_event(self, event: dict) -> None:
        """A key event from the front end (ipyevents): typing in the note or annotator box is not a shortcut."""
        if self.closed or event.get("target", {}).get("tagName") in ("TEXTAREA", "INPUT"):
            return
        self.handle_key(event.get("key", ""))

    def _wire(self, w) -> None:
        for tag, box in self.tag_boxes.items():
            box.observe(lambda change, tag=tag: self._on_edit(tag, change["new"]), names="value")
        self.reviewed_box.observe(lambda change: self._on_edit("reviewed", change["new"]), names="value")
        self.note.observe(self._on_typing, names="value")
        for control in (self.true_filter, self.pred_filter, self.unannotated_box, self.order_menu):
            control.observe(self._on_filter, names="value")
        self.annotator_box.observe(self._on_annotator, names="value")
        self.prev_button.on_click(lambda _: self.previous())
        self.next_button.on_click(lambda _: self.next())

    def _on_typing(self, change) -> None:
        if self._loading or self.current is None:
            return
        self._pending_note = change["new"]
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(NOTE_DEBOUNCE_S, self.flush_note)
        self._timer.daemon = True
        self._timer.start()
        self.status.value = "<small>typing…</small>"

    def _on_annotator(self, change) -> None:
        self.flush_note()
        self.store = AnnotationStore(self.folder.annotations, str(change["new"]).strip(), self.tags)
        self.select(self.resume_index() if len(self.clips) else 0)

    def _on_filter(self, _change) -> None:
        if self._loading_filters:
            return
        self.flush_note()
        keep = np.ones(len(self.all_clips), dtype=bool)
        if self.true_filter.value != ALL:
            keep &= (self.all_clips["label"] == self.true_filter.value).to_numpy()
        if self.pred_filter.value != ALL:
            keep &= (self.all_clips["pred"] == self.pred_filter.value).to_numpy()
        if self.unannotated_box.value:
            keep &= self.all_clips["utt_id"].map(lambda u: self.store.get(u) is None).to_numpy(dtype=bool)
        clips = self.all_clips[keep]
        if self.order_menu.value == "confidence":
            clips = clips.sort_values("confidence", ascending=False, kind="stable")
        elif self.order_menu.value == "margin":
            clips = clips.sort_values("margin", ascending=True, kind="stable")
        self.clips = clips.reset_index(drop=True)
        self.select(0)

    def _on_edit(self, field_name: str, value) -> None:
        """One widget changed: save that field only (the others may hold another station's newer values)."""
        clip = self.current
        if self._loading or clip is None:
            return
        try:
            self.store.update(clip, {field_name: value})
        except OSError as err:  # a full disk, a read-only folder, a file it cannot read: say so, keep the edit
            reason = (
                str(err)
                if isinstance(err, AnnotationsUnreadableError)
                else f"{type(err).__name__}: {err.strerror or err}"
            )
            self.status.value = (
                f"<b style='color:#c62828'>NOT saved: {html.escape(reason)}</b> <small>(the change "
                "is kept here and saved with the next one)</small>"
            )
            return
        if field_name != "note":  # re-showing the record while typing would move the cursor
            self._show_record(clip)  # the merged row may carry another station's changes
        self.status.value = (
            f"<small>saved {html.escape(clip['utt_id'])} to "
            f"{html.escape(self.store.path.parent.name + '/' + self.store.path.name)}</small>"
        )
        self._render_summary()

    def _show_record(self, clip: Optional[pd.Series]) -> None:
        """Set the tag boxes and the note to the stored annotation of ``clip``."""
        self._loading = True  # restoring a clip's tags must not count as an edit
        try:
            record = self.store.get(clip["utt_id"]) if clip is not None else None
            for tag, box in self.tag_boxes.items():
                box.value = bool(record and record[tag])
            self.reviewed_box.value = bool(record and record.get("reviewed"))
            self.note.value = record["note"] if record else ""
        finally:
            self._loading = False

    def _render(self) -> None:
        """Show the current clip: header, audio and picture switch together, after the picture is drawn."""
        clip = self.current
        first = not pitch_warm()
        self.loading.value = (
            "<i>loading the clip… (the first pitch analysis compiles pyin: about 10 s)</i>"
            if first and self.plots and clip is not None
            else "<i>loading…</i>"
        )
        picture = self._figure_png(clip)
        audio = wav_bytes(clip_audio(str(clip["path"]))) if clip is not None else b""
        with self.widget.hold_sync() if hasattr(self.widget, "hold_sync") else _nothing():
            self._show_record(clip)
            self.header.value = self._header_html(clip)
            self.audio.value = audio
            self.figure.value = picture
            self.status.value = ""
            self.loading.value = ""
        self._render_summary()
        self._look_ahead()

    def _look_ahead(self) -> None:
        """Compute the next clip's pitch in a thread while the listener listens to this one."""
        if not self.plots or self.index + 1 >= len(self.clips):
            return
        path = str(self.clips.iloc[self.index + 1]["path"])
        threading.Thread(target=_quietly, args=(clip_pitch, path, self.cfg.analysis), daemon=True).start()

    def _header_html(self, clip: Optional[pd.Series]) -> str:
        if clip is None:
            return "<b>No clip matches this filter.</b>"
        probs = " ".join(
            f"<span style='margin-right:1em'>{c}: <b>{clip[p]:.2f}</b></span>" for c, p in zip(CLASSES, PROB_COLUMNS)
        )
        return (
            f"<div><b>Clip {self.index + 1} / {len(self.clips)}</b> &middot; {html.escape(clip['utt_id'])} "
            f"&middot; {html.escape(str(clip.get('speaker', '')))} ({html.escape(str(clip.get('sex', '')))})</div>"
            f"<div>true: <b>{clip['label']}</b> &rarr; predicted: <b style='color:#c62828'>{clip['pred']}</b> "
            f"&middot; confidence {clip['confidence']:.2f}, margin {clip['margin']:.2f}</div>"
            f"<div>probabilities: {probs}</div>"
        )

    def _figure_png(self, clip: Optional[pd.Series]) -> bytes:
        if clip is None or not self.plots:
            return b""
        path = str(clip["path"])
        fig = plot_clip(
            clip_audio(path), self.cfg.analysis, title=clip["utt_id"], pitch=clip_pitch(path, self.cfg.analysis)
        )
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        return buffer.getvalue()

    def _render_summary(self) -> None:
        self.summary_html.value = "<b>Tags by confusion pair</b>" + self.summary().to_html(index=False, border=0)
        agreement = agreement_table(self.store.frame())
        self.agreement_html.value = (
            ""
            if agreement.empty
            else "<b>Agreement between annotators</b>"
            + agreement.to_html(index=False, border=0, float_format=lambda v: f"{v:.2f}")
        )

    def show(self) -> bool:
        """Display the widget in a live front end; returns whether it was displayed.

        The station shown before in this kernel (the cell run again) is closed first: its widget and its key
        listener, so that a key acts once.
        """
        from IPython.display import display  # IPython is present only in a kernel

        if not is_live_frontend():
            return False
        previous = _SHOWN["station"]
        if previous is not None and previous is not self:
            previous.close()
        _SHOWN["station"] = self
        display(self.widget)
        return True

    def close(self) -> None:
        """Close the widget and its key listener (a note being typed is saved first); closing twice does nothing."""
        if self.closed:
            return
        self.flush_note()
        self.closed = True
        if self.keys is not None:
            self.keys.reset_callbacks()
            self.keys.close()
        _close_tree(self.widget)
        if _SHOWN["station"] is self:
            _SHOWN["station"] = None


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _close_tree(widget) -> None:
    """Close a widget and every widget inside it (closing a box leaves its children's models open)."""
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 -- a look-ahead that fails is computed again (and reported) when shown
        pass
