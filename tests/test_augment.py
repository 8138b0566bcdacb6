"""Tri-Aug: each operation's probability, span lengths, channel groups, and identity in eval mode."""

import pytest
import torch

from serlib.common.config import AugmentConfig, SystemConfig
from serlib.modelling.augment import TriAug, single_operation, system_augment

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _batch(n=4000, channels=16, frames=100):
    torch.manual_seed(0)
    return torch.randn(n, channels, frames) + 3.0  # no exact zeros in the clean input


def test_off_in_eval():
    aug = TriAug(noise_prob=1, crop_prob=1, mask_prob=1).eval()
    x = _batch(8)
    assert torch.equal(aug(x), x)


@pytest.mark.parametrize("op, prob", [("noise", 0.5), ("crop", 0.5), ("mask", 0.25)])
def test_each_probability(op, prob):
    aug = TriAug.from_config(AugmentConfig()).train()
    torch.manual_seed(1)
    aug(_batch())
    rate = aug.last_applied[op].float().mean().item()
    assert abs(rate - prob) < 0.03
    others = [k for k in ("noise", "crop", "mask") if k != op]
    both = (aug.last_applied[op] & aug.last_applied[others[0]]).float().mean().item()
    assert both > 0  # operations co-occur (sampled independently)


def test_noise_scale_relative():
    aug = single_operation(AugmentConfig(noise_std=0.1), "noise")
    x = _batch(200)
    diff = aug(x) - x
    assert abs(diff.std().item() / x.std(dim=(1, 2)).mean().item() - 0.1) < 0.01


def test_crop_keeps_380_of_400_and_pads_with_zeros():
    aug = single_operation(AugmentConfig(), "crop")
    x = _batch(300, frames=400)
    out = aug(x)
    assert out.shape == x.shape
    assert torch.all(out[:, :, 380:] == 0) and torch.all(out[:, :, :380] != 0)
    # The kept window is a contiguous piece of the original, starting at a random frame 0..20.
    starts = set()
    for i in range(50):
        for s in range(21):
            if torch.equal(out[i, :, :380], x[i, :, s : s + 380]):
                starts.add(s)
                break
        else:
            pytest.fail("cropped content is not a contiguous window of the input")
    assert len(starts) > 5


def test_mask_spans_widths_and_groups():
    cfg = AugmentConfig()
    aug = single_operation(cfg, "mask")
    channels, frames = 16, 100
    out = aug(_batch(2000, channels, frames))
    zero = out == 0  # (n, channels, frames)
    group = channels // cfg.mask_channel_groups
    n_groups, widths, spans = [], [], []
    for z in zero[:500]:
        frames_hit = z.any(0)
        # Channels are masked whole groups at a time.
        per_group = z.any(1).view(cfg.mask_channel_groups, group).all(1) | ~z.any(1).view(
            cfg.mask_channel_groups, group
        ).any(1)
        assert per_group.all()
        # Contiguous runs of masked frames.
        runs, run = [], 0
        for hit in frames_hit.tolist() + [False]:
            if hit:
                run += 1
            elif run:
                runs.append(run)
                run = 0
        spans.append(len(runs))
        widths += runs
        n_groups.append(int(z.any(1).view(cfg.mask_channel_groups, group).any(1).sum()))
    assert min(spans) >= 1 and max(spans) <= 2 and 2 in spans  # 1-2 spans (overlaps may merge)
    single = [w for w, s in zip(widths, spans) if s == 1]
    assert min(widths) >= 5 and max(single) <= 32  # merged overlapping spans reach at most 2 x 16
    assert 1 <= min(n_groups) and max(n_groups) <= 2 * cfg.mask_groups_max
    # Span width is uniform on 5..16: check directly on the masks of one span.
    torch.manual_seed(3)
    m = TriAug(mask_spans=(1, 1), mask_channel_groups=4, mask_groups_max=1).span_masks(
        3000, 8, 100, torch.device("cpu")
    )
    w = m.any(1).sum(1)
    assert int(w.min()) == 5 and int(w.max()) == 16
    assert abs(w.float().mean().item() - 10.5) < 0.3
    assert torch.all(m.any(2).sum(1) == 2)  # one group of 8 // 4 = 2 channels


