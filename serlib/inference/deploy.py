"""Deployment forms of a trained classifier and what they cost (paper 5.1: "< 3.5 ms, < 15 MB GPU").

Three forms of the same trained network, for inference on one utterance at a time:

- ``fp32``: the checkpoint as trained (eval mode).
- ``fp32, BatchNorm folded``: each BatchNorm folded into the conv before it (same function,
  float rounding only; ``serlib.inference.quantise.fold_batchnorm``).
- ``int8``: static post-training quantisation (weights and activations int8, PyTorch's x86
  backend), calibrated on training-split features only. It changes the function; what it
  changes is measured on the test split (accuracy, agreement with fp32, largest probability
  difference) and shown beside its speed, never assumed.

- ``onnxruntime fp32`` and ``onnxruntime int8``: the head exported to ONNX (what ``serlib export
  --onnx`` writes) and its static int8 copy (QDQ, calibrated on the same training features), run by
  onnxruntime on the CPU, masked networks included.

The table ends with the encoder's cost on one clip of the mean test length, per clip and per
second of audio, and encoder + head: the paper's "3.2 ms" is the head alone, while a user pays
for the encoder on every clip.

The forms themselves (folding, int8, their weight bytes) are ``serlib.inference.quantise``.
"""

from __future__ import annotations

import copy
import tempfile

import pandas as pd
import torch
from torch import nn

from serlib.common import paper
from serlib.common.config import Config, FeaturesConfig, primary_system
from serlib.common.runfolder import RunFolder
from serlib.common.runtime import cpu_threads, deterministic_algorithms
from serlib.common.timing import median, time_calls
from serlib.data.protocols import MAIN_PROTOCOL, evaluation_protocols
from serlib.data.stage import load_manifest
from serlib.features.encoders import build_encoder, encoder_description
from serlib.inference import onnxform
from serlib.inference.quantise import fold_batchnorm, quantize_int8, weight_bytes
from serlib.modelling.inputs import system_data
from serlib.modelling.models import count_params, paper_width_params
from serlib.modelling.train import load_checkpoint, predict_proba

CALIBRATION_CLIPS = 256  # training-split clips that set the int8 activation ranges


def deployment_table(
    model: nn.Module,
    calibration: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    repeats: int = 15,
    threads: int | None = None,
    test_lengths: torch.Tensor | None = None,
    onnx: bool = True,
    calibration_lengths: torch.Tensor | None = None,
) -> pd.DataFrame:
    """The three forms of ``model`` side by side on this machine's CPU.

    Args:
        model: the trained classifier.
        calibration: training-split features for the int8 ranges.
        test_x: ``(n, channels, frames)`` test features; ``test_y``: ``(n,)`` label indices.
        repeats: timed batch-1 calls per form (median reported).
        threads: torch CPU threads while timing (None: unchanged).
        test_lengths: ``(n,)`` real frames per test clip, for a network with ``mask_padding`` (its
            torch int8 form is not built: the static quantisation traces the unmasked graph only).
        onnx: also the head exported to ONNX under onnxruntime, fp32 and static int8 (QDQ, calibrated on
            ``calibration``; ``serlib.inference.onnxform``), masked networks included.
        calibration_lengths: real frames of the calibration clips (masked networks; default: full).

    Returns:
        One row per form: ``form``, ``params``, ``weights_mb``, ``ms_per_utt_b1`` (CPU, batch 1,
        median), ``test_acc``, ``agree_with_fp32`` (share of equal predicted classes) and
        ``max_prob_diff`` (largest absolute class-probability difference from fp32).
    """
    cpu = torch.device("cpu")

    masked = bool(getattr(model, "mask_padding", False)) and test_lengths is not None
    lengths = test_lengths.cpu() if masked else None
    with cpu_threads(threads), deterministic_algorithms(False):  # inference only: no determinism warnings
        fp32 = copy.deepcopy(model).cpu().eval()
        forms = {"fp32 (as trained)": fp32, "fp32, BatchNorm folded": fold_batchnorm(fp32)}
        if not masked:
            forms["int8 static (x86), calibrated on train"] = quantize_int8(fp32, calibration)
        x1 = test_x[:1].cpu().float()
        args1 = (x1,) if lengths is None else (x1, lengths[:1])
        with torch.inference_mode():
            reference = predict_proba(fp32, test_x.cpu().float(), lengths=lengths)
        rows = []
        for name, form in forms.items():
            with torch.inference_mode():
                probs = reference if form is fp32 else predict_proba(form, test_x.cpu().float(), lengths=lengths)
                seconds = median(time_calls(lambda f=form: f(*args1), cpu, 3, repeats))  # batch 1, 3 warm-ups
            rows.append(_row(name, count_params(fp32), weight_bytes(form), seconds, probs, reference, test_y))
        if onnx:
            rows += _onnx_rows(
                fp32, calibration, calibration_lengths, test_x, test_lengths, test_y, reference, repeats, threads
            )
        return pd.DataFrame(rows)


