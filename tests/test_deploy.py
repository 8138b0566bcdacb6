"""Tests of serlib.inference.deploy: the deployment table (Table S25) and its run-level entry point."""

from __future__ import annotations

import pytest
import torch

from serlib.common.config import ModelConfig, load_config
from serlib.common.runfolder import RunFolder
from serlib.inference import deploy
from serlib.modelling.models import build_model


def _small_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(ModelConfig(arch="resattn", se=True, width_scale=0.125), 32)
    model.eval()
    for module in model.modules():  # give the BatchNorms non-trivial statistics, as training would
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model


def test_int8_is_smaller_and_close_to_fp32(one_thread):
    model = _small_model()
    calibration = torch.randn(48, 32, 60)
    test_x, test_y = torch.randn(40, 32, 60), torch.randint(0, 3, (40,))
    table = deploy.deployment_table(model, calibration, test_x, test_y, repeats=2, onnx=False).set_index("form")
    assert list(table.columns) == [
        "params",
        "weights_mb",
        "ms_per_utt_b1",
        "test_acc",
        "agree_with_fp32",
        "max_prob_diff",
    ]
    fp32, folded, int8 = table.iloc[0], table.iloc[1], table.iloc[2]
    assert fp32.agree_with_fp32 == 1.0 and fp32.max_prob_diff == 0.0
    assert folded.agree_with_fp32 == 1.0 and folded.max_prob_diff < 1e-4  # the same function
    assert int8.weights_mb < 0.4 * fp32.weights_mb  # int8 weights: about a quarter
    assert int8.agree_with_fp32 >= 0.8 and 0 < int8.max_prob_diff < 0.2  # changed, but not much
    assert (table.ms_per_utt_b1 > 0).all()
    assert fp32.weights_mb == pytest.approx(fp32.params * 4 / 1e6, rel=0.05)  # + BatchNorm buffers


def test_deployment_for_run_names_the_missing_checkpoint(tmp_path):
    cfg = load_config("parameters/smoke.yaml")
    folder = RunFolder(tmp_path / "run").ensure()
    with pytest.raises(FileNotFoundError, match=r"S5.*seed0.*checkpoint\.pt|checkpoint\.pt.*S5"):
        deploy.deployment_for_run(cfg, folder)


def test_the_onnx_rows_match_torch_and_int8_is_smaller(one_thread):
    model = _small_model()
    calibration = torch.randn(48, 32, 60)
    test_x, test_y = torch.randn(40, 32, 60), torch.randint(0, 3, (40,))
    table = deploy.deployment_table(model, calibration, test_x, test_y, repeats=2).set_index("form")
    fp32 = table.iloc[0]
    ort = table.loc[[f for f in table.index if f.startswith("onnxruntime fp32")]].iloc[0]
    ort8 = table.loc["onnxruntime int8 static (QDQ), calibrated on train"]
    assert ort.agree_with_fp32 == 1.0 and ort.max_prob_diff < 1e-5  # the exported graph is the same function
    assert ort8.weights_mb < 0.5 * ort.weights_mb  # the file holds int8 weights
    assert ort8.agree_with_fp32 >= 0.8 and 0 < ort8.max_prob_diff < 0.2
    assert ort.params == fp32.params and ort.ms_per_utt_b1 > 0
