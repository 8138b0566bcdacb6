"""The paper's own reported values, as data, so every table can show them beside what a run
measures. Source: ../shared/paper.md (Zhang, "Performance Optimization and Interpretability
Analysis of Lightweight Transformer Models for SER"). Nothing here is a result of serlib.
"""

from __future__ import annotations

import pandas as pd

from serlib.common.facts import CLASSES

# Section 2.3: the classifiers' inputs (channels): wav2vec 2.0-base hidden states, 64 log-Mel bands.
PAPER_INPUT_CHANNELS = {"wav2vec2": 768, "logmel": 64, "wav2vec2_layers": 768}  # the last: per layer
PAPER_FRAMES = 400  # 8 s at the 20 ms stride

# Table 1: per corpus.
TABLE1 = pd.DataFrame(
    [
        {
            "corpus": "CREMA-D",
            "utterances": 7442,
            "speakers": 91,
            "male": 48,
            "female": 43,
            "language": "English (US)",
            "sentences": 12,
        },
        {
            "corpus": "RAVDESS",
            "utterances": 1440,
            "speakers": 24,
            "male": 12,
            "female": 12,
            "language": "English (NA)",
            "sentences": 2,
        },
        {
            "corpus": "EmoDB",
            "utterances": 535,
            "speakers": 10,
            "male": 5,
            "female": 5,
            "language": "German",
            "sentences": 10,
        },
    ]
)

# Section 2.2: after MCULP.
MCULP_TOTAL = 7618
MCULP_CLASS_COUNTS = {"negative": 2547, "sad_fear": 2711, "pos_neutral": 2360}

# Table 2: speaker-independent split.
TABLE2 = pd.DataFrame(
    [
        {"subset": "train", "speakers": 101, "utterances": 6096, "percent": 80.0},
        {"subset": "val", "speakers": 13, "utterances": 762, "percent": 10.0},
        {"subset": "test", "speakers": 11, "utterances": 762, "percent": 10.0},
    ]
)

# Table 3: class counts per subset.
TABLE3 = pd.DataFrame(
    [
        {"class": "negative", "train": 2037, "val": 255, "test": 255},
        {"class": "sad_fear", "train": 2169, "val": 271, "test": 271},
        {"class": "pos_neutral", "train": 1890, "val": 236, "test": 236},
    ]
)

# Table 4: systems and the parameter counts the paper states (millions).
TABLE4 = pd.DataFrame(
    [
        {"system": "S1", "architecture": "3-Conv CNN (baseline)", "input": "64 x 400 log-Mel", "params_m": 0.4},
        {"system": "S2", "architecture": "3-Conv CNN", "input": "768 x 400 wav2vec2", "params_m": 0.6},
        {"system": "S3", "architecture": "ResAttn1D-CNN (-SE)", "input": "768 x 400 wav2vec2", "params_m": 3.6},
        {"system": "S4", "architecture": "ResAttn1D-CNN (-Tri-Aug)", "input": "768 x 400 wav2vec2", "params_m": 3.9},
        {"system": "S5", "architecture": "ResAttn1D-CNN (proposed)", "input": "768 x 400 wav2vec2", "params_m": 3.9},
    ]
)

# Table 5: overall results.
TABLE5 = pd.DataFrame(
    [
        {"system": "S1", "val_acc": 0.380, "test_acc": 0.360, "macro_f1": 0.352},
        {"system": "S2", "val_acc": 0.430, "test_acc": 0.420, "macro_f1": 0.412},
        {"system": "S3", "val_acc": 0.600, "test_acc": 0.580, "macro_f1": 0.579},
        {"system": "S4", "val_acc": 0.620, "test_acc": 0.600, "macro_f1": 0.598},
        {"system": "S5", "val_acc": 0.646, "test_acc": 0.629, "macro_f1": 0.627},
    ]
)