def _row(name: str, params: int, nbytes: int, seconds: float, probs, reference, test_y) -> dict:
    probs, reference = torch.as_tensor(probs), torch.as_tensor(reference)
    return {
        "form": name,
        "params": params,
        "weights_mb": nbytes / 1e6,
        "ms_per_utt_b1": seconds * 1e3,
        "test_acc": (probs.argmax(1) == test_y.cpu()).float().mean().item(),
        "agree_with_fp32": (probs.argmax(1) == reference.argmax(1)).float().mean().item(),
        "max_prob_diff": (probs - reference).abs().max().item(),
    }


def _onnx_rows(
    fp32: nn.Module,
    calibration: torch.Tensor,
    calibration_lengths,
    test_x: torch.Tensor,
    test_lengths,
    test_y: torch.Tensor,
    reference: torch.Tensor,
    repeats: int,
    threads: int | None,
) -> list[dict]:
    """onnxruntime fp32 and int8 rows: the head exported, timed at batch 1, scored on the test features."""
    n, frames = len(test_x), test_x.shape[2]
    test_lengths = test_lengths.cpu() if test_lengths is not None else torch.full((n,), frames)
    cal_lengths = (
        calibration_lengths.cpu()
        if calibration_lengths is not None
        else torch.full((len(calibration),), calibration.shape[2])
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="serlib-onnx-") as tmp:
        fp32_path, int8_path = onnxform.export_fp32_and_int8(
            fp32, test_x.shape[1], frames, tmp, calibration.cpu().float(), cal_lengths
        )
        for name, path in (
            (f"onnxruntime fp32 (opset {onnxform.OPSET})", fp32_path),
            ("onnxruntime int8 static (QDQ), calibrated on train", int8_path),
        ):
            sess = onnxform.session(path, threads)
            probs = onnxform.onnx_proba(sess, test_x.cpu().float(), test_lengths)
            seconds = onnxform.batch1_seconds(sess, test_x[:1].cpu().numpy(), test_lengths[:1].numpy(), 3, repeats)
            rows.append(_row(name, count_params(fp32), path.stat().st_size, seconds, probs, reference, test_y))
    return rows


def encoder_cost(
    features: FeaturesConfig, input: str, seconds: float, repeats: int = 3, threads: int | None = None
) -> dict:
    """CPU time of the frozen encoder on one clip of ``seconds`` of audio (batch 1, median of ``repeats``)."""
    cpu = torch.device("cpu")
    encoder = build_encoder(features, input, cpu)
    samples = max(encoder.min_samples, round(seconds * features.sample_rate))
    wave = torch.randn(1, samples, generator=torch.Generator().manual_seed(0)) * 0.1
    with cpu_threads(threads):
        times = time_calls(lambda: encoder(wave), cpu, 1, repeats)
    ms = median(times) * 1e3
    return {
        "encoder": encoder_description(features, input),
        "seconds": samples / features.sample_rate,
        "ms_per_clip": ms,
        "ms_per_audio_s": ms / (samples / features.sample_rate),
    }


def deployment_for_run(
    cfg: Config, folder: RunFolder, system: str | None = None, seed: int | None = None, repeats: int = 15
) -> pd.DataFrame:
    """``deployment_table`` for a trained run of this run folder (default: the analysed system and seed).

    Features come from the run's cache on the CPU; the int8 form is calibrated on the first
    ``CALIBRATION_CLIPS`` training clips. Raises FileNotFoundError naming the checkpoint if that
    run has not been trained (run 03_train first).
    """
    default_system, default_seed = primary_system(cfg)
    system, seed = system or default_system, default_seed if seed is None else seed
    protocol = evaluation_protocols(cfg)[0]  # the paper's split, or the first speaker fold's model
    path = folder.checkpoint(system, seed, protocol)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no trained {system} (seed {seed}) in this run folder; run the training "
            f"stage (notebooks/03_train.ipynb or `serlib train`) first"
        )
    if system not in cfg.systems:
        raise KeyError(f"{cfg.source}: system '{system}' is not under 'systems'")
    input = cfg.systems[system].input
    if input == "wav2vec2_layers":
        raise ValueError(
            f"{cfg.source}: the deployment table times one input tensor per clip; {system} reads several "
            "encoder layers (input: wav2vec2_layers); set analysis.primary_system to a single-input system"
        )
    data = system_data(cfg, folder, system, torch.device("cpu"), protocol)  # its input and its layer
    table = deployment_table(
        load_checkpoint(path),
        data.x["train"][:CALIBRATION_CLIPS],
        data.x["test"],
        data.y["test"],
        repeats=repeats,
        threads=cfg.train.threads,
        test_lengths=data.lengths["test"],
        calibration_lengths=data.lengths["train"][:CALIBRATION_CLIPS],
    )
    table["ms_per_audio_s"] = float("nan")
    durations = load_manifest(folder).set_index("utt_id")["duration_s"].astype(float)
    mean_s = float(durations.loc[data.utt_ids["test"]].mean())
    cost = encoder_cost(cfg.features, input, mean_s, threads=cfg.features.threads)
    head = table.iloc[0]
    extra = [
        {
            "form": f"encoder ({'wav2vec2' if input == 'wav2vec2' else 'log-Mel'}), one clip of "
            f"{cost['seconds']:.1f} s (the mean test clip)",
            "params": float("nan"),
            "weights_mb": float("nan"),
            "ms_per_utt_b1": cost["ms_per_clip"],
            "ms_per_audio_s": cost["ms_per_audio_s"],
        },
        {
            "form": "encoder + head fp32: what a user pays per clip",
            "params": float("nan"),
            "weights_mb": float("nan"),
            "ms_per_utt_b1": cost["ms_per_clip"] + head.ms_per_utt_b1,
            "ms_per_audio_s": (cost["ms_per_clip"] + head.ms_per_utt_b1) / cost["seconds"],
        },
    ]
    table = pd.concat([table, pd.DataFrame(extra)], ignore_index=True)
    table.insert(0, "system", f"{system} seed {seed}" + ("" if protocol == MAIN_PROTOCOL else f", {protocol}"))
    table["input"] = f"{data.channels} x {data.frames}"
    table.attrs["encoder"] = cost["encoder"]
    return table


