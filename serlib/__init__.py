"""serlib: lightweight speech-emotion recognition, as a reproducible experiment report.

Stages (one module each): corpora -> mculp -> features -> augment/models/train -> metrics ->
plots -> report. ``serlib.cli`` is the command line.
"""
__version__ = "0.1.0"

CLASSES = ("negative", "sad_fear", "pos_neutral")  # the three MCULP classes, in label-index order
CORPORA = ("CREMA-D", "RAVDESS", "EmoDB")  # corpus names as they appear in manifests and tables
