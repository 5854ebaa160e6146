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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from magicgui.widgets import FileEdit
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleRangeSlider

from ..analysis import export as ex
from ..analysis.demo import DEMO_NAMES, demo_model
from ..analysis.export_formats import EXPORT_FORMATS, SweepExport, export_format, set_labels
from ..analysis.navigation import (
    DirectionInfo,
    StackChunk,
    StackRequest,
    StackStreamer,
    default_shift,
    direction_info,
    model_name,
    model_pixel_mm,
    random_latents,
    shift_grid,
)
from ..data.preprocess import DEFAULT
from ..directions import METHODS
from ..directions.set import NOT_LEARNED, DirectionSet
from ..models.custom import is_factory_spec
from ..models.interface import LatentGenerator
from .placement import add_generated, as_stack, is_generated, set_window
from .remember import Remembered
from .scroll import compact_combos, fit_width, scrolling_layout
from .stack_feed import StackFeed
from .stack_view import StackView
from .workers import EngineRunner

log = logging.getLogger(__name__)

LAYER_NAME = "latent stack"
CANCELLED = "cancelled"  # what a stopped inversion job yields
SOURCES = ("random latents", "encode CT slice (VAE)", "invert CT slice (GAN)")


@dataclass
class LoadedModel:
    """What a background load hands the GUI thread: everything slow is done."""

    generator: LatentGenerator
    directions: DirectionSet | None
    info: DirectionInfo | None
    fingerprint: str
    name: str
    frame_shape: tuple[int, int]


def probe_frame_shape(generator: LatentGenerator, device: Any = "cpu") -> tuple[int, int]:
    with torch.inference_mode():
        probe = generator.generate(torch.zeros(1, generator.latent_dim, device=device))
    return int(probe.shape[-2]), int(probe.shape[-1])


def prepare_model(spec: str, directions_path: str | Path | None, weights: str | Path | None) -> LoadedModel:
    """Read, build and probe a generator (and its direction set): the slow part of a load."""
    from ..directions.voynov import resolve_generator

    gen, fingerprint, _kind = resolve_generator(spec, weights=weights)
    ds = DirectionSet.load(directions_path) if directions_path else None
    if ds is not None and ds.latent_dim != gen.latent_dim:
        raise ValueError(f"direction set has dimension {ds.latent_dim}, the generator {gen.latent_dim}")
    name = model_name(spec)
    info = direction_info(ds, directions_path) if ds is not None else None
    device = next((q.device for q in gen.parameters()), "cpu") if isinstance(gen, torch.nn.Module) else "cpu"
    return LoadedModel(gen, ds, info, fingerprint, name, probe_frame_shape(gen, device))


UNLABELLED = "unlabelled"
#: keyboard shortcuts of the navigator (on the viewer window): direction and play
SHORTCUTS = {"next direction": "]", "previous direction": "[", "play / pause": "\\"}


def direction_text(ds: DirectionSet, info: DirectionInfo | None, k: int) -> str:
    """The list's line for direction ``k``: its description ("width ↑ 0.48 · height ↓ 0.31")
    when the set has them, else its label, else "unlabelled"; the selectivity after it."""
    descriptions = ds.meta.get("descriptions") if isinstance(ds.meta.get("descriptions"), list) else None
    text = str(descriptions[k]) if descriptions and k < len(descriptions) and descriptions[k] else ""
    label = info.labels[k] if info is not None and k < len(info.labels) else ""
    text = text or label or UNLABELLED
    sel = info.selectivity[k] if info is not None and k < len(info.selectivity) else None
    return f"#{k} {text}" + (f" (selectivity {sel:.2f})" if sel is not None else "")


def is_labelled(ds: DirectionSet | None, info: DirectionInfo | None) -> bool:
    return bool((ds is not None and ds.labels and any(ds.labels)) or (info is not None and any(info.labels)))


def set_warning(ds: DirectionSet, info: DirectionInfo | None) -> str | None:
    """The set's not-learned warning; a set never labelled has no labels to blame on the
    random initialisation, so it says only that the directions were not learned."""
    warning = ds.not_learned()
    if warning and not is_labelled(ds, info):
        warning = warning.replace(NOT_LEARNED, "directions not learned (an unlabelled set)")
    return warning


