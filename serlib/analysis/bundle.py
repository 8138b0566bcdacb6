"""A trained system as one folder a user can copy elsewhere: ``serlib export`` (issue 13).

The bundle holds data only, each file named in ``bundle.json`` by a plain name inside the folder:

- ``checkpoint.pt``: the classifier's weights (tensors) and what rebuilds it (numbers, text: the network's
  settings, the window, the input, the run key, and the ``features`` section it was trained on), loaded
  with ``torch.load(weights_only=True)``: loading never runs code;
- ``bundle.json``: the format version, the serlib version, the model's id, the system and seed, the
  resolved ``features`` section that rebuilds the encoder (checked on load against the checkpoint's),
  the window, the class map, the inputs;
- ``metrics.json``: the run's test scores of the system (accuracy, UAR, macro-F1 with their 95 %
  intervals over the run's seeds, ``serlib.analysis.evaluation``) and this seed's own figures;
- ``README.md``: the model card, written from the run's own data;
- with ``onnx=True``: ``head.onnx`` (the classifier head, ``serlib.modelling.onnxform``) and
  ``parity.json``: torch vs onnxruntime on the run's test features;
- ``.serlib-bundle``: the list of the files serlib wrote (written last). ``export`` replaces a folder only
  when it holds that marker and nothing else than the files it lists.

``serlib.modelling.predict.Predictor.from_bundle(DIR)`` loads it without the run folder.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Optional

import pandas as pd
import torch

import serlib
from serlib.analysis.evaluation import scores_table
from serlib.common.config import Config
from serlib.common.facts import CLASSES, CORPORA
from serlib.common.io import RunFileError, read_json, write_json_atomic, write_text_atomic
from serlib.common.runfolder import RunFolder, read_run_config
from serlib.data.stage import load_manifest
from serlib.modelling import onnxform
from serlib.modelling.predict import BUNDLE_FILE, BUNDLE_FORMAT, BUNDLE_MARKER, Predictor, class_map
from serlib.modelling.systems import MAIN_PROTOCOL, evaluation_protocols, system_data
from serlib.modelling.train import predict_proba, read_checkpoint

LICENCES = {  # as the corpora's distributors state them
    "CREMA-D": "Open Database License (ODbL) v1.0, contents under the Database Contents License "
               "(github.com/CheyneyComputerScience/CREMA-D)",
    "RAVDESS": "Creative Commons Attribution-NonCommercial-ShareAlike 4.0 (CC BY-NC-SA 4.0) (zenodo.org/record/1188976)",
    "EmoDB": "no licence is named on its distribution page (emodb.bilderbar.info); its authors ask that users "
             "cite Burkhardt et al., Interspeech 2005. Check the page before any use beyond research.",
}


def run_config(folder: RunFolder) -> Config:
    """The configuration a run folder was made with (``serlib.common.runfolder.read_run_config``)."""
    return read_run_config(folder)


def export_bundle(run: str | Path, out: str | Path, system: Optional[str] = None, seed: Optional[int] = None,
                  onnx: bool = False, progress: bool = False) -> dict:
    """Write the bundle of one trained system of ``run`` to ``out``.

    The bundle is built in a temporary folder beside ``out`` and swapped in by renames when complete (the
    old bundle stays until then). ``out`` may be new, empty, or a bundle serlib wrote that holds nothing
    else (``check_bundle_target``); nothing else is ever replaced or deleted.

    Returns:
        What was written: ``{"bundle": path, "files": [...], "parity": {...} or None, "metrics": {...}}``.

    Raises:
        FileExistsError: ``out`` is a file, or a non-empty folder that is not (only) a bundle serlib wrote.
        FileNotFoundError: not a run folder, or the system / seed was never trained there.
    """
    folder = RunFolder(Path(run).expanduser().resolve())
    out = Path(out).expanduser().resolve()
    check_bundle_target(out)
    cfg = run_config(folder)
    predictor = Predictor.from_run(folder.root, system, seed, device="cpu")
    system, seed = predictor.system, predictor.seed
    protocol = evaluation_protocols(cfg)[0]  # the model of the split, or of the first speaker fold
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        state = read_checkpoint(folder.checkpoint(system, seed, protocol))
        torch.save({**state, "features": dataclasses.asdict(predictor.features)}, work / "checkpoint.pt")
        metrics = bundle_metrics(cfg, folder, system, seed, protocol)
        write_json_atomic(work / "metrics.json", metrics)
        parity = None
        if onnx:
            parity = _onnx_with_parity(cfg, folder, predictor, work)
        meta = bundle_meta(cfg, predictor, onnx)
        write_json_atomic(work / BUNDLE_FILE, meta)
        write_text_atomic(work / "README.md", model_card(cfg, folder, predictor, metrics, parity))
        files = sorted(p.name for p in work.iterdir())
        write_json_atomic(work / BUNDLE_MARKER, {"written_by": f"serlib {serlib.__version__}", "files": files})
        check_bundle_target(out)  # again: a file put there while the bundle was built is not deleted
        _swap_in(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return {"bundle": str(out), "files": files, "parity": parity, "metrics": metrics}


def check_bundle_target(out: Path) -> None:
    """``out`` may receive a bundle: missing, an empty folder, or a bundle serlib wrote holding only its files.

    Raises:
        FileExistsError: one line saying what is there and what to do.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; name a folder for the bundle (new, empty, or a bundle "
                              "serlib wrote)")
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not present:
        return
    marker = out / BUNDLE_MARKER
    if not marker.is_file():
        raise FileExistsError(f"{out} exists and is not a serlib bundle (no {BUNDLE_MARKER} marker: serlib did not "
                              "write it); pass an empty or new folder to --out")
    try:
        listed = read_json(marker)
        files = listed["files"] if isinstance(listed, dict) else None
    except (RunFileError, KeyError):
        files = None
    if not isinstance(files, list):
        raise FileExistsError(f"{marker}: damaged, so serlib cannot tell its own files from yours; pass an empty or "
                              "new folder to --out")
    others = [name for name in present if name not in files and name != BUNDLE_MARKER]
    if others:
        raise FileExistsError(f"{out} holds files serlib did not write ({', '.join(others[:5])}"
                              f"{', ...' if len(others) > 5 else ''}); move them out or pass another folder to --out")


