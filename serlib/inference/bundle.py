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
- ``README.md``: the model card, written from the run's own data (``serlib.inference.modelcard``);
- with ``onnx=True``: ``model.onnx`` (raw 16 kHz audio -> class probabilities: encoder, layer selection and
  head in one graph, ``serlib.inference.audiograph``), ``model-int8.onnx`` (its dynamic int8 form),
  ``predict.py`` (``serlib.inference.standalone``: scores audio files with onnxruntime, numpy and soundfile
  only), ``head.onnx`` (the classifier head alone, over encoder features, ``serlib.inference.onnxform``) and
  ``parity.json``: each ONNX form against torch, the two audio graphs on the run's own test clips as
  ``predict.py`` scores them against ``serlib predict``, the head on the run's cached test features;
- ``.serlib-bundle``: the list of the files serlib wrote (written last). ``export`` replaces a folder only
  when it holds that marker and nothing else than the files it lists.

``serlib.inference.predict.Predictor.from_bundle(DIR)`` loads it without the run folder.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch

import serlib
from serlib.analysis.evaluation import scores_table
from serlib.common.config import Config
from serlib.common.facts import CLASSES
from serlib.common.io import RunFileError, read_json, write_json_atomic, write_text_atomic
from serlib.common.runfolder import RunFolder, read_run_config
from serlib.data.protocols import MAIN_PROTOCOL, evaluation_protocols
from serlib.data.stage import load_manifest
from serlib.inference import audiograph, onnxform, standalone
from serlib.inference.bundleformat import (
    BUNDLE_FILE,
    BUNDLE_FORMAT,
    BUNDLE_MARKER,
    HEAD_FILE,
    PREDICT_SCRIPT,
    class_map,
)
from serlib.inference.modelcard import model_card
from serlib.inference.predict import PROB_COLUMNS, Predictor
from serlib.modelling.inputs import system_data
from serlib.modelling.train import predict_proba, read_checkpoint

PARITY_CLIPS = 200  # CHOSEN: the test clips the audio graphs' parity scores at most (minutes on a CPU at the paper's
# scale; every test clip of the demo and smoke runs)


def run_config(folder: RunFolder) -> Config:
    """The configuration a run folder was made with (``serlib.common.runfolder.read_run_config``)."""
    return read_run_config(folder)


