"""CLI subcommand, contact sheet and the napari sample-data function (no Qt needed)."""

from __future__ import annotations

import numpy as np

from napari_latentdirs.cli import main


def test_cli_writes_tree(tmp_path, capsys):
    rc = main(["phantom", str(tmp_path / "t"), "--patients", "1", "--seed", "2", "--matrix", "48", "--slices", "3", "--workers", "1"])
    assert rc == 0
    assert len(list((tmp_path / "t").rglob("*.dcm"))) == 3
    assert (tmp_path / "t" / "ground_truth.csv").is_file()
    assert "slices/s" in capsys.readouterr().out


def test_cli_contact_sheet(tmp_path, monkeypatch):
    import napari_latentdirs.phantom.contact_sheet as cs

    monkeypatch.setattr(cs, "LEVELS", (0.3, 0.8))  # keep the test fast; same code path
    orig = cs.render_contact_sheet
    monkeypatch.setattr(cs, "render_contact_sheet", lambda out, seed=0: orig(out, size=64, seed=seed, levels=(0.3, 0.8)))
    out = tmp_path / "sheet.png"
    assert main(["phantom", str(out), "--contact-sheet"]) == 0
    import imageio.v3 as iio

    img = iio.imread(out)
    assert img.ndim == 3 and img.shape[0] > 100


def test_sample_data_layer():
    from napari_latentdirs._napari import sample_data

    (data, kw, kind), = sample_data.synthetic_thorax()
    assert kind == "image" and data.ndim == 3 and data.dtype == np.float32
    assert len(kw["scale"]) == 3 and all(s > 0 for s in kw["scale"])
    assert data.min() >= -1100 and data.max() > 500  # HU, with bone
