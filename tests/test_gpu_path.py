"""The GPU path, tested on the CPU: memory-aware placement, float16 features cast per batch, tensors that
follow the model's device, a fingerprint independent of the device, scoped determinism, the cache key's
compute dtype, and Tri-Aug without host synchronisation. GPU-only checks are marked ``gpu``."""

import pandas as pd
import pytest
import torch
from test_train import CHANNELS, FRAMES, fit_tensors
from test_train import _task as learnable_task

from serlib.common import runtime
from serlib.common.config import Config, FeaturesConfig, ModelConfig, TrainConfig
from serlib.features import keys
from serlib.features.layers import plan_layers
from serlib.features.load import FeatureSet
from serlib.modelling import inputs, models, placement, systems, train
from serlib.modelling.augment import TriAug

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _task(n, seed):
    x, y = learnable_task(n, seed)  # tests/test_train.py's 3-class task
    return x.half().float(), y  # values a float16 cache can hold


def _fit(tx, ty, vx, vy, **kw):
    runtime.set_seed(0)
    model = models.build_model(ModelConfig(width_scale=0.1), CHANNELS)
    cfg = TrainConfig(batch_size=32, max_epochs=3, lr=3e-3, weight_decay=1e-2)
    return fit_tensors(model, tx, ty, vx, vy, cfg, TriAug(), seed=0, progress=False, **kw)


def test_float16_resident_features_train_bit_identically_to_float32():
    (tx, ty), (vx, vy) = _task(96, 0), _task(48, 1)
    full = _fit(tx, ty, vx, vy)
    half = _fit(tx.half(), ty, vx.half(), vy)
    pd.testing.assert_frame_equal(full.history.drop(columns="seconds"), half.history.drop(columns="seconds"))
    assert all(torch.equal(full.best_state[k], half.best_state[k]) for k in full.best_state)


def test_trimmed_masked_training_on_float16_matches_float32():
    (tx, ty), (vx, vy) = _task(64, 0), _task(32, 1)
    tl, vl = torch.randint(10, FRAMES + 1, (64,)), torch.randint(10, FRAMES + 1, (32,))
    runs = []
    for dtype in (torch.float32, torch.float16):
        runtime.set_seed(0)
        model = models.build_model(ModelConfig(width_scale=0.1, mask_padding=True), CHANNELS)
        cfg = TrainConfig(batch_size=16, max_epochs=2)
        runs.append(
            fit_tensors(
                model,
                tx.to(dtype),
                ty,
                vx.to(dtype),
                vy,
                cfg,
                TriAug(),
                progress=False,
                train_lengths=tl,
                val_lengths=vl,
                trim=True,
            )
        )
    assert all(torch.equal(runs[0].best_state[k], runs[1].best_state[k]) for k in runs[0].best_state)


def test_predict_proba_casts_float16_batches():
    x, _ = _task(20, 3)
    model = models.build_model(ModelConfig(width_scale=0.1), CHANNELS).eval()
    torch.testing.assert_close(train.predict_proba(model, x.half()), train.predict_proba(model, x), rtol=0, atol=0)
    lengths = torch.randint(5, FRAMES + 1, (20,))
    masked = models.build_model(ModelConfig(width_scale=0.1, mask_padding=True), CHANNELS).eval()
    torch.testing.assert_close(
        train.predict_proba(masked, x.half(), lengths=lengths, trim=True),
        train.predict_proba(masked, x, lengths=lengths),
        rtol=1e-5,
        atol=1e-6,
    )


def test_gather_returns_a_fresh_float32_batch_and_takes_indices_from_anywhere():
    x = torch.arange(2 * 3 * 5, dtype=torch.float16).view(2, 3, 5)
    batch = placement.gather(x, torch.tensor([1]), torch.device("cpu"), frames=4)
    assert batch.dtype == torch.float32 and batch.shape == (1, 3, 4)
    assert torch.equal(batch[0], x[1, :, :4].float())
    batch.zero_()
    assert x.abs().sum() > 0  # the source is untouched: the batch is a copy
    full = placement.gather(x.float(), torch.tensor([0, 1]), "cpu")
    assert full.data_ptr() != x.data_ptr() and torch.equal(full, x.float())


