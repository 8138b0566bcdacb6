"""serlib.analysis.training: Table S20 against the paper's protocol, the notes, Figs. 2-3 data, Table S23."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

from serlib.analysis import training
from serlib.common import paper
from serlib.common.config import Config, TrainConfig, load_config
from serlib.common.runfolder import RunFolder
from serlib.modelling import models
from serlib.modelling.train import make_optimizer
from serlib.report import plots

SMOKE = Path(__file__).resolve().parents[1] / "parameters" / "smoke.yaml"
STATED = ("batch_size", "max_epochs", "early_stop_patience", "plateau_patience", "plateau_factor", "grad_clip")


@pytest.mark.parametrize("key", STATED)
def test_training_defaults_are_the_papers(key):
    assert getattr(TrainConfig(), key) == paper.TRAINING[key]


def test_the_optimizer_uses_the_papers_betas():
    optimizer = make_optimizer(torch.nn.Linear(2, 2), lr=1e-3, weight_decay=0.0)
    assert optimizer.param_groups[0]["betas"] == paper.TRAINING["adam_betas"]


def _runs(lr=1e-3, weight_decay=1e-2) -> pd.DataFrame:
    return pd.DataFrame({"system": ["S5"], "seed": [0], "lr": [lr], "weight_decay": [weight_decay]})


def _sources(table: pd.DataFrame) -> dict[str, str]:
    return dict(zip(table["setting"], table["source"]))


def test_settings_at_the_defaults_are_the_papers_or_chosen():
    cfg = Config()
    cfg.train.device = "cpu"
    table = training.settings_table(cfg, _runs())
    assert list(table.columns) == ["setting", "value", "source", "paper", "default"]
    assert _sources(table) == {
        "learning rate": "CHOSEN",
        "weight decay": "CHOSEN",
        "batch size": "paper",
        "max epochs": "paper",
        "early-stop patience": "paper",
        "plateau patience / factor": "paper",
        "LR floor": "CHOSEN",
        "gradient clip": "paper",
        "seeds": "CHOSEN",
        "device": "this machine (train.device: cpu)",
        "kernels": "CHOSEN",
    }
    rows = table.set_index("setting")
    assert rows.loc["plateau patience / factor"].tolist() == ["10 / 0.5", "paper", "10 / 0.5", "10 / 0.5"]
    assert rows.loc["max epochs", "paper"] == "80" and rows.loc["gradient clip", "paper"] == "2.0"
    assert rows.loc["seeds", "value"] == "0, 1, 2" and rows.loc["device", "value"] == "cpu"
    assert rows.loc["LR floor", "paper"] == paper.TRAINING_UNSTATED["min_lr"]
    assert table.map(lambda v: isinstance(v, str)).all().all()


def test_settings_a_profile_changes_say_so():
    cfg = Config()
    cfg.train.device = "cpu"
    cfg.train.max_epochs, cfg.train.plateau_factor, cfg.train.lr, cfg.train.seeds = 5, 0.25, 3e-4, [7]
    table = training.settings_table(cfg, _runs(lr=3e-4))
    sources = _sources(table)
    assert sources["max epochs"] == "this profile" and sources["plateau patience / factor"] == "this profile"
    assert sources["learning rate"] == "CHOSEN (this profile)" and sources["seeds"] == "CHOSEN (this profile)"
    assert sources["early-stop patience"] == "paper"
    rows = table.set_index("setting")
    assert rows.loc["kernels", "value"] == "deterministic, fp32"
    assert rows.loc["learning rate", "value"] == "0.0003" and rows.loc["learning rate", "default"] == "0.001"
    assert rows.loc["max epochs"].tolist() == ["5", "this profile", "80", "80"]


def test_settings_selected_on_validation_show_the_trained_values():
    cfg = Config()
    cfg.train.device, cfg.train.select.enabled = "cpu", True
    table = training.settings_table(cfg, _runs(lr=3e-3, weight_decay=1e-4)).set_index("setting")
    assert table.loc["learning rate", ["value", "source"]].tolist() == ["0.003", "CHOSEN on validation"]
    assert table.loc["weight decay", ["value", "source"]].tolist() == ["0.0001", "CHOSEN on validation"]
    per_fold = pd.concat([_runs(lr=1e-3), _runs(lr=3e-3)], ignore_index=True)  # a grid per system and fold
    table = training.settings_table(cfg, per_fold).set_index("setting")
    assert table.loc["learning rate", "value"] == "per system and fold: 0.001 to 0.003 (Table S21)"


def test_schedule_note_only_off_the_papers_schedule():
    cfg = Config()
    assert training.paper_schedule(cfg) and training.schedule_note(cfg) == ""
    cfg.train.early_stop_patience = 3
    assert not training.paper_schedule(cfg)
    assert "early stop 3" in training.schedule_note(cfg) and "instead of 80 / 30 / 10" in training.schedule_note(cfg)


@pytest.mark.parametrize(
    "seeds, std, phrase",
    [([0], True, "one seed"), ([0, 1, 2], True, "mean and std over 3 seeds"), ([0, 1], False, "mean over 2 seeds")],
)
def test_seeds_phrase(seeds, std, phrase):
    cfg = Config()
    cfg.train.seeds = seeds
    assert training.seeds_phrase(cfg, std=std) == phrase


def test_table4_notes_quote_the_papers_counts_and_the_narrowed_systems():
    cfg = load_config(SMOKE)
    cfg.systems["S2"].model.width_scale = 1.0
    table4 = pd.DataFrame({"system": ["S1", "S2", "S5"], "params_m_paper_widths": [0.1, 0.2, 8.6666]})
    notes = training.table4_notes(cfg, table4)
    assert "has 8.67 M parameters, not the 3.9 M the paper states" in notes["params"]
    assert "differs from 0.4 / 0.6 M" in notes["params"]
    assert "(model.width_scale S1 0.25, S5 0.05)" in notes["widths"]
    for name in ("S1", "S5"):
        cfg.systems[name].model.width_scale = 1.0
    assert training.table4_notes(cfg, table4[table4["system"] != "S5"]) == {"params": "", "widths": ""}


def test_networks_at_the_papers_widths_and_as_trained():
    cfg = load_config(SMOKE)
    cfg.features.frames = 20
    summary = training.paper_network_summary(cfg)
    assert summary["params"].sum() == models.paper_width_params(cfg.systems["S5"].model, "wav2vec2")
    assert summary["output_shape"].iloc[0] == "384 x 20"
    runs = pd.DataFrame({"system": ["S2", "S5"], "in_channels": [32, 32], "frames": [20, 20]})
    trained = training.trained_network_summary(cfg, runs)
    expected = models.count_params(models.build_model(cfg.systems["S5"].model, 32))
    assert trained["params"].sum() == expected and trained["output_shape"].iloc[0] == "20 x 20"
    cfg.systems["S5"].model.width_scale = 1.0
    assert training.trained_network_summary(cfg, runs) is None


def _history(lrs: list[float]) -> pd.DataFrame:
    epochs = range(1, len(lrs) + 1)
    return pd.DataFrame({"epoch": list(epochs), "train_acc": [0.5] * len(lrs), "val_acc": [0.4] * len(lrs), "lr": lrs})


def test_the_halvings_read_as_words():
    assert training._halvings_phrase([31, 42, 50]) == "LR halved at epochs 31, 42 and 50"


def test_lr_reductions_are_the_first_epochs_at_a_lower_rate():
    assert training.lr_reductions(_history([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])) == [3, 5]
    assert training.lr_reductions(_history([1e-3, 1e-3, 2e-3])) == []


def test_learning_curves_and_their_landmarks(tmp_path):
    cfg = load_config(SMOKE)
    cfg.train.seeds = [1, 0]
    folder = RunFolder(tmp_path)
    for system, lrs in (("S5", [1e-3, 1e-3, 5e-4]), ("S2", [1e-3, 1e-3])):
        for seed in (0, 1):
            folder.run_dir(system, seed).mkdir(parents=True)
            _history(lrs).to_csv(folder.history(system, seed), index=False)
    runs = pd.DataFrame(
        {
            "protocol": "split",
            "system": ["S2", "S2", "S5", "S5", "S1"],
            "seed": [0, 1, 0, 1, 1],
            "best_epoch": [1, 2, 2, 3, 1],
        }
    )
    curves = training.learning_curves(cfg, folder, runs, shown=("S5", "S3", "S2"))  # S3 was not trained
    assert [(c.title.split(":")[0], c.best_epoch, len(c.history)) for c in curves] == [("S5", 3, 3), ("S2", 2, 2)]
    assert curves[0].title.endswith("(seed 1)")  # the first seed of train.seeds
    assert training.curve_landmarks(cfg, folder) == {
        "system": "S5",
        "lr_reductions": "[3]",
        "lr_halvings": "LR halved at epoch 3",
        "stopped_epoch": 3,
        "max_epochs": cfg.train.max_epochs,
    }
    assert training.fold_curves(cfg, folder, runs) is None  # the paper's split: Fig. 3 is the whole story
    assert training.curve_landmarks(cfg, folder, "S2")["lr_reductions"] == "none"
    assert training.curve_landmarks(cfg, folder, "S2")["lr_halvings"] == "LR never halved"  # not "at epochs none"
    fig = plots.plot_learning_curve_panels(curves, max_epochs=80)
    assert [ax.get_title() for ax in fig.axes] == [c.title for c in curves]
    plt.close(fig)


def test_under_folds_fig3_draws_the_first_fold_and_a_table_sums_up_every_fold(tmp_path):
    cfg = load_config(SMOKE)
    cfg.data.folds, cfg.train.seeds, cfg.analysis.primary_system = 2, [0], "S1"
    folder = RunFolder(tmp_path)
    rows = []
    for fold, lrs in ((1, [1e-3, 5e-4, 5e-4]), (2, [1e-3, 1e-3])):
        for system in ("S1", "S2"):
            folder.run_dir(system, 0, f"fold{fold}").mkdir(parents=True)
            _history(lrs).to_csv(folder.history(system, 0, f"fold{fold}"), index=False)
            rows.append(
                {
                    "protocol": f"fold{fold}",
                    "system": system,
                    "seed": 0,
                    "best_epoch": fold,
                    "val_acc": 0.4,
                    "test_acc": 0.3 + fold / 10,
                }
            )
    runs = pd.DataFrame(rows)
    curves = training.learning_curves(cfg, folder, runs)  # the analysed system, then S2
    assert [(c.title.split(":")[0], c.best_epoch, len(c.history)) for c in curves] == [("S1", 1, 3), ("S2", 1, 3)]
    assert curves[0].title.endswith("(seed 0, fold 1)")
    assert training.curve_landmarks(cfg, folder)["lr_reductions"] == "[2]"
    table = training.fold_curves(cfg, folder, runs)
    assert table[["system", "fold", "best_epoch", "stopped_epoch", "lr_halvings"]].values.tolist() == [
        ["S1", 1, 1, 3, "2"],
        ["S1", 2, 2, 2, "none"],
        ["S2", 1, 1, 3, "2"],
        ["S2", 2, 2, 2, "none"],
    ]
    assert table["test_acc"].tolist() == pytest.approx([0.4, 0.5, 0.4, 0.5])


def test_cost_table_means_over_seeds_in_system_order():
    runs = pd.DataFrame(
        {
            "system": ["S5", "S1", "S5"],
            "seed": [0, 0, 1],
            "params": [100, 10, 100],
            "seconds_per_epoch": [1.0, 0.5, 3.0],
            "stopped_epoch": [10, 4, 20],
            "device": ["cpu"] * 3,
            "threads": [1, 1, 1],
            "status": ["trained", "reused", "trained"],
        }
    )
    table = training.cost_table(runs)
    assert list(table.columns) == ["system", "params", "seconds_per_epoch", "epochs", "device", "threads", "status"]
    assert table.to_dict("list") == {
        "system": ["S5", "S1"],
        "params": [100, 10],
        "seconds_per_epoch": [2.0, 0.5],
        "epochs": [15.0, 4.0],
        "device": ["cpu", "cpu"],
        "threads": [1, 1],
        "status": ["trained", "reused"],
    }


def test_the_fast_kernels_are_named_in_the_settings():
    cfg = Config()
    cfg.train.device, cfg.train.deterministic, cfg.train.amp = "cpu", False, True
    rows = training.settings_table(cfg, _runs()).set_index("setting")
    assert rows.loc["kernels", "value"] == "fast (cuDNN autotuning, not bit-reproducible), bf16 autocast"
    assert rows.loc["kernels", "source"] == "CHOSEN (this profile)"
