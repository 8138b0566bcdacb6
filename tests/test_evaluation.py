"""What the report's results rest on: pooled predictions, intervals, paired tests, verdicts, run comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score

from serlib.analysis import crosscorpus, evaluation, runcompare
from serlib.common.config import Config, SystemConfig, TrainConfig
from serlib.common.facts import CLASSES
from serlib.common.runfolder import RunFolder
from serlib.data.mculp import MANIFEST_COLUMNS
from serlib.tools.cli import main as cli_main

N_SPEAKERS, CLIPS = 8, 12


def _manifest(n_speakers: int = N_SPEAKERS) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = n_speakers * CLIPS
    rows = {
        "utt_id": [f"u{i}" for i in range(n)],
        "path": [f"/x/u{i}.wav" for i in range(n)],
        "corpus": np.where(np.arange(n) < n // 2, "CREMA-D", "RAVDESS"),
        "speaker": np.repeat([f"spk{i}" for i in range(n_speakers)], CLIPS),
        "sex": np.repeat(["male", "female"] * (n_speakers // 2), CLIPS),
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


def _run(tmp_path, accuracy: dict, name="run", seeds=(0, 1), n_speakers=N_SPEAKERS) -> tuple[Config, RunFolder]:
    """A run folder whose systems predict with the given accuracy (per system), two seeds each."""
    folder = RunFolder(tmp_path / name).ensure()
    manifest = _manifest(n_speakers)
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


def _folds_run(tmp_path, accuracy: dict, seeds=(0,)) -> tuple[Config, RunFolder]:
    """``_run``'s predictions spread over two speaker folds (speakers 0-3 tested in fold 1, 4-7 in fold 2)."""
    cfg, folder = _run(tmp_path, accuracy, seeds=seeds)
    cfg.data.folds = 2
    manifest = pd.read_csv(folder.manifest)
    fold_of = {u: 1 if int(s[3:]) < N_SPEAKERS // 2 else 2 for u, s in zip(manifest["utt_id"], manifest["speaker"])}
    for system in accuracy:
        for seed in seeds:
            preds = pd.read_csv(folder.predictions(system, seed))
            for fold in (1, 2):
                folder.run_dir(system, seed, f"fold{fold}").mkdir(parents=True)
                preds[preds["utt_id"].map(fold_of) == fold].to_csv(
                    folder.predictions(system, seed, "test", f"fold{fold}"), index=False
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
    # Tables S41/S42 (per corpus, per sex) carry the folds' mean and sd beside each pooled value too
    by_sex = evaluation.accuracy_by(preds, "sex", cfg).set_index("sex")
    assert by_sex.at["all", "accuracy_folds"] == pytest.approx(per_fold.mean())
    assert by_sex.at["all", "accuracy_folds_sd"] == pytest.approx(per_fold.std(ddof=1))
    for sex, group in preds.groupby("sex"):
        folds = group.groupby("protocol")["correct"].mean()
        assert by_sex.at[sex, "accuracy_folds"] == pytest.approx(folds.mean())
        assert by_sex.at[sex, "accuracy_folds_sd"] == pytest.approx(folds.std(ddof=1))
        uar = group.groupby("protocol").apply(
            lambda f: recall_score(f["label"], f["pred"], labels=sorted(set(f["label"])), average="macro"),
            include_groups=False,
        )
        assert by_sex.at[sex, "uar_folds"] == pytest.approx(uar.mean())
        assert by_sex.at[sex, "uar_folds_sd"] == pytest.approx(uar.std(ddof=1))
    # a corpus tested by one fold alone (CREMA-D's speakers are all in fold 1) has no sd; the column stays for "all"
    by_corpus = evaluation.accuracy_by(preds, "corpus", cfg).set_index("corpus")
    assert np.isnan(by_corpus.at["CREMA-D", "uar_folds_sd"]) and by_corpus.at["all", "uar_folds_sd"] >= 0
    assert "accuracy_folds" not in evaluation.accuracy_by(
        evaluation.system_predictions(cfg, folder, "S1").assign(protocol="split"), "sex", cfg
    )


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


def _write_loco(folder: RunFolder, manifest: pd.DataFrame, main: pd.DataFrame, rng: np.random.Generator) -> None:
    """S1's leave-one-corpus-out predictions (seed 0) for CREMA-D and RAVDESS: each held-out corpus's clips with
    about half of ``main``'s predictions turned wrong."""
    for corpus in ("CREMA-D", "RAVDESS"):
        held = main[main["utt_id"].isin(manifest.loc[manifest["corpus"] == corpus, "utt_id"])].copy()
        wrong = rng.random(len(held)) < 0.5
        held.loc[wrong, "pred"] = held.loc[wrong, "label"].map(lambda c: CLASSES[(CLASSES.index(c) + 1) % 3])
        held["correct"] = held["label"] == held["pred"]
        folder.run_dir("S1", 0, f"loco-{corpus}").mkdir(parents=True)
        held.to_csv(folder.predictions("S1", 0, "test", f"loco-{corpus}"), index=False)


def test_leave_one_corpus_out_is_compared_on_the_same_clips(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.8}, seeds=(0,))
    cfg.analysis.loco_systems = ["S1"]
    main = pd.read_csv(folder.predictions("S1", 0))
    manifest = pd.read_csv(folder.manifest)
    _write_loco(folder, manifest, main, np.random.default_rng(5))  # LOCO: every held-out clip, worse than within
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


# --------------------------------------------------------------------------- the verdicts, pinned (issue 24)

FAMILY_COLUMNS = [
    "comparison", "same_as", "claim", "metric", "base", "better", "delta_pp", "delta_lo_pp", "delta_hi_pp", "unit",
    "speaker_delta_pp", "p", "test", "p_holm", "significant", "verdict", "delta_uar_pp", "p_uar", "mcnemar_b",
    "mcnemar_c", "mcnemar_p", "clips", "family_size",
]  # fmt: skip


def _same(actual, expected) -> bool:
    return actual == expected or (pd.isna(actual) and pd.isna(expected))


def _assert_row(row, expected: dict) -> None:
    for key, value in expected.items():
        assert _same(row[key], value), (key, row[key], value)


def test_a_claim_row_is_the_paired_speaker_comparison_of_its_two_systems_in_the_chosen_metric(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.5, "S2": 0.8})
    cfg.analysis.bootstrap_seed = 7  # the configured seed draws the interval, not the default one
    family = evaluation.claims_table(cfg, folder, "uar")
    assert list(family.columns) == FAMILY_COLUMNS
    a, b = (evaluation.system_predictions(cfg, folder, s) for s in ("S1", "S2"))
    table, info = evaluation.stats.compare_predictions(a, b, 300, 7)  # better - base, the base first
    uar = table.set_index("metric").loc["uar"]
    p = uar["speaker_p"]
    _assert_row(
        family.iloc[0],
        {
            "comparison": "S2 vs S1",
            "same_as": "",
            "claim": evaluation.TABLE5_CLAIMS[0].claim,
            "metric": "UAR",
            "base": uar["a"],
            "better": uar["b"],
            "delta_pp": 100 * uar["delta"],
            "delta_lo_pp": 100 * uar["lo"],
            "delta_hi_pp": 100 * uar["hi"],
            "unit": "speaker",
            "speaker_delta_pp": 100 * uar["speaker_delta"],
            "p": p,
            "test": "speaker sign-flip (exact)",
            "p_holm": p,  # a family of one: Holm leaves it
            "significant": p < 0.05,
            "verdict": evaluation.stats.claim_verdict(p, uar["speaker_delta"], 0.05),
            "delta_uar_pp": 100 * uar["delta"],
            "p_uar": p,
            "mcnemar_b": info["mcnemar_b"],
            "mcnemar_c": info["mcnemar_c"],
            "mcnemar_p": uar["mcnemar_p"],
            "clips": N_SPEAKERS * CLIPS,
            "family_size": 1,
        },
    )
    assert family.at[0, "delta_lo_pp"] < family.at[0, "delta_pp"] < family.at[0, "delta_hi_pp"]
    assert family.at[0, "significant"] and family.at[0, "verdict"] == "supported"
    accuracy = table.set_index("metric").loc["accuracy"]  # the default metric: accuracy; UAR stays beside it
    row = evaluation.claims_table(cfg, folder).iloc[0]
    _assert_row(row, {"metric": "accuracy", "delta_pp": 100 * accuracy["delta"], "p": accuracy["speaker_p"]})
    _assert_row(row, {"delta_uar_pp": 100 * uar["delta"], "p_uar": p})