def test_bad_probability_raises():
    with pytest.raises(ValueError, match="noise_prob"):
        TriAug(noise_prob=1.5)


def test_runs_on_batch_device_and_keeps_input():
    aug = TriAug(noise_prob=1, crop_prob=1, mask_prob=1).train()
    x = _batch(4)
    before = x.clone()
    out = aug(x)
    assert out.device == x.device and torch.equal(x, before)


@pytest.mark.parametrize("probs", [(1.0, 1.0, 1.0), (0.5, 0.5, 0.25)])
@pytest.mark.parametrize("use_generator", [False, True])
def test_inplace_gives_the_copy_result_and_default_keeps_input(probs, use_generator):
    """inplace=True draws the same numbers in the same order as the default copy mode (so training
    is bit-identical); the default mode leaves its input untouched."""
    aug = TriAug(*probs[:1], crop_prob=probs[1], mask_prob=probs[2], crop_frames=90).train()
    x = _batch(64, 16, 100)
    before = x.clone()
    results = {}
    for inplace in (False, True):
        torch.manual_seed(7)
        gen = torch.Generator().manual_seed(11) if use_generator else None
        inputs = x.clone() if inplace else x
        out = aug(inputs, generator=gen, inplace=inplace)
        assert (out is inputs) == inplace  # in place: x itself comes back, augmented
        results[inplace] = (out, {k: v.clone() for k, v in aug.last_applied.items()})
    assert torch.equal(x, before)  # the default (copy) mode did not modify its input
    (copy_out, copy_applied), (inplace_out, inplace_applied) = results[False], results[True]
    assert not torch.equal(copy_out, x)  # something was augmented
    assert torch.equal(copy_out, inplace_out)
    assert all(torch.equal(copy_applied[k], inplace_applied[k]) for k in ("noise", "crop", "mask"))


def test_inplace_is_identity_in_eval():
    aug = TriAug(noise_prob=1, crop_prob=1, mask_prob=1).eval()
    x = _batch(8)
    before = x.clone()
    assert aug(x, inplace=True) is x and torch.equal(x, before)


def test_the_default_triaug_is_the_configured_default():
    direct, configured = TriAug(), TriAug.from_config(AugmentConfig())
    fields = (
        "noise_prob",
        "noise_std",
        "crop_prob",
        "crop_frames",
        "mask_prob",
        "mask_spans",
        "mask_width",
        "mask_channel_groups",
        "mask_groups_max",
        "within_clip",
    )
    assert {f: getattr(direct, f) for f in fields} == {f: getattr(configured, f) for f in fields}
    assert direct.crop_length(400) == 380 == configured.crop_length(400)


def test_noise_scales_with_each_utterances_own_std():
    torch.manual_seed(0)
    aug = TriAug(noise_prob=1.0, noise_std=0.05, crop_prob=0.0, mask_prob=0.0).train()
    x = torch.randn(2, 16, 400)
    x[0] *= 0.1
    x[1] *= 10.0
    noise = aug(x) - x
    for i in range(2):
        assert (noise[i].std() / x[i].std()).item() == pytest.approx(0.05, rel=0.1)


def test_a_systems_own_within_clip_decides_where_its_tri_aug_acts():
    section = AugmentConfig(noise_prob=1.0, crop_prob=0.0, mask_prob=0.0, within_clip=False)
    x = torch.zeros(2, 4, 20)
    x[:, :, :10] = torch.randn(2, 4, 10, generator=torch.Generator().manual_seed(0))  # 10 real frames, 10 padding
    lengths = torch.tensor([10, 10])
    inside = system_augment(section, SystemConfig(within_clip=True)).train()(x, lengths=lengths)
    assert (inside[:, :, 10:] == 0).all() and not torch.equal(inside[:, :, :10], x[:, :, :10])
    everywhere = system_augment(section, SystemConfig()).train()(x, lengths=lengths)  # null: the section's
    assert (everywhere[:, :, 10:] != 0).any()
    assert system_augment(section, SystemConfig(augment=False)) is None
