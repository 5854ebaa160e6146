"""Training dock: train the paper's DCGAN or ResNet-VAE without freezing napari.

Data: a DICOM folder (prepared into a slice cache inside the run folder), a
prepared cache, or the synthetic phantom. Progress, ETA and a live loss plot
update from the engine's events; sample images appear as an image layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import FileEdit
from qtpy.QtWidgets import QComboBox, QFormLayout, QSpinBox

from ..engine_process import EngineJob
from ..jobs import DATA_SOURCES, check_training_data
from .engine_dock import EngineDock

MODELS = {"GAN (DCGAN)": "gan", "VAE (ResNet)": "vae"}


class TrainingDock(EngineDock):
    title = "Train generator"
    samples_layer = "training samples"
    mosaic_cols = 4
    _cfg: Any = None

    def build_inputs(self, form: QFormLayout) -> None:
        self.data_combo = QComboBox()
        self.data_combo.addItems(DATA_SOURCES)
        self.data_edit = FileEdit(mode="d")
        self.phantom_n = QSpinBox()
        self.phantom_n.setRange(8, 1_000_000)
        self.phantom_n.setValue(512)
        self.model_combo = QComboBox()
        self.model_combo.addItems(list(MODELS))
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(["tiny", "paper"])
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 10_000)
        self.epochs_spin.setValue(5)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(2, 4096)
        self.batch_spin.setValue(32)
        self.max_steps_spin = QSpinBox()
        self.max_steps_spin.setRange(0, 100_000_000)
        self.max_steps_spin.setSpecialValueText("all")
        self.max_steps_spin.setToolTip("cap on optimiser steps (0 = train all epochs)")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        form.addRow("data", self.data_combo)
        form.addRow("folder / cache", self.data_edit.native)
        form.addRow("phantom slices", self.phantom_n)
        form.addRow("model", self.model_combo)
        form.addRow("preset", self.preset_combo)
        form.addRow("epochs", self.epochs_spin)
        form.addRow("batch", self.batch_spin)
        form.addRow("max steps", self.max_steps_spin)
        form.addRow("seed", self.seed_spin)
        self.data_combo.currentIndexChanged.connect(self._data_changed)
        self._data_changed(0)

    def _data_changed(self, i: int) -> None:
        self.data_edit.native.setEnabled(i != 0)
        self.phantom_n.setEnabled(i == 0)

    @property
    def kind(self) -> str:
        return MODELS[self.model_combo.currentText()]

    def run_prefix(self) -> str:
        return f"{self.kind}-{self.preset_combo.currentText()}"

    def config(self) -> Any:
        from ..training.config import config_from_dict

        return config_from_dict(
            self.kind,
            preset=self.preset_combo.currentText(),
            epochs=self.epochs_spin.value(),
            batch_size=self.batch_spin.value(),
            seed=self.seed_spin.value(),
            device=self.device,
            max_steps=self.max_steps_spin.value() or None,
            fid=False,  # FID selection needs Inception weights and minutes: the CLI does it
            log_every=1,
            sample_every=max(1, self.max_steps_spin.value() // 4) if self.max_steps_spin.value() else 100,
            n_samples=8,
        )

    def placeholder_samples(self) -> np.ndarray | None:
        cfg = self._cfg
        if cfg is None:
            return None
        size = cfg.model_config().image_size
        return np.full((cfg.n_samples, size, size), -1.0, dtype=np.float32)

    def make_engine(self, run_dir: Path, resume: bool) -> EngineJob:
        cfg = self._cfg = self.config()  # validates on the GUI thread: a bad setting fails with a message
        source = DATA_SOURCES[self.data_combo.currentIndex()]
        path = str(self.data_edit.value or "") if source != DATA_SOURCES[0] else ""
        check_training_data(source, path)  # a missing folder or an empty cache: a message, not a failed job
        return EngineJob(
            "napari_latentdirs.jobs:generator_job",
            {"kind": self.kind, "cfg": cfg, "source": source, "path": path, "n_phantom": self.phantom_n.value(), "seed": self.seed_spin.value(), "run_dir": str(run_dir)},
        )