def _swap_in(work: Path, out: Path) -> None:
    """``work`` becomes ``out``: the old bundle renamed aside, the new one renamed in, then the old removed."""
    aside = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    if out.exists():
        os.rename(out, aside)
    try:
        os.rename(work, out)
    except BaseException:
        if aside.exists() and not out.exists():
            os.rename(aside, out)  # the old bundle back where it was
        raise
    shutil.rmtree(aside, ignore_errors=True)


def bundle_meta(cfg: Config, predictor: Predictor, onnx: bool) -> dict:
    """``bundle.json``: what ``Predictor.from_bundle`` needs, and what a reader wants to know first."""
    return {"format_version": BUNDLE_FORMAT, "serlib_version": serlib.__version__, "model_id": predictor.model_id,
            "run_name": cfg.run.name, "run_title": cfg.run.title, "system": predictor.system, "seed": predictor.seed,
            "description": cfg.systems[predictor.system].description if predictor.system in cfg.systems else "",
            "checkpoint": "checkpoint.pt", "onnx": "head.onnx" if onnx else None,
            "input": predictor.input, "window_frames": predictor.frames,
            "window_seconds": round(predictor.window_samples / predictor.features.sample_rate, 4),
            "sample_rate": predictor.features.sample_rate, "encoder": predictor.metadata["encoder"],
            "features": dataclasses.asdict(predictor.features),
            "classes": list(CLASSES), "class_map": class_map(),
            "onnx_inputs": {onnxform.INPUT: "(batch, [layers,] channels, frames) float32 features",
                            onnxform.LENGTHS: "(batch,) int64 real frames per clip (masked models only)"},
            "onnx_output": f"{onnxform.OUTPUT}: (batch, 3) logits in the order of 'classes'"}


