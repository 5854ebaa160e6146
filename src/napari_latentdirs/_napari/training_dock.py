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
from ..events import Finished
from ..jobs import DATA_SOURCES, check_training_data
from ..training.recipes import RECIPES, recipe
from .engine_dock import EngineDock
from .estimate import rate_key

MODELS = {"GAN (DCGAN)": "gan", "VAE (ResNet)": "vae"}
#: what Start trains with each recipe (README, "The CPU recipe"): optimiser steps, fresh phantom
#: slices; the paper's trains its epochs over the data (LIDC-IDRI on a GPU)
RECIPE_RUNS = {
    "cpu": {"gan": {"max_steps": 10_000, "phantom": 12_000}, "vae": {"max_steps": 1_500, "phantom": 12_000}},
    "paper": {"gan": {"max_steps": 0, "phantom": 12_000}, "vae": {"max_steps": 0, "phantom": 12_000}},
}
PAPER_EPOCHS = 50


class TrainingDock(EngineDock):
    title = "Train generator"
    samples_layer = "training samples"
    mosaic_cols = 4
    metrics_lines = 7
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
        self.recipe_combo = QComboBox()
        self.recipe_combo.addItems(list(RECIPES))
        self.recipe_combo.setToolTip("training/recipes.py: 'cpu' draws the phantom's anatomy on a small CPU in about an "
                                     "hour (README, 'The CPU recipe'); 'paper' is the paper's (a GPU). Sets the fields below")
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(["tiny", "cpu", "paper"])
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
        form.addRow("recipe", self.recipe_combo)
        form.addRow("preset", self.preset_combo)
        form.addRow("epochs", self.epochs_spin)
        form.addRow("batch", self.batch_spin)
        form.addRow("max steps", self.max_steps_spin)
        form.addRow("seed", self.seed_spin)
        self.data_combo.currentIndexChanged.connect(self._data_changed)
        self._data_changed(0)
        self.recipe_combo.currentTextChanged.connect(lambda _t: self.apply_recipe())
        self.model_combo.currentTextChanged.connect(lambda _t: self.apply_recipe())
        tips = {
            self.data_combo: "what to train on: fresh synthetic phantom slices, a cache made by `latentdirs prepare`, "
                             "or a DICOM folder (prepared into the run folder first)",
            self.data_edit.native: "the prepared cache or DICOM folder (not used for the phantom)",
            self.phantom_n: "how many phantom slices to render for training",
            self.model_combo: "DCGAN (the paper's GAN) or ResNet-VAE",
            self.preset_combo: "network width: tiny (tests), cpu (the CPU recipe's), paper",
            self.epochs_spin: "passes over the training slices (max steps stops earlier)",
            self.batch_spin: "slices per optimiser step",
            self.seed_spin: "seeds every random source: the same seed, the same run",
        }
        for w, tip in tips.items():
            w.setToolTip(tip)
        self.apply_recipe()  # the first recipe's fields; the device's recipe follows

    activity = "training the generator"

    def apply_recipe(self) -> None:
        """Set the fields the recipe decides (the user can still change them before Start)."""
        name, kind = self.recipe_combo.currentText(), self.kind
        r = recipe(name, kind)
        run = RECIPE_RUNS[name][kind]
        self.preset_combo.setCurrentText(str(r.get("preset", "paper")))
        self.batch_spin.setValue(int(r.get("batch_size", 128)))
        self.max_steps_spin.setValue(int(run["max_steps"]))
        self.epochs_spin.setValue(PAPER_EPOCHS if name == "paper" else 1_000)
        self.phantom_n.setValue(int(run["phantom"]))

    def remembered_controls(self) -> dict[str, Any]:
        return {"model": self.model_combo, "recipe": self.recipe_combo, **super().remembered_controls(),
                "data": self.data_combo, "path": self.data_edit, "phantom": self.phantom_n, "preset": self.preset_combo,
                "epochs": self.epochs_spin, "batch": self.batch_spin, "max_steps": self.max_steps_spin, "seed": self.seed_spin}

    def planned_steps(self) -> int | None:
        """Optimiser steps Start would run: max steps, else epochs over the phantom slices."""
        if self.max_steps_spin.value():
            return self.max_steps_spin.value()
        if self.data_combo.currentIndex() == 0:
            per_epoch = -(-int(self.phantom_n.value() * 0.9) // self.batch_spin.value())  # the train split, about
            return per_epoch * self.epochs_spin.value()
        return None

    def expected(self) -> tuple[str, int | None]:
        return rate_key("train", self.kind, self.preset_combo.currentText(), self.batch_spin.value(),
                        self.resolved_device().split(":")[0]), self.planned_steps()

    def on_message(self, text: str) -> None:
        if text.startswith("generator quality:"):  # lines of figures: the sentence goes under the bar
            return
        super().on_message(text)

    def on_event(self, ev: Any) -> None:
        super().on_event(ev)
        if isinstance(ev, Finished):
            self.status.setText(f"finished: {ev.output}")
            self.metrics_label.setText(quality_text(ev.metrics))

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

        r = recipe(self.recipe_combo.currentText(), self.kind)
        # the recipe's optimiser settings belong to its network (the CPU recipe's R1 needs its
        # BatchNorm-free discriminator): another preset trains with that preset's own defaults
        same_net = self.preset_combo.currentText() == r.get("preset", "paper")
        overrides = {k: v for k, v in r.items() if k not in ("preset", "batch_size")} if same_net else {}
        return config_from_dict(
            self.kind,
            overrides,
            preset=self.preset_combo.currentText(),
            epochs=self.epochs_spin.value(),
            batch_size=self.batch_spin.value(),
            seed=self.seed_spin.value(),
            device=self.device,
            max_steps=self.max_steps_spin.value() or None,
            fid=False,  # FID selection needs Inception weights and minutes: the CLI does it
            log_every=1,
            sample_every=max(1, min(self.max_steps_spin.value() // 4, 250)) if self.max_steps_spin.value() else 100,
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


def quality_text(metrics: dict[str, float]) -> str:
    """The finished run's figures as sentences: quality as ratios to the real-vs-real ceiling
    (1 = as good as real slices), the losses as they are."""
    spaces: dict[str, dict[str, float]] = {}
    rest = []
    for k, v in metrics.items():
        parts = k.split("/")
        if len(parts) == 3 and parts[0] == "quality" and parts[2].endswith("_ratio"):
            spaces.setdefault(parts[1], {})[parts[2][: -len("_ratio")]] = v
        elif k == "quality/checkerboard_index":
            rest.append(f"checkerboard artefacts {v:.1f}x those of real slices")
        else:
            rest.append(f"{k} {v:.4g}")
    lines: list[str] = []
    names = {"probes": "probe space", "pixels": "pixel space", "inception": "Inception space"}
    worst = 1.0
    for space, r in spaces.items():
        p, rc = r.get("precision", float("nan")), r.get("recall", float("nan"))
        worst = min(worst, p) if np.isfinite(p) else worst
        lines.append(f"  {names.get(space, space)}: precision {p:.2f}, recall {rc:.2f}")
    if spaces:
        verdict = ("the samples look like real slices" if worst >= 0.5 else
                   "few samples look like real slices yet: train longer")
        lines.insert(0, f"Quality, as a share of the real-vs-real ceiling (1 = like real slices): {verdict}.")
    if rest:
        lines.append(", ".join(rest))
    return "\n".join(lines)
