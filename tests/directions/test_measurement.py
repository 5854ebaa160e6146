"""How RCA is measured (precise BatchNorm statistics) and what R sees (reconstructor_input)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from napari_latentdirs.directions.matrix import DirectionModel
from napari_latentdirs.directions.voynov import (
    DirectionsConfig,
    direction_step,
    evaluate,
    load_reconstructor,
    sample_inputs,
    train_directions,
)
from napari_latentdirs.models.analytic import AnalyticEllipseGenerator
from napari_latentdirs.models.reconstructors import build_reconstructor


def _trained(steps: int = 150):
    torch.manual_seed(0)
    G = AnalyticEllipseGenerator().eval().requires_grad_(False)
    A = DirectionModel(G.latent_dim, 8, "unit", generator=torch.Generator().manual_seed(0))
    R = build_reconstructor("lenet", 8)
    opts = [torch.optim.Adam(R.parameters(), lr=3e-3), torch.optim.Adam(A.parameters(), lr=3e-3)]
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        z, k, a = sample_inputs(gen, 32, G.latent_dim, 8, 6.0, 0.5, torch.device("cpu"))
        direction_step(G, A, R, opts, z, k, a, 0.25)
    return G, A, R


def test_rca_uses_batch_statistics_re_estimated_on_the_training_distribution():
    G, A, R = _trained()
    kw = {"batches": 8, "batch_size": 64, "gamma": 0.25, "seed": 3}
    fair = evaluate(G, A, R, **kw)["rca"]
    # stale running averages, as a fast-moving R leaves them: the old measurement drops, the new one not
    for m in R.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.add_(3.0)
            m.running_var.mul_(10.0)
    before = {k: v.clone() for k, v in R.state_dict().items()}
    stale = evaluate(G, A, R, bn_batches=0, **kw)["rca"]
    again = evaluate(G, A, R, **kw)["rca"]
    assert again == fair  # re-estimated from fresh batches: independent of R's running averages
    assert stale < fair - 0.2, (stale, fair)
    assert all(torch.equal(v, R.state_dict()[k]) for k, v in before.items())  # R itself is untouched
    # and the figure is what R achieves with batch statistics on the same kind of batches
    R.train()
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        z, k, a = sample_inputs(gen, 256, G.latent_dim, 8, 6.0, 0.5, torch.device("cpu"))
        acc = float((R(G.generate(z), G.generate(z + A(k, a)))[0].argmax(1) == k).float().mean())
    assert abs(acc - fair) < 0.1, (acc, fair)


def test_reconstructor_input_sees_the_area_averaged_pair(tmp_path):
    torch.manual_seed(0)
    R64 = build_reconstructor("lenet", 5, input_size=64).eval()
    R = build_reconstructor("lenet", 5).eval()
    R.load_state_dict(R64.state_dict())
    x, y = torch.rand(2, 1, 128, 128), torch.rand(2, 1, 128, 128)
    a = R64(x, y)[0]
    b = R(F.avg_pool2d(x, 2), F.avg_pool2d(y, 2))[0]
    assert torch.allclose(a, b, atol=1e-5)
    # the saved reconstructor remembers its input size
    cfg = DirectionsConfig(K=4, steps=2, batch_size=4, eval_batches=1, device="cpu", generator_kind="analytic",
                           reconstructor_input=32, checkpoint_every=0)
    list(train_directions(cfg, AnalyticEllipseGenerator(size=64).eval(), tmp_path))
    assert load_reconstructor(tmp_path / "reconstructor.safetensors").input_size == 32
