"""Directions dock: Voynov & Babenko direction discovery (or a baseline) in the background.

One definition of each number, the paper's (Table 1), everywhere in the dock:

* RCA: the reconstructor's classification accuracy on fresh held-out batches,
  evaluated at the end of a run (``training.directions.evaluate``);
* L_s: the shift loss as the paper reports it, gamma * mean |alpha_hat - alpha|
  (``shift_loss``); the raw mean |alpha_hat - alpha| is shown as "raw L1".

While training, the plot and the live line show the *batch* accuracy and L_s of
the training batches, labelled as such. The generator is a file, a bundled
demo, or the user's own ``package.module:factory`` (models/custom.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import FileEdit
from napari.utils.notifications import show_warning
from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLineEdit, QSpinBox

from ..analysis.demo import DEMO_NAMES, demo_model
from ..directions import METHODS as REGISTRY
from ..directions.set import LEARNED_RCA, NOT_LEARNED
from ..engine_process import EngineJob
from ..events import Finished, Step
from ..models.custom import is_factory_spec, resolve_custom
from .engine_dock import EngineDock

#: what the dock can give a method besides the generator (no real slices here)
DOCK_PROVIDES = frozenset({"first_layer", "encoder"})


def dock_methods() -> dict[str, str]:
    """Label -> method name: the registry's methods the dock can run (``directions.METHODS``)."""
    return {spec.label or name: name for name, spec in REGISTRY.items() if set(spec.needs) <= DOCK_PROVIDES}


class DirectionsDock(EngineDock):
    title = "Discover directions"
    samples_layer = "direction samples"
    plot_keys = ("batch accuracy", "L_s")
    mosaic_cols = 5  # direction_samples: one row per direction, five shifts

    def build_inputs(self, form: QFormLayout) -> None:
        self.generator_edit = FileEdit(mode="r", filter="*.safetensors")
        self.factory_edit = QLineEdit()
        self.factory_edit.setPlaceholderText("or package.module:factory")
        self.factory_edit.setToolTip("your own generator: a factory returning an nn.Module with latent_dim and "
                                     "forward(z) -> (B, C, H, W) in [-1, 1]; weights below are optional")
        self.weights_edit = FileEdit(mode="r", filter="*.safetensors *.pt *.pth")
        self.demo_combo = QComboBox()
        self.demo_combo.addItems(["(file above)", *[f"demo {n.upper()}" for n in DEMO_NAMES]])
        self.methods = dock_methods()
        self.method_combo = QComboBox()
        self.method_combo.addItems(list(self.methods))
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
        row = QHBoxLayout()
        row.addWidget(self.generator_edit.native, 3)
        row.addWidget(self.factory_edit, 2)
        form.addRow("generator", row)
        form.addRow("factory weights", self.weights_edit.native)
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
        learned = REGISTRY[self.methods[text]].learned
        for w in (self.variant_combo, self.recon_combo, self.steps_spin, self.batch_spin):
            w.setEnabled(learned)

    def generator_path(self) -> str:
        """The generator spec: a demo, else a ``module:factory``, else the file chosen."""
        i = self.demo_combo.currentIndex()
        if i > 0:
            return str(demo_model(DEMO_NAMES[i - 1]).generator)
        factory = self.factory_edit.text().strip()
        if factory:
            if not is_factory_spec(factory):
                raise ValueError(f"{factory!r} is not 'package.module:factory'")
            return factory
        path = str(self.generator_edit.value or "")
        if not path or path == ".":
            raise ValueError("choose a generator checkpoint, a module:factory or a demo")
        if not Path(path).exists():
            raise ValueError(f"generator: {path} does not exist")
        return path

    def generator_weights(self) -> str | None:
        path = str(self.weights_edit.value or "")
        if not path or path == "." or not self.factory_edit.text().strip() or self.demo_combo.currentIndex() > 0:
            return None
        return path

    def generator_kind(self, spec: str, weights: str | None) -> str:
        """gan / vae (the paper's step counts); checks a factory here, before Start."""
        if is_factory_spec(spec):
            return resolve_custom(spec, weights)[2]  # type: ignore[index] - a factory spec resolves
        from ..models.registry import generator_meta
        from ..paper import GENERATORS, generator_kind

        kind = generator_kind(str(generator_meta(spec).get("kind", "")))
        return kind if kind in GENERATORS else "gan"

    def run_prefix(self) -> str:
        return f"directions-{self.methods[self.method_combo.currentText()]}"

    def plot_values(self, ev: Step) -> dict[str, float]:
        if "accuracy" not in ev.losses:
            return super().plot_values(ev)
        return {"batch accuracy": ev.losses["accuracy"], "L_s": ev.losses.get("shift_loss", float("nan"))}

    def step_text(self, ev: Step) -> str:
        acc = ev.losses.get("accuracy")
        if acc is None:
            return super().step_text(ev)
        nan = float("nan")
        return (f"batch accuracy {acc:.3f}   L_s {ev.losses.get('shift_loss', nan):.4f}"
                f"   (raw L1 {ev.losses.get('shift_l1', nan):.4f}, loss {ev.losses.get('loss', nan):.4f})")

    def metrics_text(self, metrics: dict[str, float]) -> str:
        names = {"rca": "RCA", "shift_loss": "L_s = γ·mean|α̂−α|", "shift_l1": "raw L1 mean|α̂−α|", "ce": "CE"}
        return "".join(f"\n{names.get(k, k)} = {v:.4g}" for k, v in metrics.items())

    def on_event(self, ev: Any) -> None:
        super().on_event(ev)
        if isinstance(ev, Finished) and ev.metrics and "rca" in ev.metrics:
            m = ev.metrics
            text = (f"final RCA {m['rca']:.3f}   L_s {m.get('shift_loss', float('nan')):.4f}"
                    f"   (raw L1 {m.get('shift_l1', float('nan')):.4f})")
            if m["rca"] < LEARNED_RCA:
                text += f"\n⚠ {NOT_LEARNED}"
                show_warning(f"directions: {NOT_LEARNED} (RCA {m['rca']:.3f})")
            self.metrics_label.setText(text)

    def make_engine(self, run_dir: Path, resume: bool) -> EngineJob:
        spec = self.generator_path()
        weights = self.generator_weights()
        method = self.methods[self.method_combo.currentText()]
        K = self.k_spin.value()
        seed = self.seed_spin.value()
        kind = self.generator_kind(spec, weights)  # a wrong file or interface: a message before Start
        if not REGISTRY[method].learned:
            return EngineJob("napari_latentdirs.jobs:baseline_job",
                             {"method": method, "spec": spec, "K": K, "seed": seed, "run_dir": str(run_dir), "weights": weights})
        from ..directions.voynov import DirectionsConfig
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
        return EngineJob("napari_latentdirs.jobs:directions_job",
                         {"cfg": cfg, "spec": str(spec), "run_dir": str(run_dir), "weights": weights})
