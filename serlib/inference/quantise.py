"""Smaller and faster forms of a trained classifier for inference: each BatchNorm folded into its conv (the
same function, float rounding only), static int8 post-training quantisation (PyTorch's x86 backend, calibrated
on training features only) and the bytes a form's weights take. ``serlib.inference.deploy`` measures what they
cost and change (Table S25); ``serlib bench`` and ``serlib doctor`` time them.

``torch.ao.quantization`` is deprecated upstream in favour of torchao, but it is present and
working in the pinned torch 2.11; CPU only (there is no int8 CUDA path here).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

QUANT_BACKEND = "x86"


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval copy of ``model`` with each BatchNorm1d folded into the Conv1d registered just before it."""
    folded = copy.deepcopy(model).eval()
    for parent in folded.modules():
        children = list(parent.named_children())
        for (name_a, a), (name_b, b) in zip(children, children[1:]):
            if isinstance(a, nn.Conv1d) and isinstance(b, nn.BatchNorm1d):
                setattr(parent, name_a, fuse_conv_bn_eval(a, b))
                setattr(parent, name_b, nn.Identity())
            elif (
                isinstance(a, nn.Sequential)
                and len(a)
                and isinstance(a[-1], nn.Conv1d)
                and isinstance(b, nn.BatchNorm1d)
            ):  # a separable conv: the norm folds into its pointwise part
                a[-1] = fuse_conv_bn_eval(a[-1], b)
                setattr(parent, name_b, nn.Identity())
    return folded


def quantize_int8(model: nn.Module, calibration: torch.Tensor, batch_size: int = 32) -> nn.Module:
    """A static int8 copy of ``model`` (CPU), its activation ranges observed on ``calibration``.

    Args:
        model: a trained classifier over ``(batch, channels, frames)``; left unchanged.
        calibration: ``(n, channels, frames)`` features (training split only: never test).
        batch_size: calibration batch.

    Returns:
        The quantised module (eval mode, CPU, float32 in and out).
    """
    # Deprecated upstream (torchao replaces it): imported only here, so that only the int8 form meets its warnings.
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if calibration.dim() != 3 or len(calibration) == 0:
        raise ValueError(
            f"quantize_int8: calibration must be (n, channels, frames) with n > 0, got {tuple(calibration.shape)}"
        )
    float_model = copy.deepcopy(model).cpu().eval()
    torch.backends.quantized.engine = QUANT_BACKEND
    with warnings.catch_warnings():  # the deprecation notice and observer chatter, once per call
        warnings.simplefilter("ignore")
        prepared = prepare_fx(float_model, get_default_qconfig_mapping(QUANT_BACKEND), (calibration[:1].cpu(),))
        with torch.inference_mode():
            for i in range(0, len(calibration), batch_size):
                prepared(calibration[i : i + batch_size].cpu().float())
        return convert_fx(prepared)


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers, packed int8 weights included (its ``state_dict``)."""
    total = 0
    for value in model.state_dict().values():
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
        elif isinstance(value, tuple):  # packed quantised conv/linear params: (weight, bias)
            total += sum(t.numel() * t.element_size() for t in value if isinstance(t, torch.Tensor))
    return total
