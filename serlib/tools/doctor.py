"""``serlib doctor [--device cpu|cuda|auto] [--json PATH]``: a self-check for a new machine, in minutes.

Each check prints one verdict line (pass / FAIL / skip, with its figures) and all of them go to a JSON:

- ``device``: the device ``auto`` picks and why; on a GPU the driver's and the build's CUDA, the compute
  capability and whether this torch build has kernels for it.
- ``encoder_finite``: a wav2vec2 encoder (random weights; the full base on a GPU, the demo's small one on
  the CPU) gives finite outputs on speech-like noise, under autocast where the run would use it.
- ``encoder_autocast``: fp16 autocast against fp32, relative error of the features (GPU; the CPU runs fp32).
- ``encoder_masked``: a clip in a padded, masked batch gives what it gives alone.
- ``fit_deterministic``: a tiny ``fit`` run twice under ``train.deterministic`` gives identical weights.
- ``syncs_per_step``: host synchronisations in one training step (``torch.cuda.set_sync_debug_mode``; GPU).
- ``memory``: weights, activations and (GPU) allocator workspace of batch-1 S5 inference, separately.
- ``throughput``: extraction clips/s and S5 training steps/s at the sizes this device can afford.

The CPU form runs in CI (``tests/test_doctor.py``).
"""

from __future__ import annotations

import platform
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import torch

from serlib.common.config import FeaturesConfig, ModelConfig, TrainConfig
from serlib.common.io import write_json_atomic
from serlib.common.runtime import device_choice, set_seed, training_mode
from serlib.common.timing import time_calls
from serlib.features.encoders import build_encoder
from serlib.inference.quantise import weight_bytes
from serlib.modelling.augment import TriAug
from serlib.modelling.inputs import SplitData
from serlib.modelling.models import build_model, count_params
from serlib.modelling.train import TrainSettings, TrainStep, fit, make_optimizer
from serlib.tools.measure import activation_peak_bytes

MB = 1e6


class DoctorError(ValueError):
    """The doctor cannot run as asked (e.g. ``--device cuda`` without a usable GPU)."""


SMALL_ENCODER = {"num_hidden_layers": 1, "conv_dim": [128] * 7, "num_conv_pos_embeddings": 32}  # the demo's


def _encoder(device: torch.device) -> tuple[torch.nn.Module, str]:
    features = FeaturesConfig(device=device.type)
    features.wav2vec2.weights = "random"
    if device.type == "cpu":
        features.wav2vec2.config_overrides = dict(SMALL_ENCODER)
        what = "wav2vec2 (random weights, the demo's 1-layer size: the CPU form)"
    else:
        what = "wav2vec2-base (random weights, full size)"
    return build_encoder(features, "wav2vec2", device).eval(), what


