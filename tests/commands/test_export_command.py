"""``latentdirs export``: the navigator's export formats on the command line, from the one registry."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from napari_latentdirs.analysis import export as ex
from napari_latentdirs.analysis.export_formats import (
    EXPORT_FORMATS,
    ExportFormat,
    register_export_format,
    set_labels,
    unregister_export_format,
)
from napari_latentdirs.analysis.navigation import random_latents, shift_grid, stack
from napari_latentdirs.cli import build_parser, main
from napari_latentdirs.dicom.dciodvfy import dciodvfy_errors
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.models.analytic import FACTOR_NAMES, analytic_generator

GEN = "analytic:32"
FRAMES, LATENTS, HALF, K_SHOWN = 5, 2, 3.0, 2


@pytest.fixture(scope="module")
def generator():
    return analytic_generator(size=32)


@pytest.fixture
def set_path(tmp_path, generator):
    """The analytic generator's known factor directions, labelled with their factors."""
    path = tmp_path / "dirs.safetensors"
    DirectionSet(generator.factor_directions().numpy(), "voynov-unit", generator.fingerprint,
                 labels=list(FACTOR_NAMES)).save(path)
    return path


def _export(set_path, out, *extra):
    return main(["export", str(set_path), "--generator", GEN, "--direction", str(K_SHOWN), "--out", str(out),
                 "--frames", str(FRAMES), "--latents", str(LATENTS), "--shift", str(HALF), "--latent", "1", *extra])


def _expected(generator, set_path):
    """What the navigator would show: every latent shifted along direction K_SHOWN, in HU."""
    ds = DirectionSet.load(set_path)
    z = random_latents(LATENTS, generator.latent_dim, 0)
    return stack(generator, z, ds.direction(K_SHOWN), shift_grid(-HALF, HALF, FRAMES))


BUILT_IN = ["tiff", "gif", "mp4", "png-grid", "dicom"]


def _export_help() -> str:
    """``latentdirs export --help``, as one line (the parser is built anew: it reads the registry now)."""
    return " ".join(build_parser()._subparsers._group_actions[0].choices["export"].format_help().split())


def test_the_cli_offers_every_format_of_the_registry():
    assert list(EXPORT_FORMATS) == BUILT_IN  # the parametrisation below covers every built-in format
    text = _export_help()
    assert all(f"{name} ({spec.suffix}: {spec.label})" in text for name, spec in EXPORT_FORMATS.items())


@pytest.mark.parametrize("name", BUILT_IN)
def test_each_format_is_written_with_the_sweep_the_navigator_shows(tmp_path, generator, set_path, capsys, name):
    spec = EXPORT_FORMATS[name]
    out = tmp_path / f"sweep{spec.suffix}"
    assert _export(set_path, out) == 0, capsys.readouterr().err
    expected = _expected(generator, set_path)  # (latent, shift, H, W) HU
    if name == "tiff":
        tif = ex.read_tiff(out)
        np.testing.assert_allclose(tif.data, expected, atol=1e-3)  # every latent's sweep, in HU
        assert tif.frame_step == pytest.approx(2 * HALF / (FRAMES - 1))
        assert tif.metadata["direction"] == K_SHOWN and tif.metadata["label"] == FACTOR_NAMES[K_SHOWN]
    elif name in ("gif", "mp4"):
        frames = ex.read_animation(out)
        n = len(ex.ping_pong(np.zeros((FRAMES, 1, 1))))  # both loop forth and back
        assert frames.shape[0] == n and frames.shape[1:] == (64, 64)  # --scale 2 by default
        # the sweep of the latent asked for (1), through the lung window; the α stamp sits in a corner
        want = np.repeat(np.repeat(ex.to_uint8(expected[1], "lung"), 2, axis=-2), 2, axis=-1)
        middle = (slice(None), slice(16, 48), slice(16, 48))
        tol = 1 if name == "gif" else 24  # MP4 is lossy
        assert np.abs(frames[:FRAMES][middle].astype(int) - want[middle].astype(int)).mean() <= tol
    elif name == "png-grid":
        tiles, layout = ex.read_png_grid(out)
        assert tiles.shape[0] == len(FACTOR_NAMES) and tiles.shape[1] == FRAMES  # every direction as a row
        assert layout["rows"] == list(set_labels(DirectionSet.load(set_path)))
    else:
        files = sorted(out.glob("*.dcm"))
        assert len(files) == FRAMES
        for f in files:
            assert dciodvfy_errors(f) == [], f
        series = [pydicom.dcmread(f) for f in files]
        assert "DERIVED" in series[0].ImageType and not series[0].get("PatientName", "")
        hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in series])
        assert np.abs(hu - expected[1]).max() <= 1.0  # the latent asked for, in whole HU
    said = capsys.readouterr().out
    assert str(out) in said


