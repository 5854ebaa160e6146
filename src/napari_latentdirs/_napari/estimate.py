"""The expected time of a run, shown before Start.

Seconds per step come from this machine's own last run with the same settings (the docks
record them when a run ends); before any, from the bundled demo models' record
(``assets/demo/README.json``: the CPU recipe timed on a 2-core CPU), said as such; else the
dock says the time is known after the first steps.
"""

from __future__ import annotations

import json
import logging
from functools import cache

from ..analysis.demo import DEMO_DIR
from . import settings

log = logging.getLogger(__name__)

SECTION = "step_seconds"


def rate_key(*parts: object) -> str:
    return ":".join(str(p) for p in parts)


@cache
def reference_rates() -> dict[str, float]:
    """Seconds per step of the demo models' CPU-recipe runs, by :func:`rate_key`."""
    try:
        doc = json.loads((DEMO_DIR / "README.json").read_text())
    except (OSError, ValueError):
        return {}
    out: dict[str, float] = {}
    for kind in ("gan", "vae"):
        rec = doc.get(kind) if isinstance(doc.get(kind), dict) else {}
        # Only CPU timings say how long a CPU run takes (a model trained on a GPU records its device).
        try:
            recipe = rec.get("generator_recipe", {})
            if rec.get("train_device", "cpu") == "cpu":
                out[rate_key("train", kind, recipe.get("preset", "cpu"), recipe.get("batch_size", 32), "cpu")] = (
                    60.0 * float(rec["train_minutes"]) / float(rec["generator_steps"]))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            log.debug("demo record of %s has no training timing", kind)
        try:
            cfg = rec["direction_config"]
            if cfg.get("device", "cpu") == "cpu":
                out[rate_key("directions", kind, cfg["reconstructor"], cfg["reconstructor_input"], cfg["batch_size"],
                             "cpu")] = 60.0 * float(rec["direction_minutes"]) / float(cfg["steps"])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            log.debug("demo record of %s has no direction timing", kind)
    return out


def record(key: str, seconds_per_step: float) -> None:
    if seconds_per_step > 0:
        settings.update(SECTION, **{key: float(seconds_per_step)})


def step_seconds(key: str) -> tuple[float, str] | None:
    """(seconds per step, where the figure comes from) or None."""
    mine = settings.load(SECTION).get(key)
    if isinstance(mine, int | float) and mine > 0:
        return float(mine), "on this machine"
    ref = reference_rates().get(key)
    if ref is not None:
        return ref, "on the 2-core CPU the demo models were timed on"
    return None


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def expected_text(key: str, steps: int | None) -> str:
    """"about 4 min on this machine (800 steps)", or what is not known yet."""
    if not steps:
        return "expected time: unknown step count"
    rate = step_seconds(key)
    if rate is None:
        return f"expected time: known after the first steps ({steps:,} steps; the ETA shows then)"
    s, where = rate
    return f"expected time: about {duration_text(s * steps)} {where} ({steps:,} steps)"