def test_a_claim_at_exactly_alpha_is_not_significant(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.5, "S2": 0.8})
    p = evaluation.claims_table(cfg, folder).at[0, "p_holm"]
    cfg.analysis.alpha = float(p)  # adjusted p < alpha is the rule, strictly
    row = evaluation.claims_table(cfg, folder).iloc[0]
    assert row["p_holm"] == p and not row["significant"] and row["verdict"] == "not supported: within noise"


def test_with_more_than_16_speakers_the_sign_flip_test_is_monte_carlo(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.5, "S2": 0.8}, seeds=(0,), n_speakers=18)
    row = evaluation.claims_table(cfg, folder).iloc[0]
    assert row["test"] == "speaker sign-flip (Monte Carlo)" and row["clips"] == 18 * CLIPS


def test_three_copies_of_one_comparison_are_one_claim_and_each_table_finds_its_own(tmp_path):
    cfg, folder = _run(tmp_path, {"S4": 0.3, "S5": 0.9, "A1": 0.3, "A3": 0.3})
    _same_runs(folder, "A1", "S4")
    _same_runs(folder, "A3", "S4")
    family = evaluation.claims_table(cfg, folder)
    assert family["comparison"].tolist() == ["S5 vs S4"] and family.at[0, "same_as"] == "S5 vs A1, S5 vs A3"
    s32 = evaluation.paired_table(cfg, folder, evaluation.TABLE6_CLAIMS).set_index("comparison")
    assert list(s32.index) == ["S5 vs A1", "S5 vs A3"]
    assert (s32["p_holm"] == family.at[0, "p_holm"]).all() and (s32["family_size"] == 1).all()
    assert s32.at["S5 vs A3", "claim"] == evaluation.TABLE6_CLAIMS[2].claim
    assert list(s32.reset_index().columns) == FAMILY_COLUMNS
    # each row's "same test as" lists the test's other names, comma-separated, never its own
    assert (
        s32.at["S5 vs A1", "same_as"] == "S5 vs S4, S5 vs A3" and s32.at["S5 vs A3", "same_as"] == "S5 vs S4, S5 vs A1"
    )


