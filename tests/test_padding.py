"""Padding made optional: masked pooling (model.mask_padding), within-clip Tri-Aug, trimmed batches."""

from __future__ import annotations

import pytest
import torch
from test_train import fit_tensors

from serlib.common.config import AugmentConfig, ModelConfig
from serlib.inference.deploy import deployment_table
from serlib.inference.quantise import fold_batchnorm
from serlib.modelling import train
from serlib.modelling.augment import TriAug
from serlib.modelling.models import MaskedBatchNorm1d, build_model, frame_mask, masked_mean

CHANNELS = 16
ARCHS = [
    ModelConfig(arch="resattn", width_scale=0.05, mask_padding=True),
    ModelConfig(arch="resattn", se=False, blocks=[0, 2, 4], width_scale=0.05, mask_padding=True),
    ModelConfig(arch="shallow", width_scale=0.25, mask_padding=True),
]


def _trained_like(cfg: ModelConfig) -> torch.nn.Module:
    """A model whose BatchNorms have non-trivial running statistics and affine terms (eval mode)."""
    torch.manual_seed(0)
    model = build_model(cfg, CHANNELS)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("cfg", ARCHS, ids=["resattn", "resattn-3-blocks-no-se", "shallow"])
def test_masked_model_ignores_whatever_padding_follows(cfg):
    model = _trained_like(cfg)
    clip = torch.randn(1, CHANNELS, 50)
    outputs = []
    with torch.no_grad():
        for frames in (50, 80, 160):  # exactly the clip, a little padding, a lot of padding
            x = torch.zeros(1, CHANNELS, frames)
            x[:, :, :50] = clip
            outputs.append(model(x, torch.tensor([50])))
    for other in outputs[1:]:
        torch.testing.assert_close(other, outputs[0], rtol=1e-5, atol=1e-6)


def test_unmasked_model_sees_the_padding():
    # The paper's network (mask_padding false) pools the whole window: padding changes its output.
    model = _trained_like(ModelConfig(arch="resattn", width_scale=0.05))
    clip = torch.randn(1, CHANNELS, 50)
    with torch.no_grad():
        short, long = torch.zeros(1, CHANNELS, 60), torch.zeros(1, CHANNELS, 160)
        short[:, :, :50], long[:, :, :50] = clip, clip
        assert (model(short, torch.tensor([50])) - model(long, torch.tensor([50]))).abs().max() > 1e-3


def test_masked_model_without_lengths_is_the_window_average():
    cfg = ModelConfig(arch="resattn", width_scale=0.05)
    plain, masked = _trained_like(cfg), _trained_like(ModelConfig(arch="resattn", width_scale=0.05, mask_padding=True))
    masked.load_state_dict(plain.state_dict())  # same weights, same state-dict keys
    x = torch.randn(3, CHANNELS, 40)
    with torch.no_grad():
        torch.testing.assert_close(masked(x), plain(x))
        # every clip filling the window: masking changes nothing either
        torch.testing.assert_close(masked(x, torch.tensor([40, 40, 40])), plain(x), rtol=1e-5, atol=1e-6)


def test_masked_batchnorm_statistics_count_real_frames_only():
    norm = MaskedBatchNorm1d(2, momentum=1.0).train()  # momentum 1: the running stats are this batch's
    x = torch.tensor(
        [[[1.0, 3.0, 100.0], [2.0, 2.0, -50.0]], [[5.0, 100.0, 100.0], [4.0, -50.0, -50.0]]]
    )  # (batch 2, channels 2, frames 3)
    lengths = torch.tensor([2, 1])  # padded frames hold 100 / -50: they must not count
    out = norm(x, frame_mask(lengths, 3))
    real = {0: torch.tensor([1.0, 3.0, 5.0]), 1: torch.tensor([2.0, 2.0, 4.0])}
    for channel, values in real.items():
        assert norm.running_mean[channel].item() == pytest.approx(values.mean().item())
        assert norm.running_var[channel].item() == pytest.approx(values.var(unbiased=True).item())
        expected = (values - values.mean()) / torch.sqrt(values.var(unbiased=False) + norm.eps)
        got = torch.cat([out[0, channel, :2], out[1, channel, :1]])
        torch.testing.assert_close(got, expected)


def test_masked_mean_over_real_frames():
    x = torch.tensor([[[1.0, 2.0, 9.0]], [[4.0, 9.0, 9.0]]])  # (2, 1, 3)
    assert masked_mean(x, frame_mask(torch.tensor([2, 1]), 3)).flatten().tolist() == [1.5, 4.0]


