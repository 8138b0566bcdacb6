"""The paper's two classifiers over (batch, channels, frames) feature tensors (paper 3.1, 3.2).

- ``ShallowCNN`` (S1, S2): three temporal conv blocks, global average pooling, linear to 3 logits.
- ``ResAttn1DCNN`` (S3-S5, A1-A3): a 768 -> 384 stem, five residual blocks with
  squeeze-and-excitation, global average pooling, linear 64 -> 3. ``se`` and ``blocks`` switch
  the attention and the depth for the ablations; ``width_scale`` narrows every width (the demo
  profile only; 1.0 is the paper's network).

Built as the paper describes it, the full ResAttn1D-CNN has about 8.7 M parameters, not the
3.9 M the paper states; ``count_params`` measures it and the report shows both.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd
import torch
from torch import nn

from serlib.common.config import ModelConfig
from serlib.common.paper import PAPER_INPUT_CHANNELS

# The paper's residual blocks (3.2): (width, kernel), tapering from long to short patterns.
RESATTN_BLOCKS: tuple[tuple[int, int], ...] = ((384, 9), (384, 7), (256, 5), (128, 5), (64, 3))
RESATTN_STEM: tuple[int, int] = (384, 9)  # stem width and kernel (768 -> 384, k = 9)
# The shallow baseline (3.1): (width, kernel) per block.
SHALLOW_BLOCKS: tuple[tuple[int, int], ...] = ((64, 5), (128, 3), (64, 3))
# A3 (-Depth) keeps blocks 1, 3 and 5 (0-based 0, 2, 4): the 384 -> 256 -> 64 taper, the long
# first kernel and the 64-wide last block the head expects all survive; only depth changes.
THREE_BLOCKS: tuple[int, ...] = (0, 2, 4)


def _scaled(width: int, scale: float) -> int:
    """A width narrowed by ``scale``, kept a multiple of 4 and at least 8."""
    return max(8, int(round(width * scale / 4.0)) * 4)


class SqueezeExcite1d(nn.Module):
    """Channel attention (Hu et al.): gate each channel by a function of its time average.

    Args:
        channels: feature channels C.
        reduction: bottleneck ratio r (paper: 16).
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, C, frames)
        weights = self.gate(x.mean(dim=2))  # (batch, C)
        return x * weights.unsqueeze(2)