def test_a_paired_table_with_nothing_to_show_is_empty(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.5, "S2": 0.8}, seeds=(0,))
    none = evaluation.paired_table(cfg, folder, evaluation.TABLE6_CLAIMS)  # the family has S2 vs S1 only
    assert isinstance(none, pd.DataFrame) and none.shape == (0, 0)
    cfg.systems = {"S2": SystemConfig()}  # no claim at all: an empty family
    assert evaluation.claims_table(cfg, folder).empty
    empty = evaluation.paired_table(cfg, folder, evaluation.TABLE5_CLAIMS)
    assert isinstance(empty, pd.DataFrame) and empty.empty
    assert evaluation.family_note(empty) == ""


def test_the_verdict_paragraph_names_the_supported_claims_and_the_others_with_their_gain():
    table = pd.DataFrame(
        {
            "claim": ["gain one", "no gain", "gain two", "a loss"],
            "verdict": ["supported", "not supported: no gain", "supported", "contradicted: significantly worse"],
            "metric": "UAR",
            "delta_pp": [5.0, -1.25, 2.0, -6.0],
            "delta_lo_pp": [1.0, -3.0, 0.5, -9.0],
            "delta_hi_pp": [9.0, 0.5, 3.0, -2.0],
        }
    )
    head = (
        "At a family-wise level of 0.05 (Holm over the paper's distinct claims; a speaker-level sign-flip test of the "
        "per-speaker difference in {}, seeds averaged; a claim needs adjusted p < 0.05 and a gain), "
    )
    assert evaluation.verdict_text(table, 0.05) == head.format("UAR") + (
        "the data support: gain one; gain two. Not supported: no gain (not supported: no gain, -1.2 pp, 95 % CI "
        "-3.0 to +0.5); a loss (contradicted: significantly worse, -6.0 pp, 95 % CI -9.0 to -2.0)."
    )
    one = table.iloc[[1]].reset_index(drop=True)
    assert evaluation.verdict_text(one, 0.05) == head.format("UAR") + (
        "the data support none of the paper's claims here. Not supported: no gain (not supported: no gain, -1.2 pp, "
        "95 % CI -3.0 to +0.5)."
    )
    supported = table.iloc[[0]].drop(columns="metric")  # a table without its metric: accuracy
    assert evaluation.verdict_text(supported, 0.05) == head.format("accuracy") + "the data support: gain one. "
    assert evaluation.verdict_text(table.iloc[:0], 0.05) == (
        "No comparison could be made (the systems are not in this run)."
    )


