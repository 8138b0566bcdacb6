"""The training engine on synthetic tensors (no feature stage needed): it learns, the scheduler and
early stopping act when they should, checkpoints reload, seeds reproduce, unchanged runs are reused."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from serlib.common import runtime
from serlib.common.config import AugmentConfig, Config, ModelConfig, SystemConfig, TrainConfig
from serlib.common.facts import CLASSES
from serlib.common.runfolder import RunFolder
from serlib.modelling import models, systems, train
from serlib.modelling.augment import TriAug
from serlib.modelling.inputs import SplitData
from serlib.modelling.metrics import classification_metrics

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


CHANNELS, FRAMES = 12, 48


def _task(n, seed):
    """A learnable 3-class task: class c raises the mean of channel block c, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, CHANNELS, FRAMES, generator=g)
    for c in range(3):
        x[y == c, 4 * c : 4 * c + 4] += 0.8
    return x, y


def _small(**kw):
    values = {"batch_size": 32, "max_epochs": 6, "lr": 3e-3, "weight_decay": 1e-2} | kw
    return TrainConfig(**values)


def fit_tensors(model, tx, ty, vx, vy, train_cfg, augment=None, train_lengths=None, val_lengths=None, **choices):
    """``train.fit`` on tensors in memory: their ``SplitData`` and the ``TrainSettings`` of ``train_cfg`` with
    ``choices`` (seed, progress, trim, name, ...)."""
    data = SplitData.from_tensors((tx, ty, train_lengths), (vx, vy, val_lengths))
    return train.fit(model, data, train.TrainSettings.from_config(train_cfg, **choices), augment)


def test_fit_learns_well_above_chance():
    (tx, ty), (vx, vy) = _task(240, 0), _task(120, 1)
    runtime.set_seed(0)
    model = models.build_model(ModelConfig(width_scale=0.1), CHANNELS)
    result = fit_tensors(model, tx, ty, vx, vy, _small(), augment=TriAug.from_config(AugmentConfig()), progress=False)
    assert result.best_val_acc > 0.8  # chance is 1/3
    assert list(result.history.columns)[:6] == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]
    _, acc = train.evaluate(model, vx, vy)
    assert acc == pytest.approx(result.best_val_acc)  # the model holds the best checkpoint


class _CopyingTriAug(TriAug):
    """Tri-Aug that ignores ``inplace`` and always augments a copy (the engine before the in-place path)."""

    def forward(self, x, generator=None, inplace=False):
        return super().forward(x, generator, inplace=False)


def test_inplace_augment_trains_bit_identically_and_keeps_train_x():
    """fit augments each freshly gathered batch in place: same weights as augmenting a copy, and
    the training tensor itself is never modified."""
    (tx, ty), (vx, vy) = _task(96, 0), _task(48, 1)
    before = tx.clone()
    states = []
    for augment in (TriAug.from_config(AugmentConfig()), _CopyingTriAug.from_config(AugmentConfig())):
        runtime.set_seed(0)
        model = models.build_model(ModelConfig(width_scale=0.1), CHANNELS)
        result = fit_tensors(model, tx, ty, vx, vy, _small(max_epochs=2), augment=augment, seed=3, progress=False)
        assert torch.equal(tx, before)
        states.append(result.best_state)
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_shallow_learns():
    (tx, ty), (vx, vy) = _task(240, 0), _task(120, 1)
    model = models.build_model(ModelConfig(arch="shallow", width_scale=0.25), CHANNELS)
    assert fit_tensors(model, tx, ty, vx, vy, _small(), progress=False).best_val_acc > 0.8


