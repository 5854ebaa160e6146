"""Shared body of the training and direction docks: Start/Stop/Resume, progress, plot, samples.

A subclass builds its inputs and implements :meth:`make_engine`, returning a
factory ``stop -> iterator of events`` (see ``napari_latentdirs.events``).
Each run gets its own folder under the chosen output folder; Stop leaves a
checkpoint there and Resume continues it (the engines resume from their run
folder by themselves).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import FileEdit
from qtpy.QtCore import QSize, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from ..analysis.navigation import WINDOWS
from ..events import CheckpointSaved, EpochEnd, Finished, Message, Samples, Started, Step, Stopped
from ..utils.folderlock import check_free
from ..utils.runtime import available_devices
from .estimate import expected_text, record
from .loss_plot import LossPlot
from .placement import add_generated, mosaic, set_window
from .remember import Remembered, change_signal
from .scroll import compact_combos, fit_width, scrolling_layout
from .workers import EngineFactory, EngineRunner


class EngineDock(QWidget):
    #: the state changed: "ready" | "running" | "stopping" | "stopped" | "finished" | "failed"
    state_changed = Signal(str)
    #: a run finished; the argument is the engine's output path (or "")
    run_finished = Signal(str)

    title = "run"
    samples_layer = "samples"
    plot_keys: tuple[str, ...] | None = None
    flush_ms = 250  # widget refresh period while training
    metrics_lines = 2  # height of the metrics line: a final summary must fit unclipped
    samples_every_s = 2.0  # samples layer refresh period

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.run_dir: Path | None = None
        self.state = "ready"
        self.last_step = 0
        self.last_event: Any = None
        self.output: Path | None = None
        self.runner = EngineRunner(self, on_event=self.on_event, on_done=self._on_done, progress_desc=self.title, viewer=napari_viewer, name=self.title, reserve_gui_core=True)
        self._total = 0
        self._start_step = 0
        # Steps can arrive many times a second, and every repaint of a napari window
        # costs milliseconds (much more with software OpenGL): coalesce them and
        # update the widgets and the samples layer from a timer instead.
        self._pending_step: Step | None = None
        self._pending_samples: np.ndarray | None = None
        self._pending_status: str | None = None
        self._last_samples = 0.0
        self._flush_timer = QTimer(self)
        self._flush_timer.timeout.connect(self.flush)
        self._flush_timer.start(self.flush_ms)
        lay = scrolling_layout(self)
        self.inputs = QGroupBox("Settings")
        self.form = QFormLayout(self.inputs)
        lay.addWidget(self.inputs)
        self.build_inputs(self.form)
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.device_combo.setToolTip("auto picks CUDA, then MPS, then CPU; listed: what this machine has. "
                                     "The defaults follow it: the CPU recipe on a CPU, the paper's on CUDA")
        self.form.addRow("device", self.device_combo)
        self.out_edit = FileEdit(mode="d", value=str(Path.home() / "latentdirs-runs"))
        self.out_edit.native.setToolTip("each run gets a new folder in here (checkpoints, logs, the result)")
        self.form.addRow("output folder", self.out_edit.native)
        # outside the settings box: the window stays adjustable while a run is going
        self.window_combo = QComboBox()
        self.window_combo.addItems(list(WINDOWS))
        self.window_combo.setToolTip("HU window of the samples layer (its contrast slider stays free)")
        self.window_combo.currentTextChanged.connect(self._apply_window)
        self.link_check = QCheckBox("with the CT")
        self.link_check.setChecked(True)
        self.link_check.setToolTip("one window for the samples, the CT and every generated layer beside it")
        self.expected_label = _FixedLabel(2)
        lay.addWidget(self.expected_label)
        buttons = QGridLayout()
        self.start_btn = QPushButton("Start")
        self.start_btn.setToolTip("start a new run in a new folder under the output folder")
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setToolTip("stop after the current step; a checkpoint is kept, so Resume continues it")
        self.resume_btn = QPushButton("Resume")
        self.resume_btn.setToolTip("continue the run stopped in this session")
        self.resume_from_btn = QPushButton("Resume folder…")
        self.resume_from_btn.setToolTip("continue a run folder from disk (an earlier session's), with the settings above")
        self.start_btn.clicked.connect(self.start)
        self.stop_btn.clicked.connect(self.stop)
        self.resume_btn.clicked.connect(self.resume)
        self.resume_from_btn.clicked.connect(self._resume_from_clicked)
        # two rows of two: one row of four widened the dock past a side-by-side column
        for i, b in enumerate((self.start_btn, self.stop_btn, self.resume_btn, self.resume_from_btn)):
            buttons.addWidget(b, i // 2, i % 2)
        lay.addLayout(buttons)
        wrow = QHBoxLayout()
        wrow.addWidget(QLabel("samples window"))
        wrow.addWidget(self.window_combo, 1)
        wrow.addWidget(self.link_check)
        lay.addLayout(wrow)
        self.bar = QProgressBar()
        self.bar.setFormat("%v / %m")
        # Labels of fixed height: a text that changed its height would re-lay out the dock,
        # and the plot with it, in a second repaint of the window.
        self.eta_label = _FixedLabel(1)
        lay.addWidget(self.bar)
        lay.addWidget(self.eta_label)
        self.metrics_label = _FixedLabel(self.metrics_lines)
        lay.addWidget(self.metrics_label)
        self.plot = LossPlot(self.plot_keys, fps=None)
        lay.addWidget(self.plot)
        self.status = _FixedLabel(4)
        self.status.setText("ready")
        lay.addWidget(self.status)
        self.body_layout = lay
        self.build_extra(lay)
        lay.addStretch(1)
        self._last_note = ""
        self._rate_key: str | None = None
        self.device_combo.currentTextChanged.connect(lambda _t: self.apply_device_defaults())
        self.apply_device_defaults()
        self.remembered = Remembered(self.settings_section(), self.remembered_controls())
        for w in self.remembered.controls.values():
            change_signal(w).connect(lambda *_: self.refresh_expected())
        self.refresh_expected()
        compact_combos(self)
        fit_width(self)
        self._set_state("ready")

    # -- for subclasses ----------------------------------------------------------------------
    def build_inputs(self, form: QFormLayout) -> None:
        raise NotImplementedError

    def make_engine(self, run_dir: Path, resume: bool) -> EngineFactory:
        raise NotImplementedError

    def placeholder_samples(self) -> np.ndarray | None:
        """Model-space images shaped like the coming samples, to create their layer early."""
        return None

    #: columns of the samples mosaic (None: about square)
    mosaic_cols: int | None = None

    def resumable(self, run_dir: Path | None) -> bool:
        """Whether ``run_dir`` holds a checkpoint the engine can continue."""
        if run_dir is None:
            return False
        from ..training.state import RunDir

        return RunDir(run_dir, create=False).has("last")

    def build_extra(self, lay: Any) -> None:
        """Widgets below the status line (the directions dock's Label step)."""

    # -- defaults, settings, expected time (subclasses fill these in) ------------------------
    #: what the status line says a running step is doing
    activity = "running"

    def settings_section(self) -> str:
        return type(self).__name__

    def remembered_controls(self) -> dict[str, Any]:
        """Controls kept between sessions, in restore order (a recipe before what it sets)."""
        return {"device": self.device_combo, "output": self.out_edit, "window": self.window_combo}

    def resolved_device(self) -> str:
        """The device a run would use: "auto" resolved like the engines resolve it."""
        dev = self.device_combo.currentText()
        if dev != "auto":
            return dev
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def on_cuda(self) -> bool:
        return self.resolved_device().startswith("cuda")

    def apply_device_defaults(self) -> None:
        """Settings that suit the device: the CPU recipe on a CPU, the paper's on CUDA. Only a change
        of recipe resets the fields, so "auto" -> "cpu" on a CPU keeps what the user set."""
        combo = getattr(self, "recipe_combo", None)
        if combo is not None:
            combo.setCurrentText("paper" if self.on_cuda() else "cpu")

    def expected(self) -> tuple[str, int | None] | None:
        """(rate key, steps) of the run Start would begin, for its expected time."""
        return None

    def refresh_expected(self) -> None:
        try:
            exp = self.expected()
        except (ValueError, TypeError, KeyError, OSError) as exc:
            self.expected_label.setText(f"expected time: unknown ({exc})")
            return
        self.expected_label.setText(expected_text(*exp) if exp is not None else "")

    def step_text(self, ev: Step) -> str:
        return "  ".join(f"{k} {v:.4g}" for k, v in ev.losses.items())

    def plot_values(self, ev: Step) -> dict[str, float]:
        """What the live plot shows of a step, under the names it shows."""
        return ev.losses

    def metrics_text(self, metrics: dict[str, float]) -> str:
        return "".join(f"\n{k} = {v:.4g}" for k, v in metrics.items())

    # -- control -----------------------------------------------------------------------------
    @property
    def device(self) -> str:
        return self.device_combo.currentText()

    def new_run_dir(self) -> Path:
        root = Path(str(self.out_edit.value))
        stem = time.strftime(f"{self.run_prefix()}-%Y%m%d-%H%M%S")
        path, n = root / stem, 1
        while path.exists():
            path, n = root / f"{stem}-{n}", n + 1
        return path

    def run_prefix(self) -> str:
        return self.title.lower().replace(" ", "-")

    def start(self) -> None:
        if self.runner.running:
            return
        self._launch(self.new_run_dir(), resume=False)

    def resume(self) -> None:
        if self.runner.running or self.run_dir is None:
            return
        self._launch(self.run_dir, resume=True)

    def resume_from(self, run_dir: str | Path) -> bool:
        """Continue a run folder chosen from disk (an earlier session's); False with a
        message when it holds no checkpoint to continue or cannot be started (a busy folder)."""
        run_dir = Path(run_dir)
        if self.runner.running:
            return False
        if not self.resumable(run_dir):
            from napari.utils.notifications import show_warning

            show_warning(f"{self.title}: {run_dir} holds no checkpoint to resume")
            self.status.setText(f"cannot resume {run_dir.name}: no checkpoint in it")
            return False
        return self._launch(run_dir, resume=True)

    def _resume_from_clicked(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self, "Run folder to resume", str(self.out_edit.value))
        if path:
            self.resume_from(path)

    def stop(self) -> None:
        if self.runner.running:
            self.runner.request_stop()
            self._set_state("stopping")

    def _launch(self, run_dir: Path, resume: bool) -> bool:
        """Start the engine in ``run_dir``; False, with the reason shown, when it cannot start."""
        try:
            check_free(run_dir)  # another process writing this folder: refused, naming it (FileExistsError)
            factory = self.make_engine(run_dir, resume)
        except (ValueError, OSError, RuntimeError, TypeError, KeyError) as exc:
            from napari.utils.notifications import show_error

            show_error(f"{self.title}: {exc}")
            self._set_state("failed")
            self.status.setText(f"cannot start: {exc}")
            return False
        self.run_dir = run_dir
        if not resume:
            self.plot.clear()
        self.output = None
        self._last_note = ""
        try:
            exp = self.expected()
        except (ValueError, TypeError, KeyError, OSError):
            exp = None
        self._rate_key = exp[0] if exp is not None else None
        self._set_state("running")
        self.status.setText(f"{'resuming' if resume else 'starting'} in {run_dir}")
        self.runner.start(factory, f"{self.title} in {run_dir.name}")
        return True

    # -- events (GUI thread) -----------------------------------------------------------------
    def on_event(self, ev: Any) -> None:
        self.last_event = ev
        if isinstance(ev, Started):
            self._total, self._start_step = ev.total_steps, ev.start_step
            self.bar.setRange(0, max(ev.total_steps, 1))
            self.bar.setValue(ev.start_step)
            self.last_step = ev.start_step
            placeholder = self.placeholder_samples()
            if placeholder is not None and self.samples_layer not in self.viewer.layers:
                # creating a napari layer is the single most expensive GUI operation (shaders,
                # first draw): do it now, at the start, so samples only update it in place
                self.show_samples(placeholder)
        elif isinstance(ev, Step):
            self.last_step = ev.step
            self.plot.add(ev.step, self.plot_values(ev))
            self._pending_step = ev
        elif isinstance(ev, Samples):
            self._pending_samples = ev.images
            self._pending_prep = ev.preprocessing
            if self.samples_layer not in self.viewer.layers:  # the first one shows at once
                self.flush_samples()
        elif isinstance(ev, EpochEnd):
            self._last_note = f"epoch {ev.epoch} done: " + ", ".join(f"{k} {v:.4g}" for k, v in ev.metrics.items())
        elif isinstance(ev, CheckpointSaved):
            self._last_note = f"last checkpoint: step {ev.step}"
        elif isinstance(ev, Message):
            self.on_message(ev.text)
        elif isinstance(ev, Stopped | Finished):
            # the end of a run: show everything still pending now, then the final status
            self.last_step = ev.step
            self._pending_status = None
            self.flush_samples()
            self.flush()
            if isinstance(ev, Stopped):
                self.status.setText(f"stopped at step {ev.step}; checkpoint {ev.checkpoint}")
            else:
                self.output = ev.output
                self.bar.setValue(self.bar.maximum())
                self.status.setText(f"finished: {ev.output}" + self.metrics_text(ev.metrics))

    def on_message(self, text: str) -> None:
        """A message from the engine: what it is doing now (until the next step says otherwise)."""
        self._pending_status = text

    def now_text(self, ev: Step) -> str:
        """The status line while steps arrive: what is happening now, then the last note."""
        now = f"{self.activity}: step {ev.step:,} of {ev.total_steps:,}"
        return now + (f"\n{self._last_note}" if self._last_note else "")

    def flush(self) -> None:
        """Apply what arrived since the last tick: samples, or else the newest step (bar, ETA,
        metrics, plot, napari progress) and status line. One window repaint per tick."""
        if self._pending_samples is not None and time.monotonic() - self._last_samples >= self.samples_every_s:
            self.flush_samples()
            return  # one repaint per tick: the step waits for the next one
        ev = self._pending_step
        if self._pending_status is not None:
            self.status.setText(self._pending_status)
            self._pending_status = None
        elif ev is not None:
            self.status.setText(self.now_text(ev))  # a message from before this step is over
        if ev is None:
            return
        self._pending_step = None
        # QProgressBar.setValue repaints synchronously (a whole-window composition with
        # OpenGL in the window); deferred, it joins the labels' and the plot's repaint.
        self.bar.setUpdatesEnabled(False)
        self.bar.setValue(min(ev.step, self.bar.maximum()))
        self.bar.setUpdatesEnabled(True)
        self.bar.update()
        eta = self.runner.eta.remaining(ev.step, ev.total_steps)
        self.eta_label.setText(f"step {ev.step} / {ev.total_steps}   ETA {self.runner.eta.format(eta)}")
        self.metrics_label.setText(self.step_text(ev))
        self.plot.redraw()
        self.runner.apply_progress()

    def flush_samples(self) -> None:
        if self._pending_samples is None:
            return
        images, self._pending_samples = self._pending_samples, None
        self._last_samples = time.monotonic()
        self.show_samples(images, getattr(self, "_pending_prep", None))

    def show_samples(self, images: np.ndarray, preprocessing: dict | None = None) -> None:
        """Samples as one mosaic image beside the CT, in mm (see placement.py); decoded to HU
        with the window the event records (``preprocessing``), else the default one."""
        from ..analysis.navigation import model_pixel_mm
        from ..data.preprocess import DEFAULT, Preprocessing

        prep = Preprocessing.from_dict(preprocessing) if preprocessing is not None else DEFAULT
        images = np.asarray(images, dtype=np.float32)
        images = images.reshape(-1, *images.shape[-2:])
        tiles = mosaic(prep.model_to_hu(images), self.mosaic_cols)
        if self.samples_layer in self.viewer.layers:
            layer = self.viewer.layers[self.samples_layer]
            if isinstance(layer.data, np.ndarray) and layer.data.shape == tiles.shape and layer.data.flags.writeable:
                layer.data[...] = tiles  # in place: no re-slicing of the whole layer
                layer.refresh()
            else:
                layer.data = tiles
        else:
            add_generated(self.viewer, tiles, name=self.samples_layer, pixel_mm=model_pixel_mm(images.shape[-1]),
                          window=self.window_combo.currentText())

    def _apply_window(self, name: str) -> None:
        layer = self.viewer.layers[self.samples_layer] if self.samples_layer in self.viewer.layers else None  # noqa: SIM401
        set_window(self.viewer, name, layer, linked=self.link_check.isChecked())

    def _record_rate(self) -> None:
        """This machine's seconds per step, for the next run's expected time."""
        t0 = self.runner.eta._t0
        steps = self.last_step - self._start_step
        if self._rate_key is not None and t0 is not None and steps >= 5:
            record(self._rate_key, (time.perf_counter() - t0) / steps)

    def _on_done(self, error: BaseException | None) -> None:
        self._record_rate()
        self.refresh_expected()
        self._last_samples = 0.0
        self.flush_samples()
        self.flush()
        self.plot.redraw()
        if error is not None:
            self.status.setText(f"failed: {type(error).__name__}: {error}")
            self._set_state("failed")
        elif isinstance(self.last_event, Stopped):
            self._set_state("stopped")
        elif isinstance(self.last_event, Finished):
            self._set_state("finished")
            self.run_finished.emit(str(self.output or ""))
        else:
            self._set_state("stopped")

    def _set_state(self, state: str) -> None:
        self.state = state
        running = state in ("running", "stopping")
        self.start_btn.setEnabled(not running)
        self.stop_btn.setEnabled(state == "running")
        # only a run that left a checkpoint can be resumed (a failure before the first one cannot)
        self.resume_btn.setEnabled(not running and state in ("stopped", "failed") and self.resumable(self.run_dir))
        self.resume_from_btn.setEnabled(not running)
        self.inputs.setEnabled(not running)
        self.state_changed.emit(state)

    def showEvent(self, event: Any) -> None:  # Qt API
        fit_width(self)  # again once docked: the style's fonts and scroll bar are known now
        super().showEvent(event)

    def closeEvent(self, event: Any) -> None:  # Qt API
        self.runner.stop_and_wait()
        super().closeEvent(event)


class _FixedLabel(QLabel):
    """A label whose height is a fixed number of lines of its current font, whatever its
    text (so a new text never re-lays out the dock); clipped text is in its tooltip."""

    def __init__(self, lines: int) -> None:
        super().__init__("")
        self._lines = lines
        self.setWordWrap(lines > 1)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)

    def setText(self, text: str) -> None:  # Qt API
        super().setText(text)
        self.setToolTip(text)

    def sizeHint(self) -> QSize:  # Qt API
        m = self.contentsMargins()
        return QSize(200, self._lines * self.fontMetrics().lineSpacing() + m.top() + m.bottom() + 4)

    def minimumSizeHint(self) -> QSize:  # Qt API
        return QSize(0, self.sizeHint().height())

    def hasHeightForWidth(self) -> bool:  # Qt API
        return False
