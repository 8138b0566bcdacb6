"""What a model bundle is on disk (``serlib export`` writes it, ``Predictor.from_bundle`` reads it): its format
version, its file names, the ``features`` fields its ``bundle.json`` must share with the checkpoint, the class
map it states, and the rule that every file it names lies inside the bundle folder.
"""

from __future__ import annotations

from pathlib import Path

from serlib.common.facts import CLASSES, EMOTION_TO_CLASS

BUNDLE_FORMAT = 2  # the layout of a model bundle (bundle.json, checkpoint.pt, ...); loading checks it
# (2: the checkpoint records the features it was trained on; a marker lists serlib's files)
BUNDLE_FILE = "bundle.json"
BUNDLE_MARKER = ".serlib-bundle"  # the files serlib wrote into a bundle (export replaces only such a folder)
PREDICT_SCRIPT = "predict.py"  # the torch-free scorer in a bundle (serlib.inference.standalone)
HEAD_FILE = "head.onnx"  # the classifier head alone (features in, logits out)
INSTALL_LINE = "pip install onnxruntime numpy soundfile"  # all predict.py needs
# The features fields that decide what the encoder computes: a bundle's bundle.json must agree with the
# features its checkpoint was trained on (``model_id`` and ``revision`` may name a local copy; device,
# threads, batching and the cache folder change nothing a model sees).
ENCODER_FIELDS = {
    "features": ("sample_rate",),
    "wav2vec2": ("weights", "layer", "config_overrides"),
    "logmel": ("n_mels", "win_ms", "hop_ms", "log_floor", "standardise"),
}


class BundleError(ValueError):
    """A model bundle that this serlib cannot load (missing files, another format version, edited)."""


def bundle_path(root: Path, name: object, what: str) -> Path:
    """A file ``bundle.json`` names: a plain name of a file inside the bundle folder, nothing else.

    Raises:
        BundleError: a path, ``..``, or a name that leads out of the folder (a link).
    """
    meta = root / BUNDLE_FILE
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise BundleError(
            f"{meta}: '{what}' must name a file inside the bundle folder, got {name!r}; export the bundle again"
        )
    path = root / name
    if path.resolve().parent != root.resolve():
        raise BundleError(
            f"{meta}: '{what}' ({name}) leads out of the bundle folder (to {path.resolve()}); a bundle "
            "holds its own files: export it again"
        )
    return path


def encoder_fields(features: dict) -> dict:
    """The part of a ``features`` section (plain data) that decides what the encoder computes (``ENCODER_FIELDS``)."""
    out = {k: features.get(k) for k in ENCODER_FIELDS["features"]}
    for section in ("wav2vec2", "logmel"):
        values = features.get(section) or {}
        out |= {f"{section}.{k}": values.get(k) for k in ENCODER_FIELDS[section]}
    return out


def class_map() -> dict[str, list[str]]:
    """MCULP: the source emotions each of the three classes holds (calm, surprised, boredom are dropped)."""
    return {c: [e for e, k in EMOTION_TO_CLASS.items() if k == c] for c in CLASSES}
