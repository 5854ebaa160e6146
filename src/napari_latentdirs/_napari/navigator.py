"""Latent navigator: walk a generator's latent space along discovered directions.

The stack layer has axes (latent, shift α, z, y, x) and holds HU (the exact
inverse of the preprocessing); it sits beside any CT in the viewer, in mm, on
axes of its own (see placement.py), and the dock shows the shift α on screen. Every control change submits a request to a
one-slot mailbox; a worker thread streams the frame being looked at first and
then the rest of the stack, and stale requests are dropped, so the newest
always wins. Frames are written into the layer on the GUI thread only.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from magicgui.widgets import FileEdit
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleRangeSlider

from ..analysis import export as ex
from ..analysis.demo import DEMO_NAMES, demo_model
from ..analysis.navigation import (
    DirectionInfo,
    StackChunk,
    StackRequest,
    StackStreamer,
    direction_info,
    model_pixel_mm,
    random_latents,
    shift_grid,
)
from ..data.preprocess import DEFAULT
from ..directions.set import DirectionSet
from ..models.custom import is_factory_spec
from ..models.interface import LatentGenerator
from .placement import add_generated, as_stack, is_generated
from .scroll import scrolling_layout
from .stack_feed import StackFeed
from .stack_view import StackView
from .workers import EngineRunner

log = logging.getLogger(__name__)

LAYER_NAME = "latent stack"
SOURCES = ("random latents", "encode CT slice (VAE)", "invert CT slice (GAN)")
EXPORT_FORMATS = {
    "TIFF (stack, with spacing)": ".tif",
    "GIF sweep (current latent)": ".gif",
    "MP4 sweep (current latent)": ".mp4",
    "PNG grid (paper figure)": ".png",
    "DICOM series (derived)": ".dcmdir",
}


def default_shift(ds: DirectionSet | None) -> float:
    """Half-width of the shift range: from the direction set's training meta when recorded."""
    if ds is not None:
        cfg = ds.meta.get("config") if isinstance(ds.meta.get("config"), dict) else {}
        for v in (ds.meta.get("alpha_max"), cfg.get("alpha_max"), ds.meta.get("shift_max")):
            if isinstance(v, int | float) and v > 0:
                return float(v)
    return 6.0