def _waves(count: int, seconds: float, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lengths = [int(16000 * seconds * (0.6 + 0.8 * i / max(1, count - 1))) for i in range(count)]
    return [torch.randn(n, generator=gen) * 0.1 * torch.sin(torch.linspace(0, 40, n)).abs() for n in lengths]


def check_device(device: torch.device) -> dict:
    chosen, why = device_choice("auto")
    out = {
        "auto_picks": chosen,
        "why": why,
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        arch = f"sm_{major}{minor}"
        out |= {
            "gpu": torch.cuda.get_device_name(device),
            "compute_capability": f"{major}.{minor}",
            "build_arches": torch.cuda.get_arch_list(),
            "free_gb": torch.cuda.mem_get_info(device)[0] / 1e9,
        }
        ok = arch in out["build_arches"] or any(a.startswith("compute_") for a in out["build_arches"])
        return _verdict(
            ok,
            f"{out['gpu']}, capability {major}.{minor}, "
            f"{'kernels in this build' if ok else 'NO kernels for it in this build'}",
            out,
        )
    return _verdict(True, f"{device}: {why}", out)


def check_encoder(device: torch.device) -> list[dict]:
    encoder, what = _encoder(device)
    waves = _waves(4, 2.0)
    autocast = device.type == "cuda"
    rows = []
    with torch.inference_mode():
        alone = [encoder(w.unsqueeze(0).to(device))[0] for w in waves]  # each (channels, frames)
        finite = all(torch.isfinite(a).all().item() for a in alone)
        rows.append(
            _verdict(
                finite,
                f"{what}: outputs {'finite' if finite else 'hold NaN/inf'}"
                f"{' under fp16 autocast' if autocast and encoder.autocast else ''}",
                {"encoder": what, "autocast": bool(getattr(encoder, "autocast", False))},
                "encoder_finite",
            )
        )
        if autocast:
            encoder.autocast = False
            exact = [encoder(w.unsqueeze(0).to(device))[0] for w in waves]
            encoder.autocast = True
            err = max(((a.float() - e).norm() / e.norm()).item() for a, e in zip(alone, exact))
            rows.append(
                _verdict(
                    err < 1e-2,
                    f"fp16 autocast vs fp32: relative error {err:.1e} (limit 1e-2)",
                    {"relative_error": err},
                    "encoder_autocast",
                )
            )
        else:
            rows.append(_skip("encoder_autocast", "the CPU encodes in fp32 (autocast is the GPU path)"))
        lengths = torch.tensor([len(w) for w in waves], device=device)
        padded = torch.zeros(len(waves), int(lengths.max()), device=device)
        for row, w in zip(padded, waves):
            row[: len(w)] = w.to(device)
        batch = encoder(padded, lengths)
        diff = max(
            (
                (batch[i, :, : encoder.frames_for(len(w))].float() - alone[i].float()).abs().max()
                / alone[i].float().abs().max()
            ).item()
            for i, w in enumerate(waves)
        )
        limit = 1e-2 if autocast else 1e-4
        rows.append(
            _verdict(
                diff < limit,
                f"masked batch of {len(waves)} vs each clip alone: max relative "
                f"difference {diff:.1e} (limit {limit:g})",
                {"max_relative_diff": diff},
                "encoder_masked",
            )
        )
    return rows


def check_fit(device: torch.device) -> dict:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 16, 40, generator=gen), torch.arange(48) % 3
    cfg = TrainConfig(batch_size=16, max_epochs=2)
    states = []
    for _ in range(2):
        set_seed(0)
        model = build_model(ModelConfig(width_scale=0.1), 16).to(device)
        data = SplitData.from_tensors((x.to(device), y), (x.to(device), y))
        fit(model, data, TrainSettings.from_config(cfg, seed=0, progress=False), TriAug())
        states.append({k: v.detach().cpu() for k, v in model.state_dict().items()})
    same = all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    return _verdict(
        same,
        f"two seeded fits of a small CNN under train.deterministic: weights {'identical' if same else 'DIFFER'}",
        {"identical": same},
        "fit_deterministic",
    )


def _s5_step(device: torch.device, batch: int, frames: int, amp: bool = False):
    set_seed(0)
    model = build_model(ModelConfig(), 768).to(device)
    step = TrainStep(model, make_optimizer(model, 1e-3, 1e-2), TriAug(), 2.0, amp=amp)
    x = torch.randn(batch, 768, frames, device=device)
    y = torch.arange(batch, device=device) % 3
    return model, step, x, y


def check_syncs(device: torch.device) -> dict:
    if device.type != "cuda":
        return _skip("syncs_per_step", "host synchronisations are a GPU matter")
    _, step, x, y = _s5_step(device, 8, 400)
    step(x.clone(), y)  # warm-up
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step(x.clone(), y)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    count = sum("synchroniz" in str(w.message).lower() for w in caught)
    return _verdict(
        count <= 1,
        f"{count} host synchronisation(s) in one Tri-Aug + S5 step (the engine adds one loss read per step)",
        {"syncs": count},
        "syncs_per_step",
    )


def check_memory(device: torch.device) -> dict:
    set_seed(0)
    model = build_model(ModelConfig(), 768).to(device).eval()
    x1 = torch.randn(1, 768, 400, device=device)
    weights = weight_bytes(model)  # parameters and buffers
    activations = activation_peak_bytes(model, x1)
    out = {
        "weights_mb": weights / MB,
        "activations_peak_b1_mb": activations / MB,
        "input_mb": x1.numel() * 4 / MB,
        "params": count_params(model),
    }
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.inference_mode():
            for _ in range(3):
                model(x1)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        out |= {"allocator_peak_b1_mb": peak / MB, "workspace_mb": max(0.0, (peak - activations) / MB)}
        detail = (
            f"weights {out['weights_mb']:.1f} MB, activations {out['activations_peak_b1_mb']:.1f} MB, "
            f"workspace {out['workspace_mb']:.1f} MB (allocator peak over the resident weights and input)"
        )
    else:
        detail = (
            f"weights {out['weights_mb']:.1f} MB, activations {out['activations_peak_b1_mb']:.1f} MB at batch 1 "
            "(no allocator workspace on the CPU)"
        )
    return _verdict(True, detail, out, "memory")


def check_throughput(device: torch.device) -> dict:
    encoder, what = _encoder(device)
    count = 64 if device.type == "cuda" else 8
    waves = _waves(count, 2.7)
    lengths = torch.tensor([len(w) for w in waves], device=device)
    padded = torch.zeros(count, int(lengths.max()), device=device)
    for row, w in zip(padded, waves):
        row[: len(w)] = w.to(device)
    with torch.inference_mode():
        seconds = min(time_calls(lambda: encoder(padded, lengths), device, 1, 3))
    batch, frames = (64, 400) if device.type == "cuda" else (4, 100)
    _, step, x, y = _s5_step(device, batch, frames)
    with training_mode(True):
        deterministic = min(time_calls(lambda: step(x.clone(), y), device, 1, 3))
    with training_mode(False):
        fast = min(time_calls(lambda: step(x.clone(), y), device, 1, 3))
    out = {
        "encoder": what,
        "extract_clips_per_s": count / seconds,
        "extract_batch": count,
        "train_batch": batch,
        "train_frames": frames,
        "train_step_s_deterministic": deterministic,
        "train_step_s_fast": fast,
    }
    if device.type == "cuda":
        _, step_amp, x, y = _s5_step(device, batch, frames, amp=True)
        with training_mode(False):
            out["train_step_s_fast_bf16"] = min(time_calls(lambda: step_amp(x.clone(), y), device, 1, 3))
        out["epoch_s_6096_clips_fast_bf16"] = out["train_step_s_fast_bf16"] * 6096 / 64
    return _verdict(
        True,
        f"extraction {out['extract_clips_per_s']:.1f} clips/s ({count} clips of ~2.7 s); S5 step "
        f"(batch {batch} x 768 x {frames}) {deterministic * 1e3:.0f} ms deterministic, "
        f"{fast * 1e3:.0f} ms fast",
        out,
        "throughput",
    )


def _verdict(ok: bool, detail: str, figures: dict, name: str = "device") -> dict:
    return {"check": name, "verdict": "pass" if ok else "FAIL", "detail": detail, "figures": figures}


def _skip(name: str, why: str) -> dict:
    return {"check": name, "verdict": "skip", "detail": why, "figures": {}}


CHECKS: list[Callable[[torch.device], object]] = [
    check_device,
    check_encoder,
    check_fit,
    check_syncs,
    check_memory,
    check_throughput,
]


def run_doctor(
    device: str = "auto", json_path: Optional[str | Path] = None, echo: Callable[[str], None] = print
) -> dict:
    """Run every check on ``device`` and return ``{"device", "checks": [...], "ok", "seconds"}``.

    A check that raises is a FAIL row naming the error (the others still run).
    """
    chosen, why = device_choice(device)
    if device == "cuda" and not torch.cuda.is_available():
        raise DoctorError(f"--device cuda but {why}; use --device cpu or auto")
    dev = torch.device(chosen)
    echo(f"serlib doctor: checks on {dev}")
    started, rows = time.perf_counter(), []
    for check in CHECKS:
        try:
            found = check(dev)
        except Exception as err:  # noqa: BLE001 -- a broken check is a finding, not a crash
            found = {
                "check": check.__name__.removeprefix("check_"),
                "verdict": "FAIL",
                "detail": f"{type(err).__name__}: {err}",
                "figures": {},
            }
        for row in found if isinstance(found, list) else [found]:
            rows.append(row)
            echo(f"  {row['verdict']:<4}  {row['check']:<18} {row['detail']}")
    result = {
        "device": str(dev),
        "checks": rows,
        "ok": all(r["verdict"] != "FAIL" for r in rows),
        "seconds": time.perf_counter() - started,
    }
    if json_path is not None:
        write_json_atomic(Path(json_path), result)
    return result


def main_doctor(device: str = "auto", json_path: Optional[str] = None) -> int:
    result = run_doctor(device, json_path)
    fails = [r["check"] for r in result["checks"] if r["verdict"] == "FAIL"]
    print(
        f"serlib doctor: {'all checks passed' if not fails else 'FAILED: ' + ', '.join(fails)} "
        f"in {result['seconds']:.0f} s" + (f"; figures in {json_path}" if json_path else "")
    )
    return 0 if not fails else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main_doctor())
