"""The main job's settings: one dataclass, two presets, unknown keys refused."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..directions import METHODS
from ..directions.set import LEARNED_RCA
from ..paper import COLUMNS as PAPER_COLUMNS
from ..paper import RECONSTRUCTORS as PAPER_RECONSTRUCTORS

GENERATORS = ("vae", "gan")  # the VAE first: its sets are the report's main ones
RECONSTRUCTORS = PAPER_RECONSTRUCTORS
CELLS = PAPER_COLUMNS
BASELINES = tuple(m for m, s in METHODS.items() if not s.learned and "encoder" not in s.needs)  # GAN and VAE alike


@dataclass
class PipelineConfig:
    out: str
    data: str | None = None  # LIDC-IDRI (or any DICOM) root; None = the embedded phantom
    preset: str = "tiny"
    seed: int = 0
    device: str = "auto"
    # Parallel processes for the direction cells on a CPU (each with one torch thread).
    workers: int = 2
    # data
    patients: int = 10  # phantom patients
    slices_per_patient: int | None = 48  # phantom slices per scan (None: the scan length / thickness)
    # generators. On the phantom the bundled demo generators (trained with the CPU recipe, see
    # training/make_demo_models.py) are used unless ``retrain``; other data always trains.
    retrain: bool = False
    recipe: str = "cpu"  # training.recipes: "cpu" | "paper"
    gan_epochs: int | None = 1000
    vae_epochs: int | None = 1000
    gan_max_steps: int | None = 3000
    vae_max_steps: int | None = 800
    gan_batch: int | None = None  # None: the recipe's
    vae_batch: int | None = None
    fid: bool = False
    quality_samples: int = 300  # k-NN precision / recall samples per generator (0: skip)
    # Inception features of 900 images cost minutes on a CPU; the bundled models' README.json has them.
    quality_spaces: tuple[str, ...] = ("probes", "pixels")
    # directions: the recipe (training.recipes.DIRECTION_RECIPES) and the grid
    direction_recipe: str = "cpu"
    # steps per (generator, reconstructor); empty: the recipe's, else the paper's x direction_steps_scale
    # Within the 15-minute budget: R sees the pair at 32x32 (the recipe's 64 learns about half as
    # fast per step; training/recipe_search.md), and the VAE's sets learn in fewer steps than the GAN's.
    direction_steps: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"vae": {"lenet": 350}, "gan": {"lenet": 800}})
    reconstructor_input: int | None = 32  # None: the recipe's
    direction_steps_scale: float | None = None
    direction_batch: int | None = None  # None: the recipe's
    direction_eval_batches: int | None = None
    direction_seeds: tuple[int, ...] = (0, 1, 2)
    # The CPU recipe's orthonormal A (training/method_study.md): unit columns collapse to rank ~7 of 32.
    cells: tuple[str, ...] = ("ortho32",)
    generators: tuple[str, ...] = GENERATORS
    reconstructors: tuple[str, ...] = ("lenet",)
    # The matched random sets are always made; GANSpace and SeFa in the paper preset.
    baselines: tuple[str, ...] = ("random",)
    # Random sets per (generator, K among the cells): the comparison's random group (issue 18: >= 10).
    random_sets: int = 10
    # Also compare at equal image change: each discovered set relabelled with its shifts rescaled so that
    # it changes the image as much as the random sets do (analysis.comparison.equal_change_scale).
    equal_change: bool = True
    # A discovered set whose RCA is below this is flagged "not learned" and kept out of the
    # discovered-versus-random comparison.
    learned_rca: float = LEARNED_RCA
    # analysis
    label_latents: int = 16
    label_alphas: tuple[float, ...] = (-6.0, -3.0, 3.0, 6.0)  # the figures' and navigator's range
    label_boot: int = 100
    compare_boot: int = 300
    score_samples: int = 2000  # MIG needs >= 2000 (on 300 noise alone scores as much as the codes)
    interp_steps: int = 10
    inversion_restarts: int = 2
    inversion_steps: int = 100
    memorization_samples: int = 200
    gifs: int = 8  # animated directions in the report (VAE main set)
    gif_frames: int = 12
    fig8_latents: int = 24  # the paper's Fig. 8 shows 24
    progress: bool = True

    def __post_init__(self) -> None:
        for key in ("direction_seeds", "cells", "generators", "reconstructors", "baselines", "label_alphas",
                    "quality_spaces"):
            setattr(self, key, tuple(getattr(self, key)))
        bad = [c for c in self.cells if c not in CELLS]
        bad += [g for g in self.generators if g not in GENERATORS]
        bad += [r for r in self.reconstructors if r not in RECONSTRUCTORS]
        bad += [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise ValueError(f"unknown cell/generator/reconstructor/baseline {bad}; choose from "
                             f"{sorted(CELLS)}, {GENERATORS}, {RECONSTRUCTORS}, {BASELINES}")
        if not self.direction_seeds:
            raise ValueError("direction_seeds must name at least one seed")
        if self.random_sets < 1:
            raise ValueError(f"random_sets must be >= 1, got {self.random_sets}")
        if self.workers < 1 or self.patients < 1 or not 0.0 <= self.learned_rca <= 1.0:
            raise ValueError(f"workers >= 1, patients >= 1 and 0 <= learned_rca <= 1 required: "
                             f"{self.workers}, {self.patients}, {self.learned_rca}")
        if any(a == 0 for a in self.label_alphas) or not self.label_alphas:
            raise ValueError(f"label_alphas must be non-zero shifts, got {self.label_alphas}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineConfig:
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown main-job setting(s) {unknown}")
        return cls(**d)


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {},
    "paper": {
        "patients": 40,
        "slices_per_patient": None,
        "retrain": True,
        "recipe": "paper",
        "gan_epochs": None,  # the paper's 50
        "vae_epochs": None,
        "gan_max_steps": None,
        "vae_max_steps": None,
        "fid": True,
        "quality_samples": 2000,
        "direction_recipe": "paper",
        "direction_steps": {},
        "reconstructor_input": None,
        "direction_steps_scale": 1.0,
        "baselines": BASELINES,
        "quality_spaces": ("probes", "pixels", "inception"),
        "direction_seeds": (0,),
        "cells": tuple(CELLS),
        "reconstructors": RECONSTRUCTORS,
        "workers": 1,
        "gif_frames": 16,
        "label_latents": 64,
        "label_boot": 200,
        "compare_boot": 1000,
        "score_samples": 2000,
        "inversion_restarts": 5,
        "inversion_steps": 500,
        "memorization_samples": 1000,
    },
}


def make_config(out: str | Path, preset: str = "tiny", **overrides: Any) -> PipelineConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    kw = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return PipelineConfig.from_dict({"out": str(out), "preset": preset, **kw})
