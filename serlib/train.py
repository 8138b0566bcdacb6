"""The training engine (paper 3.3-3.4, 4.2): one loop for every system and seed.

Cross-entropy; AdamW (0.9, 0.999); gradient-norm clipping; ReduceLROnPlateau on validation
accuracy; early stopping; the checkpoint with the best validation accuracy is kept and test is
scored at that checkpoint only. Features are loaded once and stay on the training device.

This module owns the engine on in-memory tensors:
- ``set_seed`` / ``resolve_device``: reproducibility and the training device.
- ``fit(model, train_x, train_y, val_x, val_y, ...)`` -> ``FitResult``: the epoch loop.
- ``predict_proba`` / ``evaluate``: scoring; ``load_checkpoint``: rebuild a trained classifier.
- ``time_training_epoch``: seconds per epoch at a given scale, from a few timed steps.

Running the configured systems (data splits, run folders, learning-rate selection, all systems x
seeds, the results table) lives in ``serlib.systems``, which builds on this engine.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from . import CLASSES
from .config import TrainConfig
from .models import build_model, count_params

HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]


# --------------------------------------------------------------------------- reproducibility


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and, optionally, force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu (the feature stage's rule, errors naming train.device)."""
    from .encoders import resolve_device as resolve

    return resolve(name, key="train.device")


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


def _batches(n: int, batch_size: int, generator: Optional[torch.Generator] = None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order.split(batch_size))


def _train_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
                 augment: Optional[nn.Module], batch_size: int, grad_clip: float,
                 generator: torch.Generator) -> tuple[float, float]:
    model.train()
    total_loss, correct = 0.0, 0
    for index in _batches(len(y), batch_size, generator):
        index = index.to(x.device)
        inputs, targets = x[index], y[index]  # (batch, channels, frames), (batch,)
        if augment is not None:
            inputs = augment.train()(inputs, inplace=True)  # x[index] is already a fresh copy: no second one
        logits = model(inputs)  # (batch, 3)
        loss = nn.functional.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        total_loss += loss.item() * len(targets)
        correct += (logits.argmax(1) == targets).sum().item()
    return total_loss / len(y), correct / len(y)


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Class probabilities (n, 3) of ``x`` (n, channels, frames) in eval mode, on ``x``'s device."""
    model.eval()
    device = next(model.parameters(), x).device  # a module without parameters (int8) runs where x is
    probs = [torch.softmax(model(x[i:i + batch_size].to(device)), dim=1) for i in range(0, len(x), batch_size)]
    return torch.cat(probs) if probs else torch.zeros(0, len(CLASSES))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> tuple[float, float]:
    """(cross-entropy loss, accuracy) of ``model`` on ``x`` (n, channels, frames), ``y`` (n,)."""
    probs = predict_proba(model, x, batch_size)
    loss = nn.functional.nll_loss(torch.log(probs.clamp_min(1e-12)), y.to(probs.device)).item()
    return loss, (probs.argmax(1) == y.to(probs.device)).float().mean().item()


