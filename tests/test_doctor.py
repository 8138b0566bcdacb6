"""serlib doctor on the CPU: every check passes or is skipped with a reason, and the JSON holds the figures."""

import json

import pytest
import torch

from serlib.tools import doctor
from serlib.tools.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_doctor_on_the_cpu_passes_and_writes_its_json(tmp_path, capsys):
    out = tmp_path / "doctor.json"
    assert main(["doctor", "--device", "cpu", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    verdicts = {r["check"]: r["verdict"] for r in result["checks"]}
    assert verdicts == {
        "device": "pass",
        "encoder_finite": "pass",
        "encoder_autocast": "skip",
        "encoder_masked": "pass",
        "fit_deterministic": "pass",
        "syncs_per_step": "skip",
        "memory": "pass",
        "throughput": "pass",
    }
    figures = {r["check"]: r["figures"] for r in result["checks"]}
    assert figures["encoder_masked"]["max_relative_diff"] < 1e-4
    assert figures["memory"]["weights_mb"] == pytest.approx(figures["memory"]["params"] * 4 / 1e6, rel=0.01)
    assert figures["throughput"]["extract_clips_per_s"] > 0 and figures["throughput"]["train_step_s_fast"] > 0
    printed = capsys.readouterr().out
    assert "all checks passed" in printed and "skip  syncs_per_step" in printed


def test_a_failing_check_is_a_row_and_the_exit_status_says_so(monkeypatch, tmp_path, capsys):
    def broken(device):
        raise RuntimeError("no kernel image is available for execution on the device")

    monkeypatch.setattr(doctor, "CHECKS", [doctor.check_device, broken])
    assert doctor.main_doctor("cpu", str(tmp_path / "d.json")) == 1
    rows = json.loads((tmp_path / "d.json").read_text())["checks"]
    assert rows[1] == {
        "check": "broken",
        "verdict": "FAIL",
        "figures": {},
        "detail": "RuntimeError: no kernel image is available for execution on the device",
    }
    assert "FAILED: broken" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when no GPU is usable")
def test_doctor_cuda_without_a_gpu_is_a_usage_error(capsys):
    assert main(["doctor", "--device", "cuda"]) == 2
    assert "use --device cpu or auto" in capsys.readouterr().err
