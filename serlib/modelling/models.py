"""The paper's two classifiers over (batch, channels, frames) feature tensors (paper 3.1, 3.2).

- ``ShallowCNN`` (S1, S2): three temporal conv blocks, global average pooling, linear to 3 logits.
- ``ResAttn1DCNN`` (S3-S5, A1-A3): a 768 -> 384 stem, five residual blocks with
  squeeze-and-excitation, global average pooling, linear 64 -> 3. ``se`` and ``blocks`` switch
  the attention and the depth for the ablations; ``width_scale`` narrows every width (the demo
  profile only; 1.0 is the paper's network).

Built as the paper describes it, the full ResAttn1D-CNN has about 8.7 M parameters, not the
3.9 M the paper states; ``count_params`` measures it and the report shows both.

A ``model`` section becomes a network here and nowhere else: ``build_model`` (the section's network),
``build_classifier`` (behind a learned layer sum for ``wav2vec2_layers``), ``build_system_model`` (a
system's, with seeded initial weights, on its device).
"""

from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd
import torch
from torch import nn

from serlib.common.config import ModelConfig, SystemConfig
from serlib.common.paper import PAPER_INPUT_CHANNELS
from serlib.common.runtime import set_seed

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


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """``(batch, 1, frames)`` float mask, 1 on each clip's first ``lengths[i]`` frames (its real frames)."""
    return (torch.arange(frames, device=lengths.device) < lengths[:, None]).unsqueeze(1).float()


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the frames a ``(batch, 1, frames)`` mask keeps: ``(batch, C, frames)`` -> ``(batch, C)``."""
    return (x * mask).sum(dim=2) / mask.sum(dim=2).clamp_min(1.0)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm whose training statistics count each clip's real frames only (``model.mask_padding``).

    Called with a ``(batch, 1, frames)`` mask in training mode, the batch mean and variance (and the
    running statistics they update) ignore padded frames; in eval mode, or without a mask, it is
    ``nn.BatchNorm1d`` (a per-channel affine map at eval). State-dict keys are BatchNorm1d's.
    """

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if mask is None or not self.training:
            return super().forward(x)
        count = mask.sum() * 1.0  # real (clip, frame) positions, one count for every channel
        mean = (x * mask).sum(dim=(0, 2)) / count  # (C,)
        var = (((x - mean[None, :, None]) * mask) ** 2).sum(dim=(0, 2)) / count  # biased, for normalising
        with torch.no_grad():
            momentum = 0.1 if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
            unbiased = var.detach() * count / (count - 1).clamp_min(1.0)
            self.running_var.mul_(1 - momentum).add_(momentum * unbiased)
            self.num_batches_tracked.add_(1)
        y = (x - mean[None, :, None]) / torch.sqrt(var[None, :, None] + self.eps)
        return y * self.weight[None, :, None] + self.bias[None, :, None]


def _norm(channels: int, masked: bool) -> nn.BatchNorm1d:
    # Plain BatchNorm1d unless masking is asked for: the paper's network (and its int8 form) stays unchanged.
    return MaskedBatchNorm1d(channels) if masked else nn.BatchNorm1d(channels)


