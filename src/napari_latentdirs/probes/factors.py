"""The one vocabulary of image factors: names, display names, units, which are the paper's.

Everything that spells a factor reads it here: the probes (``outline``, ``zlevel``), the
automatic labeller and its probe sets (``probes.phantom``, ``probes.ellipse``), the report's
"paper factors" table, the review presets and their older spellings. Adding a factor means one
``Factor`` line below plus the probe that measures it (``outline.measure``).

The phantom (``napari_latentdirs.phantom``) is a data source only: it knows its own ground-truth
columns and nothing of the probes; ``truth`` and ``nominal`` below name those columns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Factor:
    """One measured factor.

    ``display``: the words for people (reports, docks); ``unit`` of the probe's reading;
    ``paper``: one of the paper's factors (counted in the report's "found" table);
    ``period``: circular factors (differences wrap); ``consequences``: factors a change of this
    one also moves physically (they do not count against its selectivity); ``truth`` /
    ``nominal``: the phantom's ground-truth column the probe is scored against and the nominal
    factor behind it; ``aliases``: older spellings (reviews, summaries) that mean this factor.
    """

    name: str
    display: str
    unit: str
    paper: bool = True
    period: float | None = None
    consequences: tuple[str, ...] = ()
    truth: str = ""
    nominal: str = ""
    aliases: tuple[str, ...] = ()


def _table(*factors: Factor) -> dict[str, Factor]:
    return {f.name: f for f in factors}


#: The phantom's anatomical factors (the paper's eight), in probe order. Consequences are verified
#: on the phantom itself (tests/analysis/test_labelling.py renders it along each nominal factor):
#: fat adds to the outline all round, which also lowers the lowest body row; breasts add to the
#: antero-posterior height; a taller or larger body reaches lower. The level along the body gets no
#: exemption: on the phantom it barely moves the outline probes, and on blurry generators a fading
#: body also moves the z regressor, so z must dominate to count. Rotation is the body's principal
#: axis closest to horizontal, defined modulo 90 degrees.
FACTORS: dict[str, Factor] = _table(
    Factor("width", "width", "px", truth="eff_width_px", nominal="width_mm"),
    Factor("height", "height", "px", consequences=("y_position",), truth="eff_height_px", nominal="height_mm"),
    Factor("size", "size", "px", consequences=("y_position",), truth="eff_size_px", nominal="size"),
    Factor("rotation", "rotation", "deg", period=90.0, truth="rotation_deg", nominal="rotation_deg"),
    Factor("y_position", "y-position", "px", truth="eff_bottom_px", nominal="y_offset_mm", aliases=("y-position",)),
    Factor("thickness", "fat thickness", "px", consequences=("width", "height", "size", "y_position"),
           truth="eff_fat_px", nominal="fat_mm"),
    Factor("breast_size", "breast size", "px", consequences=("height", "size", "y_position"),
           truth="eff_breast_px", nominal="breast_mm", aliases=("breast size",)),
    Factor("z_level", "z-position", "fraction (apex 0 .. upper abdomen 1)", truth="t", nominal="t",
           aliases=("z-position",)),
)

#: The factor the z-level regressor measures (``probes.zlevel``).
Z_LEVEL = "z_level"
#: The probes' output keys, in order (``outline.measure``).
PROBE_NAMES: tuple[str, ...] = tuple(FACTORS)
#: The factors the paper reports (the report's "found" table counts these).
PAPER_FACTORS: tuple[str, ...] = tuple(n for n, f in FACTORS.items() if f.paper)
DISPLAY_NAMES: dict[str, str] = {n: f.display for n, f in FACTORS.items()}
UNITS: dict[str, str] = {n: f.unit for n, f in FACTORS.items()}
PERIODS: dict[str, float] = {n: f.period for n, f in FACTORS.items() if f.period is not None}
CONSEQUENCES: dict[str, tuple[str, ...]] = {n: f.consequences for n, f in FACTORS.items() if f.consequences}
#: Which phantom ground-truth column each probe is scored against (image pixels).
PROBE_TARGETS: dict[str, str] = {n: f.truth for n, f in FACTORS.items()}
#: The phantom's nominal factor behind each probe (reported for information).
PROBE_NOMINAL: dict[str, str] = {n: f.nominal for n, f in FACTORS.items()}
#: Older spellings -> factor name, exactly as they were written.
ALIASES: dict[str, str] = {a: n for n, f in FACTORS.items() for a in f.aliases}

#: The analytic ellipse generator's factors (models/analytic.py), measured by ``probes.ellipse``.
ELLIPSE_FACTORS: tuple[str, ...] = ("x_position", "y_position", "width", "height", "rotation", "intensity")
ELLIPSE_PERIODS: dict[str, float] = {"rotation": 90.0}


def _norm(text: str) -> str:
    return str(text).strip().lower().replace("-", "_").replace(" ", "_")


_NORMALISED_ALIASES = {_norm(a): n for a, n in ALIASES.items()}


def canonical_factor(text: str) -> str:
    """A factor name in any spelling (case, hyphens, spaces, older words) -> the vocabulary's
    name; text that names no factor comes back normalised the same way."""
    s = _norm(text)
    return _NORMALISED_ALIASES.get(s, s)


__all__ = ["ALIASES", "CONSEQUENCES", "DISPLAY_NAMES", "ELLIPSE_FACTORS", "ELLIPSE_PERIODS", "FACTORS", "Factor",
           "PAPER_FACTORS", "PERIODS", "PROBE_NAMES", "PROBE_NOMINAL", "PROBE_TARGETS", "UNITS", "Z_LEVEL", "canonical_factor"]
