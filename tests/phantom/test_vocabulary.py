"""One vocabulary (probes.factors), one set of paper constants (paper), no import cycle."""

from __future__ import annotations

import subprocess
import sys

from napari_latentdirs.paper import (
    PAPER_TABLE1,
    canonical_cell,
    generator_kind,
)
from napari_latentdirs.probes.factors import (
    ALIASES,
    CONSEQUENCES,
    FACTORS,
    PAPER_FACTORS,
    PROBE_NAMES,
    PROBE_NOMINAL,
    PROBE_TARGETS,
    canonical_factor,
)


def test_phantom_columns_and_axes_follow_the_vocabulary():
    from napari_latentdirs.phantom import sample_slices
    from napari_latentdirs.phantom.factor_generator import _NOMINAL, AXIS_FACTORS

    _, truth = sample_slices(2, seed=0)
    assert all(PROBE_TARGETS[f] in truth for f in PROBE_NAMES)
    assert tuple(AXIS_FACTORS) == PROBE_NAMES
    assert [c for c, _ in _NOMINAL] == [PROBE_NOMINAL[f] for f in AXIS_FACTORS]
    assert all(set(v) <= set(FACTORS) for v in CONSEQUENCES.values())
    assert len(PAPER_FACTORS) == 8


def test_spellings():
    assert canonical_factor("Z-position") == "z_level" and ALIASES["z-position"] == "z_level"
    assert canonical_factor("breast size") == "breast_size" and canonical_factor("width") == "width"
    assert generator_kind("dcgan") == "gan" and generator_kind("vae") == "vae"
    assert canonical_cell("gan_lenet_unit_k32") == "gan_lenet_unit32" == canonical_cell("dcgan_lenet_unit32")
    assert {c for _, _, c in PAPER_TABLE1} == {"ortho32", "unit32", "unit100"}


def test_phantom_imports_no_probes():
    code = ("import sys, napari_latentdirs.phantom, napari_latentdirs.phantom.tree, "
            "napari_latentdirs.phantom.factor_generator; "
            "print([m for m in sys.modules if m.startswith('napari_latentdirs.probes')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