class _Constant(nn.Module):
    """Predictions that never change, whatever the optimiser does: validation accuracy is flat."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.register_buffer("logits", torch.tensor([1.0, 0.0, 0.0]))

    def forward(self, x):
        return self.logits.expand(len(x), 3) + 0 * self.w


def test_scheduler_and_early_stopping_fire():
    (tx, ty), (vx, vy) = _task(64, 0), _task(30, 1)
    cfg = TrainConfig(
        batch_size=32, max_epochs=50, lr=0.1, plateau_patience=2, plateau_factor=0.5, early_stop_patience=8, min_lr=0.03
    )
    result = fit_tensors(_Constant(), tx, ty, vx, vy, cfg, progress=False)
    assert result.best_epoch == 1 and result.stopped_epoch == 9  # 8 epochs without improvement
    # Plateau: epochs 2-4 bad -> halve; epochs 5-7 bad -> halve again but not below the floor.
    assert result.history["lr"].tolist() == pytest.approx([0.1] * 4 + [0.05] * 3 + [0.03] * 2)


def test_same_seed_same_run_and_different_seed_differs():
    (tx, ty), (vx, vy) = _task(96, 0), _task(48, 1)
    runs = []
    for seed in (0, 0, 1):
        runtime.set_seed(seed)
        model = models.build_model(ModelConfig(width_scale=0.1), CHANNELS)
        runs.append(fit_tensors(model, tx, ty, vx, vy, _small(max_epochs=3), TriAug(), seed=seed, progress=False))
    cols = ["train_loss", "train_acc", "val_loss", "val_acc"]
    pd.testing.assert_frame_equal(runs[0].history[cols], runs[1].history[cols])
    assert all(torch.equal(runs[0].best_state[k], runs[1].best_state[k]) for k in runs[0].best_state)
    assert not runs[0].history["train_loss"].equals(runs[2].history["train_loss"])


def _split_data():
    parts = {"train": _task(120, 0), "val": _task(60, 1), "test": _task(60, 2)}
    return SplitData(
        input="wav2vec2",
        x={s: p[0] for s, p in parts.items()},
        y={s: p[1] for s, p in parts.items()},
        utt_ids={s: [f"DEMO/{s}_{i}" for i in range(len(p[1]))] for s, p in parts.items()},
        fingerprint="synthetic",
    )


def _config(max_epochs=4):
    small = ModelConfig(width_scale=0.1)
    systems = {
        "S1": SystemConfig(input="wav2vec2", model=ModelConfig(arch="shallow", width_scale=0.25), augment=False),
        "S4": SystemConfig(model=small, augment=False, description="no Tri-Aug"),
        "A1": SystemConfig(model=small, augment=False, description="ablation: no Tri-Aug"),
    }
    return Config(train=TrainConfig(batch_size=32, max_epochs=max_epochs, seeds=[0], device="cpu"), systems=systems)


@pytest.fixture
def synthetic_run(tmp_path, monkeypatch):
    calls = []

    def fake_load(cfg, folder, features, device, protocol="split"):
        calls.append(features[0].input)
        return _split_data()

    monkeypatch.setattr(systems, "load_split_data", fake_load)
    return RunFolder(tmp_path).ensure(), calls


def test_train_systems_outputs_reuse_and_dedup(synthetic_run):
    folder, calls = synthetic_run
    cfg = _config()
    results = systems.train_systems(cfg, folder, progress=False)
    assert calls == ["wav2vec2"]  # features loaded once per input, not once per system
    assert list(results["system"]) == ["S1", "S4", "A1"]
    assert list(results["status"]) == ["trained", "trained", "same as S4"]
    assert results.loc[1, "test_acc"] == results.loc[2, "test_acc"]
    out = folder.models / "S4" / "seed0"
    for name in (
        "checkpoint.pt",
        "history.csv",
        "config.json",
        "metrics.json",
        "predictions_val.csv",
        "predictions_test.csv",
    ):
        assert (out / name).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"val", "test", "best_epoch", "stopped_epoch", "params", "seconds_per_epoch"} <= set(metrics)
    preds = pd.read_csv(out / "predictions_test.csv")
    assert list(preds.columns) == [
        "utt_id",
        "label",
        "pred",
        "prob_negative",
        "prob_sad_fear",
        "prob_pos_neutral",
        "correct",
    ]
    assert np.allclose(preds.filter(like="prob_").sum(1), 1.0, atol=1e-5)
    # Test metrics are those of the saved predictions (the best-validation checkpoint).
    truth = preds["label"].map(CLASSES.index)
    assert metrics["test"]["accuracy"] == pytest.approx(
        classification_metrics(truth, preds["pred"].map(CLASSES.index))["accuracy"]
    )
    assert (folder.models / "results.csv").is_file()
    # Second call: nothing changed, nothing retrained.
    again = systems.train_systems(cfg, folder, progress=False)
    assert set(again["status"]) == {"reused"}
    # A changed training parameter retrains.
    cfg.train.lr = 5e-4
    assert set(systems.train_systems(cfg, folder, systems=["S1"], progress=False)["status"]) == {"trained"}


def test_reloaded_checkpoint_reproduces_predictions(synthetic_run):
    folder, _ = synthetic_run
    systems.train_systems(_config(max_epochs=3), folder, systems=["S4"], progress=False)
    out = folder.models / "S4" / "seed0"
    model = train.load_checkpoint(out / "checkpoint.pt")
    probs = train.predict_proba(model, _split_data().x["test"]).numpy()
    saved = pd.read_csv(out / "predictions_test.csv").filter(like="prob_").to_numpy()
    assert np.allclose(probs, saved, atol=1e-5)


def test_select_lr_wd_uses_validation_and_caches(synthetic_run):
    folder, _ = synthetic_run
    cfg = _config()
    cfg.systems["S5"] = SystemConfig(model=ModelConfig(width_scale=0.1), augment=True)
    cfg.train.select.lrs, cfg.train.select.weight_decays, cfg.train.select.max_epochs = [1e-5, 3e-3], [1e-2], 3
    chosen = systems.select_lr_wd(cfg, folder, _split_data(), progress=False)
    grid = chosen["grid"]
    assert len(grid) == 2 and grid["chosen"].sum() == 1
    assert chosen["lr"] == grid.loc[grid["best_val_acc"].idxmax(), "lr"]
    assert (folder.models / "_select" / "selection.csv").is_file()
    cfg.train.select.enabled = True
    results = systems.train_systems(cfg, folder, systems=["S5"], progress=False)
    assert results.loc[0, "lr"] == chosen["lr"]


def test_summarise_mean_and_std():
    rows = pd.DataFrame(
        {
            "system": ["S5", "S5", "S1"],
            "seed": [0, 1, 0],
            "val_acc": [0.6, 0.7, 0.4],
            "test_acc": [0.5, 0.7, 0.3],
            "test_macro_f1": [0.5, 0.6, 0.3],
        }
    )
    table = systems.summarise(rows).set_index("system")
    assert table.loc["S5", "test_acc"] == pytest.approx(0.6)
    assert table.loc["S5", "test_acc_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert table.loc["S5", "seeds"] == 2 and np.isnan(table.loc["S1", "test_acc_std"])


def test_metrics_values():
    m = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"][0] == [0.5, 0.5, 0.0] and m["per_class_recall"]["sad_fear"] == 1.0
    assert m["macro_recall"] == pytest.approx((0.5 + 1 + 0.5) / 3)


# --------------------------------------------------------------------------- notebooks on the smoke profile

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smoke_notebooks(smoke_run):
    return smoke_run  # tests/conftest.py: the session's smoke run, every notebook executed


@pytest.mark.slow
def test_train_notebook_writes_tables_and_figures(smoke_notebooks):
    folder = smoke_notebooks
    for name in ("table_4", "table_5", "table_8", "table_s20", "table_s21"):
        assert (folder.tables / f"{name}.csv").is_file(), name
    deployment = pd.read_csv(folder.tables / "table_s25.csv").set_index("form")  # the analysed system's forms
    forms = list(deployment.index)
    assert forms[0] == "fp32 (as trained)" and deployment["agree_with_fp32"].iloc[0] == 1.0
    int8 = deployment.loc["int8 static (x86), calibrated on train"]
    assert int8.weights_mb < deployment["weights_mb"].iloc[0]
    ort = deployment.loc[[f for f in forms if f.startswith("onnxruntime fp32")]].iloc[0]
    assert ort.agree_with_fp32 == 1.0 and ort.max_prob_diff < 1e-4  # the same function, another runtime
    encoder, total = deployment.iloc[-2], deployment.iloc[-1]
    assert forms[-2].startswith("encoder (") and encoder.ms_per_audio_s > 0
    assert total.ms_per_utt_b1 == pytest.approx(encoder.ms_per_utt_b1 + deployment["ms_per_utt_b1"].iloc[0])
    for name in ("fig_1_triaug", "fig_2_resattn", "fig_3_curves"):
        assert (folder.figures / f"{name}.png").stat().st_size > 5000, name
    table4 = pd.read_csv(folder.tables / "table_4.csv").set_index("system")
    assert table4.loc["S5", "params_m_paper_widths"] == pytest.approx(8.67, abs=0.01)
    assert table4.loc["S5", "paper_params_m"] == 3.9
    table5 = pd.read_csv(folder.tables / "table_5.csv")
    assert list(table5["system"]) == ["S1", "S2", "S3", "S4", "S5"]
    assert table5["acc"].between(0, 1).all() and (table5["paper_test_acc"] > 0).all()
    assert ((table5["acc_lo"] <= table5["acc"]) & (table5["acc"] <= table5["acc_hi"])).all()
    assert ((table5["uar_lo"] <= table5["uar"]) & (table5["uar"] <= table5["uar_hi"])).all()
    paired = pd.read_csv(folder.tables / "table_s26_paired.csv")
    assert list(paired["comparison"]) == ["S2 vs S1", "S3 vs S2", "S5 vs S3", "S5 vs S4"]
    assert paired["p_holm"].between(0, 1).all() and paired["verdict"].notna().all()
    beyond = pd.read_csv(folder.tables / "table_s27_beyond.csv").set_index("system")
    assert list(beyond.index[:2]) == ["S6", "S5-best"] and set(beyond.loc[["S6", "S5-best"], "vs"]) == {"S5"}
    assert beyond.loc["duration only", "vs"] == "S1" and beyond.loc["wav2vec2 layer-sum mean + linear", "vs"] == "S2"
    assert (folder.figures / "fig_s27.png").is_file()  # S6's learned layer weights
    results = systems.load_results(folder, ["split"])
    assert set(results["system"]) == {"S1", "S2", "S3", "S4", "S5", "A1", "A2", "A3", "S6", "S5-best"}
    for copy, source in (("A1", "S4"), ("A2", "S3")):  # identical settings: trained once, copied
        saved = json.loads((folder.models / copy / "seed0" / "config.json").read_text())
        assert saved["same_as"] == source
    table8 = pd.read_csv(folder.tables / "table_8.csv")
    assert table8["reported_acc"].iloc[-1] == pytest.approx(results.set_index("system").loc["S5", "test_acc"])


@pytest.mark.slow
def test_ablation_notebook_reuses_runs_and_writes_table6(smoke_notebooks):
    folder = smoke_notebooks
    table6 = pd.read_csv(folder.tables / "table_6.csv")
    assert list(table6["variant"]) == ["Full", "A1", "A2", "A3"]
    assert table6.loc[0, "delta_test_pp"] == 0
    expected = 100 * (table6.loc[3, "test_acc"] - table6.loc[0, "test_acc"])
    assert table6.loc[3, "delta_test_pp"] == pytest.approx(expected)
    assert list(table6["paper_delta_test_pp"]) == [0.0, -2.9, -4.9, -3.2]
    assert (folder.figures / "fig_s30.png").is_file()
    paired = pd.read_csv(folder.tables / "table_s32_paired.csv")
    assert list(paired["comparison"]) == ["S5 vs A1", "S5 vs A2", "S5 vs A3"]
    # the captions say what the intervals are over: the smoke run's few test speakers give clip intervals
    assert set(table6["unit"]) == set(paired["unit"]) == {"clip"}
    text = (folder.notebooks / "04_ablation.ipynb").read_text()
    assert text.count("bootstrap over test CLIPS") >= 2 and "(speakers, then seeds)" not in text
    assert "ablation minus Full, the paper's sign" in text
    loco = pd.read_csv(folder.tables / "table_s33_loco.csv")
    assert set(loco["held_out"]) == {"CREMA-D", "RAVDESS", "EmoDB"} and set(loco["system"]) == {"S1", "S2", "S5"}
    for corpus in ("CREMA-D", "RAVDESS", "EmoDB"):  # trained on the other two, tested on every clip of it
        assert (folder.models / f"_loco-{corpus}" / "S5" / "seed0" / "predictions_test.csv").is_file()


# --------------------------------------------------------------------------- a non-finite loss stops training


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_fit_naming_system_seed_epoch_and_batch(poison):
    (tx, ty), (vx, vy) = _task(96, 0), _task(30, 1)
    cfg = _small(max_epochs=3)
    seed, row = 5, 40
    order = train._batches(len(ty), cfg.batch_size, torch.Generator().manual_seed(seed))
    batch = next(k for k, index in enumerate(order, 1) if row in index.tolist())  # where row 40 falls in epoch 1
    tx[row, 0, 0] = poison
    model = models.build_model(ModelConfig(width_scale=0.1), CHANNELS)
    with pytest.raises(train.NonFiniteLossError) as err:
        fit_tensors(model, tx, ty, vx, vy, cfg, seed=seed, progress=False, name="S5")
    assert str(err.value).startswith(
        f"system S5, seed 5: the training loss is nan at epoch 1, batch {batch} of 3 "
        "(1 of its 32 inputs hold NaN/inf); training stopped"
    )


def test_a_system_whose_features_hold_nan_stops_train_systems_and_leaves_no_result(tmp_path, monkeypatch):
    poisoned = _split_data()
    poisoned.x["train"][7, 3, 10] = float("nan")  # one NaN value in one training clip's features
    monkeypatch.setattr(systems, "load_split_data", lambda cfg, folder, features, device, protocol="split": poisoned)
    folder = RunFolder(tmp_path).ensure()
    with pytest.raises(
        train.NonFiniteLossError,
        match=r"^system S4, seed 0: the training loss is nan at epoch 1, "
        r"batch \d of 4 \(1 of its \d+ inputs hold NaN/inf\)",
    ):
        systems.train_systems(_config(), folder, systems=["S4"], progress=False)
    assert not folder.run_config("S4", 0).is_file() and not folder.metrics("S4", 0).is_file()
    assert not folder.results.is_file()


# --------------------------------------------------------------------------- behaviour the engine must keep


def _scripted_fit(monkeypatch, accuracies, losses):
    """``fit`` whose validation pass returns the given (loss, accuracy) per epoch; returns (result, model,
    the model's weights as they were at each epoch's validation)."""
    seen = []

    def scripted(model, x, y, batch_size=256, lengths=None, trim=False):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        epoch = len(seen) - 1
        return losses[epoch], accuracies[epoch]

    monkeypatch.setattr(train, "evaluate", scripted)
    (tx, ty), (vx, vy) = _task(64, 0), _task(16, 1)
    model = models.build_model(ModelConfig(arch="shallow", width_scale=0.25), CHANNELS)
    cfg = _small(max_epochs=len(accuracies), early_stop_patience=99, plateau_patience=99)
    return fit_tensors(model, tx, ty, vx, vy, cfg, progress=False), model, seen


def test_fit_returns_the_best_epochs_weights_when_validation_peaks_early(monkeypatch):
    result, model, seen = _scripted_fit(monkeypatch, [0.5, 0.9, 0.6, 0.7], [1.0, 0.9, 0.8, 0.7])
    assert result.best_epoch == 2
    assert all(torch.equal(model.state_dict()[k], seen[1][k]) for k in seen[1])  # epoch 2's weights, not the last
    assert not all(torch.equal(seen[1][k], seen[3][k]) for k in seen[1])  # training did move on after epoch 2


def test_a_tie_on_validation_accuracy_keeps_the_lower_validation_loss(monkeypatch):
    result, model, seen = _scripted_fit(monkeypatch, [0.5, 0.8, 0.6, 0.8, 0.8], [1.0, 0.9, 0.5, 0.6, 0.95])
    assert result.best_epoch == 4  # 0.8 at epochs 2, 4, 5: epoch 4 has the lowest loss
    assert all(torch.equal(model.state_dict()[k], seen[3][k]) for k in seen[3])


@pytest.mark.parametrize("clip", [0.5, 0.0])
def test_gradient_norm_is_clipped_at_every_step(monkeypatch, clip):
    norms = []
    real = train.make_optimizer

    def recording(model, lr, weight_decay):
        optimizer = real(model, lr, weight_decay)
        step = optimizer.step

        def checked_step(*args, **kwargs):
            grads = [p.grad.detach().flatten() for p in model.parameters() if p.grad is not None]
            norms.append(torch.cat(grads).norm().item())
            return step(*args, **kwargs)

        optimizer.step = checked_step
        return optimizer

    monkeypatch.setattr(train, "make_optimizer", recording)
    (tx, ty), (vx, vy) = _task(96, 0), _task(30, 1)
    model = models.build_model(ModelConfig(arch="shallow", width_scale=0.25), CHANNELS)
    fit_tensors(model, tx * 30, ty, vx * 30, vy, _small(max_epochs=2, grad_clip=clip), progress=False)
    assert len(norms) == 2 * 3  # 96 clips, batches of 32, two epochs
    if clip:
        assert max(norms) <= clip * (1 + 1e-5)
    else:  # unclipped, these inputs give larger gradients: the bound above is not vacuous
        assert max(norms) > 0.5


def test_batch_order_differs_between_epochs_and_follows_the_seed(monkeypatch):
    orders = []
    real = train._batches

    def recording(n, batch_size, generator=None):
        batches = real(n, batch_size, generator)
        orders.append(torch.cat(batches).tolist())
        return batches

    monkeypatch.setattr(train, "_batches", recording)
    (tx, ty), (vx, vy) = _task(64, 0), _task(16, 1)
    runs = {}
    for seed in (0, 0, 1):
        orders.clear()
        model = models.build_model(ModelConfig(arch="shallow", width_scale=0.25), CHANNELS)
        fit_tensors(model, tx, ty, vx, vy, _small(max_epochs=2), seed=seed, progress=False)
        runs.setdefault(seed, []).append(list(orders))
    first, again = runs[0]
    assert first[0] != first[1]  # epoch 2 draws another order
    assert first == again  # same seed, same orders
    assert runs[1][0][0] != first[0]  # another seed, another order


def test_the_optimizer_gets_the_configured_weight_decay(monkeypatch):
    made = []
    real = train.make_optimizer
    monkeypatch.setattr(train, "make_optimizer", lambda m, lr, wd: made.append(real(m, lr, wd)) or made[-1])
    (tx, ty), (vx, vy) = _task(32, 0), _task(16, 1)
    model = models.build_model(ModelConfig(arch="shallow", width_scale=0.25), CHANNELS)
    fit_tensors(model, tx, ty, vx, vy, _small(max_epochs=1, weight_decay=0.037), progress=False)
    assert [g["weight_decay"] for g in made[0].param_groups] == [0.037]
    assert isinstance(made[0], torch.optim.AdamW) and made[0].param_groups[0]["betas"] == (0.9, 0.999)
