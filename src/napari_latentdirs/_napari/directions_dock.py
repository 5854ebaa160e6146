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

import threading
from pathlib import Path
from typing import Any

from magicgui.widgets import FileEdit
from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from ..analysis.demo import DEMO_NAMES, demo_model
from ..analysis.label_set import PROBE_CHOICES
from ..directions import METHODS as REGISTRY
from ..directions.set import LEARNED_RCA, NOT_LEARNED
from ..engine_process import EngineJob
from ..events import Finished, Step
from ..models.custom import is_factory_spec, resolve_custom
from ..training.recipes import DIRECTION_RECIPES, direction_recipe
from .engine_dock import EngineDock, _FixedLabel
from .estimate import rate_key
from .workers import EngineRunner

#: what the dock can give a method besides the generator (no real slices here)
DOCK_PROVIDES = frozenset({"first_layer", "encoder"})


def dock_methods() -> dict[str, str]:
    """Label -> method name: the registry's methods the dock can run (``directions.METHODS``)."""
    return {spec.label or name: name for name, spec in REGISTRY.items() if set(spec.needs) <= DOCK_PROVIDES}


class LabellingStopped(Exception):
    """Stop was pressed while labelling."""


class DirectionsDock(EngineDock):
    title = "Discover directions"
    samples_layer = "direction samples"
    plot_keys = ("batch accuracy", "L_s")
    mosaic_cols = 5  # direction_samples: one row per direction, five shifts

    def build_inputs(self, form: QFormLayout) -> None:
        self.generator_edit = FileEdit(mode="r", filter="*.safetensors")
        self.factory_edit = QLineEdit()
        self.factory_edit.setPlaceholderText("or package.module:factory")
        self.factory_edit.setMinimumWidth(60)  # the placeholder must not widen the dock
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
        self.recipe_combo = QComboBox()
        self.recipe_combo.addItems(list(DIRECTION_RECIPES))
        self.recipe_combo.setToolTip("training/recipes.py: 'cpu' (LeNet sees 64x64, lr 3e-3, 800 steps: minutes on a CPU) "
                                     "or 'paper' (25,000 steps at 128x128: hours on a CPU, fine on a GPU)")
        row = QHBoxLayout()
        row.addWidget(self.generator_edit.native, 3)
        row.addWidget(self.factory_edit, 2)
        form.addRow("generator", row)
        form.addRow("factory weights", self.weights_edit.native)
        form.addRow("or", self.demo_combo)
        form.addRow("method", self.method_combo)
        form.addRow("recipe", self.recipe_combo)
        form.addRow("K", self.k_spin)
        form.addRow("A columns", self.variant_combo)
        form.addRow("reconstructor", self.recon_combo)
        form.addRow("steps", self.steps_spin)
        form.addRow("batch", self.batch_spin)
        form.addRow("seed", self.seed_spin)
        self.method_combo.currentTextChanged.connect(self._method_changed)
        self.recipe_combo.currentTextChanged.connect(lambda _t: self.apply_recipe())
        tips = {
            self.generator_edit.native: "a generator file (generator.safetensors) or a training run folder",
            self.weights_edit.native: "weights for your module:factory (optional)",
            self.demo_combo: "or one of the bundled demo models",
            self.method_combo: "Voynov & Babenko learns directions; the others are closed-form baselines (seconds)",
            self.k_spin: "how many directions to find",
            self.variant_combo: "the direction matrix A's columns: unit length, orthonormal, or fixed random",
            self.recon_combo: "the reconstructor R that tells which direction moved an image",
            self.batch_spin: "image pairs per step",
            self.seed_spin: "seeds every random source: the same seed, the same set",
        }
        for w, tip in tips.items():
            w.setToolTip(tip)
        self.apply_recipe()  # the first recipe's fields; the device's recipe follows

    activity = "learning directions"

    def apply_recipe(self) -> None:
        r = direction_recipe(self.recipe_combo.currentText())
        self.recon_combo.setCurrentText(str(r.get("reconstructor", "lenet")))
        self.variant_combo.setCurrentText(str(r.get("variant", "unit")))
        self.steps_spin.setValue(int(r.get("steps", 0)))
        self.batch_spin.setValue(int(r.get("batch_size", 128)))

    def remembered_controls(self) -> dict[str, Any]:
        return {**super().remembered_controls(), "recipe": self.recipe_combo, "generator": self.generator_edit,
                "factory": self.factory_edit, "weights": self.weights_edit, "demo": self.demo_combo,
                "method": self.method_combo, "K": self.k_spin, "variant": self.variant_combo,
                "reconstructor": self.recon_combo, "steps": self.steps_spin, "batch": self.batch_spin,
                "seed": self.seed_spin, "probes": self.probes_combo, "label_after": self.label_after}

    def expected(self) -> tuple[str, int | None] | None:
        if not REGISTRY[self.methods[self.method_combo.currentText()]].learned:
            return None  # closed-form: seconds
        try:
            spec = self.generator_path()
            kind = self.generator_kind(spec, self.generator_weights()) if not is_factory_spec(spec) else "gan"
        except (ValueError, OSError, KeyError, RuntimeError):
            kind = "gan"
        from ..directions.voynov import paper_steps

        steps = self.steps_spin.value() or paper_steps(self.k_spin.value(), kind, self.recon_combo.currentText())
        r = direction_recipe(self.recipe_combo.currentText())
        size = r.get("reconstructor_input") or 128
        return rate_key("directions", kind, self.recon_combo.currentText(), size, self.batch_spin.value(),
                        self.resolved_device().split(":")[0]), steps

    # -- the Label step ------------------------------------------------------------------------
    def build_extra(self, lay: Any) -> None:
        box = QGroupBox("Label")
        v = QVBoxLayout(box)
        f = QFormLayout()
        self.label_set_edit = FileEdit(mode="r", filter="*.safetensors")
        self.label_set_edit.native.setToolTip("the direction set to label: the run's result when it finishes, or any set")
        self.probes_combo = QComboBox()
        self.probes_combo.addItems(list(PROBE_CHOICES))
        self.probes_combo.setToolTip("auto: the phantom's anatomical probes for CT-like generators (width, height, "
                                     "size, rotation, lungs, y position, breast size, z level), the ellipse probes "
                                     "for the analytic generator")
        f.addRow("direction set", self.label_set_edit.native)
        f.addRow("probes", self.probes_combo)
        v.addLayout(f)
        row = QHBoxLayout()
        self.label_btn = QPushButton("Label directions")
        self.label_btn.setToolTip("measure what every direction does with the probes and name it "
                                  "(saved into the set: the navigator and the review show the names)")
        self.label_btn.clicked.connect(self.label_clicked)
        self.label_after = QCheckBox("when a run finishes")
        self.label_after.setChecked(True)
        self.label_after.setToolTip("label the new set as soon as discovery finishes")
        row.addWidget(self.label_btn)
        row.addWidget(self.label_after)
        v.addLayout(row)
        self.label_bar = QProgressBar()
        self.label_bar.setFormat("%v / %m directions")
        self.label_bar.setVisible(False)
        v.addWidget(self.label_bar)
        self.label_status = _FixedLabel(7)
        self.label_status.setText("labels name each direction by the factor it changes (or 'entangled', "
                                  "'no effect'); a set never labelled shows 'unlabelled'")
        v.addWidget(self.label_status)
        lay.addWidget(box)
        self._label_progress: tuple[int, int] | None = None
        self.labelled: Any = None
        self.label_runner = EngineRunner(self, on_event=self._on_labelled, on_done=self._label_done,
                                         viewer=self.viewer, name="label directions")
        self._flush_timer.timeout.connect(self._show_label_progress)
        self.run_finished.connect(self._label_after_run)

    def _label_after_run(self, output: str) -> None:
        if self.label_after.isChecked() and output.endswith(".safetensors"):
            self.label(output)

    def label_clicked(self) -> None:
        path = str(self.label_set_edit.value or "")
        if not path or path == ".":
            self.label_status.setText("choose a direction set to label (a finished run fills it in)")
            return
        self.label(path)

    def label(self, set_path: str | Path) -> None:
        """Label ``set_path`` for the dock's generator in the background (progress, Cancel = Stop)."""
        if self.label_runner.running:
            return
        try:
            spec, weights = self.generator_path(), self.generator_weights()
        except ValueError as exc:
            self.label_status.setText(f"cannot label: {exc}")
            return
        probes = self.probes_combo.currentText()
        box = self

        def job(stop: threading.Event) -> Any:
            from ..analysis.label_set import label_set
            from ..directions.voynov import resolve_generator

            gen = resolve_generator(spec, weights=weights)[0]

            def progress(done: int, total: int) -> None:
                if stop.is_set():
                    raise LabellingStopped("labelling stopped")
                box._label_progress = (done, total)

            try:
                yield label_set(gen, set_path, probes=probes, progress=progress)
            except LabellingStopped:
                yield "stopped"

        self._label_progress = (0, 0)
        self.label_bar.setVisible(True)
        self.label_btn.setText("Stop labelling")
        self.label_btn.clicked.disconnect()
        self.label_btn.clicked.connect(self.label_runner.request_stop)
        self.label_status.setText(f"labelling {Path(set_path).name} with the {probes} probes…")
        self.label_runner.start(job, "labelling directions")

    def _show_label_progress(self) -> None:
        if self._label_progress is None:
            return
        done, total = self._label_progress
        if total:
            self.label_bar.setRange(0, total)
            self.label_bar.setValue(done)
            self.label_status.setText(f"labelling: direction {done} of {total}")

    def _on_labelled(self, item: Any) -> None:
        from ..analysis.label_set import LabelledSet

        if isinstance(item, LabelledSet):
            self.labelled = item
            folder = str(item.path.parent) + "/"
            self.label_status.setText("\n".join(line.replace(folder, "") for line in item.summary_lines()))
            for w in item.warnings:
                show_warning(f"labels: {w}")
            show_info(f"labelled {item.result.K} directions with the {item.probes} probes")
        elif item == "stopped":
            self.label_status.setText("labelling stopped: the set keeps its previous labels")

    def _label_done(self, error: BaseException | None) -> None:
        self._label_progress = None
        self.label_bar.setVisible(False)
        self.label_btn.setText("Label directions")
        self.label_btn.clicked.disconnect()
        self.label_btn.clicked.connect(self.label_clicked)
        if error is not None:
            self.label_status.setText(f"labelling failed: {error}")

    def closeEvent(self, event: Any) -> None:  # Qt API
        self.label_runner.stop_and_wait()
        super().closeEvent(event)

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
        if isinstance(ev, Finished) and ev.output:
            self.label_set_edit.value = str(ev.output)
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
        r = direction_recipe(self.recipe_combo.currentText())
        extra = {k: v for k, v in r.items() if k in ("reconstructor_input", "lr")}
        cfg = DirectionsConfig(  # the dataclass validates here, on the GUI thread, with a message
            **extra,
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
            eval_batches=int(r.get("eval_batches", 4)),
        )
        return EngineJob("napari_latentdirs.jobs:directions_job",
                         {"cfg": cfg, "spec": str(spec), "run_dir": str(run_dir), "weights": weights})