def bundle_metrics(cfg: Config, folder: RunFolder, system: str, seed: int, protocol: str = MAIN_PROTOCOL) -> dict:
    """Test scores of ``system`` with intervals (over the run's seeds, and folds) and the bundled model's own
    metrics.json (``protocol``: the split, or the speaker fold it was trained in)."""
    table = scores_table(cfg, folder, [system]).iloc[0].to_dict()
    path = folder.metrics(system, seed, protocol)
    own = read_json(path, "train it again") if path.is_file() else {}
    scores = {k: (float(v) if isinstance(v, float) else v) for k, v in table.items()}
    return {"test": scores, "seed": seed, "protocol": protocol, "this_seed_test": own.get("test", {}),
            "n_test": own.get("n_test"),
            "best_epoch": own.get("best_epoch"), "params": own.get("params"),
            "interval_unit": scores.get("unit"), "resamples": cfg.analysis.bootstrap_resamples}


def _onnx_with_parity(cfg: Config, folder: RunFolder, predictor: Predictor, work: Path) -> dict:
    """``head.onnx`` and ``parity.json``: onnxruntime vs torch on every test clip of the run."""
    data = system_data(cfg, folder, predictor.system, torch.device("cpu"), evaluation_protocols(cfg)[0])
    model = predictor.model.cpu().eval()
    onnxform.export_onnx(model, data.channels, data.frames, work / "head.onnx")
    sess = onnxform.session(work / "head.onnx")
    reference = predict_proba(model, data.x["test"], 64, data.lengths["test"]).numpy()
    parity = onnxform.parity(reference, onnxform.onnx_proba(sess, data.x["test"], data.lengths["test"]))
    parity |= {"opset": onnxform.OPSET, "onnxruntime": onnxform.ort.__version__,
               "features": f"the run's cached test features ({data.channels} x {data.frames})",
               "inputs": [i.name for i in sess.get_inputs()]}
    write_json_atomic(work / "parity.json", parity)
    return parity


def _pct(v) -> str:
    return "n/a" if v is None or pd.isna(v) else f"{100 * v:.1f}"