def baseline_methods() -> dict[str, str]:
    """Label -> name of the closed-form methods a generator alone can run (no real slices)."""
    return {spec.label or name: name for name, spec in METHODS.items() if not spec.learned and "slices" not in spec.needs}


def export_subfolder(folder: str | Path, stem: str) -> Path:
    """A new folder for a DICOM series inside the folder chosen (the dialog picks existing
    folders, and a series needs a new one): ``stem``, else ``stem-2``, ``stem-3``..."""
    folder = Path(folder)
    path, n = folder / stem, 2
    while path.exists():
        path, n = folder / f"{stem}-{n}", n + 1
    return path


def _wrapping_label(text: str) -> QLabel:
    """A status line that wraps and never widens the dock (a long path once pushed the
    buttons off screen): its width is the dock's, its height follows the text."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(10)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


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
        #: optimiser steps of a GAN inversion (None: the core's default)
        self.inversion_steps: int | None = None
        self._job_kind = ""
        self.pixel_mm = ex.DEFAULT_PIXEL_MM
        self.info: DirectionInfo | None = None
        self.fingerprint_mismatch = False
        self.view = StackView(self, napari_viewer, LAYER_NAME)
        self.feed = StackFeed(self, self._on_chunk, self._on_stream_error, viewer=napari_viewer, name="latent navigator")
        self._jobs = EngineRunner(self, on_event=self._on_job, on_done=self._on_job_done, viewer=napari_viewer, name="latent navigator job")
        self._loader = EngineRunner(self, on_event=self._on_loaded, on_done=self._on_load_done, viewer=napari_viewer,
                                    name="latent navigator: loading a model")
        self._load_ticket = 0
        self._queued_load: Any = None
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
        self.factory_edit.setMinimumWidth(60)  # the placeholder must not widen the dock
        self.factory_edit.setToolTip("your own generator: a factory returning an nn.Module with latent_dim and "
                                     "forward(z) -> (B, C, H, W) in [-1, 1]")
        self.weights_edit = FileEdit(mode="r", filter="*.safetensors *.pt *.pth")
        self.directions_edit = FileEdit(mode="r", filter="*.safetensors")
        self.generator_edit.native.setToolTip("a generator file (generator.safetensors) or a training run folder")
        self.weights_edit.native.setToolTip("weights for your module:factory (optional)")
        self.directions_edit.native.setToolTip("a direction set (.safetensors); without one the navigator shows samples "
                                               "and offers to compute directions")
        grow = QHBoxLayout()
        grow.addWidget(self.generator_edit.native, 3)
        grow.addWidget(self.factory_edit, 2)
        mf.addRow("generator", grow)
        mf.addRow("factory weights", self.weights_edit.native)
        mf.addRow("directions", self.directions_edit.native)
        row = QHBoxLayout()
        self.load_btn = QPushButton("Load")
        self.load_btn.setToolTip("load the files above (in the background); with none chosen, the demo beside it")
        self.load_btn.clicked.connect(self._load_clicked)
        self.demo_combo = QComboBox()
        self.demo_combo.addItems([f"demo {n.upper()}" for n in DEMO_NAMES])
        self.demo_combo.setToolTip("the bundled demo models: a DCGAN and a ResNet-VAE trained on phantom slices")
        self.demo_btn = QPushButton("Load demo")
        self.demo_btn.setToolTip("load the chosen demo model with its 32 labelled directions")
        self.demo_btn.clicked.connect(lambda: self.load_demo(DEMO_NAMES[self.demo_combo.currentIndex()]))
        row.addWidget(self.load_btn)
        row.addWidget(self.demo_combo)
        row.addWidget(self.demo_btn)
        mf.addRow(row)
        self.model_label = _wrapping_label("no model: load one, or the bundled demo")
        mf.addRow(self.model_label)
        # shown for a generator without a direction set: compute one here, or discover one
        self.offer_box = QWidget()
        orow = QHBoxLayout(self.offer_box)
        orow.setContentsMargins(0, 0, 0, 0)
        self.baseline_combo = QComboBox()
        self.baseline_methods = baseline_methods()
        self.baseline_combo.addItems(list(self.baseline_methods))
        self.baseline_combo.setToolTip("closed-form directions computed in seconds from the generator alone")
        self.baseline_k = QSpinBox()
        self.baseline_k.setRange(1, 512)
        self.baseline_k.setValue(16)
        self.baseline_k.setPrefix("K ")
        self.baseline_k.setToolTip("how many directions to compute")
        self.baseline_btn = QPushButton("Compute")
        self.baseline_btn.setToolTip("compute a baseline direction set for this generator and browse it")
        self.baseline_btn.clicked.connect(self.compute_baseline)
        self.discover_btn = QPushButton("Discover…")
        self.discover_btn.setToolTip("open the Discover directions dock for this generator (learned directions)")
        self.discover_btn.clicked.connect(self.open_discovery)
        for w in (self.baseline_combo, self.baseline_k, self.baseline_btn, self.discover_btn):
            orow.addWidget(w)
        self.offer_box.setVisible(False)
        mf.addRow(self.offer_box)
        lay.addWidget(model)

        latents = QGroupBox("Latents")
        lf = QFormLayout(latents)
        self.source_combo = QComboBox()
        self.source_combo.addItems(SOURCES)
        self.source_combo.setToolTip("where the latents come from: random draws, or the CT slice on screen "
                                     "encoded (VAE) or inverted (GAN, tens of seconds, with progress and Cancel)")
        self.n_spin = QSpinBox()
        self.n_spin.setRange(1, 64)
        self.n_spin.setValue(4)
        self.n_spin.setToolTip("how many random latents (rows of the stack)")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("seed of the random latents and of the inversion's starts")
        self.ct_combo = QComboBox()
        self.ct_combo.setToolTip("the CT layer whose slice on screen is encoded or inverted")
        self.apply_latents_btn = QPushButton("Set latents")
        self.apply_latents_btn.setToolTip("replace the stack's latents with the source above")
        self.apply_latents_btn.clicked.connect(self.set_latents_from_source)
        self.latent_label = _wrapping_label("")
        lf.addRow("source", self.source_combo)
        lf.addRow("N (random)", self.n_spin)
        lf.addRow("seed", self.seed_spin)
        lf.addRow("CT layer", self.ct_combo)
        jrow = QHBoxLayout()
        self.job_bar = QProgressBar()
        self.job_bar.setVisible(False)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("stop the inversion (within a few optimiser steps); the latents stay as they were")
        self.cancel_btn.setVisible(False)
        self.cancel_btn.clicked.connect(self.cancel_job)
        jrow.addWidget(self.job_bar, 1)
        jrow.addWidget(self.cancel_btn)
        lf.addRow(self.apply_latents_btn)
        lf.addRow(jrow)
        lf.addRow(self.latent_label)
        lay.addWidget(latents)

        dirs = QGroupBox("Direction")
        dl = QVBoxLayout(dirs)
        self.direction_list = QListWidget()
        self.direction_list.setMinimumHeight(120)
        self.direction_list.setToolTip(f"the set's directions: what each changes, or 'unlabelled'. Keys: "
                                       f"{SHORTCUTS['next direction']} next, {SHORTCUTS['previous direction']} previous")
        self.direction_list.currentRowChanged.connect(lambda _r: self.request_stack())
        dl.addWidget(self.direction_list)
        df = QFormLayout()
        self.shift_slider = QLabeledDoubleRangeSlider(Qt.Orientation.Horizontal)
        self.shift_slider.setRange(-20.0, 20.0)
        self.shift_slider.setValue((-6.0, 6.0))
        self.shift_slider.valueChanged.connect(lambda _v: self.request_stack())
        self.shift_slider.setToolTip("the shift α range of the sweep (the set's training range by default)")
        self.frames_spin = QSpinBox()
        self.frames_spin.setRange(1, 201)
        self.frames_spin.setValue(41)
        self.frames_spin.valueChanged.connect(lambda _v: self.request_stack())
        self.frames_spin.setToolTip("shifts along the sweep")
        self.window_combo = QComboBox()
        self.window_combo.addItems(["lung", "mediastinum", "bone"])
        self.window_combo.setToolTip("HU window of the stack")
        self.window_combo.currentTextChanged.connect(self._apply_window)
        self.link_check = QCheckBox("with the CT")
        self.link_check.setChecked(True)
        self.link_check.setToolTip("one window for the stack, the CT and every generated layer beside it: the same "
                                   "tissue has the same grey side by side")
        self.link_check.toggled.connect(lambda _on: self._apply_window(self.window_combo.currentText()))
        wrow = QHBoxLayout()
        wrow.addWidget(self.window_combo, 1)
        wrow.addWidget(self.link_check)
        df.addRow("shift range", self.shift_slider)
        df.addRow("frames", self.frames_spin)
        df.addRow("window", wrow)
        dl.addLayout(df)
        self.alpha_label = QLabel("shift α: -")
        self.alpha_label.setStyleSheet("font-weight: bold")
        dl.addWidget(self.alpha_label)
        prow = QHBoxLayout()
        self.play_btn = QPushButton("Play")
        self.play_btn.setCheckable(True)
        self.play_btn.setToolTip(f"play the sweep back and forth (key {SHORTCUTS['play / pause']})")
        self.play_btn.toggled.connect(self.set_playing)
        self.fps_spin = QDoubleSpinBox()
        self.fps_spin.setRange(1.0, 60.0)
        self.fps_spin.setValue(12.0)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.setToolTip("frames per second of Play")
        self.copy_btn = QPushButton("Copy to new layer")
        self.copy_btn.setToolTip("keep the current stack as a layer of its own")
        self.copy_btn.clicked.connect(self.copy_to_layer)
        prow.addWidget(self.play_btn)
        prow.addWidget(self.fps_spin)
        prow.addWidget(self.copy_btn)
        dl.addLayout(prow)
        lay.addWidget(dirs)

        exp = QGroupBox("Export")
        er = QHBoxLayout(exp)
        self.export_combo = QComboBox()
        for name, spec in EXPORT_FORMATS.items():  # the registry (analysis.export_formats), in its order
            self.export_combo.addItem(spec.label, name)
        self.export_combo.setToolTip("TIFF: the whole stack in HU with pixel spacing; GIF/MP4: the current latent's "
                                     "sweep; PNG: the selected direction and its neighbours; DICOM: a derived series")
        self.scale_spin = QSpinBox()
        self.scale_spin.setRange(1, 8)
        self.scale_spin.setValue(2)
        self.scale_spin.setPrefix("x")
        self.scale_spin.setToolTip("GIF / MP4 pixels per model pixel (a 128 px sweep is small on a slide)")
        self.export_btn = QPushButton("Export...")
        self.export_btn.setToolTip("choose where; a DICOM series goes into a new subfolder of the folder chosen")
        self.export_btn.clicked.connect(self._export_clicked)
        er.addWidget(self.export_combo, 1)
        er.addWidget(self.scale_spin)
        er.addWidget(self.export_btn)
        lay.addWidget(exp)
        self.status = _wrapping_label("")
        lay.addWidget(self.status)
        lay.addStretch(1)
        self._set_model_controls(False)
        compact_combos(self)
        fit_width(self)
        self._shortcuts = self._install_shortcuts()
        self.remembered = Remembered("LatentNavigator", {
            "demo": self.demo_combo, "n": self.n_spin, "seed": self.seed_spin, "frames": self.frames_spin,
            "window": self.window_combo, "link": self.link_check, "fps": self.fps_spin, "format": self.export_combo,
            "scale": self.scale_spin, "baseline": self.baseline_combo, "baseline_k": self.baseline_k})

    def _install_shortcuts(self) -> list[str]:
        """Next / previous direction and play on the viewer's keys (SHORTCUTS; napari's keymap,
        so they act while the canvas has the focus, as napari's own keys do)."""
        actions = {"next direction": lambda: self.step_direction(1), "previous direction": lambda: self.step_direction(-1),
                   "play / pause": lambda: self.set_playing(not self.view.playing)}
        bound = []
        for name, key in SHORTCUTS.items():
            def handler(_viewer: Any, act: Any = actions[name]) -> None:
                act()

            try:
                self.viewer.bind_key(key, handler, overwrite=True)
            except (TypeError, ValueError, AttributeError):  # a viewer model without a keymap
                continue
            bound.append(key)
        return bound

    def step_direction(self, d: int) -> None:
        n = self.direction_list.count()
        if n:
            self.direction_list.setCurrentRow(int(np.clip(self.direction_index() + d, 0, n - 1)))

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
        direction set in the background (reading and building a model stalled napari for
        seconds); warns when the set was made for another generator. The newest load wins."""
        spec = str(generator_path)
        self._load_ticket += 1
        ticket = self._load_ticket
        request = (spec, directions_path, name, show_paths, weights)

        def job(stop: Any) -> Any:
            yield ticket, request, prepare_model(spec, directions_path, weights)

        if self._loader.running:  # the running load goes stale; this one starts when it ends
            self._queued_load = job
            return
        self.model_label.setText(f"loading {Path(spec).name if not is_factory_spec(spec) else spec}…")
        self._loader.start(job, "loading a model")

    def _on_loaded(self, item: Any) -> None:
        ticket, (spec, directions_path, name, show_paths, _weights), loaded = item
        if ticket != self._load_ticket:
            return  # a newer load was asked for
        self.set_model(loaded.generator, loaded.directions, name or loaded.name, info=loaded.info,
                       frame_shape=loaded.frame_shape)
        self.check_fingerprint(loaded.fingerprint)
        if not show_paths:
            return
        if is_factory_spec(spec):
            self.factory_edit.setText(spec)
        else:
            self.generator_edit.value = spec
        if directions_path:
            self.directions_edit.value = str(directions_path)

    def _on_load_done(self, error: BaseException | None) -> None:
        if error is not None:
            self.model_label.setText(f"cannot load the model: {error}")
        queued, self._queued_load = self._queued_load, None
        if queued is not None:
            self._loader.start(queued, "loading a model")

    def check_fingerprint(self, fingerprint: str) -> bool:
        """Warn (napari notification + model line) when the direction set records another
        generator than the one loaded; its directions then mean nothing for this one."""
        other = self.directions.made_for_another(fingerprint) if self.directions is not None else None
        self.fingerprint_mismatch = other is not None
        if other is not None:
            from napari.utils.notifications import show_warning

            text = f"{other}: its directions may mean nothing here"
            show_warning(f"latent navigator: {text}")
            self.model_label.setText(self.model_label.text() + f"\n⚠ {text}")
        return not self.fingerprint_mismatch

    def set_model(self, generator: LatentGenerator, directions: DirectionSet | None, name: str = "model",
                  info: DirectionInfo | None = None, frame_shape: tuple[int, int] | None = None) -> None:
        """Use an in-memory generator (and direction set); the stream switches to it at once."""
        if directions is not None and directions.latent_dim != generator.latent_dim:
            raise ValueError(f"direction set has dimension {directions.latent_dim}, the generator {generator.latent_dim}")
        self.fingerprint_mismatch = False
        self.feed.set_generator(generator)
        self.generator = generator
        self.directions = directions
        self.model_name = name
        assert self.feed.streamer is not None
        self.frame_shape = frame_shape or probe_frame_shape(generator, self.feed.streamer.device)
        self.pixel_mm = model_pixel_mm(self.frame_shape[-1], getattr(generator, "meta", None))
        self.info = info if info is not None else (direction_info(directions) if directions is not None else None)
        self.direction_list.blockSignals(True)
        self.direction_list.clear()
        if directions is not None:
            self.direction_list.addItems([direction_text(directions, self.info, k) for k in range(directions.K)])
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
        if directions is None:
            self.model_label.setText(f"{name}: {kind}, d={generator.latent_dim}; no direction set: these are samples. "
                                     "Compute a baseline set below, or discover directions")
        else:
            labelled = "" if is_labelled(directions, self.info) else "; unlabelled (the Label step of Discover directions names them)"
            self.model_label.setText(f"{name}: {kind}, d={generator.latent_dim}, {k} directions "
                                     f"({directions.method}){run}{labelled}")
        self.offer_box.setVisible(directions is None)
        warning = set_warning(directions, self.info) if directions is not None else None
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
        elif directions is None:
            self.request_stack()  # samples: the latents without a shift

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
        from ..analysis.inversion import (
            InversionConfig,
            InversionStopped,
            embed,
            reverse_search_steps,
        )

        gen = self.generator
        cfg = InversionConfig(seed=self.seed_spin.value())
        if self.inversion_steps:
            cfg = replace(cfg, steps=int(self.inversion_steps))

        def job(stop: Any) -> Any:
            if src == 1:
                yield embed(gen, x[None])
                return
            try:  # 14-50 s on a CPU: progress every few steps, and Cancel within them
                yield from reverse_search_steps(gen, x[None], cfg, stop=stop)
            except InversionStopped:
                yield CANCELLED

        self.latent_label.setText("inverting..." if src == 2 else "encoding...")
        self.apply_latents_btn.setEnabled(False)
        self._job_kind = "latents"
        if src == 2:
            self.job_bar.setRange(0, cfg.restarts * cfg.steps)
            self.job_bar.setValue(0)
            self.job_bar.setVisible(True)
            self.cancel_btn.setVisible(True)
            self.cancel_btn.setEnabled(True)
        self._jobs.start(job, "embedding a CT slice")

    def cancel_job(self) -> None:
        """Cancel a running inversion (it stops within a few optimiser steps)."""
        if self._jobs.running:
            self._jobs.request_stop()
            self.cancel_btn.setEnabled(False)
            self.latent_label.setText("cancelling…")

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
        from ..analysis.inversion import Embedding, InversionProgress

        if isinstance(item, InversionProgress):
            self.job_bar.setValue(item.done)
            self.latent_label.setText(f"inverting the CT slice: {100 * item.done // max(item.total, 1)}% "
                                      f"({item.done} of {item.total} optimiser steps)")
        elif item is CANCELLED:
            self.latent_label.setText("inversion cancelled: the latents are unchanged")
        elif isinstance(item, DirectionSet):
            self._on_baseline(item)
        elif isinstance(item, Embedding):
            self.inversion_error = float(item.mse[0])
            what = "inversion" if item.method == "reverse-search" else "encoder"
            self.latent_label.setText(f"{what}: reconstruction MSE {self.inversion_error:.4f} (model space)")
            self.set_latents(item.z)
        elif isinstance(item, list | tuple) and item and isinstance(item[0], Path):
            self.last_export = list(item)
            self.status.setText(f"exported {len(item)} file(s) to {item[0].parent}")

    def _on_job_done(self, error: BaseException | None) -> None:
        self.job_bar.setVisible(False)
        self.cancel_btn.setVisible(False)
        self.apply_latents_btn.setEnabled(self.generator is not None)
        self.export_btn.setEnabled(self.generator is not None)
        self.baseline_btn.setEnabled(True)
        if error is not None:  # the runner showed it as a notification; one short line here
            where = self.latent_label if self._job_kind == "latents" else self.status
            where.setText(f"{self._job_kind} failed: {type(error).__name__} (see the notification)")

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
        name = direction_text(self.directions, self.info, k) if self.directions is not None else "samples"
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
        if self.generator is None or self.z is None or self.streamer is None:
            return None
        if self.directions is None:  # no set yet: the samples themselves (one frame per latent)
            zero = np.zeros(self.generator.latent_dim, dtype=np.float32)
            self.status.setText(f"generating {self.z.shape[0]} samples...")
            return self.feed.submit(StackRequest(self.z, zero, np.zeros(1, dtype=np.float32), (0, 0)))
        k = self.direction_index()
        shifts = self.shifts()
        n, s = self.z.shape[0], shifts.size
        self.status.setText(f"generating {n}x{s} frames along direction {k}...")
        return self.feed.submit(StackRequest(self.z, self.directions.direction(k), shifts, self.visible_index(n, s, shifts)))

    def _on_chunk(self, req: StackRequest, chunk: StackChunk) -> None:
        if self.view.apply(req, chunk, pixel_mm=self.pixel_mm, window=self.window_combo.currentText(),
                           metadata=self._layer_metadata(req)):
            self._refresh_layer_choices()
            self._apply_window(self.window_combo.currentText())  # the CT beside it on the same window
        self._show_alpha()
        self.chunk_applied.emit(chunk.ticket, self.view.state.written)
        if chunk.done:
            if self.directions is None:
                self.status.setText(f"{req.shape[0]} samples of {self.model_name} (no direction set)")
            else:
                self.status.setText(f"direction {self.direction_index()}: {req.shape[0]} latents x {req.shape[1]} shifts")
            self.stack_complete.emit(chunk.ticket)

    def _layer_metadata(self, req: StackRequest) -> dict:
        k = self.direction_index() if self.directions is not None else -1
        return {
            "latentdirs": {
                "model": self.model_name,
                "direction": k,
                "label": self.info.labels[k] if self.info is not None and 0 <= k < len(self.info.labels) else "",
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
        set_window(self.viewer, name, self.view.layer if self.view.shown else None, linked=self.link_check.isChecked())

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
        name = self.export_combo.currentData()
        spec = export_format(name)
        if spec.folder:
            chosen = QFileDialog.getExistingDirectory(self, f"Folder in which to make the {spec.label}'s folder")
            stem = f"{self.model_name} direction {self.direction_index()} sweep".replace(" ", "-").replace("/", "-")
            path = str(export_subfolder(chosen, stem)) if chosen else ""
            if path:
                self.status.setText(f"writing the series into a new folder {path}")
        else:
            path, _ = QFileDialog.getSaveFileName(self, f"Export {spec.label}",
                                                  f"direction{self.direction_index()}{spec.suffix}")
        if path:
            self.export(path, name)

    def export(self, path: str | Path, kind: str) -> None:
        """Export in the background; ``kind`` names a format of ``EXPORT_FORMATS``, or its suffix."""
        if self.view.stack is None or self.current is None or self.streamer is None or self.directions is None:
            raise RuntimeError("nothing to export yet")
        fmt = export_format(kind)  # an unknown one: ValueError before anything starts
        if self._jobs.running:
            self.status.setText("busy: wait for the running export or inversion to finish")
            return
        stack = self.view.stack.copy()
        req = self.current
        vi = self.visible_index(stack.shape[0], stack.shape[1], req.shifts)[0]
        streamer, ds, z = self.streamer, self.directions, self.z
        labels = set_labels(ds)
        k = self.direction_index()

        def render(j: int, shifts: np.ndarray) -> np.ndarray:  # runs in the job, off the GUI thread
            return streamer.full_stack(StackRequest(z[vi : vi + 1], ds.direction(j), shifts))[0]

        sweep = SweepExport(stack, req.shifts.copy(), vi, self.window_combo.currentText(), self.model_name, k,
                            labels[k], labels, render, scale=self.scale_spin.value())
        path = Path(path)

        def job(stop: Any) -> Any:
            yield fmt.write(path, sweep)

        self.export_btn.setEnabled(False)
        self._job_kind = "export"
        self._jobs.start(job, f"exporting {path.name}")

    # ------------------------------------------------------------------ a set for a bare generator
    def compute_baseline(self, method: str | None = None, K: int | None = None) -> None:
        """Compute a closed-form direction set (``directions.METHODS``) for the loaded generator
        in the background, and browse it when it lands."""
        if self.generator is None or self._jobs.running:
            return
        name = method or self.baseline_methods[self.baseline_combo.currentText()]
        K = int(K or self.baseline_k.value())
        gen, seed = self.generator, self.seed_spin.value()
        fingerprint = str(getattr(gen, "fingerprint", "") or "")

        def job(stop: Any) -> Any:
            yield METHODS[name].resolve()(gen, K, slices=None, seed=seed, generator=fingerprint)

        self.baseline_btn.setEnabled(False)
        self.status.setText(f"computing {K} {name} directions…")
        self._job_kind = "baseline"
        self._jobs.start(job, f"computing {name} directions")

    def _on_baseline(self, ds: DirectionSet) -> None:
        assert self.generator is not None
        self.set_model(self.generator, ds, self.model_name, frame_shape=self.frame_shape)
        self.status.setText(f"{ds.K} {ds.method} directions computed (unlabelled: the Label step of "
                            "Discover directions names them)")

    def open_discovery(self) -> Any:
        """Open the Discover directions dock with this generator's file filled in."""
        try:
            _, dock = self.viewer.window.add_plugin_dock_widget("napari-latentdirs", "Discover directions")
        except (KeyError, ValueError, AttributeError) as exc:
            self.status.setText(f"cannot open Discover directions: {exc}")
            return None
        spec = self.factory_edit.text().strip()
        if spec:
            dock.factory_edit.setText(spec)
        elif str(self.generator_edit.value or "") not in ("", "."):
            dock.generator_edit.value = str(self.generator_edit.value)
        return dock

    # ------------------------------------------------------------------ teardown
    def showEvent(self, event: Any) -> None:  # Qt API
        fit_width(self)  # again once docked: the style's fonts and scroll bar are known now
        super().showEvent(event)

    def closeEvent(self, event: Any) -> None:  # Qt API
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        self.view.stop()
        self.feed.stop()
        self._jobs.stop_and_wait()
        self._loader.stop_and_wait()
