"""The whole model as one ONNX graph: raw 16 kHz audio in, class probabilities out (issue 25).

``serlib export --onnx`` writes ``model.onnx`` from ``AudioToProbs``: the frozen encoder as the run's
configuration builds it (wav2vec2 / HuBERT / WavLM with its layer selection: one layer, ``best``, or
every layer of a learned layer sum; or the log-Mel front end), the feature cache's float16 rounding,
the window fit, the trained head and the softmax. What the graph does with one row of ``audio``
(``(batch, samples)`` float32, 16 kHz mono, every row a whole clip or a whole window, no padding):

1. the encoder, as ``serlib.features.encoders`` runs it on one clip alone (wav2vec2: the waveform
   normalised over the row when the model's feature extractor asks for it; log-Mel: the power
   spectrum as a matmul against a Hann-windowed DFT basis, the Mel filter bank, ``log(. + floor)``
   and the per-utterance standardisation);
2. the frames rounded to float16 and back, as the feature cache stores them;
3. ``fit_frames``: the centre ``frames`` frames of a longer row, or the row's frames zero-padded at the
   end to ``frames``, with the real frame count passed to the head as ``lengths``;
4. the head (a ``LayerSumClassifier`` takes the stacked layers) and a softmax.

What it leaves to its caller (``serlib.inference.standalone``, the bundle's ``predict.py``, and
``Predictor``): reading, mixing to mono and resampling to 16 kHz; cutting a clip longer than the window
into windows (half a window apart, the last ending at the clip's end) and averaging their
probabilities. A caller that feeds a whole long clip gets the centre window of its frames, which is what
training did (``serlib predict --long centre``).

Why a DFT matmul for log-Mel: torchaudio's ``MelSpectrogram`` calls ``torch.stft`` with complex
output, which torch's TorchScript-based ONNX exporter cannot write; the matmul is the same sum
(a periodic Hann window, ``center=False``, the power spectrum), exported as a Conv.

The int8 form is onnxruntime's dynamic quantisation (int8 weights of MatMul / Gemm, activations
quantised per call from their own range: no calibration data), measured, never assumed.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch import nn
from torch.nn import functional as F

from serlib.features.encoders import LogMelEncoder, Wav2Vec2Encoder
from serlib.inference.predict import Predictor

OPSET = 17
AUDIO, PROBS = "audio", "probs"  # the graph's input and output names
INT8_OPS = ["MatMul", "Gemm"]  # what dynamic quantisation turns to int8 (see quantize_int8_dynamic)
MODEL_FILE, MODEL_INT8_FILE = "model.onnx", "model-int8.onnx"  # their names in a bundle


class LogMelFront(nn.Module):
    """``LogMelEncoder`` on whole rows, as exportable ops: ``(batch, samples)`` -> ``(batch, n_mels, frames)``.

    The STFT is a strided Conv1d whose kernels are the real and imaginary parts of the DFT basis times
    the encoder's own window; the Mel filter bank is the encoder's own (``mel_scale.fb``).
    """

    def __init__(self, encoder: LogMelEncoder):
        super().__init__()
        spec = encoder.mel.spectrogram
        if spec.center or spec.normalized or spec.pad or spec.power != 2.0 or spec.win_length != spec.n_fft:
            raise ValueError(
                "LogMelFront reproduces center=False, no padding or normalisation, power 2 and win_length = n_fft only"
            )
        n_fft, bins = spec.n_fft, spec.n_fft // 2 + 1
        angle = (
            2
            * math.pi
            * torch.outer(torch.arange(bins, dtype=torch.float64), torch.arange(n_fft, dtype=torch.float64))
            / n_fft
        )  # (bins, n_fft)
        window = spec.window.to(torch.float64)
        basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])  # (2 bins, n_fft)
        self.register_buffer("basis", basis.float()[:, None, :])  # (2 bins, 1, n_fft)
        self.register_buffer("fb", encoder.mel.mel_scale.fb.T.contiguous().float())  # (n_mels, bins)
        self.bins, self.hop, self.floor, self.standardise = bins, encoder.hop, encoder.floor, encoder.standardise

    def forward(self, audio: torch.Tensor) -> list[torch.Tensor]:
        parts = F.conv1d(audio[:, None, :], self.basis, stride=self.hop)  # (batch, 2 bins, frames)
        real, imag = parts[:, : self.bins], parts[:, self.bins :]
        logmel = torch.log(torch.matmul(self.fb, real * real + imag * imag) + self.floor)  # (batch, n_mels, frames)
        if self.standardise:  # as LogMelEncoder on a clip alone: unbiased std over (bands, frames)
            mean = logmel.mean(dim=(1, 2), keepdim=True)
            std = logmel.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
            logmel = (logmel - mean) / std
        return [logmel]


class Wav2Vec2Front(nn.Module):
    """``Wav2Vec2Encoder.hidden_layers`` on whole rows.

    ``(batch, samples)`` -> its layers, each ``(batch, C, frames)``."""

    def __init__(self, encoder: Wav2Vec2Encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, audio: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder.hidden_layers(audio)


class AudioToProbs(nn.Module):
    """Encoder, float16 rounding, window fit and head: ``(batch, samples)`` audio -> ``(batch, classes)`` probabilities.

    Args:
        front: ``LogMelFront`` or ``Wav2Vec2Front`` (a list of layers, one per encoder layer the head reads).
        head: the trained classifier (eval mode).
        frames: the run's window in frames.
        stacked: the head reads every layer as ``(batch, layers, C, frames)`` (a learned layer sum).
    """

    def __init__(self, front: nn.Module, head: nn.Module, frames: int, stacked: bool):
        super().__init__()
        self.front, self.head, self.frames, self.stacked = front, head.eval(), frames, stacked

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        layers = [h.half().float() for h in self.front(audio)]  # the cache stores float16
        x = torch.stack(layers, 1) if self.stacked else layers[0]  # (batch, [layers,] C, T)
        x, kept = fit_window(x, self.frames)
        return torch.softmax(self.head(x, kept), dim=1)


def fit_window(x: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``fit_frames`` on the last axis of a batch of equal-length rows, with ops that keep the length dynamic.

    Args:
        x: ``(batch, ..., T)``.
        frames: the window.

    Returns:
        ``(batch, ..., frames)``: the centre ``frames`` of a longer ``T``, else the ``T`` frames then zeros;
        and ``(batch,)`` int64 real frames kept (``min(T, frames)``).
    """
    time = torch.ones_like(x[0].flatten(0, -2)[0], dtype=torch.long).sum()  # T as a tensor (traced, not a constant)
    start = torch.clamp(torch.div(time - frames, 2, rounding_mode="floor"), min=0)
    padded = F.pad(x, (0, frames))  # (batch, ..., T + frames): zeros after the row's frames
    fitted = padded.index_select(-1, start + torch.arange(frames))
    kept = torch.clamp(time, max=frames).expand(x.shape[0])
    return fitted, kept


