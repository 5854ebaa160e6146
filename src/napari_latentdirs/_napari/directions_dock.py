"""Directions dock: Voynov & Babenko direction discovery (or a baseline) in the background.

Shows the reconstructor classification accuracy (RCA) and the shift loss L_s
live, as the paper's Table 1 reports them, and the direction samples as an
image layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import FileEdit
from qtpy.QtWidgets import QComboBox, QFormLayout, QSpinBox

from ..analysis.demo import DEMO_NAMES, demo_model
from ..engine_process import EngineJob
from ..events import Finished, Step
from .engine_dock import EngineDock

METHODS = {
    "Voynov & Babenko (learned)": "voynov",
    "PCA / GANSpace": "ganspace",
    "SeFa": "sefa",
    "random": "random",
}


class DirectionsDock(EngineDock):
    title = "Discover directions"
    samples_layer = "direction samples"
    plot_keys = ("accuracy", "shift_l1", "loss")

    def build_inputs(self, form: QFormLayout) -> None:
        self.generator_edit = FileEdit(mode="r", filter="*.safetensors")
        self.demo_combo = QComboBox()
        self.demo_combo.addItems(["(file above)", *[f"demo {n.upper()}" for n in DEMO_NAMES]])
        self.method_combo = QComboBox()
        self.method_combo.addItems(list(METHODS))
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 512)
        self.k_spin.setValue(32)
        self.variant_combo = QComboBox()
        self.variant_combo.addItems(["unit", "ortho", "random"])
        self.recon_combo = QComboBox()
        self.recon_combo.addItems(["lenet", "resnet18"])
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(0, 10_000_000)
        self.steps_spin.setSpecialValueText("paper")
        self.steps_spin.setValue(0)
        self.steps_spin.setToolTip("0 = the paper's iteration count for this K / generator / reconstructor")
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(2, 4096)
        self.batch_spin.setValue(32)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        form.addRow("generator", self.generator_edit.native)
        form.addRow("or", self.demo_combo)
        form.addRow("method", self.method_combo)
        form.addRow("K", self.k_spin)
        form.addRow("A columns", self.variant_combo)
        form.addRow("reconstructor", self.recon_combo)
        form.addRow("steps", self.steps_spin)
        form.addRow("batch", self.batch_spin)
        form.addRow("seed", self.seed_spin)
        self.method_combo.currentTextChanged.connect(self._method_changed)

    def _method_changed(self, text: str) -> None:
        learned = METHODS[text] == "voynov"
        for w in (self.variant_combo, self.recon_combo, self.steps_spin, self.batch_spin):
            w.setEnabled(learned)

    def generator_path(self) -> str:
        i = self.demo_combo.currentIndex()
        if i > 0:
            return str(demo_model(DEMO_NAMES[i - 1]).generator)
        path = str(self.generator_edit.value or "")
        if not path or path == ".":
            raise ValueError("choose a generator checkpoint (or a demo)")
        return path

    def run_prefix(self) -> str:
        return f"directions-{METHODS[self.method_combo.currentText()]}"

    def step_text(self, ev: Step) -> str:
        acc = ev.losses.get("accuracy")
        ls = ev.losses.get("shift_l1")
        if acc is None:
            return super().step_text(ev)
        return f"RCA {acc:.3f}   L_s {ls:.4f}   loss {ev.losses.get('loss', float('nan')):.4f}"

    def on_event(self, ev: Any) -> None:
        super().on_event(ev)
        if isinstance(ev, Finished) and ev.metrics:
            acc = ev.metrics.get("accuracy", ev.metrics.get("rca"))
            ls = ev.metrics.get("shift_l1", ev.metrics.get("shift_loss"))
            if acc is not None and ls is not None:
                self.metrics_label.setText(f"final RCA {acc:.3f}   L_s {ls:.4f}")

    def make_engine(self, run_dir: Path, resume: bool) -> EngineJob:
        spec = self.generator_path()
        method = METHODS[self.method_combo.currentText()]
        K = self.k_spin.value()  # noqa: N806
        seed = self.seed_spin.value()
        if method != "voynov":
            return EngineJob("napari_latentdirs.training.jobs:baseline_job", {"method": method, "spec": spec, "K": K, "seed": seed, "run_dir": str(run_dir)})
        from ..models.registry import generator_meta
        from ..training.directions import DirectionsConfig

        kind = {"dcgan": "gan", "vae": "vae"}.get(generator_meta(spec).get("kind", ""), "gan")
        cfg = DirectionsConfig(  # the dataclass validates here, on the GUI thread, with a message
            K=K,
            variant=self.variant_combo.currentText(),
            reconstructor=self.recon_combo.currentText(),
            steps=self.steps_spin.value() or None,
            batch_size=self.batch_spin.value(),
            seed=seed,
            device=self.device,
            generator_kind=kind,
            generator_path=str(spec),
            log_every=10,
            checkpoint_every=200,
            eval_batches=4,
        )
        return EngineJob("napari_latentdirs.training.jobs:directions_job", {"cfg": cfg, "spec": str(spec), "run_dir": str(run_dir)})
