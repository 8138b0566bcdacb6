"""What the report's results rest on: pooled predictions, intervals, paired tests, verdicts, run comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serlib.analysis import crosscorpus, evaluation, runcompare
from serlib.common.config import Config, SystemConfig, TrainConfig
from serlib.common.facts import CLASSES
from serlib.common.runfolder import RunFolder
from serlib.data.mculp import MANIFEST_COLUMNS
from serlib.tools.cli import main as cli_main

N_SPEAKERS, CLIPS = 8, 12


def _manifest() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = N_SPEAKERS * CLIPS
    rows = {
        "utt_id": [f"u{i}" for i in range(n)],
        "path": [f"/x/u{i}.wav" for i in range(n)],
        "corpus": np.where(np.arange(n) < n // 2, "CREMA-D", "RAVDESS"),
        "speaker": np.repeat([f"spk{i}" for i in range(N_SPEAKERS)], CLIPS),
        "sex": np.repeat(["male", "female"] * (N_SPEAKERS // 2), CLIPS),
        "emotion_code": "X",
        "emotion": "anger",
        "sentence": "s",
        "duration_s": rng.uniform(1, 4, n),
        "sample_rate": 16000,
        "channels": 1,
        "label": np.array(CLASSES)[rng.integers(0, 3, n)],
        "split": "test",
    }
    return pd.DataFrame(rows)[list(MANIFEST_COLUMNS)]


def _run(tmp_path, accuracy: dict, name="run", seeds=(0, 1)) -> tuple[Config, RunFolder]:
    """A run folder whose systems predict with the given accuracy (per system), two seeds each."""
    folder = RunFolder(tmp_path / name).ensure()
    manifest = _manifest()
    manifest.to_csv(folder.manifest, index=False)
    rows = []
    for k, (system, acc) in enumerate(accuracy.items()):
        for seed in seeds:
            rng = np.random.default_rng(100 * k + seed)
            y = manifest["label"].map(CLASSES.index).to_numpy()
            pred = np.where(rng.random(len(y)) < acc, y, (y + 1) % 3)
            probs = np.full((len(y), 3), 0.1)
            probs[np.arange(len(y)), pred] = 0.8
            table = pd.DataFrame(
                {"utt_id": manifest["utt_id"], "label": manifest["label"], "pred": np.array(CLASSES)[pred]}
            )
            for i, c in enumerate(CLASSES):
                table[f"prob_{c}"] = probs[:, i]
            table["correct"] = table["label"] == table["pred"]
            folder.run_dir(system, seed).mkdir(parents=True, exist_ok=True)
            table.to_csv(folder.predictions(system, seed), index=False)
            rows.append(
                {
                    "protocol": "split",
                    "system": system,
                    "seed": seed,
                    "val_acc": acc,
                    "test_acc": table["correct"].mean(),
                    "seconds_per_epoch": 1.0,
                    "stopped_epoch": 3,
                    "test_uar": 0.5,
                    "test_macro_f1": 0.5,
                }
            )
    pd.DataFrame(rows).to_csv(folder.results, index=False)
    cfg = Config(train=TrainConfig(seeds=list(seeds)), systems={s: SystemConfig() for s in accuracy})
    cfg.analysis.bootstrap_resamples = 300
    return cfg, folder


def test_scores_rest_on_every_seed_and_speaker(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.5, "S5": 0.9})
    table = evaluation.scores_table(cfg, folder, ["S1", "S5"]).set_index("system")
    preds = evaluation.system_predictions(cfg, folder, "S5")
    assert len(preds) == 2 * N_SPEAKERS * CLIPS and set(preds["seed"]) == {0, 1}
    assert table.at["S5", "acc"] == pytest.approx(preds["correct"].mean())  # mean of the two seeds' accuracies
    assert table.at["S5", "unit"] == "speaker" and table.at["S5", "n_speakers"] == N_SPEAKERS
    assert table.at["S5", "acc_lo"] < table.at["S5", "acc"] < table.at["S5", "acc_hi"]
    assert "over test speakers" in evaluation.interval_caption(cfg, table.reset_index())


def test_paired_table_marks_a_real_gain_and_not_a_null_one(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.4, "S2": 0.9, "S3": 0.9, "S4": 0.9, "S5": 0.9})
    table = evaluation.paired_table(cfg, folder, evaluation.TABLE5_CLAIMS).set_index("comparison")
    assert table.at["S2 vs S1", "verdict"] == "supported" and table.at["S2 vs S1", "delta_lo_pp"] > 0
    assert table.loc["S5 vs S4", "verdict"].startswith("not supported")
    assert (table["p_holm"] >= table["p"]).all()  # Holm never lowers a p-value
    text = evaluation.verdict_text(table.reset_index(), 0.05)
    assert "wav2vec2 features beat log-Mel" in text.split("Not supported")[0]


def test_pooled_confusion_sums_the_seeds(tmp_path):
    cfg, folder = _run(tmp_path, {"S5": 0.7})
    preds = evaluation.system_predictions(cfg, folder, "S5")
    counts = evaluation.pooled_confusion(preds, normalize=False)
    assert counts.to_numpy().sum() == len(preds) == 2 * N_SPEAKERS * CLIPS
    rows = evaluation.pooled_confusion(preds)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)


def test_accuracy_by_group_gives_the_spread_over_seeds(tmp_path):
    cfg, folder = _run(tmp_path, {"S5": 0.7})
    table = evaluation.accuracy_by(evaluation.system_predictions(cfg, folder, "S5"), "corpus").set_index("corpus")
    assert list(table.index) == ["CREMA-D", "RAVDESS", "all"] and (table["seeds"] == 2).all()
    assert table.at["all", "accuracy_std"] > 0


def test_calibration_of_overconfident_predictions(tmp_path):
    cfg, folder = _run(tmp_path, {"S5": 0.5})
    ece, table = evaluation.calibration(cfg, folder, "S5")
    acc = evaluation.system_predictions(cfg, folder, "S5")["correct"].mean()
    assert ece == pytest.approx(abs(0.8 - acc))  # every clip at confidence 0.8: one bin
    assert table["clips"].sum() == N_SPEAKERS * CLIPS  # clips, not clips x seeds (two seeds here)


def test_compare_runs_and_its_command(tmp_path, capsys):
    _, folder_a = _run(tmp_path, {"S5": 0.5}, "a")
    _, folder_b = _run(tmp_path, {"S5": 0.95}, "b")
    table = runcompare.compare_runs(folder_a, folder_b, n_resamples=200)
    acc = table[table["metric"] == "accuracy"].iloc[0]
    assert acc["delta_pp"] > 0 and acc["delta_lo_pp"] > 0 and acc["clips"] == N_SPEAKERS * CLIPS
    html = tmp_path / "compare.html"
    assert cli_main(["compare", str(folder_a.root), str(folder_b.root), "--html", str(html), "--resamples", "100"]) == 0
    assert "S5" in capsys.readouterr().out and "serlib compare" in html.read_text()
    assert cli_main(["compare", str(folder_a.root), str(folder_b.root), "--system", "S9"]) == 2
    assert "not trained in both runs" in capsys.readouterr().err


def _folds_run(tmp_path, accuracy: dict) -> tuple[Config, RunFolder]:
    """``_run``'s predictions spread over two speaker folds (speakers 0-3 tested in fold 1, 4-7 in fold 2)."""
    cfg, folder = _run(tmp_path, accuracy, seeds=(0,))
    cfg.data.folds = 2
    manifest = pd.read_csv(folder.manifest)
    fold_of = {u: 1 if int(s[3:]) < N_SPEAKERS // 2 else 2 for u, s in zip(manifest["utt_id"], manifest["speaker"])}
    for system in accuracy:
        preds = pd.read_csv(folder.predictions(system, 0))
        for fold in (1, 2):
            folder.run_dir(system, 0, f"fold{fold}").mkdir(parents=True)
            preds[preds["utt_id"].map(fold_of) == fold].to_csv(
                folder.predictions(system, 0, "test", f"fold{fold}"), index=False
            )
    return cfg, folder


def test_under_folds_a_score_is_the_pooled_value_with_the_folds_mean_and_sd_beside_it(tmp_path):
    cfg, folder = _folds_run(tmp_path, {"S1": 0.5, "S2": 0.8})
    preds = evaluation.system_predictions(cfg, folder, "S2")
    assert sorted(preds["utt_id"]) == sorted(pd.read_csv(folder.manifest)["utt_id"])  # every clip once
    row = evaluation.scores_table(cfg, folder, ["S2"]).iloc[0]
    per_fold = preds.groupby("protocol")["correct"].mean()  # by hand: each fold's accuracy
    assert row["acc"] == pytest.approx(preds["correct"].mean())  # pooled, not the mean of the folds
    assert row["acc_folds"] == pytest.approx(per_fold.mean())
    assert row["acc_folds_sd"] == pytest.approx(per_fold.std(ddof=1)) and row["n_folds"] == 2
    paired = evaluation.paired_table(cfg, folder, evaluation.TABLE5_CLAIMS[:1]).iloc[0]
    base = evaluation.system_predictions(cfg, folder, "S1").groupby("protocol")["correct"].mean()
    delta = 100 * (per_fold - base)
    assert paired["delta_folds_pp"] == pytest.approx(delta.mean())
    assert paired["delta_folds_pp_sd"] == pytest.approx(delta.std(ddof=1))
    assert "acc_folds" not in evaluation.scores_table(*_run(tmp_path, {"S1": 0.5}, name="split"), ["S1"])  # one split


def test_a_skipped_table_names_what_it_needs_and_what_the_profile_has():
    from serlib.analysis import notes

    cfg = Config(systems={"S1": SystemConfig(), "R1": SystemConfig()})
    cfg.analysis.primary_system = "R1"
    assert notes.missing_systems(cfg, "Table 6", all_of=["S5"], any_of=["A1", "A2"]) == (
        "Table 6: skipped, it needs S5 and at least one of A1, A2; this profile has S1, R1 (analysed: R1)."
    )
    assert notes.missing_systems(cfg, "Table 5", any_of=["S1", "S2"]) == ""
    assert evaluation.paired_skip(cfg, evaluation.TABLE5_CLAIMS, "Table S26").startswith(
        "Table S26: skipped, it needs both systems of one of S2 vs S1, "
    )
    cfg.data.demo = None
    cfg.data.emodb = "/corpora/EmoDB"
    assert crosscorpus.loco_skip(cfg).endswith("this profile reads only EmoDB.")
    cfg.data.crema_d = "/corpora/CREMA-D"
    assert crosscorpus.loco_skip(cfg) == ""


def test_a_row_beyond_the_paper_is_compared_with_its_base_then_the_analysed_system_then_s1():
    cfg = Config(systems={name: SystemConfig() for name in ("S1", "S5", "S5-mask", "R1")})
    assert [evaluation.reference_of(cfg, n) for n in ("S5-mask", "R1")] == ["S5", "S5"]
    cfg.analysis.primary_system = "R1"  # the analysed system is itself beyond the paper: against the log-Mel baseline
    assert [evaluation.reference_of(cfg, n) for n in ("S5-mask", "R1")] == ["S5", "S1"]
    alone = Config(systems={"R1": SystemConfig()})
    alone.analysis.primary_system = "R1"
    assert evaluation.reference_of(alone, "R1") is None  # nothing to compare with: scored without a paired test


def _same_runs(folder: RunFolder, copy: str, of: str, seeds=(0, 1)) -> None:
    """``copy``'s runs become ``of``'s (same predictions, same saved run key), as training copies S4 to A1."""
    import json
    import shutil

    for seed in seeds:
        shutil.copy(folder.predictions(of, seed), folder.predictions(copy, seed))
        for name in (copy, of):
            folder.run_config(name, seed).write_text(json.dumps({"key": f"key-{of}-{seed}"}))


def test_one_family_of_distinct_claims_with_speaker_level_verdicts(tmp_path):
    from statsmodels.stats.multitest import multipletests

    accuracy = {"S1": 0.4, "S2": 0.9, "S3": 0.85, "S4": 0.3, "S5": 0.9, "A1": 0.3, "A2": 0.85}
    cfg, folder = _run(tmp_path, accuracy)
    _same_runs(folder, "A1", "S4")
    _same_runs(folder, "A2", "S3")
    family = evaluation.claims_table(cfg, folder).set_index("comparison")
    # S5 vs A1 is S5 vs S4, S5 vs A2 is S5 vs S3: 4 distinct claims (S2-S1, S3-S2, S5-S3, S5-S4), not 6
    assert list(family.index) == ["S2 vs S1", "S3 vs S2", "S5 vs S3", "S5 vs S4"]
    assert family.at["S5 vs S4", "same_as"] == "S5 vs A1" and (family["family_size"] == 4).all()
    preds = {s: evaluation.system_predictions(cfg, folder, s) for s in ("S1", "S2")}
    labels, pred_a, speakers, _ = evaluation.wide(preds["S1"])
    _, pred_b, _, _ = evaluation.wide(preds["S2"])
    by_hand = evaluation.stats.speaker_signflip_test(labels, pred_a, pred_b, speakers, "accuracy")
    assert family.at["S2 vs S1", "p"] == pytest.approx(by_hand["p"])  # the verdict's p is the speaker test's
    assert family.at["S2 vs S1", "speaker_delta_pp"] == pytest.approx(100 * by_hand["mean_speaker_delta"])
    np.testing.assert_allclose(family["p_holm"], multipletests(family["p"], method="holm")[1])
    assert family.at["S2 vs S1", "verdict"] == "supported"
    assert family.at["S5 vs S4", "verdict"] == "supported"
    assert family.at["S3 vs S2", "verdict"].startswith("not supported")  # 0.85 vs 0.9: a loss, not a gain
    # Tables S26 and S32 show their rows of the one family: a copy has the same test, adjusted p and verdict
    s26 = evaluation.paired_table(cfg, folder, evaluation.TABLE5_CLAIMS).set_index("comparison")
    s32 = evaluation.paired_table(cfg, folder, evaluation.TABLE6_CLAIMS).set_index("comparison")
    assert s32.at["S5 vs A1", "p_holm"] == s26.at["S5 vs S4", "p_holm"] == family.at["S5 vs S4", "p_holm"]
    assert s32.at["S5 vs A1", "claim"].startswith("Tri-Aug helps (Full vs A1")
    # "same test as" names the other tables' name of the test, never the row's own
    assert s32.at["S5 vs A1", "same_as"] == "S5 vs S4" and s26.at["S5 vs S4", "same_as"] == "S5 vs A1"
    assert s26.at["S2 vs S1", "same_as"] == ""
    assert "one family of 4 distinct claim(s)" in evaluation.family_note(s32.reset_index())


def test_a_significant_loss_contradicts_the_claim(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.95, "S2": 0.2})
    row = evaluation.claims_table(cfg, folder).iloc[0]
    assert row["comparison"] == "S2 vs S1" and row["speaker_delta_pp"] < 0 and row["p_holm"] < 0.05
    assert row["verdict"] == "contradicted: significantly worse"


