"""A bundle's ``README.md``: the model card, written from the run's own data (``serlib export``).

The class map and which source emotions each class holds, how to install and run it, the window and who cuts
it, the test metrics with their intervals, this model's recall per class and its confusion matrix, what it was
trained on, its limits, the corpora's and the encoder's licences, and (with ``--onnx``) the ONNX files' sizes
and parity.
"""

from __future__ import annotations

from typing import Optional

import pandas as pd

import serlib
from serlib.analysis.confusion import per_class_recall
from serlib.analysis.evaluation import pooled_confusion, primary_predictions
from serlib.common.config import Config
from serlib.common.facts import CLASSES, CORPORA
from serlib.common.runfolder import RunFolder
from serlib.common.words import count_phrase
from serlib.data.protocols import MAIN_PROTOCOL
from serlib.data.stage import load_manifest
from serlib.inference import audiograph
from serlib.inference.bundleformat import (
    BUNDLE_FORMAT,
    BUNDLE_MARKER,
    HEAD_FILE,
    INSTALL_LINE,
    PREDICT_SCRIPT,
    class_map,
)
from serlib.inference.predict import Predictor

LICENCES = {  # as the corpora's distributors state them
    "CREMA-D": "Open Database License (ODbL) v1.0, contents under the Database Contents License "
    "(github.com/CheyneyComputerScience/CREMA-D)",
    "RAVDESS": "Creative Commons Attribution-NonCommercial-ShareAlike 4.0 (CC BY-NC-SA 4.0) "
    "(zenodo.org/record/1188976)",
    "EmoDB": "no licence is named on its distribution page (emodb.bilderbar.info); its authors ask that users "
    "cite Burkhardt et al., Interspeech 2005. Check the page before any use beyond research.",
}
ENCODER_LICENCES = {
    "facebook/wav2vec2-base": "Apache-2.0 (its model page on the Hugging Face hub); pre-trained on "
    "LibriSpeech (CC BY 4.0)"
}


def _pct(v) -> str:
    return "n/a" if v is None or pd.isna(v) else f"{100 * v:.1f}"


