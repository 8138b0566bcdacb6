"""The mixed-effects sensitivity check: GEE with speaker clusters, against hand cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import t as student_t
from test_evaluation import _run

from serlib.analysis import mixed
from serlib.report.tables import format_frame


def _mancl_derouen_se(a, b, speakers):
    """The bias-reduced (Mancl-DeRouen 2001) sandwich SE of the system coefficient, by hand: a logit GEE with an
    independence working correlation and one binary regressor is the 2 x 2 table's fit (mu = each system's rate);
    each speaker's residuals are inflated by (I - H_i)^-1, H_i = W_i X_i (X'WX)^-1 X_i'."""
    y = np.r_[a, b].astype(float)
    x = np.c_[np.ones(len(y)), np.r_[np.zeros(len(a)), np.ones(len(b))]]
    mu = np.where(x[:, 1] == 1, b.mean(), a.mean())
    w = mu * (1 - mu)
    bread = np.linalg.inv(x.T @ (w[:, None] * x))
    groups = np.r_[speakers, speakers]
    meat, plain = np.zeros((2, 2)), np.zeros((2, 2))
    for g in np.unique(groups):
        i = groups == g
        h = (w[i][:, None] * x[i]) @ bread @ x[i].T
        r = y[i] - mu[i]
        adjusted = np.linalg.solve(np.eye(i.sum()) - h, r)
        meat += np.outer(x[i].T @ adjusted, x[i].T @ adjusted)
        plain += np.outer(x[i].T @ r, x[i].T @ r)
    return np.sqrt((bread @ meat @ bread)[1, 1]), np.sqrt((bread @ plain @ bread)[1, 1])


def test_the_system_effect_is_the_pooled_log_odds_ratio_with_speaker_clustered_errors():
    rng = np.random.default_rng(0)
    speakers = np.repeat([f"s{i}" for i in range(10)], 40)
    skill = np.repeat(rng.uniform(0.2, 0.9, 10), 40)  # speakers differ a lot: their clips move together
    a = rng.random(400) < skill
    b = rng.random(400) < np.clip(skill + 0.1, 0, 1)
    out = mixed.gee_system_effect(a, b, speakers, speakers)
    odds = lambda c: c.mean() / (1 - c.mean())  # noqa: E731
    assert out["log_odds"] == pytest.approx(np.log(odds(b) / odds(a)), abs=1e-6)  # by hand, 2 x 2 table
    bias_reduced, sandwich = _mancl_derouen_se(a, b, speakers)
    assert out["se"] == pytest.approx(bias_reduced, rel=1e-6) and out["se"] > sandwich  # few clusters: inflated
    z = out["log_odds"] / out["se"]
    assert out["df"] == 9 and out["p"] == pytest.approx(2 * student_t.sf(abs(z), 9))  # t with G - 1 df, not normal
    half = student_t.ppf(0.975, 9) * out["se"]
    assert (out["lo"], out["hi"]) == pytest.approx((out["log_odds"] - half, out["log_odds"] + half))
    assert out["n_clusters"] == 10 and out["n_rows"] == 800
    same = mixed.gee_system_effect(a, a, speakers, speakers)
    assert same["log_odds"] == pytest.approx(0, abs=1e-9) and same["p"] == pytest.approx(1.0)


def test_the_table_sits_beside_the_permutation_verdicts(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.4, "S2": 0.9})
    table = mixed.mixed_effects_table(cfg, folder)
    row = table.iloc[0]
    assert row["comparison"] == "S2 vs S1" and row["odds_ratio"] > 1 and row["p_gee"] < 0.05
    assert row["permutation_verdict"] == "supported" and row["rows"] == 2 * 2 * 96 and row["speakers"] == 8
    assert "p_holm" not in table and 0 <= row["p_permutation_holm"] < 0.05
    headers, cells, _ = format_frame(table)  # the adjusted p is the permutation test's, and the header says so
    assert "permutation p (Holm)" in headers and not any(h.startswith("p (Holm)") for h in headers)
    shown = cells[0][headers.index("permutation p (Holm)")]  # formatted as a p-value, not as a count
    assert shown == "< 0.001" or (shown.startswith("0.") and len(shown) == 5)


def test_too_few_speakers_give_no_error_at_all():
    rng = np.random.default_rng(1)
    speakers = np.repeat(["a", "b", "c"], 30)
    out = mixed.gee_system_effect(rng.random(90) < 0.4, rng.random(90) < 0.6, speakers, speakers)
    assert np.isfinite(out["log_odds"]) and np.isnan(out["se"]) and np.isnan(out["p"]) and np.isnan(out["lo"])