def test_the_family_note_and_the_interval_caption_in_words():
    table = pd.DataFrame({"family_size": [3], "unit": ["speaker"]})
    assert evaluation.family_note(table) == (
        "Holm over one family of 3 distinct claim(s) of the paper (Tables S26 and S32 together; a comparison "
        "of the same two trained systems, such as Full vs A1 = S5 vs S4, is one claim; Table S34 lists the family)."
    )
    cfg = Config()
    cfg.analysis.bootstrap_resamples = 321
    assert evaluation.interval_caption(cfg, table) == (
        "95 % intervals: percentile bootstrap over test speakers (321 resamples; a speaker's clips stay "
        "together; the statistic is the mean over seeds)"
    )
    assert evaluation.interval_caption(cfg, table.assign(unit="clip")) == (
        "95 % intervals: percentile bootstrap over test CLIPS (321 resamples): with fewer than "
        f"{evaluation.stats.MIN_SPEAKERS} test speakers a speaker interval is n/a, and a clip interval is too narrow "
        "for new speakers"
    )
    assert evaluation.fold_note(cfg) == ""
    cfg.data.folds = 5
    assert evaluation.fold_note(cfg) == (
        "Pooled over 5 speaker folds: every clip is tested once, by the fold that held its speaker out, and the "
        "value and its interval are those of the pooled predictions; 'per fold' is the mean +- sd of the folds' "
        "own values."
    )


def test_a_paired_table_is_skipped_only_without_both_systems_of_every_comparison():
    cfg = Config(systems={"S1": SystemConfig(), "S2": SystemConfig()})
    assert evaluation.paired_skip(cfg, evaluation.TABLE5_CLAIMS, "Table S26") == ""
    assert evaluation.paired_skip(cfg, evaluation.TABLE6_CLAIMS, "Table S32") == (
        "Table S32: skipped, it needs both systems of one of S5 vs A1, S5 vs A2, S5 vs A3; this profile has S1, S2."
    )


def test_the_pooled_confusion_matrix_has_true_rows_and_predicted_columns():
    negative, sad, _ = CLASSES  # no clip is truly, or predicted, the third class
    preds = pd.DataFrame(
        {"label": [negative, negative, negative, sad], "pred": [negative, negative, sad, sad], "seed": [0, 0, 1, 1]}
    )
    counts = evaluation.pooled_confusion(preds, normalize=False)
    assert counts.index.name == "true" and counts.columns.name == "predicted"
    assert list(counts.index) == list(CLASSES) and list(counts.columns) == list(CLASSES)
    assert counts.to_numpy().tolist() == [[2, 1, 0], [0, 1, 0], [0, 0, 0]]  # row = true, column = predicted
    assert counts.to_numpy().dtype.kind == "i"
    rows = evaluation.pooled_confusion(preds)
    assert all(d.kind == "f" for d in rows.dtypes)
    np.testing.assert_allclose(rows.to_numpy()[:2], [[2 / 3, 1 / 3, 0], [0, 1, 0]])  # a class of one clip: 1
    assert rows.iloc[2].isna().all()  # no true clip: no rate, not 0


