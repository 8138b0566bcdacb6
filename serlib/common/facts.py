"""Label and corpus facts: the one home of every name, code and rate more than one module uses.

Nothing here is a result; the corpora's facts follow ``shared/corpora.md`` and the paper (2.2).
"""

from __future__ import annotations

CLASSES = ("negative", "sad_fear", "pos_neutral")  # the three MCULP classes, in label-index order
CORPORA = ("CREMA-D", "RAVDESS", "EmoDB")  # corpus names, in the order of every table and manifest
CORPUS_KEYS = {"CREMA-D": "crema_d", "RAVDESS": "ravdess", "EmoDB": "emodb"}  # corpus -> its data.<key>
SUBSETS = ("train", "val", "test")  # the speaker-independent subsets
SAMPLE_RATE = 16000  # the encoders' input rate; prosody, listening and the demo synthesis use it too

SIX_EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "neutral")  # shared by the three corpora
EMOTION_TO_CLASS = {
    "anger": "negative",
    "disgust": "negative",
    "sadness": "sad_fear",
    "fear": "sad_fear",
    "happiness": "pos_neutral",
    "neutral": "pos_neutral",
}  # MCULP; calm, surprised, boredom dropped

EMOTION_CODES = {  # corpus -> code in the file name -> normalised emotion name
    "CREMA-D": {
        "ANG": "anger",
        "DIS": "disgust",
        "FEA": "fear",
        "HAP": "happiness",
        "NEU": "neutral",
        "SAD": "sadness",
    },
    "RAVDESS": {
        "01": "neutral",
        "02": "calm",
        "03": "happiness",
        "04": "sadness",
        "05": "anger",
        "06": "fear",
        "07": "disgust",
        "08": "surprised",
    },
    "EmoDB": {
        "W": "anger",
        "L": "boredom",
        "E": "disgust",
        "A": "fear",
        "F": "happiness",
        "T": "sadness",
        "N": "neutral",
    },
}
CREMA_D_LEVELS = ("LO", "MD", "HI", "XX")  # CREMA-D intensity levels (XX: unspecified)
EMODB_SEX = {
    "03": "male",
    "08": "female",
    "09": "female",
    "10": "male",
    "11": "male",
    "12": "male",
    "13": "female",
    "14": "female",
    "15": "male",
    "16": "female",
}  # EmoDB's ten speakers

# The public releases (shared/corpora.md): files, the emotions MCULP drops and what the protocol keeps.
RELEASE_FILES = {"CREMA-D": 7442, "RAVDESS": 1440, "EmoDB": 535}  # speech files of each release
RELEASE_SPEAKERS = {"CREMA-D": 91, "RAVDESS": 24, "EmoDB": 10}  # speakers of each release
RELEASE_DROPPED = {"CREMA-D": {}, "RAVDESS": {"calm": 192, "surprised": 192}, "EmoDB": {"boredom": 81}}
RELEASE_KEPT = {c: n - sum(RELEASE_DROPPED[c].values()) for c, n in RELEASE_FILES.items()}  # 7442, 1056, 454
RELEASE_KEPT_CLASSES = {"negative": 3099, "sad_fear": 3057, "pos_neutral": 2796}  # the six emotions of all three