def model_card(cfg: Config, folder: RunFolder, predictor: Predictor, metrics: dict, parity: Optional[dict]) -> str:
    """The bundle's README.md, written from the run's own data."""
    manifest = load_manifest(folder)
    demo = cfg.data.demo is not None
    test = metrics["test"]
    counts = (
        manifest.groupby(["corpus", "split"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=["train", "val", "test"], fill_value=0)
        if "split" in manifest
        else None
    )
    corpora = [c for c in CORPORA if c in set(manifest["corpus"])]
    interval = (
        "95 % intervals from a bootstrap over test speakers"
        if test.get("unit") == "speaker"
        else "95 % intervals from a bootstrap over test clips: fewer than 5 test speakers, so no speaker-level interval"
    )
    lines = [
        f"# {predictor.system}: three-class speech-emotion recogniser ({cfg.run.name} run)",
        "",
        f"Model id `{predictor.model_id}`, written by serlib {serlib.__version__} (bundle format {BUNDLE_FORMAT}).",
        (
            f"System: {cfg.systems[predictor.system].description} (input: {cfg.systems[predictor.system].input}, "
            f"seed {predictor.seed})."
            if predictor.system in cfg.systems
            else ""
        ),
        "",
    ]
    if metrics.get("protocol", MAIN_PROTOCOL) != MAIN_PROTOCOL:
        lines += [
            f"> **One fold's model.** The run evaluates {cfg.data.folds} speaker folds; this checkpoint is the "
            f"model of {metrics['protocol'].replace('fold', 'fold ')} (trained on that fold's training "
            "speakers). The test scores below pool every fold's out-of-fold predictions.",
            "",
        ]
    if demo:
        lines += [
            "> **Demo model.** Trained on serlib's *synthetic* demo corpus (generated offline, in the real "
            "corpora's layouts) with a wav2vec2 encoder of **random weights**. Its numbers measure the "
            "pipeline, not anything about real emotion: do not use it on real speech for any decision.",
            "",
        ]
    lines += [
        "## What it does",
        "",
        "It assigns a speech clip to one of three classes, as the Multi-Corpus Unified Labelling Protocol (MCULP) "
        "merges the acted emotions of CREMA-D, RAVDESS and EmoDB:",
        "",
        "| class | holds the source emotions |",
        "|---|---|",
        *[f"| `{c}` | {', '.join(e)} |" for c, e in class_map().items()],
        "",
        "Calm and surprised (RAVDESS) and boredom (EmoDB) were dropped, not mapped. The classes are acted "
        "emotion categories read by actors in studio conditions, not felt emotions.",
        "",
        *_usage_lines(predictor, parity),
        *_window_lines(predictor, parity),
        "## How well it did",
        "",
        f"On the run's speaker-independent test split ({test.get('n_clips')} clips, {test.get('n_speakers')} speakers "
        f"never seen in training; {_seeds(test.get('n_seeds'))} pooled; {interval}):",
        "",
        "| metric | value | 95 % interval |",
        "|---|---|---|",
        *[
            f"| {label} | {_pct(test.get(k))} % | {_pct(test.get(k + '_lo'))} - {_pct(test.get(k + '_hi'))} |"
            for k, label in (("acc", "accuracy"), ("uar", "UAR (unweighted average recall)"), ("macro_f1", "macro-F1"))
        ],
        "",
        f"Chance is 33.3 % UAR. This seed alone (seed {metrics['seed']}): "
        + ", ".join(
            f"{label} {_pct(metrics.get('this_seed_test', {}).get(k))} %"
            for k, label in (("accuracy", "accuracy"), ("uar", "UAR"), ("macro_f1", "macro-F1"))
        )
        + ".",
        "",
        *_recall_lines(cfg, folder, predictor),
        "## Trained on",
        "",
    ]
    if counts is not None:
        lines += ["| corpus | " + " | ".join(counts.columns) + " |", "|---|" + "---|" * len(counts.columns)]
        lines += [f"| {c} | " + " | ".join(f"{int(v):,}" for v in counts.loc[c]) + " |" for c in counts.index]
        lines += [""]
    lines += [
        "Clips per corpus and subset, after MCULP. Speakers are disjoint between train, validation and test.",
        "",
        "## Limits",
        "",
        "- Acted, read speech in English (CREMA-D, RAVDESS) and German (EmoDB), studio or lab recordings; "
        "spontaneous speech, other languages, noisy or far-field audio, children's voices are outside what it saw.",
        "- Three coarse classes: happiness and neutral share a class; a clip can only be one of the three.",
        "- Not for decisions about people (hiring, health, policing, access): emotion categories from acted "
        "corpora do not measure a person's state.",
        f"- Clips longer than {_window_s(predictor):.2f} s are scored window by window; the mean may hide a change of "
        "emotion (`serlib predict --per-window` shows each window).",
        "",
        "## Licences",
        "",
        *(
            [
                "The demo corpus is synthetic (serlib generates it), so no corpus licence applies to this model. "
                "A model "
                "trained on the real corpora is bound by their terms:"
            ]
            if demo
            else ["The model was trained on these corpora; their terms bind its use:"]
        ),
        "",
        *[f"- {c}: {LICENCES[c]}" for c in (CORPORA if demo else corpora)],
        *_software_licence_lines(predictor),
        "",
    ]
    if parity is not None:
        lines += _onnx_lines(parity)
    lines += [
        "## Files",
        "",
        "`checkpoint.pt` (torch weights, loaded as data only: no code runs), `bundle.json` "
        "(what rebuilds encoder and head), `metrics.json` (the scores above)"
        + (
            f", `{audiograph.MODEL_FILE}` and `{audiograph.MODEL_INT8_FILE}` (audio in, probabilities out), "
            f"`{PREDICT_SCRIPT}` (the torch-free scorer), `{HEAD_FILE}` (the head alone), `parity.json`"
            if parity
            else ""
        )
        + f", `{BUNDLE_MARKER}` (the files serlib wrote).",
        "",
    ]
    return "\n".join(lines)


def _window_s(predictor: Predictor) -> float:
    return predictor.window_samples / predictor.features.sample_rate


def _usage_lines(predictor: Predictor, parity: Optional[dict]) -> list[str]:
    lines = ["## How to use it", ""]
    if parity is not None:
        lines += [
            "Without serlib or torch (Python 3.9 or later):",
            "",
            "```bash",
            INSTALL_LINE,
            f"python {PREDICT_SCRIPT} clip.wav folder/ > predictions.csv           # {audiograph.MODEL_FILE}",
            f"python {PREDICT_SCRIPT} --int8 clip.wav folder/ > predictions.csv    # {audiograph.MODEL_INT8_FILE}",
            "```",
            "",
            f"`{PREDICT_SCRIPT}` writes one CSV row per file, with the columns of `serlib predict` (path, duration_s, "
            "windows, pred, the three probabilities, model_id, weights, error); `--long centre` and `--hop SECONDS` "
            "as below. With serlib:",
            "",
        ]
    lines += [
        "```bash",
        "serlib predict BUNDLE_DIR clip.wav folder/ list.txt --out predictions.csv",
        "```",
        "```python",
        "from serlib.inference.predict import Predictor",
        "table = Predictor.from_bundle('BUNDLE_DIR').predict(['clip.wav'])",
        "```",
        "",
        f"Input: any audio file soundfile reads (wav, flac, ogg, mp3), any rate and channel count (mixed to mono and "
        f"resampled to {predictor.features.sample_rate} Hz). Clips shorter than one frame "
        f"({predictor.encoder.min_samples} samples, 25 ms) are refused.",
        "",
        f"Encoder: {predictor.metadata['encoder']}."
        + (
            ""
            if predictor.features.wav2vec2.weights == "random" or predictor.input == "logmel"
            else " In `serlib predict` its pretrained weights come from the local Hugging Face cache or the folder "
            "named "
            "in `bundle.json` (`features.wav2vec2.model_id`); the ONNX graphs hold them."
        ),
        "",
    ]
    return lines


def _window_lines(predictor: Predictor, parity: Optional[dict]) -> list[str]:
    rate, window = predictor.features.sample_rate, predictor.window_samples
    lines = [
        "## The window",
        "",
        f"The model reads {predictor.frames} frames of 20 ms = {window:,} samples = {window / rate:.2f} s at {rate} Hz "
        "(`window_frames`, `window_samples` in `bundle.json`).",
        "",
        "- A clip that fits is scored as in training: its frames zero-padded at the end to the window, its real "
        "frame count given to the network.",
        f"- A longer clip is cut into windows of {window / rate:.2f} s, half a window apart (`--hop SECONDS`), "
        "the last "
        "ending at the clip's end; each window is scored alone and the clip's probabilities are their mean.",
        "- `--long centre` scores the whole clip's frames cut to their central window instead, as training did.",
        "",
    ]
    if parity is not None:
        lines += [
            f"Who does what: `{audiograph.MODEL_FILE}` takes `{audiograph.AUDIO}` (batch, samples), float32 at "
            f"{rate} Hz, each row a whole clip or a whole window, unpadded, and returns `{audiograph.PROBS}` (batch, "
            "3). Inside: the encoder on the row alone, its frames rounded to float16 (as the training cache stored "
            "them), the centre window of a longer row or zero padding of a shorter one, the network, a softmax. "
            f"`{PREDICT_SCRIPT}` reads the file, mixes it to mono, resamples it (torchaudio's windowed-sinc resampler, "
            "written in numpy), cuts the windows, runs them as one batch and averages. `serlib predict` does the same "
            "in torch.",
            "",
        ]
    return lines


def _recall_lines(cfg: Config, folder: RunFolder, predictor: Predictor) -> list[str]:
    """Per-class recall and the confusion matrix of this model (its seed) on the test clips."""
    preds = primary_predictions(cfg, folder, "test", predictor.system, predictor.seed)
    recall = per_class_recall(preds)
    counts = pooled_confusion(preds, normalize=False)
    shares = pooled_confusion(preds)
    lines = [
        f"This model (seed {predictor.seed}) on its {len(preds)} test clips: recall per class, and the confusion "
        "matrix (rows: the true class; each cell the clips and the share of the row).",
        "",
        "| class | test clips | recall |",
        "|---|---|---|",
    ]
    lines += [f"| `{r['class']}` | {int(r['clips'])} | {_pct(r['recall'])} % |" for _, r in recall.iterrows()]
    lines += [
        "",
        "| true \\ predicted | " + " | ".join(f"`{c}`" for c in CLASSES) + " |",
        "|---|" + "---|" * len(CLASSES),
    ]
    lines += [
        f"| `{t}` | " + " | ".join(f"{int(counts.loc[t, p])} ({_pct(shares.loc[t, p])} %)" for p in CLASSES) + " |"
        for t in CLASSES
    ]
    return lines + [""]


def _software_licence_lines(predictor: Predictor) -> list[str]:
    if predictor.input == "logmel":
        return []
    w = predictor.features.wav2vec2
    if w.weights == "random":
        return [f"- Encoder: `{w.model_id}`'s architecture with seeded random weights (no pretrained weights)."]
    known = ENCODER_LICENCES.get(w.model_id, "the licence on its model page; check it before use")
    return [f"- Encoder weights `{w.model_id}` @ {w.revision}: {known}."]


def _onnx_lines(parity: dict) -> list[str]:
    head = parity[HEAD_FILE]
    lines = [
        "## ONNX",
        "",
        f"Opset {head['opset']}, dynamic batch and length, measured with onnxruntime {head['onnxruntime']} on "
        "this machine's CPU (`parity.json`):",
        "",
        "| file | size | compared on | largest probability difference from torch | same predicted class |",
        "|---|---|---|---|---|",
    ]
    for name in (audiograph.MODEL_FILE, audiograph.MODEL_INT8_FILE, HEAD_FILE):
        p = parity.get(name)
        if p:
            lines.append(
                f"| `{name}` | {p['bytes'] / 1e6:.1f} MB | {p['clips']} test clips"
                f"{' (audio files, as predict.py scores them)' if name != HEAD_FILE else ' (cached features)'}"
                f" | {p['max_abs_prob_diff']:.2e} | {100 * p['class_agreement']:.1f} % |"
            )
    int8 = parity.get(audiograph.MODEL_INT8_FILE)
    lines += [
        "",
        f"`{audiograph.MODEL_INT8_FILE}` is onnxruntime's dynamic int8 quantisation of `{audiograph.MODEL_FILE}` "
        "(int8 weights of its MatMul and Gemm nodes, activations quantised per call): it changes the function, "
        "and the table says by how much"
        + (f" ({int8['multi_window_clips']} of the clips compared span several windows)" if int8 else "")
        + ". "
        f"`{HEAD_FILE}` is the network alone: it takes the encoder's features (`onnx_inputs` in `bundle.json`), "
        "not audio.",
        "",
    ]
    return lines


def _seeds(n) -> str:
    """ "1 seed", "3 seeds" ("seeds" when the run's table does not say how many)."""
    return "seeds" if n is None or pd.isna(n) else count_phrase(int(n), "seed")