def export_bundle(
    run: str | Path,
    out: str | Path,
    system: Optional[str] = None,
    seed: Optional[int] = None,
    onnx: bool = False,
    progress: bool = False,
    parity_clips: Optional[int] = PARITY_CLIPS,
) -> dict:
    """Write the bundle of one trained system of ``run`` to ``out``.

    Args:
        run: the run folder; ``system`` / ``seed``: default the analysed ones.
        onnx: also the ONNX forms, ``predict.py`` and their parity (see the module docstring).
        parity_clips: the most test clips the audio graphs' parity scores (evenly spaced over the sorted
            test clips when there are more; None: every one).

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
        meta = bundle_meta(cfg, predictor, onnx)
        if onnx:
            parity = {HEAD_FILE: _head_parity(cfg, folder, predictor, work)}
            audiograph.export_model(predictor, work)
            write_text_atomic(work / PREDICT_SCRIPT, Path(standalone.__file__).read_text(encoding="utf-8"))
        write_json_atomic(work / BUNDLE_FILE, meta)
        if onnx:  # after bundle.json: the graphs are scored as predict.py scores them, from the bundle's files
            parity |= audio_parity(predictor, work, parity_clip_paths(cfg, folder, predictor, parity_clips))
            write_json_atomic(work / "parity.json", parity)
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
        raise FileExistsError(
            f"--out {out} is a file; name a folder for the bundle (new, empty, or a bundle serlib wrote)"
        )
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not present:
        return
    marker = out / BUNDLE_MARKER
    if not marker.is_file():
        raise FileExistsError(
            f"{out} exists and is not a serlib bundle (no {BUNDLE_MARKER} marker: serlib did not "
            "write it); pass an empty or new folder to --out"
        )
    try:
        listed = read_json(marker)
        files = listed["files"] if isinstance(listed, dict) else None
    except (RunFileError, KeyError):
        files = None
    if not isinstance(files, list):
        raise FileExistsError(
            f"{marker}: damaged, so serlib cannot tell its own files from yours; pass an empty or new folder to --out"
        )
    others = [name for name in present if name not in files and name != BUNDLE_MARKER]
    if others:
        raise FileExistsError(
            f"{out} holds files serlib did not write ({', '.join(others[:5])}"
            f"{', ...' if len(others) > 5 else ''}); move them out or pass another folder to --out"
        )


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
    """``bundle.json``: what ``Predictor.from_bundle`` and ``predict.py`` need, and what a reader wants first."""
    rate = predictor.features.sample_rate
    meta = {
        "format_version": BUNDLE_FORMAT,
        "serlib_version": serlib.__version__,
        "model_id": predictor.model_id,
        "run_name": cfg.run.name,
        "run_title": cfg.run.title,
        "system": predictor.system,
        "seed": predictor.seed,
        "description": cfg.systems[predictor.system].description if predictor.system in cfg.systems else "",
        "checkpoint": "checkpoint.pt",
        "onnx": HEAD_FILE if onnx else None,
        "input": predictor.input,
        "window_frames": predictor.frames,
        "window_samples": predictor.window_samples,
        "window_seconds": round(predictor.window_samples / rate, 4),
        "min_samples": predictor.encoder.min_samples,
        "sample_rate": rate,
        "encoder": predictor.metadata["encoder"],
        "weights": predictor.metadata["weights"],
        "features": dataclasses.asdict(predictor.features),
        "classes": list(CLASSES),
        "class_map": class_map(),
    }
    if onnx:
        meta |= {
            "model_onnx": audiograph.MODEL_FILE,
            "model_int8_onnx": audiograph.MODEL_INT8_FILE,
            "predict_script": PREDICT_SCRIPT,
            "model_onnx_input": f"{audiograph.AUDIO}: (batch, samples) float32, {rate} Hz mono; every row one whole "
            "clip or one window, unpadded (rows of a batch have one length)",
            "model_onnx_output": f"{audiograph.PROBS}: (batch, {len(CLASSES)}) class probabilities in the order "
            "of 'classes'",
            "onnx_inputs": {
                onnxform.INPUT: "(batch, [layers,] channels, frames) float32 features",
                onnxform.LENGTHS: "(batch,) int64 real frames per clip (masked models only)",
            },
            "onnx_output": f"{onnxform.OUTPUT}: (batch, 3) logits in the order of 'classes'",
        }
    return meta


def bundle_metrics(cfg: Config, folder: RunFolder, system: str, seed: int, protocol: str = MAIN_PROTOCOL) -> dict:
    """Test scores of ``system`` with intervals (over the run's seeds, and folds) and the bundled model's own
    metrics.json (``protocol``: the split, or the speaker fold it was trained in)."""
    table = scores_table(cfg, folder, [system]).iloc[0].to_dict()
    path = folder.metrics(system, seed, protocol)
    own = read_json(path, "train it again") if path.is_file() else {}
    scores = {k: (float(v) if isinstance(v, float) else v) for k, v in table.items()}
    return {
        "test": scores,
        "seed": seed,
        "protocol": protocol,
        "this_seed_test": own.get("test", {}),
        "n_test": own.get("n_test"),
        "best_epoch": own.get("best_epoch"),
        "params": own.get("params"),
        "interval_unit": scores.get("unit"),
        "resamples": cfg.analysis.bootstrap_resamples,
    }


def _head_parity(cfg: Config, folder: RunFolder, predictor: Predictor, work: Path) -> dict:
    """``head.onnx``, and its parity: onnxruntime vs torch on the run's cached test features."""
    data = system_data(cfg, folder, predictor.system, torch.device("cpu"), evaluation_protocols(cfg)[0])
    model = predictor.model.cpu().eval()
    onnxform.export_onnx(model, data.channels, data.frames, work / HEAD_FILE)
    sess = onnxform.session(work / HEAD_FILE)
    reference = predict_proba(model, data.x["test"], 64, data.lengths["test"]).numpy()
    parity = onnxform.parity(reference, onnxform.onnx_proba(sess, data.x["test"], data.lengths["test"]))
    return parity | {
        "opset": onnxform.OPSET,
        "onnxruntime": onnxform.ort.__version__,
        "compared_on": f"the run's cached test features ({data.channels} x {data.frames})",
        "inputs": [i.name for i in sess.get_inputs()],
        "bytes": (work / HEAD_FILE).stat().st_size,
    }


def parity_clip_paths(cfg: Config, folder: RunFolder, predictor: Predictor, most: Optional[int]) -> list[str]:
    """The audio files of the model's own test clips (its ``predictions_test.csv``), sorted by clip id; at most
    ``most`` of them, evenly spaced (None: all)."""
    protocol = evaluation_protocols(cfg)[0]  # the model the predictor loaded (Predictor.from_run's default)
    path = folder.predictions(predictor.system, predictor.seed, "test", protocol)
    clips = (
        pd.read_csv(path, usecols=["utt_id"])
        .merge(load_manifest(folder)[["utt_id", "path"]], on="utt_id", validate="one_to_one")
        .sort_values("utt_id")
    )
    paths = clips["path"].tolist()
    if most is not None and len(paths) > most:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, most).round().astype(int)]
    return paths


def audio_parity(predictor: Predictor, bundle: Path, paths: list[str]) -> dict:
    """``model.onnx`` and ``model-int8.onnx`` of ``bundle``, run on ``paths`` as its ``predict.py`` runs them
    (``serlib.inference.standalone``: numpy resampling, windows averaged), against ``predictor`` in torch (what
    ``serlib predict`` gives): the largest probability difference and the share of equal predicted classes."""
    started = time.perf_counter()
    reference = predictor.predict(paths, progress=False)
    torch_s = time.perf_counter() - started
    scored = reference["error"] == ""
    out = {}
    for name, int8 in ((audiograph.MODEL_FILE, False), (audiograph.MODEL_INT8_FILE, True)):
        started = time.perf_counter()
        meta, session = standalone.load(bundle, int8)
        onnx = pd.DataFrame(list(standalone.rows(meta, session, paths)))
        both = scored & (onnx["error"] == "").to_numpy()
        got = onnx.loc[both, PROB_COLUMNS].astype(float).to_numpy()
        out[name] = onnxform.parity(reference.loc[both, PROB_COLUMNS].to_numpy(), got) | {
            "compared_on": f"{int(both.sum())} of the run's test clips (audio files, through predict.py's reading, "
            "resampling and windows) against `serlib predict` in torch",
            "multi_window_clips": int((reference.loc[both, "windows"] > 1).sum()),
            "failed": int((~both).sum()),
            "bytes": (bundle / name).stat().st_size,
            "seconds": round(time.perf_counter() - started, 2),
            "torch_seconds": round(torch_s, 2),
            "opset": audiograph.OPSET,
            "onnxruntime": onnxform.ort.__version__,
            "quantisation": (
                "onnxruntime dynamic int8 (int8 weights of "
                + ", ".join(audiograph.INT8_OPS)
                + " per channel; activations quantised per call)"
            )
            if int8
            else "none (fp32)",
        }
    return out
