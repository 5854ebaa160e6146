"""Export formats are one registry (``analysis.export_formats.EXPORT_FORMATS``, issue 21): a format
added at run time is in the navigator's menu and runs from it; napari.yaml's Save Layer writers
are the formats marked ``save_layer``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import napari_latentdirs
from napari_latentdirs.analysis.export_formats import (
    EXPORT_FORMATS,
    ExportFormat,
    SweepExport,
    export_format,
    register_export_format,
    unregister_export_format,
)

CALLS: list[tuple[Path, SweepExport]] = []


def write_npy_sweep(path: Path, sweep: SweepExport) -> list[Path]:
    """The toy format: the on-screen sweep as a .npy, and every direction's label beside it."""
    CALLS.append((path, sweep))
    np.save(path, sweep.frames)
    side = path.with_suffix(".txt")
    side.write_text("\n".join(sweep.labels))
    return [path, side]


@pytest.fixture
def toy_format():
    CALLS.clear()
    register_export_format("npy", ExportFormat("NumPy sweep (toy)", ".npy", f"{__name__}:write_npy_sweep"))
    yield
    unregister_export_format("npy")


def test_a_format_added_at_run_time_is_in_the_menu_and_runs(make_napari_viewer, sync_workers, saved_model,
                                                             toy_format, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    _, nav = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    combo = nav.export_combo
    menu = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
    assert menu == [(spec.label, name) for name, spec in EXPORT_FORMATS.items()]  # the registry, in order
    assert ("NumPy sweep (toy)", "npy") in menu
    nav.n_spin.setValue(2)
    nav.load(*saved_model)
    nav.frames_spin.setValue(5)
    on_screen = np.array(nav.layer.data)[:, :, 0]  # (latent, shift, y, x): the z plane is for display

    # The menu entry, clicked: the save dialog offers the format's suffix, its writer gets the sweep.
    from napari_latentdirs._napari import navigator as navmod

    offered = []

    def save_dialog(parent, title, name, *args):
        offered.append((title, name))
        return str(tmp_path / name), ""

    monkeypatch.setattr(navmod.QFileDialog, "getSaveFileName", staticmethod(save_dialog))
    combo.setCurrentIndex(combo.findData("npy"))
    nav._export_clicked()
    assert offered == [("Export NumPy sweep (toy)", f"direction{nav.direction_index()}.npy")]
    path, sweep = CALLS[-1]
    assert path == tmp_path / offered[0][1]
    np.testing.assert_array_equal(np.load(path), on_screen[sweep.latent])
    np.testing.assert_array_equal(sweep.stack, on_screen)
    np.testing.assert_allclose(sweep.shifts, nav.shifts())
    assert sweep.labels[nav.direction_index()] == sweep.label and len(sweep.labels) == nav.directions.K
    assert nav.last_export == [path, path.with_suffix(".txt")]  # what the writer returned, reported
    # The registry's render: another direction's sweep of the same latent, from the same generator.
    other = sweep.render(nav.direction_index(), sweep.shifts)
    np.testing.assert_allclose(other, on_screen[sweep.latent], atol=1e-3)
    nav.export(tmp_path / "by_suffix.npy", ".npy")  # a format by its suffix, as by its name
    assert (tmp_path / "by_suffix.npy").is_file() and len(CALLS) == 2
    with pytest.raises(ValueError, match="unknown export format 'bmp'.*npy"):
        nav.export(tmp_path / "x.bmp", "bmp")
    nav.shutdown()


def test_an_unregistered_format_leaves_the_menu(make_napari_viewer, toy_format):
    unregister_export_format("npy")
    viewer = make_napari_viewer()
    _, nav = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    assert nav.export_combo.findData("npy") == -1 and nav.export_combo.count() == len(EXPORT_FORMATS)
    with pytest.raises(ValueError, match="unknown export format"):
        export_format("npy")


def test_save_layer_formats_are_the_napari_yaml_writers():
    manifest = yaml.safe_load((Path(napari_latentdirs.__file__).parent / "napari.yaml").read_text())
    exts = {e for w in manifest["contributions"]["writers"] for e in w["filename_extensions"]}
    marked = {spec.suffix for spec in EXPORT_FORMATS.values() if spec.save_layer}
    assert marked and marked <= exts  # every format marked save_layer has its writer
    # and every writer extension is a marked format's (".tiff" is TIFF's second spelling)
    assert {e if e != ".tiff" else ".tif" for e in exts} == marked


def test_records_are_checked():
    with pytest.raises(ValueError, match="starts with a dot"):
        ExportFormat("bad", "npy", write_npy_sweep)
    with pytest.raises(TypeError, match="ExportFormat"):
        register_export_format("bad", ("label", ".x", write_npy_sweep))  # type: ignore[arg-type]
    assert "bad" not in EXPORT_FORMATS


def test_the_cli_exports_what_the_navigator_shows_with_the_same_defaults(make_napari_viewer, sync_workers,
                                                                         saved_model, tmp_path, capsys):
    """``latentdirs export`` with its defaults writes the stack a fresh navigator shows (same latents,
    seed, shifts and writer), so a sweep made on a server matches the one reviewed in napari."""
    from napari_latentdirs.analysis.export import read_tiff
    from napari_latentdirs.cli import main

    viewer = make_napari_viewer()
    _, nav = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    nav.load(*saved_model)
    k = nav.direction_index()
    nav.export(tmp_path / "navigator.tif", "tiff")
    gen, dirs = saved_model
    assert main(["export", str(dirs), "--generator", str(gen), "--direction", str(k),
                 "--out", str(tmp_path / "cli.tif")]) == 0, capsys.readouterr().err
    on_screen, headless = read_tiff(tmp_path / "navigator.tif"), read_tiff(tmp_path / "cli.tif")
    assert headless.data.shape == on_screen.data.shape
    np.testing.assert_allclose(headless.data, on_screen.data, atol=1e-3)
    assert headless.frame_step == pytest.approx(on_screen.frame_step)
    assert headless.metadata["shifts"] == pytest.approx(on_screen.metadata["shifts"])
    for key in ("model", "direction", "label"):
        assert headless.metadata[key] == on_screen.metadata[key], key