def _masked_layers(layers: nn.Sequential, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Run conv/BN/ReLU/dropout layers with the mask: masked BN statistics, padded frames zeroed at the end."""
    for layer in layers:
        x = layer(x, mask) if isinstance(layer, MaskedBatchNorm1d) else layer(x)
    return x * mask


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
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:  # (batch, C, frames)
        """``mask`` ``(batch, 1, frames)``: the squeeze averages each clip's real frames only."""
        squeezed = x.mean(dim=2) if mask is None else masked_mean(x, mask)  # (batch, C)
        return x * self.gate(squeezed).unsqueeze(2)


class ResidualBlock1d(nn.Module):
    """Two temporal convs (BN, ReLU), optional SE, dropout, then the residual addition.

    The shortcut is the identity when widths match and a 1x1 conv + BN projection otherwise.
    With ``masked`` (``model.mask_padding``) and a mask in ``forward``, BatchNorm statistics and the
    SE squeeze count real frames only and padded frames are zero after every layer, so a clip's
    output does not depend on how much padding follows it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        se: bool = True,
        se_reduction: int = 16,
        dropout: float = 0.25,
        masked: bool = False,
        separable: bool = False,
    ):
        super().__init__()
        self.kernel = kernel
        self.conv1 = temporal_conv(in_channels, out_channels, kernel, separable)
        self.bn1 = _norm(out_channels, masked)
        self.conv2 = temporal_conv(out_channels, out_channels, kernel, separable)
        self.bn2 = _norm(out_channels, masked)
        self.se = SqueezeExcite1d(out_channels, se_reduction) if se else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(nn.Conv1d(in_channels, out_channels, 1, bias=False), _norm(out_channels, masked))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(batch, in, frames)`` -> ``(batch, out, frames)``; ``mask`` ``(batch, 1, frames)`` or None."""
        if mask is None:
            y = self.act(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            y = self.dropout(self.se(y))
            return self.act(y + self.shortcut(x))
        y = self.act(_apply_norm(self.bn1, self.conv1(x), mask)) * mask  # the next conv sees zeros past the clip
        y = _apply_norm(self.bn2, self.conv2(y), mask)
        y = self.dropout(self.se(y, mask) if isinstance(self.se, SqueezeExcite1d) else y)
        shortcut = x if isinstance(self.shortcut, nn.Identity) else _masked_layers(self.shortcut, x, mask)
        return self.act(y + shortcut) * mask


def temporal_conv(in_channels: int, out_channels: int, kernel: int, separable: bool = False) -> nn.Module:
    """A same-length temporal convolution: standard, or depthwise (k taps per channel) then pointwise
    (1x1, in -> out) when ``separable`` (``model.conv: separable``; no norm between the two)."""
    if not separable:
        return nn.Conv1d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False)
    return nn.Sequential(
        nn.Conv1d(in_channels, in_channels, kernel, padding=kernel // 2, groups=in_channels, bias=False),
        nn.Conv1d(in_channels, out_channels, 1, bias=False),
    )


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (Okabe et al., 2018): a softmax attention over frames weights each
    frame; the output is the weighted mean and standard deviation per channel, ``(batch, 2 C)``.

    Args:
        channels: C.
        hidden: width of the attention's hidden layer (CHOSEN: 64).
    """

    def __init__(self, channels: int, hidden: int = 64):
        super().__init__()
        self.attention = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, 1, 1))

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(batch, C, frames)`` -> ``(batch, 2 C)``; ``mask`` ``(batch, 1, frames)``: padded frames get no weight."""
        scores = self.attention(x)  # (batch, 1, frames)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, float("-inf"))
        weights = torch.softmax(scores, dim=2)
        mean = (x * weights).sum(dim=2)
        var = ((x * x) * weights).sum(dim=2) - mean * mean
        return torch.cat([mean, var.clamp_min(1e-6).sqrt()], dim=1)


def _apply_norm(norm: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return norm(x, mask) if isinstance(norm, MaskedBatchNorm1d) else norm(x)


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
        mask_padding: pool, squeeze and normalise over each clip's real frames (``forward``'s ``lengths``);
            False is the paper's network, which averages over the whole window, padding included.
    """

    def __init__(
        self,
        in_channels: int = 768,
        n_classes: int = 3,
        se: bool = True,
        se_reduction: int = 16,
        blocks: Optional[Sequence[int]] = None,
        width_scale: float = 1.0,
        stem_dropout: float = 0.35,
        block_dropout: float = 0.25,
        mask_padding: bool = False,
        pooling: str = "mean",
        separable: bool = False,
    ):
        super().__init__()
        self.mask_padding = mask_padding
        kept = list(range(len(RESATTN_BLOCKS))) if blocks is None else list(blocks)
        if not kept or len(set(kept)) != len(kept) or not all(0 <= b < len(RESATTN_BLOCKS) for b in kept):
            raise ValueError(f"blocks must be distinct indices in 0-4, got {blocks}")  # load_config checks the YAML's
        stem_width = _scaled(RESATTN_STEM[0], width_scale)
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, stem_width, RESATTN_STEM[1], padding=RESATTN_STEM[1] // 2, bias=False),
            _norm(stem_width, mask_padding),
            nn.ReLU(inplace=True),
            nn.Dropout(stem_dropout),
        )
        layers, width = [], stem_width
        for index in kept:
            out_width, kernel = _scaled(RESATTN_BLOCKS[index][0], width_scale), RESATTN_BLOCKS[index][1]
            layers.append(
                ResidualBlock1d(width, out_width, kernel, se, se_reduction, block_dropout, mask_padding, separable)
            )
            width = out_width
        self.blocks = nn.Sequential(*layers)
        if pooling not in ("mean", "attentive"):
            raise ValueError(f"pooling must be 'mean' or 'attentive', got {pooling!r}")
        self.attentive = pooling == "attentive"  # a Python flag, so torch.fx traces one branch (int8 form)
        self.pool = nn.AdaptiveAvgPool1d(1) if pooling == "mean" else AttentiveStatsPool(width)
        self.head = nn.Linear(width if pooling == "mean" else 2 * width, n_classes)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(batch, in, frames)`` (+ true frame counts ``(batch,)``) -> ``(batch, n_classes)`` logits.

        ``lengths`` is used only with ``mask_padding``; the paper's network pools the whole window.
        """
        if lengths is None or not self.mask_padding:
            y = self.blocks(self.stem(x))  # (batch, 64, frames)
            return self.head(self.pool(y) if self.attentive else self.pool(y).squeeze(2))
        mask = frame_mask(lengths, x.shape[2])  # (batch, 1, frames)
        y = _masked_layers(self.stem, x * mask, mask)
        for block in self.blocks:
            y = block(y, mask)
        return self.head(self.pool(y, mask) if self.attentive else masked_mean(y, mask))


class ShallowCNN(nn.Module):
    """Three-layer 1-D CNN baseline (paper 3.1): conv, BN, ReLU, dropout 0.2 per block.

    ``mask_padding``: as in ``ResAttn1DCNN`` (BN statistics and the pooling over real frames only).
    """

    def __init__(
        self,
        in_channels: int = 64,
        n_classes: int = 3,
        width_scale: float = 1.0,
        dropout: float = 0.2,
        mask_padding: bool = False,
    ):
        super().__init__()
        self.mask_padding = mask_padding
        layers, width = [], in_channels
        for out_width, kernel in SHALLOW_BLOCKS:
            out_width = _scaled(out_width, width_scale)
            layers += [
                nn.Conv1d(width, out_width, kernel, padding=kernel // 2),
                _norm(out_width, mask_padding),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
            ]
            width = out_width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(batch, in, frames)`` (+ ``lengths`` ``(batch,)``, used with ``mask_padding``) -> ``(batch, classes)``."""
        if lengths is None or not self.mask_padding:
            return self.head(self.pool(self.features(x)).squeeze(2))
        mask = frame_mask(lengths, x.shape[2])  # (batch, 1, frames)
        y = x * mask
        for i in range(0, len(self.features), 4):  # conv, BN, ReLU, dropout; the next conv sees zeros past the clip
            y = _masked_layers(self.features[i : i + 4], y, mask)
        return self.head(masked_mean(y, mask))


def build_model(model_cfg: ModelConfig, in_channels: int, n_classes: int = 3) -> nn.Module:
    """The classifier a system's ``model`` section describes.

    Args:
        model_cfg: ``arch`` (resattn | shallow), ``se``, ``se_reduction``, ``blocks``, ``width_scale``.
        in_channels: feature channels of the system's input (768 wav2vec2, 64 log-Mel).
        n_classes: logits.
    """
    if model_cfg.arch == "shallow":
        if model_cfg.pooling != "mean" or model_cfg.conv != "standard":
            raise ValueError(
                "model.pooling: attentive and model.conv: separable apply to arch: resattn only; "
                "the shallow baseline keeps the paper's mean pooling and standard convs"
            )
        return ShallowCNN(
            in_channels, n_classes, width_scale=model_cfg.width_scale, mask_padding=model_cfg.mask_padding
        )
    if model_cfg.arch == "resattn":
        return ResAttn1DCNN(
            in_channels,
            n_classes,
            se=model_cfg.se,
            se_reduction=model_cfg.se_reduction,
            blocks=model_cfg.blocks,
            width_scale=model_cfg.width_scale,
            mask_padding=model_cfg.mask_padding,
            pooling=model_cfg.pooling,
            separable=model_cfg.conv == "separable",
        )
    raise ValueError(f"model.arch must be 'resattn' or 'shallow', got {model_cfg.arch!r}")


class LayerSum(nn.Module):
    """A softmax-weighted sum of encoder layers (SUPERB; Pepino et al. 2021): ``(b, L, C, T) -> (b, C, T)``.

    The weights start equal (zeros before the softmax) and train with the network behind it.
    """

    def __init__(self, layers: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(layers))

    def weights(self) -> torch.Tensor:
        """The ``(layers,)`` softmax weights."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != len(self.logits):
            raise ValueError(
                f"LayerSum({len(self.logits)}) expects (batch, {len(self.logits)}, channels, frames), "
                f"got {tuple(x.shape)}"
            )
        return torch.einsum("l,blct->bct", self.weights().to(x.dtype), x)


class LayerSumClassifier(nn.Module):
    """``input: wav2vec2_layers``: ``LayerSum`` in front of a system's network (S6 = S5 on the learned sum).

    Training applies Tri-Aug between the two (``serlib.modelling.train.TrainStep``: on the sum, where S5
    augments its single layer); ``forward`` is the whole model, as scoring and prediction run it.
    """

    def __init__(self, mix: LayerSum, net: nn.Module):
        super().__init__()
        self.mix, self.net = mix, net

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        mixed = self.mix(x)
        return self.net(mixed) if lengths is None else self.net(mixed, lengths)


def build_classifier(
    model_cfg: ModelConfig, in_channels: int, layers: Optional[int] = None, n_classes: int = 3
) -> nn.Module:
    """``build_model``, behind a learned ``LayerSum`` of ``layers`` encoder layers when given (``wav2vec2_layers``)."""
    net = build_model(model_cfg, in_channels, n_classes)
    return net if layers is None else LayerSumClassifier(LayerSum(layers), net)


def build_system_model(
    system: SystemConfig, in_channels: int, device: torch.device, seed: int, layers: Optional[int] = None
) -> nn.Module:
    """The system's classifier with seeded initial weights, on ``device``; ``layers``: a learned sum of that
    many encoder layers in front of it (``input: wav2vec2_layers``)."""
    set_seed(seed)
    return build_classifier(system.model, in_channels, layers).to(device)


def count_params(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def paper_width_params(model_cfg: ModelConfig, input: str, layers: Optional[int] = None) -> int:
    """Parameters of a system's network at the paper's widths and input channels (width_scale 1);
    ``layers``: the learned layer weights in front of it (``wav2vec2_layers``)."""
    full = ModelConfig(**{**model_cfg.__dict__, "width_scale": 1.0})
    return count_params(build_model(full, PAPER_INPUT_CHANNELS[input])) + (layers or 0)


def _layer_rows(model: nn.Module) -> list[tuple[str, nn.Module, str, str]]:
    """(name, module, kind, detail) of the layers a structure diagram shows, in forward order."""
    if isinstance(model, ResAttn1DCNN):
        conv = model.stem[0]
        rows = [
            (
                "stem",
                model.stem,
                "Conv1d+BN+ReLU+Dropout",
                f"{conv.in_channels}->{conv.out_channels}, k={conv.kernel_size[0]}, p=0.35",
            )
        ]
        for i, block in enumerate(model.blocks):
            se = (
                "SE r=%d" % (block.se.gate[0].in_features // block.se.gate[0].out_features)
                if isinstance(block.se, SqueezeExcite1d)
                else "no SE"
            )
            proj = ", proj 1x1" if not isinstance(block.shortcut, nn.Identity) else ""
            rows.append(
                (
                    f"block{i + 1}",
                    block,
                    "ResBlock",
                    f"{block.conv1.in_channels}->{block.conv1.out_channels}, k={block.kernel}, "
                    f"2 convs, {se}, p=0.25{proj}",
                )
            )
    else:
        rows = []
        convs = [m for m in model.features if isinstance(m, nn.Conv1d)]
        for i, conv in enumerate(convs):
            rows.append(
                (
                    f"conv{i + 1}",
                    conv,
                    "Conv1d+BN+ReLU+Dropout",
                    f"{conv.in_channels}->{conv.out_channels}, k={conv.kernel_size[0]}, p=0.2",
                )
            )
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
    hooks = [
        module.register_forward_hook(lambda m, i, o, n=name: shapes.__setitem__(n, tuple(o.shape[1:])))
        for name, module, _, _ in rows
    ]
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
    table = pd.DataFrame(
        [
            {
                "layer": name,
                "kind": kind,
                "detail": detail,
                "output_shape": " x ".join(map(str, shapes.get(name, ()))),
                "params": count_params(module),
            }
            for name, module, kind, detail in rows
        ]
    )
    if isinstance(model, ShallowCNN):  # BN of each conv block is counted with its conv
        bns = [m for m in model.features if isinstance(m, nn.BatchNorm1d)]
        for i, bn in enumerate(bns):
            table.loc[i, "params"] += count_params(bn)
    table.loc[table["layer"] == "head", "output_shape"] = str(model.head.out_features)
    return table
