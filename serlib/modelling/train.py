"""The training engine (paper 3.3-3.4, 4.2): one loop for every system and seed.

Cross-entropy; AdamW (0.9, 0.999); gradient-norm clipping; ReduceLROnPlateau on validation
accuracy; early stopping; the checkpoint with the best validation accuracy is kept and test is
scored at that checkpoint only. Features are loaded once and stay on the training device.

This module owns the engine on in-memory tensors:
- ``TrainStep``: one training step (Tri-Aug, forward, cross-entropy, backward, clipping, AdamW),
  the one the epoch loop and ``serlib bench`` both run; ``make_optimizer`` builds its AdamW.
- ``fit(model, data, settings)`` -> ``FitResult``: the epoch loop over a ``SplitData``'s train and val
  splits (``serlib.modelling.inputs``), with a ``TrainSettings`` (the train section and this fit's choices).
- ``predict_proba`` / ``evaluate``: scoring; ``load_checkpoint``: rebuild a trained classifier.

Running the configured systems (run folders, learning-rate selection, all systems x seeds, the results
table) lives in ``serlib.modelling.systems``, which builds on this engine; the split data it trains on is
``serlib.modelling.inputs``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from serlib.common.config import ConfigError, TrainConfig, model_from_dict
from serlib.common.facts import CLASSES
from serlib.common.io import RunFileError
from serlib.common.runtime import set_seed, training_mode
from serlib.modelling.inputs import SplitData
from serlib.modelling.models import LayerSumClassifier, build_classifier
from serlib.modelling.placement import gather

HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]


class NonFiniteLossError(FloatingPointError):
    """A training batch's loss is NaN or infinite: training stops (no checkpoint, no results)."""


class CheckpointError(RunFileError):
    """A checkpoint that cannot be loaded: damaged, not serlib's, or holding more than data (never run)."""


# --------------------------------------------------------------------------- the loop


@dataclass
class FitResult:
    """What ``fit`` returns; ``model`` holds the best-validation weights when it returns."""

    history: pd.DataFrame  # HISTORY_COLUMNS, one row per epoch
    best_epoch: int  # 1-based epoch of the kept checkpoint
    stopped_epoch: int  # last epoch run (== max_epochs unless early stopping fired)
    best_val_acc: float
    seconds_per_epoch: float  # mean wall time of one epoch (train + validation pass)
    best_state: dict  # state_dict of the kept checkpoint (on CPU)


# Devices where an epoch's loss and accuracy are summed on the device and read once per epoch (no host
# synchronisation per step); elsewhere each step's loss is read and checked at once (names the batch).
SYNC_FREE_DEVICES = ("cuda",)

BUCKET_BATCHES = 50  # trim_batches: a bucket is this many batches of clips sorted by length


def _batches(n: int, batch_size: int, generator: Optional[torch.Generator] = None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order.split(batch_size))


