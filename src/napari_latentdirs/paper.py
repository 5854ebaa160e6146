"""The paper's constants, in one place: Table 1, the direction step counts and the names of the
Table 1 grid (generators, reconstructors, A columns).

Read by ``analysis.report`` (our Table 1 beside the paper's), ``runs.table1`` (the twelve cells
and their YAML files), ``runs.pipeline`` (the main job's grid) and ``directions.voynov`` (the
default step count). Pure data: importing it costs nothing.
"""

from __future__ import annotations

#: The two generators, by the one name used everywhere ("gan", never "dcgan").
GENERATORS: tuple[str, ...] = ("gan", "vae")
#: Older or file-format spellings of a generator kind (a DCGAN checkpoint's metadata says "dcgan").
GENERATOR_ALIASES: dict[str, str] = {"dcgan": "gan"}
#: Table 1's reconstructors, in the paper's row order ("resnet" is ResNet-18).
RECONSTRUCTORS: tuple[str, ...] = ("resnet", "lenet")
#: Table 1's columns: name -> (variant of A, K).
COLUMNS: dict[str, tuple[str, int]] = {"ortho32": ("ortho", 32), "unit32": ("unit", 32), "unit100": ("unit", 100)}
#: Earlier spellings of the column names (``runs.table1`` wrote ``ortho_k32``); accepted on input.
COLUMN_ALIASES: dict[str, str] = {"ortho_k32": "ortho32", "unit_k32": "unit32", "unit_k100": "unit100"}
COLUMN_TITLES: dict[str, str] = {"ortho32": "orthonormal, K=32", "unit32": "unit length, K=32",
                                 "unit100": "unit length, K=100"}

#: Table 1 of the paper: (generator, reconstructor, column) -> (RCA, L_s).
PAPER_TABLE1: dict[tuple[str, str, str], tuple[float, float]] = {
    ("gan", "resnet", "ortho32"): (0.9236, 0.2538),
    ("gan", "resnet", "unit32"): (0.9383, 0.1949),
    ("gan", "resnet", "unit100"): (0.9522, 0.1560),
    ("gan", "lenet", "ortho32"): (0.8559, 0.3317),
    ("gan", "lenet", "unit32"): (0.9062, 0.2439),
    ("gan", "lenet", "unit100"): (0.9305, 0.1406),
    ("vae", "resnet", "ortho32"): (0.9939, 0.1040),
    ("vae", "resnet", "unit32"): (0.9947, 0.1086),
    ("vae", "resnet", "unit100"): (0.9861, 0.1117),
    ("vae", "lenet", "ortho32"): (0.9800, 0.1421),
    ("vae", "lenet", "unit32"): (0.9895, 0.1090),
    ("vae", "lenet", "unit100"): (0.9791, 0.0962),
}

#: The paper's section 3.2: direction-training iterations per (K, generator, reconstructor).
PAPER_STEPS: dict[tuple[int, str, str], int] = {
    (32, "gan", "lenet"): 25_000, (32, "gan", "resnet18"): 3_000,
    (32, "vae", "lenet"): 25_000, (32, "vae", "resnet18"): 3_000,
    (100, "gan", "lenet"): 250_000, (100, "gan", "resnet18"): 10_000,
    (100, "vae", "lenet"): 75_000, (100, "vae", "resnet18"): 4_000,
}


def generator_kind(kind: str) -> str:
    """A generator kind in the one spelling: "dcgan" (as files may hold it) -> "gan"."""
    return GENERATOR_ALIASES.get(kind, kind)


def column_name(name: str) -> str:
    """A Table 1 column in the one spelling (``unit_k32`` -> ``unit32``)."""
    return COLUMN_ALIASES.get(name, name)


def cell_name(generator: str, reconstructor: str, column: str) -> str:
    """The name of one Table 1 cell, e.g. ``gan_lenet_unit32``."""
    return f"{generator_kind(generator)}_{reconstructor}_{column_name(column)}"


def canonical_cell(name: str) -> str:
    """A cell name in the one spelling; older ones (``gan_lenet_unit_k32``, ``dcgan_...``) mapped."""
    parts = str(name).split("_", 2)
    if len(parts) != 3:
        return name
    return cell_name(*parts)


__all__ = ["COLUMNS", "COLUMN_ALIASES", "COLUMN_TITLES", "GENERATORS", "GENERATOR_ALIASES", "PAPER_STEPS",
           "PAPER_TABLE1", "RECONSTRUCTORS", "canonical_cell", "cell_name", "column_name", "generator_kind"]
