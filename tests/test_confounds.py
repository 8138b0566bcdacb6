"""What else the models could be learning: the sentence-disjoint comparison on the same clips, and how easily the
features tell the corpus (hand-built run folders: no training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score
from test_evaluation import CLIPS, N_SPEAKERS, _run

from serlib.analysis import confounds
from serlib.common.facts import CLASSES
from serlib.modelling.baselines import corpus_probe


def _with_sentences(tmp_path):
    """``_run``'s folder (S5, one seed) with three sentences per speaker and a train / val / test split."""
    cfg, folder = _run(tmp_path, {"S5": 0.8}, seeds=(0,))
    cfg.analysis.primary_system = "S5"
    manifest = pd.read_csv(folder.manifest)
    manifest["sentence"] = np.array(["s0", "s1", "s2"])[np.arange(len(manifest)) % 3]
    number = manifest["speaker"].str[3:].astype(int)
    manifest["split"] = np.where(number < 4, "train", np.where(number < 6, "val", "test"))
    manifest.to_csv(folder.manifest, index=False)
    return cfg, folder, manifest


def test_unseen_sentences_are_compared_with_the_main_model_on_the_same_clips(tmp_path):
    cfg, folder, manifest = _with_sentences(tmp_path)
    held = manifest[(manifest["split"] == "test") & (manifest["sentence"] == "s0")]  # s0: every third of s0-s2
    main = pd.read_csv(folder.predictions("S5", 0))
    unseen = main[main["utt_id"].isin(held["utt_id"])].copy()
    unseen["pred"] = CLASSES[0]  # the sentence-disjoint model says "negative" to everything
    unseen["correct"] = unseen["label"] == unseen["pred"]
    folder.run_dir("S5", 0, "unseen-sentences").mkdir(parents=True)
    unseen.to_csv(folder.predictions("S5", 0, "test", "unseen-sentences"), index=False)
    table = confounds.sentence_table(cfg, folder).set_index("metric")
    assert table.at["UAR", "clips"] == len(held) == 2 * CLIPS // 3
    seen = main[main["utt_id"].isin(held["utt_id"])]
    uar = lambda p: p.groupby("label")["correct"].mean().mean()  # noqa: E731
    assert table.at["UAR", "seen"] == pytest.approx(uar(seen))
    assert table.at["UAR", "unseen"] == pytest.approx(uar(unseen)) == pytest.approx(1 / 3)
    assert table.at["accuracy", "delta_pp"] == pytest.approx(100 * (unseen["correct"].mean() - seen["correct"].mean()))
    assert table.at["UAR", "unit"] == "clip"  # two test speakers: a clip interval, labelled so
    assert "s0 (1 of 3)" in confounds.held_out_note(folder)
    assert "when no training clip did" in confounds.sentence_note(table.reset_index())
    cfg.analysis.sentence_systems = []
    assert "skipped" in confounds.sentence_skip(cfg) and confounds.sentence_table(cfg, folder).empty


def test_the_corpus_probe_and_its_table(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    corpora = {s: np.array(["CREMA-D", "RAVDESS"])[rng.integers(0, 2, 200)] for s in ("train", "val", "test")}
    x = {s: rng.normal(0, 1, (200, 4)) + 1.5 * (c == "RAVDESS")[:, None] for s, c in corpora.items()}
    preds, info = corpus_probe(x, corpora, [f"u{i}" for i in range(200)])
    assert info["val_balanced_acc"] > 0.8 and (preds["corpus"] == corpora["test"]).all()
    cfg, folder = _run(tmp_path, {"S5": 0.8}, seeds=(0,))
    manifest = pd.read_csv(folder.manifest)
    guess = np.where(rng.random(len(manifest)) < 0.9, manifest["corpus"], "RAVDESS")
    probe = pd.DataFrame({"utt_id": manifest["utt_id"], "corpus": manifest["corpus"], "pred_corpus": guess})
    written = tmp_path / "probe.csv"
    probe.to_csv(written, index=False)
    monkeypatch.setattr(confounds, "baselines_changes", lambda cfg, folder: [])
    monkeypatch.setattr(confounds, "corpus_probe_features", lambda cfg: "wav2vec2 mean + linear")
    monkeypatch.setattr(confounds, "corpus_probe_file", lambda folder, protocol: written)
    row = confounds.corpus_identity_table(cfg, folder).iloc[0]
    assert row["balanced_acc"] == pytest.approx(balanced_accuracy_score(probe["corpus"], probe["pred_corpus"]))
    assert row["accuracy"] == pytest.approx((probe["corpus"] == probe["pred_corpus"]).mean())
    assert row["chance"] == 0.5 and row["n_speakers"] == N_SPEAKERS and row["recall_RAVDESS"] == 1.0
    assert row["balanced_acc_lo"] <= row["balanced_acc"] <= row["balanced_acc_hi"] and row["unit"] == "speaker"
    monkeypatch.setattr(confounds, "baselines_changes", lambda cfg, folder: ["manifest changed"])
    with pytest.raises(FileNotFoundError, match="ensure_baselines"):
        confounds.corpus_identity_table(cfg, folder)
