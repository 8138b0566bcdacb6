"""Tests of serlib.inference.quantise: BatchNorm folding keeps the function, int8 leaves the model alone."""

from __future__ import annotations

import pytest
import torch
from test_deploy import _small_model
from torch import nn

from serlib.common.config import ModelConfig
from serlib.inference import quantise
from serlib.modelling.models import build_model


def test_fold_batchnorm_keeps_the_outputs():
    model = build_model(ModelConfig(width_scale=0.125), 32)
    for module in model.modules():  # non-trivial running statistics
        if isinstance(module, nn.BatchNorm1d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    folded = quantise.fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in folded.modules())
    x = torch.randn(3, 32, 50)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model.eval()(x), atol=1e-4, rtol=1e-4)


def test_quantize_leaves_the_model_alone_and_checks_calibration():
    model = _small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quantized = quantise.quantize_int8(model, torch.randn(8, 32, 40))
    assert quantized(torch.randn(2, 32, 40)).shape == (2, 3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="calibration"):
        quantise.quantize_int8(model, torch.randn(32, 40))