class ResidualBlock1d(nn.Module):
    """Two temporal convs (BN, ReLU), optional SE, dropout, then the residual addition.

    The shortcut is the identity when widths match and a 1x1 conv + BN projection otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, se: bool = True,
                 se_reduction: int = 16, dropout: float = 0.25):
        super().__init__()
        self.kernel = kernel
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel, padding=kernel // 2, bias=False)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.se = SqueezeExcite1d(out_channels, se_reduction) if se else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.shortcut = nn.Identity() if in_channels == out_channels else nn.Sequential(
            nn.Conv1d(in_channels, out_channels, 1, bias=False), nn.BatchNorm1d(out_channels))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, in, frames) -> (batch, out, frames)
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y = self.dropout(self.se(y))
        return self.act(y + self.shortcut(x))


class ResAttn1DCNN(nn.Module):
    """Residual squeeze-and-excitation 1-D CNN (paper 3.2).

    Args:
        in_channels: input channels (768 for wav2vec 2.0-base).
        n_classes: output logits (3).
        se: squeeze-and-excitation in every block (False for S3 / A2).
        se_reduction: SE ratio r.
        blocks: which of the five blocks to keep (0-based); None = all five (A3 uses ``THREE_BLOCKS``).
        width_scale: multiply every width (1.0 = the paper).
        stem_dropout: dropout after the stem (paper: 0.35).
        block_dropout: dropout inside each block (paper: 0.25).
    """

    def __init__(self, in_channels: int = 768, n_classes: int = 3, se: bool = True, se_reduction: int = 16,
                 blocks: Optional[Sequence[int]] = None, width_scale: float = 1.0,
                 stem_dropout: float = 0.35, block_dropout: float = 0.25):
        super().__init__()
        kept = list(range(len(RESATTN_BLOCKS))) if blocks is None else list(blocks)
        if not kept or len(set(kept)) != len(kept) or not all(0 <= b < len(RESATTN_BLOCKS) for b in kept):
            raise ValueError(f"blocks must be distinct indices in 0-4, got {blocks}")  # load_config checks the YAML's
        stem_width = _scaled(RESATTN_STEM[0], width_scale)
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, stem_width, RESATTN_STEM[1], padding=RESATTN_STEM[1] // 2, bias=False),
            nn.BatchNorm1d(stem_width), nn.ReLU(inplace=True), nn.Dropout(stem_dropout))
        layers, width = [], stem_width
        for index in kept:
            out_width, kernel = _scaled(RESATTN_BLOCKS[index][0], width_scale), RESATTN_BLOCKS[index][1]
            layers.append(ResidualBlock1d(width, out_width, kernel, se, se_reduction, block_dropout))
            width = out_width
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, in, frames) -> (batch, n_classes)
        y = self.blocks(self.stem(x))  # (batch, 64, frames)
        return self.head(self.pool(y).squeeze(2))


class ShallowCNN(nn.Module):
    """Three-layer 1-D CNN baseline (paper 3.1): conv, BN, ReLU, dropout 0.2 per block."""

    def __init__(self, in_channels: int = 64, n_classes: int = 3, width_scale: float = 1.0, dropout: float = 0.2):
        super().__init__()
        layers, width = [], in_channels
        for out_width, kernel in SHALLOW_BLOCKS:
            out_width = _scaled(out_width, width_scale)
            layers += [nn.Conv1d(width, out_width, kernel, padding=kernel // 2), nn.BatchNorm1d(out_width),
                       nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = out_width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, in, frames) -> (batch, n_classes)
        return self.head(self.pool(self.features(x)).squeeze(2))


def build_model(model_cfg: ModelConfig, in_channels: int, n_classes: int = 3) -> nn.Module:
    """The classifier a system's ``model`` section describes.

    Args:
        model_cfg: ``arch`` (resattn | shallow), ``se``, ``se_reduction``, ``blocks``, ``width_scale``.
        in_channels: feature channels of the system's input (768 wav2vec2, 64 log-Mel).
        n_classes: logits.
    """
    if model_cfg.arch == "shallow":
        return ShallowCNN(in_channels, n_classes, width_scale=model_cfg.width_scale)
    if model_cfg.arch == "resattn":
        return ResAttn1DCNN(in_channels, n_classes, se=model_cfg.se, se_reduction=model_cfg.se_reduction,
                            blocks=model_cfg.blocks, width_scale=model_cfg.width_scale)
    raise ValueError(f"model.arch must be 'resattn' or 'shallow', got {model_cfg.arch!r}")


def count_params(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def paper_width_params(model_cfg: ModelConfig, input: str) -> int:
    """Parameters of a system's network at the paper's widths and input channels (width_scale 1)."""
    full = ModelConfig(**{**model_cfg.__dict__, "width_scale": 1.0})
    return count_params(build_model(full, PAPER_INPUT_CHANNELS[input]))


def _layer_rows(model: nn.Module) -> list[tuple[str, nn.Module, str, str]]:
    """(name, module, kind, detail) of the layers a structure diagram shows, in forward order."""
    if isinstance(model, ResAttn1DCNN):
        conv = model.stem[0]
        rows = [("stem", model.stem, "Conv1d+BN+ReLU+Dropout",
                 f"{conv.in_channels}->{conv.out_channels}, k={conv.kernel_size[0]}, p=0.35")]
        for i, block in enumerate(model.blocks):
            se = "SE r=%d" % (block.se.gate[0].in_features // block.se.gate[0].out_features) \
                if isinstance(block.se, SqueezeExcite1d) else "no SE"
            proj = ", proj 1x1" if not isinstance(block.shortcut, nn.Identity) else ""
            rows.append((f"block{i + 1}", block, "ResBlock",
                         f"{block.conv1.in_channels}->{block.conv1.out_channels}, k={block.kernel}, "
                         f"2 convs, {se}, p=0.25{proj}"))
    else:
        rows = []
        convs = [m for m in model.features if isinstance(m, nn.Conv1d)]
        for i, conv in enumerate(convs):
            rows.append((f"conv{i + 1}", conv, "Conv1d+BN+ReLU+Dropout",
                         f"{conv.in_channels}->{conv.out_channels}, k={conv.kernel_size[0]}, p=0.2"))
    rows.append(("pool", model.pool, "GlobalAvgPool", "mean over frames"))
    rows.append(("head", model.head, "Linear", f"{model.head.in_features}->{model.head.out_features}"))
    return rows


def model_summary(model: nn.Module, input_shape: tuple[int, int]) -> pd.DataFrame:
    """One row per layer of the structure: name, kind, detail, output shape and parameters.

    Runs one forward pass on zeros in eval mode to record each layer's output shape.

    Args:
        model: a ``ResAttn1DCNN`` or ``ShallowCNN``.
        input_shape: (channels, frames) of one utterance, e.g. (768, 400).

    Returns:
        DataFrame with columns layer, kind, detail, output_shape (str), params (int).
        The ``params`` column sums to ``count_params(model)``.
    """
    rows = _layer_rows(model)
    shapes: dict[str, tuple] = {}
    hooks = [module.register_forward_hook(lambda m, i, o, n=name: shapes.__setitem__(n, tuple(o.shape[1:])))
             for name, module, _, _ in rows]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    table = pd.DataFrame([{"layer": name, "kind": kind, "detail": detail,
                           "output_shape": " x ".join(map(str, shapes.get(name, ()))),
                           "params": count_params(module)} for name, module, kind, detail in rows])
    if isinstance(model, ShallowCNN):  # BN of each conv block is counted with its conv
        bns = [m for m in model.features if isinstance(m, nn.BatchNorm1d)]
        for i, bn in enumerate(bns):
            table.loc[i, "params"] += count_params(bn)
    table.loc[table["layer"] == "head", "output_shape"] = str(model.head.out_features)
    return table
