"""The CPU recipe's parts: weight averaging, BatchNorm re-estimation, R1, minibatch std, recipes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _gen_helpers import run_all, state_tensors
from torch import nn

from napari_latentdirs.models.dcgan import DCGANConfig, Discriminator, dcgan_config
from napari_latentdirs.models.registry import load_generator
from napari_latentdirs.training.averaging import WeightEMA, recalibrate_batchnorm
from napari_latentdirs.training.config import config_from_dict
from napari_latentdirs.training.data import TensorSlices, synthetic_ellipses
from napari_latentdirs.training.gan import train_gan
from napari_latentdirs.training.recipes import RECIPES, recipe
from napari_latentdirs.training.vae import train_vae


def test_weight_ema_follows_the_average_with_a_warm_up():
    net = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = WeightEMA(net, decay=0.9)
    values = []
    for step in range(50):
        with torch.no_grad():
            net.weight.fill_(1.0)
        ema.update(net, step)
        values.append(float(ema.shadow.weight[0, 0]))
    # step 0: decay min(0.9, 1/10) = 0.1, so the average jumps most of the way at once
    assert values[0] == pytest.approx(0.9)
    assert all(b >= a for a, b in zip(values, values[1:])) and values[-1] == pytest.approx(1.0, abs=1e-6)
    assert not ema.shadow.weight.requires_grad


def test_recalibrated_batchnorm_holds_the_exact_statistics_of_the_latents():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    net[1].running_mean.fill_(100.0)  # stale statistics, as after fast-moving training
    net.eval()
    n = recalibrate_batchnorm(net, 4, batches=5, batch_size=50, seed=7)
    assert n == 1 and not net.training  # its mode is restored
    g = torch.Generator().manual_seed(7)
    z = torch.cat([torch.randn(50, 4, generator=g) for _ in range(5)])
    with torch.no_grad():
        h = net[0](z)
    # the cumulative average of the five batch means (all batches are the same size)
    assert torch.allclose(net[1].running_mean, h.mean(0), atol=1e-5)
    assert net[1].momentum == 0.1  # restored


def test_minibatch_std_lets_d_see_how_varied_a_batch_is():
    torch.manual_seed(0)
    d = Discriminator(DCGANConfig(d_width=4, g_width=4, d_norm="none", d_mbstd=True)).eval()
    x = torch.randn(4, 1, 128, 128) * 0.3
    same = x[:1].expand(4, -1, -1, -1)
    out_varied, out_same = d(x), d(same)
    # the first image is the same in both batches; only its batch-mates differ
    assert not torch.allclose(out_varied[0], out_same[0])
    plain = Discriminator(DCGANConfig(d_width=4, g_width=4, d_norm="none")).eval()
    assert torch.allclose(plain(x)[0], plain(same)[0])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())


def test_r1_needs_a_discriminator_without_batchnorm():
    with pytest.raises(ValueError, match="R1"):
        config_from_dict("gan", {"preset": "tiny", "r1_gamma": 1.0})
    cfg = config_from_dict("gan", {**recipe("cpu", "gan")})
    assert cfg.model_config() == dcgan_config("cpu") and cfg.r1_gamma > 0


def test_paper_recipe_is_the_dataclass_defaults():
    assert RECIPES["paper"] == {"gan": {}, "vae": {}}
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe("fast", "gan")


def _tiny_recipe(kind: str, **kw):
    over = {**recipe("cpu", kind), "preset": "tiny", "batch_size": 4, "epochs": 2, "sample_every": 0,
            "log_every": 1, "n_samples": 4, **kw}
    if kind == "gan":
        over["model"] = {"d_norm": "none", "d_mbstd": True}
    return config_from_dict(kind, over)


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_recipe_exports_the_recalibrated_average_and_resumes_exactly(tmp_path, kind):
    data = TensorSlices(synthetic_ellipses(24, seed=1))
    engine = train_gan if kind == "gan" else train_vae
    cfg = _tiny_recipe(kind)
    run_all(engine, cfg, data, tmp_path / "straight")
    run_all(engine, cfg, data, tmp_path / "resumed", stop_after=3)
    run_all(engine, cfg, data, tmp_path / "resumed")
    a = state_tensors(tmp_path / "straight" / "checkpoints" / "last.safetensors")
    b = state_tensors(tmp_path / "resumed" / "checkpoints" / "last.safetensors")
    assert any(k.startswith("model/ema/") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k  # the average is checkpointed and continues bit for bit

    exported = load_generator(tmp_path / "straight")
    prefix = "model/ema/"
    average = {k[len(prefix):]: v for k, v in a.items() if k.startswith(prefix)}
    weights = {k: v for k, v in exported.state_dict().items() if "running_" not in k and "num_batches" not in k}
    for k, v in weights.items():
        assert torch.equal(v, average[k]), k  # the exported weights are the average
    # its BatchNorm statistics are re-estimated on z ~ N(0, I), not the training run's
    gen_part = exported.decoder if kind == "vae" else exported
    stats = {k: v for k, v in gen_part.state_dict().items() if k.endswith("running_mean")}
    assert stats
    key = next(iter(stats))
    raw = average[("decoder." if kind == "vae" else "") + key]
    assert not torch.allclose(stats[key], raw)
    twin = load_generator(tmp_path / "straight")
    recal = twin.decoder if kind == "vae" else twin
    recalibrate_batchnorm(recal, 32, generate=twin.generate, seed=cfg.seed + 3)
    assert torch.allclose(recal.state_dict()[key], stats[key])


def test_r1_penalty_changes_the_discriminator_step(tmp_path):
    data = TensorSlices(synthetic_ellipses(8, seed=2))
    outs = {}
    for gamma in (0.0, 10.0):
        cfg = _tiny_recipe("gan", r1_gamma=gamma, r1_every=1, epochs=1, ema=0.0)
        run_all(train_gan, cfg, data, tmp_path / f"g{gamma}")
        outs[gamma] = state_tensors(tmp_path / f"g{gamma}" / "checkpoints" / "last.safetensors")
    d_keys = [k for k in outs[0.0] if k.startswith("model/D/")]
    assert any(not torch.equal(outs[0.0][k], outs[10.0][k]) for k in d_keys)
    g_first = [k for k in outs[0.0] if k.startswith("model/G/")]
    assert np.isfinite(np.concatenate([outs[10.0][k].numpy().ravel() for k in g_first])).all()