def _ms(value: float) -> str:
    """Milliseconds (or a ratio) to the precision a reader needs: whole from 10, two significant digits below."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def deployment_skip(cfg: Config) -> str:
    """Why Table S25 cannot be shown for this profile ("" when it can): it times one input tensor per clip."""
    system = primary_system(cfg)[0]
    if cfg.systems[system].input != "wav2vec2_layers":
        return ""
    return (
        f"Table S25 is skipped: the analysed system {system} reads several encoder layers (input: wav2vec2_layers), "
        "and the deployment table times one input tensor per clip; set analysis.primary_system to a one-input "
        "system to time it."
    )


def deployment_note(table: pd.DataFrame, cfg: Config, system: str | None = None) -> str:
    """What the deployment table says, beside the paper's claim, in figures computed from it."""
    system = system or primary_system(cfg)[0]
    fp32 = table.iloc[0]
    int8_rows = table[table["form"].str.startswith("int8")]
    full = paper_width_params(cfg.systems[system].model, cfg.systems[system].input)
    d = paper.DEPLOYMENT
    if len(int8_rows):
        int8 = int8_rows.iloc[0]
        measured = (
            f"On this machine's CPU (batch 1, median), int8 runs {fp32.ms_per_utt_b1 / int8.ms_per_utt_b1:.1f}x "
            f"the speed of fp32 ({int8.ms_per_utt_b1:.1f} vs {fp32.ms_per_utt_b1:.1f} ms) with "
            f"{int8.weights_mb:.2f} MB of weights instead of {fp32.weights_mb:.2f} MB; it predicts the fp32 "
            f"class for {100 * int8.agree_with_fp32:.1f} % of test clips (test accuracy {int8.test_acc:.3f} "
            f"vs {fp32.test_acc:.3f}; largest probability change {int8.max_prob_diff:.3f})."
        )
    else:
        measured = (
            f"On this machine's CPU (batch 1, median) fp32 takes {fp32.ms_per_utt_b1:.1f} ms with "
            f"{fp32.weights_mb:.2f} MB of weights; no torch int8 form is built for a network with "
            "model.mask_padding (torch's static quantisation traces the unmasked graph only)."
        )
    ort_rows = table[table["form"].str.startswith("onnxruntime")]
    if len(ort_rows) == 2:
        o32, o8 = ort_rows.iloc[0], ort_rows.iloc[1]
        measured += (
            f" Under onnxruntime the head takes {o32.ms_per_utt_b1:.2f} ms in fp32 (largest probability "
            f"difference from torch {o32.max_prob_diff:.1e}) and {o8.ms_per_utt_b1:.2f} ms in int8 "
            f"({100 * o8.agree_with_fp32:.1f} % of test classes as fp32)."
        )
    enc = table[table["form"].str.startswith("encoder (")]
    if len(enc):
        e, total = enc.iloc[0], table[table["form"].str.startswith("encoder + head")].iloc[0]
        which = f" ({table.attrs['encoder']})" if table.attrs.get("encoder") else ""
        measured += (
            f" The run's encoder{which} costs {_ms(e.ms_per_utt_b1)} ms for the mean test clip "
            f"({_ms(e.ms_per_audio_s)} ms per second of audio), so a user pays {_ms(total.ms_per_utt_b1)} ms "
            f"per clip here, {_ms(total.ms_per_utt_b1 / fp32.ms_per_utt_b1)}x the head alone."
        )
    return (
        f"{measured} The paper claims "
        f"< {d['infer_ms']:g} ms and < {d['gpu_mem_mb']:g} MB of GPU memory per utterance. At the paper's "
        f"widths this network has {full / 1e6:.2f} M parameters: {full * 4 / 1e6:.1f} MB of fp32 weights, "
        f"{full * 2 / 1e6:.1f} MB in fp16/bf16, {full / 1e6:.1f} MB in int8, so '< {d['gpu_mem_mb']:g} MB' fits "
        f"it only in half precision or int8 (`serlib bench` measures the full network's speed and memory)."
    )
