"""The README's main-job figures are rendered from the summary the main job wrote (docs/), not typed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "scripts" / "readme_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_block_is_the_rendering_of_the_committed_summary():
    mod = _script()
    readme = (ROOT / "README.md").read_text()
    summary = json.loads(mod.SUMMARY.read_text())
    assert mod.START in readme and mod.END in readme
    assert mod.replace_block(readme, summary) == readme, "run scripts/readme_figures.py RUN after the main job"


def test_rendering_follows_the_summary():
    mod = _script()
    summary = json.loads(mod.SUMMARY.read_text())
    changed = json.loads(json.dumps(summary))
    changed["wall_seconds"] = 61.0
    assert "**1 min 1 s**" in mod.render(changed)
    assert mod.render(changed) != mod.render(summary)
