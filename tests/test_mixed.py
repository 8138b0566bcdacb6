"""The mixed-effects sensitivity check: GEE with speaker clusters, against hand cases."""

from __future__ import annotations

import numpy as np
import pytest
from test_evaluation import _run

from serlib.analysis import mixed


def test_the_system_effect_is_the_pooled_log_odds_ratio_with_speaker_clustered_errors():
    rng = np.random.default_rng(0)
    speakers = np.repeat([f"s{i}" for i in range(10)], 40)
    skill = np.repeat(rng.uniform(0.2, 0.9, 10), 40)  # speakers differ a lot: their clips move together
    a = rng.random(400) < skill
    b = rng.random(400) < np.clip(skill + 0.1, 0, 1)
    out = mixed.gee_system_effect(a, b, speakers, speakers)
    odds = lambda c: c.mean() / (1 - c.mean())  # noqa: E731
    assert out["log_odds"] == pytest.approx(np.log(odds(b) / odds(a)), abs=1e-6)  # by hand, 2 x 2 table
    naive = np.sqrt(1 / a.sum() + 1 / (~a).sum() + 1 / b.sum() + 1 / (~b).sum())  # Woolf's clip-level SE
    assert out["se"] != pytest.approx(naive, rel=0.05)  # the speakers, not the clips, set the error
    assert out["lo"] < out["log_odds"] < out["hi"] and out["n_clusters"] == 10 and out["n_rows"] == 800
    same = mixed.gee_system_effect(a, a, speakers, speakers)
    assert same["log_odds"] == pytest.approx(0, abs=1e-9) and same["p"] == pytest.approx(1.0)


def test_the_table_sits_beside_the_permutation_verdicts(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.4, "S2": 0.9})
    row = mixed.mixed_effects_table(cfg, folder).iloc[0]
    assert row["comparison"] == "S2 vs S1" and row["odds_ratio"] > 1 and row["p_gee"] < 0.05
    assert row["verdict"] == "supported" and row["rows"] == 2 * 2 * 96 and row["speakers"] == 8


def test_too_few_speakers_give_no_error_at_all():
    rng = np.random.default_rng(1)
    speakers = np.repeat(["a", "b", "c"], 30)
    out = mixed.gee_system_effect(rng.random(90) < 0.4, rng.random(90) < 0.6, speakers, speakers)
    assert np.isfinite(out["log_odds"]) and np.isnan(out["se"]) and np.isnan(out["p"]) and np.isnan(out["lo"])
