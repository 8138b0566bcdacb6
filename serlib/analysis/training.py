"""What the training and ablation notebooks (``03_train``, ``04_ablation``) show besides the result
tables, computed: the training settings against the paper's protocol (Table S20), the notes on a
shortened schedule, on parameter counts and on narrowed networks, the inputs of Figs. 1-3, the
network as trained (Table S22) and the training cost (Table S23).

The paper's values come from ``serlib.common.paper`` (``TRAINING``, ``TABLE4``, ``PAPER_FRAMES``), the
defaults from the configuration dataclasses; nothing of the paper is written here a second time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pandas as pd
import torch

from serlib.common import paper
from serlib.common.config import Config, ModelConfig, TrainConfig, primary_system
from serlib.common.runfolder import RunFolder
from serlib.common.runtime import resolve_device
from serlib.data import protocols
from serlib.features.layers import FeatureKey
from serlib.features.load import load_features
from serlib.modelling import augment, models, systems

# --------------------------------------------------------------------------- Table S20


def _text(value: Any) -> str:
    """A setting as the table shows it: lists joined by commas, numbers as Python prints them."""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def _chosen_source(value: Any, default: Any, on_validation: bool = False) -> str:
    if on_validation:
        return "CHOSEN on validation"
    return "CHOSEN" if value == default else "CHOSEN (this profile)"


def _stated_source(value: Any, stated: Any) -> str:
    return "paper" if value == stated else "this profile"


def settings_table(cfg: Config, runs: pd.DataFrame) -> pd.DataFrame:
    """Table S20: each training setting of this run, where its value comes from, the paper's and the default.

    ``source`` is "paper" when the value is the one the paper states, "this profile" when the profile
    sets another, "CHOSEN" for a value the paper leaves open (serlib's default), "CHOSEN (this profile)"
    when the profile changed that default, and "CHOSEN on validation" for the learning rate and weight
    decay that ``train.select`` picked on the validation split.

    Args:
        cfg: the run configuration.
        runs: the rows ``serlib.pipeline.ensure_runs`` returned (their ``lr`` and ``weight_decay`` are the
            values the runs were trained with).

    Returns:
        Columns setting, value, source, paper, default; every cell a string.
    """
    t, default, stated, words = cfg.train, TrainConfig(), paper.TRAINING, paper.TRAINING_UNSTATED
    selected = t.select.enabled
    lr, weight_decay = _trained_value(runs["lr"]), _trained_value(runs["weight_decay"])
    plateau = f"{t.plateau_patience} / {t.plateau_factor}"
    rows = [
        ("learning rate", lr, _chosen_source(t.lr, default.lr, selected), words["lr"], default.lr),
        (
            "weight decay",
            weight_decay,
            _chosen_source(t.weight_decay, default.weight_decay, selected),
            words["weight_decay"],
            default.weight_decay,
        ),
        (
            "batch size",
            t.batch_size,
            _stated_source(t.batch_size, stated["batch_size"]),
            stated["batch_size"],
            default.batch_size,
        ),
        (
            "max epochs",
            t.max_epochs,
            _stated_source(t.max_epochs, stated["max_epochs"]),
            stated["max_epochs"],
            default.max_epochs,
        ),
        (
            "early-stop patience",
            t.early_stop_patience,
            _stated_source(t.early_stop_patience, stated["early_stop_patience"]),
            stated["early_stop_patience"],
            default.early_stop_patience,
        ),
        (
            "plateau patience / factor",
            plateau,
            _stated_source(
                (t.plateau_patience, t.plateau_factor), (stated["plateau_patience"], stated["plateau_factor"])
            ),
            f"{stated['plateau_patience']} / {stated['plateau_factor']}",
            f"{default.plateau_patience} / {default.plateau_factor}",
        ),
        ("LR floor", t.min_lr, _chosen_source(t.min_lr, default.min_lr), words["min_lr"], default.min_lr),
        (
            "gradient clip",
            t.grad_clip,
            _stated_source(t.grad_clip, stated["grad_clip"]),
            stated["grad_clip"],
            default.grad_clip,
        ),
        ("seeds", t.seeds, _chosen_source(t.seeds, default.seeds), words["seeds"], default.seeds),
        (
            "device",
            resolve_device(t.device, key="train.device").type,
            f"this machine (train.device: {t.device})",
            words["device"],
            default.device,
        ),
        (
            "kernels",
            _kernels(t),
            _chosen_source((t.deterministic, t.amp), (default.deterministic, default.amp)),
            "not stated",
            _kernels(default),
        ),
    ]
    table = pd.DataFrame(rows, columns=["setting", "value", "source", "paper", "default"])
    return table.apply(lambda column: column.map(_text))


def _trained_value(values: pd.Series) -> Any:
    """The one value every run trained with, or, where the grid chose per system (and fold), its range."""
    distinct = sorted(set(values.astype(float)))
    if len(distinct) == 1:
        return distinct[0]
    return f"per system and fold: {distinct[0]:g} to {distinct[-1]:g} (Table S21)"


def _kernels(t: TrainConfig) -> str:
    mode = "deterministic" if t.deterministic else "fast (cuDNN autotuning, not bit-reproducible)"
    return f"{mode}, {'bf16 autocast' if t.amp else 'fp32'}"


def paper_schedule(cfg: Config) -> bool:
    """Whether the run trains on the paper's schedule (max epochs, early stop, plateau patience)."""
    t, stated = cfg.train, paper.TRAINING
    return (t.max_epochs, t.early_stop_patience, t.plateau_patience) == (
        stated["max_epochs"],
        stated["early_stop_patience"],
        stated["plateau_patience"],
    )


def schedule_note(cfg: Config) -> str:
    """A note when the profile's schedule is not the paper's ("" when it is)."""
    if paper_schedule(cfg):
        return ""
    t, stated = cfg.train, paper.TRAINING
    return (
        f"This profile shortens the paper's schedule (max epochs {t.max_epochs}, early stop "
        f"{t.early_stop_patience}, plateau {t.plateau_patience} instead of {stated['max_epochs']} / "
        f"{stated['early_stop_patience']} / {stated['plateau_patience']}) to fit its time budget."
    )


def selection_grid(cfg: Config, folder: RunFolder) -> Optional[pd.DataFrame]:
    """Table S21: the learning-rate / weight-decay grid when this run selected on validation, else None."""
    return systems.load_selection(folder) if cfg.train.select.enabled else None


def selection_caption(cfg: Config) -> str:
    """Table S21's caption: which grids ran, on which systems, for how long."""
    sel = cfg.train.select
    scope = {
        "system": "one grid per system (an equal tuning budget)",
        "family": "one grid per input x architecture family, searched on one member of each",
        "shared": f"one shared grid searched on {sel.system} and used by every system",
    }[sel.scope]
    return (
        f"Learning-rate / weight-decay grids on the validation split ({scope}; at most {sel.max_epochs} epochs "
        "per point); 'chosen' marks the point each group trained with."
    )


def tuning_note(cfg: Config) -> str:
    """What the tuning budget means for the comparisons, or "" when every system had its own grid."""
    sel = cfg.train.select
    if not sel.enabled:
        return (
            f"No grid ran in this run: every system trains with lr {cfg.train.lr:g} and weight decay "
            f"{cfg.train.weight_decay:g} from the parameters file (CHOSEN). Where those values were chosen on one "
            "system (the parameters file says which), that system is favoured in every comparison."
        )
    if sel.scope == "shared":
        return (
            f"One grid, searched on {sel.system}, sets every system's learning rate and weight decay: the "
            f"comparisons favour {sel.system}, whose values were tuned for it."
        )
    if sel.scope == "family":
        return (
            "Each input x architecture family shares one grid, searched on one of its members: systems of a "
            "family are compared on equal terms, but within a family the searched member is favoured."
        )
    return ""


def seeds_phrase(cfg: Config, std: bool = True) -> str:
    """How a table aggregates the seeds: "one seed", or "mean and std over 3 seeds" ("mean over ..." without std)."""
    seeds = len(cfg.train.seeds)
    if seeds <= 1:
        return "one seed"
    return f"mean {'and std ' if std else ''}over {seeds} seeds"


# --------------------------------------------------------------------------- Table 4 notes


def separable_reading(stated: pd.Series, cfg: Optional[Config] = None) -> str:
    """Which reading of section 3.2 lands near the paper's counts: depthwise-separable convs in the blocks,
    measured by building it (``model.conv: separable``; the k=9 stem standard)."""
    trained = [n for n, sys in (cfg.systems.items() if cfg else []) if sys.model.conv == "separable"]
    counts = {
        name: models.count_params(models.build_model(ModelConfig(se=se, conv="separable"), 768)) / 1e6
        for name, se in (("S5", True), ("S3", False))
    }
    return (
        f"The reading closest to the paper's counts keeps every number the text states and makes the "
        f"convolutions inside the residual blocks depthwise-separable: {counts['S5']:.2f} M for S5 and "
        f"{counts['S3']:.2f} M for S3 (paper: {stated['S5']:g} and {stated['S3']:g} M)"
        + (
            f"; the beyond-the-paper row{'s' if len(trained) > 1 else ''} {', '.join(trained)} train"
            f"{'' if len(trained) > 1 else 's'} it (Table S27)."
            if trained
            else "."
        )
    )


def table4_notes(cfg: Config, table4: pd.DataFrame) -> dict[str, str]:
    """The notes under Table 4: parameter counts against the paper's, and narrowed widths ("" when none).

    Args:
        cfg: the run configuration.
        table4: ``serlib.analysis.results.table4``.

    Returns:
        ``{"params": ..., "widths": ...}``.
    """
    if table4.empty:
        return {"params": "", "widths": ""}
    stated = paper.TABLE4.set_index("system")["params_m"]
    full = table4.loc[table4["system"] == "S5", "params_m_paper_widths"]
    params = (
        (
            "Built exactly as section 3.2 describes (stem 768->384 k9, blocks 384 k9, 384 k7, 256 k5, 128 k5, 64 "
            "k3, two convolutions each, SE r=16), the ResAttn1D-CNN has "
            f"{full.iloc[0]:.2f} M parameters, not the {stated['S5']:g} M the paper states; the shallow CNN likewise "
            f"differs from {stated['S1']:g} / {stated['S2']:g} M. "
            "The architecture is kept as described, not bent to match the stated counts. "
            + separable_reading(stated, cfg)
        )
        if len(full)
        else ""
    )
    narrowed = {
        name: cfg.systems[name].model.width_scale
        for name in table4["system"]
        if cfg.systems[name].model.width_scale != 1.0
    }
    widths = (
        (
            "This profile narrows the networks (model.width_scale "
            + ", ".join(f"{k} {v:g}" for k, v in narrowed.items())
            + ") to fit its time budget; "
            "'params_m_paper_widths' is the network the paper describes."
        )
        if narrowed
        else ""
    )
    return {"params": params, "widths": widths}


# --------------------------------------------------------------------------- Figs. 1 and 2, Table S22

TRIAUG_PANELS = (
    ("noise", "Gaussian noise"),
    ("crop", "random crop and zero-pad"),
    ("mask", "temporal masking (channel groups)"),
    ("all", "all three together"),
)


def triaug_skip(cfg: Config) -> str:
    """Why Fig. 1 cannot be drawn for this profile ("" when it can): it shows Tri-Aug on a clip's log-Mel window."""
    if any(system.input == "logmel" for system in cfg.systems.values()):
        return ""
    return (
        "Fig. 1 is skipped: it draws Tri-Aug on a clip's log-Mel features, and this profile extracts none (no "
        "system reads input: logmel)."
    )


def triaug_variants(cfg: Config, folder: RunFolder, manifest: pd.DataFrame) -> tuple[str, dict[str, torch.Tensor]]:
    """Fig. 1's data: the log-Mel window of the first training clip, clean and under each Tri-Aug operation.

    Seeds torch's global generator with ``run.seed`` first, so the figure is the same on every run.

    Returns:
        ``(utt_id, {title: (n_mels, frames) tensor})``, the clean window first.
    """
    rows = manifest[manifest["split"] == "train"].head(1)
    clip = load_features(cfg, folder, rows, FeatureKey("logmel")).x[0]  # (n_mels, frames)
    torch.manual_seed(cfg.run.seed)
    variants = {"original": clip}
    for operation, title in TRIAUG_PANELS:
        variants[title] = augment.single_operation(cfg.augment, operation)(clip.unsqueeze(0))[0]
    return rows["utt_id"].iloc[0], variants


def network_system(cfg: Config) -> Optional[str]:
    """The ResAttn1D-CNN Fig. 2 and Table S22 show: the analysed system when it is one, else S5, else the profile's
    first ResAttn1D-CNN; None when the profile trains none."""
    resattn = [name for name, system in cfg.systems.items() if system.model.arch == "resattn"]
    for name in (primary_system(cfg)[0], "S5", *resattn):
        if name in resattn:
            return name
    return None


def network_input(cfg: Config, system: str) -> str:
    """Fig. 2's input box: the system's input at the paper's channels and this run's window."""
    chosen = cfg.systems[system]
    what = {
        "logmel": f"{cfg.features.logmel.n_mels}-band log-Mel",
        "wav2vec2": "frozen wav2vec 2.0-base",
        "wav2vec2_layers": "a learned sum of frozen wav2vec 2.0-base layers",
    }[chosen.input]
    return f"input {paper.PAPER_INPUT_CHANNELS[chosen.input]} x {cfg.features.frames} ({what})"


def paper_network_summary(cfg: Config, system: Optional[str] = None) -> pd.DataFrame:
    """Fig. 2's data: ``models.model_summary`` of ``system``'s network (default ``network_system``) at the paper's
    widths and input channels."""
    chosen = cfg.systems[system or network_system(cfg)]
    channels = paper.PAPER_INPUT_CHANNELS[chosen.input]
    network = models.build_model(dataclasses.replace(chosen.model, width_scale=1.0), channels)
    return models.model_summary(network, (channels, cfg.features.frames))


def trained_network_summary(cfg: Config, runs: pd.DataFrame, system: Optional[str] = None) -> Optional[pd.DataFrame]:
    """Table S22: ``system``'s network (default ``network_system``) as this run trained it, or None when it has
    the paper's widths."""
    system = system or network_system(cfg)
    chosen = cfg.systems[system]
    if chosen.model.width_scale == 1.0:
        return None
    row = runs[runs["system"] == system].iloc[0]
    network = models.build_model(chosen.model, int(row["in_channels"]))
    return models.model_summary(network, (int(row["in_channels"]), int(row["frames"])))


# --------------------------------------------------------------------------- Fig. 3


@dataclass
class Curve:
    """One panel of Fig. 3: a run's history, its kept epoch and a title."""

    title: str
    history: pd.DataFrame
    best_epoch: int


def lr_reductions(history: pd.DataFrame) -> list[int]:
    """Epochs whose learning rate is lower than the previous epoch's (the first epoch at the new rate)."""
    lr = history["lr"].to_numpy()
    return [int(history["epoch"].iloc[i]) for i in range(1, len(lr)) if lr[i] < lr[i - 1] * (1 - 1e-9)]


def curve_systems(cfg: Config) -> list[str]:
    """The systems Fig. 3 draws: the analysed one (``analysis.primary_system``) and S2 when the profile has it."""
    return list(dict.fromkeys(name for name in (primary_system(cfg)[0], "S2") if name in cfg.systems))


def learning_curves(
    cfg: Config, folder: RunFolder, runs: pd.DataFrame, shown: Optional[Sequence[str]] = None
) -> list[Curve]:
    """Fig. 3's data: the first seed's history of each system of ``shown`` (default ``curve_systems``) that this
    run trained, under the first protocol (the paper's split, or the first speaker fold: ``fold_curves`` sums
    up every fold)."""
    seed, protocol = cfg.train.seeds[0], protocols.evaluation_protocols(cfg)[0]
    where = "" if protocol == protocols.MAIN_PROTOCOL else f", {protocol.replace('fold', 'fold ')}"
    curves = []
    for name in (s for s in (shown or curve_systems(cfg)) if s in set(runs["system"])):
        row = runs[(runs["system"] == name) & (runs["seed"] == seed) & (runs["protocol"] == protocol)].iloc[0]
        curves.append(
            Curve(
                f"{name}: {cfg.systems[name].description or name} (seed {seed}{where})",
                systems.load_history(folder, name, seed, protocol),
                int(row["best_epoch"]),
            )
        )
    return curves


def curve_landmarks(
    cfg: Config, folder: RunFolder, system: Optional[str] = None, protocol: Optional[str] = None
) -> dict[str, Any]:
    """What Fig. 3's caption says of ``system``'s (default: the analysed one) first-seed run under ``protocol``
    (default: the first), beside the paper's section 5.3.

    Returns:
        ``{"system", "lr_reductions": "[31, 42]" or "none", "lr_halvings": the same in words ("LR halved at epochs
        31 and 42", "LR never halved"), "stopped_epoch": last epoch run, "max_epochs": the cap}``.
    """
    system = system or primary_system(cfg)[0]
    protocol = protocol or protocols.evaluation_protocols(cfg)[0]
    history = systems.load_history(folder, system, cfg.train.seeds[0], protocol)
    reductions = lr_reductions(history)
    return {
        "system": system,
        "lr_reductions": str(reductions) if reductions else "none",
        "lr_halvings": _halvings_phrase(list(reductions)),
        "stopped_epoch": int(history["epoch"].iloc[-1]),
        "max_epochs": cfg.train.max_epochs,
    }


def _halvings_phrase(epochs: list) -> str:
    if not epochs:
        return "LR never halved"
    listed = ", ".join(str(e) for e in epochs[:-1]) + (" and " if len(epochs) > 1 else "") + str(epochs[-1])
    return f"LR halved at epoch{'s' if len(epochs) > 1 else ''} {listed}"


def fold_curves(
    cfg: Config, folder: RunFolder, runs: pd.DataFrame, shown: Optional[Sequence[str]] = None
) -> Optional[pd.DataFrame]:
    """Fig. 3's runs in every speaker fold (None with the paper's single split): per system, fold and seed, the
    kept (best-validation) epoch, the last epoch run, the learning-rate halvings and the best validation accuracy."""
    if not cfg.data.folds:
        return None
    rows = []
    for name in (s for s in (shown or curve_systems(cfg)) if s in set(runs["system"])):
        for protocol in protocols.evaluation_protocols(cfg):
            for seed in cfg.train.seeds:
                run = runs[(runs["system"] == name) & (runs["seed"] == seed) & (runs["protocol"] == protocol)].iloc[0]
                history = systems.load_history(folder, name, seed, protocol)
                rows.append(
                    {
                        "system": name,
                        "fold": int(protocol[len("fold") :]),
                        "seed": seed,
                        "best_epoch": int(run["best_epoch"]),
                        "stopped_epoch": int(history["epoch"].iloc[-1]),
                        "lr_halvings": ", ".join(map(str, lr_reductions(history))) or "none",
                        "val_acc": float(run["val_acc"]),
                        "test_acc": float(run["test_acc"]),
                    }
                )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- Table S23


def cost_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Table S23: per system, parameters, mean wall seconds per epoch and epochs run over its seeds, and where."""
    return (
        runs.groupby("system", sort=False)
        .agg(
            params=("params", "first"),
            seconds_per_epoch=("seconds_per_epoch", "mean"),
            epochs=("stopped_epoch", "mean"),
            device=("device", "first"),
            threads=("threads", "first"),
            status=("status", "first"),
        )
        .reset_index()
    )
