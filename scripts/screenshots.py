"""Render a PNG screenshot of every napari-latentdirs widget in a real viewer (test-only).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Runs under Xvfb when there is no display. Every viewer has the sample CT open at
slice 47 (heart level) beside the widget, as a user sees it. Uses the bundled demo
models (falls back to a random tiny DCGAN when they are missing) and short tiny
runs for the training and direction docks, all synchronous so the pictures
are deterministic. Settings are read from and written to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _gui import ensure_display  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--steps", type=int, default=12, help="training steps shown in the training dock")
    args = ap.parse_args()
    ensure_display()
    os.environ["LATENTDIRS_SYNC_WORKERS"] = "1"
    os.environ["LATENTDIRS_CONFIG_DIR"] = tempfile.mkdtemp(prefix="latentdirs-shots-config-")
    args.out.mkdir(parents=True, exist_ok=True)

    import numpy as np

    import napari
    from napari_latentdirs.analysis.demo import available_demos, demo_model

    demos = {m.name for m in available_demos()}
    tmp = Path(tempfile.mkdtemp(prefix="latentdirs-shots-"))
    app = napari.qt.get_qapp()

    def viewer_with(name: str):
        import time

        v = napari.Viewer(show=True, title=f"napari-latentdirs: {name}")
        v.window.resize(1500, 950)
        [ct] = v.open_sample("napari-latentdirs", "synthetic_thorax")
        t0 = time.time()
        while (np.asarray(ct.data).reshape(len(ct.data), -1).max(1) <= -1000).any() and time.time() - t0 < 120:
            app.processEvents()  # the sample renders in the background
            time.sleep(0.05)
        ct.refresh()
        v.dims.set_current_step(0, 47)
        _, w = v.window.add_plugin_dock_widget("napari-latentdirs", name)
        app.processEvents()
        return v, w

    def shot(v, fname: str) -> None:
        for _ in range(5):
            app.processEvents()
        path = args.out / fname
        v.window.screenshot(str(path), canvas_only=False)
        print(f"wrote {path}")
        v.close()

    # latent navigator with the demo GAN
    v, nav = viewer_with("Latent navigator")
    nav.n_spin.setValue(4)
    if "gan" in demos:
        nav.load_demo("gan")
    else:
        from napari_latentdirs.directions.set import DirectionSet
        from napari_latentdirs.models.dcgan import Generator, dcgan_config

        g = Generator(dcgan_config("tiny")).eval().requires_grad_(False)
        nav.set_model(g, DirectionSet(np.eye(32, 8, dtype=np.float32), "axes"), "random tiny DCGAN")
    nav.window_combo.setCurrentText("mediastinum")
    nav.direction_list.setCurrentRow(min(3, nav.direction_list.count() - 1))
    v.dims.set_current_step(1, nav.frames_spin.value() - 4)
    shot(v, "navigator.png")

    # your own generator without a direction set: samples, and the offer to compute or discover one
    if "gan" in demos:
        v, nav = viewer_with("Latent navigator")
        nav.n_spin.setValue(6)
        nav.load(demo_model("gan").generator, None, name="my generator")
        nav.window_combo.setCurrentText("mediastinum")
        v.dims.set_current_step(0, 2)
        shot(v, "navigator-no-set.png")

    # review, blind, with the demo VAE
    v, rev = viewer_with("Review directions")
    if "vae" in demos:
        m = demo_model("vae")
        rev.demo_combo.setCurrentIndex(2)
        rev.n_latents.setValue(6)
        rev.start(m.generator, m.directions)
        v.dims.set_current_step(1, 15)
        rev.label_combo.setCurrentText("z-position")
        rev.rating_group.button(4).setChecked(True)
        rev.notes.setPlainText("moves from apex to diaphragm; slight size change")
        v.reset_view()  # the CT, the item's stack and the grid of its latents
    shot(v, "review.png")

    # training dock after a short tiny run on the phantom
    v, tr = viewer_with("Train generator")
    tr.expected_label.setText(tr.expected_label.text())  # the CPU recipe's expected time, before Start
    shot_defaults = tr.expected_label.text()
    print(f"training dock before Start: recipe {tr.recipe_combo.currentText()}, {shot_defaults}")
    tr.phantom_n.setValue(64)
    tr.preset_combo.setCurrentText("tiny")
    tr.epochs_spin.setValue(100)
    tr.batch_spin.setValue(8)
    tr.max_steps_spin.setValue(args.steps)
    tr.device_combo.setCurrentText("cpu")
    tr.out_edit.value = str(tmp / "train")
    tr.start()
    tr.flush()
    shot(v, "training.png")

    # direction discovery on the demo GAN (a few steps, to show RCA and L_s)
    v, dd = viewer_with("Discover directions")
    if "gan" in demos:
        dd.demo_combo.setCurrentIndex(1)
        dd.k_spin.setValue(8)
        dd.steps_spin.setValue(args.steps)
        dd.batch_spin.setValue(8)
        dd.device_combo.setCurrentText("cpu")
        dd.out_edit.value = str(tmp / "dirs")
        dd.probes_combo.setCurrentText("phantom")
        dd.start()  # labels the new set when it finishes (the Label step)
        dd.flush()
        for _ in range(5):
            app.processEvents()
        dd.scroll_area.ensureWidgetVisible(dd.label_status)  # the Label step, at the end of the dock
    shot(v, "directions.png")


if __name__ == "__main__":
    main()