def test_a_seed_score_counts_the_classes_it_never_saw():
    from serlib.modelling.metrics import classification_metrics

    negative, sad, _ = CLASSES
    part = pd.DataFrame({"label": [negative, negative, sad, sad, sad], "pred": [negative, sad, sad, sad, negative]})
    got = evaluation._seed_scores(part)
    y, p = part["label"].map(CLASSES.index), part["pred"].map(CLASSES.index)
    assert got["accuracy"] == pytest.approx(3 / 5)
    assert got["uar"] == pytest.approx(classification_metrics(y, p)["uar"]) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_scores_per_group_are_sorted_by_group_with_the_seed_spread(tmp_path):
    from serlib.modelling.metrics import classification_metrics

    cfg, folder = _run(tmp_path, {"S5": 0.7})
    preds = evaluation.system_predictions(cfg, folder, "S5")
    table = evaluation.accuracy_by(preds, "sex", cfg)
    assert list(table.columns) == [
        "sex", "clips", "speakers", "seeds", "accuracy", "accuracy_lo", "accuracy_hi", "uar", "uar_lo", "uar_hi",
        "macro_f1", "macro_f1_lo", "macro_f1_hi", "accuracy_std", "uar_std", "unit", "classes_present",
    ]  # fmt: skip
    assert preds["sex"].iloc[0] == "male" and table["sex"].tolist() == ["female", "male", "all"]  # sorted
    male = table.set_index("sex").loc["male"]
    part = preds[preds["sex"] == "male"]
    per_seed = [
        classification_metrics(s["label"].map(CLASSES.index), s["pred"].map(CLASSES.index))
        for _, s in part.groupby("seed")
    ]
    _assert_row(
        male,
        {
            "clips": N_SPEAKERS // 2 * CLIPS,
            "speakers": N_SPEAKERS // 2,
            "seeds": 2,
            "unit": "clip",  # 4 speakers: under MIN_SPEAKERS, a clip interval
            "classes_present": 3,
        },
    )
    assert male["uar_std"] == pytest.approx(np.std([m["uar"] for m in per_seed], ddof=1))
    assert male["accuracy_std"] == pytest.approx(np.std([m["accuracy"] for m in per_seed], ddof=1))
    one = evaluation.accuracy_by(preds[preds["seed"] == 0], "sex", cfg)  # one seed: no spread columns
    assert "accuracy_std" not in one and "uar_std" not in one and (one["seeds"] == 1).all()


def _random_probs(folder: RunFolder, system: str, seeds=(0, 1)) -> None:
    """Rewrite a system's test predictions with spread-out probabilities (the prediction is their argmax)."""
    for seed in seeds:
        path = folder.predictions(system, seed)
        preds = pd.read_csv(path)
        probs = np.random.default_rng(seed).dirichlet([1, 1, 1], len(preds))
        for i, c in enumerate(CLASSES):
            preds[f"prob_{c}"] = probs[:, i]
        preds["pred"] = np.array(CLASSES)[probs.argmax(axis=1)]
        preds["correct"] = preds["label"] == preds["pred"]
        preds.to_csv(path, index=False)


def test_calibration_is_of_the_analysed_system_in_ten_bins(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.3, "S5": 0.6}, seeds=(0,))
    _random_probs(folder, "S5", seeds=(0,))
    preds = evaluation.system_predictions(cfg, folder, "S5")
    probs, labels = preds[evaluation.PROB_COLUMNS].to_numpy(), preds["label"].map(CLASSES.index).to_numpy()
    ece, table = evaluation.calibration(cfg, folder)  # the analysed system, S5
    assert ece == evaluation.stats.expected_calibration_error(probs, labels, 10)
    assert ece != evaluation.stats.expected_calibration_error(probs, labels, 15)
    pd.testing.assert_frame_equal(table, evaluation.stats.reliability_table(probs, labels, 10))  # one seed: as is
    _, five = evaluation.calibration(cfg, folder, "S5", n_bins=5)
    pd.testing.assert_frame_equal(five, evaluation.stats.reliability_table(probs, labels, 5))
    assert evaluation.calibration(cfg, folder, "S1")[0] != ece


def test_scores_use_the_configured_bootstrap_and_a_balanced_uar_only_over_several_corpora(tmp_path):
    cfg, folder = _run(tmp_path, {"S5": 0.7})
    cfg.analysis.bootstrap_seed = 7
    preds = evaluation.system_predictions(cfg, folder, "S5")
    labels, pred, speakers, ids = evaluation.wide(preds)
    corpora = preds.drop_duplicates("utt_id").set_index("utt_id").loc[ids, "corpus"]
    expected = evaluation.stats.speaker_bootstrap(labels, pred, speakers, 300, 7).set_index("metric")
    balanced = evaluation.stats.balanced_uar(labels, pred, speakers, corpora, 300, 7)
    row = evaluation.scores_table(cfg, folder, ["S5"]).iloc[0]
    for metric, stem in evaluation.SHORT.items():
        _assert_row(row, {stem + s: expected.at[metric, k] for s, k in (("", "value"), ("_lo", "lo"), ("_hi", "hi"))})
    _assert_row(row, {"uar_balanced_lo": balanced["lo"], "uar_balanced_hi": balanced["hi"]})
    assert row["uar_balanced_unit"] == balanced["unit"] != ""  # what the balanced interval drew, per corpus
    manifest = pd.read_csv(folder.manifest)
    manifest.assign(corpus="CREMA-D").to_csv(folder.manifest, index=False)  # one corpus: nothing to balance
    assert "uar_balanced" not in evaluation.scores_table(cfg, folder, ["S5"])