def test_within_clip_triaug_stays_inside_the_real_frames():
    torch.manual_seed(0)
    aug = TriAug(noise_prob=1.0, crop_prob=1.0, mask_prob=1.0, within_clip=True).train()
    lengths = torch.tensor([30, 80, 100, 12])
    x = torch.randn(4, 8, 100) * frame_mask(lengths, 100)  # zero padding after each clip
    out = aug(x, lengths=lengths)
    padded = ~frame_mask(lengths, 100).bool().expand_as(out)
    assert out[padded].abs().max() == 0  # noise, crop and masks never write into the padding
    keep = torch.round(lengths * 380 / 400).long()  # the crop keeps 95 % of each clip's own frames
    for i, k in enumerate(keep.tolist()):
        assert out[i, :, k:].abs().max() == 0 and out[i, :, :k].abs().sum() > 0


def test_window_triaug_ignores_lengths_unless_within_clip():
    # The paper's Tri-Aug (within_clip false) draws the same augmentations whether or not lengths are given.
    aug = TriAug.from_config(AugmentConfig()).train()
    x = torch.randn(6, 8, 100)
    a = aug(x, generator=torch.Generator().manual_seed(1))
    b = aug(x, generator=torch.Generator().manual_seed(1), lengths=torch.full((6,), 40))
    assert torch.equal(a, b)


def test_span_masks_within_lengths():
    aug = TriAug(mask_spans=(2, 2), mask_width=(5, 16))
    lengths = torch.tensor([7, 20, 64])
    masks = aug.span_masks(3, 4, 64, torch.device("cpu"), torch.Generator().manual_seed(0), lengths=lengths)
    for i, n in enumerate(lengths.tolist()):
        assert not masks[i, :, n:].any() and masks[i, :, :n].any()


def test_trimmed_scoring_equals_untrimmed_for_a_masked_model():
    model = _trained_like(ARCHS[0])
    lengths = torch.tensor([10, 64, 33, 5, 64, 20, 47])
    x = torch.randn(7, CHANNELS, 64) * frame_mask(lengths, 64)
    full = train.predict_proba(model, x, batch_size=3, lengths=lengths)
    trimmed = train.predict_proba(model, x, batch_size=3, lengths=lengths, trim=True)
    torch.testing.assert_close(trimmed, full, rtol=1e-5, atol=1e-6)


def test_length_buckets_cover_every_clip_once_and_group_similar_lengths():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(10, 400, (500,))
    batches = train.length_buckets(lengths, 16, gen)
    assert sorted(torch.cat(batches).tolist()) == list(range(500))
    spread = sum(int(lengths[b].max() - lengths[b].min()) for b in batches)
    random = sum(int(lengths[b].max() - lengths[b].min()) for b in torch.randperm(500).split(16))
    assert spread < random / 5  # bucketing cuts the padding a batch carries
    again = train.length_buckets(lengths, 16, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))  # seeded


def test_fit_with_trimmed_batches_learns_a_length_independent_task():
    # Class in the first channel's mean over real frames; clips of random length, zero padded.
    def task(n, seed):
        gen = torch.Generator().manual_seed(seed)
        y = torch.randint(0, 3, (n,), generator=gen)
        lengths = torch.randint(20, 64, (n,), generator=gen)
        x = torch.randn(n, CHANNELS, 64, generator=gen) * 0.5
        x[:, 0, :] += (y.float() - 1.0)[:, None] * 2.0
        return x * frame_mask(lengths, 64), y, lengths

    (tx, ty, tl), (vx, vy, vl) = task(240, 0), task(90, 1)
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="shallow", width_scale=0.25, mask_padding=True), CHANNELS)
    cfg = train.TrainConfig(batch_size=32, max_epochs=6, early_stop_patience=6, plateau_patience=3, seeds=[0])
    result = fit_tensors(model, tx, ty, vx, vy, cfg, progress=False, train_lengths=tl, val_lengths=vl, trim=True)
    assert result.best_val_acc > 0.8


def test_deployment_forms_of_a_masked_model():
    model = _trained_like(ARCHS[0])
    lengths = torch.tensor([12, 40, 25, 40])
    x = torch.randn(4, CHANNELS, 40) * frame_mask(lengths, 40)
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(model)(x, lengths), model(x, lengths), rtol=1e-4, atol=1e-5)
    table = deployment_table(model, x, x, torch.tensor([0, 1, 2, 0]), repeats=2, test_lengths=lengths)
    forms = list(table["form"])
    assert forms[:2] == ["fp32 (as trained)", "fp32, BatchNorm folded"]
    assert not any(f.startswith("int8 static (x86)") for f in forms)  # no torch int8 of the masked graph
    assert forms[2].startswith("onnxruntime fp32") and forms[3].startswith("onnxruntime int8")  # ONNX keeps `lengths`
    assert table["agree_with_fp32"].tolist()[:3] == [1.0, 1.0, 1.0]
