"""The classifier head as ONNX: export, an onnxruntime session, int8 quantisation, parity (issue 13).

The head (the trained classifier over ``(batch, channels, frames)`` features) is exported with
torch's TorchScript-based exporter (``dynamo=False``; deprecated upstream in favour of the
``torch.export`` one, which needs ``onnxscript``, but present and exact in the pinned torch 2.11),
at ``OPSET``, with dynamic batch and frame axes. A masked model (``model.mask_padding``) keeps the
``lengths`` input; an unmasked one does not read it, so its graph has ``features`` only.
The int8 form is onnxruntime's static quantisation (QDQ, per-channel weights), its activation
ranges observed on training-split features, as the torch int8 form of ``serlib.inference.deploy``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from torch import nn

from serlib.common.timing import median, time_calls
from serlib.modelling.models import LayerSumClassifier

OPSET = 17
INPUT, LENGTHS, OUTPUT = "features", "lengths", "logits"


def export_onnx(model: nn.Module, channels: int, frames: int, path: str | Path) -> Path:
    """Write ``model`` (eval mode, CPU copy) as ONNX at ``path``; returns the path."""
    path = Path(path)
    model = model.cpu().eval()
    layers = (len(model.mix.logits),) if isinstance(model, LayerSumClassifier) else ()  # a learned layer sum in front
    example = (torch.zeros(2, *layers, channels, frames), torch.tensor([frames, max(1, frames // 2)]))
    with warnings.catch_warnings():  # the exporter's deprecation notice, once per export
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            example,
            str(path),
            input_names=[INPUT, LENGTHS],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch", 2 + len(layers): "frames"}, LENGTHS: {0: "batch"}, OUTPUT: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    onnx.checker.check_model(str(path))
    return path


def session(path: str | Path, threads: Optional[int] = None) -> ort.InferenceSession:
    """A CPU onnxruntime session of an exported head (``threads`` intra-op threads; None: onnxruntime's default)."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: the quantised graph's notices are not the user's concern
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def feed(sess: ort.InferenceSession, x: np.ndarray, lengths: np.ndarray) -> dict:
    names = {i.name for i in sess.get_inputs()}
    feed = {INPUT: np.ascontiguousarray(x, dtype=np.float32)}
    if LENGTHS in names:
        feed[LENGTHS] = np.ascontiguousarray(lengths, dtype=np.int64)
    return feed


def onnx_proba(sess: ort.InferenceSession, x: torch.Tensor, lengths: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Class probabilities ``(n, 3)`` from an onnxruntime session, as ``predict_proba`` gives them."""
    out = []
    for i in range(0, len(x), batch_size):
        logits = sess.run(
            [OUTPUT], feed(sess, x[i : i + batch_size].cpu().numpy(), lengths[i : i + batch_size].cpu().numpy())
        )[0]
        out.append(torch.softmax(torch.from_numpy(logits), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 3), dtype=np.float32)


class _Calibration(CalibrationDataReader):
    def __init__(self, sess_inputs: set, x: torch.Tensor, lengths: torch.Tensor, batch_size: int):
        self.batches = []
        for i in range(0, len(x), batch_size):
            feed = {INPUT: x[i : i + batch_size].cpu().numpy().astype(np.float32)}
            if LENGTHS in sess_inputs:
                feed[LENGTHS] = lengths[i : i + batch_size].cpu().numpy().astype(np.int64)
            self.batches.append(feed)
        self.position = 0

    def get_next(self):
        if self.position >= len(self.batches):
            return None
        self.position += 1
        return self.batches[self.position - 1]


def quantize_onnx_int8(
    fp32: str | Path, out: str | Path, calibration: torch.Tensor, lengths: torch.Tensor, batch_size: int = 32
) -> Path:
    """Static int8 (QDQ, per-channel weights) copy of an exported head, calibrated on ``calibration``
    (training-split features only, never test)."""
    fp32, out = Path(fp32), Path(out)
    prepared = out.with_suffix(".pre.onnx")
    inputs = {i.name for i in session(fp32).get_inputs()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            _Calibration(inputs, calibration, lengths, batch_size),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QInt8,
        )
    prepared.unlink(missing_ok=True)
    return out


def export_fp32_and_int8(
    model: nn.Module,
    channels: int,
    frames: int,
    folder: str | Path,
    calibration: torch.Tensor,
    calibration_lengths: torch.Tensor,
) -> tuple[Path, Path]:
    """``model`` exported to ``folder/head.onnx`` and its static int8 form ``folder/head-int8.onnx``
    (calibrated on ``calibration``: training features only)."""
    fp32 = export_onnx(model, channels, frames, Path(folder) / "head.onnx")
    return fp32, quantize_onnx_int8(fp32, Path(folder) / "head-int8.onnx", calibration, calibration_lengths)


def batch1_seconds(
    sess: ort.InferenceSession, x1: np.ndarray, lengths1: np.ndarray, warmup: int, repeats: int
) -> float:
    """Median seconds of one batch-1 call of ``sess`` on ``x1`` (1, channels, frames)."""
    inputs = feed(sess, x1, lengths1)
    return median(time_calls(lambda: sess.run(None, inputs), torch.device("cpu"), warmup, repeats))


def parity(torch_probs: np.ndarray, onnx_probs: np.ndarray) -> dict:
    """How far the ONNX form is from torch on the same features: max |p_onnx - p_torch|, class agreement."""
    torch_probs, onnx_probs = np.asarray(torch_probs), np.asarray(onnx_probs)
    return {
        "clips": int(len(torch_probs)),
        "max_abs_prob_diff": float(np.abs(torch_probs - onnx_probs).max()) if len(torch_probs) else 0.0,
        "class_agreement": float((torch_probs.argmax(1) == onnx_probs.argmax(1)).mean()) if len(torch_probs) else 1.0,
    }