class LatentNavigator(QWidget):
    #: (ticket, frames written so far for that ticket) after every chunk lands in the layer
    chunk_applied = Signal(int, int)
    #: ticket, once the whole stack of a request is in the layer
    stack_complete = Signal(int)
    #: latents changed (after encode/invert/random)
    latents_changed = Signal()

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.generator: LatentGenerator | None = None
        self.directions: DirectionSet | None = None
        self.model_name = ""
        self.z: np.ndarray | None = None
        self.frame_shape: tuple[int, int] | None = None
        self.last_export: list[Path] = []
        self.inversion_error: float | None = None
        self.pixel_mm = ex.DEFAULT_PIXEL_MM
        self.info: DirectionInfo | None = None
        self.fingerprint_mismatch = False
        self.view = StackView(self, napari_viewer, LAYER_NAME)
        self.feed = StackFeed(self, self._on_chunk, self._on_stream_error, viewer=napari_viewer, name="latent navigator")
        self._jobs = EngineRunner(self, on_event=self._on_job, on_done=self._on_job_done, viewer=napari_viewer, name="latent navigator job")
        self._build_ui()
        self.viewer.layers.events.inserted.connect(self._refresh_layer_choices)
        self.viewer.layers.events.removed.connect(self._refresh_layer_choices)
        self.viewer.dims.events.current_step.connect(self._show_alpha)
        self._refresh_layer_choices()

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        lay = scrolling_layout(self)
        model = QGroupBox("Model")
        mf = QFormLayout(model)
        self.generator_edit = FileEdit(mode="r", filter="*.safetensors")
        self.factory_edit = QLineEdit()
        self.factory_edit.setPlaceholderText("or package.module:factory")
        self.factory_edit.setToolTip("your own generator: a factory returning an nn.Module with latent_dim and "
                                     "forward(z) -> (B, C, H, W) in [-1, 1]")
        self.weights_edit = FileEdit(mode="r", filter="*.safetensors *.pt *.pth")
        self.directions_edit = FileEdit(mode="r", filter="*.safetensors")
        grow = QHBoxLayout()
        grow.addWidget(self.generator_edit.native, 3)
        grow.addWidget(self.factory_edit, 2)
        mf.addRow("generator", grow)
        mf.addRow("factory weights", self.weights_edit.native)
        mf.addRow("directions", self.directions_edit.native)
        row = QHBoxLayout()
        self.load_btn = QPushButton("Load")
        self.load_btn.clicked.connect(self._load_clicked)
        self.demo_combo = QComboBox()
        self.demo_combo.addItems([f"demo {n.upper()}" for n in DEMO_NAMES])
        self.demo_btn = QPushButton("Load demo")
        self.demo_btn.clicked.connect(lambda: self.load_demo(DEMO_NAMES[self.demo_combo.currentIndex()]))
        row.addWidget(self.load_btn)
        row.addWidget(self.demo_combo)
        row.addWidget(self.demo_btn)
        mf.addRow(row)
        self.model_label = QLabel("no model: load one, or the bundled demo")
        self.model_label.setWordWrap(True)
        mf.addRow(self.model_label)
        lay.addWidget(model)

        latents = QGroupBox("Latents")
        lf = QFormLayout(latents)
        self.source_combo = QComboBox()
        self.source_combo.addItems(SOURCES)
        self.n_spin = QSpinBox()
        self.n_spin.setRange(1, 64)
        self.n_spin.setValue(4)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.ct_combo = QComboBox()
        self.apply_latents_btn = QPushButton("Set latents")
        self.apply_latents_btn.clicked.connect(self.set_latents_from_source)
        self.latent_label = QLabel("")
        lf.addRow("source", self.source_combo)
        lf.addRow("N (random)", self.n_spin)
        lf.addRow("seed", self.seed_spin)
        lf.addRow("CT layer", self.ct_combo)
        lf.addRow(self.apply_latents_btn)
        lf.addRow(self.latent_label)
        lay.addWidget(latents)

        dirs = QGroupBox("Direction")
        dl = QVBoxLayout(dirs)
        self.direction_list = QListWidget()
        self.direction_list.setMinimumHeight(120)
        self.direction_list.currentRowChanged.connect(lambda _r: self.request_stack())
        dl.addWidget(self.direction_list)
        df = QFormLayout()
        self.shift_slider = QLabeledDoubleRangeSlider(Qt.Orientation.Horizontal)
        self.shift_slider.setRange(-20.0, 20.0)
        self.shift_slider.setValue((-6.0, 6.0))
        self.shift_slider.valueChanged.connect(lambda _v: self.request_stack())
        self.frames_spin = QSpinBox()
        self.frames_spin.setRange(1, 201)
        self.frames_spin.setValue(41)
        self.frames_spin.valueChanged.connect(lambda _v: self.request_stack())
        self.window_combo = QComboBox()
        self.window_combo.addItems(["lung", "mediastinum", "bone"])
        self.window_combo.currentTextChanged.connect(self._apply_window)
        df.addRow("shift range", self.shift_slider)
        df.addRow("frames", self.frames_spin)
        df.addRow("window", self.window_combo)
        dl.addLayout(df)
        self.alpha_label = QLabel("shift α: -")
        self.alpha_label.setStyleSheet("font-weight: bold")
        dl.addWidget(self.alpha_label)
        prow = QHBoxLayout()
        self.play_btn = QPushButton("Play")
        self.play_btn.setCheckable(True)
        self.play_btn.toggled.connect(self.set_playing)
        self.fps_spin = QDoubleSpinBox()
        self.fps_spin.setRange(1.0, 60.0)
        self.fps_spin.setValue(12.0)
        self.fps_spin.setSuffix(" fps")
        self.copy_btn = QPushButton("Copy to new layer")
        self.copy_btn.clicked.connect(self.copy_to_layer)
        prow.addWidget(self.play_btn)
        prow.addWidget(self.fps_spin)
        prow.addWidget(self.copy_btn)
        dl.addLayout(prow)
        lay.addWidget(dirs)

        exp = QGroupBox("Export")
        er = QHBoxLayout(exp)
        self.export_combo = QComboBox()
        self.export_combo.addItems(list(EXPORT_FORMATS))
        self.export_btn = QPushButton("Export...")
        self.export_btn.clicked.connect(self._export_clicked)
        er.addWidget(self.export_combo)
        er.addWidget(self.export_btn)
        lay.addWidget(exp)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        lay.addStretch(1)
        self._set_model_controls(False)

    def _set_model_controls(self, enabled: bool) -> None:
        for w in (self.apply_latents_btn, self.direction_list, self.play_btn, self.copy_btn, self.export_btn):
            w.setEnabled(enabled)

    def _refresh_layer_choices(self, *_: Any) -> None:
        from napari.layers import Image

        current = self.ct_combo.currentText()
        # CT slices are 2-D or 3-D image layers; the generated (latent, shift, y, x) stacks are not
        names = [ly.name for ly in self.viewer.layers if isinstance(ly, Image) and ly.ndim in (2, 3) and not is_generated(ly)]
        self.ct_combo.clear()
        self.ct_combo.addItems(names)
        if current in names:
            self.ct_combo.setCurrentText(current)

    # ------------------------------------------------------------------ model
    def _load_clicked(self) -> None:
        factory = self.factory_edit.text().strip()
        gen = factory or str(self.generator_edit.value or "")
        dirs = str(self.directions_edit.value or "")
        if not gen or gen == ".":
            # nothing chosen: offer the bundled demo (the one selected next to the button)
            self.load_demo(DEMO_NAMES[self.demo_combo.currentIndex()])
            return
        weights = str(self.weights_edit.value or "") if factory else ""
        try:
            self.load(gen, dirs if dirs and dirs != "." else None, weights=weights if weights not in ("", ".") else None)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            from napari.utils.notifications import show_error

            show_error(f"latent navigator: cannot load model: {exc}")

    def load_demo(self, name: str = "gan") -> None:
        m = demo_model(name)
        if not m.available:
            from napari.utils.notifications import show_error

            show_error(f"the bundled {name} demo is not installed; run training/make_demo_models.py")
            return
        # the file fields stay for the user's own files: Load with them empty offers a demo again
        self.load(m.generator, m.directions, name=f"demo {name.upper()}", show_paths=False)

    def load(
        self,
        generator_path: str | Path,
        directions_path: str | Path | None = None,
        name: str | None = None,
        show_paths: bool = True,
        weights: str | Path | None = None,
    ) -> None:
        """Load a generator file, run folder or ``module:factory`` (with ``weights``) and a
        direction set; warns when the set was made for another generator."""
        from ..directions.voynov import resolve_generator

        spec = str(generator_path)
        gen, fingerprint, _kind = resolve_generator(spec, weights=weights)
        ds = DirectionSet.load(directions_path) if directions_path else None
        p = Path(spec)
        if is_factory_spec(spec) or p.is_dir():
            default_name = spec if is_factory_spec(spec) else p.name
        else:  # a run's generator.safetensors is named after its run
            default_name = p.parent.name if p.name == "generator.safetensors" else p.stem
        info = direction_info(ds, directions_path) if ds is not None else None
        self.set_model(gen, ds, name or default_name, info=info)
        self.check_fingerprint(fingerprint)
        if not show_paths:
            return
        if is_factory_spec(spec):
            self.factory_edit.setText(spec)
        else:
            self.generator_edit.value = spec
        if directions_path:
            self.directions_edit.value = str(directions_path)

    def check_fingerprint(self, fingerprint: str) -> bool:
        """Warn (napari notification + model line) when the direction set records another
        generator than the one loaded; its directions then mean nothing for this one."""
        recorded = self.directions.generator if self.directions is not None else ""
        self.fingerprint_mismatch = bool(recorded and fingerprint and recorded != fingerprint)
        if self.fingerprint_mismatch:
            from napari.utils.notifications import show_warning

            text = (f"the direction set was made for another generator (fingerprint {recorded[:12]}…, "
                    f"loaded {fingerprint[:12]}…): its directions may mean nothing here")
            show_warning(f"latent navigator: {text}")
            self.model_label.setText(self.model_label.text() + f"\n⚠ {text}")
        return not self.fingerprint_mismatch

    def set_model(self, generator: LatentGenerator, directions: DirectionSet | None, name: str = "model",
                  info: DirectionInfo | None = None) -> None:
        """Use an in-memory generator (and direction set); the stream switches to it at once."""
        if directions is not None and directions.latent_dim != generator.latent_dim:
            raise ValueError(f"direction set has dimension {directions.latent_dim}, the generator {generator.latent_dim}")
        self.fingerprint_mismatch = False
        self.feed.set_generator(generator)
        self.generator = generator
        self.directions = directions
        self.model_name = name
        assert self.feed.streamer is not None
        with torch.inference_mode():
            probe = generator.generate(torch.zeros(1, generator.latent_dim, device=self.feed.streamer.device))
        self.frame_shape = (int(probe.shape[-2]), int(probe.shape[-1]))
        self.pixel_mm = model_pixel_mm(self.frame_shape[-1], getattr(generator, "meta", None))
        self.info = info if info is not None else (direction_info(directions) if directions is not None else None)
        self.direction_list.blockSignals(True)
        self.direction_list.clear()
        if self.info is not None:
            self.direction_list.addItems([self.info.item_text(k) for k in range(directions.K)])
        self.direction_list.blockSignals(False)
        half = default_shift(directions)
        lim = max(20.0, 2 * half)
        self.shift_slider.blockSignals(True)
        self.shift_slider.setRange(-lim, lim)
        self.shift_slider.setValue((-half, half))
        self.shift_slider.blockSignals(False)
        kind = "VAE" if hasattr(generator, "encode") else "GAN"
        k = directions.K if directions is not None else 0
        run = f"; run {self.info.run}" if self.info is not None and self.info.run else ""
        self.model_label.setText(f"{name}: {kind}, d={generator.latent_dim}, {k} directions "
                                 f"({directions.method if directions else 'none'}){run}")
        warning = directions.not_learned() if directions is not None else None
        if warning:
            from napari.utils.notifications import show_warning

            show_warning(f"latent navigator: {warning}")
            self.model_label.setText(self.model_label.text() + f"\n⚠ {warning}")
        self._set_model_controls(True)
        self.source_combo.setCurrentIndex(0)
        self.z = random_latents(self.n_spin.value(), generator.latent_dim, self.seed_spin.value())
        self.view.reset()  # the old model's frames never show under the new name
        if directions is not None and directions.K:
            self.direction_list.setCurrentRow(0)  # submits the first request

    # ------------------------------------------------------------------ latents
    def set_latents(self, z: np.ndarray) -> None:
        z = np.atleast_2d(np.asarray(z, dtype=np.float32))
        if self.generator is None or z.shape[1] != self.generator.latent_dim:
            raise ValueError("latents do not match the loaded generator")
        self.z = z
        self.latents_changed.emit()
        self.request_stack()

    def set_latents_from_source(self) -> None:
        if self.generator is None:
            return
        src = self.source_combo.currentIndex()
        if src == 0:
            self.inversion_error = None
            self.latent_label.setText(f"{self.n_spin.value()} random latents, seed {self.seed_spin.value()}")
            self.set_latents(random_latents(self.n_spin.value(), self.generator.latent_dim, self.seed_spin.value()))
            return
        if self._jobs.running:
            self.latent_label.setText("busy: wait for the running job to finish")
            return
        if src == 1 and not hasattr(self.generator, "encode"):
            self.latent_label.setText("this generator has no encoder: use inversion (GAN)")
            return
        try:
            x = self.current_ct_slice()
        except ValueError as exc:
            self.latent_label.setText(str(exc))
            return
        if x is None:
            self.latent_label.setText("choose a CT image layer")
            return
        from ..analysis.inversion import InversionConfig, embed, reverse_search

        gen = self.generator
        seed = self.seed_spin.value()
        if src == 1:
            job = lambda stop: iter([embed(gen, x[None])])  # noqa: E731
        else:
            job = lambda stop: iter([reverse_search(gen, x[None], InversionConfig(seed=seed))])  # noqa: E731
        self.latent_label.setText("inverting..." if src == 2 else "encoding...")
        self.apply_latents_btn.setEnabled(False)
        self._jobs.start(job, "embedding a CT slice")

    def current_ct_slice(self) -> np.ndarray | None:
        """The displayed 2-D slice of the chosen CT layer, preprocessed to the generator's input."""
        name = self.ct_combo.currentText()
        if not name or name not in self.viewer.layers:
            return None
        layer = self.viewer.layers[name]
        data = layer.data
        if layer.ndim > 2:
            shown = tuple(self.viewer.dims.displayed)
            if shown[-2:] != (self.viewer.dims.ndim - 2, self.viewer.dims.ndim - 1) or self.viewer.dims.ndisplay != 2:
                raise ValueError("show the CT as axial 2-D slices (its last two axes) to encode the slice on screen")
            # the slice on screen: the viewer's point mapped into the CT's own data axes
            pos = np.round(np.asarray(layer.world_to_data(self.viewer.dims.point))).astype(int)
            idx = tuple(int(np.clip(p, 0, s - 1)) for p, s in zip(pos[:-2], data.shape[:-2]))
            data = data[idx]
        hu = np.asarray(data, dtype=np.float32)
        assert self.frame_shape is not None and self.feed.streamer is not None
        # Encoded with the window the generator was trained in (its frames decode with it too).
        prep = self.feed.streamer.preprocessing or DEFAULT
        return replace(prep, size=self.frame_shape[0])(hu)

    def _on_job(self, item: Any) -> None:
        from ..analysis.inversion import Embedding

        if isinstance(item, Embedding):
            self.inversion_error = float(item.mse[0])
            what = "inversion" if item.method == "reverse-search" else "encoder"
            self.latent_label.setText(f"{what}: reconstruction MSE {self.inversion_error:.4f} (model space)")
            self.set_latents(item.z)
        elif isinstance(item, list | tuple) and item and isinstance(item[0], Path):
            self.last_export = list(item)
            self.status.setText(f"exported {len(item)} file(s) to {item[0].parent}")

    def _on_job_done(self, error: BaseException | None) -> None:
        self.apply_latents_btn.setEnabled(self.generator is not None)
        self.export_btn.setEnabled(self.generator is not None)
        if error is not None:
            self.latent_label.setText(f"failed: {error}")

    # ------------------------------------------------------------------ streaming
    def shifts(self) -> np.ndarray:
        lo, hi = self.shift_slider.value()
        return shift_grid(float(lo), float(hi), self.frames_spin.value())

    def direction_index(self) -> int:
        return max(self.direction_list.currentRow(), 0)

    def visible_index(self, n: int, s: int, shifts: np.ndarray) -> tuple[int, int]:
        pos = self.view.position()
        if pos is not None and self.view.layer.visible:
            return min(pos[0], n - 1), min(pos[1], s - 1)
        return 0, int(np.argmin(np.abs(shifts)))

    def current_alpha(self) -> float | None:
        """The shift α of the frame on screen (None before the first stack)."""
        return self.view.current_alpha()

    def _show_alpha(self, *_: Any) -> None:
        alpha = self.current_alpha()
        if alpha is None:
            self.alpha_label.setText("shift α: -")
            return
        k = self.direction_index()
        name = self.info.item_text(k) if self.info is not None else f"#{k}"
        self.alpha_label.setText(f"shift α = {alpha:+.2f}   along {name}")
        if self.view.layer is not None:
            self.view.layer.metadata.setdefault("latentdirs", {})["alpha"] = alpha

    @property
    def streamer(self) -> StackStreamer | None:
        return self.feed.streamer

    @property
    def current(self) -> StackRequest | None:
        return self.feed.current

    def request_stack(self) -> StackRequest | None:
        """Submit the current controls as the newest request; returns it (with its ticket)."""
        if self.generator is None or self.directions is None or self.z is None or self.streamer is None:
            return None
        k = self.direction_index()
        shifts = self.shifts()
        n, s = self.z.shape[0], shifts.size
        self.status.setText(f"generating {n}x{s} frames along direction {k}...")
        return self.feed.submit(StackRequest(self.z, self.directions.direction(k), shifts, self.visible_index(n, s, shifts)))

    def _on_chunk(self, req: StackRequest, chunk: StackChunk) -> None:
        if self.view.apply(req, chunk, pixel_mm=self.pixel_mm, window=self.window_combo.currentText(),
                           metadata=self._layer_metadata(req)):
            self._refresh_layer_choices()
        self._show_alpha()
        self.chunk_applied.emit(chunk.ticket, self.view.state.written)
        if chunk.done:
            self.status.setText(f"direction {self.direction_index()}: {req.shape[0]} latents x {req.shape[1]} shifts")
            self.stack_complete.emit(chunk.ticket)

    def _layer_metadata(self, req: StackRequest) -> dict:
        k = self.direction_index()
        return {
            "latentdirs": {
                "model": self.model_name,
                "direction": k,
                "label": self.info.labels[k] if self.info is not None and k < len(self.info.labels) else "",
                "run": self.info.run if self.info is not None else "",
                "shifts": req.shifts.tolist(),
                "pixel_mm": [self.pixel_mm, self.pixel_mm],
                "axes": ["latent", "shift α", "z", "y", "x"],
            }
        }

    @property
    def layer(self) -> Any:
        return self.view.layer

    def _apply_window(self, name: str) -> None:
        self.view.set_window(name)

    def _on_stream_error(self, error: BaseException) -> None:
        self.status.setText(f"generation failed: {error}")

    # ------------------------------------------------------------------ play / copy / export
    def set_playing(self, on: bool) -> None:
        if on and self.view.layer is not None:
            self.view.play(self.fps_spin.value())
        else:
            self.view.stop()
        if self.play_btn.isChecked() != on:
            self.play_btn.setChecked(on)

    def copy_to_layer(self) -> Any:
        """The current stack as an independent new layer (its own copy of the data)."""
        stack, layer = self.view.stack, self.view.layer
        if stack is None:
            return None
        return add_generated(
            self.viewer,
            as_stack(stack.copy()),
            name=f"{self.model_name} dir {self.direction_index()}",
            pixel_mm=self.pixel_mm,
            window=self.window_combo.currentText(),
            metadata={"latentdirs": dict(layer.metadata.get("latentdirs", {}))} if layer is not None else {},
        )

    def _export_clicked(self) -> None:
        fmt = self.export_combo.currentText()
        suffix = EXPORT_FORMATS[fmt]
        if suffix == ".dcmdir":
            path = QFileDialog.getExistingDirectory(self, "Folder for the DICOM series")
        else:
            path, _ = QFileDialog.getSaveFileName(self, f"Export {fmt}", f"direction{self.direction_index()}{suffix}")
        if path:
            self.export(path, suffix)

    def export(self, path: str | Path, kind: str) -> None:
        """Export in the background (``kind`` is a suffix: .tif .gif .mp4 .png .dcmdir)."""
        if self.view.stack is None or self.current is None or self.streamer is None or self.directions is None:
            raise RuntimeError("nothing to export yet")
        if self._jobs.running:
            self.status.setText("busy: wait for the running export or inversion to finish")
            return
        stack = self.view.stack.copy()
        req = self.current
        vi = self.visible_index(stack.shape[0], stack.shape[1], req.shifts)[0]
        window = self.window_combo.currentText()
        k = self.direction_index()
        label = (self.directions.labels or [""] * self.directions.K)[k] or f"direction {k}"
        streamer, ds, z = self.streamer, self.directions, self.z
        step = float(np.diff(req.shifts).mean()) if req.shifts.size > 1 else 1.0
        meta = {"model": self.model_name, "direction": k, "label": label, "shifts": req.shifts.tolist()}
        path = Path(path)

        def job(stop: Any) -> Any:
            if kind == ".tif":
                yield [ex.write_tiff(path, stack, frame_step=step, metadata=meta)]
            elif kind == ".gif":
                yield [ex.write_gif(path, stack[vi], window, shifts=req.shifts.tolist())]
            elif kind == ".mp4":
                yield [ex.write_mp4(path, stack[vi], window, shifts=req.shifts.tolist())]
            elif kind == ".png":
                ks = list(range(min(ds.K, 8)))
                cols = shift_grid(float(req.shifts.min()), float(req.shifts.max()), 7 if req.shifts.size >= 7 else req.shifts.size)
                rows = [streamer.full_stack(StackRequest(z[vi : vi + 1], ds.direction(j), cols))[0] for j in ks]
                labels = [((ds.labels or [""] * ds.K)[j] or f"direction {j}") for j in ks]
                yield [ex.write_png_grid(path, np.stack(rows), labels, cols, window)]
            elif kind == ".dcmdir":
                yield ex.write_dicom_series(path, stack[vi], slice_mm=1.0, description=f"{self.model_name} {label} sweep"[:64])
            else:
                raise ValueError(f"unknown export kind {kind!r}")

        self.export_btn.setEnabled(False)
        self._jobs.start(job, f"exporting {path.name}")

    # ------------------------------------------------------------------ teardown
    def closeEvent(self, event: Any) -> None:  # Qt API
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        self.view.stop()
        self.feed.stop()
        self._jobs.stop_and_wait()