def test_the_planner_keeps_features_on_the_gpu_only_when_they_fit():
    elements = 1_000_000_000  # 2 GB in float16
    roomy = placement.plan_placement(elements, torch.device("cuda"), free_bytes=int(10e9))
    assert (roomy.where, roomy.dtype, roomy.pinned, roomy.feature_bytes) == ("device", "float16", False, int(2e9))
    tight = placement.plan_placement(elements, torch.device("cuda"), free_bytes=int(3e9))  # 2 GB > 60 % of 3 GB
    assert (tight.where, tight.dtype, tight.pinned) == ("host", "float16", True)
    assert "pinned host memory" in tight.describe() and "3.0 GB free" in tight.describe()
    cpu = placement.plan_placement(elements, torch.device("cpu"))
    assert (cpu.where, cpu.dtype, cpu.free_bytes) == ("device", "float32", None)


def test_host_placement_keeps_a_cpu_copy_in_float16():
    x = torch.randn(4, 3, 5)
    plan = placement.Placement("host", "float16", True, "cuda", 120, 100, "told so")
    held = placement.to_training_layout(x, plan)
    assert held.device.type == "cpu" and held.dtype == torch.float16
    assert torch.equal(held.float(), x.half().float())


def _featureset(n=30):
    x, y = _task(n, 4)
    return FeatureSet(
        x=x,
        lengths=torch.full((n,), FRAMES),
        utt_ids=[f"C/{i}" for i in range(n)],
        labels=None,
        input="wav2vec2",
        description="test",
    )


