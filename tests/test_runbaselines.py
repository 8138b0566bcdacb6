"""A run's baselines are trained by a pipeline stage (serlib.modelling.runbaselines), written beside the runs, reused
while their inputs stand, and only read by the scoring (serlib.analysis.evaluation): scoring never trains."""

from __future__ import annotations

import pandas as pd
import pytest
from test_evaluation import N_SPEAKERS, _run

from serlib.analysis import evaluation
from serlib.modelling import runbaselines as rb
from serlib.modelling.baselines import duration_baseline, duration_nonlinear_baseline


@pytest.fixture()
def run(tmp_path):
    """``test_evaluation._run``'s folder (S1 and S5 predictions), its speakers split into train, val and test."""
    cfg, folder = _run(tmp_path, {"S1": 0.6, "S5": 0.8})
    manifest = pd.read_csv(folder.manifest)
    number = manifest["speaker"].str[3:].astype(int)
    manifest["split"] = [
        "train" if n < N_SPEAKERS // 2 else "val" if n < 3 * N_SPEAKERS // 4 else "test" for n in number
    ]
    manifest.to_csv(folder.manifest, index=False)
    cfg.analysis.feature_baselines = False  # the duration baseline only: no audio, no features here
    return cfg, folder, manifest


def test_scoring_refuses_baselines_nobody_trained_and_reads_those_the_stage_wrote(run):
    cfg, folder, manifest = run
    assert rb.baseline_references(cfg) == {rb.DURATION: "S1", rb.DURATION_NL: "S1"}
    with pytest.raises(FileNotFoundError, match="ensure_baselines"):
        evaluation.baseline_predictions(cfg, folder, rb.DURATION)  # scoring does not train it
    record = rb.write_baselines(cfg, folder)
    direct, info = duration_baseline(manifest)  # trained here, independently of the stage
    window_s = cfg.features.frames * cfg.features.logmel.hop_ms / 1000
    _, trees = duration_nonlinear_baseline(manifest, window_s)
    assert record["chosen"] == {
        rb.DURATION: {"split": {"C": info["C"]}},
        rb.DURATION_NL: {"split": {"depth": trees["depth"]}},
    }
    preds = evaluation.baseline_predictions(cfg, folder, rb.DURATION)
    assert preds["utt_id"].tolist() == direct["utt_id"].tolist() and preds["pred"].tolist() == direct["pred"].tolist()
    assert set(preds["speaker"]) == set(manifest.loc[manifest["split"] == "test", "speaker"])  # the manifest joined
    beyond = evaluation.beyond_table(cfg, folder).set_index("system")
    assert beyond.loc[rb.DURATION, "vs"] == "S1" and beyond.loc[rb.DURATION, "n_clips"] == len(direct)
    assert beyond.loc[rb.DURATION, "acc"] == pytest.approx(direct["correct"].mean())


def test_the_stage_reuses_its_predictions_until_an_input_changes(run, caplog):
    cfg, folder, manifest = run
    rb.write_baselines(cfg, folder)
    written = rb.baseline_file(folder, rb.DURATION, "split")
    first = written.stat().st_mtime_ns
    rb.write_baselines(cfg, folder)
    assert written.stat().st_mtime_ns == first  # the same inputs: nothing trained again
    manifest.iloc[:-1].to_csv(folder.manifest, index=False)  # one clip fewer: another manifest
    with pytest.raises(FileNotFoundError, match="manifest changed"):
        evaluation.baseline_predictions(cfg, folder, rb.DURATION)
    with caplog.at_level("INFO", logger="serlib"):
        rb.write_baselines(cfg, folder)
    assert "training the baselines again: manifest changed" in caplog.text
    test_clips = (manifest.iloc[:-1]["split"] == "test").sum()
    assert len(evaluation.baseline_predictions(cfg, folder, rb.DURATION)) == test_clips