def front_for(encoder: nn.Module) -> nn.Module:
    """The exportable front of a built encoder (``serlib.features.encoders.build_encoder``)."""
    if isinstance(encoder, LogMelEncoder):
        return LogMelFront(encoder)
    if isinstance(encoder, Wav2Vec2Encoder):
        return Wav2Vec2Front(encoder)
    raise TypeError(f"no ONNX front for {type(encoder).__name__}")


def graph_for(predictor: Predictor) -> AudioToProbs:
    """The whole model of ``predictor`` (its encoder with the layers its head reads, the head), on the CPU."""
    stacked = bool(predictor.layers) and len(predictor.layers) > 1
    return AudioToProbs(front_for(predictor.encoder), predictor.model, predictor.frames, stacked).cpu().eval()


def export_model(predictor: Predictor, folder: str | Path) -> tuple[Path, Path]:
    """``folder/model.onnx`` (``graph_for``) and its int8 form ``folder/model-int8.onnx``; the predictor must be
    on the CPU (``Predictor.from_run(..., device="cpu")``)."""
    if predictor.device.type != "cpu":
        raise ValueError(f"export_model: the predictor runs on {predictor.device}; load it with device='cpu'")
    fp32 = export_audio_onnx(graph_for(predictor), Path(folder) / MODEL_FILE, predictor.window_samples)
    return fp32, quantize_int8_dynamic(fp32, Path(folder) / MODEL_INT8_FILE)


def export_audio_onnx(graph: AudioToProbs, path: str | Path, example_samples: int) -> Path:
    """Write ``graph`` as ONNX at ``path`` (opset ``OPSET``, dynamic batch and length); returns the path.

    Args:
        graph: the model (CPU).
        example_samples: the length of the traced example (any length the encoder accepts; the graph stays
            dynamic in it).
    """
    path = Path(path)
    example = torch.zeros(2, example_samples)
    example[0].normal_(generator=torch.Generator().manual_seed(0)).mul_(0.1)
    example[1] = example[0].flip(0)
    with warnings.catch_warnings(), torch.no_grad():  # the exporter's deprecation and tracer notices
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph.cpu().eval(),
            (example,),
            str(path),
            input_names=[AUDIO],
            output_names=[PROBS],
            dynamic_axes={AUDIO: {0: "batch", 1: "samples"}, PROBS: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    onnx.checker.check_model(str(path))
    return path


def quantize_int8_dynamic(fp32: str | Path, out: str | Path) -> Path:
    """onnxruntime's dynamic int8 quantisation of ``fp32`` (weights of ``INT8_OPS`` int8, per channel)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)  # its advice to pre-process, on the root logger, is not the user's concern
        try:
            quantize_dynamic(
                str(fp32), str(out), op_types_to_quantize=INT8_OPS, per_channel=True, weight_type=QuantType.QInt8
            )
        finally:
            logging.disable(logging.NOTSET)
    return Path(out)