def _manifest(n=30):
    from serlib.common.facts import CLASSES

    split = ["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4)
    return pd.DataFrame(
        {"utt_id": [f"C/{i}" for i in range(n)], "label": [CLASSES[i % 3] for i in range(n)], "split": split}
    )


def test_the_fingerprint_does_not_depend_on_the_device():
    features, manifest = _featureset(), _manifest()
    on_cpu = inputs.split_features(features, manifest, "wav2vec2", torch.device("cpu"))
    on_meta = inputs.split_features(features, manifest, "wav2vec2", torch.device("meta"))  # no values at all
    assert on_meta.x["train"].device.type == "meta"
    assert on_cpu.fingerprint == on_meta.fingerprint
    assert on_cpu.placement.where == "device" and on_cpu.device == torch.device("cpu")
    assert on_meta.device == torch.device("meta") and on_meta.y["train"].device.type == "meta"


def test_split_features_follows_the_plan(monkeypatch):
    host = placement.Placement("host", "float16", False, "cpu", 0, 1, "injected")
    monkeypatch.setattr(inputs, "plan_placement", lambda elements, device, free_bytes=None: host)
    data = inputs.split_features(_featureset(), _manifest(), "wav2vec2", torch.device("cpu"))
    assert data.x["train"].dtype == torch.float16 and data.placement is host
    reference = inputs.split_features(_featureset(), _manifest(), "wav2vec2", torch.device("cpu"))
    assert data.fingerprint == reference.fingerprint  # where they live is not what they are


def test_training_mode_is_scoped_and_restored():
    before = (torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled())
    with runtime.training_mode(True):
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
    with runtime.training_mode(False):
        assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
    assert (torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled()) == before
    runtime.set_seed(0)  # seeding alone no longer changes the kernels of the whole process
    assert (torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled()) == before


def test_fit_runs_deterministic_by_default_and_the_switch_enters_the_run_key(monkeypatch):
    seen = []
    real = train._fit
    monkeypatch.setattr(train, "_fit", lambda *a: seen.append(torch.are_deterministic_algorithms_enabled()) or real(*a))
    (tx, ty), (vx, vy) = _task(32, 0), _task(16, 1)
    _fit(tx, ty, vx, vy)
    assert seen == [True]
    data = inputs.SplitData("wav2vec2", {"train": tx}, {"train": ty}, {"train": []}, "fp")
    base = Config()
    fast = Config(train=TrainConfig(deterministic=False))
    keys = {systems.run_key(c.systems["S5"], c, 1e-3, 1e-2, data, 0) for c in (base, fast)}
    assert len(keys) == 2


def test_device_choice_says_why():
    device, why = runtime.device_choice("auto")
    if torch.cuda.is_available():
        assert device == "cuda" and "compute capability" in why
    else:
        assert device == "cpu" and ("no CUDA" in why or "sees no usable GPU" in why)
    assert runtime.device_choice("cpu")[0] == "cpu"


def test_the_cache_key_records_fp16_autocast_on_a_gpu(monkeypatch):
    cfg = Config(features=FeaturesConfig(device="auto"))
    plain = keys.cache_key(cfg, plan_layers(cfg).key("wav2vec2"))
    monkeypatch.setattr(keys, "device_choice", lambda name: ("cuda", "pretend"))
    on_gpu = keys.cache_key(cfg, plan_layers(cfg).key("wav2vec2"))
    assert on_gpu["compute"] == "float16-autocast" and "compute" not in plain
    cfg.features.wav2vec2.mixed_precision = False
    assert "compute" not in keys.cache_key(cfg, plan_layers(cfg).key("wav2vec2"))  # fp32 on the GPU: the CPU's key
    assert "compute" not in keys.cache_key(cfg, plan_layers(cfg).key("logmel"))


# ---------------------------------------------------------------- Tri-Aug without synchronisation


def _many(aug, x, draws=60, lengths=None):
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(draws):
        kw = {} if lengths is None else {"lengths": lengths}
        out.append((aug(x, generator=gen, **kw), {k: v.clone() for k, v in aug.last_applied.items()}))
    return out


def test_sync_free_triaug_keeps_unchosen_rows_and_crops_like_the_gathering_path():
    x = torch.randn(32, 8, 40) + 3.0
    aug = TriAug(noise_prob=0.0, crop_prob=1.0, mask_prob=0.0, sync_free=True).train()
    out, applied = _many(aug, x, draws=1)[0]
    keep = aug.crop_length(40)
    assert applied["crop"].all()
    assert (out[:, :, keep:] == 0).all()
    for i in range(32):  # each row is a window of its own input, moved to frame 0
        windows = x[i].unfold(1, keep, 1).permute(1, 0, 2)  # (starts, channels, keep)
        assert any(torch.equal(out[i, :, :keep], w) for w in windows)
    idle = TriAug(noise_prob=0.0, crop_prob=0.0, mask_prob=0.0, sync_free=True).train()
    assert torch.equal(idle(x), x)


def test_sync_free_triaug_draws_the_same_distribution_as_the_gathering_path():
    x = torch.randn(64, 16, 60)
    stats = {}
    for free in (False, True):
        aug = TriAug(sync_free=free).train()
        runs = _many(aug, x)
        noised = torch.stack([a["noise"] for _, a in runs]).float().mean().item()
        masked_rows = [(out == 0).all(dim=1).sum(dim=1) for out, a in runs]  # zeroed frames over all channels
        zero_share = torch.stack([(out == 0).float().mean() for out, _ in runs]).mean().item()
        noise_size = (
            torch.stack(
                [
                    ((out - x).std(dim=(1, 2)) / x.std(dim=(1, 2)))[a["noise"] & ~a["crop"] & ~a["mask"]].mean()
                    for out, a in runs
                ]
            )
            .nanmean()
            .item()
        )
        stats[free] = (noised, zero_share, noise_size, masked_rows)
    assert stats[True][0] == pytest.approx(0.5, abs=0.03) and stats[False][0] == pytest.approx(0.5, abs=0.03)
    assert stats[True][1] == pytest.approx(stats[False][1], rel=0.15)  # crop tails and masks: same zeroed share
    assert stats[True][2] == pytest.approx(0.05, rel=0.1) and stats[False][2] == pytest.approx(0.05, rel=0.1)


def test_sync_free_within_clip_stays_inside_the_real_frames():
    x = torch.randn(16, 8, 50)
    lengths = torch.randint(10, 51, (16,))
    x = x * (torch.arange(50) < lengths[:, None]).unsqueeze(1)
    aug = TriAug(noise_prob=1.0, crop_prob=0.0, mask_prob=1.0, within_clip=True, sync_free=True).train()
    out, _ = _many(aug, x, draws=1, lengths=lengths)[0]
    padding = ~(torch.arange(50) < lengths[:, None]).unsqueeze(1).expand_as(x)
    assert (out[padding] == 0).all()  # neither noise nor masks reach the padding
    assert not torch.equal(out, x)


def test_triaug_on_the_cpu_keeps_its_draws():
    x = torch.randn(8, 4, 30)
    a = TriAug().train()
    b = TriAug(sync_free=False).train()
    torch.testing.assert_close(
        a(x, generator=torch.Generator().manual_seed(5)),
        b(x, generator=torch.Generator().manual_seed(5)),
        rtol=0,
        atol=0,
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_devices_train_and_score_on_the_gpu():
    (tx, ty), (vx, vy) = _task(64, 0), _task(32, 1)
    runtime.set_seed(0)
    model = models.build_model(ModelConfig(width_scale=0.1), CHANNELS).cuda()
    cfg = TrainConfig(batch_size=16, max_epochs=2)
    pinned = tx.half().pin_memory()  # host features, GPU model, CPU labels
    result = fit_tensors(model, pinned, ty, vx.half().cuda(), vy, cfg, TriAug(), progress=False)
    assert result.best_epoch >= 1
    probs = train.predict_proba(model, vx.half(), lengths=torch.full((32,), FRAMES))
    assert probs.device.type == "cpu" and torch.isfinite(probs).all()
    loss, acc = train.evaluate(model, vx.half().cuda(), vy)
    assert 0 <= acc <= 1


def test_metrics_summed_on_the_device_give_the_same_epoch(monkeypatch):
    (tx, ty), (vx, vy) = _task(96, 0), _task(48, 1)
    per_step = _fit(tx, ty, vx, vy)
    monkeypatch.setattr(train, "SYNC_FREE_DEVICES", ("cpu",))  # the GPU's once-per-epoch read, on the CPU
    once = _fit(tx, ty, vx, vy)
    pd.testing.assert_frame_equal(
        per_step.history.drop(columns="seconds"), once.history.drop(columns="seconds"), check_exact=False, rtol=1e-12
    )
    bad = tx.clone()
    bad[3, 0, 0] = float("nan")
    with pytest.raises(train.NonFiniteLossError, match="summed over epoch 1 .* read once per epoch"):
        _fit(bad, ty, vx, vy)


def test_features_loaded_in_float16_give_the_same_fingerprint_and_values():
    features, manifest = _featureset(), _manifest()
    half = FeatureSet(
        x=features.x.half(),
        lengths=features.lengths,
        utt_ids=features.utt_ids,
        labels=None,
        input="wav2vec2",
        description="test",
    )
    a = inputs.split_features(features, manifest, "wav2vec2", torch.device("cpu"))
    b = inputs.split_features(half, manifest, "wav2vec2", torch.device("cpu"))
    assert a.fingerprint == b.fingerprint
    assert b.x["train"].dtype == torch.float32 and torch.equal(a.x["train"], b.x["train"])  # the CPU plan: float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_deployment_forms_take_a_gpu_model():
    from serlib.inference.deploy import deployment_table

    x, y = _task(16, 5)
    model = models.build_model(ModelConfig(width_scale=0.1), CHANNELS).cuda().eval()
    table = deployment_table(model, x.cuda(), x.cuda(), y.cuda(), repeats=2)
    assert table["agree_with_fp32"].iloc[1] == 1.0


def test_the_epochs_indices_move_in_one_copy():
    batches = [torch.tensor([3, 1, 2]), torch.tensor([0, 4])]
    assert train._to_device(batches, torch.device("cpu")) is batches  # the CPU keeps its own tensors
    moved = train._to_device(batches, torch.device("meta"))  # another device: one copy, split as before
    assert [m.device.type for m in moved] == ["meta", "meta"] and [len(m) for m in moved] == [3, 2]