def test_under_folds_the_tables_can_be_asked_for_some_protocols(tmp_path):
    import json

    cfg, folder = _folds_run(tmp_path, {"S4": 0.4, "S5": 0.9, "A1": 0.4}, seeds=(0, 1))
    half = N_SPEAKERS // 2 * CLIPS
    row = evaluation.scores_table(cfg, folder, ["S5"]).iloc[0]
    preds = evaluation.system_predictions(cfg, folder, "S5")
    per_fold = preds.groupby("protocol")["correct"].mean()  # each fold's accuracy over both seeds
    assert row["n_clips"] == 2 * half and row["n_seeds"] == 2 and row["acc_folds"] == pytest.approx(per_fold.mean())
    assert evaluation.scores_table(cfg, folder, ["S5"], ["fold1"]).at[0, "n_clips"] == half
    for seed in (0, 1):  # A1 is S4's runs, but only fold 1's runs say so
        for name in ("S4", "A1"):
            folder.run_config(name, seed, "fold1").write_text(json.dumps({"key": f"S4-{seed}"}))
    assert evaluation.system_identity(cfg, folder, "A1", ["fold1"]) == ("S4-0", "S4-1")
    assert evaluation.system_identity(cfg, folder, "A1") == ("A1",)  # fold 2 has no saved key
    assert evaluation.claims_table(cfg, folder)["comparison"].tolist() == ["S5 vs S4", "S5 vs A1"]
    one = evaluation.claims_table(cfg, folder, protocols=["fold1"])
    assert one["comparison"].tolist() == ["S5 vs S4"] and one.at[0, "same_as"] == "S5 vs A1"
    assert one.at[0, "clips"] == half and "delta_folds_pp" not in one  # one protocol: no per-fold delta
    s32 = evaluation.paired_table(cfg, folder, evaluation.TABLE6_CLAIMS, protocols=["fold1"]).iloc[0]
    assert s32["comparison"] == "S5 vs A1" and s32["clips"] == half and s32["p_holm"] == one.at[0, "p_holm"]
    for name in ("S4", "S5", "A1"):  # only fold 1's predictions are read: fold 2's may be missing
        for seed in (0, 1):
            folder.predictions(name, seed, "test", "fold2").unlink()
    pd.testing.assert_frame_equal(evaluation.claims_table(cfg, folder, protocols=["fold1"]), one)


def test_both_systems_of_a_comparison_are_identified_on_the_protocols_asked_for(tmp_path):
    import json

    cfg, folder = _folds_run(tmp_path, {"S1": 0.4, "S2": 0.9, "S4": 0.4, "S5": 0.9})
    for copy, of in (("S4", "S1"), ("S5", "S2")):  # a profile whose S4 is trained as S1 and S5 as S2
        for name in (copy, of):
            folder.run_config(name, 0, "fold1").write_text(json.dumps({"key": f"{of}-fold1"}))
    assert evaluation.claims_table(cfg, folder)["comparison"].tolist() == ["S2 vs S1", "S5 vs S4"]  # fold 2: no keys
    one = evaluation.claims_table(cfg, folder, protocols=["fold1"])
    assert one["comparison"].tolist() == ["S2 vs S1"] and one.at[0, "same_as"] == "S5 vs S4"


def test_a_run_without_a_saved_key_is_its_own_system(tmp_path):
    cfg, folder = _run(tmp_path, {"S4": 0.4, "A1": 0.4})
    assert evaluation.system_identity(cfg, folder, "A1") == ("A1",)  # no config.json
    _same_runs(folder, "A1", "S4")
    assert evaluation.system_identity(cfg, folder, "A1") == ("key-S4-0", "key-S4-1")
    folder.run_config("A1", 1).write_text('{"settings": {}}')  # a config.json without its key
    assert evaluation.system_identity(cfg, folder, "A1") == ("A1",)
    folder.run_config("A1", 1).write_text('["not", "a", "mapping"]')
    assert evaluation.system_identity(cfg, folder, "A1") == ("A1",)


