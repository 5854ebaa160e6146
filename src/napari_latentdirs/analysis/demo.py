"""The bundled demo models: a tiny GAN and a tiny VAE trained on the phantom, with directions.

They live in ``napari_latentdirs/assets/demo/`` as
``<name>_generator.safetensors`` and ``<name>_directions.safetensors`` (each
with its JSON sidecar) and are produced reproducibly by
``training/make_demo_models.py``. They let a new user try the navigator and
the review widget without training anything or owning CT data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"
DEMO_NAMES = ("gan", "vae")


@dataclass(frozen=True)
class DemoModel:
    name: str
    generator: Path
    directions: Path

    @property
    def available(self) -> bool:
        return self.generator.is_file() and self.directions.is_file()


def demo_model(name: str, root: Path | None = None) -> DemoModel:
    if name not in DEMO_NAMES:
        raise ValueError(f"unknown demo model {name!r}; choose one of {DEMO_NAMES}")
    root = DEMO_DIR if root is None else Path(root)
    return DemoModel(name, root / f"{name}_generator.safetensors", root / f"{name}_directions.safetensors")


def available_demos(root: Path | None = None) -> list[DemoModel]:
    return [m for m in (demo_model(n, root) for n in DEMO_NAMES) if m.available]


def require_demo(name: str, root: Path | None = None) -> DemoModel:
    m = demo_model(name, root)
    if not m.available:
        raise FileNotFoundError(
            f"the bundled {name} demo is missing from {m.generator.parent}; "
            "recreate it with `python training/make_demo_models.py`"
        )
    return m
