"""Shapes, parameter counts and the SE / depth switches of the paper's two classifiers."""

import pytest
import torch

from serlib.common.config import ModelConfig
from serlib.modelling.models import (
    THREE_BLOCKS,
    ResAttn1DCNN,
    ShallowCNN,
    SqueezeExcite1d,
    build_model,
    count_params,
    model_summary,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize(
    "cfg, channels",
    [
        (ModelConfig(arch="shallow"), 64),
        (ModelConfig(arch="shallow"), 768),
        (ModelConfig(width_scale=0.1), 768),
        (ModelConfig(se=False, width_scale=0.1), 768),
        (ModelConfig(blocks=list(THREE_BLOCKS), width_scale=0.1), 768),
    ],
)
def test_output_shape(cfg, channels):
    model = build_model(cfg, channels).eval()
    assert model(torch.randn(2, channels, 40)).shape == (2, 3)


def test_parameter_counts_as_built():
    # Built as the paper describes, the full network has ~8.7 M parameters (the paper says 3.9 M).
    full = count_params(build_model(ModelConfig(), 768))
    no_se = count_params(build_model(ModelConfig(se=False), 768))
    three = count_params(build_model(ModelConfig(blocks=list(THREE_BLOCKS)), 768))
    assert 8.6e6 < full < 8.8e6
    assert no_se < full and full - no_se < 0.1e6  # SE adds ~49 k
    assert three < full
    # Shallow CNN: conv weights+bias, BN, head: exact count from the architecture.
    expected = (64 * 64 * 5 + 64) + (64 * 128 * 3 + 128) + (128 * 64 * 3 + 64) + 2 * (64 + 128 + 64) + 64 * 3 + 3
    assert count_params(build_model(ModelConfig(arch="shallow"), 64)) == expected


def test_se_switch_and_depth_switch():
    with_se = build_model(ModelConfig(width_scale=0.1), 768)
    without = build_model(ModelConfig(se=False, width_scale=0.1), 768)
    assert sum(isinstance(m, SqueezeExcite1d) for m in with_se.modules()) == 5
    assert sum(isinstance(m, SqueezeExcite1d) for m in without.modules()) == 0
    three = build_model(ModelConfig(blocks=[0, 2, 4]), 768)
    assert len(three.blocks) == 3
    widths = [b.conv1.out_channels for b in three.blocks]
    kernels = [b.kernel for b in three.blocks]
    assert widths == [384, 256, 64] and kernels == [9, 5, 3]
    assert three.head.in_features == 64


def test_paper_widths_and_kernels():
    model = ResAttn1DCNN()
    assert model.stem[0].in_channels == 768 and model.stem[0].out_channels == 384
    assert model.stem[0].kernel_size == (9,) and model.stem[3].p == 0.35
    assert [(b.conv1.out_channels, b.kernel) for b in model.blocks] == [(384, 9), (384, 7), (256, 5), (128, 5), (64, 3)]
    assert all(b.dropout.p == 0.25 for b in model.blocks)
    assert model.blocks[0].se.gate[0].out_features == 384 // 16
    assert [m.p for m in ShallowCNN().modules() if isinstance(m, torch.nn.Dropout)] == [0.2] * 3


def test_bad_blocks_raise():
    with pytest.raises(ValueError, match="blocks"):
        build_model(ModelConfig(blocks=[0, 7]), 768)


@pytest.mark.parametrize("arch", ["resattn", "shallow"])
def test_summary_sums_to_parameter_count(arch):
    model = build_model(ModelConfig(arch=arch, width_scale=0.25), 768)
    table = model_summary(model, (768, 50))
    assert table["params"].sum() == count_params(model)
    assert table.iloc[-1]["output_shape"] == "3"
    assert table.iloc[0]["output_shape"].endswith("x 50")


# --------------------------------------------------------------------------- behaviour the blocks must keep

from serlib.modelling.models import ResidualBlock1d  # noqa: E402


def test_a_residual_block_adds_its_branch_to_the_shortcut():
    torch.manual_seed(0)
    block = ResidualBlock1d(8, 8, 3, se=True).eval()  # identity shortcut
    x = torch.randn(4, 8, 20)
    with torch.no_grad():
        assert not torch.allclose(block(x), torch.relu(x))
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()  # the branch F(x) is now 0: relu(0 + shortcut(x))
        torch.testing.assert_close(block(x), torch.relu(x))
    projected = ResidualBlock1d(8, 16, 3, se=False).eval()
    with torch.no_grad():
        projected.bn2.weight.zero_()
        projected.bn2.bias.zero_()
        torch.testing.assert_close(projected(x), torch.relu(projected.shortcut(x)))


def test_block_dropout_acts_on_the_branch_in_train_mode():
    torch.manual_seed(0)
    block = ResidualBlock1d(8, 8, 3, se=False, dropout=1.0).train()  # drops the whole branch, never the shortcut
    x = torch.randn(4, 8, 20)
    torch.testing.assert_close(block(x), torch.relu(x))
    block.dropout.p = 0.0
    assert not torch.allclose(block(x), torch.relu(x))
    block.dropout.p = 1.0
    block.eval()  # no dropout at eval: the branch is back
    assert not torch.allclose(block(x), torch.relu(x))


def test_the_three_block_ablation_keeps_widths_384_256_64():
    model = ResAttn1DCNN(768, blocks=THREE_BLOCKS)
    assert [b.conv1.out_channels for b in model.blocks] == [384, 256, 64]
    assert [b.kernel for b in model.blocks] == [9, 5, 3] and model.head.in_features == 64


# --------------------------------------------------------------------------- beyond the paper (issue 12)

from serlib.modelling.models import RESATTN_BLOCKS, RESATTN_STEM, AttentiveStatsPool  # noqa: E402


def _separable_count(se: bool = True, in_channels: int = 768, classes: int = 3, reduction: int = 16) -> int:
    """The separable ResAttn1D-CNN's parameters from its layer shapes (the paper's widths)."""
    stem_w, stem_k = RESATTN_STEM
    total = in_channels * stem_w * stem_k + 2 * stem_w  # standard k=9 stem, BatchNorm
    width = stem_w
    for out, k in RESATTN_BLOCKS:
        total += width * k + width * out  # conv1: depthwise, pointwise
        total += out * k + out * out  # conv2
        total += 2 * out * 2  # two BatchNorms
        if se:
            hidden = out // reduction
            total += out * hidden + hidden + hidden * out + out
        if width != out:
            total += width * out + 2 * out  # 1x1 projection + BatchNorm
        width = out
    return total + width * classes + classes


@pytest.mark.parametrize("se", [True, False])
def test_the_separable_reading_has_the_arithmetics_parameter_count(se):
    model = build_model(ModelConfig(conv="separable", se=se), 768)
    assert count_params(model) == _separable_count(se)
    assert round(count_params(model) / 1e6, 2) == (3.68 if se else 3.63)  # the paper states 3.9 M and 3.6 M


def test_attentive_pooling_ignores_padding_when_masked_and_weights_frames():
    torch.manual_seed(0)
    model = build_model(ModelConfig(pooling="attentive", mask_padding=True, width_scale=0.25), 32).eval()
    clip = torch.randn(1, 32, 30)
    padded = torch.cat([clip, torch.randn(1, 32, 20)], dim=2)  # the same clip, then 20 frames of anything
    with torch.no_grad():
        alone = model(clip, torch.tensor([30]))
        with_padding = model(padded, torch.tensor([30]))
    torch.testing.assert_close(alone, with_padding, rtol=1e-5, atol=1e-5)
    pool = AttentiveStatsPool(4)
    x = torch.zeros(1, 4, 3)
    x[0, :, 1] = 2.0
    with torch.no_grad():
        out = pool(x, (torch.arange(3) < 2).float().view(1, 1, 3))  # frame 2 is padding
    assert out.shape == (1, 8) and torch.all(out[0, :4] > 0) and torch.all(out[0, :4] < 2)


def test_the_shallow_baseline_refuses_the_resattn_options():
    with pytest.raises(ValueError, match="resattn only"):
        build_model(ModelConfig(arch="shallow", pooling="attentive"), 64)