def test_fold_deltas_compare_the_folds_on_the_clips_both_scored(tmp_path):
    cfg, folder = _folds_run(tmp_path, {"S1": 0.5, "S2": 0.8})
    a, b = (evaluation.system_predictions(cfg, folder, s) for s in ("S1", "S2"))
    b = b[~b["utt_id"].isin(a["utt_id"].iloc[::3])]  # b scored two thirds of the clips
    common = a[a["utt_id"].isin(b["utt_id"])]
    delta = 100 * (b.groupby("protocol")["correct"].mean() - common.groupby("protocol")["correct"].mean())
    got = evaluation.fold_deltas(a, b, "accuracy")
    assert got == {"delta_folds_pp": pytest.approx(delta.mean()), "delta_folds_pp_sd": pytest.approx(delta.std())}
    assert evaluation.fold_deltas(a.assign(protocol="split"), b, "accuracy") == {}  # one side not in folds


def test_table5_carries_the_validation_accuracy_of_its_protocols_beside_the_paper(tmp_path):
    cfg, folder = _run(tmp_path, {"S1": 0.5, "S5": 0.8, "S5-mask": 0.6})
    results = pd.read_csv(folder.results)
    loco = results.assign(protocol="loco-CREMA-D", val_acc=0.0)  # another protocol's runs: not Table 5's
    pd.concat([results, loco]).to_csv(folder.results, index=False)
    table = evaluation.table5_scores(cfg, folder)
    assert table.columns[:2].tolist() == ["system", "val_acc"] and table["system"].tolist() == ["S1", "S5"]
    assert table["val_acc"].tolist() == [0.5, 0.8]
    paper_s5 = evaluation.paper.TABLE5.set_index("system").loc["S5"]
    assert all(table.at[1, f"paper_{c}"] == paper_s5[c] for c in paper_s5.index)
    beyond = evaluation.table5_scores(cfg, folder, ["S5", "S5-mask"]).set_index("system")
    assert beyond.at["S5-mask", "val_acc"] == 0.6 and beyond.filter(like="paper_").loc["S5-mask"].isna().all()


def test_epoch_cost_of_the_analysed_system_and_its_variants():
    cfg = Config(systems={n: SystemConfig() for n in ("S1", "S5", "S5-mask", "S5x", "S4-mask")})
    rows = [
        ("S5-mask", 0, 2.0, 10, 0.6), ("S5-mask", 1, 4.0, 12, 0.7), ("S1", 0, 9.0, 5, 0.3), ("S5", 0, 1.0, 8, 0.5),
        ("S5", 1, 2.0, 9, 0.55), ("S5x", 0, 7.0, 7, 0.1), ("S4-mask", 0, 7.0, 7, 0.1),
    ]  # fmt: skip
    results = pd.DataFrame(rows, columns=["system", "seed", "seconds_per_epoch", "stopped_epoch", "test_uar"])
    expected = pd.DataFrame(
        {
            "system": ["S5-mask", "S5"],  # the order of results.csv
            "seconds_per_epoch": [3.0, 1.5],
            "epochs": [11.0, 8.5],
            "test_uar": [0.65, 0.525],
        }
    )
    pd.testing.assert_frame_equal(evaluation.epoch_cost(cfg, results), expected)
    cfg.analysis.primary_system = "S1"
    assert evaluation.epoch_cost(cfg, results)["system"].tolist() == ["S1"]


def _beyond_expected(cfg, folder, name, reference, preds, description) -> dict:
    reference_preds = evaluation.system_predictions(cfg, folder, reference)
    a = cfg.analysis
    table, _ = evaluation.stats.compare_predictions(reference_preds, preds, a.bootstrap_resamples, a.bootstrap_seed)
    uar = table.set_index("metric").loc["uar"]
    return {
        **evaluation.score_row(name, evaluation.score(preds, cfg).set_index("metric")),
        "description": description,
        "vs": reference,
        "delta_uar_pp": 100 * uar["delta"],
        "delta_uar_lo_pp": 100 * uar["lo"],
        "delta_uar_hi_pp": 100 * uar["hi"],
        "speaker_delta_uar_pp": 100 * uar["speaker_delta"],
        "p": uar["speaker_p"],
        "mcnemar_p": uar["mcnemar_p"],
    }