def _check_fit_inputs(train_x, train_y, val_x, val_y) -> None:
    for name, x, y in (("train", train_x, train_y), ("val", val_x, val_y)):
        if x.dim() != 3 or len(x) != len(y) or len(y) == 0:
            raise ValueError(f"{name}: expected x (n, channels, frames) and y (n,) with n > 0, "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")


def fit(model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
        val_y: torch.Tensor, train_cfg: TrainConfig, augment: Optional[nn.Module] = None,
        lr: Optional[float] = None, weight_decay: Optional[float] = None, max_epochs: Optional[int] = None,
        seed: int = 0, progress: bool = True, desc: str = "train") -> FitResult:
    """Train ``model`` with the paper's protocol and leave the best-validation weights in it.

    Args:
        model: the classifier, already on the device of ``train_x``.
        train_x: (n_train, channels, frames) float32 features; ``train_y``: (n_train,) label indices.
        val_x, val_y: the validation split, same layout.
        train_cfg: batch size, scheduler, early stopping, clipping (``lr``/``weight_decay`` unless given).
        augment: a ``TriAug`` applied to training batches only (in place on each freshly gathered
            batch, so ``train_x`` is never modified), or None.
        lr, weight_decay, max_epochs: override ``train_cfg`` (learning-rate selection).
        seed: seeds the batch order and the augmentation draws.
        progress: show a tqdm bar over epochs.
        desc: label of the bar.

    Returns:
        FitResult; the model holds the checkpoint with the best validation accuracy (ties: lower
        validation loss).
    """
    _check_fit_inputs(train_x, train_y, val_x, val_y)
    lr = train_cfg.lr if lr is None else lr
    weight_decay = train_cfg.weight_decay if weight_decay is None else weight_decay
    max_epochs = train_cfg.max_epochs if max_epochs is None else max_epochs
    set_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=train_cfg.plateau_factor, patience=train_cfg.plateau_patience,
        min_lr=train_cfg.min_lr)
    rows, best = [], {"acc": -1.0, "loss": math.inf, "epoch": 0, "state": None}
    bar = tqdm(range(1, max_epochs + 1), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        start, epoch_lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
        train_loss, train_acc = _train_epoch(model, train_x, train_y, optimizer, augment,
                                             train_cfg.batch_size, train_cfg.grad_clip, generator)
        val_loss, val_acc = evaluate(model, val_x, val_y, train_cfg.eval_batch_size)
        scheduler.step(val_acc)
        rows.append([epoch, train_loss, train_acc, val_loss, val_acc, epoch_lr, time.perf_counter() - start])
        if val_acc > best["acc"] or (val_acc == best["acc"] and val_loss < best["loss"]):
            best = {"acc": val_acc, "loss": val_loss, "epoch": epoch,
                    "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        bar.set_postfix(val_acc=f"{val_acc:.3f}", best=f"{best['acc']:.3f}")
        if epoch - best["epoch"] >= train_cfg.early_stop_patience:
            break
    bar.close()
    if best["state"] is None:
        raise ValueError(f"max_epochs must be at least 1, got {max_epochs}")
    model.load_state_dict(best["state"])
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    return FitResult(history, best["epoch"], int(history["epoch"].iloc[-1]), best["acc"],
                     float(history["seconds"].mean()), best["state"])


# --------------------------------------------------------------------------- checkpoints


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a trained classifier from ``checkpoint.pt`` (eval mode)."""
    from .config import ModelConfig

    state = torch.load(Path(path), map_location=device, weights_only=False)
    model = build_model(ModelConfig(**state["model"]), state["in_channels"]).to(device)
    model.load_state_dict(state["state_dict"])
    return model.eval()


# --------------------------------------------------------------------------- timing


def time_training_epoch(model_cfg, n_train: int = 6096, n_val: int = 762, channels: int = 768,
                        frames: int = 400, batch_size: int = 64, device: str = "cpu",
                        n_batches: int = 2) -> dict:
    """Seconds per epoch at a given scale, measured on a few batches and extrapolated.

    One warm-up step, then ``n_batches`` timed training steps (forward, backward, clip, AdamW) and one
    timed evaluation batch; an epoch is ceil(n_train / batch) training steps plus the validation pass.
    """
    dev = resolve_device(device)
    model = build_model(model_cfg, channels).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch_size, channels, frames, device=dev)
    y = torch.randint(0, len(CLASSES), (batch_size,), device=dev)

    def step() -> None:
        loss = nn.functional.cross_entropy(model.train()(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        optimizer.step()

    def timed(fn, repeats: int) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / repeats

    step()
    train_step = timed(step, n_batches)
    with torch.no_grad():
        eval_step = timed(lambda: model.eval()(x), 1)
    epoch = math.ceil(n_train / batch_size) * train_step + math.ceil(n_val / batch_size) * eval_step
    return {"device": str(dev), "params": count_params(model), "train_step_s": train_step,
            "eval_step_s": eval_step, "seconds_per_epoch": epoch, "timed_batches": n_batches,
            "threads": torch.get_num_threads()}