# Table 6: ablations (deltas in percentage points against Full).
TABLE6 = pd.DataFrame(
    [
        {
            "variant": "Full",
            "tri_aug": True,
            "se": True,
            "blocks": 5,
            "val_acc": 0.646,
            "delta_val_pp": 0.0,
            "test_acc": 0.629,
            "delta_test_pp": 0.0,
            "macro_f1": 0.627,
        },
        {
            "variant": "A1 (-Aug)",
            "tri_aug": False,
            "se": True,
            "blocks": 5,
            "val_acc": 0.622,
            "delta_val_pp": -2.4,
            "test_acc": 0.600,
            "delta_test_pp": -2.9,
            "macro_f1": 0.598,
        },
        {
            "variant": "A2 (-SE)",
            "tri_aug": True,
            "se": False,
            "blocks": 5,
            "val_acc": 0.600,
            "delta_val_pp": -4.6,
            "test_acc": 0.580,
            "delta_test_pp": -4.9,
            "macro_f1": 0.579,
        },
        {
            "variant": "A3 (-Depth)",
            "tri_aug": True,
            "se": True,
            "blocks": 3,
            "val_acc": 0.614,
            "delta_val_pp": -3.2,
            "test_acc": 0.597,
            "delta_test_pp": -3.2,
            "macro_f1": 0.593,
        },
    ]
)

# Table 7: row-normalised confusion matrix on test (rows true, columns predicted).
TABLE7 = pd.DataFrame(
    [[0.584, 0.215, 0.201], [0.156, 0.720, 0.124], [0.221, 0.207, 0.572]], index=list(CLASSES), columns=list(CLASSES)
)

# Table 8: literature rows (this work's row is the paper's own claim).
TABLE8 = pd.DataFrame(
    [
        {
            "study": "Satt et al. 2017",
            "dataset_task": "RAVDESS, 6-class",
            "model_feature": "2-D CNN, log-Mel",
            "protocol": "Utterance-split",
            "reported_acc": 0.624,
        },
        {
            "study": "Neumann & Vu 2017",
            "dataset_task": "IEMOCAP, 6-class",
            "model_feature": "Att-CNN, log-Mel",
            "protocol": "Speaker-leave-out",
            "reported_acc": 0.600,
        },
        {
            "study": "Latif et al. 2020",
            "dataset_task": "CREMA-D, 6-class",
            "model_feature": "CNN + SE, MFCC",
            "protocol": "5-fold speaker CV",
            "reported_acc": 0.610,
        },
        {
            "study": "Zhang (the paper)",
            "dataset_task": "CREMA-D + RAVDESS + EmoDB, 3-class",
            "model_feature": "ResAttn1D-CNN, W2V2",
            "protocol": "Speaker-independent",
            "reported_acc": 0.629,
        },
    ]
)

# Sections 3.3 and 4.1: the training protocol, as stated (AdamW, betas 0.9 / 0.999, CNN in fp32).
TRAINING = {
    "batch_size": 64,
    "max_epochs": 80,
    "early_stop_patience": 30,
    "plateau_patience": 10,
    "plateau_factor": 0.5,
    "grad_clip": 2.0,
    "adam_betas": (0.9, 0.999),
}
# Settings the paper names without a value: its own words.
TRAINING_UNSTATED = {
    "lr": "not stated (tuned on validation)",
    "weight_decay": "not stated (tuned on validation)",
    "min_lr": "'a small learning-rate floor'",
    "seeds": "'fixed seeds', not listed",
    "device": "a laptop-class GPU",
}

# Section 5.3: learning-curve landmarks of S5.
LEARNING_CURVE = {"lr_reductions": [31, 42], "early_stop_epoch": 64, "val_plateau": 0.646, "gap_below": 0.03}

# Section 5.4: listening tests on misclassified test clips.
LISTENING_CLIPS = 50

# Deployment claims (sections 3.2, 5.1, 6.1).
DEPLOYMENT = {
    "infer_ms": 3.5,
    "infer_ms_rtx3060": 3.2,
    "gpu_mem_mb": 15.0,
    "gpu_mem_mb_rtx3060": 12.0,
    "train_hours": 10.0,
    "cnn_params_m": 3.9,
}