def test_the_same_system_shows_the_same_numbers_in_every_table(tmp_path):
    from serlib.analysis import results as result_tables

    cfg, folder = _run(tmp_path, {"S4": 0.6, "S5": 0.8, "A1": 0.6})
    cfg.analysis.primary_system = "S5"
    reference = evaluation.scores_table(cfg, folder, ["S5"]).iloc[0]
    table5 = evaluation.table5_scores(cfg, folder).set_index("system").loc["S5"]
    runs = pd.read_csv(folder.results)
    table6 = result_tables.table6(cfg, runs, evaluation.scores_table(cfg, folder, ["S5", "A1"])).iloc[0]
    table8 = result_tables.table8(cfg, evaluation.scores_table(cfg, folder, ["S5"])).iloc[-1]
    n = int(reference["n_seeds"])
    assert table8["study"].endswith(f"S5, {n} seed{'' if n == 1 else 's'})") and "(s)" not in table8["study"]
    by_corpus = evaluation.accuracy_by(evaluation.system_predictions(cfg, folder, "S5"), "corpus", cfg)
    overall = by_corpus.set_index("corpus").loc["all"]
    claim = evaluation.claims_table(cfg, folder).set_index("comparison").loc["S5 vs S4"]
    for stem, name in (("acc", "accuracy"), ("uar", "uar"), ("macro_f1", "macro_f1")):
        for suffix in ("", "_lo", "_hi"):
            assert table5[stem + suffix] == reference[stem + suffix]
            assert overall[name + suffix] == reference[stem + suffix]
            assert table8[("reported_acc" if stem == "acc" else stem) + suffix] == reference[stem + suffix]
            assert table6[("test_acc" if stem == "acc" else stem) + suffix] == reference[stem + suffix]
    assert claim["better"] == reference["acc"]
    # a per-corpus row scores that corpus's clips with the same definitions
    crema = evaluation.system_predictions(cfg, folder, "S5").query("corpus == 'CREMA-D'")
    assert by_corpus.set_index("corpus").at["CREMA-D", "accuracy"] == pytest.approx(crema["correct"].mean())


