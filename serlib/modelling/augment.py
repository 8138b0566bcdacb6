"""Tri-Aug (paper 2.4): noise, random crop-and-pad and temporal masking on feature tensors.

Applied on the fly to training batches of shape (batch, channels, frames), on the batch's own
device; each operation is sampled independently per utterance, so they may co-occur. The module
is the identity in eval mode (validation and test are never augmented).

Gradients pass through it (S6 augments the learned layer sum, whose weights train through the
crop and the masks); the noise scale, a clip's own std, is a constant to them (computed detached).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from serlib.common.config import AugmentConfig, SystemConfig
from serlib.common.paper import PAPER_FRAMES  # the paper's crop of 380 frames is stated for 400-frame inputs


class TriAug(nn.Module):
    """Gaussian noise, random crop-and-pad and SpecAugment-style temporal masking.

    Args:
        noise_prob: probability of additive Gaussian noise per utterance (CHOSEN; paper: not stated).
        noise_std: noise std relative to each utterance's own feature std (CHOSEN; paper: "small").
        crop_prob: probability of crop-and-pad per utterance (paper: 0.5).
        crop_frames: frames kept by the crop at 400 input frames (paper: 380); other input lengths
            keep the same fraction (95 %).
        mask_prob: probability of temporal masking per utterance (paper: 0.25).
        mask_spans: (min, max) contiguous spans per masked utterance (paper: 1-2).
        mask_width: (min, max) frames per span (paper: 5-16).
        mask_channel_groups: channels are split into this many contiguous groups (CHOSEN).
        mask_groups_max: each span zeroes 1..this many randomly chosen groups (CHOSEN).

    ``sync_free``: draw every operation for every row and keep the chosen rows' results with
    ``torch.where`` instead of gathering the chosen rows (``nonzero`` waits for the GPU three times per
    batch). The draws then differ from the gathering path for the same seed (more numbers are drawn),
    with the same distribution per row (tested). None (default): sync-free on a CUDA device only, so CPU
    runs keep their augmentations and their results.

    After each training-mode call, ``last_applied`` maps "noise", "crop", "mask" to a bool
    tensor (batch,) saying which utterances got that operation (for tests and figures).
    """

    def __init__(
        self,
        noise_prob: float = 0.5,
        noise_std: float = 0.05,
        crop_prob: float = 0.5,
        crop_frames: int = 380,
        mask_prob: float = 0.25,
        mask_spans: Sequence[int] = (1, 2),
        mask_width: Sequence[int] = (5, 16),
        mask_channel_groups: int = 4,
        mask_groups_max: int = 2,
        within_clip: bool = False,
        sync_free: Optional[bool] = None,
    ):
        super().__init__()
        for name, p in (("noise_prob", noise_prob), ("crop_prob", crop_prob), ("mask_prob", mask_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"augment.{name} must be a probability in [0, 1], got {p}")
        if not (len(mask_spans) == 2 and 1 <= mask_spans[0] <= mask_spans[1]):
            raise ValueError(f"augment.mask_spans must be [min, max] with 1 <= min <= max, got {mask_spans}")
        if not (len(mask_width) == 2 and 1 <= mask_width[0] <= mask_width[1]):
            raise ValueError(f"augment.mask_width must be [min, max] with 1 <= min <= max, got {mask_width}")
        if not 1 <= mask_groups_max <= mask_channel_groups:
            raise ValueError("augment.mask_groups_max must be between 1 and augment.mask_channel_groups")
        self.noise_prob, self.noise_std = noise_prob, noise_std
        self.crop_prob, self.crop_frames = crop_prob, crop_frames
        self.mask_prob, self.mask_spans, self.mask_width = mask_prob, tuple(mask_spans), tuple(mask_width)
        self.mask_channel_groups, self.mask_groups_max = mask_channel_groups, mask_groups_max
        self.within_clip, self.sync_free = within_clip, sync_free
        self.last_applied: dict[str, torch.Tensor] = {}

    @classmethod
    def from_config(cls, cfg: AugmentConfig, within_clip: Optional[bool] = None) -> "TriAug":
        """The Tri-Aug an ``augment`` section of the parameters describes; ``within_clip`` replaces the section's
        (a system's own ``within_clip``)."""
        return cls(
            cfg.noise_prob,
            cfg.noise_std,
            cfg.crop_prob,
            cfg.crop_frames,
            cfg.mask_prob,
            cfg.mask_spans,
            cfg.mask_width,
            cfg.mask_channel_groups,
            cfg.mask_groups_max,
            cfg.within_clip if within_clip is None else within_clip,
        )

    def forward(
        self,
        x: torch.Tensor,
        generator: Optional[torch.Generator] = None,
        inplace: bool = False,
        lengths: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Augment a batch (training mode) or return it unchanged (eval mode).

        Args:
            x: (batch, channels, frames) features.
            generator: optional torch generator on ``x.device`` (default: the global RNG).
            inplace: augment ``x`` itself instead of a copy (saves one batch-sized copy). Only for a
                tensor nothing else reads, e.g. a batch just gathered with ``x[index]``. The random
                draws, and so the result, are the same either way.
            lengths: (batch,) real frames per clip; used with ``within_clip`` (crop, masks and noise then
                stay inside each clip's real frames, and the noise scale is its real frames' std).
        Returns:
            (batch, channels, frames): a new tensor, ``x`` unmodified; with ``inplace``, ``x`` itself.
        """
        if not self.training:
            return x
        if x.dim() != 3:
            raise ValueError(f"TriAug expects (batch, channels, frames), got shape {tuple(x.shape)}")
        batch = x.shape[0]

        def draw(p: float) -> torch.Tensor:
            return torch.rand(batch, device=x.device, generator=generator) < p

        applied = {"noise": draw(self.noise_prob), "crop": draw(self.crop_prob), "mask": draw(self.mask_prob)}
        out = x if inplace else x.clone()  # each operation then rewrites only its chosen rows in place
        dense = self.sync_free if self.sync_free is not None else x.device.type == "cuda"
        if dense:
            within = lengths.to(x.device).clamp(1, x.shape[2]) if self.within_clip and lengths is not None else None
            self._dense(out, applied, generator, within)
        elif self.within_clip and lengths is not None:
            lengths = lengths.to(x.device).clamp(1, x.shape[2])
            self._noise_within(out, applied["noise"], generator, lengths)
            self._crop_within(out, applied["crop"], generator, lengths)
            self._mask_within(out, applied["mask"], generator, lengths)
        else:
            self._noise(out, applied["noise"], generator)
            self._crop(out, applied["crop"], generator)
            self._mask(out, applied["mask"], generator)
        self.last_applied = applied
        return out

    def _noise(self, x: torch.Tensor, chosen: torch.Tensor, gen: Optional[torch.Generator]) -> None:
        """In place on ``x`` (batch, channels, frames): noise drawn only for the chosen utterances."""
        rows = chosen.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        sub = x[rows]  # (chosen, channels, frames), a copy
        scale = sub.detach().std(dim=(1, 2), keepdim=True) * self.noise_std  # (chosen, 1, 1), per-utterance scale
        x[rows] = sub.add_(torch.randn(sub.shape, device=x.device, generator=gen, dtype=x.dtype).mul_(scale))

    def crop_length(self, frames: int) -> int:
        """Frames kept by the crop for inputs of ``frames`` frames (380 at the paper's 400)."""
        return max(1, min(frames, round(frames * self.crop_frames / PAPER_FRAMES)))

    def crop_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames the within-clip crop keeps of clips of ``lengths`` real frames (the same 95 %, at least 1)."""
        return torch.clamp(torch.round(lengths * (self.crop_frames / PAPER_FRAMES)).long(), min=1).minimum(lengths)

    def _crop(self, x: torch.Tensor, chosen: torch.Tensor, gen: Optional[torch.Generator]) -> None:
        """In place on ``x``: only the chosen utterances are gathered."""
        rows = chosen.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        _, channels, frames = x.shape
        keep = self.crop_length(frames)
        # Random window start per chosen utterance; the window moves to frame 0, the tail is zero-padded.
        start = (torch.rand(len(rows), device=x.device, generator=gen) * (frames - keep + 1)).long()
        index = start.unsqueeze(1) + torch.arange(keep, device=x.device)  # (chosen, keep)
        window = torch.gather(x[rows], 2, index.unsqueeze(1).expand(len(rows), channels, keep))
        x[rows, :, :keep] = window
        x[rows, :, keep:] = 0.0

    def span_masks(
        self,
        batch: int,
        channels: int,
        frames: int,
        device: torch.device,
        gen: Optional[torch.Generator] = None,
        lengths: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Boolean (batch, channels, frames) masks: 1-2 spans of 5-16 frames over chosen channel groups.

        ``lengths`` (batch,): spans start and end inside each clip's first ``lengths[i]`` frames.
        """

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, device=device, generator=gen)

        lo_s, hi_s = self.mask_spans
        lo_w, hi_w = self.mask_width
        n_spans = lo_s + (rand(batch) * (hi_s - lo_s + 1)).long()  # (batch,)
        group_of_channel = torch.arange(channels, device=device) * self.mask_channel_groups // channels
        position = torch.arange(frames, device=device)
        mask = torch.zeros(batch, channels, frames, dtype=torch.bool, device=device)
        limit = torch.full((batch,), frames, device=device) if lengths is None else lengths.to(device)
        for span in range(hi_s):
            width = torch.minimum(lo_w + (rand(batch) * (hi_w - lo_w + 1)).long(), limit)  # (batch,)
            start = (rand(batch) * (limit - width + 1)).long()
            in_span = (position >= start.unsqueeze(1)) & (position < (start + width).unsqueeze(1))
            n_groups = 1 + (rand(batch) * self.mask_groups_max).long()  # (batch,) in 1..max
            rank = rand(batch, self.mask_channel_groups).argsort(dim=1).argsort(dim=1)  # random order
            groups = rank < n_groups.unsqueeze(1)  # (batch, groups)
            in_groups = torch.gather(groups, 1, group_of_channel.expand(batch, channels))
            active = (span < n_spans).view(-1, 1, 1)
            mask |= active & in_groups.unsqueeze(2) & in_span.unsqueeze(1)
        return mask

    def _mask(self, x: torch.Tensor, chosen: torch.Tensor, gen: Optional[torch.Generator]) -> None:
        """In place on ``x``: masks are built only for the chosen utterances."""
        rows = chosen.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        mask = self.span_masks(len(rows), *x.shape[1:], device=x.device, gen=gen)  # (chosen, channels, frames)
        x[rows] = x[rows].masked_fill_(mask, 0.0)

    # ---------------------------------------------------------------- without a host synchronisation

    def _dense(
        self, x: torch.Tensor, applied: dict, gen: Optional[torch.Generator], lengths: Optional[torch.Tensor]
    ) -> None:
        """All three operations drawn for every row, kept where chosen (``torch.where``), in place on ``x``."""
        batch, channels, frames = x.shape
        position = torch.arange(frames, device=x.device)
        # noise: per-utterance scale from the std of the whole window (or of the real frames)
        if lengths is None:
            real, scale = None, x.detach().std(dim=(1, 2), keepdim=True)
        else:
            real, scale = _real_frames_std(x.detach(), lengths)  # (batch, 1, frames), (batch, 1, 1)
        noise = torch.randn(x.shape, device=x.device, generator=gen, dtype=x.dtype).mul_(scale * self.noise_std)
        if real is not None:
            noise.mul_(real)
        x.add_(noise.mul_(applied["noise"].view(-1, 1, 1)))
        # crop: a window moved to frame 0, zeros after it
        if real is None:
            keep = torch.full((batch,), self.crop_length(frames), device=x.device)
            limit = torch.full((batch,), frames, device=x.device)
        else:
            limit = lengths
            keep = self.crop_lengths(lengths)
        start = (torch.rand(batch, device=x.device, generator=gen) * (limit - keep + 1)).long()
        index = (start.unsqueeze(1) + position).clamp(max=frames - 1)  # (batch, frames)
        source = x.clone() if x.requires_grad else x  # autograd keeps gather's input: it must not change below
        cropped = torch.gather(source, 2, index.unsqueeze(1).expand(batch, channels, frames))
        cropped.mul_((position < keep.unsqueeze(1)).unsqueeze(1))
        x.copy_(torch.where(applied["crop"].view(-1, 1, 1), cropped, x))
        # masks: spans over channel groups, inside the real frames when the lengths are given
        mask = self.span_masks(batch, channels, frames, device=x.device, gen=gen, lengths=lengths)
        x.masked_fill_(mask & applied["mask"].view(-1, 1, 1), 0.0)

    # ---------------------------------------------------------------- within each clip's real frames

    def _noise_within(
        self, x: torch.Tensor, chosen: torch.Tensor, gen: Optional[torch.Generator], lengths: torch.Tensor
    ) -> None:
        """Noise on the real frames only, scaled by the std of those frames."""
        rows = chosen.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        sub = x[rows]  # (chosen, channels, frames), a copy
        real, std = _real_frames_std(sub.detach(), lengths[rows])
        noise = torch.randn(sub.shape, device=x.device, generator=gen, dtype=x.dtype)
        x[rows] = sub.add_(noise.mul_(std * self.noise_std).mul_(real))

    def _crop_within(
        self, x: torch.Tensor, chosen: torch.Tensor, gen: Optional[torch.Generator], lengths: torch.Tensor
    ) -> None:
        """Keep ``crop_frames / 400`` of each chosen clip's real frames, moved to frame 0, zeros after them."""
        rows = chosen.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        _, channels, frames = x.shape
        real = lengths[rows]  # (chosen,)
        keep = self.crop_lengths(real)
        start = (torch.rand(len(rows), device=x.device, generator=gen) * (real - keep + 1)).long()
        position = torch.arange(frames, device=x.device)
        index = (start.unsqueeze(1) + position).clamp(max=frames - 1)  # (chosen, frames)
        window = torch.gather(x[rows], 2, index.unsqueeze(1).expand(len(rows), channels, frames))
        x[rows] = window * (position < keep.unsqueeze(1)).unsqueeze(1)

    def _mask_within(
        self, x: torch.Tensor, chosen: torch.Tensor, gen: Optional[torch.Generator], lengths: torch.Tensor
    ) -> None:
        """Span masks placed inside each chosen clip's real frames."""
        rows = chosen.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        mask = self.span_masks(len(rows), *x.shape[1:], device=x.device, gen=gen, lengths=lengths[rows])
        x[rows] = x[rows].masked_fill_(mask, 0.0)


def _real_frames_std(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(real, std)``: the ``(n, 1, frames)`` mask of each clip's real frames and the ``(n, 1, 1)`` std of
    ``x`` (n, channels, frames) over them (Bessel-corrected, as ``torch.std``)."""
    real = (torch.arange(x.shape[2], device=x.device) < lengths[:, None]).unsqueeze(1)
    count = (lengths * x.shape[1]).view(-1, 1, 1).to(x.dtype)
    mean = (x * real).sum(dim=(1, 2), keepdim=True) / count
    var = (((x - mean) * real) ** 2).sum(dim=(1, 2), keepdim=True) / (count - 1).clamp_min(1)
    return real, var.sqrt()


def system_augment(cfg: AugmentConfig, system: SystemConfig) -> Optional[TriAug]:
    """The Tri-Aug a system trains with (the ``augment`` section, with the system's own ``within_clip``), or None
    for a system without augmentation."""
    return TriAug.from_config(cfg, system.within_clip) if system.augment else None


def single_operation(cfg: AugmentConfig, operation: str) -> TriAug:
    """A Tri-Aug that always applies one operation ("noise", "crop", "mask") or all three ("all").

    Used for Figure 1; the other settings come from ``cfg``.
    """
    aug = TriAug.from_config(cfg)
    wanted = {"noise", "crop", "mask"} if operation == "all" else {operation}
    if not wanted <= {"noise", "crop", "mask"}:
        raise ValueError(f"operation must be noise, crop, mask or all, got {operation!r}")
    aug.noise_prob = 1.0 if "noise" in wanted else 0.0
    aug.crop_prob = 1.0 if "crop" in wanted else 0.0
    aug.mask_prob = 1.0 if "mask" in wanted else 0.0
    return aug.train()