def test_rows_beyond_the_paper_are_paired_with_their_reference_and_holm_adjusted_together(tmp_path, monkeypatch):
    from serlib.modelling import runbaselines

    accuracy = {"S1": 0.45, "S5": 0.7, "S5-mask": 0.9, "dur": 0.4, "dur_nl": 0.42}
    cfg, folder = _run(tmp_path, accuracy)
    del cfg.systems["dur"], cfg.systems["dur_nl"]  # trained here only to stand for the baselines' predictions
    cfg.systems["S5-mask"].description = "S5 with its padding masked"
    cfg.analysis.feature_baselines = False
    cfg.analysis.bootstrap_seed = 3
    fake = {runbaselines.DURATION: "dur", runbaselines.DURATION_NL: "dur_nl"}
    baseline = {b: evaluation.system_predictions(cfg, folder, s, seeds=[0]) for b, s in fake.items()}

    def baseline_predictions(cfg_, folder_, name):
        assert cfg_ is cfg and folder_ is folder  # the run's own
        return baseline[name]

    monkeypatch.setattr(evaluation, "baseline_predictions", baseline_predictions)
    table = evaluation.beyond_table(cfg, folder)
    assert table["system"].tolist() == ["S5-mask", runbaselines.DURATION, runbaselines.DURATION_NL]
    assert table.columns[-2:].tolist() == ["p_holm", "significant"]
    mask = evaluation.system_predictions(cfg, folder, "S5-mask")
    expected = [
        _beyond_expected(cfg, folder, "S5-mask", "S5", mask, "S5 with its padding masked"),
        *(
            _beyond_expected(cfg, folder, b, "S1", baseline[b], runbaselines.DESCRIPTIONS[b])
            for b in (runbaselines.DURATION, runbaselines.DURATION_NL)
        ),
    ]
    for k, row in enumerate(expected):
        assert list(table.columns[: len(row)]) == list(row)
        _assert_row(table.iloc[k], row)
    adjusted, _ = evaluation.stats.holm([row["p"] for row in expected])
    assert table["p_holm"].tolist() == adjusted.tolist() and table["significant"].tolist() == [True, False, False]
    assert table["n_seeds"].tolist() == [2, 1, 1]  # a baseline is one seed
    cfg.analysis.alpha = float(adjusted[0])  # significant means adjusted p < alpha, as in the claims table
    assert evaluation.beyond_table(cfg, folder)["significant"].tolist() == [False, False, False]


def test_a_row_beyond_the_paper_with_nothing_to_compare_with_is_scored_alone(tmp_path):
    cfg, folder = _run(tmp_path, {"S5": 0.7, "S5-mask": 0.9, "R1": 0.5})
    cfg.analysis.primary_system = "R1"  # R1 is the analysed system: nothing to compare it with (no S1)
    cfg.systems["R1"].description = "a new network"
    table = evaluation.beyond_table(cfg, folder)
    assert table["system"].tolist() == ["S5-mask", "R1"] and table.at[0, "vs"] == "S5"
    r1 = evaluation.score_row(
        "R1", evaluation.score(evaluation.system_predictions(cfg, folder, "R1"), cfg).set_index("metric")
    )
    _assert_row(table.iloc[1], {**r1, "description": "a new network", "vs": np.nan, "p": np.nan})
    cfg.systems = {"S5-mask": SystemConfig(description="masked"), "R1": SystemConfig()}  # no S5, S1 or analysed
    cfg.analysis.primary_system = "S9"
    alone = evaluation.beyond_table(cfg, folder)
    assert alone["system"].tolist() == ["S5-mask", "R1"] and "vs" not in alone
    assert alone["description"].tolist() == ["masked", ""]
    _assert_row(alone.iloc[1], r1)


def test_a_row_beyond_the_paper_under_folds_has_its_per_fold_delta(tmp_path):
    cfg, folder = _folds_run(tmp_path, {"S5": 0.6, "S5-mask": 0.9})
    cfg.analysis.feature_baselines = False
    row = evaluation.beyond_table(cfg, folder).iloc[0]
    a, b = (evaluation.system_predictions(cfg, folder, s) for s in ("S5", "S5-mask"))
    expected = evaluation.fold_deltas(a, b, "uar", "delta_uar_folds_pp")
    assert set(expected) == {"delta_uar_folds_pp", "delta_uar_folds_pp_sd"}
    _assert_row(row, expected)
    assert row["uar_folds"] == pytest.approx(evaluation.fold_values(b)["uar"].mean())