def test_temperature_is_fitted_on_validation_and_keeps_the_accuracy(tmp_path):
    from serlib.analysis import calibrate

    cfg, folder = _run(tmp_path, {"S5": 0.5})
    for seed in (0, 1):
        val = pd.read_csv(folder.predictions("S5", seed))
        val.to_csv(folder.predictions("S5", seed, "val"), index=False)  # as overconfident on validation as on test
    table = evaluation.temperature_table(cfg, folder, "S5").set_index("probabilities")
    val = evaluation.system_predictions(cfg, folder, "S5", split="val").query("seed == 0")
    fitted = calibrate.fit_temperature(val[evaluation.PROB_COLUMNS].to_numpy(), val["label"].map(CLASSES.index))
    assert fitted > 1  # confidence 0.8 at ~50 % accuracy: the temperature softens
    assert (
        table.at["temperature-scaled", "temperature_min"] <= fitted <= table.at["temperature-scaled", "temperature_max"]
    )
    assert table.at["temperature-scaled", "ece"] < table.at["as trained", "ece"]
    assert table.at["temperature-scaled", "accuracy"] == table.at["as trained", "accuracy"]
    assert table.at["as trained", "ece"] == pytest.approx(evaluation.calibration(cfg, folder, "S5")[0])
    assert (table["clips"] == N_SPEAKERS * CLIPS).all() and (table["seeds"] == 2).all()
    assert (table["ece_lo"] <= table["ece"]).all() and (table["ece"] <= table["ece_hi"]).all()