def test_the_format_follows_the_suffix_and_format_overrides_it(tmp_path, set_path, capsys):
    assert _export(set_path, tmp_path / "a.gif") == 0
    assert ex.read_animation(tmp_path / "a.gif").ndim == 3
    assert _export(set_path, tmp_path / "b.anim", "--format", "gif") == 0
    assert ex.read_animation(tmp_path / "b.anim").ndim == 3


def test_a_format_registered_at_run_time_is_offered_and_written_by_the_cli(tmp_path, generator, set_path, capsys):
    def write_npy(path, sweep):
        np.save(path, sweep.frames)
        return [path]

    register_export_format("npy", ExportFormat("NumPy sweep", ".npy", write_npy))
    try:
        assert "npy (.npy: NumPy sweep)" in _export_help()
        out = tmp_path / "sweep.npy"
        assert _export(set_path, out) == 0, capsys.readouterr().err
        np.testing.assert_allclose(np.load(out), _expected(generator, set_path)[1], atol=1e-5)
    finally:
        unregister_export_format("npy")
    assert _export(set_path, tmp_path / "again.npy") == 2  # gone with its record
    assert "unknown export format" in capsys.readouterr().err and not (tmp_path / "again.npy").exists()


@pytest.mark.parametrize("case", ["direction", "latent", "suffix", "exists", "set", "dimension", "frames", "shift"])
def test_a_bad_request_is_one_line_and_writes_nothing(tmp_path, set_path, capsys, case):
    out = tmp_path / "out.gif"
    extra: list[str] = []
    target = set_path
    if case == "direction":
        extra = ["--direction", "6"]
    elif case == "latent":
        extra = ["--latent", str(LATENTS)]
    elif case == "suffix":
        out = tmp_path / "out.bmp"
    elif case == "exists":
        out.write_bytes(b"mine")
    elif case == "set":
        target = tmp_path / "missing.safetensors"
    elif case == "dimension":
        target = tmp_path / "d16.safetensors"
        DirectionSet(np.eye(16, 2, dtype=np.float32), "random").save(target)
    elif case == "frames":
        extra = ["--frames", "0"]
    else:
        extra = ["--shift", "inf"]
    rc = main(["export", str(target), "--generator", GEN, "--out", str(out), "--latents", str(LATENTS), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), err
    words = {"direction": "directions 0 to 5", "latent": f"latent {LATENTS}", "suffix": "unknown export format",
             "exists": "--force", "set": "no direction set", "dimension": "dimension 16", "frames": "--frames",
             "shift": "--shift must be a finite number"}
    assert words[case] in err[0], err
    if case == "exists":
        assert out.read_bytes() == b"mine"
        assert main(["export", str(target), "--generator", GEN, "--out", str(out), "--force", "--frames", "3"]) == 0
        assert ex.read_animation(out).shape[0] == len(ex.ping_pong(np.zeros((3, 1, 1))))
    else:
        assert not out.exists()
    assert not list(tmp_path.glob(".*.tmp"))  # no partial file left


def test_a_set_made_for_another_generator_is_exported_with_a_warning(tmp_path, generator, capsys):
    path = tmp_path / "theirs.safetensors"
    DirectionSet(generator.factor_directions().numpy(), "voynov-unit", "f" * 64).save(path)
    out = tmp_path / "sweep.tif"
    assert _export(path, out) == 0 and out.is_file()  # a warning, not a refusal: the user may know better
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {path}: the direction set was made for another generator")
    assert "f" * 12 in err and generator.fingerprint[:12] in err and "may mean nothing here" in err


def test_the_set_made_for_this_generator_is_exported_without_a_warning(tmp_path, set_path, capsys):
    assert _export(set_path, tmp_path / "sweep.tif") == 0
    assert "another generator" not in capsys.readouterr().err
