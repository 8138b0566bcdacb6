"""What else the models could be learning: the sentence-disjoint comparison on the same clips, and how easily the
features tell the corpus (hand-built run folders: no training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, recall_score
from test_evaluation import CLIPS, N_SPEAKERS, _run

from serlib.analysis import confounds, stats
from serlib.common.facts import CLASSES
from serlib.modelling.baselines import corpus_probe
from serlib.report.tables import format_frame


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
    note = confounds.sentence_note(table.reset_index())
    assert "no training clip said them" in note and "over test CLIPS" in note  # the unit the table carries
    assert "cannot go below 2/2^2 = 0.5" in note and "cannot be small" in note  # 2 speakers: 2 of 4 patterns
    assert "a rise cannot come from the sentences" in note and "not for the seed" in note
    headers, rows, _ = format_frame(table.reset_index())  # seen / unseen in %, as the Δ beside them is in points
    seen_header = next(h for h in headers if h.startswith("main model"))
    assert seen_header.endswith("(%)") and rows[1][headers.index(seen_header)] == f"{100 * uar(seen):.1f}"
    cfg.analysis.sentence_systems = []
    assert "skipped" in confounds.sentence_skip(cfg) and confounds.sentence_table(cfg, folder).empty


def test_the_corpus_alone_scores_its_training_majority_class(tmp_path):
    cfg, folder, manifest = _with_sentences(tmp_path)
    speaker = manifest["speaker"].str[3:].astype(int)
    manifest["corpus"] = np.where(speaker % 2 == 0, "CREMA-D", "EmoDB")  # each corpus has train and test speakers
    manifest.loc[(manifest["corpus"] == "EmoDB") & (manifest["split"] == "train"), "label"] = CLASSES[1]
    manifest.to_csv(folder.manifest, index=False)
    prior = confounds.corpus_prior_score(cfg, folder)
    train = manifest[manifest["split"] == "train"]
    guess = {c: train[train["corpus"] == c]["label"].value_counts().idxmax() for c in ("CREMA-D", "EmoDB")}
    assert prior["guess"] == guess and guess["EmoDB"] == CLASSES[1]
    test = manifest[manifest["split"] == "test"]
    by_hand = recall_score(test["label"], test["corpus"].map(guess), labels=sorted(set(test["label"])), average="macro")
    assert prior["uar"] == pytest.approx(by_hand) and prior["uar_lo"] <= prior["uar"] <= prior["uar_hi"]
    note = confounds.corpus_prior_note(prior)
    assert f"UAR {100 * by_hand:.1f} %" in note and f"EmoDB: {CLASSES[1]}" in note and "33.3 %" in note
    manifest.assign(corpus="CREMA-D").to_csv(folder.manifest, index=False)  # one corpus: nothing to give away
    assert confounds.corpus_prior_score(cfg, folder) == {} and confounds.corpus_prior_note({}) == ""


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
    assert row["balanced_acc_chance"] == 0.5 and row["n_speakers"] == N_SPEAKERS and row["recall_RAVDESS"] == 1.0
    assert row["majority_share"] == pytest.approx(probe["corpus"].value_counts(normalize=True).max())
    assert row["balanced_acc_lo"] <= row["balanced_acc"] <= row["balanced_acc_hi"]
    assert row["unit"] == "clip"  # 8 test speakers, but 4 per corpus: the stratified draw resamples clips
    headers = format_frame(confounds.corpus_identity_table(cfg, folder))[0]  # both references in %, like the rest
    assert "majority corpus share (accuracy's reference) (%)" in headers
    assert "1/k (balanced accuracy's reference) (%)" in headers
    monkeypatch.setattr(confounds, "baselines_changes", lambda cfg, folder: ["manifest changed"])
    with pytest.raises(FileNotFoundError, match="ensure_baselines"):
        confounds.corpus_identity_table(cfg, folder)


def _corpus_clips():
    """Three corpora: A with 6 speakers, B with 5, C with ONE (as EmoDB at the paper's scale); the probe is often
    wrong on C."""
    rng = np.random.default_rng(3)
    speakers = np.r_[np.repeat([f"a{i}" for i in range(6)], 10), np.repeat([f"b{i}" for i in range(5)], 8), ["c0"] * 9]
    y = np.r_[np.zeros(60, int), np.ones(40, int), np.full(9, 2)]
    pred = np.where(rng.random(len(y)) < np.where(y == 2, 0.4, 0.8), y, (y + 1) % 3)
    return y, pred, speakers


def test_the_corpus_bootstrap_keeps_every_corpus_in_every_resample():
    y, pred, speakers = _corpus_clips()
    names = ["A", "B", "C"]
    out = confounds.corpus_bootstrap(y, pred, speakers, names, n_resamples=200, seed=5)
    assert out["uar"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert out["accuracy"] == pytest.approx((y == pred).mean())
    assert out["unit"] == "speaker; clip in C (< 5 test speakers)"  # C's one speaker: its clips are drawn
    # by hand, the same draws: within each corpus its units (A's and B's speakers, C's clips) with replacement
    units = {k: np.unique(speakers[y == k]) if k < 2 else np.where(y == 2)[0] for k in range(3)}
    draws = {k: stats.resample_weights(len(units[k]), 200, 5 + 7919 * k) for k in range(3)}
    uar, acc = [], []
    for r in range(200):
        rows = []
        for k in range(3):
            for unit, times in zip(units[k], draws[k][r]):
                chosen = np.where(speakers == unit)[0] if k < 2 else np.array([unit])
                rows.append(np.repeat(chosen, int(times)))
        rows = np.concatenate(rows)
        assert set(y[rows]) == {0, 1, 2}  # no resample loses a corpus
        uar.append(balanced_accuracy_score(y[rows], pred[rows]))
        acc.append((y[rows] == pred[rows]).mean())
    assert (out["uar_lo"], out["uar_hi"]) == pytest.approx(tuple(np.percentile(uar, [2.5, 97.5])))
    assert (out["accuracy_lo"], out["accuracy_hi"]) == pytest.approx(tuple(np.percentile(acc, [2.5, 97.5])))
    keep = ~np.isin(speakers, ["a0", "a1", "b0"])  # A and B down to 4 speakers each, C one: clips everywhere
    assert confounds.corpus_bootstrap(y[keep], pred[keep], speakers[keep], names, 50)["unit"] == "clip"
    full = confounds.corpus_bootstrap(y[y < 2], pred[y < 2], speakers[y < 2], names, 50)
    assert full["unit"] == "speaker"


@pytest.mark.parametrize(
    "unit, says, never",
    [
        ("clip", "over test CLIPS", "over test speakers"),
        ("speaker", "over test speakers", "CLIPS"),
        ("speaker; clip in EmoDB (< 5 test speakers)", "(speaker; clip in EmoDB", "over test speakers"),
    ],
)
def test_the_corpus_identity_caption_follows_the_tables_unit(unit, says, never):
    table = pd.DataFrame([{"unit": unit, "n_speakers": 4, "n_clips": 76, "corpora": 3}])
    caption = confounds.corpus_identity_caption(table, 300)
    assert says in caption and never not in caption and "majority corpus's share" in caption


@pytest.mark.slow
def test_the_smoke_report_shows_each_intervals_unit_and_reference(smoke_run):
    """Tables S35, S36, S37 and S49 as the executed notebooks wrote them (tests/conftest.py's shared smoke run)."""
    tables, report = smoke_run.tables, smoke_run.report.read_text()
    identity = pd.read_csv(tables / "table_s35_corpus_identity.csv").iloc[0]
    assert 0 < identity["majority_share"] < 1 and identity["balanced_acc_chance"] == 1 / identity["corpora"]
    clip = identity["unit"] == "clip"
    s35 = report[report.index('id="table-s35"') :][:6000]  # its caption and table
    assert ("over test CLIPS" in s35) == clip and ("over test speakers" in s35) != clip
    assert "majority corpus share" in s35 and "1/k" in s35
    assert "Knowing only the corpus" in s35  # how much of the label the corpus alone gives away
    assert "p_permutation_holm" in pd.read_csv(tables / "table_s37_mixed_effects.csv")
    assert "permutation p (Holm)" in report[report.index('id="table-s37"') :][:6000]
    temperature = pd.read_csv(tables / "table_s49_temperature.csv")
    speakers = int(temperature["n_speakers"].iloc[0])
    assert set(temperature["unit"]) == {"speaker" if speakers >= stats.MIN_SPEAKERS else "clip"}
    assert "ece_change_lo" in temperature and "PAIRED" in report[report.index('id="table-s49"') :][:6000]