def model_card(cfg: Config, folder: RunFolder, predictor: Predictor, metrics: dict, parity: Optional[dict]) -> str:
    """The bundle's README.md, written from the run's own data."""
    manifest = load_manifest(folder)
    demo = cfg.data.demo is not None
    test = metrics["test"]
    counts = (manifest.groupby(["corpus", "split"]).size().unstack(fill_value=0)
              .reindex(columns=["train", "val", "test"], fill_value=0) if "split" in manifest else None)
    corpora = [c for c in CORPORA if c in set(manifest["corpus"])]
    window_s = predictor.window_samples / predictor.features.sample_rate
    interval = ("95 % intervals from a bootstrap over test speakers" if test.get("unit") == "speaker" else
                "95 % intervals from a bootstrap over test clips: fewer than 5 test speakers, so no speaker-level "
                "interval")
    lines = [
        f"# {predictor.system}: three-class speech-emotion recogniser ({cfg.run.name} run)",
        "",
        f"Model id `{predictor.model_id}`, written by serlib {serlib.__version__} (bundle format {BUNDLE_FORMAT}).",
        (f"System: {cfg.systems[predictor.system].description} (input: {cfg.systems[predictor.system].input}, "
         f"seed {predictor.seed})." if predictor.system in cfg.systems else ""),
        "",
    ]
    if metrics.get("protocol", MAIN_PROTOCOL) != MAIN_PROTOCOL:
        lines += [f"> **One fold's model.** The run evaluates {cfg.data.folds} speaker folds; this checkpoint is the "
                  f"model of {metrics['protocol'].replace('fold', 'fold ')} (trained on that fold's training "
                  "speakers). The test scores below pool every fold's out-of-fold predictions.", ""]
    if demo:
        lines += ["> **Demo model.** Trained on serlib's *synthetic* demo corpus (generated offline, in the real "
                  "corpora's layouts) with a wav2vec2 encoder of **random weights**. Its numbers measure the "
                  "pipeline, not anything about real emotion: do not use it on real speech for any decision.", ""]
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
        "## How to use it",
        "",
        "```bash",
        "serlib predict BUNDLE_DIR clip.wav folder/ list.txt --out predictions.csv",
        "```",
        "```python",
        "from serlib.modelling.predict import Predictor",
        "table = Predictor.from_bundle('BUNDLE_DIR').predict(['clip.wav'])",
        "```",
        "",
        f"Input: any audio file soundfile reads (wav, flac, ogg, mp3), any rate and channel count (resampled to "
        f"{predictor.features.sample_rate} Hz mono). The window is {predictor.frames} frames = {window_s:.2f} s. A clip "
        f"that fits is scored as in training (padded to the window); a longer clip is cut into windows "
        f"(half a window apart by default) whose probabilities are averaged. Clips shorter than 25 ms are refused.",
        "",
        f"Encoder (rebuilt from `bundle.json` on load): {predictor.metadata['encoder']}."
        + ("" if predictor.features.wav2vec2.weights == "random" or predictor.input == "logmel" else
           " Pretrained weights come from the local Hugging Face cache or the folder named in `bundle.json` "
           "(`features.wav2vec2.model_id`); they are not in the bundle."),
        "",
        "## How well it did",
        "",
        f"On the run's speaker-independent test split ({test.get('n_clips')} clips, {test.get('n_speakers')} speakers "
        f"never seen in training; {test.get('n_seeds')} seed(s) pooled; {interval}):",
        "",
        "| metric | value | 95 % interval |",
        "|---|---|---|",
        *[f"| {label} | {_pct(test.get(k))} % | {_pct(test.get(k + '_lo'))} - {_pct(test.get(k + '_hi'))} |"
          for k, label in (("acc", "accuracy"), ("uar", "UAR (unweighted average recall)"), ("macro_f1", "macro-F1"))],
        "",
        f"Chance is 33.3 % UAR. This seed alone (seed {metrics['seed']}): "
        + ", ".join(f"{label} {_pct(metrics.get('this_seed_test', {}).get(k))} %"
                    for k, label in (("accuracy", "accuracy"), ("uar", "UAR"), ("macro_f1", "macro-F1"))) + ".",
        "",
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
        f"- Clips longer than {window_s:.2f} s are scored window by window; the mean may hide a change of emotion "
        "(`--per-window` shows each window).",
        "",
        "## Data licences",
        "",
        *(["The demo corpus is synthetic (serlib generates it), so no corpus licence applies to this model. A model "
           "trained on the real corpora is bound by their terms:"] if demo else
          ["The model was trained on these corpora; their terms bind its use:"]),
        "",
        *[f"- {c}: {LICENCES[c]}" for c in (CORPORA if demo else corpora)],
        "",
    ]
    if parity is not None:
        lines += [
            "## ONNX",
            "",
            f"`head.onnx` is the classifier head (opset {parity['opset']}, inputs {', '.join(parity['inputs'])}; "
            f"dynamic batch and frame axes; output: logits in the order {', '.join(CLASSES)}). It takes the "
            f"encoder's features, not audio. Parity with torch on the run's {parity['clips']} test clips "
            f"(onnxruntime {parity['onnxruntime']}): largest probability difference {parity['max_abs_prob_diff']:.2e}, "
            f"predicted class agreement {100 * parity['class_agreement']:.1f} % (`parity.json`).",
            "",
        ]
    lines += ["## Files", "", "`checkpoint.pt` (torch weights, loaded as data only: no code runs), `bundle.json` "
              "(what rebuilds encoder and head), `metrics.json` (the scores above)"
              + (", `head.onnx`, `parity.json`" if parity else "") + f", `{BUNDLE_MARKER}` (the files serlib wrote).", ""]
    return "\n".join(lines)
