"""Direction matrices, reconstructors and the shift sampling of Voynov & Babenko's method."""

from __future__ import annotations

import pytest
import torch

from napari_latentdirs.directions.matrix import DirectionModel, orthonormality_error
from napari_latentdirs.directions.voynov import DirectionsConfig, paper_steps, sample_inputs
from napari_latentdirs.models.reconstructors import LeNetReconstructor, build_reconstructor


def _perturb(model: DirectionModel, scale: float = 0.7) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))


def test_unit_columns_have_unit_length_after_any_update_and_no_bias():
    m = DirectionModel(32, 100, "unit")
    _perturb(m)
    A = m.matrix()
    assert A.shape == (32, 100)
    torch.testing.assert_close(A.norm(dim=0), torch.ones(100))
    # Exactly W / ||W||: no bias term slipped in before the normalisation.
    torch.testing.assert_close(A, m.weight / m.weight.norm(dim=0, keepdim=True))


@pytest.mark.parametrize("K", [1, 7, 32])
def test_ortho_columns_are_orthonormal_after_large_updates(K):
    m = DirectionModel(32, K, "ortho")
    for _ in range(3):
        _perturb(m, 2.0)
        assert orthonormality_error(m.matrix()) < 1e-5


def test_ortho_refuses_more_directions_than_latent_dims():
    with pytest.raises(ValueError, match="ortho.*K <= latent_dim"):
        DirectionModel(32, 100, "ortho")
    with pytest.raises(ValueError, match="ortho"):
        from napari_latentdirs.directions.voynov import train_directions
        from napari_latentdirs.models.analytic import analytic_generator

        # Refused when called, before any step runs.
        train_directions(DirectionsConfig(K=33, variant="ortho"), analytic_generator(), "/nonexistent/never-created")


def test_random_variant_is_fixed_unit_and_has_nothing_to_learn():
    m = DirectionModel(32, 40, "random", generator=torch.Generator().manual_seed(3))
    assert list(m.parameters()) == []
    torch.testing.assert_close(m.matrix().norm(dim=0), torch.ones(40))
    again = DirectionModel(32, 40, "random", generator=torch.Generator().manual_seed(3))
    assert torch.equal(m.matrix(), again.matrix())


def test_axes_initialisation():
    assert torch.equal(DirectionModel(32, 32, "unit", init="axes").matrix(), torch.eye(32))
    assert torch.equal(DirectionModel(32, 10, "ortho", init="axes").matrix(), torch.eye(32)[:, :10])
    wide = DirectionModel(32, 50, "unit", init="axes").matrix()
    assert torch.equal(wide[:, :32], torch.eye(32))
    torch.testing.assert_close(wide.norm(dim=0), torch.ones(50))


def test_shift_is_alpha_times_column_k():
    m = DirectionModel(8, 5, "unit")
    k = torch.tensor([0, 4, 2])
    alpha = torch.tensor([1.5, -6.0, 0.5])
    expected = torch.stack([alpha[i] * m.matrix()[:, k[i]] for i in range(3)])
    torch.testing.assert_close(m(k, alpha), expected)


def test_alpha_is_uniform_in_pm6_with_small_values_snapped_to_half():
    gen = torch.Generator().manual_seed(0)
    _, k, alpha = sample_inputs(gen, 60_000, 4, 7, 6.0, 0.5, torch.device("cpu"))
    a = alpha.abs()
    assert float(a.min()) == 0.5 and float(a.max()) <= 6.0
    assert not bool(((a > 0.5) & (a < 0.5 + 1e-9)).any())
    # The snapped mass: P(|alpha| < 0.5) = 1/12, split between +0.5 and -0.5 (signs kept).
    assert abs(float((alpha == 0.5).float().mean()) - 1 / 24) < 0.005
    assert abs(float((alpha == -0.5).float().mean()) - 1 / 24) < 0.005
    assert abs(float((alpha > 0).float().mean()) - 0.5) < 0.01
    assert set(k.unique().tolist()) == set(range(7))


@pytest.mark.parametrize("name", ["lenet", "resnet18"])
def test_reconstructors_take_the_pair_on_channels_and_have_two_heads(name):
    R = build_reconstructor(name, 13)
    x, y = torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32, requires_grad=True)
    logits, alpha = R(x, y)
    assert logits.shape == (4, 13) and alpha.shape == (4,)
    (logits.sum() + alpha.sum()).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


def test_lenet_matches_the_specified_layers():
    R = LeNetReconstructor(32)
    convs = [m for m in R.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(2, 6, (5, 5)), (6, 16, (5, 5)), (16, 120, (5, 5))]
    for head, out in ((R.logits, 32), (R.shift, 1)):
        assert isinstance(head[1], torch.nn.BatchNorm1d)
        assert (head[0].in_features, head[0].out_features, head[3].out_features) == (120, 84, out)


def test_resnet18_has_the_resnet18_layout():
    R = build_reconstructor("resnet18", 32)
    n_params = sum(p.numel() for p in R.parameters())
    # torchvision resnet18 has 11,689,512 parameters with a 3-channel stem and a 1000-way fc;
    # here: stem 2 channels (-3136), heads 512*32+32 and 512+1 instead of 512*1000+1000.
    assert n_params == 11_689_512 - 3 * 64 * 49 + 2 * 64 * 49 - (512 * 1000 + 1000) + (512 * 32 + 32) + (512 + 1)


def test_paper_step_counts():
    assert paper_steps(32, "gan", "lenet") == 25_000 and paper_steps(32, "vae", "resnet18") == 3_000
    assert paper_steps(100, "vae", "lenet") == 75_000 and paper_steps(100, "vae", "resnet18") == 4_000
    assert paper_steps(100, "gan", "lenet") == 250_000 and paper_steps(100, "gan", "resnet18") == 10_000
    assert DirectionsConfig(K=100, generator_kind="gan", reconstructor="resnet18", steps_scale=0.01).total_steps == 100
    assert DirectionsConfig(steps=7).total_steps == 7