def test_scores_carry_the_corpus_balanced_uar(tmp_path):
    from serlib.modelling.metrics import classification_metrics

    cfg, folder = _run(tmp_path, {"S5": 0.7})
    row = evaluation.scores_table(cfg, folder, ["S5"]).iloc[0]
    preds = evaluation.system_predictions(cfg, folder, "S5")
    per_corpus = [
        np.mean(
            [
                classification_metrics(p["label"].map(CLASSES.index), p["pred"].map(CLASSES.index))["uar"]
                for _, p in part.groupby("seed")
            ]
        )
        for _, part in preds.groupby("corpus")
    ]
    assert row["uar_balanced"] == pytest.approx(np.mean(per_corpus))
    assert row["uar_balanced_lo"] <= row["uar_balanced"] <= row["uar_balanced_hi"]


def test_leave_one_corpus_out_is_compared_on_the_same_clips(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.8}, seeds=(0,))
    cfg.analysis.loco_systems = ["S1"]
    main = pd.read_csv(folder.predictions("S1", 0))
    manifest = pd.read_csv(folder.manifest)
    rng = np.random.default_rng(5)
    for corpus in ("CREMA-D", "RAVDESS"):  # LOCO tests every clip of the held-out corpus, worse than within
        held = main[main["utt_id"].isin(manifest.loc[manifest["corpus"] == corpus, "utt_id"])].copy()
        wrong = rng.random(len(held)) < 0.5
        held.loc[wrong, "pred"] = held.loc[wrong, "label"].map(lambda c: CLASSES[(CLASSES.index(c) + 1) % 3])
        held["correct"] = held["label"] == held["pred"]
        folder.run_dir("S1", 0, f"loco-{corpus}").mkdir(parents=True)
        held.to_csv(folder.predictions("S1", 0, "test", f"loco-{corpus}"), index=False)
    main.iloc[: len(main) // 4 * 3].to_csv(folder.predictions("S1", 0), index=False)  # the split tested 3/4 clips
    table = crosscorpus.loco_table(cfg, folder).set_index("held_out")
    loco = evaluation.system_predictions(cfg, folder, "S1", ["loco-CREMA-D"], [0])
    within = evaluation.system_predictions(cfg, folder, "S1").query("corpus == 'CREMA-D'")
    assert table.at["CREMA-D", "n_clips"] == len(loco) == N_SPEAKERS * CLIPS // 2  # all of the corpus
    assert table.at["CREMA-D", "same_clips"] == len(within) == len(loco) and table.at["CREMA-D", "all_clips"]
    assert table.at["RAVDESS", "same_clips"] == N_SPEAKERS * CLIPS // 4 and not table.at["RAVDESS", "all_clips"]
    ravdess = evaluation.system_predictions(cfg, folder, "S1").query("corpus == 'RAVDESS'")
    same = evaluation.system_predictions(cfg, folder, "S1", ["loco-RAVDESS"], [0]).query("utt_id in @ravdess.utt_id")
    uar = lambda p: p.groupby("label")["correct"].mean().mean()  # noqa: E731
    assert table.at["RAVDESS", "within_uar"] == pytest.approx(uar(ravdess))
    assert table.at["RAVDESS", "loco_uar_same"] == pytest.approx(uar(same))
    assert table.at["RAVDESS", "delta_uar_pp"] == pytest.approx(100 * (uar(same) - uar(ravdess)))
    assert "on the same clips" in crosscorpus.loco_note(table.reset_index())