def length_buckets(lengths: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Batches of clips of similar length (``train.trim_batches``), in a random order.

    The epoch's random permutation is cut into buckets of ``BUCKET_BATCHES`` batches; inside a bucket the
    clips are sorted by length and cut into batches; the batches are then shuffled. Every clip appears once.

    Args:
        lengths: (n,) real frames per clip (on the CPU).
        batch_size: clips per batch.
        generator: seeds the permutation and the batch order.
    """
    order = torch.randperm(len(lengths), generator=generator)
    batches = []
    for bucket in order.split(batch_size * BUCKET_BATCHES):
        ranked = bucket[torch.argsort(lengths[bucket], stable=True)]
        batches += list(ranked.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with the paper's betas (0.9, 0.999); the fused kernel when the model is on a GPU."""
    device = next(model.parameters()).device
    return torch.optim.AdamW(
        model.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay, fused=device.type == "cuda"
    )


class TrainStep:
    """One training step: Tri-Aug on the batch, forward, cross-entropy, backward, clipping, optimizer step.

    Args:
        model: the classifier (put in train mode on every call).
        optimizer: over ``model``'s parameters (``make_optimizer``).
        augment: a ``TriAug`` for training batches, or None.
        grad_clip: gradient-norm clipping threshold; 0 turns clipping off.
        amp: bf16 autocast for forward and loss (a GPU fast path; weights stay fp32).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        augment: Optional[nn.Module] = None,
        grad_clip: float = 0.0,
        amp: bool = False,
    ):
        self.model, self.optimizer, self.augment = model, optimizer, augment
        self.grad_clip, self.amp = grad_clip, amp

    def __call__(
        self, inputs: torch.Tensor, targets: torch.Tensor, inplace: bool = False, lengths: Optional[torch.Tensor] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train on one batch.

        Args:
            inputs: (batch, channels, frames) on the model's device.
            targets: (batch,) label indices.
            inplace: augment ``inputs`` itself (a batch just gathered with ``x[index]``, read by nothing else).
            lengths: (batch,) real frames per clip, for masked models and within-clip Tri-Aug (None: unused).

        Returns:
            The batch's mean loss and its count of correct predictions, as device tensors (no synchronisation).
        """
        self.model.train()
        net = self.model
        if isinstance(self.model, LayerSumClassifier):  # Tri-Aug augments the learned sum, as S5 its one layer
            inputs, net, inplace = self.model.mix(inputs), self.model.net, False  # (batch, channels, frames)
        if self.augment is not None:
            augment = self.augment.train()
            inputs = (
                augment(inputs, inplace=inplace)
                if lengths is None
                else augment(inputs, inplace=inplace, lengths=lengths)
            )
        with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = net(inputs) if lengths is None else net(inputs, lengths)  # (batch, classes)
            loss = nn.functional.cross_entropy(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return loss.detach(), (logits.argmax(1) == targets).sum()


def _train_epoch(
    step: TrainStep,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    where: str = "training",
    epoch: int = 1,
    lengths: Optional[torch.Tensor] = None,
    trim: bool = False,
    device: Optional[torch.device] = None,
) -> tuple[float, float]:
    """One epoch. ``x`` may be float16 and may sit on the host (``serlib.modelling.placement``); the
    batches, labels and lengths go to ``device`` (default: ``x``'s), where the model is."""
    device = x.device if device is None else torch.device(device)
    y = y.to(device)
    host_lengths = None if lengths is None else lengths.cpu()  # batch sizes are decided on the host
    lengths = None if lengths is None else lengths.to(device)
    total_loss, correct = 0.0, 0
    on_device = device.type in SYNC_FREE_DEVICES
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, correct count (read once when on_device)
    batches = length_buckets(host_lengths, batch_size, generator) if trim else _batches(len(y), batch_size, generator)
    on_device_batches = _to_device(batches, device)  # the epoch's order, copied once
    for number, (index, moved) in enumerate(zip(batches, on_device_batches), 1):
        frames = int(host_lengths[index].max()) if trim else None  # trim: only up to the batch's longest clip
        inputs = gather(x, moved if x.device == moved.device else index, device, frames)  # fresh float32 copy
        index = moved
        targets = y[index]  # (batch,)
        batch_lengths = None if lengths is None else lengths[index]
        loss, hits = step(inputs, targets, inplace=True, lengths=batch_lengths)  # inputs is a fresh copy
        if on_device:  # summed where they are; read once, after the epoch
            sums += torch.stack([loss.double() * len(targets), hits.double()])
            continue
        value = loss.item()  # the one synchronisation per step, checked at no extra cost
        if not math.isfinite(value):
            bad = int((~torch.isfinite(inputs)).flatten(1).any(dim=1).sum())  # inputs as gathered, after the step
            raise NonFiniteLossError(
                f"{where}: the training loss is {value} at epoch {epoch}, batch {number} of {len(batches)} "
                f"({bad} of its {len(targets)} inputs hold NaN/inf); training stopped. Check the features "
                "(data/features_failed.csv, the audio check in data/excluded.csv) and try a lower train.lr"
            )
        total_loss += value * len(targets)
        correct += hits.item()
    if on_device:
        total_loss, correct = sums.tolist()
        if not math.isfinite(total_loss):
            raise NonFiniteLossError(
                f"{where}: the training loss summed over epoch {epoch} is {total_loss} (on {device.type} the losses "
                "are read once per epoch, so the batch is not named); training stopped. Check the features "
                "(data/features_failed.csv, the audio check in data/excluded.csv) and try a lower train.lr"
            )
    return total_loss / len(y), correct / len(y)


def _to_device(batches: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """The epoch's batches of indices on ``device``: one pinned, non-blocking copy for the whole epoch on a
    GPU (no host synchronisation per batch); the CPU's own tensors otherwise."""
    if device.type == "cpu" or not batches:
        return batches
    flat = torch.cat(batches)
    flat = flat.pin_memory() if torch.cuda.is_available() else flat
    return list(flat.to(device, non_blocking=True).split([len(b) for b in batches]))


@torch.no_grad()
def predict_proba(
    model: nn.Module, x: torch.Tensor, batch_size: int = 256, lengths: Optional[torch.Tensor] = None, trim: bool = False
) -> torch.Tensor:
    """Class probabilities (n, 3) of ``x`` (n, channels, frames) in eval mode, on ``x``'s device.

    Args:
        model: the classifier.
        x: features; ``lengths`` (n,): real frames per clip, passed to the model (masked models use them).
        batch_size: clips per forward pass.
        trim: with ``lengths``, clips are scored in length order and each batch is cut to its longest clip
            (a masked model's outputs do not change; the others' would, so only masked systems ask for it).
    """
    model.eval()
    device = next(model.parameters(), x).device  # a module without parameters (int8) runs where x is
    if lengths is None:
        probs = [
            torch.softmax(model(x[i : i + batch_size].to(device).float()), dim=1).to(x.device)
            for i in range(0, len(x), batch_size)
        ]
        return torch.cat(probs) if probs else torch.zeros(0, len(CLASSES))
    host_lengths = lengths.cpu()
    order = torch.argsort(host_lengths, stable=True) if trim else torch.arange(len(x))
    out = torch.zeros(len(x), len(CLASSES), device=x.device)
    for chunk in order.split(batch_size):  # chunk: CPU indices
        frames = int(host_lengths[chunk].max()) if trim else None
        batch = gather(x, chunk, device, frames)
        probs = torch.softmax(model(batch, host_lengths[chunk].to(device)), dim=1)
        out[chunk.to(x.device)] = probs.to(x.device)
    return out


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 256,
    lengths: Optional[torch.Tensor] = None,
    trim: bool = False,
) -> tuple[float, float]:
    """(cross-entropy loss, accuracy) of ``model`` on ``x`` (n, channels, frames), ``y`` (n,)."""
    probs = predict_proba(model, x, batch_size, lengths, trim)
    loss = nn.functional.nll_loss(torch.log(probs.clamp_min(1e-12)), y.to(probs.device)).item()
    return loss, (probs.argmax(1) == y.to(probs.device)).float().mean().item()


def _check_fit_inputs(train_x, train_y, val_x, val_y) -> None:
    for name, x, y in (("train", train_x, train_y), ("val", val_x, val_y)):
        if x.dim() not in (3, 4) or len(x) != len(y) or len(y) == 0:
            raise ValueError(
                f"{name}: expected x (n, [layers,] channels, frames) and y (n,) with n > 0, "
                f"got {tuple(x.shape)} and {tuple(y.shape)}"
            )


@dataclass(frozen=True)
class TrainSettings:
    """How ``fit`` trains, besides the data and the model: the train section and this fit's own choices."""

    train: TrainConfig  # batch size, scheduler, early stopping, clipping, determinism, amp, eval batch size
    lr: float  # AdamW's learning rate
    weight_decay: float  # AdamW's weight decay
    max_epochs: int  # at most this many epochs (early stopping may end sooner)
    seed: int = 0  # seeds the batch order and the augmentation draws
    trim: bool = False  # batches from length buckets, each cut to its longest clip (needs lengths; masked models)
    name: Optional[str] = None  # who is trained ("S5", "S5 (fold1)"), named with the seed in a non-finite-loss error
    desc: str = "train"  # the progress bar's label
    progress: bool = True  # show a tqdm bar over epochs

    @classmethod
    def from_config(
        cls,
        train: TrainConfig,
        lr: Optional[float] = None,
        weight_decay: Optional[float] = None,
        max_epochs: Optional[int] = None,
        **choices,
    ) -> "TrainSettings":
        """The settings the ``train`` section describes; ``lr``, ``weight_decay``, ``max_epochs`` override it
        (learning-rate selection), ``choices`` set the other fields."""
        return cls(
            train,
            train.lr if lr is None else lr,
            train.weight_decay if weight_decay is None else weight_decay,
            train.max_epochs if max_epochs is None else max_epochs,
            **choices,
        )


def fit(
    model: nn.Module,
    data: SplitData,
    settings: TrainSettings,
    augment: Optional[nn.Module] = None,
    on_epoch: Optional[Callable[[dict, int], None]] = None,
) -> FitResult:
    """Train ``model`` with the paper's protocol and leave the best-validation weights in it.

    Args:
        model: the classifier, on the training device (features may be float16 and on the host: their batches,
            the labels and the lengths are moved to the model's device).
        data: the ``train`` and ``val`` splits (``SplitData``): ``x`` (n, channels, frames) features, ``y`` (n,)
            label indices, ``lengths`` (n,) real frames per clip (masked models, within-clip Tri-Aug), or None.
        settings: learning rate, weight decay, epochs, seed, trimming, and the train section's rest.
        augment: a ``TriAug`` applied to training batches only (in place on each freshly gathered
            batch, so ``data.x["train"]`` is never modified), or None.
        on_epoch: called after every epoch with its history row (``HISTORY_COLUMNS``) and ``max_epochs``
            (live progress: ``serlib.modelling.systems`` appends it to the run's ``history.live.csv``).

    Returns:
        FitResult; the model holds the checkpoint with the best validation accuracy (ties: lower
        validation loss).

    Raises:
        NonFiniteLossError: a batch's loss is NaN or infinite (names the system, seed, epoch and batch).
    """
    _check_fit_inputs(data.x["train"], data.y["train"], data.x["val"], data.y["val"])
    if settings.trim and (data.split_lengths("train") is None or data.split_lengths("val") is None):
        raise ValueError("fit with trim needs the train and val lengths")
    set_seed(settings.seed)
    with training_mode(settings.train.deterministic):
        return _fit(model, data, settings, augment, on_epoch)


def _fit(
    model: nn.Module,
    data: SplitData,
    settings: TrainSettings,
    augment: Optional[nn.Module],
    on_epoch: Optional[Callable[[dict, int], None]],
) -> FitResult:
    train_cfg, seed, max_epochs, trim = settings.train, settings.seed, settings.max_epochs, settings.trim
    device = next(model.parameters()).device  # labels, indices and lengths follow the model; features may not
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(model, settings.lr, settings.weight_decay)
    step = TrainStep(model, optimizer, augment, train_cfg.grad_clip, amp=train_cfg.amp)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=train_cfg.plateau_factor,
        patience=train_cfg.plateau_patience,
        min_lr=train_cfg.min_lr,
    )
    rows, best = [], {"acc": -1.0, "loss": math.inf, "epoch": 0, "state": None}
    where = f"system {settings.name}, seed {seed}" if settings.name else f"{settings.desc} (seed {seed})"
    bar = tqdm(range(1, max_epochs + 1), desc=settings.desc, disable=not settings.progress, leave=False)
    for epoch in bar:
        start, epoch_lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
        try:
            train_loss, train_acc = _train_epoch(
                step,
                data.x["train"],
                data.y["train"],
                train_cfg.batch_size,
                generator,
                where,
                epoch,
                data.split_lengths("train"),
                trim,
                device,
            )
        except NonFiniteLossError:
            bar.close()
            raise
        val_loss, val_acc = evaluate(
            model, data.x["val"], data.y["val"], train_cfg.eval_batch_size, data.split_lengths("val"), trim
        )
        scheduler.step(val_acc)
        rows.append([epoch, train_loss, train_acc, val_loss, val_acc, epoch_lr, time.perf_counter() - start])
        if on_epoch is not None:
            on_epoch(dict(zip(HISTORY_COLUMNS, rows[-1])), max_epochs)
        if val_acc > best["acc"] or (val_acc == best["acc"] and val_loss < best["loss"]):
            best = {
                "acc": val_acc,
                "loss": val_loss,
                "epoch": epoch,
                "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            }
        bar.set_postfix(val_acc=f"{val_acc:.3f}", best=f"{best['acc']:.3f}")
        if epoch - best["epoch"] >= train_cfg.early_stop_patience:
            break
    bar.close()
    if best["state"] is None:
        raise ValueError(f"max_epochs must be at least 1, got {max_epochs}")
    model.load_state_dict(best["state"])
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    return FitResult(
        history,
        best["epoch"],
        int(history["epoch"].iloc[-1]),
        best["acc"],
        float(history["seconds"].mean()),
        best["state"],
    )


# --------------------------------------------------------------------------- checkpoints


# What a checkpoint holds besides its weights (``serlib.modelling.systems.train_run`` writes it), by type.
CHECKPOINT_FIELDS = {"state_dict": dict, "model": dict, "in_channels": int, "frames": int, "input": str, "key": str}


def read_checkpoint(path: str | Path, fix: str = "") -> dict:
    """The contents of ``checkpoint.pt``, loaded as data only: ``torch.load(weights_only=True)`` accepts
    tensors, numbers, text, lists and dicts and refuses anything else, so a file never runs code.

    Args:
        path: the checkpoint.
        fix: what the error message tells the user to do.

    Raises:
        CheckpointError: damaged, not a serlib checkpoint, or holding other objects (one line naming the file).
        OSError: the file cannot be read.
    """
    path = Path(path)
    fix = fix or "train the system again (serlib train PARAMS --system NAME), or export the bundle again"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ValueError... by cause
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if "weights only load failed" in first.lower() or "weights_only" in str(err):
            raise CheckpointError(
                f"{path}: refused: it holds Python objects other than tensors, numbers and text "
                f"(serlib loads checkpoints as data only and never runs code from a file); {fix}"
            ) from None
        raise CheckpointError(
            f"{path}: damaged, not a checkpoint torch can read ({type(err).__name__}: {first}); {fix}"
        ) from None
    problems = (
        ["not a mapping"]
        if not isinstance(state, dict)
        else [
            f"'{k}' {'missing' if k not in state else 'is not ' + t.__name__}"
            for k, t in CHECKPOINT_FIELDS.items()
            if not isinstance(state.get(k), t) or isinstance(state.get(k), bool)
        ]
    )
    if not problems and not all(isinstance(v, torch.Tensor) for v in state["state_dict"].values()):
        problems.append("'state_dict' holds more than tensors")
    if not problems and not (state.get("layers") is None or isinstance(state["layers"], list)):
        problems.append("'layers' is not a list")
    if problems:
        raise CheckpointError(f"{path}: not a serlib checkpoint ({'; '.join(problems)}); {fix}")
    return state


def classifier_from_state(
    state: dict, device: str | torch.device = "cpu", origin: str | Path = "checkpoint"
) -> nn.Module:
    """The trained classifier a checkpoint's contents (``read_checkpoint``) describe, in eval mode on ``device``.

    Raises:
        CheckpointError: the weights do not fit the network the checkpoint describes.
    """
    layers = state.get("layers")  # the layers of a wav2vec2_layers system (a learned sum in front)
    try:
        model = build_classifier(
            model_from_dict(state["model"], origin),
            state["in_channels"],
            len(layers) if layers and len(layers) > 1 else None,
        )
        model.load_state_dict(state["state_dict"])
    except (ConfigError, RuntimeError, ValueError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(
            f"{origin}: its weights do not fit the network it describes ({first}); train the "
            "system again or export the bundle again"
        ) from None
    return model.to(device).eval()


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a trained classifier from ``checkpoint.pt`` (eval mode; loaded as data only: ``read_checkpoint``)."""
    return classifier_from_state(read_checkpoint(path), device, path)
